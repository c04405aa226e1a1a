//! A big backlog drained by several instances sharing one durable: events/s, peak RSS per
//! instance, and that nothing is lost or handled twice (every event's id is counted).
//!
//! The instances are processes of this binary in child mode (`--drain-child`): each connects,
//! says `ready`, waits for `go` on its stdin, consumes until `stop`, then writes the index of
//! every event it handled to a file and prints one JSON line (events handled, when it handled
//! its last one, its peak RSS). The parent stops them once the durable has nothing pending and
//! nothing unacknowledged.

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use eventhub::Event;
use eventhub_catalog::events::order;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::measure::{Report, Row, Section, Target, peak_rss_kib};
use crate::scenarios::{Env, HANDLERS, Side, env_number, median_pair, mib, sides};
use crate::sdk;

/// Instances sharing the durable.
const INSTANCES: usize = 4;

/// What one drain measured.
struct Drain {
    per_sec: f64,
    /// Peak RSS of each instance, KiB.
    rss_kib: Vec<u64>,
    /// Events handled by each instance.
    handled: Vec<u64>,
    lost: usize,
    doubled: usize,
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The index of a backlog event from its id (`bl-<run>-<i>`).
fn index(id: &str) -> Option<u32> {
    id.rsplit('-').next()?.parse().ok()
}

/// Events in the backlog: the plan's, or `EVENTHUB_BENCH_BACKLOG`.
fn backlog_size(env: &Env<'_>) -> usize {
    env_number("EVENTHUB_BENCH_BACKLOG").unwrap_or(env.plan.backlog)
}

pub(crate) async fn run(
    env: &Env<'_>,
    url: &str,
    typical: &order::PlacedV1,
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = backlog_size(env);
    anyhow::ensure!(n <= u32::MAX as usize, "a backlog of at most 2^32 events");
    eprintln!("scale: backlog of {n} events, drained by {INSTANCES} instances sharing a durable");
    env.purge::<order::PlacedV1>().await?;
    let prefix = format!("bl-{}-", uuid::Uuid::now_v7().simple());
    let start = Instant::now();
    sdk::publish_numbered(env.client, typical, n, &prefix).await?;
    eprintln!("  published in {:.1} s", start.elapsed().as_secs_f64());
    let (mut raw, mut sdk) = (Vec::new(), Vec::new());
    for round in 0..env.plan.scale_rounds {
        for side in sides(round) {
            let d = drain(env, url, side, n).await?;
            eprintln!(
                "  {side:?}: {:.0} ev/s, handled per instance {:?}, lost {}, doubled {}",
                d.per_sec, d.handled, d.lost, d.doubled
            );
            match side {
                Side::Raw => raw.push(d),
                Side::Sdk => sdk.push(d),
            }
        }
    }
    let size = "backlog";
    let (r, s) = median_pair(&raw, &sdk, |r, s| s.per_sec / r.per_sec);
    report.rows.push(Row::of(
        Section::Scale,
        size,
        "drained by 4 instances, one durable (ev/s)",
        r.per_sec,
        s.per_sec,
    ));
    let peak = |d: &Drain| mib(d.rss_kib.iter().copied().max().unwrap_or(0));
    report.rows.push(Row::of(
        Section::Scale,
        size,
        "  peak RSS, largest instance (MiB)",
        peak(r),
        peak(s),
    ));
    // Over every run, not the median one: one loss is one too many.
    let worst = |runs: &[Drain], f: fn(&Drain) -> usize| runs.iter().map(f).max().unwrap_or(0);
    report.rows.push(
        Row::of(
            Section::Scale,
            size,
            "  events lost, worst run",
            worst(&raw, |d| d.lost) as f64,
            worst(&sdk, |d| d.lost) as f64,
        )
        .value_target(Target::AtMost(0.0)),
    );
    report.rows.push(
        Row::of(
            Section::Scale,
            size,
            "  events handled twice, worst run",
            worst(&raw, |d| d.doubled) as f64,
            worst(&sdk, |d| d.doubled) as f64,
        )
        .value_target(Target::AtMost(0.0)),
    );
    report.notes.push((
        Section::Scale,
        format!(
            "backlog: {n} typical events, drained by {INSTANCES} processes of this binary sharing \
             one durable, {HANDLERS} handlers each (eventhub's default), from the first `go` to the \
             last event handled; every event's id counted across the instances."
        ),
    ));
    Ok(())
}

/// One drain of the whole backlog by [`INSTANCES`] child processes on `side`.
async fn drain(env: &Env<'_>, url: &str, side: Side, n: usize) -> anyhow::Result<Drain> {
    let dir = tempfile::tempdir()?;
    let durable = format!(
        "{}_backlog_{}",
        match side {
            Side::Raw => "raw",
            Side::Sdk => "sdk",
        },
        uuid::Uuid::now_v7().simple()
    );
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for i in 0..INSTANCES {
        let out = dir.path().join(format!("instance-{i}.ids"));
        let mut child = tokio::process::Command::new(&exe)
            .arg("--drain-child")
            .arg(match side {
                Side::Raw => "raw",
                Side::Sdk => "sdk",
            })
            .arg(url)
            .arg(&durable)
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("start a drain instance")?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        children.push((child, stdin, stdout, out));
    }
    for (_, _, lines, _) in &mut children {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("a drain instance did not get ready within 60 s")??;
        anyhow::ensure!(
            line.as_deref() == Some("ready"),
            "a drain instance said {line:?}"
        );
    }
    let go = unix_micros();
    for (_, stdin, _, _) in &mut children {
        stdin.write_all(b"go\n").await?;
        stdin.flush().await?;
    }
    // Done when the durable has delivered and seen acknowledged everything.
    let limit = Instant::now() + Duration::from_secs(120 + n as u64 / 1000);
    let stream = env.js.get_stream(order::PlacedV1::STREAM).await?;
    loop {
        anyhow::ensure!(
            Instant::now() < limit,
            "the backlog was not drained in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(info) = stream.consumer_info(&durable).await
            && info.num_pending == 0
            && info.num_ack_pending == 0
            && info.ack_floor.stream_sequence > 0
        {
            break;
        }
    }
    for (_, stdin, _, _) in &mut children {
        stdin.write_all(b"stop\n").await?;
        stdin.flush().await?;
    }
    let mut seen = vec![0u8; n];
    let mut drain = Drain {
        per_sec: 0.0,
        rss_kib: Vec::new(),
        handled: Vec::new(),
        lost: 0,
        doubled: 0,
    };
    let mut last = go;
    for (mut child, _stdin, mut lines, out) in children {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("a drain instance did not stop within 60 s")??
            .context("a drain instance printed no report")?;
        let status = child.wait().await?;
        anyhow::ensure!(status.success(), "a drain instance failed: {status}");
        let report: serde_json::Value = serde_json::from_str(&line)?;
        last = last.max(report["last_unix_micros"].as_u64().unwrap_or(0));
        drain
            .rss_kib
            .push(report["peak_rss_kib"].as_u64().unwrap_or(0));
        drain.handled.push(report["handled"].as_u64().unwrap_or(0));
        for i in read_ids(&out)? {
            match seen.get_mut(i as usize) {
                Some(c) => *c = c.saturating_add(1),
                None => anyhow::bail!("event index {i} is not in the backlog"),
            }
        }
    }
    drain.lost = seen.iter().filter(|c| **c == 0).count();
    drain.doubled = seen.iter().map(|c| usize::from(c.saturating_sub(1))).sum();
    drain.per_sec = n as f64 / ((last.saturating_sub(go)) as f64 / 1e6);
    stream.delete_consumer(&durable).await?;
    Ok(drain)
}

fn read_ids(path: &Path) -> anyhow::Result<Vec<u32>> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Child mode: `--drain-child raw|sdk <url> <durable> <ids-file>`.
pub(crate) async fn child(args: &[String]) -> anyhow::Result<()> {
    let [side, url, durable, out] = args else {
        anyhow::bail!("usage: eventhub-bench --drain-child raw|sdk <url> <durable> <ids-file>");
    };
    let ids: Arc<Mutex<Vec<u32>>> = Arc::default();
    let last = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let record = {
        let (ids, last) = (ids.clone(), last.clone());
        move |id: &str| {
            if let Some(i) = index(id) {
                ids.lock().unwrap_or_else(|p| p.into_inner()).push(i);
            }
            last.store(unix_micros(), std::sync::atomic::Ordering::Relaxed);
        }
    };
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let say = |line: &str| -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    };
    match side.as_str() {
        "sdk" => {
            let client = sdk::connect(url).await?;
            say("ready")?;
            expect(&mut stdin, "go").await?;
            let running =
                sdk::spawn_consumer::<order::PlacedV1>(&client, durable, None, record).await?;
            expect(&mut stdin, "stop").await?;
            running.stop().await;
        }
        "raw" => {
            let js = jetstream::new(async_nats::connect(url.as_str()).await?);
            say("ready")?;
            expect(&mut stdin, "go").await?;
            let stream = js.get_stream(order::PlacedV1::STREAM).await?;
            let pull = stream
                .get_or_create_consumer(
                    durable,
                    consumer::pull::Config {
                        durable_name: Some(durable.clone()),
                        ack_policy: consumer::AckPolicy::Explicit,
                        filter_subject: order::PlacedV1::SUBJECT.to_string(),
                        max_ack_pending: 1000,
                        ..Default::default()
                    },
                )
                .await?;
            let messages = pull.messages().await?;
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                messages
                    .take_until(stop_rx)
                    .filter_map(|m| std::future::ready(m.ok()))
                    .for_each_concurrent(HANDLERS, |m| {
                        let record = record.clone();
                        async move {
                            let _event: order::PlacedV1 =
                                serde_json::from_slice(&m.payload).expect("decodes");
                            let id = m
                                .headers
                                .as_ref()
                                .and_then(|h| h.get("Nats-Msg-Id"))
                                .map(|v| v.as_str().to_string())
                                .unwrap_or_default();
                            record(&id);
                            m.ack().await.expect("ack");
                        }
                    })
                    .await;
            });
            expect(&mut stdin, "stop").await?;
            let _ = stop_tx.send(());
            task.await?;
        }
        other => anyhow::bail!("unknown side {other}"),
    }
    let ids = std::mem::take(&mut *ids.lock().unwrap_or_else(|p| p.into_inner()));
    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(out, bytes).with_context(|| format!("write {out}"))?;
    say(&serde_json::json!({
        "handled": ids.len(),
        "last_unix_micros": last.load(std::sync::atomic::Ordering::Relaxed),
        "peak_rss_kib": peak_rss_kib(),
    })
    .to_string())
}

async fn expect(
    lines: &mut tokio::io::Lines<BufReader<tokio::io::Stdin>>,
    word: &str,
) -> anyhow::Result<()> {
    match lines.next_line().await? {
        Some(l) if l.trim() == word => Ok(()),
        other => anyhow::bail!("expected `{word}` on stdin, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backlog_ids_give_their_index() {
        assert_eq!(
            super::index("bl-0190a0000000700080000000000003-41"),
            Some(41)
        );
        assert_eq!(super::index("lat-x-"), None);
    }
}
