//! Sagas (process managers): a long-running flow keyed by a correlation id reacts to events and
//! timeouts, emits events, and compensates when a step fails or times out.
//!
//! # Where things live
//!
//! - **State**: one entry per saga instance in the key-value bucket `SAGA_<NAME>`, keyed by the
//!   correlation id and updated with compare-and-set on its revision ([`SagaRecord`]: the
//!   user's state, the status, the step count, the pending timeout and the step history).
//! - **Inputs**: a durable consumer (`saga_<name>`) on one stream, filtered on the saga's
//!   subjects.
//! - **Timeouts**: JetStream message scheduling (`Nats-Schedule: @at …`) in the saga's own
//!   stream `SAGA_<NAME>`: the schedule `saga.<name>.timer.<id>` makes the *server* publish
//!   `saga.<name>.timeout.<id>` at the deadline, which a second durable consumer
//!   (`saga_<name>_timeouts`) delivers. A timeout is stored by the server, so it fires while no
//!   instance runs and is handled when one starts. A new timer replaces the old (`Nats-Rollup:
//!   sub`), and every timeout carries a token: one the saga has moved past is ignored.
//!
//! # Guarantees
//!
//! Each input is handled **at least once** and its effects happen **once**: the step's events
//! are published with ids derived from (saga, id, step, index), so JetStream drops a repeat
//! within the stream's duplicate window; the record keeps the ids of the last inputs it
//! applied, so an input redelivered after the record was written is acknowledged without
//! running the step again. [`Saga::on_event`] and [`Saga::on_timeout`] must be deterministic
//! functions of the state and the input for a repeat to publish the same events.
//!
//! A step that returns an error is retried (`Nak` with a delay) up to five deliveries; the
//! record is unchanged meanwhile.

use std::fmt;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::{self, AckKind, kv, stream};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use eventhub::{Client, Event, TraceContext};
use futures::StreamExt;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::recorded::{EncodeError, Encoded, Recorded};

/// Where a saga instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Waiting for events or its timeout.
    Running,
    /// Done: every step succeeded.
    Completed,
    /// Done: a step failed or timed out and the compensating events were emitted.
    Compensated,
    /// Done: it could not complete nor compensate (escalate to a person).
    Failed,
}

impl SagaStatus {
    /// Whether the saga is over (further inputs are ignored).
    pub fn is_terminal(self) -> bool {
        self != SagaStatus::Running
    }
}

/// An event a step emits.
#[derive(Debug, Clone)]
pub struct Emit {
    subject: &'static str,
    encoded: Encoded,
}

impl Emit {
    /// `event` on its subject.
    pub fn event<E: Event>(event: &E) -> Result<Self, EncodeError> {
        Ok(Self {
            subject: E::SUBJECT,
            encoded: Encoded::of(event)?,
        })
    }
}

/// What to do with the saga's timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer {
    /// Leave it as it is.
    Keep,
    /// (Re)arm it: [`Saga::on_timeout`] runs with `token` after `after`, unless another step
    /// re-arms or clears it first.
    Set {
        /// From now.
        after: Duration,
        /// Names the timeout (e.g. the step it guards).
        token: String,
    },
    /// Disarm it.
    Clear,
}

/// The outcome of a step: the new state and status, the events to emit, the timer.
#[derive(Debug, Clone)]
pub struct Step<S> {
    /// The new state (`None`: the input is not for this saga; nothing is written).
    pub state: Option<S>,
    /// The new status.
    pub status: SagaStatus,
    /// Events to publish.
    pub emit: Vec<Emit>,
    /// The timer.
    pub timer: Timer,
}

impl<S> Step<S> {
    /// Still running with `state`.
    pub fn running(state: S) -> Self {
        Self {
            state: Some(state),
            status: SagaStatus::Running,
            emit: Vec::new(),
            timer: Timer::Keep,
        }
    }

