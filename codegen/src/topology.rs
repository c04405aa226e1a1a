//! The stream topology declared in `schemas/streams.json`.

use std::path::Path;

use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostics, pointer_push, suggest};
use crate::naming::SUBJECT_PREFIX;

/// Stream names eventhub keeps for itself (dead letters, captured advisories).
pub(crate) const RESERVED_STREAMS: &[&str] = &["EVENTHUB_DLQ", "EVENTHUB_ADVISORIES"];

/// One declared stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamDecl {
    pub(crate) name: String,
    pub(crate) pointer: String,
    pub(crate) description: Option<String>,
    pub(crate) subjects: Vec<String>,
    pub(crate) retention: &'static str,
    pub(crate) storage: &'static str,
    pub(crate) max_age_ms: u64,
    pub(crate) replicas: u8,
    pub(crate) duplicate_window_ms: u64,
    pub(crate) max_msg_size: Option<u64>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) discard: &'static str,
    /// `allow_msg_schedules`: the stream holds schedules of its events (nats-server 2.12).
    pub(crate) allow_msg_schedules: bool,
    /// `allow_atomic`: the stream takes atomic batches (nats-server 2.12).
    pub(crate) allow_atomic: bool,
    /// `allow_msg_ttl`: the stream honours per-message TTLs (nats-server 2.11); also set when
    /// an event of the stream declares `x-ttl`.
    pub(crate) allow_msg_ttl: bool,
    /// `subject_delete_marker_ttl`, in milliseconds.
    pub(crate) subject_delete_marker_ttl_ms: Option<u64>,
    /// Another catalog owns the stream (creates it, sets its limits): this catalog only adds
    /// its events' subjects to it.
    pub(crate) external: bool,
}

/// What an external stream declaration may say: the owner decides the rest.
const EXTERNAL_KEYS: &[&str] = &["description", "subjects", "external"];

const STREAM_KEYS: &[&str] = &[
    "external",
    "description",
    "subjects",
    "retention",
    "storage",
    "max_age",
    "replicas",
    "duplicate_window",
    "max_msg_size",
    "max_bytes",
    "discard",
    "allow_msg_schedules",
    "allow_atomic",
    "allow_msg_ttl",
    "subject_delete_marker_ttl",
];

/// The catalog's name (`catalog` in the topology document; `default` when absent): provisioning
/// records which stream subjects belong to which catalog under it, so catalogs that share a
/// stream never remove each other's subjects.
pub(crate) fn catalog_name(file: &Path, doc: &Value, diags: &mut Diagnostics) -> String {
    match doc.get("catalog") {
        None => DEFAULT_CATALOG.to_string(),
        Some(Value::String(name)) if valid_catalog_name(name) => name.clone(),
        Some(other) => {
            diags.push(
                file,
                "/catalog",
                format!(
                    "`catalog` must be a name of lowercase letters, digits and `-` (1-64, \
                     starting with a letter), not {other}"
                ),
            );
            DEFAULT_CATALOG.to_string()
        }
    }
}

/// The name of a catalog whose topology does not name it.
pub(crate) const DEFAULT_CATALOG: &str = "default";

