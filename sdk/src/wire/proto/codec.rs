//! The protobuf codec over the descriptors (feature `protobuf`), on `prost-reflect`.
//!
//! A [`Message`] tree becomes a `prost_reflect::MessageDescriptor` once (cached per root). A
//! value travels as its JSON form and a `DynamicMessage`: encoding builds the dynamic message
//! from the JSON value and lets `prost-reflect` write it; decoding lets `prost-reflect` read the
//! payload and turns the dynamic message back into the JSON value, which serde turns into the
//! event. The JSON value is the bridge because the mapping has parts protobuf's own JSON mapping
//! does not (values kept as JSON text, wrapper messages that stand for their field 1).
//!
//! The runtime descriptor is proto2 with every singular field `optional` and numeric repeated
//! fields packed: the same bytes as proto3 `optional` fields, which the exported `.proto` text
//! declares. Maps are repeated entry messages here (not `map<…>` fields), which is the same wire
//! format and keeps the entries in the JSON object's order, so equal values encode to equal
//! bytes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{OnceLock, PoisonError, RwLock};

use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, Value as Pv,
};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FieldOptions, FileDescriptorProto};
use serde_json::{Map, Value};

use super::message::{Field, Kind, Message, Shape};
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

/// Names the innermost field a failure happened in: field `number` of `m`.
fn in_field(m: &Message, number: u32, mut f: Fail) -> Fail {
    if !f.located {
        f.detail = format!("field {number} of {}: {}", m.place(), f.detail);
        f.located = true;
    }
    f
}

fn expected(what: &str, found: &Value) -> Fail {
    let found = crate::wire::codec::json_kind(found);
    Fail::new(format!("expected {what}, found {found}"))
}

// ---------------------------------------------------------------------------------------------
// Descriptors

/// The package of the runtime descriptors (their names never reach the wire).
const PACKAGE: &str = "eventhub.runtime";

/// The `prost-reflect` descriptor of `m`, built on first use. Keyed by address: a descriptor
/// tree is `'static` (generated, or leaked once by a tool that builds it at run time).
fn descriptor(m: &'static Message) -> Result<MessageDescriptor, String> {
    static CACHE: OnceLock<RwLock<HashMap<usize, MessageDescriptor>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = std::ptr::from_ref(m) as usize;
    if let Some(d) = cache
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Ok(d.clone());
    }
    let d = build_descriptor(m)?;
    let mut cache = cache.write().unwrap_or_else(PoisonError::into_inner);
    Ok(cache.entry(key).or_insert(d).clone())
}

/// One file holding every message reachable from `root` (named `M0`, `M1`, … in discovery
/// order, `M0` the root).
fn build_descriptor(root: &'static Message) -> Result<MessageDescriptor, String> {
    let mut order: Vec<&'static Message> = vec![root];
    let mut index: HashMap<usize, usize> = HashMap::from([(std::ptr::from_ref(root) as usize, 0)]);
    let mut next = 0;
    while next < order.len() {
        for f in order[next].fields {
            if let Kind::Message(m) | Kind::Map(m) = f.kind {
                index
                    .entry(std::ptr::from_ref(m) as usize)
                    .or_insert_with(|| {
                        order.push(m);
                        order.len() - 1
                    });
            }
        }
        next += 1;
    }
    let message_type = order
        .iter()
        .enumerate()
        .map(|(i, m)| DescriptorProto {
            name: Some(format!("M{i}")),
            field: m.fields.iter().map(|f| field_proto(f, &index)).collect(),
            ..Default::default()
        })
        .collect();
    let file = FileDescriptorProto {
        name: Some("eventhub_runtime.proto".into()),
        package: Some(PACKAGE.into()),
        syntax: Some("proto2".into()),
        message_type,
        ..Default::default()
    };
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_proto(file)
        .map_err(|e| format!("the descriptor of {} is not valid: {e}", root.name))?;
    pool.get_message_by_name(&format!("{PACKAGE}.M0"))
        .ok_or_else(|| format!("the descriptor of {} has no root message", root.name))
}

