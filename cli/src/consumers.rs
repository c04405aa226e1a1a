//! `eventhub consumers [STREAM]`.

use std::time::Duration;

use async_nats::jetstream::consumer::{Info, PriorityPolicy};
use chrono::Utc;
use futures::TryStreamExt;
use serde_json::json;

use crate::connect::ServerArgs;
use crate::output::say;
use crate::output::{Table, duration, print_json};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Stops deliveries to a durable consumer until a time (events wait in the stream; the
    /// consumer's instances keep running and resume by themselves).
    Pause {
        /// The consumer, e.g. `payments__user_created`.
        name: String,
        /// For this long (30s, 15m, 2h, 7d) or until this RFC 3339 time.
        #[arg(long, value_parser = parse_until)]
        until: chrono::DateTime<Utc>,
        /// Its stream (default: the stream that has a consumer of that name).
        #[arg(long)]
        stream: Option<String>,
    },
    /// Moves a durable consumer to a position in its stream (nats-server's consumer reset):
    /// it delivers again from there. Events before it count as handled.
    Reset {
        /// The consumer.
        name: String,
        /// A stream sequence (1042), a duration before now (2h) or an RFC 3339 time: the first
        /// event it delivers next is the first of its events at or after it.
        #[arg(long, value_parser = crate::output::parse_position)]
        to: eventhub::StartFrom,
        /// Its stream (default: the stream that has a consumer of that name).
        #[arg(long)]
        stream: Option<String>,
    },
    /// Restarts deliveries to a paused consumer now.
    Resume {
        /// The consumer.
        name: String,
        /// Its stream (default: the stream that has a consumer of that name).
        #[arg(long)]
        stream: Option<String>,
    },
    /// Takes the pin from the active instance of a pinned (failover) consumer: the server pins
    /// a waiting instance, possibly the same one again, with a new pin id.
    Unpin {
        /// The consumer.
        name: String,
        /// Its stream (default: the stream that has a consumer of that name).
        #[arg(long)]
        stream: Option<String>,
    },
}

/// `--until`: a duration from now, or a time, which must be in the future.
fn parse_until(s: &str) -> Result<chrono::DateTime<Utc>, String> {
    let at = match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&Utc),
        // A duration back from now, turned forward.
        Err(_) => Utc::now() + (Utc::now() - crate::output::parse_since(s)?),
    };
    if at <= Utc::now() {
        return Err(format!("`{s}` is in the past: pause until a later time"));
    }
    Ok(at)
}

/// `consumers pause|resume|reset|unpin`.
pub(crate) async fn control(
    server: &ServerArgs,
    command: Command,
    json: bool,
) -> anyhow::Result<()> {
    let client = server.connect().await?;
    if let Command::Reset { name, to, stream } = command {
        return reset(&client, &name, to, stream, json).await;
    }
    let (name, stream, until) = match command {
        Command::Pause {
            name,
            until,
            stream,
        } => (name, stream, Some(until)),
        Command::Resume { name, stream } => (name, stream, None),
        Command::Unpin { name, stream } => return unpin(&client, name, stream, json).await,
        Command::Reset { .. } => unreachable!("handled above"),
    };
    let stream = match stream {
        Some(s) => crate::connect::open(&client, &s).await?,
        None => stream_of(&client, &name).await?,
    };
    let response = match until {
        Some(until) => stream.pause_consumer(&name, until).await,
        None => stream.resume_consumer(&name).await,
    }
    .map_err(|e| anyhow::anyhow!("cannot pause or resume consumer {name}: {e}"))?;
    let stream_name = stream.cached_info().config.name.clone();
    if json {
        print_json(&json!({
            "stream": stream_name,
            "name": name,
            "paused": response.paused,
            "pause_remaining_secs": response.pause_remaining.map(|d| d.as_secs_f64()),
        }));
    } else if response.paused {
        say!(
            "{stream_name} / {name}: paused for {} (events wait in the stream)",
            response.pause_remaining.map_or("-".into(), duration)
        );
    } else {
        say!("{stream_name} / {name}: delivering");
    }
    Ok(())
}

