//! The publisher: options, one event at a time, pipelines, the recording sink for tests.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind as NatsKind};
use async_nats::jetstream::publish::PublishAck;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::client::Client;
use crate::counters::PublishCounters;
use crate::error::{PublishError, PublishErrorKind};
use crate::wire::codec::Codec;
use crate::wire::headers::{OutgoingHeaders, new_event_id, wire_size};
use crate::wire::proto::Message;
use crate::wire::trace::{SpanId, TraceContext};
use crate::wire::{Event, EventInfo, Validation};

use super::receipt::Receipt;
use super::schedule::{Schedule, Scheduled};
use super::version::Feature;

/// Header: the last sequence expected on the subject [`EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT`]
/// names (nats-server 2.11).
const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";
/// Header: the subject [`EXPECTED_LAST_SUBJECT_SEQUENCE`] is about, when not the publish subject.
const EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT: &str = "Nats-Expected-Last-Subject-Sequence-Subject";

/// Header: how long the stream keeps this message (nats-server 2.11, `allow_msg_ttl`).
pub const TTL: &str = "Nats-TTL";

/// A TTL as the server reads it: whole seconds (its minimum is one).
fn ttl_value(ttl: Duration) -> String {
    format!("{}s", ttl.as_secs().max(1))
}

/// JetStream's error code for a message above the stream's `max_msg_size`.
const MESSAGE_TOO_LARGE: u64 = 10054;
/// JetStream's error code for a stream whose ingest queue is full (`JSStreamTooManyRequests`,
/// HTTP-like code 429).
const TOO_MANY_REQUESTS: u64 = 10167;

/// Per-publish settings. All optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishOptions {
    /// The event id (and `Nats-Msg-Id`). Set it to make a retried publish idempotent: the
    /// stream stores an id once within its duplicate window. Default: a new UUIDv7.
    pub id: Option<String>,
    /// The flow's correlation id. Default: the publisher's (inside a handler: the handled
    /// event's), else the event's own id.
    pub correlation_id: Option<String>,
    /// The id of the event that caused this one. Default: the publisher's (inside a handler:
    /// the handled event's id).
    pub causation_id: Option<String>,
    /// The event time (`ce-time`). Default: the time in the event id when it is a UUIDv7
    /// (the default ids are: then no `ce-time` is sent, readers take the id's), else now.
    pub time: Option<DateTime<Utc>>,
    /// The payload encoding. Default: the publisher's ([`Publisher::with_codec`](crate::Publisher::with_codec)), which is
    /// the client's ([`ConnectOptions::codec`](crate::ConnectOptions::codec), JSON unless set).
    pub codec: Option<Codec>,
    /// The trace to continue, e.g. parsed with [`TraceContext::parse`] from an incoming HTTP
    /// request's `traceparent`: the event gets a new span in that trace with it as parent.
    /// Default: the publisher's (inside a handler: the handled event's), else a new trace
    /// ([`TraceContext::of_event_id`] for a UUIDv7 id: no `traceparent` is sent).
    pub trace_parent: Option<TraceContext>,
    /// Publish later: the stream keeps the event as a schedule and the server publishes it on
    /// the event's subject when due ([`Publisher::publish_at`]). Default: now.
    pub schedule: Option<Schedule>,
}

impl PublishOptions {
    /// Sets the event id (and `Nats-Msg-Id`): a retried publish with the same id is stored once.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the flow's correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the id of the event that caused this one.
    pub fn causation_id(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    /// Sets the event time (`ce-time`).
    pub fn time(mut self, time: DateTime<Utc>) -> Self {
        self.time = Some(time);
        self
    }

    /// Sets the payload encoding for this publish.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = Some(codec);
        self
    }

    /// Continues this trace (e.g. from an incoming request's `traceparent`).
    pub fn trace_parent(mut self, parent: TraceContext) -> Self {
        self.trace_parent = Some(parent);
        self
    }

    /// Publishes on `schedule` instead of now (see [`Publisher::publish_at`]).
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = Some(schedule);
        self
    }
}

/// The default time of event `id`: the one a UUIDv7 id holds, else now.
pub(super) fn event_time(id: &str) -> DateTime<Utc> {
    crate::wire::headers::time_of_id(id).unwrap_or_else(Utc::now)
}

/// Publishes typed events for one service. Cheap to clone.
///
/// ```no_run
/// # async fn demo<E: eventhub::Event>(client: eventhub::Client, event: E) -> Result<(), eventhub::error::PublishError> {
/// let receipt = client.publisher().publish(&event).await?;
/// println!("stored as {} #{}", receipt.stream, receipt.sequence);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Publisher {
    pub(super) sink: Sink,
    correlation_id: Option<Arc<str>>,
    causation_id: Option<Arc<str>>,
    codec: Codec,
    trace_parent: Option<TraceContext>,
    validation: Validation,
}

