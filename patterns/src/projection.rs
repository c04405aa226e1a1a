//! Projections (CQRS read models): a handler runs over the events of one stream, in stream
//! order, and its output lives in a key-value bucket **together with its checkpoint**.
//!
//! # Exactly-once effects in the bucket
//!
//! For each event, the handler returns the [`Change`]s to make to the read model; the
//! projection writes them and its checkpoint (the event's stream sequence) as **one JetStream
//! atomic batch** into the bucket's stream: all of them or none. A projection killed at any
//! point resumes after its checkpoint, and an event whose changes were stored is never
//! applied again; one whose changes were not is applied once on resume. The checkpoint write
//! also expects the checkpoint's previous revision, so a second instance of the same
//! projection cannot apply an event twice either: it stops with [`ProjectionError::Fenced`].
//!
//! The handler itself runs **at least once** per event: an effect outside the bucket (an
//! email) may repeat on resume. Keep handlers pure functions of the event and the read model.
//!
//! Events that change nothing are checkpointed every
//! [`ProjectionOptions::checkpoint_every`] events (and on stop); after a crash they are read
//! again, changing nothing again.
//!
//! # Rebuild
//!
//! [`rebuild`] empties the bucket and sets the checkpoint so that the next run starts from the
//! first event, a stream sequence or a time ([`StartFrom`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use eventhub::{Client, StartFrom};
use futures::StreamExt;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::recorded::Recorded;

/// The key of the checkpoint in a projection's bucket (user keys may not start with `_`).
pub const CHECKPOINT_KEY: &str = "_checkpoint";

/// A change to the read model.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Sets `key` to a JSON value.
    Put(String, Bytes),
    /// Deletes `key`.
    Delete(String),
}

impl Change {
    /// Sets `key` to `value` as JSON.
    pub fn put(key: impl Into<String>, value: &impl Serialize) -> Result<Self, ProjectError> {
        let value = serde_json::to_vec(value).map_err(|e| ProjectError(e.to_string()))?;
        Ok(Change::Put(key.into(), value.into()))
    }

    /// Deletes `key`.
    pub fn delete(key: impl Into<String>) -> Self {
        Change::Delete(key.into())
    }

    fn key(&self) -> &str {
        match self {
            Change::Put(k, _) | Change::Delete(k) => k,
        }
    }
}

/// A handler's failure: the projection stops at this event (and resumes there next time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProjectError(pub String);

impl ProjectError {
    /// A failure with this text.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Why a projection stopped or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// The projection's name is not `[A-Za-z0-9_-]`.
    #[error("projection name `{0}` must be letters, digits, `_` and `-`")]
    InvalidName(String),
    /// The handler failed on an event; nothing of it was written.
    #[error("projection {name} stopped at {subject} #{sequence}: {error}")]
    Handler {
        /// The projection.
        name: String,
        /// The event's subject.
        subject: String,
        /// Its stream sequence.
        sequence: u64,
        /// The handler's error.
        error: ProjectError,
    },
    /// A change names a key that is not a valid key, or one starting with `_` (reserved).
    #[error(
        "projection {name}: key `{key}` is invalid (letters, digits, `-/_=.`, not starting with `_` or `.`)"
    )]
    InvalidKey {
        /// The projection.
        name: String,
        /// The key.
        key: String,
    },
    /// Another instance moved the checkpoint: this one stopped without writing.
    #[error("projection {name}: another instance moved the checkpoint; this one stopped")]
    Fenced {
        /// The projection.
        name: String,
    },
    /// JetStream failed (provisioning, reading, or a write the server refused).
    #[error("projection {name}: {detail}")]
    JetStream {
        /// The projection.
        name: String,
        /// What failed.
        detail: String,
    },
}

