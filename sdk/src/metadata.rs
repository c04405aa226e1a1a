//! JSON Schemas of eventhub's own metadata: the headers of an event and of a dead letter.
//!
//! Tools in other languages read eventhub's messages straight from NATS; these schemas say what
//! they find. A message's headers, seen as a JSON object of header name to value (every value
//! a string, as on the wire), validate against:
//!
//! - [`EnvelopeHeaders`] (`sdk/metadata/envelope-headers.schema.json`): an event published by
//!   eventhub — the CloudEvents attributes, `content-type` and `Nats-Msg-Id` — or a replay of one
//!   from the dead-letter queue (which adds `eventhub-replay-of` / `eventhub-replay-for`).
//! - [`DeadLetterHeaders`] (`sdk/metadata/dead-letter-headers.schema.json`): an entry of the
//!   dead-letter stream [`DLQ_STREAM`]. The entry's data is the original payload, unchanged (it
//!   may not even be JSON: poison messages land here too), so the headers are all there is to
//!   describe; the entry's subject is `dlq.<consumer>.<original subject>`.
//!
//! The schemas are JSON Schema draft 7, generated from these types with `schemars`. The files
//! in `sdk/metadata/` are checked against [`MetadataSchema::to_pretty_json`] by a test; after a
//! change to the types, regenerate them with
//! `EXPECTORATE=overwrite cargo test -p eventhub metadata`.
//!
//! ```
//! let schema = eventhub::metadata::MetadataSchema::DeadLetterHeaders.schema();
//! assert_eq!(schema["required"][0], "Nats-Msg-Id");
//! ```

use std::collections::BTreeMap;

use schemars::JsonSchema;
use schemars::r#gen::{SchemaGenerator, SchemaSettings};
use schemars::schema::{InstanceType, RootSchema, Schema, SchemaObject};
use serde::{Deserialize, Serialize};

use crate::dlq::DeadLetterReason;
use crate::topology::DLQ_STREAM;
use crate::wire::codec::JSON;

/// The headers eventhub writes on every event it publishes (and keeps on a replay of one).
///
/// Header values are strings. Headers not named here may appear and are strings too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "eventhub envelope headers")]
pub struct EnvelopeHeaders {
    /// CloudEvents spec version: always `1.0`.
    #[serde(rename = "ce-specversion")]
    #[schemars(schema_with = "spec_version")]
    pub specversion: String,
    /// Event id. A UUIDv7 (time-ordered) unless the publisher chose its own id
    /// (`PublishOptions::id`), so do not rely on its format.
    #[serde(rename = "ce-id")]
    #[schemars(schema_with = "event_id")]
    pub id: String,
    /// Event type: dot-separated lowercase kebab-case segments, the domain first, e.g.
    /// `user.created` or `photo.processing.started`. The version is in the subject
    /// (`events.<type>.v<N>`).
    #[serde(rename = "ce-type")]
    #[schemars(schema_with = "event_type")]
    pub event_type: String,
    /// The publishing service's name.
    #[serde(rename = "ce-source")]
    #[schemars(schema_with = "service_name")]
    pub source: String,
    /// When the event happened (the publish time unless the publisher set it): RFC 3339 in UTC
    /// with microseconds. Absent when it is the time a UUIDv7 `ce-id` holds (its first 48
    /// bits: Unix milliseconds, RFC 9562), as on an event published with its default id and
    /// time; eventhub versions before the lean wire format always wrote it.
    #[serde(rename = "ce-time", default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time")]
    pub time: Option<String>,
    /// The schema id of the event version: the `$id` of its JSON Schema in the catalog.
    /// Absent when it is the default, `urn:eventhub:schema:<type>:v<N>` (written by eventhub
    /// versions before the lean wire format).
    #[serde(
        rename = "ce-dataschema",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "data_schema")]
    pub dataschema: Option<String>,
    /// Id shared by every event of one business flow: set by the publisher, inherited by
    /// follow-up events. Absent when it is the event's own id (a flow's first event).
    #[serde(
        rename = "ce-correlationid",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "any_string")]
    pub correlationid: Option<String>,
    /// Id of the event whose handling caused this one; absent on events not published from a
    /// handler (or with an explicit causation).
    #[serde(
        rename = "ce-causationid",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "any_string")]
    pub causationid: Option<String>,
    /// Media type of the payload. Absent means `application/json`.
    #[serde(
        rename = "content-type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "content_type")]
    pub content_type: Option<String>,
    /// JetStream's de-duplication id: the event id, or
    /// `EVENTHUB_DLQ:<dead letter id>:replay:<nonce>` on a replay.
    #[serde(rename = "Nats-Msg-Id")]
    #[schemars(schema_with = "any_string")]
    pub msg_id: String,
    /// W3C Trace Context of the publish: `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`.
    /// Absent when the publish continues no trace and `ce-id` is a UUIDv7: the event then
    /// starts the trace `00-<ce-id without dashes>-<its last 16 hex digits>-01`. (Also absent
    /// on events stored by eventhub versions before trace context.)
    #[serde(
        rename = "traceparent",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "traceparent")]
    pub traceparent: Option<String>,
    /// Only on events with fields their schema marks `x-sensitive`: the id of the key those
    /// fields are encrypted with (each such field holds `enc:v1:<key id>:<base64url data>`;
    /// see the SDK's `crypto` module for the format).
    #[serde(
        rename = "eventhub-encryption-key",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "key_id")]
    pub encryption_key: Option<String>,
    /// Only on a replay from the dead-letter queue: `EVENTHUB_DLQ:<dead letter id>`.
    #[serde(
        rename = "eventhub-replay-of",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "replay_of")]
    pub replay_of: Option<String>,
    /// Only on a replay: the durable consumer that should handle it (the one that failed);
    /// other consumers of the subject acknowledge it without running their handler.
    #[serde(
        rename = "eventhub-replay-for",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "non_empty")]
    pub replay_for: Option<String>,
    /// Any other header.
    #[serde(flatten)]
    pub other: BTreeMap<String, String>,
}

