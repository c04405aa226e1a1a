//! The gateway's own counters: requests by route and status, and their total latency.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::server::Shared;

#[derive(Debug, Default)]
pub(crate) struct HttpMetrics {
    /// (route, status) -> (count, seconds).
    requests: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
}

impl HttpMetrics {
    fn observe(&self, route: String, status: u16, seconds: f64) {
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

pub(crate) async fn record(State(state): State<Shared>, request: Request, next: Next) -> Response {
    // The matched route, never the raw path: a client cannot grow the label set.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(
        route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}
