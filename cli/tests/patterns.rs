//! `eventhub sagas`, `eventhub projections rebuild` and `eventhub consumers reset` against a
//! real nats-server, on sagas and projections run by eventhub-patterns.

mod common;

use std::time::Duration;

use common::Run;
use eventhub::{Client, ConnectOptions, ConsumerOptions, Event, PublishOptions};
use eventhub_catalog::events::{payment, user};
use eventhub_patterns::Recorded;
use eventhub_patterns::projection::{self, Change, ProjectionOptions};
use eventhub_patterns::saga::{self, Saga, SagaOptions, SagaRecord, SagaStatus, Step, StepError};
use eventhub_testkit::NatsServer;

fn eventhub(server: &NatsServer, args: &[&str]) -> Run {
    Run::of(
        common::eventhub()
            .arg("--server")
            .arg(server.client_url())
            .args(args),
    )
}

async fn setup(service: &str) -> (NatsServer, Client) {
    let server = NatsServer::start();
    let client = Client::connect(ConnectOptions::new(service).url(server.client_url()))
        .await
        .expect("connect");
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    (server, client)
}

fn signup(n: u32) -> user::CreatedV2 {
    serde_json::from_value(serde_json::json!({
        "user_id": format!("0190a000-0000-7000-8000-{n:012}"),
        "email": format!("u{n}@example.com"), "locale": "en-GB",
        "created_at": "2026-11-23T10:00:00Z",
    }))
    .unwrap()
}

/// Waits for a payment's outcome for an hour.
struct Checkout;

impl Saga for Checkout {
    const NAME: &'static str = "checkout";
    type State = Vec<String>;

    fn on_event(&self, seen: &Vec<String>, e: &Recorded) -> Result<Step<Vec<String>>, StepError> {
        let mut seen = seen.clone();
        seen.push(e.event_type.clone());
        Ok(match e.event_type.as_str() {
            "payment.created" => Step::running(seen).timeout(Duration::from_secs(3600), "pay"),
            _ => Step::finished(seen, SagaStatus::Completed),
        })
    }

    fn on_timeout(&self, seen: &Vec<String>, _: &str) -> Result<Step<Vec<String>>, StepError> {
        Ok(Step::finished(seen.clone(), SagaStatus::Compensated))
    }
}

async fn payment_event<E: Event>(client: &Client, flow: &str, e: serde_json::Value) {
    let e: E = serde_json::from_value(e).unwrap();
    client
        .publisher()
        .publish_with(&e, PublishOptions::default().correlation_id(flow))
        .await
        .unwrap();
}

const PAYMENT: &str = "0190b8d2-5a8e-7c3e-9d5e-0000000000aa";
const USER: &str = "0190b8d2-5a8e-7c3e-9d5e-1f2a3b4c5d6e";

