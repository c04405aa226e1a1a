//! Typed request-reply over core NATS: a [`Request`] names its response type, its subject and
//! the JSON Schemas of both; [`RequestExt::request`] sends one and waits for the typed
//! response; [`RequestExt::respond`] answers them.
//!
//! # On the wire
//!
//! A request is a NATS request on [`Request::SUBJECT`] with a JSON payload and the headers
//! `ce-id`, `ce-type` (the subject), `ce-source`, `ce-correlationid`, `traceparent`. The reply
//! carries `eventhub-reply: ok` and the response, or `eventhub-reply: error` and an
//! [`ErrorReply`] (its schema: [`ERROR_REPLY_SCHEMA`]), plus `ce-causationid` (the request's
//! id), the correlation id and a `traceparent` continuing the request's trace.
//!
//! # Guarantees
//!
//! Request-reply is **at most once** and not stored: a request sent while no responder listens
//! fails at once with [`RequestError::NoResponders`]; a responder that dies mid-request leaves
//! the requester to its timeout ([`RequestError::Timeout`]), and the handler may or may not
//! have run. Make handlers with effects idempotent by the request id (`ce-id`), or use events.
//!
//! On the responder side, a request that is not JSON or does not match
//! [`Request::REQUEST_SCHEMA`] never reaches the handler: it is answered with
//! [`ErrorCode::InvalidRequest`]. A handler that panics or runs past
//! [`ResponderOptions::handler_timeout`] is answered with [`ErrorCode::Internal`] and the
//! responder keeps serving. A response that breaks [`Request::RESPONSE_SCHEMA`] is not sent
//! (the requester gets [`ErrorCode::Internal`]); a requester checks responses too, so a foreign
//! responder cannot hand it a malformed one ([`RequestError::InvalidResponse`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::{HeaderMap, Message};
use bytes::Bytes;
use eventhub::wire::headers;
use eventhub::wire::schema::{Validator, Violations};
use eventhub::{Client, TraceContext};
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use eventhub::wire::request::{ERROR_REPLY_SCHEMA, REPLY_HEADER, Request};

/// The code of an [`ErrorReply`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is not JSON or does not match its schema; the handler did not run.
    InvalidRequest,
    /// The handler panicked, timed out, or produced an invalid response.
    Internal,
    /// A code of the responder's domain, e.g. `not_found`.
    Domain(String),
}

impl ErrorCode {
    /// The code as sent: `invalid_request`, `internal`, or the domain code.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Internal => "internal",
            ErrorCode::Domain(code) => code,
        }
    }

    fn parse(code: String) -> Self {
        match code.as_str() {
            "invalid_request" => ErrorCode::InvalidRequest,
            "internal" => ErrorCode::Internal,
            _ => ErrorCode::Domain(code),
        }
    }
}

/// A typed error reply: what a handler returns instead of a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({})", message, code.as_str())]
pub struct ErrorReply {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl ErrorReply {
    /// An error of the responder's domain. `code` should be lowercase letters, digits and `_`
    /// (e.g. `not_found`); anything else is sent as `internal`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        let code = code.into();
        let valid = code.len() <= 64
            && code.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        Self {
            code: if valid {
                ErrorCode::parse(code)
            } else {
                ErrorCode::Internal
            },
            message: message.into(),
        }
    }

