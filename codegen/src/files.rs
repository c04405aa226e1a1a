//! Reading schema folders and writing generated files.

use std::path::{Path, PathBuf};

use crate::diagnostic::Error;

/// Writes `content` to `path` unless the file already holds exactly that. Returns whether it
/// wrote.
pub fn write_if_changed(path: &Path, content: &str) -> Result<bool, Error> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(path, content).map_err(|e| Error::io(path, e))?;
    Ok(true)
}

/// One schema file as read: where it sits in its catalog, how messages name it, its text.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    /// Path relative to the catalog root, one component per `/`-separated segment.
    pub(crate) rel: Vec<String>,
    /// How messages name it: `schemas/user/created.v1.json`, or `org:shared/money.json` for a
    /// file of another catalog.
    pub(crate) shown: PathBuf,
    /// The file on disk, when it was read from one (for `cargo:rerun-if-changed`).
    pub(crate) path: Option<PathBuf>,
    pub(crate) text: String,
}

impl SourceFile {
    /// The path relative to the catalog root, `/`-separated.
    pub(crate) fn rel_path(&self) -> String {
        self.rel.join("/")
    }
}

/// How messages name a schema folder: its last component (`schemas`).
pub(crate) fn folder_label(dir: &Path) -> PathBuf {
    dir.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(PathBuf::from))
        .or_else(|| dir.file_name().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("schemas"))
}

/// Every `.json` file below `dir` (hidden entries skipped), sorted by path.
pub(crate) fn read_folder(dir: &Path) -> Result<Vec<SourceFile>, Error> {
    let label = folder_label(dir);
    let mut paths = Vec::new();
    walk(dir, &mut paths)?;
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let rel_path = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
            let rel = rel_path
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            Ok(SourceFile {
                rel,
                shown: label.join(&rel_path),
                path: Some(path),
                text,
            })
        })
        .collect()
}

/// Files given as (path relative to the catalog root, content) pairs, shown as
/// `<catalog>:<path>`. Paths that leave the root (`..`, absolute) are refused.
pub(crate) fn embedded(
    catalog: &str,
    files: &[(String, String)],
) -> Result<Vec<SourceFile>, Error> {
    let mut out: Vec<SourceFile> = Vec::with_capacity(files.len());
    for (path, text) in files {
        let rel: Vec<String> = path.split('/').map(str::to_string).collect();
        let shown = PathBuf::from(format!("{catalog}:{path}"));
        if path.starts_with('/') || rel.iter().any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(Error::invalid(
                &shown,
                "",
                "a schema file of another catalog must be named by a path relative to that \
                 catalog's root, like `shared/money.json`",
            ));
        }
        out.push(SourceFile {
            rel,
            shown,
            path: None,
            text: text.clone(),
        });
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let ty = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if ty.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "json") {
            out.push(path);
        }
    }
    Ok(())
}
