//! Idempotent consumers: an event id handled once is not handled again, even when JetStream
//! delivers it again (a duplicate stored past the stream's duplicate window).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eventhub::Client;
use eventhub::ConsumerOptions;
use eventhub::Envelope;
use eventhub::Event;
use eventhub::HandlerError;
use eventhub::consume::IDEMPOTENCY_PREFIX;
use eventhub::wire::headers;
use eventhub_catalog::events::user;

use crate::support::{connect, next, quick, server_and_client, user_created_v2};

/// Stores `event` again under id `id` but another `Nats-Msg-Id`, so the stream keeps both:
/// what a publisher retrying after the duplicate window would cause.
async fn store_duplicate(client: &Client, event: &user::CreatedV2, id: &str) {
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::SPECVERSION, "1.0");
    h.insert(headers::ID, id);
    h.insert(headers::TYPE, user::CreatedV2::TYPE);
    h.insert(headers::SOURCE, "auth");
    h.insert(headers::CONTENT_TYPE, "application/json");
    h.insert(headers::MSG_ID, format!("{id}-late-retry").as_str());
    client
        .jetstream()
        .publish_with_headers(
            user::CreatedV2::SUBJECT,
            h,
            serde_json::to_vec(event).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .expect("the duplicate is stored (another Nats-Msg-Id)");
}

/// Runs a consumer that fails the first attempt of `fail_first` and reports every handler run.
async fn run(
    client: &Client,
    options: ConsumerOptions,
    fail_first: String,
) -> (
    eventhub::ConsumerHandle,
    tokio::sync::mpsc::UnboundedReceiver<String>,
    Arc<AtomicUsize>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let handle = client
        .consumer::<user::CreatedV2>(options)
        .await
        .unwrap()
        .spawn(move |env: Envelope<user::CreatedV2>| {
            let (tx, fail_first, seen) = (tx.clone(), fail_first.clone(), seen.clone());
            async move {
                let email = env.event().email.clone();
                if email == fail_first && seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(HandlerError::retry("first attempt fails"));
                }
                tx.send(email).unwrap();
                Ok(())
            }
        });
    (handle, rx, attempts)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_event_id_is_handled_once() {
    let (server, auth) = server_and_client("auth").await;
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let publisher = auth.publisher();
    let a = user_created_v2("a@example.com");
    let receipt = publisher.publish(&a).await.unwrap();
    store_duplicate(&auth, &a, &receipt.id).await;
    // Published last: once it is handled, everything before it was settled (one at a time).
    publisher
        .publish(&user_created_v2("last@example.com"))
        .await
        .unwrap();

    let profile = connect(&server, "profile").await;
    let options = quick()
        .concurrency(1)
        .prefetch(0)
        .idempotent(Duration::from_secs(300));
    let (handle, mut rx, attempts) = run(&profile, options, "f@example.com".into()).await;
    assert_eq!(next(&mut rx, 10).await, "a@example.com");
    assert_eq!(
        next(&mut rx, 10).await,
        "last@example.com",
        "the duplicate was not handled"
    );

    // A failed attempt records nothing: the retry runs the handler, and only then does a
    // duplicate get skipped.
    let f = user_created_v2("f@example.com");
    let f_receipt = publisher.publish(&f).await.unwrap();
    assert_eq!(
        next(&mut rx, 10).await,
        "f@example.com",
        "handled on its retry"
    );
    store_duplicate(&auth, &f, &f_receipt.id).await;
    publisher
        .publish(&user_created_v2("after@example.com"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx, 10).await,
        "after@example.com",
        "the duplicate was not handled"
    );

    let stats = handle.shutdown().await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "f ran twice: failed, then handled"
    );
    assert_eq!(stats.handled, 4, "{stats:?}");
    assert_eq!(stats.retried, 1, "{stats:?}");
    assert_eq!(stats.duplicates_skipped, 2, "{stats:?}");
    assert!(rx.try_recv().is_err(), "no handler run besides those");

    let bucket = profile
        .jetstream()
        .get_key_value(format!("{IDEMPOTENCY_PREFIX}profile__user_created"))
        .await
        .unwrap();
    assert!(bucket.get(receipt.id.as_str()).await.unwrap().is_some());
    let status = bucket.status().await.unwrap();
    assert_eq!(status.info.config.max_age, Duration::from_secs(300));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_guard_the_duplicate_is_handled_twice() {
    let (server, auth) = server_and_client("auth").await;
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let a = user_created_v2("a@example.com");
    let receipt = auth.publisher().publish(&a).await.unwrap();
    store_duplicate(&auth, &a, &receipt.id).await;

    let profile = connect(&server, "profile").await;
    let (handle, mut rx, _) =
        run(&profile, quick().concurrency(1).prefetch(0), String::new()).await;
    assert_eq!(next(&mut rx, 10).await, "a@example.com");
    assert_eq!(
        next(&mut rx, 10).await,
        "a@example.com",
        "at-least-once: delivered twice"
    );
    let stats = handle.shutdown().await;
    assert_eq!(stats.duplicates_skipped, 0);
}
