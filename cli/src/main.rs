//! `eventhub`: the operator command for an eventhub system — streams, consumers, topology, dead
//! letters, publishing, tailing, schemas, health, and the configuration generated from the
//! declaration of services.
//!
//! Exit codes: 0 ok; 1 a failure you can act on (invalid input, not found, server unreachable);
//! 2 usage.

mod config;
mod connect;
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

use clap::{Parser, Subcommand};

use connect::{ServerArgs, Usage};

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