#[tokio::test]
async fn sagas_list_and_show_read_any_saga_as_json() {
    let (server, client) = setup("checkout").await;
    let handle = saga::start(
        &client,
        Checkout,
        SagaOptions::new(
            payment::CreatedV1::STREAM,
            [
                payment::CreatedV1::SUBJECT,
                payment::StatusChangedV1::SUBJECT,
            ],
        ),
    )
    .await
    .unwrap();
    let created = serde_json::json!({
        "payment_id": PAYMENT, "user_id": USER,
        "amount": {"amount_minor": 1999, "currency": "EUR"}, "method": "card",
        "created_at": "2026-01-02T03:04:05Z"
    });
    payment_event::<payment::CreatedV1>(&client, "flow-open", created.clone()).await;
    payment_event::<payment::CreatedV1>(&client, "flow-done", created).await;
    payment_event::<payment::StatusChangedV1>(
        &client,
        "flow-done",
        serde_json::json!({
            "payment_id": PAYMENT, "from": "authorized", "to": "captured",
            "changed_at": "2026-01-02T03:04:05Z"
        }),
    )
    .await;
    handle
        .records()
        .wait_for("flow-done", |r: &SagaRecord<Vec<String>>| {
            r.status.is_terminal()
        })
        .await
        .unwrap();
    handle
        .records()
        .wait_for("flow-open", |r: &SagaRecord<Vec<String>>| r.step == 1)
        .await
        .unwrap();
    handle.stop().await;
    // A record nobody can read (written by hand, or by a hostile writer) is shown as such.
    client
        .jetstream()
        .get_key_value("SAGA_CHECKOUT")
        .await
        .unwrap()
        .put("junk", "\u{1b}[31mnot json".into())
        .await
        .unwrap();

    let listed = eventhub(&server, &["sagas", "list", "--json"]).ok().json();
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{listed}");
    let by_id = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("flow-done")["status"], "completed");
    assert_eq!(by_id("flow-done")["step"], 2);
    assert_eq!(by_id("flow-done")["timeout"], serde_json::Value::Null);
    assert_eq!(by_id("flow-open")["status"], "running");
    assert_eq!(by_id("flow-open")["timeout"]["token"], "pay");
    assert!(by_id("junk")["error"].is_string());
    let running = eventhub(
        &server,
        &["sagas", "list", "checkout", "--status", "running"],
    )
    .ok();
    assert!(running.stdout.contains("flow-open"), "{}", running.stdout);
    assert!(!running.stdout.contains("flow-done"), "{}", running.stdout);
    let table = eventhub(&server, &["sagas", "list"]).ok();
    assert!(table.stdout.contains("unreadable"), "{}", table.stdout);
    assert!(
        !table.stdout.contains('\u{1b}'),
        "terminal escapes are cleaned"
    );

    let shown = eventhub(&server, &["sagas", "show", "flow-open", "--json"])
        .ok()
        .json();
    assert_eq!(shown["saga"], "checkout");
    assert_eq!(shown["state"], serde_json::json!(["payment.created"]));
    assert_eq!(shown["timer_scheduled"], true, "the server holds its timer");
    assert!(
        shown["history"][0]["input"]
            .as_str()
            .unwrap()
            .starts_with("event payment.created ")
    );
    let text = eventhub(&server, &["sagas", "show", "flow-done"]).ok();
    assert!(
        text.stdout.contains("status:   completed"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("payment.status-changed"),
        "{}",
        text.stdout
    );
    let text = eventhub(&server, &["sagas", "show", "flow-open"]).ok();
    assert!(text.stdout.contains("timeout:  pay at "), "{}", text.stdout);

    eventhub(&server, &["sagas", "show", "nope"]).fails(1, "no saga has an instance nope");
    eventhub(&server, &["sagas", "show", "junk"]).fails(1, "is not a saga record");
    eventhub(&server, &["sagas", "show", "a.b"]).fails(2, "is not a saga instance id");
    eventhub(&server, &["sagas", "list", "Nope"]).fails(2, "is not a saga name");
}

