//! `eventhub sagas list|show`: saga instances as eventhub-patterns stores them, read as JSON.
//!
//! The CLI cannot know a saga's state type (sagas are user code), so it reads the documented
//! layout only: one key-value bucket `SAGA_<NAME>` per saga, one entry per instance keyed by
//! its id, holding `{state, status, step, timeout: {token, at}?, history: [{step, input,
//! status, at}], seen}`; the timer of an instance is the last message on
//! `saga.<name>.timer.<id>` in the stream `SAGA_<NAME>`, armed while it has a `Nats-Schedule`
//! header.

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::connect::{ServerArgs, Usage};
use crate::output::{Table, clean, cut, duration, print_json, say, time};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Every instance of every saga (or of one): status, steps, last input, pending timeout.
    List {
        /// Only this saga (its `Saga::NAME`, e.g. `registration`).
        saga: Option<String>,
        /// Only instances with this status (running, completed, compensated, failed).
        #[arg(long)]
        status: Option<String>,
    },
    /// One instance: its state, status, step history and pending timeout.
    Show {
        /// The instance id (its correlation key).
        id: String,
        /// Its saga (needed when several sagas have an instance of that id).
        #[arg(long)]
        saga: Option<String>,
    },
}

/// What the CLI reads of a record; everything else is shown as stored.
#[derive(Debug, Deserialize)]
struct Record {
    status: String,
    step: u64,
    timeout: Option<Timeout>,
    #[serde(default)]
    history: Vec<Entry>,
    #[serde(default)]
    state: Value,
}

#[derive(Debug, Deserialize)]
struct Timeout {
    token: String,
    at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    step: u64,
    input: String,
    status: String,
    at: DateTime<Utc>,
}

/// One instance as found: its record, or why it could not be read.
struct Instance {
    saga: String,
    id: String,
    revision: u64,
    record: Result<Record, String>,
}

pub(crate) async fn run(server: &ServerArgs, command: Command, json: bool) -> anyhow::Result<()> {
    let client = server.connect().await?;
    match command {
        Command::List { saga, status } => {
            let sagas = match saga {
                Some(s) => vec![checked(&s)?],
                None => sagas(&client).await?,
            };
            let mut all = Vec::new();
            for saga in &sagas {
                let bucket = bucket(&client, saga).await?;
                let mut keys: Vec<String> = bucket.keys().await?.try_collect().await?;
                keys.sort();
                for id in keys {
                    if let Some(i) = instance(&bucket, saga, &id).await? {
                        all.push(i);
                    }
                }
            }
            if let Some(status) = &status {
                all.retain(|i| i.record.as_ref().is_ok_and(|r| &r.status == status));
            }
            list(&all, json);
            Ok(())
        }
        Command::Show { id, saga } => {
            if !valid_key(&id) {
                return Err(Usage(format!(
                    "`{}` is not a saga instance id ([A-Za-z0-9_-], at most 128 characters)",
                    clean(&id)
                ))
                .into());
            }
            let sagas = match saga {
                Some(s) => vec![checked(&s)?],
                None => sagas(&client).await?,
            };
            let mut found = Vec::new();
            for saga in &sagas {
                let bucket = bucket(&client, saga).await?;
                if let Some(i) = instance(&bucket, saga, &id).await? {
                    found.push(i);
                }
            }
            match found.len() {
                0 => {
                    anyhow::bail!("no saga has an instance {id}; `eventhub sagas list` lists them")
                }
                1 => {
                    let i = found.remove(0);
                    let timer = timer_scheduled(&client, &i).await;
                    show(&i, timer, json)
                }
                _ => {
                    let names: Vec<&str> = found.iter().map(|i| i.saga.as_str()).collect();
                    Err(Usage(format!(
                        "sagas {} each have an instance {id}: pick one with --saga",
                        names.join(", ")
                    ))
                    .into())
                }
            }
        }
    }
}

/// A saga name as `Saga::NAME` allows it.
fn checked(name: &str) -> anyhow::Result<String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Usage(format!(
            "`{}` is not a saga name (lowercase letters, digits and _)",
            clean(name)
        ))
        .into());
    }
    Ok(name.to_string())
}

fn valid_key(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Every saga with a bucket: `KV_SAGA_<NAME>` streams, by name.
async fn sagas(client: &eventhub::Client) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = client
        .jetstream()
        .stream_names()
        .try_collect::<Vec<String>>()
        .await?
        .into_iter()
        .filter_map(|s| s.strip_prefix("KV_SAGA_").map(str::to_ascii_lowercase))
        .collect();
    names.sort();
    Ok(names)
}

async fn bucket(client: &eventhub::Client, saga: &str) -> anyhow::Result<kv::Store> {
    let name = format!("SAGA_{}", saga.to_ascii_uppercase());
    client
        .jetstream()
        .get_key_value(&name)
        .await
        .map_err(|e| anyhow::anyhow!("no saga {saga} (bucket {name}): {e}"))
}

