//! How event data is encoded: the media types eventhub reads and writes, and the [`Codec`] a
//! publisher chooses.

/// JSON, the default payload encoding.
pub const JSON: &str = "application/json";

/// Protobuf, the compact payload encoding (see [`super::proto`]).
pub const PROTOBUF: &str = "application/protobuf";

/// The older name of the protobuf media type, still read.
pub(crate) const X_PROTOBUF: &str = "application/x-protobuf";

/// How an event's payload is encoded, announced by its `content-type` header. Consumers decode
/// by that header, so producers of either codec can share a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// JSON (`application/json`), the default: readable, and what the schemas describe.
    #[default]
    Json,
    /// Protobuf (`application/protobuf`): smaller payloads, with each event's message generated
    /// from its schema (see [`super::proto`]).
    Protobuf,
}

impl Codec {
    /// The `content-type` of payloads in this codec.
    pub const fn content_type(self) -> &'static str {
        match self {
            Codec::Json => JSON,
            Codec::Protobuf => PROTOBUF,
        }
    }
}

/// The media type of a `content-type` value, without parameters (`; charset=utf-8`). Media
/// types compare case-insensitively (RFC 9110).
pub(crate) fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
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
