//! Durable consumers: delivery to services and instances, retries, panics, timeouts, stops,
//! shutdown, restarts, correlation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use eventhub::Backoff;
use eventhub::ConsumerOptions;
use eventhub::HandlerError;
use eventhub::PublishOptions;
use eventhub_catalog::events::{payment, user};
use tokio::sync::{Notify, mpsc};

use crate::support::{
    capture_logs, connect, consumer_counts, next, quick, record, server_and_client, user_created_v2,
};

/// What a handler saw of one delivery.
#[derive(Debug, Clone)]
struct Seen {
    id: String,
    delivered: u64,
    at: Instant,
}

fn seen<E>(env: &eventhub::Envelope<E>) -> Seen {
    Seen {
        id: env.meta().id.clone(),
        delivered: env.meta().delivered,
        at: Instant::now(),
    }
}

#[tokio::test]
async fn two_services_each_handle_every_event_once_and_instances_share_the_work() {
    let (server, auth) = server_and_client("auth").await;
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut published = BTreeSet::new();
    for i in 0..20 {
        let r = auth
            .publisher()
            .publish(&user_created_v2(&format!("u{i}@example.com")))
            .await
            .unwrap();
        published.insert(r.id);
    }
    // The same event id twice inside the duplicate window: stored once.
    let again = auth
        .publisher()
        .publish_with(
            &user_created_v2("dup@example.com"),
            PublishOptions::default().id(published.first().unwrap().clone()),
        )
        .await
        .unwrap();
    assert!(again.duplicate, "a repeated event id is flagged duplicate");

    // profile: one instance. payments: two instances of one durable, one event at a time each;
    // instance A holds its first event until instance B has handled one, so both must work.
    let profile = connect(&server, "profile").await;
    let (profile_handle, mut prx) = record::<user::Created, _>(&profile, quick(), seen).await;

    let payments = connect(&server, "payments").await;
    let one_at_a_time = || quick().concurrency(1).prefetch(0);
    let b_handled = Arc::new(Notify::new());
    let (atx, mut arx) = mpsc::unbounded_channel();
    let (btx, mut brx) = mpsc::unbounded_channel();
    let wait_for_b = b_handled.clone();
    let a_first = Arc::new(AtomicUsize::new(0));
    let a = payments
        .consumer::<user::Created>(one_at_a_time())
        .await
        .unwrap()
        .spawn(move |env| {
            let (atx, wait_for_b, a_first) = (atx.clone(), wait_for_b.clone(), a_first.clone());
            async move {
                if a_first.fetch_add(1, Ordering::SeqCst) == 0 {
                    wait_for_b.notified().await;
                }
                atx.send(seen(&env)).unwrap();
                Ok(())
            }
        });
    let payments_b = connect(&server, "payments").await;
    let notify_a = b_handled.clone();
    let b = payments_b
        .consumer::<user::Created>(one_at_a_time())
        .await
        .unwrap()
        .spawn(move |env| {
            let (btx, notify_a) = (btx.clone(), notify_a.clone());
            async move {
                btx.send(seen(&env)).unwrap();
                notify_a.notify_one();
                Ok(())
            }
        });
    assert_eq!(a.name(), "payments__user_created");
    assert_eq!(b.name(), "payments__user_created");
    assert_eq!(profile_handle.name(), "profile__user_created");

    let mut profile_ids = Vec::new();
    for _ in 0..20 {
        profile_ids.push(next(&mut prx, 10).await.id);
    }
    let (mut by_a, mut by_b) = (Vec::new(), Vec::new());
    while by_a.len() + by_b.len() < 20 {
        tokio::select! {
            s = next(&mut arx, 10) => by_a.push(s.id),
            s = next(&mut brx, 10) => by_b.push(s.id),
        }
    }
    let pa = profile_handle.shutdown().await;
    let sa = a.shutdown().await;
    let sb = b.shutdown().await;

    assert_eq!(
        profile_ids.iter().cloned().collect::<BTreeSet<_>>(),
        published
    );
    assert_eq!(profile_ids.len(), 20, "each event once for profile");
    assert_eq!(pa.handled, 20);
    assert!(
        !by_a.is_empty() && !by_b.is_empty(),
        "a: {by_a:?}, b: {by_b:?}"
    );
    let mut all: Vec<_> = by_a.iter().chain(&by_b).cloned().collect();
    all.sort();
    assert_eq!(all.len(), 20, "no event handled by both instances");
    assert_eq!(all.into_iter().collect::<BTreeSet<_>>(), published);
    assert_eq!(sa.handled + sb.handled, 20);
    for name in ["payments__user_created", "profile__user_created"] {
        assert_eq!(
            consumer_counts(&auth, "IDENTITY", name).await,
            (0, 0),
            "{name}: nothing pending or unacked"
        );
    }
}