fn valid_catalog_name(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Parses and validates the topology document. Problems go to `diags`.
pub(crate) fn parse(file: &Path, doc: &Value, diags: &mut Diagnostics) -> Vec<StreamDecl> {
    let mut out: Vec<StreamDecl> = Vec::new();
    let Some(root) = doc.as_object() else {
        diags.push(
            file,
            "",
            "the topology must be a JSON object with a `streams` object",
        );
        return out;
    };
    for k in root.keys() {
        if !["$schema", "$comment", "description", "catalog", "streams"].contains(&k.as_str()) {
            diags.push(
                file,
                pointer_push("", k),
                format!(
                    "unknown key `{k}`; expected `streams` (and optionally `catalog`, \
                     `description`)"
                ),
            );
        }
    }
    let Some(streams) = root.get("streams").and_then(Value::as_object) else {
        diags.push(
            file,
            "/streams",
            "`streams` must be an object: stream name -> declaration",
        );
        return out;
    };
    for (name, decl) in streams {
        let ptr = pointer_push("/streams", name);
        if let Some(s) = stream(file, name, &ptr, decl, diags) {
            out.push(s);
        }
    }
    for (i, a) in out.iter().enumerate() {
        for b in &out[..i] {
            for sa in &a.subjects {
                for sb in &b.subjects {
                    if subjects_overlap(sa, sb) {
                        diags.push(
                            file,
                            format!("{}/subjects", a.pointer),
                            format!(
                                "subject `{sa}` of stream {} overlaps `{sb}` of stream {}; \
                                 JetStream refuses overlapping streams, so a subject belongs to \
                                 exactly one stream",
                                a.name, b.name
                            ),
                        );
                    }
                }
            }
        }
    }
    out
}

fn stream(
    file: &Path,
    name: &str,
    ptr: &str,
    decl: &Value,
    diags: &mut Diagnostics,
) -> Option<StreamDecl> {
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid_name {
        diags.push(
            file,
            ptr,
            format!("stream name `{name}` must be 1-64 characters of A-Z, a-z, 0-9, _ and -"),
        );
    }
    if RESERVED_STREAMS.contains(&name) {
        diags.push(
            file,
            ptr,
            format!("stream name `{name}` is reserved by eventhub"),
        );
    }
    let Some(map) = decl.as_object() else {
        diags.push(file, ptr, "a stream declaration must be an object");
        return None;
    };
    let external = match map.get("external") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            diags.push(
                file,
                pointer_push(ptr, "external"),
                "`external` must be true or false",
            );
            false
        }
    };
    if external {
        return external_stream(file, name, ptr, map, diags);
    }
    for k in map.keys() {
        if !STREAM_KEYS.contains(&k.as_str()) {
            let hint = suggest(k, STREAM_KEYS.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            diags.push(
                file,
                pointer_push(ptr, k),
                format!(
                    "unknown stream setting `{k}`{hint}; known: {}",
                    STREAM_KEYS.join(", ")
                ),
            );
        }
    }
    let before = diags.len();
    let mut f = Fields {
        file,
        ptr,
        map,
        diags,
    };
    let subjects = f.subjects();
    let retention = f.choice("retention", &["limits", "interest"], Some(("workqueue",
        "work-queue retention deletes a message once one consumer acks it, so a second service would \
         never see it; use limits")));
    let storage = f.choice("storage", &["file", "memory"], None);
    let max_age_ms = f.duration("max_age", true);
    let duplicate_window_ms = f.duration("duplicate_window", false);
    let replicas = f
        .integer("replicas")
        .map(|r| u8::try_from(r).unwrap_or(u8::MAX));
    let max_msg_size = f.optional_integer("max_msg_size");
    let max_bytes = f.optional_integer("max_bytes");
    let discard = match map.get("discard") {
        None => Some("old"),
        Some(_) => f.choice("discard", &["old", "new"], None),
    };
    let allow_msg_schedules = f.flag("allow_msg_schedules");
    let allow_atomic = f.flag("allow_atomic");
    let allow_msg_ttl = f.flag("allow_msg_ttl");
    let subject_delete_marker_ttl_ms = match map.get("subject_delete_marker_ttl") {
        None => None,
        Some(_) => f.duration("subject_delete_marker_ttl", false),
    };
    let description = map
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_string);
    if allow_msg_schedules && discard == Some("new") {
        diags.push(
            file,
            pointer_push(ptr, "allow_msg_schedules"),
            "a stream with `allow_msg_schedules` must discard old messages (nats-server refuses \
             schedules with `discard: new`)",
        );
    }
    if subject_delete_marker_ttl_ms.is_some_and(|ms| ms < 1_000) {
        diags.push(
            file,
            pointer_push(ptr, "subject_delete_marker_ttl"),
            "`subject_delete_marker_ttl` must be at least 1s (nats-server's minimum)",
        );
    }
    if let Some(r) = replicas
        && !(1..=5).contains(&r)
    {
        diags.push(
            file,
            pointer_push(ptr, "replicas"),
            "replicas must be between 1 and 5 (3 for a cluster)",
        );
    }
    if let (Some(age), Some(window)) = (max_age_ms, duplicate_window_ms)
        && age > 0
        && window > age
    {
        diags.push(
            file,
            pointer_push(ptr, "duplicate_window"),
            "duplicate_window must not be longer than max_age",
        );
    }
    if diags.len() != before {
        return None;
    }
    Some(StreamDecl {
        name: name.to_string(),
        pointer: ptr.to_string(),
        description,
        subjects: subjects?,
        retention: retention?,
        storage: storage?,
        max_age_ms: max_age_ms?,
        replicas: replicas?,
        duplicate_window_ms: duplicate_window_ms?,
        max_msg_size,
        max_bytes,
        discard: discard?,
        allow_msg_schedules,
        allow_atomic,
        // Delete markers are messages with a TTL: the server needs per-message TTLs for them.
        allow_msg_ttl: allow_msg_ttl || subject_delete_marker_ttl_ms.is_some(),
        subject_delete_marker_ttl_ms,
        external: false,
    })
}

