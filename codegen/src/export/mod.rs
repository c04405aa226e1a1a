//! The catalog for other languages and tools: TypeScript types, an AsyncAPI 3.0 document, the
//! `.proto` file, self-contained JSON Schemas and a static HTML catalog page.
//!
//! Every format is a pure function of loaded catalogs ([`Catalog::load`]) and [`Options`]: it
//! reads and writes nothing and returns [`File`]s (a relative path and the content) for the
//! caller to write (`eventhub schemas export` does). Several catalogs can be exported together
//! (a team catalog beside the org's): their events are merged, an event type and version or a
//! generated name defined twice is an error, and a shared definition present in both must be
//! the same.
//!
//! Request/response pairs (`<name>.request.v<N>.json`) are not events: no format exports them
//! (they have no stream, no event subject and no protobuf message).
//!
//! | [`Format`] | files | checked by (tests) |
//! | --- | --- | --- |
//! | `typescript` | `events.ts` | `tsc --strict` |
//! | `asyncapi` | `asyncapi.json` (AsyncAPI 3.0.0) | `@asyncapi/parser` |
//! | `proto` | `events.proto` (the generated `PROTO_FILE`) | `protoc` |
//! | `jsonschema` | `<type>.v<N>.json` per event version, `index.json` | the `jsonschema` crate |
//! | `html` | `index.html` (no external assets) | headless Chromium |
//!
//! Names: an event version is `UserCreatedV1` (the domain and the Rust struct name, as its
//! protobuf message), its family `UserCreated`, a shared definition keeps its name (`Money`) and
//! an event's own definition gets the event's name as prefix (`OrderPlacedV1LineItem`).
//!
//! ```no_run
//! use eventhub_codegen::{Catalog, export};
//!
//! let catalog = Catalog::load("schemas".as_ref())?;
//! let files = export::export(&[catalog], export::Format::TypeScript, &export::Options::default())?;
//! for f in &files {
//!     println!("{}: {} bytes", f.path.display(), f.content.len());
//! }
//! # Ok::<(), eventhub_codegen::Error>(())
//! ```

mod asyncapi;
mod fields;
mod html;
mod jsonschema;
mod model;
mod options;
mod typescript;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::catalog::Catalog;
use crate::diagnostic::Error;
use options::file;

pub use html::esc as html_escape;
pub use options::{File, Format, Options, Server, ServiceRole, UnknownFormat};

/// The files of `format` for `catalogs` (merged), paths relative to the format's output
/// directory.
pub fn export(catalogs: &[Catalog], format: Format, options: &Options) -> Result<Vec<File>, Error> {
    let view = model::View::new(catalogs, options)?;
    Ok(match format {
        Format::TypeScript => vec![file("events.ts", typescript::render(&view, options))],
        Format::AsyncApi => vec![file("asyncapi.json", asyncapi::render(&view, options))],
        Format::Proto => vec![file("events.proto", crate::generate::proto_text(catalogs)?)],
        Format::JsonSchema => jsonschema::render(&view, options),
        Format::Html => vec![file("index.html", html::render(&view, options))],
    })
}

/// Every format, each under its own directory (`typescript/events.ts`, `proto/events.proto`…).
pub fn export_all(catalogs: &[Catalog], options: &Options) -> Result<Vec<File>, Error> {
    let mut out = Vec::new();
    for format in Format::ALL {
        for f in export(catalogs, format, options)? {
            out.push(File {
                path: Path::new(format.name()).join(f.path),
                content: f.content,
            });
        }
    }
    Ok(out)
}

/// Reads example payloads from `dir`: one file per event version named
/// `<event type>.v<N>.json` (`user.created.v1.json`), holding one payload or an array of
/// payloads (the layout of `tests/fixtures/events/`). Other files are ignored; the payloads
/// are not validated here.
pub fn load_examples(dir: &Path) -> Result<BTreeMap<(String, u32), Vec<Value>>, Error> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((event_type, version)) = name
            .strip_suffix(".json")
            .and_then(|stem| stem.rsplit_once(".v"))
            .and_then(|(t, v)| Some((t, v.parse::<u32>().ok()?)))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(&path, "", format!("not valid JSON: {e}")))?;
        let payloads = match doc {
            Value::Array(items) => items,
            one => vec![one],
        };
        out.insert((event_type.to_string(), version), payloads);
    }
    Ok(out)
}
