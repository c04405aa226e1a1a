//! `eventhub_codegen::export`: every artifact is checked by its own ecosystem's tool — `tsc
//! --strict`, `@asyncapi/parser`, `protoc`, the `jsonschema` crate, headless Chromium — on the
//! real catalog and on a hostile one.
//!
//! The tools come from `scripts/install-test-tools` (Debian protobuf-compiler and chromium, the
//! npm packages pinned in `tools/js/package-lock.json`); a test fails, naming that script, when
//! one is missing. Artifacts stay in `target/tmp/export/<test>/` for a look after a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use eventhub_codegen::Catalog;
use eventhub_codegen::export::{self, File, Format, Options, ServiceRole};
use serde_json::{Value, json};

mod common;
use common::copy_dir;

const INSTALL: &str = "scripts/install-test-tools";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn js_dir() -> PathBuf {
    repo().join("tools/js")
}

/// A fresh directory for one test's artifacts, kept after the run.
fn out_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("export")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, files: &[File]) {
    for f in files {
        let path = dir.join(&f.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &f.content).unwrap();
    }
}

/// The path of `program` on PATH, or a failure saying how to install it.
#[track_caller]
fn require_program(program: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{program}` is not installed (Debian package {package}): run `{INSTALL}` (as root), \
             or `apt-get update && apt-get install -y {package}`"
        )
    })
}

/// `node` plus the npm packages of tools/js, or a failure saying how to install them.
#[track_caller]
fn require_js() -> PathBuf {
    let node = require_program("node", "nodejs");
    for package in ["typescript", "@asyncapi/parser", "playwright-core"] {
        let dir = js_dir().join("node_modules").join(package);
        assert!(
            dir.join("package.json").is_file(),
            "npm package `{package}` is missing from {}: run `{INSTALL}` (it runs `npm ci` in \
             tools/js)",
            js_dir().display()
        );
    }
    node
}

/// Runs a command and returns its output; fails when it could not start.
fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn catalog() -> Catalog {
    Catalog::load(&repo().join("schemas")).unwrap_or_else(|e| panic!("{e}"))
}

fn fixtures() -> BTreeMap<(String, u32), Vec<Value>> {
    export::load_examples(&repo().join("tests/fixtures/events")).unwrap()
}

fn options() -> Options {
    let headers =
        std::fs::read_to_string(repo().join("sdk/metadata/envelope-headers.schema.json")).unwrap();
    Options {
        envelope_headers: Some(serde_json::from_str(&headers).unwrap()),
        examples: fixtures(),
        ..Options::default()
    }
}

/// `(event type, version, TypeScript name, bundled schema)` of every event.
fn events(catalog: &Catalog) -> Vec<(String, u32, String, Value)> {
    catalog
        .events()
        .into_iter()
        .map(|e| {
            let domain = e.event_type.split('.').next().unwrap();
            let struct_name = e.rust_type.rsplit("::").next().unwrap();
            let name = format!("{}{struct_name}", pascal(domain));
            let schema = catalog.bundled_schema(&e.event_type, e.version).unwrap();
            (e.event_type, e.version, name, schema)
        })
        .collect()
}

fn pascal(s: &str) -> String {
    s.split('-')
        .map(|p| p[..1].to_uppercase() + &p[1..])
        .collect()
}

fn required(schema: &Value) -> Vec<String> {
    schema["required"]
        .as_array()
        .map(|r| r.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// TypeScript

/// `tsc` over `files` in `dir`; returns (success, output).
fn tsc(dir: &Path, files: &[&str], extra: &[&str]) -> (bool, String) {
    let node = require_js();
    let out = run(Command::new(node)
        .arg(js_dir().join("node_modules/typescript/bin/tsc"))
        .args([
            "--strict", "--noEmit", "--pretty", "false", "--target", "es2022", "--lib", "es2022",
            "--module", "commonjs",
        ])
        .args(extra)
        .args(files)
        .current_dir(dir));
    (out.status.success(), text(&out.stdout) + &text(&out.stderr))
}

#[test]
fn typescript_types_pass_tsc_strict_and_type_every_fixture() {
    let dir = out_dir("typescript");
    let catalog = catalog();
    let files = export::export(
        std::slice::from_ref(&catalog),
        Format::TypeScript,
        &options(),
    )
    .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, Path::new("events.ts"));
    write(&dir, &files);

    // The types alone, under the strictest settings a consumer may use.
    let (ok, output) = tsc(
        &dir,
        &["events.ts"],
        &[
            "--exactOptionalPropertyTypes",
            "--noUncheckedIndexedAccess",
            "--noUnusedLocals",
            "--noPropertyAccessFromIndexSignature",
        ],
    );
    assert!(ok, "tsc --strict rejects events.ts:\n{output}");

    // Every fixture instance assigned to its event's type, its family's union, and an envelope.
    let fixtures = fixtures();
    let mut usage = String::from(
        "import type * as ev from \"./events\";\nimport { CATALOG, SUBJECTS, STREAMS } from \"./events\";\n\n",
    );
    let mut count = 0;
    for (event_type, version, name, _) in events(&catalog) {
        let instances = fixtures
            .get(&(event_type.clone(), version))
            .unwrap_or_else(|| panic!("no fixture for {event_type} v{version}"));
        for (i, instance) in instances.iter().enumerate() {
            usage.push_str(&format!(
                "export const {name}_{i}: ev.{name} = {instance};\n"
            ));
            count += 1;
        }
        let family = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let family = family.strip_suffix('V').unwrap();
        usage.push_str(&format!(
            "export const {name}_family: ev.{family} = {name}_0;\n\
             export const {name}_envelope: ev.Envelope<typeof SUBJECTS.{name}> = {{ subject: SUBJECTS.{name}, headers: {{}} as ev.EnvelopeHeaders, data: {name}_0 }};\n"
        ));
    }
    usage.push_str(
        "export const headers: ev.EnvelopeHeaders = {\n  \"Nats-Msg-Id\": \"019a7c3e-5f21-7b4a-9c1d-2e8f4a6b0c3d\",\n  \
         \"ce-correlationid\": \"019a7c3e-5f21-7b4a-9c1d-2e8f4a6b0c3d\",\n  \"ce-dataschema\": \"urn:eventhub:schema:user.created:v2\",\n  \
         \"ce-id\": \"019a7c3e-5f21-7b4a-9c1d-2e8f4a6b0c3d\",\n  \"ce-source\": \"auth\",\n  \"ce-specversion\": \"1.0\",\n  \
         \"ce-time\": \"2026-11-23T10:00:00.123456Z\",\n  \"ce-type\": \"user.created\",\n  \"content-type\": \"application/json\",\n  \
         \"traceparent\": \"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\",\n};\n\
         // The catalog keeps literal types.\n\
         export const firstType: \"audit.created\" = CATALOG[0].type;\n\
         export const subject: \"events.user.created.v2\" = SUBJECTS.UserCreatedV2;\n\
         export const streamNames: readonly string[] = STREAMS.map((s) => s.name);\n",
    );
    std::fs::write(dir.join("usage.ts"), &usage).unwrap();
    let (ok, output) = tsc(&dir, &["events.ts", "usage.ts"], &[]);
    assert!(
        ok,
        "the fixtures do not type-check against the exported types:\n{output}"
    );
    assert!(count >= 30, "only {count} fixture instances");
}

#[test]
fn typescript_types_reject_a_missing_required_field_a_wrong_type_and_an_unknown_enum_value() {
    let dir = out_dir("typescript-negative");
    let catalog = catalog();
    let files = export::export(
        std::slice::from_ref(&catalog),
        Format::TypeScript,
        &options(),
    )
    .unwrap();
    write(&dir, &files);
    let fixtures = fixtures();

    // One case per line, so each error's line number names its case.
    let mut bad = String::from("import type * as ev from \"./events\";\n");
    let mut cases: BTreeMap<usize, (String, Option<String>)> = BTreeMap::new();
    for (event_type, version, name, schema) in events(&catalog) {
        let instance = fixtures[&(event_type.clone(), version)][0].clone();
        let obj = instance.as_object().unwrap();
        let required = required(&schema);
        if let Some(field) = required.first() {
            let mut missing = obj.clone();
            missing.remove(field);
            cases.insert(
                bad.lines().count() + 1,
                (format!("{name} without `{field}`"), Some(field.clone())),
            );
            bad.push_str(&format!(
                "export const {name}_missing: ev.{name} = {};\n",
                Value::Object(missing)
            ));
        }
        if let Some(field) = required.iter().find(|f| obj[f.as_str()].is_string()) {
            let mut wrong = obj.clone();
            wrong.insert(field.clone(), json!(12345));
            cases.insert(
                bad.lines().count() + 1,
                (format!("{name} with a number in `{field}`"), None),
            );
            bad.push_str(&format!(
                "export const {name}_wrong: ev.{name} = {};\n",
                Value::Object(wrong)
            ));
        }
        let enum_field = schema["properties"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(f, p)| p["enum"].is_array() && obj.contains_key(f.as_str()))
            .map(|(f, _)| f.clone());
        if let Some(field) = enum_field {
            let mut odd = obj.clone();
            odd.insert(field.clone(), json!("not-a-member"));
            cases.insert(
                bad.lines().count() + 1,
                (format!("{name} with `{field}` outside its enum"), None),
            );
            bad.push_str(&format!(
                "export const {name}_enum: ev.{name} = {};\n",
                Value::Object(odd)
            ));
        }
    }
    std::fs::write(dir.join("bad.ts"), &bad).unwrap();
    let (ok, output) = tsc(&dir, &["events.ts", "bad.ts"], &[]);
    assert!(!ok, "tsc accepted every wrong payload:\n{bad}");
    let mut errors: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix("bad.ts(") else {
            continue;
        };
        let n: usize = rest.split(',').next().unwrap().parse().unwrap();
        errors.entry(n).or_default().push(line.to_string());
    }
    let enums = cases.values().filter(|(c, _)| c.contains("enum")).count();
    assert!(enums >= 5, "only {enums} enum cases");
    for (line, (case, field)) in &cases {
        let found = errors
            .get(line)
            .unwrap_or_else(|| panic!("tsc accepted {case} (bad.ts line {line}):\n{output}"));
        if let Some(field) = field {
            assert!(
                found.iter().any(|e| e.contains(&format!("'{field}'"))),
                "the error for {case} does not name the field: {found:?}"
            );
        }
    }
    assert_eq!(
        errors.keys().filter(|l| !cases.contains_key(l)).count(),
        0,
        "errors on lines that are not cases:\n{output}"
    );
}

// ---------------------------------------------------------------------------------------------
// AsyncAPI

/// The parser's verdict on a document: (exit success, summary).
fn asyncapi_parse(file: &Path) -> (bool, Value) {
    let node = require_js();
    let out = run(Command::new(node)
        .arg(js_dir().join("check-asyncapi.js"))
        .arg(file));
    let stdout = text(&out.stdout);
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "check-asyncapi.js printed no summary (status {}):\n{stdout}\n{}",
            out.status,
            text(&out.stderr)
        )
    });
    for w in summary["warnings"].as_array().into_iter().flatten() {
        eprintln!("asyncapi warning: {w}");
    }
    (out.status.success(), summary)
}

#[test]
fn asyncapi_document_is_valid_for_the_asyncapi_parser() {
    let dir = out_dir("asyncapi");
    let catalog = catalog();
    let files =
        export::export(std::slice::from_ref(&catalog), Format::AsyncApi, &options()).unwrap();
    assert_eq!(files[0].path, Path::new("asyncapi.json"));
    write(&dir, &files);
    let (ok, summary) = asyncapi_parse(&dir.join("asyncapi.json"));
    assert!(
        ok && summary["errors"].as_array().unwrap().is_empty(),
        "@asyncapi/parser reports errors: {:#}",
        summary["errors"]
    );
    assert_eq!(summary["version"], "3.0.0");
    assert_eq!(
        summary["servers"],
        json!([{ "host": "localhost:4222", "protocol": "nats" }])
    );

    // What the parser understood: a channel per subject with its message, payload and headers.
    let fixtures = fixtures();
    let channels = summary["channels"].as_array().unwrap();
    let all = events(&catalog);
    assert_eq!(channels.len(), all.len());
    for (event_type, version, name, schema) in &all {
        let subject = format!("events.{event_type}.v{version}");
        let channel = channels
            .iter()
            .find(|c| c["address"] == subject.as_str())
            .unwrap_or_else(|| panic!("no channel for {subject}"));
        assert_eq!(channel["id"], name.as_str());
        let messages = channel["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1, "{subject}");
        let m = &messages[0];
        assert_eq!(m["name"], event_type.as_str());
        let payload: Vec<&str> = m["payload"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let expected: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(payload, expected, "{subject}: payload properties");
        for h in ["ce-id", "ce-type", "ce-correlationid", "Nats-Msg-Id"] {
            assert!(
                m["headers"].as_array().unwrap().iter().any(|x| x == h),
                "{subject}: header {h} missing: {}",
                m["headers"]
            );
        }
        assert_eq!(
            m["examples"],
            fixtures[&(event_type.clone(), *version)].len(),
            "{subject}: examples"
        );
        for action in ["send", "receive"] {
            let op = summary["operations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["action"] == action && o["channels"] == json!([subject]))
                .unwrap_or_else(|| panic!("no {action} operation for {subject}"));
            assert_eq!(op["nats"], true, "{subject}: NATS binding");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// protobuf

/// `protoc` on `events.proto` in `dir`; returns (success, output).
fn protoc(dir: &Path) -> (bool, String) {
    let protoc = require_program("protoc", "protobuf-compiler");
    let out = run(Command::new(protoc)
        .arg(format!("--proto_path={}", dir.display()))
        .arg(format!(
            "--descriptor_set_out={}",
            dir.join("events.pb").display()
        ))
        .arg("events.proto")
        .current_dir(dir));
    (out.status.success(), text(&out.stdout) + &text(&out.stderr))
}

#[test]
fn proto_file_compiles_with_protoc() {
    let dir = out_dir("proto");
    let catalog = catalog();
    let files = export::export(std::slice::from_ref(&catalog), Format::Proto, &options()).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, Path::new("events.proto"));
    write(&dir, &files);
    let (ok, output) = protoc(&dir);
    assert!(ok, "protoc rejects events.proto:\n{output}");
    let descriptors = std::fs::read(dir.join("events.pb")).unwrap();
    assert!(!descriptors.is_empty());
    for (_, _, name, _) in events(&catalog) {
        assert!(
            files[0].content.contains(&format!("\nmessage {name} {{\n")),
            "no message {name}"
        );
        // Descriptor sets carry message names as plain bytes.
        assert!(
            descriptors
                .windows(name.len())
                .any(|w| w == name.as_bytes()),
            "{name} is not in protoc's descriptor set"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// JSON Schema

#[test]
fn json_schemas_are_valid_and_accept_their_fixtures() {
    let dir = out_dir("jsonschema");
    let catalog = catalog();
    let files = export::export(
        std::slice::from_ref(&catalog),
        Format::JsonSchema,
        &options(),
    )
    .unwrap();
    write(&dir, &files);
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let entries = index["events"].as_array().unwrap();
    let all = events(&catalog);
    assert_eq!(entries.len(), all.len());
    let headers: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(index["envelope_headers"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(headers, options().envelope_headers.unwrap());
    let fixtures = fixtures();
    for entry in catalog.events() {
        let listed = entries
            .iter()
            .find(|x| x["type"] == entry.event_type.as_str() && x["version"] == entry.version)
            .unwrap_or_else(|| panic!("{} v{} not in index.json", entry.event_type, entry.version));
        assert_eq!(listed["subject"], entry.subject.as_str());
        assert_eq!(listed["stream"], entry.stream.as_str());
        let file = dir.join(listed["file"].as_str().unwrap());
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(listed["schema_id"], schema["$id"]);
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("{}: not a valid JSON Schema: {e}", file.display());
        }
        let validator = jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{}: does not compile: {e}", file.display()));
        let instances = &fixtures[&(entry.event_type.clone(), entry.version)];
        for (i, instance) in instances.iter().enumerate() {
            if let Err(e) = validator.validate(instance) {
                panic!(
                    "{}: fixture #{i} of {} v{} is rejected: {e}",
                    file.display(),
                    entry.event_type,
                    entry.version
                );
            }
        }
        // The schema constrains something: without a required field the fixture fails.
        if let Some(field) = required(&schema).first() {
            let mut missing = instances[0].clone();
            missing.as_object_mut().unwrap().remove(field);
            assert!(
                !validator.is_valid(&missing),
                "{}: accepts a payload without `{field}`",
                file.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTML

/// Renders a page in headless Chromium: what the DOM holds, console errors, requests.
fn chromium(page: &Path, filters: &[&str]) -> Value {
    let node = require_js();
    let browser = Path::new("/usr/bin/chromium");
    assert!(
        browser.is_file(),
        "Debian's chromium is not installed: run `{INSTALL}` (as root), or `apt-get update && \
         apt-get install -y chromium`"
    );
    let out = run(Command::new(node)
        .arg(js_dir().join("check-html.js"))
        .arg(page)
        .args(filters));
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "check-html.js failed ({}):\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

fn services() -> Vec<ServiceRole> {
    vec![
        ServiceRole {
            service: "auth".into(),
            publishes: vec!["user.created".into(), "auth.login@v1".into()],
            consumes: vec![],
        },
        ServiceRole {
            service: "profile".into(),
            publishes: vec![],
            consumes: vec!["user.created@v2".into()],
        },
        ServiceRole {
            service: "payments".into(),
            publishes: vec!["events.payment.>".into()],
            consumes: vec!["events.user.created.*".into()],
        },
    ]
}

#[test]
fn html_page_shows_every_event_in_chromium_without_errors() {
    let dir = out_dir("html");
    let catalog = catalog();
    let options = Options {
        services: Some(services()),
        ..options()
    };
    let files = export::export(std::slice::from_ref(&catalog), Format::Html, &options).unwrap();
    assert_eq!(files[0].path, Path::new("index.html"));
    write(&dir, &files);
    let page = chromium(
        &dir.join("index.html"),
        &["order.placed", "identity", "line_items", "no-such-event"],
    );
    assert_eq!(page["consoleErrors"], json!([]), "console errors");
    assert_eq!(page["pageErrors"], json!([]), "page errors");
    assert_eq!(page["requests"], json!([]), "the page loaded something");
    assert_eq!(page["pwned"], Value::Null);
    assert_eq!(page["scripts"], 1);

    let shown = page["events"].as_array().unwrap();
    let all = events(&catalog);
    assert_eq!(shown.len(), all.len());
    let fixtures = fixtures();
    let mut sensitive = 0;
    for (event_type, version, _, schema) in &all {
        let id = format!("{event_type}@v{version}");
        let e = shown
            .iter()
            .find(|e| e["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} is not on the page"));
        assert_eq!(e["type"], event_type.as_str());
        assert_eq!(e["version"], *version);
        assert_eq!(
            e["heading"],
            format!("{event_type} v{version}").as_str(),
            "{id}"
        );
        assert_eq!(
            e["subject"],
            format!("events.{event_type}.v{version}").as_str()
        );
        let entry = catalog
            .events()
            .into_iter()
            .find(|x| &x.event_type == event_type && x.version == *version)
            .unwrap();
        assert_eq!(e["stream"], entry.stream.as_str());
        assert_eq!(e["description"], schema["description"]);
        let paths: Vec<&str> = e["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        for (name, prop) in schema["properties"].as_object().unwrap() {
            assert!(paths.contains(&name.as_str()), "{id}: no field {name}");
            let row = &e["fields"][paths.iter().position(|p| p == name).unwrap()];
            let is_required = required(schema).contains(name);
            assert_eq!(
                row["cells"][2],
                if is_required { "yes" } else { "no" },
                "{id}.{name}"
            );
            if prop["x-sensitive"] == true {
                sensitive += 1;
                assert!(
                    e["sensitive"].as_array().unwrap().iter().any(|s| s == name),
                    "{id}.{name} is x-sensitive but not marked"
                );
            }
        }
        let example: Value = serde_json::from_str(e["examples"][0].as_str().unwrap()).unwrap();
        assert_eq!(
            example,
            fixtures[&(event_type.clone(), *version)][0],
            "{id}"
        );
    }
    assert!(sensitive > 0, "no x-sensitive field checked");

    let created = |v: u32| {
        shown
            .iter()
            .find(|e| e["id"] == format!("user.created@v{v}").as_str())
            .unwrap()
    };
    assert_eq!(created(1)["publishers"], "auth");
    assert_eq!(created(1)["consumers"], "payments");
    assert_eq!(created(2)["consumers"], "payments, profile");
    let login = shown.iter().find(|e| e["id"] == "auth.login@v1").unwrap();
    assert_eq!(login["consumers"], "none declared");
    assert_eq!(page["services"].as_array().unwrap().len(), 3);

    let filters = &page["filters"];
    assert_eq!(filters["order.placed"], 1);
    assert_eq!(
        filters["identity"],
        catalog
            .events()
            .iter()
            .filter(|e| e.stream == "IDENTITY")
            .count()
    );
    assert_eq!(filters["line_items"], 1);
    assert_eq!(filters["no-such-event"], 0);
}

#[test]
fn html_page_without_declared_services_says_so() {
    let dir = out_dir("html-undeclared");
    let files = export::export(&[catalog()], Format::Html, &options()).unwrap();
    write(&dir, &files);
    let page = chromium(&dir.join("index.html"), &[]);
    assert_eq!(page["consoleErrors"], json!([]));
    for e in page["events"].as_array().unwrap() {
        assert_eq!(
            e["services"], "Publishers and consumers: not declared.",
            "{}",
            e["id"]
        );
        assert_eq!(e["publishers"], Value::Null);
    }
}

// ---------------------------------------------------------------------------------------------
// A hostile catalog: schema text is untrusted input.

const SCRIPT_IN_DESCRIPTION: &str = "</p><script>window.__pwned='description'</script>\
<img src=x onerror=\"window.__pwned='img'\"> */ not code /* \u{2028} -->";
const PROPERTY_NAME: &str = "\"><svg onload=\"window.__pwned='property'\">";
const ENUM_VALUE: &str = "</pre><script>window.__pwned='enum'</script>";

fn hostile_catalog(root: &Path) -> Catalog {
    let schemas = root.join("schemas");
    std::fs::create_dir_all(schemas.join("evil")).unwrap();
    std::fs::write(
        schemas.join("streams.json"),
        json!({"streams": {"EVIL": {
            "description": "<img src=x onerror=\"window.__pwned='stream'\">",
            "subjects": ["events.evil.>"],
            "retention": "limits", "storage": "file", "max_age": "1d", "replicas": 1,
            "duplicate_window": "2m"
        }}})
        .to_string(),
    )
    .unwrap();
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": SCRIPT_IN_DESCRIPTION,
        "type": "object",
        "properties": {
            PROPERTY_NAME: {"type": "string", "description": "<script>window.__pwned='prop'</script>"},
            "kind": {"type": "string", "enum": ["<b>bold</b>", ENUM_VALUE], "description": "*/ }; export const x = 1; /*"},
            "note": {"type": "string", "pattern": "^</td><script>window.__pwned='pattern'</script>$"}
        },
        "required": ["kind"],
        "examples": [{"kind": ENUM_VALUE, "note": "</pre><script>window.__pwned='example'</script>"}]
    });
    std::fs::write(
        schemas.join("evil/thing.v1.json"),
        serde_json::to_string_pretty(&schema).unwrap(),
    )
    .unwrap();
    Catalog::load(&schemas).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn hostile_schema_text_stays_text_in_every_format() {
    let dir = out_dir("hostile");
    let catalog = hostile_catalog(&dir);
    let options = Options {
        services: Some(vec![ServiceRole {
            service: "<script>window.__pwned='service'</script>".into(),
            publishes: vec!["evil.thing".into()],
            consumes: vec![],
        }]),
        title: "<script>window.__pwned='title'</script>".into(),
        ..options()
    };
    let files = export::export_all(std::slice::from_ref(&catalog), &options).unwrap();
    let out = dir.join("out");
    write(&out, &files);

    let page = chromium(&out.join("html/index.html"), &[]);
    assert_eq!(page["pwned"], Value::Null, "a script from the schemas ran");
    assert_eq!(
        page["scripts"], 1,
        "markup from the schemas became elements"
    );
    assert_eq!(
        page["injected"], 0,
        "markup from the schemas became elements"
    );
    assert_eq!(page["consoleErrors"], json!([]));
    assert_eq!(page["title"], "<script>window.__pwned='title'</script>");
    let e = &page["events"][0];
    assert_eq!(e["description"], SCRIPT_IN_DESCRIPTION);
    let paths: Vec<&str> = e["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&PROPERTY_NAME), "{paths:?}");
    let example: Value = serde_json::from_str(e["examples"][0].as_str().unwrap()).unwrap();
    assert_eq!(example["kind"], ENUM_VALUE);
    assert_eq!(e["publishers"], "<script>window.__pwned='service'</script>");

    // The other formats stay well-formed for their tools.
    let ts = out.join("typescript");
    std::fs::write(
        ts.join("usage.ts"),
        format!(
            "import type {{ EvilThingV1 }} from \"./events\";\n\
             export const ok: EvilThingV1 = {{ kind: {} }};\n",
            Value::from(ENUM_VALUE)
        ),
    )
    .unwrap();
    let (ok, output) = tsc(&ts, &["events.ts", "usage.ts"], &[]);
    assert!(ok, "tsc rejects the hostile catalog's types:\n{output}");
    let (ok, summary) = asyncapi_parse(&out.join("asyncapi/asyncapi.json"));
    assert!(ok, "@asyncapi/parser: {:#}", summary["errors"]);
    let (ok, output) = protoc(&out.join("proto"));
    assert!(ok, "protoc rejects the hostile catalog:\n{output}");
}

// ---------------------------------------------------------------------------------------------
// Several catalogs, and the declaration of services, without tools.

/// A team catalog beside the org's: one event, and a copy of the org's `Money`.
fn team_catalog(root: &Path, money: Option<Value>) -> PathBuf {
    let schemas = root.join("team");
    std::fs::create_dir_all(schemas.join("shipping")).unwrap();
    std::fs::create_dir_all(schemas.join("shared")).unwrap();
    std::fs::copy(
        repo().join("schemas/shared/money.json"),
        schemas.join("shared/money.json"),
    )
    .unwrap();
    if let Some(money) = money {
        std::fs::write(
            schemas.join("shared/money.json"),
            json!({"$defs": {"Money": money}}).to_string(),
        )
        .unwrap();
    }
    std::fs::write(
        schemas.join("streams.json"),
        json!({"streams": {"SHIPPING": {
            "subjects": ["events.shipping.>"],
            "retention": "limits", "storage": "file", "max_age": "30d", "replicas": 1,
            "duplicate_window": "2m"
        }}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        schemas.join("shipping/dispatched.v1.json"),
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
    schemas
}

#[test]
fn catalogs_exported_together_are_merged_and_must_agree() {
    let dir = out_dir("merged");
    let org = catalog();
    let team = Catalog::load(&team_catalog(&dir, None)).unwrap();
    let files = export::export_all(&[org.clone(), team], &options()).unwrap();
    let content = |p: &str| {
        &files
            .iter()
            .find(|f| f.path == Path::new(p))
            .unwrap_or_else(|| panic!("no {p}"))
            .content
    };
    assert!(content("typescript/events.ts").contains("export interface ShippingDispatchedV1 {"));
    assert_eq!(
        content("typescript/events.ts")
            .matches("export interface Money {")
            .count(),
        1
    );
    assert!(content("proto/events.proto").contains("message ShippingDispatchedV1 {"));
    assert!(
        content("asyncapi/asyncapi.json")
            .contains("\"address\": \"events.shipping.dispatched.v1\"")
    );
    assert!(content("jsonschema/index.json").contains("shipping.dispatched.v1.json"));
    assert!(content("html/index.html").contains("id=\"shipping.dispatched@v1\""));
    assert_eq!(
        files
            .iter()
            .map(|f| f.path.iter().next().unwrap().to_str().unwrap())
            .collect::<std::collections::BTreeSet<_>>(),
        ["asyncapi", "html", "jsonschema", "proto", "typescript"].into()
    );

    // A shared definition that differs between the catalogs is reported, with both files.
    let other = out_dir("merged-conflict");
    let team = Catalog::load(&team_catalog(
        &other,
        Some(json!({"type": "object", "properties": {"cents": {"type": "integer"}}})),
    ))
    .unwrap();
    let err = export::export(&[org.clone(), team], Format::TypeScript, &options()).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("definition `Money` differs") && shown.contains("money.json"),
        "{shown}"
    );

    // The same event version in both: reported.
    let twice = out_dir("merged-twice");
    copy_dir(&repo().join("schemas"), &twice.join("schemas"));
    let again = Catalog::load(&twice.join("schemas")).unwrap();
    let err = export::export(&[org, again], Format::Html, &options()).unwrap_err();
    assert!(
        err.to_string()
            .contains("user.created v1 is also defined by"),
        "{err}"
    );
}

#[test]
fn a_service_entry_that_matches_no_event_is_an_error() {
    let options = Options {
        services: Some(vec![ServiceRole {
            service: "auth".into(),
            publishes: vec!["user.craeted".into()],
            consumes: vec!["user.created@v9".into()],
        }]),
        ..options()
    };
    let err = export::export(&[catalog()], Format::Html, &options).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("`user.craeted`") && shown.contains("`user.created@v9`"),
        "{shown}"
    );
    assert_eq!(err.diagnostics().len(), 2);
}

#[test]
fn formats_have_names() {
    for f in Format::ALL {
        assert_eq!(f.name().parse::<Format>().unwrap(), f);
    }
    assert!(
        "yaml"
            .parse::<Format>()
            .unwrap_err()
            .to_string()
            .contains("typescript, asyncapi, proto, jsonschema, html")
    );
}

/// Requests are not events: every format leaves the catalog's `user.lookup` pair out, while its
/// events are there.
#[test]
fn exports_leave_request_response_pairs_out() {
    let catalog = catalog();
    let files = export::export_all(std::slice::from_ref(&catalog), &options()).unwrap();
    let all: String = files.iter().map(|f| f.content.as_str()).collect();
    assert!(all.contains("user.created"), "the events are exported");
    for needle in ["lookup", "Lookup", "rpc.user"] {
        let hit: Vec<_> = files
            .iter()
            .filter(|f| f.content.contains(needle))
            .map(|f| f.path.display().to_string())
            .collect();
        assert!(hit.is_empty(), "`{needle}` exported in {hit:?}");
    }
}
