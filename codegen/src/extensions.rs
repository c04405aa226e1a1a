//! Event-level schema extensions that become constants of the generated `impl Event`:
//!
//! - `"x-ttl": "30s"`: how long the stream keeps each event of the type (`Event::TTL`; the
//!   SDK sends `Nats-TTL`). Whole seconds, at least one (nats-server's unit and minimum). The
//!   event's stream then gets `allow_msg_ttl`.
//! - `"x-partition-key": "/order_id"`: a JSON pointer to the field whose value orders events
//!   (`Event::PARTITION_KEY`): a keyed consumer handles events with the same key in stream
//!   order. The pointer's first token must be a required property, so every event has a key.

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use quote::quote;
use serde_json::Value;

use crate::catalog::{Catalog, EventSchema};
use crate::diagnostic::Diagnostics;

/// Keyword: the event's TTL.
pub(crate) const TTL: &str = "x-ttl";
/// Keyword: the event's partition key.
pub(crate) const PARTITION_KEY: &str = "x-partition-key";

/// The extensions one event version declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Extensions {
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) partition_key: Option<String>,
}

impl Extensions {
    /// The items of the event's `impl Event` (nothing for an event without extensions: the
    /// trait's defaults are `None`).
    pub(crate) fn tokens(&self) -> TokenStream {
        let ttl = self.ttl_ms.map(|ms| {
            let ms = proc_macro2::Literal::u64_unsuffixed(ms);
            quote! {
                const TTL: ::std::option::Option<::std::time::Duration> =
                    ::std::option::Option::Some(::std::time::Duration::from_millis(#ms));
            }
        });
        let key = self.partition_key.as_ref().map(|p| {
            quote! {
                const PARTITION_KEY: ::std::option::Option<&'static str> =
                    ::std::option::Option::Some(#p);
            }
        });
        quote! { #ttl #key }
    }
}

/// The extensions of every event version, by (event type, version); problems go to `diags`.
pub(crate) fn of_catalog(
    catalog: &Catalog,
    diags: &mut Diagnostics,
) -> BTreeMap<(String, u32), Extensions> {
    catalog
        .events
        .iter()
        .map(|e| {
            (
                (e.name.event_type.clone(), e.name.version),
                of_event(e, diags),
            )
        })
        .collect()
}

/// The TTL an event declares, if valid (for the stream's `allow_msg_ttl`).
pub(crate) fn ttl_ms(root: &Value) -> Option<u64> {
    root.get(TTL)
        .and_then(Value::as_str)
        .and_then(crate::topology::parse_duration_ms)
        .filter(|ms| *ms >= 1_000 && ms % 1_000 == 0)
}

fn of_event(e: &EventSchema, diags: &mut Diagnostics) -> Extensions {
    let mut out = Extensions::default();
    if let Some(v) = e.root.get(TTL) {
        out.ttl_ms = ttl_ms(&e.root);
        if out.ttl_ms.is_none() {
            diags.push(
                &e.file,
                format!("/{TTL}"),
                format!(
                    "`{TTL}` must be a duration of whole seconds, at least 1s, like \"30s\", \
                     \"15m\", \"12h\" or \"7d\" (nats-server keeps TTLs in seconds), not {v}"
                ),
            );
        }
    }
    if let Some(v) = e.root.get(PARTITION_KEY) {
        match v.as_str() {
            Some(pointer) => match check_pointer(&e.root, pointer) {
                Ok(()) => out.partition_key = Some(pointer.to_string()),
                Err(why) => diags.push(&e.file, format!("/{PARTITION_KEY}"), why),
            },
            None => diags.push(
                &e.file,
                format!("/{PARTITION_KEY}"),
                format!("`{PARTITION_KEY}` must be a JSON pointer like \"/order_id\", not {v}"),
            ),
        }
    }
    out
}

/// The pointer's first token names a required property of the event.
fn check_pointer(root: &Value, pointer: &str) -> Result<(), String> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "`{PARTITION_KEY}` \"{pointer}\" is not a JSON pointer: it starts with `/`, like \
             \"/order_id\""
        ));
    };
    let first = rest.split('/').next().unwrap_or_default();
    let first = first.replace("~1", "/").replace("~0", "~");
    let known = root
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| p.contains_key(&first));
    if !known {
        return Err(format!(
            "`{PARTITION_KEY}` \"{pointer}\" names `{first}`, which is not a property of the \
             event"
        ));
    }
    let required = root
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(first.as_str())));
    if !required {
        return Err(format!(
            "`{PARTITION_KEY}` \"{pointer}\" names `{first}`, which is optional: add it to \
             `required`, so that every event has a key"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ttls_are_whole_seconds_of_at_least_one() {
        assert_eq!(ttl_ms(&json!({"x-ttl": "30s"})), Some(30_000));
        assert_eq!(ttl_ms(&json!({"x-ttl": "2m"})), Some(120_000));
        assert_eq!(ttl_ms(&json!({"x-ttl": "500ms"})), None);
        assert_eq!(ttl_ms(&json!({"x-ttl": "1500ms"})), None);
        assert_eq!(ttl_ms(&json!({"x-ttl": 30})), None);
        assert_eq!(ttl_ms(&json!({})), None);
    }

    #[test]
    fn a_partition_key_names_a_required_property() {
        let root = json!({
            "properties": {"order_id": {"type": "string"}, "note": {"type": "string"}},
            "required": ["order_id"]
        });
        assert!(check_pointer(&root, "/order_id").is_ok());
        assert!(
            check_pointer(&root, "order_id")
                .unwrap_err()
                .contains("starts with `/`")
        );
        assert!(
            check_pointer(&root, "/missing")
                .unwrap_err()
                .contains("not a property")
        );
        assert!(
            check_pointer(&root, "/note")
                .unwrap_err()
                .contains("optional")
        );
    }
}
