//! Protobuf messages derived from an event's bundled JSON Schema, with stable field numbers.
//!
//! Every event version can travel as protobuf. Its messages come from its self-contained
//! (bundled) schema: the root object, every object-valued `$defs` entry and every inline object
//! schema (under `properties`, `items` or `additionalProperties`). A message is identified by the
//! JSON pointer of its schema in the bundle: `""` for the root, `/$defs/Money`,
//! `/properties/address`, `/properties/lines/items`.
//!
//! # Field numbers
//!
//! A field number, once released, never changes and is never reused:
//! [`assign_field_numbers`] keeps every number of the released map — also of properties the
//! schema no longer has, which stay reserved — and gives new properties the next numbers after
//! the highest one used in their message, in alphabetical order of their names. A new message
//! (no released numbers) therefore numbers its properties alphabetically from 1. The numbers of
//! released versions are kept by the catalog
//! ([`Catalog::released_field_numbers`](crate::Catalog::released_field_numbers)).
//!
//! # Type mapping
//!
//! | JSON Schema | protobuf |
//! | --- | --- |
//! | `string` (any format, string enums) | `string` |
//! | `integer` with `minimum >= 0` (or an unsigned format) | `uint64` |
//! | other `integer` | `sint64` (zigzag) |
//! | `number` | `double` |
//! | `boolean` | `bool` |
//! | object with `properties` | a message |
//! | object with only `additionalProperties: <schema>` (or nothing) | `map<string, V>` |
//! | `array` | `repeated`; items that are arrays, maps or nullable get a wrapper message |
//! | `type: [X, "null"]`, optional properties | the field is absent when null or missing |
//! | anything else (`oneOf`, `anyOf`, `allOf`, untyped, several types, properties *and* a typed `additionalProperties`) | `string` holding the value's JSON text |
//!
//! Every present value is written, zero and empty ones included (unlike proto3's default
//! elision), so an absent (`None`) value and a zero stay distinct: the `.proto` text declares
//! singular scalar fields `optional`. A nullable array or map is wrapped in a message so that
//! `null` (absent) and empty (an empty wrapper) stay distinct too. Decoders skip unknown field
//! numbers, so a consumer built from an older schema reads events of a newer compatible one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use serde_json::{Map, Value};

use crate::diagnostic::pointer_push;
use crate::naming::{const_ident, pascal};

/// Field numbers of one event version: message (JSON pointer of its schema in the bundled
/// schema, `""` for the root) → property name → field number.
pub type FieldNumbers = BTreeMap<String, BTreeMap<String, u32>>;

/// The protobuf package of the generated `.proto` file.
pub(crate) const PACKAGE: &str = "eventhub.events";

/// Numbers protobuf reserves for its implementation; never assigned.
const IMPLEMENTATION_RESERVED: std::ops::RangeInclusive<u32> = 19_000..=19_999;

/// The largest field number protobuf allows.
const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

/// The field numbers of every message of `schema` (an event's bundled schema): the numbers of
/// `released` are kept — including those of properties or messages the schema no longer has,
/// which stay reserved — and each new property gets the next number after the highest one used
/// in its message, new properties taken in alphabetical order. See the [module docs](self).
pub fn assign_field_numbers(schema: &Value, released: Option<&FieldNumbers>) -> FieldNumbers {
    let model = Model::build(schema, "Event");
    let mut out = released.cloned().unwrap_or_default();
    for m in model.messages.iter().filter(|m| m.shape == Shape::Object) {
        let numbers = out.entry(m.pointer.clone()).or_default();
        let mut next = numbers.values().max().map_or(1, |n| n + 1);
        let mut names: Vec<&str> = m.fields.iter().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        for name in names {
            if numbers.contains_key(name) {
                continue;
            }
            if IMPLEMENTATION_RESERVED.contains(&next) {
                next = IMPLEMENTATION_RESERVED.end() + 1;
            }
            numbers.insert(name.to_string(), next);
            next += 1;
        }
    }
    out
}

