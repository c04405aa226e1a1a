//! Structural validation of schema documents before typify sees them.
//!
//! typify 0.8 panics (or silently produces the wrong type) on constructs it does not support, so
//! every keyword is checked against an allowlist here first. A typo'd keyword would otherwise be
//! ignored by JSON Schema and silently loosen the contract, so unknown keywords are errors too.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostics, json_kind as kind_of, pointer_push, suggest};
use crate::naming::check_definition_name;

/// Drafts whose keyword semantics the generator follows (draft-04/06 use boolean
/// `exclusiveMinimum` and are rejected).
const DRAFTS: &[&str] = &[
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-07/schema",
];

const TYPES: &[&str] = &[
    "array", "boolean", "integer", "null", "number", "object", "string",
];

/// Formats the generator knows. Some map to richer Rust types (`uuid` -> `uuid::Uuid`,
/// `date-time` -> `chrono::DateTime<Utc>`); the rest stay strings. A format outside this list is
/// almost always a typo (`date_time`) that would silently drop validation.
const FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uri-template",
    "uuid",
    "json-pointer",
    "relative-json-pointer",
    "regex",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float",
    "double",
    "byte",
    "binary",
    "password",
];

/// Keywords that are valid JSON Schema but that typify cannot turn into Rust types (it panics or
/// generates something wrong). Each comes with what to do instead.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "not",
        "express the allowed values positively (enum, oneOf) or validate in the handler",
    ),
    (
        "if",
        "use oneOf with a discriminating `const` property instead",
    ),
    (
        "then",
        "use oneOf with a discriminating `const` property instead",
    ),
    (
        "else",
        "use oneOf with a discriminating `const` property instead",
    ),
    (
        "patternProperties",
        "use additionalProperties with a value schema (a map)",
    ),
    (
        "propertyNames",
        "use additionalProperties with a value schema (a map)",
    ),
    (
        "prefixItems",
        "use an object with named properties instead of a tuple",
    ),
    (
        "additionalItems",
        "use an object with named properties instead of a tuple",
    ),
    ("contains", "validate array contents in the handler"),
    ("minContains", "validate array contents in the handler"),
    ("maxContains", "validate array contents in the handler"),
    (
        "dependentRequired",
        "make the fields required, or split the event",
    ),
    (
        "dependentSchemas",
        "use oneOf with a discriminating `const` property instead",
    ),
    (
        "dependencies",
        "make the fields required, or split the event",
    ),
    ("unevaluatedProperties", "use additionalProperties"),
    ("unevaluatedItems", "use items"),
    ("$anchor", "reference definitions by $defs path"),
    ("$dynamicRef", "reference definitions by $defs path"),
    ("$dynamicAnchor", "reference definitions by $defs path"),
    ("$recursiveRef", "reference definitions by $defs path"),
    ("$recursiveAnchor", "reference definitions by $defs path"),
    ("$vocabulary", "remove it"),
    (
        "contentEncoding",
        "carry binary data as a string and decode it in the handler",
    ),
    (
        "contentMediaType",
        "carry binary data as a string and decode it in the handler",
    ),
    (
        "contentSchema",
        "carry binary data as a string and decode it in the handler",
    ),
];

/// Annotation keywords: allowed anywhere, never change the generated type's shape.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "$comment",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

const SCHEMA_KEYWORDS: &[&str] = &[
    "type",
    "enum",
    "const",
    "default",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "oneOf",
    "anyOf",
    "allOf",
    "$ref",
];

const ROOT_ONLY: &[&str] = &["$schema", "$id", "$defs", "definitions"];

/// A `$ref` found while walking: where it is and what it says.
#[derive(Debug, Clone)]
pub(crate) struct RefSite {
    pub(crate) pointer: String,
    pub(crate) target: String,
}

/// What kind of document is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DocKind {
    /// An event schema: the root is an object type.
    Event,
    /// A shared-definitions file: only `$defs` (plus annotations).
    Shared,
}

