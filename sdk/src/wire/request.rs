//! What a typed request is: the [`Request`] trait pairs a request type with its response type,
//! its subject and the JSON Schemas of both. It lives in the runtime (not in
//! `eventhub-patterns`, which sends and answers requests) so that generated catalog code can
//! implement it for the request/response pairs of `schemas/` (`<name>.request.v<N>.json` and
//! `<name>.response.v<N>.json`). It knows no `Client`.

use std::fmt;

use serde::{Serialize, de::DeserializeOwned};

/// Reply header: `ok` or `error`.
pub const REPLY_HEADER: &str = "eventhub-reply";

/// Prefix of every request subject: `rpc.<domain>.<name>.v<N>`.
pub const SUBJECT_PREFIX: &str = "rpc";

/// The JSON Schema of an error reply (the payload of a reply with `eventhub-reply: error`),
/// for responders and requesters in other languages.
pub const ERROR_REPLY_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "urn:eventhub:schema:error-reply:v1",
  "title": "error-reply",
  "description": "The payload of a reply with the header eventhub-reply: error.",
  "type": "object",
  "properties": {
    "code": {
      "description": "invalid_request, internal, or a code of the responder's domain (lowercase, _).",
      "type": "string",
      "pattern": "^[a-z][a-z0-9_]{0,63}$"
    },
    "message": { "description": "What went wrong, for people.", "type": "string", "maxLength": 4096 }
  },
  "required": ["code", "message"],
  "additionalProperties": false
}"#;

/// A request type: what it is answered with, where it is sent, what its payloads must match.
///
/// The catalog generates it for each request/response pair of its schemas; by hand:
///
/// ```
/// use eventhub::wire::request::Request;
/// #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// struct Lookup { user_id: String }
/// #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// struct Found { email: String }
/// impl Request for Lookup {
///     type Response = Found;
///     const SUBJECT: &'static str = "rpc.user.lookup.v1";
///     const REQUEST_SCHEMA: Option<&'static str> = Some(
///         r#"{"type":"object","properties":{"user_id":{"type":"string","minLength":1}},"required":["user_id"]}"#,
///     );
/// }
/// ```
pub trait Request: Serialize + DeserializeOwned + Send + Sync + fmt::Debug + 'static {
    /// What a successful reply carries.
    type Response: Serialize + DeserializeOwned + Send + Sync + fmt::Debug + 'static;
    /// The subject requests are sent on, e.g. `rpc.user.lookup.v1`.
    const SUBJECT: &'static str;
    /// JSON Schema of the request: checked before sending and on arrival. Default none.
    const REQUEST_SCHEMA: Option<&'static str> = None;
    /// JSON Schema of the response: checked before replying and on arrival. Default none.
    const RESPONSE_SCHEMA: Option<&'static str> = None;
}
