//! Metrics in the Prometheus text format (feature `metrics`, on by default).
//!
//! A [`Client`] counts what its publishers and consumers do in a
//! [`prometheus-client`](prometheus_client) registry (atomics; one map lookup per publish, none
//! per handled event: a consumer instance holds its own counters, summed per durable at scrape
//! time). [`Metrics::render`] writes them in the Prometheus text exposition format 0.0.4
//! ([`CONTENT_TYPE`]), together with gauges a collector reads from JetStream at scrape time
//! (consumer pending and ack pending, dead-letter depth).
//!
//! The SDK serves no HTTP: serve `render()` from the service's own endpoint (the gateway's
//! `/metrics` does; `sdk/examples/metrics_endpoint.rs` is a 30-line axum one).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `eventhub_connected` | gauge | |
//! | `eventhub_published_total` | counter | `event_type` |
//! | `eventhub_publish_failed_total` | counter | `event_type` |
//! | `eventhub_publish_duration_seconds` | histogram | `event_type` |
//! | `eventhub_handler_duration_seconds` | histogram | `consumer`, `event_type` |
//! | `eventhub_handled_total` | counter | `consumer`, `event_type` |
//! | `eventhub_handle_failed_total` | counter | `consumer`, `event_type` |
//! | `eventhub_retried_total` | counter | `consumer`, `event_type` |
//! | `eventhub_dead_lettered_total` | counter | `consumer`, `event_type`, `reason` |
//! | `eventhub_consumer_running` | gauge | `consumer` |
//! | `eventhub_consumer_pending` | gauge | `consumer`, `stream` |
//! | `eventhub_consumer_ack_pending` | gauge | `consumer`, `stream` |
//! | `eventhub_consumer_dlq_depth` | gauge | `consumer` |
//! | `eventhub_dlq_depth` | gauge | |

use futures::TryStreamExt;

use crate::client::Client;
use crate::counters::JetStreamGauges;
use crate::health::consumer_info;
use crate::topology::{DLQ_PREFIX, DLQ_STREAM};

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The metrics of one [`Client`]: what its publishers and consumers did, and gauges read from
/// JetStream. From [`Client::metrics`].
#[derive(Debug, Clone)]
pub struct Metrics {
    client: Client,
}

impl Metrics {
    /// Every metric in the Prometheus text exposition format 0.0.4. Gauges read from JetStream
    /// (pending, ack pending, dead-letter depth) are left out while the server cannot answer.
    pub async fn render(&self) -> String {
        let registry = self.client.registry();
        let gauges = self.read_jetstream().await;
        let instruments = &registry.prometheus;
        // Concurrent scrapes each encode what they read: hold the gauges' lock while encoding.
        let mut slot = instruments
            .jetstream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = gauges;
        drop(slot);
        instruments
            .connected
            .set(i64::from(self.client.is_connected()));
        registry.encode()
    }

    /// The gauges a scrape reads from JetStream.
    async fn read_jetstream(&self) -> JetStreamGauges {
        let client = &self.client;
        let consumers = client.registry().consumer_list();
        let mut gauges = JetStreamGauges::default();
        if !client.is_connected() {
            return gauges;
        }
        for c in &consumers {
            if let Some(info) = consumer_info(client, c.stream, &c.name).await {
                gauges.consumers.push((
                    c.name.clone(),
                    c.stream.to_string(),
                    info.num_pending,
                    info.num_ack_pending as u64,
                ));
            }
        }
        let Ok(mut dlq) = client.jetstream().get_stream(DLQ_STREAM).await else {
            return gauges;
        };
        let mut dead_letters = Vec::new();
        for c in &consumers {
            let filter = format!("{DLQ_PREFIX}.{}.>", c.name);
            if let Ok(subjects) = dlq.info_with_subjects(&filter).await
                && let Ok(depth) = subjects
                    .try_fold(0u64, |n, (_, count)| async move { Ok(n + count as u64) })
                    .await
            {
                dead_letters.push((c.name.clone(), depth));
            }
        }
        gauges.dead_letters = Some(dead_letters);
        gauges.dlq_depth = dlq.info().await.ok().map(|info| info.state.messages);
        gauges
    }
}

