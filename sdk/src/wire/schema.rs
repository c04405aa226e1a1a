//! Validation of event data against its JSON Schema: the one check that publishing, consuming,
//! the CLI and the HTTP gateway share, so an event is valid in every one of them or in none.
//!
//! It is what the schema says, no more, no less: types and `null`, required properties, closed
//! objects, enums and consts, string lengths, patterns and formats (`email`, `uri`,
//! `date-time`, `uuid`…), numeric bounds and `multipleOf`, array bounds and `uniqueItems`,
//! `oneOf`/`anyOf`/`allOf`. Decoding into the generated Rust types alone would let some of
//! that through (an empty string as an email, `null` for an optional string) and refuse some
//! valid data; validation runs before it.
//!
//! Fields marked `x-sensitive` travel encrypted (`enc:v1:…`): until a consumer decrypts them,
//! only their type is checked; once decrypted, everything is.

use std::fmt;

use serde_json::Value;

/// A compiled JSON Schema of one event version.
pub struct Validator {
    compiled: Result<jsonschema::Validator, String>,
    /// The event's `x-sensitive` fields, as JSON pointers (`*` for any array index).
    sensitive: &'static [&'static str],
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("compiled", &self.compiled.is_ok())
            .field("sensitive", &self.sensitive)
            .finish()
    }
}

/// One way data breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where, as a JSON pointer into the data (`/email`, `/items/0/qty`; empty for the whole).
    pub pointer: String,
    /// The schema keyword that failed (`format`, `required`, `type`, `minLength`…).
    pub keyword: String,
    /// What is wrong, e.g. `"not-an-email" is not a "email"`.
    pub message: String,
}

impl Violation {
    /// The pointer in dotted form below `root` (`data.email`, `data.items.0.qty`; `data` for
    /// the whole), as HTTP APIs usually name fields.
    pub fn field(&self, root: &str) -> String {
        let mut out = root.to_string();
        for token in self.pointer.split('/').skip(1) {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token.replace("~1", "/").replace("~0", "~"));
        }
        out
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "at {at}: {} ({})", self.message, self.keyword)
    }
}

/// Every violation found, at least one. Displays as `at /email: … (format); at …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

