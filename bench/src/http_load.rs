//! The load generator of the gateway rows: prepared `POST` requests sent on hyper's
//! connection-level client (one HTTP/1.1 connection per request in flight, or one HTTP/2
//! connection carrying them all), so the client's own work per request stays small beside the
//! gateway's — as `wrk` or `h2load` would, where a general HTTP client (pooling, redirects,
//! per-request URL parsing) would spend the CPU the gateway shares with it on this machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The HTTP version the requests use.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Version {
    /// One keep-alive connection per request in flight.
    Http1,
    /// One connection, every request in flight a stream of it (prior knowledge, cleartext).
    Http2,
}

/// One prepared request, sent again and again.
#[derive(Clone)]
pub(crate) struct Prepared {
    /// `host:port`, also the HTTP/2 authority.
    pub(crate) addr: SocketAddr,
    pub(crate) path: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Bytes,
    /// The status every answer must have.
    pub(crate) expect: u16,
}

impl Prepared {
    fn request(&self, version: Version) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
        let builder = match version {
            // Origin form and a Host header, as HTTP/1.1 clients send.
            Version::Http1 => {
                hyper::Request::post(self.path).header(hyper::header::HOST, self.addr.to_string())
            }
            // HTTP/2 takes scheme and authority from the URI (`:scheme`, `:authority`).
            Version::Http2 => hyper::Request::post(format!("http://{}{}", self.addr, self.path)),
        };
        let builder = self
            .headers
            .iter()
            .fold(builder, |b, (name, value)| b.header(*name, value.as_str()));
        Ok(builder.body(Full::new(self.body.clone()))?)
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        Ok(match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
        })
    }
}

async fn tcp(addr: SocketAddr) -> anyhow::Result<TokioIo<tokio::net::TcpStream>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(TokioIo::new(stream))
}

/// Sends `total` copies of `prepared`, `concurrency` in flight; returns requests per second and
/// each request's latency in microseconds, sorted. Connections are opened (and one request
/// sent on each) before the clock starts.
pub(crate) async fn run(
    prepared: &Prepared,
    version: Version,
    concurrency: usize,
    total: usize,
) -> anyhow::Result<(f64, Vec<u64>)> {
    let mut senders = Vec::with_capacity(concurrency);
    match version {
        Version::Http1 => {
            for _ in 0..concurrency {
                let (sender, connection) = http1::handshake(tcp(prepared.addr).await?).await?;
                tokio::spawn(connection);
                senders.push(Sender::H1(sender));
            }
        }
        Version::Http2 => {
            let (sender, connection) =
                http2::handshake(TokioExecutor::new(), tcp(prepared.addr).await?).await?;
            tokio::spawn(connection);
            senders.extend((0..concurrency).map(|_| Sender::H2(sender.clone())));
        }
    }
    for sender in &mut senders {
        once(sender, prepared, version).await?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for mut sender in senders {
        let (next, prepared) = (next.clone(), prepared.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                once(&mut sender, &prepared, version).await?;
                latencies.push(t.elapsed().as_micros() as u64);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for task in tasks {
        all.extend(task.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok((total as f64 / secs, all))
}

/// One request and its whole answer, whose status must be the expected one.
async fn once(sender: &mut Sender, prepared: &Prepared, version: Version) -> anyhow::Result<()> {
    let response = sender.send(prepared.request(version)?).await?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    anyhow::ensure!(
        status == prepared.expect,
        "the gateway answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}
