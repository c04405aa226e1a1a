//! `eventhub schemas list|show`, and finding catalog events by `TYPE[@vN]`.

use eventhub::EventInfo;
use eventhub::events::CATALOG;
use serde_json::json;

use crate::output::say;
use crate::output::{Table, print_json};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Every event type and version this binary knows.
    List,
    /// The JSON Schema of an event (references bundled): `TYPE` (latest version) or
    /// `TYPE@vN`.
    Show {
        /// e.g. `user.created` or `user.created@v1`.
        event: String,
    },
}

pub(crate) fn run(command: Command, json: bool) -> anyhow::Result<()> {
    match command {
        Command::List => {
            if json {
                print_json(&json!(
                    CATALOG
                        .iter()
                        .map(|e| json!({
                            "event_type": e.event_type,
                            "version": e.version,
                            "subject": e.subject,
                            "stream": e.stream,
                            "schema_id": e.schema_id,
                            "rust_type": e.rust_type,
                        }))
                        .collect::<Vec<_>>()
                ));
                return Ok(());
            }
            let mut table = Table::new(&["TYPE", "VERSION", "SUBJECT", "STREAM", "RUST TYPE"]);
            for e in CATALOG {
                table.row(vec![
                    e.event_type.to_string(),
                    format!("v{}", e.version),
                    e.subject.to_string(),
                    e.stream.to_string(),
                    format!("eventhub::events::{}", e.rust_type),
                ]);
            }
            table.print();
        }
        Command::Show { event } => {
            let info = find(&event)?;
            let schema: serde_json::Value = serde_json::from_str(info.schema)?;
            if json {
                print_json(&schema);
            } else {
                say!(
                    "# {} v{} on {} (stream {}, eventhub::events::{})",
                    info.event_type,
                    info.version,
                    info.subject,
                    info.stream,
                    info.rust_type
                );
                print_json(&schema);
            }
        }
    }
    Ok(())
}

/// The catalog entry of `TYPE` (its latest version) or `TYPE@vN`.
pub(crate) fn find(spec: &str) -> anyhow::Result<&'static EventInfo> {
    let (ty, version) = parse(spec)?;
    let versions: Vec<&EventInfo> = CATALOG.iter().filter(|e| e.event_type == ty).collect();
    if versions.is_empty() {
        let mut known: Vec<&str> = CATALOG.iter().map(|e| e.event_type).collect();
        known.dedup();
        let hint = known
            .iter()
            .min_by_key(|k| edit_distance(k, ty))
            .filter(|k| edit_distance(k, ty) <= 3)
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        anyhow::bail!("unknown event type `{ty}`{hint}; `eventhub schemas list` shows the catalog");
    }
    match version {
        None => Ok(versions
            .iter()
            .max_by_key(|e| e.version)
            .copied()
            .unwrap_or(versions[0])),
        Some(v) => versions
            .iter()
            .find(|e| e.version == v)
            .copied()
            .ok_or_else(|| {
                let have: Vec<String> =
                    versions.iter().map(|e| format!("v{}", e.version)).collect();
                anyhow::anyhow!("{ty} has no version v{v}; it has {}", have.join(", "))
            }),
    }
}

/// Splits `TYPE[@vN]`.
pub(crate) fn parse(spec: &str) -> anyhow::Result<(&str, Option<u32>)> {
    match spec.split_once('@') {
        None => Ok((spec, None)),
        Some((ty, v)) => {
            let n = v
                .strip_prefix('v')
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| {
                    anyhow::Error::new(crate::Usage(format!(
                        "`{spec}`: write the version as TYPE@vN, e.g. user.created@v2"
                    )))
                })?;
            Ok((ty, Some(n)))
        }
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