impl Publisher {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            codec: client.codec(),
            sink: Sink::Nats(client),
            correlation_id: None,
            causation_id: None,
            trace_parent: None,
            validation: Validation::Schema,
        }
    }

    /// A publisher whose events carry `correlation_id`, have `causation_id` as cause and
    /// continue the trace of `trace_parent` (a new trace per event if `None`).
    pub(crate) fn caused_by(
        &self,
        correlation_id: &str,
        causation_id: &str,
        trace_parent: Option<TraceContext>,
    ) -> Self {
        Self {
            sink: self.sink.clone(),
            correlation_id: Some(correlation_id.into()),
            causation_id: Some(causation_id.into()),
            codec: self.codec,
            trace_parent,
            validation: self.validation,
        }
    }

    /// This publisher encoding its events with `codec` (unless a publish says otherwise in
    /// [`PublishOptions::codec`]).
    ///
    /// ```no_run
    /// # async fn demo<E: eventhub::Event>(client: eventhub::Client, event: E) -> Result<(), eventhub::error::PublishError> {
    /// use eventhub::Codec;
    /// let publisher = client.publisher().with_codec(Codec::Protobuf);
    /// publisher.publish(&event).await?; // content-type: application/protobuf
    /// # Ok(()) }
    /// ```
    pub fn with_codec(&self, codec: Codec) -> Self {
        Self {
            codec,
            ..self.clone()
        }
    }

    /// This publisher checking its typed events as `validation` says before it sends them.
    ///
    /// By default ([`Validation::Schema`]) every event is checked against its whole schema
    /// and one that breaks it is refused ([`PublishErrorKind::Invalid`]), nothing sent.
    /// [`Validation::Types`] trusts the generated type instead and encodes the value
    /// straight to JSON, as a raw NATS client would: types, required fields, enums and what
    /// the type's constructors enforce hold, not `format`, numeric maximums or the other
    /// rules a Rust type cannot express. It costs about half the client CPU of a typical
    /// JSON event; consumers that check the schema (their default) dead-letter an event it
    /// let through. [`Publisher::publish_json`] (a value with no type) is always checked.
    pub fn with_validation(&self, validation: Validation) -> Self {
        Self {
            validation,
            ..self.clone()
        }
    }

    /// What this publisher checks before it sends a typed event
    /// ([`Publisher::with_validation`]).
    pub fn validation(&self) -> Validation {
        self.validation
    }

    /// This publisher continuing the trace `parent`: its events' `traceparent` is a child of
    /// it (unless a publish says otherwise in [`PublishOptions::trace_parent`]). What a bridge
    /// to a tracing system (the `eventhub-otel` crate) sets from the caller's current span.
    pub fn with_trace_parent(&self, parent: TraceContext) -> Self {
        Self {
            trace_parent: Some(parent),
            ..self.clone()
        }
    }

    /// The codec of events published without [`PublishOptions::codec`].
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The trace context of a new publish of event `id`: a child of the explicit or inherited
    /// parent, else a new trace (the one the id implies when it is a UUIDv7).
    pub(super) fn trace_for(
        &self,
        options: &PublishOptions,
        id: &str,
    ) -> (TraceContext, Option<TraceContext>) {
        let parent = options.trace_parent.or(self.trace_parent);
        let root = || TraceContext::of_event_id(id).unwrap_or_else(TraceContext::root);
        (parent.map_or_else(root, |p| p.child()), parent)
    }

    /// A publisher whose events `recording` keeps instead of sending them
    /// ([`crate::testing::RecordingPublisher`]).
    pub(crate) fn recording(recording: Arc<Recording>) -> Self {
        Self {
            codec: Codec::Json,
            sink: Sink::Recording(recording),
            correlation_id: None,
            causation_id: None,
            trace_parent: None,
            validation: Validation::Schema,
        }
    }

    /// The client this publisher uses; `None` for a publisher of
    /// [`crate::testing::RecordingPublisher`].
    pub fn client(&self) -> Option<&Client> {
        match &self.sink {
            Sink::Nats(client) => Some(client),
            Sink::Recording(_) => None,
        }
    }

    /// Publishes `event` on its subject and waits for the stream to store it.
    pub async fn publish<E: Event>(&self, event: &E) -> Result<Receipt, PublishError> {
        self.publish_with(event, PublishOptions::default()).await
    }

    /// Has the server publish `event` at `when` (nats-server 2.12; the stream needs
    /// `allow_msg_schedules`). The stream stores it now as a schedule under
    /// `schedules.<STREAM>.<service>.<event id>`; consumers receive it, with its envelope, when due.
    ///
    /// ```no_run
    /// # async fn demo<E: eventhub::Event>(client: eventhub::Client, event: E) -> Result<(), eventhub::error::PublishError> {
    /// let when = chrono::Utc::now() + chrono::Duration::hours(24);
    /// let scheduled = client.publisher().publish_at(&event, when).await?;
    /// // Changed our mind:
    /// client.publisher().cancel_schedule(&scheduled.receipt.stream, &scheduled.key).await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish_at<E: Event>(
        &self,
        event: &E,
        when: DateTime<Utc>,
    ) -> Result<Scheduled, PublishError> {
        self.schedule(event, Schedule::at(when), PublishOptions::default())
            .await
    }

    /// Has the server publish `event` after `delay` (see [`Publisher::publish_at`]).
    pub async fn publish_after<E: Event>(
        &self,
        event: &E,
        delay: Duration,
    ) -> Result<Scheduled, PublishError> {
        self.schedule(event, Schedule::after(delay), PublishOptions::default())
            .await
    }

    /// Stores `event` as a schedule: once ([`Schedule::at`], [`Schedule::after`]) or again and
    /// again ([`Schedule::every`], [`Schedule::cron`]: nats-server 2.14) until
    /// [cancelled](Publisher::cancel_schedule). Every event the server publishes from a
    /// recurring schedule carries the same `ce-id` (the schedule's) and its own occurrence
    /// ([`Metadata::occurrence`](crate::consume::Metadata::occurrence)): consumers de-duplicate
    /// on [`Metadata::occurrence_id`](crate::consume::Metadata::occurrence_id), which the
    /// idempotency guard does.
    pub async fn schedule<E: Event>(
        &self,
        event: &E,
        schedule: Schedule,
        options: PublishOptions,
    ) -> Result<Scheduled, PublishError> {
        let mut options = options;
        let id = options.id.get_or_insert_with(new_event_id).clone();
        let key = schedule.key_or(&id).to_string();
        options.schedule = Some(schedule);
        let receipt = self.publish_with(event, options).await?;
        Ok(Scheduled {
            subject: crate::topology::schedule_subject(
                &receipt.stream,
                self.sink.service_arc(),
                &key,
            ),
            receipt,
            key,
        })
    }

    /// Cancels this service's pending schedule `key` of `stream`. Returns whether one was
    /// pending; an event the server already published stays published.
    ///
    /// Needs no purge permission: the server purges a schedule when a message of its stream
    /// carries `Nats-Schedule-Next: purge` and `Nats-Scheduler: <the schedule's subject>` (as
    /// the events it publishes from one-shot schedules do). That marker goes on
    /// `schedules.<stream>.<service>.<key>.cancelled` (within the service's namespace, and a
    /// rollup there: at most one marker per key stays in the stream).
    pub async fn cancel_schedule(&self, stream: &str, key: &str) -> Result<bool, PublishError> {
        let subject = crate::topology::schedule_subject(stream, self.sink.service_arc(), key);
        self.cancel_schedule_subject(stream, &subject).await
    }

    /// Cancels the schedule waiting on `subject` of `stream`, whoever stored it (an operator
    /// also reaches the subjects of eventhub before the namespaces, `schedules.<stream>.<key>`,
    /// and those of other services, which the generated permissions deny a service). Returns
    /// whether one was pending.
    pub async fn cancel_schedule_subject(
        &self,
        stream: &str,
        subject: &str,
    ) -> Result<bool, PublishError> {
        let Sink::Nats(client) = &self.sink else {
            return Err(PublishError::new(
                PublishErrorKind::Rejected,
                "a recording publisher keeps no schedules to cancel",
            ));
        };
        let marker = crate::topology::cancel_marker_subject(subject);
        let send = |probe: bool| {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(super::schedule::SCHEDULE_NEXT, "purge");
            headers.insert(super::schedule::SCHEDULER, subject);
            // Schedule streams take rollups (the server requires them): one marker per key.
            headers.insert(async_nats::header::NATS_ROLLUP, "sub");
            if probe {
                // Refused when a message waits on the schedule's subject: then one is pending.
                headers.insert(EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
                headers.insert(EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT, subject);
            }
            let marker = marker.clone();
            async move {
                let sent_at = Instant::now();
                let ack = client
                    .jetstream()
                    .publish_with_headers(marker.clone(), headers, Bytes::new())
                    .await;
                let ack = match ack {
                    Ok(ack) => ack.await,
                    Err(e) => Err(e),
                };
                ack.map_err(|e| (e, sent_at))
            }
        };
        let what = format!("cancel of schedule `{subject}`");
        match send(true).await {
            // Nothing was waiting: the marker purged nothing.
            Ok(_) => Ok(false),
            Err((e, _)) if e.kind() == NatsKind::WrongLastSequence => match send(false).await {
                Ok(_) => Ok(true),
                Err((e, since)) => Err(map_publish_error(client, e, &marker, stream, &what, since)),
            },
            Err((e, since)) => Err(map_publish_error(client, e, &marker, stream, &what, since)),
        }
    }

    /// [`Publisher::publish`](crate::Publisher::publish) with options (event id, correlation, causation, time).
    ///
    /// A timeout or a lost connection is retried (see
    /// [`ConnectOptions::publish_attempts`](crate::ConnectOptions::publish_attempts)) with the
    /// same event id, so a retry never stores a duplicate.
    pub async fn publish_with<E: Event>(
        &self,
        event: &E,
        options: PublishOptions,
    ) -> Result<Receipt, PublishError> {
        let mut options = options;
        let id = options.id.get_or_insert_with(new_event_id).clone();
        let target = Target::of::<E>();
        let payload = self.encode(&target, event, &id, &options)?;
        self.publish_encoded(target, payload, options).await
    }

    /// Publishes a JSON payload as an event of a catalog (`info` from its generated `CATALOG`, or
    /// a catalog loaded at run time), with the same headers, checks and retries
    /// as [`Publisher::publish_with`]. For tools that handle events without their Rust types
    /// (the `eventhub` CLI, the gateway); the payload is sent as given (as JSON, or encoded
    /// with `info.proto` for [`Codec::Protobuf`]) once it is checked against `info.schema`:
    /// a violation is [`PublishErrorKind::Invalid`] whose
    /// [`source`](std::error::Error::source) is the
    /// [`Violations`](crate::wire::schema::Violations), and nothing is sent.
    pub async fn publish_json(
        &self,
        info: &EventInfo,
        payload: &serde_json::Value,
        options: PublishOptions,
    ) -> Result<Receipt, PublishError> {
        let mut options = options;
        let id = options.id.get_or_insert_with(new_event_id).clone();
        let target = Target::from_info(info);
        let payload = self.encode_value(&target, Cow::Borrowed(payload), &id, &options, true)?;
        self.publish_encoded(target, payload, options).await
    }

    async fn publish_encoded(
        &self,
        target: Target,
        payload: Bytes,
        mut options: PublishOptions,
    ) -> Result<Receipt, PublishError> {
        // One id and time for every attempt: the stream stores a retried publish once.
        let id = options.id.get_or_insert_with(new_event_id).clone();
        options.time.get_or_insert_with(|| event_time(&id));
        // One span id for every attempt: a retry is the same publish.
        let (trace, parent) = self.trace_for(&options, &id);
        let span = tracing::debug_span!(
            "eventhub.publish",
            event.id = id.as_str(),
            event.r#type = target.event_type,
            event.version = target.version,
            subject = target.subject,
            trace_id = %trace.trace_id(),
            span_id = %trace.span_id(),
            parent_span_id = tracing::field::Empty,
            stream.sequence = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        if let Some(parent) = parent {
            span.record("parent_span_id", tracing::field::display(parent.span_id()));
        }
        let counters = self.sink.registry().publishes(target.event_type);
        let parent = parent.map(|p| p.span_id());
        let result = async {
            let attempts = self.sink.publish_attempts();
            let mut attempt = 1;
            loop {
                let sent = self
                    .send_encoded(
                        target,
                        payload.clone(),
                        id.clone(),
                        &options,
                        trace,
                        parent,
                        &counters,
                    )
                    .await;
                let result = match sent {
                    Ok(pending) => pending.wait().await,
                    Err(e) => Err(e),
                };
                match result {
                    Err(e) if attempt < attempts && is_transient(&e) => {
                        let pause = Duration::from_millis(250 << (attempt - 1).min(4));
                        tracing::debug!(
                            "publish attempt {attempt} failed ({e}); retrying in {pause:?}"
                        );
                        tokio::time::sleep(pause).await;
                        attempt += 1;
                    }
                    result => return result,
                }
            }
        }
        .instrument(span.clone())
        .await;
        match &result {
            Ok(receipt) => {
                counters.published();
                span.record("stream.sequence", receipt.sequence);
                span.record(
                    "outcome",
                    if receipt.duplicate { "duplicate" } else { "ok" },
                );
            }
            Err(e) => {
                counters.failed();
                span.record("outcome", tracing::field::debug(e.kind()));
            }
        }
        result
    }

    /// A pipeline: up to `window` publishes in flight, acks awaited later. For throughput.
    pub fn pipeline(&self, window: usize) -> Pipeline {
        Pipeline {
            publisher: self.clone(),
            window: window.max(1),
            in_flight: VecDeque::new(),
            report: PipelineReport::default(),
            sent: 0,
            counters: None,
        }
    }

    /// Encodes and sends; the ack is awaited by the caller.
    async fn send<E: Event>(
        &self,
        event: &E,
        mut options: PublishOptions,
        counters: &Arc<PublishCounters>,
    ) -> Result<PendingAck, PublishError> {
        let id = options.id.take().unwrap_or_else(new_event_id);
        let target = Target::of::<E>();
        let (trace, parent) = self.trace_for(&options, &id);
        let sent = match self.encode(&target, event, &id, &options) {
            Ok(payload) => {
                let parent = parent.map(|p| p.span_id());
                self.send_encoded(target, payload, id, &options, trace, parent, counters)
                    .await
            }
            Err(e) => Err(e),
        };
        if sent.is_err() {
            counters.failed();
        }
        sent
    }

    fn codec_of(&self, options: &PublishOptions) -> Codec {
        options.codec.unwrap_or(self.codec)
    }

    /// Checks an event against its schema and encodes it; its `x-sensitive` fields, if it has
    /// any, encrypted first.
    pub(super) fn encode<T: serde::Serialize + ?Sized>(
        &self,
        target: &Target,
        value: &T,
        id: &str,
        options: &PublishOptions,
    ) -> Result<Bytes, PublishError> {
        let failed = |e: serde_json::Error| {
            PublishError::with_source(
                PublishErrorKind::Encode,
                format!(
                    "cannot encode {} v{} (id {id})",
                    target.event_type, target.version
                ),
                e,
            )
        };
        let trusted = self.validation == Validation::Types;
        if trusted && target.sensitive.is_empty() && self.codec_of(options) == Codec::Json {
            // Nothing to check or encrypt: the type straight to JSON, no value in between.
            return serde_json::to_vec(value).map(Bytes::from).map_err(failed);
        }
        let value = serde_json::to_value(value).map_err(failed)?;
        self.encode_value(target, Cow::Owned(value), id, options, !trusted)
    }

    /// [`Publisher::encode`] of a JSON value, which is read in place (not copied) unless it
    /// has fields to encrypt. A schema violation's error has the
    /// [`Violations`](crate::wire::schema::Violations) as its
    /// [`source`](std::error::Error::source), for callers that answer per field (the
    /// gateway's `400`); the rules broken only, without values, for an event with sensitive
    /// fields (they are plaintext here).
    fn encode_value(
        &self,
        target: &Target,
        value: Cow<'_, serde_json::Value>,
        id: &str,
        options: &PublishOptions,
        check: bool,
    ) -> Result<Bytes, PublishError> {
        let checked = if check {
            target.validator.check(&value)
        } else {
            Ok(())
        };
        if let Err(mut violations) = checked {
            if !target.sensitive.is_empty() {
                for v in &mut violations.0 {
                    v.message = format!("violates `{}`", v.keyword);
                }
            }
            let detail = if target.sensitive.is_empty() {
                violations.to_string()
            } else {
                violations
                    .0
                    .iter()
                    .map(|v| format!("at {} ({})", v.pointer, v.keyword))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(PublishError::with_source(
                PublishErrorKind::Invalid,
                format!(
                    "{} v{} (id {id}) does not match its schema; nothing was sent: {detail}",
                    target.event_type, target.version
                ),
                violations,
            ));
        }
        if target.sensitive.is_empty() {
            return target.encode(&value, id, self.codec_of(options));
        }
        let sealing = crate::wire::crypto::Sealing {
            event_type: target.event_type,
            version: target.version,
            sensitive: target.sensitive,
            service: self.sink.service_arc(),
        };
        let sealed =
            crate::wire::crypto::seal(self.sink.keyring(), &sealing, id, value.into_owned())?;
        target.encode(&sealed, id, self.codec_of(options))
    }

    /// Sends an encoded event with id `id` (`options.id` is not read).
    #[allow(clippy::too_many_arguments)]
    async fn send_encoded(
        &self,
        target: Target,
        payload: Bytes,
        id: String,
        options: &PublishOptions,
        trace: TraceContext,
        parent: Option<SpanId>,
        counters: &Arc<PublishCounters>,
    ) -> Result<PendingAck, PublishError> {
        let mut headers = self.headers(&target, &id, &payload, options, &trace);
        let mut subject = None;
        if target.ttl.is_some() {
            self.require([Feature::MessageTtl])?;
        }
        if let Some(schedule) = &options.schedule {
            self.require(schedule.features())?;
            for (name, value) in schedule.headers(&id)? {
                headers.insert(name, value.as_str());
            }
            headers.insert(super::schedule::SCHEDULE_TARGET, target.subject);
            // The TTL goes on the events the schedule publishes, not on the schedule (which
            // would expire before it fires).
            if let Some(ttl) = target.ttl {
                headers.insert(super::schedule::SCHEDULE_TTL, ttl_value(ttl).as_str());
            }
            subject = Some(crate::topology::schedule_subject(
                target.stream,
                self.sink.service_arc(),
                schedule.key_or(&id),
            ));
        }
        self.check_size(&target, &id, payload.len(), wire_size(&headers))?;
        let sent_at = Instant::now();
        let ack = match &self.sink {
            Sink::Nats(client) => Ack::Nats {
                future: client
                    .jetstream()
                    .publish_with_headers(
                        subject
                            .clone()
                            .unwrap_or_else(|| target.subject.to_string()),
                        headers,
                        payload,
                    )
                    .await
                    .map_err(|e| {
                        let sent_on = subject.as_deref().unwrap_or(target.subject);
                        map_publish_error(client, e, sent_on, target.stream, &id, sent_at)
                    })?,
                client: client.clone(),
            },
            Sink::Recording(recording) => {
                Ack::Recorded(recording.record(target, &id, headers, payload))
            }
        };
        Ok(PendingAck {
            id,
            subject: target.subject,
            stream: target.stream,
            ack,
            sent_at,
            trace,
            parent,
            counters: counters.clone(),
            schedule_subject: subject,
        })
    }

    /// Checks that the connected server has `features` (a recording has them all).
    pub(super) fn require(
        &self,
        features: impl IntoIterator<Item = Feature>,
    ) -> Result<(), PublishError> {
        if let Sink::Nats(client) = &self.sink {
            let version = client.nats().server_info().version;
            for feature in features {
                feature.check(&version)?;
            }
        }
        Ok(())
    }

    /// The CloudEvents (and signature) headers of an encoded event.
    pub(super) fn headers(
        &self,
        target: &Target,
        id: &str,
        payload: &Bytes,
        options: &PublishOptions,
        trace: &TraceContext,
    ) -> async_nats::HeaderMap {
        let correlation = options
            .correlation_id
            .as_deref()
            .or(self.correlation_id.as_deref())
            .unwrap_or(id);
        let causation = options
            .causation_id
            .as_deref()
            .or(self.causation_id.as_deref());
        let mut headers = OutgoingHeaders {
            id,
            source: self.sink.service_arc(),
            time: options.time.unwrap_or_else(|| event_time(id)),
            correlation_id: correlation,
            causation_id: causation,
            content_type: self.codec_of(options).content_type(),
            trace,
        }
        .build(target.event_type, target.version, target.schema_id);
        if !target.sensitive.is_empty() {
            crate::wire::crypto::mark(&mut headers, self.sink.keyring());
        }
        // A schedule carries its events' TTL in Nats-Schedule-TTL instead.
        if let Some(ttl) = target.ttl
            && options.schedule.is_none()
        {
            headers.insert(TTL, ttl_value(ttl).as_str());
        }
        if let Some(signer) = self.sink.signer() {
            // Signed for the event's subject: the one a consumer receives it on, also when
            // the server publishes it from a schedule.
            let signature = signer.sign(self.sink.service_arc(), id, target.subject, payload);
            headers.insert(crate::wire::signing::SIGNATURE, signature.as_str());
        }
        headers
    }

    /// Refuses an event the server or the stream would refuse, naming the limit.
    pub(super) fn check_size(
        &self,
        target: &Target,
        id: &str,
        payload: usize,
        headers: usize,
    ) -> Result<(), PublishError> {
        let total = payload + headers;
        // A stream's own max_msg_size, when lower, is the server's to refuse (mapped to the same
        // kind, naming the stream): the runtime does not know every catalog's streams.
        let limit = self.sink.max_payload();
        if total > limit {
            return Err(PublishError::new(
                PublishErrorKind::PayloadTooLarge,
                format!(
                    "{} v{} (id {id}) is {total} bytes ({payload} payload + {headers} headers), \
                     over the server's max_payload of {limit} bytes; nothing was sent",
                    target.event_type, target.version
                ),
            ));
        }
        Ok(())
    }
}

/// Where an event goes and what it is called: the constants of an [`Event`] or an
/// [`EventInfo`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub(crate) event_type: &'static str,
    pub(crate) version: u32,
    pub(crate) subject: &'static str,
    pub(crate) schema_id: &'static str,
    pub(crate) stream: &'static str,
    #[cfg_attr(not(feature = "protobuf"), allow(dead_code))]
    pub(crate) proto: &'static Message,
    /// The fields encrypted before encoding ([`Event::SENSITIVE`](crate::Event::SENSITIVE)).
    pub(crate) sensitive: &'static [&'static str],
    /// Its compiled schema: what is published is checked against it first.
    pub(crate) validator: &'static crate::wire::schema::Validator,
    /// How long the stream keeps it ([`Event::TTL`](crate::Event::TTL)).
    pub(crate) ttl: Option<Duration>,
}

