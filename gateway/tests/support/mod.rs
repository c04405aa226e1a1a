//! A gateway in front of a real nats-server, with keys and a JWT secret for the tests.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use eventhub::{Client, ConnectOptions};
use eventhub_gateway::auth::{ApiKeys, hash_key};
use eventhub_gateway::{Config, Gateway};
use eventhub_testkit::NatsServer;
use serde_json::{Value, json};

pub const PHOTO_KEY: &str = "photo-key-0123456789abcdef0123456789";
pub const AUTH_KEY: &str = "auth-key-0123456789abcdef0123456789ab";
pub const OPS_KEY: &str = "ops-key-0123456789abcdef0123456789abc";
pub const JWT_SECRET: &[u8] = b"test-secret-of-at-least-thirty-two-bytes";

pub struct Hub {
    pub server: NatsServer,
    pub client: Client,
    pub gateway: Option<Gateway>,
    pub addr: SocketAddr,
}

pub fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

pub fn keys() -> ApiKeys {
    let mut keys = ApiKeys::default();
    keys.insert("photo", hash_key(PHOTO_KEY));
    keys.insert("auth", hash_key(AUTH_KEY));
    keys.insert("ops", hash_key(OPS_KEY));
    keys
}

/// Starts nats-server, provisions the catalog's streams and starts a gateway;
/// `configure` adjusts its configuration.
pub async fn start_with(configure: impl FnOnce(Config) -> Config) -> Hub {
    let server = NatsServer::start();
    let client = Client::connect(ConnectOptions::new("tests").url(server.client_url()))
        .await
        .expect("connect");
    client
        .provision(&eventhub_catalog::TOPOLOGY)
        .await
        .expect("provision");
    let config = configure(config(&server.client_url()));
    let gateway = Gateway::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("gateway starts");
    let addr = gateway.local_addr();
    Hub {
        server,
        client,
        gateway: Some(gateway),
        addr,
    }
}

/// The tests' gateway configuration for the nats-server at `url`.
pub fn config(url: &str) -> Config {
    let connect = ConnectOptions::new("gateway")
        .url(url)
        .request_timeout(Duration::from_millis(1500))
        .publish_attempts(1);
    Config::new(connect, schemas_dir())
        .keys(keys())
        .jwt_secret(JWT_SECRET)
}

pub async fn start() -> Hub {
    start_with(|c| c).await
}

impl Hub {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

pub fn jwt(sub: &str, user_id: Option<&str>, secret: &[u8]) -> String {
    let mut claims = json!({"sub": sub, "exp": chrono::Utc::now().timestamp() + 600});
    if let Some(u) = user_id {
        claims["user_id"] = json!(u);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

pub fn uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A valid `photo.uploaded` v1 payload owned by `owner`.
pub fn photo_uploaded(owner: &str) -> Value {
    json!({
        "photo_id": uuid(),
        "owner_id": owner,
        "content_type": "image/jpeg",
        "size_bytes": 2048,
        "storage_key": "originals/x",
        "uploaded_at": "2026-12-04T10:00:00Z"
    })
}

pub fn envelope(event_type: &str, source: &str, data: Value) -> Value {
    json!({"eventType": event_type, "source": source, "data": data})
}

pub const INSTALL: &str = "scripts/install-test-tools";

pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/js")
}

/// `node` with the npm `packages` of tools/js, or a failure saying how to install them.
#[track_caller]
pub fn require_js(packages: &[&str]) -> PathBuf {
    let node = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("node"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "`node` is not installed (Debian package nodejs): run `{INSTALL}` (as root), or \
                 `apt-get update && apt-get install -y nodejs npm`"
            )
        });
    for package in packages {
        let dir = js_dir().join("node_modules").join(package);
        assert!(
            dir.join("package.json").is_file(),
            "npm package `{package}` is missing from {}: run `{INSTALL}` (it runs `npm ci` in \
             tools/js)",
            js_dir().display()
        );
    }
    node
}
