//! Sagas and event-sourced aggregates under the repository's `nats.conf` (generated from
//! `schemas/services.json`), each service with its own user and password, on what an operator
//! provisioned (as `eventhub config apply` does):
//!
//! - `privacy` runs its declared saga `gdpr_erasure` end to end (an input event, a step, the
//!   server-scheduled timeout); it cannot publish a timeout itself, nor touch another saga's
//!   timers, and a rollup on its own timer subject stays inside its own saga's stream. Another
//!   service cannot read the saga's bucket nor consume its durables.
//! - `auth` owns the aggregate type `user`: it appends and loads (with snapshots); another
//!   service can neither append nor read its history or snapshots.
//!
//! Each denial is the server's permission violation for that subject (in its log), not just
//! "some error".

mod common;
#[path = "../examples/sagas/flows.rs"]
mod flows;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use common::{User, renamed};
use eventhub::{Client, Event};
use eventhub_catalog::TOPOLOGY;
use eventhub_catalog::events::{erasure, user};
use eventhub_patterns::saga::{self, Saga, SagaStatus};
use eventhub_patterns::{EventStore, StoreOptions, aggregate};
use eventhub_testkit::NatsServer;
use flows::{ErasureState, GdprErasure, Registration};

const ADA: &str = "0190b8d2-5a8e-7c3e-9d5e-00000000a0a0";

use common::{connect_as as connect, secured};

