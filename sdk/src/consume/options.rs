//! How a consumer behaves: delivery limits, concurrency, retry schedule, timeouts.

use crate::wire::Validation;
use std::time::Duration;

/// When a retryable failure is tried again. The SDK computes the delay from the delivery count
/// and sends it with the `Nak` (JetStream's own consumer `backoff` only applies to ack-wait
/// expiry, not to a `Nak`).
#[derive(Debug, Clone, PartialEq)]
pub enum Backoff {
    /// `initial × multiplier^(attempt-1)`, capped at `max`, plus a random extra of up to
    /// `jitter × delay` (jitter only adds, so a delay is never shorter than configured).
    Exponential {
        /// Delay after the first failed attempt.
        initial: Duration,
        /// Largest delay.
        max: Duration,
        /// Growth factor per attempt.
        multiplier: f64,
        /// Fraction of the delay added at random, `0.0..=1.0`, so that instances retrying
        /// the same failure spread out.
        jitter: f64,
    },
    /// Fixed delays: the n-th failed attempt waits `delays[n-1]`; attempts past the end use
    /// the last one. An empty list retries at once.
    Schedule(Vec<Duration>),
}

impl Default for Backoff {
    /// 1 s, 2 s, 4 s … up to 60 s, with 20 % jitter.
    fn default() -> Self {
        Backoff::Exponential {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// A fixed schedule, e.g. `Backoff::schedule([ms(100), ms(500), s(2)])`.
    pub fn schedule(delays: impl IntoIterator<Item = Duration>) -> Self {
        Backoff::Schedule(delays.into_iter().collect())
    }

    /// The configured delay after failed attempt number `attempt` (1 for the first delivery),
    /// before jitter.
    pub fn base_delay(&self, attempt: u64) -> Duration {
        let attempt = attempt.max(1);
        match self {
            Backoff::Exponential {
                initial,
                max,
                multiplier,
                ..
            } => {
                let exp = i32::try_from(attempt - 1).unwrap_or(i32::MAX);
                let secs = initial.as_secs_f64() * multiplier.max(1.0).powi(exp);
                if !secs.is_finite() || secs >= max.as_secs_f64() {
                    *max
                } else {
                    Duration::from_secs_f64(secs)
                }
            }
            Backoff::Schedule(delays) => {
                let i = usize::try_from(attempt - 1).unwrap_or(usize::MAX);
                delays
                    .get(i)
                    .or(delays.last())
                    .copied()
                    .unwrap_or(Duration::ZERO)
            }
        }
    }

    /// The delay to send with the `Nak` of failed attempt `attempt`: the base delay plus
    /// jitter.
    pub fn delay(&self, attempt: u64) -> Duration {
        let base = self.base_delay(attempt);
        match self {
            Backoff::Exponential { jitter, .. } if *jitter > 0.0 => {
                base + base.mul_f64(jitter.min(1.0) * fastrand::f64())
            }
            _ => base,
        }
    }
}

/// Where a newly created durable starts. Applies only when the durable is first created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// Every event still in the stream.
    #[default]
    All,
    /// Only events published after the durable is created.
    New,
    /// Events stored at or after this time (JetStream's `by_start_time`).
    Time(chrono::DateTime<chrono::Utc>),
    /// Events from this stream sequence on (JetStream's `by_start_sequence`).
    Sequence(u64),
}

/// How the running instances of one durable share its events: JetStream priority groups
/// (nats-server 2.11 or later). Every instance of a durable must choose the same kind (`Pinned`
/// or `Overflow`; primaries and standbys of one overflow group mix); a durable created with one
/// kind cannot be switched to another (delete it first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Failover {
    /// Every running instance gets events; the server spreads them among the instances' pull
    /// requests. The default.
    #[default]
    None,
    /// Active and standby: the server pins one instance, which gets every event while the
    /// others wait. When the pinned instance stops pulling for `takeover` (it died, hung, or
    /// lost its connection), the server pins another. The pinned instance pulls at least every
    /// `takeover / 2` so that an idle one keeps its pin. Not exclusive in the strict sense: an
    /// instance cut off from the server may still be finishing events after the pin moved
    /// (acks decide what is done; an idempotent handler or [`ConsumerOptions::idempotent`]
    /// covers the overlap).
    Pinned {
        /// How long the pinned instance may stay silent before another takes over (at least
        /// 1 s).
        takeover: Duration,
    },
    /// Primary and overflow: an instance with `standby_above: None` always gets events; one
    /// with `Some(n)` gets events only while more than `n` wait in the durable — it helps
    /// with a backlog and stays idle otherwise.
    Overflow {
        /// `None` for a primary; for a standby, the number of pending events above which it
        /// helps.
        standby_above: Option<u64>,
    },
}

