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
//! reconnects with `from` and misses nothing. Each connection reads through its own JetStream
//! ordered consumer per stream.

use std::collections::{BTreeMap, BTreeSet};

use async_nats::jetstream::consumer::{self, DeliverPolicy};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use eventhub::EventInfo;
use eventhub::wire::headers;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorCode};
use crate::server::Shared;

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
    ws.on_upgrade(move |socket| async move {
        tracing::info!(caller = caller.name, user = ?sub.user, "stream connected");
        serve(state, socket, sub, streams).await;
        drop(permit);
        tracing::info!(caller = caller.name, "stream closed");
    })
}

type Messages = futures::stream::BoxStream<'static, Result<async_nats::jetstream::Message, String>>;

/// Creates the ordered consumers before the upgrade, so a failure is an HTTP answer and the
/// `subscribed` frame is true when sent.
async fn open(
    state: &Shared,
    sub: &Subscription,
) -> Result<(Vec<Messages>, BTreeMap<String, u64>), ApiError> {
    let unavailable = |what: String| ApiError::new(ErrorCode::Unavailable, what);
    let mut sources: Vec<Messages> = Vec::new();
    let mut positions = BTreeMap::new();
    for (name, types) in &sub.by_stream {
        let stream = state
            .client
            .jetstream()
            .get_stream(name)
            .await
            .map_err(|e| unavailable(format!("cannot open stream {name}: {e}")))?;
        let last = stream.cached_info().state.last_sequence;
        let deliver_policy = match sub.from.get(name) {
            Some(&seq) => DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
            None => DeliverPolicy::ByStartSequence {
                start_sequence: last + 1,
            },
        };
        positions.insert(name.clone(), sub.from.get(name).copied().unwrap_or(last));
        let ordered = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subjects: types.iter().map(|t| format!("events.{t}.*")).collect(),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(format!("cannot follow stream {name}: {e}")))?;
        let messages = ordered
            .messages()
            .await
            .map_err(|e| unavailable(format!("cannot follow stream {name}: {e}")))?;
        sources.push(messages.map(|m| m.map_err(|e| e.to_string())).boxed());
    }
    Ok((sources, positions))
}

/// The `user_id` (or `owner_id`) of an event's data: its room.
pub fn room_of(data: &Value) -> Option<&str> {
    data.get("user_id")
        .or_else(|| data.get("owner_id"))
        .and_then(Value::as_str)
}

fn info_of(subject: &str) -> Option<&'static EventInfo> {
    eventhub_catalog::CATALOG
        .iter()
        .find(|e| e.subject == subject)
}

/// The frame of one stored event, or `None` when it is not for this room.
pub fn frame(
    stream: &str,
    sequence: u64,
    subject: &str,
    header: impl Fn(&str) -> Option<String>,
    payload: &[u8],
    user: Option<&str>,
) -> Option<String> {
    let info = info_of(subject);
    let content_type = header(headers::CONTENT_TYPE);
    let data: Value = match content_type.as_deref() {
        Some(ct) if ct.contains("protobuf") => info
            .and_then(|i| eventhub::wire::proto::decode_value(i.proto, payload).ok())
            .unwrap_or(Value::Null),
        _ => serde_json::from_slice(payload).unwrap_or(Value::Null),
    };
    if let Some(user) = user
        && room_of(&data) != Some(user)
    {
        return None;
    }
    Some(
        json!({
            "type": "event",
            "stream": stream,
            "sequence": sequence,
            "subject": subject,
            "eventType": info.map(|i| i.event_type),
            "version": info.map(|i| i.version),
            "id": header(headers::ID),
            "source": header(headers::SOURCE),
            "time": header(headers::TIME),
            "correlationId": header(headers::CORRELATION_ID),
            "data": data,
        })
        .to_string(),
    )
}

async fn serve(
    state: Shared,
    socket: WebSocket,
    sub: Subscription,
    (sources, positions): (Vec<Messages>, BTreeMap<String, u64>),
) {
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(state.config.ws_buffer);
    let hello = json!({
        "type": "subscribed",
        "types": sub.by_stream.values().flatten().collect::<Vec<_>>(),
        "user": sub.user,
        "streams": positions,
    });
    if tx
        .try_send(Message::Text(hello.to_string().into()))
        .is_err()
    {
        return;
    }
    let stop = stopped(state.shutdown.clone());
    tokio::pin!(stop);
    // Reads the stores and queues frames; never waits on the client.
    let user = sub.user.clone();
    let reader = tokio::spawn(async move {
        let mut all = futures::stream::select_all(sources);
        while let Some(next) = all.next().await {
            let message = match next {
                Ok(m) => m,
                Err(e) => {
                    let _ = tx.try_send(close(1011, &format!("lost the event stream: {e}")));
                    return;
                }
            };
            let Ok(meta) = message.info() else { continue };
            let h = message.headers.as_ref();
            let get = |name: &str| h.and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
            let Some(text) = frame(
                meta.stream,
                meta.stream_sequence,
                message.subject.as_str(),
                get,
                &message.payload,
                user.as_deref(),
            ) else {
                continue;
            };
            match tx.try_send(Message::Text(text.into())) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // The frames already queued go out first; then the close.
                    let _ = tx
                        .send(close(
                            1008,
                            "slow consumer: reconnect with `from` to resume",
                        ))
                        .await;
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    });
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else { break };
                let closing = matches!(out, Message::Close(_));
                if sink.send(out).await.is_err() || closing {
                    break;
                }
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
    reader.abort();
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
