//! `eventhub schemas list|show|check|diff|release`, and finding catalog events by `TYPE[@vN]`.

use std::path::{Path, PathBuf};

use eventhub::EventInfo;
use eventhub::events::CATALOG;
use eventhub_codegen::Catalog;
use eventhub_codegen::release::{self, Lock, Report, Status};
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
    /// Compares the catalog with its released state (`released.lock`): exit 0 when every
    /// change to a released version is compatible, 1 when any is breaking.
    Check {
        /// The catalog directory.
        #[arg(long, env = "EVENTHUB_SCHEMAS_DIR", default_value = "schemas")]
        dir: PathBuf,
    },
    /// Compares two schema trees laid out like `schemas/`, every version in OLD counting as
    /// released: exit 0 when every change is compatible, 1 when any is breaking.
    Diff {
        /// The old tree.
        old: PathBuf,
        /// The new tree.
        new: PathBuf,
    },
    /// Records a release: writes every event version of the catalog into `released.lock`
    /// (refused while a change to a released version is breaking).
    Release {
        /// The catalog directory.
        #[arg(long, env = "EVENTHUB_SCHEMAS_DIR", default_value = "schemas")]
        dir: PathBuf,
    },
}

/// A breaking change was found (exit 1); the report is already printed.
#[derive(Debug)]
struct Breaking(usize);

impl std::fmt::Display for Breaking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} breaking change{}: a released version may only change compatibly",
            self.0,
            if self.0 == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Breaking {}

fn load(dir: &Path) -> anyhow::Result<Catalog> {
    if !dir.is_dir() {
        anyhow::bail!("{}: no such catalog directory", dir.display());
    }
    Ok(Catalog::load(dir)?)
}

fn verdict(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        let events: Vec<serde_json::Value> = report
            .events
            .iter()
            .filter(|e| e.status != Status::Unchanged)
            .map(|e| {
                json!({
                    "event_type": e.event_type,
                    "version": e.version,
                    "file": e.file,
                    "status": format!("{:?}", e.status).to_lowercase(),
                    "breaking": e.is_breaking(),
                    "next_version": e.next_version,
                    "changes": e.changes.iter().map(|c| json!({
                        "pointer": c.pointer,
                        "via": c.via,
                        "what": c.what,
                        "breaks_old_consumers": c.breaks.old_consumers,
                        "breaks_new_consumers": c.breaks.new_consumers,
                        "why": c.why,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        print_json(&json!({ "breaking": report.is_breaking(), "events": events }));
    } else {
        for line in report.to_string().lines() {
            say!("{line}");
        }
    }
    let n = report.breaking().count()
        + report
            .events
            .iter()
            .filter(|e| e.status == Status::Removed)
            .count();
    if n > 0 {
        return Err(Breaking(n).into());
    }
    Ok(())
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
        Command::Check { dir } => {
            let catalog = load(&dir)?;
            let Some(lock) = Lock::load(&dir)? else {
                say!(
                    "nothing released yet ({} has no {}); `eventhub schemas release` records a release",
                    dir.display(),
                    release::LOCK_FILE
                );
                return Ok(());
            };
            verdict(&release::check(&catalog, &lock), json)?;
        }
        Command::Diff { old, new } => {
            let (old, new) = (load(&old)?, load(&new)?);
            verdict(&release::diff(&old, &new), json)?;
        }
        Command::Release { dir } => {
            let catalog = load(&dir)?;
            let previous = Lock::load(&dir)?;
            let lock = Lock::record(&catalog, previous.as_ref())?;
            let before = previous.as_ref().map(Lock::versions).unwrap_or_default();
            let written = lock.save(&dir)?;
            let added: Vec<String> = lock
                .versions()
                .into_iter()
                .filter(|v| !before.contains(v))
                .map(|(t, v)| format!("{t}@v{v}"))
                .collect();
            if json {
                print_json(&json!({ "written": written, "newly_released": added }));
            } else if !written {
                say!("{} is up to date", dir.join(release::LOCK_FILE).display());
            } else {
                say!(
                    "wrote {}: {} released version(s){}",
                    dir.join(release::LOCK_FILE).display(),
                    lock.versions().len(),
                    if added.is_empty() {
                        String::new()
                    } else {
                        format!(", newly released: {}", added.join(", "))
                    }
                );
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
