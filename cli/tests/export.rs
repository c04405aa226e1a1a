//! `eventhub schemas export` and `--schemas DIR` for `schemas list|show`: the real binary on the
//! repository's catalog and on a team catalog beside it. (The artifacts themselves are checked
//! by their ecosystems' tools in `codegen/tests/export.rs`.)

mod common;

use common::Run;
use std::path::{Path, PathBuf};

use eventhub_catalog::events::{CATALOG, PROTO_FILE};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Runs `eventhub` in `cwd` with `env` set and no catalog variables inherited.
fn eventhub(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    Run::of(
        common::eventhub()
            .current_dir(cwd)
            .args(args)
            .envs(env.iter().copied()),
    )
}

fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli-export")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A team's own catalog: one event, its own stream, a copy of the org's `Money`.
fn team_catalog(root: &Path) -> PathBuf {
    let dir = root.join("team-schemas");
    std::fs::create_dir_all(dir.join("shipping")).unwrap();
    std::fs::create_dir_all(dir.join("shared")).unwrap();
    std::fs::copy(
        repo().join("schemas/shared/money.json"),
        dir.join("shared/money.json"),
    )
    .unwrap();
    std::fs::write(
        dir.join("streams.json"),
        json!({"streams": {"SHIPPING": {
            "subjects": ["events.shipping.>"], "retention": "limits", "storage": "file",
            "max_age": "30d", "replicas": 1, "duplicate_window": "2m"
        }}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("shipping/dispatched.v1.json"),
        json!({
            "description": "A parcel left the warehouse.",
            "type": "object",
            "properties": {
                "carrier": {"type": "string"},
                "cost": {"$ref": "../shared/money.json#/$defs/Money"}
            },
            "required": ["carrier", "cost"]
        })
        .to_string(),
    )
    .unwrap();
    dir
}

#[test]
fn export_all_writes_every_format_of_the_repository_catalog() {
    let out = tempdir("all");
    let out_s = out.to_str().unwrap();
    // No --schemas: the repository's schemas/, found from the working directory.
    let run = eventhub(
        &repo(),
        &[],
        &[
            "schemas",
            "export",
            "--out",
            out_s,
            "--examples",
            "tests/fixtures/events",
        ],
    )
    .ok();
    assert!(
        run.stdout.contains("written, 0 unchanged"),
        "{}",
        run.stdout
    );

    // The .proto is exactly what the SDK was built with.
    assert_eq!(read(&out.join("proto/events.proto")), PROTO_FILE);
    // Each JSON Schema is the one compiled into the catalog.
    let index: Value = serde_json::from_str(&read(&out.join("jsonschema/index.json"))).unwrap();
    assert_eq!(index["events"].as_array().unwrap().len(), CATALOG.len());
    for info in CATALOG {
        let file = out.join(format!(
            "jsonschema/{}.v{}.json",
            info.event_type, info.version
        ));
        let exported: Value = serde_json::from_str(&read(&file)).unwrap();
        let compiled: Value = serde_json::from_str(info.schema).unwrap();
        assert_eq!(exported, compiled, "{}", file.display());
    }
    let headers: Value =
        serde_json::from_str(&read(&out.join("jsonschema/envelope-headers.schema.json"))).unwrap();
    assert_eq!(headers, eventhub::metadata::envelope_headers_schema());
    let ts = read(&out.join("typescript/events.ts"));
    assert!(ts.contains("export interface UserCreatedV2 {"));
    assert!(
        ts.contains("\"ce-correlationid\"?: string;"),
        "headers typed"
    );
    let asyncapi: Value = serde_json::from_str(&read(&out.join("asyncapi/asyncapi.json"))).unwrap();
    assert_eq!(asyncapi["asyncapi"], "3.0.0");
    assert_eq!(
        asyncapi["channels"]["UserCreatedV2"]["address"],
        "events.user.created.v2"
    );
    assert!(
        asyncapi["components"]["messages"]["UserCreatedV2"]["examples"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "examples from --examples"
    );
    let html = read(&out.join("html/index.html"));
    assert!(html.contains("id=\"user.created@v2\""));

    // Again: nothing changed, nothing written.
    let again = eventhub(
        &repo(),
        &[],
        &[
            "schemas",
            "export",
            "--out",
            out_s,
            "--json",
            "--examples",
            "tests/fixtures/events",
        ],
    )
    .ok()
    .json();
    assert_eq!(again["files"].as_array().unwrap().len(), 43);
    assert_eq!(again["written"], json!([]));
}

#[test]
fn export_and_list_read_any_catalog_given_by_flag_or_environment() {
    let root = tempdir("any");
    let team = team_catalog(&root);
    let org = repo().join("schemas");
    let (team_s, org_s) = (team.to_str().unwrap(), org.to_str().unwrap());

    // One format, from two catalogs merged.
    let out = root.join("ts");
    eventhub(
        &root,
        &[],
        &[
            "schemas",
            "export",
            "--format",
            "typescript",
            "--out",
            out.to_str().unwrap(),
            "--schemas",
            org_s,
            "--schemas",
            team_s,
        ],
    )
    .ok();
    let ts = read(&out.join("events.ts"));
    assert!(ts.contains("export interface ShippingDispatchedV1 {"));
    assert!(ts.contains("export interface UserCreatedV2 {"));
    assert!(!out.join("proto").exists(), "only the format asked for");

    // The same through EVENTHUB_SCHEMAS (separated like PATH), from a directory without schemas/.
    let out = root.join("env");
    let both = std::env::join_paths([&org, &team]).unwrap();
    eventhub(
        &root,
        &[("EVENTHUB_SCHEMAS", both.to_str().unwrap())],
        &[
            "schemas",
            "export",
            "--format",
            "proto",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(read(&out.join("events.proto")).contains("message ShippingDispatchedV1 {"));

    // list and show read it too.
    let list = eventhub(
        &root,
        &[],
        &["schemas", "list", "--schemas", team_s, "--json"],
    )
    .ok()
    .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["event_type"], "shipping.dispatched");
    assert_eq!(list[0]["stream"], "SHIPPING");
    assert_eq!(
        list[0]["schema_id"],
        "urn:eventhub:schema:shipping.dispatched:v1"
    );
    let shown = eventhub(
        &root,
        &[("EVENTHUB_SCHEMAS", team_s)],
        &["schemas", "show", "shipping.dispatched", "--json"],
    )
    .ok()
    .json();
    assert_eq!(shown["$defs"]["Money"]["type"], "object");
    eventhub(
        &root,
        &[],
        &["schemas", "show", "user.created", "--schemas", team_s],
    )
    .fails(1, "no event `user.created`");
    // Without a catalog given, list is still the compiled-in one.
    let builtin = eventhub(&root, &[], &["schemas", "list", "--json"])
        .ok()
        .json();
    assert_eq!(builtin.as_array().unwrap().len(), CATALOG.len());
}

#[test]
fn export_refuses_bad_input_with_a_clear_error() {
    let root = tempdir("bad");
    let out = root.join("out");
    let out_s = out.to_str().unwrap();
    let org = repo().join("schemas");
    let org_s = org.to_str().unwrap();

    eventhub(&root, &[], &["schemas", "export", "--out", out_s])
        .fails(1, "no catalog directory schemas here: pass --schemas DIR");
    eventhub(
        &root,
        &[],
        &["schemas", "export", "--format", "yaml", "--out", out_s],
    )
    .fails(2, "typescript, asyncapi, proto, jsonschema, html, all");
    eventhub(
        &root,
        &[],
        &[
            "schemas",
            "export",
            "--schemas",
            org_s,
            "--out",
            out_s,
            "--asyncapi-server",
            "nats://ops:secret@nats.internal:4222",
        ],
    )
    .fails(1, "leave credentials out");

    // An example that does not match its schema is named, with where it fails.
    let examples = root.join("examples");
    std::fs::create_dir_all(&examples).unwrap();
    std::fs::write(
        examples.join("user.created.v2.json"),
        json!([{"user_id": "0190a000-0000-7000-8000-000000000002", "email": "a@b.c", "created_at": "2026-11-23T10:00:00Z"}])
            .to_string(),
    )
    .unwrap();
    eventhub(
        &root,
        &[],
        &[
            "schemas",
            "export",
            "--schemas",
            org_s,
            "--out",
            out_s,
            "--examples",
            examples.to_str().unwrap(),
        ],
    )
    .fails(1, "user.created.v2.json #0: not a valid user.created v2");
    std::fs::write(examples.join("user.created.v2.json"), "[]").unwrap();
    std::fs::write(examples.join("user.craeted.v1.json"), "[]").unwrap();
    eventhub(
        &root,
        &[],
        &[
            "schemas",
            "export",
            "--schemas",
            org_s,
            "--out",
            out_s,
            "--examples",
            examples.to_str().unwrap(),
        ],
    )
    .fails(1, "no event user.craeted v1 in the catalog");
    assert!(!out.exists(), "nothing is written when the input is bad");
}

/// `--schemas` makes publish, tail and dlq read a team's catalog at run time: the CLI publishes
/// (validated) and tails an event the binary was not built with.
#[test]
fn publish_and_tail_an_event_of_a_catalog_given_at_run_time() {
    let root = tempdir("runtime");
    let team = team_catalog(&root);
    let team_s = team.to_str().unwrap();
    let server = eventhub_testkit::NatsServer::start();
    let url = server.client_url();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "SHIPPING".into(),
            subjects: vec!["events.shipping.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    });
    let at = |args: &[&str]| {
        let mut all = vec!["--server", url.as_str(), "--schemas", team_s];
        all.extend_from_slice(args);
        eventhub(&root, &[], &all)
    };
    let payload = r#"{"carrier":"DHL","cost":{"amount_minor":500,"currency":"EUR"}}"#;
    let published = at(&["publish", "shipping.dispatched", payload, "--json"])
        .ok()
        .json();
    assert_eq!(published["stream"], "SHIPPING");
    assert_eq!(published["subject"], "events.shipping.dispatched.v1");
    // Validated against the team's schema, every problem named.
    at(&["publish", "shipping.dispatched", r#"{"carrier":5}"#]).fails(1, "carrier");
    // The compiled-in catalog does not know it.
    eventhub(
        &root,
        &[],
        &["--server", &url, "publish", "shipping.dispatched", payload],
    )
    .fails(1, "unknown event type `shipping.dispatched`");

    let tailed = at(&[
        "tail",
        "shipping.dispatched",
        "--since",
        "1h",
        "--count",
        "1",
        "--json",
    ])
    .ok();
    let line: Value = serde_json::from_str(tailed.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["data"]["carrier"], "DHL", "{line}");
    assert_eq!(line["id"], published["id"], "{line}");
}
