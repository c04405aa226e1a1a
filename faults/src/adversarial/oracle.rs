//! The oracle: what must become of an input, decided before it is sent, from what the
//! server, the schemas and the wire format say — not from what the SDK does.
//!
//! Three questions, in the order a message meets them:
//!
//! 1. Does the publish go through ([`server`])? The client refuses what exceeds the server's
//!    `max_payload`; the server refuses subjects no stream captures and headers it acts on whose
//!    precondition fails or whose feature the stream does not enable (`Nats-Expected-*`,
//!    `Nats-Rollup`, `Nats-TTL`, `Nats-Schedule*`, `Nats-Batch-Id`, `Nats-Incr`…), and drops a
//!    repeated `Nats-Msg-Id` as a duplicate.
//! 2. Once stored, is it an event a `user.created` consumer can handle ([`consume`])? The
//!    content type (media type compared case-insensitively, parameters ignored), then the data
//!    against the schema of the subject's version.
//! 3. What is its id ([`event_id`]) — which copies an idempotent consumer handles once.

use std::collections::{HashMap, HashSet};

/// The stream that captures `user.created`.
pub(crate) const STREAM: &str = "IDENTITY";

/// The largest header block a JetStream stream stores (nats-server: `math.MaxUint16`).
pub(crate) const MAX_HEADERS: usize = 65_535;

/// Why a publish is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The client's check against the server's `max_payload` (headers plus payload).
    TooLarge,
    /// No stream captures the subject (the server answers "no responders").
    OutsideCatalog,
    /// The stream refuses it with one of these JetStream error codes.
    Code(Vec<u16>),
}

/// What the server does with a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Publish {
    Stored,
    /// Dropped as a copy of an earlier `Nats-Msg-Id` within the duplicate window (the publish
    /// succeeds and says so).
    Duplicate,
    Refused(Refusal),
}

/// What the stream remembers that preconditions are checked against.
#[derive(Debug, Default, Clone)]
pub(crate) struct StreamState {
    pub(crate) last_sequence: u64,
    pub(crate) last_by_subject: HashMap<String, u64>,
    /// The `Nats-Msg-Id` of the last message stored (empty when it had none).
    pub(crate) last_msg_id: String,
    pub(crate) msg_ids: HashSet<String>,
}

impl StreamState {
    /// Records a message the stream stored.
    pub(crate) fn stored(&mut self, subject: &str, sequence: u64, headers: &[(String, String)]) {
        self.last_sequence = sequence;
        self.last_by_subject.insert(subject.to_string(), sequence);
        let id = server_value(headers, "Nats-Msg-Id").unwrap_or_default();
        if !id.is_empty() {
            self.msg_ids.insert(id.to_string());
        }
        self.last_msg_id = id.to_string();
    }
}

/// The value the server reads for header `name`: the first line whose name is exactly `name`
/// (case-sensitive, as nats-server looks them up), spaces after the colon skipped.
fn server_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.trim_start_matches(' '))
}

/// Present with a non-empty value (the server treats an empty value as absent).
fn set<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    server_value(headers, name).filter(|v| !v.is_empty())
}

/// Bytes of the message against `max_payload`: the header block as the client writes it
/// (`NATS/1.0\r\n`, `name: value\r\n` each, `\r\n`; none when there are no headers) plus the
/// payload.
pub(crate) fn wire_size(headers: &[(String, String)], payload: usize) -> usize {
    if headers.is_empty() {
        return payload;
    }
    let block: usize = headers.iter().map(|(n, v)| n.len() + 2 + v.len() + 2).sum();
    "NATS/1.0\r\n\r\n".len() + block + payload
}

/// nats-server's `parseInt64`: decimal digits only, else -1.
fn parse_int(s: &str) -> i64 {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 18 {
        return -1;
    }
    s.parse().unwrap_or(-1)
}

/// A sequence header's value as the server reads it (a parse failure reads as `u64::MAX`).
fn sequence(s: &str) -> u64 {
    parse_int(s) as u64
}

/// Go's `time.ParseDuration`, for the values the generator uses: `<digits><unit>` pairs.
fn go_duration_seconds(s: &str) -> Option<f64> {
    if s == "0" {
        return Some(0.0);
    }
    let mut rest = s;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic() || *b == 0xc2 || *b == 0xb5)
            .count();
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    Some(total)
}

