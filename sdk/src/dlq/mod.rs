//! The dead-letter queue: events a consumer could not handle, kept with why, for inspection
//! and replay.
//!
//! Entries live in the stream [`DLQ_STREAM`] (limits retention, file storage, 90 days) on
//! `dlq.<consumer>.<original subject>`, e.g. `dlq.profile__user_created.events.user.created.v2`.
//! An entry is the original message plus `eventhub-dlq-*` headers: reason, error, deliveries,
//! original stream, sequence and subject, consumer, failed-at. Its `Nats-Msg-Id` is
//! `dlq:<stream>:<sequence>:<consumer>`, so the consumer and the [`Sweeper`] never store the
//! same failure twice.
//!
//! Every dead letter can be stored, whatever the original carried:
//!
//! - Headers the server acts on (every `Nats-*` header a producer may set:
//!   `Nats-Expected-Stream`, `Nats-Expected-Last-Sequence`, `Nats-Rollup`, `Nats-TTL`,
//!   `Nats-Msg-Id`, `Nats-Schedule…`, `Nats-Batch-…`) and original headers named like
//!   eventhub's own `eventhub-dlq-*` are kept under [`ORIGINAL_HEADER_PREFIX`]
//!   (`eventhub-dlq-original-Nats-Expected-Stream`), as metadata the server ignores.
//!   [`DeadLetter::headers`] gives them back under their own names; a replay sends none of the
//!   `Nats-*` ones.
//! - An entry that would exceed the server's `max_payload` (the original was near it, and the
//!   entry adds headers) stores its payload deflate-compressed; if that does not fit either, it
//!   stores a reference to the original's stream and sequence instead of the payload
//!   ([`PayloadStorage`]), which reading and replaying the entry follow.
//!
//! An entry's id is its sequence in [`DLQ_STREAM`].

mod store;
mod sweeper;

use std::fmt;

use async_nats::HeaderMap;
use async_nats::jetstream::stream::DeleteMessageErrorKind;
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::client::Client;
use crate::error::{DeadLetterError, DeadLetterErrorKind};
use crate::topology::{DLQ_PREFIX, DLQ_STREAM};
use crate::wire::headers::{self, wire_size};
use crate::wire::parse_subject;

pub use store::{DeadLetterReason, ORIGINAL_HEADER_PREFIX};
pub use sweeper::{SWEEPER_DURABLE, Sweeper, SweeperHandle, SweeperStats};

pub(crate) use store::{Failed, server_acts_on, write};
use store::{MAX_HEADERS, PAYLOAD_HEADER, SIZE_MARGIN, inflate, read_original};

/// One dead-letter entry.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The entry's id: its sequence in [`DLQ_STREAM`].
    pub id: u64,
    /// Why it is here.
    pub reason: DeadLetterReason,
    /// The last error.
    pub error: String,
    /// How many times it was delivered to the consumer.
    pub deliveries: u64,
    /// The stream the event came from.
    pub stream: String,
    /// Its sequence there.
    pub sequence: u64,
    /// The subject it was published on; a replay publishes there again.
    pub subject: String,
    /// The durable consumer that failed.
    pub consumer: String,
    /// When it was dead-lettered.
    pub failed_at: DateTime<Utc>,
    /// The event id (`ce-id`), if the message had one.
    pub event_id: Option<String>,
    /// The event type and version, from the subject, if it is an event subject.
    pub event_type: Option<(String, u32)>,
    /// The original headers as the producer sent them (without eventhub's `eventhub-dlq-*`
    /// ones; `Nats-*` headers, stored aside, are back under their own names).
    pub headers: HeaderMap,
    /// The original payload, unchanged (empty if [`PayloadStorage::Unavailable`]).
    pub payload: Bytes,
    /// How the entry keeps the payload.
    pub payload_storage: PayloadStorage,
}

/// How a dead letter keeps the original payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadStorage {
    /// A copy in the entry: the usual case.
    Copied,
    /// A deflate-compressed copy in the entry (the original with the entry's headers was too
    /// big for the server's `max_payload`).
    Compressed,
    /// Not in the entry (too big even compressed): read from the original's stream and
    /// sequence, where it still is.
    Referenced,
    /// Not in the entry, and no longer in the original stream (its limits removed it).
    Unavailable,
}

