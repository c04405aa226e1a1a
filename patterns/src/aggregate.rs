//! Event-sourced aggregates: an aggregate's state is the fold of its events, stored in
//! JetStream, written with optimistic concurrency.
//!
//! # Where the events live
//!
//! Each aggregate type has a stream of its own, `ES_<TYPE>` (e.g. `ES_ACCOUNT`), capturing
//! `es.<type>.*`; one aggregate's events are the messages on **one subject**,
//! `es.<type>.<aggregate id>`, and the event type and version travel in headers (`ce-type`,
//! `eventhub-version`) with the usual CloudEvents attributes.
//!
//! Why not `events.<type>.v<N>` plus the id: JetStream checks an expected version per
//! *subject* (`Nats-Expected-Last-Subject-Sequence`). With one subject per aggregate the check
//! is exact and cheap, loading reads one subject, and a snapshot is a position on it. What it
//! costs the existing topology: the catalog's consumers (filtered on `events.<type>.v<N>`)
//! do not see aggregate events, and an aggregate id must be one subject token
//! (`[A-Za-z0-9_-]`, at most 128 bytes). Events other services should react to are published
//! as integration events besides (or by a [projection](crate::projection) of the aggregate
//! stream); the aggregate stream is the write model's private history.
//!
//! # Versions and conflicts
//!
//! An aggregate's *version* is the stream sequence of its last event (0: no event yet).
//! [`EventStore::append`] sends the expected version as `Nats-Expected-Last-Subject-Sequence`:
//! if another writer appended in between, the server refuses and the append fails with
//! [`AppendError::Conflict`], nothing stored. Several events of one append are stored
//! atomically (a JetStream atomic batch): all or none.
//!
//! An append whose acknowledgement is lost (a server restart, a dropped connection) is
//! resolved, not guessed: the store reads back the first event after the expected version and
//! compares event ids, and re-sends only what is not stored. So an acknowledged append is
//! stored once, and an append that returned an error other than
//! [`AppendError::Unavailable`] stored nothing.
//!
//! # Snapshots
//!
//! With [`StoreOptions::snapshot_every`] set, [`EventStore::load`] writes the folded state to
//! the key-value bucket `ES_SNAPSHOTS_<TYPE>` once that many events were replayed since the last
//! snapshot, and later loads start from it. A snapshot is an optimisation only: it is written
//! with compare-and-set (never replacing a newer one) and ignored when its
//! [`Aggregate::SNAPSHOT_VERSION`] differs from the code's, or when it is ahead of the stream.
//!
//! # Upcasting
//!
//! [`DomainEvent::decode`] receives each stored event with its type and version; decoding an
//! old version into the current type is the catalog's [`Upcasted`](eventhub::Upcasted)
//! (`From<V1> for V2`), so an aggregate's `apply` only sees current versions.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::stream::{self, DirectGetErrorKind};
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use eventhub::error::DecodeError;
use eventhub::{Client, TraceContext};
use futures::StreamExt;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::recorded::{EncodeError, Encoded, Recorded};

