//! `GET /v1/stream`: events over WebSocket, as they are stored.
//!
//! Query parameters (all optional):
//! - `types`: comma-separated event types (`photo.uploaded`), domains (`photo.*`) or `*`;
//!   default every type the caller may read.
//! - `user`: only events whose `data.user_id` (or `data.owner_id`) is this user — a "room". A
//!   caller whose token carries `user_id` is always in its own room and may not name another.
//! - `from`: where to resume, `STREAM:SEQ,STREAM:SEQ` — the last sequence received per stream
//!   (every event frame carries `stream` and `sequence`); default: only new events.
//! - `token`: a JWT, for browsers (a WebSocket cannot carry an `Authorization` header).
//!
//! A service may read the types it publishes or consumes (services.json); an operator all.
//! The server sends `{"type":"subscribed", "types":[…], "streams":{name: last sequence}}` once
//! its consumers exist, then `{"type":"event", "stream", "sequence", "subject", "eventType",
//! "version", "id", "source", "time", "correlationId", "data"}` per event. A client that falls
//! more than the configured buffer behind is closed with code 1008 ("slow consumer"): it
//! reconnects with `from` and misses nothing.
//!
//! Every connection reads the shared live feed of each stream it follows (one ordered
//! consumer per stream, see `feed.rs`); a client resuming with `from` first reads what it
//! missed through its own ordered consumer, up to the feed's position, then the feed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_nats::jetstream::consumer::{self, DeliverPolicy};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorCode};
use crate::feed::{Event, Inbox, Membership};
use crate::state::Shared;

/// The read buffer of a connection (and the largest message it may send).
const CLIENT_READ_BUFFER: usize = 4 * 1024;

/// Query parameters of `GET /v1/stream`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamQuery {
    types: Option<String>,
    user: Option<String>,
    from: Option<String>,
    token: Option<String>,
}

/// What one connection follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Event types, by stream.
    pub by_stream: BTreeMap<String, BTreeSet<String>>,
    /// Only events of this user.
    pub user: Option<String>,
    /// Resume after these sequences.
    pub from: BTreeMap<String, u64>,
}

/// The event types `caller` may read: what its service publishes or consumes; all for an
/// operator.
pub fn readable(
    caller: &Caller,
    services: &eventhub_codegen::services::Services,
) -> BTreeSet<String> {
    let all = eventhub_catalog::CATALOG
        .iter()
        .map(|e| e.event_type.to_string());
    if caller.role == Role::Operator {
        return all.collect();
    }
    let Some(service) = services.service(&caller.name) else {
        return BTreeSet::new();
    };
    service
        .publishes
        .iter()
        .map(|p| p.event_type.clone())
        .chain(service.consumes.iter().map(|c| c.event_type.clone()))
        .collect()
}

fn matches(pattern: &str, event_type: &str) -> bool {
    pattern == "*"
        || pattern == event_type
        || pattern
            .strip_suffix(".*")
            .or_else(|| pattern.strip_suffix(".>"))
            .is_some_and(|domain| {
                event_type
                    .strip_prefix(domain)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
}

/// Resolves a request into what the connection follows, or why it may not.
pub fn subscription(
    caller: &Caller,
    readable: &BTreeSet<String>,
    types: Option<&str>,
    user: Option<&str>,
    from: Option<&str>,
) -> Result<Subscription, ApiError> {
    let patterns: Vec<&str> = types
        .unwrap_or("*")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let catalog: BTreeSet<&str> = eventhub_catalog::CATALOG
        .iter()
        .map(|e| e.event_type)
        .collect();
    let mut chosen = BTreeSet::new();
    for p in &patterns {
        let matched: Vec<&str> = catalog.iter().copied().filter(|t| matches(p, t)).collect();
        if matched.is_empty() {
            return Err(ApiError::new(
                ErrorCode::UnknownEventType,
                format!("`{p}` matches no event type of the catalog"),
            ));
        }
        let is_exact = !p.contains('*') && !p.ends_with('>');
        for t in matched {
            if readable.contains(t) {
                chosen.insert(t);
            } else if is_exact {
                return Err(ApiError::forbidden(format!(
                    "`{}` may not read {t} (services.json: it neither publishes nor consumes it)",
                    caller.name
                )));
            }
        }
    }
    if chosen.is_empty() {
        return Err(ApiError::forbidden(format!(
            "`{}` may read none of the requested event types",
            caller.name
        )));
    }
    let user = match (&caller.user_id, user) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(ApiError::forbidden(
                "a user's token follows only that user's events",
            ));
        }
        (Some(own), _) => Some(own.clone()),
        (None, asked) => asked.map(str::to_string),
    };
    let mut by_stream: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for info in eventhub_catalog::CATALOG {
        if chosen.contains(info.event_type) {
            by_stream
                .entry(info.stream.to_string())
                .or_default()
                .insert(info.event_type.to_string());
        }
    }
    let mut positions = BTreeMap::new();
    for part in from
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.trim().is_empty())
    {
        let (stream, seq) = part
            .trim()
            .split_once(':')
            .and_then(|(s, n)| Some((s, n.parse::<u64>().ok()?)))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "`from` is `STREAM:SEQ,…`; `{}` is not",
                    part.chars().take(64).collect::<String>()
                ))
            })?;
        if !by_stream.contains_key(stream) {
            return Err(ApiError::invalid(format!(
                "`from` names {stream}, which holds none of the followed types"
            )));
        }
        positions.insert(stream.to_string(), seq);
    }
    Ok(Subscription {
        by_stream,
        user,
        from: positions,
    })
}

