//! `x-sensitive`: string fields the SDK encrypts before publishing.
//!
//! A property marked `"x-sensitive": true` travels as ciphertext (`enc:v1:<key id>:<data>`), a
//! string in place of the value. So the mark is accepted only where that string fits the
//! generated Rust type and passes decoding: on a plain string (`"type": "string"`, or with
//! `null`), without `pattern`, length bounds, `enum`, `const`, `default`, or a `format` that
//! typify turns into another type (`uuid`, `date`, `date-time`, `ipv4`, `ipv6`). It may sit on a
//! property, on array items, or on a definition that properties and items reference; not inside
//! `oneOf`/`anyOf`/`allOf` or map values (`additionalProperties`), where the SDK could not tell
//! which values are the field.
//!
//! [`check_mark`] validates one mark where it is written (called by the schema walker);
//! [`paths`] lists the fields of a bundled event schema that are sensitive, as JSON pointers into
//! its instances with `*` for every item of an array: `/email`, `/contacts/*/phone`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::diagnostic::pointer_push;

/// The keyword.
pub(crate) const KEYWORD: &str = "x-sensitive";

/// String formats typify 0.8 generates a non-`String` type for (`convert_string`).
const TYPED_FORMATS: &[&str] = &["uuid", "date", "date-time", "ip", "ipv4", "ipv6"];

/// What the ciphertext looks like, for messages.
const CIPHERTEXT: &str = "the ciphertext (`enc:v1:…`)";

/// Checks one `x-sensitive` mark: `value` is the keyword's value, `schema` the schema object that
/// carries it, `at` the schema's JSON pointer in its file. Returns the problems found.
pub(crate) fn check_mark(schema: &Map<String, Value>, value: &Value, at: &str) -> Vec<String> {
    match value {
        Value::Bool(true) => {}
        Value::Bool(false) => {
            return vec![
                "`x-sensitive: false` is not allowed: leave the keyword out on a field that is \
                 not sensitive, so every mark in the catalog means the field is encrypted"
                    .into(),
            ];
        }
        other => {
            return vec![format!(
                "`x-sensitive` must be `true`, found {}",
                crate::diagnostic::json_kind(other)
            )];
        }
    }
    let mut problems = Vec::new();
    if let Some(why) = position_problem(at) {
        problems.push(why);
    }
    if schema.contains_key("$ref") {
        problems.push(
            "`x-sensitive` next to `$ref`: mark the referenced definition itself (it must be a \
             plain string), or declare the string here"
                .into(),
        );
        return problems;
    }
    let plain = "x-sensitive needs a plain string";
    let type_ok = match schema.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => {
            let names: BTreeSet<&str> = ts.iter().filter_map(Value::as_str).collect();
            names.contains("string") && names.iter().all(|t| matches!(*t, "string" | "null"))
        }
        _ => false,
    };
    if !type_ok {
        let found = match schema.get("type") {
            Some(t) => format!("type {t}"),
            None => "no `type`".into(),
        };
        problems.push(format!(
            "{plain} (`\"type\": \"string\"`, or `[\"string\", \"null\"]`), found {found}: the \
             encrypted value is a string, which only a string field can hold"
        ));
    }
    for (keyword, why) in [
        ("pattern", "`pattern` would reject".to_string()),
        ("minLength", "`minLength` would reject".into()),
        ("maxLength", "`maxLength` would reject".into()),
        ("enum", "`enum` would reject".into()),
        ("const", "`const` would reject".into()),
    ] {
        if schema.contains_key(keyword) {
            problems.push(format!(
                "{plain}: {why} {CIPHERTEXT}; check the value in the producer before publishing \
                 instead"
            ));
        }
    }
    if schema.contains_key("default") {
        problems.push(format!(
            "{plain}: a `default` would be a plaintext value in the schema, and consumers would \
             find it where they expect {CIPHERTEXT}"
        ));
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str)
        && TYPED_FORMATS.contains(&format)
    {
        problems.push(format!(
            "{plain}: `format: \"{format}\"` makes the field a non-string Rust type, which cannot \
             hold {CIPHERTEXT}; drop the format (string formats such as `email` or `uri` are fine)"
        ));
    }
    for union in ["oneOf", "anyOf", "allOf"] {
        if schema.contains_key(union) {
            problems.push(format!(
                "{plain}: a value described by `{union}` is not one; use `\"type\": [\"string\", \
                 \"null\"]` for an optional string"
            ));
        }
    }
    problems
}

