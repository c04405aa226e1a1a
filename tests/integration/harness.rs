//! The nats-server harness itself: restarts keep the store and clusters replicate (the
//! repository's nats.conf is tested in `security`).

use std::time::Duration;

use eventhub::Client;
use eventhub::ConnectOptions;
use eventhub::topology::ProvisionOptions;
use eventhub_testkit::{Cluster, NatsServer};

use crate::support::{server_and_client, user_created_v1};

async fn stored_messages(client: &Client, stream: &str) -> u64 {
    let mut s = client.jetstream().get_stream(stream).await.unwrap();
    s.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_and_kill_keep_the_store_and_clients_reconnect() {
    let (mut server, client) = server_and_client("auth").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let publisher = client.publisher();
    publisher
        .publish(&user_created_v1("a@example.com"))
        .await
        .unwrap();

    let port = server.port();
    server.restart();
    assert_eq!(server.port(), port, "restarts on the same port");
    // The same client reconnects by itself and sees the stored event.
    let receipt = publisher
        .publish(&user_created_v1("b@example.com"))
        .await
        .unwrap();
    assert_eq!(receipt.sequence, 2);

    server.kill();
    assert!(!server.is_running());
    server.start_again().unwrap();
    publisher
        .publish(&user_created_v1("c@example.com"))
        .await
        .unwrap();
    assert_eq!(stored_messages(&client, "IDENTITY").await, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_node_cluster_replicates_streams() {
    let cluster = Cluster::start(3);
    let client = Client::connect(ConnectOptions::new("auth").url(cluster.client_url()))
        .await
        .unwrap();
    client
        .provision_with(&ProvisionOptions::new(&eventhub_catalog::TOPOLOGY).replicas(3))
        .await
        .expect("R3 streams on a cluster");
    let receipt = client
        .publisher()
        .publish(&user_created_v1("a@example.com"))
        .await
        .unwrap();
    assert_eq!(receipt.sequence, 1);
    let mut stream = client.jetstream().get_stream("IDENTITY").await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.num_replicas, 3);
    let cluster_info = info.cluster.as_ref().expect("clustered stream");
    assert_eq!(cluster_info.replicas.len(), 2, "a leader and two followers");
}

#[tokio::test]
async fn connecting_to_a_server_that_is_down_names_the_url() {
    let server = NatsServer::start();
    let url = server.client_url();
    drop(server);
    let err = Client::connect(
        ConnectOptions::new("auth")
            .url(&url)
            .request_timeout(Duration::from_secs(1)),
    )
    .await
    .expect_err("nothing listens");
    assert_eq!(err.kind(), eventhub::error::ConnectErrorKind::Unreachable);
    assert!(
        err.to_string()
            .contains(&format!("cannot reach NATS at {url}")),
        "{err}"
    );
}
