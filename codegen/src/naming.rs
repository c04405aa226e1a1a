//! Naming rules: file path -> event type, version, subject and Rust names.

/// Prefix of every event subject: `events.<type>.v<version>`.
pub const SUBJECT_PREFIX: &str = "events";

/// Directory (directly under the catalog root) that holds shared definitions.
pub const SHARED_DIR: &str = "shared";

/// File (directly under the catalog root) that declares the stream topology.
pub const TOPOLOGY_FILE: &str = "streams.json";

/// File (directly under the catalog root) that declares the services: who publishes and who
/// consumes which events ([`crate::services`]).
pub const SERVICES_FILE: &str = "services.json";

/// What a schema file's path says about the event it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventName {
    /// `user.created`
    pub(crate) event_type: String,
    /// `1`
    pub(crate) version: u32,
    /// `user` (first segment: the Rust module)
    pub(crate) domain: String,
    /// `Created` (the rest, PascalCase: the family enum)
    pub(crate) family_ident: String,
}

impl EventName {
    /// `CreatedV1`
    pub(crate) fn struct_ident(&self) -> String {
        format!("{}V{}", self.family_ident, self.version)
    }

    /// `events.user.created.v1`
    pub(crate) fn subject(&self) -> String {
        format!("{SUBJECT_PREFIX}.{}.v{}", self.event_type, self.version)
    }

    /// The Rust module of the domain (`user`, or `photo_booth` for `photo-booth`).
    pub(crate) fn module(&self) -> String {
        module_ident(&self.domain)
    }
}

/// Parses the path of an event schema relative to the catalog root, split into its components
/// (`["user", "created.v1.json"]`). Errors say what the convention is.
pub(crate) fn parse_event_path(components: &[&str]) -> Result<EventName, String> {
    let (file, dirs) = components.split_last().ok_or("empty path")?;
    if dirs.is_empty() {
        return Err(format!(
            "event schemas live in a domain directory: expected schemas/<domain>/<name>.v<N>.json, \
             e.g. schemas/user/created.v1.json (only {TOPOLOGY_FILE} and {SERVICES_FILE} sit at the top level)"
        ));
    }
    let stem = file
        .strip_suffix(".json")
        .ok_or("schema files end in .json")?;
    let (name, version) = stem.rsplit_once(".v").ok_or_else(|| {
        format!(
            "file name `{file}` does not follow <name>.v<N>.json: the version is part of the \
             file name, e.g. `{}.v1.json`",
            stem
        )
    })?;
    let version = parse_version(version).map_err(|why| format!("file name `{file}`: {why}"))?;
    let mut segments: Vec<&str> = dirs.to_vec();
    segments.extend(name.split('.'));
    for seg in &segments {
        check_segment(seg)?;
    }
    if segments.len() < 2 {
        return Err("an event type has a domain and a name, e.g. user.created".into());
    }
    let domain = segments[0].to_string();
    if domain == SHARED_DIR {
        return Err(format!(
            "`{SHARED_DIR}/` holds shared definitions, not events: files there have no version suffix"
        ));
    }
    if is_rust_keyword(&module_ident(&domain)) {
        return Err(format!(
            "domain `{domain}` is a Rust keyword and cannot be a module name; rename the directory"
        ));
    }
    let family_ident = segments[1..].iter().map(|s| pascal(s)).collect::<String>();
    Ok(EventName {
        event_type: segments.join("."),
        version,
        domain,
        family_ident,
    })
}

fn parse_version(v: &str) -> Result<u32, String> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "version `v{v}` must be `v` followed by a number, e.g. v1"
        ));
    }
    if v.starts_with('0') {
        return Err(format!(
            "version `v{v}`: versions start at 1 and have no leading zeros"
        ));
    }
    v.parse()
        .map_err(|_| format!("version `v{v}` is too large"))
}

