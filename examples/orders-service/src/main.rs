//! The orders service: adds its subjects to the organisation's ORDERS stream, consumes
//! `orders.shipped` and publishes one shipment. `NATS_URL` names the server (default
//! localhost); the organisation's streams must be provisioned (`eventhub topology apply`).

use std::time::Duration;

use anyhow::Context as _;
use eventhub::{Client, ConnectOptions, ConsumerOptions};
use orders_service::events::{self, orders::ShippedV1};
use orders_service::on_shipped;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = Client::connect(ConnectOptions::from_env("orders")).await?;
    // Only this catalog's subjects: the stream itself belongs to the organisation's catalog.
    client
        .provision(&events::TOPOLOGY)
        .await
        .context("provision the orders subjects (is the org's ORDERS stream there?)")?;

    let (tx, mut notices) = tokio::sync::mpsc::unbounded_channel();
    let consumer = client
        .consumer::<ShippedV1>(ConsumerOptions::default())
        .await?
        .spawn(move |env| {
            let result = on_shipped(&env).map(|notice| {
                let _ = tx.send(notice);
            });
            async move { result }
        });

    let shipped: ShippedV1 = ShippedV1::builder()
        .order_id(uuid::Uuid::now_v7())
        .carrier("DHL")
        .shipped_at(chrono::Utc::now())
        .try_into()?;
    let receipt = client.publisher().publish(&shipped).await?;
    println!(
        "published {} as {}",
        receipt.id,
        <ShippedV1 as eventhub::Event>::SUBJECT
    );

    let notice = tokio::time::timeout(Duration::from_secs(10), notices.recv())
        .await
        .context("no shipment handled within 10s")?
        .context("the consumer stopped")?;
    println!("order {}: {}", notice.order_id, notice.text);
    consumer.shutdown().await;
    Ok(())
}