pub(crate) async fn handler(
    State(state): State<Shared>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let prepared = async {
        let caller = state.auth.authenticate(&headers, query.token.as_deref())?;
        let readable = readable(&caller, &state.services);
        let sub = subscription(
            &caller,
            &readable,
            query.types.as_deref(),
            query.user.as_deref(),
            query.from.as_deref(),
        )?;
        let permit = state
            .ws_connections
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::new(ErrorCode::Unavailable, "too many stream connections"))?;
        let ws = ws.map_err(|e| {
            ApiError::invalid(format!("GET /v1/stream is a WebSocket endpoint: {e}"))
        })?;
        Ok::<_, ApiError>((caller, sub, permit, ws))
    }
    .await;
    let (caller, sub, permit, ws) = match prepared {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let streams = match open(&state, &sub).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    // tungstenite zero-fills its whole read buffer before every read attempt, and the
    // connection polls its socket once per event sent: at the default 128 KiB that is 128 MiB
    // of memset per event at 1,000 clients. A client sends only control frames.
    ws.read_buffer_size(CLIENT_READ_BUFFER)
        .max_message_size(CLIENT_READ_BUFFER)
        .on_upgrade(move |socket| async move {
            tracing::info!(caller = caller.name, user = ?sub.user, "stream connected");
            serve(state, socket, sub, streams).await;
            drop(permit);
            tracing::info!(caller = caller.name, "stream closed");
        })
}

/// What a connection reads: its queue in the live feeds and, for a resuming client, the
/// stored events between its `from` and the feeds' positions.
struct Opened {
    rx: mpsc::Receiver<Arc<Event>>,
    slow: Arc<AtomicBool>,
    kick: Arc<Notify>,
    memberships: Vec<Membership>,
    catch_up: VecDeque<CatchUp>,
    /// The last sequence sent (or skipped as already seen), per stream.
    last: HashMap<Arc<str>, u64>,
}

/// The stored events of one stream from a client's `from` up to the live feed's position.
struct CatchUp {
    stream: Arc<str>,
    subjects: Arc<HashSet<String>>,
    /// The feed's position when the client joined: the feed offers everything after it.
    until: u64,
    messages: consumer::pull::Ordered,
}

/// Joins the live feeds and creates the catch-up consumers before the upgrade, so a failure
/// is an HTTP answer and the `subscribed` frame is true when sent.
///
/// The seam: joining a feed returns its position P and queues every event after P, so the
/// catch-up reads `from+1..=P` and stops there; the queue then continues at P+1. Each frame
/// is sent only if its sequence is above the last one sent for its stream, so nothing is
/// sent twice even when `from` is ahead of a feed that has not yet offered it.
async fn open(
    state: &Shared,
    sub: &Subscription,
) -> Result<(Opened, BTreeMap<String, u64>), ApiError> {
    let unavailable = |what: String| ApiError::new(ErrorCode::Unavailable, what);
    let (inbox, rx) = Inbox::new(state.config.ws_buffer);
    let mut opened = Opened {
        rx,
        slow: inbox.slow.clone(),
        kick: inbox.kick.clone(),
        memberships: Vec::new(),
        catch_up: VecDeque::new(),
        last: HashMap::new(),
    };
    let mut positions = BTreeMap::new();
    for (name, types) in &sub.by_stream {
        let subjects: Arc<HashSet<String>> = Arc::new(
            eventhub_catalog::CATALOG
                .iter()
                .filter(|e| types.contains(e.event_type))
                .map(|e| e.subject.to_string())
                .collect(),
        );
        let (membership, position) = state
            .feeds
            .join(name, subjects.clone(), sub.user.clone(), inbox.clone())
            .await
            .map_err(unavailable)?;
        opened.memberships.push(membership);
        let stream: Arc<str> = Arc::from(name.as_str());
        let from = sub.from.get(name).copied();
        if let Some(from) = from
            && from < position
        {
            let ordered = state
                .client
                .jetstream()
                .get_stream(name)
                .await
                .map_err(|e| unavailable(format!("cannot open stream {name}: {e}")))?
                .create_consumer(consumer::pull::OrderedConfig {
                    filter_subjects: subjects.iter().cloned().collect(),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: from + 1,
                    },
                    ..Default::default()
                })
                .await
                .map_err(|e| unavailable(format!("cannot resume stream {name}: {e}")))?;
            // Nothing stored since `from` for these types: nothing to catch up.
            if ordered.cached_info().num_pending > 0 {
                let messages = ordered
                    .messages()
                    .await
                    .map_err(|e| unavailable(format!("cannot resume stream {name}: {e}")))?;
                opened.catch_up.push_back(CatchUp {
                    stream: stream.clone(),
                    subjects,
                    until: position,
                    messages,
                });
            }
        }
        let last = from.unwrap_or(position);
        positions.insert(name.clone(), last);
        opened.last.insert(stream, last);
    }
    Ok((opened, positions))
}

