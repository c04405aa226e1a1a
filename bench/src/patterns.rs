//! The patterns of `eventhub-patterns` beside the raw async-nats calls they wrap: typed
//! request-reply vs `Client::request` to a raw echo responder (round trips/s and p99, one in
//! flight); an aggregate append with its expected version vs a raw JetStream publish with
//! `Nats-Expected-Last-Subject-Sequence` (awaited, one at a time); appends and conflicts per
//! second with 4 writers on one aggregate (no raw side); and loading an aggregate of
//! many events from its events and from a snapshot (informational: no raw side).

use std::time::{Duration, Instant};

use anyhow::Context;
use eventhub::error::DecodeError;
use eventhub::{Consumable, Event};
use eventhub_catalog::events::order;
use eventhub_patterns::{
    Aggregate, DomainEvent, EncodeError, Encoded, EventStore, Incoming, Recorded, Request,
    RequestExt, ResponderOptions, StoreOptions,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::measure::{Report, Row, Section, quantile};
use crate::scenarios::Env;

/// An order sent for pricing and answered as is: the request and response are the catalog's
/// typical event, checked against its schema both ways.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
struct Quote(order::PlacedV1);

impl Request for Quote {
    type Response = Quote;
    const SUBJECT: &'static str = "rpc.bench.quote.v1";
    const REQUEST_SCHEMA: Option<&'static str> = Some(order::PlacedV1::INFO.schema);
    const RESPONSE_SCHEMA: Option<&'static str> = Some(order::PlacedV1::INFO.schema);
}

#[derive(Debug)]
struct Placed(order::PlacedV1);

impl DomainEvent for Placed {
    fn encode(&self) -> Result<Encoded, EncodeError> {
        Encoded::of(&self.0)
    }
    fn decode(r: &Recorded) -> Option<Result<Self, DecodeError>> {
        Some(order::PlacedV1::decode(r.version, &r.raw()).map(Placed))
    }
}

/// Orders of one customer: a count and a total.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Customer {
    orders: u64,
    total_minor: u64,
}

impl Aggregate for Customer {
    const TYPE: &'static str = "benchcustomer";
    type Event = Placed;
    fn apply(&mut self, event: Placed) {
        self.orders += 1;
        self.total_minor += event.0.total.amount_minor;
    }
}

/// Sequential round trips: (per second, p99 µs).
fn summarize(samples: &mut [u64], elapsed: Duration) -> (f64, f64) {
    samples.sort_unstable();
    (
        samples.len() as f64 / elapsed.as_secs_f64(),
        quantile(samples, 0.99) as f64,
    )
}

