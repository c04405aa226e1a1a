//! The compatibility rules, edit by edit: each case is an old and a new schema of one released
//! event version, the verdict (whom the edit breaks) and the reason the gate must give.

use eventhub_codegen::compat::{Breaks, compare};
use serde_json::{Value, json};

struct Case {
    name: &'static str,
    old: Value,
    new: Value,
    verdict: Breaks,
    /// A piece of the change description (`what`) the gate must print.
    reason: &'static str,
    /// The JSON pointer the breaking (or only) change is reported at, when it matters.
    pointer: Option<&'static str>,
}

/// An event with an id, an optional count and whatever `extra` adds.
fn ev(extra: Value) -> Value {
    let mut base = json!({
        "type": "object",
        "properties": {
            "id": { "type": "string" },
            "count": { "type": "integer" }
        },
        "required": ["id"]
    });
    merge(&mut base, extra);
    base
}

/// Deep-merges `extra` into `base` (objects merge, everything else replaces).
fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn prop(name: &str, schema: Value) -> Value {
    json!({ "properties": { name: schema } })
}

/// An event whose `price` is a shared `Money` definition, as the catalog bundles it.
fn with_money(money: Value) -> Value {
    json!({
        "type": "object",
        "properties": { "id": { "type": "string" }, "price": { "$ref": "#/$defs/Money" } },
        "required": ["id", "price"],
        "$defs": { "Money": money }
    })
}

/// An event whose `contacts` are a list of a shared `Email` definition.
fn with_email(email: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": { "type": "string" },
            "contacts": { "type": "array", "items": { "$ref": "#/$defs/Email" } }
        },
        "required": ["id"],
        "$defs": { "Email": email }
    })
}

fn money() -> Value {
    json!({
        "type": "object",
        "properties": {
            "amount_minor": { "type": "integer", "minimum": 0 },
            "currency": { "type": "string", "enum": ["EUR", "USD"] }
        },
        "required": ["amount_minor", "currency"]
    })
}

