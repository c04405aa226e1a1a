//! Metrics in Prometheus text format, and health.
//!
//! A [`Client`] counts what its publishers and consumers do (atomics; one lock-free map lookup
//! per publish, none per handled event: a consumer holds its own counters). [`Metrics::render`]
//! writes them in the Prometheus text exposition format 0.0.4, together with gauges read from
//! JetStream at scrape time (consumer pending and ack pending, dead-letter depth);
//! [`Client::serve_metrics`] serves `GET /metrics` and `GET /health` over HTTP.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `eventhub_connected` | gauge | |
//! | `eventhub_published_total` | counter | `event_type` |
//! | `eventhub_publish_failed_total` | counter | `event_type` |
//! | `eventhub_publish_duration_seconds` | histogram | `event_type` |
//! | `eventhub_handled_total` | counter | `consumer`, `event_type` |
//! | `eventhub_handle_failed_total` | counter | `consumer`, `event_type` |
//! | `eventhub_retried_total` | counter | `consumer`, `event_type` |
//! | `eventhub_dead_lettered_total` | counter | `consumer`, `event_type`, `reason` |
//! | `eventhub_handler_duration_seconds` | histogram | `consumer`, `event_type` |
//! | `eventhub_consumer_running` | gauge | `consumer` |
//! | `eventhub_consumer_pending` | gauge | `consumer`, `stream` |
//! | `eventhub_consumer_ack_pending` | gauge | `consumer`, `stream` |
//! | `eventhub_consumer_dlq_depth` | gauge | `consumer` |
//! | `eventhub_dlq_depth` | gauge | |

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::TryStreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::counters::{ConsumerCounters, PublishCounters, REASONS};
use crate::topology::{ADVISORY_STREAM, DLQ_PREFIX, DLQ_STREAM};

/// The metrics of one [`Client`]: what its publishers and consumers did, and gauges read from
/// JetStream. From [`Client::metrics`].
#[derive(Debug, Clone)]
pub struct Metrics {
    client: Client,
}

