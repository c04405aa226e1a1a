//! The builder a build script drives: which schema folders, which other catalogs, which
//! options; then `compile()` writes the generated Rust into `OUT_DIR`.

use std::path::{Path, PathBuf};

use crate::catalog::Catalog;
use crate::diagnostic::Error;
use crate::externs::ExternCatalog;
use crate::files::write_if_changed;
use crate::generate::{self, Options};
use crate::lock::{LOCK_FILE, Lock};
use crate::release;
use crate::services::Services;

/// The name of the file [`Config::compile`] writes into `OUT_DIR`.
pub const OUT_FILE: &str = "events.rs";

/// Code generation settings, prost-build style: say where the schemas are and how to
/// generate, then [`compile`](Config::compile) from a build script.
///
/// ```no_run
/// // build.rs
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     eventhub_codegen::Config::new()
///         .schemas("schemas")   // relative to the crate's Cargo.toml
///         .builders(true)       // `ShippedV1::builder().order_id(id).carrier("DHL")…`
///         .compile()?;          // $OUT_DIR/events.rs
///     Ok(())
/// }
/// ```
///
/// ```ignore
/// // src/lib.rs
/// pub mod events {
///     include!(concat!(env!("OUT_DIR"), "/events.rs"));
/// }
/// ```
///
/// A catalog can build on another one without copying it: its schemas `$ref` the other's
/// shared definitions as `<catalog>:shared/<file>.json#/$defs/<Name>`, and the generated code
/// uses the other crate's types for them (see [`Config::extern_catalog`]).
///
/// ```no_run
/// # mod org_events { pub mod events { pub const SCHEMA_FILES: &[(&str, &str)] = &[]; } }
/// // build.rs of a team's catalog crate (`org-events` is also a build-dependency)
/// eventhub_codegen::Config::new()
///     .schemas("schemas")
///     .extern_catalog("org", org_events::events::SCHEMA_FILES, "::org_events::events")
///     .compile()
///     .unwrap_or_else(|e| panic!("{e}"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    runtime: String,
    schemas: Vec<PathBuf>,
    builders: bool,
    externs: Vec<ExternCatalog>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            runtime: "::eventhub".into(),
            schemas: Vec::new(),
            builders: false,
            externs: Vec::new(),
        }
    }
}

impl Config {
    /// The default settings: the schemas in `schemas/` beside the crate's `Cargo.toml`,
    /// generated code naming the runtime `::eventhub`, no builders, no other catalogs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the schemas in `dir` (relative paths start at the current directory, which for a
    /// build script is the crate's root). Repeatable: several folders make one catalog, laid
    /// over each other (a path may be in one of them only; one of them holds `streams.json`).
    pub fn schemas(mut self, dir: impl Into<PathBuf>) -> Self {
        self.schemas.push(dir.into());
        self
    }

    /// The path by which generated code names the eventhub runtime (`Event`, `Consumable`,
    /// `StreamSpec`…). Default `::eventhub`.
    pub fn runtime_path(mut self, path: impl Into<String>) -> Self {
        self.runtime = path.into();
        self
    }

    /// Generates a builder for every struct (typify's struct builders): `ShippedV1::builder()
    /// .order_id(id).carrier("DHL").try_into()?` checks each field as it is set and says which
    /// required field is missing. Default off.
    pub fn builders(mut self, on: bool) -> Self {
        self.builders = on;
        self
    }

    /// Lets the schemas refer to the shared definitions of catalog `name`, given by its schema
    /// files (its crate's generated `SCHEMA_FILES`), whose types were generated into the module
    /// `rust_path` (`"::org_events::events"`, an absolute path). A schema writes
    /// `{"$ref": "org:shared/money.json#/$defs/Money"}`, and the generated type *is*
    /// `::org_events::events::shared::Money`, not a copy. Its streams can be declared
    /// `"external": true` in `streams.json`. `name` is the one the catalog's `streams.json`
    /// declares. Repeatable; a catalog that builds on a third needs that one given too.
    pub fn extern_catalog(
        mut self,
        name: impl Into<String>,
        files: &[(&str, &str)],
        rust_path: impl Into<String>,
    ) -> Self {
        self.externs
            .push(ExternCatalog::files(name, files).rust_path(rust_path));
        self
    }

    /// [`extern_catalog`](Config::extern_catalog) with the catalog read from a schema folder
    /// (a checkout, or a folder a dependency's build script exported).
    pub fn extern_catalog_dir(
        mut self,
        name: impl Into<String>,
        dir: impl Into<PathBuf>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.externs
            .push(ExternCatalog::folder(name, dir).rust_path(rust_path));
        self
    }