async fn instance(bucket: &kv::Store, saga: &str, id: &str) -> anyhow::Result<Option<Instance>> {
    let Some(entry) = bucket.entry(id).await? else {
        return Ok(None);
    };
    if entry.operation != kv::Operation::Put {
        return Ok(None);
    }
    Ok(Some(Instance {
        saga: saga.to_string(),
        id: id.to_string(),
        revision: entry.revision,
        // A record someone else wrote is shown as unreadable, not allowed to stop the list.
        record: serde_json::from_slice(&entry.value).map_err(|e| e.to_string()),
    }))
}

/// Whether the server still holds the instance's timer (`None`: could not tell).
async fn timer_scheduled(client: &eventhub::Client, i: &Instance) -> Option<bool> {
    let stream = client
        .jetstream()
        .get_stream(format!("SAGA_{}", i.saga.to_ascii_uppercase()))
        .await
        .ok()?;
    let subject = format!("saga.{}.timer.{}", i.saga, i.id);
    // A finished saga's timer subject keeps a message that rolled the schedule up.
    match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(m) => Some(m.headers.get("Nats-Schedule").is_some()),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Some(false),
        Err(_) => None,
    }
}

fn due(at: DateTime<Utc>) -> String {
    let now = Utc::now();
    match (at - now).to_std() {
        Ok(d) => format!("in {}", duration(d)),
        Err(_) => format!(
            "{} overdue",
            duration((now - at).to_std().unwrap_or_default())
        ),
    }
}

fn timeout_json(t: &Timeout) -> Value {
    json!({ "token": t.token, "at": t.at })
}

fn list(all: &[Instance], json: bool) {
    if json {
        let rows: Vec<Value> = all
            .iter()
            .map(|i| match &i.record {
                Ok(r) => json!({
                    "saga": i.saga, "id": i.id, "status": r.status, "step": r.step,
                    "last_input": r.history.last().map(|h| &h.input),
                    "updated": r.history.last().map(|h| h.at),
                    "timeout": r.timeout.as_ref().map(timeout_json),
                }),
                Err(e) => json!({ "saga": i.saga, "id": i.id, "error": e }),
            })
            .collect();
        print_json(&json!(rows));
        return;
    }
    if all.is_empty() {
        say!("no saga instances");
        return;
    }
    let mut table = Table::new(&[
        "SAGA",
        "ID",
        "STATUS",
        "STEP",
        "UPDATED",
        "LAST INPUT",
        "TIMEOUT",
    ]);
    for i in all {
        match &i.record {
            Ok(r) => table.row(vec![
                i.saga.clone(),
                clean(&i.id).into_owned(),
                clean(&r.status).into_owned(),
                r.step.to_string(),
                r.history.last().map_or("-".into(), |h| time(h.at)),
                r.history
                    .last()
                    .map_or("-".into(), |h| cut(&clean(&h.input), 60)),
                r.timeout.as_ref().map_or("-".into(), |t| {
                    format!("{} {}", cut(&clean(&t.token), 30), due(t.at))
                }),
            ]),
            Err(e) => table.row(vec![
                i.saga.clone(),
                clean(&i.id).into_owned(),
                "unreadable".into(),
                "-".into(),
                "-".into(),
                cut(&clean(e), 60),
                "-".into(),
            ]),
        }
    }
    table.print();
}

fn show(i: &Instance, timer: Option<bool>, json: bool) -> anyhow::Result<()> {
    let r = i.record.as_ref().map_err(|e| {
        anyhow::anyhow!(
            "saga {} instance {}: the record (revision {}) is not a saga record: {e}",
            i.saga,
            i.id,
            i.revision
        )
    })?;
    if json {
        print_json(&json!({
            "saga": i.saga, "id": i.id, "revision": i.revision, "status": r.status,
            "step": r.step,
            "timeout": r.timeout.as_ref().map(timeout_json),
            "timer_scheduled": timer,
            "state": r.state,
            "history": r.history.iter().map(|h| json!({
                "step": h.step, "input": h.input, "status": h.status, "at": h.at,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    say!("saga:     {}", i.saga);
    say!("id:       {}", clean(&i.id));
    say!("status:   {}", clean(&r.status));
    say!("steps:    {} (revision {})", r.step, i.revision);
    match &r.timeout {
        Some(t) => say!(
            "timeout:  {} at {} ({}){}",
            clean(&t.token),
            time(t.at),
            due(t.at),
            match timer {
                Some(true) => "",
                Some(false) => "; no timer in the saga's stream: it will not fire",
                None => "",
            }
        ),
        None => say!("timeout:  -"),
    }
    say!("state:");
    let state = serde_json::to_string_pretty(&r.state).unwrap_or_default();
    for line in state.lines() {
        say!("  {}", clean(line));
    }
    say!("history:");
    let mut table = Table::new(&["STEP", "AT", "INPUT", "STATUS"]);
    for h in &r.history {
        table.row(vec![
            h.step.to_string(),
            time(h.at),
            clean(&h.input).into_owned(),
            clean(&h.status).into_owned(),
        ]);
    }
    table.print();
    Ok(())
}
