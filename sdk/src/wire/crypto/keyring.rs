//! The keys of field-level encryption: named AES-256 keys, one of them active.

use std::fmt;
use std::path::Path;

#[cfg(feature = "encryption")]
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

/// `kid1=<base64 key>,kid2=<base64 key>`: the keys, the last one active unless
/// [`ACTIVE_KEY_VAR`] names another.
pub const KEYS_VAR: &str = "EVENTHUB_ENCRYPTION_KEYS";
/// Path of a key file: one `kid=<base64 key>` per line, `#` starts a comment; the last key is
/// active unless [`ACTIVE_KEY_VAR`] names another. An alternative to [`KEYS_VAR`].
pub const KEY_FILE_VAR: &str = "EVENTHUB_ENCRYPTION_KEY_FILE";
/// The id of the key new events are encrypted with (default: the last one listed).
pub const ACTIVE_KEY_VAR: &str = "EVENTHUB_ENCRYPTION_KEY_ACTIVE";

/// Bytes of an AES-256 key.
pub const KEY_LEN: usize = 32;

/// Longest key id: it travels in a header and in every encrypted value.
const MAX_ID_LEN: usize = 64;

/// Named AES-256 keys for the fields schemas mark `x-sensitive`: one *active* key encrypts what
/// is published; every key decrypts what was encrypted with it. Rotating means adding a new key
/// and making it active, while keeping the old ones for the events already stored.
///
/// From code, or from the environment ([`Keyring::from_env`], which
/// [`ConnectOptions::new`](crate::ConnectOptions::new) calls):
///
/// ```
/// use eventhub::Keyring;
/// let keys = Keyring::new("2026-01", [7; 32])?     // encrypted so far with 2026-01
///     .with_key("2026-06", [9; 32])?;               // the last added is active
/// assert_eq!(keys.active_key_id(), "2026-06");
/// assert!(keys.contains("2026-01"));                 // still decrypts older events
/// let keys = keys.with_active("2026-01")?;          // or choose explicitly
/// # Ok::<(), eventhub::wire::crypto::KeyringError>(())
/// ```
///
/// `Debug` shows the key ids only; the key bytes are wiped from memory when dropped.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Key>,
    active: usize,
}

#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) id: String,
    bytes: Zeroizing<[u8; KEY_LEN]>,
    #[cfg(feature = "encryption")]
    pub(crate) cipher: Aes256Gcm,
}

/// What is wrong with a key or a key source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringErrorKind {
    /// A key id or key is malformed (not `kid=<base64>`, not base64, not 32 bytes, an invalid
    /// or repeated id), or a source holds no key.
    Malformed,
    /// The active key named is not among the keys.
    UnknownActiveKey,
    /// The key file cannot be read.
    Unreadable,
    /// The environment names keys in two places ([`KEYS_VAR`] and [`KEY_FILE_VAR`]), or an
    /// active key without keys.
    Conflict,
}

/// A key or key source that cannot be used. The message names the variable or file, the
/// entry or line and the key id; never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct KeyringError {
    kind: KeyringErrorKind,
    detail: String,
}

impl KeyringError {
    fn new(kind: KeyringErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// What is wrong.
    pub fn kind(&self) -> KeyringErrorKind {
        self.kind
    }
}

impl Keyring {
    /// A keyring of one key, `id`, which is active.
    pub fn new(id: impl Into<String>, key: [u8; KEY_LEN]) -> Result<Self, KeyringError> {
        let id = id.into();
        check_id(&id).map_err(|why| KeyringError::new(KeyringErrorKind::Malformed, why))?;
        Ok(Self {
            keys: vec![Key::new(id, key)],
            active: 0,
        })
    }

    /// This keyring with key `id` added, and active (as the last key listed in
    /// [`KEYS_VAR`] is). The keys before it still decrypt.
    pub fn with_key(
        mut self,
        id: impl Into<String>,
        key: [u8; KEY_LEN],
    ) -> Result<Self, KeyringError> {
        let id = id.into();
        check_id(&id).map_err(|why| KeyringError::new(KeyringErrorKind::Malformed, why))?;
        if self.contains(&id) {
            return Err(KeyringError::new(
                KeyringErrorKind::Malformed,
                format!("key `{id}` is already in the keyring; key ids must be unique"),
            ));
        }
        self.keys.push(Key::new(id, key));
        self.active = self.keys.len() - 1;
        Ok(self)
    }