/// How the server reads a `Nats-TTL` value: `Ok(seconds)` (0: none) or `Err` (invalid).
fn ttl(value: &str) -> Result<i64, ()> {
    if value.eq_ignore_ascii_case("never") {
        return Ok(-1);
    }
    if let Some(seconds) = go_duration_seconds(value) {
        return if seconds < 1.0 {
            Err(())
        } else {
            Ok(seconds as i64)
        };
    }
    match parse_int(value) {
        t if t < 0 => Err(()),
        t => Ok(t),
    }
}

/// What the server does with a publish of `headers` and `size` payload bytes on `subject`, to
/// a stream that enables none of rollups, per-message TTLs, schedules, counters or atomic
/// batches (IDENTITY as provisioned). `captured` tells which subjects a stream captures.
pub(crate) fn server(
    state: &StreamState,
    subject: &str,
    headers: &[(String, String)],
    size: usize,
    max_payload: usize,
    captured: impl Fn(&str) -> bool,
) -> Publish {
    use Publish::Refused;
    // Headers past what a stream stores are refused too; which check speaks first when
    // another fails as well is the server's business.
    let too_many_headers = wire_size(headers, 0) > MAX_HEADERS;
    let code = |c: &[u16]| {
        let mut codes = c.to_vec();
        if too_many_headers {
            codes.push(10097);
        }
        Refused(Refusal::Code(codes))
    };
    if wire_size(headers, size) > max_payload {
        return Refused(Refusal::TooLarge);
    }
    if !captured(subject) {
        return Refused(Refusal::OutsideCatalog);
    }
    // An atomic batch goes another way, refused as a whole where not enabled.
    if set(headers, "Nats-Batch-Id").is_some() {
        return code(&[10174]);
    }
    if set(headers, "Nats-Incr").is_some() {
        // Invalid, or counters not enabled.
        return code(&[10171, 10168]);
    }
    if set(headers, "Nats-Expected-Stream").is_some_and(|s| s != STREAM) {
        return code(&[10060]);
    }
    let ttl = set(headers, "Nats-TTL").map(ttl);
    if matches!(ttl, Some(Ok(t)) if t != 0) {
        return code(&[10166]);
    }
    if let Some(expected) = set(headers, "Nats-Expected-Last-Subject-Sequence") {
        let on = set(headers, "Nats-Expected-Last-Subject-Sequence-Subject").unwrap_or(subject);
        let last = state.last_by_subject.get(on).copied().unwrap_or(0);
        if sequence(expected) != last {
            return code(&[10071]);
        }
    } else if set(headers, "Nats-Expected-Last-Subject-Sequence-Subject").is_some() {
        return code(&[10193]);
    }
    if let Some(expected) = set(headers, "Nats-Expected-Last-Sequence")
        && sequence(expected) != state.last_sequence
    {
        return code(&[10071]);
    }
    // Schedules: any schedule, or a time zone that does not load, is refused where schedules
    // are not enabled ("UTC" loads, and without a schedule does nothing).
    let zone = server_value(headers, "Nats-Schedule-Time-Zone");
    if zone.is_some_and(|z| z != "UTC") || set(headers, "Nats-Schedule").is_some() {
        return code(&[10188]);
    }
    if set(headers, "Nats-Schedule-Next").is_some() || set(headers, "Nats-Scheduler").is_some() {
        return code(&[10212, 10188]);
    }
    if set(headers, "Nats-Stream-Source").is_some() {
        return code(&[10227]);
    }
    if let Some(id) = set(headers, "Nats-Msg-Id")
        && state.msg_ids.contains(id)
    {
        return Publish::Duplicate;
    }
    if let Some(expected) = set(headers, "Nats-Expected-Last-Msg-Id")
        && expected != state.last_msg_id
    {
        return code(&[10070]);
    }
    if set(headers, "Nats-Rollup").is_some() {
        return code(&[10111]);
    }
    if too_many_headers {
        return code(&[]);
    }
    if matches!(ttl, Some(Err(()))) {
        return code(&[10165]);
    }
    Publish::Stored
}

/// The headers as a consumer receives them: each value trimmed (the client trims), names as
/// sent.
pub(crate) fn received(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.clone(), v.trim().to_string()))
        .collect()
}

