//! Decoding straight from protobuf bytes into an event: a serde `Deserializer` driven by the
//! message descriptor, so no intermediate JSON value is built and strings are borrowed from the
//! payload until the event takes them.
//!
//! It yields exactly what [`read_message`](super::read_message) would put into a JSON value
//! (the same fields, the same empties for absent required fields), so an event decodes to the
//! same value either way. Its errors are plain messages: the caller decodes again through the
//! JSON value to classify and locate a failure (malformed protobuf or schema mismatch).

use std::fmt;

use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

use super::{Field, Kind, Message, Shape};

/// Why the fast path gave up; the caller re-decodes for the real error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct Error(String);

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

fn malformed(what: impl fmt::Display) -> Error {
    Error(format!("malformed protobuf: {what}"))
}

/// One occurrence of a field in a message body.
#[derive(Clone, Copy)]
struct Occurrence<'de> {
    /// Index of the field in its message's `fields`.
    field: usize,
    wire: WireType,
    /// The value's bytes: a varint, 8 bytes, or a length-delimited body.
    bytes: &'de [u8],
}

/// Splits a message body into its known fields' occurrences, grouped by field (in field order,
/// occurrences in payload order); unknown fields are skipped.
fn scan<'de>(m: &'static Message, mut buf: &'de [u8]) -> Result<Vec<Occurrence<'de>>, Error> {
    let mut out = Vec::with_capacity(m.fields.len());
    let mut sorted = true;
    while !buf.is_empty() {
        let (number, wire) = decode_key(&mut buf).map_err(malformed)?;
        let Ok(field) = m.fields.binary_search_by_key(&number, |f| f.number) else {
            skip_field(wire, number, &mut buf, DecodeContext::default()).map_err(malformed)?;
            continue;
        };
        let start = buf;
        let bytes = match wire {
            WireType::Varint => {
                decode_varint(&mut buf).map_err(malformed)?;
                &start[..start.len() - buf.len()]
            }
            WireType::SixtyFourBit => {
                let (head, rest) = buf
                    .split_at_checked(8)
                    .ok_or_else(|| malformed("truncated 64-bit value"))?;
                buf = rest;
                head
            }
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf).map_err(malformed)?;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= buf.len())
                    .ok_or_else(|| malformed("length past the end"))?;
                let (head, rest) = buf.split_at(len);
                buf = rest;
                head
            }
            other => return Err(malformed(format!("unexpected wire type {other:?}"))),
        };
        sorted &= out.last().is_none_or(|o: &Occurrence<'_>| o.field <= field);
        out.push(Occurrence { field, wire, bytes });
    }
    if !sorted {
        out.sort_by_key(|o| o.field);
    }
    Ok(out)
}

/// A message body as a map of its fields (an object), or as the value of its field 1 (a
/// wrapper).
pub(super) struct MessageDe<'de> {
    pub(super) message: &'static Message,
    pub(super) bytes: &'de [u8],
}