impl Target {
    pub(super) fn of<E: Event>() -> Self {
        Self {
            event_type: E::TYPE,
            version: E::VERSION,
            subject: E::SUBJECT,
            schema_id: E::SCHEMA_ID,
            stream: E::STREAM,
            proto: E::PROTO,
            sensitive: E::SENSITIVE,
            validator: E::validator(),
            ttl: E::TTL,
        }
    }

    fn from_info(info: &EventInfo) -> Self {
        Self {
            event_type: info.event_type,
            version: info.version,
            subject: info.subject,
            schema_id: info.schema_id,
            stream: info.stream,
            proto: info.proto,
            sensitive: info.sensitive,
            validator: crate::wire::schema::Validator::cached(info.schema, info.sensitive),
            // Not in a catalog's run-time entry: a tool publishing by EventInfo sets no TTL.
            ttl: None,
        }
    }

    fn encode(
        &self,
        value: &serde_json::Value,
        id: &str,
        codec: Codec,
    ) -> Result<Bytes, PublishError> {
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
            PublishError::with_source(
                PublishErrorKind::Encode,
                format!(
                    "cannot encode {} v{} (id {id}) as {}",
                    self.event_type,
                    self.version,
                    codec.content_type()
                ),
                e,
            )
        };
        match codec {
            Codec::Json => serde_json::to_vec(value)
                .map(Bytes::from)
                .map_err(|e| failed(e.into())),
            #[cfg(feature = "protobuf")]
            Codec::Protobuf => crate::wire::proto::encode_value(self.proto, value)
                .map(Bytes::from)
                .map_err(|e| failed(e.into())),
            #[cfg(not(feature = "protobuf"))]
            Codec::Protobuf => Err(failed(
                "this build of eventhub has no protobuf codec (cargo feature `protobuf`)".into(),
            )),
        }
    }
}