/// Why a mark at schema pointer `at` is in a place the SDK cannot find values of, if it is.
fn position_problem(at: &str) -> Option<String> {
    let tokens: Vec<&str> = at.split('/').skip(1).collect();
    let mut i = 0;
    if matches!(tokens.first(), Some(&"$defs" | &"definitions")) {
        i = 2;
    }
    if tokens.is_empty() {
        return Some(
            "`x-sensitive` on the event itself: mark the string properties that are sensitive"
                .into(),
        );
    }
    while i < tokens.len() {
        match tokens[i] {
            "properties" => i += 2,
            "items" => i += 1,
            "additionalProperties" => {
                return Some(
                    "`x-sensitive` in map values (`additionalProperties`) is not supported: \
                     the SDK encrypts fields at fixed paths; use named properties or an array \
                     of objects"
                        .into(),
                );
            }
            union @ ("oneOf" | "anyOf" | "allOf") => {
                return Some(format!(
                    "`x-sensitive` inside `{union}` is not supported: the SDK could not tell \
                     which branch a value took; mark a property of a plain object, or use \
                     `\"type\": [\"string\", \"null\"]` for an optional string"
                ));
            }
            other => {
                return Some(format!(
                    "`x-sensitive` under `{other}` is not supported: mark properties, array \
                     items, or definitions they reference"
                ));
            }
        }
    }
    None
}

/// A sensitive field of an event that cannot be located: the schema pointer (into the
/// bundled event schema, references followed) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathProblem {
    pub(crate) pointer: String,
    pub(crate) message: String,
}

/// The sensitive fields of a bundled event schema (references into its own `$defs`), as JSON
/// pointers into event instances, in the order the schema declares them: `/email`,
/// `/contacts/*/phone`.
pub(crate) fn paths(bundled: &Value) -> Result<Vec<String>, Vec<PathProblem>> {
    let mut walk = Walk {
        root: bundled,
        out: Vec::new(),
        problems: Vec::new(),
        stack: Vec::new(),
    };
    walk.node(bundled, "", Route::Field(String::new()));
    if walk.problems.is_empty() {
        Ok(walk.out)
    } else {
        Err(walk.problems)
    }
}

/// How a schema node was reached.
#[derive(Debug, Clone)]
enum Route {
    /// Through properties and array items only: the instance pointer of its values.
    Field(String),
    /// Through something the SDK does not follow (named for the message).
    Unsupported(&'static str),
}

struct Walk<'a> {
    root: &'a Value,
    out: Vec<String>,
    problems: Vec<PathProblem>,
    /// Definitions being walked, outermost first.
    stack: Vec<String>,
}

impl<'a> Walk<'a> {
    fn definition(&self, reference: &str) -> Option<(&'a str, &'a Value)> {
        let name = reference
            .strip_prefix("#/$defs/")
            .or_else(|| reference.strip_prefix("#/definitions/"))?;
        let root = self.root;
        let (key, value) = root
            .get("$defs")
            .or_else(|| root.get("definitions"))?
            .as_object()?
            .get_key_value(name)?;
        Some((key.as_str(), value))
    }

