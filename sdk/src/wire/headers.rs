//! The wire format: CloudEvents binary mode over NATS headers.
//!
//! The payload is the event data (JSON, or protobuf with `content-type: application/protobuf`);
//! its attributes travel as headers: `ce-specversion`, `ce-id`, `ce-type`, `ce-source`,
//! `ce-time`, `ce-dataschema`, `content-type`, the extensions `ce-correlationid` /
//! `ce-causationid`, and the W3C `traceparent`. `Nats-Msg-Id` carries the event id so that
//! JetStream drops a repeated publish of the same event within the stream's duplicate window.
//! Dead letters and replays add the `eventhub-*` headers below.
//!
//! What a reader can infer is left out (the lean wire format): `content-type` when JSON,
//! `ce-dataschema` when it is the type and version's default id, `ce-correlationid` when it
//! is the event id, and `ce-time` and `traceparent` when they are the ones a UUIDv7 event id
//! implies ([`time_of_id`], [`TraceContext::of_event_id`]): an event published with its default
//! id and time, outside any trace, carries neither. Readers take an absent header as that
//! value, so events of both forms read the same.

use async_nats::HeaderMap;
use chrono::{DateTime, Utc};

use super::trace::{TraceContext, uuid_v7};

/// CloudEvents spec version, always `1.0`.
pub const SPECVERSION: &str = "ce-specversion";
/// Event id (a UUIDv7: time-ordered). Also sent as `Nats-Msg-Id`.
pub const ID: &str = "ce-id";
/// Event type, e.g. `user.created`.
pub const TYPE: &str = "ce-type";
/// The service that published the event.
pub const SOURCE: &str = "ce-source";
/// When the event happened (RFC 3339). Absent when it is [`time_of_id`] of the event id.
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
/// [`TraceContext`]). Absent when it is [`TraceContext::of_event_id`] of the event id (a
/// publish that continues no trace).
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

/// A new event id: a UUIDv7 (RFC 9562), so ids sort by creation time.
///
/// Its 48 first bits are the Unix time in milliseconds; the next 12 (`rand_a`) a counter
/// that orders the ids one thread makes within one millisecond (RFC 9562 §6.2, method 1:
/// seeded at random each millisecond, below 2¹¹ so it has room to count); the last 62 bits
/// come from the thread's CSPRNG (`rand`'s `ThreadRng`, ChaCha), so nobody can guess the
/// next id of a service and take its de-duplication slot first. `Uuid::now_v7` asks the
/// kernel for its random bits on every call (a system call, about 10× the rest of the work,
/// measured in `docs/performance.md`); this asks for none.
pub fn new_event_id() -> String {
    use rand::RngCore;
    thread_local! {
        /// The millisecond of this thread's last id and the counter within it.
        static LAST: std::cell::Cell<(u64, u16)> = const { std::cell::Cell::new((0, 0)) };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    let (ms, counter) = LAST.with(|last| {
        let (ms, counter) = last.get();
        let next = if now > ms {
            (now, u16::from_be_bytes([random[0], random[1]]) & 0x07ff)
        } else if counter < 0x0fff {
            // The same millisecond (or the clock stepped back): count on.
            (ms, counter + 1)
        } else {
            // 4,096 ids in one millisecond: borrow the next one.
            (ms + 1, 0)
        };
        last.set(next);
        next
    });
    let [hi, lo] = counter.to_be_bytes();
    random[0] = hi;
    random[1] = lo;
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut text).to_owned()
}

/// The time a UUIDv7 event id holds (its first 48 bits: Unix time in milliseconds), which
/// is the event's time unless its `ce-time` says otherwise. `None` for an id that is not a
/// canonical UUIDv7 (a publisher's own id): such an event's time is its `ce-time`, else when
/// the stream stored it.
pub fn time_of_id(id: &str) -> Option<DateTime<Utc>> {
    uuid_v7(id).and_then(time_of_uuid)
}

