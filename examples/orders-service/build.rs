//! Generates this repository's event types from `schemas/`; `$ref`s to `org:…` name the
//! organisation's catalog, found through the `eventhub-catalog` dependency (not copied).

use eventhub_codegen::{Config, ExternCatalog};

fn main() {
    let generated = Config::new()
        .schemas("schemas")
        .extern_catalog(ExternCatalog::dependency("eventhub-catalog"))
        .builders(true)
        .compile();
    if let Err(e) = generated {
        // Names the file, the JSON pointer and what is wrong.
        eprintln!("{e}");
        std::process::exit(1);
    }
}