/// Problems with a set of field numbers (duplicates, numbers protobuf does not allow), as
/// messages naming the message pointer and the properties.
pub(crate) fn check_field_numbers(numbers: &FieldNumbers) -> Vec<String> {
    let mut problems = Vec::new();
    for (pointer, fields) in numbers {
        let shown = if pointer.is_empty() {
            "(root)"
        } else {
            pointer
        };
        let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
        for (name, &n) in fields {
            if n == 0 || n > MAX_FIELD_NUMBER || IMPLEMENTATION_RESERVED.contains(&n) {
                problems.push(format!(
                    "message {shown}: field number {n} of `{name}` is not allowed (1 to \
                     {MAX_FIELD_NUMBER}, outside 19000-19999)"
                ));
            }
            if let Some(other) = seen.insert(n, name) {
                problems.push(format!(
                    "message {shown}: `{other}` and `{name}` both have field number {n}"
                ));
            }
        }
    }
    problems
}

/// The messages of one event version.
#[derive(Debug, Clone)]
pub(crate) struct Model {
    /// The root message first, then the others in discovery order.
    pub(crate) messages: Vec<Msg>,
}

/// What a message stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A JSON object with named properties.
    Object,
    /// A value that cannot be a field directly (an array or map item, a nullable array or map),
    /// held in field 1, `value`.
    Wrapper,
    /// An entry of a map: `key` = 1, `value` = 2.
    MapEntry,
}

/// One protobuf message.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    /// JSON pointer of the schema it comes from.
    pub(crate) pointer: String,
    /// Name inside the event's root message (the root's own name for the root).
    pub(crate) name: String,
    /// Full protobuf name, e.g. `eventhub.events.OrderPlacedV1.Money`.
    pub(crate) full_name: String,
    pub(crate) shape: Shape,
    /// In field-number order once numbered.
    pub(crate) fields: Vec<Fld>,
    /// Numbers of properties this message no longer has, with their names.
    pub(crate) reserved: Vec<(u32, String)>,
}

/// One field of a message.
#[derive(Debug, Clone)]
pub(crate) struct Fld {
    /// The JSON property name.
    pub(crate) name: String,
    /// The name in the `.proto` text (a protobuf identifier).
    pub(crate) proto_name: String,
    /// 0 until numbered.
    pub(crate) number: u32,
    pub(crate) kind: Kind,
    pub(crate) repeated: bool,
    pub(crate) required: bool,
    pub(crate) nullable: bool,
    pub(crate) description: Option<String>,
}

/// The wire type of a field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Json,
    Sint64,
    Uint64,
    Double,
    Bool,
    /// Index of the message in [`Model::messages`].
    Message(usize),
    /// Index of the map-entry message.
    Map(usize),
}

/// What a schema becomes, before it is a field.
#[derive(Debug, Clone)]
enum Ty {
    Single(Kind),
    /// Items and the pointer of the items schema.
    Array(Box<Typed>, String),
    /// Values and the pointer of the `additionalProperties` schema.
    Map(Box<Typed>, String),
}

#[derive(Debug, Clone)]
struct Typed {
    ty: Ty,
    nullable: bool,
}

impl Model {
    /// Derives the messages of a bundled schema; `root_name` names the root message. Field
    /// numbers are 0 until [`Model::number`].
    pub(crate) fn build(schema: &Value, root_name: &str) -> Model {
        let mut b = Builder {
            root: schema,
            root_full: format!("{PACKAGE}.{root_name}"),
            messages: Vec::new(),
            objects: HashMap::new(),
            names: BTreeSet::from([root_name.to_string()]),
        };
        b.object("", schema, Some(root_name.to_string()));
        if let Some(defs) = schema.get("$defs").and_then(Value::as_object) {
            for (name, def) in defs {
                let (def, pointer) = b.resolve(def, pointer_push("/$defs", name));
                if let Some(obj) = def.as_object()
                    && is_message(obj)
                {
                    b.object(&pointer, def, None);
                }
            }
        }
        Model {
            messages: b.messages,
        }
    }