/// Whether publishing again (with the same id) may succeed.
pub(super) fn is_transient(e: &PublishError) -> bool {
    // "No stream" is what a cluster answers while the stream elects a leader too (no
    // responders), so it is retried before it is reported; a busy stream stored nothing.
    matches!(
        e.kind(),
        PublishErrorKind::TimedOut
            | PublishErrorKind::Unreachable
            | PublishErrorKind::NoStream
            | PublishErrorKind::Busy
    )
}

/// A sent event whose ack has not been awaited yet.
struct PendingAck {
    id: String,
    subject: &'static str,
    stream: &'static str,
    ack: Ack,
    sent_at: Instant,
    trace: TraceContext,
    parent: Option<SpanId>,
    /// Where the latency of an acknowledged publish is recorded.
    counters: Arc<PublishCounters>,
    /// The subject of its schedule, when it was sent as one
    /// (`schedules.<STREAM>.<service>.<key>`): where it was published.
    schedule_subject: Option<String>,
}

impl PendingAck {
    async fn wait(self) -> Result<Receipt, PublishError> {
        let (subject, trace, parent_span_id) = (self.subject, self.trace, self.parent);
        let (id, result) = self.settle().await;
        result.map(|ack| Receipt {
            id,
            subject,
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
            trace,
            parent_span_id,
        })
    }