/// What a projection reads and where it writes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProjectionOptions {
    /// The projection's name; its bucket is `PROJ_<name>`.
    pub name: String,
    /// The stream it reads.
    pub stream: String,
    /// The subjects it reads (empty: all of the stream's).
    pub subjects: Vec<String>,
    /// Where a projection without a checkpoint starts. Default: the first event.
    pub start_from: StartFrom,
    /// Events that change nothing between two checkpoints. Default 100.
    pub checkpoint_every: u64,
    /// How long a write keeps trying while the server is unreachable. Default 30 s.
    pub write_timeout: Duration,
}

impl ProjectionOptions {
    /// A projection `name` over `stream`, from its first event.
    pub fn new(name: impl Into<String>, stream: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            stream: stream.into(),
            subjects: Vec::new(),
            start_from: StartFrom::All,
            checkpoint_every: 100,
            write_timeout: Duration::from_secs(30),
        }
    }

    /// Reads only these subjects (wildcards allowed).
    pub fn subjects(mut self, subjects: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.subjects = subjects.into_iter().map(Into::into).collect();
        self
    }

    /// Sets where a projection without a checkpoint starts.
    pub fn start_from(mut self, start_from: StartFrom) -> Self {
        self.start_from = start_from;
        self
    }

    /// Sets how many events that change nothing pass between checkpoints.
    pub fn checkpoint_every(mut self, every: u64) -> Self {
        self.checkpoint_every = every.max(1);
        self
    }
}

/// The read model as the handler sees it: the bucket's committed values.
#[derive(Debug, Clone)]
pub struct View {
    bucket: kv::Store,
    /// Set when a read failed for want of the server (not for a bad value): the projection
    /// then runs the handler on the same event again instead of stopping.
    unavailable: Arc<AtomicBool>,
}

impl View {
    /// The value of `key`, decoded from JSON.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ProjectError> {
        match self.bucket.get(key).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ProjectError(format!("`{key}` is not the expected JSON: {e}"))),
            Ok(None) => Ok(None),
            Err(e) => {
                self.unavailable.store(true, Ordering::SeqCst);
                Err(ProjectError(format!("cannot read `{key}`: {e}")))
            }
        }
    }

    /// Every key of the read model (the checkpoint excluded), sorted.
    pub async fn keys(&self) -> Result<Vec<String>, ProjectError> {
        let mut keys: Vec<String> = self
            .bucket
            .keys()
            .await
            .map_err(|e| {
                self.unavailable.store(true, Ordering::SeqCst);
                ProjectError(e.to_string())
            })?
            .filter_map(|k| async move { k.ok() })
            .filter(|k| std::future::ready(k != CHECKPOINT_KEY))
            .collect()
            .await;
        keys.sort();
        Ok(keys)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    /// The last event applied (0: none).
    sequence: u64,
    /// Where to start when no event was applied yet (set by a rebuild).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_time: Option<chrono::DateTime<chrono::Utc>>,
}

/// A running projection.
#[derive(Debug)]
pub struct ProjectionHandle {
    name: String,
    task: JoinHandle<Result<(), ProjectionError>>,
    position: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    view: View,
}

impl ProjectionHandle {
    /// The stream sequence of the last event handled.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// The read model.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Waits until the events up to stream sequence `sequence` are handled (and their changes
    /// stored). Returns the projection's error if it stops first.
    pub async fn reached(&mut self, sequence: u64) -> Result<(), ProjectionError> {
        loop {
            if *self.position.borrow_and_update() >= sequence {
                return Ok(());
            }
            if self.position.changed().await.is_err() {
                // The task ended before reaching it: its result says why.
                let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
                return match task.await {
                    Ok(Err(e)) => Err(e),
                    Ok(Ok(())) | Err(_) => Err(ProjectionError::JetStream {
                        name: self.name.clone(),
                        detail: format!("stopped before sequence {sequence}"),
                    }),
                };
            }
        }
    }

    /// Stops after the current event, writing the checkpoint.
    pub async fn stop(self) -> Result<(), ProjectionError> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(Ok(()))
    }

    /// Kills the projection at whatever point it is (a crash, for tests and drills).
    pub fn abort(self) {
        self.task.abort();
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(['.', '_'])
        && !key.ends_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
}

