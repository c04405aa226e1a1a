//! Accounting: which event ids the server acknowledged, which a handler ran for and how often.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eventhub::Client;
use eventhub::PublishOptions;
use eventhub::wire::headers::new_event_id;
use eventhub_catalog::events::user;
use tokio::sync::Notify;

/// What one scenario counted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    pub(crate) scenario: &'static str,
    /// Events the server acknowledged (stored).
    pub(crate) acknowledged: usize,
    /// Distinct acknowledged events a handler completed.
    pub(crate) handled: usize,
    /// Extra handler runs for an id already handled (at-least-once lets them through when a
    /// process dies between handling and recording).
    pub(crate) duplicates_seen: u64,
    /// Redeliveries the idempotency guard acked without running the handler (a lower bound
    /// where consumers were killed before reporting).
    pub(crate) duplicates_removed: u64,
    /// Acknowledged but never handled. Must be 0.
    pub(crate) lost: usize,
    /// Dead-letter entries the scenario produced.
    pub(crate) dlq: usize,
    pub(crate) duration: Duration,
    /// What else happened (errors seen, memory, redeliveries).
    pub(crate) notes: String,
    /// A scenario's own table, printed after the summary (empty for most).
    pub(crate) table: String,
}

/// Shared bookkeeping of one scenario.
#[derive(Default)]
pub(crate) struct Ledger {
    acked: Mutex<HashSet<String>>,
    handled: Mutex<HashMap<String, u32>>,
    changed: Notify,
    pub(crate) publish_errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    pub(crate) removed: AtomicU64,
}

impl Ledger {
    pub(crate) fn acked(&self, id: String) {
        self.acked.lock().unwrap().insert(id);
        self.changed.notify_waiters();
    }

    pub(crate) fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Records a handler run; true if it is the first for this id.
    pub(crate) fn handled(&self, id: &str) -> bool {
        let mut h = self.handled.lock().unwrap();
        let n = h.entry(id.to_string()).or_insert(0);
        *n += 1;
        let first = *n == 1;
        drop(h);
        self.changed.notify_waiters();
        first
    }

    pub(crate) fn publish_error(&self, e: &dyn std::fmt::Display) {
        self.publish_errors.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap()
            .get_or_insert_with(|| e.to_string());
    }

    pub(crate) fn first_error(&self) -> Option<String> {
        self.first_error.lock().unwrap().clone()
    }

    fn missing(&self) -> usize {
        let acked = self.acked.lock().unwrap();
        let handled = self.handled.lock().unwrap();
        acked.iter().filter(|id| !handled.contains_key(*id)).count()
    }

    /// Waits until every acknowledged event of `expected` was handled, or `limit` passes.
    pub(crate) async fn wait_handled(&self, expected: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if self.acked_count() >= expected && self.missing() == 0 {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                return self.acked_count() >= expected && self.missing() == 0;
            }
        }
    }

    pub(crate) fn row(&self, scenario: &'static str, started: Instant) -> Row {
        let acked = self.acked.lock().unwrap();
        let handled = self.handled.lock().unwrap();
        let lost = acked.iter().filter(|id| !handled.contains_key(*id)).count();
        Row {
            scenario,
            acknowledged: acked.len(),
            handled: acked.iter().filter(|id| handled.contains_key(*id)).count(),
            duplicates_seen: handled.values().map(|n| u64::from(n - 1)).sum(),
            duplicates_removed: self.removed.load(Ordering::Relaxed),
            lost,
            dlq: 0,
            duration: started.elapsed(),
            notes: String::new(),
            table: String::new(),
        }
    }
}

/// Event number `i` of a run.
pub(crate) fn event(run: &str, i: usize) -> user::CreatedV2 {
    serde_json::from_value(serde_json::json!({
        "user_id": uuid::Uuid::now_v7(),
        "email": format!("{run}-{i}@example.com"),
        "locale": "en-GB",
        "created_at": "2026-11-23T10:00:00Z",
    }))
    .expect("a valid user.created v2")
}

/// Publishes `n` events one after the other. A publish that fails (after the SDK's own retries)
/// is retried with the same id until the server acknowledges it: the producer never gives up an
/// event, and the id keeps a retry from storing it twice. `progress(i)` runs after event `i`.
pub(crate) async fn publish_n(
    client: &Client,
    ledger: &Ledger,
    run: &str,
    n: usize,
    mut progress: impl FnMut(usize),
) {
    let publisher = client.publisher();
    for i in 0..n {
        let ev = event(run, i);
        let id = new_event_id();
        loop {
            let options = PublishOptions::default().id(id.clone());
            match publisher.publish_with(&ev, options).await {
                Ok(_) => {
                    ledger.acked(id);
                    break;
                }
                Err(e) => {
                    ledger.publish_error(&e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        progress(i);
    }
}
