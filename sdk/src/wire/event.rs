//! What generated event types implement, and how raw messages become typed events.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{DecodeError, DecodeErrorKind};
use crate::wire::codec::{JSON, media_type};
#[cfg(feature = "protobuf")]
use crate::wire::codec::{PROTOBUF, X_PROTOBUF};
use crate::wire::crypto::Decryptor;

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
    /// Its protobuf message, for `application/protobuf` payloads (see [`crate::wire::proto`]).
    const PROTO: &'static crate::wire::proto::Message;
    /// The protobuf encoder and decoder the codegen generated for the type; `None` (the
    /// default, for hand-written types) encodes and decodes through the JSON value.
    #[cfg(feature = "protobuf")]
    #[doc(hidden)]
    const PROTO_CODEC: Option<crate::wire::proto::rt::Codec<Self>> = None;
    /// The fields the schema marks `x-sensitive`, as JSON pointers into the event (`*` for
    /// every item of an array): `["/email", "/recovery_emails/*"]`. Publishing encrypts them
    /// (see [`crate::wire::crypto`]). Empty for most events, and then nothing is done.
    const SENSITIVE: &'static [&'static str] = &[];
    /// Its entry in the catalog, with its self-contained JSON Schema.
    const INFO: &'static EventInfo;
    /// How long the stream keeps each event of this type (`"x-ttl": "30s"` in the schema):
    /// publishing sets `Nats-TTL`, and the stream needs `allow_msg_ttl` (the codegen sets it on
    /// a stream with such an event). `None` (the default): the stream's own limits.
    const TTL: Option<std::time::Duration> = None;
    /// The field whose value orders events (`"x-partition-key": "/order_id"` in the schema),
    /// as a JSON pointer into the event: a consumer with
    /// [`ConsumerOptions::ordered_by_key`](crate::ConsumerOptions) handles events with the
    /// same key one after another, in stream order. `None` (the default): no key.
    const PARTITION_KEY: Option<&'static str> = None;

    /// The value of [`Event::PARTITION_KEY`] in this event (a string as is, another value as
    /// its JSON text); `None` without a key or when the field is absent or null.
    fn partition_key(&self) -> Option<String> {
        let pointer = Self::PARTITION_KEY?;
        let value = serde_json::to_value(self).ok()?;
        match value.pointer(pointer)? {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// Its JSON Schema, compiled once (see [`crate::wire::schema`]): publishing and consuming check
    /// every event against it. Generated types keep it in a static of their own; the default
    /// looks it up in a process-wide cache by [`Event::INFO`].
    fn validator() -> &'static crate::wire::schema::Validator {
        crate::wire::schema::Validator::cached(Self::INFO.schema, Self::INFO.sensitive)
    }
}

/// Something done once per event type of a catalog, with the type: see a catalog's generated
/// `for_each_event`.
///
/// ```
/// use eventhub::wire::EventVisitor;
/// use eventhub::{Event, EventInfo};
/// struct Subjects(Vec<&'static str>);
/// impl EventVisitor for Subjects {
///     fn visit<E: Event + PartialEq>(&mut self, info: &'static EventInfo) {
///         assert_eq!(info.subject, E::SUBJECT);
///         self.0.push(E::SUBJECT);
///     }
/// }
/// // eventhub_catalog::for_each_event(&mut Subjects(Vec::new()));
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

    /// Whether some version it decodes has fields marked `x-sensitive` ([`Event::SENSITIVE`](crate::Event::SENSITIVE)).
    /// Only then does a consumer look for encrypted fields. Default `false`.
    const HAS_SENSITIVE_FIELDS: bool = false;

    /// Decodes a payload of the given version.
    fn decode(version: u32, raw: &RawEvent<'_>) -> Result<Self, DecodeError>;

    /// Decodes a payload of the given version whose `x-sensitive` fields are encrypted, and
    /// decrypts them with `decryptor` (see [`crate::wire::crypto`]). Generated for types with
    /// [`HAS_SENSITIVE_FIELDS`](Consumable::HAS_SENSITIVE_FIELDS); the default decodes as
    /// [`Consumable::decode`] does.
    fn decode_decrypting(
        version: u32,
        raw: &RawEvent<'_>,
        decryptor: &Decryptor<'_>,
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
        decryptor: &Decryptor<'_>,
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

    /// Its partition key ([`Event::partition_key`]): what a consumer with
    /// [`ConsumerOptions::ordered_by_key`](crate::ConsumerOptions::ordered_by_key) orders by.
    /// Default `None` (generated for events whose schema declares `x-partition-key`).
    fn partition_key(&self) -> Option<String> {
        None
    }
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

/// Static description of one event version in a generated catalog (its `CATALOG`).
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
    /// Its protobuf message (see [`crate::wire::proto`]).
    pub proto: &'static crate::wire::proto::Message,
    /// The fields marked `x-sensitive` ([`Event::SENSITIVE`](crate::Event::SENSITIVE)), encrypted when published.
    pub sensitive: &'static [&'static str],
}

