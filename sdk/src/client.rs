//! The connection of one service to NATS.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use tokio::sync::Notify;

use crate::error::{ConnectError, ConnectErrorKind};
use crate::wire::codec::Codec;
use crate::wire::crypto::{Keyring, KeyringError};
use crate::wire::signing::{Signer, Trust};

/// Where to connect when `NATS_URL` is not set.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// How a service connects: [`ConnectOptions::new`] (defaults, no environment) or
/// [`ConnectOptions::from_env`] (what the eventhub binaries do), then the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Server URL(s), comma-separated. Default [`DEFAULT_URL`] ([`ConnectOptions::from_env`]: `$NATS_URL`).
    pub url: String,
    /// The service's name: the `ce-source` of what it publishes and the prefix of its durable
    /// consumers. Lowercase letters, digits and `-`.
    pub service: String,
    /// How long a JetStream request (publish ack, API call) may take. Default 5 s.
    pub request_timeout: Duration,
    /// How long the first connection attempt may take. Default 5 s.
    pub connect_timeout: Duration,
    /// Publishes awaiting their ack at once, across the connection; further publishes wait.
    /// Default 4096.
    pub max_acks_in_flight: usize,
    /// Attempts of [`Publisher::publish`](crate::Publisher::publish) when the ack times out or the connection is down
    /// (e.g. while a server restarts), the first included; every attempt reuses the event id,
    /// so the stream stores the event once. Default 4 (waits of 0.25 s, 0.5 s, 1 s between).
    pub publish_attempts: u32,
    /// User and password. [`ConnectOptions::from_env`]: `$NATS_USER` / `$NATS_PASSWORD`.
    pub user_password: Option<(String, String)>,
    /// Token. [`ConnectOptions::from_env`]: `$NATS_TOKEN`.
    pub token: Option<String>,
    /// Path of a `.creds` file (JWT + nkey seed). [`ConnectOptions::from_env`]: `$NATS_CREDS`.
    pub credentials_file: Option<String>,
    /// An nkey seed (`SU…`) to sign the server's challenge with. [`ConnectOptions::from_env`]:
    /// `$NATS_NKEY_SEED`.
    pub nkey_seed: Option<String>,
    /// PEM file of the CA(s) that signed the server's certificate; setting it requires TLS.
    /// [`ConnectOptions::from_env`]: `$NATS_CA`.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS. [`ConnectOptions::from_env`]: `$NATS_CERT` and
    /// `$NATS_KEY`.
    pub tls_client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// How this service's publishers encode events unless told otherwise
    /// ([`Publisher::with_codec`](crate::Publisher::with_codec), [`PublishOptions::codec`](crate::PublishOptions::codec)).
    /// Default JSON. Consumers decode either codec, by the `content-type` header.
    pub codec: Codec,
    /// The keys of the fields schemas mark `x-sensitive` ([`crate::wire::crypto`]): the active one
    /// encrypts what this service publishes, each one decrypts what it encrypted. Default none;
    /// [`ConnectOptions::from_env`] reads them with [`Keyring::from_env`] (`EVENTHUB_ENCRYPTION_KEYS` or `EVENTHUB_ENCRYPTION_KEY_FILE`,
    /// with `EVENTHUB_ENCRYPTION_KEY_ACTIVE`); `Ok(None)` when they are unset. An `Err` (a
    /// malformed variable or key file) makes [`Client::connect`] fail with
    /// [`ConnectErrorKind::InvalidOptions`], naming it.
    pub keyring: Result<Option<Keyring>, KeyringError>,
    /// Prefix of this connection's inboxes, where replies and JetStream deliveries arrive.
    /// Default (`None`): `_INBOX_<service>` ([`service_inbox_prefix`]). The permissions
    /// `eventhub config nats` generates let each service subscribe only below its own prefix,
    /// so no service can read another's deliveries; set `Some("_INBOX")` for a server whose
    /// permissions grant the NATS default `_INBOX.>`.
    pub inbox_prefix: Option<String>,
    /// The nkey seed (`SU…`) this service signs its events with ([`crate::wire::signing`]).
    /// Default none; [`ConnectOptions::from_env`]: `$EVENTHUB_SIGNING_SEED`, else
    /// `$NATS_NKEY_SEED` (the service's own nkey, whose public key the declaration lists).
    pub signing_seed: Option<String>,
    /// The services whose events consumers of this client verify; a forged event is
    /// dead-lettered with reason `forged`. Default none (nothing verified).
    pub trust: Option<Trust>,
}

