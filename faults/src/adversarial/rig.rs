//! The parties the inputs meet: a family consumer, an idempotent consumer in two instances, a
//! consumer that dies during every delivery, the sweeper, and a reader of every dead letter as
//! it is stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::{self};
use eventhub::Client;
use eventhub::ConnectOptions;
use eventhub::Consumable;
use eventhub::ConsumerHandle;
use eventhub::ConsumerOptions;
use eventhub::Envelope;
use eventhub::Sweeper;
use eventhub::consume::ConsumerStats;
use eventhub::dlq::{SWEEPER_DURABLE, SweeperHandle, SweeperStats};
use eventhub::topology::ADVISORY_STREAM;
use eventhub::topology::DLQ_STREAM;
use eventhub::wire::headers;
use eventhub_catalog::events::user;
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::oracle::STREAM;

/// The family consumer (not idempotent).
pub(crate) const PLAIN: &str = "profile__user_created";
/// The idempotent consumer (two instances share it).
pub(crate) const IDEMPOTENT: &str = "billing__user_created";
/// A durable whose process dies during every delivery (never acks, one delivery allowed):
/// each of its messages reaches the sweeper.
pub(crate) const STALLED: &str = "crashing__user_created";

/// What one consumer's handler ran for.
#[derive(Default)]
pub(crate) struct Runs {
    by_sequence: Mutex<HashMap<u64, u32>>,
    by_id: Mutex<HashMap<String, u32>>,
}

impl Runs {
    fn record(&self, sequence: u64, id: &str) {
        *self
            .by_sequence
            .lock()
            .unwrap()
            .entry(sequence)
            .or_default() += 1;
        *self
            .by_id
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default() += 1;
    }

    /// Handler runs for stream sequence `sequence`.
    pub(crate) fn at(&self, sequence: u64) -> u32 {
        let runs = self.by_sequence.lock().unwrap();
        runs.get(&sequence).copied().unwrap_or(0)
    }

    /// Handler runs for event id `id`, whatever message carried it.
    pub(crate) fn of(&self, id: &str) -> u32 {
        self.by_id.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    /// Handler runs beyond the first, per message.
    pub(crate) fn repeated(&self) -> u64 {
        let runs = self.by_sequence.lock().unwrap();
        runs.values().map(|n| u64::from(n - 1)).sum()
    }
}

/// A dead letter as stored (read from the raw stream, before any reader interprets it).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) reason: String,
    pub(crate) error: String,
    /// The original's headers did not fit and were left out.
    pub(crate) omitted: bool,
}

/// Dead letters by (consumer, original stream sequence).
pub(crate) type Entries = HashMap<(String, u64), Vec<Entry>>;

/// The counts of the consumers and the sweeper when they stopped.
pub(crate) struct Stats {
    pub(crate) plain: ConsumerStats,
    pub(crate) idempotent: [ConsumerStats; 2],
    pub(crate) sweeper: SweeperStats,
}

/// Everything running against the server while inputs arrive.
pub(crate) struct Rig {
    pub(crate) plain_runs: Arc<Runs>,
    pub(crate) idempotent_runs: Arc<Runs>,
    entries: Arc<Mutex<Entries>>,
    plain: ConsumerHandle,
    idempotent: [ConsumerHandle; 2],
    sweeper: SweeperHandle,
    crasher: JoinHandle<()>,
    watcher: JoinHandle<()>,
    js: jetstream::Context,
}

async fn connect(url: &str, service: &str) -> anyhow::Result<Client> {
    Client::connect(ConnectOptions::new(service).url(url))
        .await
        .with_context(|| format!("connect {service} to {url}"))
}

fn options() -> ConsumerOptions {
    ConsumerOptions::default()
        .ack_wait(Duration::from_secs(10))
        .fetch_expires(Duration::from_millis(500))
        .max_deliver(20)
        .backoff(eventhub::Backoff::schedule([Duration::from_millis(100)]))
}

/// A family consumer recording every handler run.
async fn family(
    client: &Client,
    options: ConsumerOptions,
    runs: &Arc<Runs>,
) -> anyhow::Result<ConsumerHandle> {
    let runs = runs.clone();
    Ok(client.consumer::<user::Created>(options).await?.spawn(
        move |env: Envelope<user::Created>| {
            runs.record(env.meta().sequence, &env.meta().id);
            async { Ok(()) }
        },
    ))
}

