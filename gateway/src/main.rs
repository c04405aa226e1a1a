//! `eventhub-gateway`: serves the HTTP publish API, the WebSocket stream and the operators'
//! dashboard (see `docs/gateway.md`); `eventhub-gateway hash-key` prints the stored form of an
//! API key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use eventhub::ConnectOptions;
use eventhub_gateway::auth::{ApiKeys, hash_key};
use eventhub_gateway::{Config, Gateway};

#[derive(Debug, Parser)]
#[command(name = "eventhub-gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints `SERVICE:sha256` for a key (read from standard input, or the argument), the line
    /// to put in the keys file.
    HashKey {
        /// The service (or operator) the key belongs to.
        service: String,
        /// The key; default: read one line from standard input (keeps it out of the shell
        /// history). Generate one with e.g. `openssl rand -hex 32`.
        key: Option<String>,
    },
    /// Prints an HS256 bearer token signed with the secret in `--secret-file` (the one the
    /// gateway is given with `--jwt-secret-file`): for trying `/live.html#token=…` or curl.
    Token {
        /// The subject: a declared service or operator.
        sub: String,
        /// The file holding the HS256 secret.
        #[arg(long)]
        secret_file: PathBuf,
        /// An end user: the token then follows only that user's events.
        #[arg(long)]
        user_id: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Where to listen.
    #[arg(
        long,
        env = "EVENTHUB_GATEWAY_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    listen: SocketAddr,
    /// The catalog directory holding services.json.
    #[arg(long, env = "EVENTHUB_SCHEMAS_DIR", default_value = "schemas")]
    schemas: PathBuf,
    /// A file of API keys, `service:sha256-hex` per line (`eventhub-gateway hash-key`).
    #[arg(long, env = "EVENTHUB_GATEWAY_KEYS_FILE")]
    keys: Option<PathBuf>,
    /// API keys as `service:sha256-hex` entries separated by commas or newlines.
    #[arg(
        long = "key-hashes",
        env = "EVENTHUB_GATEWAY_KEYS",
        hide_env_values = true
    )]
    key_hashes: Option<String>,
    /// A file holding the HS256 secret of accepted bearer tokens (at least 32 bytes).
    #[arg(long, env = "EVENTHUB_GATEWAY_JWT_SECRET_FILE")]
    jwt_secret_file: Option<PathBuf>,
    /// A PEM file holding the RSA public key of accepted RS256 bearer tokens.
    #[arg(long, env = "EVENTHUB_GATEWAY_JWT_PUBLIC_KEY_FILE")]
    jwt_public_key_file: Option<PathBuf>,
    /// The most events in one `POST /v1/events:batch`.
    #[arg(long, default_value_t = 100)]
    max_batch_items: usize,
    /// The largest body of `POST /v1/events:batch`, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    max_batch_body: usize,
    /// The largest request body in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body: usize,
    /// How long a publish waits for the store's ack, in milliseconds, before it is retried
    /// (then answered 503).
    #[arg(long, default_value_t = 5000)]
    publish_timeout_ms: u64,
    /// The gateway's service name: its NATS user in the generated nats.conf.
    #[arg(long, env = "EVENTHUB_GATEWAY_SERVICE", default_value = "gateway")]
    service: String,
    /// The operator user the dashboard connects as, with the password in
    /// `EVENTHUB_<USER>_PASSWORD` (replaying and purging dead letters needs an operator);
    /// default: the gateway's own connection.
    #[arg(long, env = "EVENTHUB_GATEWAY_OPERATOR")]
    operator_user: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Where and how to connect: the same flags and environment variables as the `eventhub` CLI.
#[derive(Debug, Clone, Args)]
struct ServerArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = eventhub::client::DEFAULT_URL)]
    server: String,
    /// User name (with --password).
    #[arg(long, env = "NATS_USER")]
    user: Option<String>,
    /// Password (with --user).
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Token.
    #[arg(long, env = "NATS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Credentials file (JWT and nkey seed).
    #[arg(long, env = "NATS_CREDS")]
    creds: Option<String>,
    /// Nkey seed (`SU…`).
    #[arg(long, env = "NATS_NKEY_SEED", hide_env_values = true)]
    nkey_seed: Option<String>,
    /// CA file (PEM) trusted for the server's certificate; requires TLS.
    #[arg(long, env = "NATS_CA")]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS (with --tls-key).
    #[arg(long, env = "NATS_CERT")]
    tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS (with --tls-cert).
    #[arg(long, env = "NATS_KEY")]
    tls_key: Option<PathBuf>,
}