    /// Over, with `status` (the timer is cleared).
    pub fn finished(state: S, status: SagaStatus) -> Self {
        Self {
            state: Some(state),
            status,
            emit: Vec::new(),
            timer: Timer::Clear,
        }
    }

    /// The input does not concern this saga (e.g. no instance exists and it does not start
    /// one).
    pub fn ignore() -> Self {
        Self {
            state: None,
            status: SagaStatus::Running,
            emit: Vec::new(),
            timer: Timer::Keep,
        }
    }

    /// Also emits `event`.
    pub fn emit<E: Event>(mut self, event: &E) -> Result<Self, EncodeError> {
        self.emit.push(Emit::event(event)?);
        Ok(self)
    }

    /// Arms the timer.
    pub fn timeout(mut self, after: Duration, token: impl Into<String>) -> Self {
        self.timer = Timer::Set {
            after,
            token: token.into(),
        };
        self
    }
}

/// A step's failure: the input is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StepError(pub String);

/// A saga definition.
pub trait Saga: Send + Sync + 'static {
    /// Its name: lowercase letters, digits and `_` (the bucket is `SAGA_<NAME>`).
    const NAME: &'static str;
    /// Its state.
    type State: Default + Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync;

    /// The saga instance an event belongs to (a subject token: `[A-Za-z0-9_-]`); default: its
    /// correlation id.
    fn correlate(&self, event: &Recorded) -> Option<String> {
        event.correlation_id.clone()
    }

    /// Reacts to an event (`state` is the default when no instance exists yet).
    fn on_event(
        &self,
        state: &Self::State,
        event: &Recorded,
    ) -> Result<Step<Self::State>, StepError>;

    /// Reacts to the timeout armed with `token`.
    fn on_timeout(&self, state: &Self::State, token: &str) -> Result<Step<Self::State>, StepError>;
}

/// One entry of a saga's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The step number (1 for the first).
    pub step: u64,
    /// `event <type> <id>` or `timeout <token>`.
    pub input: String,
    /// The status after it.
    pub status: SagaStatus,
    /// When it was handled.
    pub at: DateTime<Utc>,
}

/// A pending timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTimeout {
    /// Its token.
    pub token: String,
    /// When it fires.
    pub at: DateTime<Utc>,
}

/// A saga instance as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaRecord<S> {
    /// The user's state.
    pub state: S,
    /// Where it is.
    pub status: SagaStatus,
    /// Steps taken.
    pub step: u64,
    /// The armed timeout, if any.
    pub timeout: Option<PendingTimeout>,
    /// Every step, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Ids of the last inputs applied (a redelivered input is recognised).
    pub seen: Vec<String>,
}

const SEEN: usize = 64;

/// Why a saga could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SagaError {
    /// [`Saga::NAME`] is not lowercase letters, digits and `_`.
    #[error("saga name `{0}` must be lowercase letters, digits and `_`")]
    InvalidName(&'static str),
    /// [`provision`] failed: it needs an operator's rights (streams, consumers, buckets).
    #[error("cannot provision saga {name}: {detail}")]
    Provision {
        /// The saga.
        name: String,
        /// What failed.
        detail: String,
    },
    /// JetStream failed.
    #[error("saga {name}: {detail}")]
    JetStream {
        /// The saga.
        name: &'static str,
        /// What failed.
        detail: String,
    },
}

/// Reads saga records (for tools and tests).
#[derive(Debug, Clone)]
pub struct SagaRecords {
    bucket: kv::Store,
}

