//! 50 durable consumers over 10 streams at once, in one process: how long until every one
//! handles its first event, the throughput of all together, and the client's memory.
//!
//! Each bench stream (`BENCH_S0`…`BENCH_S9`) holds the same backlog of typical events; five
//! durables per stream each read all of it, one handler each. Both sides create their 50
//! consumers concurrently.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer;
use eventhub_catalog::events::order;
use futures::StreamExt;
use tokio::sync::Notify;

use crate::measure::{Meter, Report, Row, Section, Usage};
use crate::scenarios::{Env, Side, WINDOW, median_pair, mib, sides};
use crate::sdk::{self, BENCH_STREAMS, with_bench_type};

const STREAMS: usize = 10;
const PER_STREAM: usize = 5;
const CONSUMERS: usize = STREAMS * PER_STREAM;

/// Progress of all consumers of one run.
struct Progress {
    /// Events each consumer must handle.
    each: u64,
    started: AtomicUsize,
    finished: AtomicUsize,
    all_started: Notify,
    all_finished: Notify,
    /// When the last consumer handled its first event, and when the last one finished.
    started_at: OnceLock<Instant>,
    finished_at: OnceLock<Instant>,
}

impl Progress {
    fn new(each: usize) -> Arc<Self> {
        Arc::new(Self {
            each: each as u64,
            started: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            all_started: Notify::new(),
            all_finished: Notify::new(),
            started_at: OnceLock::new(),
            finished_at: OnceLock::new(),
        })
    }

    /// One consumer's counter: call [`Progress::hit`] with it on each event.
    fn hit(&self, count: &AtomicU64) {
        let c = count.fetch_add(1, Ordering::Relaxed) + 1;
        if c == 1 && self.started.fetch_add(1, Ordering::AcqRel) + 1 == CONSUMERS {
            let _ = self.started_at.set(Instant::now());
            self.all_started.notify_one();
        }
        if c == self.each && self.finished.fetch_add(1, Ordering::AcqRel) + 1 == CONSUMERS {
            let _ = self.finished_at.set(Instant::now());
            self.all_finished.notify_one();
        }
    }
}

/// What one run measured.
struct Fanout {
    startup: Duration,
    per_sec: f64,
    usage: Usage,
    events: usize,
}

pub(crate) async fn run(
    env: &Env<'_>,
    typical: &order::PlacedV1,
    report: &mut Report,
) -> anyhow::Result<()> {
    let each = env.plan.fanout_events;
    eprintln!(
        "scale: {CONSUMERS} consumers over {STREAMS} streams, {each} events per stream, each read by {PER_STREAM}"
    );
    sdk::provision(env.client, None, BENCH_STREAMS).await?;
    for s in 0..STREAMS {
        with_bench_type!(s, T => {
            env.purge::<T>().await?;
            env.sdk_publish(&T::from(typical.clone()), each, WINDOW).await?;
        });
    }
    let (mut raw, mut sdk) = (Vec::new(), Vec::new());
    for round in 0..env.plan.scale_rounds {
        for side in sides(round) {
            let run = match side {
                Side::Raw => raw_run(env, each).await?,
                Side::Sdk => sdk_run(env, each).await?,
            };
            eprintln!(
                "  {side:?}: startup {:.0} ms, {:.0} ev/s",
                run.startup.as_secs_f64() * 1e3,
                run.per_sec
            );
            match side {
                Side::Raw => raw.push(run),
                Side::Sdk => sdk.push(run),
            }
        }
    }
    let size = "50 × 10";
    let (r, s) = median_pair(&raw, &sdk, |r, s| s.per_sec / r.per_sec);
    report.rows.push(Row::of(
        Section::Scale,
        size,
        "50 consumers on 10 streams (ev/s)",
        r.per_sec,
        s.per_sec,
    ));
    let cpu = |f: &Fanout| f.usage.cpu.as_secs_f64() * 1e6 / f.events as f64;
    report.rows.push(Row::of(
        Section::Scale,
        size,
        "  client CPU per event (µs)",
        cpu(r),
        cpu(s),
    ));
    report.rows.push(Row::of(
        Section::Scale,
        size,
        "  client peak RSS (MiB)",
        mib(r.usage.peak_rss_kib),
        mib(s.usage.peak_rss_kib),
    ));
    let (r, s) = median_pair(&raw, &sdk, |r, s| {
        s.startup.as_secs_f64() / r.startup.as_secs_f64()
    });
    report.rows.push(Row::of(
        Section::Scale,
        size,
        "  startup: all 50 handling (ms)",
        r.startup.as_secs_f64() * 1e3,
        s.startup.as_secs_f64() * 1e3,
    ));
    report.notes.push((
        Section::Scale,
        format!(
            "50 × 10: {CONSUMERS} durables, {PER_STREAM} on each of {STREAMS} streams, each reading \
             all {each} typical events of its stream with 1 handler, created concurrently; startup \
             runs from the first create until every consumer has handled an event."
        ),
    ));
    Ok(())
}

