//! The OpenAPI document is valid OpenAPI 3.1 by its ecosystem's validator
//! (@apidevtools/swagger-parser, from tools/js), with every event version as a request variant.

mod support;

use std::process::Command;

use support::*;

#[test]
fn the_openapi_document_is_valid_openapi_3_1() {
    let node = require_js(&["@apidevtools/swagger-parser"]);
    let doc = eventhub_gateway::openapi::document(eventhub_catalog::CATALOG);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = Command::new(node)
        .arg(js_dir().join("check-openapi.js"))
        .arg(&file)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "swagger-parser refused the document: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["openapi"], "3.1.0");
    assert!(
        summary["paths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/v1/events"),
        "{summary}"
    );
    // Every event version is a request variant with its data schema as a component.
    for info in eventhub_catalog::CATALOG {
        let name = eventhub_gateway::openapi::component_name(info);
        assert!(
            doc["components"]["schemas"][&name].is_object(),
            "{name} missing"
        );
    }
}

#[test]
fn a_broken_reference_is_caught_by_the_validator() {
    // The check above would be worthless if the validator accepted anything.
    let node = require_js(&["@apidevtools/swagger-parser"]);
    let mut doc = eventhub_gateway::openapi::document(eventhub_catalog::CATALOG);
    doc["components"]["schemas"]["PublishRequest"]["oneOf"][0]["$ref"] =
        "#/components/schemas/Nope".into();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = Command::new(node)
        .arg(js_dir().join("check-openapi.js"))
        .arg(&file)
        .output()
        .expect("run node");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Nope"));
}
