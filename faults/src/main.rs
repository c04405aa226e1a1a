//! `eventhub-faults [--short] [--json] [--only NAME] [--skip NAME]… [--seed N] [--count N]`:
//! the fault-injection suite.
//!
//! Every scenario starts its own nats-server(s), injects its fault during real publishing and
//! consuming, and counts by event id what the server acknowledged against what handlers
//! handled. It prints one row per scenario: acknowledged, handled, duplicates seen and removed,
//! lost (must be 0), dead letters, duration. Exit 1 when a scenario loses an event or fails.
//!
//! `--short` is the CI size (a few seconds per scenario); without it, the long run (100k-event
//! backlog, 10k events per fault). The `adversarial` scenario sends `--count` inputs (2,000 short,
//! 50k long) drawn from `--seed` (random, and printed, when not given).

mod adversarial;
mod ledger;
mod proxy;
mod scenarios;

use std::process::ExitCode;
use std::time::Duration;

use ledger::Row;
use scenarios::Scale;

type Scenario = fn(Scale) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<Row>> + Send>>;

const SCENARIOS: &[(&str, Scenario)] = &[
    ("server-kill", |s| Box::pin(scenarios::server_kill(s))),
    ("consumer-kill", |s| Box::pin(scenarios::consumer_kill(s))),
    ("cluster", |s| Box::pin(scenarios::cluster_leader_kill(s))),
    ("network-cut", |s| Box::pin(scenarios::network_cut(s))),
    ("slow-backlog", |s| Box::pin(scenarios::slow_backlog(s))),
    ("bad-input", |s| Box::pin(scenarios::bad_input_storm(s))),
    ("pinned-takeover", |s| {
        Box::pin(scenarios::pinned_takeover(s))
    }),
    ("adversarial", |s| Box::pin(adversarial::adversarial(s))),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if args.first().map(String::as_str) == Some("child-consumer") {
        let url = args.get(1).cloned().unwrap_or_default();
        let pinned = args.get(2).map(String::as_str) == Some("pinned");
        return match runtime.block_on(scenarios::child_consumer(&url, pinned)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("child consumer: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let mut short = false;
    let mut json = false;
    let mut only = None;
    let mut skip = Vec::new();
    let mut seed = None;
    let mut count = None;
    let mut rest = args.iter();
    let usage = |bad: &str| {
        eprintln!(
            "usage: eventhub-faults [--short] [--json] [--only NAME] [--skip NAME]… [--seed N] \
             [--count N]  ({bad}; scenarios: {})",
            SCENARIOS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
        ExitCode::from(2)
    };
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| rest.next().cloned().ok_or(format!("{name} needs a value"));
        let parsed = match arg.as_str() {
            "--short" => {
                short = true;
                Ok(())
            }
            "--json" => {
                json = true;
                Ok(())
            }
            "--only" => value("--only").map(|v| only = Some(v)),
            "--skip" => value("--skip").map(|v| skip.push(v)),
            "--seed" => value("--seed").and_then(|v| {
                v.parse()
                    .map(|n| seed = Some(n))
                    .map_err(|e| format!("--seed {v}: {e}"))
            }),
            "--count" => value("--count").and_then(|v| {
                v.parse()
                    .map(|n| count = Some(n))
                    .map_err(|e| format!("--count {v}: {e}"))
            }),
            other => Err(format!("unknown argument {other}")),
        };
        if let Err(bad) = parsed {
            return usage(&bad);
        }
    }
    for name in only.iter().chain(&skip) {
        if !SCENARIOS.iter().any(|(n, _)| n == name) {
            return usage(&format!("no scenario {name}"));
        }
    }
    let mut scale = if short { Scale::SHORT } else { Scale::LONG };
    scale.seed = seed;
    if let Some(count) = count {
        scale.adversarial = count;
    }
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (name, run) in SCENARIOS {
        if only.as_ref().is_some_and(|o| o != name) || skip.iter().any(|s| s == name) {
            continue;
        }
        eprintln!("running {name}…");
        match runtime.block_on(run(scale)) {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("{name} FAILED: {e:#}");
                failed.push(format!("{name}: {e:#}"));
            }
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
    if json {
        let out: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "scenario": r.scenario,
                    "acknowledged": r.acknowledged,
                    "handled": r.handled,
                    "duplicates_seen": r.duplicates_seen,
                    "duplicates_removed": r.duplicates_removed,
                    "lost": r.lost,
                    "dlq": r.dlq,
                    "seconds": r.duration.as_secs_f64(),
                    "notes": r.notes,
                    "table": r.table,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "scenarios": out, "failed": failed })
        );
    } else {
        print_table(&rows);
        for f in &failed {
            println!("FAILED {f}");
        }
    }
    if failed.is_empty() && rows.iter().all(|r| r.lost == 0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<42} {:>7} {:>7} {:>9} {:>9} {:>5} {:>5} {:>8}",
        "scenario", "acked", "handled", "dup seen", "dup rmvd", "lost", "dlq", "time"
    );
    for r in rows {
        println!(
            "{:<42} {:>7} {:>7} {:>9} {:>9} {:>5} {:>5} {:>7.1}s",
            r.scenario,
            r.acknowledged,
            r.handled,
            r.duplicates_seen,
            r.duplicates_removed,
            r.lost,
            r.dlq,
            r.duration.as_secs_f64()
        );
    }
    println!();
    for r in rows {
        println!("{}: {}", r.scenario, r.notes);
    }
    for r in rows.iter().filter(|r| !r.table.is_empty()) {
        println!();
        print!("{}", r.table);
    }
}
