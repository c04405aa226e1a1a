//! `POST /v1/events`: one event in, `202` once the stream stored it.
//!
//! The checks run in this order, each answering before the next runs: credentials (401), the
//! body's size (413) and shape (400 `INVALID_REQUEST`), the event type and version (404), the
//! caller's right to publish it as `source` (403), the data against the schema (400
//! `SCHEMA_VALIDATION_ERROR`, every violation), then the publish (503 when NATS does not store
//! it; the event id makes a retry store it once). The schema check is the SDK publish's own,
//! made before anything is sent (one check per event, as for a Rust service).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use eventhub::error::PublishErrorKind;
use eventhub::wire::schema::{Validator, Violations};
use eventhub::{EventInfo, PublishOptions, TraceContext};
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorCode, FieldError};
use crate::state::Shared;

/// The longest event id accepted (it becomes the `Nats-Msg-Id` and `ce-id` headers).
pub const MAX_ID_LEN: usize = 128;

/// The body of `POST /v1/events` (seed 003's envelope).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishRequest {
    /// `user.created`
    pub event_type: String,
    /// The version; default the latest in the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The publishing service: must be the caller.
    pub source: String,
    /// The event id, also the idempotency key (`Nats-Msg-Id`); default a new UUIDv7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When it happened (RFC 3339); default now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The event data, validated against the version's schema.
    pub data: serde_json::Value,
    /// Correlation, causation and trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// `metadata` of a [`PublishRequest`].
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The flow's correlation id; default the event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The id of the event that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// W3C trace context to continue (an invalid value starts a new trace, as the W3C
    /// specification asks of receivers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// The `202` answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// Always `accepted`.
    pub status: String,
    /// The event id.
    pub event_id: String,
    /// When the gateway received the store's acknowledgement (RFC 3339).
    pub timestamp: String,
    /// Where the event is stored.
    pub receipt: Receipt,
}

/// Identifies the stored message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Receipt {
    /// The stream.
    pub stream: String,
    /// Its sequence in the stream.
    pub sequence: u64,
    /// The stream already held this event id (within its duplicate window): nothing new was
    /// stored, `sequence` is the original's.
    pub duplicate: bool,
}

/// The catalog entry of `event_type` at `version` (default the latest).
pub fn find(
    catalog: &'static [EventInfo],
    event_type: &str,
    version: Option<u32>,
) -> Result<&'static EventInfo, ApiError> {
    let mut versions = catalog.iter().filter(|e| e.event_type == event_type);
    let Some(first) = versions.next() else {
        return Err(ApiError::new(
            ErrorCode::UnknownEventType,
            format!(
                "unknown event type `{}`; GET /v1/openapi.json lists the catalog",
                printable(event_type)
            ),
        ));
    };
    let all: Vec<&'static EventInfo> = std::iter::once(first).chain(versions).collect();
    match version {
        None => Ok(all
            .iter()
            .max_by_key(|e| e.version)
            .copied()
            .unwrap_or(first)),
        Some(v) => all.iter().find(|e| e.version == v).copied().ok_or_else(|| {
            let have: Vec<String> = all.iter().map(|e| format!("{}", e.version)).collect();
            ApiError::new(
                ErrorCode::UnknownVersion,
                format!(
                    "{event_type} has no version {v}; it has {}",
                    have.join(", ")
                ),
            )
        }),
    }
}

