//! Encoding an event straight into protobuf bytes: a serde `Serializer` driven by the message
//! descriptor, so no intermediate JSON value is built.
//!
//! It writes the same bytes as [`Writer::message`] does from the event's JSON value, except for
//! the order of fields (the event's, not the field numbers'; protobuf allows any order).
//! Wrapper messages — rare, and absent from most catalogs — are written from the JSON value of
//! just that property. Errors are plain messages: the caller encodes again through the JSON
//! value to locate a failure.

use std::fmt;

use prost::encoding::{WireType, encode_key, encode_varint};
use serde::ser::{self, Impossible, Serialize};

use super::{Field, Kind, Message, Shape, Writer};

/// Why the direct path gave up; the caller re-encodes for the real error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct Error(String);

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

fn unexpected<T>(what: &str, kind: Kind) -> Result<T, Error> {
    Err(Error(format!("{what} for a field of kind {kind:?}")))
}

/// `serialize_*` methods that refuse: the value is not what the caller can take.
macro_rules! refuse {
    ($what:literal; $($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<Self::Ok, Error> {
            Err(Error(concat!("expected ", $what).into()))
        })*
    };
}

/// The `serialize_*` methods of a serializer that takes only objects (or only strings): every
/// other shape is refused.
macro_rules! only {
    ($what:literal; $($method:ident($($arg:ty),*)),* $(,)?) => {
        refuse! { $what; $($method($($arg),*)),* }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<Self::Ok, Error> {
            Err(Error(concat!("expected ", $what).into()))
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
            Err(Error(concat!("expected ", $what).into()))
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
            Err(Error(concat!("expected ", $what).into()))
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Error> {
            Err(Error(concat!("expected ", $what).into()))
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Error> {
            Err(Error(concat!("expected ", $what).into()))
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Error> {
            Err(Error(concat!("expected ", $what).into()))
        }
    };
}

/// Writes `value` as the fields of object message `m` (no key or length of its own).
pub(super) fn message<T: Serialize + ?Sized>(
    w: &mut Writer,
    m: &'static Message,
    value: &T,
) -> Result<(), Error> {
    if m.shape != Shape::Object {
        return via_value(w, &m.fields[0], value);
    }
    value.serialize(Top { w, m })
}

/// One property: JSON text and wrappers handled here, where the whole value is at hand.
fn write_field<T: Serialize + ?Sized>(
    w: &mut Writer,
    f: &'static Field,
    value: &T,
) -> Result<(), Error> {
    match f.kind {
        Kind::Json if !f.repeated => json_text(w, f.number, value),
        Kind::Message(m) if m.shape == Shape::Wrapper => via_value(w, f, value),
        kind => value.serialize(ValueSer {
            w,
            number: f.number,
            kind,
            repeated: f.repeated,
            keyed: true,
            item: false,
        }),
    }
}

fn json_text<T: Serialize + ?Sized>(w: &mut Writer, number: u32, value: &T) -> Result<(), Error> {
    encode_key(number, WireType::LengthDelimited, &mut w.buf);
    let start = w.begin();
    serde_json::to_writer(&mut w.buf, value).map_err(|e| Error(e.to_string()))?;
    w.finish(start);
    Ok(())
}

/// A field written from the property's JSON value (the general path, for wrappers).
fn via_value<T: Serialize + ?Sized>(
    w: &mut Writer,
    f: &'static Field,
    value: &T,
) -> Result<(), Error> {
    let value = serde_json::to_value(value).map_err(|e| Error(e.to_string()))?;
    w.field(f, &value).map_err(|e| Error(e.detail))
}

/// The event itself: an object whose properties are the root message's fields.
struct Top<'a> {
    w: &'a mut Writer,
    m: &'static Message,
}

/// The properties of an object being written; `start` is the body to close at the end (none
/// for the event itself).
struct Fields<'a> {
    w: &'a mut Writer,
    m: &'static Message,
    start: Option<usize>,
    pending: Option<&'static Field>,
}

fn field_of(m: &'static Message, name: &str) -> Result<&'static Field, Error> {
    m.field_named(name).ok_or_else(|| {
        Error(format!(
            "property `{name}` is not in the schema of {}",
            m.name
        ))
    })
}

impl<'a> Fields<'a> {
    fn close(self) -> Result<(), Error> {
        if let Some(start) = self.start {
            self.w.finish(start);
        }
        Ok(())
    }
}

impl ser::SerializeStruct for Fields<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let f = field_of(self.m, key)?;
        write_field(self.w, f, value)
    }

    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeMap for Fields<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        let m = self.m;
        self.pending = Some(key.serialize(KeyWith(|name: &str| field_of(m, name)))?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let f = self
            .pending
            .take()
            .ok_or_else(|| Error("value before key".into()))?;
        write_field(self.w, f, value)
    }

    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// The items of a repeated field; `packed` is the body of a packed run.
struct Items<'a> {
    w: &'a mut Writer,
    number: u32,
    kind: Kind,
    packed: Option<usize>,
}

