//! What is stuck: events that are neither handled nor dead-lettered, found from the server's
//! state. `eventhub consumers` and `eventhub health` print these findings.
//!
//! - **Unswept exhausted events**: an event whose last allowed delivery failed without a dead
//!   letter (its consumer died, or writing the dead letter failed) leaves only a
//!   max-deliveries advisory in `EVENTHUB_ADVISORIES`; until a sweeper dead-letters it, it is
//!   in limbo. Advisories the sweeper has not settled are counted per consumer.
//! - **A sweeper that keeps failing**: advisories it received and retries (its dead-letter
//!   writes fail).
//! - **Filters that read nothing**: a durable whose filter matches no subject of its stream.
//! - **Unread subjects** (a warning): messages on a subject that no durable of the stream reads
//!   (say, an old version nobody consumes any more): stored, never handled.

use std::collections::BTreeMap;

use async_nats::jetstream::consumer::{Info, PullConsumer};
use async_nats::jetstream::stream::Stream;
use futures::TryStreamExt;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    /// Events are in limbo: the system is not healthy.
    Problem,
    /// Worth a look; the system can still be healthy.
    Warning,
}

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) severity: Severity,
    pub(crate) stream: String,
    pub(crate) consumer: Option<String>,
    pub(crate) what: String,
}

impl Finding {
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "severity": match self.severity {
                Severity::Problem => "problem",
                Severity::Warning => "warning",
            },
            "stream": self.stream,
            "consumer": self.consumer,
            "what": self.what,
        })
    }

    pub(crate) fn line(&self) -> String {
        let label = match self.severity {
            Severity::Problem => "PROBLEM",
            Severity::Warning => "warning",
        };
        match &self.consumer {
            Some(c) => format!("{label}  {}/{c}: {}", self.stream, self.what),
            None => format!("{label}  {}: {}", self.stream, self.what),
        }
    }
}

/// Examines every stream (or only `only`) and its durables.
pub(crate) async fn examine(
    client: &eventhub::Client,
    only: Option<&str>,
) -> anyhow::Result<Vec<Finding>> {
    let js = client.jetstream();
    let names: Vec<String> = js.stream_names().try_collect().await?;
    let mut findings = Vec::new();
    for name in &names {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let Ok(stream) = js.get_stream(name).await else {
            continue;
        };
        let durables: Vec<Info> = crate::connect::consumers_of(&stream)
            .await?
            .into_iter()
            .filter(|i| i.config.durable_name.is_some())
            .collect();
        if name == eventhub::topology::ADVISORY_STREAM {
            findings.extend(unswept(&stream, &durables, only).await?);
            continue;
        }
        if name == eventhub::topology::DLQ_STREAM {
            continue;
        }
        findings.extend(unread(&stream, &durables).await?);
    }
    if let Some(o) = only {
        // Exhausted events of this stream's consumers are counted in the advisory stream.
        if o != eventhub::topology::ADVISORY_STREAM
            && let Ok(stream) = js.get_stream(eventhub::topology::ADVISORY_STREAM).await
        {
            let durables: Vec<Info> = crate::connect::consumers_of(&stream).await?;
            findings.extend(unswept(&stream, &durables, Some(o)).await?);
        }
    }
    Ok(findings)
}

/// Filters of a durable (an empty filter reads everything).
fn filters(i: &Info) -> Vec<String> {
    let mut f = i.config.filter_subjects.clone();
    if !i.config.filter_subject.is_empty() {
        f.push(i.config.filter_subject.clone());
    }
    if f.is_empty() {
        f.push(">".to_string());
    }
    f
}

/// Whether `subject` matches `pattern` (`*` one token, `>` the rest).
fn matches(pattern: &str, subject: &str) -> bool {
    let (mut p, mut s) = (pattern.split('.'), subject.split('.'));
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) => return true,
            (Some(a), Some(b)) if a == "*" || a == b => {}
            _ => return false,
        }
    }
}

/// Whether some subject matches both patterns.
fn collide(a: &str, b: &str) -> bool {
    let (mut x, mut y) = (a.split('.'), b.split('.'));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(p), Some(q)) if p == q || p == "*" || q == "*" => {}
            _ => return false,
        }
    }
}

