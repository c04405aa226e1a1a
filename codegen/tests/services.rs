//! The declaration of services: validation against the catalog, the permissions it grants, and
//! the repository's `nats.conf`, which is generated from it (a golden file, compared with
//! `expectorate`: `EXPECTORATE=overwrite cargo test -p eventhub-codegen --test services`
//! rewrites it).

mod common;

use std::path::{Path, PathBuf};

use eventhub_codegen::services::nats::{Auth, NatsConfig};
use eventhub_codegen::services::{Role, Services};
use eventhub_codegen::{Catalog, Error};
use serde_json::{Value, json};

use common::assert_reported;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn catalog() -> Catalog {
    Catalog::load(&repo().join("schemas")).expect("the repository's catalog")
}

fn declared() -> Services {
    Services::load(&repo().join("schemas"), &catalog())
        .expect("the repository's declaration is valid")
        .expect("schemas/services.json exists")
}

fn parse(doc: Value) -> Result<Services, Error> {
    Services::parse(Path::new("schemas/services.json"), &doc, &catalog())
}

#[track_caller]
fn problems(doc: Value) -> Vec<eventhub_codegen::Diagnostic> {
    match parse(doc) {
        Err(Error::InvalidServices(d)) => d,
        Err(other) => panic!("expected problems in the declaration, got {other}"),
        Ok(_) => panic!("expected problems in the declaration, it was accepted"),
    }
}

/// A small valid declaration to break in one place.
fn base() -> Value {
    json!({
        "operators": ["ops"],
        "services": {
            "auth": { "publishes": ["user.created", "auth.login"] },
            "payments": {
                "publishes": ["payment.created"],
                "consumes": [{ "event": "user.created" }]
            },
            "admin": { "consumes": [{ "event": "payment.created" }] }
        }
    })
}

#[test]
fn the_checked_in_nats_conf_is_generated_from_the_declaration() {
    let services = declared();
    let text = NatsConfig::new(&services)
        .command("eventhub config nats --out nats.conf")
        .render()
        .unwrap();
    // Regenerate with `cargo run -p eventhub-cli -- config nats --out nats.conf` (or
    // `EXPECTORATE=overwrite cargo test -p eventhub-codegen --test services`).
    expectorate::assert_contents(repo().join("nats.conf"), &text);
}

#[test]
fn the_declaration_follows_its_json_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("codegen/services.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/services.json")).unwrap(),
    )
    .unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    // Every key the validator knows, the schema knows too (and the other way round: the schema
    // refuses unknown keys, the validator names them).
    let full = json!({
        "$schema": "x", "$comment": "x", "description": "x",
        "operators": ["ops"],
        "sweeper": "sweeper",
        "gateway": { "name": "gateway", "description": "x", "publishes_for": ["auth"] },
        "nkeys": { "auth": "UAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" },
        "services": {
            "auth": { "description": "x", "publishes": ["user.created"], "aggregates": ["account"], "health": true, "metrics": false },
            "payments": { "consumes": [
                { "event": "user.created", "durable": "pay", "versions": [2], "idempotency": "1h" }
            ], "sagas": [{ "name": "signup", "inputs": ["user.created"] }] }
        }
    });
    assert!(validator.is_valid(&full));
    parse(full).expect("the validator accepts every key the schema has");
    assert!(!validator.is_valid(&json!({ "operators": ["ops"], "services": {}, "sweper": "x" })));
}