impl Failover {
    /// Active and standby instances, with a takeover after `takeover` of silence.
    pub fn pinned(takeover: Duration) -> Self {
        Failover::Pinned { takeover }
    }

    /// A primary of an overflow group: always gets events.
    pub fn primary() -> Self {
        Failover::Overflow {
            standby_above: None,
        }
    }

    /// A standby of an overflow group: gets events only while more than `pending` wait.
    pub fn standby(pending: u64) -> Self {
        Failover::Overflow {
            standby_above: Some(pending),
        }
    }

    /// The priority group's name on the durable (one group per durable).
    pub(crate) const GROUP: &'static str = "eventhub";
}

/// Settings of a durable consumer. Build with [`ConsumerOptions::default`] and the setters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// The durable's name. Default: `<service>__<event type with . and - as _>`, e.g.
    /// `payments__user_created`. Instances of a service share the durable and so the work;
    /// another service gets its own and so every event.
    pub name: Option<String>,
    /// How long the server waits for an ack before delivering again. Long handlers are kept
    /// alive with in-progress acks every `ack_wait / 2`. Default 30 s.
    pub ack_wait: Duration,
    /// Deliveries before an event goes to the dead letters, the first included. Default 5.
    pub max_deliver: u32,
    /// Unacknowledged events the server lets this durable hold (across all instances);
    /// further deliveries wait. Default 1000.
    pub max_ack_pending: u32,
    /// Handlers running at once in this instance. Default 8. Above 1, events are not handled
    /// in order.
    pub concurrency: usize,
    /// Events fetched ahead of free handlers, per instance. They are kept alive with
    /// in-progress acks while they wait. Default 512 (nats.go's `Consume` buffers 500): deep
    /// enough that pull round trips and a busy server do not starve fast handlers; lower it
    /// (even to 0) when handlers are slow and several instances should share a small backlog
    /// evenly, or when events are large (an instance may hold `concurrency + prefetch` of them).
    pub prefetch: usize,
    /// What decoding checks besides the encoding. Default [`Validation::Schema`]: every
    /// event is checked against its schema, and one that fails is a dead letter with the
    /// violations. [`Validation::Types`] decodes straight into the generated type, at about
    /// half the CPU per JSON event, for a consumer whose publishers check (see
    /// [`Validation`]).
    pub validation: Validation,
    /// When a retryable failure is tried again.
    pub backoff: Backoff,
    /// A handler running longer is cancelled and its event retried. Default 60 s; `None`
    /// waits forever (in-progress acks keep it from being redelivered).
    pub handler_timeout: Option<Duration>,
    /// How long [`ConsumerHandle::shutdown`](super::ConsumerHandle::shutdown) waits for
    /// running handlers before cancelling them. Default 30 s.
    pub shutdown_timeout: Duration,
    /// How long one pull request waits on the server for events. An instance never holds
    /// more than `concurrency + prefetch` events, counting those asked for and not arrived
    /// yet; a request lost with its server (a restart) is given up, and asked again, after
    /// `fetch_expires` plus as long again (at least 1 s). Default 2 s.
    pub fetch_expires: Duration,
    /// Where a new durable starts. Default: every event in the stream.
    pub start_from: StartFrom,
    /// Opt-in de-duplication of handled events, remembered for this long (see
    /// [`ConsumerOptions::idempotent`]). Default `None`.
    pub idempotency_window: Option<Duration>,
    /// How the instances of the durable share its events. Default [`Failover::None`].
    pub failover: Failover,
    /// Handle events with the same partition key (`x-partition-key`) one after another, in
    /// stream order, and different keys concurrently (see
    /// [`ConsumerOptions::ordered_by_key`]). Default `false`.
    pub ordered_by_key: bool,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            name: None,
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            max_ack_pending: 1000,
            concurrency: 8,
            prefetch: 512,
            validation: Validation::Schema,
            backoff: Backoff::default(),
            handler_timeout: Some(Duration::from_secs(60)),
            shutdown_timeout: Duration::from_secs(30),
            fetch_expires: Duration::from_secs(2),
            start_from: StartFrom::All,
            idempotency_window: None,
            failover: Failover::None,
            ordered_by_key: false,
        }
    }
}

