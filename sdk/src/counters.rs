//! The counters of one client: what its publishers and consumers did.
//!
//! A consumer instance counts in one set of atomics ([`ConsumerCounters`]): its
//! [`stats`](crate::ConsumerHandle::stats) read them, and the metrics sum them per durable at
//! scrape time (a [`Collector`](prometheus_client::collector::Collector)), so handling an event
//! bumps each count once and takes no lock. With the `metrics` feature, publish counts and
//! latencies are `prometheus-client` metrics in the client's
//! [`Registry`](prometheus_client::registry::Registry); [`crate::metrics`] renders them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

/// Counts of what a consumer did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Messages received.
    pub received: u64,
    /// Events handled successfully and acked.
    pub handled: u64,
    /// Failed attempts sent back for a retry (`Nak` with delay).
    pub retried: u64,
    /// Events moved to the dead letters (any reason).
    pub dead_lettered: u64,
    /// Of those, poison (undecodable) events.
    pub poison: u64,
    /// Handler panics (counted as retryable failures).
    pub panics: u64,
    /// Handler timeouts (counted as retryable failures).
    pub timeouts: u64,
    /// Replays from the dead letters meant for another consumer (checked against the replay's
    /// record), acked unhandled.
    pub replays_skipped: u64,
    /// Events marked as a dead-letter replay for another consumer without a matching replay
    /// record (a forged or stale mark): handled like any event, and logged.
    pub forged_replay_marks: u64,
    /// Events whose signature does not prove their source, dead-lettered as `forged`
    /// ([`crate::wire::signing`]).
    pub forged: u64,
    /// Events received but not handled because of a shutdown, returned at once for another
    /// instance.
    pub returned: u64,
    /// Events acked without running the handler because their id was handled before
    /// ([`ConsumerOptions::idempotent`](crate::ConsumerOptions::idempotent)).
    pub duplicates_skipped: u64,
}

/// Dead-letter reasons counted separately; anything else counts as `other`.
pub(crate) const REASONS: [&str; 4] = ["rejected", "poison", "max-deliver", "other"];

/// The counts of one consumer instance: the only set bumped per event.
#[derive(Debug, Default)]
pub(crate) struct ConsumerCounters {
    pub(crate) received: AtomicU64,
    pub(crate) handled: AtomicU64,
    pub(crate) retried: AtomicU64,
    /// By [`REASONS`].
    pub(crate) dead_lettered: [AtomicU64; 4],
    pub(crate) poison: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) replays_skipped: AtomicU64,
    pub(crate) forged_replay_marks: AtomicU64,
    pub(crate) forged: AtomicU64,
    pub(crate) returned: AtomicU64,
    pub(crate) duplicates_skipped: AtomicU64,
    /// Handler runs that failed (error, rejection, panic or timeout).
    pub(crate) failed: AtomicU64,
}

