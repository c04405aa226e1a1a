//! The gateway's own counters: requests by route and status, and their total latency.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub(crate) struct HttpMetrics {
    /// (route, status) -> (count, seconds).
    requests: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
}

impl HttpMetrics {
    pub(crate) fn observe(&self, route: String, status: u16, seconds: f64) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry((route, status)).or_default();
        entry.0 += 1;
        entry.1 += seconds;
    }

    /// Prometheus text.
    pub(crate) fn render(&self) -> String {
        let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP eventhub_gateway_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE eventhub_gateway_requests_total counter\n");
        for ((route, status), (count, _)) in map.iter() {
            let _ = writeln!(
                out,
                "eventhub_gateway_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP eventhub_gateway_request_seconds_total Time spent answering, by route and status.\n");
        out.push_str("# TYPE eventhub_gateway_request_seconds_total counter\n");
        for ((route, status), (_, seconds)) in map.iter() {
            let _ = writeln!(
                out,
                "eventhub_gateway_request_seconds_total{{route=\"{route}\",status=\"{status}\"}} {seconds}"
            );
        }
        out
    }
}
