//! The quick-start demo: provision the streams, publish a typed event, read it back.
//!
//! Run it with `scripts/demo` (starts nats-server with nats.conf if none is running), or
//! `cargo run -p eventhub-examples --bin demo` against `$NATS_URL`.

use anyhow::Context;
use eventhub::events::user;
use eventhub::{Client, ConnectOptions, Consumable, RawEvent};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = Client::connect(ConnectOptions::new("auth")).await?;
    println!("connected to {} as service `auth`\n", client.url());

    let report = client.provision().await?;
    println!("streams:\n{report}");

    let event: user::CreatedV2 = serde_json::from_value(serde_json::json!({
        "user_id": uuid::Uuid::now_v7(),
        "email": "ada@example.com",
        "display_name": "Ada Lovelace",
        "locale": "en-GB",
        "created_at": chrono::Utc::now(),
    }))?;
    let receipt = client.publisher().publish(&event).await?;
    println!(
        "published user.created v2 {} -> {} #{} (duplicate: {})",
        receipt.id, receipt.stream, receipt.sequence, receipt.duplicate
    );

    let stream = client.jetstream().get_stream(&receipt.stream).await?;
    let stored = stream.get_raw_message(receipt.sequence).await?;
    println!(
        "\nread back {} #{} on {}:",
        receipt.stream, stored.sequence, stored.subject
    );
    let mut headers: Vec<_> = stored.headers.iter().collect();
    headers.sort_by_key(|(name, _)| name.to_string());
    for (name, values) in headers {
        for v in values {
            println!("  {name}: {v}");
        }
    }
    let raw = RawEvent {
        content_type: stored.headers.get("content-type").map(|v| v.as_str()),
        payload: &stored.payload,
    };
    let back = user::Created::decode(2, &raw).context("decode")?;
    println!("  payload: {}", String::from_utf8_lossy(&stored.payload));
    println!(
        "\nequal to what was published: {}",
        back == user::Created::V2(event)
    );
    Ok(())
}