/// At most 100 characters, control characters replaced: what an error message may echo.
fn printable(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Every violation of `data` against the event's schema, as `data.<field>` details.
pub fn violations(info: &EventInfo, data: &serde_json::Value) -> Vec<FieldError> {
    let validator = Validator::cached(info.schema, info.sensitive);
    match validator.check(data) {
        Ok(()) => Vec::new(),
        Err(violations) => details(info, &violations),
    }
}

/// `violations` as `data.<field>` details.
fn details(info: &EventInfo, violations: &Violations) -> Vec<FieldError> {
    violations
        .0
        .iter()
        .map(|v| FieldError {
            field: v.field("data"),
            // As the SDK does: the values of an event with sensitive fields are not echoed,
            // only the rule they break.
            error: if info.sensitive.is_empty() {
                v.message.clone()
            } else {
                format!("violates `{}`", v.keyword)
            },
        })
        .collect()
}

/// The `400 SCHEMA_VALIDATION_ERROR` answer listing every violation.
fn schema_error(info: &EventInfo, details: Vec<FieldError>) -> ApiError {
    let mut error = ApiError::new(
        ErrorCode::SchemaValidationError,
        format!(
            "event data does not match the schema of {} v{} ({} problem{}); nothing was published",
            info.event_type,
            info.version,
            details.len(),
            if details.len() == 1 { "" } else { "s" }
        ),
    );
    error.details = details;
    error
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks a request and turns it into the catalog entry, the data and the publish options.
pub(crate) fn prepare(
    caller: &Caller,
    services: &eventhub_codegen::services::Services,
    request: PublishRequest,
) -> Result<(&'static EventInfo, serde_json::Value, PublishOptions), ApiError> {
    let info = find(
        eventhub_catalog::CATALOG,
        &request.event_type,
        request.version,
    )?;
    let owner = services
        .publisher_of(info.event_type)
        .map(|s| s.name.as_str());
    if caller.role != Role::Service || owner != Some(caller.name.as_str()) {
        return Err(ApiError::forbidden(format!(
            "`{}` may not publish {}: services.json declares {} as its publisher",
            caller.name,
            info.event_type,
            owner.map_or_else(|| "no service".to_string(), |o| format!("`{o}`"))
        )));
    }
    if let Some(gateway) = &services.gateway
        && !gateway.publishes_for.iter().any(|s| s == &caller.name)
    {
        return Err(ApiError::forbidden(format!(
            "services.json does not let the gateway publish for `{}` (gateway.publishes_for)",
            caller.name
        )));
    }
    if request.source != caller.name {
        return Err(ApiError::forbidden(format!(
            "`source` is `{}` but the caller is `{}`: a service publishes only as itself",
            printable(&request.source),
            caller.name
        )));
    }
    let mut options = PublishOptions::default();
    if let Some(id) = request.id {
        if !valid_id(&id) {
            return Err(ApiError::invalid(format!(
                "`id` must be 1 to {MAX_ID_LEN} printable ASCII characters without spaces"
            )));
        }
        options = options.id(id);
    }
    if let Some(ts) = &request.timestamp {
        let time = DateTime::parse_from_rfc3339(ts).map_err(|e| {
            ApiError::invalid(format!(
                "`timestamp` is not an RFC 3339 date-time ({e}), e.g. 2026-12-04T13:45:30Z"
            ))
        })?;
        options = options.time(time.with_timezone(&Utc));
    }
    if let Some(meta) = request.metadata {
        for (name, value) in [
            ("metadata.correlationId", &meta.correlation_id),
            ("metadata.causationId", &meta.causation_id),
        ] {
            if value.as_deref().is_some_and(|v| !valid_id(v)) {
                return Err(ApiError::invalid(format!(
                    "`{name}` must be 1 to {MAX_ID_LEN} printable ASCII characters without spaces"
                )));
            }
        }
        if let Some(c) = meta.correlation_id {
            options = options.correlation_id(c);
        }
        if let Some(c) = meta.causation_id {
            options = options.causation_id(c);
        }
        if let Some(parent) = meta.traceparent.as_deref().and_then(TraceContext::parse) {
            options = options.trace_parent(parent);
        }
    }
    Ok((info, request.data, options))
}

pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the request body is over the gateway's limit",
            )
        } else {
            ApiError::invalid(format!("cannot read the request body: {rejection}"))
        }
    })
}

/// The handler of `POST /v1/events`.
pub(crate) async fn handler(State(state): State<Shared>, request: Request) -> Response {
    // The credentials are read from the request in place (a `HeaderMap` extractor would copy
    // every header), then the body is read under the route's limit, whatever the credentials:
    // the answer is the same as with the extractors, in the same order of checks.
    let caller = state.auth.authenticate(request.headers(), None);
    let body = Bytes::from_request(request, &state).await;
    match publish(&state, caller, body).await {
        Ok(accepted) => (StatusCode::ACCEPTED, axum::Json(accepted)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn publish(
    state: &Shared,
    caller: Result<Caller, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Accepted, ApiError> {
    let caller = caller?;
    let body = read_body(body)?;
    let request: PublishRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("the body is not a valid event envelope: {e}")))?;
    publish_request(state, &caller, request).await
}

/// Checks and publishes one envelope on behalf of `caller`.
async fn publish_request(
    state: &Shared,
    caller: &Caller,
    request: PublishRequest,
) -> Result<Accepted, ApiError> {
    let (info, data, mut options) = prepare(caller, &state.services, request)?;
    let id = options
        .id
        .get_or_insert_with(eventhub::wire::headers::new_event_id)
        .clone();
    // Without NATS the publish cannot check the data: a request that could never be stored
    // still says so first.
    let unreachable = |error: ApiError| {
        let details = violations(info, &data);
        if details.is_empty() {
            error
        } else {
            schema_error(info, details)
        }
    };
    let client = state
        .publisher_for(&caller.name)
        .await
        .map_err(unreachable)?;
    if client.nats().connection_state() != async_nats::connection::State::Connected {
        // Not sent at all: nothing can be half-published.
        return Err(unreachable(ApiError::new(
            ErrorCode::Unavailable,
            "the event store is not reachable; nothing was published",
        )));
    }
    let deadline: Duration = crate::state::publish_deadline(state);
    let result = tokio::time::timeout(
        deadline,
        client.publisher().publish_json(info, &data, options),
    )
    .await;
    let receipt = match result {
        Ok(Ok(receipt)) => receipt,
        // The data is checked once, by the publish (before anything is sent).
        Ok(Err(e)) => {
            let violations = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<Violations>())
                .filter(|_| e.kind() == PublishErrorKind::Invalid);
            return Err(match violations {
                Some(v) => schema_error(info, details(info, v)),
                None => publish_error(e.kind(), &e.to_string(), &id),
            });
        }
        Err(_) => return Err(publish_error(PublishErrorKind::TimedOut, "no ack", &id)),
    };
    tracing::debug!(
        caller = caller.name,
        event.id = receipt.id,
        event.r#type = info.event_type,
        event.version = info.version,
        stream = receipt.stream,
        sequence = receipt.sequence,
        duplicate = receipt.duplicate,
        "published"
    );
    Ok(Accepted {
        status: "accepted".into(),
        event_id: receipt.id,
        timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        receipt: Receipt {
            stream: receipt.stream,
            sequence: receipt.sequence,
            duplicate: receipt.duplicate,
        },
    })
}

/// One item of the `207` answer of `POST /v1/events:batch`: the HTTP status the item would
/// have had alone, then the body `POST /v1/events` would have answered.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BatchItem {
    /// The item's position in the request, from 0.
    pub index: usize,
    /// `202`, or the error's status (400, 403, 404, 413, 503).
    pub http_status: u16,
    /// The `202` body or the error body.
    #[serde(flatten)]
    pub body: serde_json::Value,
}

