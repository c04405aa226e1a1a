//! Patterns beyond publish and consume, on JetStream alone (no other database):
//!
//! - [`aggregate`]: event-sourced aggregates — append with optimistic concurrency
//!   ([`AppendError::Conflict`]), load by folding events through
//!   [`Aggregate::apply`], snapshots in a key-value bucket, old event versions upcast on load.
//!
//! Each module states its guarantees: what is exactly-once, what is at-least-once, and what
//! happens when the server restarts in the middle.

pub mod aggregate;
mod recorded;

pub use aggregate::{
    Aggregate, AppendError, DomainEvent, EventStore, ExecuteError, LoadError, Loaded, StoreError,
    StoreOptions,
};
pub use recorded::{EncodeError, Encoded, Recorded, VERSION_HEADER};