#[test]
fn the_repository_declares_what_the_demo_and_the_tests_run() {
    let s = declared();
    assert_eq!(s.operators, ["ops"]);
    assert_eq!(s.sweeper.as_deref(), Some("sweeper"));
    let names: Vec<&str> = s.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "auth",
            "payments",
            "profile",
            "admin",
            "photo",
            "preferences",
            "notifications",
            "analytics",
            "onboarding",
            "privacy"
        ]
    );
    let payments = s.service("payments").unwrap();
    assert_eq!(payments.consumes[0].durable, "payments__user_created");
    assert_eq!(payments.consumes[0].filters, ["events.user.created.*"]);
    let profile = s.service("profile").unwrap();
    assert_eq!(profile.consumes[0].filters, ["events.user.created.v2"]);
    assert_eq!(s.publisher_of("payment.created").unwrap().name, "payments");
    assert!(
        s.publisher_of("order.placed").is_none(),
        "nobody publishes orders yet"
    );
    let users: Vec<(String, Role)> = s.users().into_iter().map(|u| (u.name, u.role)).collect();
    assert_eq!(users.first().unwrap(), &("ops".to_string(), Role::Operator));
    assert_eq!(users.last().unwrap(), &("sys".to_string(), Role::System));
}

#[test]
fn a_service_is_granted_exactly_what_the_sdk_uses() {
    let s = declared();
    let users = s.users();
    let payments = users.iter().find(|u| u.name == "payments").unwrap();
    let p = payments.permissions.as_ref().unwrap();
    let bucket = "EVENTHUB_IDEMPOTENCY_payments__user_created";
    let expected_consumer = [
        "$JS.API.STREAM.INFO.IDENTITY".to_string(),
        "$JS.API.CONSUMER.CREATE.IDENTITY.payments__user_created.events.user.created.*".into(),
        "$JS.API.CONSUMER.MSG.NEXT.IDENTITY.payments__user_created".into(),
        "$JS.ACK.IDENTITY.payments__user_created.>".into(),
        "dlq.payments__user_created.events.user.created.*".into(),
        "$JS.API.CONSUMER.INFO.IDENTITY.payments__user_created".into(),
        format!("$JS.API.STREAM.INFO.KV_{bucket}"),
        format!("$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}.>"),
        format!("$KV.{bucket}.>"),
        "$JS.API.CONSUMER.CREATE.IDENTITY.payments__user_deleted.events.user.deleted.*".into(),
        "$JS.API.CONSUMER.MSG.NEXT.IDENTITY.payments__user_deleted".into(),
        "$JS.ACK.IDENTITY.payments__user_deleted.>".into(),
        "dlq.payments__user_deleted.events.user.deleted.*".into(),
        "$JS.API.CONSUMER.INFO.IDENTITY.payments__user_deleted".into(),
        "$JS.API.STREAM.INFO.KV_EVENTHUB_REPLAYS".into(),
        "$JS.API.DIRECT.GET.KV_EVENTHUB_REPLAYS.$KV.EVENTHUB_REPLAYS.>".into(),
        "$JS.API.STREAM.NAMES".into(),
        "$JS.API.STREAM.INFO.EVENTHUB_DLQ".into(),
    ];
    let events: Vec<&String> = p
        .publish_allow
        .iter()
        .filter(|s| s.starts_with("events."))
        .collect();
    assert_eq!(events.len(), 8, "one subject per version of its 8 types");
    let rest: Vec<String> = p
        .publish_allow
        .iter()
        .filter(|s| !s.starts_with("events."))
        .cloned()
        .collect();
    assert_eq!(rest, expected_consumer);
    assert!(
        p.publish_deny
            .contains(&"$JS.API.CONSUMER.CREATE.IDENTITY.payments__user_created".to_string()),
        "the bare create subject (any filter in its body) is denied"
    );
    assert!(
        p.publish_deny
            .contains(&"$JS.API.STREAM.DELETE.>".to_string())
    );
    assert_eq!(p.subscribe_allow, ["_INBOX_payments.>"]);
    // No wildcard a service could stretch past what it owns.
    for subject in &p.publish_allow {
        assert!(!subject.starts_with("$JS.API.STREAM.CREATE"), "{subject}");
        assert!(!subject.ends_with("IDENTITY.>"), "{subject}");
    }

    let sweeper = users.iter().find(|u| u.role == Role::Sweeper).unwrap();
    let p = sweeper.permissions.as_ref().unwrap();
    assert!(p.publish_allow.contains(&"dlq.>".to_string()));
    assert!(
        p.publish_allow
            .contains(&"$JS.API.STREAM.MSG.GET.PAYMENTS".to_string())
    );
    assert!(
        p.publish_allow
            .contains(&"$JS.API.CONSUMER.CREATE.EVENTHUB_ADVISORIES.eventhub_sweeper".to_string())
    );
    assert!(!p.publish_allow.iter().any(|s| s.starts_with("events.")));
    let ops = users.iter().find(|u| u.name == "ops").unwrap();
    assert!(ops.permissions.is_none(), "operators may do everything");
}