    /// Sets the field numbers (from [`assign_field_numbers`]) and the reserved ones, and sorts
    /// the fields by number.
    pub(crate) fn number(&mut self, numbers: &FieldNumbers) {
        let empty = BTreeMap::new();
        for m in &mut self.messages {
            if m.shape != Shape::Object {
                continue;
            }
            let assigned = numbers.get(&m.pointer).unwrap_or(&empty);
            for f in &mut m.fields {
                f.number = assigned.get(&f.name).copied().unwrap_or(0);
            }
            let present: BTreeSet<&str> = m.fields.iter().map(|f| f.name.as_str()).collect();
            m.reserved = assigned
                .iter()
                .filter(|(name, _)| !present.contains(name.as_str()))
                .map(|(name, &n)| (n, name.clone()))
                .collect();
            m.reserved.sort();
            m.fields.sort_by_key(|f| f.number);
        }
    }
}

struct Builder<'a> {
    root: &'a Value,
    root_full: String,
    messages: Vec<Msg>,
    /// Object messages by pointer: a schema referenced twice (or recursively) is one message.
    objects: HashMap<String, usize>,
    /// Message names taken inside the event.
    names: BTreeSet<String>,
}

/// Whether an object schema becomes a message (rather than a map or JSON text).
fn is_message(obj: &Map<String, Value>) -> bool {
    let types = type_names(obj);
    let object_typed =
        types.iter().any(|t| t == "object") || (types.is_empty() && obj.contains_key("properties"));
    object_typed
        && !has_composition(obj)
        && match (obj.get("properties"), obj.get("additionalProperties")) {
            (Some(_), Some(Value::Object(_))) => false,
            (Some(_), _) => true,
            (None, Some(Value::Bool(false))) => true,
            (None, _) => false,
        }
}

fn has_composition(obj: &Map<String, Value>) -> bool {
    ["oneOf", "anyOf", "allOf", "not"]
        .iter()
        .any(|k| obj.contains_key(*k))
}