    /// This keyring encrypting with key `id` from now on.
    pub fn with_active(mut self, id: &str) -> Result<Self, KeyringError> {
        self.active = self.position(id).ok_or_else(|| {
            KeyringError::new(
                KeyringErrorKind::UnknownActiveKey,
                format!(
                    "no key `{id}` to make active; the keyring holds {}",
                    self.ids()
                ),
            )
        })?;
        Ok(self)
    }

    /// Parses `kid1=<base64 key>,kid2=<base64 key>` (the format of [`KEYS_VAR`]): the last key
    /// is active unless `active` names another. Keys are standard or URL-safe base64, padded or
    /// not. `source` names the text in errors (e.g. the variable).
    pub fn from_list(list: &str, active: Option<&str>, source: &str) -> Result<Self, KeyringError> {
        let entries = list
            .split(',')
            .enumerate()
            .map(|(i, e)| (format!("{source}, entry {}", i + 1), e.trim()))
            .filter(|(_, e)| !e.is_empty());
        Self::from_entries(entries, active, source)
    }

    /// Reads a key file: one `kid=<base64 key>` per line, blank lines and `#` comments ignored;
    /// the last key is active unless `active` names another.
    pub fn from_file(path: impl AsRef<Path>, active: Option<&str>) -> Result<Self, KeyringError> {
        let path = path.as_ref();
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            KeyringError::new(
                KeyringErrorKind::Unreadable,
                format!("cannot read the key file {}: {e}", path.display()),
            )
        })?);
        warn_if_readable_by_others(path);
        let shown = path.display().to_string();
        let entries = text
            .lines()
            .enumerate()
            .map(|(i, l)| (format!("{shown}, line {}", i + 1), l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        Self::from_entries(entries, active, &format!("the key file {shown}"))
    }

    /// The keys the environment names, if any: [`KEYS_VAR`] or [`KEY_FILE_VAR`] (not both),
    /// with [`ACTIVE_KEY_VAR`]. `Ok(None)` when neither is set (empty counts as unset).
    pub fn from_env() -> Result<Option<Self>, KeyringError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub(crate) fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, KeyringError> {
        let get = |name: &str| {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .map(Zeroizing::new)
        };
        let active = get(ACTIVE_KEY_VAR);
        let active = active.as_deref().map(|a| a.trim());
        match (get(KEYS_VAR), get(KEY_FILE_VAR)) {
            (Some(_), Some(_)) => Err(KeyringError::new(
                KeyringErrorKind::Conflict,
                format!("both {KEYS_VAR} and {KEY_FILE_VAR} are set: set one of them"),
            )),
            (Some(list), None) => Self::from_list(&list, active, KEYS_VAR)
                .map(Some)
                .map_err(|e| e.active_from_env()),
            (None, Some(path)) => Self::from_file(path.trim(), active)
                .map(Some)
                .map_err(|e| e.active_from_env()),
            (None, None) if active.is_some() => Err(KeyringError::new(
                KeyringErrorKind::Conflict,
                format!(
                    "{ACTIVE_KEY_VAR} is set but no keys are: set {KEYS_VAR} or {KEY_FILE_VAR}"
                ),
            )),
            (None, None) => Ok(None),
        }
    }

    fn from_entries<'t>(
        entries: impl Iterator<Item = (String, &'t str)>,
        active: Option<&str>,
        source: &str,
    ) -> Result<Self, KeyringError> {
        let malformed = |detail: String| KeyringError::new(KeyringErrorKind::Malformed, detail);
        let mut keys: Vec<Key> = Vec::new();
        let mut seen_at: Vec<String> = Vec::new();
        for (at, entry) in entries {
            let Some((id, encoded)) = entry.split_once('=') else {
                return Err(malformed(format!("{at}: expected `<key id>=<base64 key>`")));
            };
            let (id, encoded) = (id.trim(), encoded.trim());
            check_id(id).map_err(|why| malformed(format!("{at}: {why}")))?;
            if let Some(i) = keys.iter().position(|k| k.id == id) {
                return Err(malformed(format!(
                    "{at}: key `{id}` is listed twice (also at {})",
                    seen_at[i]
                )));
            }
            let key = decode_key(encoded)
                .map_err(|why| malformed(format!("{at} (key `{id}`): {why}")))?;
            keys.push(Key::new(id.to_string(), *key));
            seen_at.push(at);
        }
        if keys.is_empty() {
            return Err(malformed(format!("{source} holds no key")));
        }
        let mut ring = Self {
            active: keys.len() - 1,
            keys,
        };
        if let Some(id) = active {
            ring = ring.with_active(id)?;
        }
        Ok(ring)
    }

    /// The id of the key new events are encrypted with.
    pub fn active_key_id(&self) -> &str {
        &self.keys[self.active].id
    }

    /// Whether it holds key `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.position(id).is_some()
    }

    /// The ids of its keys, in the order they were added.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    pub(crate) fn active(&self) -> &Key {
        &self.keys[self.active]
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.keys.iter().position(|k| k.id == id)
    }

    fn ids(&self) -> String {
        self.key_ids()
            .map(|id| format!("`{id}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl KeyringError {
    /// An unknown active key named by the environment: say which variable named it.
    fn active_from_env(mut self) -> Self {
        if self.kind == KeyringErrorKind::UnknownActiveKey {
            self.detail = format!("{ACTIVE_KEY_VAR}: {}", self.detail);
        }
        self
    }
}

impl Key {
    fn new(id: String, key: [u8; KEY_LEN]) -> Self {
        let bytes = Zeroizing::new(key);
        Self {
            #[cfg(feature = "encryption")]
            cipher: Aes256Gcm::new((&*bytes).into()),
            id,
            bytes,
        }
    }
}

/// Key ids travel in a header and inside every encrypted value (`enc:v1:<id>:…`).
fn check_id(id: &str) -> Result<(), String> {
    let valid = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "key id `{}` is invalid: use 1 to {MAX_ID_LEN} letters, digits, `.`, `_` and `-`",
            id.escape_debug()
        ))
    }
}

