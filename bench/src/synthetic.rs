//! Synthetic catalogs for timing codegen at scale.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;

/// Events per domain (and so per stream) in a synthetic catalog.
const PER_DOMAIN: usize = 50;

/// Writes a catalog of `n` event schemas — each with eight properties of several kinds, a
/// shared `$ref`, a local definition and an enum — and the streams that capture them.
pub(crate) fn write_catalog(dir: &Path, n: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("shared"))?;
    std::fs::write(
        dir.join("shared/ids.json"),
        serde_json::to_string_pretty(&json!({
            "description": "Shared identifiers.",
            "$defs": {
                "EntityId": {"description": "An entity.", "type": "string", "format": "uuid"}
            }
        }))?,
    )?;
    let domains = n.div_ceil(PER_DOMAIN);
    let mut streams = serde_json::Map::new();
    for d in 0..domains {
        streams.insert(
            format!("DOMAIN{d}"),
            json!({
                "description": format!("Synthetic domain {d}."),
                "subjects": [format!("events.domain{d}.>")],
                "retention": "limits",
                "storage": "file",
                "max_age": "7d",
                "replicas": 1,
                "duplicate_window": "2m"
            }),
        );
    }
    std::fs::write(
        dir.join("streams.json"),
        serde_json::to_string_pretty(&json!({
            "description": "Synthetic topology.",
            "streams": streams,
        }))?,
    )?;
    for i in 0..n {
        let domain = dir.join(format!("domain{}", i / PER_DOMAIN));
        std::fs::create_dir_all(&domain)?;
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": format!("Synthetic event number {i}."),
            "type": "object",
            "properties": {
                "id": {"$ref": "../shared/ids.json#/$defs/EntityId"},
                "name": {"description": "A name.", "type": "string", "minLength": 1, "maxLength": 100},
                "count": {"description": "A count.", "type": "integer", "minimum": 0},
                "ratio": {"description": "A ratio.", "type": "number"},
                "active": {"description": "A flag.", "type": "boolean"},
                "status": {"description": "A status.", "type": "string", "enum": ["new", "open", "closed"]},
                "tags": {"description": "Tags.", "type": "array", "items": {"type": "string"}},
                "detail": {"$ref": "#/$defs/Detail"},
                "at": {"description": "When.", "type": "string", "format": "date-time"}
            },
            "required": ["id", "name", "status", "at"],
            "$defs": {
                "Detail": {
                    "description": "Nested detail.",
                    "type": "object",
                    "properties": {
                        "note": {"description": "A note.", "type": "string"},
                        "weight": {"description": "A weight.", "type": "integer"}
                    },
                    "required": ["note"]
                }
            }
        });
        std::fs::write(
            domain.join(format!("event-{i}.v1.json")),
            serde_json::to_string_pretty(&schema)?,
        )?;
    }
    Ok(())
}

/// Seconds to generate the Rust source for a synthetic catalog of `n` events.
pub(crate) fn codegen_seconds(n: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    write_catalog(dir.path(), n)?;
    let start = Instant::now();
    let code = eventhub_codegen::Config::new()
        .generate(dir.path())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("codegen of {n} synthetic schemas"))?;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        code.contains(&format!("Event{}V1", n - 1)),
        "the last event is generated"
    );
    Ok(secs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_synthetic_catalog_generates() {
        let secs = super::codegen_seconds(60).expect("codegen");
        assert!(secs > 0.0);
    }
}
