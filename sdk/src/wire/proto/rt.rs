//! What the generated protobuf encoders and decoders call (not an API of its own).
//!
//! The codegen writes, for every event version, one encoder and one decoder per object message
//! of the event, straight over the Rust types typify generated: no descriptor is read and no
//! JSON value is built. They write exactly the bytes the descriptor-driven codec writes from
//! the event's JSON value (field order: the struct's, which is serde's), and read what it
//! reads. A failure of either carries no detail ([`Fail`]): the caller does the work again
//! through the event's JSON value ([`super::encode_value`], [`super::decode_value`]), whose
//! errors name the field and the reason.
//!
//! Values that are strings in JSON but not `String` in Rust (times, UUIDs, string enums,
//! constrained newtypes) go through their serde string form ([`str_form`], [`read_str_form`]).

use std::fmt;

pub use prost::encoding::WireType;
use prost::encoding::{
    DecodeContext, decode_key, decode_varint, encode_key, encode_varint, encoded_len_varint,
    skip_field,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde::ser::{self, Impossible};

/// The generated code gave up (the caller does the work again through the JSON value, which
/// names what is wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fail;

/// What generated code returns.
pub type R<T> = Result<T, Fail>;

/// How deep messages may nest in a payload (as prost's default): a recursive schema must not
/// let a hostile payload exhaust the stack.
pub const MAX_DEPTH: u32 = 100;

/// The generated encoder and decoder of an event type
/// ([`Event::PROTO_CODEC`](crate::Event::PROTO_CODEC)).
pub struct Codec<T> {
    /// Appends the encoded message (its fields, no length) to the buffer.
    pub encode: fn(&T, &mut Vec<u8>) -> R<()>,
    /// Decodes a whole message nested `depth` deep (0 for an event); fails past
    /// [`MAX_DEPTH`].
    pub decode: fn(&[u8], u32) -> R<T>,
}

impl<T> Clone for Codec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Codec<T> {}

impl<T> fmt::Debug for Codec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Codec")
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Starts length-delimited field `number`: writes its key and reserves one byte for the length,
/// widened by [`end`] if the body is longer (no temporary buffer). Returns where.
#[inline]
pub fn begin(w: &mut Vec<u8>, number: u32) -> usize {
    encode_key(number, WireType::LengthDelimited, w);
    w.push(0);
    w.len() - 1
}

/// Ends the body begun at `start`, writing its length.
#[inline]
pub fn end(w: &mut Vec<u8>, start: usize) {
    let len = w.len() - start - 1;
    if len < 0x80 {
        w[start] = len as u8;
        return;
    }
    let width = encoded_len_varint(len as u64);
    w.splice(start + 1..start + 1, std::iter::repeat_n(0, width - 1));
    let mut slot = &mut w[start..start + width];
    encode_varint(len as u64, &mut slot);
}

/// A `string` field.
#[inline]
pub fn string(w: &mut Vec<u8>, number: u32, s: &str) {
    encode_key(number, WireType::LengthDelimited, w);
    encode_varint(s.len() as u64, w);
    w.extend_from_slice(s.as_bytes());
}

/// A `string` field holding the serde string form of `value` (a time, a UUID, a string enum,
/// a constrained newtype of a string).
#[inline]
pub fn str_form<T: Serialize + ?Sized>(w: &mut Vec<u8>, number: u32, value: &T) -> R<()> {
    let start = begin(w, number);
    value.serialize(StrForm(w)).map_err(|_| Fail)?;
    end(w, start);
    Ok(())
}

/// A `string` field holding the JSON text of `value`.
pub fn json<T: Serialize + ?Sized>(w: &mut Vec<u8>, number: u32, value: &T) -> R<()> {
    let start = begin(w, number);
    serde_json::to_writer(&mut *w, value).map_err(|_| Fail)?;
    end(w, start);
    Ok(())
}

/// A `sint64` field.
#[inline]
pub fn sint<T: Int>(w: &mut Vec<u8>, number: u32, value: &T) -> R<()> {
    encode_key(number, WireType::Varint, w);
    sint_item(w, value)
}

/// A `uint64` field.
#[inline]
pub fn uint<T: Int>(w: &mut Vec<u8>, number: u32, value: &T) -> R<()> {
    encode_key(number, WireType::Varint, w);
    uint_item(w, value)
}

/// A `double` field.
#[inline]
pub fn double<T: Float>(w: &mut Vec<u8>, number: u32, value: &T) {
    encode_key(number, WireType::SixtyFourBit, w);
    double_item(w, value);
}

/// A `bool` field.
#[inline]
pub fn boolean(w: &mut Vec<u8>, number: u32, value: &bool) {
    encode_key(number, WireType::Varint, w);
    bool_item(w, value);
}

/// A `sint64` value without key (packed).
#[inline]
pub fn sint_item<T: Int>(w: &mut Vec<u8>, value: &T) -> R<()> {
    let n = value.to_i64().ok_or(Fail)?;
    encode_varint(((n << 1) ^ (n >> 63)) as u64, w);
    Ok(())
}

/// A `uint64` value without key (packed).
#[inline]
pub fn uint_item<T: Int>(w: &mut Vec<u8>, value: &T) -> R<()> {
    encode_varint(value.to_u64().ok_or(Fail)?, w);
    Ok(())
}

/// A `double` value without key (packed).
#[inline]
pub fn double_item<T: Float>(w: &mut Vec<u8>, value: &T) {
    w.extend_from_slice(&value.to_f64().to_le_bytes());
}

/// A `bool` value without key (packed).
#[inline]
pub fn bool_item(w: &mut Vec<u8>, value: &bool) {
    w.push(u8::from(*value));
}

// ---------------------------------------------------------------------------------------------
// Reading

/// The next field key.
#[inline]
pub fn key(b: &mut &[u8]) -> R<(u32, WireType)> {
    decode_key(b).map_err(|_| Fail)
}

/// Skips a field the message does not know.
pub fn skip(number: u32, wire: WireType, b: &mut &[u8]) -> R<()> {
    skip_field(wire, number, b, DecodeContext::default()).map_err(|_| Fail)
}

fn expect(wire: WireType, expected: WireType) -> R<()> {
    if wire == expected { Ok(()) } else { Err(Fail) }
}

/// The body of a length-delimited field.
#[inline]
pub fn delimited<'a>(wire: WireType, b: &mut &'a [u8]) -> R<&'a [u8]> {
    expect(wire, WireType::LengthDelimited)?;
    let len = decode_varint(b).map_err(|_| Fail)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= b.len())
        .ok_or(Fail)?;
    let (body, rest) = b.split_at(len);
    *b = rest;
    Ok(body)
}