impl Validator {
    /// Compiles the self-contained schema of an event
    /// ([`EventInfo::schema`](crate::EventInfo::schema)), whose `x-sensitive` fields are at the
    /// JSON pointers `sensitive`. A schema that does not compile makes every check fail with a
    /// violation saying so (the codegen's checks make that unreachable for generated catalogs).
    pub fn for_event(schema: &str, sensitive: &'static [&'static str]) -> Self {
        Self {
            compiled: compile(schema),
            sensitive,
        }
    }

    /// The validator of an event's `schema` (see [`Validator::for_event`]), compiled on first
    /// use and kept for the process (catalog entries are static, so there is one per event
    /// version).
    pub fn cached(schema: &'static str, sensitive: &'static [&'static str]) -> &'static Validator {
        use std::collections::HashMap;
        use std::sync::{OnceLock, RwLock};
        static CACHE: OnceLock<RwLock<HashMap<usize, &'static Validator>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        // The schema text is static: its address names the entry.
        let key = schema.as_ptr() as usize;
        if let Some(v) = cache.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return v;
        }
        let mut cache = cache.write().unwrap_or_else(|p| p.into_inner());
        cache.entry(key).or_insert_with(|| {
            Box::leak(Box::new(Validator {
                compiled: compile(schema),
                sensitive,
            }))
        })
    }

    /// Compiles a schema given as JSON text (no `x-sensitive` fields).
    pub fn new(schema: &str) -> Self {
        Self {
            compiled: compile(schema),
            sensitive: &[],
        }
    }

    /// Checks `data` against the schema.
    pub fn check(&self, data: &Value) -> Result<(), Violations> {
        self.check_filtered(data, false)
    }

    /// Checks `data` as it travels: fields marked `x-sensitive` that hold ciphertext
    /// (`enc:v1:…`) are only checked to be strings.
    pub(crate) fn check_wire(&self, data: &Value) -> Result<(), Violations> {
        self.check_filtered(data, !self.sensitive.is_empty())
    }

    fn check_filtered(&self, data: &Value, skip_ciphertext: bool) -> Result<(), Violations> {
        let validator = match &self.compiled {
            Ok(v) => v,
            Err(e) => {
                return Err(Violations(vec![Violation {
                    pointer: String::new(),
                    keyword: "$schema".into(),
                    message: format!("the event's schema does not compile: {e}"),
                }]));
            }
        };
        if validator.is_valid(data) {
            return Ok(());
        }
        let found: Vec<Violation> = validator
            .iter_errors(data)
            .map(|e| Violation {
                pointer: e.instance_path().as_str().to_string(),
                keyword: e
                    .schema_path()
                    .as_str()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                message: e.to_string(),
            })
            .filter(|v| !(skip_ciphertext && self.is_ciphertext(data, &v.pointer)))
            .collect();
        if found.is_empty() {
            Ok(())
        } else {
            Err(Violations(found))
        }
    }

    /// Whether `pointer` is a sensitive field of `data` that holds ciphertext.
    fn is_ciphertext(&self, data: &Value, pointer: &str) -> bool {
        let matches = |pattern: &str| {
            let mut a = pattern.split('/');
            let mut b = pointer.split('/');
            loop {
                match (a.next(), b.next()) {
                    (None, None) => return true,
                    (Some("*"), Some(t)) if t.parse::<usize>().is_ok() => {}
                    (Some(x), Some(y)) if x == y => {}
                    _ => return false,
                }
            }
        };
        self.sensitive.iter().any(|p| matches(p))
            && data
                .pointer(pointer)
                .and_then(Value::as_str)
                .is_some_and(|s| s.starts_with(crate::wire::crypto::PREFIX))
    }
}

fn compile(schema: &str) -> Result<jsonschema::Validator, String> {
    let schema: Value = serde_json::from_str(schema).map_err(|e| e.to_string())?;
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r#"{
        "type": "object",
        "properties": {
            "email": {"type": "string", "format": "email"},
            "name": {"type": "string", "minLength": 1},
            "tags": {"type": "array", "items": {"type": "string", "format": "email"}}
        },
        "required": ["email"]
    }"#;

    #[test]
    fn formats_null_and_required_are_checked() {
        let v = Validator::new(SCHEMA);
        assert!(v.check(&json!({"email": "ada@example.com"})).is_ok());
        for (data, pointer, keyword) in [
            (json!({"email": ""}), "/email", "format"),
            (json!({"email": "nope"}), "/email", "format"),
            (json!({"email": "a@b.c", "name": null}), "/name", "type"),
            (json!({"email": "a@b.c", "name": ""}), "/name", "minLength"),
            (json!({}), "", "required"),
        ] {
            let err = v.check(&data).unwrap_err();
            assert_eq!(err.0[0].pointer, pointer, "{data}: {err}");
            assert_eq!(err.0[0].keyword, keyword, "{data}: {err}");
        }
    }

    #[test]
    fn ciphertext_in_sensitive_fields_passes_the_wire_check_only() {
        let v = Validator::for_event(SCHEMA, &["/email", "/tags/*"]);
        let wire = json!({"email": "enc:v1:k:abc", "tags": ["enc:v1:k:x", "plain"], "name": ""});
        let err = v.check_wire(&wire).unwrap_err();
        let mut pointers: Vec<&str> = err.0.iter().map(|v| v.pointer.as_str()).collect();
        pointers.sort();
        assert_eq!(pointers, ["/name", "/tags/1"], "{err}");
        assert!(v.check(&wire).is_err());
    }

    #[test]
    fn fields_read_dotted() {
        let v = Violation {
            pointer: "/items/0/a~1b".into(),
            keyword: "type".into(),
            message: String::new(),
        };
        assert_eq!(v.field("data"), "data.items.0.a/b");
        assert_eq!(v.field(""), "items.0.a/b");
    }
}