    /// Waits for the ack (or a permission violation); returns the id either way.
    async fn settle(self) -> (String, Result<Stored, PublishError>) {
        let PendingAck {
            id,
            subject,
            stream,
            ack,
            sent_at,
            counters,
            schedule_subject,
            ..
        } = self;
        let scheduled = schedule_subject.is_some();
        // Permissions are about the subject it was published on.
        let sent_on = schedule_subject.as_deref().unwrap_or(subject);
        let (future, client) = match ack {
            Ack::Nats { future, client } => (future, client),
            Ack::Recorded(stored) => return (id, Ok(stored)),
        };
        let permissions = client.permissions();
        let result = tokio::select! {
            biased;
            r = std::future::IntoFuture::into_future(future) => r,
            () = permissions.wait_denied(sent_on, sent_at) => {
                return (id, Err(permission_denied(&client, sent_on)));
            }
        };
        if result.is_ok() {
            counters.latency.observe(sent_at.elapsed());
        }
        let result = result
            .map(|ack: PublishAck| Stored {
                stream: ack.stream,
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            })
            .map_err(|e| map_publish_error(&client, e, sent_on, stream, &id, sent_at))
            .map_err(|e| {
                // No stream captures the schedule subject: the stream exists (or the plain
                // publish would fail alike) but was not provisioned for schedules.
                if scheduled && e.kind() == PublishErrorKind::NoStream {
                    PublishError::new(
                        PublishErrorKind::FeatureDisabled,
                        format!(
                            "no stream takes schedules of `{subject}`: stream {stream} does not \
                             allow message schedules (or does not exist); set \
                             `\"allow_msg_schedules\": true` on it in streams.json and provision \
                             the topology; event {id} was not stored"
                        ),
                    )
                } else {
                    e
                }
            });
        (id, result)
    }
}