impl ServeArgs {
    fn connect_options(&self) -> ConnectOptions {
        let s = &self.server;
        // from_env: the encryption keys, and EVENTHUB_GATEWAY_PASSWORD for the `gateway` user.
        let mut options = ConnectOptions::from_env(&self.service)
            .url(&s.server)
            .request_timeout(Duration::from_millis(self.publish_timeout_ms))
            .publish_attempts(2);
        if let Some(up) = s.user.clone().zip(s.password.clone()) {
            options.user_password = Some(up);
        }
        options.token = s.token.clone().or(options.token);
        options.credentials_file = s.creds.clone().or(options.credentials_file);
        options.nkey_seed = s.nkey_seed.clone().or(options.nkey_seed);
        options.tls_ca = s.tls_ca.clone().or(options.tls_ca);
        if let Some(pair) = s.tls_cert.clone().zip(s.tls_key.clone()) {
            options.tls_client_cert = Some(pair);
        }
        options
    }

    fn config(&self) -> anyhow::Result<Config> {
        let mut text = String::new();
        if let Some(path) = &self.keys {
            text.push_str(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the keys file {}", path.display()))?,
            );
            text.push('\n');
        }
        if let Some(inline) = &self.key_hashes {
            text.push_str(&inline.replace(',', "\n"));
        }
        let keys = ApiKeys::parse(&text).map_err(|e| anyhow::anyhow!("API keys: {e}"))?;
        let mut config = Config::new(self.connect_options(), self.schemas.clone())
            .keys(keys)
            .max_body(self.max_body);
        if let Some(user) = &self.operator_user {
            let var = eventhub::client::service_password_var(user);
            let password = std::env::var(&var)
                .with_context(|| format!("--operator-user {user} needs its password in {var}"))?;
            let mut options = self.connect_options();
            options.service = format!("{}-dashboard", self.service);
            options.user_password = Some((user.clone(), password));
            // An operator may read every inbox; its own prefix keeps replies apart.
            options.inbox_prefix = None;
            config = config.operator(options);
        }
        if let Some(path) = &self.jwt_secret_file {
            let secret = std::fs::read(path)
                .with_context(|| format!("cannot read the JWT secret {}", path.display()))?;
            let secret = String::from_utf8_lossy(&secret).trim().as_bytes().to_vec();
            config = config.jwt_secret(secret);
        }
        if let Some(path) = &self.jwt_public_key_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read the JWT public key {}", path.display()))?;
            config = config.jwt_public_key(pem);
        }
        config = config.max_batch(self.max_batch_items, self.max_batch_body);
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Token {
        sub,
        secret_file,
        user_id,
        ttl,
    }) = &cli.command
    {
        let secret = std::fs::read(secret_file)
            .with_context(|| format!("cannot read the JWT secret {}", secret_file.display()))?;
        let secret = String::from_utf8_lossy(&secret).trim().as_bytes().to_vec();
        let mut claims =
            serde_json::json!({"sub": sub, "exp": chrono::Utc::now().timestamp() + ttl});
        if let Some(user) = user_id {
            claims["user_id"] = serde_json::json!(user);
        }
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .context("cannot sign the token")?;
        println!("{token}");
        return Ok(());
    }
    if let Some(Command::HashKey { service, key }) = cli.command {
        let key = match key {
            Some(k) => k,
            None => {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("cannot read the key from standard input")?;
                line
            }
        };
        let key = key.trim();
        anyhow::ensure!(
            key.len() >= eventhub_gateway::auth::MIN_KEY_LEN,
            "a key needs at least {} characters (e.g. `openssl rand -hex 32`)",
            eventhub_gateway::auth::MIN_KEY_LEN
        );
        println!("{service}:{}", hash_key(key));
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=info".into()),
        )
        .json()
        .init();
    let config = cli.serve.config()?;
    let gateway = Gateway::start(config, cli.serve.listen).await?;
    let stop = gateway.stopper();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight");
        let _ = stop.send(true);
    });
    gateway.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
