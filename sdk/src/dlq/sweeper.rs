//! The sweeper: dead-letters events whose consumer stopped during their last delivery.
//!
//! When a handler fails on its last allowed delivery, the consumer itself writes the dead
//! letter. When the process dies (or hangs past the ack wait) during that delivery, nobody does:
//! JetStream stops delivering the event and only emits the fire-and-forget advisory
//! `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`. Provisioning captures those
//! advisories in [`ADVISORY_STREAM`]; the sweeper reads them with a durable consumer, fetches the
//! event by its stream sequence and writes the dead letter (reason `max-deliver`) with the same
//! de-duplication id the consumer would have used. Advisories wait in their stream while no
//! sweeper runs, so none is missed; several sweepers share the durable.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::store::{DeadLetterReason, Failed, read_original, write};
use crate::client::Client;
use crate::error::{DeadLetterError, DeadLetterErrorKind};
use crate::topology::ADVISORY_STREAM;

/// The sweeper's durable consumer on [`ADVISORY_STREAM`].
pub const SWEEPER_DURABLE: &str = "eventhub_sweeper";

/// Sweeps max-deliveries advisories into the dead letters. Build with [`Sweeper::new`], start
/// with [`Sweeper::spawn`]. Run one in every service (they share the work) or in one
/// operations process.
#[derive(Debug, Clone)]
pub struct Sweeper {
    client: Client,
    streams: Option<HashSet<String>>,
}

/// Counts of what a sweeper did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweeperStats {
    /// Advisories read.
    pub advisories: u64,
    /// Events moved to the dead letters.
    pub swept: u64,
    /// Advisories about streams the sweeper does not watch.
    pub ignored: u64,
    /// Events already removed from their stream (by its limits) before they could be swept.
    pub gone: u64,
}

#[derive(Debug, Default)]
struct Counters {
    advisories: AtomicU64,
    swept: AtomicU64,
    ignored: AtomicU64,
    gone: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> SweeperStats {
        SweeperStats {
            advisories: self.advisories.load(Ordering::Relaxed),
            swept: self.swept.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
            gone: self.gone.load(Ordering::Relaxed),
        }
    }
}

/// A running sweeper.
#[derive(Debug)]
pub struct SweeperHandle {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl SweeperHandle {
    /// What it did so far.
    pub fn stats(&self) -> SweeperStats {
        self.counters.snapshot()
    }

    /// Stops it; an advisory being swept is finished first.
    pub async fn shutdown(self) -> SweeperStats {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        self.counters.snapshot()
    }
}

/// The advisory JetStream publishes when a message reaches its consumer's max deliveries.
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream: String,
    consumer: String,
    stream_seq: u64,
    deliveries: u64,
}

