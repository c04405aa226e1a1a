//! A metrics and health endpoint for a service: the SDK renders, the service serves (here with
//! axum; the gateway's `/metrics` does the same).
//!
//! `cargo run -p eventhub-examples --example metrics_endpoint`, then
//! `curl localhost:9464/metrics` and `curl localhost:9464/health`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use eventhub::health::HealthOptions;
use eventhub::metrics::CONTENT_TYPE;
use eventhub::{Client, ConnectOptions};

async fn metrics(State(client): State<Client>) -> impl IntoResponse {
    let text = client.metrics().render().await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text)
}

async fn health(State(client): State<Client>) -> impl IntoResponse {
    let health = client.health(&HealthOptions::default()).await;
    let status = if health.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(health))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = Client::connect(ConnectOptions::from_env("profile")).await?;
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(client);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:9464").await?;
    println!(
        "serving http://{}/metrics and /health",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