fn permission_denied(client: &Client, subject: &str) -> PublishError {
    PublishError::new(
        PublishErrorKind::PermissionDenied,
        format!(
            "service `{}` ({}) may not publish to `{subject}`: the server refused it \
             (permissions violation)",
            client.service(),
            client.identity()
        ),
    )
}

pub(super) fn map_publish_error(
    client: &Client,
    e: async_nats::jetstream::context::PublishError,
    subject: &str,
    stream: &str,
    id: &str,
    since: Instant,
) -> PublishError {
    if client.permissions().denied_since(subject, since) {
        return permission_denied(client, subject);
    }
    match e.kind() {
        NatsKind::StreamNotFound => PublishError::new(
            PublishErrorKind::NoStream,
            format!(
                "no stream answered for `{subject}` (declared in stream {stream}): either the \
                 stream does not exist — provision the topology (Client::provision, or \
                 `eventhub topology apply`) — or it has no leader right now (a cluster electing \
                 one); publishing event {id} again with the same id is safe"
            ),
        ),
        NatsKind::TimedOut | NatsKind::BrokenPipe if !client.is_connected() => {
            PublishError::with_source(
                PublishErrorKind::Unreachable,
                format!(
                    "not connected to NATS at {}: event {id} on `{subject}` may not be stored; \
                     publishing it again with the same id is safe",
                    client.url()
                ),
                e,
            )
        }
        NatsKind::TimedOut | NatsKind::BrokenPipe => PublishError::with_source(
            PublishErrorKind::TimedOut,
            format!(
                "no ack for event {id} on `{subject}`: it may or may not be stored; publishing it \
                 again with the same id is safe"
            ),
            e,
        ),
        NatsKind::MaxPayloadExceeded => PublishError::with_source(
            PublishErrorKind::PayloadTooLarge,
            format!("event {id} on `{subject}` exceeds the server's max_payload"),
            e,
        ),
        _ => {
            let code = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
                .map(|j| j.error_code().0);
            if let Some(e) = code.and_then(|code| feature_error(code, subject, stream, id)) {
                e
            } else if code == Some(TOO_MANY_REQUESTS) {
                PublishError::with_source(
                    PublishErrorKind::Busy,
                    format!(
                        "stream {stream} is busy: its queue of publishes waiting to be stored is \
                         full (429 too many requests); event {id} on `{subject}` was not stored \
                         — publish it again with the same id after a pause, or keep fewer \
                         events in flight"
                    ),
                    e,
                )
            } else if code == Some(MESSAGE_TOO_LARGE) {
                PublishError::with_source(
                    PublishErrorKind::PayloadTooLarge,
                    format!(
                        "event {id} on `{subject}` exceeds the max_msg_size of stream {stream}"
                    ),
                    e,
                )
            } else {
                PublishError::with_source(
                    PublishErrorKind::Rejected,
                    format!("the server refused event {id} on `{subject}`"),
                    e,
                )
            }
        }
    }
}

