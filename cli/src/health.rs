//! `eventhub health [--max-lag N]`: connected, every declared stream present, and the lag of
//! every durable eventhub manages. Exit 0 healthy, 1 not.

use std::collections::BTreeSet;

use async_nats::jetstream::consumer::Info;
use futures::TryStreamExt;
use serde_json::json;

use crate::connect::ServerArgs;
use crate::consumers;
use crate::output::say;
use crate::output::{Table, print_json};

/// Options of `eventhub health`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A consumer whose lag (pending plus ack pending) is above this makes the system unhealthy.
    #[arg(long, default_value_t = eventhub::health::HealthOptions::default().max_lag)]
    max_lag: u64,
}

/// Why the system is not healthy (exit 1; the report is on stdout).
#[derive(Debug)]
struct Unhealthy(String);

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unhealthy: {}", self.0)
    }
}

impl std::error::Error for Unhealthy {}

/// The streams that must exist: the declared ones and eventhub's own.
fn expected_streams() -> Vec<&'static str> {
    eventhub_catalog::events::STREAMS
        .iter()
        .map(|s| s.name)
        .chain([
            eventhub::topology::DLQ_STREAM,
            eventhub::topology::ADVISORY_STREAM,
        ])
        .collect()
}

pub(crate) async fn run(server: &ServerArgs, args: Args, json: bool) -> anyhow::Result<()> {
    let client = match server.connect().await {
        Ok(client) => client,
        Err(e) => {
            if json {
                print_json(&json!({
                    "connected": false,
                    "server": server.server,
                    "error": format!("{e:#}"),
                    "max_lag": args.max_lag,
                    "streams": expected_streams()
                        .iter()
                        .map(|s| json!({"name": s, "present": false}))
                        .collect::<Vec<_>>(),
                    "consumers": [],
                    "healthy": false,
                }));
            } else {
                say!("connected  no ({})", server.server);
            }
            return Err(Unhealthy(format!("{e:#}")).into());
        }
    };
    let present: BTreeSet<String> = client.jetstream().stream_names().try_collect().await?;
    let streams: Vec<(&str, bool)> = expected_streams()
        .into_iter()
        .map(|s| (s, present.contains(s)))
        .collect();
    let mut managed: Vec<Info> = Vec::new();
    for name in &present {
        let stream = crate::connect::open(&client, name).await?;
        managed.extend(
            crate::connect::consumers_of(&stream)
                .await?
                .into_iter()
                .filter(|i| i.config.metadata.contains_key("eventhub.managed")),
        );
    }
    let lag = |i: &Info| i.num_pending + i.num_ack_pending as u64;
    let lagging = |i: &Info| lag(i) > args.max_lag;

    let missing: Vec<&str> = streams.iter().filter(|s| !s.1).map(|s| s.0).collect();
    let behind: Vec<&str> = managed
        .iter()
        .filter(|i| lagging(i))
        .map(|i| i.name.as_str())
        .collect();
    let findings = crate::doctor::examine(&client, None).await?;
    let problems: Vec<&crate::doctor::Finding> = findings
        .iter()
        .filter(|f| f.severity == crate::doctor::Severity::Problem)
        .collect();
    let healthy = missing.is_empty() && behind.is_empty() && problems.is_empty();

    if json {
        print_json(&json!({
            "connected": true,
            "server": server.server,
            "max_lag": args.max_lag,
            "streams": streams
                .iter()
                .map(|(name, present)| json!({"name": name, "present": present}))
                .collect::<Vec<_>>(),
            "consumers": managed
                .iter()
                .map(|i| json!({
                    "stream": i.stream_name,
                    "name": i.name,
                    "pending": i.num_pending,
                    "ack_pending": i.num_ack_pending,
                    "lag": lag(i),
                    "lagging": lagging(i),
                    "stuck": consumers::stuck(i),
                }))
                .collect::<Vec<_>>(),
            "findings": findings.iter().map(crate::doctor::Finding::to_json).collect::<Vec<_>>(),
            "healthy": healthy,
        }));
    } else {
        say!("connected  yes ({})", server.server);
        say!();
        let mut table = Table::new(&["STREAM", "PRESENT"]);
        for (name, present) in &streams {
            let state = if *present { "yes" } else { "MISSING" };
            table.row(vec![name.to_string(), state.to_string()]);
        }
        table.print();
        say!();
        if managed.is_empty() {
            say!("no eventhub consumers");
        } else {
            let mut table = Table::new(&[
                "STREAM",
                "CONSUMER",
                "PENDING",
                "ACK PENDING",
                "LAG",
                "STATUS",
            ]);
            for i in &managed {
                let status = if lagging(i) {
                    format!("LAGGING: {} > max lag {}", lag(i), args.max_lag)
                } else {
                    consumers::stuck(i).unwrap_or_else(|| "ok".to_string())
                };
                table.row(vec![
                    i.stream_name.clone(),
                    i.name.clone(),
                    i.num_pending.to_string(),
                    i.num_ack_pending.to_string(),
                    lag(i).to_string(),
                    status,
                ]);
            }
            table.print();
        }
        if !findings.is_empty() {
            say!();
            for f in &findings {
                say!("{}", f.line());
            }
        }
        say!();
        say!("{}", if healthy { "healthy" } else { "UNHEALTHY" });
    }
    if healthy {
        return Ok(());
    }
    let mut why = Vec::new();
    if !missing.is_empty() {
        why.push(format!(
            "stream(s) missing: {} (`eventhub topology apply` creates them)",
            missing.join(", ")
        ));
    }
    if !behind.is_empty() {
        why.push(format!(
            "consumer(s) over max lag {}: {}",
            args.max_lag,
            behind.join(", ")
        ));
    }
    if !problems.is_empty() {
        why.push(format!(
            "{} problem(s): {}",
            problems.len(),
            problems
                .iter()
                .map(|f| f.line())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Err(Unhealthy(why.join("; ")).into())
}
