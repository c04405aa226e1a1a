//! Publishing: provision the catalog's streams, publish one event, then a pipeline of them.
//!
//! `cargo run -p eventhub-examples --example publish` (against `$NATS_URL`, default
//! `nats://127.0.0.1:4222`; `scripts/demo` starts a server).

use eventhub::{Client, ConnectOptions};
use eventhub_catalog::{TOPOLOGY, events::user};

fn sign_up(email: &str) -> anyhow::Result<user::CreatedV2> {
    Ok(serde_json::from_value(serde_json::json!({
        "user_id": uuid::Uuid::now_v7(),
        "email": email,
        "display_name": "Ada Lovelace",
        "locale": "en-GB",
        "created_at": chrono::Utc::now(),
    }))?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = Client::connect(ConnectOptions::from_env("auth")).await?;
    client.provision(&TOPOLOGY).await?;

    // One event, awaited: stored once its stream acknowledged it.
    let receipt = client
        .publisher()
        .publish(&sign_up("ada@example.com")?)
        .await?;
    println!(
        "{} stored as {} #{}",
        receipt.id, receipt.stream, receipt.sequence
    );

    // Many events, up to 64 in flight; the report counts what was stored.
    let mut pipeline = client.publisher().pipeline(64);
    for i in 0..100 {
        pipeline
            .send(&sign_up(&format!("user{i}@example.com"))?)
            .await?;
    }
    let report = pipeline.finish().await;
    println!(
        "pipeline: {} stored, {} failed",
        report.stored,
        report.failures.len()
    );
    Ok(())
}
