//! What generated event types implement, and how raw messages become typed events.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::envelope::{JSON, PROTOBUF};

/// One version of one event type, generated from `schemas/<domain>/<name>.v<N>.json`.
///
/// The constants come from the schema's path and `schemas/streams.json`; publishing uses them,
/// so a caller never writes a subject by hand.
pub trait Event: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static {
    /// The event type, e.g. `user.created`.
    const TYPE: &'static str;
    /// The version, e.g. `1`.
    const VERSION: u32;
    /// The subject it is published on, e.g. `events.user.created.v1`.
    const SUBJECT: &'static str;
    /// The schema id, sent as `ce-dataschema`.
    const SCHEMA_ID: &'static str;
    /// The stream that captures the subject.
    const STREAM: &'static str;
    /// Its protobuf message, for `application/protobuf` payloads (see [`crate::proto`]).
    const PROTO: &'static crate::proto::Message;
    /// The fields the schema marks `x-sensitive`, as JSON pointers into the event (`*` for
    /// every item of an array): `["/email", "/recovery_emails/*"]`. Publishing encrypts them
    /// (see [`crate::crypto`]). Empty for most events, and then nothing is done.
    const SENSITIVE: &'static [&'static str] = &[];
    /// Its entry in the catalog, with its self-contained JSON Schema.
    const INFO: &'static EventInfo;

    /// Its JSON Schema, compiled once (see [`crate::schema`]): publishing and consuming check
    /// every event against it. Generated types keep it in a static of their own; the default
    /// looks it up in a process-wide cache by [`Event::INFO`].
    fn validator() -> &'static crate::schema::Validator {
        crate::schema::Validator::cached(Self::INFO)
    }
}

/// Something done once per event type of the catalog, with the type: see the generated
/// [`events::for_each_event`](crate::events::for_each_event).
///
/// ```
/// use eventhub::{Event, EventInfo, EventVisitor};
/// struct Subjects(Vec<&'static str>);
/// impl EventVisitor for Subjects {
///     fn visit<E: Event + PartialEq>(&mut self, info: &'static EventInfo) {
///         assert_eq!(info.subject, E::SUBJECT);
///         self.0.push(E::SUBJECT);
///     }
/// }
/// let mut subjects = Subjects(Vec::new());
/// eventhub::events::for_each_event(&mut subjects);
/// assert_eq!(subjects.0.len(), eventhub::events::CATALOG.len());
/// ```
pub trait EventVisitor {
    /// Called with each event type and its catalog entry. (Generated event types also
    /// implement `PartialEq`, so checks can compare values.)
    fn visit<E: Event + PartialEq>(&mut self, info: &'static EventInfo);
}

/// What a consumer can receive: one event version (a generated struct such as
/// `events::user::CreatedV1`) or a whole family (the generated enum `events::user::Created`).
pub trait Consumable: Sized + Send + Sync + fmt::Debug + 'static {
    /// The event type, versions, filter subjects and stream.
    const FAMILY: Family;

    /// Whether some version it decodes has fields marked `x-sensitive` ([`Event::SENSITIVE`]).
    /// Only then does a consumer look for encrypted fields. Default `false`.
    const HAS_SENSITIVE_FIELDS: bool = false;

