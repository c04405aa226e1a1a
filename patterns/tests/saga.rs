//! Sagas against a real nats-server: a payment saga that completes, compensates a failed
//! payment, and compensates a payment that timed out while no instance was running.

mod common;

use std::time::Duration;

use common::*;
use eventhub::{Client, Consumable, Event, PublishOptions};
use eventhub_catalog::{
    TOPOLOGY,
    events::{payment, transaction},
};
use eventhub_patterns::Recorded;
use eventhub_patterns::saga::{self, Saga, SagaOptions, SagaRecord, SagaStatus, Step, StepError};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

const PAYMENT: &str = "0190b8d2-5a8e-7c3e-9d5e-0000000000aa";

/// Waits for a payment's outcome; cancels its ledger transaction when it fails or takes too
/// long.
struct PaymentSaga {
    timeout: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PaymentState {
    payment_id: Option<String>,
    outcome: Option<String>,
}

fn cancel(payment_id: &str, reason: &str) -> Result<transaction::CancelledV1, StepError> {
    serde_json::from_value(serde_json::json!({
        "transaction_id": "0190b8d2-5a8e-7c3e-9d5e-0000000000bb",
        "payment_id": payment_id, "reason": reason,
        "cancelled_at": "2026-01-02T03:04:05Z"
    }))
    .map_err(|e| StepError(e.to_string()))
}

impl Saga for PaymentSaga {
    const NAME: &'static str = "payment";
    type State = PaymentState;

    fn on_event(
        &self,
        state: &PaymentState,
        event: &Recorded,
    ) -> Result<Step<PaymentState>, StepError> {
        let bad = |e: eventhub::error::DecodeError| StepError(e.to_string());
        match event.event_type.as_str() {
            "payment.created" => {
                let e = payment::CreatedV1::decode(event.version, &event.raw()).map_err(bad)?;
                let state = PaymentState {
                    payment_id: Some(e.payment_id.0.to_string()),
                    outcome: None,
                };
                Ok(Step::running(state).timeout(self.timeout, "payment"))
            }
            "payment.status-changed" if state.payment_id.is_some() => {
                let e =
                    payment::StatusChangedV1::decode(event.version, &event.raw()).map_err(bad)?;
                let to = e.to.to_string();
                let mut state = state.clone();
                state.outcome = Some(to.clone());
                match to.as_str() {
                    "captured" => Ok(Step::finished(state, SagaStatus::Completed)),
                    "failed" => {
                        let id = state.payment_id.clone().unwrap();
                        Step::finished(state, SagaStatus::Compensated)
                            .emit(&cancel(&id, "payment failed")?)
                            .map_err(|e| StepError(e.to_string()))
                    }
                    _ => Ok(Step::running(state)),
                }
            }
            _ => Ok(Step::ignore()),
        }
    }

