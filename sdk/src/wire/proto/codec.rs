//! The protobuf codec over the descriptors (feature `protobuf`): typed values and JSON values to
//! and from the protobuf wire format.

use std::fmt;

use prost::encoding::{
    DecodeContext, WireType, decode_key, decode_varint, encode_key, encode_varint,
    encoded_len_varint, skip_field,
};
use serde_json::{Map, Value};

use super::descriptor::{Field, Kind, Message, Shape};
use super::rt;
use crate::error::{DecodeError, DecodeErrorKind};

/// A value that does not fit the protobuf message of its event (only possible for values that
/// do not match the schema: a typed event always encodes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot encode as protobuf{}: {detail}",
    if path.is_empty() { String::new() } else { format!(" at `{path}`") }
)]
pub struct EncodeError {
    path: String,
    detail: String,
}

impl EncodeError {
    /// JSON pointer of the offending value in the event (`""` for the event itself).
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A failure somewhere inside a value, with the path built on the way out (so success pays
/// nothing for it).
struct Fail {
    /// Path segments, innermost first.
    rev_path: Vec<String>,
    detail: String,
    /// Whether `detail` names the field number and message yet.
    located: bool,
}

impl Fail {
    fn new(detail: impl Into<String>) -> Self {
        Self {
            rev_path: Vec::new(),
            detail: detail.into(),
            located: false,
        }
    }

    fn at(mut self, segment: impl fmt::Display) -> Self {
        self.rev_path.push(segment.to_string());
        self
    }

    fn path(&self) -> String {
        self.rev_path
            .iter()
            .rev()
            .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
            .collect()
    }
}

/// Encodes `value` as `message`: with the generated encoder of its type (`fast`) when it has
/// one, otherwise (or when that fails) through its JSON value, whose errors name where the value
/// does not fit the message.
pub(crate) fn encode_with<T: serde::Serialize>(
    message: &'static Message,
    fast: Option<rt::Codec<T>>,
    value: &T,
) -> Result<Vec<u8>, EncodeError> {
    if let Some(codec) = fast {
        let mut buf = Vec::with_capacity(128);
        if (codec.encode)(value, &mut buf).is_ok() {
            return Ok(buf);
        }
    }
    let value = serde_json::to_value(value).map_err(|e| EncodeError {
        path: String::new(),
        detail: e.to_string(),
    })?;
    encode_value(message, &value)
}

/// Encodes a JSON value (an event's JSON form) as `message`.
pub fn encode_value(message: &'static Message, value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut w = Writer {
        buf: Vec::with_capacity(128),
    };
    w.message(message, value).map_err(|f| EncodeError {
        path: f.path(),
        detail: f.detail,
    })?;
    Ok(w.buf)
}

struct Writer {
    buf: Vec<u8>,
}

fn expected(what: &str, found: &Value) -> Fail {
    let found = crate::wire::codec::json_kind(found);
    Fail::new(format!("expected {what}, found {found}"))
}

impl Writer {
    /// Writes a length-delimited body: a one-byte length is reserved and widened afterwards if
    /// the body turns out longer than 127 bytes (no temporary buffer).
    fn delimited(&mut self, body: impl FnOnce(&mut Self) -> Result<(), Fail>) -> Result<(), Fail> {
        let start = self.begin();
        body(self)?;
        self.finish(start);
        Ok(())
    }

    /// Starts a length-delimited body: reserves one byte for its length. Returns where.
    fn begin(&mut self) -> usize {
        self.buf.push(0);
        self.buf.len() - 1
    }

    /// Ends the body begun at `start`, writing its length.
    fn finish(&mut self, start: usize) {
        let len = self.buf.len() - start - 1;
        let width = encoded_len_varint(len as u64);
        if width > 1 {
            self.buf
                .splice(start + 1..start + 1, std::iter::repeat_n(0, width - 1));
        }
        let mut slot = &mut self.buf[start..start + width];
        encode_varint(len as u64, &mut slot);
    }

