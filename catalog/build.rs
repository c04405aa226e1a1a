//! Generates the organisation's event types from the JSON Schemas in `../schemas/` (or
//! `$EVENTHUB_SCHEMAS_DIR`), and the signing keys its declaration of services lists.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=EVENTHUB_SCHEMAS_DIR");
    let schemas = std::env::var_os("EVENTHUB_SCHEMAS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Err(e) = eventhub_codegen::compile(&schemas, &out.join("events.rs"))
        .and_then(|_| signing_keys(&schemas, &out.join("signing.rs")))
    {
        // Cargo shows a failed build script's stderr: the diagnostics name file, JSON pointer and
        // what is wrong.
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// `SIGNING_KEYS`: each service with declared nkeys and its public keys; `PUBLISHERS`: each
/// declared event type and its publishing service.
fn signing_keys(schemas: &Path, out: &Path) -> Result<bool, eventhub_codegen::Error> {
    let catalog = eventhub_codegen::Catalog::load(schemas)?;
    let services = eventhub_codegen::services::Services::load(schemas, &catalog)?;
    let mut code = String::from(
        "/// The services that sign their events and their public keys (`nkeys` of the \
         declaration of services).\npub const SIGNING_KEYS: &[(&str, &[&str])] = &[\n",
    );
    for (service, keys) in services.iter().flat_map(|s| s.signing_keys()) {
        let _ = writeln!(code, "    ({service:?}, &{keys:?}),");
    }
    code.push_str("];\n");
    code.push_str(
        "/// Each declared event type and the service that publishes it (`publishes` of the \
         declaration of services).\npub const PUBLISHERS: &[(&str, &str)] = &[\n",
    );
    for service in services.iter().flat_map(|s| &s.services) {
        for p in &service.publishes {
            let _ = writeln!(code, "    ({:?}, {:?}),", p.event_type, service.name);
        }
    }
    code.push_str("];\n");
    eventhub_codegen::write_if_changed(out, &code)
}