/// Which entries [`DeadLetters::list`] returns. Empty: all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetterFilter {
    /// Only entries of this durable consumer.
    pub consumer: Option<String>,
    /// Only entries of this event type (`user.created`).
    pub event_type: Option<String>,
    /// Only entries dead-lettered at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many entries (the oldest first).
    pub limit: Option<usize>,
}

impl DeadLetterFilter {
    /// Only entries of this durable consumer.
    pub fn consumer(mut self, consumer: impl Into<String>) -> Self {
        self.consumer = Some(consumer.into());
        self
    }

    /// Only entries of this event type (`user.created`).
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = Some(event_type.into());
        self
    }

    /// Only entries dead-lettered at or after `since`.
    pub fn since(mut self, since: DateTime<Utc>) -> Self {
        self.since = Some(since);
        self
    }

    /// At most `limit` entries (the oldest first).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

impl DeadLetterFilter {
    /// The subject filter on [`DLQ_STREAM`].
    fn subject(&self) -> String {
        let consumer = self.consumer.as_deref().unwrap_or("*");
        match &self.event_type {
            Some(t) => format!("{DLQ_PREFIX}.{consumer}.events.{t}.*"),
            None => format!("{DLQ_PREFIX}.{consumer}.>"),
        }
    }
}

/// Where a replayed entry went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The entry's id (now deleted from the dead letters).
    pub id: u64,
    /// The subject it was published to.
    pub subject: String,
    /// The stream that stored it.
    pub stream: String,
    /// Its new sequence there.
    pub sequence: u64,
    /// Whether the stream had already stored this replay (an earlier replay whose delete
    /// failed); the entry is deleted either way.
    pub duplicate: bool,
    /// Whether the replay carries the marks that make only [`DeadLetter::consumer`] handle it.
    /// `false` when the event was too close to the server's `max_payload` for the marks: then
    /// every consumer of the subject receives it again (idempotent ones skip it).
    pub targeted: bool,
}

/// The key-value bucket where [`DeadLetters::replay`] records each replay before publishing
/// it: consumers check a replay mark against it, so a producer cannot forge one.
pub const REPLAY_BUCKET: &str = "EVENTHUB_REPLAYS";

/// What a replay record holds.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub(crate) struct ReplayRecord {
    /// The only consumer meant to handle the replay.
    pub(crate) consumer: String,
    /// The subject it was replayed to.
    pub(crate) subject: String,
    /// SHA-256 of the payload, hex.
    pub(crate) digest: String,
    /// Makes the replay's message id, which no producer can know before the replay is
    /// published (empty in records of earlier eventhub versions).
    #[serde(default)]
    pub(crate) nonce: String,
}

impl ReplayRecord {
    /// The key of the record of dead letter `id`'s replay.
    pub(crate) fn key(id: u64) -> String {
        format!("dlq_{id}")
    }

    /// The dead letter a replay mark (`eventhub-replay-of: EVENTHUB_DLQ:<id>`) names.
    pub(crate) fn id_of(replay_of: &str) -> Option<u64> {
        replay_of
            .strip_prefix(DLQ_STREAM)?
            .strip_prefix(':')?
            .parse()
            .ok()
    }

    /// SHA-256 of `payload`, hex.
    pub(crate) fn digest(payload: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(payload))
    }

    /// Whether a message on `subject` with `payload` marked as a replay for `consumer` is the
    /// replay this record describes.
    pub(crate) fn vouches_for(&self, consumer: &str, subject: &str, payload: &[u8]) -> bool {
        self.consumer == consumer && self.subject == subject && self.digest == Self::digest(payload)
    }
}

/// The dead-letter queue API: list, read, replay and delete entries. From
/// [`Client::dead_letters`].
#[derive(Debug, Clone)]
pub struct DeadLetters {
    client: Client,
}