#[test]
fn unknown_events_and_keys_are_named_with_file_pointer_and_a_suggestion() {
    let mut doc = base();
    doc["services"]["auth"]["publishes"][1] = json!("auth.logn");
    doc["services"]["payments"]["consume"] = json!([]);
    doc["services"]["admin"]["consumes"][0]["evnt"] = json!("x");
    doc["sweper"] = json!("sweeper");
    let d = problems(doc);
    let f = "schemas/services.json";
    assert_reported(
        &d,
        f,
        "/services/auth/publishes/1",
        "unknown event type `auth.logn` (did you mean `auth.login`?)",
    );
    assert_reported(
        &d,
        f,
        "/services/payments/consume",
        "unknown key `consume` in service `payments` (did you mean `consumes`?)",
    );
    assert_reported(
        &d,
        f,
        "/services/admin/consumes/0/evnt",
        "(did you mean `event`?)",
    );
    assert_reported(&d, f, "/sweper", "(did you mean `sweeper`?)");
    let text = Error::InvalidServices(d).to_string();
    assert!(
        text.starts_with("4 problems in the declaration of services:\n  schemas/services.json#/"),
        "{text}"
    );
}

#[test]
fn a_consumed_event_nobody_publishes_is_refused() {
    let mut doc = base();
    doc["services"]["auth"]["publishes"] = json!(["auth.login"]);
    let d = problems(doc);
    assert_reported(
        &d,
        "schemas/services.json",
        "/services/payments/consumes/0",
        "`payments` consumes `user.created`, which no service publishes",
    );
}

#[test]
fn an_event_has_one_publisher() {
    let mut doc = base();
    doc["services"]["admin"]["publishes"] = json!(["payment.created"]);
    let d = problems(doc);
    assert_reported(
        &d,
        "schemas/services.json",
        "/services/admin/publishes/0",
        "`payment.created` is already published by `payments` (#/services/payments/publishes/0)",
    );
}

#[test]
fn durables_are_unique_across_services() {
    let mut doc = base();
    doc["services"]["admin"]["consumes"] = json!([
        { "event": "payment.created" },
        { "event": "user.created", "durable": "payments__user_created" }
    ]);
    let d = problems(doc);
    assert_reported(
        &d,
        "schemas/services.json",
        "/services/admin/consumes/1",
        "durable `payments__user_created` is already declared by `#/services/payments/consumes/0`",
    );
    // The same event twice in one service needs a second name.
    let mut doc = base();
    doc["services"]["admin"]["consumes"] = json!([
        { "event": "payment.created" }, { "event": "payment.created" }
    ]);
    assert_reported(
        &problems(doc),
        "schemas/services.json",
        "/services/admin/consumes/1",
        "durable `admin__payment_created` is already declared",
    );
}

