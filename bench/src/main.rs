//! eventhub against raw async-nats, in the same run, on the same events and server.
//!
//! `cargo run --release -p eventhub-bench -- [--json] [--quick]` starts a nats-server (or uses
//! `NATS_URL`), then measures for a tiny event (`auth.logout`) and a catalog-typical one
//! (`order.placed`, two line items): pipelined publish, publish awaiting each ack, consume with
//! handler and ack (1 and 8 handlers), end-to-end latency at 1k and 10k events/s, CPU time per
//! event (client, and the nats-server it started) and client peak RSS; then codegen time for
//! 10, 100 and 1000 synthetic schemas. Every eventhub figure is printed beside raw async-nats
//! with the ratio, and the targets are checked. Each scenario runs both sides seven times
//! (the rows with a throughput target eleven times), alternately, raw first in one round and
//! eventhub first in the next. A throughput row shows the pair of runs (taken side by side)
//! whose ratio is the median; a latency row shows each side's quantiles over all seven of its
//! runs.
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
//! Beyond raw async-nats, the same run measures what a user would pick instead — a Python
//! service on FastStream and one on plain nats-py (`bench/peers/`, installed by
//! `scripts/install-bench-peers`, which the bench runs itself) — and rows at scale, each beside
//! raw async-nats: 50 durable consumers over 10 streams, a backlog drained by 4 instances
//! sharing a durable (processes of this binary, `--drain-child`), a 3-node R3 cluster beside one
//! server, and events of 256 B, 4 KiB and 64 KiB. `--only core,peers,fanout,backlog,cluster,
//! sizes,gateway,codegen,patterns,jetstream` runs some of them (`gateway`: the HTTP gateway's
//! publish throughput and WebSocket fan-out, see `gateway.rs`; `patterns`: request-reply and
//! aggregates, see `patterns.rs`; `jetstream`: atomic groups and keyed consumers, see
//! `jetstream.rs`); `--quick` runs every one with small counts; `EVENTHUB_BENCH_BACKLOG` sets
//! the backlog's size, `EVENTHUB_BENCH_GATEWAY_TOTAL` the gateway rows' requests. The output
//! ends with a one-line summary;
//! `--json` prints everything, with a `summary` object (every targeted figure, its target,
//! whether it is met). `--write-docs docs/performance.md RUN.json…` renders the generated part
//! of that page from one or more `--json` outputs (see `docs.rs`).
//!
//! `EVENTHUB_BENCH_PROFILE=<scenario>` runs one side of one scenario long enough to profile
//! (`perf record`): `raw-publish`, `raw-publish-bare`, `sdk-publish`, `raw-consume`,
//! `sdk-consume` (`raw-consume-8`, `sdk-consume-8`: with 8 handlers), or `latency` (both sides
//! at 10k events/s, or `EVENTHUB_BENCH_RATE`; a line per run, then each side over all runs).
//! `publish-ab`, `consume-ab` and `consume-8-ab` alternate both sides for six pairs of runs and
//! print each pair's ratio and the median: on a machine whose speed drifts, the steadiest
//! comparison. eventhub's consumer decodes into the type only and its publisher encodes
//! straight from it, as raw does (the targeted rows); `EVENTHUB_BENCH_VALIDATION=schema`
//! profiles the default, schema-checking ones. `EVENTHUB_BENCH_WIRE=bare`: raw publishes bare
//! messages in `publish-ab` and consumes bare messages in `consume-ab` (the wire-format rows).

mod backlog;
mod codec;
mod docs;
mod fanout;
mod gateway;
mod http_load;
mod jetstream;
mod measure;
mod patterns;
mod peers;
mod plan;
mod scale;
mod scenarios;
mod sdk;
mod synthetic;

use std::time::Duration;

use anyhow::Context;
use eventhub_catalog::events::{auth, order};

use crate::measure::{Report, Row, Section, Target};

/// The parts of a run, for `--only`.
const PARTS: [&str; 10] = [
    "core",
    "peers",
    "fanout",
    "backlog",
    "cluster",
    "sizes",
    "gateway",
    "codegen",
    "patterns",
    "jetstream",
];

