//! The fault scenarios. Each runs against real nats-servers it starts, counts events
//! acknowledged by the server against events handled, by id, and fails on none lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use eventhub::Client;
use eventhub::ConnectOptions;
use eventhub::ConsumerHandle;
use eventhub::ConsumerOptions;
use eventhub::Envelope;
use eventhub::Event;
use eventhub::consume::Failover;
use eventhub::dlq::DeadLetterFilter;
use eventhub::dlq::DeadLetterReason;
use eventhub::topology::ProvisionOptions;
use eventhub::wire::headers;
use eventhub_catalog::events::user;
use eventhub_testkit::{Cluster, NatsServer};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

use crate::ledger::{Ledger, Row, event, publish_n};
use crate::proxy::Proxy;

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    /// Events published during a fault.
    pub(crate) events: usize,
    /// Backlog for the slow-handler scenario.
    pub(crate) backlog: usize,
    /// How long the handler stays slow.
    pub(crate) slow_for: Duration,
    /// Consumer processes killed.
    pub(crate) consumer_kills: usize,
    /// Upper bound for a scenario to settle.
    pub(crate) limit: Duration,
    /// Inputs the adversarial scenario sends.
    pub(crate) adversarial: usize,
    /// Seed of the adversarial scenario's inputs (random when `None`).
    pub(crate) seed: Option<u64>,
}

impl Scale {
    pub(crate) const SHORT: Scale = Scale {
        events: 600,
        backlog: 5_000,
        slow_for: Duration::from_secs(2),
        consumer_kills: 4,
        limit: Duration::from_secs(60),
        adversarial: 2_000,
        seed: None,
    };
    pub(crate) const LONG: Scale = Scale {
        events: 10_000,
        backlog: 100_000,
        slow_for: Duration::from_secs(10),
        consumer_kills: 20,
        limit: Duration::from_secs(600),
        adversarial: 50_000,
        seed: None,
    };
}

async fn connect(url: &str, service: &str) -> anyhow::Result<Client> {
    Client::connect(ConnectOptions::new(service).url(url))
        .await
        .with_context(|| format!("connect {service} to {url}"))
}

/// Consumer options for fault runs: short waits so redeliveries come quickly.
fn options() -> ConsumerOptions {
    ConsumerOptions::default()
        .ack_wait(Duration::from_secs(2))
        .fetch_expires(Duration::from_millis(500))
        .max_deliver(100)
        .backoff(eventhub::Backoff::schedule([Duration::from_millis(100)]))
        .idempotent(Duration::from_secs(3600))
}

/// An in-process consumer recording every handler run in the ledger.
async fn consume(client: &Client, ledger: &Arc<Ledger>) -> anyhow::Result<ConsumerHandle> {
    let ledger = ledger.clone();
    Ok(client.consumer::<user::CreatedV2>(options()).await?.spawn(
        move |env: Envelope<user::CreatedV2>| {
            ledger.handled(&env.meta().id);
            async { Ok(()) }
        },
    ))
}

/// Publishes `n` events in a task; the watch tells how many were acknowledged.
fn publish_in_background(
    client: Client,
    ledger: Arc<Ledger>,
    run: &'static str,
    n: usize,
) -> (tokio::task::JoinHandle<()>, watch::Receiver<usize>) {
    let (tx, rx) = watch::channel(0usize);
    let task = tokio::spawn(async move {
        publish_n(&client, &ledger, run, n, |i| {
            let _ = tx.send(i + 1);
        })
        .await;
    });
    (task, rx)
}

async fn reached(progress: &mut watch::Receiver<usize>, n: usize) {
    let _ = progress.wait_for(|p| *p >= n).await;
}

/// The scenario's row; an error when an acknowledged event was not handled (`done` false).
fn finish(
    ledger: &Ledger,
    name: &'static str,
    started: Instant,
    removed: u64,
    notes: String,
    done: bool,
) -> anyhow::Result<Row> {
    ledger.removed.fetch_add(removed, Ordering::Relaxed);
    let mut row = ledger.row(name, started);
    let errors = ledger.publish_errors.load(Ordering::Relaxed);
    row.notes = match ledger.first_error() {
        Some(first) if errors > 0 => format!("{notes}; {errors} publish error(s), first: {first}"),
        _ => notes,
    };
    if !done {
        bail!("not every acknowledged event was handled: {row:?}");
    }
    Ok(row)
}

