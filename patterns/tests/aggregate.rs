//! Event-sourced aggregates against a real nats-server.

mod common;

use std::sync::Arc;

use common::*;
use eventhub::Consumable;
use eventhub_catalog::events::user;
use eventhub_patterns::aggregate::aggregate_subject;
use eventhub_patterns::{
    Aggregate, AppendError, DomainEvent, EncodeError, Encoded, EventStore, Recorded, StoreOptions,
};
use tokio::sync::Barrier;

fn no_snapshots() -> StoreOptions {
    StoreOptions::default().snapshot_every(None)
}

#[tokio::test]
async fn eight_concurrent_writers_one_wins_each_round_and_the_state_is_a_sequential_replay() {
    const WRITERS: usize = 8;
    const ROUNDS: usize = 10;
    let server = NatsServer::start();
    let client = connect(&server, "accounts").await;
    let store = EventStore::<User>::open(&client, no_snapshots())
        .await
        .unwrap();
    store
        .append("u1", 0, &[created_v2("ada@example.com")])
        .await
        .unwrap();

    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        // Each writer its own connection, like separate instances of a service.
        let client = connect(&server, "accounts").await;
        let store = EventStore::<User>::open(&client, no_snapshots())
            .await
            .unwrap();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for round in 0..ROUNDS {
                let loaded = store.load("u1").await.unwrap();
                // Everyone has loaded the same version before anyone appends.
                barrier.wait().await;
                let name = format!("w{w}-r{round}");
                let result = store.append("u1", loaded.version, &[renamed(&name)]).await;
                let outcome = match result {
                    Ok(version) => {
                        assert!(version > loaded.version);
                        Ok(name)
                    }
                    Err(AppendError::Conflict {
                        expected, actual, ..
                    }) => {
                        assert_eq!(expected, loaded.version);
                        assert!(actual > expected, "conflict at {actual} <= {expected}");
                        Err(())
                    }
                    Err(other) => panic!("writer {w} round {round}: {other}"),
                };
                outcomes.push(outcome);
                // Every append of this round is done before the next round loads.
                barrier.wait().await;
            }
            outcomes
        }));
    }
    let mut per_writer = Vec::new();
    for t in tasks {
        per_writer.push(t.await.unwrap());
    }
    let mut winners = Vec::new();
    for round in 0..ROUNDS {
        let won: Vec<&String> = per_writer
            .iter()
            .filter_map(|o| o[round].as_ref().ok())
            .collect();
        assert_eq!(won.len(), 1, "round {round}: winners {won:?}");
        winners.push(won[0].clone());
    }

    let mut sequential = User::default();
    sequential.apply(created_v2("ada@example.com"));
    for name in &winners {
        sequential.apply(renamed(name));
    }
    let loaded = store.load("u1").await.unwrap();
    assert_eq!(loaded.state, sequential);
    assert_eq!(loaded.events, 1 + ROUNDS as u64);
    assert_eq!(loaded.state.names, winners);
}

#[tokio::test]
async fn several_events_append_atomically_and_a_stale_batch_stores_nothing() {
    let server = NatsServer::start();
    let client = connect(&server, "accounts").await;
    let store = EventStore::<User>::open(&client, no_snapshots())
        .await
        .unwrap();
    let v = store
        .append(
            "u2",
            0,
            &[created_v2("a@example.com"), renamed("a"), renamed("b")],
        )
        .await
        .unwrap();
    let loaded = store.load("u2").await.unwrap();
    assert_eq!((loaded.version, loaded.events), (v, 3));
    assert_eq!(loaded.state.names, ["a", "b"]);

    let err = store
        .append("u2", 0, &[renamed("stale-1"), renamed("stale-2")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::Conflict { expected: 0, actual, .. } if actual == v),
        "{err}"
    );
    // A new aggregate expects 0; an existing one anything but its version conflicts.
    let err = store
        .append("u2", v - 1, &[renamed("x")])
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::Conflict { .. }), "{err}");
    let again = store.load("u2").await.unwrap();
    assert_eq!(again, loaded, "a refused append stored something");
}

