//! What the consumer loop tells deliveries that wait: for a free handler (`driver`) or for
//! their partition key (`keyed`).

/// What the consumer loop tells events waiting for a worker.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Waiting {
    /// Keep-alive periods elapsed.
    pub(super) ticks: u64,
    /// The consumer is stopping.
    pub(super) stop: bool,
}
