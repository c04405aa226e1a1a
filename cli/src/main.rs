//! `eventhub`: the operator command for an eventhub system — streams, consumers, topology, dead
//! letters, publishing, tailing, schemas, health, and the configuration generated from the
//! declaration of services.
//!
//! Exit codes: 0 ok; 1 a failure you can act on (invalid input, not found, server unreachable);
//! 2 usage.

mod config;
mod consumers;
mod dlq;
mod doctor;
mod health;
mod output;
mod publish;
mod schemas;
mod streams;
mod tail;
mod topology;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use eventhub::Client;
use eventhub::ConnectOptions;

/// Operate eventhub: streams, consumers, topology, dead letters, publish, tail, schemas.
#[derive(Debug, Parser)]
#[command(name = "eventhub", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    /// Print JSON (one document, or one object per line for `tail`) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Where and how to connect; the same settings (and environment variables) as the SDK.
#[derive(Debug, Clone, Args)]
struct ServerArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(long, global = true, env = "NATS_URL", default_value = eventhub::client::DEFAULT_URL)]
    server: String,
    /// User name (with --password).
    #[arg(long, global = true, env = "NATS_USER")]
    user: Option<String>,
    /// Password (with --user).
    #[arg(long, global = true, env = "NATS_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Token.
    #[arg(long, global = true, env = "NATS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Credentials file (JWT and nkey seed).
    #[arg(long, global = true, env = "NATS_CREDS")]
    creds: Option<String>,
    /// Nkey seed (`SU…`).
    #[arg(long, global = true, env = "NATS_NKEY_SEED", hide_env_values = true)]
    nkey_seed: Option<String>,
    /// CA file (PEM) trusted for the server's certificate; requires TLS.
    #[arg(long, global = true, env = "NATS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for mutual TLS (with --tls-key).
    #[arg(long, global = true, env = "NATS_CERT")]
    tls_cert: Option<std::path::PathBuf>,
    /// Client key (PEM) for mutual TLS (with --tls-cert).
    #[arg(long, global = true, env = "NATS_KEY")]
    tls_key: Option<std::path::PathBuf>,
    /// Service name the CLI connects as (the `ce-source` of what it publishes).
    #[arg(long, global = true, default_value = "eventhub-cli")]
    service: String,
}

impl ServerArgs {
    async fn connect(&self) -> anyhow::Result<Client> {
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

#[derive(Debug, Subcommand)]
enum Command {
    /// List streams, or show one (`streams info NAME`).
    Streams {
        #[command(subcommand)]
        command: Option<streams::Command>,
    },
    /// Durable consumers: pending, ack-pending, redelivered, waiting, lag; flags stuck ones.
    Consumers {
        /// Only this stream's consumers.
        stream: Option<String>,
    },
    /// The declared streams against the server: what would change, then apply it.
    Topology {
        #[command(subcommand)]
        command: topology::Command,
    },
    /// Dead letters: list, show, replay, purge.
    Dlq {
        #[command(subcommand)]
        command: dlq::Command,
    },
    /// Publish an event, validated against its schema first.
    Publish(publish::Args),
    /// Follow events live, decoded, from an ephemeral ordered consumer.
    Tail(tail::Args),
    /// Connected, declared streams present, eventhub consumers within a lag threshold (exit 0
    /// healthy, 1 not).
    Health(health::Args),
    /// The event catalog: list, show, compatibility checks, releases, and export for other
    /// languages (`--schemas DIR` reads any catalog).
    Schemas {
        #[command(subcommand)]
        command: schemas::Command,
    },
    /// The declaration of services (schemas/services.json): event flows, the nats-server
    /// permissions generated from it, nkeys, idempotency buckets.
    Config {
        #[command(subcommand)]
        command: config::Command,
    },
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let result = match cli.command {
        Command::Streams { command } => streams::run(&cli.server, command, json).await,
        Command::Consumers { stream } => consumers::run(&cli.server, stream, json).await,
        Command::Topology { command } => topology::run(&cli.server, command, json).await,
        Command::Dlq { command } => dlq::run(&cli.server, command, json).await,
        Command::Publish(args) => publish::run(&cli.server, args, json).await,
        Command::Tail(args) => tail::run(&cli.server, args, json).await,
        Command::Health(args) => health::run(&cli.server, args, json).await,
        Command::Schemas { command } => schemas::run(command, json),
        Command::Config { command } => config::run(&cli.server, command, json).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Usage>() => {
            eprintln!(
                "error: {}\n\nFor more information, try '--help'.",
                output::clean(&e.to_string())
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {}", output::error_chain(&e));
            ExitCode::from(1)
        }
    }
}
