//! The declaration of services (`schemas/services.json`): which service publishes which events,
//! which consumes them through which durable, and what else each may use. It is the one source
//! of the NATS permissions ([`nats`] renders them as a `nats.conf`), of the event-flow views and
//! of the docs.
//!
//! ```json
//! {
//!   "operators": ["ops"],
//!   "sweeper": "sweeper",
//!   "services": {
//!     "auth": { "publishes": ["user.created"] },
//!     "profile": {
//!       "consumes": [{ "event": "user.created", "versions": [2], "idempotency": "24h" }],
//!       "health": true,
//!       "metrics": true
//!     }
//!   }
//! }
//! ```
//!
//! Typed request-reply is declared too: `"responds": ["user.lookup"]` lets a service answer
//! the requests of type `user.lookup` (`rpc.user.lookup.v<N>`, in its queue group; it may
//! publish only replies to the requests it received), `"requests": ["user.lookup"]` lets a
//! service send them. A request type has exactly one responding service.
//!
//! Sagas and event-sourced aggregates of eventhub-patterns are declared by the service that
//! runs or owns them: `"sagas": [{"name": "registration", "inputs": ["user.created"]}]` (its
//! durables, bucket and timer stream), `"aggregates": ["account"]` (stream `ES_ACCOUNT` on
//! `es.account.*`, bucket `ES_SNAPSHOTS_ACCOUNT`). A saga or an aggregate type has exactly one
//! service; an operator provisions their streams, buckets and durables (`eventhub config
//! apply`), the service only uses them.
//!
//! An event type has exactly one publishing service (its owner; a `gateway` may publish it on
//! the owner's behalf). A consumed entry is one durable consumer, named
//! `<service>__<event type with . and - as _>` unless `durable` says otherwise. The JSON Schema
//! of the file is `codegen/services.schema.json`; [`Services::load`] checks everything it
//! cannot (unknown events, a consumed event nobody publishes, duplicate durables…) and reports
//! every problem with the file and a JSON pointer.

mod declaration;
pub mod nats;
mod parse;
mod permissions;

use std::path::{Path, PathBuf};

use crate::catalog::Catalog;
use crate::diagnostic::{Diagnostic, Error};
use crate::naming::SERVICES_FILE;

pub use declaration::{
    ACCOUNT, ADVISORY_STREAM, Aggregate, Consumer, DLQ_STREAM, Gateway, IDEMPOTENCY_PREFIX,
    Published, RequestType, SWEEPER_DURABLE, SYSTEM_ACCOUNT, SYSTEM_USER, Saga, Service, Services,
    default_durable, inbox_prefix, password_var,
};
pub use permissions::{Permissions, Role, User};

impl Services {
    /// Reads `<dir>/services.json` and validates it against `catalog` (loaded from `dir`);
    /// `Ok(None)` when the file does not exist.
    pub fn load(dir: &Path, catalog: &Catalog) -> Result<Option<Services>, Error> {
        let path = dir.join(SERVICES_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let label = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("schemas"));
        Self::load_file(&path, &label.join(SERVICES_FILE), catalog).map(Some)
    }

    /// Reads the declaration at `path` (shown as `shown` in messages) and validates it against
    /// `catalog`.
    pub fn load_file(path: &Path, shown: &Path, catalog: &Catalog) -> Result<Services, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::InvalidServices(vec![Diagnostic::new(
                shown,
                "",
                format!("not valid JSON: {e}"),
            )])
        })?;
        Self::parse(shown, &doc, catalog)
    }

    /// Validates a declaration document (`file` is how messages name it).
    pub fn parse(
        file: &Path,
        doc: &serde_json::Value,
        catalog: &Catalog,
    ) -> Result<Services, Error> {
        parse::parse(file, doc, catalog)
    }

    /// Every user the configuration declares, operators first, then services, the sweeper,
    /// the gateway and the system user, each with its permissions.
    pub fn users(&self) -> Vec<User> {
        permissions::users(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_sdk() {
        assert_eq!(
            default_durable("admin", "payment.status-changed"),
            "admin__payment_status_changed"
        );
        assert_eq!(inbox_prefix("photo"), "_INBOX_photo");
        assert_eq!(password_var("photo-x"), "EVENTHUB_PHOTO_X_PASSWORD");
    }
}
