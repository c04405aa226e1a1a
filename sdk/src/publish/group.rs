//! Atomic event groups over JetStream atomic batches (`Nats-Batch-Id`, `Nats-Batch-Sequence`,
//! `Nats-Batch-Commit`, nats-server 2.12): the stream stores every event of a group, or none.
//!
//! This replaces the transactional outbox for "change state and announce it": a handler that
//! records its state change *as events* publishes them in one group, and there is no window
//! where some are stored and the rest lost.

use std::time::Instant;

use async_nats::HeaderMap;
use bytes::Bytes;

use super::publisher::PublishOptions;
use super::publisher::{Publisher, Sink, Target, map_publish_error};
use super::version::Feature;
use crate::error::{PublishError, PublishErrorKind};
use crate::wire::Event;
use crate::wire::headers::{new_event_id, wire_size};

/// Header: the id of an atomic batch (one per attempt).
const BATCH_ID: &str = "Nats-Batch-Id";
/// Header: the position of a message in its batch, from 1.
const BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
/// Header: set to `1` on the last message of a batch, which commits it.
const BATCH_COMMIT: &str = "Nats-Batch-Commit";
/// JetStream error: a message id of the batch is already in the stream.
const BATCH_DUPLICATE: u64 = 10201;

/// Events published all or nothing: build with [`Publisher::group`], [`add`](Self::add) events
/// (of any types, of one stream), then [`publish`](Self::publish).
///
/// The limits of the server are checked before anything is sent ([`GroupLimit`]): at most
/// [`EventGroup::MAX_EVENTS`] events, all of one stream. The events are encoded as they are
/// added and sent back to back, so the server's 10-second idle limit between two messages of a
/// batch is only reached by a stalled connection, which fails the publish (nothing stored).
///
/// Publishing again (after a timeout, or calling [`publish`](Self::publish) a second time)
/// sends the same event ids: if the first attempt was stored, the stream refuses the repeat as
/// duplicates and the receipt says [`duplicate`](GroupReceipt::duplicate).
///
/// ```no_run
/// # async fn demo<A: eventhub::Event, B: eventhub::Event>(client: eventhub::Client, placed: A, reserved: B) -> Result<(), eventhub::error::PublishError> {
/// let mut group = client.publisher().group();
/// group.add(&placed)?;
/// group.add(&reserved)?;
/// let receipt = group.publish().await?; // both stored, or neither
/// println!("stored as {} #{}..={}", receipt.stream, receipt.first_sequence, receipt.last_sequence);
/// # Ok(()) }
/// ```
///
/// [`GroupLimit`]: PublishErrorKind::GroupLimit
#[derive(Debug)]
#[must_use = "an event group stores nothing until publish() is awaited"]
pub struct EventGroup {
    publisher: Publisher,
    stream: Option<&'static str>,
    members: Vec<Member>,
    /// Whether a publish was attempted: a refusal as duplicates then means it was stored.
    attempted: bool,
}

#[derive(Debug)]
struct Member {
    id: String,
    target: Target,
    headers: HeaderMap,
    payload: Bytes,
}

/// What the stream stored of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReceipt {
    /// The stream that stored the events.
    pub stream: String,
    /// The event ids, in the order they were added (and stored).
    pub ids: Vec<String>,
    /// Sequence of the first event; the others follow it without gaps. 0 when `duplicate`.
    pub first_sequence: u64,
    /// Sequence of the last event. 0 when `duplicate`.
    pub last_sequence: u64,
    /// The stream already held these events (an earlier attempt was stored) and dropped this
    /// one.
    pub duplicate: bool,
}

impl EventGroup {
    /// The most events a group may hold (nats-server's limit of an atomic batch).
    pub const MAX_EVENTS: usize = 1000;

    pub(super) fn new(publisher: Publisher) -> Self {
        Self {
            publisher,
            stream: None,
            members: Vec::new(),
            attempted: false,
        }
    }

    /// Adds `event`: checks it against its schema and encodes it now. Returns its id.
    pub fn add<E: Event>(&mut self, event: &E) -> Result<String, PublishError> {
        self.add_with(event, PublishOptions::default())
    }

    /// [`EventGroup::add`] with options (id, correlation, causation, time, codec, trace). A
    /// group's events cannot be scheduled.
    pub fn add_with<E: Event>(
        &mut self,
        event: &E,
        options: PublishOptions,
    ) -> Result<String, PublishError> {
        let mut options = options;
        let limit = |why: String| PublishError::new(PublishErrorKind::GroupLimit, why);
        if options.schedule.is_some() {
            return Err(limit(format!(
                "{} v{} cannot be scheduled inside an atomic group (the server takes no \
                 schedule in a batch): publish the group, or schedule the event alone",
                E::TYPE,
                E::VERSION
            )));
        }
        if self.members.len() >= Self::MAX_EVENTS {
            return Err(limit(format!(
                "an atomic group holds at most {} events (nats-server's batch limit); split it \
                 into groups that are each consistent on their own",
                Self::MAX_EVENTS
            )));
        }
        match self.stream {
            Some(stream) if stream != E::STREAM => {
                return Err(limit(format!(
                    "{} v{} is stored in stream {}, the group's other events in {stream}: an \
                     atomic batch is atomic within one stream only",
                    E::TYPE,
                    E::VERSION,
                    E::STREAM
                )));
            }
            _ => {}
        }
        let id = options.id.take().unwrap_or_else(new_event_id);
        options
            .time
            .get_or_insert_with(|| super::publisher::event_time(&id));
        let target = Target::of::<E>();
        let payload = self.publisher.encode(&target, event, &id, &options)?;
        let (trace, _) = self.publisher.trace_for(&options, &id);
        let headers = self
            .publisher
            .headers(&target, &id, &payload, &options, &trace);
        // The batch headers added at publish time are under 100 bytes.
        self.publisher
            .check_size(&target, &id, payload.len(), wire_size(&headers) + 100)?;
        self.stream = Some(E::STREAM);
        self.members.push(Member {
            id: id.clone(),
            target,
            headers,
            payload,
        });
        Ok(id)
    }

