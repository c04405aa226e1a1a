//! JSON Schema: each event version's self-contained schema (`<type>.v<N>.json`, as
//! `Catalog::bundled_schema` returns it: draft 2020-12, `$id` = the schema id, every definition
//! it uses in its own `$defs`), `envelope-headers.schema.json` when the options carry it, and
//! `index.json` listing them.

use serde_json::{Value, json};

use super::model::View;
use super::options::{File, Options, file};

/// The file of the envelope headers schema.
const HEADERS_FILE: &str = "envelope-headers.schema.json";

pub(super) fn render(view: &View<'_>, options: &Options) -> Vec<File> {
    let mut files = Vec::new();
    let mut index = Vec::new();
    for e in &view.events {
        let name = format!("{}.v{}.json", e.event_type(), e.version());
        index.push(json!({
            "type": e.event_type(),
            "version": e.version(),
            "subject": e.subject,
            "stream": e.stream(),
            "schema_id": e.schema_id(),
            "file": name,
        }));
        files.push(file(&name, pretty(&e.bundled)));
    }
    let mut doc = json!({
        "description": "Every event version of the catalog and the file of its self-contained \
                        JSON Schema (draft 2020-12).",
        "events": index,
    });
    if let Some(headers) = &options.envelope_headers {
        files.push(file(HEADERS_FILE, pretty(headers)));
        doc["envelope_headers"] = HEADERS_FILE.into();
    }
    files.push(file("index.json", pretty(&doc)));
    files
}

fn pretty(v: &Value) -> String {
    let mut text = serde_json::to_string_pretty(v).expect("values serialize");
    text.push('\n');
    text
}
