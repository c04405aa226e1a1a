//! Build-time code generation for eventhub.
//!
//! The JSON Schemas under `schemas/` are the single source of truth for every event. This crate
//! reads them, validates them strictly (a problem is reported with the file, the JSON pointer and
//! what is wrong — never a panic), bundles cross-file references, and generates Rust:
//!
//! - per event version a serde struct (`events::user::CreatedV1`) implementing `Event`
//!   (type, version, subject, schema id, stream, and the fields marked `x-sensitive`, which the
//!   SDK encrypts: plain strings only, checked here) and `Consumable`;
//! - per event family an enum over its versions (`events::user::Created::{V1, V2}`);
//! - per domain a `subjects` module of constants; a `CATALOG` of every event with its bundled
//!   schema, and the `STREAMS` declared in `schemas/streams.json`;
//! - per event version its protobuf messages (the `descriptors` module, `Event::PROTO`), with
//!   field numbers that stay stable across compatible changes ([`proto`]), the `.proto` text of
//!   the catalog (`PROTO_FILE`), and `for_each_event`, which visits every event type.
//!
//! Beside the catalog, [`services`] reads the declaration of services (`schemas/services.json`:
//! who publishes and who consumes which events) and renders the NATS permissions from it
//! ([`services::nats`]); [`compile`] rejects a declaration that does not fit the catalog.
//!
//! Layout of the catalog:
//!
//! ```text
//! schemas/
//!   streams.json                 stream topology
//!   services.json                who publishes and consumes what (optional)
//!   shared/money.json            shared definitions ($defs only), referenced from events
//!   user/created.v1.json         event `user.created` version 1, subject events.user.created.v1
//!   photo/processing/started.v1.json   event `photo.processing.started` version 1
//! ```
//!
//! Use it from a build script:
//!
//! ```no_run
//! // build.rs
//! let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
//! if let Err(e) = eventhub_codegen::compile("../schemas".as_ref(), &out.join("events.rs")) {
//!     eprintln!("{e}");
//!     std::process::exit(1);
//! }
//! ```
//! and include the result with `include!(concat!(env!("OUT_DIR"), "/events.rs"))`.

mod catalog;
pub mod compat;
mod diagnostic;
pub mod export;
mod generate;
mod guard;
mod naming;
pub mod proto;
pub mod release;
mod sensitive;
pub mod services;
mod topology;
mod validate;

use std::path::Path;

pub use catalog::{Catalog, EventEntry};
pub use diagnostic::{Diagnostic, Error};
pub use naming::{SERVICES_FILE, SHARED_DIR, SUBJECT_PREFIX, TOPOLOGY_FILE};
pub use proto::{FieldNumbers, assign_field_numbers};

/// Code generation settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    runtime: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            runtime: "::eventhub".into(),
        }
    }
}

impl Config {
    /// The default settings: generated code refers to the runtime as `::eventhub`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The path by which generated code names the eventhub runtime (`Event`, `Consumable`,
    /// `StreamSpec`…). Default `::eventhub`.
    pub fn runtime_path(mut self, path: impl Into<String>) -> Self {
        self.runtime = path.into();
        self
    }

    /// Loads and validates the catalog in `dir` and returns the generated Rust source.
    /// Reads files; writes nothing.
    pub fn generate(&self, dir: &Path) -> Result<String, Error> {
        self.generate_catalog(&Catalog::load(dir)?)
    }

    /// Generates Rust source for an already loaded catalog.
    pub fn generate_catalog(&self, catalog: &Catalog) -> Result<String, Error> {
        generate::generate(catalog, &self.runtime)
    }

    /// For build scripts: generates the code for `dir` into `out_file`, writing only when the
    /// content changed (so dependents are not rebuilt needlessly), and prints
    /// `cargo:rerun-if-changed` for the directory and every schema file. Returns whether the
    /// file was written. A declaration of services (`services.json`) beside the schemas must
    /// name events the catalog has.
    pub fn compile(&self, dir: &Path, out_file: &Path) -> Result<bool, Error> {
        println!("cargo:rerun-if-changed={}", dir.display());
        let catalog = Catalog::load(dir)?;
        for f in catalog.files() {
            println!("cargo:rerun-if-changed={}", f.display());
        }
        // The compatibility gate: a released version may only change compatibly.
        println!(
            "cargo:rerun-if-changed={}",
            dir.join(release::LOCK_FILE).display()
        );
        if let Some(lock) = release::Lock::load(dir)? {
            let report = release::check(&catalog, &lock);
            if report.is_breaking() {
                return Err(Error::Breaking(report));
            }
        }
        // The declaration of services (if any) must name events the catalog has.
        services::Services::load(dir, &catalog)?;
        let code = self.generate_catalog(&catalog)?;
        write_if_changed(out_file, &code)
    }
}

/// [`Config::compile`] with the default settings.
pub fn compile(dir: &Path, out_file: &Path) -> Result<bool, Error> {
    Config::new().compile(dir, out_file)
}

/// Writes `content` to `path` unless the file already holds exactly that. Returns whether it
/// wrote.
pub fn write_if_changed(path: &Path, content: &str) -> Result<bool, Error> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(path, content).map_err(|e| Error::io(path, e))?;
    Ok(true)
}