pub(crate) async fn run(
    env: &Env<'_>,
    url: &str,
    event: &order::PlacedV1,
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = env.plan.awaited;
    let payload = bytes::Bytes::from(serde_json::to_vec(event)?);

    // Raw: an echo responder and `request`.
    let raw = async_nats::connect(url).await.context("connect raw")?;
    let mut echo = raw.subscribe("rpc.bench.raw").await?;
    let responder = raw.clone();
    let echo_task = tokio::spawn(async move {
        while let Some(m) = echo.next().await {
            if let Some(reply) = m.reply {
                let _ = responder.publish(reply, m.payload).await;
            }
        }
    });
    raw.flush().await?;
    let mut samples = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        raw.request("rpc.bench.raw", payload.clone()).await?;
        samples.push(t.elapsed().as_micros() as u64);
    }
    let (raw_rate, raw_p99) = summarize(&mut samples, started.elapsed());
    echo_task.abort();

    // eventhub: a typed responder and `request`.
    let client = env.client;
    let typed = client
        .respond(
            ResponderOptions::default(),
            |i: Incoming<Quote>| async move { Ok(i.request) },
        )
        .await?;
    let quote = Quote(event.clone());
    let mut samples = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        client.request(&quote).await?;
        samples.push(t.elapsed().as_micros() as u64);
    }
    let (sdk_rate, sdk_p99) = summarize(&mut samples, started.elapsed());
    typed.shutdown().await;
    report.rows.push(Row::of(
        Section::Scale,
        "typical",
        "request-reply, round trips/s (1 in flight)",
        raw_rate,
        sdk_rate,
    ));
    report.rows.push(Row::of(
        Section::Scale,
        "typical",
        "request-reply p99 (µs)",
        raw_p99,
        sdk_p99,
    ));

    // Raw: publish with the expected last subject sequence, awaiting each ack.
    let js = env.js;
    js.create_or_update_stream(async_nats::jetstream::stream::Config {
        name: "BENCH_RAW_AGG".into(),
        subjects: vec!["benchagg.>".into()],
        ..Default::default()
    })
    .await?;
    let started = Instant::now();
    let mut version = 0u64;
    for _ in 0..n {
        let mut h = async_nats::HeaderMap::new();
        h.insert(
            "Nats-Expected-Last-Subject-Sequence",
            version.to_string().as_str(),
        );
        h.insert("Nats-Msg-Id", uuid::Uuid::now_v7().to_string().as_str());
        version = js
            .publish_with_headers("benchagg.c1", h, payload.clone())
            .await?
            .await?
            .sequence;
    }
    let raw_append = n as f64 / started.elapsed().as_secs_f64();
    let store =
        EventStore::<Customer>::open(client, StoreOptions::default().snapshot_every(None)).await?;
    let started = Instant::now();
    let mut version = 0u64;
    for _ in 0..n {
        version = store
            .append("c1", version, &[Placed(event.clone())])
            .await?;
    }
    let sdk_append = n as f64 / started.elapsed().as_secs_f64();
    report.rows.push(Row::of(
        Section::Scale,
        "typical",
        "aggregate append with expected version, events/s",
        raw_append,
        sdk_append,
    ));

    // Contention: 4 writers on one aggregate (snapshots every 20 events), each loading,
    // appending, and on a conflict loading again.
    // Snapshots every 20 events keep each load short.
    let contended =
        EventStore::<Customer>::open(client, StoreOptions::default().snapshot_every(Some(20)))
            .await?;
    let per_writer = (n / 20).max(1);
    let started = Instant::now();
    let mut writers = Vec::new();
    for _ in 0..4 {
        let store = contended.clone();
        let event = event.clone();
        writers.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            let mut done = 0;
            while done < per_writer {
                let loaded = store.load("c3").await?;
                match store
                    .append("c3", loaded.version, &[Placed(event.clone())])
                    .await
                {
                    Ok(_) => done += 1,
                    Err(eventhub_patterns::AppendError::Conflict { .. }) => conflicts += 1,
                    Err(e) => return Err(anyhow::Error::from(e)),
                }
            }
            anyhow::Ok(conflicts)
        }));
    }
    let mut conflicts = 0;
    for w in writers {
        conflicts += w.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    report.rows.push(Row::of(
        Section::Scale,
        "typical",
        "aggregate, 4 writers on one: appends/s (load + append, snapshot every 20)",
        f64::NAN,
        (per_writer * 4) as f64 / secs,
    ));
    report.rows.push(Row::of(
        Section::Scale,
        "typical",
        "aggregate, 4 writers on one: conflicts/s",
        f64::NAN,
        conflicts as f64 / secs,
    ));

    // Loading an aggregate of many events (appended 100 a batch), from its events and from a
    // snapshot; the first load writes the snapshot.
    let many = if env.plan.rounds > 1 { 10_000 } else { 2_000 };
    let snapshots = EventStore::<Customer>::open(
        client,
        StoreOptions::default().snapshot_every(Some(many as u64)),
    )
    .await?;
    let mut version = 0;
    let batch: Vec<Placed> = (0..100).map(|_| Placed(event.clone())).collect();
    for _ in 0..many / 100 {
        version = snapshots.append("c2", version, &batch).await?;
    }
    let started = Instant::now();
    let full = snapshots.load_from_events("c2").await?;
    let from_events_ms = started.elapsed().as_secs_f64() * 1e3;
    snapshots.load("c2").await?;
    let started = Instant::now();
    let snap = snapshots.load("c2").await?;
    let from_snapshot_ms = started.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        full.events == many as u64 && snap.snapshot.is_some() && snap.state.orders == many as u64,
        "the aggregate did not load as appended"
    );
    let label = if many == 10_000 {
        "aggregate load, 10k events: from events (raw col.) vs snapshot (ms)"
    } else {
        "aggregate load, 2k events: from events (raw col.) vs snapshot (ms)"
    };
    report.rows.push(Row::of(
        Section::Scale,
        "typical",
        label,
        from_events_ms,
        from_snapshot_ms,
    ));
    Ok(())
}
