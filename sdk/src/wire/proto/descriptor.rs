//! The descriptors of the protobuf messages generated from event schemas.

use std::fmt;

/// A protobuf message of an event version, generated from its schema.
///
/// `Debug` prints field names and the names (not the contents) of nested messages, and equality
/// compares full names: a message may contain itself (a recursive schema).
#[derive(Clone, Copy)]
pub struct Message {
    /// Full protobuf name, e.g. `eventhub.events.OrderPlacedV1.Money`.
    pub name: &'static str,
    /// JSON pointer of the schema it comes from in the event's bundled schema (`""` for the
    /// event itself, `/$defs/Money`, `/properties/lines/items`).
    pub pointer: &'static str,
    /// What the message stands for.
    pub shape: Shape,
    /// Its fields, in field-number order.
    pub fields: &'static [Field],
    /// Field numbers of properties the schema no longer has: never reused.
    pub reserved: &'static [u32],
}

/// What a [`Message`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A JSON object: each field is a property.
    Object,
    /// A value that cannot be a field itself (an array item or map value that is an array, a
    /// map or nullable; a nullable array or map): field 1, `value`, holds it, and an empty
    /// wrapper is `null`, an empty array or an empty map.
    Wrapper,
    /// An entry of a map: field 1 the key (a string), field 2 the value.
    MapEntry,
}

/// A field of a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The JSON property name.
    pub name: &'static str,
    /// The field number.
    pub number: u32,
    /// What its values are.
    pub kind: Kind,
    /// Whether it is a repeated field (a JSON array).
    pub repeated: bool,
    /// Whether the schema requires the property.
    pub required: bool,
    /// Whether the property may be `null` (an absent field decodes as `null` when required).
    pub nullable: bool,
}

/// The values of a [`Field`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON string: `string`.
    String,
    /// Any JSON value, as its JSON text in a `string`.
    Json,
    /// A JSON integer that may be negative: `sint64` (zigzag varint).
    Sint64,
    /// A JSON integer that is never negative: `uint64`.
    Uint64,
    /// A JSON number: `double`.
    Double,
    /// A JSON boolean: `bool`.
    Bool,
    /// A nested message.
    Message(&'static Message),
    /// A JSON object with arbitrary keys: repeated entries of this
    /// [`MapEntry`](Shape::MapEntry) message.
    Map(&'static Message),
}

impl Message {
    /// The field with `number`.
    pub fn field(&self, number: u32) -> Option<&'static Field> {
        self.fields
            .binary_search_by_key(&number, |f| f.number)
            .ok()
            .map(|i| &self.fields[i])
    }

    /// The field of property `name`.
    pub fn field_named(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    #[cfg(feature = "protobuf")]
    pub(crate) fn place(&self) -> String {
        if self.pointer.is_empty() {
            self.name.to_string()
        } else {
            format!("{} (schema `{}`)", self.name, self.pointer)
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("name", &self.name)
            .field("pointer", &self.pointer)
            .field("shape", &self.shape)
            .field("fields", &self.fields)
            .field("reserved", &self.reserved)
            .finish()
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Message {}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::String => f.write_str("String"),
            Kind::Json => f.write_str("Json"),
            Kind::Sint64 => f.write_str("Sint64"),
            Kind::Uint64 => f.write_str("Uint64"),
            Kind::Double => f.write_str("Double"),
            Kind::Bool => f.write_str("Bool"),
            Kind::Message(m) => write!(f, "Message({})", m.name),
            Kind::Map(m) => write!(f, "Map({})", m.name),
        }
    }
}
