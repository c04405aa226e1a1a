//! Handler layers: the cross-cutting parts of handling an event, as [`tower::Layer`]s around the
//! handler service.
//!
//! A consumer builds, from the outside in: [`CatchPanicLayer`], the idempotency guard (when
//! [`ConsumerOptions::idempotent`](super::ConsumerOptions::idempotent)), [`TimeoutLayer`] (when
//! [`ConsumerOptions::handler_timeout`](super::ConsumerOptions::handler_timeout) is set), the
//! handler-time metrics, then the layers added with [`Consumer::layer`](super::Consumer::layer)
//! around the handler. To move or replace one, turn the built-in off in the options and add the
//! layer yourself, where you want it (any `tower` layer works: rate limits, concurrency limits,
//! your own).
//!
//! Why tower: its `Service`/`Layer` traits are what axum, tonic and hyper users already write,
//! and what the gateway uses; a layer written for one composes with the others. The span of a
//! delivery (`eventhub.handle`) is not a layer: it covers decoding and the ack decision too, so
//! the consumer opens it around the whole delivery.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::Envelope;
use super::handler::{HandlerError, Processed};
use super::idempotency::{self, Claim, Guard};
use crate::counters::{ConsumerCounters, Latency};

/// Turns a panic in the handler (or an inner layer) into a retryable
/// [`HandlerError::panicked`]: the consumer keeps running.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic { inner }
    }
}

/// The service of [`CatchPanicLayer`].
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S, R> Service<R> for CatchPanic<S>
where
    S: Service<R, Response = Processed, Error = HandlerError>,
    S::Future: Send + 'static,
{
    type Response = Processed;
    type Error = HandlerError;
    type Future = BoxFuture<'static, Result<Processed, HandlerError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // A panic while making the future, or while running it.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => AssertUnwindSafe(future)
                .catch_unwind()
                .map(|r| r.unwrap_or_else(|p| Err(HandlerError::panicked(panic_message(&*p)))))
                .boxed(),
            Err(p) => {
                let e = HandlerError::panicked(panic_message(&*p));
                async move { Err(e) }.boxed()
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// Fails a handling that runs longer than its limit with a retryable
/// [`HandlerError::timed_out`] (the handler's future is dropped).
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    limit: Duration,
}

impl TimeoutLayer {
    /// Handlings may take up to `limit`.
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
}

impl<S, R> Service<R> for Timeout<S>
where
    S: Service<R, Response = Processed, Error = HandlerError>,
    S::Future: Send + 'static,
{
    type Response = Processed;
    type Error = HandlerError;
    type Future = BoxFuture<'static, Result<Processed, HandlerError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let limit = self.limit;
        let future = self.inner.call(request);
        async move {
            tokio::time::timeout(limit, future)
                .await
                .unwrap_or_else(|_| Err(HandlerError::timed_out(limit)))
        }
        .boxed()
    }
}

/// Counts handler time and failed handlings in the consumer's metrics.
#[derive(Debug, Clone)]
pub(crate) struct MetricsLayer {
    pub(crate) counters: Arc<ConsumerCounters>,
    /// The durable's handler time.
    pub(crate) latency: Latency,
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Metered<S> {
        Metered {
            inner,
            counters: self.counters.clone(),
            latency: self.latency.clone(),
        }
    }
}

/// The service of [`MetricsLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Metered<S> {
    inner: S,
    counters: Arc<ConsumerCounters>,
    latency: Latency,
}

impl<S, R> Service<R> for Metered<S>
where
    S: Service<R, Response = Processed, Error = HandlerError>,
    S::Future: Send + 'static,
{
    type Response = Processed;
    type Error = HandlerError;
    type Future = BoxFuture<'static, Result<Processed, HandlerError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let counters = self.counters.clone();
        let latency = self.latency.clone();
        let started = std::time::Instant::now();
        let future = self.inner.call(request);
        async move {
            let result = future.await;
            latency.observe(started.elapsed());
            if result.is_err() {
                ConsumerCounters::bump(&counters.failed);
            }
            result
        }
        .boxed()
    }
}

