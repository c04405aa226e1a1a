//! The [`Envelope`] a handler receives: the event and its [`Metadata`].

use std::ops::Deref;

use async_nats::HeaderMap;
use chrono::{DateTime, Utc};

use crate::publish::Publisher;
use crate::wire::trace::TraceContext;

/// The attributes of a received event.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// Event id (`ce-id`; for a message published without eventhub headers, its `Nats-Msg-Id`
    /// or `<stream>:<sequence>`).
    pub id: String,
    /// Event type, e.g. `user.created`.
    pub event_type: String,
    /// Event version, from the subject.
    pub version: u32,
    /// Publishing service (`ce-source`), if known.
    pub source: Option<String>,
    /// When it was published: `ce-time`, else the time its UUIDv7 id holds (the lean wire
    /// format leaves out a `ce-time` equal to it), else the time the stream stored it.
    pub time: DateTime<Utc>,
    /// The subject it was published on.
    pub subject: String,
    /// The stream it is stored in.
    pub stream: String,
    /// Its sequence number in the stream.
    pub sequence: u64,
    /// How many times it has been delivered to this consumer, this delivery included.
    pub delivered: u64,
    /// Correlation id of the flow: `ce-correlationid`, or for an event that has a `ce-id` and
    /// no correlation id (the lean wire format leaves out one equal to the id), its own id.
    /// `None` for a message without either.
    pub correlation_id: Option<String>,
    /// Id of the event whose handling caused this one, if any.
    pub causation_id: Option<String>,
    /// The W3C trace context it was published with (`traceparent`): its trace id, and the span
    /// id of the publish, parent of follow-ups. Without a valid header, the trace its UUIDv7 id
    /// starts ([`TraceContext::of_event_id`]: what the lean wire format leaves out); `None`
    /// for an event with neither.
    pub trace: Option<TraceContext>,
    /// Every header of the message (shared with the dead-letter path, not copied).
    pub headers: std::sync::Arc<HeaderMap>,
    /// For an event the server published from a schedule: the schedule's subject
    /// (`Nats-Scheduler`, `schedules.<stream>.<service>.<key>`).
    pub scheduler: Option<String>,
    /// For an event a *recurring* schedule published: which occurrence it is, as the server
    /// marks it (`Nats-Schedule-Next`: when the schedule fires next, RFC 3339). Every occurrence
    /// carries the schedule's `ce-id`; this tells them apart, and stays the same when one
    /// occurrence is redelivered. `None` for a one-shot schedule's event and any other event.
    pub occurrence: Option<String>,
}

impl Metadata {
    /// The id that names this event for idempotency and de-duplication: [`Metadata::id`], or
    /// for an occurrence of a recurring schedule `<id>@<occurrence>` (each occurrence is its own
    /// event; a redelivery of one is the same). The idempotency guard records this id.
    pub fn occurrence_id(&self) -> std::borrow::Cow<'_, str> {
        match &self.occurrence {
            Some(occurrence) => format!("{}@{occurrence}", self.id).into(),
            None => self.id.as_str().into(),
        }
    }
}

/// A received event with its metadata. Dereferences to the event.
///
/// [`Envelope::publisher`] publishes follow-up events that carry this event's correlation id
/// and have it as their causation.
#[derive(Debug, Clone)]
pub struct Envelope<E> {
    event: E,
    meta: Metadata,
    base: Publisher,
    /// Made on first use: most handlers publish nothing.
    follow_up: std::sync::OnceLock<Publisher>,
}

impl<E> Envelope<E> {
    /// Wraps a received event; follow-up events published through [`Envelope::publisher`]
    /// carry its correlation id (or its id when it has none) and have it as causation.
    pub(crate) fn new(event: E, meta: Metadata, publisher: &Publisher) -> Self {
        Self {
            event,
            meta,
            base: publisher.clone(),
            follow_up: std::sync::OnceLock::new(),
        }
    }

    /// The event.
    pub fn event(&self) -> &E {
        &self.event
    }

    /// Its metadata.
    pub fn meta(&self) -> &Metadata {
        &self.meta
    }

    /// The event, dropping the metadata.
    pub fn into_event(self) -> E {
        self.event
    }

    /// A publisher for follow-up events: they inherit this event's correlation id (or use its id
    /// if it has none), get its id as causation id, and continue its trace (same trace id, this
    /// event's span as parent; a new trace if it carried none).
    pub fn publisher(&self) -> &Publisher {
        self.follow_up.get_or_init(|| {
            let correlation = self.meta.correlation_id.as_deref().unwrap_or(&self.meta.id);
            self.base
                .caused_by(correlation, &self.meta.id, self.meta.trace)
        })
    }
}

impl<E> Deref for Envelope<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.event
    }
}
