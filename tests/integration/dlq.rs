//! Dead letters: max-deliver, reject, poison, replay, the API, and the sweeper.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use eventhub::Event;
use eventhub::HandlerError;
use eventhub::Sweeper;
use eventhub::dlq::DeadLetterFilter;
use eventhub::dlq::DeadLetterReason;
use eventhub::wire::headers;
use eventhub_catalog::events::user;
use tokio::sync::mpsc;

use crate::support::{DlqWatch, connect, next, quick, record, server_and_client, user_created_v2};

#[tokio::test]
async fn an_always_failing_event_is_dead_lettered_after_max_deliver_and_replay_handles_it() {
    let (server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;
    let fixed = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let f = fixed.clone();
    let handle = client
        .consumer::<user::CreatedV2>(quick().max_deliver(3))
        .await
        .unwrap()
        .spawn(move |env| {
            let (tx, f) = (tx.clone(), f.clone());
            async move {
                tx.send((env.meta().delivered, env.meta().headers.clone()))
                    .unwrap();
                if f.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err(HandlerError::retry("the profile store is down"))
                }
            }
        });
    // Another service handles the event fine and must not see the replay.
    let other = connect(&server, "payments").await;
    let (other_handle, mut orx) =
        record::<user::CreatedV2, _>(&other, quick(), |env| env.meta().id.clone()).await;

    let event = user_created_v2("doomed@example.com");
    let receipt = client.publisher().publish(&event).await.unwrap();
    for attempt in 1..=3 {
        assert_eq!(next(&mut rx, 10).await.0, attempt);
    }
    dlq.next(10).await;
    assert_eq!(next(&mut orx, 10).await, receipt.id);

    let entries = client
        .dead_letters()
        .list(&DeadLetterFilter::default())
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry.reason, DeadLetterReason::MaxDeliver);
    assert_eq!(entry.deliveries, 3);
    assert_eq!(entry.stream, "IDENTITY");
    assert_eq!(entry.sequence, receipt.sequence);
    assert_eq!(entry.subject, user::CreatedV2::SUBJECT);
    assert_eq!(entry.consumer, "profile__user_created");
    assert_eq!(entry.event_id.as_deref(), Some(receipt.id.as_str()));
    assert_eq!(entry.event_type, Some(("user.created".to_string(), 2)));
    assert!(
        entry.error.contains("the profile store is down"),
        "{}",
        entry.error
    );
    assert!(entry.error.contains("delivery 3 of 3"), "{}", entry.error);
    assert!((chrono::Utc::now() - entry.failed_at).num_seconds().abs() < 60);
    assert_eq!(
        entry.headers.get(headers::SOURCE).map(|v| v.as_str()),
        Some("profile"),
        "original headers kept"
    );
    assert_eq!(
        serde_json::from_slice::<user::CreatedV2>(&entry.payload).unwrap(),
        event,
        "original payload kept"
    );
    // Exactly max_deliver attempts: the event was terminated, not retried again.
    assert!(rx.try_recv().is_err());

    fixed.store(true, Ordering::SeqCst);
    let replayed = client.dead_letters().replay(entry.id).await.unwrap();
    assert_eq!(replayed.subject, user::CreatedV2::SUBJECT);
    assert!(!replayed.duplicate);
    let (delivered, h) = next(&mut rx, 10).await;
    assert_eq!(delivered, 1, "a replay is a new message");
    assert_eq!(
        h.get(headers::REPLAY_OF).map(|v| v.as_str().to_string()),
        Some(format!("EVENTHUB_DLQ:{}", entry.id))
    );
    assert_eq!(
        h.get(headers::ID).map(|v| v.as_str()),
        Some(receipt.id.as_str()),
        "the same event"
    );
    let err = client.dead_letters().get(entry.id).await.unwrap_err();
    assert_eq!(err.kind(), eventhub::error::DeadLetterErrorKind::NotFound);

    let stats = handle.shutdown().await;
    assert_eq!(
        (stats.retried, stats.dead_lettered, stats.handled),
        (2, 1, 1)
    );
    let other_stats = other_handle.shutdown().await;
    assert_eq!(other_stats.handled, 1);
    assert_eq!(
        other_stats.replays_skipped, 1,
        "the replay was not for payments"
    );
}