    fn string(&mut self, number: u32, s: &str) {
        encode_key(number, WireType::LengthDelimited, &mut self.buf);
        encode_varint(s.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn message(&mut self, m: &'static Message, value: &Value) -> Result<(), Fail> {
        if m.shape != Shape::Object {
            // A wrapper holds the value itself in its field 1.
            return self.field(&m.fields[0], value);
        }
        let Value::Object(obj) = value else {
            return Err(expected("an object", value));
        };
        let mut written = 0;
        for f in m.fields {
            if let Some(v) = obj.get(f.name) {
                written += 1;
                self.field(f, v).map_err(|e| e.at(f.name))?;
            }
        }
        if written < obj.len()
            && let Some(extra) = obj.keys().find(|k| m.field_named(k).is_none())
        {
            return Err(Fail::new(format!(
                "property `{extra}` is not in the schema of {}",
                m.place()
            )));
        }
        Ok(())
    }

    fn field(&mut self, f: &Field, value: &Value) -> Result<(), Fail> {
        if value.is_null() && f.kind != Kind::Json {
            return Ok(());
        }
        if !f.repeated {
            return self.single(f.number, f.kind, value);
        }
        let Value::Array(items) = value else {
            return Err(expected("an array", value));
        };
        match f.kind {
            Kind::Sint64 | Kind::Uint64 | Kind::Double | Kind::Bool => {
                encode_key(f.number, WireType::LengthDelimited, &mut self.buf);
                self.delimited(|w| {
                    for (i, item) in items.iter().enumerate() {
                        w.scalar(f.kind, item).map_err(|e| e.at(i))?;
                    }
                    Ok(())
                })
            }
            kind => {
                // A wrapper holds a null item (as an empty wrapper); other items cannot be null.
                let nullable = match kind {
                    Kind::Json => true,
                    Kind::Message(m) => m.shape == Shape::Wrapper,
                    _ => false,
                };
                for (i, item) in items.iter().enumerate() {
                    if item.is_null() && !nullable {
                        return Err(expected("an item", item).at(i));
                    }
                    self.single(f.number, kind, item).map_err(|e| e.at(i))?;
                }
                Ok(())
            }
        }
    }

    /// One occurrence of field `number` (a map: one per entry).
    fn single(&mut self, number: u32, kind: Kind, value: &Value) -> Result<(), Fail> {
        match kind {
            Kind::String => {
                let Value::String(s) = value else {
                    return Err(expected("a string", value));
                };
                self.string(number, s);
                Ok(())
            }
            Kind::Json => {
                encode_key(number, WireType::LengthDelimited, &mut self.buf);
                self.delimited(|w| {
                    serde_json::to_writer(&mut w.buf, value).map_err(|e| Fail::new(e.to_string()))
                })
            }
            Kind::Sint64 | Kind::Uint64 | Kind::Bool => {
                encode_key(number, WireType::Varint, &mut self.buf);
                self.scalar(kind, value)
            }
            Kind::Double => {
                encode_key(number, WireType::SixtyFourBit, &mut self.buf);
                self.scalar(kind, value)
            }
            Kind::Message(m) => {
                encode_key(number, WireType::LengthDelimited, &mut self.buf);
                self.delimited(|w| w.message(m, value))
            }
            Kind::Map(entry) => {
                let Value::Object(obj) = value else {
                    return Err(expected("an object", value));
                };
                let value_field = &entry.fields[1];
                for (key, v) in obj {
                    encode_key(number, WireType::LengthDelimited, &mut self.buf);
                    self.delimited(|w| {
                        w.string(1, key);
                        w.field(value_field, v)
                    })
                    .map_err(|e| e.at(key))?;
                }
                Ok(())
            }
        }
    }

    /// The payload of a numeric or boolean value (no key).
    fn scalar(&mut self, kind: Kind, value: &Value) -> Result<(), Fail> {
        match kind {
            Kind::Sint64 => {
                let n = value
                    .as_i64()
                    .ok_or_else(|| expected("an integer from -2^63 to 2^63-1", value))?;
                encode_varint(((n << 1) ^ (n >> 63)) as u64, &mut self.buf);
            }
            Kind::Uint64 => {
                let n = value
                    .as_u64()
                    .ok_or_else(|| expected("an integer from 0 to 2^64-1", value))?;
                encode_varint(n, &mut self.buf);
            }
            Kind::Double => {
                let n = value.as_f64().ok_or_else(|| expected("a number", value))?;
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Kind::Bool => {
                let b = value
                    .as_bool()
                    .ok_or_else(|| expected("a boolean", value))?;
                self.buf.push(u8::from(b));
            }
            _ => unreachable!("only numbers and booleans are scalars"),
        }
        Ok(())
    }
}

/// Decodes `payload` as `message` into `E`: with the generated decoder of `E` (`fast`) when it
/// has one, otherwise (or when that fails) through the payload's JSON value. A payload that is
/// not a valid encoding of `message` is [`DecodeErrorKind::InvalidProtobuf`]; one that is, but
/// does not make an `E` (a missing required property, a value out of range), is
/// [`DecodeErrorKind::SchemaMismatch`]. Both name where.
pub(crate) fn decode_with<E: serde::de::DeserializeOwned>(
    message: &'static Message,
    fast: Option<rt::Codec<E>>,
    payload: &[u8],
) -> Result<E, DecodeError> {
    if let Some(codec) = fast
        && let Ok(event) = (codec.decode)(payload, 0)
    {
        return Ok(event);
    }
    decode_via_value(message, payload)
}

/// Decodes through the payload's JSON value: slower than the direct path, and it names where a
/// payload is malformed or does not match the schema.
fn decode_via_value<E: serde::de::DeserializeOwned>(
    message: &'static Message,
    payload: &[u8],
) -> Result<E, DecodeError> {
    let value = decode_value(message, payload)?;
    E::deserialize(&value).map_err(|e| {
        // Deserialize again only on failure, tracking the path to name the offending field.
        let path = match serde_path_to_error::deserialize::<_, E>(&value) {
            Err(pe) if pe.path().to_string() != "." => format!(" at `{}`", pe.path()),
            _ => String::new(),
        };
        DecodeError::new(
            DecodeErrorKind::SchemaMismatch,
            format!("protobuf payload does not match the event schema{path}: {e}"),
        )
    })
}

/// Decodes a protobuf payload of `message` into the event's JSON form.
pub fn decode_value(message: &'static Message, payload: &[u8]) -> Result<Value, DecodeError> {
    let mut buf = payload;
    read_message(message, &mut buf, 0).map_err(|f| {
        let at = f.path();
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(" at `{at}`")
        };
        DecodeError::new(
            DecodeErrorKind::InvalidProtobuf,
            format!("invalid protobuf payload{at}: {}", f.detail),
        )
    })
}

fn wire_name(w: WireType) -> &'static str {
    match w {
        WireType::Varint => "varint",
        WireType::SixtyFourBit => "64-bit",
        WireType::LengthDelimited => "length-delimited",
        WireType::StartGroup => "group start",
        WireType::EndGroup => "group end",
        WireType::ThirtyTwoBit => "32-bit",
    }
}

/// Names the innermost field a failure happened in: field `number` of `m`.
fn in_field(m: &Message, number: u32, mut f: Fail) -> Fail {
    if !f.located {
        f.detail = format!("field {number} of {}: {}", m.place(), f.detail);
        f.located = true;
    }
    f
}

fn read_message(m: &'static Message, buf: &mut &[u8], depth: u32) -> Result<Value, Fail> {
    if depth > rt::MAX_DEPTH {
        return Err(Fail::new(format!(
            "messages nested more than {} deep",
            rt::MAX_DEPTH
        )));
    }
    let mut obj = Map::new();
    while !buf.is_empty() {
        let (number, wire) = decode_key(buf).map_err(|e| Fail {
            located: true,
            ..Fail::new(format!("in {}: bad field key ({e})", m.place()))
        })?;
        match m.field(number) {
            Some(f) => read_field(f, wire, buf, &mut obj, depth)
                .map_err(|e| in_field(m, number, e).at(f.name))?,
            None => skip_field(wire, number, buf, DecodeContext::default()).map_err(|e| Fail {
                located: true,
                ..Fail::new(format!(
                    "unknown field {number} of {} could not be skipped ({e})",
                    m.place()
                ))
            })?,
        }
    }
    for f in m.fields {
        if f.required && !obj.contains_key(f.name) {
            // Absent means null, empty or (for a required scalar) missing, which the event's
            // deserializer reports.
            let empty = if f.nullable {
                Value::Null
            } else if f.repeated {
                Value::Array(Vec::new())
            } else if matches!(f.kind, Kind::Map(_)) {
                Value::Object(Map::new())
            } else {
                continue;
            };
            obj.insert(f.name.to_string(), empty);
        }
    }
    Ok(match m.shape {
        Shape::Object => Value::Object(obj),
        Shape::Wrapper | Shape::MapEntry => obj.remove("value").unwrap_or(Value::Null),
    })
}

fn read_field(
    f: &'static Field,
    wire: WireType,
    buf: &mut &[u8],
    obj: &mut Map<String, Value>,
    depth: u32,
) -> Result<(), Fail> {
    let packable = matches!(
        f.kind,
        Kind::Sint64 | Kind::Uint64 | Kind::Double | Kind::Bool
    );
    if f.repeated {
        let Value::Array(items) = slot(obj, f.name, || Value::Array(Vec::new())) else {
            unreachable!("only this function fills repeated fields")
        };
        if packable && wire == WireType::LengthDelimited {
            let mut packed = take_delimited(buf)?;
            let item_wire = if f.kind == Kind::Double {
                WireType::SixtyFourBit
            } else {
                WireType::Varint
            };
            while !packed.is_empty() {
                let at = items.len();
                items.push(
                    read_single(f.kind, item_wire, &mut packed, depth).map_err(|e| e.at(at))?,
                );
            }
        } else {
            let at = items.len();
            items.push(read_single(f.kind, wire, buf, depth).map_err(|e| e.at(at))?);
        }
        return Ok(());
    }
    if let Kind::Map(entry) = f.kind {
        check_wire(WireType::LengthDelimited, wire)?;
        let mut body = take_delimited(buf)?;
        let (key, value) = read_entry(entry, &mut body, depth)?;
        if let Value::Object(map) = slot(obj, f.name, || Value::Object(Map::new())) {
            map.insert(key, value);
        }
        return Ok(());
    }
    let value = read_single(f.kind, wire, buf, depth)?;
    // A repeated occurrence of a singular field: the last one wins.
    obj.insert(f.name.to_string(), value);
    Ok(())
}

/// The value of `name` in `obj`, inserted first if missing (without allocating the key when it
/// is there: repeated fields come back once per item).
fn slot<'a>(
    obj: &'a mut Map<String, Value>,
    name: &str,
    empty: impl FnOnce() -> Value,
) -> &'a mut Value {
    if !obj.contains_key(name) {
        obj.insert(name.to_string(), empty());
    }
    obj.get_mut(name).expect("just inserted")
}