impl ConsumerCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_lettered(&self, reason: &str) {
        let i = REASONS[..3].iter().position(|r| *r == reason).unwrap_or(3);
        Self::bump(&self.dead_lettered[i]);
    }

    pub(crate) fn snapshot(&self) -> ConsumerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConsumerStats {
            received: get(&self.received),
            handled: get(&self.handled),
            retried: get(&self.retried),
            dead_lettered: self.dead_lettered.iter().map(get).sum(),
            poison: get(&self.poison),
            panics: get(&self.panics),
            timeouts: get(&self.timeouts),
            replays_skipped: get(&self.replays_skipped),
            forged_replay_marks: get(&self.forged_replay_marks),
            forged: get(&self.forged),
            returned: get(&self.returned),
            duplicates_skipped: get(&self.duplicates_skipped),
        }
    }

    /// Adds `other`'s counts to these (an instance that ended, folded into its durable's).
    fn absorb(&self, other: &ConsumerCounters) {
        let pairs = [
            (&self.received, &other.received),
            (&self.handled, &other.handled),
            (&self.retried, &other.retried),
            (&self.poison, &other.poison),
            (&self.panics, &other.panics),
            (&self.timeouts, &other.timeouts),
            (&self.replays_skipped, &other.replays_skipped),
            (&self.forged_replay_marks, &other.forged_replay_marks),
            (&self.forged, &other.forged),
            (&self.returned, &other.returned),
            (&self.duplicates_skipped, &other.duplicates_skipped),
            (&self.failed, &other.failed),
        ];
        let reasons = self.dead_lettered.iter().zip(&other.dead_lettered);
        for (into, from) in pairs.into_iter().chain(reasons) {
            into.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// A latency histogram (seconds, 0.5 ms to 10 s), or nothing without the `metrics` feature.
#[derive(Debug, Clone)]
pub(crate) struct Latency {
    #[cfg(feature = "metrics")]
    histogram: prometheus_client::metrics::histogram::Histogram,
}

impl Latency {
    pub(crate) fn observe(&self, d: Duration) {
        #[cfg(feature = "metrics")]
        self.histogram.observe(d.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = d;
    }
}

/// One durable consumer of this client: its instances in this process and their counts.
#[derive(Debug)]
pub(crate) struct Durable {
    pub(crate) name: String,
    pub(crate) stream: &'static str,
    /// Only the metrics label with it.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) event_type: &'static str,
    /// Handler time, whatever the outcome.
    pub(crate) latency: Latency,
    /// Instances running in this process.
    pub(crate) running: AtomicUsize,
    /// Set when the last instance was shut down on purpose: health no longer expects it.
    pub(crate) retired: AtomicBool,
    /// The counts of running instances.
    instances: Mutex<Vec<Arc<ConsumerCounters>>>,
    /// The counts of instances that ended.
    finished: ConsumerCounters,
}

impl Durable {
    /// Starts an instance: its counters, and a guard that keeps it listed as running (alive for
    /// health) until dropped.
    pub(crate) fn start(self: &Arc<Self>) -> (Arc<ConsumerCounters>, Running) {
        let counters = Arc::new(ConsumerCounters::default());
        self.instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(counters.clone());
        self.running.fetch_add(1, Ordering::AcqRel);
        self.retired.store(false, Ordering::Release);
        let running = Running {
            durable: self.clone(),
            counters: counters.clone(),
            graceful: false,
        };
        (counters, running)
    }

    /// The counts of every instance, running or ended.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn total(&self) -> ConsumerCounters {
        let total = ConsumerCounters::default();
        total.absorb(&self.finished);
        for instance in self
            .instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            total.absorb(instance);
        }
        total
    }
}

/// One running consumer instance; dropped when its task ends (or is aborted).
#[derive(Debug)]
pub(crate) struct Running {
    durable: Arc<Durable>,
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
        // Its counts stay in the durable's totals (counters never go down), without keeping
        // every ended instance listed.
        let mut instances = self
            .durable
            .instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        instances.retain(|c| !Arc::ptr_eq(c, &self.counters));
        self.durable.finished.absorb(&self.counters);
        drop(instances);
        let before = self.durable.running.fetch_sub(1, Ordering::AcqRel);
        if before == 1 && self.graceful {
            self.durable.retired.store(true, Ordering::Release);
        }
    }
}

/// Counters of publishes of one event type.
#[derive(Debug, Clone)]
pub(crate) struct PublishCounters {
    #[cfg(feature = "metrics")]
    published: prometheus_client::metrics::counter::Counter,
    #[cfg(feature = "metrics")]
    failed: prometheus_client::metrics::counter::Counter,
    /// Send to ack, of publishes acknowledged.
    pub(crate) latency: Latency,
}

impl PublishCounters {
    /// A publish was acknowledged by its stream.
    pub(crate) fn published(&self) {
        #[cfg(feature = "metrics")]
        self.published.inc();
    }

    /// A publish failed (after its retries).
    pub(crate) fn failed(&self) {
        #[cfg(feature = "metrics")]
        self.failed.inc();
    }
}

/// The counters of one client.
#[derive(Debug)]
pub(crate) struct Registry {
    /// Publish counters by event type, created on first use (a cache of the families' entries:
    /// one map lookup per publish, no label hashing).
    publishes: RwLock<BTreeMap<&'static str, Arc<PublishCounters>>>,
    consumers: Arc<Mutex<BTreeMap<String, Arc<Durable>>>>,
    #[cfg(feature = "metrics")]
    pub(crate) prometheus: prom::Instruments,
}