fn field_proto(f: &Field, index: &HashMap<usize, usize>) -> FieldDescriptorProto {
    let message = |m: &'static Message| {
        let i = index[&(std::ptr::from_ref(m) as usize)];
        Some(format!(".{PACKAGE}.M{i}"))
    };
    let (ty, type_name) = match f.kind {
        Kind::String | Kind::Json => (Type::String, None),
        Kind::Sint64 => (Type::Sint64, None),
        Kind::Uint64 => (Type::Uint64, None),
        Kind::Double => (Type::Double, None),
        Kind::Bool => (Type::Bool, None),
        Kind::Message(m) | Kind::Map(m) => (Type::Message, message(m)),
    };
    let repeated = f.repeated || matches!(f.kind, Kind::Map(_));
    let packed = f.repeated
        && matches!(
            f.kind,
            Kind::Sint64 | Kind::Uint64 | Kind::Double | Kind::Bool
        );
    FieldDescriptorProto {
        // The property name need not be a protobuf identifier; the number is what counts.
        name: Some(format!("f{}", f.number)),
        number: Some(f.number as i32),
        label: Some(if repeated {
            Label::Repeated
        } else {
            Label::Optional
        } as i32),
        r#type: Some(ty as i32),
        type_name,
        options: packed.then(|| FieldOptions {
            packed: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Encodes `value` (an event: its type's `Event::PROTO` is the message) as `message`.
pub fn encode<T: serde::Serialize + ?Sized>(
    message: &'static Message,
    value: &T,
) -> Result<Vec<u8>, EncodeError> {
    encode_serialize(message, value)
}

/// Encodes any serializable value as `message` (used for events and for JSON values of
/// [`EventInfo`](crate::EventInfo)s).
pub(crate) fn encode_serialize<T: serde::Serialize + ?Sized>(
    message: &'static Message,
    value: &T,
) -> Result<Vec<u8>, EncodeError> {
    let value = serde_json::to_value(value).map_err(|e| EncodeError {
        path: String::new(),
        detail: e.to_string(),
    })?;
    encode_value(message, &value)
}

/// Encodes a JSON value (an event's JSON form) as `message`.
pub fn encode_value(message: &'static Message, value: &Value) -> Result<Vec<u8>, EncodeError> {
    let desc = descriptor(message).map_err(|detail| EncodeError {
        path: String::new(),
        detail,
    })?;
    let dynamic = to_dynamic(message, desc, value).map_err(|f| EncodeError {
        path: f.path(),
        detail: f.detail,
    })?;
    Ok(dynamic.encode_to_vec())
}

fn to_dynamic(
    m: &'static Message,
    desc: MessageDescriptor,
    value: &Value,
) -> Result<DynamicMessage, Fail> {
    let mut out = DynamicMessage::new(desc);
    if m.shape != Shape::Object {
        // A wrapper holds the value itself in its field 1.
        set(&mut out, &m.fields[0], value)?;
        return Ok(out);
    }
    let Value::Object(obj) = value else {
        return Err(expected("an object", value));
    };
    let mut written = 0;
    for f in m.fields {
        if let Some(v) = obj.get(f.name) {
            written += 1;
            set(&mut out, f, v).map_err(|e| e.at(f.name))?;
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
    Ok(out)
}

/// The nested message descriptor of a message-typed field.
fn nested(field: &prost_reflect::FieldDescriptor) -> MessageDescriptor {
    match field.kind() {
        prost_reflect::Kind::Message(d) => d,
        other => unreachable!("built as a message field, found {other:?}"),
    }
}

/// Sets field `f` of `out` from `value` (`null`: absent).
fn set(out: &mut DynamicMessage, f: &Field, value: &Value) -> Result<(), Fail> {
    if value.is_null() && f.kind != Kind::Json {
        return Ok(());
    }
    let fd = out
        .descriptor()
        .get_field(f.number)
        .expect("the descriptor is built from the same message");
    let v = if f.repeated {
        let Value::Array(items) = value else {
            return Err(expected("an array", value));
        };
        let mut list = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if item.is_null() && f.kind != Kind::Json {
                return Err(expected("an item", item).at(i));
            }
            list.push(single(f.kind, &fd, item).map_err(|e| e.at(i))?);
        }
        Pv::List(list)
    } else if let Kind::Map(entry) = f.kind {
        let Value::Object(obj) = value else {
            return Err(expected("an object", value));
        };
        let entry_desc = nested(&fd);
        let mut list = Vec::with_capacity(obj.len());
        for (key, v) in obj {
            let mut e = DynamicMessage::new(entry_desc.clone());
            e.set_field_by_number(1, Pv::String(key.clone()));
            set(&mut e, &entry.fields[1], v).map_err(|e| e.at(key))?;
            list.push(Pv::Message(e));
        }
        Pv::List(list)
    } else {
        single(f.kind, &fd, value)?
    };
    out.set_field(&fd, v);
    Ok(())
}

/// One value of field `fd` (of kind `kind`).
fn single(kind: Kind, fd: &prost_reflect::FieldDescriptor, value: &Value) -> Result<Pv, Fail> {
    Ok(match kind {
        Kind::String => match value {
            Value::String(s) => Pv::String(s.clone()),
            _ => return Err(expected("a string", value)),
        },
        Kind::Json => Pv::String(value.to_string()),
        Kind::Sint64 => Pv::I64(
            value
                .as_i64()
                .ok_or_else(|| expected("an integer from -2^63 to 2^63-1", value))?,
        ),
        Kind::Uint64 => Pv::U64(
            value
                .as_u64()
                .ok_or_else(|| expected("an integer from 0 to 2^64-1", value))?,
        ),
        Kind::Double => Pv::F64(value.as_f64().ok_or_else(|| expected("a number", value))?),
        Kind::Bool => Pv::Bool(
            value
                .as_bool()
                .ok_or_else(|| expected("a boolean", value))?,
        ),
        Kind::Message(m) => Pv::Message(to_dynamic(m, nested(fd), value)?),
        // Codegen never makes a map an item: a map in a list is wrapped.
        Kind::Map(_) => return Err(Fail::new("a map cannot be a list item")),
    })
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes a protobuf payload of `E`.
///
/// Decodes `payload` as `message` into `E` (an event: its type's `Event::PROTO` is the
/// message). A payload that is not a valid encoding of `message` is
/// [`DecodeErrorKind::InvalidProtobuf`]; one that is, but does not make an `E` (a missing
/// required property, a value out of range), is [`DecodeErrorKind::SchemaMismatch`], naming
/// where.
pub fn decode<E: serde::de::DeserializeOwned>(
    message: &'static Message,
    payload: &[u8],
) -> Result<E, DecodeError> {
    let value = decode_value(message, payload)?;
    E::deserialize(value).map_err(|e| {
        // Deserialize again only on failure, tracking the path to name the offending field.
        let path = match decode_value(message, payload)
            .map(|value| serde_path_to_error::deserialize::<_, E>(value))
        {
            Ok(Err(pe)) if pe.path().to_string() != "." => format!(" at `{}`", pe.path()),
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
    let invalid = |detail: String| DecodeError::new(DecodeErrorKind::InvalidProtobuf, detail);
    let desc = descriptor(message).map_err(invalid)?;
    let dynamic = DynamicMessage::decode(desc, payload).map_err(|e| {
        invalid(match locate(message, payload) {
            Some(f) => format!(
                "invalid protobuf payload at `/{}`: field {} of {}: {e}",
                f.name.replace('~', "~0").replace('/', "~1"),
                f.number,
                message.place()
            ),
            None => format!("invalid protobuf payload: {e}"),
        })
    })?;
    from_dynamic(message, dynamic).map_err(|f| {
        let at = f.path();
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(" at `{at}`")
        };
        invalid(format!("invalid protobuf payload{at}: {}", f.detail))
    })
}

/// The top-level field of a malformed payload that cannot be read (`prost-reflect`'s errors do
/// not say which): only its framing is checked, on the error path.
fn locate(m: &'static Message, mut buf: &[u8]) -> Option<&'static Field> {
    use prost::encoding::{DecodeContext, decode_key, skip_field};
    while !buf.is_empty() {
        let (number, wire) = decode_key(&mut buf).ok()?;
        if skip_field(wire, number, &mut buf, DecodeContext::default()).is_err() {
            return m.field(number);
        }
    }
    None
}

fn from_dynamic(m: &'static Message, mut dynamic: DynamicMessage) -> Result<Value, Fail> {
    let mut obj = Map::new();
    for f in m.fields {
        let Some(v) = dynamic.take_field_by_number(f.number) else {
            if f.required {
                // Absent means null, empty or (for a required scalar) missing, which the
                // event's deserializer reports.
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
            continue;
        };
        let value = field_value(f, v).map_err(|e| in_field(m, f.number, e).at(f.name))?;
        obj.insert(f.name.to_string(), value);
    }
    Ok(match m.shape {
        Shape::Object => Value::Object(obj),
        Shape::Wrapper | Shape::MapEntry => obj.remove("value").unwrap_or(Value::Null),
    })
}

fn field_value(f: &Field, v: Pv) -> Result<Value, Fail> {
    if f.repeated {
        let Pv::List(items) = v else {
            unreachable!("a repeated field holds a list")
        };
        return items
            .into_iter()
            .enumerate()
            .map(|(i, item)| json_of(f.kind, item).map_err(|e| e.at(i)))
            .collect::<Result<_, _>>()
            .map(Value::Array);
    }
    let Kind::Map(entry) = f.kind else {
        return json_of(f.kind, v);
    };
    let Pv::List(entries) = v else {
        unreachable!("a map is a list of entries")
    };
    let mut map = Map::new();
    for e in entries {
        let Pv::Message(mut e) = e else {
            unreachable!("a map entry is a message")
        };
        // Missing keys and values are protobuf's defaults: other producers leave out zero
        // values in map entries.
        let key = match e.take_field_by_number(1) {
            Some(Pv::String(k)) => k,
            _ => String::new(),
        };
        let value_field = &entry.fields[1];
        let value = match e.take_field_by_number(2) {
            Some(v) => json_of(value_field.kind, v),
            None => match value_field.kind {
                Kind::String => Ok(Value::String(String::new())),
                Kind::Sint64 | Kind::Uint64 => Ok(Value::from(0)),
                Kind::Double => Ok(Value::from(0.0)),
                Kind::Bool => Ok(Value::Bool(false)),
                Kind::Json => Ok(Value::Null),
                Kind::Message(m) => from_dynamic(m, DynamicMessage::new(nested_of(&e, 2))),
                Kind::Map(_) => Ok(Value::Object(Map::new())),
            },
        }
        .map_err(|err| err.at(&key))?;
        map.insert(key, value);
    }
    Ok(Value::Object(map))
}

/// The descriptor of message field `number` of `dynamic`.
fn nested_of(dynamic: &DynamicMessage, number: u32) -> MessageDescriptor {
    nested(
        &dynamic
            .descriptor()
            .get_field(number)
            .expect("the descriptor is built from the same message"),
    )
}

fn json_of(kind: Kind, v: Pv) -> Result<Value, Fail> {
    Ok(match (kind, v) {
        (Kind::String, Pv::String(s)) => Value::String(s),
        (Kind::Json, Pv::String(s)) => {
            serde_json::from_str(&s).map_err(|e| Fail::new(format!("not JSON text ({e})")))?
        }
        (Kind::Sint64, Pv::I64(n)) => Value::from(n),
        (Kind::Uint64, Pv::U64(n)) => Value::from(n),
        (Kind::Bool, Pv::Bool(b)) => Value::Bool(b),
        (Kind::Double, Pv::F64(n)) => serde_json::Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| Fail::new(format!("{n} is not a JSON number")))?,
        (Kind::Message(m), Pv::Message(d)) => from_dynamic(m, d)?,
        // Codegen never makes a map an item: a map in a list is wrapped.
        (Kind::Map(_), _) => return Err(Fail::new("a map cannot be a list item")),
        (kind, v) => unreachable!("the descriptor gives {kind:?} fields {v:?} values"),
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
    fn malformed_payloads_are_invalid_protobuf() {
        for bytes in [
            // field 2 (prices) with a length past the end.
            &[0x12, 0x10, 0x08][..],
            // field 1 of Money (amount) as a string.
            &[0x12, 0x03, 0x0a, 0x01, b'x'][..],
            // JSON is not protobuf.
            br#"{"n":1}"#,
        ] {
            let err = decode_value(&ROOT, bytes).unwrap_err();
            assert_eq!(err.kind(), DecodeErrorKind::InvalidProtobuf, "{err}");
            assert!(
                err.to_string().starts_with("invalid protobuf payload"),
                "{err}"
            );
        }
        // Well-formed protobuf whose JSON text field is not JSON names the field.
        let err = decode_value(&ROOT, &[0x32, 0x01, b'{']).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::InvalidProtobuf);
        assert!(
            err.to_string()
                .contains("at `/extra`: field 6 of t.Root: not JSON text"),
            "{err}"
        );
    }

    #[test]
    fn values_off_the_schema_do_not_encode() {
        let err = encode_value(
            &ROOT,
            &json!({"prices": [{"amount": -1, "currency": "EUR"}]}),
        )
        .unwrap_err();
        assert_eq!(err.path(), "/prices/0/amount");
        let err = encode_serialize(&ROOT, &json!({"prices": [{"amount": 1, "currency": 7}]}))
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

    /// Decodes to the typed value, and agrees with the JSON value.
    fn both_ways(bytes: &[u8]) -> Root {
        let typed: Root = decode(&ROOT, bytes).expect("decodes");
        let via_value: Root = serde_json::from_value(decode_value(&ROOT, bytes).unwrap()).unwrap();
        assert_eq!(typed, via_value);
        typed
    }

    #[test]
    fn typed_decoding_agrees_with_the_json_value() {
        for v in [
            json!({
                "n": -5, "prices": [{"amount": 0, "currency": ""}, {"amount": 1999, "currency": "EUR"}],
                "ratio": [0.5, -1.0], "tags": {"a": 1, "b": -2}, "note": "",
                "extra": {"any": [1, "x", null]}, "maybe": [], "flag": false
            }),
            json!({"prices": [], "tags": {}, "note": null, "extra": null}),
            json!({"prices": [], "tags": {}, "note": "x", "maybe": ["a", ""], "extra": "s"}),
        ] {
            let bytes = encode_value(&ROOT, &v).unwrap();
            both_ways(&bytes);
            // Equal values encode to equal bytes.
            assert_eq!(encode_value(&ROOT, &v).unwrap(), bytes);
        }
        // Another producer's choices: fields out of order and interleaved, unpacked doubles, a
        // map entry without its value (0), an unknown field.
        let mut bytes = vec![0x19];
        bytes.extend_from_slice(&2.0f64.to_le_bytes()); // ratio: 2.0 (unpacked)
        bytes.extend_from_slice(&[0x2a, 0x01, b'n']); // note: "n"
        bytes.extend_from_slice(&[0x12, 0x07, 0x12, 0x03, b'U', b'S', b'D', 0x08, 0x05]); // prices[0]
        bytes.extend_from_slice(&[0x22, 0x03, 0x0a, 0x01, b'k']); // tags: {"k": 0}
        bytes.extend_from_slice(&[0xa0, 0x06, 0x01]); // field 100 (unknown)
        bytes.push(0x19);
        bytes.extend_from_slice(&3.0f64.to_le_bytes()); // ratio: 3.0
        bytes.extend_from_slice(&[0x12, 0x02, 0x08, 0x07]); // prices[1]: amount 7, no currency
        let err = decode::<Root>(&ROOT, &bytes).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::SchemaMismatch);
        assert!(err.to_string().contains("at `prices[1]`"), "{err}");
        bytes.truncate(bytes.len() - 4);
        let root = both_ways(&bytes);
        assert_eq!(root.ratio, vec![2.0, 3.0]);
        assert_eq!(root.tags["k"], 0);
        assert_eq!(root.prices[0].currency, "USD");
        assert_eq!(root.prices[0].amount, 5);
    }
}
