//! Protobuf payloads (`content-type: application/protobuf`).
//!
//! Every generated event type can travel as protobuf as well as JSON. Its messages are derived
//! at build time from the event's JSON Schema, with field numbers that stay stable across
//! compatible schema changes; each event type points at its [`Message`] descriptor
//! ([`Event::PROTO`](crate::Event::PROTO), [`EventInfo::proto`](crate::EventInfo::proto)), and
//! A catalog's generated `PROTO_FILE` is the `.proto` text for other languages.
//!
//! Encoding and decoding go through the event's JSON value ([`encode_value`], [`decode_value`])
//! and a `prost_reflect::DynamicMessage` built from the descriptor: `prost-reflect` reads and
//! writes the wire format, serde turns the JSON value into the event, so both codecs apply the
//! same serde rules (formats, enums, `deny_unknown_fields`) and decode to equal values. Errors
//! name the JSON path of a value that does not fit.
//!
//! The mapping (see `eventhub_codegen::proto` for the derivation):
//!
//! - strings (any format, enums) → `string`; integers → `sint64`, or `uint64` when the schema
//!   excludes negative values; numbers → `double`; booleans → `bool`;
//! - objects with properties → messages; objects with only `additionalProperties` → maps
//!   (repeated entries `{1: key, 2: value}`); arrays → repeated fields (numeric ones packed);
//!   array items and map values that are arrays, maps or nullable, and nullable arrays and
//!   maps, are wrapped in a message whose field 1 holds them ([`Shape::Wrapper`]);
//! - anything else the schema leaves open (`oneOf`, `anyOf`, untyped values) → a `string`
//!   holding the value's JSON text ([`Kind::Json`]).
//!
//! Every present value is written, zeros and empty strings included, and a `null` or missing
//! property is an absent field, so `None` and zero stay distinct. Field numbers the descriptor
//! does not know (from a newer producer) are skipped. A missing repeated or map field decodes as
//! empty when the property is required (otherwise it stays missing).
//!
//! ```
//! # fn demo<E: eventhub::Event + PartialEq>(event: E) {
//! use eventhub::wire::proto;
//! let bytes = proto::encode(E::PROTO, &event).unwrap();
//! assert_eq!(proto::decode::<E>(E::PROTO, &bytes).unwrap(), event);
//! # }
//! ```

#[cfg(feature = "protobuf")]
mod codec;
mod message;

#[cfg(feature = "protobuf")]
pub(crate) use codec::encode_serialize;
#[cfg(feature = "protobuf")]
pub use codec::{EncodeError, decode, decode_value, encode, encode_value};
pub use message::{Field, Kind, Message, Shape};