/// The headers of an entry in the dead-letter stream `EVENTHUB_DLQ`.
///
/// An entry is the original message with the `eventhub-dlq-*` headers added. Original headers
/// the server acts on (every `Nats-*` one: `Nats-Msg-Id`, `Nats-Expected-Stream`, `Nats-TTL`…)
/// and original headers named `eventhub-dlq-*` are kept as
/// `eventhub-dlq-original-<name>` (the value unchanged); every other original header is kept
/// as it was. The original headers are not constrained here: a message published without
/// eventhub can be dead-lettered too (as poison). For an event eventhub published they are
/// those of envelope-headers.schema.json. The entry's subject is
/// `dlq.<consumer>.<original subject>`; its data is the original payload, unless
/// `eventhub-dlq-payload` says otherwise. Header values are strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "eventhub dead-letter headers")]
pub struct DeadLetterHeaders {
    /// Why the event was dead-lettered: `rejected` (by the handler), `poison` (could not be
    /// decoded; never retried) or `max-deliver` (its last allowed delivery failed, or the
    /// consumer died during it). A newer eventhub may add reasons.
    #[serde(rename = "eventhub-dlq-reason")]
    #[schemars(schema_with = "dlq_reason")]
    pub reason: String,
    /// The last error, on one line (control characters become spaces), cut at 2 KiB with `…`.
    #[serde(rename = "eventhub-dlq-error")]
    #[schemars(schema_with = "dlq_error")]
    pub error: String,
    /// How many times the event was delivered to the consumer: a decimal integer.
    #[serde(rename = "eventhub-dlq-deliveries")]
    #[schemars(schema_with = "decimal")]
    pub deliveries: String,
    /// The stream the event came from.
    #[serde(rename = "eventhub-dlq-stream")]
    #[schemars(schema_with = "non_empty")]
    pub stream: String,
    /// The event's sequence in that stream: a decimal integer.
    #[serde(rename = "eventhub-dlq-sequence")]
    #[schemars(schema_with = "decimal")]
    pub sequence: String,
    /// The subject the event was published on; a replay publishes there again.
    #[serde(rename = "eventhub-dlq-subject")]
    #[schemars(schema_with = "non_empty")]
    pub subject: String,
    /// The durable consumer that failed; by default named `<service>__<event type>` with `.`
    /// and `-` as `_`, e.g. `profile__user_created`.
    #[serde(rename = "eventhub-dlq-consumer")]
    #[schemars(schema_with = "non_empty")]
    pub consumer: String,
    /// When the event was dead-lettered: RFC 3339 in UTC with microseconds.
    #[serde(rename = "eventhub-dlq-failed-at")]
    #[schemars(schema_with = "date_time")]
    pub failed_at: String,
    /// The entry's de-duplication id, `dlq:<stream>:<sequence>:<consumer>`, so that one failure
    /// is stored once. It replaces the original's `Nats-Msg-Id` (the event id stays in
    /// `ce-id`).
    #[serde(rename = "Nats-Msg-Id")]
    #[schemars(schema_with = "dlq_msg_id")]
    pub msg_id: String,
    /// Present when the entry does not hold the original payload as it was, because the
    /// original with the entry's headers would exceed the server's `max_payload`: `deflate`
    /// (the data is the payload, deflate-compressed, RFC 1951) or `reference` (the data is
    /// empty: read the payload at `eventhub-dlq-stream` / `eventhub-dlq-sequence`).
    #[serde(
        rename = "eventhub-dlq-payload",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "dlq_payload")]
    pub payload: Option<String>,
    /// The original message's headers, and any other.
    #[serde(flatten)]
    pub original: BTreeMap<String, String>,
}