/// Writes `# HELP` and `# TYPE`.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped for the text format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Every metric in the Prometheus text exposition format 0.0.4. Gauges read from JetStream
    /// (pending, ack pending, dead-letter depth) are left out while the server cannot answer.
    pub async fn render(&self) -> String {
        let registry = self.client.registry();
        let mut out = String::with_capacity(4096);
        let connected = self.client.is_connected();
        header(
            &mut out,
            "eventhub_connected",
            "gauge",
            "Whether the client is connected to NATS.",
        );
        let _ = writeln!(out, "eventhub_connected {}", u8::from(connected));

        let publishes = registry.publish_list();
        let counter =
            |out: &mut String, name: &str, help: &str, get: &dyn Fn(&PublishCounters) -> u64| {
                header(out, name, "counter", help);
                for (ty, c) in &publishes {
                    let _ = writeln!(out, "{name}{{event_type=\"{}\"}} {}", esc(ty), get(c));
                }
            };
        counter(
            &mut out,
            "eventhub_published_total",
            "Events published and acknowledged by their stream (duplicates included).",
            &|c| c.published.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "eventhub_publish_failed_total",
            "Publishes that failed (after their retries).",
            &|c| c.failed.load(Ordering::Relaxed),
        );
        let name = "eventhub_publish_duration_seconds";
        header(
            &mut out,
            name,
            "histogram",
            "Time from sending an event to its stream's acknowledgement.",
        );
        for (ty, c) in &publishes {
            c.latency
                .render(&mut out, name, &format!("event_type=\"{}\"", esc(ty)));
        }

        let consumers = registry.consumer_list();
        let labels = |c: &ConsumerCounters| {
            format!(
                "consumer=\"{}\",event_type=\"{}\"",
                esc(&c.name),
                esc(c.event_type)
            )
        };
        let counter =
            |out: &mut String, name: &str, help: &str, get: &dyn Fn(&ConsumerCounters) -> u64| {
                header(out, name, "counter", help);
                for c in &consumers {
                    let _ = writeln!(out, "{name}{{{}}} {}", labels(c), get(c));
                }
            };
        counter(
            &mut out,
            "eventhub_handled_total",
            "Events handled successfully and acknowledged.",
            &|c| c.handled.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "eventhub_handle_failed_total",
            "Handler runs that failed (error, rejection, panic or timeout).",
            &|c| c.failed.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "eventhub_retried_total",
            "Failed deliveries sent back for a retry.",
            &|c| c.retried.load(Ordering::Relaxed),
        );
        let name = "eventhub_dead_lettered_total";
        header(
            &mut out,
            name,
            "counter",
            "Events moved to the dead letters, by reason.",
        );
        for c in &consumers {
            for (reason, n) in REASONS.iter().zip(&c.dead_lettered) {
                let _ = writeln!(
                    out,
                    "{name}{{{},reason=\"{reason}\"}} {}",
                    labels(c),
                    n.load(Ordering::Relaxed)
                );
            }
        }
        let name = "eventhub_handler_duration_seconds";
        header(
            &mut out,
            name,
            "histogram",
            "Time a handler ran, whatever its outcome.",
        );
        for c in &consumers {
            c.latency.render(&mut out, name, &labels(c));
        }
        header(
            &mut out,
            "eventhub_consumer_running",
            "gauge",
            "Instances of the consumer running in this process.",
        );
        for c in &consumers {
            let _ = writeln!(
                out,
                "eventhub_consumer_running{{consumer=\"{}\"}} {}",
                esc(&c.name),
                c.running.load(Ordering::Acquire)
            );
        }

        if !connected {
            return out;
        }
        let mut infos = Vec::new();
        for c in &consumers {
            if let Some(info) = consumer_info(&self.client, c.stream, &c.name).await {
                infos.push((c, info));
            }
        }
        for (name, help, get) in [
            (
                "eventhub_consumer_pending",
                "Events in the stream not yet delivered to the consumer (from JetStream).",
                (|i: &async_nats::jetstream::consumer::Info| i.num_pending)
                    as fn(&async_nats::jetstream::consumer::Info) -> u64,
            ),
            (
                "eventhub_consumer_ack_pending",
                "Events delivered to the consumer and not yet acknowledged (from JetStream).",
                |i| i.num_ack_pending as u64,
            ),
        ] {
            header(&mut out, name, "gauge", help);
            for (c, info) in &infos {
                let _ = writeln!(
                    out,
                    "{name}{{consumer=\"{}\",stream=\"{}\"}} {}",
                    esc(&c.name),
                    esc(c.stream),
                    get(info)
                );
            }
        }
        if let Ok(mut dlq) = self.client.jetstream().get_stream(DLQ_STREAM).await {
            header(
                &mut out,
                "eventhub_consumer_dlq_depth",
                "gauge",
                "Dead letters of the consumer in the EVENTHUB_DLQ stream.",
            );
            for c in &consumers {
                let filter = format!("{DLQ_PREFIX}.{}.>", c.name);
                let depth = match dlq.info_with_subjects(&filter).await {
                    Ok(subjects) => subjects
                        .try_fold(0u64, |n, (_, count)| async move { Ok(n + count as u64) })
                        .await
                        .ok(),
                    Err(_) => None,
                };
                if let Some(depth) = depth {
                    let _ = writeln!(
                        out,
                        "eventhub_consumer_dlq_depth{{consumer=\"{}\"}} {depth}",
                        esc(&c.name)
                    );
                }
            }
            if let Ok(info) = dlq.info().await {
                header(
                    &mut out,
                    "eventhub_dlq_depth",
                    "gauge",
                    "Dead letters in the EVENTHUB_DLQ stream, of every consumer.",
                );
                let _ = writeln!(out, "eventhub_dlq_depth {}", info.state.messages);
            }
        }
        out
    }
}

async fn consumer_info(
    client: &Client,
    stream: &str,
    name: &str,
) -> Option<async_nats::jetstream::consumer::Info> {
    let stream = client.jetstream().get_stream_no_info(stream).await.ok()?;
    stream.consumer_info(name).await.ok()
}