const USAGE: &str = "usage: eventhub-bench [--json] [--quick] [--only PART,…] | --codec [--json] | \
--write-docs PAGE RUN.json… \n  parts: core, peers, fanout, backlog, cluster, sizes, gateway, codegen, patterns, jetstream";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--drain-child") => return backlog::child(&args[1..]).await,
        Some("--write-docs") => {
            let [page, runs @ ..] = &args[1..] else {
                anyhow::bail!("{USAGE}");
            };
            return docs::write(std::path::Path::new(page), runs);
        }
        _ => {}
    }
    let json = args.iter().any(|a| a == "--json");
    let quick = args.iter().any(|a| a == "--quick");
    let plan = if quick { plan::QUICK } else { plan::FULL };
    let mut only: Option<Vec<String>> = None;
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--json" | "--quick" | "--codec" => {}
            "--only" => {
                let list = rest.next().context(USAGE)?;
                let parts: Vec<String> = list.split(',').map(|p| p.trim().to_string()).collect();
                if let Some(bad) = parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
                    eprintln!("{USAGE}   (unknown part {bad})");
                    std::process::exit(2);
                }
                only = Some(parts);
            }
            other => {
                eprintln!("{USAGE}   (unknown argument {other})");
                std::process::exit(2);
            }
        }
    }
    if args.iter().any(|a| a == "--codec") {
        return codec::run(json);
    }
    let runs = |part: &str| only.as_ref().is_none_or(|o| o.iter().any(|p| p == part));

    let (_server, url) = match std::env::var("NATS_URL") {
        Ok(url) if !url.is_empty() => (None, url),
        _ => {
            let server = eventhub_testkit::NatsServer::start();
            let url = server.client_url();
            if let Some(pid) = server.pid() {
                let _ = measure::SERVER_PID.set(pid);
            }
            (Some(server), url)
        }
    };
    let client = sdk::connect(&url).await?;
    let signed = sdk::connect_signed(&url).await?;
    sdk::provision(&client, None, &[]).await?;
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
        signed: &signed,
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
    let started = chrono::Utc::now();
    report.meta = serde_json::json!({
        "started": started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "counts": if quick { "quick" } else { "full" },
        "plan": {
            "pipelined": plan.pipelined, "awaited": plan.awaited, "consumed": plan.consumed,
            "latency_secs": plan.latency_secs, "rounds": plan.rounds,
            "targeted_rounds": plan.targeted_rounds,
            "peer_events": plan.peer_events, "peer_rounds": plan.peer_rounds,
            "scale_rounds": plan.scale_rounds, "fanout_events": plan.fanout_events,
            "backlog": scenarios::env_number("EVENTHUB_BENCH_BACKLOG").unwrap_or(plan.backlog),
            "cluster_events": plan.cluster_events, "size_bytes": plan.size_bytes,
        },
        "parts": PARTS.iter().filter(|p| runs(p)).collect::<Vec<_>>(),
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "nats_server": eventhub_testkit::NATS_SERVER_VERSION,
        "commit": git_commit(),
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    if runs("core") {
        for (label, rows) in [
            ("tiny", env.all(&tiny).await?),
            ("typical", env.all(&typical).await?),
        ] {
            for mut row in rows {
                row.size = label;
                report.rows.push(row);
            }
        }
    }
    if runs("peers") {
        peers::run(&env, &url, &typical, &mut report).await?;
    }
    if runs("fanout") {
        fanout::run(&env, &typical, &mut report).await?;
    }
    if runs("backlog") {
        backlog::run(&env, &url, &typical, &mut report).await?;
    }
    if runs("cluster") {
        scale::cluster(&env, &typical, &mut report).await?;
    }
    if runs("sizes") {
        scale::sizes(&env, &mut report).await?;
    }
    if runs("gateway") {
        gateway::run(&env, &url, &mut report).await?;
    }
    if runs("patterns") {
        patterns::run(&env, &url, &typical, &mut report).await?;
    }
    if runs("jetstream") {
        jetstream::run(&env, &typical, &mut report).await?;
    }
    if runs("codegen") {
        for &n in plan.codegen {
            let secs = synthetic::codegen_seconds(n)?;
            report.codegen.push((n, secs));
        }
    }
    if let Some(&(_, secs)) = report.codegen.iter().find(|(n, _)| *n == 1000) {
        report.rows.push(Row {
            name: "codegen, 1000 schemas (s)",
            size: "-",
            raw: f64::NAN,
            sdk: secs,
            target: Target::AtMost(10.0),
            ratio_target: false,
            section: Section::Core,
        });
    }
    report.meta.insert(
        "seconds".to_string(),
        serde_json::json!((chrono::Utc::now() - started).num_seconds()),
    );
    if json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        report.print();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

/// The commit this binary was built from (recorded by `build.rs`), if git knew it.
fn git_commit() -> Option<String> {
    option_env!("EVENTHUB_BENCH_BUILT_FROM").map(str::to_string)
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
