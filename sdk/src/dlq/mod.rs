//! The dead-letter queue: events a consumer could not handle, kept with why, for inspection
//! and replay.
//!
//! Entries live in the stream [`DLQ_STREAM`] (limits retention, file storage, 90 days) on
//! `dlq.<consumer>.<original subject>`, e.g. `dlq.profile__user_created.events.user.created.v2`.
//! An entry is the original message — payload and headers unchanged — plus `eventhub-dlq-*`
//! headers: reason, error, deliveries, original stream, sequence and subject, consumer,
//! failed-at. Its `Nats-Msg-Id` is `dlq:<stream>:<sequence>:<consumer>`, so the consumer and the
//! [`Sweeper`] never store the same failure twice.
//!
//! An entry's id is its sequence in [`DLQ_STREAM`].

mod sweeper;

use std::fmt;
use std::str::FromStr;

use async_nats::HeaderMap;
use async_nats::jetstream::stream::{DeleteMessageErrorKind, LastRawMessageErrorKind};
use async_nats::jetstream::{self, ErrorCode, consumer};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;

use crate::client::Client;
use crate::envelope::headers;
use crate::error::{DeadLetterError, DeadLetterErrorKind};
use crate::event::parse_subject;
use crate::topology::{DLQ_PREFIX, DLQ_STREAM};

pub use sweeper::{SWEEPER_DURABLE, Sweeper, SweeperHandle, SweeperStats};

/// Why an event was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// The handler rejected it ([`HandlerError::reject`](crate::HandlerError::reject)).
    Rejected,
    /// It could not be decoded: not JSON, not of the schema's shape, unknown version or type,
    /// unsupported content type. Never retried.
    Poison,
    /// Its last allowed delivery failed, or a consumer stopped during it (found by the
    /// [`Sweeper`]).
    MaxDeliver,
    /// A reason written by a newer eventhub.
    Other(String),
}

impl DeadLetterReason {
    /// The header value: `rejected`, `poison`, `max-deliver`.
    pub fn as_str(&self) -> &str {
        match self {
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::Poison => "poison",
            DeadLetterReason::MaxDeliver => "max-deliver",
            DeadLetterReason::Other(s) => s,
        }
    }
}

impl FromStr for DeadLetterReason {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "rejected" => DeadLetterReason::Rejected,
            "poison" => DeadLetterReason::Poison,
            "max-deliver" => DeadLetterReason::MaxDeliver,
            other => DeadLetterReason::Other(other.to_string()),
        })
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// The original headers (without the `eventhub-dlq-*` ones).
    pub headers: HeaderMap,
    /// The original payload, unchanged.
    pub payload: Bytes,
}

/// Which entries [`DeadLetters::list`] returns. Empty: all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
            out.push(DeadLetter::from_parts(
                seq,
                message.headers.as_ref(),
                message.payload.clone(),
            ));
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
        let stream = self.stream().await?;
        match stream.get_raw_message(id).await {
            Ok(m) => Ok(DeadLetter::from_parts(id, Some(&m.headers), m.payload)),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => {
                Err(not_found(id))
            }
            Err(e) => Err(DeadLetterError::with_source(
                DeadLetterErrorKind::Unreachable,
                format!("cannot read dead letter {id}"),
                e,
            )),
        }
    }

    /// Publishes entry `id` again to its original subject — same payload and headers, a new
    /// `Nats-Msg-Id` (`<event id>:replay:<id>`), `eventhub-replay-of: EVENTHUB_DLQ:<id>` and
    /// `eventhub-replay-for: <consumer>` so that only the consumer that failed handles it —
    /// and deletes the entry once the stream has acknowledged the publish. If the publish
    /// fails, the entry stays.
    pub async fn replay(&self, id: u64) -> Result<Replayed, DeadLetterError> {
        let entry = self.get(id).await?;
        if entry.subject.is_empty() || entry.consumer.is_empty() {
            return Err(DeadLetterError::new(
                DeadLetterErrorKind::Corrupt,
                format!(
                    "dead letter {id} lacks its original subject or consumer headers \
                     ({}, {}); it was not written by eventhub and cannot be replayed",
                    headers::DLQ_SUBJECT,
                    headers::DLQ_CONSUMER
                ),
            ));
        }
        let mut h = entry.headers.clone();
        let original_id = entry
            .event_id
            .clone()
            .unwrap_or_else(|| format!("{}:{}", entry.stream, entry.sequence));
        h.insert(
            headers::MSG_ID,
            format!("{original_id}:replay:{id}").as_str(),
        );
        h.insert(headers::REPLAY_OF, format!("{DLQ_STREAM}:{id}").as_str());
        h.insert(headers::REPLAY_FOR, entry.consumer.as_str());
        let replay_error = |e: &dyn fmt::Display| {
            DeadLetterError::new(
                DeadLetterErrorKind::Replay,
                format!(
                    "replaying dead letter {id} to `{}` failed; the entry is kept: {e}",
                    entry.subject
                ),
            )
        };
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
        })
    }

    /// Deletes entry `id`.
    pub async fn delete(&self, id: u64) -> Result<(), DeadLetterError> {
        let stream = self.stream().await?;
        match stream.delete_message(id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(not_found(id)),
            Err(e)
                if matches!(
                    e.kind(),
                    DeleteMessageErrorKind::JetStream(ref j)
                        if j.error_code() == ErrorCode::NO_MESSAGE_FOUND
                            || j.error_code() == ErrorCode::SEQUENCE_NOT_FOUND
                            // The server says "no message found" under its generic code.
                            || (j.error_code() == ErrorCode::STREAM_MESSAGE_DELETE_FAILED
                                && j.to_string().contains("no message found"))
                ) =>
            {
                Err(not_found(id))
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
        format!("no dead letter with id {id} in {DLQ_STREAM} (already replayed or deleted?)"),
    )
}

impl DeadLetter {
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
                if name.to_ascii_lowercase().starts_with("eventhub-dlq-") {
                    continue;
                }
                for v in values {
                    original.append(name, v.as_str());
                }
            }
        }
        let event_id = Some(get(headers::ID)).filter(|s| !s.is_empty());
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
        }
    }
}