/// `PROJ_<name>`: the bucket of a projection.
pub fn bucket_name(name: &str) -> String {
    format!("PROJ_{name}")
}

struct Bucket {
    name: String,
    store: kv::Store,
}

async fn open_bucket(client: &Client, name: &str) -> Result<Bucket, ProjectionError> {
    if !valid_name(name) {
        return Err(ProjectionError::InvalidName(name.to_string()));
    }
    let js = client.jetstream();
    let fail = |what: &str, e: &dyn std::fmt::Display| ProjectionError::JetStream {
        name: name.to_string(),
        detail: format!("{what}: {e}"),
    };
    let bucket = bucket_name(name);
    let store = js
        .create_or_update_key_value(kv::Config {
            bucket: bucket.clone(),
            description: format!("eventhub: read model of projection {name}"),
            history: 1,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| fail("cannot create its bucket", &e))?;
    // Changes and checkpoint go in one atomic batch: the bucket's stream must allow them.
    let stream_name = format!("KV_{bucket}");
    let mut stream = js
        .get_stream(&stream_name)
        .await
        .map_err(|e| fail("cannot read its bucket", &e))?;
    let mut config = stream
        .info()
        .await
        .map_err(|e| fail("cannot read its bucket", &e))?
        .config
        .clone();
    if !config.allow_atomic_publish {
        config.allow_atomic_publish = true;
        js.update_stream(config)
            .await
            .map_err(|e| fail("cannot allow atomic writes to its bucket", &e))?;
    }
    Ok(Bucket {
        name: bucket,
        store,
    })
}

/// Starts projection `options.name`: resumes after its checkpoint (or starts per
/// [`ProjectionOptions::start_from`]) and runs `handler` on every event until stopped.
///
/// ```no_run
/// use eventhub_patterns::projection::{self, Change, ProjectionOptions};
/// # async fn demo(client: eventhub::Client) -> Result<(), Box<dyn std::error::Error>> {
/// // Users per locale, from the user stream.
/// let options = ProjectionOptions::new("users_per_type", "USERS");
/// let handle = projection::start(&client, options, |event, view| async move {
///     let key = format!("count.{}", event.event_type.replace('.', "_"));
///     let n: u64 = view.get(&key).await?.unwrap_or(0);
///     Ok(vec![Change::put(key, &(n + 1))?])
/// })
/// .await?;
/// # handle.stop().await?;
/// # Ok(()) }
/// ```
pub async fn start<F, Fut>(
    client: &Client,
    options: ProjectionOptions,
    mut handler: F,
) -> Result<ProjectionHandle, ProjectionError>
where
    F: FnMut(Recorded, View) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<Change>, ProjectError>> + Send,
{
    let bucket = open_bucket(client, &options.name).await?;
    let name = options.name.clone();
    let fail = move |what: &str, e: &dyn std::fmt::Display| ProjectionError::JetStream {
        name: name.clone(),
        detail: format!("{what}: {e}"),
    };
    let (checkpoint, mut revision) = match bucket.store.entry(CHECKPOINT_KEY).await {
        Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
            let c: Checkpoint = serde_json::from_slice(&entry.value)
                .map_err(|e| fail("its checkpoint is not one", &e))?;
            (Some(c), entry.revision)
        }
        Ok(_) => (None, 0),
        Err(e) => return Err(fail("cannot read its checkpoint", &e)),
    };
    let deliver_policy = match &checkpoint {
        Some(Checkpoint {
            sequence: 0,
            start_time: Some(t),
        }) => DeliverPolicy::ByStartTime { start_time: *t },
        Some(c) => DeliverPolicy::ByStartSequence {
            start_sequence: c.sequence + 1,
        },
        None => match options.start_from {
            StartFrom::All => DeliverPolicy::All,
            StartFrom::New => DeliverPolicy::New,
            StartFrom::Time(start_time) => DeliverPolicy::ByStartTime { start_time },
            StartFrom::Sequence(start_sequence) => {
                DeliverPolicy::ByStartSequence { start_sequence }
            }
        },
    };
    let stream = client
        .jetstream()
        .get_stream(&options.stream)
        .await
        .map_err(|e| fail(&format!("cannot find stream {}", options.stream), &e))?;
    let mut messages = read(&stream, &options.subjects, deliver_policy)
        .await
        .map_err(|e| fail("cannot read the stream", &e))?;
    let view = View {
        bucket: bucket.store.clone(),
        unavailable: Arc::new(AtomicBool::new(false)),
    };
    let start = checkpoint.as_ref().map_or(0, |c| c.sequence);
    let (position_tx, position) = watch::channel(start);
    let (stop, mut stopped) = watch::channel(false);
    let writer = Writer {
        client: client.clone(),
        bucket_subject: format!("$KV.{}.", bucket.name),
        store: bucket.store.clone(),
        name: options.name.clone(),
        timeout: options.write_timeout,
    };
    let task_view = view.clone();
    let task = tokio::spawn(async move {
        let mut unsaved = 0u64;
        let mut last = start;
        loop {
            let message = tokio::select! {
                biased;
                _ = stopped.changed() => break,
                m = messages.next() => m,
            };
            let Some(message) = message else { break };
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    // The server lost the ordered consumer (a restart: it lives in memory):
                    // read on from after the last event handled, for up to the write timeout.
                    tracing::debug!("projection input failed, reading again: {e}");
                    let deadline = tokio::time::Instant::now() + writer.timeout;
                    let mut pause = Duration::from_millis(50);
                    messages = loop {
                        let from = DeliverPolicy::ByStartSequence {
                            start_sequence: last + 1,
                        };
                        match read(&stream, &options.subjects, from).await {
                            Ok(m) => break m,
                            Err(again) if tokio::time::Instant::now() + pause < deadline => {
                                tracing::debug!("projection input still failing: {again}");
                                tokio::time::sleep(pause).await;
                                pause = (pause * 2).min(Duration::from_secs(1));
                            }
                            Err(_) => return Err(fail("cannot read the stream", &e)),
                        }
                    };
                    continue;
                }
            };
            let info = message
                .info()
                .map_err(|e| fail("a message without info", &e))?;
            let (sequence, published) = (info.stream_sequence, info.published);
            let Some(recorded) = Recorded::from_parts(
                &message.subject,
                sequence,
                published,
                message.headers.as_ref(),
                message.payload.clone(),
            ) else {
                // Not an event (no type, no version): nothing to project.
                tracing::debug!(sequence, subject = %message.subject, "projection skips a non-event");
                unsaved += 1;
                last = sequence;
                let _ = position_tx.send(sequence);
                continue;
            };
            let subject = recorded.subject.clone();
            // A read the server could not answer (e.g. while it restarts) is retried with the
            // same event until the write timeout; any other handler error stops here.
            let deadline = tokio::time::Instant::now() + writer.timeout;
            let mut pause = Duration::from_millis(50);
            let changes = loop {
                task_view.unavailable.store(false, Ordering::SeqCst);
                match handler(recorded.clone(), task_view.clone()).await {
                    Ok(changes) => break changes,
                    Err(error)
                        if task_view.unavailable.load(Ordering::SeqCst)
                            && tokio::time::Instant::now() + pause < deadline =>
                    {
                        tracing::debug!(sequence, "projection read failed, again: {error}");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                    }
                    Err(error) => {
                        return Err(ProjectionError::Handler {
                            name: writer.name.clone(),
                            subject,
                            sequence,
                            error,
                        });
                    }
                }
            };
            if let Some(bad) = changes.iter().find(|c| !valid_key(c.key())) {
                return Err(ProjectionError::InvalidKey {
                    name: writer.name.clone(),
                    key: bad.key().to_string(),
                });
            }
            last = sequence;
            if changes.is_empty() {
                unsaved += 1;
                if unsaved < options.checkpoint_every {
                    let _ = position_tx.send(sequence);
                    continue;
                }
            }
            revision = writer.commit(&changes, sequence, revision).await?;
            unsaved = 0;
            let _ = position_tx.send(sequence);
        }
        if unsaved > 0 {
            writer.commit(&[], last, revision).await?;
        }
        Ok(())
    });
    Ok(ProjectionHandle {
        name: options.name.clone(),
        task,
        position,
        stop,
        view,
    })
}