/// `consumers unpin`: the server's unpin API for the durable's priority group.
async fn unpin(
    client: &eventhub::Client,
    name: String,
    stream: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let stream = match stream {
        Some(s) => crate::connect::open(client, &s).await?,
        None => stream_of(client, &name).await?,
    };
    let info = stream
        .consumer_info(&name)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read consumer {name}: {e}"))?;
    if info.config.priority_policy != PriorityPolicy::PinnedClient {
        anyhow::bail!(
            "consumer {name} is not a pinned (failover) consumer: nothing to unpin \
             (ConsumerOptions::failover(Failover::pinned(..)) makes one)"
        );
    }
    let stream_name = stream.cached_info().config.name.clone();
    let mut unpinned = Vec::new();
    for group in &info.config.priority_groups {
        stream
            .unpin_consumer(&name, group)
            .await
            .map_err(|e| anyhow::anyhow!("cannot unpin consumer {name} ({group}): {e}"))?;
        unpinned.push(group.clone());
    }
    if json {
        print_json(&json!({"stream": stream_name, "name": name, "unpinned": unpinned}));
    } else {
        say!("{stream_name} / {name}: unpinned; the server pins a waiting instance");
    }
    Ok(())
}

/// `consumers reset NAME --to POSITION`: `$JS.API.CONSUMER.RESET.<stream>.<name>` (nats-server
/// 2.14+) with the stream sequence to deliver next; a time is first resolved to the sequence of
/// the consumer's first event at or after it.
async fn reset(
    client: &eventhub::Client,
    name: &str,
    to: eventhub::StartFrom,
    stream: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let mut stream = match stream {
        Some(s) => crate::connect::open(client, &s).await?,
        None => stream_of(client, name).await?,
    };
    let stream_name = stream.cached_info().config.name.clone();
    let consumer = stream
        .consumer_info(name)
        .await
        .map_err(|e| anyhow::anyhow!("no consumer {name} on stream {stream_name}: {e}"))?;
    let sequence = match to {
        eventhub::StartFrom::Sequence(n) => n,
        eventhub::StartFrom::Time(t) => first_at_or_after(&mut stream, &consumer, t).await?,
        _ => unreachable!("--to parses to a sequence or a time"),
    };
    let subject = format!("CONSUMER.RESET.{stream_name}.{name}");
    let answer: serde_json::Value = client
        .jetstream()
        .request(subject, &json!({ "seq": sequence }))
        .await
        .map_err(|e| anyhow::anyhow!("cannot reset consumer {name}: {e}"))?;
    if let Some(error) = answer.get("error") {
        let text = error["description"].as_str().unwrap_or("refused");
        if error["code"] == 404 && text.contains("consumer") {
            anyhow::bail!("cannot reset consumer {name}: {text}");
        }
        anyhow::bail!(
            "cannot reset consumer {name}: {text} (the consumer reset API needs nats-server \
             2.14 or later)"
        );
    }
    let info = stream.consumer_info(name).await?;
    if json {
        print_json(&json!({
            "stream": stream_name,
            "name": name,
            "next_sequence": sequence,
            "pending": info.num_pending,
        }));
    } else {
        say!(
            "{stream_name} / {name}: delivers from sequence {sequence} on ({} pending)",
            info.num_pending
        );
    }
    Ok(())
}

/// The stream sequence of `consumer`'s first event stored at or after `t` (the next sequence
/// of the stream when there is none yet).
async fn first_at_or_after(
    stream: &mut async_nats::jetstream::stream::Stream,
    consumer: &Info,
    t: chrono::DateTime<Utc>,
) -> anyhow::Result<u64> {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
    let c = &consumer.config;
    let probe = stream
        .create_consumer(OrderedConfig {
            filter_subject: c.filter_subject.clone(),
            filter_subjects: c.filter_subjects.clone(),
            deliver_policy: DeliverPolicy::ByStartTime { start_time: t },
            ..Default::default()
        })
        .await?;
    let mut probe = probe;
    if probe.info().await?.num_pending == 0 {
        return Ok(stream.info().await?.state.last_sequence + 1);
    }
    let first = tokio::time::timeout(Duration::from_secs(5), async {
        let mut messages = probe.messages().await?;
        anyhow::Ok(messages.try_next().await?)
    })
    .await
    .map_err(|_| anyhow::anyhow!("the server sent no event after {t} within 5 s"))??
    .ok_or_else(|| anyhow::anyhow!("the server sent no event after {t}"))?;
    Ok(first
        .info()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .stream_sequence)
}