fn text<'a>(wire: WireType, b: &mut &'a [u8]) -> R<&'a str> {
    std::str::from_utf8(delimited(wire, b)?).map_err(|_| Fail)
}

/// A `string` field as a `String`.
#[inline]
pub fn read_string(wire: WireType, b: &mut &[u8]) -> R<String> {
    text(wire, b).map(str::to_string)
}

/// A `string` field as a value read from its serde string form.
#[inline]
pub fn read_str_form<T: DeserializeOwned>(wire: WireType, b: &mut &[u8]) -> R<T> {
    let s = text(wire, b)?;
    T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s))
        .map_err(|_| Fail)
}

/// A `string` field holding JSON text, as the value it describes.
pub fn read_json<T: DeserializeOwned>(wire: WireType, b: &mut &[u8]) -> R<T> {
    serde_json::from_slice(delimited(wire, b)?).map_err(|_| Fail)
}

fn varint(wire: WireType, b: &mut &[u8]) -> R<u64> {
    expect(wire, WireType::Varint)?;
    decode_varint(b).map_err(|_| Fail)
}

/// A `sint64` value.
#[inline]
pub fn read_sint<T: Int>(wire: WireType, b: &mut &[u8]) -> R<T> {
    let n = varint(wire, b)?;
    T::from_i64(((n >> 1) as i64) ^ -((n & 1) as i64)).ok_or(Fail)
}