/// One of the metadata schemas, with the file it is shipped as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataSchema {
    /// [`EnvelopeHeaders`]: the headers of an event.
    EnvelopeHeaders,
    /// [`DeadLetterHeaders`]: the headers of a dead letter.
    DeadLetterHeaders,
}

impl MetadataSchema {
    /// Every metadata schema.
    pub const ALL: [MetadataSchema; 2] = [
        MetadataSchema::EnvelopeHeaders,
        MetadataSchema::DeadLetterHeaders,
    ];

    /// The name of its file in `sdk/metadata/`.
    pub fn file_name(self) -> &'static str {
        match self {
            MetadataSchema::EnvelopeHeaders => "envelope-headers.schema.json",
            MetadataSchema::DeadLetterHeaders => "dead-letter-headers.schema.json",
        }
    }

    /// The schema as JSON.
    pub fn schema(self) -> serde_json::Value {
        serde_json::to_value(self.root()).expect("a schemars schema serializes to JSON")
    }

    /// The schema as pretty-printed JSON with a final newline: the content of its file.
    pub fn to_pretty_json(self) -> String {
        // From the schemars types rather than a `Value`, so that key order does not depend on
        // serde_json's `preserve_order` feature.
        let mut text = serde_json::to_string_pretty(&self.root())
            .expect("a schemars schema serializes to JSON");
        text.push('\n');
        text
    }

    fn root(self) -> RootSchema {
        let generator = SchemaSettings::draft07()
            .with(|s| s.option_add_null_type = false)
            .into_generator();
        let mut root = match self {
            MetadataSchema::EnvelopeHeaders => generator.into_root_schema_for::<EnvelopeHeaders>(),
            MetadataSchema::DeadLetterHeaders => {
                generator.into_root_schema_for::<DeadLetterHeaders>()
            }
        };
        // Other headers are strings. (schemars 0.8 drops the `additionalProperties` of a
        // flattened map when it merges it into the struct's schema, so it is set here.)
        root.schema.object().additional_properties = Some(Box::new(string(|_| {})));
        root
    }
}

/// The JSON Schema of [`EnvelopeHeaders`].
pub fn envelope_headers_schema() -> serde_json::Value {
    MetadataSchema::EnvelopeHeaders.schema()
}

/// The JSON Schema of [`DeadLetterHeaders`].
pub fn dead_letter_headers_schema() -> serde_json::Value {
    MetadataSchema::DeadLetterHeaders.schema()
}

// Field schemas (`schema_with`). Descriptions come from the fields' doc comments.