#[tokio::test]
async fn loads_with_and_without_snapshots_give_the_same_state() {
    let server = NatsServer::start();
    let client = connect(&server, "accounts").await;
    let store = EventStore::<User>::open(&client, StoreOptions::default().snapshot_every(Some(5)))
        .await
        .unwrap();
    let mut version = store
        .append("u3", 0, &[created_v2("s@example.com")])
        .await
        .unwrap();
    for i in 0..22 {
        version = store
            .append("u3", version, &[renamed(&format!("n{i}"))])
            .await
            .unwrap();
    }
    let first = store.load("u3").await.unwrap();
    assert_eq!(first.snapshot, None, "no snapshot existed yet");
    assert_eq!(first.events, 23);
    for i in 22..25 {
        version = store
            .append("u3", version, &[renamed(&format!("n{i}"))])
            .await
            .unwrap();
    }
    let from_snapshot = store.load("u3").await.unwrap();
    assert_eq!(
        from_snapshot.snapshot,
        Some(first.version),
        "the load wrote no snapshot"
    );
    let from_events = store.load_from_events("u3").await.unwrap();
    assert_eq!(from_events.snapshot, None);
    assert_eq!(from_snapshot.state, from_events.state);
    assert_eq!(from_snapshot.version, from_events.version);
    assert_eq!(from_snapshot.events, 26);
    assert_eq!(from_events.events, 26);
    assert_eq!(from_events.version, version);

    // A store without snapshots reads the same history.
    let plain = EventStore::<User>::open(&client, no_snapshots())
        .await
        .unwrap();
    assert_eq!(plain.load("u3").await.unwrap().state, from_events.state);
}

#[tokio::test]
async fn a_long_history_loads_in_several_batches_interleaved_with_other_aggregates() {
    let server = NatsServer::start();
    let client = connect(&server, "users").await;
    let store = EventStore::<User>::open(&client, no_snapshots())
        .await
        .unwrap();
    // 2,500 events in atomic batches of 100, another aggregate's events between them: the
    // load reads past one batched direct get (1,024 events) and skips what is not its own.
    let (mut version, mut other) = (0, 0);
    for round in 0..25 {
        let events: Vec<UserEvent> = (0..100)
            .map(|i| renamed(&format!("n{}", round * 100 + i)))
            .collect();
        version = store.append("long", version, &events).await.unwrap();
        other = store.append("other", other, &[renamed("x")]).await.unwrap();
    }
    let loaded = store.load("long").await.unwrap();
    assert_eq!(loaded.version, version);
    assert_eq!(loaded.events, 2_500);
    let expected: Vec<String> = (0..2_500).map(|i| format!("n{i}")).collect();
    assert_eq!(loaded.state.names, expected);
}

/// What an older build of the service wrote: `user.created` v1.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct OldUser;

#[derive(Debug)]
struct OldCreated(user::CreatedV1);

impl DomainEvent for OldCreated {
    fn encode(&self) -> Result<Encoded, EncodeError> {
        Encoded::of(&self.0)
    }
    fn decode(r: &Recorded) -> Option<Result<Self, eventhub::error::DecodeError>> {
        Some(user::CreatedV1::decode(r.version, &r.raw()).map(OldCreated))
    }
}

impl Aggregate for OldUser {
    const TYPE: &'static str = "user";
    type Event = OldCreated;
    fn apply(&mut self, _: OldCreated) {}
}