#[test]
fn names_versions_durations_and_keys_are_checked() {
    let mut doc = base();
    doc["services"]["Bad_Name"] = json!({});
    doc["operators"] = json!(["ops", "auth"]);
    doc["services"]["payments"]["consumes"][0]["versions"] = json!([3]);
    doc["services"]["admin"]["consumes"][0]["idempotency"] = json!("forever");
    doc["services"]["admin"]["consumes"][0]["durable"] = json!("admin.payments");
    doc["nkeys"] = json!({ "auth": "not-a-key", "nobody": "U" });
    let d = problems(doc);
    let f = "schemas/services.json";
    assert_reported(
        &d,
        f,
        "/services/Bad_Name",
        "`Bad_Name` is not a valid name",
    );
    assert_reported(
        &d,
        f,
        "/services/auth",
        "the name `auth` is already taken by `#/operators/1`",
    );
    assert_reported(
        &d,
        f,
        "/services/payments/consumes/0/versions/0",
        "`user.created` has no version 3 in the catalog (it has 1, 2)",
    );
    assert_reported(
        &d,
        f,
        "/services/admin/consumes/0/durable",
        "`durable` must be 1-200 characters",
    );
    assert_reported(&d, f, "/nkeys/auth", "not a user's public nkey");
    assert_reported(&d, f, "/nkeys/nobody", "`nobody` is not a declared user");
    let mut doc = base();
    doc["services"]["admin"]["consumes"][0]["idempotency"] = json!("forever");
    doc["gateway"] = json!({ "name": "gateway", "publishes_for": ["auht"] });
    let d = problems(doc);
    assert_reported(
        &d,
        f,
        "/services/admin/consumes/0/idempotency",
        "a duration like",
    );
    assert_reported(
        &d,
        f,
        "/gateway/publishes_for/0",
        "unknown service `auht` (did you mean `auth`?)",
    );
}

#[test]
fn a_family_filter_that_could_reach_another_type_is_refused() {
    // `photo.processing` would sit above `photo.processing.started`: NATS lets a literal `>`
    // pass a `*` permission, so `events.photo.processing.*` could become `.>`.
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&repo().join("schemas"), dir.path());
    std::fs::copy(
        dir.path().join("photo/uploaded.v1.json"),
        dir.path().join("photo/processing.v1.json"),
    )
    .unwrap();
    let mut text = std::fs::read_to_string(dir.path().join("photo/processing.v1.json")).unwrap();
    text = text.replace("photo/uploaded.v1.json", "photo/processing.v1.json");
    std::fs::write(dir.path().join("photo/processing.v1.json"), text).unwrap();
    let catalog = match Catalog::load(dir.path()) {
        Ok(c) => c,
        Err(e) => panic!("the copied catalog with photo.processing loads: {e}"),
    };
    let doc = json!({
        "operators": ["ops"],
        "services": {
            "photo": { "publishes": ["photo.processing", "photo.processing.started"] },
            "thumbs": { "consumes": [{ "event": "photo.processing" }] },
            "pinned": { "consumes": [{ "event": "photo.processing", "versions": [1] }] }
        }
    });
    let Err(Error::InvalidServices(d)) =
        Services::parse(Path::new("schemas/services.json"), &doc, &catalog)
    else {
        panic!("refused")
    };
    assert_reported(
        &d,
        "schemas/services.json",
        "/services/thumbs/consumes/0",
        "list `versions` to pin the filter",
    );
    assert_eq!(d.len(), 1, "the pinned consumer is fine: {d:?}");
}

#[test]
fn nkey_mode_needs_a_key_per_user_and_writes_only_public_keys() {
    let services = declared();
    let Err(Error::InvalidServices(d)) = NatsConfig::new(&services)
        .auth(Auth::Nkey(Default::default()))
        .render()
    else {
        panic!("keys are missing")
    };
    assert_reported(
        &d,
        "schemas/services.json",
        "/nkeys",
        "no public nkey for user `payments`",
    );
    let keys: std::collections::BTreeMap<String, Vec<String>> = services
        .users()
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let key = format!("U{:A>55}", char::from(b'B' + i as u8));
            (u.name.clone(), vec![key])
        })
        .collect();
    let text = NatsConfig::new(&services)
        .auth(Auth::Nkey(keys.clone()))
        .accounts_only()
        .render()
        .unwrap();
    assert!(!text.contains("password"), "{text}");
    assert!(!text.contains("listen"), "accounts only: {text}");
    for (user, key) in &keys {
        assert!(
            text.contains(&format!("nkey: \"{}\"", key[0])),
            "{user}: {text}"
        );
    }
}