    fn node(&mut self, schema: &'a Value, at: &str, route: Route) {
        let Some(map) = schema.as_object() else {
            return;
        };
        if let Some(reference) = map.get("$ref").and_then(Value::as_str)
            && let Some((name, target)) = self.definition(reference)
        {
            if self.stack.iter().any(|d| d == name) {
                if self.marks_within(target, &mut BTreeSet::new()) {
                    self.problems.push(PathProblem {
                        pointer: at.to_string(),
                        message: format!(
                            "definition `{name}` contains itself and holds `x-sensitive` \
                             fields: not supported (their paths would be unbounded)"
                        ),
                    });
                }
                return;
            }
            self.stack.push(name.to_string());
            self.node(target, at, route.clone());
            self.stack.pop();
        }
        if map.get(KEYWORD) == Some(&Value::Bool(true)) {
            match &route {
                Route::Field(pointer) => self.out.push(pointer.clone()),
                Route::Unsupported(place) => self.problems.push(PathProblem {
                    pointer: at.to_string(),
                    message: format!(
                        "{} is marked `x-sensitive` but used {place}, where the SDK cannot \
                         locate its values; use it in a property or array items",
                        self.stack
                            .last()
                            .map(|d| format!("definition `{d}`"))
                            .unwrap_or_else(|| "this value".into()),
                    ),
                }),
            }
        }
        if let Some(props) = map.get("properties").and_then(Value::as_object) {
            for (name, s) in props {
                let next = match &route {
                    Route::Field(_) if name == "*" => {
                        Route::Unsupported("under a property named `*`")
                    }
                    Route::Field(p) => Route::Field(pointer_push(p, name)),
                    other => other.clone(),
                };
                self.node(
                    s,
                    &pointer_push(&pointer_push(at, "properties"), name),
                    next,
                );
            }
        }
        if let Some(items) = map.get("items") {
            let next = match &route {
                Route::Field(p) => Route::Field(format!("{p}/*")),
                other => other.clone(),
            };
            self.node(items, &pointer_push(at, "items"), next);
        }
        if let Some(values) = map.get("additionalProperties") {
            let next = Route::Unsupported("in map values (`additionalProperties`)");
            self.node(values, &pointer_push(at, "additionalProperties"), next);
        }
        for union in ["oneOf", "anyOf", "allOf"] {
            if let Some(branches) = map.get(union).and_then(Value::as_array) {
                let place = match union {
                    "oneOf" => "inside `oneOf`",
                    "anyOf" => "inside `anyOf`",
                    _ => "inside `allOf`",
                };
                for (i, b) in branches.iter().enumerate() {
                    let at = pointer_push(&pointer_push(at, union), &i.to_string());
                    self.node(b, &at, Route::Unsupported(place));
                }
            }
        }
    }