/// The events of one aggregate type: how each is encoded for storage and decoded (and
/// upcast) when loaded.
///
/// ```
/// use eventhub::{Consumable, Upcasted};
/// use eventhub::error::DecodeError;
/// use eventhub_catalog::events::user;
/// use eventhub_patterns::{DomainEvent, EncodeError, Encoded, Recorded};
///
/// #[derive(Debug)]
/// enum UserEvent {
///     Created(user::CreatedV2),
///     Deleted(user::DeletedV1),
/// }
///
/// impl DomainEvent for UserEvent {
///     fn encode(&self) -> Result<Encoded, EncodeError> {
///         match self {
///             UserEvent::Created(e) => Encoded::of(e),
///             UserEvent::Deleted(e) => Encoded::of(e),
///         }
///     }
///     fn decode(r: &Recorded) -> Option<Result<Self, DecodeError>> {
///         let (v, raw) = (r.version, r.raw());
///         Some(match r.event_type.as_str() {
///             // v1 events arrive as v2 (the catalog's `From<CreatedV1> for CreatedV2`).
///             "user.created" => Upcasted::<user::Created, user::CreatedV2>::decode(v, &raw)
///                 .map(|e| UserEvent::Created(e.into_inner())),
///             "user.deleted" => user::DeletedV1::decode(v, &raw).map(UserEvent::Deleted),
///             _ => return None,
///         })
///     }
/// }
/// ```
pub trait DomainEvent: Sized + Send + Sync + fmt::Debug + 'static {
    /// The event as stored: usually [`Encoded::of`] on the variant's generated type.
    fn encode(&self) -> Result<Encoded, EncodeError>;

    /// The stored event as `Self`, converting old versions; `None` when its type is not one of
    /// this aggregate's events.
    fn decode(recorded: &Recorded) -> Option<Result<Self, DecodeError>>;
}

/// An aggregate: state folded from its events.
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The aggregate type: one lowercase subject token (`[a-z0-9_-]`), e.g. `account`.
    const TYPE: &'static str;
    /// The shape of the state in snapshots: bump it when the state's type changes, and older
    /// snapshots are ignored (the state is folded from the events again).
    const SNAPSHOT_VERSION: u32 = 1;
    /// Its events.
    type Event: DomainEvent;

    /// Folds one event into the state. Must be deterministic: loading replays it.
    fn apply(&mut self, event: Self::Event);
}

/// How an [`EventStore`] stores its aggregate type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Write a snapshot once a load replayed this many events since the last one. Default
    /// `Some(100)`; `None` never writes or reads snapshots.
    pub snapshot_every: Option<u64>,
    /// How long an append keeps trying while the server is unreachable (a restart) before
    /// giving up with [`AppendError::Unavailable`]. Default 30 s.
    pub append_timeout: Duration,
    /// Replicas of the stream and the snapshot bucket. Default 1.
    pub replicas: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            snapshot_every: Some(100),
            append_timeout: Duration::from_secs(30),
            replicas: 1,
        }
    }
}

impl StoreOptions {
    /// Sets the snapshot interval (`None`: no snapshots).
    pub fn snapshot_every(mut self, every: Option<u64>) -> Self {
        self.snapshot_every = every;
        self
    }

    /// Sets how long an append retries while the server is unreachable.
    pub fn append_timeout(mut self, timeout: Duration) -> Self {
        self.append_timeout = timeout;
        self
    }

    /// Sets the replicas of the stream and the snapshot bucket.
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }
}

/// Why opening an [`EventStore`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// [`Aggregate::TYPE`] is not one lowercase subject token.
    #[error("aggregate type `{0}` must be lowercase letters, digits, `_` and `-`")]
    InvalidType(String),
    /// The stream or the snapshot bucket could not be created, updated or opened (a service
    /// under the generated `nats.conf` opens what an operator provisioned: `eventhub config
    /// apply`).
    #[error("cannot provision {what} for aggregate type `{aggregate_type}`: {source}")]
    Provision {
        /// The aggregate type.
        aggregate_type: String,
        /// The stream or bucket.
        what: String,
        /// The JetStream error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// Another writer appended since `expected`: nothing was stored. Load again, decide
    /// again, append with the new version.
    #[error(
        "aggregate {aggregate} is at version {actual}, not {expected}: another writer appended \
         first; nothing was stored"
    )]
    Conflict {
        /// The aggregate's subject.
        aggregate: String,
        /// The version the append expected.
        expected: u64,
        /// The version it is at.
        actual: u64,
    },
    /// The aggregate id is not one subject token of `[A-Za-z0-9_-]` (at most 128 bytes).
    #[error("aggregate id `{0}` must be 1-128 of A-Z, a-z, 0-9, `_` and `-`")]
    InvalidId(String),
    /// An append needs at least one event.
    #[error("nothing to append to aggregate {0}")]
    Empty(String),
    /// An event could not be encoded; nothing was stored.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The server refused the events for another reason (too large, stream sealed, storage
    /// full); nothing was stored.
    #[error("the server refused the append to {aggregate}: {description} (error {code})")]
    Rejected {
        /// The aggregate's subject.
        aggregate: String,
        /// JetStream's error code.
        code: u64,
        /// JetStream's description.
        description: String,
    },
    /// The server stayed unreachable for [`StoreOptions::append_timeout`]: the events may or
    /// may not be stored. Load the aggregate to know.
    #[error(
        "the append to {aggregate} got no answer for {after:?} (last: {last}); the events may \
         or may not be stored: load the aggregate to know"
    )]
    Unavailable {
        /// The aggregate's subject.
        aggregate: String,
        /// How long it tried.
        after: Duration,
        /// The last failure.
        last: String,
    },
}