#[test]
fn services_with_declared_nkeys_are_the_ones_that_sign() {
    let old = "UAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let new = "UBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    let mut doc = base();
    // Two keys during a rotation; an operator's key is not a signing key.
    doc["nkeys"] = json!({ "auth": [old, new], "ops": old });
    let services = parse(doc).expect("valid");
    let keys = services.signing_keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].0, "auth");
    assert_eq!(keys[0].1, [old.to_string(), new.to_string()]);
    assert!(
        declared().signing_keys().is_empty(),
        "the repository's declaration signs nothing yet"
    );
}

#[test]
fn a_saga_reads_one_stream_of_published_inputs_under_its_own_durables() {
    let s = declared();
    let onboarding = s.service("onboarding").unwrap();
    let registration = &onboarding.sagas[0];
    assert_eq!(registration.stream, "IDENTITY");
    assert_eq!(registration.durable(), "saga_registration");
    assert_eq!(registration.store(), "SAGA_REGISTRATION");
    assert!(
        registration
            .filters
            .contains(&"events.user.created.v2".to_string())
    );

    let mut doc = base();
    doc["services"]["admin"]["sagas"] = json!([
        { "name": "Checkout", "inputs": ["payment.created"] },
        { "name": "mixed", "inputs": ["payment.created", "user.created"] },
        { "name": "orphan", "inputs": ["auth.logout"] },
        { "name": "typo", "inputs": ["payment.created"], "input": [] }
    ]);
    doc["services"]["payments"]["consumes"] =
        json!([{ "event": "user.created", "durable": "saga_typo" }]);
    let d = problems(doc);
    let f = "schemas/services.json";
    assert_reported(
        &d,
        f,
        "/services/admin/sagas/0/name",
        "1-64 lowercase letters, digits and `_`",
    );
    assert_reported(
        &d,
        f,
        "/services/admin/sagas/1/inputs/1",
        "`user.created` is stored in stream IDENTITY, the saga's other inputs in PAYMENTS",
    );
    assert_reported(
        &d,
        f,
        "/services/admin/sagas/2/inputs/0",
        "saga `orphan` reacts to `auth.logout`, which no service publishes",
    );
    assert_reported(
        &d,
        f,
        "/services/admin/sagas/3/input",
        "unknown key `input` in a saga",
    );
    assert_reported(
        &d,
        f,
        "/services/admin/sagas/3",
        "the saga's durable `saga_typo` is already declared",
    );
}