impl<'de> de::Deserializer<'de> for MessageDe<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let occurrences = scan(self.message, self.bytes)?;
        if self.message.shape == Shape::Object {
            return visitor.visit_map(Fields {
                message: self.message,
                occurrences: &occurrences,
                next_field: 0,
                pending: None,
            });
        }
        let field = &self.message.fields[0];
        match FieldDe::new(field, &occurrences) {
            Some(de) => de.deserialize_any(visitor),
            None => Empty::of(field).deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.message.shape == Shape::Object {
            return visitor.visit_some(self);
        }
        let occurrences = scan(self.message, self.bytes)?;
        let field = &self.message.fields[0];
        match FieldDe::new(field, &occurrences) {
            Some(de) => de.deserialize_option(visitor),
            None => Empty::of(field).deserialize_option(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// The fields of an object message, then the empties of its absent required fields.
struct Fields<'a, 'de> {
    message: &'static Message,
    occurrences: &'a [Occurrence<'de>],
    /// Next field index to consider for an empty (absent required field).
    next_field: usize,
    pending: Option<Pending<'a, 'de>>,
}

enum Pending<'a, 'de> {
    Present(FieldDe<'a, 'de>),
    Absent(Empty),
}

impl<'a, 'de> MapAccess<'de> for Fields<'a, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        // Present fields in field order, absent required ones among them.
        while self.next_field < self.message.fields.len() {
            let index = self.next_field;
            self.next_field += 1;
            let field = &self.message.fields[index];
            let count = self
                .occurrences
                .iter()
                .take_while(|o| o.field == index)
                .count();
            if count > 0 {
                let (mine, rest) = self.occurrences.split_at(count);
                self.occurrences = rest;
                self.pending = Some(Pending::Present(FieldDe {
                    field,
                    occurrences: mine,
                }));
            } else if let Some(empty) = Empty::required(field) {
                self.pending = Some(Pending::Absent(empty));
            } else {
                continue;
            }
            return seed
                .deserialize(BorrowedStrDeserializer::new(field.name))
                .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        match self.pending.take() {
            Some(Pending::Present(de)) => seed.deserialize(de),
            Some(Pending::Absent(empty)) => seed.deserialize(empty),
            None => Err(Error("value requested before key".into())),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        None
    }
}

/// All occurrences of one field: a sequence (repeated), a map, or the last occurrence.
struct FieldDe<'a, 'de> {
    field: &'static Field,
    occurrences: &'a [Occurrence<'de>],
}

impl<'a, 'de> FieldDe<'a, 'de> {
    fn new(field: &'static Field, occurrences: &'a [Occurrence<'de>]) -> Option<Self> {
        (!occurrences.is_empty()).then_some(Self { field, occurrences })
    }

    fn last(&self) -> ValueDe<'de> {
        let o = self.occurrences[self.occurrences.len() - 1];
        ValueDe {
            kind: self.field.kind,
            wire: o.wire,
            bytes: o.bytes,
        }
    }
}

impl<'a, 'de> de::Deserializer<'de> for FieldDe<'a, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.field.repeated {
            return visitor.visit_seq(Items {
                kind: self.field.kind,
                occurrences: self.occurrences,
                packed: &[],
            });
        }
        if let Kind::Map(entry) = self.field.kind {
            return visitor.visit_map(Entries {
                entry,
                occurrences: self.occurrences,
                value: None,
            });
        }
        self.last().deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.field.repeated || matches!(self.field.kind, Kind::Map(_)) {
            return visitor.visit_some(self);
        }
        self.last().deserialize_option(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if self.field.repeated || matches!(self.field.kind, Kind::Map(_)) {
            return self.deserialize_any(visitor);
        }
        self.last().deserialize_enum(name, variants, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// The items of a repeated field, packed or not.
struct Items<'a, 'de> {
    kind: Kind,
    occurrences: &'a [Occurrence<'de>],
    /// The rest of a packed occurrence being read.
    packed: &'de [u8],
}

impl<'a, 'de> SeqAccess<'de> for Items<'a, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let packable = matches!(
            self.kind,
            Kind::Sint64 | Kind::Uint64 | Kind::Double | Kind::Bool
        );
        if self.packed.is_empty() {
            let Some((o, rest)) = self.occurrences.split_first() else {
                return Ok(None);
            };
            self.occurrences = rest;
            if !(packable && o.wire == WireType::LengthDelimited) {
                return seed
                    .deserialize(ValueDe {
                        kind: self.kind,
                        wire: o.wire,
                        bytes: o.bytes,
                    })
                    .map(Some);
            }
            if o.bytes.is_empty() {
                // An empty packed run: no items.
                return self.next_element_seed(seed);
            }
            self.packed = o.bytes;
        }
        let start = self.packed;
        let (wire, bytes) = if self.kind == Kind::Double {
            let (head, rest) = self
                .packed
                .split_at_checked(8)
                .ok_or_else(|| malformed("truncated packed double"))?;
            self.packed = rest;
            (WireType::SixtyFourBit, head)
        } else {
            decode_varint(&mut self.packed).map_err(malformed)?;
            (WireType::Varint, &start[..start.len() - self.packed.len()])
        };
        seed.deserialize(ValueDe {
            kind: self.kind,
            wire,
            bytes,
        })
        .map(Some)
    }
}

