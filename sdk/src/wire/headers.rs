//! The wire format: CloudEvents binary mode over NATS headers.
//!
//! The payload is the event data (JSON, or protobuf with `content-type: application/protobuf`);
//! its attributes travel as headers: `ce-specversion`, `ce-id`, `ce-type`, `ce-source`,
//! `ce-time`, `ce-dataschema`, `content-type`, the extensions `ce-correlationid` /
//! `ce-causationid`, and the W3C `traceparent`. `Nats-Msg-Id` carries the event id so that
//! JetStream drops a repeated publish of the same event within the stream's duplicate window.
//! Dead letters and replays add the `eventhub-*` headers below.

use async_nats::HeaderMap;
use chrono::{DateTime, Utc};

use super::trace::TraceContext;

/// CloudEvents spec version, always `1.0`.
pub const SPECVERSION: &str = "ce-specversion";
/// Event id (a UUIDv7: time-ordered). Also sent as `Nats-Msg-Id`.
pub const ID: &str = "ce-id";
/// Event type, e.g. `user.created`.
pub const TYPE: &str = "ce-type";
/// The service that published the event.
pub const SOURCE: &str = "ce-source";
/// When the event was published (RFC 3339).
pub const TIME: &str = "ce-time";
/// The schema id of the event version.
pub const DATASCHEMA: &str = "ce-dataschema";
/// Id shared by every event of one business flow.
pub const CORRELATION_ID: &str = "ce-correlationid";
/// Id of the event whose handling caused this one.
pub const CAUSATION_ID: &str = "ce-causationid";
/// Media type of the payload.
pub const CONTENT_TYPE: &str = "content-type";
/// W3C Trace Context: `00-<trace id>-<span id of the publish>-<flags>` (see
/// [`TraceContext`]).
pub const TRACEPARENT: &str = "traceparent";
/// JetStream's de-duplication id.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// The id of the key the event's `x-sensitive` fields are encrypted with (see
/// [`crypto`](crate::wire::crypto)); only on events that have such fields.
pub const ENCRYPTION_KEY: &str = "eventhub-encryption-key";
/// Set on a message replayed from the dead-letter queue: `<stream>:<sequence>` of the entry.
pub const REPLAY_OF: &str = "eventhub-replay-of";
/// Set on a replayed message: the only consumer that should handle it. Other consumers of
/// the subject already handled the original and acknowledge the replay without running
/// their handler.
pub const REPLAY_FOR: &str = "eventhub-replay-for";

/// Dead letter: why (`rejected`, `poison`, `max-deliver`).
pub const DLQ_REASON: &str = "eventhub-dlq-reason";
/// Dead letter: the last error.
pub const DLQ_ERROR: &str = "eventhub-dlq-error";
/// Dead letter: deliveries made.
pub const DLQ_DELIVERIES: &str = "eventhub-dlq-deliveries";
/// Dead letter: the stream the event came from.
pub const DLQ_STREAM: &str = "eventhub-dlq-stream";
/// Dead letter: its sequence in that stream.
pub const DLQ_SEQUENCE: &str = "eventhub-dlq-sequence";
/// Dead letter: the subject it was published on.
pub const DLQ_SUBJECT: &str = "eventhub-dlq-subject";
/// Dead letter: the durable consumer that failed.
pub const DLQ_CONSUMER: &str = "eventhub-dlq-consumer";
/// Dead letter: when (RFC 3339).
pub const DLQ_FAILED_AT: &str = "eventhub-dlq-failed-at";
/// Dead letter: only when the entry does not hold the payload as it was: `deflate`
/// (compressed) or `reference` (read it from the original stream and sequence).
pub const DLQ_PAYLOAD: &str = "eventhub-dlq-payload";

/// A new event id: a UUIDv7, so ids sort by creation time.
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The header names as [`HeaderName`](async_nats::HeaderName) constants: inserting one
/// neither allocates nor parses the name, as a `&str` key would per event.
pub(crate) mod names {
    use super as h;
    use async_nats::HeaderName as N;