/// The first received value of header `name` (names are case-sensitive in NATS).
pub(crate) fn first<'a>(received: &'a [(String, String)], name: &str) -> Option<&'a str> {
    received
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The event id, as idempotency counts copies: `ce-id`, else `Nats-Msg-Id`; `None` when the
/// message has neither (or an empty one): then it is an event of its own (`stream:sequence`).
pub(crate) fn event_id(received: &[(String, String)]) -> Option<String> {
    match first(received, "ce-id").or_else(|| first(received, "Nats-Msg-Id")) {
        Some(id) if !id.is_empty() => Some(id.to_string()),
        _ => None,
    }
}

/// How a payload was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// JSON text whose validity per version the generator knows.
    Json,
    /// The protobuf encoding of a valid event of the subject's version.
    Protobuf,
    /// Arbitrary bytes.
    Bytes,
}

/// What a schema version says of some JSON data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Valid.
    None,
    /// These properties break the schema (each is named in the error: `/email`).
    Fields(Vec<String>),
    /// These required properties are missing.
    Missing(Vec<String>),
    /// Not an object.
    NotObject,
}

/// An input's payload and what the generator knows of it.
#[derive(Debug, Clone)]
pub(crate) struct Data {
    pub(crate) bytes: Vec<u8>,
    pub(crate) encoding: Encoding,
    /// What schema v1 and v2 say of it (JSON only).
    pub(crate) v1: Fault,
    pub(crate) v2: Fault,
}

/// How a consumer must read a stored message: `Ok` (valid: the handler runs) or the groups of
/// words its dead-letter error must contain (one of each group).
pub(crate) type Reading = Result<(), Vec<Vec<String>>>;

/// The media type a `content-type` value names (RFC 9110: before any `;`, optional
/// whitespace around it, case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Media {
    Json,
    Protobuf,
    Other(String),
}