impl ConnectOptions {
    /// Options for `service` with the defaults: [`DEFAULT_URL`], no credentials, no TLS, no
    /// encryption keys, JSON. Reads nothing from the environment (see
    /// [`ConnectOptions::from_env`]).
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            url: DEFAULT_URL.to_string(),
            service: service.into(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            max_acks_in_flight: 4096,
            publish_attempts: 4,
            user_password: None,
            token: None,
            credentials_file: None,
            nkey_seed: None,
            tls_ca: None,
            tls_client_cert: None,
            codec: Codec::Json,
            keyring: Ok(None),
            inbox_prefix: None,
            signing_seed: None,
            trust: None,
        }
    }

    /// Options for `service` from the environment, as the eventhub binaries read it:
    /// `NATS_URL`, `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`, `NATS_CREDS`, `NATS_NKEY_SEED`,
    /// `NATS_CA`, `NATS_CERT`/`NATS_KEY`, and the encryption keys ([`Keyring::from_env`]).
    /// Without `NATS_USER`, a set `EVENTHUB_<SERVICE>_PASSWORD` (service name upper-cased, `-`
    /// as `_`, [`service_password_var`]) logs in as the user named like the service, as
    /// `eventhub config nats` declares them. Unset or empty variables keep the defaults of
    /// [`ConnectOptions::new`].
    pub fn from_env(service: impl Into<String>) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut options = Self::new(service);
        let service = options.service.clone();
        if let Some(url) = env("NATS_URL") {
            options.url = url;
        }
        options.user_password = env("NATS_USER").zip(env("NATS_PASSWORD")).or_else(|| {
            // One user per service, named like it: its password from EVENTHUB_<SERVICE>_PASSWORD.
            env(&service_password_var(&service)).map(|p| (service.clone(), p))
        });
        options.token = env("NATS_TOKEN");
        options.credentials_file = env("NATS_CREDS");
        options.nkey_seed = env("NATS_NKEY_SEED");
        options.tls_ca = env("NATS_CA").map(Into::into);
        options.tls_client_cert = env("NATS_CERT")
            .zip(env("NATS_KEY"))
            .map(|(c, k)| (c.into(), k.into()));
        options.keyring = Keyring::from_env();
        options.signing_seed = env("EVENTHUB_SIGNING_SEED").or_else(|| options.nkey_seed.clone());
        options
    }

    /// Sets the prefix of this connection's inboxes (default `_INBOX_<service>`; see the field
    /// of the same name).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use eventhub::{Client, ConnectOptions};
    /// // A server whose permissions still grant the NATS default `_INBOX.>`.
    /// let client = Client::connect(ConnectOptions::new("auth").inbox_prefix("_INBOX")).await?;
    /// # Ok(()) }
    /// ```
    pub fn inbox_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.inbox_prefix = Some(prefix.into());
        self
    }

    /// Sets the keys for fields marked `x-sensitive` (replacing those from the environment).
    ///
    /// ```no_run
    /// # async fn demo(key: [u8; 32]) -> Result<(), Box<dyn std::error::Error>> {
    /// use eventhub::{Client, ConnectOptions, Keyring};
    /// let keys = Keyring::new("2026-06", key)?;
    /// let client = Client::connect(ConnectOptions::new("auth").keyring(keys)).await?;
    /// # Ok(()) }
    /// ```
    pub fn keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Ok(Some(keyring));
        self
    }

    /// Removes the encryption keys: events with `x-sensitive` fields cannot be published, and
    /// consumers receive those fields as ciphertext.
    pub fn without_keyring(mut self) -> Self {
        self.keyring = Ok(None);
        self
    }

    /// Sets the codec this service's publishers use by default.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Sets user and password.
    pub fn user_password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user_password = Some((user.into(), password.into()));
        self
    }

    /// Sets the nkey seed.
    pub fn nkey_seed(mut self, seed: impl Into<String>) -> Self {
        self.nkey_seed = Some(seed.into());
        self
    }

    /// Trusts the CA(s) in this PEM file for the server's certificate (and requires TLS).
    pub fn tls_ca(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls_ca = Some(path.into());
        self
    }

    /// Presents this client certificate and key (PEM) for mutual TLS.
    pub fn tls_client_cert(
        mut self,
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.tls_client_cert = Some((cert.into(), key.into()));
        self
    }

    /// Sets the server URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Sets how many times a publish is attempted.
    pub fn publish_attempts(mut self, attempts: u32) -> Self {
        self.publish_attempts = attempts;
        self
    }

    /// Sets the JetStream request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Signs every event this service publishes with the nkey of `seed` (`SU…`).
    pub fn signing_seed(mut self, seed: impl Into<String>) -> Self {
        self.signing_seed = Some(seed.into());
        self
    }

    /// Verifies the signatures of consumed events against `trust`.
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = Some(trust);
        self
    }

    /// Sets how long the first connection attempt may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how many publishes may await their ack at once.
    pub fn max_acks_in_flight(mut self, max: usize) -> Self {
        self.max_acks_in_flight = max;
        self
    }

    /// Sets a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets the path of a `.creds` file (JWT + nkey seed).
    pub fn credentials_file(mut self, path: impl Into<String>) -> Self {
        self.credentials_file = Some(path.into());
        self
    }
}

