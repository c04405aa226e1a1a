//! Running typify without letting it panic the build.
//!
//! The validator rejects every construct known to make typify 0.8 panic; this is the backstop for
//! the ones nobody knows yet. A panic becomes an error message, and the panic hook stays quiet
//! for it so the build output shows our diagnostic instead of a backtrace.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use proc_macro2::TokenStream;
use schemars::schema::Schema;
use serde_json::Value;
use typify::{TypeSpace, TypeSpaceSettings};

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(msg));
            } else {
                previous(info);
            }
        }));
    });
}

/// What typify produced for one set of definitions.
pub(crate) struct Typified {
    pub(crate) tokens: TokenStream,
    /// Names of every type typify defined (to detect clashes with our own items).
    pub(crate) type_names: Vec<String>,
}

/// Converts `defs` with typify; a typify error or panic becomes `Err(message)`.
pub(crate) fn typify(
    settings: &TypeSpaceSettings,
    defs: &[(String, Value)],
) -> Result<Typified, String> {
    let mut schemas = Vec::with_capacity(defs.len());
    for (name, v) in defs {
        let schema: Schema = serde_json::from_value(v.clone())
            .map_err(|e| format!("not a schema typify can read: {e}"))?;
        schemas.push((name.clone(), schema));
    }
    install_hook();
    QUIET.with(|q| q.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut space = TypeSpace::new(settings);
        space.add_ref_types(schemas).map_err(|e| describe(&e))?;
        let type_names = space.iter_types().map(|t| t.name()).collect();
        Ok(Typified {
            tokens: space.to_stream(),
            type_names,
        })
    }));
    QUIET.with(|q| q.set(false));
    match result {
        Ok(r) => r,
        Err(_) => {
            let msg = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_default();
            let first_line = msg.lines().next().unwrap_or("").trim();
            Err(format!(
                "typify cannot handle this construct ({first_line})"
            ))
        }
    }
}

/// typify's errors, in terms of what to change in the schema.
fn describe(e: &typify::Error) -> String {
    match e {
        typify::Error::InvalidValue | typify::Error::BadValue(..) => {
            "a `default`, `const` or `enum` value does not match the type the schema declares"
                .to_string()
        }
        typify::Error::InvalidSchema { reason, .. } => {
            format!("typify cannot generate a Rust type for this schema: {reason}")
        }
        other => format!("typify cannot generate a Rust type for this schema: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The validator keeps `not` away from typify; this proves the backstop turns typify's panic
    /// on it into an error instead of aborting the build.
    #[test]
    fn typify_panic_becomes_an_error() {
        let schema = json!({"type": "object", "properties": {"x": {"not": {"enum": [{"a": 1}]}}}});
        let err = typify(&TypeSpaceSettings::default(), &[("T".into(), schema)])
            .err()
            .expect("typify panics on `not` with object enums");
        assert!(
            err.starts_with("typify cannot handle this construct ("),
            "{err}"
        );
        assert!(err.contains("not"), "{err}");
    }
}