/// A server of its own and the `auth` service connected to it, topology provisioned.
async fn server_with_auth() -> anyhow::Result<(NatsServer, String, Client)> {
    let server = NatsServer::builder().start()?;
    let url = server.client_url();
    let auth = connect(&url, "auth").await?;
    auth.provision(&eventhub_catalog::TOPOLOGY).await?;
    Ok((server, url, auth))
}

/// 1. The server is killed (SIGKILL) and restarted on the same store during continuous
///    publishing and consuming.
pub(crate) async fn server_kill(scale: Scale) -> anyhow::Result<Row> {
    let started = Instant::now();
    let (mut server, url, auth) = server_with_auth().await?;
    let ledger = Arc::new(Ledger::default());
    let handle = consume(&connect(&url, "profile").await?, &ledger).await?;
    let (publisher, mut progress) =
        publish_in_background(auth.clone(), ledger.clone(), "kill9", scale.events);
    reached(&mut progress, scale.events / 3).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.start_again()?;
    publisher.await?;
    let done = ledger.wait_handled(scale.events, scale.limit).await;
    let stats = handle.shutdown().await;
    finish(
        &ledger,
        "server kill -9 + restart",
        started,
        stats.duplicates_skipped,
        "killed after a third, down 0.5 s".into(),
        done,
    )
}

/// 2. Consumer processes are killed (SIGKILL) at random points, again and again.
pub(crate) async fn consumer_kill(scale: Scale) -> anyhow::Result<Row> {
    let started = Instant::now();
    let (_server, url, auth) = server_with_auth().await?;
    let ledger = Arc::new(Ledger::default());
    let removed = Arc::new(AtomicU64::new(0));
    let (publisher, _) =
        publish_in_background(auth.clone(), ledger.clone(), "consumer-kill", scale.events);
    let exe = std::env::current_exe()?;
    let mut kills = 0;
    loop {
        let mut child = tokio::process::Command::new(&exe)
            .args(["child-consumer", &url])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start a consumer process")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (ledger2, removed2) = (ledger.clone(), removed.clone());
        let (working_tx, working) = tokio::sync::oneshot::channel::<()>();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut skipped = 0u64;
            let mut working_tx = Some(working_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(id) = line.strip_prefix("handled ") {
                    ledger2.handled(id);
                    if let Some(tx) = working_tx.take() {
                        let _ = tx.send(());
                    }
                } else if let Some(n) = line.strip_prefix("skipped ") {
                    skipped = n.parse().unwrap_or(skipped);
                }
            }
            removed2.fetch_add(skipped, Ordering::Relaxed);
        });
        if kills < scale.consumer_kills {
            // Kill it at a random point once it is at work.
            let _ = tokio::time::timeout(scale.limit, working).await;
            tokio::time::sleep(Duration::from_millis(fastrand::u64(20..200))).await;
            child.kill().await?;
            kills += 1;
            let _ = reader.await;
            continue;
        }
        publisher.await?;
        let done = ledger.wait_handled(scale.events, scale.limit).await;
        child.kill().await?;
        let _ = reader.await;
        return finish(
            &ledger,
            "consumer process killed",
            started,
            removed.load(Ordering::Relaxed),
            format!(
                "{kills} consumer processes killed with SIGKILL at random points while handling"
            ),
            done,
        );
    }
}

/// How long the active instance of a pinned durable may be silent before a standby takes over.
pub(crate) const PINNED_TAKEOVER: Duration = Duration::from_secs(2);