fn type_names(obj: &Map<String, Value>) -> Vec<String> {
    match obj.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

impl<'a> Builder<'a> {
    /// Follows `$ref`s to the schema they name; returns it with its pointer.
    fn resolve(&self, mut schema: &'a Value, mut pointer: String) -> (&'a Value, String) {
        for _ in 0..64 {
            let Some(target) = schema.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let Some(target) = target.strip_prefix('#') else {
                break;
            };
            let Some(next) = self.root.pointer(target) else {
                break;
            };
            schema = next;
            pointer = target.to_string();
        }
        (schema, pointer)
    }

    /// A unique message name inside the event.
    fn claim(&mut self, wanted: &str) -> String {
        let wanted = if wanted.is_empty() { "Message" } else { wanted };
        let mut name = wanted.to_string();
        let mut i = 2;
        while !self.names.insert(name.clone()) {
            name = format!("{wanted}{i}");
            i += 1;
        }
        name
    }

    fn push(&mut self, pointer: &str, name: String, shape: Shape, fields: Vec<Fld>) -> usize {
        let full_name = if self.messages.is_empty() {
            self.root_full.clone()
        } else {
            format!("{}.{name}", self.root_full)
        };
        self.messages.push(Msg {
            pointer: pointer.to_string(),
            name,
            full_name,
            shape,
            fields,
            reserved: Vec::new(),
        });
        self.messages.len() - 1
    }

    /// The message of an object schema (made once per pointer).
    fn object(&mut self, pointer: &str, schema: &'a Value, name: Option<String>) -> usize {
        if let Some(&i) = self.objects.get(pointer) {
            return i;
        }
        let name = name.unwrap_or_else(|| self.claim(&name_from_pointer(pointer)));
        let index = self.push(pointer, name, Shape::Object, Vec::new());
        self.objects.insert(pointer.to_string(), index);
        let required: BTreeSet<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields = Vec::new();
        let mut proto_names = BTreeSet::new();
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (prop, prop_schema) in props {
                let at = pointer_push(&pointer_push(pointer, "properties"), prop);
                let typed = self.typed(prop_schema, at.clone());
                let mut field = self.field(prop, typed, &at);
                field.required = required.contains(prop.as_str());
                field.description = prop_schema
                    .get("description")
                    .and_then(Value::as_str)
                    .or_else(|| {
                        self.resolve(prop_schema, at)
                            .0
                            .get("description")
                            .and_then(Value::as_str)
                    })
                    .map(str::to_string);
                field.proto_name = unique_identifier(prop, &mut proto_names);
                fields.push(field);
            }
        }
        self.messages[index].fields = fields;
        index
    }

    /// What a schema becomes.
    fn typed(&mut self, schema: &'a Value, pointer: String) -> Typed {
        let (schema, pointer) = self.resolve(schema, pointer);
        let json = Typed {
            ty: Ty::Single(Kind::Json),
            nullable: false,
        };
        let Some(obj) = schema.as_object() else {
            return json;
        };
        if has_composition(obj) {
            return json;
        }
        let mut types = type_names(obj);
        if types.is_empty() {
            if let Some(values) = obj
                .get("enum")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .or_else(|| obj.get("const").map(std::slice::from_ref))
            {
                if values.iter().all(|v| v.is_string() || v.is_null())
                    && values.iter().any(Value::is_string)
                {
                    types.push("string".into());
                    if values.iter().any(Value::is_null) {
                        types.push("null".into());
                    }
                }
            } else if obj.contains_key("properties") {
                types.push("object".into());
            }
        }
        let nullable = types.iter().any(|t| t == "null");
        types.retain(|t| t != "null");
        let [ty] = types.as_slice() else {
            return json;
        };
        let ty = match ty.as_str() {
            "string" => Ty::Single(Kind::String),
            "integer" if unsigned(obj) => Ty::Single(Kind::Uint64),
            "integer" => Ty::Single(Kind::Sint64),
            "number" => Ty::Single(Kind::Double),
            "boolean" => Ty::Single(Kind::Bool),
            "array" => {
                let at = pointer_push(&pointer, "items");
                let items = match obj.get("items") {
                    Some(items) => self.typed(items, at.clone()),
                    None => json.clone(),
                };
                Ty::Array(Box::new(items), at)
            }
            "object" if is_message(obj) => {
                Ty::Single(Kind::Message(self.object(&pointer, schema, None)))
            }
            "object" if obj.contains_key("properties") => return json,
            "object" => {
                let at = pointer_push(&pointer, "additionalProperties");
                let values = match obj.get("additionalProperties") {
                    Some(v @ Value::Object(_)) => self.typed(v, at.clone()),
                    _ => json.clone(),
                };
                Ty::Map(Box::new(values), at)
            }
            _ => return json,
        };
        Typed { ty, nullable }
    }

    /// A field (named `name`, number unset) holding values of `typed`; `pointer` is the schema
    /// the field comes from (it names wrapper and entry messages).
    fn field(&mut self, name: &str, typed: Typed, pointer: &str) -> Fld {
        let mut field = Fld {
            name: name.to_string(),
            proto_name: identifier(name),
            number: 0,
            kind: Kind::Json,
            repeated: false,
            required: false,
            nullable: typed.nullable,
            description: None,
        };
        match typed.ty {
            Ty::Single(kind) => field.kind = kind,
            Ty::Array(..) | Ty::Map(..) if typed.nullable => {
                // null (absent) and empty must stay distinct: wrap.
                let inner = Typed {
                    nullable: false,
                    ..typed
                };
                field.kind = Kind::Message(self.wrapper(inner, pointer));
            }
            Ty::Array(items, items_at) => {
                field.repeated = true;
                field.kind = self.singular(*items, &items_at);
            }
            Ty::Map(values, values_at) => {
                let value = Fld {
                    kind: self.singular(*values, &values_at),
                    ..fixed("value", 2)
                };
                let entry = self.claim(&format!("{}Entry", pascal(&field.proto_name)));
                let key = Fld {
                    kind: Kind::String,
                    ..fixed("key", 1)
                };
                let index = self.push(pointer, entry, Shape::MapEntry, vec![key, value]);
                field.kind = Kind::Map(index);
            }
        }
        field
    }

    /// The kind of a value that must fit one non-repeated, non-null field occurrence (an array
    /// item or a map value): arrays, maps and nullable values are wrapped.
    fn singular(&mut self, typed: Typed, pointer: &str) -> Kind {
        match typed.ty {
            Ty::Single(kind) if !typed.nullable => kind,
            _ => Kind::Message(self.wrapper(typed, pointer)),
        }
    }

    /// A wrapper message whose field 1 holds `typed`.
    fn wrapper(&mut self, typed: Typed, pointer: &str) -> usize {
        let name = self.claim(&name_from_pointer(pointer));
        let index = self.push(pointer, name, Shape::Wrapper, Vec::new());
        let mut value = self.field("value", typed, pointer);
        value.number = 1;
        value.required = true;
        self.messages[index].fields = vec![value];
        index
    }
}

