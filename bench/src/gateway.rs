//! The HTTP gateway (`eventhub-gateway`, in this process, on the same server):
//!
//! - `POST /v1/events` with 32 requests in flight, over HTTP/1.1 keep-alive connections (one
//!   per request in flight) and over one HTTP/2 connection, beside the SDK publishing directly
//!   with 32 publishes in flight, each awaiting its ack: throughput (target ≥ 0.5×) and p99
//!   latency. The "raw" column of these rows is the direct SDK publish.
//! - WebSocket fan-out: one event to N clients of `GET /v1/stream` (N = 100 and 1,000), the
//!   time from publishing to each client receiving it: p99 (target under 50 ms).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use eventhub::PublishOptions;
use eventhub_gateway::auth::{ApiKeys, hash_key};
use eventhub_gateway::{Config, Gateway};
use futures::StreamExt;
use tokio::sync::Mutex;

use crate::http_load;
use crate::measure::{Report, Row, Section, Target, quantile};
use crate::scenarios::Env;

const CONCURRENCY: usize = 32;
const KEY: &str = "bench-auth-key-0123456789abcdef0123456789";
const OPS_KEY: &str = "bench-ops-key-0123456789abcdef0123456789";

fn logout() -> serde_json::Value {
    serde_json::json!({
        "user_id": "0190a000-0000-7000-8000-000000000001",
        "session_id": "0190a000-0000-7000-8000-000000000002",
        "reason": "user",
        "at": "2026-11-23T10:00:00Z",
    })
}

async fn start(url: &str) -> anyhow::Result<Gateway> {
    let mut keys = ApiKeys::default();
    keys.insert("auth", hash_key(KEY));
    keys.insert("ops", hash_key(OPS_KEY));
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let config = Config::new(eventhub::ConnectOptions::new("gateway").url(url), schemas)
        .keys(keys)
        .ws_buffer(1024);
    Ok(Gateway::start(config, "127.0.0.1:0".parse()?).await?)
}

/// Runs `total` jobs, `CONCURRENCY` at a time; returns events per second and each job's
/// latency in microseconds.
async fn concurrently<F, Fut>(total: usize, job: F) -> anyhow::Result<(f64, Vec<u64>)>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (next, job) = (next.clone(), job.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let t = Instant::now();
                job().await?;
                lat.push(t.elapsed().as_micros() as u64);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok((total as f64 / secs, all))
}

pub(crate) async fn run(env: &Env<'_>, url: &str, report: &mut Report) -> anyhow::Result<()> {
    let total =
        crate::plan::env_number("EVENTHUB_BENCH_GATEWAY_TOTAL").unwrap_or(env.plan.awaited * 4);
    eprintln!("gateway: {total} POST /v1/events, {CONCURRENCY} in flight, beside the SDK");
    let gateway = start(url).await?;
    let base = format!("http://{}", gateway.local_addr());
    let info = eventhub_catalog::CATALOG
        .iter()
        .find(|e| e.event_type == "auth.logout")
        .context("auth.logout in the catalog")?;

    // Serialized once, as a load generator sends a prepared body: the client's own JSON work
    // is not the gateway's cost.
    let prepared = http_load::Prepared {
        addr: gateway.local_addr(),
        path: "/v1/events",
        headers: vec![
            ("x-api-key", KEY.to_string()),
            ("content-type", "application/json".to_string()),
        ],
        body: bytes::Bytes::from(serde_json::to_vec(
            &serde_json::json!({"eventType": "auth.logout", "source": "auth", "data": logout()}),
        )?),
        expect: 202,
    };
    let publisher = env.client.publisher();
    let direct = {
        let data = logout();
        move || {
            let (publisher, data) = (publisher.clone(), data.clone());
            async move {
                publisher
                    .publish_json(info, &data, PublishOptions::default())
                    .await?;
                Ok(())
            }
        }
    };
    // Warm each (connections, caches), then measure one after the other. HTTP/1.1: one
    // keep-alive connection per request in flight, as browsers and most HTTP clients do.
    // HTTP/2 (cleartext, prior knowledge, as a proxy or service mesh speaks to an upstream):
    // the requests in flight share one connection.
    let (h1, h2) = (http_load::Version::Http1, http_load::Version::Http2);
    http_load::run(&prepared, h1, CONCURRENCY, CONCURRENCY * 4).await?;
    http_load::run(&prepared, h2, CONCURRENCY, CONCURRENCY * 4).await?;
    concurrently(CONCURRENCY * 4, direct.clone()).await?;
    let (sdk_rate, sdk_lat) = concurrently(total, direct).await?;
    let (h1_rate, h1_lat) = http_load::run(&prepared, h1, CONCURRENCY, total).await?;
    let (h2_rate, h2_lat) = http_load::run(&prepared, h2, CONCURRENCY, total).await?;
    eprintln!(
        "  direct SDK {sdk_rate:.0} ev/s, gateway HTTP/1.1 {h1_rate:.0} ev/s, HTTP/2 {h2_rate:.0} ev/s"
    );
    let p99 = |v: &[u64]| quantile(v, 0.99) as f64 / 1000.0;
    for (name, rate, lat) in [
        (
            "gateway POST, HTTP/1.1, 32 in flight (ev/s)",
            h1_rate,
            &h1_lat,
        ),
        (
            "gateway POST, HTTP/2, 32 in flight (ev/s)",
            h2_rate,
            &h2_lat,
        ),
    ] {
        report.rows.push(
            Row::of(Section::Scale, "tiny", name, sdk_rate, rate).target(Target::AtLeast(0.5)),
        );
        report.rows.push(Row::of(
            Section::Scale,
            "tiny",
            "  p99 latency (ms)",
            p99(&sdk_lat),
            p99(lat),
        ));
    }

    for n in [100, 1000] {
        let events = if env.plan.rounds == 1 { 20 } else { 100 };
        let (p50, p99) = match fanout(env, &base, info, n, events).await {
            Ok(v) => v,
            Err(e) => {
                eprintln!("  fan-out to {n}: {e}");
                report.notes.push((
                    Section::Scale,
                    format!("fan-out to {n} clients failed: {e}"),
                ));
                continue;
            }
        };
        eprintln!("  fan-out to {n}: p50 {p50:.1} ms, p99 {p99:.1} ms");
        let name = if n == 100 {
            "WS fan-out to 100 clients, p99 (ms)"
        } else {
            "WS fan-out to 1,000 clients, p99 (ms)"
        };
        report.rows.push(
            Row::of(Section::Scale, "tiny", name, f64::NAN, p99).value_target(Target::AtMost(50.0)),
        );
    }
    report.notes.push((
        Section::Scale,
        "gateway rows: raw = the SDK publishing directly (32 in flight, each awaiting its ack); \
         fan-out: publish to receipt by every WebSocket client, all reading one shared live feed per stream"
            .to_string(),
    ));
    gateway.shutdown().await?;
    Ok(())
}