/// A string schema, adjusted by `f`.
fn string(f: impl FnOnce(&mut SchemaObject)) -> Schema {
    let mut s = SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        ..Default::default()
    };
    f(&mut s);
    Schema::Object(s)
}

fn any_string(_: &mut SchemaGenerator) -> Schema {
    string(|_| {})
}

fn non_empty(_: &mut SchemaGenerator) -> Schema {
    string(|s| s.string().min_length = Some(1))
}

fn spec_version(_: &mut SchemaGenerator) -> Schema {
    string(|s| s.const_value = Some("1.0".into()))
}

fn content_type(_: &mut SchemaGenerator) -> Schema {
    string(|s| s.const_value = Some(JSON.into()))
}

fn event_id(_: &mut SchemaGenerator) -> Schema {
    string(|s| {
        s.metadata().examples = vec!["019a7c3e-5f21-7b4a-9c1d-2e8f4a6b0c3d".into()];
    })
}

fn event_type(_: &mut SchemaGenerator) -> Schema {
    const SEGMENT: &str = "[a-z][a-z0-9]*(-[a-z0-9]+)*";
    string(|s| {
        s.string().pattern = Some(format!(r"^{SEGMENT}(\.{SEGMENT})+$"));
        s.metadata().examples = vec!["user.created".into()];
    })
}

fn service_name(_: &mut SchemaGenerator) -> Schema {
    // The rule `Client::connect` enforces.
    string(|s| {
        s.string().pattern = Some("^[a-z][a-z0-9-]{0,63}$".into());
        s.metadata().examples = vec!["auth".into()];
    })
}

fn date_time(_: &mut SchemaGenerator) -> Schema {
    string(|s| {
        s.format = Some("date-time".into());
        s.metadata().examples = vec!["2026-11-23T10:00:00.123456Z".into()];
    })
}

fn data_schema(_: &mut SchemaGenerator) -> Schema {
    string(|s| {
        s.string().min_length = Some(1);
        s.metadata().examples = vec!["urn:eventhub:schema:user.created:v1".into()];
    })
}

