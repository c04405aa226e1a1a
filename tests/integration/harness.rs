//! The nats-server harness itself: restarts keep the store, clusters replicate, and the
//! repository's nats.conf is a valid configuration.

use std::time::Duration;

use eventhub::testing::{Cluster, NatsServer, STORE_DIR_PLACEHOLDER};
use eventhub::{Client, ConnectOptions, ProvisionOptions};

use crate::support::{server_and_client, user_created_v1};

async fn stored_messages(client: &Client, stream: &str) -> u64 {
    let mut s = client.jetstream().get_stream(stream).await.unwrap();
    s.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_and_kill_keep_the_store_and_clients_reconnect() {
    let (mut server, client) = server_and_client("auth").await;
    client.provision().await.unwrap();
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
        .provision_with(&ProvisionOptions {
            replicas: Some(3),
            ..Default::default()
        })
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
async fn the_repository_nats_conf_is_valid() {
    let conf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../nats.conf"))
        .unwrap()
        .replace(".nats-data", STORE_DIR_PLACEHOLDER);
    // Passwords come from the environment; the test writes its own in.
    let mut conf = conf;
    for user in [
        "ops", "auth", "payments", "profile", "admin", "photo", "sys",
    ] {
        let var = format!("${}", eventhub::service_password_var(user));
        assert!(conf.contains(&var), "nats.conf reads {var}");
        conf = conf.replace(&var, &format!("\"{user}-secret\""));
    }
    let server = NatsServer::builder().config(conf).start().unwrap();
    let as_user = |user: &'static str| {
        let url = server.client_url();
        async move {
            Client::connect(
                ConnectOptions::new(user)
                    .url(url)
                    .user_password(user, format!("{user}-secret")),
            )
            .await
            .unwrap()
        }
    };
    let client = as_user("ops").await;
    // JetStream is on (the configuration's block, not the harness's flags)...
    client
        .provision()
        .await
        .expect("JetStream enabled by nats.conf");
    // ...with the explicit limits it declares.
    assert_eq!(client.nats().server_info().max_payload, 1024 * 1024);
    assert!(server.monitor_url().is_some(), "monitoring is enabled");
    let log = server.log();
    assert!(
        log.contains(&format!("{}/jetstream", server.store_dir().display())),
        "{log}"
    );

    // Services publish what they own, and nothing else.
    let auth = as_user("auth").await;
    auth.publisher()
        .publish(&user_created_v1("a@example.com"))
        .await
        .expect("auth publishes user events");
    let payments = as_user("payments").await;
    let err = payments
        .publisher()
        .publish(&user_created_v1("b@example.com"))
        .await
        .expect_err("payments does not own user events");
    assert_eq!(
        err.kind(),
        eventhub::PublishErrorKind::PermissionDenied,
        "{err}"
    );
    // They run the consumers they are granted, and no others.
    let consumer = payments
        .consumer::<eventhub::events::user::Created>(eventhub::ConsumerOptions::default())
        .await
        .expect("payments consumes user.created");
    assert_eq!(consumer.name(), "payments__user_created");
    let err = as_user("profile")
        .await
        .consumer::<eventhub::events::payment::Created>(eventhub::ConsumerOptions::default())
        .await
        .expect_err("profile does not consume payment.created");
    assert_eq!(
        err.kind(),
        eventhub::ConsumeErrorKind::PermissionDenied,
        "{err}"
    );
    // Only ops provisions; a service is refused at once, with the subject and its user.
    let started = std::time::Instant::now();
    let err = auth
        .provision()
        .await
        .expect_err("services cannot change streams");
    assert_eq!(err.kind(), eventhub::ProvisionErrorKind::Rejected, "{err}");
    assert!(err.to_string().contains("$JS.API.STREAM"), "{err}");
    assert!(err.to_string().contains("user `auth`"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "not a timeout: {err}"
    );
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
    assert_eq!(err.kind(), eventhub::ConnectErrorKind::Unreachable);
    assert!(
        err.to_string()
            .contains(&format!("cannot reach NATS at {url}")),
        "{err}"
    );
}
