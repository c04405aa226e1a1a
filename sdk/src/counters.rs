//! The counters of one client: what its publishers and consumers did, kept in atomics (a
//! consumer holds its own counters, so handling an event takes no lock). [`crate::metrics`]
//! renders them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in nanoseconds (0.5 ms to 10 s).
pub(crate) const BUCKETS_NS: [u64; 14] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The same bounds as Prometheus `le` label values.
pub(crate) const BUCKET_LABELS: [&str; 15] = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "5", "10", "+Inf",
];

/// A latency histogram with fixed buckets: one atomic add per bucket hit, one for the sum.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; 15],
    sum_ns: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BUCKETS_NS
            .iter()
            .position(|b| ns <= *b)
            .unwrap_or(BUCKETS_NS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observations so far.
    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    pub(crate) fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bucket, le) in self.buckets.iter().zip(BUCKET_LABELS) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Counters of publishes of one event type.
#[derive(Debug, Default)]
pub(crate) struct PublishCounters {
    pub(crate) published: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Send to ack, of publishes acknowledged.
    pub(crate) latency: Histogram,
}

impl PublishCounters {
    /// Whether a publish has counted here: a success, a failure or an ack latency.
    fn used(&self) -> bool {
        self.published.load(Ordering::Relaxed) > 0
            || self.failed.load(Ordering::Relaxed) > 0
            || self.latency.count() > 0
    }
}

/// Dead-letter reasons counted separately; anything else counts as `other`.
pub(crate) const REASONS: [&str; 4] = ["rejected", "poison", "max-deliver", "other"];

/// Counters of one durable consumer of this client (shared by its instances in this process).
#[derive(Debug)]
pub(crate) struct ConsumerCounters {
    pub(crate) name: String,
    pub(crate) stream: &'static str,
    pub(crate) event_type: &'static str,
    pub(crate) handled: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: [AtomicU64; 4],
    pub(crate) latency: Histogram,
    /// Instances running in this process.
    pub(crate) running: AtomicUsize,
    /// Set when the last instance was shut down on purpose: health no longer expects it.
    pub(crate) retired: AtomicBool,
}

impl ConsumerCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_lettered(&self, reason: &str) {
        let i = REASONS[..3].iter().position(|r| *r == reason).unwrap_or(3);
        Self::bump(&self.dead_lettered[i]);
    }

    /// Marks an instance as running until the returned guard is dropped.
    pub(crate) fn start(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::AcqRel);
        self.retired.store(false, Ordering::Release);
        Running {
            counters: self.clone(),
            graceful: false,
        }
    }
}

/// One running consumer instance; dropped when its task ends (or is aborted).
#[derive(Debug)]
pub(crate) struct Running {
    counters: Arc<ConsumerCounters>,
    graceful: bool,
}

impl Running {
    /// The instance stopped on purpose (graceful shutdown).
    pub(crate) fn finish(mut self) {
        self.graceful = true;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let before = self.counters.running.fetch_sub(1, Ordering::AcqRel);
        if before == 1 && self.graceful {
            self.counters.retired.store(true, Ordering::Release);
        }
    }
}

/// The counters of one client.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Publish counters by event type, created on first use.
    publishes: RwLock<BTreeMap<&'static str, Arc<PublishCounters>>>,
    consumers: Mutex<BTreeMap<String, Arc<ConsumerCounters>>>,
}

impl Registry {
    /// The publish counters of `event_type`.
    pub(crate) fn publishes(&self, event_type: &'static str) -> Arc<PublishCounters> {
        if let Some(c) = self
            .publishes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(event_type)
        {
            return c.clone();
        }
        self.publishes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(event_type)
            .or_default()
            .clone()
    }

    /// The counters of consumer `name`, created on first use.
    pub(crate) fn consumer(
        &self,
        name: &str,
        stream: &'static str,
        event_type: &'static str,
    ) -> Arc<ConsumerCounters> {
        self.consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(ConsumerCounters {
                    name: name.to_string(),
                    stream,
                    event_type,
                    handled: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                    retried: AtomicU64::new(0),
                    dead_lettered: Default::default(),
                    latency: Histogram::default(),
                    running: AtomicUsize::new(0),
                    retired: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// The streams of the consumers this client started.
    pub(crate) fn consumer_streams(&self) -> Vec<String> {
        self.consumer_list()
            .iter()
            .map(|c| c.stream.to_string())
            .collect()
    }

    pub(crate) fn consumer_list(&self) -> Vec<Arc<ConsumerCounters>> {
        self.consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Counters of the event types published (or tried) so far, by event type.
    pub(crate) fn publish_list(&self) -> Vec<(&'static str, Arc<PublishCounters>)> {
        // Sorted already (a BTreeMap).
        self.publishes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, c)| c.used())
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }
}