fn decode_key(encoded: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let alphabet = if encoded.contains(['-', '_']) {
        &base64::alphabet::URL_SAFE
    } else {
        &base64::alphabet::STANDARD
    };
    let bytes = Zeroizing::new(
        GeneralPurpose::new(alphabet, config)
            .decode(encoded)
            .map_err(|_| "the key is not valid base64".to_string())?,
    );
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(format!(
            "the key is {} bytes; AES-256 needs {KEY_LEN} (make one with `openssl rand -base64 32`)",
            bytes.len()
        ));
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "eventhub: the key file {} is readable by other users (mode {:o}); `chmod 600` it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.key_ids().collect::<Vec<_>>())
            .field("active", &self.active_key_id())
            .finish()
    }
}

/// Equal when they hold the same ids with the same keys and the same active key.
impl PartialEq for Keyring {
    fn eq(&self, other: &Self) -> bool {
        self.active == other.active
            && self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|(a, b)| a.id == b.id && *a.bytes == *b.bytes)
    }
}

impl Eq for Keyring {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Base64 of a key of bytes `fill`.
    fn b64(fill: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([fill; KEY_LEN])
    }

    fn env(vars: &[(&str, &str)]) -> Result<Option<Keyring>, KeyringError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Keyring::from_lookup(|k| map.get(k).cloned())
    }

    #[track_caller]
    fn err(result: Result<Option<Keyring>, KeyringError>) -> KeyringError {
        match result {
            Ok(ring) => panic!("expected an error, got {ring:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_last_listed_key_is_active_unless_one_is_named() {
        let list = format!("k1={}, k2={}", b64(1), b64(2));
        let ring = env(&[(KEYS_VAR, &list)]).unwrap().unwrap();
        assert_eq!(ring.key_ids().collect::<Vec<_>>(), ["k1", "k2"]);
        assert_eq!(ring.active_key_id(), "k2");
        let ring = env(&[(KEYS_VAR, &list), (ACTIVE_KEY_VAR, "k1")])
            .unwrap()
            .unwrap();
        assert_eq!(ring.active_key_id(), "k1");
        assert_eq!(*ring.get("k2").unwrap().bytes, [2; KEY_LEN]);
        assert_eq!(env(&[]).unwrap(), None);
        assert_eq!(env(&[(KEYS_VAR, "")]).unwrap(), None);
    }

    #[test]
    fn url_safe_and_unpadded_keys_are_accepted() {
        let key = [0xfb; KEY_LEN]; // encodes with `+`/`/` in standard base64
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
        let std = base64::engine::general_purpose::STANDARD.encode(key);
        for encoded in [url, std.clone(), std.trim_end_matches('=').to_string()] {
            let ring = Keyring::from_list(&format!("k={encoded}"), None, KEYS_VAR).unwrap();
            assert_eq!(*ring.get("k").unwrap().bytes, key, "{encoded}");
        }
    }

    #[test]
    fn malformed_env_keys_name_the_variable_entry_and_id_but_never_the_key() {
        let short = base64::engine::general_purpose::STANDARD.encode([5u8; 16]);
        let secretish = "c2VjcmV0LXZhbHVlLXRoYXQtaXMtbm90LWEta2V5";
        let cases = [
            (
                format!("k1={},{secretish}", b64(1)),
                "EVENTHUB_ENCRYPTION_KEYS, entry 2: expected `<key id>=<base64 key>`",
            ),
            (
                format!("k1={short}"),
                "EVENTHUB_ENCRYPTION_KEYS, entry 1 (key `k1`): the key is 16 bytes; AES-256 needs 32",
            ),
            (
                format!("k1=!!{secretish}"),
                "EVENTHUB_ENCRYPTION_KEYS, entry 1 (key `k1`): the key is not valid base64",
            ),
            (
                format!("k 1={}", b64(1)),
                "EVENTHUB_ENCRYPTION_KEYS, entry 1: key id `k 1` is invalid",
            ),
            (
                format!("k1={},k1={}", b64(1), b64(2)),
                "EVENTHUB_ENCRYPTION_KEYS, entry 2: key `k1` is listed twice (also at EVENTHUB_ENCRYPTION_KEYS, entry 1)",
            ),
            (",".to_string(), "EVENTHUB_ENCRYPTION_KEYS holds no key"),
        ];
        for (value, expected) in cases {
            let e = err(env(&[(KEYS_VAR, &value)]));
            assert_eq!(e.kind(), KeyringErrorKind::Malformed, "{value}");
            assert!(e.to_string().contains(expected), "{value}: {e}");
            assert!(!e.to_string().contains(secretish), "{e}");
            assert!(!e.to_string().contains(&b64(1)), "{e}");
        }
        let e = err(env(&[
            (KEYS_VAR, &format!("k1={}", b64(1))),
            (ACTIVE_KEY_VAR, "k9"),
        ]));
        assert_eq!(e.kind(), KeyringErrorKind::UnknownActiveKey);
        assert_eq!(
            e.to_string(),
            "EVENTHUB_ENCRYPTION_KEY_ACTIVE: no key `k9` to make active; the keyring holds `k1`"
        );
        let e = err(env(&[(KEYS_VAR, "k1=x"), (KEY_FILE_VAR, "/keys")]));
        assert_eq!(e.kind(), KeyringErrorKind::Conflict);
        let e = err(env(&[(ACTIVE_KEY_VAR, "k1")]));
        assert_eq!(e.kind(), KeyringErrorKind::Conflict);
    }

    #[test]
    fn key_files_have_comments_and_name_the_line_of_a_bad_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(
            &path,
            format!("# rotated 2026-06\n\nk1 = {}\nk2={}\n", b64(1), b64(2)),
        )
        .unwrap();
        let shown = path.display().to_string();
        let ring = env(&[(KEY_FILE_VAR, &shown)]).unwrap().unwrap();
        assert_eq!(ring.active_key_id(), "k2");
        assert_eq!(*ring.get("k1").unwrap().bytes, [1; KEY_LEN]);
        let ring = Keyring::from_file(&path, Some("k1")).unwrap();
        assert_eq!(ring.active_key_id(), "k1");

        std::fs::write(&path, format!("k1={}\n# next\nk2=AAAA\n", b64(1))).unwrap();
        let e = err(env(&[(KEY_FILE_VAR, &shown)]));
        assert_eq!(
            e.to_string(),
            format!(
                "{shown}, line 3 (key `k2`): the key is 3 bytes; AES-256 needs 32 (make one with `openssl rand -base64 32`)"
            )
        );
        std::fs::write(&path, "# nothing yet\n").unwrap();
        assert!(
            err(env(&[(KEY_FILE_VAR, &shown)]))
                .to_string()
                .contains("holds no key")
        );
        let e = err(env(&[(KEY_FILE_VAR, "/nonexistent/eventhub-keys")]));
        assert_eq!(e.kind(), KeyringErrorKind::Unreadable);
        assert!(e.to_string().contains("/nonexistent/eventhub-keys"), "{e}");
    }

    #[test]
    fn builders_check_ids_and_debug_shows_no_key() {
        let ring = Keyring::new("a", [3; KEY_LEN]).unwrap();
        assert!(Keyring::new("a:b", [3; KEY_LEN]).is_err());
        assert!(ring.clone().with_key("a", [4; KEY_LEN]).is_err());
        let ring = ring.with_key("b", [4; KEY_LEN]).unwrap();
        assert_eq!(ring.active_key_id(), "b");
        assert_eq!(
            ring.clone().with_active("c").unwrap_err().kind(),
            KeyringErrorKind::UnknownActiveKey
        );
        assert_eq!(
            format!("{ring:?}"),
            r#"Keyring { keys: ["a", "b"], active: "b" }"#
        );
        assert_ne!(ring, Keyring::new("a", [3; KEY_LEN]).unwrap());
        assert_eq!(ring.clone(), ring);
    }
}
