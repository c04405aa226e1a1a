//! eventhub against raw async-nats, in the same run, on the same events and server.
//!
//! `cargo run --release -p eventhub-bench -- [--json] [--quick]` starts a nats-server (or uses
//! `NATS_URL`), then measures for a tiny event (`auth.logout`) and a catalog-typical one
//! (`order.placed`, two line items): pipelined publish, publish awaiting each ack, consume with
//! handler and ack (1 and 8 handlers), end-to-end latency at 1k and 10k events/s, CPU time per
//! event (client, and the nats-server it started) and client peak RSS; then codegen time for
//! 10, 100 and 1000 synthetic schemas. Every eventhub figure is printed beside raw async-nats
//! with the ratio, and the targets are checked. Each scenario runs both sides seven times,
//! alternately, raw first in one round and eventhub first in the next. A throughput row shows
//! the pair of runs (taken side by side) whose ratio is the median; a latency row shows each
//! side's quantiles over all seven of its runs.
//!
//! `cargo run --release -p eventhub-bench -- --codec [--json]` instead compares the payload
//! codecs, JSON vs protobuf, over every event of the catalog (encoded size, encode and decode
//! time; no server): see `codec.rs`.
//!
//! The raw side does the same job as the SDK minus the SDK: it serializes the same struct and
//! sends the same message — eventhub's headers (CloudEvents attributes, correlation id,
//! `traceparent`, `Nats-Msg-Id`), built the plain way — and its consumer decodes the JSON and
//! acks each message. The targets apply to that comparison: what the SDK's code costs. Rows
//! marked "wire format" compare eventhub with raw async-nats sending the payload and a
//! `Nats-Msg-Id` only: what the headers cost (in the client and in nats-server).
//!
//! `EVENTHUB_BENCH_PROFILE=<scenario>` runs one side of one scenario long enough to profile
//! (`perf record`): `raw-publish`, `raw-publish-bare`, `sdk-publish`, `raw-consume`,
//! `sdk-consume` (`raw-consume-8`, `sdk-consume-8`: with 8 handlers), or `latency` (both sides
//! at 10k events/s, or `EVENTHUB_BENCH_RATE`; a line per run, then each side over all runs).
//! `publish-ab`, `consume-ab` and `consume-8-ab` alternate both sides for six pairs of runs and
//! print each pair's ratio and the median: on a machine whose speed drifts, the steadiest
//! comparison.

mod codec;
mod measure;
mod scenarios;
mod synthetic;

use std::time::Duration;

use anyhow::Context;
use eventhub::events::{auth, order};
use eventhub::{Client, ConnectOptions};

use crate::measure::{Report, Row, Target};

/// What the run covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) pipelined: usize,
    pub(crate) awaited: usize,
    pub(crate) consumed: usize,
    pub(crate) latency_secs: u64,
    /// Runs per side behind each row, the sides alternating.
    pub(crate) rounds: usize,
    pub(crate) codegen: &'static [usize],
}

const FULL: Plan = Plan {
    pipelined: 100_000,
    awaited: 5_000,
    consumed: 100_000,
    latency_secs: 5,
    rounds: 7,
    codegen: &[10, 100, 1000],
};

const QUICK: Plan = Plan {
    pipelined: 10_000,
    awaited: 500,
    consumed: 10_000,
    latency_secs: 1,
    rounds: 1,
    codegen: &[10, 100],
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let plan = if args.iter().any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    };
    if let Some(other) = args
        .iter()
        .find(|a| !["--json", "--quick", "--codec"].contains(&a.as_str()))
    {
        eprintln!(
            "usage: eventhub-bench [--json] [--quick] | --codec [--json]   (unknown argument {other})"
        );
        std::process::exit(2);
    }
    if args.iter().any(|a| a == "--codec") {
        return codec::run(json);
    }

    let (_server, url) = match std::env::var("NATS_URL") {
        Ok(url) if !url.is_empty() => (None, url),
        _ => {
            let server = eventhub::testing::NatsServer::start();
            let url = server.client_url();
            if let Some(pid) = server.pid() {
                let _ = measure::SERVER_PID.set(pid);
            }
            (Some(server), url)
        }
    };
    let client = Client::connect(ConnectOptions::new("bench").url(&url))
        .await
        .context("connect eventhub")?;
    client.provision().await.context("provision")?;
    let raw = async_nats::connect(&url).await.context("connect raw")?;
    let js = async_nats::jetstream::new(raw);

    let mut report = Report::new(&url);
    let tiny = tiny_event();
    let typical = typical_event();
    eprintln!(
        "event sizes: tiny {} bytes, typical {} bytes",
        serde_json::to_vec(&tiny)?.len(),
        serde_json::to_vec(&typical)?.len()
    );
    let env = scenarios::Env {
        client: &client,
        js: &js,
        plan,
    };
    if let Ok(only) = std::env::var("EVENTHUB_BENCH_PROFILE") {
        // For `perf record`: one side of one scenario, long enough to sample.
        if std::env::var("EVENTHUB_BENCH_EVENT").as_deref() == Ok("tiny") {
            env.profile(&only, &tiny).await?;
        } else {
            env.profile(&only, &typical).await?;
        }
        return Ok(());
    }
    for (label, rows) in [
        ("tiny", env.all(&tiny).await?),
        ("typical", env.all(&typical).await?),
    ] {
        for mut row in rows {
            row.size = label;
            report.rows.push(row);
        }
    }
    for &n in plan.codegen {
        let secs = synthetic::codegen_seconds(n)?;
        report.codegen.push((n, secs));
    }
    if let Some(&(n, secs)) = report.codegen.iter().find(|(n, _)| *n == 1000) {
        report.rows.push(Row {
            name: "codegen, 1000 schemas (s)",
            size: "-",
            raw: f64::NAN,
            sdk: secs,
            target: Target::AtMost(10.0),
            ratio_target: false,
        });
        let _ = n;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        report.print();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

fn tiny_event() -> auth::LogoutV1 {
    serde_json::from_value(serde_json::json!({
        "user_id": "0190a000-0000-7000-8000-000000000001",
        "session_id": "0190a000-0000-7000-8000-000000000002",
        "reason": "user",
        "at": "2026-11-23T10:00:00Z",
    }))
    .expect("a valid auth.logout")
}

fn typical_event() -> order::PlacedV1 {
    let money = |minor: u64| serde_json::json!({"amount_minor": minor, "currency": "EUR"});
    serde_json::from_value(serde_json::json!({
        "order_id": "0190a000-0000-7000-8000-000000000003",
        "user_id": "0190a000-0000-7000-8000-000000000001",
        "line_items": [
            {"sku": "BOOK-0042", "name": "The Analytical Engine", "quantity": 1,
             "unit_price": money(2999), "total": money(2999)},
            {"sku": "MUG-0007", "name": "Coffee mug", "quantity": 2,
             "unit_price": money(1250), "total": money(2500)},
        ],
        "subtotal": money(5499),
        "tax": money(1045),
        "shipping": money(490),
        "total": money(7034),
        "shipping_address": {
            "line1": "12 Harbour Street", "city": "London", "postal_code": "E1 6AN", "country": "GB"
        },
        "placed_at": "2026-11-23T10:00:00Z",
    }))
    .expect("a valid order.placed")
}
