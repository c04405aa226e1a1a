//! Seed 004's sagas (`examples/sagas/flows.rs`) against a real nats-server, with the services
//! around them: User Registration completes, compensates a failed step and a step that timed
//! out; GDPR User Deletion completes when every service confirms and escalates after its
//! deadline.

mod common;
#[path = "../examples/sagas/flows.rs"]
mod flows;

use std::time::Duration;

use common::*;
use eventhub::{Client, Event};
use eventhub_catalog::TOPOLOGY;
use eventhub_catalog::events::{erasure, onboarding, user};
use eventhub_patterns::saga::{self, SagaHandle, SagaRecord, SagaStatus};
use flows::{Behaviour, ErasureState, GdprErasure, Registration, RegistrationState, Stage};
use serde_json::Value;
use tokio::sync::mpsc;

const ADA: &str = "0190b8d2-5a8e-7c3e-9d5e-00000000a0a0";
const BOB: &str = "0190b8d2-5a8e-7c3e-9d5e-00000000b0b0";
const CID: &str = "0190b8d2-5a8e-7c3e-9d5e-00000000c0c0";

struct World {
    server: NatsServer,
    auth: Client,
    log: mpsc::UnboundedReceiver<String>,
    /// Every log line received so far.
    seen: Vec<String>,
    services: Vec<eventhub::ConsumerHandle>,
}

async fn world(behaviour: Behaviour) -> World {
    let server = NatsServer::start();
    let ops = connect(&server, "ops").await;
    ops.provision(&TOPOLOGY).await.unwrap();
    let (tx, log) = mpsc::unbounded_channel();
    let services = flows::start_services(&server.client_url(), behaviour, tx)
        .await
        .unwrap();
    let auth = connect(&server, "auth").await;
    World {
        server,
        auth,
        log,
        seen: Vec::new(),
        services,
    }
}

impl World {
    async fn register(&self, user: &str) {
        let created: user::CreatedV2 = serde_json::from_value(serde_json::json!({
            "user_id": user, "email": "someone@example.com", "locale": "fr-FR",
            "referral_code": "FRIENDS", "created_at": "2026-01-02T03:04:05Z",
        }))
        .unwrap();
        self.auth.publisher().publish(&created).await.unwrap();
    }

    async fn delete(&self, user: &str, reason: &str) -> u64 {
        let deleted: user::DeletedV1 = serde_json::from_value(serde_json::json!({
            "user_id": user, "reason": reason, "deleted_at": "2026-01-02T03:04:05Z",
        }))
        .unwrap();
        self.auth
            .publisher()
            .publish(&deleted)
            .await
            .unwrap()
            .sequence
    }

    /// Waits for `n` log lines containing `needle` (among every line so far).
    async fn expect_log(&mut self, needle: &str, n: usize) -> Vec<String> {
        let matching = |seen: &[String]| -> Vec<String> {
            seen.iter()
                .filter(|l| l.contains(needle))
                .cloned()
                .collect()
        };
        let (log, seen) = (&mut self.log, &mut self.seen);
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while matching(seen).len() < n {
                seen.push(log.recv().await.expect("the services stopped"));
            }
        })
        .await;
        let found = matching(&self.seen);
        assert!(
            waited.is_ok(),
            "waited for {n} x {needle:?}, saw {:?}",
            self.seen
        );
        found
    }

    /// The payloads and correlation ids stored on `subject`.
    async fn stored(&self, subject: &str) -> Vec<(Value, String)> {
        let stream = self
            .auth
            .jetstream()
            .get_stream(onboarding::CancelledV1::STREAM)
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut seq = 1;
        while let Ok(m) = stream.direct_get_next_for_subject(subject, Some(seq)).await {
            let causation = m
                .headers
                .get("ce-causationid")
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            out.push((serde_json::from_slice(&m.payload).unwrap(), causation));
            seq = m.sequence + 1;
        }
        out
    }

    /// Waits until `durable` has acknowledged the last event on `subject`.
    async fn handled(&self, durable: &str, subject: &str) {
        let stream = self
            .auth
            .jetstream()
            .get_stream(onboarding::CancelledV1::STREAM)
            .await
            .unwrap();
        let last = stream
            .direct_get_last_for_subject(subject)
            .await
            .unwrap()
            .sequence;
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(durable).await.unwrap();
        // The server reports acknowledgements only when asked: poll its consumer info.
        while consumer.info().await.unwrap().ack_floor.stream_sequence < last {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self, sagas: Vec<SagaHandle>) {
        for s in sagas {
            s.stop().await;
        }
        for s in self.services {
            s.shutdown().await;
        }
        drop(self.server);
    }
}

