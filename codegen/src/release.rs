//! Released state: what was released, and whether the catalog still honours it.
//!
//! `schemas/released.lock` records, for every released event version (and each side of every
//! request, as `<type>.request` and `<type>.response`), its canonical bundled
//! schema (shared definitions included, keys sorted). [`Lock::record`] writes a new release;
//! [`check`] compares the catalog with the lock and [`diff`] compares two catalogs, both with
//! the rules of [`crate::compat`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

use crate::catalog::{Catalog, EventSchema};
use crate::compat::{self, Change, canonical};
use crate::diagnostic::{Diagnostic, Error};

pub use crate::lock::{LOCK_FILE, Lock};
pub use crate::proto::FieldNumbers;

impl Lock {
    /// A release of every event version in `catalog`, keeping what `previous` recorded for
    /// versions no longer in the catalog (a released version never disappears from the lock).
    /// Refuses when the catalog breaks `previous` (check first: a breaking change must not be
    /// recorded as released).
    pub fn record(catalog: &Catalog, previous: Option<&Lock>) -> Result<Lock, Error> {
        if let Some(prev) = previous {
            let report = check(catalog, prev);
            if report.is_breaking() {
                return Err(Error::Breaking(report.breaking_diagnostics()));
            }
        }
        let mut lock = previous.cloned().unwrap_or_default();
        for e in catalog.versioned() {
            let bundled = catalog.bundle(e);
            let previous = lock.field_numbers(&e.name.event_type, e.name.version);
            let proto = crate::proto::assign_field_numbers(&bundled, previous);
            lock.insert(
                &e.name.event_type,
                e.name.version,
                canonical(&bundled),
                proto,
            );
        }
        Ok(lock)
    }
}

/// What became of one event version between two states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Same schema (up to key order).
    Unchanged,
    /// Changed; see the changes.
    Changed,
    /// New: not released before, so anything goes.
    Added,
    /// Released before, gone now.
    Removed,
}

/// The verdict on one event version.
#[derive(Debug, Clone)]
pub struct EventReport {
    /// `user.created`
    pub event_type: String,
    /// `1`
    pub version: u32,
    /// The schema file (`schemas/user/created.v1.json`), when the version still exists.
    pub file: Option<PathBuf>,
    /// What became of it.
    pub status: Status,
    /// Every difference, compatible ones included.
    pub changes: Vec<Change>,
    /// The next free version of the event type: where a breaking change belongs.
    pub next_version: u32,
}

impl EventReport {
    /// Whether any change breaks a consumer.
    pub fn is_breaking(&self) -> bool {
        self.status == Status::Removed || self.changes.iter().any(Change::is_breaking)
    }

    fn next_file(&self) -> String {
        match &self.file {
            Some(f) => {
                let s = f.display().to_string();
                let suffix = format!(".v{}.json", self.version);
                match s.strip_suffix(&suffix) {
                    Some(base) => format!("{base}.v{}.json", self.next_version),
                    None => s,
                }
            }
            None => format!("{} v{}", self.event_type, self.next_version),
        }
    }
}

/// The result of comparing two states of a catalog.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One entry per event version in either state, sorted by type and version.
    pub events: Vec<EventReport>,
}

impl Report {
    /// Whether any change breaks a consumer.
    pub fn is_breaking(&self) -> bool {
        self.events.iter().any(EventReport::is_breaking)
    }