impl DeadLetters {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    async fn stream(&self) -> Result<jetstream::stream::Stream, DeadLetterError> {
        self.client
            .jetstream()
            .get_stream(DLQ_STREAM)
            .await
            .map_err(|e| {
                DeadLetterError::with_source(
                    DeadLetterErrorKind::Unreachable,
                    format!(
                        "cannot open the dead-letter stream {DLQ_STREAM} at {} (provision the \
                         topology first: Client::provision or `eventhub topology apply`)",
                        self.client.url()
                    ),
                    e,
                )
            })
    }

    /// The entries matching `filter`, oldest first.
    pub async fn list(
        &self,
        filter: &DeadLetterFilter,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let stream = self.stream().await?;
        if filter.since.is_some_and(|t| t > Utc::now()) {
            // JetStream starts a consumer whose start time is in the future at the beginning.
            return Ok(Vec::new());
        }
        let deliver_policy = match filter.since {
            Some(start_time) => consumer::DeliverPolicy::ByStartTime { start_time },
            None => consumer::DeliverPolicy::All,
        };
        let unreachable = |e: &dyn fmt::Display| {
            DeadLetterError::new(
                DeadLetterErrorKind::Unreachable,
                format!("cannot read the dead letters: {e}"),
            )
        };
        let reader = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: filter.subject(),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| unreachable(&e))?;
        let mut remaining = usize::try_from(reader.cached_info().num_pending).unwrap_or(usize::MAX);
        if let Some(limit) = filter.limit {
            remaining = remaining.min(limit);
        }
        let mut out = Vec::with_capacity(remaining.min(4096));
        if remaining == 0 {
            return Ok(out);
        }
        let reader_name = reader.cached_info().name.clone();
        let mut messages = reader.messages().await.map_err(|e| unreachable(&e))?;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| unreachable(&e))?;
            let info = message.info().map_err(|e| unreachable(&e))?;
            let (seq, stored_pending) = (info.stream_sequence, info.pending);
            let mut entry =
                DeadLetter::from_parts(seq, message.headers.as_ref(), message.payload.clone());
            entry.check_stored_on(message.subject.as_str());
            self.resolve_payload(&mut entry).await;
            out.push(entry);
            remaining -= 1;
            if remaining == 0 || stored_pending == 0 {
                break;
            }
        }
        drop(messages);
        // Remove the reader now rather than when the server notices it is inactive.
        let _ = stream.delete_consumer(&reader_name).await;
        Ok(out)
    }

    /// The entry with id `id`.
    pub async fn get(&self, id: u64) -> Result<DeadLetter, DeadLetterError> {
        if id == 0 {
            // Stream sequences start at 1; the server would answer with a bare API error.
            return Err(not_found(id));
        }
        match read_original(&self.client, DLQ_STREAM, id).await {
            Ok(Some(m)) => {
                let mut entry = DeadLetter::from_parts(id, Some(&m.headers), m.payload);
                entry.check_stored_on(m.subject.as_str());
                self.resolve_payload(&mut entry).await;
                Ok(entry)
            }
            Ok(None) => Err(not_found(id)),
            Err(e) => Err(DeadLetterError::new(
                DeadLetterErrorKind::Unreachable,
                format!("cannot read dead letter {id}: {e}"),
            )),
        }
    }

    /// Reads the payload of an entry that holds a reference from the original stream.
    async fn resolve_payload(&self, entry: &mut DeadLetter) {
        if entry.payload_storage != PayloadStorage::Referenced {
            return;
        }
        match read_original(&self.client, &entry.stream, entry.sequence).await {
            Ok(Some(m)) => entry.payload = m.payload,
            _ => entry.payload_storage = PayloadStorage::Unavailable,
        }
    }

    /// Publishes entry `id` again to its original subject — same payload and headers, a new
    /// `Nats-Msg-Id` (`EVENTHUB_DLQ:<id>:replay:<nonce>`, the nonce kept in the replay record:
    /// replaying the entry again reuses it, so the stream stores one replay, and no producer
    /// can send it first), `eventhub-replay-of: EVENTHUB_DLQ:<id>` and
    /// `eventhub-replay-for: <consumer>` so that only the consumer that failed handles it —
    /// and deletes the entry once the stream has acknowledged the publish. If the publish
    /// fails, the entry stays. Original headers the server acts on (`Nats-*`, such as an
    /// expected last sequence that no longer holds) are not sent again.
    pub async fn replay(&self, id: u64) -> Result<Replayed, DeadLetterError> {
        let entry = self.get(id).await?;
        if entry.payload_storage == PayloadStorage::Unavailable {
            return Err(DeadLetterError::new(
                DeadLetterErrorKind::Corrupt,
                format!(
                    "dead letter {id} did not fit with its payload, which is no longer in {}                      #{} (removed by the stream's limits); it cannot be replayed",
                    entry.stream, entry.sequence
                ),
            ));
        }
        if entry.subject.is_empty() || entry.consumer.is_empty() {
            return Err(DeadLetterError::new(
                DeadLetterErrorKind::Corrupt,
                format!(
                    "dead letter {id} lacks its original subject or consumer headers \
                     ({}, {}), or they name another consumer or subject than the one it is \
                     stored under; it was not written by eventhub and cannot be replayed",
                    headers::DLQ_SUBJECT,
                    headers::DLQ_CONSUMER
                ),
            ));
        }
        let mut h = HeaderMap::new();
        for (name, values) in entry.headers.iter() {
            let name: &str = name.as_ref();
            let lower = name.to_ascii_lowercase();
            if server_acts_on(name) || lower.starts_with("eventhub-replay-") {
                continue;
            }
            for v in values {
                h.append(name, v.as_str());
            }
        }
        let replay_error = |e: &dyn fmt::Display| {
            DeadLetterError::new(
                DeadLetterErrorKind::Replay,
                format!(
                    "replaying dead letter {id} to `{}` failed; the entry is kept: {e}",
                    entry.subject
                ),
            )
        };
        let bucket = self
            .client
            .jetstream()
            .create_or_update_key_value(async_nats::jetstream::kv::Config {
                bucket: REPLAY_BUCKET.to_string(),
                description: "eventhub: dead-letter replays and the one consumer each is for"
                    .to_string(),
                history: 1,
                max_age: std::time::Duration::from_secs(400 * 86_400),
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| replay_error(&e))?;
        let mut record = ReplayRecord {
            consumer: entry.consumer.clone(),
            subject: entry.subject.clone(),
            digest: ReplayRecord::digest(&entry.payload),
            nonce: crate::wire::headers::new_event_id(),
        };
        // An earlier replay of this very entry (its delete failed) left its record: the same
        // nonce makes the same message id, which the stream drops as a repeat.
        if let Ok(Some(value)) = bucket.get(ReplayRecord::key(id)).await
            && let Ok(earlier) = serde_json::from_slice::<ReplayRecord>(&value)
            && earlier.consumer == record.consumer
            && earlier.subject == record.subject
            && earlier.digest == record.digest
            && !earlier.nonce.is_empty()
        {
            record.nonce = earlier.nonce;
        }
        // The marks, least needed last: at the size limit they are dropped in that order.
        let budget = self.client.max_payload().saturating_sub(SIZE_MARGIN);
        let fits = |h: &HeaderMap| {
            wire_size(h) + entry.payload.len() <= budget
                && wire_size(h) <= MAX_HEADERS - SIZE_MARGIN
        };
        let mut marked = h.clone();
        marked.insert(headers::REPLAY_OF, format!("{DLQ_STREAM}:{id}").as_str());
        marked.insert(headers::REPLAY_FOR, entry.consumer.as_str());
        let mut with_id = marked.clone();
        with_id.insert(
            headers::MSG_ID,
            format!("{DLQ_STREAM}:{id}:replay:{}", record.nonce).as_str(),
        );
        let (h, targeted) = if fits(&with_id) {
            (with_id, true)
        } else if fits(&marked) {
            (marked, true)
        } else {
            (h, false)
        };
        if targeted {
            // Recorded before publishing, so a consumer that sees the mark finds the record.
            let value = serde_json::to_vec(&record).unwrap_or_default();
            bucket
                .put(ReplayRecord::key(id), value.into())
                .await
                .map_err(|e| replay_error(&e))?;
        }
        let ack = self
            .client
            .jetstream()
            .publish_with_headers(entry.subject.clone(), h, entry.payload.clone())
            .await
            .map_err(|e| replay_error(&e))?
            .await
            .map_err(|e| replay_error(&e))?;
        self.delete(id).await?;
        Ok(Replayed {
            id,
            subject: entry.subject,
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
            targeted,
        })
    }

    /// Deletes entry `id`.
    pub async fn delete(&self, id: u64) -> Result<(), DeadLetterError> {
        if id == 0 {
            return Err(not_found(id));
        }
        let stream = self.stream().await?;
        match stream.delete_message(id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(not_found(id)),
            Err(e) if matches!(e.kind(), DeleteMessageErrorKind::JetStream(_)) => {
                // The server answers a missing sequence with one of several codes (and texts);
                // whether the entry exists says which case this is.
                match read_original(&self.client, DLQ_STREAM, id).await {
                    Ok(None) => Err(not_found(id)),
                    _ => Err(DeadLetterError::with_source(
                        DeadLetterErrorKind::Unreachable,
                        format!("cannot delete dead letter {id}"),
                        e,
                    )),
                }
            }
            Err(e) => Err(DeadLetterError::with_source(
                DeadLetterErrorKind::Unreachable,
                format!("cannot delete dead letter {id}"),
                e,
            )),
        }
    }
}