/// A field of a wrapper or map entry, whose numbers are fixed.
fn fixed(name: &str, number: u32) -> Fld {
    Fld {
        name: name.to_string(),
        proto_name: name.to_string(),
        number,
        kind: Kind::Json,
        repeated: false,
        required: true,
        nullable: false,
        description: None,
    }
}

/// Whether an integer schema excludes negative values.
fn unsigned(obj: &Map<String, Value>) -> bool {
    let at_least = |k: &str, min: f64| obj.get(k).and_then(Value::as_f64).is_some_and(|v| v >= min);
    at_least("minimum", 0.0)
        || at_least("exclusiveMinimum", -1.0)
        || obj
            .get("format")
            .and_then(Value::as_str)
            .is_some_and(|f| f.starts_with("uint"))
}

/// `/properties/shipping_address` → `ShippingAddress`, `/properties/lines/items` →
/// `LinesItem`, `/$defs/Check/properties/x` → `CheckX`.
fn name_from_pointer(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .filter(|t| *t != "properties" && *t != "$defs")
        .map(|t| match t {
            "items" => "Item".to_string(),
            "additionalProperties" => "Value".to_string(),
            t => pascal(&identifier(&t.replace("~1", "/").replace("~0", "~"))),
        })
        .collect()
}

/// A protobuf identifier for a JSON property name: letters, digits and `_`, starting with a
/// letter.
fn identifier(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert(0, 'f');
    }
    out
}

fn unique_identifier(name: &str, taken: &mut BTreeSet<String>) -> String {
    let base = identifier(name);
    let mut out = base.clone();
    let mut i = 2;
    while !taken.insert(out.clone()) {
        out = format!("{base}_{i}");
        i += 1;
    }
    out
}

/// One event version as the generated code describes it.
pub(crate) struct ProtoEvent<'a> {
    pub(crate) model: &'a Model,
    /// `user.created`
    pub(crate) event_type: &'a str,
    pub(crate) version: u32,
    pub(crate) subject: &'a str,
    pub(crate) schema_id: &'a str,
}

impl Model {
    /// The Rust name of the static describing message `index`.
    pub(crate) fn static_ident(&self, index: usize) -> proc_macro2::Ident {
        let root = const_ident(&self.messages[0].name);
        if index == 0 {
            format_ident!("{root}")
        } else {
            format_ident!("{root}__{}", const_ident(&self.messages[index].name))
        }
    }

