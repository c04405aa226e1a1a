//! `eventhub topology plan` / `apply`.

use eventhub::topology::ProvisionOptions;
use eventhub::topology::ProvisionReport;
use eventhub::topology::StreamAction;
use futures::TryStreamExt;
use serde_json::json;

use crate::connect::ServerArgs;
use crate::output::say;
use crate::output::{Table, print_json};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Compare the declared streams (schemas/streams.json plus eventhub's DLQ and advisory
    /// streams) with the server; change nothing.
    Plan(Options),
    /// Create missing streams and update drifted ones. Idempotent.
    Apply(Options),
}

#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// Replicas for every stream, overriding the declarations (3 on a cluster).
    #[arg(long)]
    replicas: Option<usize>,
}

pub(crate) async fn run(server: &ServerArgs, command: Command, json: bool) -> anyhow::Result<()> {
    let client = server.connect().await?;
    let (options, dry_run) = match command {
        Command::Plan(o) => (o, true),
        Command::Apply(o) => (o, false),
    };
    let report = client
        .provision_with(&{
            let mut provision = ProvisionOptions::new(&eventhub_catalog::TOPOLOGY).dry_run(dry_run);
            provision.replicas = options.replicas;
            provision
        })
        .await?;
    let orphans = orphan_consumers(&client).await?;
    if json {
        print_json(&json!({
            "dry_run": dry_run,
            "changed": report.changed(),
            "streams": report.streams.iter().map(|s| json!({
                "name": s.name,
                "action": s.action.to_string(),
                "drift": s.drift.iter().map(|d| json!({
                    "field": d.field, "declared": d.declared, "actual": d.actual,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "orphan_consumers": orphans.iter().map(|(stream, name, ty)| json!({
                "stream": stream, "name": name, "event_type": ty,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    print_report(&report);
    if !orphans.is_empty() {
        say!("\neventhub consumers of event types no longer in the catalog (left alone):");
        for (stream, name, ty) in &orphans {
            say!("  {stream}/{name} ({ty})");
        }
    }
    if dry_run && report.changed() {
        say!("\nrun `eventhub topology apply` to make these changes");
    } else if !report.changed() {
        say!("\nthe server matches the declarations");
    }
    Ok(())
}

fn print_report(report: &ProvisionReport) {
    let mut table = Table::new(&["STREAM", "ACTION", "DRIFT"]);
    for s in &report.streams {
        let drift = s
            .drift
            .iter()
            .map(|d| format!("{}: {} -> {}", d.field, d.actual, d.declared))
            .collect::<Vec<_>>()
            .join("; ");
        let action = match s.action {
            StreamAction::Unchanged => "unchanged".to_string(),
            other => other.to_string(),
        };
        table.row(vec![s.name.clone(), action, drift]);
    }
    table.print();
}

/// Consumers eventhub created for an event type this catalog no longer has.
async fn orphan_consumers(
    client: &eventhub::Client,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    for spec in eventhub_catalog::events::STREAMS {
        let Ok(stream) = client.jetstream().get_stream(spec.name).await else {
            continue;
        };
        let infos: Vec<_> = stream.consumers().try_collect().await?;
        for i in infos {
            if let Some(ty) = i.config.metadata.get("eventhub.event_type")
                && !eventhub_catalog::events::CATALOG
                    .iter()
                    .any(|e| e.event_type == ty)
            {
                out.push((spec.name.to_string(), i.name.clone(), ty.clone()));
            }
        }
    }
    Ok(out)
}