fn not_found(id: u64) -> DeadLetterError {
    DeadLetterError::new(
        DeadLetterErrorKind::NotFound,
        format!(
            "dead letter {id} not found: no dead letter with id {id} in {DLQ_STREAM} (already \
             replayed or deleted?)"
        ),
    )
}

impl DeadLetter {
    /// An entry is stored on `dlq.<consumer>.<subject>` of the consumer and subject its headers
    /// name; permissions let a service write only its own durables' dead letters. Headers that
    /// name another consumer or subject were forged (a service writing an entry for another
    /// service's durable): the entry keeps only what its subject proves, so a replay cannot
    /// deliver it into another service's durable.
    fn check_stored_on(&mut self, stored: &str) {
        let expected = format!("{DLQ_PREFIX}.{}.{}", self.consumer, self.subject);
        if stored != expected {
            self.error = format!(
                "forged entry: its headers name consumer `{}` and subject `{}`, but it is stored \
                 on `{stored}`; {}",
                self.consumer, self.subject, self.error
            );
            self.consumer = String::new();
            self.subject = String::new();
        }
    }

    fn from_parts(id: u64, h: Option<&HeaderMap>, payload: Bytes) -> Self {
        let get = |name: &str| {
            h.and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
                .unwrap_or_default()
        };
        let subject = get(headers::DLQ_SUBJECT);
        let mut original = HeaderMap::new();
        if let Some(h) = h {
            for (name, values) in h.iter() {
                let name: &str = name.as_ref();
                let lower = name.to_ascii_lowercase();
                let name = if lower.starts_with(ORIGINAL_HEADER_PREFIX) {
                    &name[ORIGINAL_HEADER_PREFIX.len()..]
                } else if lower.starts_with("eventhub-dlq-") || server_acts_on(name) {
                    // eventhub's own (the entry's `Nats-Msg-Id` is its de-duplication id).
                    continue;
                } else {
                    name
                };
                for v in values {
                    original.append(name, v.as_str());
                }
            }
        }
        let (payload, payload_storage) = match get(PAYLOAD_HEADER).as_str() {
            "" => (payload, PayloadStorage::Copied),
            "deflate" => match inflate(&payload) {
                Some(p) => (p, PayloadStorage::Compressed),
                None => (Bytes::new(), PayloadStorage::Unavailable),
            },
            _ => (Bytes::new(), PayloadStorage::Referenced),
        };
        let event_id = original
            .get(headers::ID)
            .map(|v| v.as_str().to_string())
            .filter(|s| !s.is_empty());
        DeadLetter {
            id,
            reason: get(headers::DLQ_REASON)
                .parse()
                .unwrap_or(DeadLetterReason::Rejected),
            error: get(headers::DLQ_ERROR),
            deliveries: get(headers::DLQ_DELIVERIES).parse().unwrap_or(0),
            stream: get(headers::DLQ_STREAM),
            sequence: get(headers::DLQ_SEQUENCE).parse().unwrap_or(0),
            event_type: parse_subject(&subject).map(|(t, v)| (t.to_string(), v)),
            subject,
            consumer: get(headers::DLQ_CONSUMER),
            failed_at: DateTime::parse_from_rfc3339(&get(headers::DLQ_FAILED_AT))
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            event_id,
            headers: original,
            payload,
            payload_storage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::store::{HEADERS_OMITTED, entry, header_value, parse_headers};
    use super::*;

    #[test]
    fn header_values_are_one_bounded_line() {
        assert_eq!(header_value("a\r\nb\tc"), "a  b c");
        let long = "é".repeat(3000);
        let v = header_value(&long);
        assert!(v.len() <= 2048 + '…'.len_utf8());
        assert!(v.ends_with('…'));
    }

    #[test]
    fn filters_become_subjects() {
        let mut f = DeadLetterFilter::default();
        assert_eq!(f.subject(), "dlq.*.>");
        f.event_type = Some("user.created".into());
        assert_eq!(f.subject(), "dlq.*.events.user.created.*");
        f.consumer = Some("profile__user_created".into());
        assert_eq!(
            f.subject(),
            "dlq.profile__user_created.events.user.created.*"
        );
    }

    fn failed<'a>(h: &'a HeaderMap, payload: Vec<u8>) -> Failed<'a> {
        Failed {
            subject: "events.user.created.v2",
            headers: Some(h),
            payload: payload.into(),
            stream: "IDENTITY",
            sequence: 7,
            consumer: "profile__user_created",
            deliveries: 1,
        }
    }

