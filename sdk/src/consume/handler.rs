//! Handlers: what one returns ([`Processed`], [`HandlerError`]), and [`HandlerFn`], which
//! makes a closure a [`tower::Service`].

use std::fmt;
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};

use super::Envelope;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler service did with an event it was given: the consumer acks it either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Processed {
    /// Handled.
    Handled,
    /// Not handled, and rightly so: its id was handled before (the idempotency layer).
    Duplicate,
}

/// Why a handling failed, as [`decide`](super::decide()) reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// Worth retrying: delivered again after the backoff, dead-lettered after the last
    /// allowed delivery.
    Retry,
    /// Retrying cannot help: dead-lettered now (reason `rejected`).
    Reject,
    /// The handler panicked (retried).
    Panicked,
    /// The handler ran past its time limit (retried).
    TimedOut,
}

/// A failed handling. Either *retryable* (the event is delivered again after the consumer's
/// backoff, and dead-lettered after the last allowed delivery) or *rejected* (dead-lettered at
/// once: retrying cannot help).
///
/// Any error converts into a retryable one, so `?` works in handlers:
///
/// ```
/// use eventhub::HandlerError;
/// # fn charge(_: u64) -> Result<(), std::io::Error> { Ok(()) }
/// async fn handle(amount: u64) -> Result<(), HandlerError> {
///     if amount == 0 {
///         return Err(HandlerError::reject("amount must be positive"));
///     }
///     charge(amount)?; // an io::Error: retried
///     Ok(())
/// }
/// ```
pub struct HandlerError {
    kind: FailureKind,
    delay: Option<Duration>,
    error: BoxError,
}

impl HandlerError {
    /// A failure worth retrying (a dependency is down, a timeout, a conflict).
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self {
            kind: FailureKind::Retry,
            delay: None,
            error: error.into(),
        }
    }

    /// A failure worth retrying after `delay` instead of the consumer's backoff (e.g. a
    /// dependency's `Retry-After`).
    pub fn retry_after(delay: Duration, error: impl Into<BoxError>) -> Self {
        Self {
            kind: FailureKind::Retry,
            delay: Some(delay),
            error: error.into(),
        }
    }

    /// A failure retrying cannot fix (the event breaks a business rule): the event goes to the
    /// dead letters now, with reason `rejected`.
    pub fn reject(error: impl Into<BoxError>) -> Self {
        Self {
            kind: FailureKind::Reject,
            delay: None,
            error: error.into(),
        }
    }

    /// The handler panicked with `message` (what [`CatchPanicLayer`](super::CatchPanicLayer)
    /// reports): retried.
    pub fn panicked(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Panicked,
            delay: None,
            error: format!("handler panicked: {}", message.into()).into(),
        }
    }

    /// The handler ran longer than `limit` (what [`TimeoutLayer`](super::TimeoutLayer)
    /// reports): retried.
    pub fn timed_out(limit: Duration) -> Self {
        Self {
            kind: FailureKind::TimedOut,
            delay: None,
            error: format!("handler timed out after {limit:?}").into(),
        }
    }

    /// Why it failed.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// Whether the event is retried.
    pub fn is_retryable(&self) -> bool {
        self.kind != FailureKind::Reject
    }

    /// The delay requested with [`HandlerError::retry_after`].
    pub fn delay(&self) -> Option<Duration> {
        self.delay
    }

    /// The underlying error.
    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.error
    }
}

/// Any error is a retryable failure.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        HandlerError::retry(error)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("kind", &self.kind)
            .field("delay", &self.delay)
            .field("error", &self.error)
            .finish()
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        let mut source = self.error.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// A closure `Fn(Envelope<E>) -> impl Future<Output = Result<(), HandlerError>>` as a
/// [`tower::Service`]: what [`Consumer::spawn`](super::Consumer::spawn) makes of the closure it
/// is given, and what a user composes with layers of their own.
pub struct HandlerFn<F>(std::sync::Arc<F>);

impl<F> HandlerFn<F> {
    /// Wraps `handler`.
    pub fn new(handler: F) -> Self {
        Self(std::sync::Arc::new(handler))
    }
}

impl<F> Clone for HandlerFn<F> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<F> fmt::Debug for HandlerFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandlerFn")
    }
}

impl<E, F, Fut> tower::Service<Envelope<E>> for HandlerFn<F>
where
    F: Fn(Envelope<E>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    type Response = Processed;
    type Error = HandlerError;
    type Future = BoxFuture<'static, Result<Processed, HandlerError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, envelope: Envelope<E>) -> Self::Future {
        (self.0)(envelope)
            .map(|r| r.map(|()| Processed::Handled))
            .boxed()
    }
}
