//! Typed errors: one [`Error`] type carrying a per-operation kind.
//!
//! Match on [`Error::kind`] to decide what to do; [`Display`](std::fmt::Display) says what went
//! wrong, where, and how to fix it; [`source`](std::error::Error::source) is the underlying
//! NATS error, if any.

use std::fmt;

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error of one eventhub operation. `K` is the operation's kind enum, e.g.
/// [`PublishErrorKind`]. Prints the explanation only; the underlying error is
/// [`source`](std::error::Error::source) (print the chain with `anyhow`'s `{:#}` or by walking
/// `source()`).
#[derive(thiserror::Error)]
#[error("{detail}")]
pub struct Error<K: fmt::Debug> {
    kind: K,
    detail: String,
    #[source]
    source: Option<Source>,
}

impl<K: Copy + fmt::Debug> Error<K> {
    pub(crate) fn new(kind: K, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: K,
        detail: impl Into<String>,
        source: impl Into<Source>,
    ) -> Self {
        Self {
            kind,
            detail: detail.into(),
            source: Some(source.into()),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> K {
        self.kind
    }

    /// The human-readable explanation (also what `Display` prints).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl<K: fmt::Debug> fmt::Debug for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .field("source", &self.source)
            .finish()
    }
}

/// Why [`Client::connect`](crate::Client::connect) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectErrorKind {
    /// No server answered at the URL (not running, wrong port, network down).
    Unreachable,
    /// The server refused the credentials.
    Authentication,
    /// The options are invalid (bad URL, unreadable credentials file, missing TLS file).
    InvalidOptions,
    /// The TLS handshake failed: the server's certificate is not trusted, or the server
    /// requires a client certificate that was not presented or not accepted.
    Tls,
}

/// Why publishing an event failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishErrorKind {
    /// No stream captures the event's subject: the topology has not been provisioned.
    NoStream,
    /// The server did not acknowledge in time; the event may or may not be stored. Publishing
    /// again with the same event id is safe: the stream drops duplicates.
    TimedOut,
    /// Not connected to any server.
    Unreachable,
    /// The encoded message is bigger than the server's or the stream's limit. Checked before
    /// sending.
    PayloadTooLarge,
    /// The connection's user may not publish to the subject.
    PermissionDenied,
    /// The event could not be serialized.
    Encode,
    /// The event does not match its JSON Schema (the error lists every violation, e.g. an
    /// empty string where the schema says `format: email`). Nothing was sent.
    Invalid,
    /// The event has fields marked `x-sensitive` and the client holds no key to encrypt them
    /// ([`ConnectOptions::keyring`](crate::ConnectOptions::keyring)). Nothing was sent.
    NoEncryptionKey,
    /// The server refused the message for another reason (stream sealed, storage full…).
    Rejected,
    /// The stream's queue of publishes waiting to be stored is full: nats-server (≥ 2.11)
    /// answers `429 too many requests` beyond `max_buffered_msgs` / `max_buffered_size` of its
    /// `jetstream` block (10,000 messages, 128 MB by default) and drops the message. Nothing
    /// was stored; publishing again with the same event id after a pause is safe.
    /// [`Publisher::publish`](crate::Publisher::publish) does so within
    /// [`ConnectOptions::publish_attempts`](crate::ConnectOptions::publish_attempts); a
    /// [`Pipeline`](crate::publish::Pipeline) reports it per event — fewer events (or bytes) in
    /// flight avoid it.
    Busy,
    /// The event's stream does not allow what the publish needs: schedules
    /// (`allow_msg_schedules`), atomic groups (`allow_atomic`) or a per-message TTL
    /// (`allow_msg_ttl`). Set the flag in `streams.json` and provision. Nothing was stored.
    FeatureDisabled,
    /// The connected nats-server is older than the feature needs
    /// ([`Feature::min_version`](crate::publish::Feature::min_version)). Nothing was sent.
    ServerTooOld,
    /// A schedule the server would refuse: a cron expression that is not 6 fields, an interval
    /// under a second, a time zone on a non-cron schedule, a key that is not a subject token.
    /// Nothing was sent.
    InvalidSchedule,
    /// An atomic group over its limits (more than 1,000 events, events of several streams,
    /// none at all): refused before anything was sent.
    GroupLimit,
}