    #[test]
    fn headers_the_server_acts_on_are_stored_aside_and_read_back() {
        let mut h = HeaderMap::new();
        for name in [
            "Nats-Expected-Stream",
            "Nats-Expected-Last-Sequence",
            "Nats-Expected-Last-Subject-Sequence",
            "Nats-Expected-Last-Msg-Id",
            "Nats-Rollup",
            "Nats-TTL",
            "nats-msg-id",
            "Nats-Schedule",
            "Nats-Schedule-Target",
            "Nats-Batch-Id",
            "Nats-Batch-Sequence",
            "Nats-Batch-Commit",
            "eventhub-dlq-consumer",
        ] {
            h.insert(name, "x");
        }
        h.insert(headers::ID, "evt-1");
        let (entry, payload) = entry(
            &failed(&h, b"{}".to_vec()),
            &DeadLetterReason::Poison,
            "bad",
            1 << 20,
        );
        for (name, _) in entry.iter() {
            let name: &str = name.as_ref();
            assert!(
                !server_acts_on(name) || name == headers::MSG_ID,
                "{name} reaches the DLQ stream"
            );
        }
        assert!(
            entry
                .get(headers::MSG_ID)
                .unwrap()
                .as_str()
                .starts_with("dlq:"),
            "the entry's own de-duplication id"
        );
        assert_eq!(
            entry.get(headers::DLQ_CONSUMER).unwrap().as_str(),
            "profile__user_created",
            "a forged dlq header does not replace eventhub's"
        );
        let letter = DeadLetter::from_parts(1, Some(&entry), payload);
        for (name, _) in h.iter() {
            assert_eq!(
                letter
                    .headers
                    .get(AsRef::<str>::as_ref(name))
                    .map(|v| v.as_str()),
                h.get(AsRef::<str>::as_ref(name)).map(|v| v.as_str()),
                "{name} is read back under its own name"
            );
        }
        assert_eq!(letter.consumer, "profile__user_created");
        assert_eq!(letter.payload_storage, PayloadStorage::Copied);
    }

