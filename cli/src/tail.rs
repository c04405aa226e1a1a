//! `eventhub tail [TYPE|SUBJECT…] [--since D|--seq N]`.

use std::collections::BTreeMap;

use async_nats::jetstream::consumer::{self, DeliverPolicy};
use eventhub::wire::headers;
use futures::{StreamExt, stream::BoxStream};
use serde_json::json;

use crate::output::parse_since;
use crate::output::say;
use crate::{ServerArgs, Usage};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Event types (`user.created`, `user.created@v2`) or subjects (`events.payment.>`).
    /// Default: every declared stream.
    targets: Vec<String>,
    /// Start this far back (15m, 2h, 7d) or at this RFC 3339 time. Default: new events only.
    #[arg(long, value_parser = parse_since, conflicts_with = "seq")]
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Start at this stream sequence (one stream only).
    #[arg(long)]
    seq: Option<u64>,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<usize>,
}

type Messages = BoxStream<'static, Result<async_nats::jetstream::Message, String>>;

pub(crate) async fn run(server: &ServerArgs, args: Args, json: bool) -> anyhow::Result<()> {
    let client = server.connect().await?;
    // Filter subjects per stream.
    let mut by_stream: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if args.targets.is_empty() {
        for s in crate::runtime::streams() {
            by_stream.entry(s.to_string()).or_default();
        }
    }
    for target in &args.targets {
        let looks_like_subject = target.contains('*')
            || target.contains('>')
            || target.starts_with("events.")
            || target.starts_with("dlq.");
        if looks_like_subject {
            let stream = client
                .jetstream()
                .stream_by_subject(target.clone())
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "no stream captures `{target}` ({e}): `eventhub streams` lists them"
                    )
                })?;
            by_stream.entry(stream).or_default().push(target.clone());
        } else {
            let info = crate::schemas::find(target)?;
            let subject = if target.contains('@') {
                info.subject.to_string()
            } else {
                format!("events.{}.*", info.event_type)
            };
            by_stream
                .entry(info.stream.to_string())
                .or_default()
                .push(subject);
        }
    }
    if args.seq.is_some() && by_stream.len() != 1 {
        return Err(Usage(format!(
            "--seq is a position in one stream, but these targets span {}: {}",
            by_stream.len(),
            by_stream.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    let deliver_policy = match (args.seq, args.since) {
        (Some(start_sequence), _) => DeliverPolicy::ByStartSequence { start_sequence },
        (None, Some(start_time)) => DeliverPolicy::ByStartTime { start_time },
        (None, None) => DeliverPolicy::New,
    };
    let mut sources: Vec<Messages> = Vec::new();
    for (name, subjects) in by_stream {
        let stream = crate::connect::open(&client, &name).await?;
        let ordered = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subjects: subjects,
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("cannot follow stream {name}: {e}"))?;
        let messages = ordered
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!("cannot follow stream {name}: {e}"))?;
        sources.push(messages.map(|m| m.map_err(|e| e.to_string())).boxed());
    }
    if !json {
        eprintln!("following {} stream(s); Ctrl-C to stop", sources.len());
    }
    let mut all = futures::stream::select_all(sources);
    let mut seen = 0;
    while args.count.is_none_or(|n| seen < n) {
        let Some(next) = all.next().await else { break };
        let message = next.map_err(|e| anyhow::anyhow!("lost the stream: {e}"))?;
        print_event(&message, json);
        seen += 1;
    }
    Ok(())
}

fn print_event(message: &async_nats::jetstream::Message, json: bool) {
    let h = message.headers.as_ref();
    let get = |name: &str| h.and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
    let (stream, sequence, published) = match message.info() {
        Ok(i) => (i.stream.to_string(), i.stream_sequence, Some(i.published)),
        Err(_) => (String::new(), 0, None),
    };
    let (event_type, version) = eventhub::wire::parse_subject(message.subject.as_str())
        .map(|(t, v)| (Some(t.to_string()), Some(v)))
        .unwrap_or((None, None));
    let data = crate::output::payload_json(
        event_type.as_deref().zip(version),
        get(headers::CONTENT_TYPE).as_deref(),
        &message.payload,
    );
    // The lean wire format leaves out a time the event id holds.
    let time = get(headers::TIME)
        .or_else(|| {
            get(headers::ID)
                .as_deref()
                .and_then(headers::time_of_id)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        })
        .or_else(|| published.map(|t| t.to_rfc3339()));
    if json {
        say!(
            "{}",
            json!({
                "stream": stream,
                "sequence": sequence,
                "subject": message.subject.as_str(),
                "time": time,
                "event_type": event_type,
                "version": version,
                "id": get(headers::ID),
                "source": get(headers::SOURCE),
                "correlation_id": get(headers::CORRELATION_ID),
                "causation_id": get(headers::CAUSATION_ID),
                "data": data,
            })
        );
        return;
    }
    let what = match (&event_type, version) {
        (Some(t), Some(v)) => format!("{t} v{v}"),
        _ => message.subject.to_string(),
    };
    let mut line = format!(
        "{stream} #{sequence}  {}  {what}",
        time.unwrap_or_else(|| "-".into())
    );
    for (label, name) in [
        ("id", headers::ID),
        ("source", headers::SOURCE),
        ("correlation", headers::CORRELATION_ID),
        ("causation", headers::CAUSATION_ID),
    ] {
        if let Some(v) = get(name) {
            line.push_str(&format!("  {label}={}", crate::output::clean(&v)));
        }
    }
    let data = match data {
        serde_json::Value::String(text) => crate::output::clean(&text).into_owned(),
        other => other.to_string(),
    };
    say!("{}\n  {data}", crate::output::clean(&line));
}
