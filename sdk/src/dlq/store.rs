//! Writing and reading dead-letter entries: the reason, the entry a failed message becomes
//! (headers stored aside, the payload compressed or referenced when it does not fit), and the
//! original a reference points to. A leaf of `dlq`: the consumer, the sweeper and
//! [`DeadLetters`](super::DeadLetters) all use it.

use std::fmt;
use std::str::FromStr;

use async_nats::HeaderMap;
use async_nats::jetstream::response::Response;
use async_nats::jetstream::{self, ErrorCode};
use bytes::Bytes;
use chrono::{SecondsFormat, Utc};

use crate::client::Client;
use crate::error::{DeadLetterError, DeadLetterErrorKind};
use crate::topology::DLQ_PREFIX;
use crate::wire::headers::{self, wire_size};

/// Why an event was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// The handler rejected it ([`HandlerError::reject`](crate::consume::HandlerError::reject)).
    Rejected,
    /// It could not be decoded: not JSON, not of the schema's shape, unknown version or type,
    /// unsupported content type. Never retried.
    Poison,
    /// Its last allowed delivery failed, or a consumer stopped during it (found by the
    /// [`Sweeper`](super::Sweeper)).
    MaxDeliver,
    /// Its `ce-source` names a service that signs its events, and it is unsigned or its
    /// signature does not verify ([`crate::wire::signing`]). Never handled.
    Forged,
    /// A reason written by a newer eventhub.
    Other(String),
}

impl DeadLetterReason {
    /// The header value: `rejected`, `poison`, `max-deliver`, `forged`.
    pub fn as_str(&self) -> &str {
        match self {
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::Poison => "poison",
            DeadLetterReason::MaxDeliver => "max-deliver",
            DeadLetterReason::Forged => "forged",
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
            "forged" => DeadLetterReason::Forged,
            other => DeadLetterReason::Other(other.to_string()),
        })
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Prefix under which an entry keeps original headers the server would act on (`Nats-*`) or
/// that are named like eventhub's dead-letter headers: `eventhub-dlq-original-<name>`.
pub const ORIGINAL_HEADER_PREFIX: &str = "eventhub-dlq-original-";

pub(super) const PAYLOAD_HEADER: &str = headers::DLQ_PAYLOAD;
/// Header of an entry whose original headers did not fit (only the ones eventhub reads are
/// kept; the rest are in the original message).
pub(super) const HEADERS_OMITTED: &str = "eventhub-dlq-headers-omitted";
/// Room kept below `max_payload` for what the size estimate may miss.
pub(super) const SIZE_MARGIN: usize = 256;
/// The largest header block a stream stores (nats-server refuses more with error 10097,
/// whatever `max_payload` is): a message stored with headers near it would not fit in a dead
/// letter or a replay that adds its own.
pub(super) const MAX_HEADERS: usize = 65_535;

/// Whether the server acts on a header of this name (`Nats-Expected-Stream`, `Nats-TTL`…): it
/// must not reach the DLQ stream, or a replay's stream, as it was.
pub(crate) fn server_acts_on(name: &str) -> bool {
    name.len() >= 5 && name.as_bytes()[..5].eq_ignore_ascii_case(b"nats-")
}

/// Whether an original header must be stored aside under [`ORIGINAL_HEADER_PREFIX`].
fn stored_aside(name: &str) -> bool {
    server_acts_on(name) || name.to_ascii_lowercase().starts_with("eventhub-dlq-")
}

fn deflate(payload: &[u8]) -> Bytes {
    use std::io::Write;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(payload);
    encoder.finish().unwrap_or_default().into()
}

pub(super) fn inflate(compressed: &[u8]) -> Option<Bytes> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(compressed)
        .read_to_end(&mut out)
        .ok()?;
    Some(out.into())
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
    let (h, payload) = entry(failed, reason, error, client.max_payload());
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
        .publish_with_headers(subject, h, payload)
        .await
        .map_err(|e| fail(&e))?
        .await
        .map_err(|e| fail(&e))?;
    Ok(ack.sequence)
}

