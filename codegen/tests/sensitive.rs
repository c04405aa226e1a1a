//! `x-sensitive`: accepted on plain strings wherever the SDK can find their values (and listed as
//! the event's `SENSITIVE` paths), refused with file, pointer and reason everywhere else.

mod common;

use common::assert_reported;
use eventhub_codegen::{Config, Diagnostic, Error};

const STREAMS: &str = r#"{"streams": {"USERS": {"subjects": ["events.user.>"], "retention": "limits",
    "storage": "file", "max_age": "30d", "replicas": 1, "duplicate_window": "2m"}}}"#;
const CONTACT: &str = r##"{"$defs": {
    "Phone": {"description": "A phone number.", "type": "string", "x-sensitive": true},
    "Contact": {"type": "object", "properties": {
        "name": {"type": "string", "x-sensitive": true},
        "phone": {"$ref": "#/$defs/Phone"},
        "relation": {"type": "string", "enum": ["partner", "parent", "other"]}}}}}"##;

/// Generates code for a catalog of `files` plus a topology and a shared file of contact types.
fn generate(files: &[(&str, &str)]) -> Result<String, Error> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("schemas");
    let mut all = vec![("streams.json", STREAMS), ("shared/contact.json", CONTACT)];
    all.extend_from_slice(files);
    for (path, text) in all {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    Config::new().generate(&root)
}

/// An event `user/x.v1.json` with these properties.
fn event(properties: &str) -> String {
    format!(r#"{{"description": "x", "type": "object", "properties": {properties}}}"#)
}

fn diagnostics(properties: &str) -> Vec<Diagnostic> {
    match generate(&[("user/x.v1.json", &event(properties))]) {
        Ok(_) => panic!("{properties} should be rejected"),
        Err(Error::Invalid(d)) => d,
        Err(e) => panic!("expected diagnostics, got {e}"),
    }
}

#[test]
fn marks_on_properties_items_nested_objects_and_shared_definitions_become_paths() {
    let code = generate(&[(
        "user/x.v1.json",
        &event(
            r##"{
            "email": {"type": "string", "format": "email", "x-sensitive": true},
            "phone": {"type": ["string", "null"], "x-sensitive": true},
            "nickname": {"type": "string"},
            "aliases": {"type": "array", "items": {"type": "string", "x-sensitive": true}},
            "emergency": {"type": "array", "items": {"$ref": "../shared/contact.json#/$defs/Contact"}},
            "home": {"type": "object", "properties": {"street": {"type": "string", "x-sensitive": true}}},
            "fax": {"$ref": "../shared/contact.json#/$defs/Phone"}
        }"##,
        ),
    )])
    .unwrap_or_else(|e| panic!("should be accepted: {e}"));
    // Compared with whitespace collapsed: the layout is prettyplease's.
    let code = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let paths = r#"&[ "/email", "/phone", "/aliases/*", "/emergency/*/name", "/emergency/*/phone", "/home/street", "/fax", ]"#;
    assert!(
        code.contains(&format!(
            "const SENSITIVE: &'static [&'static str] = {paths};"
        )),
        "{code}"
    );
    assert!(code.contains(&format!("sensitive: {paths}")), "{code}");
    assert!(code.contains("const HAS_SENSITIVE_FIELDS: bool = true;"));
    assert!(
        code.contains("1 => ::eventhub::wire::decode_decrypting::<Self>(raw, decryptor)"),
        "{code}"
    );
    assert!(
        code.contains("::eventhub::wire::decode_decrypting::<XV1>(raw, decryptor) .map(Self::V1)"),
        "{code}"
    );
}

