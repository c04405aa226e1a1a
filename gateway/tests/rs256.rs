//! RS256 bearer tokens beside HS256, against a real nats-server: a token signed with the
//! configured key pair's private key is accepted, one signed with another key is not, and an
//! HS256 token "signed" with the public key (algorithm confusion) is refused.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;

const PUBLIC: &str = include_str!("keys/rs256-test.pub");
const PRIVATE: &str = include_str!("keys/rs256-test.key");
const OTHER: &str = include_str!("keys/rs256-other.key");

fn rs256(sub: &str, private_pem: &str) -> String {
    let claims = json!({"sub": sub, "exp": chrono::Utc::now().timestamp() + 600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn post(hub: &Hub, token: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(hub.url("/v1/events"))
        .bearer_auth(token)
        .json(&envelope(
            "photo.uploaded",
            "photo",
            photo_uploaded(&uuid()),
        ))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn rs256_and_hs256_tokens_are_both_accepted_when_both_are_configured() {
    let hub = start_with(|c| c.jwt_public_key(PUBLIC)).await;
    let (status, body) = post(&hub, &rs256("photo", PRIVATE)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = post(&hub, &jwt("photo", None, JWT_SECRET)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let (status, body) = post(&hub, &rs256("photo", OTHER)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "another key's signature: {body}"
    );
    // The subject still decides what the caller may publish.
    let (status, body) = post(&hub, &rs256("auth", PRIVATE)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = post(&hub, &rs256("stranger", PRIVATE)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "undeclared subject: {body}"
    );

    // A browser's WebSocket passes an RS256 token in the query.
    let url = format!(
        "ws://{}/v1/stream?types=photo.*&token={}",
        hub.addr,
        rs256("photo", PRIVATE)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    use futures::StreamExt;
    let hello = ws.next().await.unwrap().unwrap();
    assert!(
        hello.to_text().unwrap().contains("\"subscribed\""),
        "{hello}"
    );
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_public_key_is_refused() {
    let hub = start_with(|mut c| {
        c.jwt_secret = None;
        c.jwt_public_key(PUBLIC)
    })
    .await;
    let (status, body) = post(&hub, &rs256("photo", PRIVATE)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let forged = jwt("photo", None, PUBLIC.as_bytes());
    let (status, body) = post(&hub, &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("RS256"),
        "names what is accepted: {body}"
    );
}

#[tokio::test]
async fn a_key_that_is_not_an_rsa_public_key_stops_the_start() {
    let server = eventhub_testkit::NatsServer::start();
    let config = eventhub_gateway::Config::new(
        eventhub::ConnectOptions::new("gateway").url(server.client_url()),
        schemas_dir(),
    )
    .keys(keys())
    .jwt_public_key("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n");
    let err = eventhub_gateway::Gateway::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("RS256"), "{err}");
}