/// Why provisioning streams failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProvisionErrorKind {
    /// A stream on the server differs from its declaration in a way JetStream cannot update in
    /// place (storage type, retention).
    Conflict,
    /// The server refused the request (permissions, limits, invalid configuration).
    Rejected,
    /// The server could not be reached or did not answer in time.
    Unreachable,
}

/// Why a consumer could not be set up or stopped running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsumeErrorKind {
    /// The stream the consumer reads from does not exist.
    NoStream,
    /// The consumer configuration is invalid or the server refused it.
    InvalidConfig,
    /// The server could not be reached or did not answer in time.
    Unreachable,
    /// The server's permissions forbid this service a subject the consumer needs (the
    /// JetStream API of its stream, or a subscription).
    PermissionDenied,
    /// The server is too old for a feature the consumer asks for (e.g. failover needs
    /// nats-server 2.11).
    Unsupported,
}

/// Why a dead-letter operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterErrorKind {
    /// No dead-letter entry with that id.
    NotFound,
    /// The entry lacks the headers eventhub writes (it was not written by eventhub).
    Corrupt,
    /// Republishing the entry failed; the entry is kept.
    Replay,
    /// The server could not be reached or refused the request.
    Unreachable,
}

/// Error of [`Client::connect`](crate::Client::connect).
pub type ConnectError = Error<ConnectErrorKind>;
/// Error of publishing an event.
pub type PublishError = Error<PublishErrorKind>;
/// Error of provisioning streams.
pub type ProvisionError = Error<ProvisionErrorKind>;
/// Error of setting up or running a consumer.
pub type ConsumeError = Error<ConsumeErrorKind>;
/// Error of a dead-letter operation.
pub type DeadLetterError = Error<DeadLetterErrorKind>;

/// What made a message undecodable. Such a message is *poison*: retrying cannot help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The payload is not JSON.
    InvalidJson,
    /// The payload is JSON but not of the event's shape (missing field, wrong type, bad value).
    SchemaMismatch,
    /// The subject names a version this build does not know.
    UnknownVersion,
    /// The subject is not an event subject (`events.<type>.v<N>`), or names another type.
    UnknownEventType,
    /// The content type is not one eventhub decodes.
    UnsupportedContentType,
    /// The content type is protobuf but the payload is not a valid encoding of the event's
    /// message (truncated, wrong wire type for a field, a string that is not UTF-8).
    InvalidProtobuf,
    /// A field marked `x-sensitive` does not decrypt with the key the event names, although
    /// the consumer holds it: the ciphertext was altered, moved from another field or event, or
    /// is not ciphertext at all (see [`crate::wire::crypto`]).
    Decryption,
}

/// A message that cannot be decoded into the expected event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct DecodeError {
    kind: DecodeErrorKind,
    detail: String,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// The subject names a version outside `known`. Used by generated code.
    pub fn unknown_version(event_type: &str, version: u32, known: &[u32]) -> Self {
        let known: Vec<String> = known.iter().map(|v| format!("v{v}")).collect();
        Self::new(
            DecodeErrorKind::UnknownVersion,
            format!(
                "unknown version v{version} of {event_type} (this consumer knows {}); rebuild it \
                 with the new schema, then replay the dead letter",
                known.join(", ")
            ),
        )
    }

    /// The subject names an event type outside `known` (the types a consumer decodes). Used
    /// by generated code.
    pub fn unknown_event_type(event_type: &str, known: &[&str]) -> Self {
        Self::new(
            DecodeErrorKind::UnknownEventType,
            format!(
                "event type `{event_type}` is not one this consumer decodes (it decodes {}); \
                 if it is new, rebuild the consumer with its schema, then replay the dead letter",
                known.join(", ")
            ),
        )
    }

    /// What made the message undecodable.
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }
}
