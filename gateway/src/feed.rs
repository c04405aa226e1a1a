//! One live feed per stream, shared by every WebSocket client of `GET /v1/stream`.
//!
//! A feed is one JetStream ordered consumer over a whole stream, started when the first
//! client of that stream joins and stopped once no client has followed it for
//! [`Config::feed_linger`](crate::Config::feed_linger). Each stored event is decoded and
//! rendered to its frame once, then offered to every member whose types and room it matches,
//! without waiting: a member's queue is bounded, and a member whose queue is full is removed
//! and marked slow (its connection then closes with 1008), so one slow browser never holds
//! back the feed or the others.
//!
//! The feed's *position* is the last stream sequence it has offered. A member joining sees the
//! position and every event after it, because the position moves and members are added under
//! the same lock: that is the seam a resuming client catches up to (see `stream.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_nats::jetstream::consumer::{self, DeliverPolicy};
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use eventhub::wire::headers;

/// One stored event, rendered once for every member.
#[derive(Debug)]
pub(crate) struct Event {
    /// The stream it is stored in.
    pub(crate) stream: Arc<str>,
    /// Its sequence in the stream.
    pub(crate) sequence: u64,
    /// Its NATS subject (one per event type and version).
    pub(crate) subject: String,
    /// The `user_id` (or `owner_id`) of its data.
    pub(crate) room: Option<String>,
    /// The `{"type":"event",…}` frame.
    pub(crate) text: Utf8Bytes,
}

impl Event {
    /// Decodes a stored JetStream message.
    pub(crate) fn of(stream: Arc<str>, message: &async_nats::jetstream::Message) -> Option<Event> {
        let meta = message.info().ok()?;
        let h = message.headers.as_ref();
        let get = |name: &str| h.and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
        Some(Event::decode(
            stream,
            meta.stream_sequence,
            message.subject.as_str(),
            get,
            &message.payload,
        ))
    }

    /// Decodes one event from its subject, headers and payload.
    pub(crate) fn decode(
        stream: Arc<str>,
        sequence: u64,
        subject: &str,
        header: impl Fn(&str) -> Option<String>,
        payload: &[u8],
    ) -> Event {
        let info = eventhub_catalog::CATALOG
            .iter()
            .find(|e| e.subject == subject);
        let data: Value = match header(headers::CONTENT_TYPE).as_deref() {
            Some(ct) if ct.contains("protobuf") => info
                .and_then(|i| eventhub::wire::proto::decode_value(i.proto, payload).ok())
                .unwrap_or(Value::Null),
            _ => serde_json::from_slice(payload).unwrap_or(Value::Null),
        };
        let room = room_of(&data).map(str::to_string);
        let text = json!({
            "type": "event",
            "stream": &*stream,
            "sequence": sequence,
            "subject": subject,
            "eventType": info.map(|i| i.event_type),
            "version": info.map(|i| i.version),
            "id": header(headers::ID),
            "source": header(headers::SOURCE),
            // The lean wire format leaves out a time the event id holds.
            "time": header(headers::TIME).or_else(|| {
                header(headers::ID)
                    .as_deref()
                    .and_then(headers::time_of_id)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            }),
            "correlationId": header(headers::CORRELATION_ID),
            "data": data,
        })
        .to_string();
        Event {
            stream,
            sequence,
            subject: subject.to_string(),
            room,
            text: text.into(),
        }
    }

    /// Whether a member following `subjects` in room `user` receives it.
    pub(crate) fn is_for(&self, subjects: &HashSet<String>, user: Option<&str>) -> bool {
        subjects.contains(&self.subject) && user.is_none_or(|u| self.room.as_deref() == Some(u))
    }
}

/// The `user_id` (or `owner_id`) of an event's data: its room.
pub(crate) fn room_of(data: &Value) -> Option<&str> {
    data.get("user_id")
        .or_else(|| data.get("owner_id"))
        .and_then(Value::as_str)
}

/// The sending half every feed of one connection shares, and its "too slow" mark.
#[derive(Debug, Clone)]
pub(crate) struct Inbox {
    /// Where the feeds put the connection's events.
    pub(crate) tx: mpsc::Sender<Arc<Event>>,
    /// Set by a feed that found the queue full; the connection closes with 1008.
    pub(crate) slow: Arc<AtomicBool>,
    /// Woken when a feed removed the connection (too slow) or ended: other feeds may still
    /// hold senders, so the queue alone would not say it.
    pub(crate) kick: Arc<Notify>,
}

impl Inbox {
    /// A queue of `capacity` events and its receiving half.
    pub(crate) fn new(capacity: usize) -> (Inbox, mpsc::Receiver<Arc<Event>>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let inbox = Inbox {
            tx,
            slow: Default::default(),
            kick: Default::default(),
        };
        (inbox, rx)
    }
}

#[derive(Debug)]
struct Member {
    subjects: Arc<HashSet<String>>,
    user: Option<String>,
    inbox: Inbox,
}

#[derive(Debug, Default)]
struct Members {
    /// The last sequence offered to the members.
    position: u64,
    next_id: u64,
    members: HashMap<u64, Member>,
    /// Why the feed ended, once it has.
    ended: Option<String>,
}

/// The live feed of one stream.
#[derive(Debug)]
pub(crate) struct Feed {
    stream: Arc<str>,
    members: Mutex<Members>,
    /// Woken when the last member leaves.
    idle: Notify,
}

impl Feed {
    fn lock(&self) -> MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the feed ended, if it has.
    pub(crate) fn ended(&self) -> Option<String> {
        self.lock().ended.clone()
    }