/// Validates a whole document; returns its `$ref`s and local definition names.
pub(crate) fn check_document(
    file: &Path,
    doc: &Value,
    kind: DocKind,
    diags: &mut Diagnostics,
) -> (Vec<RefSite>, BTreeMap<String, Value>) {
    let mut w = Walker {
        file,
        diags,
        refs: Vec::new(),
    };
    let Some(root) = doc.as_object() else {
        w.err("", "a schema document must be a JSON object");
        return (Vec::new(), BTreeMap::new());
    };
    if let Some(s) = root.get("$schema") {
        match s.as_str() {
            Some(s) if DRAFTS.contains(&s) => {}
            _ => w.err(
                "/$schema",
                format!(
                    "unsupported $schema {s}; use \"{}\" (draft-07 and 2019-09 are accepted too)",
                    DRAFTS[0]
                ),
            ),
        }
    }
    if let Some(id) = root.get("$id")
        && !id.as_str().is_some_and(|s| s.contains(':'))
    {
        w.err(
            "/$id",
            "$id must be an absolute URI string, e.g. urn:acme:schema:user.created:v1",
        );
    }
    let defs = w.definitions(root);
    match kind {
        DocKind::Event => {
            if root.get("type").and_then(Value::as_str) != Some("object") {
                w.err(
                    "/type",
                    "an event schema's root must be `\"type\": \"object\"` (events are JSON objects, \
                     so fields can be added compatibly)",
                );
            }
            if !root.get("description").is_some_and(Value::is_string) {
                w.err(
                    "/description",
                    "an event schema needs a root `description`: it becomes the Rust type's docs \
                     and tells other teams what happened",
                );
            }
            w.schema_object(root, "", true);
        }
        DocKind::Shared => {
            for (k, _) in root {
                let ok = ANNOTATIONS.contains(&k.as_str())
                    || ["$schema", "$id", "$defs", "definitions"].contains(&k.as_str())
                    || k.starts_with("x-");
                if !ok {
                    w.err(
                        &pointer_push("", k),
                        format!(
                            "a shared-definitions file holds only `$defs` (plus title/description); \
                             move `{k}` into a definition"
                        ),
                    );
                }
            }
            if defs.is_empty() {
                w.err(
                    "/$defs",
                    "a shared-definitions file must define at least one type in `$defs`",
                );
            }
        }
    }
    (w.refs, defs)
}

struct Walker<'a> {
    file: &'a Path,
    diags: &'a mut Diagnostics,
    refs: Vec<RefSite>,
}