    fn wire(&self) -> Bytes {
        #[derive(Serialize)]
        struct Wire<'a> {
            code: &'a str,
            message: &'a str,
        }
        let message: String = self.message.chars().take(1024).collect();
        serde_json::to_vec(&Wire {
            code: self.code.as_str(),
            message: &message,
        })
        .unwrap_or_default()
        .into()
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No reply within the timeout: the handler may or may not have run.
    #[error("no reply to {subject} within {after:?}")]
    Timeout {
        /// The request subject.
        subject: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// Nobody listens on the subject: the request was not delivered.
    #[error("no responder listens on {subject}")]
    NoResponders {
        /// The request subject.
        subject: &'static str,
    },
    /// The responder answered with an error.
    #[error("{subject} answered with an error: {reply}")]
    Failed {
        /// The request subject.
        subject: &'static str,
        /// The error reply.
        reply: ErrorReply,
    },
    /// The request does not match its schema; nothing was sent.
    #[error("the request on {subject} does not match its schema: {violations}")]
    InvalidRequest {
        /// The request subject.
        subject: &'static str,
        /// Every violation.
        violations: Violations,
    },
    /// The reply is not a response of the request's type.
    #[error("the reply on {subject} is not a valid response: {detail}")]
    InvalidResponse {
        /// The request subject.
        subject: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The request could not be serialized or sent.
    #[error("cannot send the request on {subject}: {detail}")]
    Send {
        /// The request subject.
        subject: &'static str,
        /// Why.
        detail: String,
    },
}

/// Per-request settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// How long to wait for the reply. Default 5 s.
    pub timeout: Duration,
    /// The flow's correlation id. Default: the request's id.
    pub correlation_id: Option<String>,
    /// The trace to continue. Default: a new trace.
    pub trace_parent: Option<TraceContext>,
}

impl Default for RequestOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            correlation_id: None,
            trace_parent: None,
        }
    }
}

impl RequestOptions {
    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Continues a trace.
    pub fn trace_parent(mut self, parent: TraceContext) -> Self {
        self.trace_parent = Some(parent);
        self
    }
}

/// How a responder serves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponderOptions {
    /// The queue group: responders in one group share the requests, each answered once.
    /// Default: the service name, so instances of a service share the load.
    pub queue_group: Option<String>,
    /// Handlers running at once in this responder. Default 64.
    pub concurrency: usize,
    /// A handler running longer is abandoned and answered with [`ErrorCode::Internal`].
    /// Default 30 s.
    pub handler_timeout: Duration,
}

impl Default for ResponderOptions {
    fn default() -> Self {
        Self {
            queue_group: None,
            concurrency: 64,
            handler_timeout: Duration::from_secs(30),
        }
    }
}

impl ResponderOptions {
    /// Sets the queue group.
    pub fn queue_group(mut self, group: impl Into<String>) -> Self {
        self.queue_group = Some(group.into());
        self
    }

    /// Sets how many handlers run at once.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Sets the handler timeout.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }
}

/// What a handler receives: the request and its attributes.
#[derive(Debug, Clone)]
pub struct Incoming<R> {
    /// The request.
    pub request: R,
    /// Its id (`ce-id`), the causation id of the reply.
    pub id: String,
    /// The requesting service (`ce-source`), as it claims: NATS does not verify it.
    pub source: Option<String>,
    /// The flow's correlation id.
    pub correlation_id: String,
    /// The trace of the handling: a child of the request's.
    pub trace: TraceContext,
}

/// Counters of a responder.
#[derive(Debug, Default)]
pub struct ResponderStats {
    /// Requests answered with a response.
    pub ok: AtomicU64,
    /// Requests answered with an error the handler returned.
    pub failed: AtomicU64,
    /// Requests refused as invalid (not JSON, schema).
    pub invalid: AtomicU64,
    /// Handlers that panicked, timed out or produced an invalid response.
    pub internal: AtomicU64,
    /// Messages without a reply subject, dropped.
    pub no_reply_subject: AtomicU64,
}

/// Why a responder could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot subscribe to {subject}: {detail}")]
pub struct RespondError {
    /// The request subject.
    pub subject: &'static str,
    /// Why.
    pub detail: String,
}

/// A running responder. Dropping it keeps it running; [`Responder::shutdown`] stops it.
#[derive(Debug)]
pub struct Responder {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
    stats: Arc<ResponderStats>,
}

impl Responder {
    /// Its counters.
    pub fn stats(&self) -> &ResponderStats {
        &self.stats
    }

    /// Stops taking requests and waits for the running handlers.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Request-reply on an eventhub [`Client`].
pub trait RequestExt {
    /// Sends `request` and waits for its typed response (default options).
    ///
    /// ```no_run
    /// # use eventhub_patterns::{Request, RequestExt};
    /// # async fn demo<R: Request>(client: eventhub::Client, lookup: R) -> Result<(), eventhub_patterns::RequestError> {
    /// let response = client.request(&lookup).await?;
    /// # Ok(()) }
    /// ```
    fn request<R: Request>(
        &self,
        request: &R,
    ) -> impl Future<Output = Result<R::Response, RequestError>> + Send;