/// The entries of a map field.
struct Entries<'a, 'de> {
    entry: &'static Message,
    occurrences: &'a [Occurrence<'de>],
    value: Option<EntryValue<'de>>,
}

enum EntryValue<'de> {
    Present(ValueDe<'de>),
    /// Missing: protobuf's default for the value kind.
    Default(Kind),
}

impl<'a, 'de> MapAccess<'de> for Entries<'a, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((o, rest)) = self.occurrences.split_first() else {
            return Ok(None);
        };
        self.occurrences = rest;
        if o.wire != WireType::LengthDelimited {
            return Err(malformed("a map entry that is not length-delimited"));
        }
        let value_kind = self.entry.fields[1].kind;
        let mut body = o.bytes;
        let mut key: &'de str = "";
        let mut value = EntryValue::Default(value_kind);
        while !body.is_empty() {
            let (number, wire) = decode_key(&mut body).map_err(malformed)?;
            match number {
                1 | 2 => {
                    let start = body;
                    let bytes = match wire {
                        WireType::LengthDelimited => {
                            let len = decode_varint(&mut body).map_err(malformed)?;
                            let len = usize::try_from(len)
                                .ok()
                                .filter(|&l| l <= body.len())
                                .ok_or_else(|| malformed("length past the end"))?;
                            let (head, rest) = body.split_at(len);
                            body = rest;
                            head
                        }
                        WireType::Varint => {
                            decode_varint(&mut body).map_err(malformed)?;
                            &start[..start.len() - body.len()]
                        }
                        WireType::SixtyFourBit => {
                            let (head, rest) = body
                                .split_at_checked(8)
                                .ok_or_else(|| malformed("truncated 64-bit value"))?;
                            body = rest;
                            head
                        }
                        other => return Err(malformed(format!("wire type {other:?}"))),
                    };
                    if number == 1 {
                        if wire != WireType::LengthDelimited {
                            return Err(malformed("a map key that is not a string"));
                        }
                        key = std::str::from_utf8(bytes).map_err(malformed)?;
                    } else {
                        value = EntryValue::Present(ValueDe {
                            kind: value_kind,
                            wire,
                            bytes,
                        });
                    }
                }
                _ => skip_field(wire, number, &mut body, DecodeContext::default())
                    .map_err(malformed)?,
            }
        }
        self.value = Some(value);
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        match self.value.take() {
            Some(EntryValue::Present(de)) => seed.deserialize(de),
            Some(EntryValue::Default(kind)) => seed.deserialize(ValueDe::default_of(kind)),
            None => Err(Error("value requested before key".into())),
        }
    }
}

/// One value of a field.
#[derive(Clone, Copy)]
struct ValueDe<'de> {
    kind: Kind,
    wire: WireType,
    bytes: &'de [u8],
}

impl<'de> ValueDe<'de> {
    /// Protobuf's default value of `kind` (what a map entry without a value holds), encoded.
    fn default_of(kind: Kind) -> Self {
        let (wire, bytes): (WireType, &'static [u8]) = match kind {
            Kind::Sint64 | Kind::Uint64 | Kind::Bool => (WireType::Varint, &[0]),
            Kind::Double => (WireType::SixtyFourBit, &[0; 8]),
            Kind::Json => (WireType::LengthDelimited, b"null"),
            Kind::String | Kind::Message(_) | Kind::Map(_) => (WireType::LengthDelimited, &[]),
        };
        Self { kind, wire, bytes }
    }

    fn expect(&self, wire: WireType) -> Result<(), Error> {
        if self.wire == wire {
            Ok(())
        } else {
            Err(malformed(format!(
                "wire type {:?} where {wire:?} was expected",
                self.wire
            )))
        }
    }

    fn varint(&self) -> Result<u64, Error> {
        self.expect(WireType::Varint)?;
        decode_varint(&mut &self.bytes[..]).map_err(malformed)
    }