    /// The breaking changes as diagnostics: the file (or, for a removed version, the lock
    /// entry), the pointer, what changed, whom it breaks and the fix.
    pub fn breaking_diagnostics(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for e in &self.events {
            if e.status == Status::Removed {
                out.push(Diagnostic {
                    file: LOCK_FILE.into(),
                    pointer: format!("/events/{}@{}", e.event_type, e.version),
                    message: format!(
                        "{} v{}: released version removed — breaks new consumers: stored events \
                         of v{} can no longer be decoded; restore its file",
                        e.event_type, e.version, e.version
                    ),
                });
            }
            for c in e.changes.iter().filter(|c| c.is_breaking()) {
                let via = c
                    .via
                    .as_ref()
                    .map(|v| format!(" (in definition {v})"))
                    .unwrap_or_default();
                out.push(Diagnostic {
                    file: e.file.clone().unwrap_or_else(|| LOCK_FILE.into()),
                    pointer: c.pointer.clone(),
                    message: format!(
                        "{} v{}: {}{via} — {}: {}; fix: keep v{} as released and make this \
                         change in a new version file, {}",
                        e.event_type,
                        e.version,
                        c.what,
                        c.breaks,
                        c.why,
                        e.version,
                        e.next_file()
                    ),
                });
            }
        }
        out
    }

    /// The breaking changes, as (event, change) pairs.
    pub fn breaking(&self) -> impl Iterator<Item = (&EventReport, &Change)> {
        self.events
            .iter()
            .flat_map(|e| e.changes.iter().map(move |c| (e, c)))
            .filter(|(_, c)| c.is_breaking())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for e in &self.events {
            let name = format!("{} v{}", e.event_type, e.version);
            let file = e
                .file
                .as_ref()
                .map(|p| format!("  {}", p.display()))
                .unwrap_or_default();
            match e.status {
                Status::Unchanged => continue,
                Status::Added => {
                    any = true;
                    writeln!(
                        f,
                        "{name}{file}: new version, not released yet — compatible"
                    )?;
                    continue;
                }
                Status::Removed => {
                    any = true;
                    writeln!(f, "{name}: released version removed — breaks new consumers")?;
                    writeln!(
                        f,
                        "    stored events of v{} can no longer be decoded; restore its file, and retire a version only after its events have aged out of the stream",
                        e.version
                    )?;
                    continue;
                }
                Status::Changed => {}
            }
            any = true;
            writeln!(f, "{name}{file}")?;
            for c in &e.changes {
                let pointer = if c.pointer.is_empty() {
                    "(root)"
                } else {
                    &c.pointer
                };
                let via = c
                    .via
                    .as_ref()
                    .map(|v| format!(" (in definition {v})"))
                    .unwrap_or_default();
                writeln!(f, "  {pointer}{via}: {}", c.what)?;
                writeln!(f, "    {}: {}", c.breaks, c.why)?;
                if c.is_breaking() {
                    let keep_def = c
                        .via
                        .as_ref()
                        .map(|v| {
                            format!(
                                ", leave definition {v} as it is (add a new one for new versions)"
                            )
                        })
                        .unwrap_or_default();
                    writeln!(
                        f,
                        "    fix: keep v{} as released{keep_def} and make this change in a new version file, {}",
                        e.version,
                        e.next_file()
                    )?;
                }
            }
        }
        if !any {
            writeln!(f, "no changes")?;
        }
        Ok(())
    }
}

fn report_for(
    event_type: &str,
    version: u32,
    file: Option<PathBuf>,
    old: Option<&Value>,
    new: Option<&Value>,
    next_version: u32,
) -> EventReport {
    let (status, changes) = match (old, new) {
        (Some(o), Some(n)) => {
            let changes = compat::compare(o, n);
            if changes.is_empty() {
                (Status::Unchanged, changes)
            } else {
                (Status::Changed, changes)
            }
        }
        (None, Some(_)) => (Status::Added, Vec::new()),
        (Some(_), None) => (Status::Removed, Vec::new()),
        (None, None) => (Status::Unchanged, Vec::new()),
    };
    EventReport {
        event_type: event_type.to_string(),
        version,
        file,
        status,
        changes,
        next_version,
    }
}

