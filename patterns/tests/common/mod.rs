//! What the tests share: a `user` aggregate over the catalog's user events, and a server.
#![allow(dead_code, unreachable_pub)]

use eventhub::error::DecodeError;
use eventhub::{Client, ConnectOptions, Consumable, Upcasted};
use eventhub_catalog::events::user;
use eventhub_patterns::{Aggregate, DomainEvent, EncodeError, Encoded, Recorded};
use serde::{Deserialize, Serialize};

pub use eventhub_testkit::NatsServer;

pub async fn connect(server: &NatsServer, service: &str) -> Client {
    Client::connect(ConnectOptions::new(service).url(server.client_url()))
        .await
        .expect("connect")
}

/// A nats-server on the repository's generated `nats.conf`, each user with its test password.
pub fn secured() -> NatsServer {
    NatsServer::with_generated_conf(concat!(env!("CARGO_MANIFEST_DIR"), "/../nats.conf"))
}

/// `user` connected to a [`secured`] server with its test password.
pub async fn connect_as(server: &NatsServer, user: &str) -> Client {
    Client::connect(
        ConnectOptions::new(user)
            .url(server.client_url())
            .user_password(user, eventhub_testkit::test_password(user)),
    )
    .await
    .unwrap_or_else(|e| panic!("{user} connects: {e}"))
}

pub const USER_ID: &str = "0190b8d2-5a8e-7c3e-9d5e-1f2a3b4c5d6e";

/// The events of a user, as this build knows them: `user.created` is v2 (v1 is upcast).
#[derive(Debug, Clone, PartialEq)]
pub enum UserEvent {
    Created(user::CreatedV2),
    Updated(user::UpdatedV1),
    Deleted(user::DeletedV1),
}

impl DomainEvent for UserEvent {
    fn encode(&self) -> Result<Encoded, EncodeError> {
        match self {
            UserEvent::Created(e) => Encoded::of(e),
            UserEvent::Updated(e) => Encoded::of(e),
            UserEvent::Deleted(e) => Encoded::of(e),
        }
    }

    fn decode(r: &Recorded) -> Option<Result<Self, DecodeError>> {
        let (v, raw) = (r.version, r.raw());
        Some(match r.event_type.as_str() {
            "user.created" => Upcasted::<user::Created, user::CreatedV2>::decode(v, &raw)
                .map(|e| UserEvent::Created(e.into_inner())),
            "user.updated" => user::UpdatedV1::decode(v, &raw).map(UserEvent::Updated),
            "user.deleted" => user::DeletedV1::decode(v, &raw).map(UserEvent::Deleted),
            _ => return None,
        })
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub email: Option<String>,
    pub locale: Option<String>,
    /// Every display name it had, in order: the history the tests compare.
    pub names: Vec<String>,
    pub deleted: bool,
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Event = UserEvent;

    fn apply(&mut self, event: UserEvent) {
        match event {
            UserEvent::Created(e) => {
                self.email = Some(e.email);
                self.locale = Some(String::from(e.locale));
            }
            UserEvent::Updated(e) => {
                if let Some(name) = e.display_name {
                    self.names.push(String::from(name));
                }
                if let Some(email) = e.email {
                    self.email = Some(email);
                }
            }
            UserEvent::Deleted(_) => self.deleted = true,
        }
    }
}

pub fn created_v2(email: &str) -> UserEvent {
    UserEvent::Created(
        serde_json::from_value(serde_json::json!({
            "user_id": USER_ID, "email": email, "locale": "de-DE",
            "created_at": "2026-01-02T03:04:05Z"
        }))
        .unwrap(),
    )
}

pub fn renamed(name: &str) -> UserEvent {
    UserEvent::Updated(
        serde_json::from_value(serde_json::json!({
            "user_id": USER_ID, "changed_fields": ["display_name"], "display_name": name,
            "updated_at": "2026-01-02T03:04:05Z"
        }))
        .unwrap(),
    )
}
