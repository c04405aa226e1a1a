//! Dead letters: list what could not be handled, with why; replay one by id.
//!
//! `cargo run -p eventhub-examples --example dead_letters` lists the last day's entries;
//! `… --example dead_letters -- replay 42` republishes entry 42 to its original subject (once
//! the handler or the producer is fixed). Reading the dead letters is an operator's right:
//! under the generated `nats.conf`, run it as `ops`.

use eventhub::dlq::DeadLetterFilter;
use eventhub::{Client, ConnectOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = Client::connect(ConnectOptions::from_env("ops")).await?;
    let dead_letters = client.dead_letters();
    let args: Vec<String> = std::env::args().skip(1).collect();

    if let [command, id] = args.as_slice()
        && command == "replay"
    {
        let replayed = dead_letters.replay(id.parse()?).await?;
        println!(
            "entry {} republished to {} ({} #{})",
            replayed.id, replayed.subject, replayed.stream, replayed.sequence
        );
        return Ok(());
    }

    let since = chrono::Utc::now() - chrono::Duration::days(1);
    let filter = DeadLetterFilter::default().since(since).limit(20);
    for entry in dead_letters.list(&filter).await? {
        println!(
            "#{} {} by {} after {} deliveries ({}): {}",
            entry.id, entry.subject, entry.consumer, entry.deliveries, entry.reason, entry.error
        );
    }
    Ok(())
}
