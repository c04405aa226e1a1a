//! `eventhub dlq list|show|replay|purge`.

use eventhub::DeadLetter;
use eventhub::dlq::DeadLetterFilter;
use eventhub::dlq::PayloadStorage;
use eventhub::wire::headers;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::output::say;
use crate::output::{Table, clean, cut, parse_since, payload_json, print_json, time};
use crate::{ServerArgs, Usage};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Dead letters, oldest first.
    List {
        /// Only this durable consumer's (e.g. profile__user_created).
        #[arg(long)]
        consumer: Option<String>,
        /// Only this event type's (e.g. user.created).
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Only those dead-lettered since: a duration back (15m, 2h, 7d) or an RFC 3339 time.
        #[arg(long, value_parser = parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// One dead letter: why it failed, its headers and payload.
    Show {
        /// The entry's id (its sequence in EVENTHUB_DLQ).
        id: u64,
    },
    /// Publish dead letters again to their original subject, for the consumer that failed;
    /// each leaves the DLQ only once its replay is acknowledged.
    Replay {
        /// Entry ids.
        ids: Vec<u64>,
        /// Every entry of this consumer.
        #[arg(long, conflicts_with_all = ["ids", "all"])]
        consumer: Option<String>,
        /// Every entry.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Only list what would be replayed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete dead letters for good.
    Purge {
        /// Entry ids.
        ids: Vec<u64>,
        /// Every entry of this consumer.
        #[arg(long, conflicts_with = "ids")]
        consumer: Option<String>,
    },
}

pub(crate) async fn run(server: &ServerArgs, command: Command, json: bool) -> anyhow::Result<()> {
    let client = server.connect().await?;
    let dl = client.dead_letters();
    match command {
        Command::List {
            consumer,
            event_type,
            since,
            limit,
        } => {
            let entries = dl
                .list(&{
                    let mut filter = DeadLetterFilter::default();
                    filter.consumer = consumer;
                    filter.event_type = event_type;
                    filter.since = since;
                    filter.limit = limit;
                    filter
                })
                .await?;
            if json {
                print_json(&json!(entries.iter().map(to_json).collect::<Vec<_>>()));
            } else if entries.is_empty() {
                say!("no dead letters");
            } else {
                let mut table = Table::new(&[
                    "ID",
                    "FAILED AT",
                    "CONSUMER",
                    "REASON",
                    "DELIVERIES",
                    "EVENT",
                    "ERROR",
                ]);
                for e in &entries {
                    table.row(vec![
                        e.id.to_string(),
                        time(e.failed_at),
                        e.consumer.clone(),
                        e.reason.to_string(),
                        e.deliveries.to_string(),
                        event_label(e),
                        cut(&e.error, 60),
                    ]);
                }
                table.print();
            }
        }
        Command::Show { id } => {
            let e = dl.get(id).await?;
            if json {
                print_json(&to_json(&e));
            } else {
                show(&e);
            }
        }
        Command::Replay {
            ids,
            consumer,
            all,
            dry_run,
        } => {
            let ids = select(&dl, ids, consumer, all, "replay").await?;
            if dry_run {
                return report(json, "would replay", &ids, &[]);
            }
            let mut failures = Vec::new();
            let mut done = Vec::new();
            let bar = progress(ids.len());
            for id in &ids {
                match dl.replay(*id).await {
                    Ok(r) => done.push((*id, r.stream, r.sequence)),
                    Err(e) => failures.push((*id, e.to_string())),
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            if json {
                print_json(&json!({
                    "replayed": done.iter().map(|(id, stream, seq)| json!({
                        "id": id, "stream": stream, "sequence": seq,
                    })).collect::<Vec<_>>(),
                    "failed": failures.iter().map(|(id, e)| json!({"id": id, "error": e})).collect::<Vec<_>>(),
                }));
            } else {
                for (id, stream, seq) in &done {
                    say!("replayed dead letter {id} -> {stream} #{seq}");
                }
                say!("{} replayed, {} failed", done.len(), failures.len());
            }
            fail_if_any(&failures, "replayed")?;
        }
        Command::Purge { ids, consumer } => {
            let ids = select(&dl, ids, consumer, false, "purge").await?;
            let mut failures = Vec::new();
            let mut done = Vec::new();
            let bar = progress(ids.len());
            for id in &ids {
                match dl.delete(*id).await {
                    Ok(()) => done.push(*id),
                    Err(e) => failures.push((*id, e.to_string())),
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            report(json, "purged", &done, &failures)?;
        }
    }
    Ok(())
}

/// The ids a replay or purge applies to.
async fn select(
    dl: &eventhub::DeadLetters,
    ids: Vec<u64>,
    consumer: Option<String>,
    all: bool,
    verb: &str,
) -> anyhow::Result<Vec<u64>> {
    if !ids.is_empty() {
        return Ok(ids);
    }
    if consumer.is_none() && !all {
        let choices = if verb == "replay" {
            "ids, --consumer C or --all"
        } else {
            "ids or --consumer C"
        };
        return Err(Usage(format!("say which dead letters to {verb}: {choices}")).into());
    }
    let entries = dl
        .list(&{
            let mut filter = DeadLetterFilter::default();
            filter.consumer = consumer;
            filter
        })
        .await?;
    Ok(entries.iter().map(|e| e.id).collect())
}

fn progress(len: usize) -> ProgressBar {
    // Only worth a bar on large sets; indicatif draws nothing when stderr is not a terminal.
    if len < 20 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}") {
        bar.set_style(style);
    }
    bar
}

fn report(json: bool, verb: &str, ids: &[u64], failures: &[(u64, String)]) -> anyhow::Result<()> {
    if json {
        print_json(&json!({
            verb.replace(' ', "_"): ids,
            "failed": failures.iter().map(|(id, e)| json!({"id": id, "error": e})).collect::<Vec<_>>(),
        }));
    } else {
        let list = ids
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        say!(
            "{verb} {} dead letter(s){}",
            ids.len(),
            if list.is_empty() {
                String::new()
            } else {
                format!(": {list}")
            }
        );
    }
    fail_if_any(failures, verb)
}

fn fail_if_any(failures: &[(u64, String)], verb: &str) -> anyhow::Result<()> {
    if failures.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = failures
        .iter()
        .map(|(id, e)| format!("  {id}: {e}"))
        .collect();
    anyhow::bail!(
        "{} dead letter(s) not {verb} (they stay in the DLQ):\n{}",
        failures.len(),
        lines.join("\n")
    )
}

fn event_label(e: &DeadLetter) -> String {
    match &e.event_type {
        Some((t, v)) => format!("{t} v{v}"),
        None => e.subject.clone(),
    }
}

fn show(e: &DeadLetter) {
    let rows = [
        ("Dead letter", e.id.to_string()),
        ("Reason", e.reason.to_string()),
        ("Error", e.error.clone()),
        ("Consumer", e.consumer.clone()),
        ("Deliveries", e.deliveries.to_string()),
        ("Failed at", time(e.failed_at)),
        ("Event", event_label(e)),
        ("Event id", e.event_id.clone().unwrap_or_else(|| "-".into())),
        (
            "From",
            format!("{} #{} on {}", e.stream, e.sequence, e.subject),
        ),
    ];
    for (k, v) in rows {
        say!("{k:>12}: {}", clean(&v));
    }
    say!("     Headers:");
    let mut headers: Vec<_> = e.headers.iter().collect();
    headers.sort_by_key(|(name, _)| name.to_string());
    for (name, values) in headers {
        let name: &str = name.as_ref();
        for v in values {
            say!("              {}: {}", clean(name), clean(v.as_str()));
        }
    }
    say!("     Payload:{}", storage_note(e));
    match payload(e) {
        serde_json::Value::String(text) => say!("              {}", clean(&text)),
        // serde_json escapes every control character in strings.
        other => {
            let pretty = serde_json::to_string_pretty(&other).unwrap_or_default();
            for line in pretty.lines() {
                say!("              {line}");
            }
        }
    }
}

/// How the entry holds its payload, when not as a plain copy.
fn storage_note(e: &DeadLetter) -> &'static str {
    match e.payload_storage {
        PayloadStorage::Compressed => {
            " (stored compressed: it was too big with the entry's headers)"
        }
        PayloadStorage::Referenced => {
            " (read from the original stream: too big to store in the entry)"
        }
        PayloadStorage::Unavailable => {
            " (not stored: too big, and no longer in the original stream)"
        }
        _ => "",
    }
}

/// The payload for display, decoded by its content type.
fn payload(e: &DeadLetter) -> serde_json::Value {
    let content_type = e.headers.get(headers::CONTENT_TYPE).map(|v| v.as_str());
    let event = e.event_type.as_ref().map(|(t, v)| (t.as_str(), *v));
    payload_json(event, content_type, &e.payload)
}

fn to_json(e: &DeadLetter) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = e
        .headers
        .iter()
        .map(|(k, vs)| {
            let k: &str = k.as_ref();
            (
                k.to_string(),
                json!(vs.iter().map(|v| v.as_str()).collect::<Vec<_>>()),
            )
        })
        .collect();
    json!({
        "id": e.id,
        "reason": e.reason.as_str(),
        "error": e.error,
        "consumer": e.consumer,
        "deliveries": e.deliveries,
        "failed_at": e.failed_at,
        "stream": e.stream,
        "sequence": e.sequence,
        "subject": e.subject,
        "event_id": e.event_id,
        "event_type": e.event_type.as_ref().map(|(t, _)| t),
        "version": e.event_type.as_ref().map(|(_, v)| v),
        "headers": headers,
        "payload_storage": format!("{:?}", e.payload_storage).to_lowercase(),
        "payload": payload(e),
    })
}
