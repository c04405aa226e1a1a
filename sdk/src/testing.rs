//! Handler tests without a server: an [`Envelope`] for any event, and a publisher that records
//! what a handler publishes instead of sending it.
//!
//! ```
//! # use eventhub::{Consumable, Envelope, HandlerError};
//! # async fn handle<E: Consumable>(env: Envelope<E>) -> Result<(), HandlerError> { Ok(()) }
//! # async fn demo<E: Consumable>(event: E) {
//! use eventhub::testing::{RecordingPublisher, envelope};
//!
//! let outbox = RecordingPublisher::new("profile");
//! let env = envelope(event)
//!     .delivered(2)
//!     .correlation_id("signup-42")
//!     .publisher(&outbox)
//!     .build();
//! handle(env).await.unwrap();
//! for sent in outbox.published() {
//!     assert_eq!(sent.correlation_id(), Some("signup-42"));
//! }
//! # }
//! ```
//!
//! Follow-up events go through the same encoding, schema check, encryption and headers as a
//! real publish; only the send is replaced. The real-server harness for integration tests is the
//! `eventhub-testkit` crate.

use std::sync::Arc;

use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::consume::{Envelope, Metadata};
use crate::error::DecodeError;
use crate::publish::{Publisher, RecordedMessage, Recording};
use crate::wire::crypto::Keyring;
use crate::wire::headers;
use crate::wire::trace::TraceContext;
use crate::wire::{Consumable, RawEvent};

/// A publisher that keeps what is published through it, for assertions. Cheap to clone; clones
/// share the record.
#[derive(Debug, Clone)]
pub struct RecordingPublisher {
    recording: Arc<Recording>,
}

impl RecordingPublisher {
    /// A recording publisher for `service` (the `ce-source` of what it records), without
    /// encryption keys: an event with `x-sensitive` fields is refused, as by a client without
    /// keys.
    pub fn new(service: &str) -> Self {
        Self {
            recording: Arc::new(Recording::new(service, None)),
        }
    }

    /// A recording publisher whose `x-sensitive` fields are encrypted with `keyring`.
    pub fn with_keyring(service: &str, keyring: Keyring) -> Self {
        Self {
            recording: Arc::new(Recording::new(service, Some(keyring))),
        }
    }

    /// A [`Publisher`] that records here.
    pub fn publisher(&self) -> Publisher {
        Publisher::recording(self.recording.clone())
    }

    /// What was published so far, in order (duplicates by event id recorded once).
    pub fn published(&self) -> Vec<Published> {
        let messages = self
            .recording
            .messages
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        messages.iter().cloned().map(Published).collect()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.recording
            .messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// One recorded publish: the message as it would have been sent.
#[derive(Debug, Clone)]
pub struct Published(RecordedMessage);

impl Published {
    /// The subject, e.g. `events.user.created.v2`.
    pub fn subject(&self) -> &str {
        self.0.subject
    }

    /// The stream it would be stored in.
    pub fn stream(&self) -> &str {
        self.0.stream
    }

    /// Its position in the recording, from 1.
    pub fn sequence(&self) -> u64 {
        self.0.sequence
    }

    /// The event id (`ce-id`).
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The event type, from the subject.
    pub fn event_type(&self) -> &str {
        crate::wire::parse_subject(self.0.subject).map_or("", |(ty, _)| ty)
    }

    /// The event version, from the subject.
    pub fn version(&self) -> u32 {
        crate::wire::parse_subject(self.0.subject).map_or(0, |(_, v)| v)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0.headers.get(name).map(|v| v.as_str())
    }

    /// Every header.
    pub fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    /// The correlation id (`ce-correlationid`).
    pub fn correlation_id(&self) -> Option<&str> {
        self.header(headers::CORRELATION_ID)
    }

    /// The id of the event that caused it (`ce-causationid`).
    pub fn causation_id(&self) -> Option<&str> {
        self.header(headers::CAUSATION_ID)
    }

    /// The encoded payload.
    pub fn payload(&self) -> &Bytes {
        &self.0.payload
    }

    /// Decodes it as `E` (its `x-sensitive` fields, if encrypted, stay ciphertext).
    pub fn decode<E: Consumable>(&self) -> Result<E, DecodeError> {
        let raw = RawEvent::new(self.header(headers::CONTENT_TYPE), &self.0.payload);
        E::decode(self.version(), &raw)
    }
}

/// Starts an [`Envelope`] around `event`, as a consumer would hand it to a handler: first
/// delivery, a new id, published now by `test`, stored at sequence 1 of stream `TEST`.
pub fn envelope<E: Consumable>(event: E) -> EnvelopeBuilder<E> {
    let id = headers::new_event_id();
    let version = event.version();
    let event_type = E::FAMILY.event_type;
    EnvelopeBuilder {
        meta: Metadata {
            id,
            event_type: event_type.to_string(),
            version,
            source: Some("test".to_string()),
            time: Utc::now(),
            subject: format!("events.{event_type}.v{version}"),
            stream: "TEST".to_string(),
            sequence: 1,
            delivered: 1,
            correlation_id: None,
            causation_id: None,
            trace: None,
            headers: Arc::new(HeaderMap::new()),
            scheduler: None,
            occurrence: None,
        },
        event,
        publisher: None,
    }
}

/// Builds an [`Envelope`] for a handler test ([`envelope`]).
#[derive(Debug)]
#[must_use = "call build() to get the envelope"]
pub struct EnvelopeBuilder<E> {
    event: E,
    meta: Metadata,
    publisher: Option<Publisher>,
}

impl<E> EnvelopeBuilder<E> {
    /// Sets the event id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.meta.id = id.into();
        self
    }

    /// Sets the publishing service (`ce-source`).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.meta.source = Some(source.into());
        self
    }

    /// Sets when it was published.
    pub fn time(mut self, time: DateTime<Utc>) -> Self {
        self.meta.time = time;
        self
    }

    /// Sets how many times it has been delivered, this delivery included (a retry: 2 and up).
    pub fn delivered(mut self, delivered: u64) -> Self {
        self.meta.delivered = delivered;
        self
    }

    /// Sets the correlation id of the flow.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.meta.correlation_id = Some(id.into());
        self
    }

    /// Sets the id of the event that caused it.
    pub fn causation_id(mut self, id: impl Into<String>) -> Self {
        self.meta.causation_id = Some(id.into());
        self
    }

    /// Sets the trace context it was published with.
    pub fn trace(mut self, trace: TraceContext) -> Self {
        self.meta.trace = Some(trace);
        self
    }

    /// Sets the stream and sequence it is stored at.
    pub fn stored_at(mut self, stream: impl Into<String>, sequence: u64) -> Self {
        self.meta.stream = stream.into();
        self.meta.sequence = sequence;
        self
    }

    /// Adds a message header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        Arc::make_mut(&mut self.meta.headers).insert(name, value);
        self
    }

    /// Records the handler's follow-up events in `outbox` (default: a recording nobody reads).
    pub fn publisher(mut self, outbox: &RecordingPublisher) -> Self {
        self.publisher = Some(outbox.publisher());
        self
    }

    /// The envelope.
    pub fn build(self) -> Envelope<E> {
        let publisher = self
            .publisher
            .unwrap_or_else(|| RecordingPublisher::new("test").publisher());
        Envelope::new(self.event, self.meta, &publisher)
    }
}