#[tokio::test]
async fn a_retryable_failure_is_redelivered_after_the_backoff_then_acked() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let delays = [Duration::from_millis(300), Duration::from_millis(700)];
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = client
        .consumer::<user::CreatedV2>(quick().backoff(Backoff::schedule(delays)))
        .await
        .unwrap()
        .spawn(move |env| {
            let tx = tx.clone();
            async move {
                let s = seen(&env);
                let attempt = s.delivered;
                tx.send(s).unwrap();
                if attempt < 3 {
                    return Err(HandlerError::retry(format!("attempt {attempt}: db busy")));
                }
                Ok(())
            }
        });
    client
        .publisher()
        .publish(&user_created_v2("a@example.com"))
        .await
        .unwrap();
    let attempts = [
        next(&mut rx, 10).await,
        next(&mut rx, 10).await,
        next(&mut rx, 10).await,
    ];
    let stats = handle.shutdown().await;

    assert_eq!(
        attempts.iter().map(|s| s.delivered).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let tolerance = Duration::from_millis(1000);
    for (i, want) in delays.iter().enumerate() {
        let gap = attempts[i + 1].at - attempts[i].at;
        assert!(
            gap >= *want && gap < *want + tolerance,
            "retry {} came after {gap:?}, configured {want:?}",
            i + 1
        );
    }
    assert_eq!(
        (stats.retried, stats.handled, stats.dead_lettered),
        (2, 1, 0)
    );
    assert_eq!(
        consumer_counts(&client, "IDENTITY", "profile__user_created").await,
        (0, 0)
    );
}

#[tokio::test]
async fn a_panicking_handler_is_retried_and_the_consumer_lives_on() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = client
        .consumer::<user::CreatedV2>(quick().concurrency(1))
        .await
        .unwrap()
        .spawn(move |env| {
            let tx = tx.clone();
            async move {
                if env.email == "boom@example.com" && env.meta().delivered == 1 {
                    panic!("simulated bug in the handler");
                }
                tx.send((env.email.clone(), env.meta().delivered)).unwrap();
                Ok(())
            }
        });
    let p = client.publisher();
    p.publish(&user_created_v2("boom@example.com"))
        .await
        .unwrap();
    p.publish(&user_created_v2("fine@example.com"))
        .await
        .unwrap();
    let mut got = BTreeMap::new();
    for _ in 0..2 {
        let (email, delivered) = next(&mut rx, 10).await;
        got.insert(email, delivered);
    }
    let stats = handle.shutdown().await;
    assert_eq!(got["boom@example.com"], 2, "handled on the retry");
    assert_eq!(got["fine@example.com"], 1);
    assert_eq!((stats.panics, stats.retried, stats.handled), (1, 1, 2));
}

