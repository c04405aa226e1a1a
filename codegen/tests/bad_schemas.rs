//! Every kind of invalid schema fails with the file, the JSON pointer and what is wrong.

mod common;

use common::assert_reported;
use eventhub_codegen::{Config, Diagnostic, Error};

const STREAMS: &str = r#"{"streams": {"USERS": {"subjects": ["events.user.>"], "retention": "limits",
    "storage": "file", "max_age": "30d", "replicas": 1, "duplicate_window": "2m"}}}"#;
const MONEY: &str =
    r#"{"$defs": {"Money": {"type": "object", "properties": {"amount": {"type": "integer"}}}}}"#;
const GOOD: &str = r#"{"description": "A user was created.", "type": "object",
    "properties": {"email": {"type": "string"}}, "required": ["email"]}"#;

/// Generates code for a catalog of `files` (plus a valid topology and shared money file) and
/// returns the diagnostics, which must exist.
fn diagnostics(files: &[(&str, &str)]) -> Vec<Diagnostic> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("schemas");
    let mut all = vec![("streams.json", STREAMS), ("shared/money.json", MONEY)];
    all.extend_from_slice(files);
    for (path, text) in all {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    match Config::new().generate(&root) {
        Ok(_) => panic!("the catalog {files:?} should be rejected"),
        Err(Error::Invalid(d)) => d,
        Err(e) => panic!("expected diagnostics, got {e}"),
    }
}

#[test]
fn not_json() {
    let d = diagnostics(&[(
        "user/created.v1.json",
        r#"{"type": "object", "properties": {"#,
    )]);
    assert_reported(
        &d,
        "schemas/user/created.v1.json",
        "",
        "not valid JSON: EOF while parsing an object at line 1 column 34",
    );
}

#[test]
fn unknown_type() {
    let d = diagnostics(&[(
        "user/created.v1.json",
        r#"{"description": "x", "type": "object", "properties": {"email": {"type": "strng"}}}"#,
    )]);
    assert_reported(
        &d,
        "schemas/user/created.v1.json",
        "/properties/email/type",
        r#"unknown type "strng" (did you mean "string"?); expected one of array, boolean, integer, null, number, object, string"#,
    );
}

#[test]
fn unknown_keyword() {
    let d = diagnostics(&[(
        "user/created.v1.json",
        r#"{"description": "x", "type": "object", "propertes": {}}"#,
    )]);
    assert_reported(
        &d,
        "schemas/user/created.v1.json",
        "/propertes",
        "unknown keyword `propertes` (did you mean `properties`?)",
    );
}

#[test]
fn dangling_ref_to_a_shared_file() {
    let d = diagnostics(&[(
        "user/created.v1.json",
        r#"{"description": "x", "type": "object", "properties": {"price": {"$ref": "../shared/money.json#/$defs/Mony"}}}"#,
    )]);
    assert_reported(
        &d,
        "schemas/user/created.v1.json",
        "/properties/price/$ref",
        "`../shared/money.json#/$defs/Mony` does not resolve: no definition `Mony` in schemas/shared/money.json (did you mean `Money`?); it defines: Money",
    );
}

#[test]
fn dangling_ref_to_a_missing_file_and_a_local_definition() {
    let d = diagnostics(&[(
        "user/created.v1.json",
        r##"{"description": "x", "type": "object", "properties": {
            "a": {"$ref": "../shared/address.json#/$defs/Address"},
            "b": {"$ref": "#/$defs/Profile"}}}"##,
    )]);
    assert_reported(
        &d,
        "schemas/user/created.v1.json",
        "/properties/a/$ref",
        "no shared-definitions file schemas/shared/address.json",
    );
    assert_reported(
        &d,
        "schemas/user/created.v1.json",
        "/properties/b/$ref",
        "no definition `Profile` in this file",
    );
}

#[test]
fn remote_refs_are_refused() {
    let d = diagnostics(&[(
        "user/created.v1.json",
        r#"{"description": "x", "type": "object", "properties": {"a": {"$ref": "https://example.com/a.json#/$defs/A"}}}"#,
    )]);
    assert_reported(
        &d,
        "schemas/user/created.v1.json",
        "/properties/a/$ref",
        "remote and absolute references are not supported",
    );
}

#[test]
fn duplicate_event_type_and_version() {
    let d = diagnostics(&[
        ("user/profile.updated.v1.json", GOOD),
        ("user/profile/updated.v1.json", GOOD),
    ]);
    assert_reported(
        &d,
        "schemas/user/profile/updated.v1.json",
        "",
        "duplicate event user.profile.updated v1: schemas/user/profile.updated.v1.json defines it too",
    );
    assert_reported(
        &d,
        "schemas/user/profile.updated.v1.json",
        "",
        "duplicate event user.profile.updated v1: schemas/user/profile/updated.v1.json defines it too",
    );
}

#[test]
fn two_events_with_the_same_rust_name() {
    let d = diagnostics(&[
        ("user/status-changed.v1.json", GOOD),
        ("user/status.changed.v1.json", GOOD),
    ]);
    assert_reported(
        &d,
        "schemas/user/status.changed.v1.json",
        "",
        "user.status.changed and user.status-changed would both become the Rust type user::StatusChangedV1",
    );
}

#[test]
fn duplicate_shared_definition() {
    let d = diagnostics(&[
        ("shared/more-money.json", MONEY),
        ("user/created.v1.json", GOOD),
    ]);
    assert_reported(
        &d,
        "schemas/shared/more-money.json",
        "/$defs/Money",
        "duplicate shared definition `Money`: also defined in schemas/shared/money.json",
    );
}