/// The `207` answer of `POST /v1/events:batch`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    /// Always `completed`: every item was tried (see `results`).
    pub status: String,
    /// Items stored (including duplicates).
    pub accepted: usize,
    /// Items refused.
    pub failed: usize,
    /// One per item, in request order.
    pub results: Vec<BatchItem>,
}

/// The handler of `POST /v1/events:batch`: a JSON array of envelopes, each checked and
/// published as `POST /v1/events` would, in order, each stored before the next is sent.
pub(crate) async fn batch_handler(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match batch(&state, &headers, body).await {
        Ok(result) => (StatusCode::MULTI_STATUS, axum::Json(result)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn batch(
    state: &Shared,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<BatchResult, ApiError> {
    let caller = state.auth.authenticate(headers, None)?;
    let body = read_body(body)?;
    // Each item is read on its own: one bad envelope fails only itself.
    let items: Vec<serde_json::Value> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(format!(
            "the body of POST /v1/events:batch is a JSON array of event envelopes: {e}"
        ))
    })?;
    let max = state.config.max_batch_items;
    if items.len() > max {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "{} events in one batch; at most {max}: split it",
                items.len()
            ),
        ));
    }
    if items.is_empty() {
        return Err(ApiError::invalid("the batch holds no event"));
    }
    let mut results = Vec::with_capacity(items.len());
    let mut accepted = 0;
    for (index, raw) in items.into_iter().enumerate() {
        let outcome = match serde_json::from_value::<PublishRequest>(raw) {
            Ok(request) => publish_request(state, &caller, request).await,
            Err(e) => Err(ApiError::invalid(format!(
                "item {index} is not a valid event envelope: {e}"
            ))),
        };
        results.push(match outcome {
            Ok(ok) => {
                accepted += 1;
                BatchItem {
                    index,
                    http_status: StatusCode::ACCEPTED.as_u16(),
                    body: serde_json::to_value(ok).unwrap_or_default(),
                }
            }
            Err(e) => BatchItem {
                index,
                http_status: e.status.as_u16(),
                body: e.body(),
            },
        });
    }
    Ok(BatchResult {
        status: "completed".into(),
        accepted,
        failed: results.len() - accepted,
        results,
    })
}

fn publish_error(kind: PublishErrorKind, text: &str, id: &str) -> ApiError {
    tracing::warn!(event.id = id, ?kind, error = text, "publish failed");
    match kind {
        PublishErrorKind::PayloadTooLarge => ApiError::new(ErrorCode::PayloadTooLarge, text),
        PublishErrorKind::Invalid => ApiError::new(ErrorCode::SchemaValidationError, text),
        PublishErrorKind::TimedOut
        | PublishErrorKind::Unreachable
        | PublishErrorKind::NoStream
        | PublishErrorKind::Busy
        | PublishErrorKind::Rejected => ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "the event store did not confirm event {id} ({text}); it may or may not be \
                 stored: publish again with \"id\": \"{id}\" and it is stored once"
            ),
        ),
        _ => ApiError::new(ErrorCode::Internal, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_stream_answers_503_with_retry_after_and_the_id_to_send_again() {
        let e = publish_error(PublishErrorKind::Busy, "stream IDENTITY is busy", "ev-1");
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert_eq!(e.retry_after, Some(1));
        assert!(e.message.contains("\"id\": \"ev-1\""), "{}", e.message);
    }
}