/// What [`Client::health`] checks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthOptions {
    /// A consumer whose lag (pending plus ack pending) is above this is unhealthy. Default 1000.
    pub max_lag: u64,
    /// Streams that must exist. Default (`None`): the streams of the consumers this client
    /// started, plus `EVENTHUB_DLQ` and `EVENTHUB_ADVISORIES` (pass a catalog's stream names to
    /// check them all).
    pub streams: Option<Vec<String>>,
}

impl HealthOptions {
    /// A consumer lagging by more than `max_lag` events is unhealthy.
    pub fn max_lag(mut self, max_lag: u64) -> Self {
        self.max_lag = max_lag;
        self
    }

    /// These streams must exist.
    pub fn streams<I, S>(mut self, streams: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.streams = Some(streams.into_iter().map(Into::into).collect());
        self
    }
}

impl Default for HealthOptions {
    fn default() -> Self {
        Self {
            max_lag: 1000,
            streams: None,
        }
    }
}

/// Whether a stream exists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamHealth {
    /// The stream.
    pub name: String,
    /// Whether the server has it.
    pub present: bool,
}

/// The state of a consumer this client runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsumerHealth {
    /// The durable's name.
    pub name: String,
    /// Its stream.
    pub stream: String,
    /// An instance is running in this process and the server has the durable.
    pub alive: bool,
    /// Events not yet delivered (0 when unknown).
    pub pending: u64,
    /// Events delivered and not acknowledged (0 when unknown).
    pub ack_pending: u64,
    /// Pending plus ack pending is above [`HealthOptions::max_lag`].
    pub lagging: bool,
}

/// The health of a client, from [`Client::health`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    /// Connected to NATS.
    pub connected: bool,
    /// The streams checked.
    pub streams: Vec<StreamHealth>,
    /// The consumers this client started (and did not shut down on purpose).
    pub consumers: Vec<ConsumerHealth>,
    /// Connected, every stream present, every consumer alive and none lagging.
    pub healthy: bool,
}

impl Client {
    /// This client's metrics (shared by its publishers and consumers).
    pub fn metrics(&self) -> Metrics {
        Metrics {
            client: self.clone(),
        }
    }

    /// Checks the connection, the streams and the consumers this client started. Never fails:
    /// what cannot be checked counts as unhealthy.
    pub async fn health(&self, options: &HealthOptions) -> Health {
        let connected = self.is_connected();
        let names: Vec<String> = match &options.streams {
            Some(names) => names.clone(),
            // The streams this client's consumers read, and eventhub's own.
            None => {
                let mut names: Vec<String> = self.registry().consumer_streams();
                names.extend([DLQ_STREAM.to_string(), ADVISORY_STREAM.to_string()]);
                names.sort();
                names.dedup();
                names
            }
        };
        // One listing request, not one per stream: a health check should stay cheap and, when
        // the server just went away, wait for one request timeout at most.
        let existing: std::collections::HashSet<String> = if connected {
            self.jetstream()
                .stream_names()
                .try_collect()
                .await
                .unwrap_or_default()
        } else {
            Default::default()
        };
        let streams: Vec<StreamHealth> = names
            .into_iter()
            .map(|name| StreamHealth {
                present: existing.contains(&name),
                name,
            })
            .collect();
        let mut consumers = Vec::new();
        for c in self.registry().consumer_list() {
            let running = c.running.load(Ordering::Acquire) > 0;
            if !running && c.retired.load(Ordering::Acquire) {
                continue;
            }
            let info = if self.is_connected() {
                consumer_info(self, c.stream, &c.name).await
            } else {
                None
            };
            let (pending, ack_pending) = info
                .as_ref()
                .map_or((0, 0), |i| (i.num_pending, i.num_ack_pending as u64));
            consumers.push(ConsumerHealth {
                name: c.name.clone(),
                stream: c.stream.to_string(),
                alive: running && info.is_some(),
                pending,
                ack_pending,
                lagging: pending + ack_pending > options.max_lag,
            });
        }
        let connected = connected && self.is_connected();
        let healthy = connected
            && streams.iter().all(|s| s.present)
            && consumers.iter().all(|c| c.alive && !c.lagging);
        Health {
            connected,
            streams,
            consumers,
            healthy,
        }
    }

