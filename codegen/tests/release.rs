//! Released state: recording a release, checking the catalog against it, diffing two trees,
//! and the build failing on a breaking edit of a released version.

use std::path::{Path, PathBuf};

use eventhub_codegen::release::{self, Lock, Status};
use eventhub_codegen::{Catalog, Error};
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catalog")
}

mod common;
use common::copy_dir;

/// A copy of the fixture catalog, released.
fn released_catalog() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("schemas");
    copy_dir(&fixture(), &dir);
    let catalog = Catalog::load(&dir).unwrap();
    let lock = Lock::record(&catalog, None).unwrap();
    assert!(
        lock.save(&dir).unwrap(),
        "the first release writes the lock"
    );
    (tmp, dir)
}

fn edit(dir: &Path, file: &str, f: impl FnOnce(&mut Value)) {
    let path = dir.join(file);
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut doc);
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

fn check(dir: &Path) -> release::Report {
    let lock = Lock::load(dir).unwrap().expect("released");
    release::check(&Catalog::load(dir).unwrap(), &lock)
}

#[test]
fn an_untouched_release_checks_clean_and_records_idempotently() {
    let (_tmp, dir) = released_catalog();
    let report = check(&dir);
    assert!(!report.is_breaking());
    assert!(report.events.iter().all(|e| e.status == Status::Unchanged));
    assert_eq!(report.to_string(), "no changes\n");
    let again = Lock::record(
        &Catalog::load(&dir).unwrap(),
        Lock::load(&dir).unwrap().as_ref(),
    )
    .unwrap();
    assert!(
        !again.save(&dir).unwrap(),
        "recording the same release changes nothing"
    );
}

#[test]
fn a_compatible_edit_passes_and_a_new_version_is_reported_as_added() {
    let (_tmp, dir) = released_catalog();
    edit(&dir, "shop/order-placed.v1.json", |d| {
        d["properties"]["note"] = serde_json::json!({ "type": "string" });
        d["description"] = "An order was placed.".into();
    });
    std::fs::copy(
        dir.join("shop/order-placed.v1.json"),
        dir.join("shop/order-placed.v2.json"),
    )
    .unwrap();
    let report = check(&dir);
    assert!(!report.is_breaking(), "{report}");
    let text = report.to_string();
    assert!(text.contains("optional property `note` added"), "{text}");
    assert!(text.contains("shop.order-placed v2"), "{text}");
    assert!(text.contains("new version, not released yet"), "{text}");
}

#[test]
fn a_shared_definition_change_is_reported_for_every_event_using_it() {
    let (_tmp, dir) = released_catalog();
    // A second event using Money, released too.
    std::fs::write(
        dir.join("shop/refunded.v1.json"),
        r#"{ "type": "object", "description": "A refund.",
             "properties": { "amount": { "$ref": "../shared/money.json#/$defs/Money" } },
             "required": ["amount"] }"#,
    )
    .unwrap();
    Lock::record(
        &Catalog::load(&dir).unwrap(),
        Lock::load(&dir).unwrap().as_ref(),
    )
    .unwrap()
    .save(&dir)
    .unwrap();
    edit(&dir, "shared/money.json", |d| {
        d["$defs"]["Currency"]["pattern"] = "^[A-Z]{3,4}$".into();
    });
    let report = check(&dir);
    assert!(report.is_breaking());
    let users: std::collections::BTreeSet<String> = report
        .breaking()
        .map(|(e, _)| format!("{}@{}", e.event_type, e.version))
        .collect();
    assert_eq!(
        users,
        [
            "shop.order-placed@1",
            "shop.quote.response@1",
            "shop.refunded@1"
        ]
        .map(String::from)
        .into(),
        "every event and request using Money is named"
    );
    let text = report.to_string();
    assert!(
        text.contains("/properties/lines/items/properties/price/properties/currency (in definition Currency): pattern changed"),
        "{text}"
    );
    assert!(
        text.contains("/properties/total/properties/currency (in definition Currency)"),
        "every place the definition is used is named: {text}"
    );
    assert!(
        text.contains("leave definition Currency as it is"),
        "{text}"
    );
}

