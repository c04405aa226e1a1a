//! The released state of a catalog: `released.lock` beside its schemas.
//!
//! For every released event version the lock records its canonical bundled schema (shared
//! definitions included, keys sorted) and its protobuf field numbers. Reading and writing the
//! file lives here; judging a catalog against it is `release`'s job.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compat::canonical;
use crate::diagnostic::Error;
use crate::proto::FieldNumbers;

/// The lock file's name inside the catalog directory.
pub const LOCK_FILE: &str = "released.lock";

const LOCK_FORMAT: u32 = 1;

/// The released state of a catalog (`schemas/released.lock`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    /// Format of the file.
    format: u32,
    /// `user.created@1` to what was released.
    events: BTreeMap<String, Released>,
}

/// One released event version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Released {
    /// The canonical bundled schema at release.
    schema: Value,
    /// Protobuf field numbers, kept for removed properties too (never reused).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    proto: FieldNumbers,
}

fn key(event_type: &str, version: u32) -> String {
    format!("{event_type}@{version}")
}

fn parse_key(k: &str) -> Option<(&str, u32)> {
    let (t, v) = k.rsplit_once('@')?;
    Some((t, v.parse().ok()?))
}

impl Lock {
    /// Reads `<dir>/released.lock`; `None` when nothing was released yet.
    pub fn load(dir: &Path) -> Result<Option<Lock>, Error> {
        let path = dir.join(LOCK_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let lock: Lock = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(&path, "", format!("not a valid lock file: {e}")))?;
        if lock.format != LOCK_FORMAT {
            return Err(Error::invalid(
                &path,
                "/format",
                format!(
                    "lock format {} is not supported (expected {LOCK_FORMAT})",
                    lock.format
                ),
            ));
        }
        Ok(Some(lock))
    }

    /// Writes the lock to `<dir>/released.lock` (only if its content changed).
    pub fn save(&self, dir: &Path) -> Result<bool, Error> {
        let mut text = serde_json::to_string_pretty(&canonical(
            &serde_json::to_value(self).expect("a lock serializes"),
        ))
        .expect("a value serializes");
        text.push('\n');
        crate::files::write_if_changed(&dir.join(LOCK_FILE), &text)
    }

    /// The released event versions, sorted.
    pub fn versions(&self) -> Vec<(String, u32)> {
        self.events
            .keys()
            .filter_map(|k| parse_key(k))
            .map(|(t, v)| (t.to_string(), v))
            .collect()
    }

    /// The released schema of one event version.
    pub fn schema(&self, event_type: &str, version: u32) -> Option<&Value> {
        self.events
            .get(&key(event_type, version))
            .map(|r| &r.schema)
    }

    /// The recorded protobuf field numbers of one event version.
    pub fn field_numbers(&self, event_type: &str, version: u32) -> Option<&FieldNumbers> {
        self.events
            .get(&key(event_type, version))
            .map(|r| &r.proto)
            .filter(|p| !p.is_empty())
    }

    /// Records one released event version (its canonical bundled schema and field numbers).
    pub(crate) fn insert(
        &mut self,
        event_type: &str,
        version: u32,
        schema: Value,
        proto: FieldNumbers,
    ) {
        self.format = LOCK_FORMAT;
        self.events
            .insert(key(event_type, version), Released { schema, proto });
    }
}