impl ser::SerializeSeq for Items<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        match self.kind {
            Kind::Json => json_text(self.w, self.number, value),
            Kind::Message(m) if m.shape == Shape::Wrapper => {
                let value = serde_json::to_value(value).map_err(|e| Error(e.to_string()))?;
                self.w
                    .single(self.number, self.kind, &value)
                    .map_err(|e| Error(e.detail))
            }
            kind => value.serialize(ValueSer {
                w: self.w,
                number: self.number,
                kind,
                repeated: false,
                keyed: self.packed.is_none(),
                item: true,
            }),
        }
    }

    fn end(self) -> Result<(), Error> {
        if let Some(start) = self.packed {
            self.w.finish(start);
        }
        Ok(())
    }
}

/// The entries of a map field: each a length-delimited `{1: key, 2: value}`.
struct Entries<'a> {
    w: &'a mut Writer,
    number: u32,
    entry: &'static Message,
    start: Option<usize>,
}

impl ser::SerializeMap for Entries<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        encode_key(self.number, WireType::LengthDelimited, &mut self.w.buf);
        self.start = Some(self.w.begin());
        let w = &mut *self.w;
        key.serialize(KeyWith(|k: &str| {
            w.string(1, k);
            Ok(())
        }))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let start = self
            .start
            .take()
            .ok_or_else(|| Error("value before key".into()))?;
        write_field(self.w, &self.entry.fields[1], value)?;
        self.w.finish(start);
        Ok(())
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// One value of a field: its key (unless inside a packed run) and payload.
struct ValueSer<'a> {
    w: &'a mut Writer,
    number: u32,
    kind: Kind,
    /// The field is repeated and this is the whole array.
    repeated: bool,
    /// Write the field key (not inside a packed run).
    keyed: bool,
    /// An array item (null is not an item).
    item: bool,
}

impl<'a> ValueSer<'a> {
    fn key(&mut self, wire: WireType) {
        if self.keyed {
            encode_key(self.number, wire, &mut self.w.buf);
        }
    }

    fn int(mut self, n: i128) -> Result<(), Error> {
        match self.kind {
            Kind::Sint64 if !self.repeated => {
                let n = i64::try_from(n).map_err(|_| Error(format!("{n} is out of range")))?;
                self.key(WireType::Varint);
                encode_varint(((n << 1) ^ (n >> 63)) as u64, &mut self.w.buf);
                Ok(())
            }
            Kind::Uint64 if !self.repeated => {
                let n = u64::try_from(n).map_err(|_| Error(format!("{n} is out of range")))?;
                self.key(WireType::Varint);
                encode_varint(n, &mut self.w.buf);
                Ok(())
            }
            Kind::Double if !self.repeated => self.serialize_f64_inner(n as f64),
            kind => unexpected("an integer", kind),
        }
    }

    fn serialize_f64_inner(mut self, n: f64) -> Result<(), Error> {
        if self.kind != Kind::Double || self.repeated {
            return unexpected("a number", self.kind);
        }
        self.key(WireType::SixtyFourBit);
        self.w.buf.extend_from_slice(&n.to_le_bytes());
        Ok(())
    }

    fn str(self, s: &str) -> Result<(), Error> {
        if self.kind != Kind::String || self.repeated {
            return unexpected("a string", self.kind);
        }
        self.w.string(self.number, s);
        Ok(())
    }

    /// A nested object message: key, then its body.
    fn object(self) -> Result<Fields<'a>, Error> {
        match self.kind {
            Kind::Message(m) if m.shape == Shape::Object && !self.repeated => {
                encode_key(self.number, WireType::LengthDelimited, &mut self.w.buf);
                let start = Some(self.w.begin());
                Ok(Fields {
                    w: self.w,
                    m,
                    start,
                    pending: None,
                })
            }
            kind => unexpected("an object", kind),
        }
    }
}