    fn on_timeout(
        &self,
        state: &PaymentState,
        _token: &str,
    ) -> Result<Step<PaymentState>, StepError> {
        let mut state = state.clone();
        state.outcome = Some("timed out".into());
        let id = state.payment_id.clone().unwrap_or_default();
        Step::finished(state, SagaStatus::Compensated)
            .emit(&cancel(&id, "payment timed out")?)
            .map_err(|e| StepError(e.to_string()))
    }
}

fn options() -> SagaOptions {
    SagaOptions::new(
        payment::CreatedV1::STREAM,
        [
            payment::CreatedV1::SUBJECT,
            payment::StatusChangedV1::SUBJECT,
        ],
    )
}

async fn created(client: &Client, flow: &str) {
    let e: payment::CreatedV1 = serde_json::from_value(serde_json::json!({
        "payment_id": PAYMENT, "user_id": USER_ID,
        "amount": {"amount_minor": 1999, "currency": "EUR"}, "method": "card",
        "created_at": "2026-01-02T03:04:05Z"
    }))
    .unwrap();
    client
        .publisher()
        .publish_with(&e, PublishOptions::default().correlation_id(flow))
        .await
        .unwrap();
}

async fn status(client: &Client, flow: &str, to: &str) -> u64 {
    let e: payment::StatusChangedV1 = serde_json::from_value(serde_json::json!({
        "payment_id": PAYMENT, "from": "authorized", "to": to,
        "changed_at": "2026-01-02T03:04:05Z"
    }))
    .unwrap();
    client
        .publisher()
        .publish_with(&e, PublishOptions::default().correlation_id(flow))
        .await
        .unwrap()
        .sequence
}

/// Waits until the saga's input consumer has acknowledged everything up to `sequence`.
async fn handled(client: &Client, sequence: u64) {
    let stream = client
        .jetstream()
        .get_stream(payment::CreatedV1::STREAM)
        .await
        .unwrap();
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("saga_payment").await.unwrap();
    // The server reports acknowledgements only when asked: poll its consumer info.
    while consumer.info().await.unwrap().ack_floor.stream_sequence < sequence {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The cancellations stored so far, with their correlation ids.
async fn cancellations(client: &Client) -> Vec<(String, String)> {
    let stream = client
        .jetstream()
        .get_stream(transaction::CancelledV1::STREAM)
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut seq = 1;
    while let Ok(m) = stream
        .direct_get_next_for_subject(transaction::CancelledV1::SUBJECT, Some(seq))
        .await
    {
        let h = |n: &str| {
            m.headers
                .get(n)
                .map(|v| v.as_str().to_string())
                .unwrap_or_default()
        };
        out.push((h("ce-correlationid"), h("ce-causationid")));
        seq = m.sequence + 1;
    }
    out
}

async fn setup() -> (NatsServer, Client) {
    let server = NatsServer::start();
    let client = connect(&server, "checkout").await;
    client.provision(&TOPOLOGY).await.unwrap();
    (server, client)
}

fn done(r: &SagaRecord<PaymentState>) -> bool {
    r.status.is_terminal()
}

#[tokio::test]
async fn a_saga_completes_and_compensates_a_failed_step_once() {
    let (_server, client) = setup().await;
    let handle = saga::start(
        &client,
        PaymentSaga {
            timeout: Duration::from_secs(60),
        },
        options(),
    )
    .await
    .unwrap();
    created(&client, "flow-ok").await;
    status(&client, "flow-ok", "captured").await;
    created(&client, "flow-ko").await;
    status(&client, "flow-ko", "failed").await;

    let ok = handle.records().wait_for("flow-ok", done).await.unwrap();
    assert_eq!(ok.status, SagaStatus::Completed);
    assert_eq!(ok.step, 2);
    assert_eq!(ok.timeout, None, "a finished saga keeps no timer");
    let ko = handle.records().wait_for("flow-ko", done).await.unwrap();
    assert_eq!(ko.status, SagaStatus::Compensated);
    assert_eq!(ko.state.outcome.as_deref(), Some("failed"));
    assert_eq!(ko.history.len(), 2);

    // Events after the end change nothing; a repeated failure does not compensate twice.
    let last = status(&client, "flow-ko", "failed").await;
    handled(&client, last).await;
    handle.stop().await;
    let cancelled = cancellations(&client).await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0].0, "flow-ko");
    // The timer of the completed saga was replaced by a message that schedules nothing.
    let timers = client
        .jetstream()
        .get_stream(saga::saga_stream("payment"))
        .await
        .unwrap();
    let last = timers
        .get_last_raw_message_by_subject("saga.payment.timer.flow-ok")
        .await
        .unwrap();
    assert!(
        last.headers.get("Nats-Schedule").is_none(),
        "{:?}",
        last.headers
    );
}

#[tokio::test]
async fn a_timeout_that_fires_while_no_instance_runs_is_handled_when_one_starts() {
    let (_server, client) = setup().await;
    let handle = saga::start(
        &client,
        PaymentSaga {
            timeout: Duration::from_secs(1),
        },
        options(),
    )
    .await
    .unwrap();
    created(&client, "flow-late").await;
    let armed = handle
        .records()
        .wait_for("flow-late", |r: &SagaRecord<PaymentState>| {
            r.timeout.is_some()
        })
        .await
        .unwrap();
    assert_eq!(armed.status, SagaStatus::Running);
    handle.stop().await;

    // No instance runs; the server fires the timeout into the saga's stream.
    let timers = client
        .jetstream()
        .get_stream(saga::saga_stream("payment"))
        .await
        .unwrap();
    let watcher = timers
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: "saga.payment.timeout.flow-late".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let fired = tokio::time::timeout(Duration::from_secs(10), async {
        watcher
            .messages()
            .await
            .unwrap()
            .next()
            .await
            .unwrap()
            .unwrap()
    })
    .await
    .expect("the server did not fire the timeout");
    assert_eq!(&fired.payload[..], b"payment");
    // Not before its deadline (the server's clock is this machine's).
    let deadline = armed.timeout.as_ref().unwrap().at;
    let published = fired.info().unwrap().published;
    assert!(
        published >= deadline - chrono::Duration::milliseconds(20),
        "fired at {published}, deadline {deadline}"
    );
    assert!(
        cancellations(&client).await.is_empty(),
        "compensated with no instance running"
    );

    let handle = saga::start(
        &client,
        PaymentSaga {
            timeout: Duration::from_secs(1),
        },
        options(),
    )
    .await
    .unwrap();
    let record = handle.records().wait_for("flow-late", done).await.unwrap();
    assert_eq!(record.status, SagaStatus::Compensated);
    assert_eq!(record.state.outcome.as_deref(), Some("timed out"));
    // A late success changes nothing.
    let last = status(&client, "flow-late", "captured").await;
    handled(&client, last).await;
    handle.stop().await;
    let cancelled = cancellations(&client).await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0].0, "flow-late");
}