/// A connected service. Cheap to clone; clones share the connection.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use eventhub::{Client, ConnectOptions};
/// let client = Client::connect(ConnectOptions::new("auth")).await?;
/// println!("connected as {}", client.service());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    nats: async_nats::Client,
    js: jetstream::Context,
    service: Arc<str>,
    /// How the server knows this connection: the user name, or the kind of credential.
    identity: String,
    url: String,
    permissions: Arc<PermissionWatch>,
    max_payload: usize,
    publish_attempts: u32,
    codec: Codec,
    keyring: Option<Keyring>,
    signer: Option<Signer>,
    trust: Option<Trust>,
    registry: crate::counters::Registry,
}

impl Client {
    /// Connects. Fails fast with [`ConnectErrorKind::Unreachable`] naming the URL when no
    /// server answers; once connected, the client reconnects by itself.
    pub async fn connect(options: ConnectOptions) -> Result<Client, ConnectError> {
        if !valid_service_name(&options.service) {
            return Err(ConnectError::new(
                ConnectErrorKind::InvalidOptions,
                format!(
                    "service name `{}` must be lowercase letters, digits and `-`, starting with a \
                     letter (it names durable consumers and is the events' ce-source)",
                    options.service
                ),
            ));
        }
        let keyring = options.keyring.clone().map_err(|e| {
            ConnectError::with_source(
                ConnectErrorKind::InvalidOptions,
                format!(
                    "the encryption keys of service `{}` cannot be used: {e}",
                    options.service
                ),
                e,
            )
        })?;
        let inbox_prefix = options
            .inbox_prefix
            .clone()
            .unwrap_or_else(|| service_inbox_prefix(&options.service));
        if !valid_inbox_prefix(&inbox_prefix) {
            return Err(ConnectError::new(
                ConnectErrorKind::InvalidOptions,
                format!(
                    "inbox prefix `{inbox_prefix}` is not a subject prefix: dot-separated tokens \
                     without spaces or wildcards"
                ),
            ));
        }
        let permissions = Arc::new(PermissionWatch::default());
        let watch = permissions.clone();
        let service = options.service.clone();
        let mut nats_options = async_nats::ConnectOptions::new()
            .name(&options.service)
            .custom_inbox_prefix(inbox_prefix)
            .connection_timeout(options.connect_timeout)
            .request_timeout(Some(options.request_timeout))
            .event_callback(move |event| {
                let watch = watch.clone();
                let service = service.clone();
                async move {
                    match &event {
                        async_nats::Event::ServerError(async_nats::ServerError::Other(msg)) => {
                            watch.record(msg);
                            tracing::warn!(service = %service, "nats server error: {msg}");
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!(service = %service, "disconnected from nats; reconnecting")
                        }
                        async_nats::Event::Connected => {
                            tracing::info!(service = %service, "connected to nats")
                        }
                        other => tracing::debug!(service = %service, "nats event: {other}"),
                    }
                }
            });
        if let Some((user, password)) = &options.user_password {
            nats_options = nats_options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &options.token {
            nats_options = nats_options.token(token.clone());
        }
        if let Some(path) = &options.credentials_file {
            nats_options = nats_options.credentials_file(path).await.map_err(|e| {
                ConnectError::with_source(
                    ConnectErrorKind::InvalidOptions,
                    format!("cannot read credentials file {path}"),
                    e,
                )
            })?;
        }
        let signer =
            match &options.signing_seed {
                Some(seed) => Some(Signer::from_seed(seed).map_err(|e| {
                    ConnectError::new(ConnectErrorKind::InvalidOptions, e.to_string())
                })?),
                None => None,
            };
        if let Some(seed) = &options.nkey_seed {
            if nkeys::KeyPair::from_seed(seed).is_err() {
                return Err(ConnectError::new(
                    ConnectErrorKind::InvalidOptions,
                    "the nkey seed is not valid (expected an `SU…` user seed)",
                ));
            }
            nats_options = nats_options.nkey(seed.clone());
        }
        for (what, path) in options.tls_ca.iter().map(|p| ("CA file", p)).chain(
            options
                .tls_client_cert
                .iter()
                .flat_map(|(c, k)| [("client certificate", c), ("client key", k)]),
        ) {
            if !path.is_file() {
                return Err(ConnectError::new(
                    ConnectErrorKind::InvalidOptions,
                    format!("TLS {what} {} does not exist", path.display()),
                ));
            }
        }
        if let Some(ca) = &options.tls_ca {
            nats_options = nats_options
                .add_root_certificates(ca.clone())
                .require_tls(true);
        }
        if let Some((cert, key)) = &options.tls_client_cert {
            nats_options = nats_options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        let servers: Vec<&str> = options
            .url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let nats = nats_options.connect(servers).await.map_err(|e| {
            use async_nats::ConnectErrorKind as K;
            let url = &options.url;
            // A refused certificate surfaces as an I/O error of the handshake.
            let kind = match e.kind() {
                K::Io if tls_failure(&e) => K::Tls,
                other => other,
            };
            match kind {
                K::AuthorizationViolation | K::Authentication => ConnectError::with_source(
                    ConnectErrorKind::Authentication,
                    format!(
                        "NATS at {url} refused service `{}` ({}): set its user and password \
                         (NATS_USER/NATS_PASSWORD, or {} for the user named like the service), \
                         a token, nkey seed or creds file",
                        options.service,
                        identity(&options),
                        service_password_var(&options.service)
                    ),
                    e,
                ),
                K::Tls => ConnectError::with_source(
                    ConnectErrorKind::Tls,
                    format!(
                        "TLS with NATS at {url} failed for service `{}` (untrusted server \
                         certificate, or the server wants a client certificate)",
                        options.service
                    ),
                    e,
                ),
                K::ServerParse => ConnectError::with_source(
                    ConnectErrorKind::InvalidOptions,
                    format!("cannot connect to `{url}`"),
                    e,
                ),
                _ => ConnectError::with_source(
                    ConnectErrorKind::Unreachable,
                    format!("cannot reach NATS at {url}: no server answered"),
                    e,
                ),
            }
        })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(options.request_timeout)
            .max_ack_inflight(options.max_acks_in_flight.max(1))
            .backpressure_on_inflight(true)
            .build(nats.clone());
        let max_payload = nats.server_info().max_payload;
        Ok(Client {
            inner: Arc::new(Inner {
                max_payload,
                publish_attempts: options.publish_attempts.max(1),
                codec: options.codec,
                keyring,
                signer,
                trust: options.trust.clone(),
                nats,
                js,
                identity: identity(&options),
                service: options.service.into(),
                url: options.url,
                permissions,
                registry: crate::counters::Registry::default(),
            }),
        })
    }

    /// What signs this service's events, if it signs them ([`ConnectOptions::signing_seed`]).
    pub fn signer(&self) -> Option<&Signer> {
        self.inner.signer.as_ref()
    }

    /// The services whose events this client's consumers verify ([`ConnectOptions::trust`]).
    pub fn trust(&self) -> Option<&Trust> {
        self.inner.trust.as_ref()
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// How the server knows this connection, for error messages: `user ops`, `nkey UAB…`,
    /// `creds file …`, `token`, or `no credentials`.
    pub(crate) fn identity(&self) -> &str {
        &self.inner.identity
    }

    /// The URL this client connected to.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The version of the server this client is connected to, as it announced it
    /// (`"2.15.1"`).
    pub fn server_version(&self) -> String {
        self.inner.nats.server_info().version
    }

    /// Whether the connected server's version is at least `major.minor`. A version that does
    /// not parse counts as new enough: the server's own answer then decides.
    pub(crate) fn server_at_least(&self, major: u64, minor: u64) -> bool {
        version_at_least(&self.server_version(), major, minor)
    }

    /// The underlying NATS client, for what eventhub does not cover.
    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.nats
    }

    /// The underlying JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    pub(crate) fn service_arc(&self) -> &Arc<str> {
        &self.inner.service
    }

    pub(crate) fn permissions(&self) -> &PermissionWatch {
        &self.inner.permissions
    }

    /// The server's `max_payload` (payload plus headers), as announced when connecting.
    pub(crate) fn max_payload(&self) -> usize {
        self.inner.max_payload
    }

    pub(crate) fn registry(&self) -> &crate::counters::Registry {
        &self.inner.registry
    }

    pub(crate) fn publish_attempts(&self) -> u32 {
        self.inner.publish_attempts
    }

    /// The codec of this client's publishers unless they choose another
    /// ([`ConnectOptions::codec`]).
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// The keys of fields marked `x-sensitive` ([`ConnectOptions::keyring`]), if any.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.inner.keyring.as_ref()
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.inner.nats.connection_state() == async_nats::connection::State::Connected
    }
}