#[tokio::test]
async fn a_v1_event_is_upcast_on_load() {
    let server = NatsServer::start();
    let client = connect(&server, "accounts").await;
    let old = EventStore::<OldUser>::open(&client, no_snapshots())
        .await
        .unwrap();
    let v1: user::CreatedV1 = serde_json::from_value(serde_json::json!({
        "user_id": USER_ID, "email": "old@example.com", "display_name": "Old",
        "created_at": "2025-01-02T03:04:05Z"
    }))
    .unwrap();
    let version = old.append("u4", 0, &[OldCreated(v1)]).await.unwrap();
    // Stored as v1, on the aggregate's subject.
    let stored = client
        .jetstream()
        .get_stream("ES_USER")
        .await
        .unwrap()
        .direct_get_last_for_subject(aggregate_subject("user", "u4"))
        .await
        .unwrap();
    assert_eq!(
        stored.headers.get("eventhub-version").unwrap().as_str(),
        "1"
    );

    let store = EventStore::<User>::open(&client, no_snapshots())
        .await
        .unwrap();
    store
        .append("u4", version, &[renamed("New")])
        .await
        .unwrap();
    let loaded = store.load("u4").await.unwrap();
    assert_eq!(loaded.state.email.as_deref(), Some("old@example.com"));
    // The catalog's v1 -> v2 conversion gives an undetermined locale.
    assert_eq!(loaded.state.locale.as_deref(), Some("und"));
    assert_eq!(loaded.state.names, ["New"]);
}

#[tokio::test]
async fn invalid_ids_and_invalid_events_store_nothing() {
    let server = NatsServer::start();
    let client = connect(&server, "accounts").await;
    let store = EventStore::<User>::open(&client, no_snapshots())
        .await
        .unwrap();
    for id in ["a.b", "a*", "es.>", "", "a b"] {
        let err = store.append(id, 0, &[renamed("x")]).await.unwrap_err();
        assert!(matches!(err, AppendError::InvalidId(_)), "{id}: {err}");
    }
    let mut bad = created_v2("not-an-email");
    if let UserEvent::Created(e) = &mut bad {
        e.email = "not an email".into();
    }
    let err = store.append("u5", 0, &[bad]).await.unwrap_err();
    assert!(
        matches!(err, AppendError::Encode(EncodeError::Invalid { .. })),
        "{err}"
    );
    assert_eq!(store.load("u5").await.unwrap().version, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_during_appends_loses_and_duplicates_nothing() {
    const EVENTS: u64 = 150;
    let mut server = NatsServer::start();
    let client = connect(&server, "accounts").await;
    let store = EventStore::<User>::open(&client, no_snapshots())
        .await
        .unwrap();
    let (appended, progress) = std::sync::mpsc::channel::<u64>();

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut version = store
                .append("u6", 0, &[created_v2("r@example.com")])
                .await
                .unwrap();
            for i in 0..EVENTS {
                version = store
                    .append("u6", version, &[renamed(&format!("e{i}"))])
                    .await
                    .unwrap_or_else(|e| panic!("append e{i}: {e}"));
                let _ = appended.send(i + 1);
            }
        })
    };
    // Restart twice while the writer is mid-way, from a blocking thread (the harness waits).
    let restarts = tokio::task::spawn_blocking(move || {
        for at in [30, 90] {
            while progress.recv().expect("the writer stopped early") < at {}
            server.restart();
        }
        server
    });
    let _server = restarts.await.unwrap();
    writer.await.unwrap();

    let loaded = store.load("u6").await.unwrap();
    let expected: Vec<String> = (0..EVENTS).map(|i| format!("e{i}")).collect();
    assert_eq!(
        loaded.state.names, expected,
        "an event was lost or stored twice"
    );
    assert_eq!(loaded.events, EVENTS + 1);
    // The load read through a consumer (too many events for direct reads) and removed it.
    let mut stream = client.jetstream().get_stream("ES_USER").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_decides_again_on_a_conflict_until_every_command_is_applied() {
    let server = NatsServer::start();
    let client = connect(&server, "accounts").await;
    let store = EventStore::<User>::open(&client, no_snapshots())
        .await
        .unwrap();
    store
        .append("u7", 0, &[created_v2("x@example.com")])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                let name = format!("w{w}-{i}");
                store
                    .execute("u7", 100, |user: &User| {
                        // A command refused by the state: a name is taken once.
                        if user.names.contains(&name) {
                            return Err("taken");
                        }
                        Ok(vec![renamed(&name)])
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let loaded = store.load("u7").await.unwrap();
    assert_eq!(loaded.state.names.len(), 20);
    let err = store
        .execute("u7", 3, |_: &User| Err::<Vec<UserEvent>, _>("refused"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        eventhub_patterns::ExecuteError::Rejected("refused")
    ));
}
