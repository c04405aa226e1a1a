//! `eventhub streams` and `eventhub streams info NAME`.

use async_nats::jetstream::stream::Info;
use futures::TryStreamExt;
use serde_json::json;

use crate::connect::ServerArgs;
use crate::consumers;
use crate::output::say;
use crate::output::{Table, bytes, duration, print_json, time};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// One stream: configuration, state and consumers.
    Info {
        /// Stream name, e.g. IDENTITY.
        name: String,
    },
}

pub(crate) async fn run(
    server: &ServerArgs,
    command: Option<Command>,
    json: bool,
) -> anyhow::Result<()> {
    let client = server.connect().await?;
    match command {
        None => list(&client, json).await,
        Some(Command::Info { name }) => info(&client, &name, json).await,
    }
}

async fn list(client: &eventhub::Client, json: bool) -> anyhow::Result<()> {
    let mut infos: Vec<Info> = client.jetstream().streams().try_collect().await?;
    infos.sort_by(|a, b| a.config.name.cmp(&b.config.name));
    if json {
        print_json(&json!(infos.iter().map(to_json).collect::<Vec<_>>()));
        return Ok(());
    }
    let mut table = Table::new(&[
        "STREAM",
        "SUBJECTS",
        "MESSAGES",
        "BYTES",
        "FIRST",
        "LAST",
        "CONSUMERS",
    ]);
    for i in &infos {
        let s = &i.state;
        table.row(vec![
            i.config.name.clone(),
            i.config.subjects.join(","),
            s.messages.to_string(),
            bytes(s.bytes),
            format!("#{} {}", s.first_sequence, time(s.first_timestamp)),
            format!("#{} {}", s.last_sequence, time(s.last_timestamp)),
            s.consumer_count.to_string(),
        ]);
    }
    if table.is_empty() {
        say!("no streams on the server: run `eventhub topology apply` to create them");
    } else {
        table.print();
    }
    Ok(())
}

async fn info(client: &eventhub::Client, name: &str, json: bool) -> anyhow::Result<()> {
    let mut stream = crate::connect::open(client, name).await?;
    let info = stream.info().await?.clone();
    let consumer_infos = crate::connect::consumers_of(&stream).await?;
    if json {
        let mut doc = to_json(&info);
        doc["consumers"] = json!(
            consumer_infos
                .iter()
                .map(consumers::to_json)
                .collect::<Vec<_>>()
        );
        print_json(&doc);
        return Ok(());
    }
    let c = &info.config;
    let s = &info.state;
    let rows = [
        ("Stream", c.name.clone()),
        ("Description", c.description.clone().unwrap_or_default()),
        ("Subjects", c.subjects.join(", ")),
        ("Retention", format!("{:?}", c.retention)),
        ("Storage", format!("{:?}", c.storage)),
        ("Replicas", c.num_replicas.to_string()),
        (
            "Max age",
            if c.max_age.is_zero() {
                "unlimited".into()
            } else {
                duration(c.max_age)
            },
        ),
        ("Max bytes", limit(c.max_bytes)),
        ("Max msg size", limit(i64::from(c.max_message_size))),
        ("Duplicate window", duration(c.duplicate_window)),
        ("Discard", format!("{:?}", c.discard)),
        ("Messages", s.messages.to_string()),
        ("Bytes", bytes(s.bytes)),
        (
            "First",
            format!("#{} {}", s.first_sequence, time(s.first_timestamp)),
        ),
        (
            "Last",
            format!("#{} {}", s.last_sequence, time(s.last_timestamp)),
        ),
        ("Subjects stored", s.subjects_count.to_string()),
        ("Consumers", s.consumer_count.to_string()),
    ];
    for (k, v) in rows {
        say!("{k:>17}: {v}");
    }
    if !consumer_infos.is_empty() {
        say!();
        consumers::table(&consumer_infos).print();
    }
    Ok(())
}

fn limit(n: i64) -> String {
    if n <= 0 {
        "unlimited".to_string()
    } else {
        bytes(n.unsigned_abs())
    }
}

fn to_json(i: &Info) -> serde_json::Value {
    let c = &i.config;
    let s = &i.state;
    json!({
        "name": c.name,
        "description": c.description,
        "subjects": c.subjects,
        "retention": format!("{:?}", c.retention).to_lowercase(),
        "storage": format!("{:?}", c.storage).to_lowercase(),
        "replicas": c.num_replicas,
        "max_age_secs": c.max_age.as_secs(),
        "max_bytes": c.max_bytes,
        "max_msg_size": c.max_message_size,
        "duplicate_window_secs": c.duplicate_window.as_secs(),
        "messages": s.messages,
        "bytes": s.bytes,
        "first_sequence": s.first_sequence,
        "first_time": s.first_timestamp,
        "last_sequence": s.last_sequence,
        "last_time": s.last_timestamp,
        "consumers": s.consumer_count,
    })
}