/// Why a load failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The aggregate id is not one subject token.
    #[error("aggregate id `{0}` must be 1-128 of A-Z, a-z, 0-9, `_` and `-`")]
    InvalidId(String),
    /// A stored event has no type or version header.
    #[error("{subject} #{sequence} is not an eventhub event (no ce-type / eventhub-version)")]
    NotAnEvent {
        /// The aggregate's subject.
        subject: String,
        /// Its stream sequence.
        sequence: u64,
    },
    /// A stored event is of a type the aggregate does not know.
    #[error("{subject} #{sequence}: `{event_type}` v{version} is not an event of this aggregate")]
    UnknownEvent {
        /// The aggregate's subject.
        subject: String,
        /// Its stream sequence.
        sequence: u64,
        /// Its type.
        event_type: String,
        /// Its version.
        version: u32,
    },
    /// A stored event does not decode.
    #[error("{subject} #{sequence} does not decode: {source}")]
    Decode {
        /// The aggregate's subject.
        subject: String,
        /// Its stream sequence.
        sequence: u64,
        /// Why.
        source: DecodeError,
    },
    /// Reading the stream failed.
    #[error("cannot read {subject}: {source}")]
    Read {
        /// The aggregate's subject.
        subject: String,
        /// The JetStream error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A loaded aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The folded state.
    pub state: A,
    /// The version to append at: the stream sequence of the last event, 0 for none.
    pub version: u64,
    /// Events folded into the state, the snapshot's included.
    pub events: u64,
    /// The version of the snapshot the load started from, if any.
    pub snapshot: Option<u64>,
}

/// Up to this many stream sequences to replay, a load reads message by message (direct gets)
/// rather than in batches.
const DIRECT_READS: u64 = 32;

/// Events per batched direct get.
const DIRECT_BATCH: u64 = 1024;

#[derive(Serialize, Deserialize)]
struct Snapshot<S> {
    shape: u32,
    version: u64,
    events: u64,
    state: S,
}

/// Appends and loads aggregates of type `A`. Cheap to clone.
///
/// ```no_run
/// # use eventhub_patterns::{Aggregate, EventStore, StoreOptions};
/// # async fn demo<A: Aggregate>(client: eventhub::Client, event: A::Event) -> Result<(), Box<dyn std::error::Error>> {
/// let store = EventStore::<A>::open(&client, StoreOptions::default()).await?;
/// let loaded = store.load("a-1").await?;
/// let version = store.append("a-1", loaded.version, &[event]).await?;
/// # Ok(()) }
/// ```
pub struct EventStore<A> {
    client: Client,
    stream: stream::Stream,
    stream_name: String,
    snapshots: Option<(kv::Store, u64)>,
    options: StoreOptions,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for EventStore<A> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            stream: self.stream.clone(),
            stream_name: self.stream_name.clone(),
            snapshots: self.snapshots.clone(),
            options: self.options.clone(),
            _aggregate: PhantomData,
        }
    }
}

impl<A> fmt::Debug for EventStore<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStore")
            .field("stream", &self.stream_name)
            .field("options", &self.options)
            .finish()
    }
}

