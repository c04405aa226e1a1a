//! Health: the connection, the streams and the consumers of one client, checked on demand
//! ([`Client::health`]); serve it from your own HTTP endpoint (the gateway's `/health` does).

use std::sync::atomic::Ordering;

use futures::TryStreamExt;

use crate::client::Client;
use crate::topology::{ADVISORY_STREAM, DLQ_STREAM};

/// The info of consumer `name` on `stream`, if the server answers.
pub(crate) async fn consumer_info(
    client: &Client,
    stream: &str,
    name: &str,
) -> Option<async_nats::jetstream::consumer::Info> {
    let stream = client.jetstream().get_stream_no_info(stream).await.ok()?;
    stream.consumer_info(name).await.ok()
}

/// What [`Client::health`] checks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthOptions {
    /// A consumer whose lag (pending plus ack pending) is above this is unhealthy. Default 1000.
    pub max_lag: u64,
    /// Streams that must exist. Default (`None`): the streams of the consumers this client
    /// started, plus `EVENTHUB_DLQ` and `EVENTHUB_ADVISORIES` (pass a catalog's stream names to
    /// check them all).
    pub streams: Option<Vec<String>>,
}

impl HealthOptions {
    /// A consumer lagging by more than `max_lag` events is unhealthy.
    pub fn max_lag(mut self, max_lag: u64) -> Self {
        self.max_lag = max_lag;
        self
    }

    /// These streams must exist.
    pub fn streams<I, S>(mut self, streams: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.streams = Some(streams.into_iter().map(Into::into).collect());
        self
    }
}

impl Default for HealthOptions {
    fn default() -> Self {
        Self {
            max_lag: 1000,
            streams: None,
        }
    }
}

/// Whether a stream exists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamHealth {
    /// The stream.
    pub name: String,
    /// Whether the server has it.
    pub present: bool,
}

/// The state of a consumer this client runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsumerHealth {
    /// The durable's name.
    pub name: String,
    /// Its stream.
    pub stream: String,
    /// An instance is running in this process and the server has the durable.
    pub alive: bool,
    /// Events not yet delivered (0 when unknown).
    pub pending: u64,
    /// Events delivered and not acknowledged (0 when unknown).
    pub ack_pending: u64,
    /// Pending plus ack pending is above [`HealthOptions::max_lag`].
    pub lagging: bool,
}

/// The health of a client, from [`Client::health`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    /// Connected to NATS.
    pub connected: bool,
    /// The streams checked.
    pub streams: Vec<StreamHealth>,
    /// The consumers this client started (and did not shut down on purpose).
    pub consumers: Vec<ConsumerHealth>,
    /// Connected, every stream present, every consumer alive and none lagging.
    pub healthy: bool,
}

impl Client {
    /// Checks the connection, the streams and the consumers this client started. Never fails:
    /// what cannot be checked counts as unhealthy.
    pub async fn health(&self, options: &HealthOptions) -> Health {
        let connected = self.is_connected();
        let names: Vec<String> = match &options.streams {
            Some(names) => names.clone(),
            // The streams this client's consumers read, and eventhub's own.
            None => {
                let mut names: Vec<String> = self.registry().consumer_streams();
                names.extend([DLQ_STREAM.to_string(), ADVISORY_STREAM.to_string()]);
                names.sort();
                names.dedup();
                names
            }
        };
        // One listing request, not one per stream: a health check should stay cheap and, when
        // the server just went away, wait for one request timeout at most.
        let existing: std::collections::HashSet<String> = if connected {
            self.jetstream()
                .stream_names()
                .try_collect()
                .await
                .unwrap_or_default()
        } else {
            Default::default()
        };
        let streams: Vec<StreamHealth> = names
            .into_iter()
            .map(|name| StreamHealth {
                present: existing.contains(&name),
                name,
            })
            .collect();
        let mut consumers = Vec::new();
        for c in self.registry().consumer_list() {
            let running = c.running.load(Ordering::Acquire) > 0;
            if !running && c.retired.load(Ordering::Acquire) {
                continue;
            }
            let info = if self.is_connected() {
                consumer_info(self, c.stream, &c.name).await
            } else {
                None
            };
            let (pending, ack_pending) = info
                .as_ref()
                .map_or((0, 0), |i| (i.num_pending, i.num_ack_pending as u64));
            consumers.push(ConsumerHealth {
                name: c.name.clone(),
                stream: c.stream.to_string(),
                alive: running && info.is_some(),
                pending,
                ack_pending,
                lagging: pending + ack_pending > options.max_lag,
            });
        }
        let connected = connected && self.is_connected();
        let healthy = connected
            && streams.iter().all(|s| s.present)
            && consumers.iter().all(|c| c.alive && !c.lagging);
        Health {
            connected,
            streams,
            consumers,
            healthy,
        }
    }
}