impl Default for Registry {
    fn default() -> Self {
        let consumers = Arc::default();
        Self {
            publishes: RwLock::default(),
            #[cfg(feature = "metrics")]
            prometheus: prom::Instruments::new(&consumers),
            consumers,
        }
    }
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
            .or_insert_with(|| Arc::new(self.new_publish_counters(event_type)))
            .clone()
    }

    #[cfg(feature = "metrics")]
    fn new_publish_counters(&self, event_type: &'static str) -> PublishCounters {
        let labels = [("event_type", event_type)];
        let p = &self.prometheus;
        PublishCounters {
            published: p.published.get_or_create_owned(&labels),
            failed: p.publish_failed.get_or_create_owned(&labels),
            latency: Latency {
                histogram: p.publish_duration.get_or_create_owned(&labels),
            },
        }
    }

    #[cfg(not(feature = "metrics"))]
    fn new_publish_counters(&self, _event_type: &'static str) -> PublishCounters {
        PublishCounters {
            latency: Latency {},
        }
    }

    /// The durable consumer `name`, created on first use.
    pub(crate) fn consumer(
        &self,
        name: &str,
        stream: &'static str,
        event_type: &'static str,
    ) -> Arc<Durable> {
        self.consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Durable {
                    name: name.to_string(),
                    stream,
                    event_type,
                    #[cfg(feature = "metrics")]
                    latency: Latency {
                        histogram: self.prometheus.handler_duration.get_or_create_owned(&[
                            ("consumer", name.to_string()),
                            ("event_type", event_type.to_string()),
                        ]),
                    },
                    #[cfg(not(feature = "metrics"))]
                    latency: Latency {},
                    running: AtomicUsize::new(0),
                    retired: AtomicBool::new(false),
                    instances: Mutex::default(),
                    finished: ConsumerCounters::default(),
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

    pub(crate) fn consumer_list(&self) -> Vec<Arc<Durable>> {
        list(&self.consumers)
    }
}

fn list(consumers: &Mutex<BTreeMap<String, Arc<Durable>>>) -> Vec<Arc<Durable>> {
    consumers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .cloned()
        .collect()
}

#[cfg(feature = "metrics")]
pub(crate) use prom::JetStreamGauges;

/// The `prometheus-client` side: metric families, and the collectors that read consumer counts
/// and JetStream gauges at scrape time.
#[cfg(feature = "metrics")]
mod prom {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};

    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::MetricType;
    use prometheus_client::metrics::counter::{ConstCounter, Counter};
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    use super::{ConsumerCounters, Durable, REASONS};

    /// Upper bounds of the latency histogram buckets, in seconds (0.5 ms to 10 s).
    const BUCKETS: [f64; 14] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];

    fn latency() -> Histogram {
        Histogram::new(BUCKETS)
    }

    type Labels = [(&'static str, &'static str); 1];
    type ConsumerLabels = [(&'static str, String); 2];

    /// The metrics of one client, and the registry that renders them.
    #[derive(Debug)]
    pub(crate) struct Instruments {
        pub(crate) registry: Registry,
        pub(crate) connected: Gauge,
        pub(crate) published: Family<Labels, Counter>,
        pub(crate) publish_failed: Family<Labels, Counter>,
        pub(crate) publish_duration: Family<Labels, Histogram>,
        pub(crate) handler_duration: Family<ConsumerLabels, Histogram>,
        /// Filled by each scrape before the registry is encoded.
        pub(crate) jetstream: Arc<Mutex<JetStreamGauges>>,
    }

    type Consumers = Arc<Mutex<BTreeMap<String, Arc<Durable>>>>;

    impl Instruments {
        /// The metrics of a client whose durables are `consumers`.
        pub(crate) fn new(consumers: &Consumers) -> Self {
            let mut registry = Registry::default();
            let connected = Gauge::default();
            registry.register(
                "eventhub_connected",
                "Whether the client is connected to NATS",
                connected.clone(),
            );
            let published = Family::default();
            registry.register(
                "eventhub_published",
                "Events published and acknowledged by their stream (duplicates included)",
                published.clone(),
            );
            let publish_failed = Family::default();
            registry.register(
                "eventhub_publish_failed",
                "Publishes that failed (after their retries)",
                publish_failed.clone(),
            );
            let publish_duration = Family::new_with_constructor(latency as fn() -> Histogram);
            registry.register(
                "eventhub_publish_duration_seconds",
                "Time from sending an event to its stream's acknowledgement",
                publish_duration.clone(),
            );
            let handler_duration = Family::new_with_constructor(latency as fn() -> Histogram);
            registry.register(
                "eventhub_handler_duration_seconds",
                "Time a handler ran, whatever its outcome",
                handler_duration.clone(),
            );
            registry.register_collector(Box::new(ConsumerCollector(consumers.clone())));
            let jetstream = Arc::new(Mutex::new(JetStreamGauges::default()));
            registry.register_collector(Box::new(JetStreamCollector(jetstream.clone())));
            Self {
                registry,
                connected,
                published,
                publish_failed,
                publish_duration,
                handler_duration,
                jetstream,
            }
        }
    }

    impl super::Registry {
        /// Every metric in the Prometheus text exposition format 0.0.4 (the JetStream gauges as
        /// the last scrape left them in [`Instruments::jetstream`]).
        pub(crate) fn encode(&self) -> String {
            let mut out = String::with_capacity(4096);
            // Writing to a String cannot fail.
            let _ = prometheus_client::encoding::prometheus_text::encode(
                &mut out,
                &self.prometheus.registry,
            );
            out
        }
    }

    /// Which count of a consumer a counter shows.
    type Count = fn(&ConsumerCounters) -> &AtomicU64;
    /// Which JetStream number of a consumer a gauge shows.
    type Pending = fn(&(String, String, u64, u64)) -> u64;

    /// The consumer counts: every instance of a durable in this process, summed at scrape.
    #[derive(Debug)]
    struct ConsumerCollector(Consumers);

    impl Collector for ConsumerCollector {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let consumers = super::list(&self.0);
            let totals: Vec<(&Durable, ConsumerCounters)> =
                consumers.iter().map(|d| (&**d, d.total())).collect();
            let counters: [(&str, &str, Count); 3] = [
                (
                    "eventhub_handled",
                    "Events handled successfully and acknowledged.",
                    |c| &c.handled,
                ),
                (
                    "eventhub_handle_failed",
                    "Handler runs that failed (error, rejection, panic or timeout).",
                    |c| &c.failed,
                ),
                (
                    "eventhub_retried",
                    "Failed deliveries sent back for a retry.",
                    |c| &c.retried,
                ),
            ];
            for (name, help, get) in counters {
                let mut metric =
                    encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                for (d, total) in &totals {
                    let labels = [("consumer", d.name.as_str()), ("event_type", d.event_type)];
                    ConstCounter::new(get(total).load(Ordering::Relaxed))
                        .encode(metric.encode_family(&labels)?)?;
                }
            }
            let mut metric = encoder.encode_descriptor(
                "eventhub_dead_lettered",
                "Events moved to the dead letters, by reason.",
                None,
                MetricType::Counter,
            )?;
            for (d, total) in &totals {
                for (reason, n) in REASONS.iter().zip(&total.dead_lettered) {
                    let labels = [
                        ("consumer", d.name.as_str()),
                        ("event_type", d.event_type),
                        ("reason", reason),
                    ];
                    ConstCounter::new(n.load(Ordering::Relaxed))
                        .encode(metric.encode_family(&labels)?)?;
                }
            }
            let mut metric = encoder.encode_descriptor(
                "eventhub_consumer_running",
                "Instances of the consumer running in this process.",
                None,
                MetricType::Gauge,
            )?;
            for d in &consumers {
                let running = d.running.load(Ordering::Acquire);
                ConstGauge::new(i64::try_from(running).unwrap_or(i64::MAX))
                    .encode(metric.encode_family(&[("consumer", d.name.as_str())])?)?;
            }
            Ok(())
        }
    }

    /// What a scrape read from JetStream.
    #[derive(Debug, Default)]
    pub(crate) struct JetStreamGauges {
        /// Consumer, stream, pending, ack pending: of the consumers whose info was read.
        pub(crate) consumers: Vec<(String, String, u64, u64)>,
        /// Dead letters per consumer; `None` when the dead-letter stream could not be read.
        pub(crate) dead_letters: Option<Vec<(String, u64)>>,
        /// Every dead letter.
        pub(crate) dlq_depth: Option<u64>,
    }

    #[derive(Debug)]
    struct JetStreamCollector(Arc<Mutex<JetStreamGauges>>);

    fn gauge(n: u64) -> ConstGauge {
        ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
    }

    impl Collector for JetStreamCollector {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let gauges = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            let pending: [(&str, &str, Pending); 2] = [
                (
                    "eventhub_consumer_pending",
                    "Events in the stream not yet delivered to the consumer (from JetStream).",
                    |c| c.2,
                ),
                (
                    "eventhub_consumer_ack_pending",
                    "Events delivered to the consumer and not yet acknowledged (from JetStream).",
                    |c| c.3,
                ),
            ];
            for (name, help, get) in pending {
                let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                for c in &gauges.consumers {
                    let labels = [("consumer", c.0.as_str()), ("stream", c.1.as_str())];
                    gauge(get(c)).encode(metric.encode_family(&labels)?)?;
                }
            }
            if let Some(dead_letters) = &gauges.dead_letters {
                let mut metric = encoder.encode_descriptor(
                    "eventhub_consumer_dlq_depth",
                    "Dead letters of the consumer in the EVENTHUB_DLQ stream.",
                    None,
                    MetricType::Gauge,
                )?;
                for (consumer, n) in dead_letters {
                    gauge(*n).encode(metric.encode_family(&[("consumer", consumer.as_str())])?)?;
                }
            }
            if let Some(depth) = gauges.dlq_depth {
                let metric = encoder.encode_descriptor(
                    "eventhub_dlq_depth",
                    "Dead letters in the EVENTHUB_DLQ stream, of every consumer.",
                    None,
                    MetricType::Gauge,
                )?;
                gauge(depth).encode(metric)?;
            }
            Ok(())
        }
    }
}