/// The child process of the kill test: runs the payment saga as `noack` (whose acks the server
/// drops) until it is killed. A no-op unless the test below starts it.
#[tokio::test]
async fn child_saga_process() {
    let Ok(url) = std::env::var("EVENTHUB_SAGA_CHILD_URL") else {
        return;
    };
    let client = connect_as(&url, "noack").await;
    let _handle = saga::start(
        &client,
        PaymentSaga {
            timeout: Duration::from_secs(600),
        },
        killable_options(),
    )
    .await
    .unwrap();
    println!("running");
    std::future::pending::<()>().await;
}

fn killable_options() -> SagaOptions {
    let mut o = options();
    o.ack_wait = Duration::from_secs(2);
    o
}

/// A server on which user `noack` may do everything but acknowledge, so that a saga process
/// running as it records its step and never acks: killed then, it dies exactly between the
/// two.
fn server_with_noack() -> NatsServer {
    NatsServer::builder()
        .config(
            r#"authorization {
  users: [
    { user: ops, password: ops }
    { user: noack, password: noack, permissions: { publish: { deny: ["$JS.ACK.>"] } } }
  ]
}
"#,
        )
        .start()
        .unwrap()
}

async fn connect_as(url: &str, user: &str) -> Client {
    Client::connect(
        eventhub::ConnectOptions::new("checkout")
            .url(url)
            .user_password(user, user),
    )
    .await
    .unwrap()
}