impl Client {
    /// This client's metrics (shared by its publishers and consumers).
    pub fn metrics(&self) -> Metrics {
        Metrics {
            client: self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::counters::{ConsumerCounters, Registry};

    /// The value of one series (`name{labels}`) in a text exposition.
    fn sample(text: &str, series: &str) -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
            .to_string()
    }

    #[test]
    fn publish_counters_render_with_cumulative_latency_buckets() {
        let registry = Registry::default();
        let created = registry.publishes("user.created");
        assert!(Arc::ptr_eq(&created, &registry.publishes("user.created")));
        created.published();
        created.published();
        registry.publishes("custom.thing").failed();
        for d in [300, 3_000, 20_000_000] {
            created.latency.observe(Duration::from_micros(d));
        }
        let text = registry.encode();
        let ty = "event_type=\"user.created\"";
        assert_eq!(
            sample(&text, &format!("eventhub_published_total{{{ty}}}")),
            "2"
        );
        let failed = "eventhub_publish_failed_total{event_type=\"custom.thing\"}";
        assert_eq!(sample(&text, failed), "1");
        let bucket = |le: &str| {
            sample(
                &text,
                &format!("eventhub_publish_duration_seconds_bucket{{{ty},le=\"{le}\"}}"),
            )
        };
        assert_eq!(bucket("0.0005"), "1");
        assert_eq!(bucket("0.005"), "2");
        assert_eq!(bucket("10"), "2");
        assert_eq!(bucket("+Inf"), "3");
        let count = format!("eventhub_publish_duration_seconds_count{{{ty}}}");
        assert_eq!(sample(&text, &count), "3");
        let sum: f64 = sample(
            &text,
            &format!("eventhub_publish_duration_seconds_sum{{{ty}}}"),
        )
        .parse()
        .unwrap();
        assert!((sum - 20.0033).abs() < 1e-9, "{sum}");
        assert!(
            text.contains("# TYPE eventhub_published_total counter\n"),
            "{text}"
        );
    }

    #[test]
    fn consumer_counts_sum_every_instance_including_ended_ones() {
        let registry = Registry::default();
        let durable = registry.consumer("p__user_created", "IDENTITY", "user.created");
        // The same durable is one entry, however many instances run.
        assert!(Arc::ptr_eq(
            &durable,
            &registry.consumer("p__user_created", "IDENTITY", "user.created")
        ));
        let (first, first_running) = durable.start();
        let (second, second_running) = durable.start();
        ConsumerCounters::bump(&first.handled);
        ConsumerCounters::bump(&second.handled);
        first.dead_lettered("rejected");
        second.dead_lettered("max-deliver");
        second.dead_lettered("something-new");
        // One set feeds both: the instance's stats and the durable's metrics.
        assert_eq!(
            (second.snapshot().handled, second.snapshot().dead_lettered),
            (1, 2)
        );
        let labels = "consumer=\"p__user_created\",event_type=\"user.created\"";
        let text = registry.encode();
        assert_eq!(
            sample(&text, &format!("eventhub_handled_total{{{labels}}}")),
            "2"
        );
        assert_eq!(
            sample(
                &text,
                "eventhub_consumer_running{consumer=\"p__user_created\"}"
            ),
            "2"
        );
        // An ended instance's counts stay (counters never go down).
        first_running.finish();
        ConsumerCounters::bump(&second.handled);
        let text = registry.encode();
        assert_eq!(
            sample(&text, &format!("eventhub_handled_total{{{labels}}}")),
            "3"
        );
        assert_eq!(
            sample(
                &text,
                "eventhub_consumer_running{consumer=\"p__user_created\"}"
            ),
            "1"
        );
        for (reason, n) in [
            ("rejected", "1"),
            ("poison", "0"),
            ("max-deliver", "1"),
            ("other", "1"),
        ] {
            let series = format!("eventhub_dead_lettered_total{{{labels},reason=\"{reason}\"}}");
            assert_eq!(sample(&text, &series), n, "{reason}");
        }
        drop(second_running);
        assert!(!durable.retired.load(std::sync::atomic::Ordering::Acquire));
    }

    #[test]
    fn label_values_are_escaped() {
        let registry = Registry::default();
        registry.consumer("a\"b\\c\nd", "S", "t");
        let text = registry.encode();
        assert!(
            text.contains("eventhub_consumer_running{consumer=\"a\\\"b\\\\c\\nd\"} 0\n"),
            "{text}"
        );
    }
}