fn cases() -> Vec<Case> {
    let closed = json!({ "additionalProperties": false });
    let with = |extra: Value| ev(extra);
    let closed_with = |extra: Value| {
        let mut v = ev(extra);
        merge(&mut v, json!({ "additionalProperties": false }));
        v
    };
    vec![
        // Documentation
        Case {
            name: "description edited",
            old: with(json!({ "description": "A thing." })),
            new: with(json!({ "description": "A thing happened." })),
            verdict: Breaks::NONE,
            reason: "documentation changed (description)",
            pointer: Some(""),
        },
        Case {
            name: "title, examples and $comment added on a property",
            old: ev(json!({})),
            new: with(prop(
                "count",
                json!({ "title": "Count", "examples": [3], "$comment": "x" }),
            )),
            verdict: Breaks::NONE,
            reason: "documentation changed",
            pointer: Some("/properties/count"),
        },
        Case {
            name: "nothing but key order changed",
            old: json!({ "type": "object", "required": ["id"], "properties": { "id": { "type": "string" } } }),
            new: json!({ "properties": { "id": { "type": "string" } }, "required": ["id"], "type": "object" }),
            verdict: Breaks::NONE,
            reason: "",
            pointer: None,
        },
        // Properties: added, removed, required vs optional, open vs closed
        Case {
            name: "optional property added, open content model",
            old: ev(json!({})),
            new: with(prop("note", json!({ "type": "string" }))),
            verdict: Breaks::NONE,
            reason: "optional property `note` added",
            pointer: Some("/properties/note"),
        },
        Case {
            name: "optional property added, closed content model",
            old: closed_with(json!({})),
            new: closed_with(prop("note", json!({ "type": "string" }))),
            verdict: Breaks::OLD,
            reason: "optional property `note` added",
            pointer: Some("/properties/note"),
        },
        Case {
            name: "required property added",
            old: ev(json!({})),
            new: with(
                json!({ "properties": { "note": { "type": "string" } }, "required": ["id", "note"] }),
            ),
            verdict: Breaks::NEW,
            reason: "required property `note` added",
            pointer: Some("/properties/note"),
        },
        Case {
            name: "required property added, closed content model",
            old: closed_with(json!({})),
            new: closed_with(
                json!({ "properties": { "note": { "type": "string" } }, "required": ["id", "note"] }),
            ),
            verdict: Breaks::BOTH,
            reason: "required property `note` added",
            pointer: Some("/properties/note"),
        },
        Case {
            name: "optional property removed, open content model",
            old: ev(json!({})),
            new: json!({ "type": "object", "properties": { "id": { "type": "string" } }, "required": ["id"] }),
            verdict: Breaks::NONE,
            reason: "optional property `count` removed",
            pointer: Some("/properties/count"),
        },
        Case {
            name: "optional property removed, closed content model",
            old: closed_with(json!({})),
            new: json!({ "type": "object", "properties": { "id": { "type": "string" } }, "required": ["id"], "additionalProperties": false }),
            verdict: Breaks::NEW,
            reason: "optional property `count` removed",
            pointer: Some("/properties/count"),
        },
        Case {
            name: "required property removed",
            old: ev(json!({})),
            new: json!({ "type": "object", "properties": { "count": { "type": "integer" } } }),
            verdict: Breaks::OLD,
            reason: "required property `id` removed",
            pointer: Some("/properties/id"),
        },
        Case {
            name: "optional property became required",
            old: ev(json!({})),
            new: with(json!({ "required": ["id", "count"] })),
            verdict: Breaks::NEW,
            reason: "property `count` became required",
            pointer: Some("/properties/count"),
        },
        Case {
            name: "required property became optional",
            old: ev(json!({})),
            new: with(json!({ "required": [] })),
            verdict: Breaks::OLD,
            reason: "property `id` became optional",
            pointer: Some("/properties/id"),
        },
        Case {
            name: "content model closed",
            old: ev(json!({})),
            new: with(closed.clone()),
            verdict: Breaks::NEW,
            reason: "content model closed",
            pointer: Some("/additionalProperties"),
        },
        Case {
            name: "content model opened",
            old: with(closed),
            new: ev(json!({})),
            verdict: Breaks::NONE,
            reason: "content model opened",
            pointer: Some("/additionalProperties"),
        },
        // Enums
        Case {
            name: "enum value added",
            old: with(prop(
                "state",
                json!({ "type": "string", "enum": ["open", "closed"] }),
            )),
            new: with(prop(
                "state",
                json!({ "type": "string", "enum": ["open", "closed", "frozen"] }),
            )),
            verdict: Breaks::OLD,
            reason: "enum value(s) \"frozen\" added",
            pointer: Some("/properties/state"),
        },
        Case {
            name: "enum value removed",
            old: with(prop(
                "state",
                json!({ "type": "string", "enum": ["open", "closed"] }),
            )),
            new: with(prop("state", json!({ "type": "string", "enum": ["open"] }))),
            verdict: Breaks::NEW,
            reason: "enum value(s) \"closed\" removed",
            pointer: Some("/properties/state"),
        },
        Case {
            name: "enum values reordered",
            old: with(prop(
                "state",
                json!({ "type": "string", "enum": ["open", "closed"] }),
            )),
            new: with(prop(
                "state",
                json!({ "type": "string", "enum": ["closed", "open"] }),
            )),
            verdict: Breaks::NONE,
            reason: "",
            pointer: None,
        },
        Case {
            name: "const changed",
            old: with(prop("kind", json!({ "const": "a" }))),
            new: with(prop("kind", json!({ "const": "b" }))),
            verdict: Breaks::BOTH,
            reason: "const changed",
            pointer: Some("/properties/kind"),
        },
        // Types: widening, narrowing, nullability
        Case {
            name: "integer widened to number",
            old: ev(json!({})),
            new: with(prop("count", json!({ "type": "number" }))),
            verdict: Breaks::OLD,
            reason: "type widened from integer to number",
            pointer: Some("/properties/count"),
        },
        Case {
            name: "number narrowed to integer",
            old: with(prop("count", json!({ "type": "number" }))),
            new: ev(json!({})),
            verdict: Breaks::NEW,
            reason: "type narrowed from number to integer",
            pointer: Some("/properties/count"),
        },
        Case {
            name: "string changed to integer",
            old: ev(json!({})),
            new: with(prop("id", json!({ "type": "integer" }))),
            verdict: Breaks::BOTH,
            reason: "type",
            pointer: Some("/properties/id"),
        },
        Case {
            name: "became nullable (type array)",
            old: ev(json!({})),
            new: with(prop("id", json!({ "type": ["string", "null"] }))),
            verdict: Breaks::OLD,
            reason: "became nullable",
            pointer: Some("/properties/id"),
        },
        Case {
            name: "became nullable (anyOf with null)",
            old: ev(json!({})),
            new: with(prop(
                "id",
                json!({ "anyOf": [{ "type": "string" }, { "type": "null" }] }),
            )),
            verdict: Breaks::OLD,
            reason: "became nullable",
            pointer: Some("/properties/id"),
        },
        Case {
            name: "no longer nullable",
            old: with(prop("count", json!({ "type": ["integer", "null"] }))),
            new: ev(json!({})),
            verdict: Breaks::NEW,
            reason: "is no longer nullable",
            pointer: Some("/properties/count"),
        },
        // Bounds and formats
        Case {
            name: "maxLength tightened",
            old: with(prop("id", json!({ "type": "string", "maxLength": 64 }))),
            new: with(prop("id", json!({ "type": "string", "maxLength": 32 }))),
            verdict: Breaks::NEW,
            reason: "maxLength changed from 64 to 32",
            pointer: Some("/properties/id"),
        },
        Case {
            name: "maxLength loosened",
            old: with(prop("id", json!({ "type": "string", "maxLength": 32 }))),
            new: with(prop("id", json!({ "type": "string", "maxLength": 64 }))),
            verdict: Breaks::OLD,
            reason: "maxLength changed from 32 to 64",
            pointer: Some("/properties/id"),
        },
        Case {
            name: "minimum added",
            old: ev(json!({})),
            new: with(prop("count", json!({ "type": "integer", "minimum": 0 }))),
            verdict: Breaks::NEW,
            reason: "minimum 0 added",
            pointer: Some("/properties/count"),
        },
        Case {
            name: "pattern changed",
            old: with(prop(
                "id",
                json!({ "type": "string", "pattern": "^[a-z]+$" }),
            )),
            new: with(prop(
                "id",
                json!({ "type": "string", "pattern": "^[a-z0-9]+$" }),
            )),
            verdict: Breaks::BOTH,
            reason: "pattern changed",
            pointer: Some("/properties/id"),
        },
        Case {
            name: "format added",
            old: ev(json!({})),
            new: with(prop("id", json!({ "type": "string", "format": "uuid" }))),
            verdict: Breaks::NEW,
            reason: "format \"uuid\" added",
            pointer: Some("/properties/id"),
        },
        // Nested objects and arrays
        Case {
            name: "optional property added in a nested object",
            old: with(prop(
                "address",
                json!({ "type": "object", "properties": { "city": { "type": "string" } } }),
            )),
            new: with(prop(
                "address",
                json!({ "type": "object", "properties": { "city": { "type": "string" }, "zip": { "type": "string" } } }),
            )),
            verdict: Breaks::NONE,
            reason: "optional property `zip` added",
            pointer: Some("/properties/address/properties/zip"),
        },
        Case {
            name: "nested property became required",
            old: with(prop(
                "address",
                json!({ "type": "object", "properties": { "city": { "type": "string" } } }),
            )),
            new: with(prop(
                "address",
                json!({ "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] }),
            )),
            verdict: Breaks::NEW,
            reason: "property `city` became required",
            pointer: Some("/properties/address/properties/city"),
        },
        Case {
            name: "array item type changed",
            old: with(prop(
                "tags",
                json!({ "type": "array", "items": { "type": "string" } }),
            )),
            new: with(prop(
                "tags",
                json!({ "type": "array", "items": { "type": "integer" } }),
            )),
            verdict: Breaks::BOTH,
            reason: "type",
            pointer: Some("/properties/tags/items"),
        },
        Case {
            name: "minItems added",
            old: with(prop(
                "tags",
                json!({ "type": "array", "items": { "type": "string" } }),
            )),
            new: with(prop(
                "tags",
                json!({ "type": "array", "items": { "type": "string" }, "minItems": 1 }),
            )),
            verdict: Breaks::NEW,
            reason: "minItems 1 added",
            pointer: Some("/properties/tags"),
        },
        Case {
            name: "uniqueItems added",
            old: with(prop(
                "tags",
                json!({ "type": "array", "items": { "type": "string" } }),
            )),
            new: with(prop(
                "tags",
                json!({ "type": "array", "items": { "type": "string" }, "uniqueItems": true }),
            )),
            verdict: Breaks::NEW,
            reason: "uniqueItems added",
            pointer: Some("/properties/tags"),
        },
        Case {
            name: "map value type widened",
            old: with(prop(
                "labels",
                json!({ "type": "object", "additionalProperties": { "type": "integer" } }),
            )),
            new: with(prop(
                "labels",
                json!({ "type": "object", "additionalProperties": { "type": "number" } }),
            )),
            verdict: Breaks::OLD,
            reason: "type widened",
            pointer: Some("/properties/labels/additionalProperties"),
        },
        Case {
            name: "oneOf alternative added",
            old: with(prop(
                "ref",
                json!({ "oneOf": [{ "type": "string" }, { "type": "integer" }] }),
            )),
            new: with(prop(
                "ref",
                json!({ "oneOf": [{ "type": "string" }, { "type": "integer" }, { "type": "boolean" }] }),
            )),
            verdict: Breaks::OLD,
            reason: "1 oneOf branch(es) added",
            pointer: Some("/properties/ref/oneOf"),
        },
        // Shared definitions behind $ref
        Case {
            name: "shared definition: optional property added",
            old: with_money(money()),
            new: with_money({
                let mut m = money();
                merge(
                    &mut m,
                    json!({ "properties": { "note": { "type": "string" } } }),
                );
                m
            }),
            verdict: Breaks::NONE,
            reason: "optional property `note` added",
            pointer: Some("/properties/price/properties/note"),
        },
        Case {
            name: "shared definition: enum value added",
            old: with_money(money()),
            new: with_money({
                let mut m = money();
                merge(
                    &mut m,
                    json!({ "properties": { "currency": { "enum": ["EUR", "USD", "GBP"] } } }),
                );
                m
            }),
            verdict: Breaks::OLD,
            reason: "enum value(s) \"GBP\" added",
            pointer: Some("/properties/price/properties/currency"),
        },
        Case {
            name: "shared definition: minimum removed",
            old: with_money(money()),
            new: with_money({
                let mut m = money();
                m["properties"]["amount_minor"] = json!({ "type": "integer" });
                m
            }),
            verdict: Breaks::OLD,
            reason: "minimum 0 removed",
            pointer: Some("/properties/price/properties/amount_minor"),
        },
        // Defaults
        Case {
            name: "default added",
            old: ev(json!({})),
            new: with(prop("count", json!({ "type": "integer", "default": 0 }))),
            verdict: Breaks::NONE,
            reason: "default 0 added",
            pointer: Some("/properties/count"),
        },
        Case {
            name: "default changed",
            old: with(prop("count", json!({ "type": "integer", "default": 0 }))),
            new: with(prop("count", json!({ "type": "integer", "default": 1 }))),
            verdict: Breaks::BOTH,
            reason: "default changed from 0 to 1",
            pointer: Some("/properties/count"),
        },
        Case {
            name: "default removed",
            old: with(prop("count", json!({ "type": "integer", "default": 0 }))),
            new: ev(json!({})),
            verdict: Breaks::BOTH,
            reason: "default 0 removed",
            pointer: Some("/properties/count"),
        },
        // x-sensitive: what travels, the value or its ciphertext
        Case {
            name: "x-sensitive added to a property",
            old: ev(json!({})),
            new: with(prop("id", json!({ "type": "string", "x-sensitive": true }))),
            verdict: Breaks::OLD,
            reason: "marked x-sensitive",
            pointer: Some("/properties/id"),
        },
        Case {
            name: "x-sensitive removed from a property",
            old: with(prop("id", json!({ "type": "string", "x-sensitive": true }))),
            new: ev(json!({})),
            verdict: Breaks::NEW,
            reason: "x-sensitive mark removed",
            pointer: Some("/properties/id"),
        },
        Case {
            name: "x-sensitive added to a definition behind $ref",
            old: with_email(json!({ "type": "string" })),
            new: with_email(json!({ "type": "string", "x-sensitive": true })),
            verdict: Breaks::OLD,
            reason: "marked x-sensitive",
            pointer: Some("/properties/contacts/items"),
        },
        Case {
            name: "optional x-sensitive property added",
            old: ev(json!({})),
            new: with(prop(
                "phone",
                json!({ "type": ["string", "null"], "x-sensitive": true }),
            )),
            verdict: Breaks::NONE,
            reason: "optional property `phone` added",
            pointer: Some("/properties/phone"),
        },
    ]
}

#[test]
fn every_edit_gets_its_verdict_and_reason() {
    let cases = cases();
    assert!(cases.len() >= 25, "the table covers at least 25 edits");
    let mut failures = Vec::new();
    for case in &cases {
        let changes = compare(&case.old, &case.new);
        let mut verdict = Breaks::NONE;
        for c in &changes {
            verdict.old_consumers |= c.breaks.old_consumers;
            verdict.new_consumers |= c.breaks.new_consumers;
        }
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        if verdict != case.verdict {
            failures.push(format!(
                "{}: expected {}, got {verdict}: {shown:?}",
                case.name, case.verdict
            ));
            continue;
        }
        if case.reason.is_empty() {
            if !changes.is_empty() {
                failures.push(format!("{}: expected no change, got {shown:?}", case.name));
            }
            continue;
        }
        let matching: Vec<_> = changes
            .iter()
            .filter(|c| c.what.contains(case.reason))
            .collect();
        if matching.is_empty() {
            failures.push(format!(
                "{}: no change says {:?}: {shown:?}",
                case.name, case.reason
            ));
            continue;
        }
        if let Some(p) = case.pointer
            && !matching.iter().any(|c| c.pointer == p)
        {
            failures.push(format!(
                "{}: expected the change at {p:?}: {shown:?}",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_change_behind_a_ref_names_the_definition() {
    let mut new_money = money();
    new_money["properties"]["currency"]["enum"] = json!(["EUR"]);
    let changes = compare(&with_money(money()), &with_money(new_money));
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].via.as_deref(), Some("Money"));
    assert_eq!(changes[0].breaks, Breaks::NEW);
}

#[test]
fn recursive_definitions_terminate() {
    let tree = |extra: Value| {
        let mut node = json!({
            "type": "object",
            "properties": { "children": { "type": "array", "items": { "$ref": "#/$defs/Node" } } }
        });
        merge(&mut node, extra);
        json!({
            "type": "object",
            "properties": { "root": { "$ref": "#/$defs/Node" } },
            "$defs": { "Node": node }
        })
    };
    let changes = compare(
        &tree(json!({})),
        &tree(json!({ "properties": { "name": { "type": "string" } } })),
    );
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(!changes[0].is_breaking());
}