#[tokio::test]
async fn a_handler_over_its_timeout_is_cancelled_and_retried() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = client
        .consumer::<user::CreatedV2>(quick().handler_timeout(Some(Duration::from_millis(200))))
        .await
        .unwrap()
        .spawn(move |env| {
            let tx = tx.clone();
            async move {
                if env.meta().delivered == 1 {
                    std::future::pending::<()>().await;
                }
                tx.send(env.meta().delivered).unwrap();
                Ok(())
            }
        });
    client
        .publisher()
        .publish(&user_created_v2("slow@example.com"))
        .await
        .unwrap();
    assert_eq!(next(&mut rx, 10).await, 2);
    let stats = handle.shutdown().await;
    assert_eq!((stats.timeouts, stats.retried, stats.handled), (1, 1, 1));
}

#[tokio::test]
async fn a_long_handler_keeps_its_event_with_in_progress_acks() {
    let (_server, client) = server_and_client("photo").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = client
        .consumer::<user::CreatedV2>(quick().ack_wait(Duration::from_millis(500)))
        .await
        .unwrap()
        .spawn(move |env| {
            let tx = tx.clone();
            async move {
                // Work lasting five ack waits.
                tokio::time::sleep(Duration::from_millis(2500)).await;
                tx.send(env.meta().delivered).unwrap();
                Ok(())
            }
        });
    client
        .publisher()
        .publish(&user_created_v2("big@example.com"))
        .await
        .unwrap();
    assert_eq!(next(&mut rx, 10).await, 1);
    let stats = handle.shutdown().await;
    assert_eq!(stats.received, 1, "never redelivered while in progress");
    assert_eq!(stats.handled, 1);
}

#[tokio::test]
async fn events_waiting_for_a_busy_handler_are_kept_alive_too() {
    let (server, client) = server_and_client("photo").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let options = quick()
        .ack_wait(Duration::from_millis(500))
        .concurrency(1)
        .prefetch(2);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let busy = {
        let tx = tx.clone();
        client
            .consumer::<user::CreatedV2>(options.clone())
            .await
            .unwrap()
            .spawn(move |env| {
                let tx = tx.clone();
                async move {
                    // The first event keeps the only handler busy for five ack waits; the
                    // others wait for it, fetched.
                    if env.email.starts_with("first") {
                        tokio::time::sleep(Duration::from_millis(2500)).await;
                    }
                    tx.send(("busy", env.email.clone(), env.meta().delivered))
                        .unwrap();
                    Ok(())
                }
            })
    };
    let publisher = client.publisher();
    for who in ["first", "second", "third"] {
        publisher
            .publish(&user_created_v2(&format!("{who}@example.com")))
            .await
            .unwrap();
    }
    while busy.stats().received < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A second, idle instance: an event the busy one let expire would be redelivered to it.
    let other = connect(&server, "photo").await;
    let idle = other
        .consumer::<user::CreatedV2>(options)
        .await
        .unwrap()
        .spawn(move |env| {
            tx.send(("idle", env.email.clone(), env.meta().delivered))
                .unwrap();
            async { Ok(()) }
        });
    for who in ["first", "second", "third"] {
        assert_eq!(
            next(&mut rx, 10).await,
            ("busy", format!("{who}@example.com"), 1)
        );
    }
    assert_eq!(idle.shutdown().await.received, 0, "nothing was redelivered");
    let stats = busy.shutdown().await;
    assert_eq!((stats.received, stats.handled), (3, 3));
}

