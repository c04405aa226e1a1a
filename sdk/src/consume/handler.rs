//! What a handler returns when it fails.

use std::fmt;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    retryable: bool,
    delay: Option<Duration>,
    error: BoxError,
}

impl HandlerError {
    /// A failure worth retrying (a dependency is down, a timeout, a conflict).
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self {
            retryable: true,
            delay: None,
            error: error.into(),
        }
    }

    /// A failure worth retrying after `delay` instead of the consumer's backoff (e.g. a
    /// dependency's `Retry-After`).
    pub fn retry_after(delay: Duration, error: impl Into<BoxError>) -> Self {
        Self {
            retryable: true,
            delay: Some(delay),
            error: error.into(),
        }
    }

    /// A failure retrying cannot fix (the event breaks a business rule): the event goes to the
    /// dead letters now, with reason `rejected`.
    pub fn reject(error: impl Into<BoxError>) -> Self {
        Self {
            retryable: false,
            delay: None,
            error: error.into(),
        }
    }

    /// Whether the event is retried.
    pub fn is_retryable(&self) -> bool {
        self.retryable
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
            .field("retryable", &self.retryable)
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
