//! The server: routes, middleware, start and graceful shutdown.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use eventhub::Client;
use eventhub::health::HealthOptions;
use eventhub_codegen::services::Services;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth::Authenticator;
use crate::error::{ApiError, ErrorCode, StartError};
use crate::state::{AppState, Config, Shared};

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
        let mut auth = Authenticator::new(
            config.keys.clone(),
            config.jwt_secret.as_deref(),
            services.services.iter().map(|s| s.name.clone()),
            services.operators.iter().cloned(),
        )
        .map_err(StartError::Credentials)?;
        if let Some(pem) = &config.jwt_public_key {
            auth = auth
                .rs256_public_key(pem)
                .map_err(StartError::Credentials)?;
        }
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
        let feeds = crate::feed::Feeds::new(client.jetstream().clone(), config.feed_linger);
        let state: Shared = Arc::new(AppState {
            client,
            operator,
            publishers: Default::default(),
            opening: Default::default(),
            template: config.connect.clone(),
            openapi: crate::openapi::document(eventhub_catalog::CATALOG),
            services,
            auth,
            metrics: Default::default(),
            sessions: Default::default(),
            jobs: Default::default(),
            shutdown: stopped.clone(),
            ws_connections: Arc::new(tokio::sync::Semaphore::new(config.max_ws_connections)),
            feeds,
            config,
        });
        let app = router(state);
        let mut until = stopped;
        // Small writes (a WebSocket event, a 202) go out at once: with Nagle's algorithm a push
        // waits for the client's delayed ACK of the previous one.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
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
        .route(
            "/v1/events:batch",
            post(crate::publish::batch_handler)
                .layer(DefaultBodyLimit::max(state.config.max_batch_body)),
        )
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/stream", get(crate::stream::handler))
        .route("/live.html", get(live_page))
        .merge(crate::dashboard::routes())
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), record))
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
    let (feeds, members) = (state.feeds.running().await, state.feeds.members().await);
    state.metrics.feeds.set(feeds as i64);
    state.metrics.members.set(members as i64);
    text.push_str(&state.metrics.render());
    (
        [(header::CONTENT_TYPE, eventhub::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

async fn openapi(State(state): State<Shared>) -> Response {
    axum::Json(state.openapi.clone()).into_response()
}

async fn live_page() -> Html<&'static str> {
    Html(include_str!("../static/live.html"))
}

/// Counts each answered request by its matched route and status.
async fn record(State(state): State<Shared>, request: Request, next: Next) -> Response {
    // The matched route, never the raw path: a client cannot grow the label set.
    // The publish routes are named without allocating: they are the ones under load.
    let route: Cow<'static, str> = match request.extensions().get::<MatchedPath>() {
        None => Cow::Borrowed("unmatched"),
        Some(p) => match p.as_str() {
            "/v1/events" => Cow::Borrowed("/v1/events"),
            "/v1/events:batch" => Cow::Borrowed("/v1/events:batch"),
            other => Cow::Owned(other.to_string()),
        },
    };
    let start = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(
        route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}
