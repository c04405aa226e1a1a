//! An event's fields as rows: every property, nested ones by path (`shipping_address.city`,
//! `line_items[].sku`, `metadata.*`), with a short type, whether required, the description,
//! the constraints and the `x-sensitive` mark. Definitions are followed through `$ref`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::model::{Def, ref_name};

/// How deep nested objects are listed (a recursive definition stops here too).
const MAX_DEPTH: usize = 8;

/// One row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Field {
    /// `order_id`, `shipping_address.city`, `line_items[].sku`
    pub(super) path: String,
    /// `string`, `Money`, `array<LineItem>`, `string | null`
    pub(super) ty: String,
    /// Required in the object it belongs to.
    pub(super) required: bool,
    pub(super) description: String,
    /// `format: uuid`, `minLength: 1`, `one of: "a", "b"`
    pub(super) constraints: Vec<String>,
    pub(super) sensitive: bool,
}

/// The rows of an event's root schema.
pub(super) fn fields(root: &Value, defs: &BTreeMap<String, Def>) -> Vec<Field> {
    let mut out = Vec::new();
    let mut stack = Vec::new();
    object_fields(root, "", defs, &mut stack, &mut out);
    out
}

fn object_fields(
    schema: &Value,
    prefix: &str,
    defs: &BTreeMap<String, Def>,
    stack: &mut Vec<String>,
    out: &mut Vec<Field>,
) {
    let (schema, entered) = resolve(schema, defs, stack);
    let Some(schema) = schema else { return };
    if stack.len() <= MAX_DEPTH {
        let m = schema.as_object().cloned().unwrap_or_default();
        let required: Vec<&str> = m
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, prop) in m
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let path = format!("{prefix}{name}");
            out.push(row(&path, prop, required.contains(&name.as_str()), defs));
            nested(prop, &path, defs, stack, out);
        }
        // Shapes composed of several schemas: list what each branch adds.
        for k in ["allOf", "oneOf", "anyOf"] {
            for branch in m.get(k).and_then(Value::as_array).into_iter().flatten() {
                object_fields(branch, prefix, defs, stack, out);
            }
        }
    }
    if entered {
        stack.pop();
    }
}

/// The rows below a property: an object's properties, array items', map values'.
fn nested(
    prop: &Value,
    path: &str,
    defs: &BTreeMap<String, Def>,
    stack: &mut Vec<String>,
    out: &mut Vec<Field>,
) {
    let (resolved, entered) = resolve(prop, defs, stack);
    if let Some(s) = resolved {
        if has_properties(&s, defs) {
            object_fields(&s, &format!("{path}."), defs, stack, out);
        } else if let Some(items) = s.get("items") {
            nested(items, &format!("{path}[]"), defs, stack, out);
        } else if let Some(values @ Value::Object(_)) = s.get("additionalProperties") {
            nested(values, &format!("{path}.*"), defs, stack, out);
        }
    }
    if entered {
        stack.pop();
    }
}

fn has_properties(s: &Value, defs: &BTreeMap<String, Def>) -> bool {
    s.get("properties").is_some()
        || ["allOf", "oneOf", "anyOf"].iter().any(|k| {
            s.get(*k).and_then(Value::as_array).is_some_and(|bs| {
                bs.iter().any(|b| {
                    b.get("properties").is_some()
                        || b.get("$ref")
                            .and_then(Value::as_str)
                            .and_then(ref_name)
                            .and_then(|n| defs.get(n))
                            .is_some_and(|d| d.schema.get("properties").is_some())
                })
            })
        })
}

/// Follows a `$ref` (once: definitions are already bundled). Returns `None` for a definition
/// already being listed (recursion), and whether it entered one (to pop it after).
fn resolve(
    schema: &Value,
    defs: &BTreeMap<String, Def>,
    stack: &mut Vec<String>,
) -> (Option<Value>, bool) {
    let Some(name) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(ref_name)
    else {
        return (Some(schema.clone()), false);
    };
    if stack.iter().any(|s| s == name) {
        return (None, false);
    }
    match defs.get(name) {
        Some(def) => {
            stack.push(name.to_string());
            (Some(def.schema.clone()), true)
        }
        None => (None, false),
    }
}

