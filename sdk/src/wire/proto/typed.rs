//! Encoding and decoding generated event types.

use super::codec::{EncodeError, decode_with, encode_with};
use crate::error::DecodeError;
use crate::wire::event::Event;

/// Encodes `event` as protobuf (its message is [`Event::PROTO`]): with the encoder generated
/// for its type, or through its JSON value for a type without one.
pub fn encode<E: Event>(event: &E) -> Result<Vec<u8>, EncodeError> {
    encode_with(E::PROTO, E::PROTO_CODEC, event)
}

/// Decodes a protobuf payload of `E` (its message is [`Event::PROTO`]): with the decoder
/// generated for its type, or through the payload's JSON value for a type without one.
///
/// A payload that is not a valid encoding of the message is
/// [`DecodeErrorKind::InvalidProtobuf`](crate::error::DecodeErrorKind::InvalidProtobuf); one
/// that is, but does not make an `E` (a missing required property, a value out of range), is
/// [`DecodeErrorKind::SchemaMismatch`](crate::error::DecodeErrorKind::SchemaMismatch). Both
/// name where.
pub fn decode<E: Event>(payload: &[u8]) -> Result<E, DecodeError> {
    decode_with(E::PROTO, E::PROTO_CODEC, payload)
}