/// Durables that read nothing, and subjects with messages no durable reads.
async fn unread(stream: &Stream, durables: &[Info]) -> anyhow::Result<Vec<Finding>> {
    let name = stream.cached_info().config.name.clone();
    let captured = stream.cached_info().config.subjects.clone();
    let mut out = Vec::new();
    for i in durables {
        for f in filters(i) {
            if !captured.iter().any(|s| collide(s, &f)) {
                out.push(Finding {
                    severity: Severity::Problem,
                    stream: name.clone(),
                    consumer: Some(i.name.clone()),
                    what: format!(
                        "reads nothing: its filter `{f}` matches no subject the stream captures"
                    ),
                });
            }
        }
    }
    if stream.cached_info().state.messages == 0 {
        return Ok(out);
    }
    let subjects: Vec<(String, usize)> =
        stream.info_with_subjects(">").await?.try_collect().await?;
    let readers: Vec<String> = durables.iter().flat_map(filters).collect();
    for (subject, count) in subjects {
        if count > 0 && !readers.iter().any(|f| matches(f, &subject)) {
            out.push(Finding {
                severity: Severity::Warning,
                stream: name.clone(),
                consumer: None,
                what: format!(
                    "{count} message(s) on `{subject}`, which no durable consumer reads: \
                     stored, never handled"
                ),
            });
        }
    }
    Ok(out)
}

/// Exhausted events still waiting for the sweeper, per consumer, and a sweeper that retries.
async fn unswept(
    stream: &Stream,
    durables: &[Info],
    only: Option<&str>,
) -> anyhow::Result<Vec<Finding>> {
    let sweeper = durables
        .iter()
        .find(|i| i.name == eventhub::dlq::SWEEPER_DURABLE);
    let mut out = Vec::new();
    // Advisories the sweeper has not acknowledged: from its ack floor on (all of them if no
    // sweeper ever ran).
    let floor = sweeper.map_or(0, |s| s.ack_floor.stream_sequence);
    let last = stream.cached_info().state.last_sequence;
    if last > floor {
        let reader: PullConsumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: floor + 1,
                },
                ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
                inactive_threshold: std::time::Duration::from_secs(10),
                ..Default::default()
            })
            .await?;
        let mut per: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut messages = reader.fetch().max_messages(10_000).messages().await?;
        while let Some(m) = messages.try_next().await.map_err(|e| anyhow::anyhow!(e))? {
            // $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>
            let mut tokens = m.subject.as_str().rsplitn(3, '.');
            let (Some(consumer), Some(origin)) = (tokens.next(), tokens.next()) else {
                continue;
            };
            if m.info().is_ok_and(|i| i.stream_sequence > floor) {
                *per.entry((origin.to_string(), consumer.to_string()))
                    .or_default() += 1;
            }
        }
        for ((origin, consumer), n) in per {
            if only.is_some_and(|o| o != origin && o != eventhub::topology::ADVISORY_STREAM) {
                continue;
            }
            out.push(Finding {
                severity: Severity::Problem,
                stream: origin,
                consumer: Some(consumer),
                what: format!(
                    "{n} event(s) exhausted max_deliver and are not dead-lettered: {}",
                    if sweeper.is_some() {
                        "the sweeper has not settled them yet (or cannot write the dead letters)"
                    } else {
                        "no sweeper has ever run (run eventhub::Sweeper in a service)"
                    }
                ),
            });
        }
    }
    if let Some(s) = sweeper
        && s.num_redelivered > 0
    {
        out.push(Finding {
            severity: Severity::Problem,
            stream: eventhub::topology::ADVISORY_STREAM.to_string(),
            consumer: Some(s.name.clone()),
            what: format!(
                "the sweeper retries {} advisory(ies): writing their dead letters fails (see its \
                 logs)",
                s.num_redelivered
            ),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_patterns() {
        assert!(matches("events.user.created.*", "events.user.created.v2"));
        assert!(matches(">", "events.user.created.v2"));
        assert!(!matches(
            "events.user.created.*",
            "events.user.created.v2.x"
        ));
        assert!(!matches("events.user.created.v1", "events.user.created.v2"));
        assert!(collide("events.user.>", "events.user.created.*"));
        assert!(!collide("events.order.>", "events.orders.shipped.*"));
    }
}