/// A stream another catalog owns: only its description and the subjects this catalog's events
/// may take in it.
fn external_stream(
    file: &Path,
    name: &str,
    ptr: &str,
    map: &Map<String, Value>,
    diags: &mut Diagnostics,
) -> Option<StreamDecl> {
    let before = diags.len();
    for k in map.keys() {
        if !EXTERNAL_KEYS.contains(&k.as_str()) {
            diags.push(
                file,
                pointer_push(ptr, k),
                format!(
                    "`{k}` cannot be set on an external stream: its owning catalog sets it \
                     (an external stream takes only {})",
                    EXTERNAL_KEYS.join(", ")
                ),
            );
        }
    }
    let mut f = Fields {
        file,
        ptr,
        map,
        diags,
    };
    let subjects = f.subjects();
    if diags.len() != before {
        return None;
    }
    Some(StreamDecl {
        name: name.to_string(),
        pointer: ptr.to_string(),
        description: map
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
        subjects: subjects?,
        retention: "limits",
        storage: "file",
        max_age_ms: 0,
        replicas: 1,
        duplicate_window_ms: 0,
        max_msg_size: None,
        max_bytes: None,
        discard: "old",
        allow_msg_schedules: false,
        allow_atomic: false,
        allow_msg_ttl: false,
        subject_delete_marker_ttl_ms: None,
        external: true,
    })
}

struct Fields<'a> {
    file: &'a Path,
    ptr: &'a str,
    map: &'a Map<String, Value>,
    diags: &'a mut Diagnostics,
}