/// A map entry: key (field 1) and value (field 2); missing ones are protobuf's defaults, as
/// other producers leave out zero values in map entries.
fn read_entry(
    entry: &'static Message,
    body: &mut &[u8],
    depth: u32,
) -> Result<(String, Value), Fail> {
    let value_field = &entry.fields[1];
    let mut key = String::new();
    let mut value = None;
    while !body.is_empty() {
        let (number, wire) =
            decode_key(body).map_err(|e| Fail::new(format!("bad map entry key ({e})")))?;
        match number {
            1 => {
                if let Value::String(k) = read_single(Kind::String, wire, body, depth)? {
                    key = k;
                }
            }
            2 => {
                value =
                    Some(read_single(value_field.kind, wire, body, depth).map_err(|e| e.at(&key))?)
            }
            _ => skip_field(wire, number, body, DecodeContext::default())
                .map_err(|e| Fail::new(format!("bad map entry ({e})")))?,
        }
    }
    let value = match value {
        Some(v) => v,
        None => match value_field.kind {
            Kind::String => Value::String(String::new()),
            Kind::Sint64 | Kind::Uint64 => Value::from(0),
            Kind::Double => Value::from(0.0),
            Kind::Bool => Value::Bool(false),
            Kind::Json => Value::Null,
            Kind::Message(m) => read_message(m, &mut &[][..], depth + 1).map_err(|e| e.at(&key))?,
            Kind::Map(_) => Value::Object(Map::new()),
        },
    };
    Ok((key, value))
}