#[tokio::test]
async fn a_rejected_event_is_dead_lettered_at_once() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;
    let handle = client
        .consumer::<user::CreatedV2>(quick())
        .await
        .unwrap()
        .spawn(|env| async move {
            Err(HandlerError::reject(format!(
                "email domain of {} is blocked",
                env.email
            )))
        });
    client
        .publisher()
        .publish(&user_created_v2("spam@blocked.example"))
        .await
        .unwrap();
    let m = dlq.next(10).await;
    assert_eq!(
        m.subject.as_str(),
        "dlq.profile__user_created.events.user.created.v2"
    );
    let h = m.headers.clone().unwrap();
    assert_eq!(h.get(headers::DLQ_REASON).unwrap().as_str(), "rejected");
    assert_eq!(h.get(headers::DLQ_DELIVERIES).unwrap().as_str(), "1");
    assert!(
        h.get(headers::DLQ_ERROR)
            .unwrap()
            .as_str()
            .contains("is blocked")
    );
    let stats = handle.shutdown().await;
    assert_eq!(
        (stats.received, stats.retried, stats.dead_lettered),
        (1, 0, 1)
    );
}

#[tokio::test]
async fn poison_payloads_are_dead_lettered_after_one_delivery_and_good_events_flow() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let (handle, mut rx) =
        record::<user::Created, _>(&client, quick().concurrency(1), |env| env.meta().id.clone())
            .await;
    let js = client.jetstream();
    let raw = |subject: &'static str, id: &str, payload: &'static [u8]| {
        let mut h = HeaderMap::new();
        h.insert(headers::ID, id);
        h.insert(headers::MSG_ID, id);
        h.insert(headers::CONTENT_TYPE, "application/json");
        (subject, h, payload)
    };
    let bad = [
        raw("events.user.created.v2", "not-json", b"{\"user_id\": "),
        raw(
            "events.user.created.v2",
            "wrong-types",
            br#"{"user_id":"0190a000-0000-7000-8000-000000000000","email":"x@example.com","locale":42,"created_at":"2026-11-23T10:00:00Z"}"#,
        ),
        raw("events.user.created.v9", "unknown-version", b"{}"),
    ];
    // A newer catalog added v9 to the stream (its provisioning adds the subject); this
    // consumer's build does not know that version.
    let mut identity = js
        .get_stream("IDENTITY")
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    identity.subjects.push("events.user.created.v9".into());
    js.update_stream(identity).await.unwrap();
    for (subject, h, payload) in bad {
        js.publish_with_headers(subject, h, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let good = client
        .publisher()
        .publish(&user_created_v2("good@example.com"))
        .await
        .unwrap();
    assert_eq!(next(&mut rx, 10).await, good.id);

    let entries = client
        .dead_letters()
        .list(&DeadLetterFilter::default().consumer("profile__user_created"))
        .await
        .unwrap();
    let by_id = |id: &str| {
        entries
            .iter()
            .find(|e| e.event_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no dead letter for {id}: {entries:?}"))
    };
    for id in ["not-json", "wrong-types", "unknown-version"] {
        let e = by_id(id);
        assert_eq!(e.reason, DeadLetterReason::Poison, "{id}");
        assert_eq!(e.deliveries, 1, "{id}: no retries wasted");
    }
    assert!(
        by_id("not-json").error.contains("not valid JSON"),
        "{}",
        by_id("not-json").error
    );
    assert!(
        by_id("wrong-types").error.contains("at /locale"),
        "{}",
        by_id("wrong-types").error
    );
    assert!(
        by_id("unknown-version")
            .error
            .contains("unknown version v9")
    );
    let stats = handle.shutdown().await;
    assert_eq!(
        (stats.poison, stats.dead_lettered, stats.handled),
        (3, 3, 1)
    );
    assert_eq!(stats.retried, 0);
}

#[tokio::test]
async fn the_sweeper_dead_letters_an_event_whose_consumer_died_on_its_last_attempt() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;
    let sweeper = Sweeper::new(&client).spawn().await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dying = client
        .consumer::<user::CreatedV2>(quick().max_deliver(2).ack_wait(Duration::from_secs(1)))
        .await
        .unwrap()
        .spawn(move |env| {
            let tx = tx.clone();
            async move {
                let delivered = env.meta().delivered;
                tx.send(delivered).unwrap();
                if delivered == 1 {
                    return Err(HandlerError::retry("transient"));
                }
                // The last attempt never ends: the process is about to die.
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    let receipt = client
        .publisher()
        .publish(&user_created_v2("dies@example.com"))
        .await
        .unwrap();
    assert_eq!(next(&mut rx, 10).await, 1);
    assert_eq!(next(&mut rx, 10).await, 2);
    dying.abort();

    // The process restarts: its new instance pulls, the server finds the event out of
    // deliveries and says so in an advisory, and the sweeper dead-letters it.
    let (restarted, mut nrx) = record::<user::CreatedV2, _>(
        &client,
        quick().max_deliver(2).ack_wait(Duration::from_secs(1)),
        |env| env.meta().id.clone(),
    )
    .await;
    let m = dlq.next(20).await;
    let h = m.headers.clone().unwrap();
    assert_eq!(h.get(headers::DLQ_REASON).unwrap().as_str(), "max-deliver");
    assert_eq!(h.get(headers::DLQ_DELIVERIES).unwrap().as_str(), "2");
    assert_eq!(
        h.get(headers::DLQ_SEQUENCE).unwrap().as_str(),
        receipt.sequence.to_string()
    );
    assert!(
        h.get(headers::DLQ_ERROR)
            .unwrap()
            .as_str()
            .contains("sweeper")
    );
    assert_eq!(h.get(headers::ID).unwrap().as_str(), receipt.id);
    assert_eq!(
        m.subject.as_str(),
        "dlq.profile__user_created.events.user.created.v2"
    );
    let stats = sweeper.shutdown().await;
    assert_eq!(stats.swept, 1);
    let restarted = restarted.shutdown().await;
    assert_eq!(restarted.received, 0, "no delivery beyond max_deliver");
    assert!(nrx.try_recv().is_err());
}

#[tokio::test]
async fn dead_letters_are_listed_by_consumer_type_and_time_and_deleted() {
    let (server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;
    let h1 = client
        .consumer::<user::CreatedV2>(quick())
        .await
        .unwrap()
        .spawn(reject);
    let payments = connect(&server, "payments").await;
    let h2 = payments
        .consumer::<user::CreatedV2>(quick())
        .await
        .unwrap()
        .spawn(reject);
    client
        .publisher()
        .publish(&user_created_v2("one@example.com"))
        .await
        .unwrap();
    dlq.next(10).await;
    dlq.next(10).await;
    let since = chrono::Utc::now();
    client
        .publisher()
        .publish(&user_created_v2("two@example.com"))
        .await
        .unwrap();
    dlq.next(10).await;
    dlq.next(10).await;
    h1.shutdown().await;
    h2.shutdown().await;

    let dl = client.dead_letters();
    let all = dl.list(&DeadLetterFilter::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    let by = |consumer: Option<&str>, ty: Option<&str>, since| {
        let mut filter = DeadLetterFilter::default();
        filter.consumer = consumer.map(str::to_string);
        filter.event_type = ty.map(str::to_string);
        filter.since = since;
        filter
    };
    let profile = dl
        .list(&by(Some("profile__user_created"), None, None))
        .await
        .unwrap();
    assert_eq!(profile.len(), 2);
    assert!(
        profile
            .iter()
            .all(|e| e.consumer == "profile__user_created")
    );
    assert_eq!(
        dl.list(&by(None, Some("user.created"), None))
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        dl.list(&by(None, Some("user.deleted"), None))
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        dl.list(&by(None, None, Some(since))).await.unwrap().len(),
        2
    );
    let limited = DeadLetterFilter::default().limit(3);
    assert_eq!(dl.list(&limited).await.unwrap().len(), 3);

    dl.delete(all[0].id).await.unwrap();
    assert_eq!(
        dl.list(&DeadLetterFilter::default()).await.unwrap().len(),
        3
    );
    let err = dl.delete(all[0].id).await.unwrap_err();
    assert_eq!(err.kind(), eventhub::error::DeadLetterErrorKind::NotFound);
}

async fn reject(_: eventhub::Envelope<user::CreatedV2>) -> Result<(), HandlerError> {
    Err(HandlerError::reject("no"))
}
