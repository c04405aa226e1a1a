//! Constraints in the docs: what a schema allows beyond a field's Rust type (string lengths
//! and patterns, formats, numeric bounds, item counts, sensitivity) is spelled out in the
//! description typify turns into the docs of the generated type or field, so a user sees
//! `at most 64 characters` where they write the value, not only when a publish is refused.

use serde_json::{Map, Value};

/// Keywords whose values are data, not schemas.
const DATA: &[&str] = &["enum", "const", "default", "examples"];

/// `schema` with every (sub)schema's constraints appended to its `description`.
pub(crate) fn document(schema: &Value) -> Value {
    let mut out = schema.clone();
    annotate(&mut out);
    out
}

fn annotate(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if !DATA.contains(&k.as_str()) && !k.starts_with("x-") {
                    annotate(child);
                }
            }
            let said = describe(map);
            if !said.is_empty() {
                let text = format!("Constraints: {}.", said.join("; "));
                let description = match map.get("description").and_then(Value::as_str) {
                    Some(d) if !d.trim().is_empty() => format!("{}\n\n{text}", d.trim_end()),
                    _ => text,
                };
                map.insert("description".into(), Value::String(description));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(annotate),
        _ => {}
    }
}

/// The constraints of one schema object, in words.
fn describe(map: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    let n = |k: &str| map.get(k).and_then(Value::as_f64).map(number);
    match (n("minLength"), n("maxLength")) {
        (Some(a), Some(b)) if a == b => out.push(format!("exactly {a} characters")),
        (Some(a), Some(b)) => out.push(format!("{a} to {b} characters")),
        (Some(a), None) => out.push(format!("at least {a} character{}", plural(&a))),
        (None, Some(b)) => out.push(format!("at most {b} character{}", plural(&b))),
        (None, None) => {}
    }
    if let Some(p) = map.get("pattern").and_then(Value::as_str) {
        out.push(format!("matches `{p}`"));
    }
    if let Some(f) = map.get("format").and_then(Value::as_str) {
        out.push(format!("format `{f}`"));
    }
    for (key, word) in [
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ] {
        if let Some(x) = n(key) {
            out.push(format!("{word} {x}"));
        }
    }
    if let Some(x) = n("multipleOf") {
        out.push(format!("a multiple of {x}"));
    }
    match (n("minItems"), n("maxItems")) {
        (Some(a), Some(b)) if a == b => out.push(format!("exactly {a} items")),
        (Some(a), Some(b)) => out.push(format!("{a} to {b} items")),
        (Some(a), None) => out.push(format!("at least {a} item{}", plural(&a))),
        (None, Some(b)) => out.push(format!("at most {b} item{}", plural(&b))),
        (None, None) => {}
    }
    if map.get("uniqueItems") == Some(&Value::Bool(true)) {
        out.push("items are unique".into());
    }
    match (n("minProperties"), n("maxProperties")) {
        (Some(a), Some(b)) => out.push(format!("{a} to {b} entries")),
        (Some(a), None) => out.push(format!("at least {a} entr{}", ies(&a))),
        (None, Some(b)) => out.push(format!("at most {b} entr{}", ies(&b))),
        (None, None) => {}
    }
    if let Some(c) = map.get("const") {
        out.push(format!("always `{c}`"));
    }
    if let Some(d) = map.get("default") {
        out.push(format!("default `{d}`"));
    }
    if map.get(crate::sensitive::KEYWORD) == Some(&Value::Bool(true)) {
        out.push("sensitive: encrypted when published (`x-sensitive`)".into());
    }
    out
}

/// `3`, not `3.0`; `0.5` as it is.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn plural(n: &str) -> &'static str {
    if n == "1" { "" } else { "s" }
}

fn ies(n: &str) -> &'static str {
    if n == "1" { "y" } else { "ies" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn constraints_join_the_description() {
        let doc = document(&json!({
            "type": "object",
            "properties": {
                "code": {"description": "ISO code.", "type": "string", "minLength": 3,
                         "maxLength": 3, "pattern": "^[A-Z]+$"},
                "qty": {"type": "integer", "minimum": 1, "maximum": 99},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 1}, "uniqueItems": true},
                "kind": {"enum": [{"minLength": 1}]}
            }
        }));
        let p = &doc["properties"];
        assert_eq!(
            p["code"]["description"],
            "ISO code.\n\nConstraints: exactly 3 characters; matches `^[A-Z]+$`."
        );
        assert_eq!(p["qty"]["description"], "Constraints: ≥ 1; ≤ 99.");
        assert_eq!(p["tags"]["description"], "Constraints: items are unique.");
        assert_eq!(
            p["tags"]["items"]["description"],
            "Constraints: at most 1 character."
        );
        // Data is data.
        assert_eq!(p["kind"]["enum"][0], json!({"minLength": 1}));
        assert!(doc.get("description").is_none());
    }
}
