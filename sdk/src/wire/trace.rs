//! W3C Trace Context (`traceparent`) carried in event headers, so one trace spans the services
//! an event flow crosses.
//!
//! Every published event is one span of a trace: its `traceparent` header is
//! `00-<trace id>-<span id>-<flags>` with the publish's own span id. A root publish starts a new
//! trace; a follow-up published from a handler ([`Envelope::publisher`](crate::Envelope::publisher))
//! keeps the handled event's trace id and has the handled event's span as parent;
//! [`PublishOptions::trace_parent`](crate::PublishOptions::trace_parent) continues a trace from
//! elsewhere (e.g. an incoming HTTP request's `traceparent`). The format is the one
//! OpenTelemetry propagators read and write, so services using OpenTelemetry can join the same
//! traces.

use std::fmt;

/// A W3C trace id: 16 bytes, printed as 32 lowercase hex digits. Never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(u128);

/// A W3C span (parent) id: 8 bytes, printed as 16 lowercase hex digits. Never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(u64);

impl TraceId {
    /// The id as a number.
    pub fn get(self) -> u128 {
        self.0
    }
}

impl SpanId {
    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The trace context of one event: which trace it belongs to, its span id, and the trace flags.
/// The value of the `traceparent` header ([`TraceContext::parse`], [`TraceContext::header`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: TraceId,
    span_id: SpanId,
    flags: u8,
}

/// `traceparent` flag: the caller may have recorded the trace.
const SAMPLED: u8 = 0x01;

/// Length of a version-00 `traceparent` value.
const LEN: usize = 55;

impl TraceContext {
    /// A new trace (random trace and span ids, sampled), for an event that continues none.
    pub fn root() -> Self {
        Self {
            trace_id: TraceId(nonzero(|| fastrand::u128(..))),
            span_id: SpanId(nonzero(|| fastrand::u64(..))),
            flags: SAMPLED,
        }
    }

    /// The trace a publish that continues none starts when its event id is a UUIDv7 (the
    /// default ids are): the id is the trace id, its last 64 bits the span id, sampled. The
    /// publisher then leaves `traceparent` out, and readers derive the same context from
    /// `ce-id`: one trace per flow without the header on the wire. `None` for other ids (a
    /// publisher's own id), whose events carry a random [`TraceContext::root`].
    pub fn of_event_id(id: &str) -> Option<Self> {
        uuid_v7(id).map(Self::of_uuid)
    }

    /// [`TraceContext::of_event_id`] of a UUIDv7, whose variant bits make both ids non-zero.
    pub(crate) fn of_uuid(uuid: uuid::Uuid) -> Self {
        let n = uuid.as_u128();
        Self {
            trace_id: TraceId(n),
            // The low 64 bits: the variant and 62 random bits.
            span_id: SpanId(n as u64),
            flags: SAMPLED,
        }
    }

    /// A new span in this trace (same trace id and flags, a new random span id), whose parent
    /// is this one.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: SpanId(nonzero(|| fastrand::u64(..))),
            flags: self.flags,
        }
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The span id (in a received header: the span of the publish, parent of what follows).
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// Parses a `traceparent` value. `None` for anything invalid (wrong length or version,
    /// upper-case or non-hex digits, an all-zero id): a bad header starts a new trace rather
    /// than failing. Versions above 00 are read by their first four fields, as the
    /// specification asks.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim().as_bytes();
        if v.len() < LEN {
            return None;
        }
        let version = hex(&v[0..2])?;
        if version == 0xff
            || (version == 0 && v.len() != LEN)
            || (version > 0 && v.len() > LEN && v[LEN] != b'-')
        {
            return None;
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let trace_id = hex(&v[3..35])?;
        let span_id = u64::try_from(hex(&v[36..52])?).ok()?;
        let flags = u8::try_from(hex(&v[53..55])?).ok()?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(Self {
            trace_id: TraceId(trace_id),
            span_id: SpanId(span_id),
            flags,
        })
    }

    /// The `traceparent` header value: `00-<32 hex>-<16 hex>-<2 hex>`, 55 bytes in one
    /// allocation.
    pub fn header(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; LEN];
        out[0] = b'0';
        out[1] = b'0';
        out[2] = b'-';
        out[35] = b'-';
        out[52] = b'-';
        let mut put = |range: std::ops::Range<usize>, mut n: u128| {
            for i in range.rev() {
                out[i] = DIGITS[(n & 0xf) as usize];
                n >>= 4;
            }
        };
        put(3..35, self.trace_id.0);
        put(36..52, u128::from(self.span_id.0));
        put(53..55, u128::from(self.flags));
        // Only ASCII digits, letters and dashes were written.
        String::from_utf8(out.to_vec()).unwrap_or_default()
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// `id` as a UUIDv7 (RFC 9562) in its canonical hyphenated form, the form of
/// [`new_event_id`](crate::wire::headers::new_event_id); `None` for any other id.
pub(crate) fn uuid_v7(id: &str) -> Option<uuid::Uuid> {
    if id.len() != 36 || id.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let uuid = uuid::Uuid::try_parse(id).ok()?;
    (uuid.get_version_num() == 7 && uuid.get_variant() == uuid::Variant::RFC4122).then_some(uuid)
}

/// A random id that is not zero (zero means "invalid" in W3C Trace Context).
fn nonzero<T: PartialEq + Default>(random: impl Fn() -> T) -> T {
    loop {
        let v = random();
        if v != T::default() {
            return v;
        }
    }
}

/// Lowercase hex digits to a number (up to 32 digits).
fn hex(digits: &[u8]) -> Option<u128> {
    let mut n = 0u128;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        n = (n << 4) | u128::from(v);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_formats_55_bytes() {
        let t = TraceContext::root();
        let h = t.header();
        assert_eq!(h.len(), 55);
        assert_eq!(h, t.to_string());
        assert_eq!(TraceContext::parse(&h), Some(t));
        assert!(t.sampled());
    }

    #[test]
    fn parses_the_spec_example() {
        let t =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.span_id().to_string(), "00f067aa0ba902b7");
        assert_eq!(t.flags(), 1);
        let c = t.child();
        assert_eq!(c.trace_id(), t.trace_id());
        assert_ne!(c.span_id(), t.span_id());
    }

    #[test]
    fn refuses_invalid_values() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        // A later version with extra fields is read by its first four.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
                .is_some()
        );
    }
}