async fn sdk_run(env: &Env<'_>, each: usize) -> anyhow::Result<Fanout> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let progress = Progress::new(each);
    let meter = Meter::start();
    let start = Instant::now();
    let mut starting = Vec::new();
    for s in 0..STREAMS {
        for k in 0..PER_STREAM {
            let name = format!("sdk50_{run}_{s}_{k}");
            let progress = progress.clone();
            let count = AtomicU64::new(0);
            starting.push(async move {
                with_bench_type!(s, T => {
                    sdk::spawn_consumer::<T>(env.client, &name, Some(1), move |_id| {
                        progress.hit(&count)
                    })
                    .await
                })
            });
        }
    }
    let consumers = futures::future::try_join_all(starting).await?;
    let (startup, elapsed) = wait(&progress, start).await?;
    let usage = meter.stop();
    for c in consumers {
        c.stop().await;
    }
    delete_all(env, &format!("sdk50_{run}")).await?;
    Ok(Fanout {
        startup,
        per_sec: (CONSUMERS * each) as f64 / elapsed.as_secs_f64(),
        usage,
        events: CONSUMERS * each,
    })
}

async fn raw_run(env: &Env<'_>, each: usize) -> anyhow::Result<Fanout> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let progress = Progress::new(each);
    let meter = Meter::start();
    let start = Instant::now();
    let mut starting = Vec::new();
    for (s, spec) in BENCH_STREAMS.iter().enumerate() {
        for k in 0..PER_STREAM {
            let name = format!("raw50_{run}_{s}_{k}");
            let progress = progress.clone();
            starting.push(async move {
                let stream = env.js.get_stream(spec.name).await?;
                let pull = stream
                    .create_consumer(consumer::pull::Config {
                        durable_name: Some(name),
                        ack_policy: consumer::AckPolicy::Explicit,
                        filter_subject: spec.subjects[0].to_string(),
                        max_ack_pending: 1000,
                        ..Default::default()
                    })
                    .await?;
                let messages = pull.messages().await?;
                let count = AtomicU64::new(0);
                Ok::<_, anyhow::Error>(tokio::spawn(async move {
                    messages
                        .filter_map(|m| std::future::ready(m.ok()))
                        .take(each)
                        .for_each(|m| {
                            let _event: order::PlacedV1 =
                                serde_json::from_slice(&m.payload).expect("decodes");
                            progress.hit(&count);
                            async move { m.ack().await.expect("ack") }
                        })
                        .await;
                }))
            });
        }
    }
    let tasks = futures::future::try_join_all(starting).await?;
    let (startup, elapsed) = wait(&progress, start).await?;
    let usage = meter.stop();
    for t in tasks {
        t.await?;
    }
    delete_all(env, &format!("raw50_{run}")).await?;
    Ok(Fanout {
        startup,
        per_sec: (CONSUMERS * each) as f64 / elapsed.as_secs_f64(),
        usage,
        events: CONSUMERS * each,
    })
}

/// Waits until every consumer has started, then until every one has finished; returns both
/// times since `start`.
async fn wait(progress: &Progress, start: Instant) -> anyhow::Result<(Duration, Duration)> {
    let limit = Duration::from_secs(120 + (CONSUMERS as u64 * progress.each) / 2000);
    tokio::time::timeout(limit, progress.all_started.notified())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "only {} of {CONSUMERS} consumers handled an event within {limit:?}",
                progress.started.load(Ordering::Relaxed)
            )
        })?;
    tokio::time::timeout(limit, progress.all_finished.notified())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "only {} of {CONSUMERS} consumers handled all their events within {limit:?}",
                progress.finished.load(Ordering::Relaxed)
            )
        })?;
    let since = |at: &OnceLock<Instant>| at.get().map_or(Duration::ZERO, |t| *t - start);
    Ok((since(&progress.started_at), since(&progress.finished_at)))
}

/// Deletes this run's durables (names starting with `prefix`) from every bench stream.
async fn delete_all(env: &Env<'_>, prefix: &str) -> anyhow::Result<()> {
    for (s, spec) in BENCH_STREAMS.iter().enumerate() {
        let stream = env.js.get_stream(spec.name).await?;
        for k in 0..PER_STREAM {
            stream.delete_consumer(&format!("{prefix}_{s}_{k}")).await?;
        }
    }
    Ok(())
}
