//! Golden tests: fixture catalogs -> checked-in Rust source. Run with `EVENTHUB_BLESS=1` to
//! rewrite the goldens after an intended change; `eventhub`'s test `goldens_compile` builds them.

use std::path::Path;

fn check(case: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let generated = eventhub_codegen::Config::new()
        .generate(&root.join("fixtures").join(case))
        .unwrap_or_else(|e| panic!("fixture {case} should be valid:\n{e}"));
    let golden = root.join("golden").join(format!("{case}.rs"));
    if std::env::var_os("EVENTHUB_BLESS").is_some() {
        std::fs::write(&golden, &generated).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with EVENTHUB_BLESS=1 to create it",
            golden.display()
        )
    });
    if expected != generated {
        let first = expected
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(generated.lines().count()));
        panic!(
            "{} differs from the generated code, first at line {}:\n  golden:    {:?}\n  generated: {:?}\n\
             Run with EVENTHUB_BLESS=1 to accept the new output.",
            golden.display(),
            first + 1,
            expected.lines().nth(first),
            generated.lines().nth(first),
        );
    }
}

#[test]
fn catalog_fixture_matches_its_golden() {
    check("catalog");
}

#[test]
fn generation_is_deterministic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catalog");
    let a = eventhub_codegen::Config::new().generate(&dir).unwrap();
    let b = eventhub_codegen::Config::new().generate(&dir).unwrap();
    assert_eq!(a, b);
}
