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
//! [`check_mark`] validates one mark where it is written (called by the schema walker).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

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
                crate::validate::kind_of(other)
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
}