#[test]
fn a_saga_service_gets_its_durables_bucket_and_timers_and_no_timeouts() {
    let s = declared();
    let users = s.users();
    let privacy = users.iter().find(|u| u.name == "privacy").unwrap();
    let p = privacy.permissions.as_ref().unwrap();
    let saga: Vec<&str> = p
        .publish_allow
        .iter()
        .map(String::as_str)
        .filter(|s| !s.starts_with("events.") && !s.ends_with("STREAM.NAMES"))
        .filter(|s| !s.ends_with("INFO.EVENTHUB_DLQ"))
        .collect();
    assert_eq!(
        saga,
        [
            "$JS.API.STREAM.INFO.IDENTITY",
            "$JS.API.STREAM.INFO.SAGA_GDPR_ERASURE",
            "$JS.API.STREAM.INFO.KV_SAGA_GDPR_ERASURE",
            "$JS.API.CONSUMER.INFO.IDENTITY.saga_gdpr_erasure",
            "$JS.API.CONSUMER.MSG.NEXT.IDENTITY.saga_gdpr_erasure",
            "$JS.ACK.IDENTITY.saga_gdpr_erasure.>",
            "$JS.API.CONSUMER.INFO.SAGA_GDPR_ERASURE.saga_gdpr_erasure_timeouts",
            "$JS.API.CONSUMER.MSG.NEXT.SAGA_GDPR_ERASURE.saga_gdpr_erasure_timeouts",
            "$JS.ACK.SAGA_GDPR_ERASURE.saga_gdpr_erasure_timeouts.>",
            "$JS.API.DIRECT.GET.KV_SAGA_GDPR_ERASURE.$KV.SAGA_GDPR_ERASURE.>",
            "$KV.SAGA_GDPR_ERASURE.>",
            "saga.gdpr_erasure.timer.*",
        ]
    );
    // Its durables exist before it runs: creating them (any filter in the body) is denied.
    for bare in [
        "$JS.API.CONSUMER.CREATE.IDENTITY.saga_gdpr_erasure",
        "$JS.API.CONSUMER.CREATE.SAGA_GDPR_ERASURE.saga_gdpr_erasure_timeouts",
        "$JS.API.STREAM.CREATE.>",
    ] {
        assert!(p.publish_deny.iter().any(|d| d == bare), "{bare}");
    }
    // Nobody but the saga's service touches `saga.*`, and nobody publishes a timeout.
    for u in &users {
        let Some(p) = &u.permissions else { continue };
        for subject in &p.publish_allow {
            assert!(
                !subject.starts_with("saga.") || subject.ends_with(".timer.*"),
                "{}: {subject}",
                u.name
            );
            if subject.contains("SAGA_GDPR_ERASURE") || subject.starts_with("saga.gdpr_erasure") {
                assert_eq!(u.name, "privacy", "{subject}");
            }
        }
    }
    // The gateway may follow IDENTITY, but never through a saga's durable.
    let gateway = users.iter().find(|u| u.role == Role::Gateway).unwrap();
    let deny = &gateway.permissions.as_ref().unwrap().publish_deny;
    for subject in [
        "$JS.API.CONSUMER.CREATE.IDENTITY.saga_gdpr_erasure",
        "$JS.API.CONSUMER.CREATE.IDENTITY.saga_gdpr_erasure.>",
        "$JS.API.CONSUMER.MSG.NEXT.IDENTITY.saga_gdpr_erasure",
    ] {
        assert!(deny.iter().any(|d| d == subject), "{subject}");
    }
}

#[test]
fn an_aggregate_is_granted_to_its_owner_alone() {
    let s = declared();
    assert_eq!(s.service("auth").unwrap().aggregates[0].stream(), "ES_USER");
    let users = s.users();
    let owned = [
        "$JS.API.STREAM.INFO.ES_USER",
        "es.user.*",
        "$JS.API.DIRECT.GET.ES_USER",
        "$JS.API.DIRECT.GET.ES_USER.es.user.*",
        "$JS.API.STREAM.INFO.KV_ES_SNAPSHOTS_USER",
        "$JS.API.DIRECT.GET.KV_ES_SNAPSHOTS_USER.$KV.ES_SNAPSHOTS_USER.>",
        "$KV.ES_SNAPSHOTS_USER.>",
    ];
    let auth = users.iter().find(|u| u.name == "auth").unwrap();
    let allow = &auth.permissions.as_ref().unwrap().publish_allow;
    let at = allow.iter().position(|s| s == owned[0]).unwrap();
    assert_eq!(&allow[at..at + owned.len()], owned);
    for u in users.iter().filter(|u| u.name != "auth") {
        let Some(p) = &u.permissions else { continue };
        for subject in &p.publish_allow {
            assert!(
                !subject.contains("ES_USER") && !subject.starts_with("es."),
                "{}: {subject}",
                u.name
            );
        }
    }

    let mut doc = base();
    doc["services"]["auth"]["aggregates"] = json!(["account", "Bad.Type", "bank-account"]);
    doc["services"]["payments"]["aggregates"] = json!(["account", "bank_account"]);
    doc["services"]["admin"]["aggregates"] = json!("account");
    let d = problems(doc);
    let f = "schemas/services.json";
    assert_reported(
        &d,
        f,
        "/services/auth/aggregates/1",
        "1-64 lowercase letters, digits, `_` and `-`",
    );
    assert_reported(
        &d,
        f,
        "/services/payments/aggregates/0",
        "aggregate type `account` (stream ES_ACCOUNT) is already declared by `#/services/auth/aggregates/0`",
    );
    assert_reported(
        &d,
        f,
        "/services/payments/aggregates/1",
        "(stream ES_BANK_ACCOUNT) is already declared",
    );
    assert_reported(
        &d,
        f,
        "/services/admin/aggregates",
        "must be an array of aggregate types",
    );
}