/// The typed error for a JetStream error code of a feature eventhub uses, if `code` is one.
pub(crate) fn feature_error(
    code: u64,
    subject: &str,
    stream: &str,
    id: &str,
) -> Option<PublishError> {
    let disabled = |flag: &str, what: &str| {
        PublishError::new(
            PublishErrorKind::FeatureDisabled,
            format!(
                "stream {stream} does not allow {what}, so event {id} on `{subject}` was not \
                 stored: set `\"{flag}\": true` on it in streams.json and provision the topology"
            ),
        )
    };
    let invalid = |what: &str| {
        PublishError::new(
            PublishErrorKind::InvalidSchedule,
            format!("the server refused the schedule of event {id} on `{subject}`: {what}"),
        )
    };
    Some(match code {
        10188 => disabled("allow_msg_schedules", "message schedules"),
        10174 => disabled("allow_atomic", "atomic publish"),
        10166 => disabled("allow_msg_ttl", "per-message TTLs"),
        10189 => invalid("its pattern is invalid"),
        10190 => invalid("its target is not a subject of the stream"),
        10223 => invalid("its time zone is not one the server knows"),
        _ => return None,
    })
}

/// Many publishes in flight: [`Pipeline::send`] returns once the event is on its way (waiting
/// only when `window` acks are outstanding); [`Pipeline::finish`] waits for the rest and reports
/// every failure with the event it belongs to.
///
/// ```no_run
/// # async fn demo<E: eventhub::Event>(client: eventhub::Client, events: Vec<E>) -> Result<(), eventhub::error::PublishError> {
/// let mut pipeline = client.publisher().pipeline(1024);
/// for event in &events {
///     pipeline.send(event).await?;
/// }
/// let report = pipeline.finish().await;
/// for failure in &report.failures {
///     eprintln!("event #{} ({}) failed: {}", failure.index, failure.id, failure.error);
/// }
/// # Ok(()) }
/// ```
#[must_use = "call finish() to learn which publishes failed"]
pub struct Pipeline {
    publisher: Publisher,
    window: usize,
    in_flight: VecDeque<(usize, PendingAck)>,
    report: PipelineReport,
    sent: usize,
    /// The metrics of the event type sent last.
    counters: Option<(&'static str, Arc<PublishCounters>)>,
}

/// A publish of a pipeline that failed after it was sent.
#[derive(Debug)]
pub struct PipelineFailure {
    /// Position of the event among those sent through the pipeline, from 0.
    pub index: usize,
    /// The event id: publishing the event again with this id is safe.
    pub id: String,
    /// The subject.
    pub subject: &'static str,
    /// What went wrong.
    pub error: PublishError,
}

/// What a finished pipeline stored and what failed. Receipts of stored events are counted, not
/// kept: a pipeline of millions of events should not hold millions of receipts.
#[derive(Debug, Default)]
pub struct PipelineReport {
    /// Events the streams stored (new ones and duplicates).
    pub stored: u64,
    /// Of those, events a stream already held with the same id (dropped as duplicates).
    pub duplicates: u64,
    /// Events that were sent but not stored (or whose fate is unknown), with their position.
    pub failures: Vec<PipelineFailure>,
}

impl Pipeline {
    /// Sends `event`. An error here (encoding, size, not connected) means it was not sent; an
    /// error after sending is reported by [`Pipeline::finish`]. Returns the event id.
    pub async fn send<E: Event>(&mut self, event: &E) -> Result<String, PublishError> {
        self.send_with(event, PublishOptions::default()).await
    }