    /// Offers `event` to every member it is for; removes the members whose queue is full.
    fn offer(&self, event: Event) {
        let event = Arc::new(event);
        let mut m = self.lock();
        m.position = event.sequence;
        m.members.retain(|_, member| {
            if !event.is_for(&member.subjects, member.user.as_deref()) {
                return !member.inbox.tx.is_closed();
            }
            match member.inbox.tx.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    member.inbox.slow.store(true, Ordering::Release);
                    member.inbox.kick.notify_one();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        if m.members.is_empty() {
            self.idle.notify_one();
        }
    }
}

/// A connection's place in a feed; leaving on drop.
#[derive(Debug)]
pub(crate) struct Membership {
    feed: Arc<Feed>,
    id: u64,
}

impl Membership {
    /// The feed.
    pub(crate) fn feed(&self) -> &Feed {
        &self.feed
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut m = self.feed.lock();
        m.members.remove(&self.id);
        if m.members.is_empty() {
            self.feed.idle.notify_one();
        }
    }
}

/// The running feeds, by stream.
#[derive(Debug)]
pub(crate) struct Feeds {
    js: async_nats::jetstream::Context,
    running: Arc<tokio::sync::Mutex<HashMap<String, Arc<Feed>>>>,
    linger: Duration,
}

impl Feeds {
    pub(crate) fn new(js: async_nats::jetstream::Context, linger: Duration) -> Self {
        Self {
            js,
            running: Default::default(),
            linger,
        }
    }

    /// Feeds running now.
    pub(crate) async fn running(&self) -> usize {
        self.running.lock().await.len()
    }

    /// Members of all feeds now.
    pub(crate) async fn members(&self) -> usize {
        let running = self.running.lock().await;
        running.values().map(|f| f.lock().members.len()).sum()
    }

    /// Joins the feed of `stream` (starting it if none runs), for the events of `subjects`
    /// in room `user`; returns the membership and the feed's position: every later event is
    /// offered to `inbox`, none before.
    pub(crate) async fn join(
        &self,
        stream: &str,
        subjects: Arc<HashSet<String>>,
        user: Option<String>,
        inbox: Inbox,
    ) -> Result<(Membership, u64), String> {
        // The map's lock is held while joining, so a feed stopping for idleness (which takes
        // the same lock first) never loses a member that joins at that moment.
        let mut running = self.running.lock().await;
        let feed = match running.get(stream) {
            Some(feed) => feed.clone(),
            None => {
                let feed = self.start(stream).await?;
                running.insert(stream.to_string(), feed.clone());
                feed
            }
        };
        let mut m = feed.lock();
        let id = m.next_id;
        m.next_id += 1;
        m.members.insert(
            id,
            Member {
                subjects,
                user,
                inbox,
            },
        );
        let position = m.position;
        drop(m);
        Ok((Membership { feed, id }, position))
    }

    async fn start(&self, name: &str) -> Result<Arc<Feed>, String> {
        let stream = self
            .js
            .get_stream(name)
            .await
            .map_err(|e| format!("cannot open stream {name}: {e}"))?;
        let last = stream.cached_info().state.last_sequence;
        let ordered = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: last + 1,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot follow stream {name}: {e}"))?;
        let messages = ordered
            .messages()
            .await
            .map_err(|e| format!("cannot follow stream {name}: {e}"))?;
        let feed = Arc::new(Feed {
            stream: Arc::from(name),
            members: Mutex::new(Members {
                position: last,
                ..Default::default()
            }),
            idle: Notify::new(),
        });
        tracing::info!(stream = name, position = last, "live feed started");
        tokio::spawn(run(
            feed.clone(),
            messages,
            self.running.clone(),
            self.linger,
        ));
        Ok(feed)
    }
}

async fn run(
    feed: Arc<Feed>,
    mut messages: consumer::pull::Ordered,
    running: Arc<tokio::sync::Mutex<HashMap<String, Arc<Feed>>>>,
    linger: Duration,
) {
    let mut idle_since: Option<tokio::time::Instant> = None;
    let why = loop {
        let deadline = idle_since.map(|t| t + linger);
        tokio::select! {
            next = messages.next() => match next {
                Some(Ok(message)) => {
                    if let Some(event) = Event::of(feed.stream.clone(), &message) {
                        feed.offer(event);
                    }
                }
                Some(Err(e)) => break format!("lost the event stream: {e}"),
                None => break "the event stream ended".to_string(),
            },
            () = feed.idle.notified() => {
                if feed.lock().members.is_empty() {
                    idle_since.get_or_insert_with(tokio::time::Instant::now);
                }
            }
            () = sleep_until(deadline) => {
                let mut map = running.lock().await;
                let mut m = feed.lock();
                if m.members.is_empty() {
                    m.ended = Some("no client follows it".into());
                    if map.get(&*feed.stream).is_some_and(|f| Arc::ptr_eq(f, &feed)) {
                        map.remove(&*feed.stream);
                    }
                    tracing::info!(stream = &*feed.stream, "live feed stopped: no client");
                    return;
                }
                idle_since = None;
            }
        }
    };
    tracing::warn!(stream = &*feed.stream, error = why, "live feed ended");
    let mut map = running.lock().await;
    if map
        .get(&*feed.stream)
        .is_some_and(|f| Arc::ptr_eq(f, &feed))
    {
        map.remove(&*feed.stream);
    }
    let mut m = feed.lock();
    m.ended = Some(why);
    for member in m.members.values() {
        member.inbox.kick.notify_one();
    }
    m.members.clear();
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
