//! eventhub beside what a user would pick instead on this machine: a Python service on
//! FastStream and one on plain nats-py (`bench/peers/*.py`), each run as a child process
//! against the bench's own nats-server, counts on its command line and its result as one JSON
//! line on its stdout.
//!
//! Go peers (nats.go, Watermill) are not measured: no Go module source can be fetched here.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context as _;
use eventhub::Event;
use eventhub::Validation;
use eventhub_catalog::events::order;

use crate::measure::{Report, Row, Run, Section, Target, Usage};
use crate::scenarios::{Env, WINDOW, median_pair};

/// A Python peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    NatsPy,
    FastStream,
}

impl Peer {
    const ALL: [Peer; 2] = [Peer::NatsPy, Peer::FastStream];

    fn script(self) -> &'static str {
        match self {
            Peer::NatsPy => "nats_py_peer.py",
            Peer::FastStream => "faststream_peer.py",
        }
    }
}

/// One of the three sides of a peer comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Peer(Peer),
    Eventhub,
}

/// The order of the sides in round `round`: each starts one round in three.
fn order(round: usize) -> [Who; 3] {
    let mut all = [
        Who::Peer(Peer::NatsPy),
        Who::Peer(Peer::FastStream),
        Who::Eventhub,
    ];
    all.rotate_left(round % 3);
    all
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Awaited,
    Pipelined,
    Consume,
}