/// 7. Active and standby consumer processes (a pinned durable): the active one is killed with
///    SIGKILL while events keep coming; the standby takes over (the time is measured) and
///    nothing is lost.
pub(crate) async fn pinned_takeover(scale: Scale) -> anyhow::Result<Row> {
    let started = Instant::now();
    let (_server, url, auth) = server_with_auth().await?;
    let ledger = Arc::new(Ledger::default());
    let removed = Arc::new(AtomicU64::new(0));
    let exe = std::env::current_exe()?;
    // Which instance handled an event, and when its line was read.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut children = Vec::new();
    let mut readers = Vec::new();
    for label in 0..2 {
        let mut child = tokio::process::Command::new(&exe)
            .args(["child-consumer", &url, "pinned"])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start a consumer process")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (ledger, removed, tx) = (ledger.clone(), removed.clone(), tx.clone());
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut skipped = 0u64;
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(id) = line.strip_prefix("handled ") {
                    ledger.handled(id);
                    let _ = tx.send((label, Instant::now()));
                } else if let Some(n) = line.strip_prefix("skipped ") {
                    skipped = n.parse().unwrap_or(skipped);
                }
            }
            removed.fetch_add(skipped, Ordering::Relaxed);
        }));
        children.push(child);
    }
    drop(tx);
    let (publisher, mut progress) =
        publish_in_background(auth.clone(), ledger.clone(), "pinned", scale.events);
    let (active, _) = tokio::time::timeout(scale.limit, rx.recv())
        .await
        .context("no instance handled an event")?
        .context("both instances ended")?;
    // Kill the active one a third of the way through, while events keep coming.
    reached(&mut progress, scale.events / 3).await;
    let mut both_active = 0usize;
    while let Ok((who, _)) = rx.try_recv() {
        if who != active {
            both_active += 1;
        }
    }
    children[active].kill().await?;
    let killed = Instant::now();
    let standby = 1 - active;
    let took = loop {
        let (who, at) = tokio::time::timeout(scale.limit, rx.recv())
            .await
            .context("the standby never took over")?
            .context("both instances ended")?;
        if who == standby {
            break at.saturating_duration_since(killed);
        }
    };
    publisher.await?;
    let done = ledger.wait_handled(scale.events, scale.limit).await;
    children[standby].kill().await?;
    for reader in readers {
        let _ = reader.await;
    }
    if both_active > 0 {
        bail!("the standby handled {both_active} event(s) while the pinned instance was alive");
    }
    finish(
        &ledger,
        "pinned consumer killed",
        started,
        removed.load(Ordering::Relaxed),
        format!(
            "the active process of a pinned durable killed with SIGKILL; the standby took over \
             after {:.2} s (takeover time {} s)",
            took.as_secs_f64(),
            PINNED_TAKEOVER.as_secs()
        ),
        done,
    )
}

/// The consumer process of [`consumer_kill`]: prints `handled <id>` per handler run and
/// `skipped <n>` (duplicates the guard removed) as it goes.
///
/// With `pinned`, the instances share a pinned durable (one active, the others standing by;
/// [`PINNED_TAKEOVER`]).
pub(crate) async fn child_consumer(url: &str, pinned: bool) -> anyhow::Result<()> {
    let client = connect(url, "profile").await?;
    let mut options = options().concurrency(4).prefetch(16);
    if pinned {
        options = options.failover(Failover::pinned(PINNED_TAKEOVER));
    }
    let handle = client.consumer::<user::CreatedV2>(options).await?.spawn(
        |env: Envelope<user::CreatedV2>| async move {
            // A handler with some work in it, so kills land mid-work.
            tokio::time::sleep(Duration::from_millis(5)).await;
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "handled {}", env.meta().id);
            let _ = out.flush();
            Ok(())
        },
    );
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "skipped {}", handle.stats().duplicates_skipped);
        let _ = out.flush();
    }
}

/// 3. A three-node cluster with R3 streams: the stream leader is killed during publishing and
///    consuming, then a follower; both come back.
pub(crate) async fn cluster_leader_kill(scale: Scale) -> anyhow::Result<Row> {
    let started = Instant::now();
    let mut cluster = Cluster::try_start(3)?;
    let url = cluster.client_url();
    let auth = connect(&url, "auth").await?;
    auth.provision_with(&ProvisionOptions::new(&eventhub_catalog::TOPOLOGY).replicas(3))
        .await?;
    let ledger = Arc::new(Ledger::default());
    let handle = consume(&connect(&url, "profile").await?, &ledger).await?;
    let (publisher, mut progress) =
        publish_in_background(auth.clone(), ledger.clone(), "cluster", scale.events);

    let leader = |client: Client| async move {
        let mut stream = client
            .jetstream()
            .get_stream(user::CreatedV2::STREAM)
            .await?;
        let info = stream.info().await?;
        let name = info
            .cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .context("the stream has no leader")?;
        anyhow::Ok(name)
    };
    reached(&mut progress, scale.events / 4).await;
    let name = leader(auth.clone()).await?;
    let leader_index = cluster.index_of(&name).context("leader node")?;
    cluster.node_mut(leader_index).kill();
    reached(&mut progress, scale.events / 2).await;
    cluster.node_mut(leader_index).start_again()?;
    reached(&mut progress, scale.events * 3 / 4).await;
    let now_leader = leader(auth.clone()).await?;
    let follower = (0..3)
        .find(|i| Some(*i) != cluster.index_of(&now_leader))
        .context("a follower")?;
    cluster.node_mut(follower).kill();
    publisher.await?;
    cluster.node_mut(follower).start_again()?;
    let done = ledger.wait_handled(scale.events, scale.limit).await;
    let stats = handle.shutdown().await;
    finish(
        &ledger,
        "R3 cluster: leader, then follower killed",
        started,
        stats.duplicates_skipped,
        format!("stream leader {name} killed at 1/4, back at 1/2; a follower killed at 3/4"),
        done,
    )
}