    pub(crate) const SPECVERSION: N = N::from_static(h::SPECVERSION);
    pub(crate) const ID: N = N::from_static(h::ID);
    pub(crate) const TYPE: N = N::from_static(h::TYPE);
    pub(crate) const SOURCE: N = N::from_static(h::SOURCE);
    pub(crate) const TIME: N = N::from_static(h::TIME);
    pub(crate) const DATASCHEMA: N = N::from_static(h::DATASCHEMA);
    pub(crate) const CONTENT_TYPE: N = N::from_static(h::CONTENT_TYPE);
    pub(crate) const CORRELATION_ID: N = N::from_static(h::CORRELATION_ID);
    pub(crate) const CAUSATION_ID: N = N::from_static(h::CAUSATION_ID);
    pub(crate) const TRACEPARENT: N = N::from_static(h::TRACEPARENT);
    pub(crate) const MSG_ID: N = N::from_static(h::MSG_ID);
}

/// The eventhub headers of a received message, found in one pass over its header map (a
/// hashed lookup per name would cost more than the map holds).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Known<'a> {
    pub(crate) id: Option<&'a str>,
    pub(crate) msg_id: Option<&'a str>,
    pub(crate) source: Option<&'a str>,
    pub(crate) time: Option<&'a str>,
    pub(crate) content_type: Option<&'a str>,
    pub(crate) correlation_id: Option<&'a str>,
    pub(crate) causation_id: Option<&'a str>,
    pub(crate) traceparent: Option<&'a str>,
    pub(crate) replay_of: Option<&'a str>,
    pub(crate) replay_for: Option<&'a str>,
}

impl<'a> Known<'a> {
    /// The first value of each known header in `h`.
    pub(crate) fn scan(h: &'a HeaderMap) -> Self {
        let mut k = Known::default();
        for (name, values) in h.iter() {
            let slot = match AsRef::<str>::as_ref(name) {
                ID => &mut k.id,
                MSG_ID => &mut k.msg_id,
                SOURCE => &mut k.source,
                TIME => &mut k.time,
                CONTENT_TYPE => &mut k.content_type,
                CORRELATION_ID => &mut k.correlation_id,
                CAUSATION_ID => &mut k.causation_id,
                TRACEPARENT => &mut k.traceparent,
                REPLAY_OF => &mut k.replay_of,
                REPLAY_FOR => &mut k.replay_for,
                _ => continue,
            };
            *slot = values.first().map(|v| v.as_str());
        }
        k
    }
}

/// The headers of a published event.
pub(crate) struct OutgoingHeaders<'a> {
    pub(crate) id: &'a str,
    pub(crate) source: &'a str,
    pub(crate) time: DateTime<Utc>,
    pub(crate) correlation_id: &'a str,
    pub(crate) causation_id: Option<&'a str>,
    pub(crate) content_type: &'static str,
    pub(crate) trace: &'a TraceContext,
}

impl OutgoingHeaders<'_> {
    pub(crate) fn build(&self, event_type: &str, schema_id: &str) -> HeaderMap {
        // Names are constants (no allocation or validation per event); the time is formatted
        // straight into the value it becomes.
        use names::*;
        let mut h = HeaderMap::new();
        h.insert(SPECVERSION, "1.0");
        h.insert(ID, self.id);
        h.insert(TYPE, event_type);
        h.insert(SOURCE, self.source);
        h.insert(
            TIME,
            self.time
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        );
        h.insert(DATASCHEMA, schema_id);
        h.insert(CONTENT_TYPE, self.content_type);
        h.insert(CORRELATION_ID, self.correlation_id);
        if let Some(c) = self.causation_id {
            h.insert(CAUSATION_ID, c);
        }
        h.insert(MSG_ID, self.id);
        h.insert(TRACEPARENT, self.trace.header());
        h
    }
}

/// Size of `headers` on the wire (`NATS/1.0\r\n`, `Name: value\r\n` each, `\r\n`), which counts
/// against the server's `max_payload` together with the payload.
pub(crate) fn wire_size(h: &HeaderMap) -> usize {
    let mut n = "NATS/1.0\r\n\r\n".len();
    for (name, values) in h.iter() {
        for v in values {
            n += AsRef::<str>::as_ref(name).len() + 2 + v.as_str().len() + 2;
        }
    }
    n
}
