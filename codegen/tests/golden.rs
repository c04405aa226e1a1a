//! Golden tests, compared with `expectorate`: the fixture catalog -> `tests/golden/catalog.rs`
//! (which `eventhub`'s test `goldens_compile` builds), and one golden per schema shape, like
//! typify's: `tests/shapes/<shape>.json` (one event in a catalog of its own) ->
//! `tests/shapes/<shape>.rs`. After an intended change, accept the new output with
//! `EXPECTORATE=overwrite cargo test -p eventhub-codegen --test golden` and review the diff.

use std::path::Path;

fn generate(case: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case);
    eventhub_codegen::Config::new()
        .generate(&dir)
        .unwrap_or_else(|e| panic!("fixture {case} should be valid:\n{e}"))
}

#[test]
fn catalog_fixture_matches_its_golden() {
    expectorate::assert_contents("tests/golden/catalog.rs", &generate("catalog"));
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(generate("catalog"), generate("catalog"));
}

/// The streams of a one-event shape catalog.
const SHAPE_STREAMS: &str = r#"{
  "streams": {
    "SHAPES": {
      "description": "One event per schema shape.",
      "subjects": ["events.shapes.>"],
      "retention": "limits",
      "storage": "file",
      "max_age": "1d",
      "replicas": 1,
      "duplicate_window": "2m",
      "max_msg_size": 65536
    }
  }
}
"#;

#[test]
fn every_schema_shape_matches_its_golden() {
    let shapes = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/shapes");
    let mut names: Vec<String> = std::fs::read_dir(&shapes)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 7, "{names:?}");
    for name in names {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("streams.json"), SHAPE_STREAMS).unwrap();
        std::fs::create_dir(dir.path().join("shapes")).unwrap();
        std::fs::copy(
            shapes.join(format!("{name}.json")),
            dir.path().join(format!("shapes/{name}.v1.json")),
        )
        .unwrap();
        let generated = eventhub_codegen::Config::new()
            .generate(dir.path())
            .unwrap_or_else(|e| panic!("shape {name} should be valid:\n{e}"));
        expectorate::assert_contents(format!("tests/shapes/{name}.rs"), &generated);
    }
}