    /// The statics describing every message, for the generated `descriptors` module.
    pub(crate) fn descriptor_tokens(&self, rt: &syn::Path, event: &str) -> TokenStream {
        let statics = self.messages.iter().enumerate().map(|(i, m)| {
            let ident = self.static_ident(i);
            let name = &m.full_name;
            let pointer = &m.pointer;
            let shape = format_ident!(
                "{}",
                match m.shape {
                    Shape::Object => "Object",
                    Shape::Wrapper => "Wrapper",
                    Shape::MapEntry => "MapEntry",
                }
            );
            let fields = m.fields.iter().map(|f| {
                let fname = &f.name;
                let number = Literal::u32_unsuffixed(f.number);
                let kind = match f.kind {
                    Kind::Message(j) => {
                        let target = self.static_ident(j);
                        quote!(#rt::wire::proto::Kind::Message(&#target))
                    }
                    Kind::Map(j) => {
                        let target = self.static_ident(j);
                        quote!(#rt::wire::proto::Kind::Map(&#target))
                    }
                    other => {
                        let k = format_ident!("{other:?}");
                        quote!(#rt::wire::proto::Kind::#k)
                    }
                };
                let (repeated, required, nullable) = (f.repeated, f.required, f.nullable);
                quote! {
                    #rt::wire::proto::Field {
                        name: #fname,
                        number: #number,
                        kind: #kind,
                        repeated: #repeated,
                        required: #required,
                        nullable: #nullable,
                    }
                }
            });
            let reserved = m.reserved.iter().map(|(n, _)| Literal::u32_unsuffixed(*n));
            let doc = if i == 0 {
                format!(" `{event}`: the event's message.")
            } else {
                let what = match m.shape {
                    Shape::Object => "the object",
                    Shape::Wrapper => "a wrapper of the value",
                    Shape::MapEntry => "an entry of the map",
                };
                format!(" `{event}`: {what} at `{}`.", m.pointer)
            };
            quote! {
                #[doc = #doc]
                pub static #ident: #rt::wire::proto::Message = #rt::wire::proto::Message {
                    name: #name,
                    pointer: #pointer,
                    shape: #rt::wire::proto::Shape::#shape,
                    fields: &[#(#fields),*],
                    reserved: &[#(#reserved),*],
                };
            }
        });
        quote!(#(#statics)*)
    }
}

/// The `.proto` (proto3) text of every event of a catalog, in catalog order.
pub(crate) fn proto_file(events: &[ProtoEvent<'_>]) -> String {
    let mut out = String::new();
    out.push_str(
        "// @generated by eventhub-codegen from the JSON Schemas in `schemas/`. Do not edit.\n\
         //\n\
         // Every event version as a protobuf message: the payload eventhub publishes with\n\
         // `content-type: application/protobuf`. Field numbers stay stable across compatible\n\
         // schema changes; numbers of removed properties are reserved.\n\
         //\n\
         // - A field is present exactly when the JSON property is, zero values included (hence\n\
         //   `optional`); a missing repeated or map field is an empty array or object.\n\
         // - A `string` field marked \"JSON text\" carries a value the schema leaves open (any\n\
         //   JSON, oneOf, anyOf) as its JSON text.\n\
         // - Wrapper messages (one field, `value`) hold array items or map values that are\n\
         //   arrays, maps or nullable, and nullable arrays and maps.\n\n",
    );
    out.push_str("syntax = \"proto3\";\n\n");
    out.push_str(&format!("package {PACKAGE};\n"));
    for e in events {
        let root = &e.model.messages[0];
        out.push('\n');
        out.push_str(&format!(
            "// `{}` v{} on `{}` (schema {}).\n",
            e.event_type, e.version, e.subject, e.schema_id
        ));
        out.push_str(&format!("message {} {{\n", root.name));
        write_body(&mut out, e.model, root, "  ");
        for m in e.model.messages.iter().skip(1) {
            if m.shape == Shape::MapEntry {
                continue;
            }
            out.push('\n');
            match m.shape {
                Shape::Wrapper => out.push_str(&format!("  // Wrapper of `{}`.\n", m.pointer)),
                _ => out.push_str(&format!("  // `{}`\n", m.pointer)),
            }
            out.push_str(&format!("  message {} {{\n", m.name));
            write_body(&mut out, e.model, m, "    ");
            out.push_str("  }\n");
        }
        out.push_str("}\n");
    }
    out
}

fn write_body(out: &mut String, model: &Model, m: &Msg, indent: &str) {
    for f in &m.fields {
        if let Some(d) = &f.description {
            for line in d.lines() {
                out.push_str(&format!("{indent}// {}\n", line.trim_end()));
            }
        }
        let (ty, json_text) = proto_type(model, f.kind);
        let label = match f.kind {
            Kind::Map(_) => "",
            _ if f.repeated => "repeated ",
            Kind::Message(_) => "",
            _ => "optional ",
        };
        let json_name = if f.proto_name != f.name {
            format!(" [json_name = {}]", serde_json::Value::from(f.name.clone()))
        } else {
            String::new()
        };
        let note = if json_text { " // JSON text" } else { "" };
        out.push_str(&format!(
            "{indent}{label}{ty} {} = {}{json_name};{note}\n",
            f.proto_name, f.number
        ));
    }
    for (n, name) in &m.reserved {
        out.push_str(&format!(
            "{indent}reserved {n};\n{indent}reserved {};\n",
            serde_json::Value::from(name.clone())
        ));
    }
}

/// The protobuf type of a kind, and whether it is JSON text.
fn proto_type(model: &Model, kind: Kind) -> (String, bool) {
    match kind {
        Kind::String => ("string".into(), false),
        Kind::Json => ("string".into(), true),
        Kind::Sint64 => ("sint64".into(), false),
        Kind::Uint64 => ("uint64".into(), false),
        Kind::Double => ("double".into(), false),
        Kind::Bool => ("bool".into(), false),
        Kind::Message(i) => (model.messages[i].name.clone(), false),
        Kind::Map(i) => {
            let (value, json) = proto_type(model, model.messages[i].fields[1].kind);
            (format!("map<string, {value}>"), json)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn numbers(pairs: &[(&str, &[(&str, u32)])]) -> FieldNumbers {
        pairs
            .iter()
            .map(|(m, fs)| {
                (
                    m.to_string(),
                    fs.iter().map(|(f, n)| (f.to_string(), *n)).collect(),
                )
            })
            .collect()
    }

    fn order_v1() -> Value {
        json!({
            "type": "object",
            "properties": {
                "order_id": {"type": "string"},
                "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
                "total": {"$ref": "#/$defs/Money"},
                "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}}
            },
            "required": ["order_id"],
            "$defs": {
                "Money": {"type": "object", "properties": {"currency": {"type": "string"}, "amount_minor": {"type": "integer", "minimum": 0}}},
                "Line": {"type": "object", "properties": {"sku": {"type": "string"}, "price": {"$ref": "#/$defs/Money"}}},
                "Currency": {"type": "string"}
            }
        })
    }

    #[test]
    fn a_new_message_numbers_its_properties_alphabetically() {
        let n = assign_field_numbers(&order_v1(), None);
        assert_eq!(
            n,
            numbers(&[
                (
                    "",
                    &[("address", 1), ("lines", 2), ("order_id", 3), ("total", 4)]
                ),
                ("/$defs/Line", &[("price", 1), ("sku", 2)]),
                ("/$defs/Money", &[("amount_minor", 1), ("currency", 2)]),
                ("/properties/address", &[("city", 1), ("zip", 2)]),
            ])
        );
    }

    #[test]
    fn adding_a_property_keeps_the_released_numbers() {
        let released = assign_field_numbers(&order_v1(), None);
        let mut schema = order_v1();
        // `a_note` sorts first but comes after the highest released number.
        schema["properties"]["a_note"] = json!({"type": "string"});
        schema["properties"]["zz_flag"] = json!({"type": "boolean"});
        schema["$defs"]["Money"]["properties"]["precision"] = json!({"type": "integer"});
        let n = assign_field_numbers(&schema, Some(&released));
        assert_eq!(
            n[""],
            numbers(&[(
                "",
                &[
                    ("a_note", 5),
                    ("address", 1),
                    ("lines", 2),
                    ("order_id", 3),
                    ("total", 4),
                    ("zz_flag", 6)
                ]
            )])[""]
        );
        assert_eq!(n["/$defs/Money"]["precision"], 3);
        assert_eq!(n["/$defs/Line"], released["/$defs/Line"]);
        // Stable: assigning again from the result changes nothing.
        assert_eq!(assign_field_numbers(&schema, Some(&n)), n);
    }

    #[test]
    fn a_removed_property_keeps_its_number_reserved() {
        let released = assign_field_numbers(&order_v1(), None);
        let mut schema = order_v1();
        schema["properties"]
            .as_object_mut()
            .unwrap()
            .remove("lines");
        schema["properties"]["notes"] = json!({"type": "string"});
        let n = assign_field_numbers(&schema, Some(&released));
        assert_eq!(n[""]["lines"], 2, "kept, so never reused");
        assert_eq!(n[""]["notes"], 5, "not 2");
        // A message that is gone entirely keeps its numbers too.
        schema["properties"]
            .as_object_mut()
            .unwrap()
            .remove("address");
        let n = assign_field_numbers(&schema, Some(&n));
        assert_eq!(n["/properties/address"]["zip"], 2);

        let mut model = Model::build(&schema, "OrderV2");
        model.number(&n);
        assert_eq!(
            model.messages[0].reserved,
            vec![(1, "address".to_string()), (2, "lines".to_string())]
        );
        let text = proto_file(&[ProtoEvent {
            model: &model,
            event_type: "order",
            version: 2,
            subject: "events.order.v2",
            schema_id: "urn:x",
        }]);
        assert!(
            text.contains("  reserved 2;\n  reserved \"lines\";\n"),
            "{text}"
        );
    }

    #[test]
    fn the_implementation_range_is_skipped() {
        let released = numbers(&[("", &[("a", 18_999)])]);
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}});
        assert_eq!(
            assign_field_numbers(&schema, Some(&released))[""]["b"],
            20_000
        );
    }

    #[test]
    fn bad_numbers_are_reported() {
        let n = numbers(&[("", &[("a", 1), ("b", 1), ("c", 19_500)])]);
        let problems = check_field_numbers(&n);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`a` and `b` both have field number 1")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("field number 19500 of `c` is not allowed")),
            "{problems:?}"
        );
    }

    #[test]
    fn schemas_map_to_protobuf_kinds() {
        let schema = json!({
            "type": "object",
            "properties": {
                "s": {"type": "string", "format": "uuid"},
                "e": {"enum": ["a", "b"]},
                "n": {"type": "integer"},
                "u": {"type": "integer", "minimum": 0},
                "d": {"type": "number"},
                "b": {"type": "boolean"},
                "opt": {"type": ["string", "null"]},
                "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                "any_map": {"type": "object", "additionalProperties": true},
                "grid": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
                "maybe_list": {"type": ["array", "null"], "items": {"type": "string"}},
                "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "anything": {}
            },
            "required": ["s"]
        });
        let mut model = Model::build(&schema, "Root");
        model.number(&assign_field_numbers(&schema, None));
        let root = &model.messages[0];
        let kind = |name: &str| root.fields.iter().find(|f| f.name == name).unwrap();
        assert_eq!(kind("s").kind, Kind::String);
        assert!(kind("s").required && !kind("e").required);
        assert_eq!(kind("e").kind, Kind::String);
        assert_eq!(kind("n").kind, Kind::Sint64);
        assert_eq!(kind("u").kind, Kind::Uint64);
        assert_eq!(kind("d").kind, Kind::Double);
        assert_eq!(kind("b").kind, Kind::Bool);
        assert!(kind("opt").nullable);
        assert_eq!(kind("either").kind, Kind::Json);
        assert_eq!(kind("anything").kind, Kind::Json);
        let Kind::Map(entry) = kind("tags").kind else {
            panic!("tags is a map")
        };
        assert_eq!(model.messages[entry].fields[1].kind, Kind::String);
        let Kind::Map(entry) = kind("any_map").kind else {
            panic!("any_map is a map")
        };
        assert_eq!(model.messages[entry].fields[1].kind, Kind::Json);
        let grid = kind("grid");
        assert!(grid.repeated);
        let Kind::Message(row) = grid.kind else {
            panic!("rows are wrapped")
        };
        assert_eq!(model.messages[row].shape, Shape::Wrapper);
        assert!(model.messages[row].fields[0].repeated);
        let Kind::Message(list) = kind("maybe_list").kind else {
            panic!("a nullable list is wrapped")
        };
        assert!(!kind("maybe_list").repeated);
        assert!(model.messages[list].fields[0].repeated);

        let text = proto_file(&[ProtoEvent {
            model: &model,
            event_type: "x",
            version: 1,
            subject: "events.x.v1",
            schema_id: "urn:x",
        }]);
        for line in [
            "  map<string, string> tags = ",
            "  map<string, string> any_map = ",
            "  repeated GridItem grid = ",
            "  optional string either = 6; // JSON text",
            "  message GridItem {\n    repeated sint64 value = 1;\n  }",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn recursive_definitions_are_one_message() {
        let schema = json!({
            "type": "object",
            "properties": {"tree": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": {"type": "object", "properties": {
                "label": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
            }}}
        });
        let model = Model::build(&schema, "Root");
        assert_eq!(model.messages.len(), 2);
        let node = &model.messages[1];
        assert_eq!(node.pointer, "/$defs/Node");
        let children = node.fields.iter().find(|f| f.name == "children").unwrap();
        assert!(children.repeated);
        assert_eq!(children.kind, Kind::Message(1));
    }
}
