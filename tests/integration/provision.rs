//! Provisioning the declared streams: idempotent, and drift is reported and fixed.

use std::time::Duration;

use eventhub::{DLQ_STREAM, ProvisionOptions, StreamAction};

use crate::support::server_and_client;

#[tokio::test]
async fn provisioning_creates_every_stream_then_changes_nothing() {
    let (_server, client) = server_and_client("ops").await;

    let first = client.provision().await.expect("provision");
    let names: Vec<&str> = first.streams.iter().map(|s| s.name.as_str()).collect();
    for declared in eventhub::events::STREAMS {
        assert!(
            names.contains(&declared.name),
            "{} not provisioned",
            declared.name
        );
    }
    assert!(names.contains(&DLQ_STREAM));
    assert!(
        first
            .streams
            .iter()
            .all(|s| s.action == StreamAction::Created),
        "{first}"
    );

    let second = client.provision().await.expect("provision again");
    assert!(!second.changed(), "second run changed something:\n{second}");
    assert!(
        second
            .streams
            .iter()
            .all(|s| s.action == StreamAction::Unchanged)
    );
    assert_eq!(second.drift().count(), 0);

    // What is on the server is what is declared.
    let mut identity = client.jetstream().get_stream("IDENTITY").await.unwrap();
    let config = &identity.info().await.unwrap().config;
    assert_eq!(config.subjects, vec!["events.user.>", "events.auth.>"]);
    assert_eq!(config.max_age, Duration::from_secs(90 * 86_400));
    assert_eq!(config.duplicate_window, Duration::from_secs(120));
}

#[tokio::test]
async fn drift_made_by_hand_is_reported_and_fixed() {
    let (_server, client) = server_and_client("ops").await;
    client.provision().await.expect("provision");

    // An operator changes a stream by hand.
    let js = client.jetstream();
    let mut config = js
        .get_stream("PAYMENTS")
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    config.max_age = Duration::from_secs(3600);
    config.subjects.push("events.refund.>".into());
    js.update_stream(config).await.expect("manual update");

    let plan = client
        .provision_with(&ProvisionOptions {
            dry_run: true,
            ..Default::default()
        })
        .await
        .expect("plan");
    let payments = plan.streams.iter().find(|s| s.name == "PAYMENTS").unwrap();
    assert_eq!(payments.action, StreamAction::WouldUpdate);
    let fields: Vec<&str> = payments.drift.iter().map(|d| d.field).collect();
    assert_eq!(fields, vec!["subjects", "max_age"], "{plan}");
    let max_age = &payments.drift[1];
    assert_eq!(max_age.actual, "3600s");
    assert_eq!(max_age.declared, "31536000s");

    // A dry run changed nothing.
    let still = js
        .get_stream("PAYMENTS")
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    assert_eq!(still.max_age, Duration::from_secs(3600));

    let applied = client.provision().await.expect("provision");
    let payments = applied
        .streams
        .iter()
        .find(|s| s.name == "PAYMENTS")
        .unwrap();
    assert_eq!(payments.action, StreamAction::Updated);
    assert_eq!(payments.drift.len(), 2);
    let fixed = js
        .get_stream("PAYMENTS")
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    assert_eq!(fixed.max_age, Duration::from_secs(365 * 86_400));
    assert!(!fixed.subjects.contains(&"events.refund.>".to_string()));

    assert!(!client.provision().await.unwrap().changed());
}

#[tokio::test]
async fn storage_drift_cannot_be_fixed_in_place_and_says_so() {
    let (_server, client) = server_and_client("ops").await;
    let mut spec = eventhub::events::STREAMS[0];
    spec.storage = eventhub::Storage::Memory;
    client
        .provision_with(&ProvisionOptions {
            streams: vec![spec],
            ..Default::default()
        })
        .await
        .expect("create as memory");
    let err = client.provision().await.expect_err("storage cannot change");
    assert_eq!(err.kind(), eventhub::ProvisionErrorKind::Conflict);
    assert!(
        err.to_string()
            .contains("stream IDENTITY uses Memory storage on the server but File is declared"),
        "{err}"
    );
}