    /// Decodes a payload of the given version.
    fn decode(version: u32, raw: &RawEvent<'_>) -> Result<Self, DecodeError>;

    /// Decodes a payload of the given version whose `x-sensitive` fields are encrypted, and
    /// decrypts them with `decryptor` (see [`crate::crypto`]). Generated for types with
    /// [`HAS_SENSITIVE_FIELDS`](Consumable::HAS_SENSITIVE_FIELDS); the default decodes as
    /// [`Consumable::decode`] does.
    fn decode_decrypting(
        version: u32,
        raw: &RawEvent<'_>,
        decryptor: &crate::crypto::Decryptor<'_>,
    ) -> Result<Self, DecodeError> {
        let _ = decryptor;
        Self::decode(version, raw)
    }

    /// Decodes a payload whose subject names `event_type` and `version`: what a consumer
    /// calls. The default decodes [`Family::event_type`] only (with [`Consumable::decode`]) and
    /// refuses any other type; the enum over a domain's families (`events::photo::Any`)
    /// decodes each type of its domain it knows.
    fn decode_typed(
        event_type: &str,
        version: u32,
        raw: &RawEvent<'_>,
    ) -> Result<Self, DecodeError> {
        if event_type != Self::FAMILY.event_type {
            return Err(DecodeError::unknown_event_type(
                event_type,
                &[Self::FAMILY.event_type],
            ));
        }
        Self::decode(version, raw)
    }

    /// [`Consumable::decode_typed`] for a payload whose `x-sensitive` fields are encrypted
    /// (see [`Consumable::decode_decrypting`]).
    fn decode_typed_decrypting(
        event_type: &str,
        version: u32,
        raw: &RawEvent<'_>,
        decryptor: &crate::crypto::Decryptor<'_>,
    ) -> Result<Self, DecodeError> {
        if event_type != Self::FAMILY.event_type {
            return Err(DecodeError::unknown_event_type(
                event_type,
                &[Self::FAMILY.event_type],
            ));
        }
        Self::decode_decrypting(version, raw, decryptor)
    }

    /// The version of this value.
    fn version(&self) -> u32;
}

/// What a [`Consumable`] type covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The event type, e.g. `user.created`; for the enum over a domain's families, the domain
    /// (`photo`).
    pub event_type: &'static str,
    /// The versions the type can decode (empty for the enum over a domain's families, whose
    /// variants have their own).
    pub versions: &'static [u32],
    /// The subjects a consumer of the type filters on. A family enum uses a wildcard over
    /// versions (`events.user.created.*`), so an event of a version this build does not know is
    /// dead-lettered rather than silently skipped.
    pub subjects: &'static [&'static str],
    /// The stream the events live in.
    pub stream: &'static str,
}

/// Static description of one event version in the generated catalog
/// ([`events::CATALOG`](crate::events::CATALOG)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventInfo {
    /// `user.created`
    pub event_type: &'static str,
    /// `1`
    pub version: u32,
    /// `events.user.created.v1`
    pub subject: &'static str,
    /// The stream that captures the subject.
    pub stream: &'static str,
    /// The schema id (`ce-dataschema`).
    pub schema_id: &'static str,
    /// The Rust type under `eventhub::events`, e.g. `user::CreatedV1`.
    pub rust_type: &'static str,
    /// The self-contained JSON Schema of the event (references bundled into `$defs`).
    pub schema: &'static str,
    /// Its protobuf message (see [`crate::proto`]).
    pub proto: &'static crate::proto::Message,
    /// The fields marked `x-sensitive` ([`Event::SENSITIVE`]), encrypted when published.
    pub sensitive: &'static [&'static str],
}

/// The encoded form of an event as it arrives: content type and payload bytes.
#[derive(Debug, Clone, Copy)]
pub struct RawEvent<'a> {
    /// The `content-type` header, if any (absent means JSON).
    pub content_type: Option<&'a str>,
    /// The message payload.
    pub payload: &'a [u8],
}