#[tokio::test]
async fn a_consumer_stopped_mid_handling_leaves_the_event_for_the_next_one() {
    let (server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let options = || quick().ack_wait(Duration::from_secs(1));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let crashed = client
        .consumer::<user::CreatedV2>(options())
        .await
        .unwrap()
        .spawn(move |env| {
            let started_tx = started_tx.clone();
            async move {
                started_tx.send(env.meta().id.clone()).unwrap();
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    let receipt = client
        .publisher()
        .publish(&user_created_v2("crash@example.com"))
        .await
        .unwrap();
    assert_eq!(next(&mut started, 10).await, receipt.id);
    crashed.abort();

    let again = connect(&server, "profile").await;
    let (handle, mut rx) = record::<user::CreatedV2, _>(&again, options(), seen).await;
    let s = next(&mut rx, 10).await;
    assert_eq!((s.id.as_str(), s.delivered), (receipt.id.as_str(), 2));
    assert_eq!(handle.shutdown().await.handled, 1);
    assert_eq!(
        consumer_counts(&client, "IDENTITY", "profile__user_created").await,
        (0, 0)
    );
}

/// A shutdown while a burst is still arriving: whatever reached the consumer is accounted for,
/// as handled or returned, and nothing is counted twice.
#[tokio::test]
async fn a_shutdown_mid_burst_accounts_for_every_event_received() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut pipeline = client.publisher().pipeline(512);
    for i in 0..300 {
        pipeline
            .send(&user_created_v2(&format!("b{i}@example.com")))
            .await
            .unwrap();
    }
    assert!(pipeline.finish().await.failures.is_empty());
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let handle = client
        .consumer::<user::CreatedV2>(quick().concurrency(1).prefetch(299))
        .await
        .unwrap()
        .spawn(move |_env| {
            let started_tx = started_tx.clone();
            async move {
                started_tx.send(()).unwrap();
                Ok(())
            }
        });
    next(&mut started, 10).await;
    let stats = handle.shutdown().await;
    assert!(stats.received > 0);
    assert_eq!(
        stats.handled + stats.returned,
        stats.received,
        "every event received was handled or handed back: {stats:?}"
    );
}

#[tokio::test]
async fn graceful_shutdown_lets_running_handlers_finish_and_leaves_nothing_unacked() {
    let (server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut published = BTreeSet::new();
    for i in 0..10 {
        let r = client
            .publisher()
            .publish(&user_created_v2(&format!("s{i}@example.com")))
            .await
            .unwrap();
        published.insert(r.id);
    }
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let handle = client
        .consumer::<user::CreatedV2>(quick().concurrency(3).prefetch(4))
        .await
        .unwrap()
        .spawn(move |env| {
            let (started_tx, f) = (started_tx.clone(), f.clone());
            async move {
                started_tx.send(env.meta().id.clone()).unwrap();
                tokio::time::sleep(Duration::from_millis(400)).await; // the work
                f.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
    let mut first = BTreeSet::new();
    for _ in 0..3 {
        first.insert(next(&mut started, 10).await);
    }
    // The counts below need every prefetched event to have arrived (3 running + 4 waiting): one
    // still on its way at shutdown is not returned but redelivered after the ack wait.
    let all_arrived = async {
        while handle.stats().received < 7 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all_arrived)
        .await
        .expect("7 events (3 handlers + 4 prefetched) arrive");
    let stats = handle.shutdown().await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        3,
        "running handlers completed"
    );
    assert_eq!(stats.handled, 3);
    assert_eq!(stats.returned + stats.handled, stats.received);
    // Fetched events that never started were handed back (Nak), not left to time out: the
    // server holds them for immediate redelivery, and nothing else is outstanding.
    assert_eq!(
        stats.returned, 4,
        "prefetched beyond the 3 running handlers"
    );
    let (ack_pending, pending) =
        consumer_counts(&client, "IDENTITY", "profile__user_created").await;
    assert_eq!((ack_pending as u64, pending), (stats.returned, 3));

    // The rest is handled by the next run, exactly once, long before the 30 s ack wait could
    // have released the handed-back events.
    let restarted_at = Instant::now();
    let next_run = connect(&server, "profile").await;
    let (handle, mut rx) =
        record::<user::CreatedV2, _>(&next_run, quick(), |env| env.meta().id.clone()).await;
    let mut rest = BTreeSet::new();
    for _ in 0..7 {
        rest.insert(next(&mut rx, 10).await);
    }
    assert!(restarted_at.elapsed() < Duration::from_secs(10));
    assert_eq!(handle.shutdown().await.handled, 7);
    assert!(first.is_disjoint(&rest));
    assert_eq!(
        first.union(&rest).cloned().collect::<BTreeSet<_>>(),
        published
    );
}

#[tokio::test]
async fn publishers_and_consumers_resume_after_a_server_restart() {
    let (mut server, client) = server_and_client("auth").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let consumer_client = connect(&server, "profile").await;
    let (handle, mut rx) =
        record::<user::CreatedV2, _>(&consumer_client, quick(), |env| env.meta().id.clone()).await;
    let mut published = BTreeSet::new();
    let publisher = client.publisher();
    for i in 0..5 {
        published.insert(
            publisher
                .publish(&user_created_v2(&format!("before{i}@example.com")))
                .await
                .unwrap()
                .id,
        );
    }
    let mut handled = BTreeSet::new();
    for _ in 0..5 {
        handled.insert(next(&mut rx, 10).await);
    }
    server.restart();
    for i in 0..5 {
        published.insert(
            publisher
                .publish(&user_created_v2(&format!("after{i}@example.com")))
                .await
                .expect("the publisher reconnects by itself")
                .id,
        );
    }
    for _ in 0..5 {
        handled.insert(next(&mut rx, 20).await);
    }
    assert_eq!(handled, published);
    handle.shutdown().await;
}

#[tokio::test]
async fn events_published_by_a_handler_carry_the_correlation_and_causation() {
    let (server, auth) = server_and_client("auth").await;
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let payments = connect(&server, "payments").await;
    let payments_handle = payments
        .consumer::<user::CreatedV2>(quick())
        .await
        .unwrap()
        .spawn(|env| async move {
            let payment: payment::CreatedV1 = serde_json::from_value(serde_json::json!({
                "payment_id": uuid::Uuid::now_v7(),
                "user_id": env.user_id,
                "amount": { "amount_minor": 990, "currency": "EUR" },
                "method": "card",
                "created_at": "2026-11-23T10:00:00Z",
            }))?;
            env.publisher().publish(&payment).await?;
            Ok(())
        });
    let admin = connect(&server, "admin").await;
    let (admin_handle, mut rx) =
        record::<payment::Created, _>(&admin, quick(), |env| env.meta().clone()).await;
    let flow = "signup-flow-42".to_string();
    let receipt = auth
        .publisher()
        .publish_with(
            &user_created_v2("flow@example.com"),
            PublishOptions::default().correlation_id(flow.clone()),
        )
        .await
        .unwrap();
    let meta = next(&mut rx, 10).await;
    assert_eq!(meta.event_type, "payment.created");
    assert_eq!(meta.source.as_deref(), Some("payments"));
    assert_eq!(meta.correlation_id.as_deref(), Some(flow.as_str()));
    assert_eq!(meta.causation_id.as_deref(), Some(receipt.id.as_str()));
    payments_handle.shutdown().await;
    admin_handle.shutdown().await;
}

#[tokio::test]
async fn a_consumer_without_its_stream_names_it() {
    let (_server, client) = server_and_client("profile").await;
    let err = client
        .consumer::<user::Created>(ConsumerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), eventhub::error::ConsumeErrorKind::NoStream);
    assert!(err.to_string().contains("IDENTITY"), "{err}");
    let err = client
        .consumer::<user::Created>(ConsumerOptions::default().max_deliver(0))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), eventhub::error::ConsumeErrorKind::InvalidConfig);
}

/// Every pull request of an idle consumer expires empty; the server says how many events it did
/// not deliver, and those slots are asked for again at once. None is left waiting for the
/// watchdog that gives up requests lost with their server, and requests do not pile up.
#[tokio::test]
async fn expired_pull_requests_are_replaced_at_once_and_never_pile_up() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let (_guard, logs) = capture_logs();
    let (handle, mut rx) = record::<user::CreatedV2, _>(
        &client,
        quick().fetch_expires(Duration::from_millis(100)),
        |env| env.meta().id.clone(),
    )
    .await;
    // About ten expiries; a request given up by the watchdog would take 1.1 s.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stream = client.jetstream().get_stream("IDENTITY").await.unwrap();
    let mut durable: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("profile__user_created").await.unwrap();
    let waiting = durable.info().await.unwrap().num_waiting;
    assert!(waiting <= 1, "{waiting} pull requests waiting at once");
    let id = client
        .publisher()
        .publish(&user_created_v2("late@example.com"))
        .await
        .unwrap()
        .id;
    assert_eq!(next(&mut rx, 10).await, id);
    handle.shutdown().await;
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        !logs.contains("unanswered"),
        "an expired request's slots waited for the watchdog: {logs}"
    );
}

/// An operator (or a server that lost its store) deletes the durable under a running consumer:
/// the consumer creates it again and goes on, at least once (the new durable starts over).
#[tokio::test]
async fn a_consumer_whose_durable_is_deleted_creates_it_again_and_goes_on() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let (handle, mut rx) =
        record::<user::CreatedV2, _>(&client, quick(), |env| env.meta().id.clone()).await;
    let publisher = client.publisher();
    let first = publisher
        .publish(&user_created_v2("first@example.com"))
        .await
        .unwrap()
        .id;
    assert_eq!(next(&mut rx, 10).await, first);
    let stream = client.jetstream().get_stream("IDENTITY").await.unwrap();
    assert!(
        stream
            .delete_consumer("profile__user_created")
            .await
            .unwrap()
            .success
    );
    let second = publisher
        .publish(&user_created_v2("second@example.com"))
        .await
        .unwrap()
        .id;
    let mut seen = BTreeSet::new();
    while !seen.contains(&second) {
        seen.insert(next(&mut rx, 10).await);
    }
    let stats = handle.shutdown().await;
    assert!(stats.handled >= 2, "{stats:?}");
    stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("profile__user_created")
        .await
        .expect("the durable exists again");
}

