//! The real catalog in `schemas/`: it is valid, and a schema file dropped into it becomes a type.

use std::path::{Path, PathBuf};

use eventhub_codegen::{Catalog, Config};

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

mod common;
use common::copy_dir;

#[test]
fn the_catalog_holds_every_event_of_our_services() {
    let catalog = Catalog::load(&schemas_dir()).unwrap_or_else(|e| panic!("{e}"));
    let events: Vec<String> = catalog
        .events()
        .iter()
        .map(|e| format!("{}@v{}", e.event_type, e.version))
        .collect();
    for expected in [
        "user.created@v1",
        "user.created@v2",
        "user.updated@v1",
        "user.deleted@v1",
        "auth.login@v1",
        "auth.logout@v1",
        "payment.created@v1",
        "payment.updated@v1",
        "payment.status-changed@v1",
        "transaction.created@v1",
        "transaction.completed@v1",
        "transaction.failed@v1",
        "transaction.cancelled@v1",
        "audit.created@v1",
        "config.updated@v1",
        "system.health.check@v1",
        "photo.uploaded@v1",
        "photo.processing.started@v1",
        "photo.processing.completed@v1",
        "photo.processing.failed@v1",
        "order.placed@v1",
    ] {
        assert!(
            events.contains(&expected.to_string()),
            "{expected} missing from {events:?}"
        );
    }
    let created = catalog
        .events()
        .into_iter()
        .find(|e| e.event_type == "photo.processing.started")
        .unwrap();
    assert_eq!(created.subject, "events.photo.processing.started.v1");
    assert_eq!(created.stream, "PHOTOS");
    assert_eq!(created.rust_type, "photo::ProcessingStartedV1");
}

#[test]
fn a_new_schema_file_becomes_a_new_type_with_no_other_edit() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("schemas");
    copy_dir(&schemas_dir(), &copy);
    let before = Config::new().generate(&copy).unwrap();
    assert!(!before.contains("pub struct VerifiedV1"));

    std::fs::write(
        copy.join("user/verified.v1.json"),
        r#"{"description": "A user verified their email address.", "type": "object",
            "properties": {
              "user_id": {"$ref": "../shared/ids.json#/$defs/UserId"},
              "verified_at": {"description": "When.", "type": "string", "format": "date-time"}},
            "required": ["user_id", "verified_at"]}"#,
    )
    .unwrap();
    let after = Config::new().generate(&copy).unwrap();
    for expected in [
        "pub struct VerifiedV1 {",
        "pub user_id: super::shared::UserId,",
        "impl ::eventhub::Event for VerifiedV1 {",
        "const SUBJECT: &'static str = \"events.user.verified.v1\";",
        "const STREAM: &'static str = \"IDENTITY\";",
        "pub enum Verified {",
        "pub const VERIFIED_V1: &str = \"events.user.verified.v1\";",
        "event_type: \"user.verified\",",
    ] {
        assert!(
            after.contains(expected),
            "generated code lacks `{expected}`"
        );
    }
}

#[test]
fn compile_writes_only_when_the_output_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("events.rs");
    assert!(eventhub_codegen::compile(&schemas_dir(), &out).unwrap());
    let modified = std::fs::metadata(&out).unwrap().modified().unwrap();
    assert!(
        !eventhub_codegen::compile(&schemas_dir(), &out).unwrap(),
        "unchanged output is not rewritten"
    );
    assert_eq!(
        std::fs::metadata(&out).unwrap().modified().unwrap(),
        modified
    );
}
