//! Every call the bench makes into eventhub, in one place, so that a change of the SDK's API
//! is adapted here: connecting, provisioning, publishing, consuming, and the bench's own event
//! types (implemented the way a catalog crate's generated code implements them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use eventhub::Client;
use eventhub::ConnectOptions;
use eventhub::Consumable;
use eventhub::ConsumerHandle;
use eventhub::ConsumerOptions;
use eventhub::Event;
use eventhub::Family;
use eventhub::PublishOptions;
use eventhub::StartFrom;
use eventhub::StreamSpec;
use eventhub::Validation;
use eventhub::error::DecodeError;
use eventhub::topology::Discard;
use eventhub::topology::ProvisionOptions;
use eventhub::topology::Retention;
use eventhub::topology::Storage;
use eventhub::wire::RawEvent;
use eventhub_catalog::events::order;
use tokio::sync::Notify;

use crate::measure::{Meter, Run};
use crate::plan::{Clock, WINDOW, env_number};

/// A client of service `bench` at `url`.
/// A client of service `bench` signing what it publishes with a new nkey and verifying, with
/// that key trusted, what it consumes.
pub(crate) async fn connect_signed(url: &str) -> anyhow::Result<Client> {
    let seed = nkeys::KeyPair::new_user()
        .seed()
        .context("make a signing key")?;
    let signer = eventhub::wire::signing::Signer::from_seed(&seed)?;
    let trust = eventhub::wire::signing::Trust::new().service("bench", [signer.public_key()])?;
    Client::connect(
        ConnectOptions::new("bench")
            .url(url)
            .signing_seed(seed)
            .trust(trust),
    )
    .await
    .context("connect")
}

pub(crate) async fn connect(url: &str) -> anyhow::Result<Client> {
    Client::connect(ConnectOptions::new("bench").url(url))
        .await
        .with_context(|| format!("connect eventhub to {url}"))
}

/// Creates or updates the catalog's streams (every one with `replicas`, if given) and `extra`.
pub(crate) async fn provision(
    client: &Client,
    replicas: Option<usize>,
    extra: &[StreamSpec],
) -> anyhow::Result<()> {
    let mut options = ProvisionOptions::new(&eventhub_catalog::TOPOLOGY);
    options.replicas = replicas;
    options.streams.extend_from_slice(extra);
    client.provision_with(&options).await.context("provision")?;
    Ok(())
}

/// Publishes `event` `n` times, awaiting each ack (`window` 1) or keeping `window` in flight.
pub(crate) async fn publish<E: Event>(
    client: &Client,
    event: &E,
    n: usize,
    window: usize,
) -> anyhow::Result<Run> {
    publish_checking(client, event, n, window, Validation::Schema).await
}

/// [`publish`] by a publisher that checks as `validation` says (`Types`: encoded straight from
/// the type, as raw async-nats does).
pub(crate) async fn publish_checking<E: Event>(
    client: &Client,
    event: &E,
    n: usize,
    window: usize,
    validation: Validation,
) -> anyhow::Result<Run> {
    let publisher = client.publisher().with_validation(validation);
    let meter = Meter::start();
    let start = Instant::now();
    if window == 1 {
        for _ in 0..n {
            publisher.publish(event).await?;
        }
    } else {
        let mut pipeline = publisher.pipeline(window);
        for _ in 0..n {
            pipeline.send(event).await?;
        }
        let report = pipeline.finish().await;
        anyhow::ensure!(report.failures.is_empty(), "{:?}", report.failures);
    }
    let per_sec = n as f64 / start.elapsed().as_secs_f64();
    Ok(Run {
        per_sec,
        usage: meter.stop(),
        events: n,
    })
}

/// Publishes `event` `n` times with the ids `<prefix><i>`, pipelined (a backlog whose events
/// can be counted).
pub(crate) async fn publish_numbered<E: Event>(
    client: &Client,
    event: &E,
    n: usize,
    prefix: &str,
) -> anyhow::Result<()> {
    let mut pipeline = client.publisher().pipeline(WINDOW);
    for i in 0..n {
        pipeline
            .send_with(event, PublishOptions::default().id(format!("{prefix}{i}")))
            .await?;
    }
    let report = pipeline.finish().await;
    anyhow::ensure!(report.failures.is_empty(), "{:?}", report.failures);
    Ok(())
}