    /// The bytes an entry takes against `max_payload`.
    fn size(h: &HeaderMap, payload: &Bytes) -> usize {
        wire_size(h) + payload.len()
    }

    #[test]
    fn every_entry_fits_max_payload() {
        let max = 1 << 20;
        let mut x: u64 = 88172645463325252;
        let random: Vec<u8> = (0..max)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut small = HeaderMap::new();
        small.insert(headers::ID, "evt-1");
        small.insert(headers::CONTENT_TYPE, "application/json");
        let mut huge = small.clone();
        huge.insert("x-padding", "p".repeat(max - 2000).as_str());
        let cases: Vec<(&str, &HeaderMap, Vec<u8>, PayloadStorage)> = vec![
            ("small", &small, b"{}".to_vec(), PayloadStorage::Copied),
            (
                "compressible, at the limit",
                &small,
                vec![b'a'; max - 100],
                PayloadStorage::Compressed,
            ),
            (
                "random, at the limit",
                &small,
                random[..max - 100].to_vec(),
                PayloadStorage::Referenced,
            ),
            (
                "headers near the limit",
                &huge,
                random[..1000].to_vec(),
                PayloadStorage::Copied,
            ),
        ];
        for (what, h, payload, storage) in cases {
            let (entry, stored) = entry(
                &failed(h, payload.clone()),
                &DeadLetterReason::Poison,
                &"e".repeat(5000),
                max,
            );
            assert!(
                size(&entry, &stored) <= max,
                "{what}: {}",
                size(&entry, &stored)
            );
            let letter = DeadLetter::from_parts(1, Some(&entry), stored);
            assert_eq!(letter.payload_storage, storage, "{what}");
            if storage != PayloadStorage::Referenced {
                assert!(letter.payload == payload, "{what}: payload read back");
            }
            assert_eq!(letter.event_id.as_deref(), Some("evt-1"), "{what}");
        }
    }

