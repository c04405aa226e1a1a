//! eventhub: typed events between services over NATS JetStream.
//!
//! - The runtime knows no catalog: event types are generated from JSON Schemas by
//!   `eventhub-codegen` into the crate that owns them (a catalog crate, like
//!   `eventhub-catalog` for this repository's schemas), which implement [`Event`] and
//!   [`Consumable`].
//! - [`Client`] connects a service; [`Client::provision`] creates or updates a catalog's streams
//!   (its generated `TOPOLOGY`).
//! - [`Publisher`] publishes typed events with CloudEvents headers and de-duplication ids, as
//!   JSON or, with [`Codec::Protobuf`], as [protobuf](wire::proto); consumers decode either by the
//!   `content-type` header.
//! - [`Client::consumer`] runs a handler on every event of a type through a durable consumer,
//!   with retry and backoff, and moves what cannot be handled to the [`dlq`] (dead letters),
//!   where [`DeadLetters`] lists, replays and deletes entries and the [`Sweeper`] catches
//!   events whose consumer died during their last delivery.
//! - [`trace`](wire::trace) carries W3C trace context (`traceparent`) from publishers to handlers and their
//!   follow-ups; `Client::metrics` renders Prometheus metrics (feature `metrics`, on
//!   `prometheus-client`) and [`Client::health`] checks the connection, streams and consumers,
//!   for the service's own HTTP endpoint to serve.
//! - [`crypto`](wire::crypto) encrypts the fields schemas mark `x-sensitive` (AES-256-GCM, keys from a
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

// Layers, each using only those below it (scripts/check-layers verifies there is no cycle):
//
//   open, metrics, metadata, testing   what a Client opens; rendering; schemas of headers
//   health                             the health of a client
//   consume                            durable consumers: the loop, handler layers, decisions
//   dlq                                dead letters, replay, the sweeper
//   publish                            publishers and pipelines
//   client                             the connection of one service
//   counters, topology                 per-client counters and metric registry; streams
//   upcast                             consuming a family as one type
//   wire                               events, headers, codecs, schemas, crypto, trace
//   error                              error types
pub mod client;
pub mod consume;
mod counters;
pub mod dlq;
pub mod error;
pub mod health;
pub mod metadata;
#[cfg(feature = "metrics")]
pub mod metrics;
mod open;
pub mod publish;
pub mod testing;
pub mod topology;
pub mod upcast;
pub mod wire;

pub use client::{Client, ConnectOptions};
pub use consume::{
    Backoff, Consumer, ConsumerHandle, ConsumerOptions, Envelope, HandlerError, StartFrom,
};
pub use dlq::{DeadLetter, DeadLetters, Sweeper};
pub use error::Error;
pub use publish::{PublishOptions, Publisher, Receipt};
pub use topology::{StreamSpec, Topology};
pub use upcast::Upcasted;
pub use wire::codec::Codec;
pub use wire::crypto::Keyring;
pub use wire::trace::TraceContext;
pub use wire::{Consumable, Event, EventInfo, Family, Validation};

/// Generated code: its protobuf encoders and decoders, kept when this crate is built with the
/// `protobuf` feature and dropped without it (a catalog's code compiles either way).
#[cfg(feature = "protobuf")]
#[doc(hidden)]
#[macro_export]
macro_rules! __protobuf {
    ($($generated:tt)*) => { $($generated)* };
}

/// Generated code: its protobuf encoders and decoders, kept when this crate is built with the
/// `protobuf` feature and dropped without it (a catalog's code compiles either way).
#[cfg(not(feature = "protobuf"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __protobuf {
    ($($generated:tt)*) => {};
}

/// Generated code: `Event::PROTO_CODEC` of an event type from its generated protobuf encoder
/// and decoder (with the `protobuf` feature; nothing without it).
#[cfg(feature = "protobuf")]
#[doc(hidden)]
#[macro_export]
macro_rules! __proto_codec {
    ($encode:ident, $decode:ident) => {
        const PROTO_CODEC: ::std::option::Option<$crate::wire::proto::rt::Codec<Self>> =
            ::std::option::Option::Some($crate::wire::proto::rt::Codec {
                encode: $encode,
                decode: $decode,
            });
    };
}

/// Generated code: `Event::PROTO_CODEC` of an event type from its generated protobuf encoder
/// and decoder (with the `protobuf` feature; nothing without it).
#[cfg(not(feature = "protobuf"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __proto_codec {
    ($encode:ident, $decode:ident) => {};
}
