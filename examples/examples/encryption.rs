//! Field encryption: the fields a schema marks `x-sensitive` are sealed (AES-256-GCM) before
//! they leave the publisher; a consumer holding the key reads them, the stream never does.
//!
//! `cargo run -p eventhub-examples --example encryption`, against a server without
//! permissions (`nats-server -js`): under the generated `nats.conf`, declare the consumer in
//! `schemas/services.json` first. Services load their keys with `ConnectOptions::from_env`
//! (`EVENTHUB_KEYS`); here one key is made in place.

use eventhub::{Client, ConnectOptions, ConsumerOptions, Keyring};
use eventhub_catalog::{TOPOLOGY, events::user};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)?;
    let keyring = Keyring::new("example-1", key)?;
    let client = Client::connect(ConnectOptions::from_env("profile").keyring(keyring)).await?;
    client.provision(&TOPOLOGY).await?;

    let event: user::ContactChangedV1 = serde_json::from_value(serde_json::json!({
        "user_id": uuid::Uuid::now_v7(),
        "email": "ada@example.com",
        "changed_by": "user",
        "changed_at": chrono::Utc::now(),
    }))?;
    let receipt = client.publisher().publish(&event).await?;

    // What the stream stores: ciphertext where the schema says x-sensitive.
    let stored = client
        .jetstream()
        .get_stream(receipt.stream.as_str())
        .await?
        .get_raw_message(receipt.sequence)
        .await?;
    println!("stored:  {}", String::from_utf8_lossy(&stored.payload));

    // What a consumer with the key sees: the plaintext.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = client
        .consumer::<user::ContactChangedV1>(ConsumerOptions::default())
        .await?
        .spawn(move |env| {
            let _ = tx.send(env.email.clone());
            async { Ok(()) }
        });
    println!("handled: {}", rx.recv().await.unwrap_or_default());
    handle.shutdown().await;
    Ok(())
}