impl Walker<'_> {
    fn err(&mut self, pointer: &str, msg: impl Into<String>) {
        self.diags.push(self.file, pointer, msg);
    }

    /// Checks `$defs` / `definitions` at the root and walks each definition.
    fn definitions(&mut self, root: &Map<String, Value>) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        if root.contains_key("$defs") && root.contains_key("definitions") {
            self.err(
                "/definitions",
                "use either `$defs` or `definitions`, not both",
            );
        }
        for key in ["$defs", "definitions"] {
            let Some(defs) = root.get(key) else { continue };
            let ptr = pointer_push("", key);
            let Some(defs) = defs.as_object() else {
                self.err(&ptr, format!("`{key}` must be an object of named schemas"));
                continue;
            };
            for (name, schema) in defs {
                let p = pointer_push(&ptr, name);
                if let Err(why) = check_definition_name(name) {
                    self.err(&p, why);
                }
                self.schema(schema, &p, false);
                out.insert(name.clone(), schema.clone());
            }
        }
        out
    }

    fn schema(&mut self, v: &Value, ptr: &str, allow_false: bool) {
        match v {
            Value::Object(map) => self.schema_object(map, ptr, false),
            Value::Bool(true) => {}
            Value::Bool(false) if allow_false => {}
            Value::Bool(false) => self.err(
                ptr,
                "the `false` schema (matches nothing) is only supported as additionalProperties",
            ),
            _ => self.err(
                ptr,
                format!("expected a schema (an object), found {}", kind_of(v)),
            ),
        }
    }

    fn schema_object(&mut self, map: &Map<String, Value>, ptr: &str, is_root: bool) {
        let has_ref = map.contains_key("$ref");
        for (k, v) in map {
            let p = pointer_push(ptr, k);
            let key = k.as_str();
            if key == crate::sensitive::KEYWORD {
                for problem in crate::sensitive::check_mark(map, v, ptr) {
                    self.err(&p, problem);
                }
                continue;
            }
            if key.starts_with("x-") {
                continue;
            }
            if ROOT_ONLY.contains(&key) {
                if !is_root {
                    let what = if key.starts_with("$d") || key == "definitions" {
                        "definitions ($defs) are only supported at the top level of a file"
                    } else {
                        "only allowed at the top level of a file"
                    };
                    self.err(&p, format!("`{key}`: {what}"));
                }
                continue;
            }
            if ANNOTATIONS.contains(&key) {
                self.annotation(key, v, &p);
                continue;
            }
            if has_ref && key != "$ref" && !is_root {
                self.err(
                    &p,
                    format!(
                        "`{key}` next to `$ref`: a reference can only carry annotations \
                         (description, title…); put constraints in the referenced definition, or \
                         combine with allOf"
                    ),
                );
                continue;
            }
            if let Some((_, instead)) = UNSUPPORTED.iter().find(|(kw, _)| *kw == key) {
                self.err(
                    &p,
                    format!(
                        "`{key}` is valid JSON Schema but the code generator (typify) cannot turn \
                         it into a Rust type; {instead}"
                    ),
                );
                continue;
            }
            match key {
                "type" => self.type_keyword(v, &p),
                "enum" => self.enum_keyword(v, &p),
                "const" | "default" => {}
                "properties" => match v.as_object() {
                    Some(props) => {
                        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
                        for (name, s) in props {
                            let norm: String = name
                                .chars()
                                .filter(char::is_ascii_alphanumeric)
                                .map(|c| c.to_ascii_lowercase())
                                .collect();
                            if let Some(other) = seen.insert(norm, name) {
                                self.err(
                                    &pointer_push(&p, name),
                                    format!(
                                        "properties `{other}` and `{name}` would become the same \
                                         Rust field name; rename one"
                                    ),
                                );
                            }
                            self.schema(s, &pointer_push(&p, name), false);
                        }
                    }
                    None => self.err(&p, "`properties` must be an object of named schemas"),
                },
                "required" => self.required(map, v, &p),
                "additionalProperties" => self.schema(v, &p, true),
                "items" => {
                    if v.is_array() {
                        self.err(
                            &p,
                            "tuple arrays (`items` as an array) are not supported; use an object \
                             with named properties",
                        );
                    } else {
                        self.schema(v, &p, false);
                    }
                }
                "minProperties" | "maxProperties" | "minItems" | "maxItems" | "minLength"
                | "maxLength" => {
                    if v.as_u64().is_none() {
                        self.err(&p, format!("`{key}` must be a non-negative integer"));
                    }
                }
                "uniqueItems" => {
                    if !v.is_boolean() {
                        self.err(&p, "`uniqueItems` must be true or false");
                    }
                }
                "pattern" => match v.as_str() {
                    Some(re) => {
                        if let Err(e) = regress::Regex::new(re) {
                            self.err(&p, format!("invalid regular expression {re:?}: {e}"));
                        }
                    }
                    None => self.err(&p, "`pattern` must be a string (an ECMA-262 regex)"),
                },
                "format" => match v.as_str() {
                    Some(f) if FORMATS.contains(&f) => {}
                    Some(f) => {
                        let hint = suggest(f, FORMATS.iter().copied())
                            .map(|s| format!(" (did you mean \"{s}\"?)"))
                            .unwrap_or_default();
                        self.err(
                            &p,
                            format!(
                                "unknown format \"{f}\"{hint}; known formats: {}",
                                FORMATS.join(", ")
                            ),
                        );
                    }
                    None => self.err(&p, "`format` must be a string"),
                },
                "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                    if !v.is_number() {
                        self.err(
                            &p,
                            format!(
                                "`{key}` must be a number{}",
                                if v.is_boolean() {
                                    " (boolean exclusiveMinimum/Maximum is draft-04 syntax)"
                                } else {
                                    ""
                                }
                            ),
                        );
                    }
                }
                "multipleOf" => {
                    if !v.as_f64().is_some_and(|n| n > 0.0) {
                        self.err(&p, "`multipleOf` must be a number greater than 0");
                    }
                }
                "oneOf" | "anyOf" | "allOf" => match v.as_array() {
                    Some(items) if !items.is_empty() => {
                        for (i, s) in items.iter().enumerate() {
                            self.schema(s, &format!("{p}/{i}"), false);
                        }
                    }
                    _ => self.err(&p, format!("`{key}` must be a non-empty array of schemas")),
                },
                "$ref" => match v.as_str() {
                    Some(target) => self.refs.push(RefSite {
                        pointer: p.clone(),
                        target: target.to_string(),
                    }),
                    None => self.err(&p, "`$ref` must be a string"),
                },
                _ => {
                    let known = SCHEMA_KEYWORDS
                        .iter()
                        .chain(ANNOTATIONS)
                        .chain(ROOT_ONLY)
                        .copied();
                    let hint = suggest(key, known)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    self.err(
                        &p,
                        format!(
                            "unknown keyword `{key}`{hint}; JSON Schema would silently ignore it. \
                             Custom annotations must start with `x-`"
                        ),
                    );
                }
            }
        }
    }

    fn annotation(&mut self, key: &str, v: &Value, p: &str) {
        let ok = match key {
            "title" | "description" | "$comment" => v.is_string(),
            "examples" => v.is_array(),
            _ => v.is_boolean(),
        };
        if !ok {
            let want = match key {
                "title" | "description" | "$comment" => "a string",
                "examples" => "an array",
                _ => "true or false",
            };
            self.err(p, format!("`{key}` must be {want}"));
        }
    }

    fn type_keyword(&mut self, v: &Value, p: &str) {
        let names: Vec<(String, &Value)> = match v {
            Value::String(_) => vec![(p.to_string(), v)],
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("{p}/{i}"), t))
                .collect(),
            _ => {
                self.err(
                    p,
                    "`type` must be a type name or a non-empty array of type names",
                );
                return;
            }
        };
        let mut seen = Vec::new();
        for (ptr, t) in names {
            match t.as_str() {
                Some(t) if TYPES.contains(&t) => {
                    if seen.contains(&t) {
                        self.err(&ptr, format!("type \"{t}\" is listed twice"));
                    }
                    seen.push(t);
                }
                Some(t) => {
                    let hint = suggest(t, TYPES.iter().copied())
                        .map(|s| format!(" (did you mean \"{s}\"?)"))
                        .unwrap_or_default();
                    self.err(
                        &ptr,
                        format!(
                            "unknown type \"{t}\"{hint}; expected one of {}",
                            TYPES.join(", ")
                        ),
                    );
                }
                None => self.err(
                    &ptr,
                    format!("a type name must be a string, found {}", kind_of(t)),
                ),
            }
        }
    }

    fn enum_keyword(&mut self, v: &Value, p: &str) {
        let Some(values) = v.as_array().filter(|a| !a.is_empty()) else {
            self.err(p, "`enum` must be a non-empty array of values");
            return;
        };
        let mut kinds: Vec<&str> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| match v {
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                other => kind_of(other),
            })
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        if kinds.len() > 1 {
            self.err(
                p,
                format!(
                    "enum mixes value kinds ({}); one Rust type cannot hold them — use values of one \
                     kind (plus null)",
                    kinds.join(", ")
                ),
            );
        }
        if kinds.iter().any(|k| *k == "object" || *k == "array") {
            self.err(p, "enum values must be strings, numbers or booleans");
        }
        for (i, a) in values.iter().enumerate() {
            if values[..i].contains(a) {
                self.err(
                    &format!("{p}/{i}"),
                    format!("enum value {a} is listed twice"),
                );
            }
        }
    }

    fn required(&mut self, map: &Map<String, Value>, v: &Value, p: &str) {
        let Some(names) = v.as_array() else {
            self.err(p, "`required` must be an array of property names");
            return;
        };
        let props = map.get("properties").and_then(Value::as_object);
        for (i, n) in names.iter().enumerate() {
            let ptr = format!("{p}/{i}");
            let Some(name) = n.as_str() else {
                self.err(&ptr, "`required` entries must be property names (strings)");
                continue;
            };
            if names[..i].contains(n) {
                self.err(&ptr, format!("`{name}` is listed twice in required"));
            }
            if let Some(props) = props
                && !props.contains_key(name)
            {
                let hint = suggest(name, props.keys().map(String::as_str))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                self.err(
                    &ptr,
                    format!("required property `{name}` is not declared in `properties`{hint}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(doc: Value, kind: DocKind) -> Vec<String> {
        let mut d = Diagnostics::default();
        check_document(Path::new("t.json"), &doc, kind, &mut d);
        match d.check() {
            Ok(()) => vec![],
            Err(e) => e.diagnostics().iter().map(ToString::to_string).collect(),
        }
    }

    fn event(props: Value) -> Value {
        json!({"description": "x", "type": "object", "properties": props})
    }

    #[test]
    fn valid_event_has_no_problems() {
        let doc = event(json!({
            "id": {"type": "string", "format": "uuid", "description": "id"},
            "n": {"type": ["integer", "null"], "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
            "kind": {"enum": ["a", "b"]},
            "x-anything": {"x-owner": "team"},
            "email": {"type": ["string", "null"], "format": "email", "x-sensitive": true}
        }));
        assert_eq!(problems(doc, DocKind::Event), Vec::<String>::new());
    }

    #[test]
    fn typos_are_caught_with_suggestions() {
        let p = problems(
            event(json!({"a": {"type": "strng"}, "b": {"type": "string", "formt": "uuid"}})),
            DocKind::Event,
        );
        assert!(
            p.iter().any(|m| m.contains(
                "#/properties/a/type: unknown type \"strng\" (did you mean \"string\"?)"
            )),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.contains(
                "#/properties/b/formt: unknown keyword `formt` (did you mean `format`?)"
            )),
            "{p:?}"
        );
    }

    #[test]
    fn unsupported_constructs_are_named() {
        let p = problems(
            event(json!({"a": {"not": {"type": "string"}}})),
            DocKind::Event,
        );
        assert!(
            p[0].contains("#/properties/a/not: `not` is valid JSON Schema but"),
            "{p:?}"
        );
    }

    #[test]
    fn required_must_name_declared_properties() {
        let mut doc = event(json!({"email": {"type": "string"}}));
        doc["required"] = json!(["emial"]);
        let p = problems(doc, DocKind::Event);
        assert!(p[0].contains("#/required/0: required property `emial` is not declared in `properties` (did you mean `email`?)"), "{p:?}");
    }

    #[test]
    fn root_must_be_a_described_object() {
        let p = problems(json!({"type": "string"}), DocKind::Event);
        assert!(
            p.iter()
                .any(|m| m.contains("#/type: an event schema's root must be"))
        );
        assert!(
            p.iter()
                .any(|m| m.contains("#/description: an event schema needs"))
        );
    }

    #[test]
    fn shared_files_hold_only_definitions() {
        let p = problems(
            json!({"type": "object", "$defs": {"money": {"type": "string"}}}),
            DocKind::Shared,
        );
        assert!(
            p.iter()
                .any(|m| m.contains("#/type: a shared-definitions file holds only")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("#/$defs/money: definition name `money` must be PascalCase")),
            "{p:?}"
        );
    }

    #[test]
    fn ref_siblings_and_nested_defs_are_rejected() {
        let p = problems(
            event(json!({"a": {"$ref": "#/$defs/X", "type": "string"}, "b": {"$defs": {}}})),
            DocKind::Event,
        );
        assert!(
            p.iter()
                .any(|m| m.contains("#/properties/a/type: `type` next to `$ref`")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("#/properties/b/$defs: `$defs`: definitions")),
            "{p:?}"
        );
    }

    #[test]
    fn bad_patterns_and_mixed_enums() {
        let p = problems(
            event(json!({"a": {"type": "string", "pattern": "(["}, "b": {"enum": ["x", 1]}})),
            DocKind::Event,
        );
        assert!(
            p.iter()
                .any(|m| m.contains("#/properties/a/pattern: invalid regular expression")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("#/properties/b/enum: enum mixes value kinds")),
            "{p:?}"
        );
    }
}
