//! eventhub: typed events between services over NATS JetStream.
//!
//! - The runtime knows no catalog: event types are generated from JSON Schemas by
//!   `eventhub-codegen` into the crate that owns them (a catalog crate, like
//!   `eventhub-catalog` for this repository's schemas), which implement [`Event`] and
//!   [`Consumable`].
//! - [`Client`] connects a service; [`Client::provision`] creates or updates a catalog's streams
//!   (its generated `TOPOLOGY`).
//! - [`Publisher`] publishes typed events with CloudEvents headers and de-duplication ids, as
//!   JSON or, with [`Codec::Protobuf`], as [protobuf](proto); consumers decode either by the
//!   `content-type` header.
//! - [`Client::consumer`] runs a handler on every event of a type through a durable consumer,
//!   with retry and backoff, and moves what cannot be handled to the [`dlq`] (dead letters),
//!   where [`DeadLetters`] lists, replays and deletes entries and the [`Sweeper`] catches
//!   events whose consumer died during their last delivery.
//! - [`trace`] carries W3C trace context (`traceparent`) from publishers to handlers and their
//!   follow-ups; [`Client::metrics`] renders Prometheus metrics, [`Client::serve_metrics`]
//!   serves them with a health check ([`Client::health`]).
//! - [`crypto`] encrypts the fields schemas mark `x-sensitive` (AES-256-GCM, keys from a
//!   [`Keyring`]) before they are published, and decrypts them for consumers that hold the key.
//! - [`metadata`] holds the JSON Schemas of the headers of an event and of a dead letter, for
//!   tools in other languages (shipped as files in `sdk/metadata/`).
//!
//! ```no_run
//! use eventhub::{Client, ConnectOptions, Event, Topology};
//! # async fn demo<E: Event>(event: E, topology: Topology) -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect(ConnectOptions::new("auth")).await?;
//! client.provision(&topology).await?;
//! let receipt = client.publisher().publish(&event).await?;
//! assert!(!receipt.duplicate);
//! # Ok(()) }
//! ```

mod client;
mod consume;
pub mod crypto;
pub mod dlq;
mod envelope;
pub mod error;
mod event;
pub mod metadata;
pub mod metrics;
pub mod proto;
mod publish;
pub mod schema;
mod topology;
pub mod trace;
pub mod upcast;

pub use client::{Client, ConnectOptions, DEFAULT_URL, service_inbox_prefix, service_password_var};
pub use consume::{
    Backoff, Consumer, ConsumerHandle, ConsumerOptions, ConsumerStats, HandlerError,
    IDEMPOTENCY_PREFIX, StartFrom, idempotency_bucket_config,
};
pub use crypto::{Decryptor, Keyring, KeyringError, KeyringErrorKind};
pub use dlq::{DeadLetter, DeadLetterFilter, DeadLetterReason, DeadLetters, Sweeper};
pub use envelope::{Envelope, JSON, Metadata, PROTOBUF, headers, new_event_id};
pub use error::{
    ConnectError, ConnectErrorKind, ConsumeError, ConsumeErrorKind, DeadLetterError,
    DeadLetterErrorKind, Error, ProvisionError, ProvisionErrorKind, PublishError, PublishErrorKind,
};
pub use event::{
    Consumable, DecodeError, DecodeErrorKind, Event, EventInfo, EventVisitor, Family, RawEvent,
    parse_subject,
};
pub use metrics::{ConsumerHealth, Health, HealthOptions, Metrics, MetricsServer, StreamHealth};
pub use publish::{
    Codec, Pipeline, PipelineFailure, PipelineReport, PublishOptions, Publisher, Receipt,
};
pub use topology::{
    ADVISORY_STREAM, DLQ_PREFIX, DLQ_STREAM, Discard, Drift, MAX_DELIVERIES_ADVISORY,
    ProvisionOptions, ProvisionReport, Retention, Storage, StreamAction, StreamReport, StreamSpec,
    Topology,
};
pub use trace::{SpanId, TraceContext, TraceId};
pub use upcast::{Upcast, Upcasted};