impl Sweeper {
    /// A sweeper for every stream: any durable's exhausted event is dead-lettered.
    pub fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
            streams: None,
        }
    }

    /// Sweeps only these streams (advisories of others are acknowledged and left alone).
    pub fn streams<I, S>(mut self, streams: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.streams = Some(streams.into_iter().map(Into::into).collect());
        self
    }

    /// Creates the sweeper's durable (if needed) and starts sweeping in the background.
    pub async fn spawn(self) -> Result<SweeperHandle, DeadLetterError> {
        let stream = self
            .client
            .jetstream()
            .get_stream(ADVISORY_STREAM)
            .await
            .map_err(|e| {
                DeadLetterError::with_source(
                    DeadLetterErrorKind::Unreachable,
                    format!(
                        "cannot open {ADVISORY_STREAM} (provision the topology first: \
                         Client::provision or `eventhub topology apply`)"
                    ),
                    e,
                )
            })?;
        let pull: PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(SWEEPER_DURABLE.to_string()),
                description: Some("eventhub sweeper: max-deliveries advisories".to_string()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                DeadLetterError::with_source(
                    DeadLetterErrorKind::Unreachable,
                    format!("cannot create the sweeper's consumer on {ADVISORY_STREAM}"),
                    e,
                )
            })?;
        let (tx, rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(self.run(pull, rx, counters.clone()));
        Ok(SweeperHandle {
            shutdown: tx,
            task,
            counters,
        })
    }

    async fn run(
        self,
        pull: PullConsumer,
        mut shutdown: watch::Receiver<bool>,
        counters: Arc<Counters>,
    ) {
        'outer: loop {
            let mut messages = match pull.messages().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("eventhub sweeper: cannot read advisories ({e}); retrying");
                    tokio::select! {
                        () = stopped(&mut shutdown) => break 'outer,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue 'outer,
                    }
                }
            };
            loop {
                let next = tokio::select! {
                    () = stopped(&mut shutdown) => break 'outer,
                    next = messages.next() => next,
                };
                match next {
                    None => continue 'outer,
                    Some(Err(e)) => {
                        tracing::debug!("eventhub sweeper: advisory stream interrupted: {e}");
                        continue 'outer;
                    }
                    Some(Ok(message)) => {
                        counters.advisories.fetch_add(1, Ordering::Relaxed);
                        let ack = self.sweep(&message, &counters).await;
                        let _ = message.ack_with(ack).await;
                    }
                }
            }
        }
    }

    /// Handles one advisory; returns how to acknowledge it.
    async fn sweep(&self, message: &jetstream::Message, counters: &Counters) -> AckKind {
        let advisory: MaxDeliveries = match serde_json::from_slice(&message.payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(
                    "eventhub sweeper: unreadable advisory on {}: {e}",
                    message.subject
                );
                counters.ignored.fetch_add(1, Ordering::Relaxed);
                return AckKind::Ack;
            }
        };
        if self
            .streams
            .as_ref()
            .is_some_and(|s| !s.contains(&advisory.stream))
        {
            counters.ignored.fetch_add(1, Ordering::Relaxed);
            return AckKind::Ack;
        }
        // A failure that persists (a dead-letter write the server refuses) is retried less and
        // less often, not every second forever; `eventhub health` shows it meanwhile.
        let attempt = message.info().map_or(1, |i| i.delivered.max(1));
        let retry = AckKind::Nak(Some(Duration::from_secs(
            1u64 << (attempt - 1).clamp(0, 6) as u32,
        )));
        let original =
            match read_original(&self.client, &advisory.stream, advisory.stream_seq).await {
                Ok(Some(m)) => m,
                Ok(None) => {
                    tracing::error!(
                        "eventhub sweeper: {} #{} exhausted its deliveries to {} but is no longer \
                     in the stream (removed by its limits); it cannot be dead-lettered",
                        advisory.stream,
                        advisory.stream_seq,
                        advisory.consumer
                    );
                    counters.gone.fetch_add(1, Ordering::Relaxed);
                    return AckKind::Ack;
                }
                Err(e) => {
                    tracing::warn!(
                        "eventhub sweeper: cannot read {} #{}: {e}",
                        advisory.stream,
                        advisory.stream_seq
                    );
                    return retry;
                }
            };
        let failed = Failed {
            subject: original.subject.as_str(),
            headers: Some(&original.headers),
            payload: original.payload.clone(),
            stream: &advisory.stream,
            sequence: advisory.stream_seq,
            consumer: &advisory.consumer,
            deliveries: advisory.deliveries,
        };
        let error = format!(
            "delivered {} times without an ack: the consumer stopped or timed out during its \
             last attempt (found by the sweeper)",
            advisory.deliveries
        );
        match write(&self.client, &failed, &DeadLetterReason::MaxDeliver, &error).await {
            Ok(id) => {
                tracing::error!(
                    dead_letter = id,
                    "eventhub sweeper: {} #{} ({}) of consumer {} dead-lettered: {error}",
                    advisory.stream,
                    advisory.stream_seq,
                    original.subject,
                    advisory.consumer
                );
                counters.swept.fetch_add(1, Ordering::Relaxed);
                AckKind::Ack
            }
            Err(e) => {
                tracing::error!("eventhub sweeper: {e}; retrying (attempt {attempt})");
                retry
            }
        }
    }
}

/// Resolves once a shutdown is requested (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
