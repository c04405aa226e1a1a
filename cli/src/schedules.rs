//! `eventhub schedules list [STREAM]`: the pending schedules of streams that allow them.

use futures::TryStreamExt;
use serde_json::json;

use crate::connect::ServerArgs;
use crate::output::{Table, print_json, say};
use eventhub::publish::schedule_headers as sh;
use eventhub::wire::headers as ce;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Pending schedules: key, event, schedule, target (of every stream with
    /// `allow_msg_schedules`, or of STREAM).
    List {
        /// Only this stream's schedules.
        stream: Option<String>,
    },
}

/// One pending schedule.
struct Pending {
    stream: String,
    /// The service whose namespace it waits in (`None`: a subject of eventhub before the
    /// namespaces, `schedules.<stream>.<key>`).
    service: Option<String>,
    key: String,
    subject: String,
    schedule: String,
    time_zone: Option<String>,
    target: String,
    event_type: Option<String>,
    id: Option<String>,
    sequence: u64,
}

pub(crate) async fn run(server: &ServerArgs, command: Command, json: bool) -> anyhow::Result<()> {
    let Command::List { stream } = command;
    let client = server.connect().await?;
    let names: Vec<String> = match stream {
        Some(name) => vec![name],
        None => {
            let mut names: Vec<String> = client.jetstream().stream_names().try_collect().await?;
            names.sort();
            names
        }
    };
    let explicit = names.len() == 1;
    let mut pending = Vec::new();
    for name in &names {
        let stream = crate::connect::open(&client, name).await?;
        if !stream.cached_info().config.allow_message_schedules {
            if explicit {
                anyhow::bail!(
                    "stream {name} does not allow message schedules (set \
                     `\"allow_msg_schedules\": true` on it in streams.json and provision)"
                );
            }
            continue;
        }
        let prefix = format!("{}.{name}.", eventhub::topology::SCHEDULE_PREFIX);
        let mut subjects: Vec<String> = stream
            .info_with_subjects(format!("{prefix}>"))
            .await?
            .try_collect::<Vec<(String, usize)>>()
            .await?
            .into_iter()
            .map(|(subject, _)| subject)
            .collect();
        subjects.sort();
        for subject in subjects {
            // Gone meanwhile (fired or cancelled): nothing pending.
            let Ok(message) = stream.direct_get_last_for_subject(&subject).await else {
                continue;
            };
            let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_string());
            // A cancel marker (`<schedule subject>.cancelled`), not a schedule.
            if header(sh::SCHEDULE).is_none() {
                continue;
            }
            let owner = eventhub::topology::schedule_owner(&subject).map(str::to_string);
            pending.push(Pending {
                stream: name.clone(),
                key: subject.rsplit('.').next().unwrap_or(&subject).to_string(),
                service: owner,
                schedule: header(sh::SCHEDULE).unwrap_or_default(),
                time_zone: header(sh::SCHEDULE_TIME_ZONE),
                target: header(sh::SCHEDULE_TARGET).unwrap_or_default(),
                event_type: header(ce::TYPE),
                id: header(ce::ID),
                sequence: message.sequence,
                subject,
            });
        }
    }
    if json {
        print_json(&json!(
            pending
                .iter()
                .map(|p| json!({
                    "stream": p.stream,
                    "service": p.service,
                    "key": p.key,
                    "subject": p.subject,
                    "schedule": p.schedule,
                    "time_zone": p.time_zone,
                    "target": p.target,
                    "event_type": p.event_type,
                    "event_id": p.id,
                    "sequence": p.sequence,
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    if pending.is_empty() {
        say!("no pending schedules");
        return Ok(());
    }
    let mut table = Table::new(&[
        "STREAM", "SERVICE", "KEY", "EVENT", "SCHEDULE", "TARGET", "EVENT ID",
    ]);
    for p in &pending {
        let schedule = match &p.time_zone {
            Some(zone) => format!("{} ({zone})", p.schedule),
            None => p.schedule.clone(),
        };
        table.row(vec![
            p.stream.clone(),
            p.service.clone().unwrap_or_else(|| "-".into()),
            p.key.clone(),
            p.event_type.clone().unwrap_or_else(|| "-".into()),
            schedule,
            p.target.clone(),
            p.id.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table.print();
    Ok(())
}