pub(crate) fn media(content_type: Option<&str>) -> Media {
    let Some(value) = content_type else {
        return Media::Json;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim_matches(|c| c == ' ' || c == '\t');
    if essence.eq_ignore_ascii_case("application/json") {
        Media::Json
    } else if essence.eq_ignore_ascii_case("application/protobuf")
        || essence.eq_ignore_ascii_case("application/x-protobuf")
    {
        Media::Protobuf
    } else {
        Media::Other(essence.to_string())
    }
}

fn words(groups: &[&[&str]]) -> Vec<Vec<String>> {
    groups
        .iter()
        .map(|g| g.iter().map(|s| s.to_string()).collect())
        .collect()
}

/// What a consumer of the `user.created` family must do with `data` stored on version
/// `version`'s subject with these received headers.
pub(crate) fn consume(version: u32, received: &[(String, String)], data: &Data) -> Reading {
    let media = media(first(received, "content-type"));
    let json = |data: &Data| -> Reading {
        let fault = match data.encoding {
            Encoding::Json => {
                if version == 1 {
                    &data.v1
                } else {
                    &data.v2
                }
            }
            Encoding::Protobuf | Encoding::Bytes => {
                return match serde_json::from_slice::<serde_json::Value>(&data.bytes) {
                    Err(_) => Err(words(&[&["not valid JSON"]])),
                    Ok(v) if !v.is_object() => Err(words(&[&["(type)"]])),
                    // An object by chance: it lacks the required properties.
                    Ok(_) => Err(words(&[&["(required)", "(type)", "(format)"]])),
                };
            }
        };
        schema(fault)
    };
    match media {
        Media::Other(essence) => {
            // The start of what it names (a long one is cut in the error).
            let named: String = one_line(&essence).chars().take(100).collect();
            Err(vec![
                vec![format!("content-type `{named}")],
                vec!["is not supported".to_string()],
            ])
        }
        Media::Json => json(data),
        Media::Protobuf => match data.encoding {
            Encoding::Protobuf => Ok(()),
            // Whatever else the bytes are, they are no valid protobuf of a valid event.
            Encoding::Json | Encoding::Bytes => {
                Err(words(&[&["protobuf", "(required)", "(format)", "(type)"]]))
            }
        },
    }
}

fn schema(fault: &Fault) -> Reading {
    match fault {
        Fault::None => Ok(()),
        Fault::Fields(fields) => Err(fields.iter().map(|f| vec![format!("at /{f}:")]).collect()),
        Fault::Missing(fields) => {
            let mut w = vec![vec!["(required)".to_string()]];
            w.extend(fields.iter().map(|f| vec![format!("\"{f}\"")]));
            Err(w)
        }
        Fault::NotObject => Err(words(&[&["(type)"]])),
    }
}

/// A text as a dead-letter error header holds it: control characters become spaces.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Whether a dead-letter `error` contains the words a reading asks for. An error cut at its
/// size limit (ending in `…`) must name at least the first fault.
pub(crate) fn explains(error: &str, expected: &[Vec<String>]) -> bool {
    let group = |g: &Vec<String>| g.iter().any(|w| error.contains(w.as_str()));
    if error.ends_with('…') {
        expected.iter().any(group)
    } else {
        expected.iter().all(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn verdict(state: &StreamState, pairs: &[(&str, &str)]) -> Publish {
        server(
            state,
            "events.user.created.v2",
            &h(pairs),
            10,
            1 << 20,
            |s| s.starts_with("events.user.created.v"),
        )
    }

    #[test]
    fn preconditions_hold_or_refuse() {
        let mut state = StreamState::default();
        state.stored("events.user.created.v2", 7, &h(&[("Nats-Msg-Id", "m-7")]));
        assert_eq!(
            verdict(&state, &[("Nats-Expected-Stream", "IDENTITY")]),
            Publish::Stored
        );
        assert_eq!(
            verdict(&state, &[("Nats-Expected-Stream", "ORDERS")]),
            Publish::Refused(Refusal::Code(vec![10060]))
        );
        assert_eq!(
            verdict(&state, &[("nats-expected-stream", "ORDERS")]),
            Publish::Stored
        );
        assert_eq!(
            verdict(&state, &[("Nats-Expected-Last-Sequence", "7")]),
            Publish::Stored
        );
        assert_eq!(
            verdict(&state, &[("Nats-Expected-Last-Sequence", "x")]),
            Publish::Refused(Refusal::Code(vec![10071]))
        );
        assert_eq!(
            verdict(&state, &[("Nats-Expected-Last-Msg-Id", "m-7")]),
            Publish::Stored
        );
        assert_eq!(
            verdict(&state, &[("Nats-Msg-Id", "m-7")]),
            Publish::Duplicate
        );
        assert_eq!(verdict(&state, &[("Nats-TTL", "")]), Publish::Stored);
        for ttl in ["5s", "never", "60"] {
            assert_eq!(
                verdict(&state, &[("Nats-TTL", ttl)]),
                Publish::Refused(Refusal::Code(vec![10166])),
                "{ttl}"
            );
        }
        for ttl in ["500ms", "abc", "0"] {
            assert_eq!(
                verdict(&state, &[("Nats-TTL", ttl)]),
                Publish::Refused(Refusal::Code(vec![10165])),
                "{ttl}"
            );
        }
        assert_eq!(
            verdict(&state, &[("Nats-Schedule-Time-Zone", "UTC")]),
            Publish::Stored
        );
        assert_eq!(
            verdict(&state, &[("Nats-Schedule-Target", "x")]),
            Publish::Stored
        );
    }

    #[test]
    fn sizes_count_headers_as_the_client_writes_them() {
        assert_eq!(wire_size(&[], 5), 5);
        assert_eq!(wire_size(&h(&[("a", "b")]), 5), 12 + 6 + 5);
    }

    #[test]
    fn media_types_compare_case_insensitively() {
        assert_eq!(media(Some("Application/JSON; charset=utf-8")), Media::Json);
        assert_eq!(media(Some(" application/x-protobuf")), Media::Protobuf);
        assert_eq!(media(Some("text/plain")), Media::Other("text/plain".into()));
        assert_eq!(media(Some("")), Media::Other(String::new()));
        assert_eq!(media(None), Media::Json);
    }

    #[test]
    fn ids_fall_back_to_the_message_id() {
        assert_eq!(event_id(&h(&[("Nats-Msg-Id", "m")])), Some("m".into()));
        assert_eq!(
            event_id(&h(&[("ce-id", "c"), ("Nats-Msg-Id", "m")])),
            Some("c".into())
        );
        assert_eq!(event_id(&h(&[("ce-id", ""), ("Nats-Msg-Id", "m")])), None);
        assert_eq!(event_id(&h(&[("CE-ID", "c")])), None);
    }

    #[test]
    fn cut_errors_name_at_least_one_fault() {
        let want = vec![
            vec!["at /email:".to_string()],
            vec!["at /locale:".to_string()],
        ];
        assert!(explains("x: at /email: bad; at /locale: bad", &want));
        assert!(!explains("x: at /email: bad", &want));
        assert!(explains("x: at /email: bad…", &want));
    }
}