impl ConsumerOptions {
    /// Sets the durable name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the ack wait.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Runs the handler at most once per event id within `window` — at-least-once delivery
    /// made effectively-once for redeliveries and duplicates.
    ///
    /// After a handler succeeds, the event id is recorded in the JetStream key-value bucket
    /// `EVENTHUB_IDEMPOTENCY_<durable>` (entries expire after `window`) before the ack. An
    /// event whose id is recorded is acked without running the handler
    /// ([`ConsumerStats::duplicates_skipped`](super::ConsumerStats::duplicates_skipped)): a
    /// redelivery after a lost ack, a duplicate published after the stream's
    /// `duplicate_window`, the same event replayed twice.
    ///
    /// The window where the handler can still run twice: a process that dies (or loses the
    /// server) after the handler succeeded and before the id was recorded. Handlers with
    /// external effects should still be idempotent themselves for that case; the guard removes
    /// the common duplicates, not that one. It costs a key-value read per event and a write per
    /// handled event.
    pub fn idempotent(mut self, window: Duration) -> Self {
        self.idempotency_window = Some(window);
        self
    }

    /// Sets the maximum number of deliveries.
    pub fn max_deliver(mut self, max_deliver: u32) -> Self {
        self.max_deliver = max_deliver;
        self
    }

    /// Sets the maximum of unacknowledged events.
    pub fn max_ack_pending(mut self, max_ack_pending: u32) -> Self {
        self.max_ack_pending = max_ack_pending;
        self
    }

    /// Sets how many handlers run at once.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Sets how many events are fetched ahead of free handlers.
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// Sets what decoding checks besides the encoding (default: the whole schema).
    pub fn validation(mut self, validation: Validation) -> Self {
        self.validation = validation;
        self
    }

    /// Sets the retry schedule.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the handler timeout.
    pub fn handler_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// Sets how long a shutdown waits for running handlers.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Sets how long one pull request waits on the server.
    pub fn fetch_expires(mut self, expires: Duration) -> Self {
        self.fetch_expires = expires;
        self
    }

    /// Sets where a new durable starts.
    pub fn start_from(mut self, start_from: StartFrom) -> Self {
        self.start_from = start_from;
        self
    }

    /// Sets how the instances of the durable share its events (active/standby, overflow).
    pub fn failover(mut self, failover: Failover) -> Self {
        self.failover = failover;
        self
    }

    /// How long one pull request waits on the server: `fetch_expires`, shortened for a pinned
    /// instance so that it pulls at least twice per takeover period and keeps its pin.
    pub(crate) fn pull_expires(&self) -> Duration {
        match self.failover {
            Failover::Pinned { takeover } => self.fetch_expires.min(takeover / 2),
            _ => self.fetch_expires,
        }
    }

    /// Orders by partition key: events whose schema declares `x-partition-key` are handled
    /// strictly in arrival (stream) order per key, also across retries — a failing event is
    /// tried again in place after its backoff delay while the later events of its key wait
    /// (kept alive with in-progress acks), and the other keys go on — with up to
    /// `concurrency` keys at once. Events without a key are not ordered. The order holds
    /// within one instance (see the `keyed` module docs in `docs/jetstream-features.md`).
    pub fn ordered_by_key(mut self, ordered: bool) -> Self {
        self.ordered_by_key = ordered;
        self
    }
}

/// The default durable name of `service` consuming `event_type`.
pub(crate) fn default_name(service: &str, event_type: &str) -> String {
    let ty: String = event_type
        .chars()
        .map(|c| if c == '.' || c == '-' { '_' } else { c })
        .collect();
    format!("{service}__{ty}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn exponential_backoff_grows_caps_and_only_adds_jitter() {
        let b = Backoff::Exponential {
            initial: MS(100),
            max: MS(1000),
            multiplier: 2.0,
            jitter: 0.5,
        };
        assert_eq!(b.base_delay(1), MS(100));
        assert_eq!(b.base_delay(2), MS(200));
        assert_eq!(b.base_delay(4), MS(800));
        assert_eq!(b.base_delay(5), MS(1000));
        assert_eq!(b.base_delay(u64::MAX), MS(1000));
        for attempt in 1..6 {
            for _ in 0..100 {
                let d = b.delay(attempt);
                let base = b.base_delay(attempt);
                assert!(d >= base && d <= base + base / 2, "{d:?} vs {base:?}");
            }
        }
    }

    #[test]
    fn a_schedule_repeats_its_last_delay() {
        let b = Backoff::schedule([MS(10), MS(50)]);
        assert_eq!(b.delay(1), MS(10));
        assert_eq!(b.delay(2), MS(50));
        assert_eq!(b.delay(9), MS(50));
        assert_eq!(Backoff::schedule([]).delay(3), Duration::ZERO);
    }

    #[test]
    fn default_names_are_valid_consumer_names() {
        assert_eq!(
            default_name("payments", "user.created"),
            "payments__user_created"
        );
        assert_eq!(
            default_name("admin", "payment.status-changed"),
            "admin__payment_status_changed"
        );
    }
}
