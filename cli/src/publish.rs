//! `eventhub publish TYPE[@vN] (JSON|@file)`.

use anyhow::Context;
use eventhub::PublishOptions;
use serde_json::json;

use crate::connect::ServerArgs;
use crate::output::print_json;
use crate::output::say;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The event: `TYPE` (latest version) or `TYPE@vN`, e.g. `user.created@v2`.
    event: String,
    /// The payload: JSON, or `@path` to read it from a file (`@-`: standard input).
    data: String,
    /// Event id (default: a new UUIDv7). Publishing again with the same id stores it once.
    #[arg(long)]
    id: Option<String>,
    /// Correlation id (default: the event id).
    #[arg(long)]
    correlation_id: Option<String>,
}

pub(crate) async fn run(server: &ServerArgs, args: Args, json: bool) -> anyhow::Result<()> {
    let info = crate::schemas::find(&args.event)?;
    let (text, origin) = match args.data.strip_prefix('@') {
        Some("-") => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("cannot read the payload from standard input")?;
            (s, "standard input".to_string())
        }
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?,
            path.to_string(),
        ),
        None => (args.data.clone(), "the payload".to_string()),
    };
    let payload: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{origin} is not valid JSON: {e}"))?;
    validate(info, &payload, &origin)?;

    let client = server.connect().await?;
    let receipt = client
        .publisher()
        .publish_json(info, &payload, {
            let mut options = PublishOptions::default();
            options.id = args.id;
            options.correlation_id = args.correlation_id;
            options
        })
        .await?;
    if json {
        print_json(&json!({
            "id": receipt.id,
            "event_type": info.event_type,
            "version": info.version,
            "subject": receipt.subject,
            "stream": receipt.stream,
            "sequence": receipt.sequence,
            "duplicate": receipt.duplicate,
        }));
    } else {
        say!(
            "published {} v{} {} -> {} #{}{}",
            info.event_type,
            info.version,
            receipt.id,
            receipt.stream,
            receipt.sequence,
            if receipt.duplicate {
                " (duplicate: already stored, not stored again)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Checks `payload` against the event's JSON Schema; the error names every violation by JSON
/// pointer and rule.
fn validate(
    info: &eventhub::EventInfo,
    payload: &serde_json::Value,
    origin: &str,
) -> anyhow::Result<()> {
    let schema: serde_json::Value = serde_json::from_str(info.schema)?;
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| {
            anyhow::anyhow!(
                "the schema of {} v{} does not compile: {e}",
                info.event_type,
                info.version
            )
        })?;
    let problems: Vec<String> = validator
        .iter_errors(payload)
        .map(|e| {
            let pointer = e.instance_path().as_str();
            let pointer = if pointer.is_empty() { "/" } else { pointer };
            let rule = e
                .schema_path()
                .as_str()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            format!(
                "  at {pointer}: {e} (rule `{rule}`, schema {})",
                e.schema_path().as_str()
            )
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "{origin} is not a valid {} v{} ({} problem{}); nothing was published:\n{}",
        info.event_type,
        info.version,
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.join("\n")
    )
}
