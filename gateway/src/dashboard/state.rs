//! The dashboard's state: signed-in operators' sessions and the group jobs in progress.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};

pub(crate) const COOKIE: &str = "eventhub_session";
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) operator: String,
    pub(crate) csrf: String,
    pub(crate) expires: Instant,
}

/// Signed-in operators, by session id.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // A failing OS random source is not something to serve sessions without.
    getrandom::fill(&mut bytes).expect("the OS random source");
    hex::encode(bytes)
}

impl Sessions {
    pub(crate) fn create(&self, operator: &str) -> (String, Session) {
        let id = random_token();
        let session = Session {
            operator: operator.to_string(),
            csrf: random_token(),
            expires: Instant::now() + SESSION_TTL,
        };
        let mut map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        map.insert(id.clone(), session.clone());
        (id, session)
    }

    pub(crate) fn get(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie(headers, COOKIE)?;
        let map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&id)
            .filter(|s| s.expires > Instant::now())
            .map(|s| (id.clone(), s.clone()))
    }

    pub(crate) fn remove(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A group replay or purge in progress (or done).
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) replay: bool,
    pub(crate) total: usize,
    pub(crate) done: AtomicUsize,
    /// `id: error` of each entry that failed.
    pub(crate) failed: Mutex<Vec<String>>,
    pub(crate) finished: AtomicBool,
}

/// Group jobs by id, kept an hour.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    by_id: Mutex<HashMap<String, (Instant, Arc<Job>)>>,
}

impl Jobs {
    pub(crate) fn insert(&self, id: String, job: Arc<Job>) {
        let mut map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(3600));
        map.insert(id, (Instant::now(), job));
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Job>> {
        let map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).map(|(_, job)| job.clone())
    }
}