    fn str(&self) -> Result<&'de str, Error> {
        self.expect(WireType::LengthDelimited)?;
        std::str::from_utf8(self.bytes).map_err(malformed)
    }

    fn json(&self) -> Result<serde_json::Deserializer<serde_json::de::SliceRead<'de>>, Error> {
        self.expect(WireType::LengthDelimited)?;
        Ok(serde_json::Deserializer::from_slice(self.bytes))
    }
}

/// Runs `f` on a JSON-text deserializer and checks nothing follows the value.
fn with_json<'de, T>(
    mut json: serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
    f: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
    ) -> Result<T, serde_json::Error>,
) -> Result<T, Error> {
    let value = f(&mut json).map_err(de::Error::custom)?;
    json.end().map_err(de::Error::custom)?;
    Ok(value)
}

impl<'de> de::Deserializer<'de> for ValueDe<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind {
            Kind::String => visitor.visit_borrowed_str(self.str()?),
            Kind::Json => with_json(self.json()?, |j| {
                de::Deserializer::deserialize_any(j, visitor)
            }),
            Kind::Sint64 => {
                let n = self.varint()?;
                visitor.visit_i64(((n >> 1) as i64) ^ -((n & 1) as i64))
            }
            Kind::Uint64 => visitor.visit_u64(self.varint()?),
            Kind::Bool => visitor.visit_bool(self.varint()? != 0),
            Kind::Double => {
                self.expect(WireType::SixtyFourBit)?;
                let bytes: [u8; 8] = self
                    .bytes
                    .try_into()
                    .map_err(|_| malformed("a double is 8 bytes"))?;
                let n = f64::from_le_bytes(bytes);
                if !n.is_finite() {
                    return Err(Error(format!("{n} is not a JSON number")));
                }
                visitor.visit_f64(n)
            }
            Kind::Message(m) => {
                self.expect(WireType::LengthDelimited)?;
                MessageDe {
                    message: m,
                    bytes: self.bytes,
                }
                .deserialize_any(visitor)
            }
            Kind::Map(_) => Err(Error("a map value inside a map value".into())),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind {
            Kind::Json => with_json(self.json()?, |j| {
                de::Deserializer::deserialize_option(j, visitor)
            }),
            Kind::Message(m) if m.shape == Shape::Wrapper => {
                self.expect(WireType::LengthDelimited)?;
                MessageDe {
                    message: m,
                    bytes: self.bytes,
                }
                .deserialize_option(visitor)
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.kind {
            Kind::String => visitor.visit_enum(BorrowedStrDeserializer::<Error>::new(self.str()?)),
            Kind::Json => with_json(self.json()?, |j| {
                de::Deserializer::deserialize_enum(j, name, variants, visitor)
            }),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.kind {
            Kind::Json => with_json(self.json()?, |j| {
                de::Deserializer::deserialize_newtype_struct(j, name, visitor)
            }),
            _ => visitor.visit_newtype_struct(self),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// What an absent field is, as the JSON value would have it.
#[derive(Clone, Copy)]
enum Empty {
    Null,
    Array,
    Object,
}

impl Empty {
    /// The value of an absent required field, if it has one (a nullable field is null, a
    /// repeated one empty, a map empty); a required scalar has none and stays missing.
    fn required(field: &Field) -> Option<Empty> {
        if !field.required {
            None
        } else if field.nullable {
            Some(Empty::Null)
        } else if field.repeated {
            Some(Empty::Array)
        } else if matches!(field.kind, Kind::Map(_)) {
            Some(Empty::Object)
        } else {
            None
        }
    }

    /// The value of a wrapper's absent field 1 (always required).
    fn of(field: &Field) -> Empty {
        Empty::required(field).unwrap_or(Empty::Null)
    }
}

impl<'de> de::Deserializer<'de> for Empty {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Empty::Null => visitor.visit_unit(),
            Empty::Array => visitor.visit_seq(de::value::SeqDeserializer::<
                std::iter::Empty<()>,
                Error,
            >::new(std::iter::empty())),
            Empty::Object => visitor.visit_map(de::value::MapDeserializer::<
                std::iter::Empty<((), ())>,
                Error,
            >::new(std::iter::empty())),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Empty::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}
