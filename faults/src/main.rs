//! `eventhub-faults [--short] [--json] [--only NAME]`: the fault-injection suite.
//!
//! Every scenario starts its own nats-server(s), injects its fault during real publishing and
//! consuming, and counts by event id what the server acknowledged against what handlers
//! handled. It prints one row per scenario: acknowledged, handled, duplicates seen and removed,
//! lost (must be 0), dead letters, duration. Exit 1 when a scenario loses an event or fails.
//!
//! `--short` is the CI size (a few seconds per scenario); without it, the long run (100k-event
//! backlog, 10k events per fault).

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
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if args.first().map(String::as_str) == Some("child-consumer") {
        let url = args.get(1).cloned().unwrap_or_default();
        return match runtime.block_on(scenarios::child_consumer(&url)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("child consumer: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let short = args.iter().any(|a| a == "--short");
    let json = args.iter().any(|a| a == "--json");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    if let Some(bad) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "--short" | "--json" | "--only") && Some(*a) != only)
    {
        eprintln!(
            "usage: eventhub-faults [--short] [--json] [--only NAME]  (unknown argument {bad}; \
             scenarios: {})",
            SCENARIOS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::from(2);
    }
    let scale = if short { Scale::SHORT } else { Scale::LONG };
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (name, run) in SCENARIOS {
        if only.is_some_and(|o| o != name) {
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
}
