//! The server: configuration, shared state, routes, graceful shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use eventhub::health::HealthOptions;
use eventhub::{Client, ConnectOptions};
use eventhub_codegen::services::Services;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{ApiKeys, Authenticator};
use crate::error::{ApiError, ErrorCode, StartError};

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
    /// The HS256 secret of accepted bearer tokens (none: API keys only).
    pub jwt_secret: Option<Vec<u8>>,
    /// The largest request body, in bytes. Default 1 MiB.
    pub max_body: usize,
    /// Events a WebSocket client may have queued before it is dropped as too slow. Default 256.
    pub ws_buffer: usize,
    /// WebSocket connections served at once; more are refused with 503. Default 10,000.
    pub max_ws_connections: usize,
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
            max_body: 1024 * 1024,
            ws_buffer: 256,
            max_ws_connections: 10_000,
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

    /// Refuses bodies over `bytes` with 413.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The dashboard connects with `options` (an operator).
    pub fn operator(mut self, options: ConnectOptions) -> Self {
        self.operator = Some(options);
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
    publishers: tokio::sync::Mutex<HashMap<String, Client>>,
    template: ConnectOptions,
    pub(crate) services: Services,
    pub(crate) auth: Authenticator,
    pub(crate) config: Config,
    pub(crate) metrics: crate::http_metrics::HttpMetrics,
    pub(crate) sessions: crate::dashboard::Sessions,
    /// Flips to `true` on shutdown: WebSocket connections close themselves.
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) ws_connections: Arc<tokio::sync::Semaphore>,
    pub(crate) openapi: serde_json::Value,
}

pub(crate) type Shared = Arc<AppState>;

impl AppState {
    /// The connection that publishes as `service` (its `ce-source`).
    pub(crate) async fn publisher_for(&self, service: &str) -> Result<Client, ApiError> {
        let mut map = self.publishers.lock().await;
        if let Some(c) = map.get(service) {
            return Ok(c.clone());
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
        map.insert(service.to_string(), client.clone());
        Ok(client)
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    /// Loads the declaration of services, connects to NATS and serves on `listen` (port 0
    /// picks a free port) until [`Gateway::shutdown`].
    pub async fn start(config: Config, listen: SocketAddr) -> Result<Gateway, StartError> {
        let dir = config.schemas_dir.clone();
        let services_error = |message: String| StartError::Services {
            dir: dir.display().to_string(),
            message,
        };
        let catalog =
            eventhub_codegen::Catalog::load(&dir).map_err(|e| services_error(e.to_string()))?;
        let services = Services::load(&dir, &catalog)
            .map_err(|e| services_error(e.to_string()))?
            .ok_or_else(|| services_error("there is no services.json".into()))?;
        let auth = Authenticator::new(
            config.keys.clone(),
            config.jwt_secret.as_deref(),
            services.services.iter().map(|s| s.name.clone()),
            services.operators.iter().cloned(),
        )
        .map_err(StartError::Credentials)?;
        let client = Client::connect(config.connect.clone()).await?;
        let operator = match &config.operator {
            Some(options) => Some(Client::connect(options.clone()).await?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: listen,
            source,
        })?;
        let (stop, stopped) = watch::channel(false);
        let state: Shared = Arc::new(AppState {
            client,
            operator,
            publishers: Default::default(),
            template: config.connect.clone(),
            openapi: crate::openapi::document(eventhub_catalog::CATALOG),
            services,
            auth,
            metrics: Default::default(),
            sessions: Default::default(),
            shutdown: stopped.clone(),
            ws_connections: Arc::new(tokio::sync::Semaphore::new(config.max_ws_connections)),
            config,
        });
        let app = router(state);
        let mut until = stopped;
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = until.wait_for(|stop| *stop).await;
                })
                .await
        });
        tracing::info!(%addr, "gateway listening");
        Ok(Gateway { addr, stop, task })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, closes WebSocket streams and waits for requests in
    /// flight to finish.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Waits until the server stops (after [`Gateway::shutdown`] from a clone of its stop
    /// signal, or an I/O failure).
    pub async fn wait(self) -> std::io::Result<()> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// A handle that stops the gateway when sent `true` (for signal handlers).
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

fn router(state: Shared) -> Router {
    let max_body = state.config.max_body;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route(
            "/v1/events",
            post(crate::publish::handler).layer(DefaultBodyLimit::max(max_body)),
        )
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/stream", get(crate::stream::handler))
        .route("/live.html", get(live_page))
        .merge(crate::dashboard::routes())
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http_metrics::record,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::new())
        .with_state(state)
}

async fn health(State(state): State<Shared>) -> Response {
    let mut streams: Vec<String> = eventhub_catalog::STREAMS
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    streams.sort();
    streams.dedup();
    let health = state
        .client
        .health(&HealthOptions::default().streams(streams))
        .await;
    let status = if health.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(health)).into_response()
}

async fn metrics(State(state): State<Shared>) -> Response {
    let mut text = state.client.metrics().render().await;
    text.push_str(&state.metrics.render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn openapi(State(state): State<Shared>) -> Response {
    axum::Json(state.openapi.clone()).into_response()
}

async fn live_page() -> Html<&'static str> {
    Html(include_str!("../static/live.html"))
}

/// How long a publish may wait for its ack before the gateway answers 503.
pub(crate) fn publish_deadline(state: &AppState) -> Duration {
    state.config.connect.request_timeout * state.config.connect.publish_attempts.max(1)
        + Duration::from_secs(2)
}