#[test]
fn marking_or_unmarking_a_released_field_x_sensitive_fails_the_build() {
    let (tmp, dir) = released_catalog();
    edit(&dir, "shop/cart/checked-out.v1.json", |d| {
        d["properties"]["cart_id"]["x-sensitive"] = true.into();
    });
    edit(&dir, "shop/order-placed.v1.json", |d| {
        let line = &mut d["$defs"]["Line"]["properties"]["engraving"];
        line.as_object_mut().unwrap().remove("x-sensitive");
    });
    let err = eventhub_codegen::compile(&dir, &tmp.path().join("events.rs"))
        .expect_err("a changed mark fails the build");
    let msg = err.to_string();
    for expected in [
        "2 breaking changes to released event versions",
        "shop.cart.checked-out v1",
        "#/properties/cart_id: shop.cart.checked-out v1: marked x-sensitive",
        "breaks old consumers: new events carry the field encrypted",
        "shop.order-placed v1",
        "/properties/lines/items/properties/engraving: shop.order-placed v1: x-sensitive mark removed (in definition OrderPlacedV1Line)",
        "breaks new consumers: stored events carry the field encrypted",
    ] {
        assert!(msg.contains(expected), "{expected:?} in:\n{msg}");
    }
}

#[test]
fn a_released_request_is_gated_like_an_event() {
    let (_tmp, dir) = released_catalog();
    let lock = lock_json(&dir);
    assert!(lock["events"]["shop.quote.request@1"].is_object(), "{lock}");
    assert!(
        lock["events"]["shop.quote.response@1"].is_object(),
        "{lock}"
    );
    edit(&dir, "shop/quote.request.v1.json", |d| {
        d["properties"]["quantity"]["type"] = "string".into();
    });
    let report = check(&dir);
    assert!(report.is_breaking(), "{report}");
    let text = report.to_string();
    assert!(text.contains("shop.quote.request v1"), "{text}");
    std::fs::remove_file(dir.join("shop/quote.response.v1.json")).unwrap();
    std::fs::remove_file(dir.join("shop/quote.request.v1.json")).unwrap();
    let text = check(&dir).to_string();
    assert!(
        text.contains("shop.quote.response v1: released version removed"),
        "{text}"
    );
}

#[test]
fn removing_a_released_version_is_breaking() {
    let (_tmp, dir) = released_catalog();
    std::fs::remove_file(dir.join("shop/cart/checked-out.v1.json")).unwrap();
    let report = check(&dir);
    assert!(report.is_breaking());
    assert!(
        report
            .to_string()
            .contains("shop.cart.checked-out v1: released version removed"),
        "{report}"
    );
}

#[test]
fn a_breaking_change_is_not_recorded_as_released() {
    let (_tmp, dir) = released_catalog();
    edit(&dir, "shop/order-placed.v1.json", |d| {
        d["required"].as_array_mut().unwrap().push("channel".into());
    });
    let before = std::fs::read_to_string(dir.join(release::LOCK_FILE)).unwrap();
    let err = Lock::record(
        &Catalog::load(&dir).unwrap(),
        Lock::load(&dir).unwrap().as_ref(),
    )
    .expect_err("refused");
    assert!(matches!(err, Error::Breaking(_)), "{err}");
    assert_eq!(
        before,
        std::fs::read_to_string(dir.join(release::LOCK_FILE)).unwrap()
    );
}