/// The durable whose every delivery dies: it pulls and never acknowledges, with one delivery
/// allowed, so the server gives each message up and announces it to the sweeper.
async fn crashing(js: &jetstream::Context) -> anyhow::Result<JoinHandle<()>> {
    let consumer: PullConsumer = js
        .get_stream(STREAM)
        .await?
        .create_consumer(pull::Config {
            durable_name: Some(STALLED.into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_millis(500),
            max_deliver: 1,
            filter_subjects: user::Created::FAMILY
                .subjects
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..Default::default()
        })
        .await?;
    Ok(tokio::spawn(async move {
        loop {
            let batch = consumer
                .fetch()
                .max_messages(512)
                .expires(Duration::from_millis(500))
                .messages()
                .await;
            match batch {
                Ok(mut messages) => while let Some(_dropped) = messages.next().await {},
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }))
}

/// Reads every dead letter as it is stored.
async fn watch_dead_letters(
    js: &jetstream::Context,
    entries: Arc<Mutex<Entries>>,
) -> anyhow::Result<JoinHandle<()>> {
    let consumer = js
        .get_stream(DLQ_STREAM)
        .await?
        .create_consumer(pull::OrderedConfig::default())
        .await?;
    let mut messages = consumer.messages().await?;
    Ok(tokio::spawn(async move {
        while let Some(Ok(m)) = messages.next().await {
            let get = |name: &str| {
                m.headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default()
            };
            let key = (
                get(headers::DLQ_CONSUMER),
                get(headers::DLQ_SEQUENCE).parse().unwrap_or(0),
            );
            let entry = Entry {
                reason: get(headers::DLQ_REASON),
                error: get(headers::DLQ_ERROR),
                omitted: !get("eventhub-dlq-headers-omitted").is_empty(),
            };
            entries.lock().unwrap().entry(key).or_default().push(entry);
        }
    }))
}

impl Rig {
    /// Starts every party against the server at `url` (topology provisioned); `js` is a plain
    /// async-nats connection's JetStream context.
    pub(crate) async fn start(url: &str, js: &jetstream::Context) -> anyhow::Result<Rig> {
        let plain_runs = Arc::new(Runs::default());
        let idempotent_runs = Arc::new(Runs::default());
        let plain = family(&connect(url, "profile").await?, options(), &plain_runs).await?;
        let idempotent_options = || {
            options()
                .idempotent(Duration::from_secs(3600))
                .concurrency(8)
        };
        let mut idempotent = Vec::new();
        for _ in 0..2 {
            let client = connect(url, "billing").await?;
            idempotent.push(family(&client, idempotent_options(), &idempotent_runs).await?);
        }
        let idempotent: [ConsumerHandle; 2] = idempotent
            .try_into()
            .map_err(|_| anyhow::anyhow!("two instances"))?;
        let crasher = crashing(js).await?;
        let sweeper = Sweeper::new(&connect(url, "ops").await?).spawn().await?;
        let entries = Arc::new(Mutex::new(Entries::new()));
        let watcher = watch_dead_letters(js, entries.clone()).await?;
        Ok(Rig {
            plain_runs,
            idempotent_runs,
            entries,
            plain,
            idempotent,
            sweeper,
            crasher,
            watcher,
            js: js.clone(),
        })
    }

    /// Whether `consumer` dead-lettered the message at `sequence`.
    pub(crate) fn dead_lettered(&self, consumer: &str, sequence: u64) -> bool {
        let entries = self.entries.lock().unwrap();
        entries.contains_key(&(consumer.to_string(), sequence))
    }

    /// What each durable still holds: messages pending or delivered and unacknowledged.
    pub(crate) async fn in_flight(&self) -> anyhow::Result<Vec<String>> {
        let mut left = Vec::new();
        for (stream, name) in [
            (STREAM, PLAIN),
            (STREAM, IDEMPOTENT),
            (STREAM, STALLED),
            (ADVISORY_STREAM, SWEEPER_DURABLE),
        ] {
            let mut c: PullConsumer = self
                .js
                .get_stream(stream)
                .await?
                .get_consumer(name)
                .await
                .map_err(|e| anyhow::anyhow!("consumer {name}: {e}"))?;
            let info = c.info().await?;
            if info.num_pending > 0 || info.num_ack_pending > 0 {
                left.push(format!(
                    "{name}: {} pending, {} unacknowledged",
                    info.num_pending, info.num_ack_pending
                ));
            }
        }
        Ok(left)
    }

    /// Stops everything; the counts, and every dead letter stored.
    pub(crate) async fn stop(self) -> (Stats, Entries) {
        let [a, b] = self.idempotent;
        let stats = Stats {
            plain: self.plain.shutdown().await,
            idempotent: [a.shutdown().await, b.shutdown().await],
            sweeper: self.sweeper.shutdown().await,
        };
        self.crasher.abort();
        self.watcher.abort();
        let entries = self.entries.lock().unwrap().clone();
        (stats, entries)
    }
}