    /// [`RequestExt::request`] with options (timeout, correlation, trace).
    fn request_with<R: Request>(
        &self,
        request: &R,
        options: RequestOptions,
    ) -> impl Future<Output = Result<R::Response, RequestError>> + Send;

    /// Answers requests of type `R` with `handler` until [`Responder::shutdown`].
    ///
    /// ```no_run
    /// # use eventhub_patterns::{ErrorReply, Incoming, Request, RequestExt, ResponderOptions};
    /// # async fn demo<R: Request>(client: eventhub::Client, answer: fn(&R) -> Option<R::Response>) -> Result<(), Box<dyn std::error::Error>> {
    /// let responder = client
    ///     .respond(ResponderOptions::default(), move |incoming: Incoming<R>| async move {
    ///         answer(&incoming.request).ok_or_else(|| ErrorReply::new("not_found", "no such user"))
    ///     })
    ///     .await?;
    /// # responder.shutdown().await;
    /// # Ok(()) }
    /// ```
    fn respond<R, F, Fut>(
        &self,
        options: ResponderOptions,
        handler: F,
    ) -> impl Future<Output = Result<Responder, RespondError>> + Send
    where
        R: Request,
        F: Fn(Incoming<R>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R::Response, ErrorReply>> + Send + 'static;
}

fn validator(schema: Option<&'static str>) -> Option<&'static Validator> {
    schema.map(|s| Validator::cached(s, &[]))
}

impl RequestExt for Client {
    fn request<R: Request>(
        &self,
        request: &R,
    ) -> impl Future<Output = Result<R::Response, RequestError>> + Send {
        self.request_with(request, RequestOptions::default())
    }

    fn request_with<R: Request>(
        &self,
        request: &R,
        options: RequestOptions,
    ) -> impl Future<Output = Result<R::Response, RequestError>> + Send {
        let prepared = prepare(self, request, &options);
        let nats = self.nats().clone();
        async move {
            let (headers, payload, span) = prepared?;
            let subject = R::SUBJECT;
            let reply = nats
                .send_request(
                    subject,
                    async_nats::Request::new()
                        .headers(headers)
                        .payload(payload)
                        .timeout(Some(options.timeout)),
                )
                .instrument(span)
                .await
                .map_err(|e| match e.kind() {
                    async_nats::RequestErrorKind::TimedOut => RequestError::Timeout {
                        subject,
                        after: options.timeout,
                    },
                    async_nats::RequestErrorKind::NoResponders => {
                        RequestError::NoResponders { subject }
                    }
                    _ => RequestError::Send {
                        subject,
                        detail: e.to_string(),
                    },
                })?;
            read_reply::<R>(&reply)
        }
    }

    fn respond<R, F, Fut>(
        &self,
        options: ResponderOptions,
        handler: F,
    ) -> impl Future<Output = Result<Responder, RespondError>> + Send
    where
        R: Request,
        F: Fn(Incoming<R>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R::Response, ErrorReply>> + Send + 'static,
    {
        let client = self.clone();
        async move {
            let group = options
                .queue_group
                .clone()
                .unwrap_or_else(|| client.service().to_string());
            let mut subscription = client
                .nats()
                .queue_subscribe(R::SUBJECT, group)
                .await
                .map_err(|e| RespondError {
                    subject: R::SUBJECT,
                    detail: e.to_string(),
                })?;
            // The subscription is registered once the server has processed it.
            client.nats().flush().await.map_err(|e| RespondError {
                subject: R::SUBJECT,
                detail: e.to_string(),
            })?;
            let stats = Arc::new(ResponderStats::default());
            let (stop, mut stopped) = watch::channel(false);
            let handler = Arc::new(handler);
            let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
            let loop_stats = stats.clone();
            let task = tokio::spawn(async move {
                loop {
                    let message = tokio::select! {
                        m = subscription.next() => match m { Some(m) => m, None => break },
                        _ = stopped.changed() => break,
                    };
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        break;
                    };
                    let client = client.clone();
                    let handler = handler.clone();
                    let stats = loop_stats.clone();
                    let timeout = options.handler_timeout;
                    tokio::spawn(async move {
                        answer::<R, F, Fut>(&client, message, &*handler, timeout, &stats).await;
                        drop(permit);
                    });
                }
                let _ = subscription.unsubscribe().await;
                // Running handlers hold a slot each: taking them all waits for them.
                let total = u32::try_from(options.concurrency.max(1)).unwrap_or(u32::MAX);
                let _ = slots.acquire_many(total).await;
            });
            Ok(Responder { task, stop, stats })
        }
    }
}

type Prepared = (HeaderMap, Bytes, tracing::Span);

fn prepare<R: Request>(
    client: &Client,
    request: &R,
    options: &RequestOptions,
) -> Result<Prepared, RequestError> {
    let subject = R::SUBJECT;
    let value = serde_json::to_value(request).map_err(|e| RequestError::Send {
        subject,
        detail: e.to_string(),
    })?;
    if let Some(v) = validator(R::REQUEST_SCHEMA) {
        v.check(&value)
            .map_err(|violations| RequestError::InvalidRequest {
                subject,
                violations,
            })?;
    }
    let payload = serde_json::to_vec(&value).map_err(|e| RequestError::Send {
        subject,
        detail: e.to_string(),
    })?;
    let id = headers::new_event_id();
    let trace = options
        .trace_parent
        .map_or_else(TraceContext::root, |p| p.child());
    let correlation = options.correlation_id.clone().unwrap_or_else(|| id.clone());
    let mut h = HeaderMap::new();
    h.insert(headers::ID, id.as_str());
    h.insert(headers::TYPE, subject);
    h.insert(headers::SOURCE, client.service());
    h.insert(headers::CONTENT_TYPE, "application/json");
    h.insert(headers::CORRELATION_ID, correlation.as_str());
    h.insert(headers::TRACEPARENT, trace.header().as_str());
    let span =
        tracing::debug_span!("request", %subject, request_id = %id, correlation_id = %correlation);
    Ok((h, payload.into(), span))
}

fn read_reply<R: Request>(reply: &Message) -> Result<R::Response, RequestError> {
    let subject = R::SUBJECT;
    let invalid = |detail: String| RequestError::InvalidResponse { subject, detail };
    let status = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(REPLY_HEADER))
        .map(|v| v.as_str().to_string());
    match status.as_deref() {
        Some("error") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Wire {
                code: String,
                message: String,
            }
            let wire: Wire = serde_json::from_slice(&reply.payload)
                .map_err(|e| invalid(format!("an error reply that is not one: {e}")))?;
            Err(RequestError::Failed {
                subject,
                reply: ErrorReply {
                    code: ErrorCode::parse(wire.code),
                    message: wire.message,
                },
            })
        }
        Some("ok") => {
            let value: serde_json::Value = serde_json::from_slice(&reply.payload)
                .map_err(|e| invalid(format!("not JSON: {e}")))?;
            if let Some(v) = validator(R::RESPONSE_SCHEMA) {
                v.check(&value).map_err(|e| invalid(e.to_string()))?;
            }
            serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
        }
        other => Err(invalid(format!(
            "no `{REPLY_HEADER}: ok|error` header (got {other:?}): not an eventhub responder"
        ))),
    }
}

async fn answer<R, F, Fut>(
    client: &Client,
    message: Message,
    handler: &F,
    timeout: Duration,
    stats: &ResponderStats,
) where
    R: Request,
    F: Fn(Incoming<R>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R::Response, ErrorReply>> + Send + 'static,
{
    let Some(reply_to) = message.reply.clone() else {
        stats.no_reply_subject.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            subject = R::SUBJECT,
            "request without a reply subject dropped"
        );
        return;
    };
    let get = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let id = get(headers::ID).unwrap_or_else(headers::new_event_id);
    let correlation_id = get(headers::CORRELATION_ID).unwrap_or_else(|| id.clone());
    let trace = get(headers::TRACEPARENT)
        .and_then(|t| TraceContext::parse(&t))
        .map_or_else(TraceContext::root, |p| p.child());
    let span = tracing::info_span!("respond", subject = R::SUBJECT, request_id = %id, correlation_id = %correlation_id);
    let outcome: Result<Bytes, ErrorReply> = async {
        let request = decode::<R>(&message).inspect_err(|_| {
            stats.invalid.fetch_add(1, Ordering::Relaxed);
        })?;
        let incoming = Incoming {
            request,
            id: id.clone(),
            source: get(headers::SOURCE),
            correlation_id: correlation_id.clone(),
            trace,
        };
        let run = std::panic::AssertUnwindSafe(handler(incoming)).catch_unwind();
        let internal = |why: &str| {
            stats.internal.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("request {id} on {}: {why}", R::SUBJECT);
            ErrorReply {
                code: ErrorCode::Internal,
                message: format!("the responder failed: {why}"),
            }
        };
        let response = match tokio::time::timeout(timeout, run).await {
            Err(_) => return Err(internal("the handler timed out")),
            Ok(Err(_panic)) => return Err(internal("the handler panicked")),
            Ok(Ok(Err(reply))) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                return Err(reply);
            }
            Ok(Ok(Ok(response))) => response,
        };
        let value = serde_json::to_value(&response)
            .map_err(|_| internal("the response does not serialize"))?;
        if let Some(v) = validator(R::RESPONSE_SCHEMA)
            && let Err(violations) = v.check(&value)
        {
            return Err(internal(&format!(
                "the response does not match its schema: {violations}"
            )));
        }
        stats.ok.fetch_add(1, Ordering::Relaxed);
        Ok(serde_json::to_vec(&value).unwrap_or_default().into())
    }
    .instrument(span.clone())
    .await;
    let mut h = HeaderMap::new();
    let payload = match outcome {
        Ok(payload) => {
            h.insert(REPLY_HEADER, "ok");
            payload
        }
        Err(reply) => {
            h.insert(REPLY_HEADER, "error");
            reply.wire()
        }
    };
    h.insert(headers::CONTENT_TYPE, "application/json");
    h.insert(headers::CAUSATION_ID, id.as_str());
    h.insert(headers::CORRELATION_ID, correlation_id.as_str());
    h.insert(headers::TRACEPARENT, trace.header().as_str());
    if let Err(e) = client
        .nats()
        .publish_with_headers(reply_to, h, payload)
        .await
    {
        tracing::warn!(parent: &span, "cannot send the reply: {e}");
    }
}