/// The stream holding durable consumer `name`.
async fn stream_of(
    client: &eventhub::Client,
    name: &str,
) -> anyhow::Result<async_nats::jetstream::stream::Stream> {
    let mut names: Vec<String> = client.jetstream().stream_names().try_collect().await?;
    names.sort();
    for s in names {
        let stream = crate::connect::open(client, &s).await?;
        if stream.consumer_info(name).await.is_ok() {
            return Ok(stream);
        }
    }
    anyhow::bail!("no stream has a consumer named {name}; `eventhub consumers` lists them")
}

pub(crate) async fn run(
    server: &ServerArgs,
    stream: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let client = server.connect().await?;
    let names: Vec<String> = match stream {
        Some(name) => vec![name],
        None => {
            let mut names: Vec<String> = client.jetstream().stream_names().try_collect().await?;
            names.sort();
            names
        }
    };
    let only = (names.len() == 1).then(|| names[0].clone());
    let mut infos = Vec::new();
    for name in &names {
        let stream = crate::connect::open(&client, name).await?;
        infos.extend(crate::connect::consumers_of(&stream).await?);
    }
    let findings = crate::doctor::examine(&client, only.as_deref()).await?;
    if json {
        print_json(&json!(infos.iter().map(to_json).collect::<Vec<_>>()));
    } else {
        if infos.is_empty() {
            say!("no consumers");
        } else {
            table(&infos).print();
        }
        if !findings.is_empty() {
            say!();
            for f in &findings {
                say!("{}", f.line());
            }
        }
    }
    if !json {
        return Ok(());
    }
    // In JSON, findings go to stderr so stdout stays the list it always was.
    for f in &findings {
        eprintln!("{}", crate::output::clean(&f.line()));
    }
    Ok(())
}

/// Events not yet acknowledged: waiting to be delivered plus delivered and unacked.
fn lag(i: &Info) -> u64 {
    i.num_pending + i.num_ack_pending as u64
}

/// Why a consumer looks stuck, if it does: events wait but nothing is acknowledged for two ack
/// waits, or nobody pulls.
pub(crate) fn stuck(i: &Info) -> Option<String> {
    let since =
        |t: Option<chrono::DateTime<Utc>>| t.map(|t| (Utc::now() - t).to_std().unwrap_or_default());
    let quiet = (i.config.ack_wait * 2).max(Duration::from_secs(60));
    let last_ack = since(i.ack_floor.last_active);
    if i.num_ack_pending > 0 && last_ack.is_none_or(|d| d > quiet) {
        let when = last_ack.map_or("never".to_string(), |d| format!("{} ago", duration(d)));
        return Some(format!(
            "stuck: {} unacked, last ack {when}",
            i.num_ack_pending
        ));
    }
    if i.num_pending > 0 && i.num_waiting == 0 && i.num_ack_pending == 0 {
        let last = since(i.delivered.last_active);
        if last.is_none_or(|d| d > quiet) {
            return Some(format!(
                "stuck: {} pending and no instance pulling",
                i.num_pending
            ));
        }
    }
    None
}