#[tokio::test]
async fn layers_wrap_the_handler_and_replace_the_built_in_ones() {
    use eventhub::consume::TimeoutLayer;
    use tower::util::MapRequestLayer;
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    // A layer of the user's (any tower layer): it sees every envelope before the handler.
    let seen_by_layer = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen_by_layer.clone();
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The built-in timeout off, the user's own (shorter) one in its place.
    let handle = client
        .consumer::<user::CreatedV2>(quick().handler_timeout(None).max_deliver(2))
        .await
        .unwrap()
        .layer(MapRequestLayer::new(
            move |env: eventhub::Envelope<user::CreatedV2>| {
                log.lock().unwrap().push(env.meta().id.clone());
                env
            },
        ))
        .layer(TimeoutLayer::new(Duration::from_millis(200)))
        .spawn(move |env| {
            let tx = tx.clone();
            async move {
                let slow = env.email.starts_with("slow");
                let _ = tx.send((env.meta().id.clone(), env.meta().delivered));
                if slow {
                    std::future::pending::<()>().await;
                }
                Ok(())
            }
        });
    let quick_one = client
        .publisher()
        .publish(&user_created_v2("quick@example.com"))
        .await
        .unwrap();
    assert_eq!(next(&mut rx, 10).await, (quick_one.id.clone(), 1));
    let slow_one = client
        .publisher()
        .publish(&user_created_v2("slow@example.com"))
        .await
        .unwrap();
    // Timed out by the user's layer, retried, dead-lettered after the second delivery.
    assert_eq!(next(&mut rx, 10).await, (slow_one.id.clone(), 1));
    assert_eq!(next(&mut rx, 10).await, (slow_one.id.clone(), 2));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handle.stats().dead_lettered < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            handle.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = handle.shutdown().await;
    assert_eq!(stats.timeouts, 2, "{stats:?}");
    assert_eq!(
        *seen_by_layer.lock().unwrap(),
        [quick_one.id.clone(), slow_one.id.clone(), slow_one.id]
    );
}
