//! What a run covers and the small tools every scenario shares: the plan (full or quick),
//! the pipeline window, numbers from the environment, the latency clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

/// Publishes kept in flight by both sides' pipelines.
pub(crate) const WINDOW: usize = 4096;

/// What the run covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) pipelined: usize,
    pub(crate) awaited: usize,
    pub(crate) consumed: usize,
    pub(crate) latency_secs: u64,
    /// Runs per side behind each row, the sides alternating.
    pub(crate) rounds: usize,
    /// Runs per side behind the rows with a throughput target (pipelined publish, consume with
    /// 1 and 8 handlers, and their wire-format rows): more pairs, so the median pair moves less
    /// with the machine's jitter.
    pub(crate) targeted_rounds: usize,
    pub(crate) codegen: &'static [usize],
    /// Events a run for the peers' pipelined publish and consume (their awaited publish takes
    /// `awaited`).
    pub(crate) peer_events: usize,
    /// Rounds of the peer comparisons (each round runs both peers and eventhub).
    pub(crate) peer_rounds: usize,
    /// Rounds (runs per side) of the scale rows.
    pub(crate) scale_rounds: usize,
    /// Events per bench stream for the 50 consumers (each reads them all).
    pub(crate) fanout_events: usize,
    /// Events in the backlog drained by 4 instances.
    pub(crate) backlog: usize,
    /// Events a run for the R1 / R3 rows.
    pub(crate) cluster_events: usize,
    /// Payload bytes a run for the size rows (so fewer events of a bigger size).
    pub(crate) size_bytes: usize,
}

pub(crate) const FULL: Plan = Plan {
    pipelined: 100_000,
    awaited: 5_000,
    consumed: 100_000,
    latency_secs: 3,
    rounds: 7,
    targeted_rounds: 11,
    codegen: &[10, 100, 1000],
    peer_events: 20_000,
    peer_rounds: 3,
    scale_rounds: 3,
    fanout_events: 10_000,
    backlog: 1_000_000,
    cluster_events: 50_000,
    size_bytes: 256 << 20,
};

pub(crate) const QUICK: Plan = Plan {
    pipelined: 10_000,
    awaited: 500,
    consumed: 10_000,
    latency_secs: 1,
    rounds: 1,
    targeted_rounds: 1,
    codegen: &[10, 100],
    peer_events: 2_000,
    peer_rounds: 1,
    scale_rounds: 1,
    fanout_events: 200,
    backlog: 20_000,
    cluster_events: 5_000,
    size_bytes: 8 << 20,
};

/// A number from the environment variable `name`, if set and valid.
pub(crate) fn env_number(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Send and receive times of a latency run, by event index (ids `lat-<run>-<i>`).
#[derive(Clone)]
pub(crate) struct Clock {
    base: Instant,
    /// Distinguishes this run's ids from earlier runs' (the stream de-duplicates ids).
    pub(crate) run: String,
    sent: Arc<Vec<AtomicU64>>,
    latencies: Arc<Mutex<Vec<u64>>>,
    done: Arc<Notify>,
    total: usize,
}

impl Clock {
    pub(crate) fn new(total: usize) -> Self {
        Self {
            base: Instant::now(),
            run: uuid::Uuid::now_v7().simple().to_string(),
            sent: Arc::new((0..total).map(|_| AtomicU64::new(0)).collect()),
            latencies: Arc::new(Mutex::new(Vec::with_capacity(total))),
            done: Arc::new(Notify::new()),
            total,
        }
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    pub(crate) fn sent(&self, i: usize) {
        self.sent[i].store(self.now(), Ordering::Relaxed);
    }

    pub(crate) fn received(&self, id: &str) {
        let Some(i) = id
            .rsplit('-')
            .next()
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i < self.total)
        else {
            return;
        };
        let micros = (self
            .now()
            .saturating_sub(self.sent[i].load(Ordering::Relaxed)))
            / 1000;
        let mut l = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        l.push(micros);
        if l.len() == self.total {
            self.done.notify_one();
        }
    }

    pub(crate) async fn all_received(&self) {
        self.done.notified().await;
    }

    pub(crate) fn latencies(&self) -> Vec<u64> {
        let mut l = self
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        l.sort_unstable();
        l
    }
}