/// Runs the saga in a child process as `noack` until instance `flow` has a record with `step`
/// steps, then kills it (SIGKILL) and checks that the input is still unacknowledged.
async fn kill_after_record(server: &NatsServer, client: &Client, flow: &str, step: u64) {
    let records = saga::records::<PaymentSaga>(client).await.unwrap();
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_saga_process", "--nocapture"])
        .env("EVENTHUB_SAGA_CHILD_URL", server.client_url())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        records.wait_for(flow, |r: &SagaRecord<PaymentState>| r.step == step),
    )
    .await
    .expect("the child process recorded its step")
    .unwrap();
    child.kill().await.unwrap();
    let stream = client
        .jetstream()
        .get_stream(payment::CreatedV1::STREAM)
        .await
        .unwrap();
    let info = stream.consumer_info("saga_payment").await.unwrap();
    assert_eq!(
        info.num_ack_pending, 1,
        "killed between recording the step and acknowledging it: {info:?}"
    );
}

#[tokio::test]
async fn a_saga_killed_between_recording_a_step_and_acking_resumes_without_repeating_it() {
    let server = server_with_noack();
    let client = connect_as(&server.client_url(), "ops").await;
    client.provision(&TOPOLOGY).await.unwrap();
    // The durable exists before the child starts, with the short ack wait.
    saga::start(
        &client,
        PaymentSaga {
            timeout: Duration::from_secs(600),
        },
        killable_options(),
    )
    .await
    .unwrap()
    .stop()
    .await;

    created(&client, "flow-kill").await;
    kill_after_record(&server, &client, "flow-kill", 1).await;
    let handle = saga::start(
        &client,
        PaymentSaga {
            timeout: Duration::from_secs(600),
        },
        killable_options(),
    )
    .await
    .unwrap();
    // The input comes back after the ack wait, is recognised, and is acknowledged.
    let info = client
        .jetstream()
        .get_stream(payment::CreatedV1::STREAM)
        .await
        .unwrap()
        .get_last_raw_message_by_subject(payment::CreatedV1::SUBJECT)
        .await
        .unwrap();
    handled(&client, info.sequence).await;
    handle.stop().await;

    // The compensating step, killed the same way: its cancellation is stored once.
    let last = {
        let records = saga::records::<PaymentSaga>(&client).await.unwrap();
        let before: SagaRecord<PaymentState> = records.get("flow-kill").await.unwrap().unwrap();
        assert_eq!(before.step, 1, "the first step ran once: {before:?}");
        let last = status(&client, "flow-kill", "failed").await;
        kill_after_record(&server, &client, "flow-kill", 2).await;
        last
    };
    let handle = saga::start(
        &client,
        PaymentSaga {
            timeout: Duration::from_secs(600),
        },
        killable_options(),
    )
    .await
    .unwrap();
    handled(&client, last).await;
    let record: SagaRecord<PaymentState> =
        handle.records().get("flow-kill").await.unwrap().unwrap();
    handle.stop().await;
    assert_eq!(record.status, SagaStatus::Compensated);
    assert_eq!(record.step, 2, "no step ran twice: {record:?}");
    assert_eq!(record.history.len(), 2);
    let cancelled = cancellations(&client).await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_keeps_running_across_a_server_restart() {
    let (server, client) = setup().await;
    let handle = saga::start(
        &client,
        PaymentSaga {
            timeout: Duration::from_secs(600),
        },
        options(),
    )
    .await
    .unwrap();
    created(&client, "flow-before").await;
    handle
        .records()
        .wait_for("flow-before", |r: &SagaRecord<PaymentState>| r.step == 1)
        .await
        .unwrap();
    let mut server = server;
    let _server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    status(&client, "flow-before", "captured").await;
    created(&client, "flow-after").await;
    status(&client, "flow-after", "failed").await;
    let wait = |id: &'static str| {
        let records = handle.records().clone();
        async move {
            tokio::time::timeout(Duration::from_secs(60), records.wait_for(id, done))
                .await
                .unwrap_or_else(|_| panic!("{id}: the saga stopped at the restart"))
                .unwrap()
        }
    };
    assert_eq!(wait("flow-before").await.status, SagaStatus::Completed);
    assert_eq!(wait("flow-after").await.status, SagaStatus::Compensated);
    handle.stop().await;
    assert_eq!(cancellations(&client).await.len(), 1);
}