/// 4. The network between clients and the server is cut for 1.5 s, then restored.
pub(crate) async fn network_cut(scale: Scale) -> anyhow::Result<Row> {
    let started = Instant::now();
    let server = NatsServer::builder().start()?;
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], server.port()))).await?;
    let url = proxy.url();
    let auth = connect(&url, "auth").await?;
    auth.provision(&eventhub_catalog::TOPOLOGY).await?;
    let ledger = Arc::new(Ledger::default());
    let handle = consume(&connect(&url, "profile").await?, &ledger).await?;
    let (publisher, mut progress) =
        publish_in_background(auth.clone(), ledger.clone(), "netcut", scale.events);
    reached(&mut progress, scale.events / 3).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    publisher.await?;
    let done = ledger.wait_handled(scale.events, scale.limit).await;
    let stats = handle.shutdown().await;
    finish(
        &ledger,
        "network cut 1.5 s",
        started,
        stats.duplicates_skipped,
        "all connections dropped and refused for 1.5 s".into(),
        done,
    )
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// 5. A slow handler meets a large backlog: memory stays bounded and nothing is redelivered
///    while it works (in-progress acks), then the backlog drains.
pub(crate) async fn slow_backlog(scale: Scale) -> anyhow::Result<Row> {
    let started = Instant::now();
    let (_server, url, auth) = server_with_auth().await?;
    let ledger = Arc::new(Ledger::default());
    let mut pipeline = auth.publisher().pipeline(2048);
    let mut ids = Vec::with_capacity(scale.backlog);
    for i in 0..scale.backlog {
        ids.push(pipeline.send(&event("backlog", i)).await?);
    }
    let report = pipeline.finish().await;
    if !report.failures.is_empty() {
        bail!("backlog publish failed: {:?}", report.failures[0].error);
    }
    for id in ids {
        ledger.acked(id);
    }

    let slow = Arc::new(AtomicBool::new(true));
    let redelivered = Arc::new(AtomicU64::new(0));
    let rss_before = rss_mib();
    let (l, s, r) = (ledger.clone(), slow.clone(), redelivered.clone());
    let handle = connect(&url, "profile")
        .await?
        .consumer::<user::CreatedV2>(options())
        .await?
        .spawn(move |env: Envelope<user::CreatedV2>| {
            let (l, s, r) = (l.clone(), s.clone(), r.clone());
            async move {
                if env.meta().delivered > 1 {
                    r.fetch_add(1, Ordering::Relaxed);
                }
                if s.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                l.handled(&env.meta().id);
                Ok(())
            }
        });
    let mut peak = rss_before;
    let slow_until = Instant::now() + scale.slow_for;
    while Instant::now() < slow_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss_mib());
    }
    let during_slow = redelivered.load(Ordering::Relaxed);
    let handled_slow = handle.stats().handled;
    slow.store(false, Ordering::Relaxed);
    let done = ledger.wait_handled(scale.backlog, scale.limit).await;
    let stats = handle.shutdown().await;
    let row = finish(
        &ledger,
        "slow handler, large backlog",
        started,
        stats.duplicates_skipped,
        format!(
            "backlog {}; slow phase {:.0} s (20 ms/event, ack_wait 2 s): {handled_slow} handled, \
             {during_slow} redelivered; RSS {rss_before:.0} MiB before, peak {peak:.0} MiB",
            scale.backlog,
            scale.slow_for.as_secs_f64()
        ),
        done,
    )?;
    if during_slow > 0 {
        bail!("{during_slow} events were redelivered while the handler was slow: {row:?}");
    }
    Ok(row)
}