    #[test]
    fn every_entry_fits_the_header_block_a_stream_stores() {
        // Stored in its stream with headers just under 64 KiB: the entry adds its own.
        let mut near = HeaderMap::new();
        near.insert(headers::ID, "evt-1");
        near.insert("Nats-Expected-Stream", "IDENTITY");
        let pad = MAX_HEADERS - wire_size(&near) - "x-padding: \r\n".len();
        near.insert("x-padding", "p".repeat(pad).as_str());
        assert_eq!(wire_size(&near), MAX_HEADERS);
        // An id that alone nearly fills it.
        let mut long_id = HeaderMap::new();
        long_id.insert(headers::ID, "i".repeat(MAX_HEADERS - 100).as_str());
        for (what, h, id) in [
            ("headers at 64 KiB", &near, Some("evt-1")),
            ("a 64 KiB event id", &long_id, None),
        ] {
            let (entry, stored) = entry(
                &failed(h, b"{}".to_vec()),
                &DeadLetterReason::Poison,
                &"e".repeat(5000),
                1 << 20,
            );
            assert!(
                wire_size(&entry) <= MAX_HEADERS,
                "{what}: {}",
                wire_size(&entry)
            );
            assert_eq!(entry.get(HEADERS_OMITTED).map(|v| v.as_str()), Some("true"));
            let letter = DeadLetter::from_parts(1, Some(&entry), stored);
            assert_eq!(letter.event_id.as_deref(), id, "{what}");
            assert_eq!(&letter.payload[..], b"{}", "{what}");
        }
    }

    #[test]
    fn header_blocks_keep_every_value_and_survive_what_clients_refuse() {
        let h = parse_headers(
            b"NATS/1.0\r\nce-id: a\r\nce-id:  b \r\nBad Name: x\r\nx-bin: \xff!\r\nno-colon\r\n\r\n",
        );
        let all =
            |n: &str| -> Vec<String> { h.get_all(n).map(|v| v.as_str().to_string()).collect() };
        assert_eq!(all("ce-id"), ["a", "b"]);
        assert_eq!(all("Bad%20Name"), ["x"]);
        assert_eq!(all("x-bin"), ["\u{fffd}!"]);
        assert_eq!(all("no-colon"), [""]);
    }

    #[test]
    fn reasons_round_trip() {
        for r in ["rejected", "poison", "max-deliver", "later"] {
            assert_eq!(r.parse::<DeadLetterReason>().unwrap().as_str(), r);
        }
    }
}