fn finished<S>(r: &SagaRecord<S>) -> bool {
    r.status.is_terminal()
}

async fn outcome<S: serde::de::DeserializeOwned>(handle: &SagaHandle, id: &str) -> SagaRecord<S> {
    tokio::time::timeout(
        Duration::from_secs(30),
        handle.records().wait_for(id, finished::<S>),
    )
    .await
    .unwrap_or_else(|_| panic!("saga {id} did not finish"))
    .unwrap()
}

#[tokio::test]
async fn registration_completes_and_compensates_a_bounced_welcome_email() {
    let mut w = world(Behaviour {
        bounce: [BOB.to_string()].into(),
        ..Default::default()
    })
    .await;
    let onboarding_client = connect(&w.server, "onboarding").await;
    let saga = saga::start(
        &onboarding_client,
        Registration {
            step_timeout: Duration::from_secs(120),
        },
        Registration::options(),
    )
    .await
    .unwrap();
    w.register(ADA).await;
    w.register(BOB).await;

    let ada: SagaRecord<RegistrationState> = outcome(&saga, ADA).await;
    assert_eq!(ada.status, SagaStatus::Completed);
    assert_eq!(ada.state.stage, Stage::Done);
    let inputs: Vec<&str> = ada
        .history
        .iter()
        .map(|h| h.input.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(
        inputs,
        [
            "user.created",
            "onboarding.profile-created",
            "onboarding.preferences-set",
            "onboarding.welcome-sent"
        ]
    );
    assert_eq!(ada.timeout, None, "a finished saga keeps no timer");
    // Step 4: analytics counted the new user from onboarding.completed.
    w.expect_log(&format!("analytics: counted the new user {ADA}"), 1)
        .await;

    let bob: SagaRecord<RegistrationState> = outcome(&saga, BOB).await;
    assert_eq!(bob.status, SagaStatus::Compensated);
    assert_eq!(bob.state.stage, Stage::Cancelled);
    // Compensation: every service that did something for bob undid it.
    for service in ["auth: disabled", "profile: deleted", "preferences: deleted"] {
        w.expect_log(&format!("{service} the"), 1).await;
    }

    let completed = w.stored(onboarding::CompletedV1::SUBJECT).await;
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!(completed[0].0["user_id"], ADA);
    assert_eq!(completed[0].0["locale"], "fr-FR");
    assert_eq!(completed[0].0["referral_code"], "FRIENDS");
    let cancelled = w.stored(onboarding::CancelledV1::SUBJECT).await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0].0["user_id"], BOB);
    assert_eq!(cancelled[0].0["step"], "welcome_email");
    assert_eq!(cancelled[0].0["reason"], "failed");
    assert_eq!(cancelled[0].0["detail"], "550 mailbox unavailable");
    // Caused by the failure it compensates.
    assert!(bob.history[3].input.ends_with(&cancelled[0].1), "{bob:?}");

    // A second sign-up of a finished registration changes nothing.
    w.register(ADA).await;
    w.expect_log(&format!("profile: created the profile of {ADA}"), 2)
        .await;
    w.handled("saga_registration", onboarding::ProfileCreatedV1::SUBJECT)
        .await;
    saga.stop().await;
    let again: SagaRecord<RegistrationState> = saga::records::<Registration>(&onboarding_client)
        .await
        .unwrap()
        .get(ADA)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.step, 4);
    assert_eq!(w.stored(onboarding::CompletedV1::SUBJECT).await.len(), 1);
    w.stop(vec![]).await;
}