impl SagaRecords {
    /// The record of instance `id`, if any.
    pub async fn get<S: DeserializeOwned>(
        &self,
        id: &str,
    ) -> Result<Option<SagaRecord<S>>, SagaError> {
        let fail = |e: &dyn fmt::Display| SagaError::JetStream {
            name: "records",
            detail: e.to_string(),
        };
        match self.bucket.get(id).await.map_err(|e| fail(&e))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| fail(&e)),
            None => Ok(None),
        }
    }

    /// Waits until instance `id` has a record for which `done` holds, and returns it.
    pub async fn wait_for<S: DeserializeOwned>(
        &self,
        id: &str,
        done: impl Fn(&SagaRecord<S>) -> bool,
    ) -> Result<SagaRecord<S>, SagaError> {
        let fail = |e: &dyn fmt::Display| SagaError::JetStream {
            name: "records",
            detail: e.to_string(),
        };
        // The watch delivers the current value first, then every change.
        let mut watch = self
            .bucket
            .watch_with_history(id)
            .await
            .map_err(|e| fail(&e))?;
        while let Some(entry) = watch.next().await {
            let entry = entry.map_err(|e| fail(&e))?;
            if let Ok(record) = serde_json::from_slice::<SagaRecord<S>>(&entry.value)
                && done(&record)
            {
                return Ok(record);
            }
        }
        Err(fail(&"the watch ended"))
    }
}

/// `SAGA_<NAME>`: the stream of a saga's timers and the name of its bucket.
pub fn saga_stream(name: &str) -> String {
    format!("SAGA_{}", name.to_ascii_uppercase())
}

/// Where the saga reads its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SagaOptions {
    /// The stream of its input events.
    pub stream: String,
    /// The subjects it reads there.
    pub subjects: Vec<String>,
    /// How long a step may take before its input is delivered again. Default 30 s.
    pub ack_wait: Duration,
}