/// A message that failed, as the dead-letter writer needs it.
pub(crate) struct Failed<'a> {
    pub(crate) subject: &'a str,
    pub(crate) headers: Option<&'a HeaderMap>,
    pub(crate) payload: Bytes,
    pub(crate) stream: &'a str,
    pub(crate) sequence: u64,
    pub(crate) consumer: &'a str,
    pub(crate) deliveries: u64,
}

/// Stores a dead letter and waits for the stream's ack. Returns the entry's id.
pub(crate) async fn write(
    client: &Client,
    failed: &Failed<'_>,
    reason: &DeadLetterReason,
    error: &str,
) -> Result<u64, DeadLetterError> {
    let mut h = failed.headers.cloned().unwrap_or_default();
    h.insert(headers::DLQ_REASON, reason.as_str());
    h.insert(headers::DLQ_ERROR, header_value(error).as_str());
    h.insert(
        headers::DLQ_DELIVERIES,
        failed.deliveries.to_string().as_str(),
    );
    h.insert(headers::DLQ_STREAM, failed.stream);
    h.insert(headers::DLQ_SEQUENCE, failed.sequence.to_string().as_str());
    h.insert(headers::DLQ_SUBJECT, failed.subject);
    h.insert(headers::DLQ_CONSUMER, failed.consumer);
    h.insert(
        headers::DLQ_FAILED_AT,
        Utc::now()
            .to_rfc3339_opts(SecondsFormat::Micros, true)
            .as_str(),
    );
    h.insert(
        headers::MSG_ID,
        format!(
            "dlq:{}:{}:{}",
            failed.stream, failed.sequence, failed.consumer
        )
        .as_str(),
    );
    let subject = format!("{DLQ_PREFIX}.{}.{}", failed.consumer, failed.subject);
    let fail = |e: &dyn fmt::Display| {
        DeadLetterError::new(
            DeadLetterErrorKind::Unreachable,
            format!(
                "cannot store the dead letter of {} #{} ({}) for consumer {}: {e}",
                failed.stream, failed.sequence, failed.subject, failed.consumer
            ),
        )
    };
    let ack = client
        .jetstream()
        .publish_with_headers(subject, h, failed.payload.clone())
        .await
        .map_err(|e| fail(&e))?
        .await
        .map_err(|e| fail(&e))?;
    Ok(ack.sequence)
}

/// A header value holds one line: control characters become spaces, and it is cut at 2 KiB.
fn header_value(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > 2048 {
        let mut cut = 2048;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn reasons_round_trip() {
        for r in ["rejected", "poison", "max-deliver", "later"] {
            assert_eq!(r.parse::<DeadLetterReason>().unwrap().as_str(), r);
        }
    }
}
