//! The gateway's own instruments on `prometheus-client`: requests by route and status with
//! their durations, and the live feeds' gauges. Rendered after the runtime's metrics on
//! `/metrics`, in the same Prometheus text format.

use std::borrow::Cow;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A request's matched route (never the raw path: a client cannot grow the label set) and
/// status.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    /// Borrowed for the routes every request names (no allocation per request), owned for
    /// the others.
    route: Cow<'static, str>,
    status: u16,
}

fn duration_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

#[derive(Debug)]
pub(crate) struct HttpMetrics {
    registry: Registry,
    requests: Family<Request, Counter>,
    durations: Family<Request, Histogram, fn() -> Histogram>,
    /// Live feeds running (one per followed stream); set at scrape.
    pub(crate) feeds: Gauge,
    /// WebSocket connections reading the live feeds, per stream; set at scrape.
    pub(crate) members: Gauge,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Request, Counter>::default();
        let durations = Family::<Request, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let (feeds, members) = (Gauge::default(), Gauge::default());
        registry.register(
            "eventhub_gateway_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "eventhub_gateway_request_duration_seconds",
            "Time spent answering HTTP requests, by route and status",
            durations.clone(),
        );
        registry.register(
            "eventhub_gateway_stream_feeds",
            "Live feeds running (one per followed stream)",
            feeds.clone(),
        );
        registry.register(
            "eventhub_gateway_stream_members",
            "WebSocket connections reading the live feeds, per stream",
            members.clone(),
        );
        HttpMetrics {
            registry,
            requests,
            durations,
            feeds,
            members,
        }
    }
}

impl HttpMetrics {
    pub(crate) fn observe(&self, route: Cow<'static, str>, status: u16, seconds: f64) {
        let labels = Request { route, status };
        self.durations.get_or_create(&labels).observe(seconds);
        self.requests.get_or_create(&labels).inc();
    }

    /// Prometheus text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_times_requests_by_route_and_status() {
        let m = HttpMetrics::default();
        m.observe("/v1/events".into(), 202, 0.002);
        m.observe("/v1/events".into(), 202, 0.003);
        m.observe("/v1/events".into(), 400, 0.001);
        m.feeds.set(2);
        let text = m.render();
        for line in [
            "eventhub_gateway_requests_total{route=\"/v1/events\",status=\"202\"} 2",
            "eventhub_gateway_requests_total{route=\"/v1/events\",status=\"400\"} 1",
            "eventhub_gateway_request_duration_seconds_count{route=\"/v1/events\",status=\"202\"} 2",
            "eventhub_gateway_stream_feeds 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
