//! OpenTelemetry for eventhub: one trace across services.
//!
//! eventhub writes a W3C `traceparent` on every event and reads it on every delivery
//! ([`eventhub::TraceContext`]), so traces already cross NATS. This crate joins them with the
//! spans of an application that exports to OpenTelemetry through `tracing-opentelemetry`:
//!
//! - [`publisher`]: a publisher whose events continue the trace of the caller's current span
//!   (a request handler's, say), instead of each starting its own;
//! - [`OtelLayer`]: a handler layer that runs each handler inside a span `eventhub.handle`
//!   whose OpenTelemetry parent is the publish, so the spans a handler opens (and the
//!   follow-ups it publishes) belong to the publisher's trace.
//!
//! Without an OpenTelemetry subscriber installed both do nothing harmful: the current span has
//! no valid context, so events start their own trace as before, and the handler span is a plain
//! `tracing` span.
//!
//! ```no_run
//! # async fn demo(client: eventhub::Client, event: eventhub_catalog::events::user::CreatedV2)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use eventhub::ConsumerOptions;
//! use eventhub_catalog::events::user;
//!
//! // Inside a span of the caller's trace: the event continues it.
//! eventhub_otel::publisher(&client.publisher()).publish(&event).await?;
//!
//! // Handlers run in a span whose parent is the publish.
//! let consumer = client
//!     .consumer::<user::CreatedV2>(ConsumerOptions::default())
//!     .await?
//!     .layer(eventhub_otel::OtelLayer)
//!     .spawn(|env| async move {
//!         tracing::info!(user = %env.user_id, "creating the profile"); // in the same trace
//!         Ok(())
//!     });
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use eventhub::consume::Envelope;
use eventhub::{Publisher, TraceContext};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace context of the caller's current `tracing` span, as OpenTelemetry knows it;
/// `None` when it has none (no OpenTelemetry layer installed, or outside any span).
pub fn current() -> Option<TraceContext> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    TraceContext::parse(&format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    ))
}

/// `publisher` continuing the trace of the caller's current span (unchanged when there is
/// none: each event then starts its own trace).
pub fn publisher(publisher: &Publisher) -> Publisher {
    match current() {
        Some(parent) => publisher.with_trace_parent(parent),
        None => publisher.clone(),
    }
}

/// The OpenTelemetry context of a received event's `traceparent`: a remote parent.
pub fn remote_parent(trace: &TraceContext) -> Option<opentelemetry::Context> {
    let sc = SpanContext::new(
        TraceId::from_hex(&trace.trace_id().to_string()).ok()?,
        SpanId::from_hex(&trace.span_id().to_string()).ok()?,
        TraceFlags::new(trace.flags()),
        true,
        TraceState::default(),
    );
    sc.is_valid()
        .then(|| opentelemetry::Context::new().with_remote_span_context(sc))
}

/// A handler layer running each handler in a span `eventhub.handle` whose OpenTelemetry
/// parent is the event's publish ([`remote_parent`]). Add it with
/// [`Consumer::layer`](eventhub::Consumer::layer).
#[derive(Debug, Clone, Copy, Default)]
pub struct OtelLayer;

impl<S> tower::Layer<S> for OtelLayer {
    type Service = Otel<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Otel { inner }
    }
}

/// The service of [`OtelLayer`].
#[derive(Debug, Clone)]
pub struct Otel<S> {
    inner: S,
}

impl<S, E> tower::Service<Envelope<E>> for Otel<S>
where
    S: tower::Service<Envelope<E>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, env: Envelope<E>) -> Self::Future {
        let meta = env.meta();
        let span = tracing::info_span!(
            "eventhub.handle",
            event.id = meta.id.as_str(),
            event.r#type = meta.event_type.as_str(),
            event.version = meta.version,
            stream.sequence = meta.sequence,
            delivered = meta.delivered,
        );
        if let Some(parent) = meta.trace.as_ref().and_then(remote_parent) {
            // Fails only when the span is already started elsewhere: it was just made.
            let _ = span.set_parent(parent);
        }
        let future = {
            let _entered = span.enter();
            self.inner.call(env)
        };
        Box::pin(future.instrument(span))
    }
}