impl Fields<'_> {
    fn get(&mut self, key: &str) -> Option<&Value> {
        let v = self.map.get(key);
        if v.is_none() {
            self.diags.push(
                self.file,
                self.ptr,
                format!("missing required setting `{key}`"),
            );
        }
        v
    }

    fn subjects(&mut self) -> Option<Vec<String>> {
        let (file, ptr) = (self.file, pointer_push(self.ptr, "subjects"));
        let v = self.get("subjects")?.clone();
        let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
            self.diags.push(
                file,
                ptr,
                "`subjects` must be a non-empty array of subjects",
            );
            return None;
        };
        let mut out = Vec::new();
        for (i, s) in items.iter().enumerate() {
            let p = format!("{ptr}/{i}");
            match s.as_str() {
                Some(s) if valid_subject_pattern(s) && s.starts_with(&format!("{SUBJECT_PREFIX}.")) => {
                    out.push(s.to_string())
                }
                Some(s) if valid_subject_pattern(s) => self.diags.push(file, p, format!(
                    "subject `{s}` is outside the event namespace: stream subjects start with `{SUBJECT_PREFIX}.`")),
                _ => self.diags.push(file, p, format!(
                    "{s} is not a valid subject: dot-separated tokens without spaces; `*` matches one token, `>` the rest")),
            }
        }
        Some(out)
    }

    fn choice(
        &mut self,
        key: &str,
        allowed: &[&'static str],
        rejected: Option<(&str, &str)>,
    ) -> Option<&'static str> {
        let (file, p) = (self.file, pointer_push(self.ptr, key));
        let v = self.get(key)?.as_str().map(str::to_string);
        match v {
            Some(s) => {
                if let Some(hit) = allowed.iter().find(|a| **a == s) {
                    return Some(hit);
                }
                let why = match rejected {
                    Some((bad, why)) if bad == s => format!("`{key}: {s}` is not supported: {why}"),
                    _ => format!("`{key}` must be one of {}", allowed.join(", ")),
                };
                self.diags.push(file, p, why);
                None
            }
            None => {
                self.diags.push(
                    file,
                    p,
                    format!("`{key}` must be one of {}", allowed.join(", ")),
                );
                None
            }
        }
    }

    fn duration(&mut self, key: &str, zero_ok: bool) -> Option<u64> {
        let (file, p) = (self.file, pointer_push(self.ptr, key));
        let v = self.get(key)?.clone();
        match v.as_str().and_then(parse_duration_ms) {
            Some(0) if !zero_ok => {
                self.diags
                    .push(file, p, format!("`{key}` must be longer than 0"));
                None
            }
            Some(ms) => Some(ms),
            None => {
                self.diags.push(file, p, format!(
                    "`{key}` must be a duration like \"500ms\", \"30s\", \"2m\", \"12h\" or \"90d\"{}",
                    if zero_ok { " (\"0s\" = unlimited)" } else { "" }));
                None
            }
        }
    }

    /// An optional `true`/`false` setting (default `false`).
    fn flag(&mut self, key: &str) -> bool {
        match self.map.get(key) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.diags.push(
                    self.file,
                    pointer_push(self.ptr, key),
                    format!("`{key}` must be true or false"),
                );
                false
            }
        }
    }

    fn integer(&mut self, key: &str) -> Option<u64> {
        let (file, p) = (self.file, pointer_push(self.ptr, key));
        let v = self.get(key)?.clone();
        let n = v.as_u64();
        if n.is_none() {
            self.diags
                .push(file, p, format!("`{key}` must be a positive integer"));
        }
        n
    }

    fn optional_integer(&mut self, key: &str) -> Option<u64> {
        let v = self.map.get(key)?;
        // JetStream stores max_msg_size as an i32.
        let fits = |n: &u64| *n > 0 && (key != "max_msg_size" || *n <= i32::MAX as u64);
        match v.as_u64().filter(fits) {
            Some(n) => Some(n),
            None => {
                self.diags.push(
                    self.file,
                    pointer_push(self.ptr, key),
                    format!("`{key}` must be a positive number of bytes"),
                );
                None
            }
        }
    }
}

