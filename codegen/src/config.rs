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
/// // build.rs of a team's crate; `eventhub-catalog` (links = "eventhub-catalog") is one of
/// // its [dependencies], so cargo tells this script where that crate's schemas are.
/// use eventhub_codegen::{Config, ExternCatalog};
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     Config::new()
///         .schemas("schemas")
///         .extern_catalog(ExternCatalog::dependency("eventhub-catalog"))
///         .builders(true)
///         .compile()?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    runtime: String,
    schemas: Vec<PathBuf>,
    builders: bool,
    externs: Vec<ExternCatalog>,
    out_file: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            runtime: "::eventhub".into(),
            schemas: Vec::new(),
            builders: false,
            externs: Vec::new(),
            out_file: PathBuf::from(OUT_FILE),
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

    /// Lets the schemas refer to the shared definitions of another catalog, and declare its
    /// streams `"external": true` in `streams.json`: a schema writes
    /// `{"$ref": "org:shared/ids.json#/$defs/OrderId"}` (`org` being the name the other
    /// catalog's `streams.json` declares), and the generated type *is* that catalog's
    /// `::eventhub_catalog::events::shared::OrderId`, not a copy. Give the catalog as a crate
    /// dependency ([`ExternCatalog::dependency`], the usual way), a folder
    /// ([`ExternCatalog::folder`]) or embedded files ([`ExternCatalog::files`], its crate's
    /// generated `SCHEMA_FILES`). Repeatable; a catalog that builds on a third needs that one
    /// given too.
    pub fn extern_catalog(mut self, catalog: ExternCatalog) -> Self {
        self.externs.push(catalog);
        self
    }

    /// Where [`compile`](Config::compile) writes: a relative path is inside `OUT_DIR`.
    /// Default [`OUT_FILE`] (`events.rs`).
    pub fn out_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.out_file = path.into();
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

    /// For build scripts: generates the code into the [`out_file`](Config::out_file)
    /// (`$OUT_DIR/events.rs` by default), writing only when it changed (see
    /// [`compile_to`](Config::compile_to)). Returns whether the file was written.
    ///
    /// A crate with a `links` key in its `Cargo.toml` also exports its schema folder and its
    /// catalog name as links metadata (`cargo:schemas=…`, `cargo:catalog=…`), so crates that
    /// depend on it can build on it with [`ExternCatalog::dependency`].
    pub fn compile(&self) -> Result<bool, Error> {
        if self.out_file.is_absolute() {
            return self.compile_to(&self.out_file);
        }
        let out = std::env::var_os("OUT_DIR").ok_or_else(|| {
            Error::io(
                Path::new("$OUT_DIR"),
                std::io::Error::other(
                    "OUT_DIR is not set: compile() runs in a build script (else use compile_to)",
                ),
            )
        })?;
        self.compile_to(&PathBuf::from(out).join(&self.out_file))
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
        if std::env::var_os("CARGO_MANIFEST_LINKS").is_some()
            && let Some(dir) = folders.first()
        {
            // Links metadata: what `ExternCatalog::dependency` reads in dependent crates.
            let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
            println!("cargo:schemas={}", dir.display());
            println!("cargo:catalog={}", catalog.name());
        }
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

/// [`Config::compile_to`] with the default settings and the schemas in `dir`: what a build
/// script without options calls.
pub fn compile(dir: &Path, out_file: &Path) -> Result<bool, Error> {
    Config::new().schemas(dir).compile_to(out_file)
}
