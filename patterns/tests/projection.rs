//! Projections against a real nats-server.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use eventhub::{Client, Consumable, ConsumerOptions, Event, StartFrom};
use eventhub_catalog::{TOPOLOGY, events::user};
use eventhub_patterns::Recorded;
use eventhub_patterns::projection::{
    self, Change, ProjectError, ProjectionError, ProjectionOptions, View,
};

const USERS: [&str; 3] = [
    "0190b8d2-5a8e-7c3e-9d5e-000000000001",
    "0190b8d2-5a8e-7c3e-9d5e-000000000002",
    "0190b8d2-5a8e-7c3e-9d5e-000000000003",
];

fn rename(user: &str, name: &str) -> user::UpdatedV1 {
    serde_json::from_value(serde_json::json!({
        "user_id": user, "changed_fields": ["display_name"], "display_name": name,
        "updated_at": "2026-01-02T03:04:05Z"
    }))
    .unwrap()
}

/// Publishes `n` renames round-robin over the users; the last stream sequence.
async fn publish(client: &Client, from: usize, n: usize) -> u64 {
    let publisher = client.publisher();
    let mut last = 0;
    for i in from..from + n {
        let receipt = publisher
            .publish(&rename(USERS[i % USERS.len()], &format!("n{i}")))
            .await
            .unwrap();
        last = receipt.sequence;
    }
    last
}

/// Renames per user and each user's last name: a read-modify-write, so an event applied twice
/// shows as a count too high.
async fn renames(event: Recorded, view: View) -> Result<Vec<Change>, ProjectError> {
    let e = user::UpdatedV1::decode(event.version, &event.raw())
        .map_err(|e| ProjectError::new(e.to_string()))?;
    let user = e.user_id.0;
    let count_key = format!("renames.{user}");
    let n: u64 = view.get(&count_key).await?.unwrap_or(0);
    let name = e.display_name.map(String::from).unwrap_or_default();
    Ok(vec![
        Change::put(count_key, &(n + 1))?,
        Change::put(format!("name.{user}"), &name)?,
    ])
}

fn options() -> ProjectionOptions {
    ProjectionOptions::new("renames", user::UpdatedV1::STREAM).subjects([user::UpdatedV1::SUBJECT])
}

async fn dump(view: &View) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for key in view.keys().await.unwrap() {
        out.insert(key.clone(), view.get(&key).await.unwrap().unwrap());
    }
    out
}

