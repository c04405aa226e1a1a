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
    /// The parts every request repeats, parsed once: what a load generator keeps ready.
    fn template(&self, version: Version) -> anyhow::Result<Template> {
        let mut headers = hyper::HeaderMap::new();
        if let Version::Http1 = version {
            // Origin form and a Host header, as HTTP/1.1 clients send.
            headers.insert(hyper::header::HOST, self.addr.to_string().parse()?);
        }
        for (name, value) in &self.headers {
            headers.append(hyper::header::HeaderName::from_static(name), value.parse()?);
        }
        let uri: hyper::Uri = match version {
            Version::Http1 => self.path.parse()?,
            // HTTP/2 takes scheme and authority from the URI (`:scheme`, `:authority`).
            Version::Http2 => format!("http://{}{}", self.addr, self.path).parse()?,
        };
        Ok(Template {
            uri,
            headers,
            body: self.body.clone(),
        })
    }
}

/// A prepared request's parts, each cheap to clone (shared bytes).
#[derive(Clone)]
struct Template {
    uri: hyper::Uri,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Template {
    /// A new request, as sent each time.
    fn request(&self) -> hyper::Request<Full<Bytes>> {
        let mut request = hyper::Request::new(Full::new(self.body.clone()));
        *request.method_mut() = hyper::Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
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
    let template = prepared.template(version)?;
    for sender in &mut senders {
        once(sender, &template, prepared.expect).await?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for mut sender in senders {
        let (next, template, expect) = (next.clone(), template.clone(), prepared.expect);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                once(&mut sender, &template, expect).await?;
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
async fn once(sender: &mut Sender, template: &Template, expect: u16) -> anyhow::Result<()> {
    let response = sender.send(template.request()).await?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the answer")?
        .to_bytes();
    anyhow::ensure!(
        status == expect,
        "the gateway answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}