fn traceparent(_: &mut SchemaGenerator) -> Schema {
    // Version 00 as eventhub writes it; later versions may append fields.
    string(|s| {
        s.string().pattern =
            Some("^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$".into());
        s.metadata().examples =
            vec!["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()];
    })
}

fn key_id(_: &mut SchemaGenerator) -> Schema {
    // The rule `Keyring` enforces.
    string(|s| {
        s.string().pattern = Some("^[A-Za-z0-9._-]{1,64}$".into());
        s.metadata().examples = vec!["2026-06".into()];
    })
}

fn replay_of(_: &mut SchemaGenerator) -> Schema {
    string(|s| s.string().pattern = Some(format!("^{DLQ_STREAM}:{DECIMAL}$")))
}

/// A `u64` as `to_string` writes it.
const DECIMAL: &str = "(0|[1-9][0-9]*)";

fn decimal(_: &mut SchemaGenerator) -> Schema {
    string(|s| s.string().pattern = Some(format!("^{DECIMAL}$")))
}

fn dlq_reason(_: &mut SchemaGenerator) -> Schema {
    string(|s| {
        s.enum_values = Some(
            [
                DeadLetterReason::Rejected,
                DeadLetterReason::Poison,
                DeadLetterReason::MaxDeliver,
            ]
            .iter()
            .map(|r| r.as_str().into())
            .collect(),
        );
    })
}

fn dlq_error(_: &mut SchemaGenerator) -> Schema {
    string(|s| {
        let v = s.string();
        // 2048 bytes are at most 2048 characters, plus the `…`.
        v.max_length = Some(2049);
        v.pattern = Some(r"^[^\u0000-\u001f\u007f-\u009f]*$".into());
    })
}

fn dlq_payload(_: &mut SchemaGenerator) -> Schema {
    string(|s| {
        s.enum_values = Some(vec!["deflate".into(), "reference".into()]);
    })
}

fn dlq_msg_id(_: &mut SchemaGenerator) -> Schema {
    string(|s| {
        s.string().pattern = Some(format!("^dlq:.+:{DECIMAL}:.+$"));
        s.metadata().examples = vec!["dlq:IDENTITY:42:profile__user_created".into()];
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::wire::headers;

    /// The committed files are what the types generate (`expectorate`: accept a change with
    /// `EXPECTORATE=overwrite cargo test -p eventhub metadata`).
    #[test]
    fn shipped_metadata_schemas_are_up_to_date() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("metadata");
        for schema in MetadataSchema::ALL {
            expectorate::assert_contents(dir.join(schema.file_name()), &schema.to_pretty_json());
        }
    }

    /// The names listed under `key` ("properties" or "required") of `schema`, sorted.
    fn names(schema: MetadataSchema, key: &str) -> BTreeSet<String> {
        let value = schema.schema();
        match &value[key] {
            serde_json::Value::Object(o) => o.keys().cloned().collect(),
            serde_json::Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().into()).collect(),
            other => panic!("{key} of {schema:?}: {other}"),
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_header_eventhub_writes_is_described() {
        use MetadataSchema::{DeadLetterHeaders, EnvelopeHeaders};
        // What every publish writes is required; what the lean wire format leaves out when it
        // is the default (content type, schema id, correlation id), the causation and the
        // replay headers are not always there.
        let publish = set(&[
            headers::SPECVERSION,
            headers::ID,
            headers::TYPE,
            headers::SOURCE,
            headers::MSG_ID,
        ]);
        let optional = set(&[
            headers::TIME,
            headers::DATASCHEMA,
            headers::CORRELATION_ID,
            headers::CONTENT_TYPE,
            headers::TRACEPARENT,
            headers::ENCRYPTION_KEY,
            headers::CAUSATION_ID,
            headers::REPLAY_OF,
            headers::REPLAY_FOR,
        ]);
        assert_eq!(names(EnvelopeHeaders, "required"), publish);
        assert_eq!(names(EnvelopeHeaders, "properties"), &publish | &optional);
        // Every dead-letter header is always written, but the payload's form.
        let dlq = set(&[
            headers::DLQ_REASON,
            headers::DLQ_ERROR,
            headers::DLQ_DELIVERIES,
            headers::DLQ_STREAM,
            headers::DLQ_SEQUENCE,
            headers::DLQ_SUBJECT,
            headers::DLQ_CONSUMER,
            headers::DLQ_FAILED_AT,
            headers::MSG_ID,
        ]);
        assert_eq!(names(DeadLetterHeaders, "required"), dlq);
        assert_eq!(
            names(DeadLetterHeaders, "properties"),
            &dlq | &set(&[headers::DLQ_PAYLOAD])
        );
    }

    #[test]
    fn other_headers_are_allowed_as_strings() {
        for schema in MetadataSchema::ALL {
            let value = schema.schema();
            assert_eq!(
                value["additionalProperties"],
                serde_json::json!({"type": "string"}),
                "{schema:?}"
            );
            assert_eq!(
                value["$schema"], "http://json-schema.org/draft-07/schema#",
                "{schema:?}"
            );
        }
    }

    #[test]
    fn header_maps_round_trip_through_the_types() {
        let headers = serde_json::json!({
            "ce-specversion": "1.0",
            "ce-id": "019a7c3e-5f21-7b4a-9c1d-2e8f4a6b0c3d",
            "ce-type": "user.created",
            "ce-source": "auth",
            "ce-time": "2026-11-23T10:00:00.123456Z",
            "ce-dataschema": "urn:eventhub:schema:user.created:v1",
            "ce-correlationid": "019a7c3e-5f21-7b4a-9c1d-2e8f4a6b0c3d",
            "content-type": "application/json",
            "Nats-Msg-Id": "019a7c3e-5f21-7b4a-9c1d-2e8f4a6b0c3d",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "x-tenant": "acme",
        });
        let parsed: EnvelopeHeaders = serde_json::from_value(headers.clone()).unwrap();
        assert_eq!(parsed.causationid, None);
        assert_eq!(parsed.encryption_key, None);
        assert!(parsed.traceparent.is_some());
        assert_eq!(parsed.other.len(), 1, "{:?}", parsed.other);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), headers);
    }
}