#[test]
fn events_without_marks_get_no_sensitive_items() {
    let code = generate(&[("user/x.v1.json", &event(r#"{"a": {"type": "string"}}"#))]).unwrap();
    // The event's own impl has no sensitive items (its domain's `Any` enum delegates to it
    // generically, so the words appear there).
    assert!(!code.contains("const SENSITIVE"), "{code}");
    assert!(
        !code.contains("HAS_SENSITIVE_FIELDS: bool = true"),
        "{code}"
    );
    assert!(
        !code.contains("::eventhub::wire::decode_decrypting"),
        "{code}"
    );
    assert!(code.contains("sensitive: &[]"), "{code}");
}

#[test]
fn what_the_ciphertext_would_not_fit_is_refused_with_the_reason() {
    let file = "schemas/user/x.v1.json";
    let cases = [
        (
            r#"{"a": {"type": "string", "pattern": "^[0-9]+$", "x-sensitive": true}}"#,
            "x-sensitive needs a plain string: `pattern` would reject the ciphertext (`enc:v1:…`)",
        ),
        (
            r#"{"a": {"type": "string", "maxLength": 20, "x-sensitive": true}}"#,
            "`maxLength` would reject the ciphertext",
        ),
        (
            r#"{"a": {"type": "string", "enum": ["x", "y"], "x-sensitive": true}}"#,
            "`enum` would reject the ciphertext",
        ),
        (
            r#"{"a": {"type": "string", "format": "date-time", "x-sensitive": true}}"#,
            "`format: \"date-time\"` makes the field a non-string Rust type",
        ),
        (
            r#"{"a": {"type": "string", "format": "uuid", "x-sensitive": true}}"#,
            "`format: \"uuid\"`",
        ),
        (
            r#"{"a": {"type": "integer", "x-sensitive": true}}"#,
            "x-sensitive needs a plain string (`\"type\": \"string\"`, or `[\"string\", \"null\"]`), found type \"integer\"",
        ),
        (
            r#"{"a": {"type": "object", "properties": {}, "x-sensitive": true}}"#,
            "found type \"object\"",
        ),
        (
            r#"{"a": {"type": "string", "default": "none", "x-sensitive": true}}"#,
            "a `default` would be a plaintext value in the schema",
        ),
        (
            r#"{"a": {"type": "string", "x-sensitive": false}}"#,
            "`x-sensitive: false` is not allowed",
        ),
        (
            r#"{"a": {"type": "string", "x-sensitive": "yes"}}"#,
            "`x-sensitive` must be `true`, found string",
        ),
        (
            r#"{"a": {"$ref": "../shared/contact.json#/$defs/Phone", "x-sensitive": true}}"#,
            "`x-sensitive` next to `$ref`: mark the referenced definition itself",
        ),
    ];
    for (props, reason) in cases {
        assert_reported(
            &diagnostics(props),
            file,
            "/properties/a/x-sensitive",
            reason,
        );
    }
}

#[test]
fn places_whose_values_the_sdk_cannot_find_are_refused() {
    let file = "schemas/user/x.v1.json";
    assert_reported(
        &diagnostics(
            r#"{"m": {"type": "object", "additionalProperties": {"type": "string", "x-sensitive": true}}}"#,
        ),
        file,
        "/properties/m/additionalProperties/x-sensitive",
        "`x-sensitive` in map values (`additionalProperties`) is not supported",
    );
    assert_reported(
        &diagnostics(
            r#"{"u": {"oneOf": [{"type": "string", "x-sensitive": true}, {"type": "integer"}]}}"#,
        ),
        file,
        "/properties/u/oneOf/0/x-sensitive",
        "`x-sensitive` inside `oneOf` is not supported",
    );
    // A marked shared definition is fine in a property, not as a map value: reported where the
    // event uses it.
    assert_reported(
        &diagnostics(
            r##"{"ok": {"$ref": "../shared/contact.json#/$defs/Phone"},
                "by_name": {"type": "object", "additionalProperties": {"$ref": "../shared/contact.json#/$defs/Phone"}}}"##,
        ),
        file,
        "/properties/by_name/additionalProperties",
        "definition `Phone` is marked `x-sensitive` but used in map values (`additionalProperties`)",
    );
    // Marks in a shared file are checked where they are written.
    let diags = match generate(&[
        (
            "shared/bad.json",
            r#"{"$defs": {"Pin": {"type": "string", "pattern": "^[0-9]{4}$", "x-sensitive": true}}}"#,
        ),
        ("user/x.v1.json", &event(r#"{"a": {"type": "string"}}"#)),
    ]) {
        Err(Error::Invalid(d)) => d,
        other => panic!("expected diagnostics, got {other:?}"),
    };
    assert_reported(
        &diags,
        "schemas/shared/bad.json",
        "/$defs/Pin/x-sensitive",
        "`pattern` would reject the ciphertext",
    );
}