#[test]
fn the_build_fails_on_a_breaking_edit_of_a_released_version() {
    let (tmp, dir) = released_catalog();
    edit(&dir, "shop/order-placed.v1.json", |d| {
        d["required"].as_array_mut().unwrap().push("channel".into());
    });
    // What sdk/build.rs calls.
    let err = eventhub_codegen::compile(&dir, &tmp.path().join("events.rs"))
        .expect_err("a breaking edit fails the build");
    let msg = err.to_string();
    assert!(
        msg.starts_with("1 breaking change to released event versions"),
        "{msg}"
    );
    for expected in [
        "schemas/shop/order-placed.v1.json#/properties/channel: shop.order-placed v1: property `channel` became required",
        "breaks new consumers: stored events may lack `channel`",
        "fix: keep v1 as released and make this change in a new version file, schemas/shop/order-placed.v2.json",
    ] {
        assert!(msg.contains(expected), "missing {expected:?} in:\n{msg}");
    }
    assert!(
        !tmp.path().join("events.rs").exists(),
        "nothing is generated"
    );
}

#[test]
fn diff_compares_two_trees_old_counting_as_released() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
    copy_dir(&fixture(), &old);
    copy_dir(&fixture(), &new);
    let same = release::diff(&Catalog::load(&old).unwrap(), &Catalog::load(&new).unwrap());
    assert!(!same.is_breaking());
    edit(&new, "shop/order-placed.v1.json", |d| {
        d["properties"]["channel"]["enum"]
            .as_array_mut()
            .unwrap()
            .push("phone".into());
    });
    let report = release::diff(&Catalog::load(&old).unwrap(), &Catalog::load(&new).unwrap());
    assert!(report.is_breaking());
    let text = report.to_string();
    assert!(text.contains("enum value(s) \"phone\" added"), "{text}");
    assert!(text.contains("breaks old consumers"), "{text}");
}

#[test]
fn the_real_catalog_honours_its_release() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let lock = Lock::load(&dir)
        .unwrap()
        .expect("schemas/released.lock exists: `eventhub schemas release` records it");
    let report = release::check(&Catalog::load(&dir).unwrap(), &lock);
    assert!(!report.is_breaking(), "{report}");
}

fn lock_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(release::LOCK_FILE)).unwrap()).unwrap()
}

#[test]
fn protobuf_field_numbers_are_recorded_kept_and_checked() {
    let (_tmp, dir) = released_catalog();
    let numbers = |dir: &Path| lock_json(dir)["events"]["shop.order-placed@1"]["proto"][""].clone();
    let before = numbers(&dir);
    let channel = before["channel"].as_u64().expect("channel has a number");
    let coupon = before["coupon"].as_u64().expect("coupon has a number");
    let highest = before
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .max()
        .unwrap();

    // A compatible change released: the removed optional property keeps its number (reserved),
    // the new one gets the next free number, the others stay.
    edit(&dir, "shop/order-placed.v1.json", |d| {
        d["properties"].as_object_mut().unwrap().remove("coupon");
        d["properties"]["aaa_note"] = serde_json::json!({ "type": "string" });
    });
    Lock::record(
        &Catalog::load(&dir).unwrap(),
        Lock::load(&dir).unwrap().as_ref(),
    )
    .unwrap()
    .save(&dir)
    .unwrap();
    let after = numbers(&dir);
    assert_eq!(after["channel"].as_u64(), Some(channel));
    assert_eq!(
        after["coupon"].as_u64(),
        Some(coupon),
        "reserved, never reused"
    );
    assert_eq!(after["aaa_note"].as_u64(), Some(highest + 1));

    // A lock whose numbers the catalog no longer reproduces is breaking.
    let mut lock = lock_json(&dir);
    lock["events"]["shop.order-placed@1"]["proto"][""]["channel"] = (channel + 100).into();
    lock["events"]["shop.order-placed@1"]["proto"][""]["aaa_note"] = (channel + 100).into();
    std::fs::write(dir.join(release::LOCK_FILE), lock.to_string()).unwrap();
    let report = check(&dir);
    assert!(report.is_breaking());
    let text = report.to_string();
    assert!(text.contains("both have field number"), "{text}");
}