/// The fields of a `GET /v1/stream` frame the fan-out clients read.
#[derive(serde::Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    sequence: Option<u64>,
}

/// Publishes `events` events, one every 20 ms, to `n` WebSocket clients; the p50 and p99 of
/// publish-to-receipt over every (event, client), in milliseconds.
async fn fanout(
    env: &Env<'_>,
    base: &str,
    info: &'static eventhub::EventInfo,
    n: usize,
    events: usize,
) -> anyhow::Result<(f64, f64)> {
    let ws_url = format!(
        "{}/v1/stream?types=auth.logout",
        base.replacen("http://", "ws://", 1)
    );
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let mut clients = Vec::new();
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel::<()>(n);
    for _ in 0..n {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                ws_url.as_str(),
            )?;
        request.headers_mut().insert("x-api-key", OPS_KEY.parse()?);
        // tungstenite zero-fills its read buffer (128 KiB by default) before each read: with
        // a thousand clients in this process that memset, not the gateway, would dominate.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(4 * 1024);
        let (ws, _) = match tokio_tungstenite::connect_async_with_config(
            request,
            Some(config),
            false,
        )
        .await
        {
            Ok(ok) => ok,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => anyhow::bail!(
                "client {} of {n} refused: {} {}",
                clients.len() + 1,
                resp.status(),
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default())
            ),
            Err(e) => return Err(e).context("connect a WebSocket client"),
        };
        let ready_tx = ready_tx.clone();
        clients.push(tokio::spawn(async move {
            let mut got = Vec::new();
            // Read only, so not split: a split socket takes a lock per read.
            let mut ws = ws;
            while let Some(Ok(msg)) = ws.next().await {
                let Ok(text) = msg.to_text() else { continue };
                // Only what the measurement needs: a thousand clients building a full JSON
                // value per frame would be this process's work, not the gateway's.
                let Ok(frame) = serde_json::from_str::<Frame<'_>>(text) else {
                    continue;
                };
                if frame.kind.as_deref() == Some("subscribed") {
                    let _ = ready_tx.send(()).await;
                } else if let Some(seq) = frame.sequence {
                    got.push((seq, Instant::now()));
                    if got.len() == events {
                        break;
                    }
                }
            }
            got
        }));
    }
    for _ in 0..n {
        ready.recv().await.context("a client subscribed")?;
    }
    let publisher = env.client.publisher();
    for _ in 0..events {
        let t = Instant::now();
        let receipt = publisher
            .publish_json(info, &logout(), PublishOptions::default())
            .await?;
        sent.lock().await.insert(receipt.sequence, t);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = sent.lock().await;
    let mut lat = Vec::new();
    for c in clients {
        let got = tokio::time::timeout(Duration::from_secs(60), c)
            .await
            .context("every client received every event within 60 s")??;
        for (seq, at) in got {
            if let Some(t) = sent.get(&seq) {
                lat.push(at.duration_since(*t).as_micros() as u64);
            }
        }
    }
    anyhow::ensure!(
        lat.len() == n * events,
        "{} of {} deliveries",
        lat.len(),
        n * events
    );
    lat.sort_unstable();
    let ms = |q| quantile(&lat, q) as f64 / 1000.0;
    Ok((ms(0.5), ms(0.99)))
}