impl RawEvent<'_> {
    /// Decodes the payload as event `E` by its content type: `application/json` (or none) as
    /// JSON, `application/protobuf` (or `application/x-protobuf`) as protobuf with
    /// [`E::PROTO`](Event::PROTO). Any other content type is
    /// [`DecodeErrorKind::UnsupportedContentType`]. Generated consumers decode with this, so JSON
    /// and protobuf producers can share a stream.
    pub fn decode_event<E: Event>(&self) -> Result<E, DecodeError> {
        let invalid = |violations: crate::schema::Violations| {
            DecodeError::new(
                DecodeErrorKind::SchemaMismatch,
                format!("payload does not match the event schema: {violations}"),
            )
        };
        match self.content_type.map(media_type) {
            Some(t) if t.eq_ignore_ascii_case(PROTOBUF) || t.eq_ignore_ascii_case(X_PROTOBUF) => {
                let event: E = crate::proto::decode(self.payload)?;
                // Checked like JSON: the schema describes the data, whatever its encoding.
                let value = serde_json::to_value(&event).map_err(|e| {
                    DecodeError::new(DecodeErrorKind::SchemaMismatch, e.to_string())
                })?;
                E::validator().check_wire(&value).map_err(invalid)?;
                Ok(event)
            }
            None => self.decode_checked::<E>(invalid),
            Some(t) if t.eq_ignore_ascii_case(JSON) => self.decode_checked::<E>(invalid),
            Some(other) => Err(unsupported(
                other,
                "application/json or application/protobuf",
            )),
        }
    }

    /// A JSON payload: parsed, checked against the schema, then decoded.
    fn decode_checked<E: Event>(
        &self,
        invalid: impl Fn(crate::schema::Violations) -> DecodeError,
    ) -> Result<E, DecodeError> {
        let value: serde_json::Value = serde_json::from_slice(self.payload).map_err(|e| {
            DecodeError::new(
                DecodeErrorKind::InvalidJson,
                format!("payload is not valid JSON: {e}"),
            )
        })?;
        E::validator().check_wire(&value).map_err(invalid)?;
        // What the schema allows, the generated type reads; a failure here names the field.
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = match e.path().to_string() {
                p if p == "." => String::new(),
                p => format!(" at `{p}`"),
            };
            DecodeError::new(
                DecodeErrorKind::SchemaMismatch,
                format!("payload does not match the event type{path}: {}", e.inner()),
            )
        })
    }

    /// Decodes a JSON payload as `T`. Refuses other content types, protobuf included (its
    /// decoding needs the event's descriptor: use [`RawEvent::decode_event`]).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        match self.content_type.map(media_type) {
            None => self.decode_json(),
            Some(t) if t.eq_ignore_ascii_case(JSON) => self.decode_json(),
            Some(other) => Err(unsupported(other, "application/json")),
        }
    }

    fn decode_json<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        serde_json::from_slice(self.payload).map_err(|e| {
            // Decode again only on failure, tracking the path to name the offending field.
            let mut de = serde_json::Deserializer::from_slice(self.payload);
            let path = match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Err(pe) if pe.path().to_string() != "." => format!(" at `{}`", pe.path()),
                _ => String::new(),
            };
            let kind = if e.is_syntax() || e.is_eof() {
                DecodeErrorKind::InvalidJson
            } else {
                DecodeErrorKind::SchemaMismatch
            };
            let what = match kind {
                DecodeErrorKind::InvalidJson => "payload is not valid JSON",
                _ => "payload does not match the event schema",
            };
            DecodeError::new(kind, format!("{what}{path}: {e}"))
        })
    }
}

/// The media type of a `content-type` value, without parameters (`; charset=utf-8`). Media
/// types compare case-insensitively (RFC 9110).
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// The older name of the protobuf media type, still read.
const X_PROTOBUF: &str = "application/x-protobuf";

fn unsupported(content_type: &str, expected: &str) -> DecodeError {
    DecodeError::new(
        DecodeErrorKind::UnsupportedContentType,
        format!("content-type `{content_type}` is not supported (expected {expected})"),
    )
}

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
    /// is not ciphertext at all (see [`crate::crypto`]).
    Decryption,
}

/// A message that cannot be decoded into the expected event type.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for DecodeError {}

/// Splits an event subject `events.<type>.v<N>` into type and version.
pub fn parse_subject(subject: &str) -> Option<(&str, u32)> {
    let rest = subject.strip_prefix("events.")?;
    let (event_type, version) = rest.rsplit_once('.')?;
    let version = version.strip_prefix('v')?;
    if version.starts_with('0') || event_type.is_empty() {
        return None;
    }
    Some((event_type, version.parse().ok()?))
}

/// What kind of JSON value `v` is, for error messages: "a string", "an object", "null"…
pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_into_type_and_version() {
        assert_eq!(
            parse_subject("events.user.created.v2"),
            Some(("user.created", 2))
        );
        assert_eq!(
            parse_subject("events.photo.processing.started.v1"),
            Some(("photo.processing.started", 1))
        );
        assert_eq!(parse_subject("events.user.created"), None);
        assert_eq!(parse_subject("events.user.created.v01"), None);
        assert_eq!(parse_subject("dlq.x.events.user.created.v1"), None);
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Item {
        qty: u32,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Order {
        items: Vec<Item>,
    }

    #[test]
    fn decode_errors_name_the_field() {
        let raw = RawEvent {
            content_type: Some("application/json"),
            payload: br#"{"items":[{"qty":1},{"qty":"two"}]}"#,
        };
        let err = raw.decode::<Order>().unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::SchemaMismatch);
        assert!(err.to_string().contains("at `items[1].qty`"), "{err}");

        let raw = RawEvent {
            content_type: None,
            payload: b"{not json",
        };
        assert_eq!(
            raw.decode::<Order>().unwrap_err().kind(),
            DecodeErrorKind::InvalidJson
        );

        let raw = RawEvent {
            content_type: Some("application/protobuf"),
            payload: b"",
        };
        assert_eq!(
            raw.decode::<Order>().unwrap_err().kind(),
            DecodeErrorKind::UnsupportedContentType
        );
    }
}