/// The server refused `subject` to `user`: its log names the violation.
fn violation(server: &NatsServer, user: &str, subject: &str) {
    let needle = format!("\"EVENTS/user:{user}\" - Publish Violation - Subject \"{subject}\"");
    server
        .wait_for_log(&needle, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A publish `user` may not make: the server drops it and logs why.
async fn denied_publish(server: &NatsServer, client: &Client, user: &str, subject: &str) {
    client
        .nats()
        .publish(subject.to_string(), "forged".into())
        .await
        .unwrap();
    client.nats().flush().await.unwrap();
    violation(server, user, subject);
}

/// A request `user` may not send (a JetStream API call): no answer comes, and the server logs
/// why.
async fn denied_request(server: &NatsServer, client: &Client, user: &str, subject: &str) {
    let answer = tokio::time::timeout(
        Duration::from_millis(500),
        client.nats().request(subject.to_string(), "{}".into()),
    )
    .await;
    assert!(
        answer.is_err(),
        "{user} got an answer on {subject}: {answer:?}"
    );
    violation(server, user, subject);
}

async fn provision(ops: &Client) {
    ops.provision(&TOPOLOGY).await.unwrap();
    saga::provision(ops, GdprErasure::NAME, &GdprErasure::options())
        .await
        .unwrap();
    saga::provision(ops, Registration::NAME, &Registration::options())
        .await
        .unwrap();
    aggregate::provision(ops, "user", &StoreOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_saga_runs_under_its_generated_user_and_nobody_touches_its_timers_or_records() {
    let server = secured();
    let ops = connect(&server, "ops").await;
    provision(&ops).await;

    let privacy = connect(&server, "privacy").await;
    let running = saga::start(
        &privacy,
        GdprErasure {
            deadline: Duration::from_millis(800),
        },
        GdprErasure::options(),
    )
    .await
    .expect("privacy runs gdpr_erasure on what ops provisioned");

    // An input event: the step arms the deadline; nobody confirms; the server's schedule
    // fires the timeout, and the saga escalates.
    let auth = connect(&server, "auth").await;
    let deleted: user::DeletedV1 = serde_json::from_value(serde_json::json!({
        "user_id": ADA, "reason": "gdpr_erasure", "deleted_at": "2026-01-02T03:04:05Z",
    }))
    .unwrap();
    auth.publisher().publish(&deleted).await.unwrap();
    let records = saga::records::<GdprErasure>(&ops).await.unwrap();
    let record = tokio::time::timeout(
        Duration::from_secs(30),
        records.wait_for::<ErasureState>(ADA, |r| r.status.is_terminal()),
    )
    .await
    .expect("the saga finished in time")
    .unwrap();
    assert_eq!(record.status, SagaStatus::Failed);
    let inputs: Vec<&str> = record.history.iter().map(|h| h.input.as_str()).collect();
    assert!(inputs[0].starts_with("event user.deleted "), "{inputs:?}");
    assert_eq!(inputs[1], "timeout erasure", "{inputs:?}");
    let identity = ops
        .jetstream()
        .get_stream(user::DeletedV1::STREAM)
        .await
        .unwrap();
    let escalated = identity
        .direct_get_last_for_subject(erasure::EscalatedV1::SUBJECT)
        .await
        .expect("the escalation was published under privacy's user");
    let escalated: serde_json::Value = serde_json::from_slice(&escalated.payload).unwrap();
    assert_eq!(escalated["user_id"], ADA);
    running.stop().await;

    // The saga's service may not fire a timeout by hand: only the server's schedule does.
    denied_publish(
        &server,
        &privacy,
        "privacy",
        "saga.gdpr_erasure.timeout.forged",
    )
    .await;

    // Nor arm or clear another saga's timers.
    denied_publish(
        &server,
        &privacy,
        "privacy",
        "saga.registration.timer.someone",
    )
    .await;

    // Nor aim its own schedule at another saga: the server keeps a schedule's target inside
    // the schedule's stream.
    let mut h = HeaderMap::new();
    h.insert("Nats-Schedule", "@at 2030-01-01T00:00:00Z");
    h.insert("Nats-Schedule-Target", "saga.registration.timeout.someone");
    let refused = privacy
        .jetstream()
        .publish_with_headers("saga.gdpr_erasure.timer.aimed", h, "x".into())
        .await
        .unwrap()
        .await
        .expect_err("a schedule aimed outside its stream");
    assert_eq!(refused.kind(), PublishErrorKind::Other, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("message schedules target is invalid (code 400, error code 10190)"),
        "{refused}"
    );

    // A rollup of everything on its own timer subject wipes no more than its own saga's
    // stream: another saga's pending timer stays.
    let mut h = HeaderMap::new();
    h.insert("Nats-Schedule", "@at 2030-01-01T00:00:00Z");
    h.insert("Nats-Schedule-Target", "saga.registration.timeout.someone");
    ops.jetstream()
        .publish_with_headers("saga.registration.timer.someone", h, "step".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut own = ops
        .jetstream()
        .get_stream(saga::saga_stream(GdprErasure::NAME))
        .await
        .unwrap();
    let before = own.info().await.unwrap().state.messages;
    assert!(
        before >= 2,
        "the cleared timer and the timeout it fired: {before}"
    );
    let mut h = HeaderMap::new();
    h.insert("Nats-Rollup", "all");
    privacy
        .jetstream()
        .publish_with_headers("saga.gdpr_erasure.timer.wipe", h, "x".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut registration = ops
        .jetstream()
        .get_stream(saga::saga_stream(Registration::NAME))
        .await
        .unwrap();
    assert_eq!(registration.info().await.unwrap().state.messages, 1);
    assert_eq!(
        own.info().await.unwrap().state.messages,
        1,
        "the rollup only"
    );

    // Another service (one running a saga of its own) cannot read the saga's instances,
    // write them, or take its inputs or timeouts from its durables.
    let onboarding = connect(&server, "onboarding").await;
    let record_subject =
        format!("$JS.API.DIRECT.GET.KV_SAGA_GDPR_ERASURE.$KV.SAGA_GDPR_ERASURE.{ADA}");
    denied_request(&server, &onboarding, "onboarding", &record_subject).await;
    denied_request(
        &server,
        &onboarding,
        "onboarding",
        "$JS.API.STREAM.INFO.KV_SAGA_GDPR_ERASURE",
    )
    .await;
    denied_request(
        &server,
        &onboarding,
        "onboarding",
        &format!("$KV.SAGA_GDPR_ERASURE.{ADA}"),
    )
    .await;
    denied_request(
        &server,
        &onboarding,
        "onboarding",
        "$JS.API.CONSUMER.MSG.NEXT.IDENTITY.saga_gdpr_erasure",
    )
    .await;
    denied_request(
        &server,
        &onboarding,
        "onboarding",
        "$JS.API.CONSUMER.MSG.NEXT.SAGA_GDPR_ERASURE.saga_gdpr_erasure_timeouts",
    )
    .await;
    // The gateway follows the catalog's streams with consumers of its own, never a saga's.
    let gateway = connect(&server, "gateway").await;
    denied_request(
        &server,
        &gateway,
        "gateway",
        "$JS.API.CONSUMER.MSG.NEXT.IDENTITY.saga_gdpr_erasure",
    )
    .await;
    // The saga's own service cannot re-create its durable with another filter either.
    denied_request(
        &server,
        &privacy,
        "privacy",
        "$JS.API.CONSUMER.CREATE.IDENTITY.saga_gdpr_erasure",
    )
    .await;
    // Its record is intact.
    let again = records.get::<ErasureState>(ADA).await.unwrap().unwrap();
    assert_eq!(again.status, SagaStatus::Failed);
}

#[tokio::test]
async fn an_aggregate_is_appended_and_loaded_by_its_owner_only() {
    let server = secured();
    let ops = connect(&server, "ops").await;
    provision(&ops).await;

    let auth = connect(&server, "auth").await;
    let store = EventStore::<User>::open(&auth, StoreOptions::default().snapshot_every(Some(10)))
        .await
        .expect("auth opens what ops provisioned");
    // 40 events, the last two in one atomic batch: a load replays them in batched direct
    // gets and writes a snapshot; the next load starts from it.
    let mut version = 0;
    for i in 0..38 {
        version = store
            .append("u1", version, &[renamed(&format!("n{i}"))])
            .await
            .unwrap();
    }
    version = store
        .append("u1", version, &[renamed("n38"), renamed("n39")])
        .await
        .unwrap();
    let loaded = store.load("u1").await.unwrap();
    assert_eq!(loaded.version, version);
    assert_eq!(loaded.events, 40);
    assert_eq!(loaded.snapshot, None);
    let expected: Vec<String> = (0..40).map(|i| format!("n{i}")).collect();
    assert_eq!(loaded.state.names, expected);
    let from_snapshot = store.load("u1").await.unwrap();
    assert_eq!(
        from_snapshot.snapshot,
        Some(version),
        "the snapshot was written"
    );
    assert_eq!(from_snapshot.state, loaded.state);
    // A stale append is a conflict, not a permission problem.
    let stale = store.append("u1", 1, &[renamed("late")]).await.unwrap_err();
    assert!(
        matches!(stale, eventhub_patterns::AppendError::Conflict { .. }),
        "{stale}"
    );

    // profile does not own `user`: it can neither append nor read the history or snapshots.
    let profile = connect(&server, "profile").await;
    denied_publish(&server, &profile, "profile", "es.user.u1").await;
    denied_request(&server, &profile, "profile", "es.user.u2").await;
    denied_request(&server, &profile, "profile", "$JS.API.STREAM.INFO.ES_USER").await;
    denied_request(&server, &profile, "profile", "$JS.API.DIRECT.GET.ES_USER").await;
    denied_request(
        &server,
        &profile,
        "profile",
        "$JS.API.DIRECT.GET.ES_USER.es.user.u1",
    )
    .await;
    denied_request(
        &server,
        &profile,
        "profile",
        "$JS.API.CONSUMER.CREATE.ES_USER",
    )
    .await;
    denied_request(
        &server,
        &profile,
        "profile",
        "$JS.API.DIRECT.GET.KV_ES_SNAPSHOTS_USER.$KV.ES_SNAPSHOTS_USER.u1",
    )
    .await;
    denied_request(&server, &profile, "profile", "$KV.ES_SNAPSHOTS_USER.u1").await;
    // Nothing foreign was stored: the history loads as auth wrote it.
    let after = store.load_from_events("u1").await.unwrap();
    assert_eq!(after.version, version);
    assert_eq!(after.state.names, expected);
}