#[test]
fn file_names_off_convention() {
    let d = diagnostics(&[
        ("user/created.json", GOOD),
        ("user/Created.v1.json", GOOD),
        ("user/created.v0.json", GOOD),
        ("created.v1.json", GOOD),
    ]);
    assert_reported(
        &d,
        "schemas/user/created.json",
        "",
        "does not follow <name>.v<N>.json",
    );
    assert_reported(
        &d,
        "schemas/user/Created.v1.json",
        "",
        "`Created` is not a valid event name segment: use lowercase kebab-case",
    );
    assert_reported(
        &d,
        "schemas/user/created.v0.json",
        "",
        "versions start at 1",
    );
    assert_reported(
        &d,
        "schemas/created.v1.json",
        "",
        "event schemas live in a domain directory",
    );
}

#[test]
fn constructs_typify_cannot_handle_are_refused_before_typify_sees_them() {
    let d = diagnostics(&[(
        "user/created.v1.json",
        r#"{"description": "x", "type": "object", "properties": {
            "kind": {"type": "string", "not": {"enum": ["admin"]}},
            "extra": {"type": "object", "patternProperties": {"^x-": {"type": "string"}}},
            "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}}}"#,
    )]);
    let file = "schemas/user/created.v1.json";
    assert_reported(
        &d,
        file,
        "/properties/kind/not",
        "`not` is valid JSON Schema but the code generator (typify) cannot turn it into a Rust type",
    );
    assert_reported(
        &d,
        file,
        "/properties/extra/patternProperties",
        "use additionalProperties with a value schema",
    );
    assert_reported(
        &d,
        file,
        "/properties/pair/items",
        "tuple arrays (`items` as an array) are not supported",
    );
}

#[test]
fn typify_errors_are_attributed_to_the_property() {
    let d = diagnostics(&[(
        "user/created.v1.json",
        r#"{"description": "x", "type": "object", "properties": {
            "email": {"type": "string"},
            "count": {"type": "integer", "default": "seven"}}}"#,
    )]);
    assert_reported(
        &d,
        "schemas/user/created.v1.json",
        "/properties/count",
        "a `default`, `const` or `enum` value does not match the type the schema declares",
    );
}

#[test]
fn an_event_no_stream_captures() {
    let d = diagnostics(&[("order/placed.v1.json", GOOD)]);
    assert_reported(
        &d,
        "schemas/order/placed.v1.json",
        "",
        "no stream captures subject `events.order.placed.v1`: add a matching subject (e.g. `events.order.>`) to a stream in schemas/streams.json",
    );
}

#[test]
fn invalid_topology() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("schemas");
    std::fs::create_dir_all(root.join("user")).unwrap();
    std::fs::write(root.join("user/created.v1.json"), GOOD).unwrap();
    std::fs::write(
        root.join("streams.json"),
        r#"{"streams": {"USERS": {"subjects": ["events.user.>"], "retention": "workqueue",
            "storage": "disk", "max_age": "30 days", "replicas": 1, "duplicate_window": "2m"}}}"#,
    )
    .unwrap();
    let Err(Error::Invalid(d)) = Config::new().generate(&root) else {
        panic!("should fail")
    };
    assert_reported(
        &d,
        "schemas/streams.json",
        "/streams/USERS/retention",
        "`retention: workqueue` is not supported",
    );
    assert_reported(
        &d,
        "schemas/streams.json",
        "/streams/USERS/storage",
        "`storage` must be one of file, memory",
    );
    assert_reported(
        &d,
        "schemas/streams.json",
        "/streams/USERS/max_age",
        "must be a duration like",
    );
}

#[test]
fn every_problem_is_reported_at_once_and_display_lists_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("schemas");
    std::fs::create_dir_all(root.join("user")).unwrap();
    std::fs::write(root.join("streams.json"), STREAMS).unwrap();
    std::fs::write(root.join("user/a.v1.json"), "nope").unwrap();
    std::fs::write(root.join("user/b.v1.json"), r#"{"type": "object"}"#).unwrap();
    let err = Config::new().generate(&root).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("2 problems in the event schemas:\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  schemas/user/a.v1.json#: not valid JSON"),
        "{text}"
    );
    assert!(
        text.contains(
            "\n  schemas/user/b.v1.json#/description: an event schema needs a root `description`"
        ),
        "{text}"
    );
}

#[test]
fn compile_writes_nothing_when_the_catalog_is_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("schemas");
    std::fs::create_dir_all(root.join("user")).unwrap();
    std::fs::write(root.join("streams.json"), STREAMS).unwrap();
    std::fs::write(root.join("user/a.v1.json"), "nope").unwrap();
    let out = tmp.path().join("out/events.rs");
    assert!(eventhub_codegen::compile(&root, &out).is_err());
    assert!(!out.exists());
}

#[test]
fn a_request_without_its_response_and_a_response_without_its_request() {
    let d = diagnostics(&[
        ("user/created.v1.json", GOOD),
        ("user/lookup.request.v1.json", GOOD),
        ("user/find.response.v2.json", GOOD),
    ]);
    assert_reported(
        &d,
        "schemas/user/lookup.request.v1.json",
        "",
        "request `user.lookup` v1 has no response: add `lookup.response.v1.json` next to it \
         (a request is answered with the response of the same name and version)",
    );
    assert_reported(
        &d,
        "schemas/user/find.response.v2.json",
        "",
        "response `user.find` v2 has no request: add `find.request.v2.json` next to it \
         (a response answers the request of the same name and version)",
    );
}