impl Scenario {
    fn arg(self) -> &'static str {
        match self {
            Scenario::Awaited => "publish-awaited",
            Scenario::Pipelined => "publish-pipelined",
            Scenario::Consume => "consume",
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where `scripts/install-bench-peers` puts the peers' packages.
fn packages() -> PathBuf {
    root().join(".tools/bench-peers")
}

const INSTALL_HINT: &str = "install them with `scripts/install-bench-peers` (runs `python3 -m pip \
install --target .tools/bench-peers -r bench/peers/requirements.txt`; needs python3 with pip)";

/// Installs the peers if they are missing or out of date (the script does nothing when they
/// are current); fails saying how to install them.
fn ensure_installed() -> anyhow::Result<()> {
    let script = root().join("scripts/install-bench-peers");
    let status = std::process::Command::new(&script)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}; {INSTALL_HINT}", script.display()))?;
    anyhow::ensure!(
        status.success(),
        "the bench's Python peers could not be installed: {} failed ({status}); {INSTALL_HINT}",
        script.display()
    );
    Ok(())
}

/// What a peer printed.
struct PeerRun {
    run: Run,
    report: serde_json::Value,
}

async fn run_peer(
    peer: Peer,
    scenario: Scenario,
    url: &str,
    n: usize,
    event: &str,
    durable: Option<&str>,
) -> anyhow::Result<PeerRun> {
    let script = root().join("bench/peers").join(peer.script());
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(&script)
        .arg(scenario.arg())
        .args(["--url", url])
        .args(["--subject", order::PlacedV1::SUBJECT])
        .args(["--stream", order::PlacedV1::STREAM])
        .args(["--count", &n.to_string()])
        .args(["--window", &WINDOW.to_string()])
        .args(["--event", event])
        .args(["--run", &uuid::Uuid::now_v7().simple().to_string()])
        .env("PYTHONPATH", packages())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(d) = durable {
        cmd.args(["--durable", d, "--batch", "256"]);
    }
    let out = cmd
        .output()
        .await
        .with_context(|| format!("cannot run python3 {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    if !out.status.success() || last.is_empty() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        anyhow::bail!(
            "peer {} {} failed ({}):\n{}",
            peer.script(),
            scenario.arg(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let report: serde_json::Value = serde_json::from_str(last)
        .with_context(|| format!("peer {} printed {last:?}", peer.script()))?;
    let number = |k: &str| report[k].as_f64().unwrap_or(f64::NAN);
    let run = Run {
        per_sec: number("per_sec"),
        usage: Usage {
            cpu: std::time::Duration::from_secs_f64(number("cpu_seconds").max(0.0)),
            peak_rss_kib: report["peak_rss_kib"].as_u64().unwrap_or(0),
            server_cpu: None,
        },
        events: n,
    };
    Ok(PeerRun { run, report })
}

/// The peer rows, typical event.
pub(crate) async fn run(
    env: &Env<'_>,
    url: &str,
    typical: &order::PlacedV1,
    report: &mut Report,
) -> anyhow::Result<()> {
    ensure_installed()?;
    let event = serde_json::to_string(typical)?;
    let rounds = env.plan.peer_rounds;
    let mut versions = serde_json::Value::Null;
    // A table per peer: its rows gathered over the scenarios.
    let mut rows: [Vec<Row>; 2] = Default::default();
    for scenario in [Scenario::Awaited, Scenario::Pipelined, Scenario::Consume] {
        let n = match scenario {
            Scenario::Awaited => env.plan.awaited,
            _ => env.plan.peer_events,
        };
        eprintln!("peers: {}, {n} events", scenario.arg());
        if scenario == Scenario::Consume {
            env.purge::<order::PlacedV1>().await?;
            env.sdk_publish(typical, n, WINDOW).await?;
        }
        let mut runs: [Vec<Run>; 3] = Default::default();
        for round in 0..rounds {
            for who in order(round) {
                if scenario != Scenario::Consume {
                    env.purge::<order::PlacedV1>().await?;
                }
                let (slot, run) = match who {
                    Who::Eventhub => (
                        2,
                        match scenario {
                            Scenario::Awaited => env.sdk_publish(typical, n, 1).await?,
                            Scenario::Pipelined => env.sdk_publish(typical, n, WINDOW).await?,
                            Scenario::Consume => {
                                env.sdk_consume::<order::PlacedV1>(n, 1, Validation::Schema)
                                    .await?
                            }
                        },
                    ),
                    Who::Peer(peer) => {
                        let durable = format!("py_{}", uuid::Uuid::now_v7().simple());
                        let durable = (scenario == Scenario::Consume).then_some(durable.as_str());
                        let r = run_peer(peer, scenario, url, n, &event, durable).await?;
                        if let Some(d) = durable {
                            env.js
                                .get_stream(order::PlacedV1::STREAM)
                                .await?
                                .delete_consumer(d)
                                .await?;
                        }
                        versions = serde_json::json!({
                            "python": r.report["python"],
                            "packages": r.report["versions"],
                        });
                        (peer as usize, r.run)
                    }
                };
                runs[slot].push(run);
            }
        }
        let [nats_py, faststream, sdk] = &runs;
        for (peer, peer_runs) in Peer::ALL.into_iter().zip([nats_py, faststream]) {
            let (p, s) = median_pair(peer_runs, sdk, |p, s| s.per_sec / p.per_sec);
            let name = match (peer, scenario) {
                (Peer::NatsPy, Scenario::Awaited) => "nats-py: publish awaiting each ack (ev/s)",
                (Peer::NatsPy, Scenario::Pipelined) => "nats-py: publish, 4096 in flight (ev/s)",
                (Peer::NatsPy, Scenario::Consume) => "nats-py: consume + validate + ack (ev/s)",
                (Peer::FastStream, Scenario::Awaited) => {
                    "FastStream: publish awaiting each ack (ev/s)"
                }
                (Peer::FastStream, Scenario::Pipelined) => "FastStream: publish, 4096 tasks (ev/s)",
                (Peer::FastStream, Scenario::Consume) => {
                    "FastStream: consume + validate + ack (ev/s)"
                }
            };
            let rows = &mut rows[peer as usize];
            rows.push(
                Row::of(Section::Peers, "typical", name, p.per_sec, s.per_sec).target(Target::None),
            );
            if scenario == Scenario::Consume {
                rows.push(Row::of(
                    Section::Peers,
                    "typical",
                    "  client CPU per consumed event (µs)",
                    p.cpu_micros_per_event(),
                    s.cpu_micros_per_event(),
                ));
                rows.push(Row::of(
                    Section::Peers,
                    "typical",
                    "  client peak RSS (MiB)",
                    p.usage.peak_rss_kib as f64 / 1024.0,
                    s.usage.peak_rss_kib as f64 / 1024.0,
                ));
            }
        }
    }
    report.rows.extend(rows.into_iter().flatten());
    let packages = &versions["packages"];
    report.notes.push((
        Section::Peers,
        format!(
            "\npeers: nats-py {}, FastStream {}, pydantic {} on CPython {} (bench/peers/*.py, \
             installed by scripts/install-bench-peers), validating into pydantic models of \
             order.placed. nats-py pipelines with its own publish_async (4096 pending); FastStream \
             has no pipelined publish, so 4096 publishes run as concurrent asyncio tasks. Consume: \
             a durable pull consumer fetching 256 at a time (FastStream: PullSub(batch_size=256), \
             a handler taking the model, no per-message log); eventhub: 1 handler. Each peer \
             times its own loop (not the interpreter's start). Median pair of {rounds} round{}. \
             Peak RSS of eventhub is the whole bench process.\n\
             Go peers (nats.go, Watermill) are not measured: no Go module source can be fetched \
             on this machine.",
            packages["nats-py"].as_str().unwrap_or("?"),
            packages["faststream"].as_str().unwrap_or("?"),
            packages["pydantic"].as_str().unwrap_or("?"),
            versions["python"].as_str().unwrap_or("?"),
            if rounds == 1 { "" } else { "s" },
        ),
    ));
    report.meta.insert("peers".to_string(), versions);
    Ok(())
}