impl<'a> ser::Serializer for ValueSer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Items<'a>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = MapOrFields<'a>;
    type SerializeStruct = Fields<'a>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_bool(mut self, v: bool) -> Result<(), Error> {
        if self.kind != Kind::Bool || self.repeated {
            return unexpected("a boolean", self.kind);
        }
        self.key(WireType::Varint);
        self.w.buf.push(u8::from(v));
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.int(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.int(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.int(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.int(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.int(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.int(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.int(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.int(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.int(i128::try_from(v).map_err(|_| Error(format!("{v} is out of range")))?)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.serialize_f64_inner(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        if !v.is_finite() {
            // JSON has no such number (serde_json writes null).
            return Err(Error(format!("{v} is not a JSON number")));
        }
        self.serialize_f64_inner(v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.str(v)
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Error> {
        unexpected("bytes", self.kind)
    }
    fn serialize_none(self) -> Result<(), Error> {
        if self.item {
            return unexpected("a null item", self.kind);
        }
        Ok(()) // null: the field is absent
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        unexpected("an enum variant with data", self.kind)
    }
    fn serialize_seq(mut self, _len: Option<usize>) -> Result<Items<'a>, Error> {
        if !self.repeated {
            return unexpected("an array", self.kind);
        }
        let packed = match self.kind {
            Kind::Sint64 | Kind::Uint64 | Kind::Double | Kind::Bool => {
                self.key(WireType::LengthDelimited);
                Some(self.w.begin())
            }
            _ => None,
        };
        Ok(Items {
            w: self.w,
            number: self.number,
            kind: self.kind,
            packed,
        })
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        unexpected("a tuple", self.kind)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        unexpected("a tuple", self.kind)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        unexpected("an enum variant with data", self.kind)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<MapOrFields<'a>, Error> {
        match self.kind {
            Kind::Map(entry) if !self.repeated => Ok(MapOrFields::Map(Entries {
                w: self.w,
                number: self.number,
                entry,
                start: None,
            })),
            _ => self.object().map(MapOrFields::Fields),
        }
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Fields<'a>, Error> {
        self.object()
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        unexpected("an enum variant with data", self.kind)
    }
}

/// A JSON object written as a map field or as a message.
enum MapOrFields<'a> {
    Map(Entries<'a>),
    Fields(Fields<'a>),
}

impl ser::SerializeMap for MapOrFields<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        match self {
            MapOrFields::Map(m) => m.serialize_key(key),
            MapOrFields::Fields(f) => f.serialize_key(key),
        }
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        match self {
            MapOrFields::Map(m) => m.serialize_value(value),
            MapOrFields::Fields(f) => f.serialize_value(value),
        }
    }

    fn end(self) -> Result<(), Error> {
        match self {
            MapOrFields::Map(m) => ser::SerializeMap::end(m),
            MapOrFields::Fields(f) => ser::SerializeMap::end(f),
        }
    }
}

/// The event itself: a struct (or a JSON object) whose properties become fields.
impl<'a> ser::Serializer for Top<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Fields<'a>;
    type SerializeStruct = Fields<'a>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Fields<'a>, Error> {
        Ok(Fields {
            w: self.w,
            m: self.m,
            start: None,
            pending: None,
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Fields<'a>, Error> {
        self.serialize_struct("", 0)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    only! { "an object";
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_str(&str), serialize_bytes(&[u8]), serialize_none(), serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    }
}

/// A map key or property name (a string), handed to a function.
struct KeyWith<F>(F);

impl<R, F: FnOnce(&str) -> Result<R, Error>> ser::Serializer for KeyWith<F> {
    type Ok = R;
    type Error = Error;
    type SerializeSeq = Impossible<R, Error>;
    type SerializeTuple = Impossible<R, Error>;
    type SerializeTupleStruct = Impossible<R, Error>;
    type SerializeTupleVariant = Impossible<R, Error>;
    type SerializeMap = Impossible<R, Error>;
    type SerializeStruct = Impossible<R, Error>;
    type SerializeStructVariant = Impossible<R, Error>;

    fn serialize_str(self, v: &str) -> Result<R, Error> {
        (self.0)(v)
    }
    fn serialize_char(self, v: char) -> Result<R, Error> {
        (self.0)(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<R, Error> {
        (self.0)(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<R, Error> {
        value.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<R, Error> {
        value.serialize(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(Error("expected a string key".into()))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(Error("expected a string key".into()))
    }

    only! { "a string key";
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64),
        serialize_bytes(&[u8]), serialize_none(), serialize_unit(),
        serialize_unit_struct(&'static str),
    }
}
