//! What every command shares: where and how to connect, opening a stream, usage errors.
//! The bottom layer of the command's modules (it uses none of them).

use async_nats::jetstream::stream;
use clap::Args;
use eventhub::Client;
use eventhub::ConnectOptions;
use futures::TryStreamExt;

/// Where and how to connect; the same settings (and environment variables) as the SDK.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(long, global = true, env = "NATS_URL", default_value = eventhub::client::DEFAULT_URL)]
    pub(crate) server: String,
    /// User name (with --password).
    #[arg(long, global = true, env = "NATS_USER")]
    pub(crate) user: Option<String>,
    /// Password (with --user).
    #[arg(long, global = true, env = "NATS_PASSWORD", hide_env_values = true)]
    pub(crate) password: Option<String>,
    /// Token.
    #[arg(long, global = true, env = "NATS_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Credentials file (JWT and nkey seed).
    #[arg(long, global = true, env = "NATS_CREDS")]
    pub(crate) creds: Option<String>,
    /// Nkey seed (`SU…`).
    #[arg(long, global = true, env = "NATS_NKEY_SEED", hide_env_values = true)]
    pub(crate) nkey_seed: Option<String>,
    /// CA file (PEM) trusted for the server's certificate; requires TLS.
    #[arg(long, global = true, env = "NATS_CA")]
    pub(crate) tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mutual TLS (with --tls-key).
    #[arg(long, global = true, env = "NATS_CERT")]
    pub(crate) tls_cert: Option<std::path::PathBuf>,
    /// Client key (PEM) for mutual TLS (with --tls-cert).
    #[arg(long, global = true, env = "NATS_KEY")]
    pub(crate) tls_key: Option<std::path::PathBuf>,
    /// Service name the CLI connects as (the `ce-source` of what it publishes).
    #[arg(long, global = true, default_value = "eventhub-cli")]
    pub(crate) service: String,
}

impl ServerArgs {
    pub(crate) async fn connect(&self) -> anyhow::Result<Client> {
        let mut options = ConnectOptions::from_env(&self.service).url(&self.server);
        options.user_password = self.user.clone().zip(self.password.clone()).or_else(|| {
            // With no credentials given, the operator user of nats.conf.
            let anything = self.token.is_some() || self.creds.is_some() || self.nkey_seed.is_some();
            std::env::var(eventhub::client::service_password_var("ops"))
                .ok()
                .filter(|p| !p.is_empty() && !anything)
                .map(|p| ("ops".to_string(), p))
        });
        options.token = self.token.clone();
        options.credentials_file = self.creds.clone();
        options.nkey_seed = self.nkey_seed.clone();
        options.tls_ca = self.tls_ca.clone();
        options.tls_client_cert = self.tls_cert.clone().zip(self.tls_key.clone());
        Ok(Client::connect(options).await?)
    }
}

/// A usage error found after parsing (exit 2).
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Opens a stream, explaining how to fix a missing one.
pub(crate) async fn open(client: &eventhub::Client, name: &str) -> anyhow::Result<stream::Stream> {
    use async_nats::jetstream::context::GetStreamErrorKind as K;
    match client.jetstream().get_stream(name).await {
        Ok(s) => Ok(s),
        Err(e) if matches!(e.kind(), K::JetStream(_)) => {
            let declared = eventhub_catalog::events::STREAMS
                .iter()
                .any(|s| s.name == name)
                || name == eventhub::topology::DLQ_STREAM
                || name == eventhub::topology::ADVISORY_STREAM;
            if declared {
                anyhow::bail!("stream {name} not found: run `eventhub topology apply`")
            } else {
                anyhow::bail!("stream {name} not found: `eventhub streams` lists the streams")
            }
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot look up stream {name}"))),
    }
}

/// Every consumer of a stream, by name.
pub(crate) async fn consumers_of(
    stream: &stream::Stream,
) -> anyhow::Result<Vec<async_nats::jetstream::consumer::Info>> {
    let mut infos: Vec<async_nats::jetstream::consumer::Info> =
        stream.consumers().try_collect().await?;
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(infos)
}