    /// The number of events added.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no event was added.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The ids of the events added, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.id.as_str())
    }

    /// Publishes the group: the stream stores every event, or none. A timeout or a lost
    /// connection is retried (as a new batch with the same event ids, see
    /// [`ConnectOptions::publish_attempts`](crate::ConnectOptions::publish_attempts)).
    pub async fn publish(&mut self) -> Result<GroupReceipt, PublishError> {
        let Some(stream) = self.stream else {
            return Err(PublishError::new(
                PublishErrorKind::GroupLimit,
                "an empty group has nothing to publish",
            ));
        };
        let client = match &self.publisher.sink {
            Sink::Recording(recording) => {
                let mut sequences = self.members.iter().map(|m| {
                    recording
                        .record(m.target, &m.id, m.headers.clone(), m.payload.clone())
                        .sequence
                });
                let first = sequences.next().unwrap_or(0);
                let last = sequences.last().unwrap_or(first);
                return Ok(self.receipt(stream.to_string(), first, last, false));
            }
            Sink::Nats(client) => client.clone(),
        };
        self.publisher.require([Feature::AtomicPublish])?;
        let attempts = client.publish_attempts();
        let mut attempt = 1;
        loop {
            let result = self.send(&client, stream).await;
            self.attempted = true;
            match result {
                Err(e) if attempt < attempts && super::publisher::is_transient(&e) => {
                    let pause = std::time::Duration::from_millis(250 << (attempt - 1).min(4));
                    tracing::debug!("group publish attempt {attempt} failed ({e}); retrying");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// One attempt: one batch.
    async fn send(
        &self,
        client: &crate::client::Client,
        stream: &'static str,
    ) -> Result<GroupReceipt, PublishError> {
        let batch_id = uuid::Uuid::now_v7().simple().to_string();
        let last = self.members.len() - 1;
        let first_id = &self.members[0].id;
        let sent_at = Instant::now();
        for (i, member) in self.members.iter().enumerate() {
            let mut headers = member.headers.clone();
            headers.insert(BATCH_ID, batch_id.as_str());
            headers.insert(BATCH_SEQUENCE, (i + 1).to_string().as_str());
            let subject = member.target.subject;
            if i < last {
                // No reply asked for: the commit's ack (or error) speaks for the batch.
                client
                    .nats()
                    .publish_with_headers(subject, headers, member.payload.clone())
                    .await
                    .map_err(|e| {
                        PublishError::with_source(
                            PublishErrorKind::Unreachable,
                            format!(
                                "could not send event {} of the group: nothing was stored; \
                                 publishing the group again is safe",
                                member.id
                            ),
                            e,
                        )
                    })?;
                continue;
            }
            headers.insert(BATCH_COMMIT, "1");
            let ack = client
                .jetstream()
                .publish_with_headers(subject, headers, member.payload.clone())
                .await
                .map_err(|e| map_publish_error(client, e, subject, stream, first_id, sent_at))?;
            return match ack.await {
                Ok(ack) => {
                    let n = self.members.len() as u64;
                    Ok(self.receipt(
                        ack.stream,
                        ack.sequence + 1 - n,
                        ack.sequence,
                        ack.duplicate,
                    ))
                }
                Err(e) if self.attempted && jetstream_code(&e) == Some(BATCH_DUPLICATE) => {
                    // Atomic: an earlier attempt with these ids was stored whole.
                    Ok(self.receipt(stream.to_string(), 0, 0, true))
                }
                Err(e) if jetstream_code(&e) == Some(BATCH_DUPLICATE) => {
                    Err(PublishError::with_source(
                        PublishErrorKind::Rejected,
                        format!(
                            "stream {stream} already holds an event with an id of this group \
                         (within its duplicate window): nothing of the group was stored"
                        ),
                        e,
                    ))
                }
                Err(e) => Err(map_publish_error(
                    client, e, subject, stream, first_id, sent_at,
                )),
            };
        }
        unreachable!("a group to publish is not empty")
    }

    fn receipt(&self, stream: String, first: u64, last: u64, duplicate: bool) -> GroupReceipt {
        GroupReceipt {
            stream,
            ids: self.members.iter().map(|m| m.id.clone()).collect(),
            first_sequence: first,
            last_sequence: last,
            duplicate,
        }
    }
}

/// The JetStream error code of a failed publish, if the server sent one.
fn jetstream_code(e: &async_nats::jetstream::context::PublishError) -> Option<u64> {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
        .map(|j| j.error_code().0)
}

impl Publisher {
    /// An atomic group: events (of any types, of one stream) the stream stores all or none.
    /// See [`EventGroup`].
    pub fn group(&self) -> EventGroup {
        EventGroup::new(self.clone())
    }
}