/// A segment of an event type: lowercase kebab-case, starting with a letter.
fn check_segment(seg: &str) -> Result<(), String> {
    let ok = !seg.is_empty()
        && seg.as_bytes()[0].is_ascii_lowercase()
        && !seg.ends_with('-')
        && !seg.contains("--")
        && seg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{seg}` is not a valid event name segment: use lowercase kebab-case starting with a \
             letter (a-z, 0-9, -), e.g. `status-changed`"
        ))
    }
}

/// `status-changed` -> `StatusChanged`
pub(crate) fn pascal(s: &str) -> String {
    s.split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// `photo-booth` -> `photo_booth`
pub(crate) fn module_ident(domain: &str) -> String {
    domain.replace('-', "_")
}

/// `CreatedV1` -> `CREATED_V1`
pub(crate) fn const_ident(pascal: &str) -> String {
    let mut out = String::new();
    for (i, c) in pascal.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Names of definitions (shared or local): PascalCase, as they become Rust type names.
pub(crate) fn check_definition_name(name: &str) -> Result<(), String> {
    let ok = name.as_bytes().first().is_some_and(u8::is_ascii_uppercase)
        && name.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "definition name `{name}` must be PascalCase (A-Z first, then letters and digits), \
             because it becomes a Rust type name"
        ))
    }
}

fn is_rust_keyword(s: &str) -> bool {
    matches!(
        s,
        "as" | "break"
            | "const"
            | "continue"
            | "crate"
            | "else"
            | "enum"
            | "extern"
            | "false"
            | "fn"
            | "for"
            | "if"
            | "impl"
            | "in"
            | "let"
            | "loop"
            | "match"
            | "mod"
            | "move"
            | "mut"
            | "pub"
            | "ref"
            | "return"
            | "self"
            | "Self"
            | "static"
            | "struct"
            | "super"
            | "trait"
            | "true"
            | "type"
            | "unsafe"
            | "use"
            | "where"
            | "while"
            | "async"
            | "await"
            | "dyn"
            | "abstract"
            | "become"
            | "box"
            | "do"
            | "final"
            | "macro"
            | "override"
            | "priv"
            | "typeof"
            | "unsized"
            | "virtual"
            | "yield"
            | "try"
            | "gen"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_paths() {
        let n = parse_event_path(&["user", "created.v2.json"]).unwrap();
        assert_eq!(n.event_type, "user.created");
        assert_eq!(n.version, 2);
        assert_eq!(n.struct_ident(), "CreatedV2");
        assert_eq!(n.subject(), "events.user.created.v2");

        let n = parse_event_path(&["photo", "processing", "started.v1.json"]).unwrap();
        assert_eq!(n.event_type, "photo.processing.started");
        assert_eq!(n.family_ident, "ProcessingStarted");

        let n = parse_event_path(&["payment", "status-changed.v1.json"]).unwrap();
        assert_eq!(n.struct_ident(), "StatusChangedV1");
        assert_eq!(n.subject(), "events.payment.status-changed.v1");
    }

    #[test]
    fn off_convention_paths_are_explained() {
        let err = |p: &[&str]| parse_event_path(p).unwrap_err();
        assert!(err(&["user", "created.json"]).contains("<name>.v<N>.json"));
        assert!(err(&["user", "Created.v1.json"]).contains("kebab-case"));
        assert!(err(&["user", "created.v0.json"]).contains("start at 1"));
        assert!(err(&["user", "created.v01.json"]).contains("leading zeros"));
        assert!(err(&["created.v1.json"]).contains("domain directory"));
        assert!(err(&["type", "created.v1.json"]).contains("Rust keyword"));
        assert!(err(&["user", "created_at.v1.json"]).contains("kebab-case"));
    }

    #[test]
    fn identifiers() {
        assert_eq!(pascal("status-changed"), "StatusChanged");
        assert_eq!(const_ident("StatusChangedV1"), "STATUS_CHANGED_V1");
        assert!(check_definition_name("Money").is_ok());
        assert!(check_definition_name("money").is_err());
        assert!(check_definition_name("Line_Item").is_err());
    }
}