#[test]
fn a_service_schedules_only_under_its_own_name_in_streams_with_schedules() {
    let s = parse(json!({
        "operators": ["ops"],
        "services": {
            "shop": { "publishes": ["order.placed"] },
            "auth": { "publishes": ["user.created"], "consumes": [{ "event": "order.placed" }] }
        }
    }))
    .unwrap();
    let users = s.users();
    let allow = |name: &str| {
        users
            .iter()
            .find(|u| u.name == name)
            .unwrap()
            .permissions
            .as_ref()
            .unwrap()
            .publish_allow
            .clone()
    };
    let schedules = |name: &str| -> Vec<String> {
        allow(name)
            .into_iter()
            .filter(|s| s.starts_with("schedules."))
            .collect()
    };
    assert_eq!(schedules("shop"), ["schedules.ORDERS.shop.>"]);
    // IDENTITY holds no schedules; consuming ORDERS grants none.
    assert_eq!(schedules("auth"), Vec::<String>::new());
    // Never the purge API, which cancelling a schedule used to take.
    let shop = users.iter().find(|u| u.name == "shop").unwrap();
    assert!(
        shop.permissions
            .as_ref()
            .unwrap()
            .publish_deny
            .contains(&"$JS.API.STREAM.PURGE.>".to_string())
    );
}

#[test]
fn a_stream_with_schedules_has_one_publishing_service() {
    // A catalog whose stream with schedules stores two types.
    let dir = tempfile::tempdir().unwrap();
    let schema = |desc: &str| {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": desc,
            "type": "object",
            "properties": { "n": { "description": "A number.", "type": "integer" } },
            "required": ["n"]
        })
    };
    for (domain, name) in [("alpha", "happened"), ("beta", "happened")] {
        std::fs::create_dir_all(dir.path().join(domain)).unwrap();
        std::fs::write(
            dir.path().join(domain).join(format!("{name}.v1.json")),
            schema(&format!("Something {domain} saw.")).to_string(),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("streams.json"),
        json!({
            "catalog": "mixed",
            "streams": { "MIXED": {
                "description": "Two owners, one stream.",
                "subjects": ["events.alpha.>", "events.beta.>"],
                "retention": "limits", "storage": "file", "max_age": "1d", "replicas": 1,
                "duplicate_window": "2m", "allow_msg_schedules": true
            } }
        })
        .to_string(),
    )
    .unwrap();
    let catalog = Catalog::load(dir.path()).expect("the small catalog");
    let doc = json!({
        "operators": ["ops"],
        "services": {
            "one": { "publishes": ["alpha.happened"] },
            "two": { "publishes": ["beta.happened"] }
        }
    });
    let err = Services::parse(Path::new("services.json"), &doc, &catalog)
        .expect_err("two publishers into a stream with schedules");
    let text = err.to_string();
    assert!(
        text.contains("#/services/two/publishes/0")
            && text.contains("`two` publishes `beta.happened` into stream MIXED")
            && text.contains("Nats-Rollup: all"),
        "{text}"
    );
    let alone = json!({
        "operators": ["ops"],
        "services": { "one": { "publishes": ["alpha.happened", "beta.happened"] } }
    });
    let s = Services::parse(Path::new("services.json"), &alone, &catalog).unwrap();
    let one = s.users().into_iter().find(|u| u.name == "one").unwrap();
    let allow = one.permissions.unwrap().publish_allow;
    assert_eq!(
        allow.iter().filter(|s| s.starts_with("schedules.")).count(),
        1,
        "{allow:?}"
    );
}