    /// [`Pipeline::send`] with options.
    pub async fn send_with<E: Event>(
        &mut self,
        event: &E,
        options: PublishOptions,
    ) -> Result<String, PublishError> {
        while self.in_flight.len() >= self.window {
            self.settle_oldest().await;
        }
        // A pipeline usually sends one event type: keep its counters at hand.
        let counters = match &self.counters {
            Some((ty, counters)) if *ty == E::TYPE => counters.clone(),
            _ => {
                let counters = self.publisher.sink.registry().publishes(E::TYPE);
                self.counters = Some((E::TYPE, counters.clone()));
                counters
            }
        };
        let pending = self.publisher.send(event, options, &counters).await?;
        let id = pending.id.clone();
        self.in_flight.push_back((self.sent, pending));
        self.sent += 1;
        Ok(id)
    }

    /// Publishes sent whose ack is still outstanding.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Waits for every outstanding ack and reports.
    pub async fn finish(mut self) -> PipelineReport {
        while !self.in_flight.is_empty() {
            self.settle_oldest().await;
        }
        std::mem::take(&mut self.report)
    }

    async fn settle_oldest(&mut self) {
        let Some((index, pending)) = self.in_flight.pop_front() else {
            return;
        };
        let subject = pending.subject;
        let counters = pending.counters.clone();
        match pending.settle().await {
            (_, Ok(ack)) => {
                counters.published();
                self.report.stored += 1;
                self.report.duplicates += u64::from(ack.duplicate);
            }
            (id, Err(error)) => {
                counters.failed();
                self.report.failures.push(PipelineFailure {
                    index,
                    id,
                    subject,
                    error,
                })
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if !self.in_flight.is_empty() || !self.report.failures.is_empty() {
            tracing::error!(
                in_flight = self.in_flight.len(),
                failures = self.report.failures.len(),
                "eventhub pipeline dropped without finish(): outcomes of these publishes are unknown"
            );
        }
    }
}

/// Where a publisher's events go.
#[derive(Debug, Clone)]
pub(super) enum Sink {
    /// The JetStream of a connected client.
    Nats(Client),
    /// A recording, for handler tests without a server.
    Recording(Arc<Recording>),
}

impl Sink {
    fn service_arc(&self) -> &Arc<str> {
        match self {
            Sink::Nats(client) => client.service_arc(),
            Sink::Recording(recording) => &recording.service,
        }
    }

    fn keyring(&self) -> Option<&crate::wire::crypto::Keyring> {
        match self {
            Sink::Nats(client) => client.keyring(),
            Sink::Recording(recording) => recording.keyring.as_ref(),
        }
    }

    fn registry(&self) -> &crate::counters::Registry {
        match self {
            Sink::Nats(client) => client.registry(),
            Sink::Recording(recording) => &recording.registry,
        }
    }

    fn signer(&self) -> Option<&crate::wire::signing::Signer> {
        match self {
            Sink::Nats(client) => client.signer(),
            Sink::Recording(recording) => recording.signer.as_ref(),
        }
    }

    fn publish_attempts(&self) -> u32 {
        match self {
            Sink::Nats(client) => client.publish_attempts(),
            Sink::Recording(_) => 1,
        }
    }

    fn max_payload(&self) -> usize {
        match self {
            Sink::Nats(client) => client.max_payload(),
            Sink::Recording(_) => Recording::MAX_PAYLOAD,
        }
    }
}

/// The ack a sent event waits for.
enum Ack {
    Nats {
        future: PublishAckFuture,
        client: Client,
    },
    Recorded(Stored),
}

/// Where an acknowledged event was stored.
pub(super) struct Stored {
    pub(super) stream: String,
    pub(super) sequence: u64,
    pub(super) duplicate: bool,
}

/// Events a recording publisher kept: what [`crate::testing::RecordingPublisher`] shows.
#[derive(Debug, Default)]
pub(crate) struct Recording {
    pub(crate) service: Arc<str>,
    pub(crate) keyring: Option<crate::wire::crypto::Keyring>,
    pub(crate) signer: Option<crate::wire::signing::Signer>,
    registry: crate::counters::Registry,
    pub(crate) messages: std::sync::Mutex<Vec<RecordedMessage>>,
}

/// One message as it would have been sent.
#[derive(Debug, Clone)]
pub(crate) struct RecordedMessage {
    pub(crate) subject: &'static str,
    pub(crate) stream: &'static str,
    pub(crate) sequence: u64,
    pub(crate) id: String,
    pub(crate) headers: async_nats::HeaderMap,
    pub(crate) payload: Bytes,
}

impl Recording {
    /// NATS' default `max_payload`: a recorded event that would not fit a default server is
    /// refused as it would be.
    const MAX_PAYLOAD: usize = 1024 * 1024;

    pub(crate) fn new(service: &str, keyring: Option<crate::wire::crypto::Keyring>) -> Self {
        Self {
            service: service.into(),
            keyring,
            ..Self::default()
        }
    }

    /// Keeps a message; one whose id was recorded before is a duplicate, as within a stream's
    /// duplicate window.
    pub(super) fn record(
        &self,
        target: Target,
        id: &str,
        headers: async_nats::HeaderMap,
        payload: Bytes,
    ) -> Stored {
        let mut messages = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(first) = messages.iter().find(|m| m.id == id) {
            return Stored {
                stream: first.stream.to_string(),
                sequence: first.sequence,
                duplicate: true,
            };
        }
        let sequence = messages.len() as u64 + 1;
        messages.push(RecordedMessage {
            subject: target.subject,
            stream: target.stream,
            sequence,
            id: id.to_string(),
            headers,
            payload,
        });
        Stored {
            stream: target.stream.to_string(),
            sequence,
            duplicate: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_stream_is_published_again_and_a_refusal_is_not() {
        let busy = PublishError::new(PublishErrorKind::Busy, "429 too many requests");
        assert!(is_transient(&busy), "a 429 stored nothing: retry it");
        let refused = PublishError::new(PublishErrorKind::Rejected, "stream sealed");
        assert!(!is_transient(&refused), "a refusal stays a refusal");
    }
}