/// `ES_<TYPE>`: the stream of an aggregate type.
pub fn stream_name(aggregate_type: &str) -> String {
    format!(
        "ES_{}",
        aggregate_type.to_ascii_uppercase().replace('-', "_")
    )
}

/// `es.<type>.<id>`: the subject of one aggregate's events.
pub fn aggregate_subject(aggregate_type: &str, id: &str) -> String {
    format!("es.{aggregate_type}.{id}")
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `ES_SNAPSHOTS_<TYPE>`: the snapshot bucket of an aggregate type.
pub fn snapshot_bucket(aggregate_type: &str) -> String {
    format!("ES_SNAPSHOTS_{}", &stream_name(aggregate_type)[3..])
}

fn valid_type(ty: &str) -> bool {
    !ty.is_empty()
        && ty
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn provision_error(
    ty: &str,
    what: String,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> StoreError {
    let aggregate_type = ty.to_string();
    move |source| StoreError::Provision {
        aggregate_type,
        what,
        source,
    }
}

/// Creates or updates the stream of aggregate type `aggregate_type` and, when
/// `options.snapshot_every` is set, its snapshot bucket. [`EventStore::open`] does it when they
/// are missing; where services may not create streams (the generated `nats.conf`), an operator
/// does it first (`eventhub config apply`, for the aggregates a service declares).
pub async fn provision(
    client: &Client,
    aggregate_type: &str,
    options: &StoreOptions,
) -> Result<(), StoreError> {
    let ty = aggregate_type;
    if !valid_type(ty) {
        return Err(StoreError::InvalidType(ty.to_string()));
    }
    let js = client.jetstream();
    let name = stream_name(ty);
    let config = stream::Config {
        name: name.clone(),
        description: Some(format!("eventhub: events of `{ty}` aggregates")),
        subjects: vec![format!("es.{ty}.*")],
        storage: stream::StorageType::File,
        num_replicas: options.replicas,
        allow_direct: true,
        allow_atomic_publish: true,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    js.create_or_update_stream(config)
        .await
        .map_err(|e| provision_error(ty, format!("stream {name}"))(e.into()))?;
    if options.snapshot_every.is_some() {
        let bucket = snapshot_bucket(ty);
        js.create_or_update_key_value(kv::Config {
            bucket: bucket.clone(),
            description: format!("eventhub: snapshots of `{ty}` aggregates"),
            history: 1,
            num_replicas: options.replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| provision_error(ty, format!("bucket {bucket}"))(e.into()))?;
    }
    Ok(())
}

impl<A: Aggregate> EventStore<A> {
    /// Opens the aggregate type's stream and, with snapshots, its bucket; creates them first
    /// ([`provision`]) when one is missing. A service that may only read their info (the
    /// generated `nats.conf`) opens what an operator provisioned.
    pub async fn open(client: &Client, options: StoreOptions) -> Result<Self, StoreError> {
        let ty = A::TYPE;
        if !valid_type(ty) {
            return Err(StoreError::InvalidType(ty.to_string()));
        }
        let js = client.jetstream();
        let name = stream_name(ty);
        let bucket = snapshot_bucket(ty);
        let mut stream = js.get_stream(&name).await.ok();
        let mut store = match options.snapshot_every {
            Some(_) => js.get_key_value(&bucket).await.ok(),
            None => None,
        };
        if stream.is_none() || (options.snapshot_every.is_some() && store.is_none()) {
            provision(client, ty, &options).await?;
            stream = Some(
                js.get_stream(&name)
                    .await
                    .map_err(|e| provision_error(ty, format!("stream {name}"))(e.into()))?,
            );
            if options.snapshot_every.is_some() {
                store = Some(
                    js.get_key_value(&bucket)
                        .await
                        .map_err(|e| provision_error(ty, format!("bucket {bucket}"))(e.into()))?,
                );
            }
        }
        let snapshots = match (store, options.snapshot_every) {
            (Some(store), Some(every)) => Some((store, every.max(1))),
            _ => None,
        };
        Ok(Self {
            client: client.clone(),
            stream: stream.expect("opened or provisioned"),
            stream_name: name,
            snapshots,
            options,
            _aggregate: PhantomData,
        })
    }

    /// The stream holding this aggregate type's events.
    pub fn stream(&self) -> &str {
        &self.stream_name
    }

    /// Appends `events` to aggregate `id` if its version is still `expected` (0 for a new
    /// aggregate), atomically; returns the new version.
    ///
    /// Fails with [`AppendError::Conflict`] when another writer appended first, storing
    /// nothing. A lost acknowledgement is resolved by reading back (see the module docs), so a
    /// retry inside this call never stores an event twice.
    pub async fn append(
        &self,
        id: &str,
        expected: u64,
        events: &[A::Event],
    ) -> Result<u64, AppendError> {
        let subject = aggregate_subject(A::TYPE, id);
        if !valid_id(id) {
            return Err(AppendError::InvalidId(id.to_string()));
        }
        if events.is_empty() {
            return Err(AppendError::Empty(subject));
        }
        let encoded = events
            .iter()
            .map(DomainEvent::encode)
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<String> = encoded
            .iter()
            .map(|_| eventhub::wire::headers::new_event_id())
            .collect();
        let trace = TraceContext::root();
        let messages: Vec<(HeaderMap, Bytes)> = encoded
            .iter()
            .zip(&ids)
            .map(|(e, event_id)| {
                let h = e.headers(event_id, self.client.service(), &ids[0], &trace.child());
                (h, e.payload.clone())
            })
            .collect();
        let span =
            tracing::debug_span!("append", aggregate = %subject, expected, events = events.len());
        let _enter = span.enter();
        let started = tokio::time::Instant::now();
        let mut attempt: u32 = 0;
        loop {
            let sent = self.send(&subject, expected, &messages, attempt).await;
            let ambiguous_before = attempt > 0;
            match sent {
                Ok(sequence) => return Ok(sequence),
                Err(Sent::Refused { code, description }) => {
                    // After an unanswered attempt, a refusal may be our own earlier events.
                    if ambiguous_before
                        && let Ok(Some(seq)) = self.stored_as(&subject, expected, &ids).await
                    {
                        return Ok(seq);
                    }
                    if code == jetstream::ErrorCode::STREAM_WRONG_LAST_SEQUENCE.0 {
                        let actual = self.last_sequence(&subject).await.unwrap_or(0);
                        return Err(AppendError::Conflict {
                            aggregate: subject,
                            expected,
                            actual,
                        });
                    }
                    return Err(AppendError::Rejected {
                        aggregate: subject,
                        code,
                        description,
                    });
                }
                Err(Sent::NoAnswer(why)) => {
                    attempt += 1;
                    if started.elapsed() >= self.options.append_timeout {
                        return Err(AppendError::Unavailable {
                            aggregate: subject,
                            after: started.elapsed(),
                            last: why,
                        });
                    }
                    tracing::debug!(attempt, "append got no answer ({why}); resolving");
                    tokio::time::sleep(backoff(attempt)).await;
                    match self.stored_as(&subject, expected, &ids).await {
                        Ok(Some(seq)) => return Ok(seq),
                        // Not stored (or not readable yet): send again, same event ids.
                        Ok(None) | Err(_) => continue,
                    }
                }
            }
        }
    }

    /// Sends the events, one message or an atomic batch; the server's answer.
    async fn send(
        &self,
        subject: &str,
        expected: u64,
        messages: &[(HeaderMap, Bytes)],
        attempt: u32,
    ) -> Result<u64, Sent> {
        let nats = self.client.nats();
        let expected_header = expected.to_string();
        let last = messages.len() - 1;
        // Each attempt is its own batch: a batch id names one try.
        let batch_id = format!("{}-{attempt}", uuid::Uuid::now_v7().simple());
        for (i, (headers, payload)) in messages.iter().enumerate() {
            let mut h = headers.clone();
            if i == 0 {
                h.insert(
                    "Nats-Expected-Last-Subject-Sequence",
                    expected_header.as_str(),
                );
            }
            if messages.len() > 1 {
                h.insert("Nats-Batch-Id", batch_id.as_str());
                h.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
                if i == last {
                    h.insert("Nats-Batch-Commit", "1");
                }
            }
            if i < last {
                nats.publish_with_headers(subject.to_string(), h, payload.clone())
                    .await
                    .map_err(|e| Sent::NoAnswer(e.to_string()))?;
                continue;
            }
            let request = async_nats::Request::new()
                .headers(h)
                .payload(payload.clone())
                .timeout(Some(Duration::from_secs(5)));
            let reply = nats
                .send_request(subject.to_string(), request)
                .await
                .map_err(|e| Sent::NoAnswer(e.to_string()))?;
            return parse_ack(&reply.payload);
        }
        unreachable!("messages is not empty")
    }

    /// Where our events were stored, if they were: the first event after `expected` on the
    /// subject is ours when its id is our first id (a batch is all or nothing).
    async fn stored_as(
        &self,
        subject: &str,
        expected: u64,
        ids: &[String],
    ) -> Result<Option<u64>, stream::DirectGetError> {
        let mut after = expected;
        for (i, id) in ids.iter().enumerate() {
            let next = match self
                .stream
                .direct_get_next_for_subject(subject, Some(after + 1))
                .await
            {
                Ok(m) => m,
                Err(e) if e.kind() == DirectGetErrorKind::NotFound && i == 0 => return Ok(None),
                Err(e) => return Err(e),
            };
            let stored_id = next
                .headers
                .get(eventhub::wire::headers::ID)
                .map(|v| v.as_str().to_string());
            if stored_id.as_deref() != Some(id.as_str()) {
                return Ok(None);
            }
            after = next.sequence;
        }
        Ok(Some(after))
    }

    /// The stream sequence of the aggregate's last event, 0 for none.
    async fn last_sequence(&self, subject: &str) -> Result<u64, stream::DirectGetError> {
        match self.stream.direct_get_last_for_subject(subject).await {
            Ok(m) => Ok(m.sequence),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Up to [`DIRECT_BATCH`] events of `subject` from sequence `from` (at most through `last`),
    /// in one batched direct get (nats-server 2.11+): the server answers with the messages and
    /// an end-of-batch status.
    async fn direct_batch(
        &self,
        subject: &str,
        from: u64,
        last: u64,
    ) -> Result<Vec<jetstream::message::StreamMessage>, Box<dyn std::error::Error + Send + Sync>>
    {
        let nats = self.client.nats();
        let inbox = nats.new_inbox();
        let mut replies = nats.subscribe(inbox.clone()).await?;
        let request = serde_json::json!({
            "seq": from,
            "next_by_subj": subject,
            "batch": (last - from + 1).min(DIRECT_BATCH),
        });
        nats.publish_with_reply(
            format!("$JS.API.DIRECT.GET.{}", self.stream_name),
            inbox,
            serde_json::to_vec(&request)?.into(),
        )
        .await?;
        let mut out = Vec::new();
        loop {
            let reply = tokio::time::timeout(Duration::from_secs(5), replies.next())
                .await
                .map_err(|_| "no answer to a direct get within 5 s")?
                .ok_or("the subscription to the direct get's answers ended")?;
            match reply.status.map(|s| s.as_u16()) {
                None => out.push(jetstream::message::StreamMessage::try_from(reply)?),
                // End of batch; not found: nothing (more) from `from` on.
                Some(204) | Some(404) => return Ok(out),
                Some(code) => {
                    return Err(format!(
                        "direct get answered {code} {}",
                        reply.description.unwrap_or_default()
                    )
                    .into());
                }
            }
        }
    }

    /// Loads aggregate `id`: its last snapshot (if any) and the events after it, folded.
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, LoadError> {
        self.load_inner(id, true).await
    }

    /// Loads aggregate `id` from its first event, ignoring snapshots (and writing none).
    pub async fn load_from_events(&self, id: &str) -> Result<Loaded<A>, LoadError> {
        self.load_inner(id, false).await
    }

    async fn load_inner(&self, id: &str, use_snapshots: bool) -> Result<Loaded<A>, LoadError> {
        if !valid_id(id) {
            return Err(LoadError::InvalidId(id.to_string()));
        }
        let subject = aggregate_subject(A::TYPE, id);
        let read = |e: Box<dyn std::error::Error + Send + Sync>| LoadError::Read {
            subject: subject.clone(),
            source: e,
        };
        let last = self
            .last_sequence(&subject)
            .await
            .map_err(|e| read(e.into()))?;
        let snapshots = self.snapshots.as_ref().filter(|_| use_snapshots);
        let mut revision = None;
        let mut loaded = Loaded {
            state: A::default(),
            version: 0,
            events: 0,
            snapshot: None,
        };
        if let Some((bucket, _)) = snapshots
            && let Ok(Some(entry)) = bucket.entry(id).await
        {
            revision = Some(entry.revision);
            match serde_json::from_slice::<Snapshot<A>>(&entry.value) {
                // A snapshot ahead of the stream belongs to a purged history: ignore it.
                Ok(s) if s.shape == A::SNAPSHOT_VERSION && s.version <= last => {
                    loaded = Loaded {
                        state: s.state,
                        version: s.version,
                        events: s.events,
                        snapshot: Some(s.version),
                    };
                }
                _ => tracing::debug!(%subject, "ignoring a snapshot of another shape"),
            }
        }
        let mut replayed = 0u64;
        let start = loaded.version + 1;
        let mut fold = |sequence: u64,
                        msg_subject: &str,
                        published: chrono::DateTime<chrono::Utc>,
                        headers: Option<&HeaderMap>,
                        payload: Bytes|
         -> Result<(), LoadError> {
            let recorded = Recorded::from_parts(msg_subject, sequence, published, headers, payload)
                .ok_or_else(|| LoadError::NotAnEvent {
                    subject: subject.clone(),
                    sequence,
                })?;
            let event = match A::Event::decode(&recorded) {
                Some(Ok(event)) => event,
                Some(Err(source)) => {
                    return Err(LoadError::Decode {
                        subject: subject.clone(),
                        sequence,
                        source,
                    });
                }
                None => {
                    return Err(LoadError::UnknownEvent {
                        subject: subject.clone(),
                        sequence,
                        event_type: recorded.event_type,
                        version: recorded.version,
                    });
                }
            };
            loaded.state.apply(event);
            loaded.version = sequence;
            loaded.events += 1;
            replayed += 1;
            Ok(())
        };
        if last >= start && last - start < DIRECT_READS {
            // A few events (the usual case after a snapshot): read them one by one, without
            // creating a consumer.
            let mut next = start;
            while next <= last {
                let m = self
                    .stream
                    .direct_get_next_for_subject(subject.as_str(), Some(next))
                    .await
                    .map_err(|e| read(e.into()))?;
                if m.sequence > last {
                    break;
                }
                next = m.sequence + 1;
                fold(m.sequence, &m.subject, m.time, Some(&m.headers), m.payload)?;
            }
        } else if last >= start {
            // Many events: batches of direct gets. No consumer, so nothing to clean up (a
            // service may not delete consumers under the generated `nats.conf`).
            let mut next = start;
            while next <= last {
                let batch = self
                    .direct_batch(&subject, next, last)
                    .await
                    .map_err(&read)?;
                let Some(end) = batch.last().map(|m| m.sequence) else {
                    return Err(read(
                        format!("no events from #{next} on, though the last is #{last}").into(),
                    ));
                };
                for m in batch.into_iter().filter(|m| m.sequence <= last) {
                    fold(m.sequence, &m.subject, m.time, Some(&m.headers), m.payload)?;
                }
                next = end + 1;
            }
        }
        if let Some((bucket, every)) = snapshots
            && replayed >= *every
        {
            self.write_snapshot(bucket, id, &loaded, revision).await;
        }
        Ok(loaded)
    }

    /// Writes a snapshot unless another writer replaced the one read (compare-and-set): a
    /// failure costs only a longer load later.
    async fn write_snapshot(
        &self,
        bucket: &kv::Store,
        id: &str,
        loaded: &Loaded<A>,
        revision: Option<u64>,
    ) {
        let snapshot = Snapshot {
            shape: A::SNAPSHOT_VERSION,
            version: loaded.version,
            events: loaded.events,
            state: &loaded.state,
        };
        let value: Bytes = match serde_json::to_vec(&snapshot) {
            Ok(v) => v.into(),
            Err(e) => {
                tracing::warn!("cannot serialize the snapshot of {id}: {e}");
                return;
            }
        };
        let written = match revision {
            Some(r) => bucket
                .update(id, value, r)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => bucket
                .create(id, value)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = written {
            tracing::debug!("snapshot of {id} not written: {e}");
        }
    }

    /// Loads, decides and appends, again on [`AppendError::Conflict`] (at most `attempts`
    /// times): `decide` sees the current state and returns the events to append (none: nothing
    /// to do). Returns the version after the append.
    pub async fn execute<E>(
        &self,
        id: &str,
        attempts: u32,
        mut decide: impl FnMut(&A) -> Result<Vec<A::Event>, E>,
    ) -> Result<u64, ExecuteError<E>> {
        let mut tries = 0;
        loop {
            tries += 1;
            let loaded = self.load(id).await?;
            let events = decide(&loaded.state).map_err(ExecuteError::Rejected)?;
            if events.is_empty() {
                return Ok(loaded.version);
            }
            match self.append(id, loaded.version, &events).await {
                Err(AppendError::Conflict { .. }) if tries < attempts.max(1) => continue,
                other => return other.map_err(ExecuteError::Append),
            }
        }
    }
}

/// Why [`EventStore::execute`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError<E> {
    /// The decision refused the command.
    #[error("the command was refused")]
    Rejected(E),
    /// Loading failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Appending failed (a conflict after the last attempt included).
    #[error(transparent)]
    Append(AppendError),
}

enum Sent {
    /// The server answered with an error: nothing stored by this attempt.
    Refused { code: u64, description: String },
    /// No answer: stored or not, unknown.
    NoAnswer(String),
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(2))
}

#[derive(Deserialize)]
struct Ack {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

fn parse_ack(payload: &[u8]) -> Result<u64, Sent> {
    match serde_json::from_slice::<Ack>(payload) {
        Ok(Ack {
            error: Some(error), ..
        }) => Err(Sent::Refused {
            code: error.err_code,
            description: error.description,
        }),
        Ok(Ack { seq: Some(seq), .. }) => Ok(seq),
        _ => Err(Sent::NoAnswer(format!(
            "unexpected answer `{}`",
            String::from_utf8_lossy(payload)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_and_refusals_parse() {
        assert!(matches!(parse_ack(br#"{"stream":"ES_A","seq":7}"#), Ok(7)));
        assert!(matches!(
            parse_ack(br#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}"#),
            Err(Sent::Refused { code: 10071, .. })
        ));
        assert!(matches!(parse_ack(b""), Err(Sent::NoAnswer(_))));
    }

    #[test]
    fn ids_are_one_subject_token() {
        assert!(valid_id("acc-1_A"));
        for bad in ["", "a.b", "a*", "a>", "a b", &"x".repeat(129)] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert_eq!(stream_name("bank-account"), "ES_BANK_ACCOUNT");
    }
}
