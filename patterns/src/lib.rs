//! Patterns beyond publish and consume, on JetStream alone (no other database):
//!
//! - [`aggregate`]: event-sourced aggregates — append with optimistic concurrency
//!   ([`AppendError::Conflict`]), load by folding events through
//!   [`Aggregate::apply`], snapshots in a key-value bucket, old event versions upcast on load.
//! - [`request`]: typed request-reply — [`Request`] pairs a request with its response type and
//!   schemas; [`RequestExt::request`] on a [`Client`](eventhub::Client) returns the typed
//!   response or a typed error ([`RequestError`]: timeout, no responders, error reply);
//!   [`RequestExt::respond`] serves them in a queue group with validation and panic isolation.
//! - [`projection`]: read models — a handler over a stream's events whose changes and
//!   checkpoint are written to a key-value bucket in one atomic batch, resumable after a crash
//!   without applying an event twice, and rebuilt from scratch, a sequence or a time.
//! - [`saga`]: process managers — state per correlation id in a key-value bucket (compare-and-set),
//!   steps triggered by events, timeouts the server schedules (`Nats-Schedule`) so they fire
//!   with no instance running, and compensation.
//!
//! Each module states its guarantees: what is exactly-once, what is at-least-once, and what
//! happens when the server restarts in the middle.

pub mod aggregate;
pub mod projection;
mod recorded;
pub mod request;
pub mod saga;

pub use aggregate::{
    Aggregate, AppendError, DomainEvent, EventStore, ExecuteError, LoadError, Loaded, StoreError,
    StoreOptions,
};
pub use recorded::{EncodeError, Encoded, Recorded, VERSION_HEADER};
pub use request::{
    ErrorCode, ErrorReply, Incoming, Request, RequestError, RequestExt, RequestOptions, Responder,
    ResponderOptions,
};

/// The examples of `docs/patterns.md`, compiled as doc-tests so the guide cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../../docs/patterns.md")]
mod guide {}
