//! The gateway as the `gateway` user of the repository's generated nats.conf (passwords
//! set per user), the dashboard as the `ops` operator: the generated permissions are enough
//! to publish for a declared service, follow its events over WebSocket and report health.

mod support;

use std::time::Duration;

use eventhub::{Client, ConnectOptions};
use eventhub_gateway::{Config, Gateway};
use eventhub_testkit::NatsServer;
use futures::StreamExt;
use serde_json::Value;
use support::*;
use tokio_tungstenite::tungstenite::Message;

fn password(user: &str) -> String {
    eventhub_testkit::test_password(user)
}

/// A nats-server on the repository's generated `nats.conf`, each user with its test password.
fn secured_server() -> NatsServer {
    NatsServer::with_generated_conf(concat!(env!("CARGO_MANIFEST_DIR"), "/../nats.conf"))
}

fn as_user(server: &NatsServer, service: &str, user: &str) -> ConnectOptions {
    ConnectOptions::new(service)
        .url(server.client_url())
        .user_password(user, password(user))
        .request_timeout(Duration::from_secs(3))
}

#[tokio::test]
async fn the_generated_gateway_user_publishes_follows_and_checks_health() {
    let server = secured_server();
    let ops = Client::connect(as_user(&server, "ops", "ops"))
        .await
        .unwrap();
    ops.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let config = Config::new(as_user(&server, "gateway", "gateway"), schemas_dir())
        .keys(keys())
        .jwt_secret(JWT_SECRET)
        .operator(as_user(&server, "ops", "ops"));
    let gateway = Gateway::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = gateway.local_addr();
    let http = reqwest::Client::new();

    let resp = http
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let health: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{health}");

    let owner = uuid();
    let token = jwt("photo", Some(&owner), JWT_SECRET);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{addr}/v1/stream?types=photo.*&token={token}"
    ))
    .await
    .expect("the gateway user may follow PHOTOS");
    let hello = ws.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("subscribed"), "{hello:?}");

    let resp = http
        .post(format!("http://{addr}/v1/events"))
        .header("x-api-key", PHOTO_KEY)
        .json(&envelope("photo.uploaded", "photo", photo_uploaded(&owner)))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{answer}");
    let seq = answer["receipt"]["sequence"].as_u64().unwrap();
    let stored = ops
        .jetstream()
        .get_stream("PHOTOS")
        .await
        .unwrap()
        .get_raw_message(seq)
        .await
        .unwrap();
    assert_eq!(stored.headers.get("ce-source").unwrap().as_str(), "photo");

    let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an event within 10 s")
        .unwrap()
        .unwrap();
    let Message::Text(text) = frame else {
        panic!("{frame:?}")
    };
    let event: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(event["sequence"].as_u64(), Some(seq));
    gateway.shutdown().await.unwrap();
}