/// An ordered consumer of `subjects` from `from` on.
async fn read(
    stream: &stream::Stream,
    subjects: &[String],
    from: DeliverPolicy,
) -> Result<jetstream::consumer::pull::Ordered, String> {
    let (filter_subject, filter_subjects) = match subjects {
        [one] => (one.clone(), Vec::new()),
        many => (String::new(), many.to_vec()),
    };
    stream
        .create_consumer(OrderedConfig {
            filter_subject,
            filter_subjects,
            deliver_policy: from,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?
        .messages()
        .await
        .map_err(|e| e.to_string())
}

struct Writer {
    client: Client,
    bucket_subject: String,
    store: kv::Store,
    name: String,
    timeout: Duration,
}

impl Writer {
    /// Writes `changes` and the checkpoint `sequence` as one atomic batch, the checkpoint
    /// expecting `revision`; returns the checkpoint's new revision.
    async fn commit(
        &self,
        changes: &[Change],
        sequence: u64,
        revision: u64,
    ) -> Result<u64, ProjectionError> {
        let fail = |detail: String| ProjectionError::JetStream {
            name: self.name.clone(),
            detail,
        };
        let checkpoint = serde_json::to_vec(&Checkpoint {
            sequence,
            start_time: None,
        })
        .map_err(|e| fail(e.to_string()))?;
        let mut messages: Vec<(String, HeaderMap, Bytes)> = Vec::new();
        let mut h = HeaderMap::new();
        h.insert(
            "Nats-Expected-Last-Subject-Sequence",
            revision.to_string().as_str(),
        );
        messages.push((
            format!("{}{CHECKPOINT_KEY}", self.bucket_subject),
            h,
            checkpoint.into(),
        ));
        for change in changes {
            let subject = format!("{}{}", self.bucket_subject, change.key());
            match change {
                Change::Put(_, value) => messages.push((subject, HeaderMap::new(), value.clone())),
                Change::Delete(_) => {
                    let mut h = HeaderMap::new();
                    h.insert("KV-Operation", "DEL");
                    messages.push((subject, h, Bytes::new()));
                }
            }
        }
        let started = tokio::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            match send_batch(&self.client, &messages, attempt).await {
                Ok(last) => return Ok(last + 1 - messages.len() as u64),
                Err(Sent::Refused(code, description)) => {
                    if code == jetstream::ErrorCode::STREAM_WRONG_LAST_SEQUENCE.0 {
                        if attempt > 0
                            && let Some(rev) = self.committed(sequence).await
                        {
                            return Ok(rev);
                        }
                        return Err(ProjectionError::Fenced {
                            name: self.name.clone(),
                        });
                    }
                    return Err(fail(format!("the server refused a write: {description}")));
                }
                Err(Sent::NoAnswer(why)) => {
                    attempt += 1;
                    if started.elapsed() > self.timeout {
                        return Err(fail(format!("no answer to a write: {why}")));
                    }
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
                    if let Some(rev) = self.committed(sequence).await {
                        return Ok(rev);
                    }
                }
            }
        }
    }

    /// The checkpoint's revision if it already records `sequence` (a write whose ack was lost).
    async fn committed(&self, sequence: u64) -> Option<u64> {
        let entry = self.store.entry(CHECKPOINT_KEY).await.ok()??;
        let c: Checkpoint = serde_json::from_slice(&entry.value).ok()?;
        (c.sequence == sequence).then_some(entry.revision)
    }
}

enum Sent {
    Refused(u64, String),
    NoAnswer(String),
}

/// Publishes messages as one atomic batch (one message: a plain publish); the sequence of the
/// last.
async fn send_batch(
    client: &Client,
    messages: &[(String, HeaderMap, Bytes)],
    attempt: u32,
) -> Result<u64, Sent> {
    let nats = client.nats();
    let batch_id = format!("{}-{attempt}", uuid::Uuid::now_v7().simple());
    let last = messages.len() - 1;
    for (i, (subject, headers, payload)) in messages.iter().enumerate() {
        let mut h = headers.clone();
        if messages.len() > 1 {
            h.insert("Nats-Batch-Id", batch_id.as_str());
            h.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
            if i == last {
                h.insert("Nats-Batch-Commit", "1");
            }
        }
        if i < last {
            nats.publish_with_headers(subject.clone(), h, payload.clone())
                .await
                .map_err(|e| Sent::NoAnswer(e.to_string()))?;
            continue;
        }
        let reply = nats
            .send_request(
                subject.clone(),
                async_nats::Request::new()
                    .headers(h)
                    .payload(payload.clone())
                    .timeout(Some(Duration::from_secs(5))),
            )
            .await
            .map_err(|e| Sent::NoAnswer(e.to_string()))?;
        #[derive(Deserialize)]
        struct Ack {
            seq: Option<u64>,
            error: Option<ApiError>,
        }
        #[derive(Deserialize)]
        struct ApiError {
            #[serde(default)]
            err_code: u64,
            #[serde(default)]
            description: String,
        }
        return match serde_json::from_slice::<Ack>(&reply.payload) {
            Ok(Ack { error: Some(e), .. }) => Err(Sent::Refused(e.err_code, e.description)),
            Ok(Ack { seq: Some(seq), .. }) => Ok(seq),
            _ => Err(Sent::NoAnswer("an unexpected answer".into())),
        };
    }
    unreachable!("a batch holds the checkpoint at least")
}

/// Empties projection `name`'s read model and sets its checkpoint so that its next run starts
/// at `from` ([`StartFrom::All`]: the first event; [`StartFrom::Sequence`]; [`StartFrom::Time`];
/// [`StartFrom::New`]: after the stream's current last event). Stop the projection first: a
/// running instance is fenced off by the new checkpoint.
pub async fn rebuild(
    client: &Client,
    name: &str,
    stream: &str,
    from: StartFrom,
) -> Result<(), ProjectionError> {
    let bucket = open_bucket(client, name).await?;
    let fail = |what: &str, e: &dyn std::fmt::Display| ProjectionError::JetStream {
        name: name.to_string(),
        detail: format!("{what}: {e}"),
    };
    let checkpoint = match from {
        StartFrom::All => Checkpoint {
            sequence: 0,
            start_time: None,
        },
        StartFrom::Sequence(n) => Checkpoint {
            sequence: n.saturating_sub(1),
            start_time: None,
        },
        StartFrom::Time(t) => Checkpoint {
            sequence: 0,
            start_time: Some(t),
        },
        StartFrom::New => {
            let mut s = client
                .jetstream()
                .get_stream(stream)
                .await
                .map_err(|e| fail("cannot find the stream", &e))?;
            let info = s
                .info()
                .await
                .map_err(|e| fail("cannot read the stream", &e))?;
            Checkpoint {
                sequence: info.state.last_sequence,
                start_time: None,
            }
        }
    };
    client
        .jetstream()
        .get_stream(format!("KV_{}", bucket.name))
        .await
        .map_err(|e| fail("cannot find its bucket", &e))?
        .purge()
        .await
        .map_err(|e| fail("cannot empty its bucket", &e))?;
    let value = serde_json::to_vec(&checkpoint).map_err(|e| fail("checkpoint", &e))?;
    bucket
        .store
        .put(CHECKPOINT_KEY, value.into())
        .await
        .map_err(|e| fail("cannot write its checkpoint", &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_exclude_the_reserved_prefix_and_invalid_tokens() {
        assert!(valid_key("count.de-DE"));
        assert!(valid_key("a/b=c_d"));
        for bad in ["", "_checkpoint", ".a", "a.", "a b", "a*", "a>"] {
            assert!(!valid_key(bad), "{bad}");
        }
    }
}