    /// Loads and validates the catalog of the folders given with [`schemas`](Config::schemas)
    /// (default `schemas/`). Reads files; writes nothing.
    pub fn load(&self) -> Result<Catalog, Error> {
        Catalog::load_with(&self.folders(), &self.externs)
    }

    /// Loads and validates the catalog in `dir` (instead of the configured folders, with the
    /// configured other catalogs) and returns the generated Rust source. Reads files; writes
    /// nothing.
    pub fn generate(&self, dir: &Path) -> Result<String, Error> {
        self.generate_catalog(&Catalog::load_with(&[dir], &self.externs)?)
    }

    /// Generates Rust source for an already loaded catalog.
    pub fn generate_catalog(&self, catalog: &Catalog) -> Result<String, Error> {
        generate::generate(
            catalog,
            &Options {
                runtime: &self.runtime,
                builders: self.builders,
            },
        )
    }

    /// For build scripts: generates the code into `$OUT_DIR/events.rs`, writing only when it
    /// changed (see [`compile_to`](Config::compile_to)). Returns whether the file was written.
    pub fn compile(&self) -> Result<bool, Error> {
        let out = std::env::var_os("OUT_DIR").ok_or_else(|| {
            Error::io(
                Path::new("$OUT_DIR"),
                std::io::Error::other(
                    "OUT_DIR is not set: compile() runs in a build script (else use compile_to)",
                ),
            )
        })?;
        self.compile_to(&PathBuf::from(out).join(OUT_FILE))
    }

    /// For build scripts: generates the code into `out_file`, writing only when the content
    /// changed (so dependents are not rebuilt needlessly). Prints `cargo:rerun-if-changed` for
    /// every schema folder and file (and the folders of other catalogs read from disk), and a
    /// `cargo:warning` naming the folders read. Refuses a breaking change to a released
    /// version (`released.lock`) and a declaration of services (`services.json`) that names
    /// events the catalog lacks.
    pub fn compile_to(&self, out_file: &Path) -> Result<bool, Error> {
        let folders = self.folders();
        for dir in &folders {
            // A folder makes cargo look at everything below it: new files included.
            println!("cargo:rerun-if-changed={}", dir.display());
            let lock = dir.join(LOCK_FILE);
            if lock.exists() {
                println!("cargo:rerun-if-changed={}", lock.display());
            }
        }
        for dir in self.externs.iter().filter_map(ExternCatalog::folder_path) {
            println!("cargo:rerun-if-changed={}", dir.display());
        }
        let catalog = self.load()?;
        for f in catalog.files() {
            println!("cargo:rerun-if-changed={}", f.display());
        }
        println!("cargo:warning={}", summary(&catalog, &self.externs));
        // The compatibility gate: a released version may only change compatibly.
        for dir in &folders {
            if let Some(lock) = Lock::load(dir)? {
                let report = release::check(&catalog, &lock);
                if report.is_breaking() {
                    return Err(Error::Breaking(report.breaking_diagnostics()));
                }
            }
            // The declaration of services (if any) must name events the catalog has.
            Services::load(dir, &catalog)?;
        }
        let code = self.generate_catalog(&catalog)?;
        write_if_changed(out_file, &code)
    }

    /// The configured folders; `schemas/` of the crate being built (or of the current
    /// directory) when none is.
    fn folders(&self) -> Vec<PathBuf> {
        if !self.schemas.is_empty() {
            return self.schemas.clone();
        }
        let root = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_default();
        vec![root.join("schemas")]
    }
}

/// What a build read, for the cargo warning: `eventhub-codegen: catalog `org`: 21 event
/// versions, 5 streams from /src/app/schemas`.
fn summary(catalog: &Catalog, externs: &[ExternCatalog]) -> String {
    let folders: Vec<String> = catalog
        .folders()
        .iter()
        .map(|d| {
            d.canonicalize()
                .unwrap_or_else(|_| d.clone())
                .display()
                .to_string()
        })
        .collect();
    let n = catalog.events().len();
    let mut text = format!(
        "eventhub-codegen: catalog `{}`: {n} event version{}, {} stream{} from {}",
        catalog.name(),
        if n == 1 { "" } else { "s" },
        catalog.stream_names().len(),
        if catalog.stream_names().len() == 1 {
            ""
        } else {
            "s"
        },
        folders.join(" + ")
    );
    if !externs.is_empty() {
        let names: Vec<&str> = externs.iter().map(ExternCatalog::name).collect();
        text.push_str(&format!("; builds on {}", names.join(", ")));
    }
    text
}

/// [`Config::compile_to`] with the default settings and the schemas in `dir`.
pub fn compile(dir: &Path, out_file: &Path) -> Result<bool, Error> {
    Config::new().schemas(dir).compile_to(out_file)
}
