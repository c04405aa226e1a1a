//! What the stream answered for a stored event.

use crate::wire::trace::{SpanId, TraceContext};

/// The server's acknowledgement of a stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The event id.
    pub id: String,
    /// The subject it was published on.
    pub subject: &'static str,
    /// The stream that stored it.
    pub stream: String,
    /// Its sequence in the stream.
    pub sequence: u64,
    /// Whether the stream already held an event with this id (within its duplicate window) and
    /// dropped this one.
    pub duplicate: bool,
    /// The trace context sent in its `traceparent` header: trace id and the publish's span id.
    pub trace: TraceContext,
    /// The span this publish continued (the handled event's, or
    /// [`PublishOptions::trace_parent`](crate::publish::PublishOptions::trace_parent)); `None` for the root of a new trace.
    pub parent_span_id: Option<SpanId>,
}