    /// Whether `schema`, or a definition it references, carries a mark.
    fn marks_within(&self, schema: &Value, seen: &mut BTreeSet<String>) -> bool {
        match schema {
            Value::Object(map) => {
                if map.get(KEYWORD) == Some(&Value::Bool(true)) {
                    return true;
                }
                if let Some(reference) = map.get("$ref").and_then(Value::as_str)
                    && let Some((name, target)) = self.definition(reference)
                    && seen.insert(name.to_string())
                    && self.marks_within(target, seen)
                {
                    return true;
                }
                map.iter()
                    .filter(|(k, _)| k.as_str() != "$ref")
                    .any(|(_, v)| self.marks_within(v, seen))
            }
            Value::Array(items) => items.iter().any(|v| self.marks_within(v, seen)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn marks(schema: Value, at: &str) -> Vec<String> {
        let map = schema.as_object().unwrap().clone();
        let value = map.get(KEYWORD).cloned().unwrap();
        check_mark(&map, &value, at)
    }

    #[test]
    fn plain_strings_may_be_marked() {
        for schema in [
            json!({"type": "string", "x-sensitive": true}),
            json!({"type": ["string", "null"], "x-sensitive": true, "description": "d"}),
            json!({"type": "string", "format": "email", "x-sensitive": true}),
        ] {
            for at in [
                "/properties/a",
                "/properties/a/items",
                "/$defs/Email",
                "/properties/a/properties/b",
            ] {
                assert_eq!(
                    marks(schema.clone(), at),
                    Vec::<String>::new(),
                    "{schema} at {at}"
                );
            }
        }
    }

    #[test]
    fn what_would_reject_the_ciphertext_is_named() {
        let cases = [
            (
                json!({"type": "integer", "x-sensitive": true}),
                "found type \"integer\"",
            ),
            (json!({"x-sensitive": true}), "found no `type`"),
            (
                json!({"type": "string", "pattern": "^a$", "x-sensitive": true}),
                "`pattern` would reject",
            ),
            (
                json!({"type": "string", "maxLength": 9, "x-sensitive": true}),
                "`maxLength` would reject",
            ),
            (
                json!({"type": "string", "enum": ["a"], "x-sensitive": true}),
                "`enum` would reject",
            ),
            (
                json!({"type": "string", "format": "uuid", "x-sensitive": true}),
                "`format: \"uuid\"`",
            ),
            (
                json!({"type": "string", "default": "x", "x-sensitive": true}),
                "a `default` would be",
            ),
            (
                json!({"$ref": "#/$defs/X", "x-sensitive": true}),
                "next to `$ref`",
            ),
            (
                json!({"type": "string", "x-sensitive": false}),
                "`x-sensitive: false` is not allowed",
            ),
            (
                json!({"type": "string", "x-sensitive": "yes"}),
                "must be `true`, found string",
            ),
        ];
        for (schema, needle) in cases {
            let p = marks(schema.clone(), "/properties/a");
            assert!(p.iter().any(|m| m.contains(needle)), "{schema}: {p:?}");
        }
    }

    #[test]
    fn unsupported_places_are_named() {
        let s = json!({"type": "string", "x-sensitive": true});
        for (at, needle) in [
            ("", "on the event itself"),
            ("/properties/a/additionalProperties", "map values"),
            ("/properties/a/oneOf/0", "inside `oneOf`"),
            ("/$defs/X/anyOf/1", "inside `anyOf`"),
        ] {
            let p = marks(s.clone(), at);
            assert!(p.iter().any(|m| m.contains(needle)), "{at}: {p:?}");
        }
    }

    #[test]
    fn paths_follow_properties_items_and_references() {
        let schema = json!({
            "type": "object",
            "properties": {
                "email": {"type": "string", "x-sensitive": true},
                "name": {"type": "string"},
                "contacts": {"type": "array", "items": {"$ref": "#/$defs/Contact"}},
                "backup": {"$ref": "#/$defs/Contact"},
                "tags": {"type": "array", "items": {"type": "string", "x-sensitive": true}},
                "a/b": {"$ref": "#/$defs/Secret"}
            },
            "$defs": {
                "Contact": {"type": "object", "properties": {
                    "phone": {"$ref": "#/$defs/Secret"},
                    "kind": {"type": "string"}
                }},
                "Secret": {"type": ["string", "null"], "x-sensitive": true}
            }
        });
        assert_eq!(
            paths(&schema).unwrap(),
            [
                "/email",
                "/contacts/*/phone",
                "/backup/phone",
                "/tags/*",
                "/a~1b"
            ]
        );
        assert_eq!(
            paths(&json!({"type": "object"})).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_marked_definition_used_in_a_union_or_a_map_is_refused() {
        let schema = json!({
            "type": "object",
            "properties": {
                "m": {"type": "object", "additionalProperties": {"$ref": "#/$defs/Secret"}},
                "u": {"oneOf": [{"$ref": "#/$defs/Secret"}, {"type": "integer"}]}
            },
            "$defs": {"Secret": {"type": "string", "x-sensitive": true}}
        });
        let problems = paths(&schema).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].pointer, "/properties/m/additionalProperties");
        assert!(
            problems[0].message.contains("definition `Secret`"),
            "{problems:?}"
        );
        assert!(problems[0].message.contains("map values"), "{problems:?}");
        assert_eq!(problems[1].pointer, "/properties/u/oneOf/0");
        assert!(
            problems[1].message.contains("inside `oneOf`"),
            "{problems:?}"
        );
    }

    #[test]
    fn recursive_definitions_with_marks_are_refused_and_others_terminate() {
        let tree = |leaf: Value| {
            json!({
                "type": "object",
                "properties": {"root": {"$ref": "#/$defs/Node"}},
                "$defs": {"Node": {"type": "object", "properties": {
                    "leaf": leaf,
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
                }}}
            })
        };
        assert_eq!(
            paths(&tree(json!({"type": "string"}))).unwrap(),
            Vec::<String>::new()
        );
        let problems = paths(&tree(json!({"type": "string", "x-sensitive": true}))).unwrap_err();
        assert!(
            problems[0].message.contains("`Node` contains itself"),
            "{problems:?}"
        );
    }
}
