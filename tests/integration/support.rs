//! Helpers shared by the integration tests.

use eventhub::events::{shared, user};
use eventhub::testing::NatsServer;
use eventhub::{Client, ConnectOptions};

/// A fresh server and a client of `service` connected to it.
pub(crate) async fn server_and_client(service: &str) -> (NatsServer, Client) {
    let server = NatsServer::start();
    let client = connect(&server, service).await;
    (server, client)
}

/// A client of `service` connected to `server`.
pub(crate) async fn connect(server: &NatsServer, service: &str) -> Client {
    Client::connect(ConnectOptions::new(service).url(server.client_url()))
        .await
        .expect("connect to the test server")
}

/// A `user.created` v1 event with a fresh user id.
pub(crate) fn user_created_v1(email: &str) -> user::CreatedV1 {
    serde_json::from_value(serde_json::json!({
        "user_id": uuid::Uuid::now_v7(),
        "email": email,
        "display_name": "Ada",
        "created_at": "2026-11-23T10:00:00Z",
    }))
    .expect("a valid user.created v1")
}

/// The user id of an event, for assertions.
#[allow(dead_code)]
pub(crate) fn user_id(e: &user::CreatedV1) -> &shared::UserId {
    &e.user_id
}