/// The `user_id` (or `owner_id`) of an event's data: its room.
pub fn room_of(data: &Value) -> Option<&str> {
    crate::feed::room_of(data)
}

type Sink = futures::stream::SplitSink<WebSocket, Message>;

/// Sends `event` unless its stream's last sent sequence is already at or past it.
async fn send_event(
    sink: &mut Sink,
    last: &mut HashMap<Arc<str>, u64>,
    event: &Event,
) -> Result<(), axum::Error> {
    let seen = last.entry(event.stream.clone()).or_insert(0);
    if event.sequence <= *seen {
        return Ok(());
    }
    *seen = event.sequence;
    sink.send(Message::Text(event.text.clone())).await
}

async fn next_stored(
    current: &mut Option<CatchUp>,
) -> Option<Result<async_nats::jetstream::Message, String>> {
    match current {
        Some(c) => c
            .messages
            .next()
            .await
            .map(|m| m.map_err(|e| e.to_string())),
        None => std::future::pending().await,
    }
}

async fn serve(
    state: Shared,
    socket: WebSocket,
    sub: Subscription,
    (opened, positions): (Opened, BTreeMap<String, u64>),
) {
    let Opened {
        mut rx,
        slow,
        kick,
        memberships,
        mut catch_up,
        mut last,
    } = opened;
    let (mut sink, mut incoming) = socket.split();
    let hello = json!({
        "type": "subscribed",
        "types": sub.by_stream.values().flatten().collect::<Vec<_>>(),
        "user": sub.user,
        "streams": positions,
    });
    if sink
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let stop = stopped(state.shutdown.clone());
    tokio::pin!(stop);
    let mut current = catch_up.pop_front();
    let user = sub.user.as_deref();
    loop {
        tokio::select! {
            stored = next_stored(&mut current) => {
                // Copied out: a reference to the consumer may not be held across a send.
                let Some((stream, until, subjects)) = current
                    .as_mut()
                    .map(|c| (c.stream.clone(), c.until, c.subjects.clone()))
                else {
                    continue;
                };
                let message = match stored {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        let _ = sink.send(close(1011, &format!("lost the event stream: {e}"))).await;
                        break;
                    }
                    None => {
                        let _ = sink.send(close(1011, "the event stream ended")).await;
                        break;
                    }
                };
                let Ok(meta) = message.info() else { continue };
                let (sequence, pending) = (meta.stream_sequence, meta.pending);
                if sequence <= until
                    && let Some(event) = Event::of(stream, &message)
                    && event.is_for(&subjects, user)
                    && send_event(&mut sink, &mut last, &event).await.is_err()
                {
                    break;
                }
                // Past the seam, or nothing more stored at this moment (so nothing up to
                // the seam, which was stored before this consumer existed).
                if sequence >= until || pending == 0 {
                    current = catch_up.pop_front();
                }
            }
            live = rx.recv(), if current.is_none() => {
                // The connection holds no sender, so `None` means every feed let it go.
                let Some(event) = live else {
                    let _ = sink.send(ended(&slow, &memberships)).await;
                    break;
                };
                if send_event(&mut sink, &mut last, &event).await.is_err() {
                    break;
                }
            }
            () = kick.notified(), if current.is_none() => {
                // A feed let this connection go: what is queued goes out first, then the close.
                let mut failed = false;
                while let Ok(event) = rx.try_recv() {
                    if send_event(&mut sink, &mut last, &event).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if !failed {
                    let _ = sink.send(ended(&slow, &memberships)).await;
                }
                break;
            }
            msg = incoming.next() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                // Pings are answered by axum; anything else a client sends is ignored.
                Some(Ok(_)) => {}
            },
            () = &mut stop => {
                let _ = sink.send(close(1001, "the gateway is shutting down")).await;
                break;
            }
        }
    }
    drop(memberships);
}

/// The close frame of a connection its feeds let go.
fn ended(slow: &AtomicBool, memberships: &[Membership]) -> Message {
    if slow.load(Ordering::Acquire) {
        return close(1008, "slow consumer: reconnect with `from` to resume");
    }
    let why = memberships
        .iter()
        .find_map(|m| m.feed().ended())
        .unwrap_or_else(|| "the event stream ended".into());
    close(1011, &why)
}

async fn stopped(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_string()),
    }))
}