/// What a consumer checks when it decodes an event besides its encoding, and what a publisher
/// checks before it sends a typed one ([`Publisher::with_validation`](crate::Publisher::with_validation)).
///
/// Consumers check every event against its schema by default ([`Validation::Schema`]): a
/// foreign producer's schema-invalid event is a dead letter with its reason, never a handler's
/// surprise. [`Validation::Types`] decodes straight into the generated type instead, as a raw
/// NATS client would: types, required fields, enums, `pattern`, string lengths, integer
/// minimums and closed objects still hold (the type enforces them), not `format`,
/// `minItems`/`maxItems`, `multipleOf` or numeric maximums. It costs about half as much CPU
/// per JSON event; choose it for a consumer whose publishers are known to check (eventhub
/// services and the gateway validate before they publish unless a service's publisher chose
/// `Types` too, and the generated permissions let only the declared publisher write a
/// subject); do not choose it on both ends of one event type unless the rules a type cannot
/// express do not matter to you. An event with encrypted (`x-sensitive`) fields
/// is checked against its schema once they are decrypted, either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Validation {
    /// The whole schema (the default).
    #[default]
    Schema,
    /// Only what the generated type enforces.
    Types,
}

/// The encoded form of an event as it arrives: content type and payload bytes.
#[derive(Debug, Clone, Copy)]
pub struct RawEvent<'a> {
    /// The `content-type` header, if any (absent means JSON).
    pub content_type: Option<&'a str>,
    /// The message payload.
    pub payload: &'a [u8],
    /// What [`RawEvent::decode_event`] checks besides the encoding.
    pub validation: Validation,
}

impl<'a> RawEvent<'a> {
    /// A payload with its `content-type` header, checked against the schema when decoded.
    pub fn new(content_type: Option<&'a str>, payload: &'a [u8]) -> Self {
        Self {
            content_type,
            payload,
            validation: Validation::Schema,
        }
    }

    /// Sets what [`RawEvent::decode_event`] checks besides the encoding.
    pub fn with_validation(mut self, validation: Validation) -> Self {
        self.validation = validation;
        self
    }

    /// Decodes the payload as event `E` by its content type: `application/json` (or none) as
    /// JSON, `application/protobuf` (or `application/x-protobuf`) as protobuf with
    /// [`E::PROTO`](Event::PROTO). Any other content type is
    /// [`DecodeErrorKind::UnsupportedContentType`]. Generated consumers decode with this, so JSON
    /// and protobuf producers can share a stream. The event is then checked against its schema
    /// unless [`RawEvent::validation`] is [`Validation::Types`].
    pub fn decode_event<E: Event>(&self) -> Result<E, DecodeError> {
        let invalid = |violations: crate::wire::schema::Violations| {
            DecodeError::new(
                DecodeErrorKind::SchemaMismatch,
                format!("payload does not match the event schema: {violations}"),
            )
        };
        if self.validation == Validation::Types && self.is_json() {
            return self.decode_json();
        }
        match self.content_type.map(media_type) {
            #[cfg(feature = "protobuf")]
            Some(t) if t.eq_ignore_ascii_case(PROTOBUF) || t.eq_ignore_ascii_case(X_PROTOBUF) => {
                let event: E =
                    crate::wire::proto::decode_with(E::PROTO, E::PROTO_CODEC, self.payload)?;
                if self.validation == Validation::Types {
                    return Ok(event);
                }
                // Checked like JSON: the schema describes the data, whatever its encoding.
                let value = serde_json::to_value(&event).map_err(|e| {
                    DecodeError::new(DecodeErrorKind::SchemaMismatch, e.to_string())
                })?;
                E::validator().check_wire(&value).map_err(invalid)?;
                Ok(event)
            }
            None => self.decode_checked::<E>(invalid),
            Some(t) if t.eq_ignore_ascii_case(JSON) => self.decode_checked::<E>(invalid),
            #[cfg(feature = "protobuf")]
            Some(other) => Err(unsupported(
                other,
                "application/json or application/protobuf",
            )),
            // Built without the protobuf codec: a protobuf payload is as foreign as any other.
            #[cfg(not(feature = "protobuf"))]
            Some(other) => Err(unsupported(other, "application/json")),
        }
    }