/// A consumer from the start of the stream, default options but its handler count (and
/// `EVENTHUB_BENCH_PREFETCH`, if set, as its prefetch); the handler counts to `n`.
pub(crate) async fn consume<E: Event + Consumable>(
    client: &Client,
    js: &jetstream::Context,
    n: usize,
    handlers: usize,
    validation: Validation,
) -> anyhow::Result<Run> {
    let name = format!("sdk_{}", uuid::Uuid::now_v7().simple());
    let mut options = ConsumerOptions::default()
        .name(&name)
        .concurrency(handlers)
        .validation(validation);
    if let Some(prefetch) = env_number("EVENTHUB_BENCH_PREFETCH") {
        options = options.prefetch(prefetch);
    }
    let consumer = client.consumer::<E>(options).await?;
    let count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let meter = Meter::start();
    let start = Instant::now();
    let (c, d) = (count.clone(), done.clone());
    let handle = consumer.spawn(move |_env| {
        if c.fetch_add(1, Ordering::Relaxed) + 1 == n as u64 {
            d.notify_one();
        }
        async { Ok(()) }
    });
    done.notified().await;
    let per_sec = n as f64 / start.elapsed().as_secs_f64();
    let usage = meter.stop();
    handle.shutdown().await;
    js.get_stream(E::STREAM)
        .await?
        .delete_consumer(&name)
        .await?;
    Ok(Run {
        per_sec,
        usage,
        events: n,
    })
}

/// Latency at `rate` events/s: a pipeline sends on a 1 ms tick, a consumer of new events
/// stamps each arrival.
pub(crate) async fn latency<E: Event + Consumable>(
    client: &Client,
    js: &jetstream::Context,
    event: &E,
    rate: usize,
    per_tick: usize,
    total: usize,
) -> anyhow::Result<Vec<u64>> {
    let clock = Clock::new(total);
    let name = format!("sdklat_{}", uuid::Uuid::now_v7().simple());
    let mut options = ConsumerOptions::default()
        .name(&name)
        .concurrency(1)
        .start_from(StartFrom::New);
    if let Some(prefetch) = env_number("EVENTHUB_BENCH_PREFETCH") {
        options = options.prefetch(prefetch);
    }
    let consumer = client.consumer::<E>(options).await?;
    let c = clock.clone();
    let handle = consumer.spawn(move |env| {
        c.received(&env.meta().id);
        async { Ok(()) }
    });
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    let mut pipeline = client.publisher().pipeline(WINDOW);
    let mut sent = 0;
    while sent < total {
        ticks.tick().await;
        for _ in 0..per_tick.min(total - sent) {
            clock.sent(sent);
            pipeline
                .send_with(
                    event,
                    PublishOptions::default().id(format!("lat-{}-{sent}", clock.run)),
                )
                .await?;
            sent += 1;
        }
    }
    let report = pipeline.finish().await;
    anyhow::ensure!(report.failures.is_empty(), "{:?}", report.failures);
    if tokio::time::timeout(Duration::from_secs(30), clock.all_received())
        .await
        .is_err()
    {
        anyhow::bail!(
            "eventhub latency run at {rate}/s: {} of {total} events arrived within 30 s; \
             consumer {:?}",
            clock.latencies().len(),
            handle.stats()
        );
    }
    handle.shutdown().await;
    js.get_stream(E::STREAM)
        .await?
        .delete_consumer(&name)
        .await?;
    Ok(clock.latencies())
}

/// A running eventhub consumer of the bench.
pub(crate) struct Running(ConsumerHandle);

impl Running {
    /// Shuts it down gracefully (what it buffered goes back to the stream).
    pub(crate) async fn stop(self) {
        self.0.shutdown().await;
    }
}

/// Starts durable consumer `name` of `E` (from the start of the stream, `handlers` at once, or
/// the SDK's default), calling `on_event` with each event's id.
pub(crate) async fn spawn_consumer<E: Event + Consumable>(
    client: &Client,
    name: &str,
    handlers: Option<usize>,
    on_event: impl Fn(&str) + Send + Sync + 'static,
) -> anyhow::Result<Running> {
    let mut options = ConsumerOptions::default().name(name);
    if let Some(h) = handlers {
        options = options.concurrency(h);
    }
    let consumer = client
        .consumer::<E>(options)
        .await
        .with_context(|| format!("consumer {name}"))?;
    Ok(Running(consumer.spawn(move |env| {
        on_event(&env.meta().id);
        async { Ok(()) }
    })))
}