fn time_of_uuid(uuid: uuid::Uuid) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(i64::try_from(uuid.as_u128() >> 80).ok()?)
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
    /// The headers of an event of `event_type` version `version` whose schema id is
    /// `schema_id`. What a reader can infer is left out (the lean wire format): `content-type`
    /// when JSON, `ce-dataschema` when it is the default id of the type and version,
    /// `ce-correlationid` when it equals the event id, `ce-time` and `traceparent` when they
    /// are what the event id implies. Readers take the absent header as that value, so events
    /// of both forms read the same.
    pub(crate) fn build(&self, event_type: &str, version: u32, schema_id: &str) -> HeaderMap {
        // Names are constants (no allocation or validation per event); the time is formatted
        // straight into the value it becomes.
        use names::*;
        let mut h = HeaderMap::new();
        h.insert(SPECVERSION, "1.0");
        h.insert(ID, self.id);
        h.insert(TYPE, event_type);
        h.insert(SOURCE, self.source);
        let implied = uuid_v7(self.id);
        if implied.and_then(time_of_uuid) != Some(self.time) {
            h.insert(
                TIME,
                self.time
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            );
        }
        if !is_default_schema_id(schema_id, event_type, version) {
            h.insert(DATASCHEMA, schema_id);
        }
        if self.content_type != crate::wire::codec::JSON {
            h.insert(CONTENT_TYPE, self.content_type);
        }
        if self.correlation_id != self.id {
            h.insert(CORRELATION_ID, self.correlation_id);
        }
        if let Some(c) = self.causation_id {
            h.insert(CAUSATION_ID, c);
        }
        h.insert(MSG_ID, self.id);
        if implied.map(TraceContext::of_uuid) != Some(*self.trace) {
            h.insert(TRACEPARENT, self.trace.header());
        }
        h
    }
}

/// The schema id a catalog gives an event version unless its schema sets another `$id`.
pub const DEFAULT_SCHEMA_PREFIX: &str = "urn:eventhub:schema:";

/// The schema id of `event_type` version `version` when its schema sets no `$id`:
/// `urn:eventhub:schema:<type>:v<N>`. An event without `ce-dataschema` has this one.
pub fn default_schema_id(event_type: &str, version: u32) -> String {
    format!("{DEFAULT_SCHEMA_PREFIX}{event_type}:v{version}")
}

