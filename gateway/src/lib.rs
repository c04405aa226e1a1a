//! `eventhub-gateway`: the hub's front door for HTTP clients and browsers.
//!
//! - `POST /v1/events` publishes one event of the compiled-in catalog (`eventhub-catalog`),
//!   validated exactly as the SDK validates it, on behalf of the calling service, and answers
//!   `202` only once the stream stored it ([`publish`]); `POST /v1/events:batch` several, in
//!   order, answering `207` with one result per item.
//! - `GET /v1/stream` follows events over WebSocket, filtered by type and by the caller's user
//!   ("rooms"), resumable from a stream sequence ([`stream`]); every connection reads one
//!   shared live feed per stream.
//! - `/dashboard` is the operators' view: streams and consumers, the event flows of the
//!   declaration of services, the dead letters in failure groups with replay and purge of one
//!   entry or a group ([`dashboard`]).
//! - `/health`, `/metrics` and `/v1/openapi.json` ([`openapi`]).
//!
//! Who may do what comes from the declaration of services (`schemas/services.json`): a
//! service may publish the event types it owns, and follow what it owns or consumes; the
//! declared operators may use the dashboard. Callers authenticate with a per-service API key
//! (stored as its SHA-256) or an HS256 or RS256 JWT ([`auth`]).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use eventhub_gateway::{Config, Gateway};
//! let config = Config::new(eventhub::ConnectOptions::from_env("gateway"), "schemas".into());
//! let gateway = Gateway::start(config, "127.0.0.1:8080".parse()?).await?;
//! println!("listening on {}", gateway.local_addr());
//! gateway.wait().await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod dashboard;
mod error;
mod feed;
mod http_metrics;
pub mod openapi;
pub mod publish;
mod server;
mod state;
pub mod stream;

pub use error::{ApiError, ErrorCode, StartError};
pub use server::Gateway;
pub use state::Config;