fn valid_service_name(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_inbox_prefix(s: &str) -> bool {
    s.split('.')
        .all(|t| !t.is_empty() && !t.contains(|c: char| c.is_whitespace() || c == '*' || c == '>'))
}

/// Recent permission violations reported by the server. The server answers a forbidden publish
/// with an asynchronous `-ERR`, not a reply, so a publish would otherwise wait for its ack
/// timeout; publishes race their ack against this to fail fast with the subject named.
#[derive(Debug, Default)]
pub(crate) struct PermissionWatch {
    /// Violations ever recorded: while zero (the normal case) no lock is taken.
    count: std::sync::atomic::AtomicU64,
    recent: Mutex<VecDeque<(String, Instant)>>,
    notify: Notify,
}

impl PermissionWatch {
    const KEEP: Duration = Duration::from_secs(30);

    /// Notes a server `-ERR`. async-nats hands these over as text only
    /// (`ServerError::Other`), so the server's wording is parsed: `Permissions Violation for
    /// Publish to "<subject>"` (or `Subscription to`).
    fn record(&self, server_message: &str) {
        let lower = server_message.to_ascii_lowercase();
        if !lower.contains("permissions violation") {
            return;
        }
        let subject = server_message
            .split('"')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while recent.front().is_some_and(|(_, t)| now - *t > Self::KEEP) {
            recent.pop_front();
        }
        recent.push_back((subject, now));
        drop(recent);
        self.count
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Whether a violation for `subject` was reported since `since`.
    pub(crate) fn denied_since(&self, subject: &str, since: Instant) -> bool {
        if self.count.load(std::sync::atomic::Ordering::Acquire) == 0 {
            return false;
        }
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().any(|(s, t)| s == subject && *t >= since)
    }

    /// The first subject denied since `since`, once the server reports one.
    pub(crate) async fn first_denied_since(&self, since: Instant) -> String {
        loop {
            let notified = self.notify.notified();
            if self.count.load(std::sync::atomic::Ordering::Acquire) > 0 {
                let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((s, _)) = recent.iter().find(|(_, t)| *t >= since) {
                    return s.clone();
                }
            }
            notified.await;
        }
    }

    /// Resolves when the server reports a violation for `subject` after `since`.
    pub(crate) async fn wait_denied(&self, subject: &str, since: Instant) {
        loop {
            let notified = self.notify.notified();
            if self.denied_since(subject, since) {
                return;
            }
            notified.await;
        }
    }
}

/// Whether a connect error comes from the TLS handshake (an untrusted or refused certificate):
/// async-nats reports it as an I/O error whose payload is the `rustls::Error`.
fn tls_failure(e: &async_nats::ConnectError) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<rustls::Error>() {
            return true;
        }
        // `io::Error::source` skips its payload: look at the payload itself.
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        source = s.source();
    }
    false
}