/// The headers and payload of the dead letter of `failed`, within `max_payload`.
pub(super) fn entry(
    failed: &Failed<'_>,
    reason: &DeadLetterReason,
    error: &str,
    max_payload: usize,
) -> (HeaderMap, Bytes) {
    let mut h = HeaderMap::new();
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
    let own = wire_size(&h);
    let budget = max_payload.saturating_sub(SIZE_MARGIN);
    // The original's headers, with those the server would act on stored aside.
    let mut originals = HeaderMap::new();
    if let Some(original) = failed.headers {
        for (name, values) in original.iter() {
            let name: &str = name.as_ref();
            let stored = if stored_aside(name) {
                format!("{ORIGINAL_HEADER_PREFIX}{name}")
            } else {
                name.to_string()
            };
            for v in values {
                originals.append(stored.as_str(), v.as_str());
            }
        }
    }
    let mut headers_size = own + wire_size(&originals) - wire_size(&HeaderMap::new());
    let header_budget = budget.min(MAX_HEADERS - SIZE_MARGIN);
    if headers_size > header_budget {
        // Only the original's headers eventhub reads are kept (if even they fit); the rest
        // stay in the original.
        let mut kept = HeaderMap::new();
        kept.insert(HEADERS_OMITTED, "true");
        for name in [headers::ID, headers::TYPE, headers::CONTENT_TYPE] {
            if let Some(v) = originals.get(name) {
                let mut with = kept.clone();
                with.insert(name, v.as_str());
                if own + wire_size(&with) - wire_size(&HeaderMap::new()) <= header_budget {
                    kept = with;
                }
            }
        }
        originals = kept;
        headers_size = own + wire_size(&originals) - wire_size(&HeaderMap::new());
    }
    for (name, values) in originals.iter() {
        for v in values {
            h.append(AsRef::<str>::as_ref(name), v.as_str());
        }
    }
    let payload = if headers_size + failed.payload.len() <= budget {
        failed.payload.clone()
    } else {
        let compressed = deflate(&failed.payload);
        let marker = PAYLOAD_HEADER.len() + 2 + "reference".len() + 2;
        if headers_size + marker + compressed.len() <= budget {
            h.insert(PAYLOAD_HEADER, "deflate");
            compressed
        } else {
            h.insert(PAYLOAD_HEADER, "reference");
            Bytes::new()
        }
    };
    (h, payload)
}

/// A header value holds one line: control characters become spaces, and it is cut at 2 KiB.
pub(super) fn header_value(s: &str) -> String {
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

/// A stored message, read by [`read_original`].
#[derive(Debug)]
pub(crate) struct Original {
    pub(crate) subject: String,
    pub(crate) headers: HeaderMap,
    pub(crate) payload: Bytes,
}

/// Reads message `sequence` of `stream` through the stream's message-get API; `None` when it
/// is no longer there. The header block is parsed here ([`parse_headers`]), not by async-nats'
/// `get_raw_message`, which keeps one value per name (a repeated `ce-id` or `content-type`
/// would lose all but its last, and a replay would be another event) and refuses blocks other
/// clients can store (a name with a space, a value that is not UTF-8).
pub(crate) async fn read_original(
    client: &Client,
    stream: &str,
    sequence: u64,
) -> Result<Option<Original>, String> {
    use base64::Engine;
    #[derive(serde::Deserialize)]
    struct Got {
        message: jetstream::stream::RawMessage,
    }
    let response: Response<Got> = client
        .jetstream()
        .request(
            format!("STREAM.MSG.GET.{stream}"),
            &serde_json::json!({ "seq": sequence }),
        )
        .await
        .map_err(|e| e.to_string())?;
    let raw = match response {
        Response::Ok(got) => got.message,
        Response::Err { error } if error.error_code() == ErrorCode::NO_MESSAGE_FOUND => {
            return Ok(None);
        }
        Response::Err { error } => return Err(error.to_string()),
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64.decode(&raw.payload).map_err(|e| e.to_string())?;
    let headers = match raw.headers.as_deref() {
        Some(h) if !h.is_empty() => parse_headers(&b64.decode(h).map_err(|e| e.to_string())?),
        _ => HeaderMap::new(),
    };
    Ok(Some(Original {
        subject: raw.subject,
        headers,
        payload: payload.into(),
    }))
}

/// A stored header block (`NATS/1.0\r\n`, `Name: value\r\n`…) as headers, every value kept
/// in order. What no NATS header can hold is made readable rather than refused: bytes that are
/// not UTF-8 become U+FFFD, and a name with bytes outside `!`..`~` (or a colon) has them
/// percent-escaped (`Bad%20Name`).
pub(super) fn parse_headers(block: &[u8]) -> HeaderMap {
    let text = String::from_utf8_lossy(block);
    let mut headers = HeaderMap::new();
    let mut last: Option<(String, String)> = None;
    let flush = |h: &mut HeaderMap, entry: Option<(String, String)>| {
        if let Some((name, value)) = entry {
            h.append(name.as_str(), value.trim());
        }
    };
    for line in text.split("\r\n").skip(1) {
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // A continuation of the previous value (as async-nats reads it).
            if let Some((_, value)) = &mut last {
                value.push_str(line);
                continue;
            }
        }
        flush(&mut headers, last.take());
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let mut escaped = String::with_capacity(name.len());
        for c in name.chars() {
            if c.is_ascii_graphic() && c != ':' {
                escaped.push(c);
            } else {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    escaped.push_str(&format!("%{b:02X}"));
                }
            }
        }
        if escaped.is_empty() {
            escaped.push_str("%00");
        }
        // Only CR LF ends a line; a lone CR or LF cannot be in a header value.
        let value = value.replace(['\r', '\n'], " ");
        last = Some((escaped, value));
    }
    flush(&mut headers, last);
    headers
}