fn check_wire(expected: WireType, found: WireType) -> Result<(), Fail> {
    if expected == found {
        Ok(())
    } else {
        Err(Fail::new(format!(
            "wire type {} where {} was expected",
            wire_name(found),
            wire_name(expected)
        )))
    }
}

fn take_delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], Fail> {
    let len = decode_varint(buf).map_err(|e| Fail::new(format!("bad length ({e})")))?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= buf.len())
        .ok_or_else(|| {
            Fail::new(format!(
                "length {len} runs past the end of the payload ({} bytes left)",
                buf.len()
            ))
        })?;
    let (body, rest) = buf.split_at(len);
    *buf = rest;
    Ok(body)
}

fn read_single(kind: Kind, wire: WireType, buf: &mut &[u8], depth: u32) -> Result<Value, Fail> {
    let varint = |buf: &mut &[u8]| {
        check_wire(WireType::Varint, wire)?;
        decode_varint(buf).map_err(|e| Fail::new(format!("bad varint ({e})")))
    };
    Ok(match kind {
        Kind::String => {
            check_wire(WireType::LengthDelimited, wire)?;
            let bytes = take_delimited(buf)?;
            let s = std::str::from_utf8(bytes)
                .map_err(|e| Fail::new(format!("string is not UTF-8 ({e})")))?;
            Value::String(s.to_string())
        }
        Kind::Json => {
            check_wire(WireType::LengthDelimited, wire)?;
            let bytes = take_delimited(buf)?;
            serde_json::from_slice(bytes).map_err(|e| Fail::new(format!("not JSON text ({e})")))?
        }
        Kind::Sint64 => {
            let n = varint(buf)?;
            Value::from(((n >> 1) as i64) ^ -((n & 1) as i64))
        }
        Kind::Uint64 => Value::from(varint(buf)?),
        Kind::Bool => Value::Bool(varint(buf)? != 0),
        Kind::Double => {
            check_wire(WireType::SixtyFourBit, wire)?;
            let Some((bytes, rest)) = buf.split_first_chunk::<8>() else {
                return Err(Fail::new("a double runs past the end of the payload"));
            };
            *buf = rest;
            let n = f64::from_le_bytes(*bytes);
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| Fail::new(format!("{n} is not a JSON number")))?
        }
        Kind::Message(m) => {
            check_wire(WireType::LengthDelimited, wire)?;
            let mut body = take_delimited(buf)?;
            read_message(m, &mut body, depth + 1)?
        }
        Kind::Map(entry) => {
            // Only reached for a map inside a wrapper's repeated field, which codegen never
            // produces; decode one entry as a one-key object.
            check_wire(WireType::LengthDelimited, wire)?;
            let mut body = take_delimited(buf)?;
            let (k, v) = read_entry(entry, &mut body, depth + 1)?;
            let mut map = Map::new();
            map.insert(k, v);
            Value::Object(map)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static MONEY: Message = Message {
        name: "t.Money",
        pointer: "/$defs/Money",
        shape: Shape::Object,
        fields: &[
            Field {
                name: "amount",
                number: 1,
                kind: Kind::Uint64,
                repeated: false,
                required: true,
                nullable: false,
            },
            Field {
                name: "currency",
                number: 2,
                kind: Kind::String,
                repeated: false,
                required: true,
                nullable: false,
            },
        ],
        reserved: &[],
    };
    static TAGS: Message = Message {
        name: "t.TagsEntry",
        pointer: "/properties/tags",
        shape: Shape::MapEntry,
        fields: &[
            Field {
                name: "key",
                number: 1,
                kind: Kind::String,
                repeated: false,
                required: true,
                nullable: false,
            },
            Field {
                name: "value",
                number: 2,
                kind: Kind::Sint64,
                repeated: false,
                required: true,
                nullable: false,
            },
        ],
        reserved: &[],
    };
    static LIST: Message = Message {
        name: "t.MaybeList",
        pointer: "/properties/maybe",
        shape: Shape::Wrapper,
        fields: &[Field {
            name: "value",
            number: 1,
            kind: Kind::String,
            repeated: true,
            required: true,
            nullable: false,
        }],
        reserved: &[],
    };
    static ROOT: Message = Message {
        name: "t.Root",
        pointer: "",
        shape: Shape::Object,
        fields: &[
            Field {
                name: "n",
                number: 1,
                kind: Kind::Sint64,
                repeated: false,
                required: false,
                nullable: false,
            },
            Field {
                name: "prices",
                number: 2,
                kind: Kind::Message(&MONEY),
                repeated: true,
                required: true,
                nullable: false,
            },
            Field {
                name: "ratio",
                number: 3,
                kind: Kind::Double,
                repeated: true,
                required: false,
                nullable: false,
            },
            Field {
                name: "tags",
                number: 4,
                kind: Kind::Map(&TAGS),
                repeated: false,
                required: true,
                nullable: false,
            },
            Field {
                name: "note",
                number: 5,
                kind: Kind::String,
                repeated: false,
                required: true,
                nullable: true,
            },
            Field {
                name: "extra",
                number: 6,
                kind: Kind::Json,
                repeated: false,
                required: false,
                nullable: false,
            },
            Field {
                name: "maybe",
                number: 7,
                kind: Kind::Message(&LIST),
                repeated: false,
                required: false,
                nullable: true,
            },
            Field {
                name: "flag",
                number: 8,
                kind: Kind::Bool,
                repeated: false,
                required: false,
                nullable: false,
            },
        ],
        reserved: &[9],
    };

    fn round_trip(value: Value) -> Value {
        let bytes = encode_value(&ROOT, &value).unwrap();
        decode_value(&ROOT, &bytes).unwrap()
    }

    #[test]
    fn values_round_trip_zeros_and_empties_included() {
        let v = json!({
            "n": -5, "prices": [{"amount": 0, "currency": ""}, {"amount": 1999, "currency": "EUR"}],
            "ratio": [0.5, -1.0], "tags": {"a": 1, "b": -2}, "note": "",
            "extra": {"any": [1, "x", null]}, "maybe": [], "flag": false
        });
        assert_eq!(round_trip(v.clone()), v);
        // null and missing: absent; required empties come back.
        let v = json!({"prices": [], "tags": {}, "note": null, "maybe": null, "extra": null});
        assert_eq!(
            round_trip(v),
            json!({"prices": [], "tags": {}, "note": null, "extra": null})
        );
        let v = json!({"prices": [], "tags": {}, "note": "x", "maybe": ["a", ""]});
        assert_eq!(round_trip(v.clone()), v);
    }

    #[test]
    fn long_bodies_get_wider_lengths() {
        let long = "x".repeat(300);
        let prices: Vec<Value> = (0..100)
            .map(|i| json!({"amount": i, "currency": long}))
            .collect();
        let v = json!({"prices": prices, "tags": {}, "note": long});
        assert_eq!(round_trip(v.clone()), v);
    }

    #[test]
    fn wire_format_is_standard() {
        // sint64 -1 (zigzag 1) in field 1; the packed doubles of field 3.
        let bytes = encode_value(&ROOT, &json!({"n": -1, "ratio": [1.0]})).unwrap();
        let mut expected = vec![0x08, 0x01, 0x1a, 0x08];
        expected.extend_from_slice(&1.0f64.to_le_bytes());
        assert_eq!(bytes, expected);
        // Unpacked doubles (another producer's choice) decode too.
        let mut unpacked = vec![0x19];
        unpacked.extend_from_slice(&2.0f64.to_le_bytes());
        let v = decode_value(&ROOT, &unpacked).unwrap();
        assert_eq!(v["ratio"], json!([2.0]));
    }

    #[test]
    fn unknown_and_reserved_fields_are_skipped() {
        let mut bytes = encode_value(&ROOT, &json!({"n": 3})).unwrap();
        // field 9 (reserved) varint, field 100 length-delimited, field 12 fixed64
        bytes.extend_from_slice(&[0x48, 0x07]);
        bytes.extend_from_slice(&[0xa2, 0x06, 0x02, b'h', b'i']);
        bytes.extend_from_slice(&[0x61, 0, 0, 0, 0, 0, 0, 0, 0]);
        let v = decode_value(&ROOT, &bytes).unwrap();
        assert_eq!(v["n"], json!(3));
    }

    #[test]
    fn malformed_payloads_name_the_field() {
        // field 2 (prices) with a length past the end.
        let err = decode_value(&ROOT, &[0x12, 0x10, 0x08]).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::InvalidProtobuf);
        assert!(err.to_string().contains("at `/prices/0`"), "{err}");
        assert!(err.to_string().contains("field 2 of t.Root"), "{err}");
        // field 1 of Money (amount) as a string.
        let err = decode_value(&ROOT, &[0x12, 0x03, 0x0a, 0x01, b'x']).unwrap_err();
        assert!(
            err.to_string().contains(
                "at `/prices/0/amount`: field 1 of t.Money (schema `/$defs/Money`): wire type \
                 length-delimited where varint was expected"
            ),
            "{err}"
        );
        // JSON is not protobuf.
        let err = decode_value(&ROOT, br#"{"n":1}"#).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::InvalidProtobuf);
    }

    #[test]
    fn values_off_the_schema_do_not_encode() {
        let err = encode_value(
            &ROOT,
            &json!({"prices": [{"amount": -1, "currency": "EUR"}]}),
        )
        .unwrap_err();
        assert_eq!(err.path(), "/prices/0/amount");
        let err = encode_with(
            &ROOT,
            None,
            &json!({"prices": [{"amount": 1, "currency": 7}]}),
        )
        .unwrap_err();
        assert_eq!(err.path(), "/prices/0/currency");
        let err = encode_value(&ROOT, &json!({"colour": "red"})).unwrap_err();
        assert!(
            err.to_string().contains("`colour` is not in the schema"),
            "{err}"
        );
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Money {
        amount: u64,
        currency: String,
    }

    /// A Rust type of `ROOT` as typify would generate it.
    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Root {
        #[serde(default)]
        n: Option<i64>,
        prices: Vec<Money>,
        #[serde(default)]
        ratio: Vec<f64>,
        tags: std::collections::HashMap<String, i64>,
        #[serde(deserialize_with = "Option::deserialize")]
        note: Option<String>,
        #[serde(default)]
        extra: Option<Value>,
        #[serde(default)]
        maybe: Option<Vec<String>>,
        #[serde(default)]
        flag: Option<bool>,
    }

    #[test]
    fn another_producers_choices_decode() {
        // Fields out of order and interleaved, unpacked doubles, a map entry without its value
        // (0), an unknown field.
        let mut bytes = vec![0x19];
        bytes.extend_from_slice(&2.0f64.to_le_bytes()); // ratio: 2.0 (unpacked)
        bytes.extend_from_slice(&[0x2a, 0x01, b'n']); // note: "n"
        bytes.extend_from_slice(&[0x12, 0x07, 0x12, 0x03, b'U', b'S', b'D', 0x08, 0x05]); // prices[0]
        bytes.extend_from_slice(&[0x22, 0x03, 0x0a, 0x01, b'k']); // tags: {"k": 0}
        bytes.extend_from_slice(&[0xa0, 0x06, 0x01]); // field 100 (unknown)
        bytes.push(0x19);
        bytes.extend_from_slice(&3.0f64.to_le_bytes()); // ratio: 3.0
        bytes.extend_from_slice(&[0x12, 0x02, 0x08, 0x07]); // prices[1]: amount 7, no currency
        let err = decode_with::<Root>(&ROOT, None, &bytes).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::SchemaMismatch);
        assert!(err.to_string().contains("prices[1]"), "{err}");
        bytes.truncate(bytes.len() - 4);
        let root: Root = decode_with(&ROOT, None, &bytes).unwrap();
        assert_eq!(root.ratio, vec![2.0, 3.0]);
        assert_eq!(root.tags["k"], 0);
        assert_eq!(root.prices[0].currency, "USD");
        assert_eq!(root.prices[0].amount, 5);
        assert_eq!(root.note.as_deref(), Some("n"));
    }
}
