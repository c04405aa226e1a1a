//! Provisioning the declared streams: idempotent, and drift is reported and fixed.

use std::time::Duration;

use eventhub::StreamSpec;
use eventhub::Topology;
use eventhub::topology::DLQ_STREAM;
use eventhub::topology::Discard;
use eventhub::topology::ProvisionOptions;
use eventhub::topology::Retention;
use eventhub::topology::Storage;
use eventhub::topology::StreamAction;

use crate::support::server_and_client;

#[tokio::test]
async fn provisioning_creates_every_stream_then_changes_nothing() {
    let (_server, client) = server_and_client("ops").await;

    let first = client
        .provision(&eventhub_catalog::TOPOLOGY)
        .await
        .expect("provision");
    let names: Vec<&str> = first.streams.iter().map(|s| s.name.as_str()).collect();
    for declared in eventhub_catalog::events::STREAMS {
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

    let second = client
        .provision(&eventhub_catalog::TOPOLOGY)
        .await
        .expect("provision again");
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
    // Exactly the catalog's subjects, one per event version: nothing else is stored.
    let mut expected: Vec<&str> = eventhub_catalog::events::CATALOG
        .iter()
        .filter(|e| e.stream == "IDENTITY")
        .map(|e| e.subject)
        .collect();
    expected.sort();
    let mut actual = config.subjects.clone();
    actual.sort();
    assert_eq!(actual, expected);
    assert!(actual.contains(&"events.user.created.v2".to_string()));
    assert_eq!(
        config.metadata.get("eventhub.owner").map(String::as_str),
        Some("org")
    );
    assert_eq!(config.max_age, Duration::from_secs(90 * 86_400));
    assert_eq!(config.duplicate_window, Duration::from_secs(120));
}

#[tokio::test]
async fn drift_made_by_hand_is_reported_and_fixed() {
    let (_server, client) = server_and_client("ops").await;
    client
        .provision(&eventhub_catalog::TOPOLOGY)
        .await
        .expect("provision");

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
        .provision_with(&ProvisionOptions::new(&eventhub_catalog::TOPOLOGY).dry_run(true))
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

    let applied = client
        .provision(&eventhub_catalog::TOPOLOGY)
        .await
        .expect("provision");
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

    assert!(
        !client
            .provision(&eventhub_catalog::TOPOLOGY)
            .await
            .unwrap()
            .changed()
    );
}

#[tokio::test]
async fn storage_drift_cannot_be_fixed_in_place_and_says_so() {
    let (_server, client) = server_and_client("ops").await;
    let mut spec = eventhub_catalog::events::STREAMS[0];
    spec.storage = eventhub::topology::Storage::Memory;
    client
        .provision_with(&{
            let mut options = ProvisionOptions::new(&eventhub_catalog::TOPOLOGY);
            options.streams = vec![spec];
            options
        })
        .await
        .expect("create as memory");
    let err = client
        .provision(&eventhub_catalog::TOPOLOGY)
        .await
        .expect_err("storage cannot change");
    assert_eq!(err.kind(), eventhub::error::ProvisionErrorKind::Conflict);
    assert!(
        err.to_string()
            .contains("stream IDENTITY uses Memory storage on the server but File is declared"),
        "{err}"
    );
}

/// A team's catalog, in its own repository: one event in the org's ORDERS stream.
const TEAM: Topology = Topology {
    catalog: "orders-team",
    streams: &[StreamSpec {
        name: "ORDERS",
        description: "",
        owned: false,
        subjects: &["events.orders.shipped.v1"],
        retention: Retention::Limits,
        storage: Storage::File,
        max_age: Duration::ZERO,
        replicas: 1,
        duplicate_window: Duration::ZERO,
        max_msg_size: None,
        max_bytes: None,
        discard: Discard::Old,
        allow_msg_schedules: false,
        allow_atomic: false,
        allow_msg_ttl: false,
        subject_delete_marker_ttl: None,
    }],
};

async fn orders_subjects(client: &eventhub::Client) -> Vec<String> {
    let mut orders = client.jetstream().get_stream("ORDERS").await.unwrap();
    let mut s = orders.info().await.unwrap().config.subjects.clone();
    s.sort();
    s
}

#[tokio::test]
async fn catalogs_sharing_a_stream_never_remove_each_others_subjects() {
    let (_server, client) = server_and_client("ops").await;
    // The team provisions before the org: the stream is not theirs to create.
    let early = client
        .provision_with(&ProvisionOptions::new(&TEAM))
        .await
        .unwrap();
    let orders = early.streams.iter().find(|s| s.name == "ORDERS").unwrap();
    assert_eq!(orders.action, StreamAction::Conflict, "{early}");
    assert!(
        orders.conflicts[0].contains("must provision it first"),
        "{early}"
    );

    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let team = client
        .provision_with(&ProvisionOptions::new(&TEAM))
        .await
        .unwrap();
    let orders = team.streams.iter().find(|s| s.name == "ORDERS").unwrap();
    assert_eq!(orders.action, StreamAction::Updated, "{team}");
    assert!(
        orders_subjects(&client)
            .await
            .contains(&"events.orders.shipped.v1".to_string())
    );

    // The org applies its topology again: the team's subject stays, nothing changes.
    let again = client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    assert!(!again.changed(), "{again}");
    assert!(
        orders_subjects(&client)
            .await
            .contains(&"events.orders.shipped.v1".to_string())
    );
    let team_again = client
        .provision_with(&ProvisionOptions::new(&TEAM))
        .await
        .unwrap();
    assert!(!team_again.changed(), "{team_again}");

    // The team publishes to and consumes from its subject.
    client
        .jetstream()
        .publish("events.orders.shipped.v1", "{}".into())
        .await
        .unwrap()
        .await
        .expect("the team's subject is captured");

    // The team drops its event: only its own subject goes.
    const GONE: Topology = Topology {
        catalog: "orders-team",
        streams: &[StreamSpec {
            subjects: &[],
            ..TEAM.streams[0]
        }],
    };
    client
        .provision_with(&ProvisionOptions::new(&GONE))
        .await
        .unwrap();
    let after = orders_subjects(&client).await;
    assert!(!after.contains(&"events.orders.shipped.v1".to_string()));
    assert!(
        after.contains(&"events.order.placed.v1".to_string()),
        "{after:?}"
    );
}

#[tokio::test]
async fn a_stream_two_catalogs_claim_is_a_conflict_not_a_fix() {
    let (_server, client) = server_and_client("ops").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    const RIVAL: Topology = Topology {
        catalog: "rival",
        streams: &[StreamSpec {
            name: "ORDERS",
            description: "the rival's orders",
            owned: true,
            subjects: &["events.rival.thing.v1"],
            retention: Retention::Limits,
            storage: Storage::File,
            max_age: Duration::from_secs(60),
            replicas: 1,
            duplicate_window: Duration::from_secs(60),
            max_msg_size: None,
            max_bytes: None,
            discard: Discard::Old,
            allow_msg_schedules: false,
            allow_atomic: false,
            allow_msg_ttl: false,
            subject_delete_marker_ttl: None,
        }],
    };
    let before = orders_subjects(&client).await;
    let report = client
        .provision_with(&ProvisionOptions::new(&RIVAL))
        .await
        .unwrap();
    let orders = report.streams.iter().find(|s| s.name == "ORDERS").unwrap();
    assert_eq!(orders.action, StreamAction::Conflict, "{report}");
    assert!(
        orders.conflicts[0].contains("owned by catalog `org`"),
        "{report}"
    );
    assert_eq!(orders_subjects(&client).await, before, "left alone");
}
