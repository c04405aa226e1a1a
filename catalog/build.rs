//! Generates the organisation's event types from the JSON Schemas in `../schemas/` (or
//! `$EVENTHUB_SCHEMAS_DIR`).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=EVENTHUB_SCHEMAS_DIR");
    let schemas = std::env::var_os("EVENTHUB_SCHEMAS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Err(e) = eventhub_codegen::compile(&schemas, &out.join("events.rs")) {
        // Cargo shows a failed build script's stderr: the diagnostics name file, JSON pointer and
        // what is wrong.
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