    /// Whether the payload is JSON by its content type (none means JSON).
    fn is_json(&self) -> bool {
        self.content_type
            .map(media_type)
            .is_none_or(|t| t.eq_ignore_ascii_case(JSON))
    }

    /// A JSON payload: parsed, checked against the schema, then decoded.
    fn decode_checked<E: Event>(
        &self,
        invalid: impl Fn(crate::wire::schema::Violations) -> DecodeError,
    ) -> Result<E, DecodeError> {
        let value: serde_json::Value = serde_json::from_slice(self.payload).map_err(|e| {
            DecodeError::new(
                DecodeErrorKind::InvalidJson,
                format!("payload is not valid JSON: {e}"),
            )
        })?;
        E::validator().check_wire(&value).map_err(invalid)?;
        // What the schema allows, the generated type reads. The path of a failure is tracked
        // only when there is one (tracking costs an allocation per field): parsed again then.
        serde_json::from_value(value).map_err(|_| self.decode_failure::<E>())
    }

    /// Why a payload the schema accepted does not decode as `E`, naming the field.
    #[cold]
    fn decode_failure<E: Event>(&self) -> DecodeError {
        let mut de = serde_json::Deserializer::from_slice(self.payload);
        match serde_path_to_error::deserialize::<_, E>(&mut de) {
            Ok(_) => DecodeError::new(
                DecodeErrorKind::SchemaMismatch,
                "payload does not match the event type".to_string(),
            ),
            Err(e) => {
                let path = match e.path().to_string() {
                    p if p == "." => String::new(),
                    p => format!(" at `{p}`"),
                };
                DecodeError::new(
                    DecodeErrorKind::SchemaMismatch,
                    format!("payload does not match the event type{path}: {}", e.inner()),
                )
            }
        }
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

fn unsupported(content_type: &str, expected: &str) -> DecodeError {
    DecodeError::new(
        DecodeErrorKind::UnsupportedContentType,
        format!("content-type `{content_type}` is not supported (expected {expected})"),
    )
}

/// Decodes `raw` as `E` (by its content type) and decrypts the fields `E` marks
/// `x-sensitive` with `decryptor`; then the whole schema must hold, the decrypted fields'
/// formats included. Generated [`Consumable::decode_decrypting`] implementations call this.
/// Errors name fields and rules, never a value (decrypted values are plaintext).
pub fn decode_decrypting<E: Event>(
    raw: &RawEvent<'_>,
    decryptor: &Decryptor<'_>,
) -> Result<E, DecodeError> {
    let event = raw.decode_event::<E>()?;
    if E::SENSITIVE.is_empty() {
        return Ok(event);
    }
    let what = format!(
        "{} v{} (event {})",
        E::TYPE,
        E::VERSION,
        decryptor.event_id()
    );
    let mut value = serde_json::to_value(&event).map_err(|e| {
        DecodeError::new(
            DecodeErrorKind::Decryption,
            format!("{what}: cannot take the event apart ({})", category(&e)),
        )
    })?;
    decryptor.open_fields(E::TYPE, E::VERSION, E::SENSITIVE, &mut value)?;
    if let Err(violations) = E::validator().check(&value) {
        let at: Vec<String> = violations
            .0
            .iter()
            .map(|v| format!("{} ({})", v.pointer, v.keyword))
            .collect();
        return Err(DecodeError::new(
            DecodeErrorKind::SchemaMismatch,
            format!(
                "{what}: the decrypted event does not match its schema at {}",
                at.join(", ")
            ),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        DecodeError::new(
            DecodeErrorKind::Decryption,
            format!(
                "{what}: the decrypted event does not match its type ({})",
                category(&e)
            ),
        )
    })
}

/// What kind of serde error `e` is, without its message (which may quote a value).
fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "i/o",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "a value of the wrong shape",
        serde_json::error::Category::Eof => "truncated",
    }
}

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
        let raw = RawEvent::new(
            Some("application/json"),
            br#"{"items":[{"qty":1},{"qty":"two"}]}"#,
        );
        let err = raw.decode::<Order>().unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::SchemaMismatch);
        assert!(err.to_string().contains("at `items[1].qty`"), "{err}");

        let raw = RawEvent::new(None, b"{not json");
        assert_eq!(
            raw.decode::<Order>().unwrap_err().kind(),
            DecodeErrorKind::InvalidJson
        );

        let raw = RawEvent::new(Some("application/protobuf"), b"");
        assert_eq!(
            raw.decode::<Order>().unwrap_err().kind(),
            DecodeErrorKind::UnsupportedContentType
        );
    }
}