fn row(path: &str, prop: &Value, required: bool, defs: &BTreeMap<String, Def>) -> Field {
    let def = prop
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(ref_name)
        .and_then(|n| defs.get(n));
    let text = |k: &str| {
        prop.get(k)
            .or_else(|| def.and_then(|d| d.schema.get(k)))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut constraints = constraints(prop);
    if let Some(d) = def {
        for c in self::constraints(&d.schema) {
            if !constraints.contains(&c) {
                constraints.push(c);
            }
        }
    }
    let sensitive = prop.get("x-sensitive") == Some(&Value::Bool(true))
        || def.is_some_and(|d| d.schema.get("x-sensitive") == Some(&Value::Bool(true)));
    Field {
        path: path.to_string(),
        ty: short_type(prop, defs),
        required,
        description: text("description"),
        constraints,
        sensitive,
    }
}

/// A short type: `string`, `Money`, `array<LineItem>`, `map<string, string>`, `string | null`.
pub(super) fn short_type(schema: &Value, defs: &BTreeMap<String, Def>) -> String {
    let Some(m) = schema.as_object() else {
        return if schema == &Value::Bool(false) {
            "never".into()
        } else {
            "any".into()
        };
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(name) = m.get("$ref").and_then(Value::as_str).and_then(ref_name) {
        parts.push(defs.get(name).map_or(name, |d| &d.local_name).to_string());
    }
    if m.contains_key("const") {
        parts.push("const".into());
    } else if let Some(types) = types(m) {
        parts.push(
            types
                .iter()
                .map(|t| match *t {
                    "array" => format!(
                        "array<{}>",
                        m.get("items")
                            .map_or_else(|| "any".to_string(), |i| short_type(i, defs))
                    ),
                    "object" => match m.get("additionalProperties") {
                        Some(v @ Value::Object(_)) if !m.contains_key("properties") => {
                            format!("map<string, {}>", short_type(v, defs))
                        }
                        _ => "object".into(),
                    },
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" | "),
        );
    }
    for (k, sep) in [("oneOf", " | "), ("anyOf", " | "), ("allOf", " & ")] {
        if let Some(bs) = m.get(k).and_then(Value::as_array) {
            let shown: Vec<String> = bs.iter().map(|b| short_type(b, defs)).collect();
            parts.push(format!("({})", shown.join(sep)));
        }
    }
    if parts.is_empty() {
        if m.contains_key("enum") {
            return "enum".into();
        }
        return "any".into();
    }
    parts.join(" & ")
}

fn types(m: &Map<String, Value>) -> Option<Vec<&str>> {
    match m.get("type") {
        Some(Value::String(t)) => Some(vec![t.as_str()]),
        Some(Value::Array(ts)) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ if m.contains_key("properties") => Some(vec!["object"]),
        _ if m.contains_key("items") => Some(vec!["array"]),
        _ => None,
    }
}

/// `format: uuid`, `pattern: ^[a-z]+$`, `one of: "a", "b"`, …
fn constraints(schema: &Value) -> Vec<String> {
    let Some(m) = schema.as_object() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for k in [
        "format",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "default",
    ] {
        if let Some(v) = m.get(k) {
            match v {
                Value::String(s) => out.push(format!("{k}: {s}")),
                other => out.push(format!("{k}: {other}")),
            }
        }
    }
    if m.get("uniqueItems") == Some(&Value::Bool(true)) {
        out.push("unique items".into());
    }
    if let Some(c) = m.get("const") {
        out.push(format!("const: {c}"));
    }
    if let Some(values) = m.get("enum").and_then(Value::as_array) {
        let shown: Vec<String> = values.iter().map(Value::to_string).collect();
        out.push(format!("one of: {}", shown.join(", ")));
    }
    if m.get("deprecated") == Some(&Value::Bool(true)) {
        out.push("deprecated".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    fn def(local: &str, schema: Value) -> Def {
        Def {
            schema,
            file: PathBuf::from("schemas/shared/x.json"),
            local_name: local.into(),
            owner: None,
        }
    }

    #[test]
    fn nested_fields_follow_definitions_and_stop_at_recursion() {
        let mut defs = BTreeMap::new();
        defs.insert(
            "Money".to_string(),
            def(
                "Money",
                json!({"type": "object", "properties": {"amount_minor": {"type": "integer", "minimum": 0}}, "required": ["amount_minor"]}),
            ),
        );
        defs.insert(
            "Node".to_string(),
            def(
                "Node",
                json!({"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}),
            ),
        );
        let root = json!({
            "type": "object",
            "properties": {
                "total": {"$ref": "#/$defs/Money", "description": "The total."},
                "lines": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}},
                "email": {"type": ["string", "null"], "x-sensitive": true},
                "tree": {"$ref": "#/$defs/Node"}
            },
            "required": ["total"]
        });
        let rows = fields(&root, &defs);
        let paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "total",
                "total.amount_minor",
                "lines",
                "lines[].sku",
                "email",
                "tree",
                "tree.child"
            ]
        );
        assert_eq!(rows[0].ty, "Money");
        assert!(rows[0].required && rows[1].required && !rows[2].required);
        assert_eq!(rows[1].constraints, ["minimum: 0"]);
        assert_eq!(rows[4].ty, "string | null");
        assert!(rows[4].sensitive);
        assert_eq!(rows[2].ty, "array<object>");
    }
}
