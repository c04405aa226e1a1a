//! Errors of the code generator: every problem names a file, a JSON pointer and what is wrong.
//!
//! The bottom layer of the crate: it uses no other module of it.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found in the schema catalog.
///
/// `file` is the path of the offending file as the user knows it (`schemas/user/created.v1.json`),
/// `pointer` is a JSON pointer (RFC 6901) into that file, empty for the whole document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in, shown relative to the catalog's parent directory.
    pub file: PathBuf,
    /// JSON pointer to the offending value inside `file` (`""` means the whole document).
    pub pointer: String,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn new(file: &Path, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}#{}: {}",
            self.file.display(),
            self.pointer,
            self.message
        )
    }
}

/// Why code generation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read or written.
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The catalog is invalid; every problem found is listed, sorted by file.
    Invalid(Vec<Diagnostic>),
    /// The declaration of services ([`crate::services`]) is invalid, or a configuration cannot
    /// be rendered from it; every problem found is listed.
    InvalidServices(Vec<Diagnostic>),
    /// A released event version changed in a way that breaks its consumers (see
    /// `compat`): one diagnostic per breaking change, saying whom it breaks and the fix
    /// (`release::check` gives the full report, compatible changes included).
    Breaking(Vec<Diagnostic>),
}

impl Error {
    /// The problems (catalog, services or breaking changes), empty for an I/O error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Error::Invalid(d) | Error::InvalidServices(d) | Error::Breaking(d) => d,
            Error::Io { .. } => &[],
        }
    }

    /// One problem in one file.
    pub(crate) fn invalid(file: &Path, pointer: &str, message: impl Into<String>) -> Self {
        Error::Invalid(vec![Diagnostic::new(file, pointer, message)])
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Invalid(diags) => {
                let n = diags.len();
                write!(
                    f,
                    "{n} problem{} in the event schemas:",
                    if n == 1 { "" } else { "s" }
                )?;
                for d in diags {
                    write!(f, "\n  {d}")?;
                }
                Ok(())
            }
            Error::InvalidServices(diags) => {
                let n = diags.len();
                write!(
                    f,
                    "{n} problem{} in the declaration of services:",
                    if n == 1 { "" } else { "s" }
                )?;
                for d in diags {
                    write!(f, "\n  {d}")?;
                }
                Ok(())
            }
            Error::Breaking(diags) => {
                let n = diags.len();
                write!(
                    f,
                    "{n} breaking change{} to released event versions:",
                    if n == 1 { "" } else { "s" },
                )?;
                for d in diags {
                    write!(f, "\n  {d}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Invalid(_) | Error::InvalidServices(_) | Error::Breaking(_) => None,
        }
    }
}

/// Collects diagnostics while a pass walks the catalog.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub(crate) fn push(&mut self, file: &Path, pointer: impl Into<String>, msg: impl Into<String>) {
        self.0.push(Diagnostic::new(file, pointer, msg));
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// `Err` with every diagnostic collected so far, sorted by file and pointer.
    pub(crate) fn check(&mut self) -> Result<(), Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut all = std::mem::take(&mut self.0);
        all.sort_by(|a, b| (&a.file, &a.pointer).cmp(&(&b.file, &b.pointer)));
        all.dedup();
        Err(Error::Invalid(all))
    }
}

/// What kind of JSON value `v` is, for messages: `string`, `object`, `null`…
pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/` (RFC 6901).
pub(crate) fn pointer_push(base: &str, token: &str) -> String {
    let escaped = token.replace('~', "~0").replace('/', "~1");
    format!("{base}/{escaped}")
}

/// The closest candidate to `word` by edit distance, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < word.len().max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(pointer_push("/properties", "a/b~c"), "/properties/a~1b~0c");
    }

    #[test]
    fn suggests_close_words_only() {
        let kw = ["properties", "required", "type"];
        assert_eq!(suggest("propertes", kw), Some("properties"));
        assert_eq!(suggest("requried", kw), Some("required"));
        assert_eq!(suggest("colour", kw), None);
    }
}
