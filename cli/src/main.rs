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
mod projections;
mod publish;
mod runtime;
mod sagas;
mod schedules;
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
    #[command(flatten)]
    catalogs: schemas::CatalogArgs,
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
    /// `consumers pause NAME --until T` stops deliveries to a consumer until T; `consumers
    /// resume NAME` restarts them; `consumers reset NAME --to TIME|SEQ` moves it.
    #[command(args_conflicts_with_subcommands = true)]
    Consumers {
        #[command(subcommand)]
        command: Option<consumers::Command>,
        /// Only this stream's consumers.
        stream: Option<String>,
    },
    /// The declared streams against the server: what would change, then apply it.
    Topology {
        #[command(subcommand)]
        command: topology::Command,
    },
    /// Scheduled events waiting in their streams (`schedules list [STREAM]`).
    Schedules {
        #[command(subcommand)]
        command: schedules::Command,
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
    /// Saga instances (eventhub-patterns): `sagas list [SAGA]`, `sagas show ID`.
    Sagas {
        #[command(subcommand)]
        command: sagas::Command,
    },
    /// Projections (eventhub-patterns): `projections rebuild NAME [--from TIME|SEQ]`.
    Projections {
        #[command(subcommand)]
        command: projections::Command,
    },
    /// The declaration of services (schemas/services.json): event flows, the nats-server
    /// permissions generated from it, nkeys, idempotency buckets.
    Config {
        #[command(subcommand)]
        command: config::Command,
    },
}

async fn run(
    command: Command,
    server: &ServerArgs,
    catalogs: &schemas::CatalogArgs,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        Command::Streams { command } => streams::run(server, command, json).await,
        Command::Consumers {
            command: Some(command),
            ..
        } => consumers::control(server, command, json).await,
        Command::Consumers { stream, .. } => consumers::run(server, stream, json).await,
        Command::Topology { command } => topology::run(server, command, json).await,
        Command::Dlq { command } => dlq::run(server, command, json).await,
        Command::Schedules { command } => schedules::run(server, command, json).await,
        Command::Publish(args) => publish::run(server, args, json).await,
        Command::Tail(args) => tail::run(server, args, json).await,
        Command::Health(args) => health::run(server, args, json).await,
        Command::Schemas { command } => schemas::run(command, catalogs, json),
        Command::Config { command } => config::run(server, command, json).await,
        Command::Sagas { command } => sagas::run(server, command, json).await,
        Command::Projections { command } => projections::run(server, command, json).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let activated = match &cli.command {
        Command::Publish(_) | Command::Tail(_) | Command::Dlq { .. } => {
            schemas::activate(&cli.catalogs)
        }
        _ => Ok(()),
    };
    let result = match (activated, cli.command) {
        (Err(e), _) => Err(e),
        (Ok(()), command) => run(command, &cli.server, &cli.catalogs, json).await,
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