pub(crate) fn table(infos: &[Info]) -> Table {
    let mut table = Table::new(&[
        "STREAM",
        "CONSUMER",
        "PENDING",
        "ACK PENDING",
        "REDELIVERED",
        "WAITING",
        "LAST DELIVERED",
        "LAG",
        "STATUS",
    ]);
    for i in infos {
        table.row(vec![
            i.stream_name.clone(),
            i.name.clone(),
            i.num_pending.to_string(),
            i.num_ack_pending.to_string(),
            i.num_redelivered.to_string(),
            i.num_waiting.to_string(),
            format!(
                "#{} {}",
                i.delivered.stream_sequence,
                i.delivered
                    .last_active
                    .map_or("-".to_string(), crate::output::time)
            ),
            lag(i).to_string(),
            match stuck(i) {
                Some(why) => why,
                None if i.paused => format!(
                    "paused ({} left)",
                    i.pause_remaining.map_or("-".into(), duration)
                ),
                None if i.config.durable_name.is_none() => "ok (ephemeral)".to_string(),
                None => "ok".to_string(),
            },
        ]);
    }
    table
}

pub(crate) fn to_json(i: &Info) -> serde_json::Value {
    json!({
        "stream": i.stream_name,
        "name": i.name,
        "durable": i.config.durable_name.is_some(),
        "managed_by_eventhub": i.config.metadata.contains_key("eventhub.managed"),
        "event_type": i.config.metadata.get("eventhub.event_type"),
        // One filter travels in `filter_subject` (eventhub's consumers), several in
        // `filter_subjects`.
        "filter_subjects": if i.config.filter_subject.is_empty() {
            i.config.filter_subjects.clone()
        } else {
            vec![i.config.filter_subject.clone()]
        },
        "ack_wait_secs": i.config.ack_wait.as_secs_f64(),
        "max_deliver": i.config.max_deliver,
        "num_pending": i.num_pending,
        "num_ack_pending": i.num_ack_pending,
        "num_redelivered": i.num_redelivered,
        "num_waiting": i.num_waiting,
        "last_delivered_sequence": i.delivered.stream_sequence,
        "last_delivered_time": i.delivered.last_active,
        "ack_floor_sequence": i.ack_floor.stream_sequence,
        "last_ack_time": i.ack_floor.last_active,
        "lag": lag(i),
        "stuck": stuck(i),
        "paused": i.paused,
        "pause_remaining_secs": i.pause_remaining.map(|d| d.as_secs_f64()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(
        ack_pending: usize,
        pending: u64,
        waiting: usize,
        last_ack_secs_ago: Option<i64>,
    ) -> Info {
        let ago = |s: i64| (Utc::now() - chrono::Duration::seconds(s)).to_rfc3339();
        let mut ack_floor = json!({"consumer_seq": 1, "stream_seq": 1});
        if let Some(s) = last_ack_secs_ago {
            ack_floor["last_active"] = json!(ago(s));
        }
        serde_json::from_value(json!({
            "stream_name": "IDENTITY",
            "name": "profile__user_created",
            "created": ago(3600),
            "config": {"durable_name": "profile__user_created", "deliver_policy": "all", "ack_policy": "explicit", "ack_wait": 30_000_000_000u64, "replay_policy": "instant"},
            "delivered": {"consumer_seq": 5, "stream_seq": 5, "last_active": ago(last_ack_secs_ago.unwrap_or(600))},
            "ack_floor": ack_floor,
            "num_ack_pending": ack_pending,
            "num_redelivered": 0,
            "num_waiting": waiting,
            "num_pending": pending,
        }))
        .expect("a consumer info")
    }

    #[test]
    fn consumers_that_stopped_acking_or_pulling_are_flagged() {
        assert_eq!(stuck(&info(0, 0, 1, Some(5))), None, "idle and caught up");
        assert_eq!(
            stuck(&info(3, 10, 1, Some(5))),
            None,
            "busy, acked recently"
        );
        let s = stuck(&info(3, 10, 1, Some(600))).unwrap();
        assert!(
            s.contains("3 unacked") && s.contains("last ack 10m ago"),
            "{s}"
        );
        let s = stuck(&info(2, 0, 0, None)).unwrap();
        assert!(s.contains("last ack never"), "{s}");
        let s = stuck(&info(0, 7, 0, Some(600))).unwrap();
        assert!(s.contains("7 pending and no instance pulling"), "{s}");
        assert_eq!(
            stuck(&info(0, 7, 1, Some(600))),
            None,
            "an instance is pulling"
        );
    }
}