fn next_versions(catalogs: &[&Catalog], extra: &[(String, u32)]) -> BTreeMap<String, u32> {
    let mut next = BTreeMap::new();
    let all = catalogs
        .iter()
        .flat_map(|c| {
            c.versioned()
                .map(|e| (e.name.event_type.clone(), e.name.version))
        })
        .chain(extra.iter().cloned());
    for (t, v) in all {
        let n = next.entry(t).or_insert(1);
        *n = (*n).max(v + 1);
    }
    next
}

fn find<'c>(catalog: &'c Catalog, event_type: &str, version: u32) -> Option<&'c EventSchema> {
    catalog
        .versioned()
        .find(|e| e.name.event_type == event_type && e.name.version == version)
}

/// Compares the catalog with its released state: every released version must still exist and
/// have changed only compatibly. Versions not released yet are reported as added.
pub fn check(catalog: &Catalog, lock: &Lock) -> Report {
    let released = lock.versions();
    let next = next_versions(&[catalog], &released);
    let mut keys: Vec<(String, u32)> = released.clone();
    keys.extend(
        catalog
            .versioned()
            .map(|e| (e.name.event_type.clone(), e.name.version)),
    );
    keys.sort();
    keys.dedup();
    let events = keys
        .into_iter()
        .map(|(t, v)| {
            let now = find(catalog, &t, v);
            let new = now.map(|e| catalog.bundle(e));
            let mut report = report_for(
                &t,
                v,
                now.map(|e| e.file.clone()),
                lock.schema(&t, v),
                new.as_ref(),
                next[&t],
            );
            if let (Some(new), Some(recorded)) = (&new, lock.field_numbers(&t, v)) {
                check_field_numbers(new, recorded, &mut report);
            }
            report
        })
        .collect();
    Report { events }
}

/// Protobuf field numbers of a released version must be what was released: generation keeps
/// them by construction, so a difference means the lock was edited or the assignment changed.
/// (A change of a field's wire kind comes with a type, nullability or bound change, which the
/// JSON rules already judge breaking.)
fn check_field_numbers(new: &Value, recorded: &FieldNumbers, report: &mut EventReport) {
    let now = crate::proto::assign_field_numbers(new, Some(recorded));
    for (message, fields) in recorded {
        for (name, number) in fields {
            let current = now.get(message).and_then(|f| f.get(name));
            if current.is_some_and(|c| c != number) {
                let pointer = format!("{message}/properties/{name}");
                report.changes.push(Change {
                    pointer,
                    via: None,
                    what: format!(
                        "protobuf field number of `{name}` changed from {number} to {}",
                        current.copied().unwrap_or_default()
                    ),
                    breaks: compat::Breaks::BOTH,
                    why: "protobuf consumers read fields by number".into(),
                });
            }
        }
    }
    for problem in crate::proto::check_field_numbers(&now) {
        report.changes.push(Change {
            pointer: String::new(),
            via: None,
            what: problem,
            breaks: compat::Breaks::BOTH,
            why: "protobuf field numbers must be unique and allowed".into(),
        });
    }
    if !report.changes.is_empty() && report.status == Status::Unchanged {
        report.status = Status::Changed;
    }
}

/// Compares two catalogs (`eventhub schemas diff OLD NEW`), treating every version in `old` as
/// released.
pub fn diff(old: &Catalog, new: &Catalog) -> Report {
    let next = next_versions(&[old, new], &[]);
    let mut keys: Vec<(String, u32)> = old
        .versioned()
        .chain(new.versioned())
        .map(|e| (e.name.event_type.clone(), e.name.version))
        .collect();
    keys.sort();
    keys.dedup();
    let events = keys
        .into_iter()
        .map(|(t, v)| {
            let o = find(old, &t, v).map(|e| old.bundle(e));
            let n_ev = find(new, &t, v);
            let n = n_ev.map(|e| new.bundle(e));
            report_for(
                &t,
                v,
                n_ev.map(|e| e.file.clone()),
                o.as_ref(),
                n.as_ref(),
                next[&t],
            )
        })
        .collect();
    Report { events }
}
