//! Other catalogs a catalog builds on: their shared definitions are `$ref`'d as
//! `<catalog>:<path>#/$defs/<Name>` and become *their* Rust types, and their streams may be
//! declared `"external": true`.

use std::path::PathBuf;

use crate::diagnostic::Error;
use crate::files::{self, SourceFile};

/// Another catalog this one may refer to (see [`Config::extern_catalog`](crate::Config::extern_catalog)).
///
/// Its schema files come embedded in its crate (the generated `SCHEMA_FILES`) or from a
/// folder. Its name is the one its `streams.json` declares (`"catalog": "org"`): schemas refer
/// to it by that name (`org:shared/money.json#/$defs/Money`), and provisioning records stream
/// ownership under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternCatalog {
    pub(crate) name: String,
    pub(crate) rust_path: Option<String>,
    pub(crate) source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// (path relative to the catalog root, content)
    Files(Vec<(String, String)>),
    Folder(PathBuf),
    /// A dependency whose `links` metadata is absent (not a dependency, or not a catalog).
    Missing {
        links: String,
        var: String,
    },
}

impl ExternCatalog {
    /// A catalog given by its schema files: (path relative to its root, content) pairs, as
    /// the generated `SCHEMA_FILES` of its crate lists them.
    pub fn files(name: impl Into<String>, files: &[(&str, &str)]) -> Self {
        Self {
            name: name.into(),
            rust_path: None,
            source: Source::Files(
                files
                    .iter()
                    .map(|(p, c)| (p.to_string(), c.to_string()))
                    .collect(),
            ),
        }
    }

    /// A catalog read from a schema folder.
    pub fn folder(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            rust_path: None,
            source: Source::Folder(dir.into()),
        }
    }

    /// A catalog crate this crate depends on (a normal `[dependencies]` entry), found through
    /// the `links` metadata its build script exports: `links` is the `links` key of its
    /// `Cargo.toml` (`"eventhub-catalog"` for the organisation's catalog), whose build script
    /// prints `cargo:schemas=<its schema folder>` and `cargo:catalog=<its name>` (done by
    /// [`Config::compile`](crate::Config::compile) for a crate with a `links` key). Cargo hands
    /// those to this build script as `DEP_<LINKS>_SCHEMAS` and `DEP_<LINKS>_CATALOG`.
    ///
    /// The generated types are named by `::<links with - as _>::events` (change it with
    /// [`rust_path`](ExternCatalog::rust_path)). The catalog is read where its crate is, so
    /// nothing is copied and no build-dependency on it is needed.
    pub fn dependency(links: &str) -> Self {
        let key = links.to_ascii_uppercase().replace('-', "_");
        let var = |what: &str| format!("DEP_{key}_{what}");
        let schemas = std::env::var_os(var("SCHEMAS")).map(PathBuf::from);
        let name = std::env::var(var("CATALOG")).unwrap_or_else(|_| links.to_string());
        Self {
            name,
            rust_path: Some(format!("::{}::events", links.replace('-', "_"))),
            source: match schemas {
                Some(dir) => Source::Folder(dir),
                None => Source::Missing {
                    links: links.to_string(),
                    var: var("SCHEMAS"),
                },
            },
        }
    }

    /// The Rust path of the module its types were generated into (`::org_events::events`):
    /// code generated for a catalog that refers to its shared definitions names them
    /// `<path>::shared::<Name>`. An absolute path (`::crate_name::…` or `crate::…`). Needed
    /// to generate code, not to load a catalog.
    pub fn rust_path(mut self, path: impl Into<String>) -> Self {
        self.rust_path = Some(path.into());
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The folder it is read from, if it is read from one.
    pub fn folder_path(&self) -> Option<&std::path::Path> {
        match &self.source {
            Source::Folder(dir) => Some(dir),
            Source::Files(_) | Source::Missing { .. } => None,
        }
    }

    pub(crate) fn read(&self) -> Result<Vec<SourceFile>, Error> {
        match &self.source {
            Source::Missing { links, var } => Err(Error::invalid(
                &PathBuf::from(format!("{}:", self.name)),
                "",
                format!(
                    "`{var}` is not set, so the schemas of the catalog crate with `links = \"{links}\"` \
                     cannot be found: add that crate to [dependencies] (not only \
                     [build-dependencies]); its build script exports its schema folder"
                ),
            )),
            Source::Files(list) => files::embedded(&self.name, list),
            Source::Folder(dir) => {
                let mut out = files::read_folder(dir)?;
                for f in &mut out {
                    f.shown = PathBuf::from(format!("{}:{}", self.name, f.rel_path()));
                }
                Ok(out)
            }
        }
    }
}
