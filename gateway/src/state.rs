//! What every handler shares: the configuration, the connections, the declaration of services
//! and the per-feature state (sessions, jobs, live feeds, counters).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use eventhub::{Client, ConnectOptions};
use eventhub_codegen::services::Services;
use tokio::sync::watch;

use crate::auth::{ApiKeys, Authenticator};
use crate::error::{ApiError, ErrorCode};

/// How the gateway runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// How it connects to NATS; `service` is the gateway's own name (its NATS user in the
    /// generated configuration). Events are published with the calling service as
    /// `ce-source`, over one connection per calling service with these same credentials.
    pub connect: ConnectOptions,
    /// The catalog directory holding `services.json` (who may publish and read what).
    pub schemas_dir: PathBuf,
    /// Accepted API keys.
    pub keys: ApiKeys,
    /// The HS256 secret of accepted bearer tokens.
    pub jwt_secret: Option<Vec<u8>>,
    /// The RSA public key (PEM) of accepted RS256 bearer tokens. With neither this nor
    /// `jwt_secret`, API keys only.
    pub jwt_public_key: Option<Vec<u8>>,
    /// The largest request body, in bytes. Default 1 MiB.
    pub max_body: usize,
    /// The most events in one `POST /v1/events:batch`; more are refused with 413. Default 100.
    pub max_batch_items: usize,
    /// The largest body of `POST /v1/events:batch`, in bytes; larger is refused with 413.
    /// Default 4 MiB.
    pub max_batch_body: usize,
    /// Events a WebSocket client may have queued before it is dropped as too slow. Default 256.
    pub ws_buffer: usize,
    /// WebSocket connections served at once; more are refused with 503. Default 10,000.
    pub max_ws_connections: usize,
    /// How long a stream's live feed keeps running once no client follows it, so that
    /// reconnecting clients find it still running. Default 5 s.
    pub feed_linger: Duration,
    /// How the dashboard connects (an operator of the generated nats.conf: replaying and
    /// purging dead letters needs one). Default: the gateway's own connection.
    pub operator: Option<ConnectOptions>,
}

impl Config {
    /// A configuration with the defaults and no credentials (every call is then refused:
    /// add keys or a JWT secret).
    pub fn new(connect: ConnectOptions, schemas_dir: PathBuf) -> Self {
        Self {
            connect,
            schemas_dir,
            keys: ApiKeys::default(),
            jwt_secret: None,
            jwt_public_key: None,
            max_body: 1024 * 1024,
            max_batch_items: 100,
            max_batch_body: 4 * 1024 * 1024,
            ws_buffer: 256,
            max_ws_connections: 10_000,
            feed_linger: Duration::from_secs(5),
            operator: None,
        }
    }

    /// Accepts these API keys.
    pub fn keys(mut self, keys: ApiKeys) -> Self {
        self.keys = keys;
        self
    }

    /// Accepts HS256 bearer tokens signed with `secret` (at least 32 bytes).
    pub fn jwt_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.jwt_secret = Some(secret.into());
        self
    }

    /// Accepts RS256 bearer tokens verified with this RSA public key (PEM).
    pub fn jwt_public_key(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.jwt_public_key = Some(pem.into());
        self
    }

    /// Refuses bodies over `bytes` with 413.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Refuses batches of more than `items` events, or over `bytes`, with 413.
    pub fn max_batch(mut self, items: usize, bytes: usize) -> Self {
        self.max_batch_items = items.max(1);
        self.max_batch_body = bytes;
        self
    }

    /// The dashboard connects with `options` (an operator).
    pub fn operator(mut self, options: ConnectOptions) -> Self {
        self.operator = Some(options);
        self
    }

    /// Stops a stream's live feed once no client has followed it for `linger`.
    pub fn feed_linger(mut self, linger: Duration) -> Self {
        self.feed_linger = linger;
        self
    }

    /// Drops a WebSocket client once `events` are queued for it.
    pub fn ws_buffer(mut self, events: usize) -> Self {
        self.ws_buffer = events.max(1);
        self
    }
}

/// What every handler shares.
pub(crate) struct AppState {
    /// The gateway's own connection: health, metrics, following events, the dashboard.
    pub(crate) client: Client,
    /// The dashboard's connection, if it has its own.
    pub(crate) operator: Option<Client>,
    /// Connections publishing as each calling service, opened on first use.
    pub(crate) publishers: std::sync::RwLock<HashMap<String, Client>>,
    /// Held while opening a publishing connection, so each is opened once.
    pub(crate) opening: tokio::sync::Mutex<()>,
    pub(crate) template: ConnectOptions,
    pub(crate) services: Services,
    pub(crate) auth: Authenticator,
    pub(crate) config: Config,
    pub(crate) metrics: crate::http_metrics::HttpMetrics,
    pub(crate) sessions: crate::dashboard::state::Sessions,
    /// The dashboard's group replays and purges.
    pub(crate) jobs: crate::dashboard::state::Jobs,
    /// Flips to `true` on shutdown: WebSocket connections close themselves.
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) ws_connections: Arc<tokio::sync::Semaphore>,
    /// The shared live feeds of `GET /v1/stream`.
    pub(crate) feeds: crate::feed::Feeds,
    pub(crate) openapi: serde_json::Value,
}

pub(crate) type Shared = Arc<AppState>;

impl AppState {
    /// The connection that publishes as `service` (its `ce-source`).
    pub(crate) async fn publisher_for(&self, service: &str) -> Result<Client, ApiError> {
        let known = |map: &std::sync::RwLock<HashMap<String, Client>>| {
            map.read()
                .unwrap_or_else(|p| p.into_inner())
                .get(service)
                .cloned()
        };
        // Every request asks: a read lock that never waits on an await point.
        if let Some(c) = known(&self.publishers) {
            return Ok(c);
        }
        let _opening = self.opening.lock().await;
        if let Some(c) = known(&self.publishers) {
            return Ok(c);
        }
        let mut options = self.template.clone();
        options.service = service.to_string();
        // Same user as the gateway's connection: its inbox prefix is the one it may read.
        options.inbox_prefix = Some(
            self.template
                .inbox_prefix
                .clone()
                .unwrap_or_else(|| eventhub::client::service_inbox_prefix(&self.template.service)),
        );
        let client = Client::connect(options).await.map_err(|e| {
            tracing::warn!(service, error = %e, "cannot open a publishing connection");
            ApiError::new(
                ErrorCode::Unavailable,
                format!("the event store is not reachable: {e}"),
            )
        })?;
        self.publishers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(service.to_string(), client.clone());
        Ok(client)
    }
}

/// How long a publish may wait for its ack before the gateway answers 503.
pub(crate) fn publish_deadline(state: &AppState) -> Duration {
    state.config.connect.request_timeout * state.config.connect.publish_attempts.max(1)
        + Duration::from_secs(2)
}
