//! JetStream-native features at their cost, each beside the plain way (no raw async-nats side):
//!
//! - atomic event groups of 100 (`Publisher::group`, one batch each, awaited; one group in
//!   flight, then 8) vs the same events pipelined (window 100): what all-or-nothing costs;
//! - a keyed consumer (`ordered_by_key`) vs an unkeyed one, 8 handlers of 1 ms each, over
//!   events of 1 and of 16 partition keys: one key serializes its events, more keys give the
//!   parallelism back.
//!
//! - a delay of 1 s as a stored schedule (`publish_after`) vs a `Nak(1 s)`: how late each event
//!   arrives after it was due (p50, p99).
//!
//! In these rows the "raw" column is the plain way (pipelined publish, unkeyed consumer) and
//! the "eventhub" column the feature.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use eventhub::{ConsumerOptions, StartFrom};
use eventhub_catalog::events::order;
use tokio::sync::Notify;

use crate::measure::{Report, Row, Section};
use crate::scenarios::Env;

const GROUP: usize = 100;
const IN_FLIGHT: usize = 8;

pub(crate) async fn run(
    env: &Env<'_>,
    event: &order::PlacedV1,
    report: &mut Report,
) -> anyhow::Result<()> {
    let client = env.client;
    let n = (env.plan.pipelined / 10).max(GROUP) / GROUP * GROUP;
    let publisher = client.publisher();

    let started = Instant::now();
    let mut pipeline = publisher.pipeline(GROUP);
    for _ in 0..n {
        pipeline.send(event).await?;
    }
    let failures = pipeline.finish().await.failures;
    anyhow::ensure!(
        failures.is_empty(),
        "pipelined publish failed: {failures:?}"
    );
    let pipelined = n as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    for _ in 0..n / GROUP {
        let mut group = publisher.group();
        for _ in 0..GROUP {
            group.add(event)?;
        }
        group.publish().await?;
    }
    let grouped = n as f64 / started.elapsed().as_secs_f64();
    report.rows.push(Row::of(
        Section::Scale,
        "typical",
        "publish, events/s: pipelined (raw column) vs atomic groups of 100",
        pipelined,
        grouped,
    ));

    // A service publishing groups for several requests at once: 8 groups in flight.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (publisher, event) = (publisher.clone(), event.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..n / GROUP / IN_FLIGHT {
                let mut group = publisher.group();
                for _ in 0..GROUP {
                    group.add(&event)?;
                }
                group.publish().await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let concurrent =
        (n / GROUP / IN_FLIGHT * GROUP * IN_FLIGHT) as f64 / started.elapsed().as_secs_f64();
    report.rows.push(Row::of(
        Section::Scale,
        "typical",
        "publish, events/s: pipelined (raw column) vs atomic groups of 100, 8 in flight",
        pipelined,
        concurrent,
    ));

    let consumed = (env.plan.consumed / 20).max(200);
    for (keys, label) in [
        (
            1usize,
            "consume 8×1 ms handlers, 1 key: unkeyed (raw column) vs keyed, events/s",
        ),
        (
            16,
            "consume 8×1 ms handlers, 16 keys: unkeyed (raw column) vs keyed, events/s",
        ),
    ] {
        let plain = consume(env, event, consumed, keys, false).await?;
        let keyed = consume(env, event, consumed, keys, true).await?;
        report
            .rows
            .push(Row::of(Section::Scale, "typical", label, plain, keyed));
    }

    // A delay of 1 s: a stored schedule (the server publishes the event when due) vs a `Nak`
    // with that delay (the consumer's redelivery timer). How late each arrives.
    let (scheduled, naked) = (
        lateness(env, event, Delay::Schedule).await?,
        lateness(env, event, Delay::Nak).await?,
    );
    for (q, label) in [
        (
            0.5,
            "delay of 1 s, lateness p50 (ms): Nak(1 s) (raw column) vs publish_after",
        ),
        (
            0.99,
            "delay of 1 s, lateness p99 (ms): Nak(1 s) (raw column) vs publish_after",
        ),
    ] {
        let ms = |v: &[u64]| crate::measure::quantile(v, q) as f64 / 1000.0;
        report.rows.push(Row::of(
            Section::Scale,
            "typical",
            label,
            ms(&naked),
            ms(&scheduled),
        ));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Delay {
    Schedule,
    Nak,
}

/// Events delayed by 1 s at once, 50 of them; how late each arrived after it was due, in µs,
/// sorted.
async fn lateness(env: &Env<'_>, event: &order::PlacedV1, how: Delay) -> anyhow::Result<Vec<u64>> {
    use async_nats::jetstream::consumer::{AckPolicy, pull};
    use async_nats::jetstream::{AckKind, Message};
    use futures::StreamExt;
    const N: usize = 50;
    const DELAY: Duration = Duration::from_secs(1);
    let stream = env.js.get_stream("ORDERS").await?;
    stream.purge().await?;
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: <order::PlacedV1 as eventhub::Event>::SUBJECT.to_string(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let publisher = env.client.publisher();
    let mut due = std::collections::HashMap::new();
    for _ in 0..N {
        let id = match how {
            Delay::Schedule => {
                let at = Instant::now() + DELAY;
                let s = publisher.publish_after(event, DELAY).await?;
                due.insert(s.receipt.id, at);
                continue;
            }
            Delay::Nak => publisher.publish(event).await?.id,
        };
        due.insert(id, Instant::now());
    }
    let mut late = Vec::with_capacity(N);
    while late.len() < N {
        let m: Message = tokio::time::timeout(Duration::from_secs(60), messages.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the consumer ended"))??;
        let id = m
            .headers
            .as_ref()
            .and_then(|h| h.get("ce-id"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        let now = Instant::now();
        let Some(at) = due.get_mut(&id) else {
            m.ack().await.map_err(anyhow::Error::msg)?;
            continue;
        };
        if how == Delay::Nak && m.info().map_err(anyhow::Error::msg)?.delivered == 1 {
            *at = now + DELAY;
            m.ack_with(AckKind::Nak(Some(DELAY)))
                .await
                .map_err(anyhow::Error::msg)?;
            continue;
        }
        late.push(now.saturating_duration_since(*at).as_micros() as u64);
        m.ack().await.map_err(anyhow::Error::msg)?;
    }
    late.sort_unstable();
    Ok(late)
}

/// Publishes `n` orders over `keys` order ids and consumes them from a new durable; events/s.
async fn consume(
    env: &Env<'_>,
    event: &order::PlacedV1,
    n: usize,
    keys: usize,
    ordered: bool,
) -> anyhow::Result<f64> {
    let client = env.client;
    let stream = env.js.get_stream("ORDERS").await?;
    stream.purge().await?;
    let mut pipeline = client.publisher().pipeline(1024);
    let mut value = serde_json::to_value(event)?;
    for i in 0..n {
        value["order_id"] = serde_json::json!(uuid::Uuid::from_u128(1 + (i % keys) as u128));
        let e: order::PlacedV1 = serde_json::from_value(value.clone())?;
        pipeline.send(&e).await?;
    }
    anyhow::ensure!(pipeline.finish().await.failures.is_empty());
    let done = Arc::new(AtomicUsize::new(0));
    let all = Arc::new(Notify::new());
    let (d, a) = (done.clone(), all.clone());
    let name = format!(
        "bench_keyed_{keys}_{ordered}_{}",
        uuid::Uuid::now_v7().simple()
    );
    let started = Instant::now();
    let handle = client
        .consumer::<order::Placed>(
            ConsumerOptions::default()
                .name(name)
                .concurrency(8)
                .start_from(StartFrom::All)
                .ordered_by_key(ordered),
        )
        .await?
        .spawn(move |_env| {
            let (done, all) = (d.clone(), a.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                if done.fetch_add(1, Ordering::SeqCst) + 1 == n {
                    all.notify_one();
                }
                Ok(())
            }
        });
    tokio::time::timeout(Duration::from_secs(300), all.notified()).await?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    handle.shutdown().await;
    Ok(rate)
}