#[tokio::test]
async fn registration_compensates_a_step_that_times_out() {
    let mut w = world(Behaviour {
        preferences_silent: [CID.to_string()].into(),
        ..Default::default()
    })
    .await;
    let onboarding_client = connect(&w.server, "onboarding").await;
    let saga = saga::start(
        &onboarding_client,
        Registration {
            step_timeout: Duration::from_secs(5),
        },
        Registration::options(),
    )
    .await
    .unwrap();
    w.register(CID).await;
    w.expect_log(&format!("preferences: (down) no answer for {CID}"), 1)
        .await;
    let cid: SagaRecord<RegistrationState> = outcome(&saga, CID).await;
    assert_eq!(cid.status, SagaStatus::Compensated);
    assert_eq!(cid.history.last().unwrap().input, "timeout preferences");
    for service in ["auth: disabled", "profile: deleted", "preferences: deleted"] {
        w.expect_log(&format!("{service} the"), 1).await;
    }
    let cancelled = w.stored(onboarding::CancelledV1::SUBJECT).await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0].0["step"], "preferences");
    assert_eq!(cancelled[0].0["reason"], "timeout");
    // The deadline, taken from the state: a repeat of the step would emit the same event.
    let since = cid.state.since.unwrap();
    let at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(cancelled[0].0["cancelled_at"].clone()).unwrap();
    assert_eq!(at, since + chrono::Duration::seconds(5));
    assert!(w.stored(onboarding::CompletedV1::SUBJECT).await.is_empty());
    w.stop(vec![saga]).await;
}

#[tokio::test]
async fn gdpr_erasure_completes_when_every_service_confirms() {
    let mut w = world(Behaviour::default()).await;
    let privacy = connect(&w.server, "privacy").await;
    let saga = saga::start(
        &privacy,
        GdprErasure {
            deadline: Duration::from_secs(120),
        },
        GdprErasure::options(),
    )
    .await
    .unwrap();
    // A deletion that is not an erasure request starts nothing (the services ignore it too).
    w.delete(BOB, "user_request").await;
    w.delete(ADA, "gdpr_erasure").await;
    let ada: SagaRecord<ErasureState> = outcome(&saga, ADA).await;
    assert_eq!(ada.status, SagaStatus::Completed);
    assert_eq!(ada.state.records, 1 + 1 + 3 + 2 + 7);
    assert_eq!(
        ada.state.confirmed.iter().collect::<Vec<_>>(),
        [
            "analytics",
            "notifications",
            "payments",
            "preferences",
            "profile"
        ]
    );
    let done = w.stored(erasure::CompletedV1::SUBJECT).await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].0["user_id"], ADA);
    assert_eq!(done[0].0["services"].as_array().unwrap().len(), 5);
    assert!(
        saga.records()
            .get::<ErasureState>(BOB)
            .await
            .unwrap()
            .is_none(),
        "a user_request deletion is no erasure request"
    );
    w.expect_log("erased", 5).await;
    assert!(w.stored(erasure::EscalatedV1::SUBJECT).await.is_empty());
    w.stop(vec![saga]).await;
}

#[tokio::test]
async fn gdpr_erasure_escalates_when_a_service_does_not_confirm_in_time() {
    let mut w = world(Behaviour {
        analytics_silent: [CID.to_string()].into(),
        ..Default::default()
    })
    .await;
    let privacy = connect(&w.server, "privacy").await;
    let saga = saga::start(
        &privacy,
        GdprErasure {
            deadline: Duration::from_secs(5),
        },
        GdprErasure::options(),
    )
    .await
    .unwrap();
    w.delete(CID, "gdpr_erasure").await;
    w.expect_log(&format!("analytics: (stuck) no confirmation for {CID}"), 1)
        .await;
    let cid: SagaRecord<ErasureState> = outcome(&saga, CID).await;
    assert_eq!(cid.status, SagaStatus::Failed, "escalated to a person");
    assert_eq!(cid.history.last().unwrap().input, "timeout erasure");
    let escalated = w.stored(erasure::EscalatedV1::SUBJECT).await;
    assert_eq!(escalated.len(), 1, "{escalated:?}");
    // What the record knew at the deadline: analytics never confirms, the others usually did
    // (a slow one would be listed as missing too).
    let names = |v: &Value| -> Vec<String> { serde_json::from_value(v.clone()).unwrap() };
    let (confirmed, missing) = (
        names(&escalated[0].0["confirmed"]),
        names(&escalated[0].0["missing"]),
    );
    assert!(missing.contains(&"analytics".to_string()), "{missing:?}");
    assert_eq!(
        confirmed,
        cid.state.confirmed.iter().cloned().collect::<Vec<_>>()
    );
    let mut all: Vec<String> = confirmed.into_iter().chain(missing).collect();
    all.sort();
    let mut expected: Vec<String> = flows::ERASING_SERVICES.map(String::from).to_vec();
    expected.sort();
    assert_eq!(all, expected);
    assert!(w.stored(erasure::CompletedV1::SUBJECT).await.is_empty());
    w.stop(vec![saga]).await;
}