    /// Serves `GET /metrics` ([`Metrics::render`], `text/plain; version=0.0.4`) and
    /// `GET /health` ([`Client::health`] with default options as JSON: 200 when healthy, 503
    /// otherwise) on `addr` (port 0 picks a free port) until the returned server is dropped.
    pub async fn serve_metrics(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
    ) -> std::io::Result<MetricsServer> {
        self.serve_metrics_with(addr, HealthOptions::default())
            .await
    }

    /// [`Client::serve_metrics`] with the options `/health` checks.
    pub async fn serve_metrics_with(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
        health: HealthOptions,
    ) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let client = self.clone();
        let health = Arc::new(health);
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((socket, _)) => {
                        let (client, health) = (client.clone(), health.clone());
                        tokio::spawn(async move {
                            let answer = serve_one(socket, &client, &health);
                            if let Err(e) = tokio::time::timeout(Duration::from_secs(30), answer)
                                .await
                                .unwrap_or(Ok(()))
                            {
                                tracing::debug!("eventhub metrics endpoint: {e}");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!("eventhub metrics endpoint: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(MetricsServer { addr: local, task })
    }
}

/// Answers one HTTP/1.1 request, then closes the connection.
async fn serve_one(
    mut socket: TcpStream,
    client: &Client,
    health: &HealthOptions,
) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "slow request"))??;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
        if request.len() > 8192 {
            return respond(
                &mut socket,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
        }
    }
    let line = String::from_utf8_lossy(&request);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let body = client.metrics().render().await;
            respond(
                &mut socket,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await
        }
        ("GET", "/health") => {
            let h = client.health(health).await;
            let body = serde_json::to_string(&h).unwrap_or_default();
            let status = if h.healthy {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            respond(&mut socket, status, "application/json", &body).await
        }
        ("GET", _) => {
            respond(
                &mut socket,
                "404 Not Found",
                "text/plain",
                "not found: try /metrics or /health\n",
            )
            .await
        }
        _ => respond(&mut socket, "405 Method Not Allowed", "text/plain", "").await,
    }
}

async fn respond(
    socket: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.shutdown().await
}

/// The HTTP endpoint of [`Client::serve_metrics`]; stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::{BUCKET_LABELS, Histogram, Registry};

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        for (le, n) in [
            ("0.0005", 1),
            ("0.0025", 1),
            ("0.005", 2),
            ("10", 2),
            ("+Inf", 3),
        ] {
            assert!(
                out.contains(&format!("x_bucket{{a=\"b\",le=\"{le}\"}} {n}\n")),
                "{le}: {out}"
            );
        }
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
        let sum: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("x_sum{a=\"b\"} "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 20.0033).abs() < 1e-9, "{sum}");
        assert_eq!(out.lines().count(), BUCKET_LABELS.len() + 2);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn publish_counters_are_made_once_per_type_and_listed_once_used() {
        let registry = Registry::default();
        let created = registry.publishes("user.created");
        assert!(Arc::ptr_eq(&created, &registry.publishes("user.created")));
        assert!(registry.publish_list().is_empty());
        created.published.fetch_add(1, Ordering::Relaxed);
        registry
            .publishes("custom.thing")
            .published
            .fetch_add(1, Ordering::Relaxed);
        let listed: Vec<&str> = registry.publish_list().iter().map(|(t, _)| *t).collect();
        assert_eq!(listed, ["custom.thing", "user.created"]);
    }

    #[test]
    fn dead_letter_reasons_are_counted_by_name() {
        let registry = Registry::default();
        let c = registry.consumer("p__user_created", "IDENTITY", "user.created");
        c.dead_lettered("rejected");
        c.dead_lettered("max-deliver");
        c.dead_lettered("something-new");
        let counts: Vec<u64> = c
            .dead_lettered
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, [1, 0, 1, 1]);
        // The same durable is one entry, however many instances run.
        assert!(Arc::ptr_eq(
            &c,
            &registry.consumer("p__user_created", "IDENTITY", "user.created")
        ));
    }
}