/// Whether `schema_id` is [`default_schema_id`] (compared without formatting one).
fn is_default_schema_id(schema_id: &str, event_type: &str, version: u32) -> bool {
    schema_id
        .strip_prefix(DEFAULT_SCHEMA_PREFIX)
        .and_then(|rest| rest.strip_prefix(event_type))
        .and_then(|rest| rest.strip_prefix(":v"))
        .is_some_and(|n| !n.starts_with('0') && n.parse::<u32>() == Ok(version))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_canonical_uuid_v7_in_the_order_one_thread_makes_them() {
        let before = Utc::now() - chrono::Duration::milliseconds(1);
        // Far more than a millisecond holds: the counter runs within each one.
        let ids: Vec<String> = (0..20_000).map(|_| new_event_id()).collect();
        let after = Utc::now() + chrono::Duration::milliseconds(2);
        for pair in ids.windows(2) {
            assert!(
                pair[0] < pair[1],
                "not increasing: {} then {}",
                pair[0],
                pair[1]
            );
        }
        for id in &ids {
            let time = time_of_id(id).unwrap_or_else(|| panic!("{id} is not a canonical v7"));
            assert!(before <= time && time <= after, "{id} holds {time}");
        }
        // 62 random bits each: no two alike, also across threads.
        let others = std::thread::spawn(|| (0..20_000).map(|_| new_event_id()).collect::<Vec<_>>())
            .join()
            .expect("the other thread");
        let all: std::collections::HashSet<_> = ids.iter().chain(&others).collect();
        assert_eq!(all.len(), 40_000);
    }

    fn headers(correlation: &str, content_type: &'static str, schema_id: &str) -> HeaderMap {
        let trace = TraceContext::root();
        OutgoingHeaders {
            id: "e1",
            source: "auth",
            time: Utc::now(),
            correlation_id: correlation,
            causation_id: None,
            content_type,
            trace: &trace,
        }
        .build("user.created", 2, schema_id)
    }

    #[test]
    fn the_lean_form_leaves_out_what_a_reader_infers() {
        let lean = headers(
            "e1",
            crate::wire::codec::JSON,
            "urn:eventhub:schema:user.created:v2",
        );
        for absent in [CONTENT_TYPE, DATASCHEMA, CORRELATION_ID] {
            assert!(lean.get(absent).is_none(), "{absent} written: {lean:?}");
        }
        // `e1` is not a UUIDv7: the time and trace are written (see below).
        for present in [SPECVERSION, ID, TYPE, SOURCE, TIME, MSG_ID, TRACEPARENT] {
            assert!(lean.get(present).is_some(), "{present} missing: {lean:?}");
        }
        // What differs from the inferred value is written.
        let full = headers(
            "flow-7",
            crate::wire::codec::PROTOBUF,
            "https://schemas.example/u2",
        );
        assert_eq!(full.get(CORRELATION_ID).map(|v| v.as_str()), Some("flow-7"));
        assert_eq!(
            full.get(CONTENT_TYPE).map(|v| v.as_str()),
            Some(crate::wire::codec::PROTOBUF)
        );
        assert_eq!(
            full.get(DATASCHEMA).map(|v| v.as_str()),
            Some("https://schemas.example/u2")
        );
        assert!(wire_size(&lean) + 100 < wire_size(&full));
    }

    fn outgoing(id: &str, time: DateTime<Utc>, trace: &TraceContext) -> HeaderMap {
        OutgoingHeaders {
            id,
            source: "auth",
            time,
            correlation_id: id,
            causation_id: None,
            content_type: crate::wire::codec::JSON,
            trace,
        }
        .build("user.created", 2, "urn:eventhub:schema:user.created:v2")
    }

    #[test]
    fn a_uuid_v7_id_implies_the_time_and_the_root_trace() {
        let id = new_event_id();
        let time = time_of_id(&id).expect("a new id is a UUIDv7");
        let since = Utc::now() - time;
        assert!(
            since >= chrono::Duration::zero() && since < chrono::Duration::seconds(5),
            "{time}"
        );
        let root = TraceContext::of_event_id(&id).expect("a root trace");
        assert_eq!(root.trace_id().to_string(), id.replace('-', ""));
        assert_eq!(root.span_id().to_string(), &id.replace('-', "")[16..]);
        assert!(root.sampled());
        // Both implied: neither header is sent (the form a default publish has).
        let lean = outgoing(&id, time, &root);
        for absent in [TIME, TRACEPARENT] {
            assert!(lean.get(absent).is_none(), "{absent} written: {lean:?}");
        }
        assert_eq!(lean.iter().count(), 5, "{lean:?}");
        // Anything else is written: an explicit time (also one 1 ms off), a continued trace.
        let later = time + chrono::Duration::milliseconds(1);
        let child = root.child();
        let full = outgoing(&id, later, &child);
        assert_eq!(
            full.get(TIME).map(|v| v.as_str().to_string()),
            Some(later.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        );
        assert_eq!(
            full.get(TRACEPARENT).map(|v| v.as_str().to_string()),
            Some(child.header())
        );
        // And both always for an id that is not a canonical UUIDv7.
        for id in [
            "order-17".to_string(),
            "f47ac10b-58cc-4372-a567-0e02b2c3d479".to_string(),
            id.to_uppercase(),
            id.replace('-', ""),
            format!("urn:uuid:{id}"),
        ] {
            assert_eq!(time_of_id(&id), None, "{id}");
            assert_eq!(TraceContext::of_event_id(&id), None, "{id}");
            let h = outgoing(&id, time, &root);
            for present in [TIME, TRACEPARENT] {
                assert!(
                    h.get(present).is_some(),
                    "{present} missing for {id}: {h:?}"
                );
            }
        }
    }

    #[test]
    fn only_the_exact_default_schema_id_is_left_out() {
        assert!(is_default_schema_id(
            "urn:eventhub:schema:user.created:v2",
            "user.created",
            2
        ));
        for other in [
            "urn:eventhub:schema:user.created:v02",
            "urn:eventhub:schema:user.created:v21",
            "urn:eventhub:schema:user.created:v2x",
            "urn:eventhub:schema:user.createdx:v2",
            "urn:eventhub:schema:user:v2",
            "urn:other:user.created:v2",
        ] {
            assert!(!is_default_schema_id(other, "user.created", 2), "{other}");
        }
        assert_eq!(
            default_schema_id("user.created", 2),
            "urn:eventhub:schema:user.created:v2"
        );
    }
}
