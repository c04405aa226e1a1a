//! The orders scenario against a real nats-server: the organisation provisions its streams, the
//! orders team adds its subject to ORDERS, then the organisation provisions again (`topology
//! apply`): the team's subject stays, and its events still flow.

use std::time::Duration;

use eventhub::{Client, ConnectOptions, ConsumerOptions, Event};
use eventhub_testkit::NatsServer;
use orders_service::events::{self, orders::ShippedV1};
use orders_service::on_shipped;

async fn connect(server: &NatsServer, service: &str) -> Client {
    Client::connect(ConnectOptions::new(service).url(server.client_url()))
        .await
        .expect("connect to the test server")
}

async fn orders_subjects(client: &Client) -> Vec<String> {
    let mut stream = client.jetstream().get_stream("ORDERS").await.unwrap();
    stream.info().await.unwrap().config.subjects.clone()
}

#[tokio::test]
async fn the_orgs_provisioning_keeps_the_teams_subject_and_events_flow() {
    let server = NatsServer::start();
    let org = connect(&server, "ops").await;
    let orders = connect(&server, "orders").await;

    org.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    orders.provision(&events::TOPOLOGY).await.unwrap();
    assert!(
        orders_subjects(&org)
            .await
            .contains(&ShippedV1::SUBJECT.to_string())
    );

    // The organisation applies its topology again, as `eventhub topology apply` does.
    org.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let subjects = orders_subjects(&org).await;
    assert!(
        subjects.contains(&ShippedV1::SUBJECT.to_string()),
        "the org's provisioning removed the team's subject: {subjects:?}"
    );
    assert!(
        subjects.contains(&eventhub_catalog::events::order::PlacedV1::SUBJECT.to_string()),
        "{subjects:?}"
    );

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let consumer = orders
        .consumer::<ShippedV1>(ConsumerOptions::default())
        .await
        .unwrap()
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
        .try_into()
        .unwrap();
    let order_id = shipped.order_id.to_string();
    orders.publisher().publish(&shipped).await.unwrap();
    let notice = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the shipment is handled within 10s")
        .unwrap();
    assert_eq!(notice.order_id, order_id);
    assert_eq!(notice.text, "Your order is on its way with DHL");
    let stats = consumer.shutdown().await;
    assert_eq!((stats.received, stats.dead_lettered), (1, 0));
}
