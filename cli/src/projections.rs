//! `eventhub projections rebuild`: empties a projection's read model and moves its checkpoint
//! (eventhub-patterns' `projection::rebuild`); the projection rebuilds when it next starts.

use serde_json::json;

use crate::connect::{ServerArgs, Usage};
use crate::output::{clean, print_json, say};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Empties projection NAME's read model (bucket PROJ_<NAME>) and sets its checkpoint, so
    /// that its next run rebuilds it from the first event (or from --from). Stop the projection
    /// first: a running instance stops with `Fenced` at its next write.
    Rebuild {
        /// The projection's name.
        name: String,
        /// Rebuild from this stream sequence (1042), this long ago (2h) or this RFC 3339 time
        /// instead of the first event.
        #[arg(long, value_parser = crate::output::parse_position)]
        from: Option<eventhub::StartFrom>,
    },
}

pub(crate) async fn run(server: &ServerArgs, command: Command, json: bool) -> anyhow::Result<()> {
    let Command::Rebuild { name, from } = command;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Usage(format!(
            "`{}` is not a projection name ([A-Za-z0-9_-])",
            clean(&name)
        ))
        .into());
    }
    let client = server.connect().await?;
    let bucket = eventhub_patterns::projection::bucket_name(&name);
    // `rebuild` creates a missing bucket: a typo must not make an empty projection.
    if client
        .jetstream()
        .get_stream(format!("KV_{bucket}"))
        .await
        .is_err()
    {
        anyhow::bail!("no projection {name} (no bucket {bucket}): has it ever run?");
    }
    let from = from.unwrap_or(eventhub::StartFrom::All);
    // Only `StartFrom::New` reads the stream, and the CLI never passes it.
    eventhub_patterns::projection::rebuild(&client, &name, "", from).await?;
    let position = match from {
        eventhub::StartFrom::Sequence(n) => format!("sequence {n}"),
        eventhub::StartFrom::Time(t) => t.to_rfc3339(),
        _ => "the first event".into(),
    };
    if json {
        print_json(&json!({ "projection": name, "bucket": bucket, "from": position }));
    } else {
        say!("projection {name}: read model emptied; its next run rebuilds it from {position}");
    }
    Ok(())
}
