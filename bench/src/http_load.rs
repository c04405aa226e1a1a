//! The load generator of the gateway rows: prepared `POST` requests, `concurrency` in flight.
//! HTTP/1.1 runs one keep-alive connection per request in flight, each request's bytes
//! serialized once and written on the socket, each answer parsed by `httparse` ([`Wire`]), as
//! `wrk` does; HTTP/2 runs every request as a stream of one connection on hyper's
//! connection-level client, as `h2load` would. A general HTTP client (pooling, a task and a
//! channel per connection, per-request URL parsing) would spend the CPU the gateway shares with
//! it on this machine: the hyper client in place of [`Wire`] cost the HTTP/1.1 row about 15 %
//! of its throughput (`EVENTHUB_BENCH_HYPER_CLIENT=1` runs it that way, to compare).

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
        let mut wire = format!("POST {} HTTP/1.1\r\nhost: {}\r\n", self.path, self.addr);
        for (name, value) in &self.headers {
            wire.push_str(&format!("{name}: {value}\r\n"));
        }
        wire.push_str(&format!("content-length: {}\r\n\r\n", self.body.len()));
        let mut wire = wire.into_bytes();
        wire.extend_from_slice(&self.body);
        Ok(Template {
            uri,
            headers,
            body: self.body.clone(),
            wire: Bytes::from(wire),
        })
    }
}

/// A prepared request's parts, each cheap to clone (shared bytes).
#[derive(Clone)]
struct Template {
    uri: hyper::Uri,
    headers: hyper::HeaderMap,
    body: Bytes,
    /// The whole HTTP/1.1 request, for [`Wire`].
    wire: Bytes,
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
    /// HTTP/1.1 written and read on the socket itself (see [`Wire`]).
    Wire(Wire),
}

/// An HTTP/1.1 keep-alive connection driven the way `wrk` drives one: the request's bytes,
/// serialized once, written again and again; each answer's head parsed by `httparse` (hyper's
/// own parser) and its body skipped by `Content-Length`. No connection task and no channel
/// between the request and the socket: the load generator shares this machine's two cores with
/// the gateway and the server, and every wakeup it saves is the gateway's to use.
struct Wire {
    stream: tokio::net::TcpStream,
    /// What was read and not consumed yet.
    buffer: bytes::BytesMut,
}

impl Wire {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buffer: bytes::BytesMut::with_capacity(4096),
        })
    }

    /// Sends `request` (a whole HTTP/1.1 request) and reads its answer: status and body.
    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<(u16, Bytes)> {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(request).await?;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = response.parse(&self.buffer)? {
                let status = response.code.context("an answer without a status")?;
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .context("an answer without Content-Length")?;
                let length: usize = std::str::from_utf8(length.value)?.trim().parse()?;
                while self.buffer.len() < head + length {
                    self.read().await?;
                }
                let mut answer = self.buffer.split_to(head + length);
                return Ok((status, answer.split_off(head).freeze()));
            }
            self.read().await?;
        }
    }

    async fn read(&mut self) -> anyhow::Result<()> {
        use tokio::io::AsyncReadExt;
        if self.stream.read_buf(&mut self.buffer).await? == 0 {
            anyhow::bail!("the gateway closed the connection");
        }
        Ok(())
    }
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
            Sender::Wire(_) => anyhow::bail!("a raw connection sends no hyper request"),
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
        Version::Http1 if std::env::var("EVENTHUB_BENCH_HYPER_CLIENT").is_err() => {
            for _ in 0..concurrency {
                senders.push(Sender::Wire(Wire::connect(prepared.addr).await?));
            }
        }
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
    if let Sender::Wire(wire) = sender {
        let (status, body) = wire.exchange(&template.wire).await?;
        anyhow::ensure!(
            status == expect,
            "the gateway answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        return Ok(());
    }
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