fn identity(options: &ConnectOptions) -> String {
    if let Some((user, _)) = &options.user_password {
        format!("user `{user}`")
    } else if let Some(seed) = &options.nkey_seed {
        nkeys::KeyPair::from_seed(seed)
            .map(|k| format!("nkey `{}`", k.public_key()))
            .unwrap_or_else(|_| "an nkey".into())
    } else if let Some(path) = &options.credentials_file {
        format!("creds file `{path}`")
    } else if let Some((cert, _)) = &options.tls_client_cert {
        format!("client certificate `{}`", cert.display())
    } else if options.token.is_some() {
        "a token".into()
    } else {
        "no credentials".into()
    }
}

/// `_INBOX_<service>`: the default inbox prefix of a service's connections (see
/// [`ConnectOptions`], field `inbox_prefix`); the generated permissions let the service
/// subscribe only below it.
pub fn service_inbox_prefix(service: &str) -> String {
    format!("_INBOX_{service}")
}

/// `EVENTHUB_<SERVICE>_PASSWORD`: the environment variable holding a service user's password.
pub fn service_password_var(service: &str) -> String {
    format!(
        "EVENTHUB_{}_PASSWORD",
        service.to_ascii_uppercase().replace('-', "_")
    )
}

/// Whether `version` (`2.15.1`, `2.12.0-beta.3`) is at least `major.minor`; an unparseable
/// version counts as new enough.
fn version_at_least(version: &str, major: u64, minor: u64) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse::<u64>());
    match (parts.next(), parts.next()) {
        (Some(Ok(have_major)), Some(Ok(have_minor))) => (have_major, have_minor) >= (major, minor),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::version_at_least as at_least;

    #[test]
    fn server_versions_compare_by_major_and_minor() {
        assert!(at_least("2.15.1", 2, 11));
        assert!(at_least("2.11.0", 2, 11));
        assert!(!at_least("2.10.22", 2, 11));
        assert!(at_least("2.12.0-beta.3", 2, 12));
        assert!(!at_least("1.99.0", 2, 0));
        assert!(at_least("3.0.0", 2, 14));
        assert!(at_least("unknown", 2, 11));
    }
}