/// A `uint64` value.
#[inline]
pub fn read_uint<T: Int>(wire: WireType, b: &mut &[u8]) -> R<T> {
    T::from_u64(varint(wire, b)?).ok_or(Fail)
}

/// A `bool` value.
#[inline]
pub fn read_bool(wire: WireType, b: &mut &[u8]) -> R<bool> {
    Ok(varint(wire, b)? != 0)
}

/// A `double` value (a JSON number: finite).
#[inline]
pub fn read_double<T: Float>(wire: WireType, b: &mut &[u8]) -> R<T> {
    expect(wire, WireType::SixtyFourBit)?;
    let (bytes, rest) = b.split_first_chunk::<8>().ok_or(Fail)?;
    *b = rest;
    let n = f64::from_le_bytes(*bytes);
    if n.is_finite() {
        Ok(T::from_f64(n))
    } else {
        Err(Fail)
    }
}

/// One occurrence of a repeated numeric field: packed (several values) or not (one), as
/// protobuf lets a producer choose. `item` is the wire type of one value.
#[inline]
pub fn read_repeated<T>(
    wire: WireType,
    b: &mut &[u8],
    item: WireType,
    read: fn(WireType, &mut &[u8]) -> R<T>,
    out: &mut Vec<T>,
) -> R<()> {
    if wire == WireType::LengthDelimited {
        let mut packed = delimited(wire, b)?;
        while !packed.is_empty() {
            out.push(read(item, &mut packed)?);
        }
        Ok(())
    } else {
        out.push(read(wire, b)?);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers

/// The integer types typify generates: read and written as 64-bit protobuf integers.
pub trait Int: Sized {
    /// As a signed 64-bit integer, if it fits.
    fn to_i64(&self) -> Option<i64>;
    /// As an unsigned 64-bit integer, if it fits.
    fn to_u64(&self) -> Option<u64>;
    /// From a signed 64-bit integer, if it fits.
    fn from_i64(n: i64) -> Option<Self>;
    /// From an unsigned 64-bit integer, if it fits.
    fn from_u64(n: u64) -> Option<Self>;
}

macro_rules! int {
    ($($t:ty),*) => {$(
        impl Int for $t {
            #[inline]
            fn to_i64(&self) -> Option<i64> {
                i64::try_from(*self).ok()
            }
            #[inline]
            fn to_u64(&self) -> Option<u64> {
                u64::try_from(*self).ok()
            }
            #[inline]
            fn from_i64(n: i64) -> Option<Self> {
                Self::try_from(n).ok()
            }
            #[inline]
            fn from_u64(n: u64) -> Option<Self> {
                Self::try_from(n).ok()
            }
        }
    )*};
}

int!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

macro_rules! non_zero {
    ($($t:ty),*) => {$(
        impl Int for std::num::NonZero<$t> {
            #[inline]
            fn to_i64(&self) -> Option<i64> {
                self.get().to_i64()
            }
            #[inline]
            fn to_u64(&self) -> Option<u64> {
                self.get().to_u64()
            }
            #[inline]
            fn from_i64(n: i64) -> Option<Self> {
                Self::new(<$t>::from_i64(n)?)
            }
            #[inline]
            fn from_u64(n: u64) -> Option<Self> {
                Self::new(<$t>::from_u64(n)?)
            }
        }
    )*};
}

non_zero!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

/// The float types typify generates: read and written as `double`.
pub trait Float {
    /// As `f64`.
    fn to_f64(&self) -> f64;
    /// From `f64` (as serde does from a JSON number).
    fn from_f64(n: f64) -> Self;
}

impl Float for f64 {
    #[inline]
    fn to_f64(&self) -> f64 {
        *self
    }
    #[inline]
    fn from_f64(n: f64) -> Self {
        n
    }
}

impl Float for f32 {
    #[inline]
    fn to_f64(&self) -> f64 {
        f64::from(*self)
    }
    #[inline]
    fn from_f64(n: f64) -> Self {
        n as f32
    }
}

// ---------------------------------------------------------------------------------------------
// The serde string form

/// A value that is not a string in serde's data model.
#[derive(Debug)]
struct NotAString;

impl fmt::Display for NotAString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a string")
    }
}