/// Runs the handler once per event id: the id is claimed in the consumer's key-value bucket
/// before the handler runs (copies delivered together, or to two instances, wait for the
/// claim's outcome), recorded when handled (a later copy is a [`Processed::Duplicate`]) and
/// released when the handling failed (so its retry runs).
#[derive(Debug, Clone)]
pub(crate) struct IdempotencyLayer {
    pub(crate) guard: Guard,
    /// How often a claim is renewed while its handler runs.
    pub(crate) renew_every: Duration,
    /// How long recording a handled id may keep being retried.
    pub(crate) record_for: Duration,
    pub(crate) consumer: Arc<str>,
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotent<S>;

    fn layer(&self, inner: S) -> Idempotent<S> {
        Idempotent {
            inner,
            config: self.clone(),
        }
    }
}

/// The service of the idempotency guard.
#[derive(Debug, Clone)]
pub(crate) struct Idempotent<S> {
    inner: S,
    config: IdempotencyLayer,
}

impl<S, E> Service<Envelope<E>> for Idempotent<S>
where
    S: Service<Envelope<E>, Response = Processed, Error = HandlerError> + Clone + Send + 'static,
    S::Future: Send + 'static,
    E: Send + 'static,
{
    type Response = Processed;
    type Error = HandlerError;
    type Future = BoxFuture<'static, Result<Processed, HandlerError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, envelope: Envelope<E>) -> Self::Future {
        // The inner service was made ready for this call: take it, leave a clone.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let config = self.config.clone();
        async move {
            let key = idempotency::key(&envelope.meta().occurrence_id());
            let sequence = envelope.meta().sequence;
            let guard = &config.guard;
            // Waiting for another claim: the consumer keeps the delivery alive meanwhile.
            let mut pause = Duration::from_millis(20);
            let revision = loop {
                match guard.claim(&key).await {
                    Claim::Mine(revision) => break Some(revision),
                    Claim::Done => return Ok(Processed::Duplicate),
                    Claim::Unknown(e) => {
                        // Not knowing is not a reason to lose the event: handle it.
                        tracing::warn!(consumer = %config.consumer, "eventhub: idempotency claim failed ({e}); handling the event");
                        break None;
                    }
                    Claim::Busy => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                    }
                }
            };
            let run = inner.call(envelope);
            tokio::pin!(run);
            let mut revision = revision;
            let mut renew = tokio::time::interval_at(
                Instant::now() + config.renew_every,
                config.renew_every,
            );
            let result = loop {
                tokio::select! {
                    result = &mut run => break result,
                    _ = renew.tick() => {
                        if let Some(r) = revision
                            && let Some(renewed) = guard.renew(&key, r).await
                        {
                            revision = Some(renewed);
                        }
                    }
                }
            };
            match (&result, revision) {
                (Ok(Processed::Handled), _) => record(&config, &key, sequence).await,
                (Err(_), Some(r)) => guard.release(&key, r).await,
                _ => {}
            }
            result
        }
        .boxed()
    }
}

/// Records `key` as handled, before the ack: a redelivery finds it. While the server is out of
/// reach it is retried (for up to one ack wait) rather than given up: an unrecorded event would
/// run its handler again when redelivered.
async fn record(config: &IdempotencyLayer, key: &str, sequence: u64) {
    let give_up = Instant::now() + config.record_for;
    let mut pause = Duration::from_millis(50);
    loop {
        match config.guard.done(key, sequence).await {
            Ok(_) => return,
            Err(e) if Instant::now() + pause < give_up => {
                tracing::debug!(consumer = %config.consumer, "eventhub: idempotency record failed ({e}); retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                tracing::warn!(consumer = %config.consumer, "eventhub: could not record handled event {key} for idempotency ({e}); a redelivery would run the handler again");
                return;
            }
        }
    }
}