impl SagaOptions {
    /// Inputs from `subjects` of `stream`.
    pub fn new(
        stream: impl Into<String>,
        subjects: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            stream: stream.into(),
            subjects: subjects.into_iter().map(Into::into).collect(),
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// A running saga.
#[derive(Debug)]
pub struct SagaHandle {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
    records: SagaRecords,
}

impl SagaHandle {
    /// Its records.
    pub fn records(&self) -> &SagaRecords {
        &self.records
    }

    /// Stops after the current step.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Opens saga `S`'s records without running it.
pub async fn records<S: Saga>(client: &Client) -> Result<SagaRecords, SagaError> {
    Ok(SagaRecords {
        bucket: store::<S>(client).await?.0,
    })
}

/// Saga `S`'s bucket and timer stream: opened when they exist (a service needs only read
/// access to their info), else created.
async fn store<S: Saga>(client: &Client) -> Result<(kv::Store, stream::Stream), SagaError> {
    let name = S::NAME;
    if !valid_name(name) {
        return Err(SagaError::InvalidName(name));
    }
    let js = client.jetstream();
    let stream_name = saga_stream(name);
    if let (Ok(bucket), Ok(stream)) = (
        js.get_key_value(&stream_name).await,
        js.get_stream(&stream_name).await,
    ) {
        return Ok((bucket, stream));
    }
    provision_store(client, name)
        .await
        .map_err(|detail| SagaError::JetStream { name, detail })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Creates (or updates) everything saga `name` needs: its bucket and timer stream `SAGA_<NAME>`
/// and its two durables, `saga_<name>` on `options.stream` and `saga_<name>_timeouts`. [`start`]
/// does it when something is missing; where services may not create streams nor consumers (the
/// generated `nats.conf`), an operator does it first (`eventhub config apply`).
///
/// An existing durable is updated to `options` (a changed filter or ack wait).
pub async fn provision(
    client: &Client,
    name: &str,
    options: &SagaOptions,
) -> Result<(), SagaError> {
    let fail = |detail: String| SagaError::Provision {
        name: name.to_string(),
        detail,
    };
    if !valid_name(name) {
        return Err(fail(
            "a saga's name is lowercase letters, digits and `_`".into(),
        ));
    }
    let (_, timers) = provision_store(client, name).await.map_err(fail)?;
    let inputs = client
        .jetstream()
        .get_stream(&options.stream)
        .await
        .map_err(|e| fail(format!("input stream {}: {e}", options.stream)))?;
    inputs
        .create_consumer(input_consumer(name, options))
        .await
        .map_err(|e| fail(format!("durable saga_{name}: {e}")))?;
    timers
        .create_consumer(timeout_consumer(name, options))
        .await
        .map_err(|e| fail(format!("durable saga_{name}_timeouts: {e}")))?;
    Ok(())
}

fn input_consumer(name: &str, options: &SagaOptions) -> pull::Config {
    pull::Config {
        durable_name: Some(format!("saga_{name}")),
        filter_subjects: options.subjects.clone(),
        ack_policy: AckPolicy::Explicit,
        ack_wait: options.ack_wait,
        max_deliver: 5,
        ..Default::default()
    }
}

fn timeout_consumer(name: &str, options: &SagaOptions) -> pull::Config {
    pull::Config {
        durable_name: Some(format!("saga_{name}_timeouts")),
        filter_subject: format!("saga.{name}.timeout.*"),
        ack_policy: AckPolicy::Explicit,
        ack_wait: options.ack_wait,
        max_deliver: 5,
        ..Default::default()
    }
}

/// Creates or updates the bucket and the timer stream of saga `name` (a valid name).
async fn provision_store(
    client: &Client,
    name: &str,
) -> Result<(kv::Store, stream::Stream), String> {
    let js = client.jetstream();
    let stream_name = saga_stream(name);
    let bucket = js
        .create_or_update_key_value(kv::Config {
            bucket: stream_name.clone(),
            description: format!("eventhub: instances of saga {name}"),
            history: 1,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("bucket {stream_name}: {e}"))?;
    js.create_or_update_stream(stream::Config {
        name: stream_name.clone(),
        description: Some(format!("eventhub: timers of saga {name}")),
        subjects: vec![format!("saga.{name}.>")],
        storage: stream::StorageType::File,
        allow_message_schedules: true,
        allow_rollup: true,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("stream {stream_name}: {e}"))?;
    let stream = js
        .get_stream(&stream_name)
        .await
        .map_err(|e| format!("stream {stream_name}: {e}"))?;
    Ok((bucket, stream))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

enum Input {
    Event(Recorded),
    Timeout { id: String, token: String },
}

/// Runs saga `saga` until [`SagaHandle::stop`].
///
/// ```no_run
/// use std::time::Duration;
/// use eventhub_patterns::Recorded;
/// use eventhub_patterns::saga::{self, Saga, SagaOptions, SagaStatus, Step, StepError};
///
/// /// Waits for a payment's outcome; gives up after 15 minutes.
/// struct Checkout;
///
/// impl Saga for Checkout {
///     const NAME: &'static str = "checkout";
///     type State = Vec<String>; // the events seen
///
///     fn on_event(&self, seen: &Vec<String>, e: &Recorded) -> Result<Step<Vec<String>>, StepError> {
///         let mut seen = seen.clone();
///         seen.push(e.event_type.clone());
///         Ok(match e.event_type.as_str() {
///             "payment.created" => Step::running(seen).timeout(Duration::from_secs(900), "pay"),
///             "payment.status-changed" => Step::finished(seen, SagaStatus::Completed),
///             _ => Step::ignore(),
///         })
///     }
///
///     fn on_timeout(&self, seen: &Vec<String>, _token: &str) -> Result<Step<Vec<String>>, StepError> {
///         // Compensate here: `Step::finished(..).emit(&cancellation)?`.
///         Ok(Step::finished(seen.clone(), SagaStatus::Compensated))
///     }
/// }
///
/// # async fn demo(client: eventhub::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let options = SagaOptions::new(
///     "PAYMENTS",
///     ["events.payment.created.v1", "events.payment.status-changed.v1"],
/// );
/// let running = saga::start(&client, Checkout, options).await?;
/// let record = running.records().get::<Vec<String>>("some-correlation-id").await?;
/// # running.stop().await;
/// # Ok(()) }
/// ```
pub async fn start<S: Saga>(
    client: &Client,
    saga: S,
    options: SagaOptions,
) -> Result<SagaHandle, SagaError> {
    let name = S::NAME;
    let fail = move |e: &dyn fmt::Display| SagaError::JetStream {
        name,
        detail: e.to_string(),
    };
    let (bucket, timer_stream) = store::<S>(client).await?;
    let js = client.jetstream();
    // `get_or_create` asks for the durable's info first: a service that may not create
    // consumers runs on the durables an operator provisioned.
    let inputs = js
        .get_stream(&options.stream)
        .await
        .map_err(|e| fail(&e))?
        .get_or_create_consumer(&format!("saga_{name}"), input_consumer(name, &options))
        .await
        .map_err(|e| fail(&e))?;
    let timeouts = timer_stream
        .get_or_create_consumer(
            &format!("saga_{name}_timeouts"),
            timeout_consumer(name, &options),
        )
        .await
        .map_err(|e| fail(&e))?;
    let inputs = inputs.messages().await.map_err(|e| fail(&e))?;
    let timeouts = timeouts.messages().await.map_err(|e| fail(&e))?;
    let mut merged = futures::stream::select(inputs, timeouts);
    let (stop, mut stopped) = watch::channel(false);
    let runner = Runner {
        client: client.clone(),
        saga,
        bucket: bucket.clone(),
    };
    let task = tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                biased;
                _ = stopped.changed() => break,
                m = merged.next() => m,
            };
            let message = match message {
                Some(Ok(m)) => m,
                // The pull streams recover by themselves (a server restart, missed
                // heartbeats); the error only says that one happened.
                Some(Err(e)) => {
                    tracing::warn!(saga = name, "saga input failed, reading on: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                None => {
                    tracing::warn!(saga = name, "saga input ended; stopping");
                    break;
                }
            };
            let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
            match runner.handle(&message).await {
                Ok(()) => {
                    if let Err(e) = message.double_ack().await {
                        tracing::warn!(
                            saga = name,
                            "ack failed (the input is handled again, changing nothing): {e}"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(saga = name, delivered, "step failed: {e}");
                    let delay = Duration::from_millis(200u64 << delivered.clamp(0, 5));
                    let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
                }
            }
        }
    });
    Ok(SagaHandle {
        task,
        stop,
        records: SagaRecords { bucket },
    })
}

struct Runner<S> {
    client: Client,
    saga: S,
    bucket: kv::Store,
}

impl<S: Saga> Runner<S> {
    async fn handle(&self, message: &jetstream::Message) -> Result<(), String> {
        let name = S::NAME;
        let info = message.info().map_err(|e| e.to_string())?;
        let timeout_prefix = format!("saga.{name}.timeout.");
        let input = if let Some(id) = message.subject.as_str().strip_prefix(&timeout_prefix) {
            Input::Timeout {
                id: id.to_string(),
                token: String::from_utf8_lossy(&message.payload).into_owned(),
            }
        } else {
            match Recorded::from_parts(
                &message.subject,
                info.stream_sequence,
                info.published,
                message.headers.as_ref(),
                message.payload.clone(),
            ) {
                Some(r) => Input::Event(r),
                None => return Ok(()),
            }
        };
        let (id, input_id, label) = match &input {
            Input::Event(r) => match self.saga.correlate(r) {
                Some(id) => (id, r.id.clone(), format!("event {} {}", r.event_type, r.id)),
                None => return Ok(()),
            },
            Input::Timeout { id, token } => (
                id.clone(),
                format!("timeout:{token}:{}", info.stream_sequence),
                format!("timeout {token}"),
            ),
        };
        if !valid_id(&id) {
            tracing::warn!(
                saga = name,
                "ignoring an input with correlation id {id:?}: not [A-Za-z0-9_-]"
            );
            return Ok(());
        }
        let entry = self.bucket.entry(&id).await.map_err(|e| e.to_string())?;
        let (record, revision) = match entry {
            Some(e) if e.operation == kv::Operation::Put => (
                Some(
                    serde_json::from_slice::<SagaRecord<S::State>>(&e.value)
                        .map_err(|e| e.to_string())?,
                ),
                e.revision,
            ),
            _ => (None, 0),
        };
        if let Some(r) = &record
            && (r.status.is_terminal() || r.seen.contains(&input_id))
        {
            return Ok(());
        }
        let state = record.as_ref().map(|r| r.state.clone()).unwrap_or_default();
        let step = match &input {
            Input::Event(r) => self.saga.on_event(&state, r),
            Input::Timeout { token, .. } => {
                // Only the armed timeout counts: one the saga moved past is stale.
                let armed = record
                    .as_ref()
                    .and_then(|r| r.timeout.as_ref())
                    .is_some_and(|t| &t.token == token);
                if !armed {
                    return Ok(());
                }
                self.saga.on_timeout(&state, token)
            }
        }
        .map_err(|e| e.to_string())?;
        let Some(new_state) = step.state else {
            return Ok(());
        };
        let mut record = record.unwrap_or(SagaRecord {
            state: S::State::default(),
            status: SagaStatus::Running,
            step: 0,
            timeout: None,
            history: Vec::new(),
            seen: Vec::new(),
        });
        record.step += 1;
        let causation = match &input {
            Input::Event(r) => r.id.clone(),
            Input::Timeout { .. } => input_id.clone(),
        };
        // Same saga, instance and step: the same ids, so a repeat is dropped as a duplicate.
        for (i, emit) in step.emit.iter().enumerate() {
            let event_id = format!("saga-{name}-{id}-{}-{i}", record.step);
            let mut h =
                emit.encoded
                    .headers(&event_id, self.client.service(), &id, &TraceContext::root());
            h.insert(eventhub::wire::headers::CAUSATION_ID, causation.as_str());
            self.client
                .jetstream()
                .publish_with_headers(emit.subject, h, emit.encoded.payload.clone())
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
        }
        let timer_subject = format!("saga.{name}.timer.{id}");
        let timer = if step.status.is_terminal() {
            Timer::Clear
        } else {
            step.timer
        };
        match timer {
            Timer::Keep => {}
            Timer::Set { after, token } => {
                let at =
                    Utc::now() + chrono::Duration::from_std(after).map_err(|e| e.to_string())?;
                let mut h = HeaderMap::new();
                h.insert(
                    "Nats-Schedule",
                    format!(
                        "@at {}",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    )
                    .as_str(),
                );
                h.insert(
                    "Nats-Schedule-Target",
                    format!("saga.{name}.timeout.{id}").as_str(),
                );
                h.insert("Nats-Rollup", "sub");
                self.client
                    .jetstream()
                    .publish_with_headers(timer_subject, h, Bytes::from(token.clone().into_bytes()))
                    .await
                    .map_err(|e| e.to_string())?
                    .await
                    .map_err(|e| e.to_string())?;
                record.timeout = Some(PendingTimeout { token, at });
            }
            Timer::Clear => {
                if record.timeout.take().is_some() {
                    // A plain message that rolls the schedule up: the server forgets the
                    // schedule without the purge API, which services are denied.
                    let mut h = HeaderMap::new();
                    h.insert("Nats-Rollup", "sub");
                    self.client
                        .jetstream()
                        .publish_with_headers(timer_subject, h, Bytes::from_static(b"cleared"))
                        .await
                        .map_err(|e| e.to_string())?
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        record.state = new_state;
        record.status = step.status;
        record.history.push(HistoryEntry {
            step: record.step,
            input: label,
            status: step.status,
            at: Utc::now(),
        });
        record.seen.push(input_id);
        if record.seen.len() > SEEN {
            record.seen.remove(0);
        }
        let value: Bytes = serde_json::to_vec(&record)
            .map_err(|e| e.to_string())?
            .into();
        // Compare-and-set: another instance that handled an input of this saga meanwhile makes
        // this one retry from the new record.
        if revision == 0 {
            self.bucket
                .create(&id, value)
                .await
                .map_err(|e| e.to_string())?;
        } else {
            self.bucket
                .update(&id, value, revision)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