/// The request, or the error reply saying why it is not one.
fn decode<R: Request>(message: &Message) -> Result<R, ErrorReply> {
    let invalid = |message: String| ErrorReply {
        code: ErrorCode::InvalidRequest,
        message,
    };
    let content_type = message
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::CONTENT_TYPE))
        .map(|v| v.as_str().to_string());
    if let Some(t) = content_type
        && !t.eq_ignore_ascii_case("application/json")
    {
        return Err(invalid(format!(
            "content-type `{}` is not application/json",
            t.chars().take(64).collect::<String>()
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(&message.payload)
        .map_err(|e| invalid(format!("the request is not JSON: {e}")))?;
    if let Some(v) = validator(R::REQUEST_SCHEMA) {
        v.check(&value)
            .map_err(|e| invalid(format!("the request does not match its schema: {e}")))?;
    }
    serde_json::from_value(value)
        .map_err(|e| invalid(format!("the request does not match its type: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies_match_their_schema_and_bad_codes_become_internal() {
        let schema = Validator::new(ERROR_REPLY_SCHEMA);
        for reply in [
            ErrorReply::new("not_found", "no such user"),
            ErrorReply::new("Bad Code!", "x".repeat(5000)),
        ] {
            let value: serde_json::Value = serde_json::from_slice(&reply.wire()).unwrap();
            schema.check(&value).unwrap();
        }
        assert_eq!(ErrorReply::new("Bad Code!", "").code, ErrorCode::Internal);
        assert_eq!(
            ErrorReply::new("invalid_request", "").code,
            ErrorCode::InvalidRequest
        );
    }
}
