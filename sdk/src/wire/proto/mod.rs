//! Protobuf payloads (`content-type: application/protobuf`).
//!
//! Every generated event type can travel as protobuf as well as JSON. Its messages are derived
//! at build time from the event's JSON Schema, with field numbers that stay stable across
//! compatible schema changes; each event type points at its [`Message`] descriptor
//! ([`Event::PROTO`](crate::Event::PROTO), [`EventInfo::proto`](crate::EventInfo::proto)), and
//! a catalog's generated `PROTO_FILE` is the `.proto` text for other languages.
//!
//! Each generated event type has an encoder and a decoder of its own, generated with it
//! straight over its Rust fields ([`Event::PROTO_CODEC`](crate::Event)), so no JSON value is
//! built; string-valued fields that are not `String` in Rust (times, UUIDs, enums) go through
//! their serde string form, so both codecs apply the same serde rules and decode to equal
//! values. The descriptors drive the codec of JSON values ([`encode_value`], [`decode_value`]):
//! what publishing a checked JSON value, tools and other types without a generated codec use,
//! and what a failing generated decoder falls back to, whose errors name the JSON path, the
//! field number and the message.
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
//! let bytes = proto::encode(&event).unwrap();
//! assert_eq!(proto::decode::<E>(&bytes).unwrap(), event);
//! # }
//! ```

mod descriptor;
pub use descriptor::{Field, Kind, Message, Shape};

#[cfg(feature = "protobuf")]
mod codec;
#[cfg(feature = "protobuf")]
pub(crate) use codec::decode_with;
#[cfg(feature = "protobuf")]
pub use codec::{EncodeError, decode_value, encode_value};

#[cfg(feature = "protobuf")]
#[doc(hidden)]
pub mod rt;

#[cfg(feature = "protobuf")]
mod typed;
#[cfg(feature = "protobuf")]
pub use typed::{decode, encode};