/// The bench's own event types, one per bench stream: the typical event (`order.placed`
/// v1) on `events.bench.s<i>.v1` in stream `BENCH_S<i>`, so that many consumers can spread
/// over more streams than the catalog declares.
macro_rules! bench_streams {
    ($($ty:ident $n:literal),* $(,)?) => {
        $(
            #[doc = concat!("The typical event on bench stream ", $n, ".")]
            #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
            #[serde(transparent)]
            pub(crate) struct $ty(pub(crate) order::PlacedV1);

            impl From<order::PlacedV1> for $ty {
                fn from(event: order::PlacedV1) -> Self {
                    Self(event)
                }
            }

            impl Event for $ty {
                const TYPE: &'static str = concat!("bench.s", $n);
                const VERSION: u32 = 1;
                const SUBJECT: &'static str = concat!("events.bench.s", $n, ".v1");
                const SCHEMA_ID: &'static str = concat!("urn:eventhub:schema:bench.s", $n, ":v1");
                const STREAM: &'static str = concat!("BENCH_S", $n);
                const PROTO: &'static eventhub::wire::proto::Message = <order::PlacedV1 as Event>::PROTO;
                // The typical event's schema: these types carry it under other subjects.
                const INFO: &'static eventhub::EventInfo = <order::PlacedV1 as Event>::INFO;
            }

            impl Consumable for $ty {
                const FAMILY: Family = Family {
                    event_type: <Self as Event>::TYPE,
                    versions: &[1],
                    subjects: &[<Self as Event>::SUBJECT],
                    stream: <Self as Event>::STREAM,
                };

                fn decode(version: u32, raw: &RawEvent<'_>) -> Result<Self, DecodeError> {
                    match version {
                        1 => raw.decode_event::<Self>(),
                        other => Err(DecodeError::unknown_version(<Self as Event>::TYPE, other, &[1])),
                    }
                }

                fn version(&self) -> u32 {
                    1
                }
            }
        )*

        /// The bench streams, one per bench event type.
        pub(crate) const BENCH_STREAMS: &[StreamSpec] = &[$(StreamSpec {
            name: <$ty as Event>::STREAM,
            description: "eventhub-bench: many consumers over many streams.",
            owned: true,
            subjects: &[<$ty as Event>::SUBJECT],
            retention: Retention::Limits,
            storage: Storage::File,
            max_age: Duration::from_secs(3600),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_msg_size: None,
            max_bytes: None,
            discard: Discard::Old,
            allow_msg_schedules: false,
            allow_atomic: false,
            allow_msg_ttl: false,
            subject_delete_marker_ttl: None,
        }),*];

    };
}

bench_streams!(
    BenchS0 0,
    BenchS1 1,
    BenchS2 2,
    BenchS3 3,
    BenchS4 4,
    BenchS5 5,
    BenchS6 6,
    BenchS7 7,
    BenchS8 8,
    BenchS9 9,
);

/// Runs `$body` with `$t` the bench event type of bench stream `$i` (0–9).
macro_rules! with_bench_type {
    ($i:expr, $t:ident => $body:expr) => {
        match $i {
            0 => {
                type $t = $crate::sdk::BenchS0;
                $body
            }
            1 => {
                type $t = $crate::sdk::BenchS1;
                $body
            }
            2 => {
                type $t = $crate::sdk::BenchS2;
                $body
            }
            3 => {
                type $t = $crate::sdk::BenchS3;
                $body
            }
            4 => {
                type $t = $crate::sdk::BenchS4;
                $body
            }
            5 => {
                type $t = $crate::sdk::BenchS5;
                $body
            }
            6 => {
                type $t = $crate::sdk::BenchS6;
                $body
            }
            7 => {
                type $t = $crate::sdk::BenchS7;
                $body
            }
            8 => {
                type $t = $crate::sdk::BenchS8;
                $body
            }
            9 => {
                type $t = $crate::sdk::BenchS9;
                $body
            }
            other => unreachable!("no bench stream {other}"),
        }
    };
}
pub(crate) use with_bench_type;