/// 6. Good events mixed with malformed, schema-invalid, unknown-version, non-event-subject and
///    oversized messages: every good one is handled, every bad one stored is dead-lettered as
///    poison with its reason, oversized ones are refused at publish, and the consumer never
///    stops.
pub(crate) async fn bad_input_storm(scale: Scale) -> anyhow::Result<Row> {
    let started = Instant::now();
    let (_server, url, auth) = server_with_auth().await?;
    let ledger = Arc::new(Ledger::default());
    // A consumer of the whole family, so unknown versions reach it too.
    let l = ledger.clone();
    let handle = connect(&url, "profile")
        .await?
        .consumer::<user::Created>(options())
        .await?
        .spawn(move |env: Envelope<user::Created>| {
            l.handled(&env.meta().id);
            async { Ok(()) }
        });

    let js = auth.jetstream().clone();
    // A newer catalog added v9 to the stream (its provisioning adds the subject); the consumer's
    // build does not know that version.
    let mut identity = js
        .get_stream("IDENTITY")
        .await?
        .cached_info()
        .config
        .clone();
    identity.subjects.push("events.user.created.v9".into());
    js.update_stream(identity).await?;
    let raw = |subject: &'static str, payload: Vec<u8>| {
        let js = js.clone();
        async move {
            let mut h = async_nats::HeaderMap::new();
            h.insert(headers::MSG_ID, uuid::Uuid::now_v7().to_string().as_str());
            h.insert(headers::ID, uuid::Uuid::now_v7().to_string().as_str());
            match js.publish_with_headers(subject, h, payload.into()).await {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    let publisher = auth.publisher();
    let mut bad_stored = [0usize; 3];
    let mut outside_refused = 0usize;
    let mut oversized_refused = 0usize;
    let mut oversized_error = String::new();
    let good = scale.events;
    for i in 0..good {
        let ev = event("storm", i);
        let receipt = publisher.publish(&ev).await?;
        ledger.acked(receipt.id);
        let kind = i % 4;
        let (subject, payload): (&'static str, Vec<u8>) = match kind {
            0 => (user::CreatedV2::SUBJECT, b"{\"user_id\": nope".to_vec()),
            1 => (
                user::CreatedV2::SUBJECT,
                br#"{"user_id": "0190b8d2-5a8e-7c3e-9d5e-1f2a3b4c5d6e", "locale": "en"}"#.to_vec(),
            ),
            2 => ("events.user.created.v9", serde_json::to_vec(&ev)?),
            _ => ("events.user.created.latest", serde_json::to_vec(&ev)?),
        };
        if kind == 3 {
            // Outside the catalog: streams capture exactly its subjects, so it is not stored.
            if raw(subject, payload).await.is_ok() {
                bail!("the server stored a message on {subject}, which no stream should capture");
            }
            outside_refused += 1;
            continue;
        }
        raw(subject, payload)
            .await
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("store a bad message on {subject}"))?;
        bad_stored[kind] += 1;
        if i % 100 == 0 {
            let mut big = event("storm-big", i);
            big.referral_code = Some("x".repeat(2 * 1024 * 1024));
            match publisher.publish(&big).await {
                Err(e) if e.kind() == eventhub::error::PublishErrorKind::PayloadTooLarge => {
                    oversized_refused += 1;
                    if oversized_error.is_empty() {
                        oversized_error = e.to_string();
                    }
                }
                other => bail!("an oversized event was not refused: {other:?}"),
            }
            if raw(user::CreatedV2::SUBJECT, vec![b'x'; 2 * 1024 * 1024])
                .await
                .is_ok()
            {
                bail!("the server stored a 2 MiB message");
            }
            oversized_refused += 1;
        }
    }
    let bad: usize = bad_stored.iter().sum();
    let done = ledger.wait_handled(good, scale.limit).await;
    // Every bad message stored must reach the dead letters.
    let deadline = Instant::now() + scale.limit;
    let entries = loop {
        let stats = handle.stats();
        if stats.dead_lettered as usize >= bad || Instant::now() > deadline {
            break auth
                .dead_letters()
                .list(&DeadLetterFilter::default().consumer("profile__user_created"))
                .await?;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stats = handle.shutdown().await;
    let poison = entries
        .iter()
        .filter(|e| e.reason == DeadLetterReason::Poison)
        .count();
    let explained = entries.iter().all(|e| {
        e.error.contains("not valid JSON")
            || e.error.contains("does not match the event schema")
            || e.error.contains("v9")
    });
    let mut row = finish(
        &ledger,
        "bad-input storm",
        started,
        stats.duplicates_skipped,
        format!(
            "{bad} bad stored (malformed {}, schema-invalid {}, unknown version {}) \
             -> {poison} poison dead letters; {outside_refused} on subjects outside the catalog \
             refused by the streams; {oversized_refused} oversized refused at publish \
             ({oversized_error}); one consumer throughout: {} received",
            bad_stored[0], bad_stored[1], bad_stored[2], stats.received
        ),
        done,
    )?;
    row.dlq = entries.len();
    if poison != bad || entries.len() != bad || !explained {
        bail!("expected {bad} poison dead letters with their reasons: {row:?}");
    }
    Ok(row)
}