#[tokio::test]
async fn projections_rebuild_empties_the_model_and_it_is_built_again_once() {
    let (server, client) = setup("reports").await;
    let mut last = 0;
    for n in 1..=5 {
        last = client
            .publisher()
            .publish(&signup(n))
            .await
            .unwrap()
            .sequence;
    }
    let count = |client: &Client| {
        let options = ProjectionOptions::new("signups", user::CreatedV2::STREAM)
            .subjects([user::CreatedV2::SUBJECT]);
        let client = client.clone();
        async move {
            projection::start(&client, options, |_event, view| async move {
                let n: u64 = view.get("count").await?.unwrap_or(0);
                Ok(vec![Change::put("count", &(n + 1))?])
            })
            .await
            .unwrap()
        }
    };
    let mut running = count(&client).await;
    running.reached(last).await.unwrap();
    assert_eq!(running.view().get::<u64>("count").await.unwrap(), Some(5));
    running.stop().await.unwrap();

    let out = eventhub(&server, &["projections", "rebuild", "signups", "--json"])
        .ok()
        .json();
    assert_eq!(out["bucket"], "PROJ_signups");
    let mut rebuilt = count(&client).await;
    rebuilt.reached(last).await.unwrap();
    assert_eq!(
        rebuilt.view().get::<u64>("count").await.unwrap(),
        Some(5),
        "rebuilt from scratch: each event counted once"
    );
    rebuilt.stop().await.unwrap();

    // From a sequence: the events before it are not in the new model.
    eventhub(
        &server,
        &["projections", "rebuild", "signups", "--from", "4"],
    )
    .ok();
    let mut partial = count(&client).await;
    partial.reached(last).await.unwrap();
    assert_eq!(partial.view().get::<u64>("count").await.unwrap(), Some(2));
    partial.stop().await.unwrap();

    eventhub(&server, &["projections", "rebuild", "signpus"]).fails(1, "no projection signpus");
    assert!(
        client
            .jetstream()
            .get_key_value("PROJ_signpus")
            .await
            .is_err(),
        "a typo creates nothing"
    );
    eventhub(
        &server,
        &["projections", "rebuild", "signups", "--from", "0"],
    )
    .fails(2, "sequences start at 1");
}

#[tokio::test]
async fn consumers_reset_moves_a_durable_back_to_a_sequence_or_a_time() {
    let (server, client) = setup("payments").await;
    let mut sequences = Vec::new();
    for n in 1..=5 {
        sequences.push(
            client
                .publisher()
                .publish(&signup(n))
                .await
                .unwrap()
                .sequence,
        );
    }
    let consume = |client: &Client| {
        let client = client.clone();
        async move {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            let handle = client
                .consumer::<user::CreatedV2>(
                    ConsumerOptions::default().fetch_expires(Duration::from_millis(300)),
                )
                .await
                .unwrap()
                .spawn(move |env| {
                    let _ = tx.send(env.email.clone());
                    async { Ok(()) }
                });
            (handle, rx)
        }
    };
    let received = |mut rx: tokio::sync::mpsc::UnboundedReceiver<String>, n: usize| async move {
        let mut got = Vec::new();
        while got.len() < n {
            got.push(
                tokio::time::timeout(Duration::from_secs(10), rx.recv())
                    .await
                    .expect("delivered")
                    .unwrap(),
            );
        }
        got
    };
    let (handle, rx) = consume(&client).await;
    assert_eq!(received(rx, 5).await.len(), 5);
    handle.shutdown().await;
    let stream = client.jetstream().get_stream("IDENTITY").await.unwrap();
    let acked = |stream: async_nats::jetstream::stream::Stream| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let info = stream
                .consumer_info("payments__user_created")
                .await
                .unwrap();
            if info.num_ack_pending == 0 {
                return info;
            }
            assert!(tokio::time::Instant::now() < deadline, "{info:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(acked(stream.clone()).await.num_pending, 0);

    let third = sequences[2].to_string();
    let out = eventhub(
        &server,
        &[
            "consumers",
            "reset",
            "payments__user_created",
            "--to",
            &third,
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(out["stream"], "IDENTITY");
    assert_eq!(out["pending"], 3, "{out}");
    let (handle, rx) = consume(&client).await;
    assert_eq!(
        received(rx, 3).await,
        ["u3@example.com", "u4@example.com", "u5@example.com"]
    );
    handle.shutdown().await;
    acked(stream.clone()).await;

    // By time: an hour ago is before every event.
    let out = eventhub(
        &server,
        &[
            "consumers",
            "reset",
            "payments__user_created",
            "--to",
            "1h",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(out["next_sequence"], sequences[0], "{out}");
    assert_eq!(out["pending"], 5, "{out}");

    eventhub(&server, &["consumers", "reset", "nobody", "--to", "1"])
        .fails(1, "no stream has a consumer named nobody");
    eventhub(
        &server,
        &[
            "consumers",
            "reset",
            "payments__user_created",
            "--to",
            "soon",
        ],
    )
    .fails(2, "neither a stream sequence");
}