impl std::error::Error for NotAString {}

impl ser::Error for NotAString {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotAString
    }
}

/// Appends the string a value serializes as (a string, a unit variant, a newtype of either,
/// a `collect_str` value) to the buffer; refuses anything else.
struct StrForm<'a>(&'a mut Vec<u8>);

struct Appender<'a>(&'a mut Vec<u8>);

impl fmt::Write for Appender<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

macro_rules! refuse {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<(), NotAString> {
            Err(NotAString)
        })*
    };
}

impl ser::Serializer for StrForm<'_> {
    type Ok = ();
    type Error = NotAString;
    type SerializeSeq = Impossible<(), NotAString>;
    type SerializeTuple = Impossible<(), NotAString>;
    type SerializeTupleStruct = Impossible<(), NotAString>;
    type SerializeTupleVariant = Impossible<(), NotAString>;
    type SerializeMap = Impossible<(), NotAString>;
    type SerializeStruct = Impossible<(), NotAString>;
    type SerializeStructVariant = Impossible<(), NotAString>;

    fn serialize_str(self, v: &str) -> Result<(), NotAString> {
        self.0.extend_from_slice(v.as_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), NotAString> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), NotAString> {
        fmt::write(&mut Appender(self.0), format_args!("{value}")).map_err(|_| NotAString)
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), NotAString> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), NotAString> {
        value.serialize(self)
    }

    refuse! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_bytes(&[u8]),
        serialize_none(), serialize_unit(), serialize_unit_struct(&'static str),
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), NotAString> {
        Err(NotAString)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotAString> {
        Err(NotAString)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotAString> {
        Err(NotAString)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotAString> {
        Err(NotAString)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotAString> {
        Err(NotAString)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotAString> {
        Err(NotAString)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotAString> {
        Err(NotAString)
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, NotAString> {
        Err(NotAString)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotAString> {
        Err(NotAString)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Channel {
        #[serde(rename = "web")]
        Web,
    }

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(v: T, text: &str) {
        let mut w = Vec::new();
        str_form(&mut w, 1, &v).unwrap();
        let mut b = &w[..];
        let (number, wire) = key(&mut b).unwrap();
        assert_eq!(number, 1);
        let mut probe = b;
        assert_eq!(read_string(wire, &mut probe).unwrap(), text);
        assert_eq!(read_str_form::<T>(wire, &mut b).unwrap(), v);
        assert!(b.is_empty());
    }

    #[test]
    fn string_forms_round_trip() {
        round_trip(
            chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
            "2026-11-23T10:00:00Z",
        );
        round_trip(
            uuid::Uuid::parse_str("0190a000-0000-7000-8000-000000000006").unwrap(),
            "0190a000-0000-7000-8000-000000000006",
        );
        round_trip(Channel::Web, "web");
        round_trip("x".repeat(300), &"x".repeat(300));
        let mut w = Vec::new();
        assert_eq!(str_form(&mut w, 1, &7u8), Err(Fail));
    }

    #[test]
    fn integers_refuse_what_does_not_fit() {
        let mut w = Vec::new();
        assert_eq!(sint(&mut w, 1, &u64::MAX), Err(Fail));
        assert_eq!(uint(&mut w, 1, &-1i64), Err(Fail));
        let mut w = Vec::new();
        uint(&mut w, 1, &0u64).unwrap();
        let mut b = &w[1..];
        assert_eq!(
            read_uint::<std::num::NonZeroU64>(WireType::Varint, &mut b),
            Err(Fail)
        );
    }
}