/// `500ms`, `30s`, `2m`, `12h`, `90d` -> milliseconds.
pub(crate) fn parse_duration_ms(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

fn valid_subject_pattern(s: &str) -> bool {
    let tokens: Vec<&str> = s.split('.').collect();
    tokens.iter().enumerate().all(|(i, t)| {
        !t.is_empty()
            && !t.contains(|c: char| c.is_whitespace())
            && (*t == "*" || *t == ">" || !t.contains(['*', '>']))
            && (*t != ">" || i == tokens.len() - 1)
    })
}

/// Whether `subject` (no wildcards) matches `pattern` (may contain `*` and `>`).
pub(crate) fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some subject could match both patterns.
pub(crate) fn subjects_overlap(a: &str, b: &str) -> bool {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(p), Some(q)) if p == "*" || q == "*" || p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(doc: Value) -> (Vec<StreamDecl>, Vec<String>) {
        let mut d = Diagnostics::default();
        let s = parse(Path::new("schemas/streams.json"), &doc, &mut d);
        let msgs = d
            .check()
            .err()
            .map(|e| e.diagnostics().iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        (s, msgs)
    }

    fn decl(subjects: Value) -> Value {
        json!({"subjects": subjects, "retention": "limits", "storage": "file", "max_age": "30d", "replicas": 1, "duplicate_window": "2m"})
    }

    #[test]
    fn parses_a_valid_topology() {
        let (s, msgs) = check(json!({"streams": {"USERS": decl(json!(["events.user.>"]))}}));
        assert!(msgs.is_empty(), "{msgs:?}");
        assert_eq!(s[0].max_age_ms, 30 * 86_400_000);
        assert_eq!(s[0].duplicate_window_ms, 120_000);
        assert_eq!(s[0].discard, "old");
    }

    #[test]
    fn rejects_overlaps_workqueue_and_typos() {
        let mut bad = decl(json!(["events.user.*"]));
        bad["retention"] = json!("workqueue");
        bad["max_agee"] = json!("1d");
        let (_, msgs) = check(
            json!({"streams": {"A": decl(json!(["events.user.>"])), "B": decl(json!(["events.user.created"])), "C": bad}}),
        );
        let all = msgs.join("\n");
        assert!(all.contains("#/streams/B/subjects: subject `events.user.created` of stream B overlaps `events.user.>` of stream A"), "{all}");
        assert!(
            all.contains("#/streams/C/retention: `retention: workqueue` is not supported"),
            "{all}"
        );
        assert!(
            all.contains(
                "#/streams/C/max_agee: unknown stream setting `max_agee` (did you mean `max_age`?)"
            ),
            "{all}"
        );
    }

    #[test]
    fn jetstream_flags_parse_and_conflicts_are_refused() {
        let mut flags = decl(json!(["events.order.>"]));
        flags["allow_msg_schedules"] = json!(true);
        flags["allow_atomic"] = json!(true);
        flags["subject_delete_marker_ttl"] = json!("15m");
        let (s, msgs) = check(json!({"streams": {"ORDERS": flags}}));
        assert!(msgs.is_empty(), "{msgs:?}");
        assert!(s[0].allow_msg_schedules && s[0].allow_atomic);
        // Delete markers need per-message TTLs.
        assert!(s[0].allow_msg_ttl);
        assert_eq!(s[0].subject_delete_marker_ttl_ms, Some(900_000));
        let (s, _) = check(json!({"streams": {"USERS": decl(json!(["events.user.>"]))}}));
        assert!(!s[0].allow_msg_schedules && !s[0].allow_atomic && !s[0].allow_msg_ttl);

        let mut bad = decl(json!(["events.order.>"]));
        bad["allow_msg_schedules"] = json!(true);
        bad["discard"] = json!("new");
        bad["allow_atomic"] = json!("yes");
        bad["subject_delete_marker_ttl"] = json!("500ms");
        let (_, msgs) = check(json!({"streams": {"ORDERS": bad}}));
        let all = msgs.join("\n");
        assert!(all.contains("#/streams/ORDERS/allow_msg_schedules: a stream with `allow_msg_schedules` must discard old"), "{all}");
        assert!(
            all.contains("#/streams/ORDERS/allow_atomic: `allow_atomic` must be true or false"),
            "{all}"
        );
        assert!(all.contains("#/streams/ORDERS/subject_delete_marker_ttl: `subject_delete_marker_ttl` must be at least 1s"), "{all}");
    }

    #[test]
    fn subject_matching() {
        assert!(subject_matches("events.user.>", "events.user.created.v1"));
        assert!(subject_matches(
            "events.*.created.v1",
            "events.user.created.v1"
        ));
        assert!(!subject_matches("events.user.*", "events.user.created.v1"));
        assert!(subjects_overlap("events.*.x", "events.user.>"));
        assert!(!subjects_overlap("events.user.>", "events.auth.>"));
        assert_eq!(parse_duration_ms("90d"), Some(90 * 86_400_000));
        assert_eq!(parse_duration_ms("1.5h"), None);
    }
}