async fn setup() -> (NatsServer, Client) {
    let server = NatsServer::start();
    let client = connect(&server, "profiles").await;
    client.provision(&TOPOLOGY).await.unwrap();
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_killed_mid_way_resumes_without_applying_an_event_twice() {
    let (_server, client) = setup().await;
    let last = publish(&client, 0, 300).await;
    for kill_at in [37, 151, 222] {
        let mut handle = projection::start(&client, options(), renames)
            .await
            .unwrap();
        handle.reached(kill_at).await.unwrap();
        // Killed wherever it is: in the handler, between handler and write, mid-write.
        handle.abort();
    }
    let mut handle = projection::start(&client, options(), renames)
        .await
        .unwrap();
    handle.reached(last).await.unwrap();
    let model = dump(handle.view()).await;
    for user in USERS {
        assert_eq!(model[&format!("renames.{user}")], 100, "{user}: {model:?}");
    }
    assert_eq!(model[&format!("name.{}", USERS[2])], "n299");
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn a_rebuild_gives_the_same_read_model_and_can_start_at_a_sequence_or_a_time() {
    let (_server, client) = setup().await;
    let last = publish(&client, 0, 60).await;
    let mut handle = projection::start(&client, options(), renames)
        .await
        .unwrap();
    handle.reached(last).await.unwrap();
    let before = dump(handle.view()).await;
    handle.stop().await.unwrap();

    projection::rebuild(&client, "renames", user::UpdatedV1::STREAM, StartFrom::All)
        .await
        .unwrap();
    let mut handle = projection::start(&client, options(), renames)
        .await
        .unwrap();
    handle.reached(last).await.unwrap();
    assert_eq!(dump(handle.view()).await, before);
    handle.stop().await.unwrap();

    // From a sequence: the last 9 events only (3 per user).
    projection::rebuild(
        &client,
        "renames",
        user::UpdatedV1::STREAM,
        StartFrom::Sequence(last - 8),
    )
    .await
    .unwrap();
    let mut handle = projection::start(&client, options(), renames)
        .await
        .unwrap();
    handle.reached(last).await.unwrap();
    let model = dump(handle.view()).await;
    for user in USERS {
        assert_eq!(model[&format!("renames.{user}")], 3, "{model:?}");
    }
    handle.stop().await.unwrap();

    // From a time: only what was stored after it.
    // Just after the last event stored so far, by the server's clock.
    let stored = client
        .jetstream()
        .get_stream(user::UpdatedV1::STREAM)
        .await
        .unwrap()
        .get_raw_message(last)
        .await
        .unwrap()
        .time;
    let cut = stored + chrono::Duration::nanoseconds(1);
    let last = publish(&client, 60, 6).await;
    projection::rebuild(
        &client,
        "renames",
        user::UpdatedV1::STREAM,
        StartFrom::Time(cut),
    )
    .await
    .unwrap();
    let mut handle = projection::start(&client, options(), renames)
        .await
        .unwrap();
    handle.reached(last).await.unwrap();
    let model = dump(handle.view()).await;
    for user in USERS {
        assert_eq!(model[&format!("renames.{user}")], 2, "{model:?}");
    }
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn a_second_instance_of_a_projection_is_fenced_off() {
    let (_server, client) = setup().await;
    // Both read the same (absent) checkpoint before any event exists.
    let mut a = projection::start(&client, options(), renames)
        .await
        .unwrap();
    let mut b = projection::start(&client, options(), renames)
        .await
        .unwrap();
    let last = publish(&client, 0, 30).await;
    let (ra, rb) = tokio::join!(a.reached(last), b.reached(last));
    let fenced = [&ra, &rb]
        .iter()
        .filter(|r| matches!(r, Err(ProjectionError::Fenced { .. })))
        .count();
    assert_eq!(fenced, 1, "{ra:?} {rb:?}");
    let survivor = if ra.is_ok() { a } else { b };
    let model = dump(survivor.view()).await;
    for user in USERS {
        assert_eq!(model[&format!("renames.{user}")], 10, "{model:?}");
    }
}

#[tokio::test]
async fn sdk_consumers_start_at_a_sequence() {
    let (_server, client) = setup().await;
    let last = publish(&client, 0, 10).await;
    let (seen, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = client
        .consumer::<user::UpdatedV1>(
            ConsumerOptions::default()
                .name("from_seq")
                .start_from(StartFrom::Sequence(last - 2)),
        )
        .await
        .unwrap()
        .spawn(move |env| {
            let seen = seen.clone();
            async move {
                let _ = seen.send(env.meta().sequence);
                Ok(())
            }
        });
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(seen_rx.recv().await.unwrap());
    }
    got.sort();
    assert_eq!(got, [last - 2, last - 1, last]);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_resumes_across_a_server_restart_without_losing_or_repeating_an_event() {
    let (mut server, client) = setup().await;
    let last = publish(&client, 0, 300).await;
    let mut handle = projection::start(&client, options().checkpoint_every(1), renames)
        .await
        .unwrap();
    handle.reached(60).await.unwrap();
    // Restarted while it applies events (the harness blocks until the server is back).
    let mut server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(60), handle.reached(last))
        .await
        .expect("the projection did not resume after the restart")
        .unwrap();
    // And once more with the projection idle, then new events.
    server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    let last = publish(&client, 300, 30).await;
    tokio::time::timeout(Duration::from_secs(60), handle.reached(last))
        .await
        .expect("the projection did not resume after the second restart")
        .unwrap();
    let model = dump(handle.view()).await;
    for user in USERS {
        assert_eq!(model[&format!("renames.{user}")], 110, "{user}: {model:?}");
    }
    assert_eq!(model[&format!("name.{}", USERS[2])], "n329");
    handle.stop().await.unwrap();
    drop(server);
}
