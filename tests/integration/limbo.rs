//! Nothing in limbo: what a foreign producer (any NATS client, not eventhub) can store on the
//! subjects a consumer reads ends up handled, or dead-lettered with a reason — never acked
//! unhandled, never naked forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::publish::PublishAck;
use bytes::Bytes;
use eventhub::ConsumerOptions;
use eventhub::Event;
use eventhub::dlq::DeadLetterFilter;
use eventhub::dlq::DeadLetterReason;
use eventhub_catalog::events::user;

use crate::support::{DlqWatch, connect, next, quick, record, server_and_client, user_created_v2};

/// Publishes like a foreign client: the given headers and payload, awaiting the stream's ack.
async fn foreign(
    client: &eventhub::Client,
    subject: &str,
    headers: &[(&str, &str)],
    payload: impl Into<Bytes>,
) -> Result<PublishAck, String> {
    let mut h = HeaderMap::new();
    for (name, value) in headers {
        h.append(*name, *value);
    }
    client
        .jetstream()
        .publish_with_headers(subject.to_string(), h, payload.into())
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())
}

/// A valid `user.created` v2 payload.
fn valid_v2(email: &str) -> Vec<u8> {
    serde_json::to_vec(&user_created_v2(email)).unwrap()
}

/// The reason a dead letter's error header gives.
fn dlq_error(entry: &async_nats::jetstream::Message) -> String {
    entry
        .headers
        .as_ref()
        .and_then(|h| h.get(eventhub::wire::headers::DLQ_ERROR))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

/// Counts handler runs and reports the email of each.
async fn counting_consumer(
    client: &eventhub::Client,
    options: ConsumerOptions,
) -> (
    eventhub::ConsumerHandle,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    record::<user::CreatedV2, _>(client, options, |env| env.email.clone()).await
}

#[tokio::test]
async fn poison_stored_with_jetstream_preconditions_is_dead_lettered_and_replayable() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;
    // Something is in IDENTITY already, so an expected last sequence of 1 holds there and
    // nowhere else.
    client
        .publisher()
        .publish(&user_created_v2("first@example.com"))
        .await
        .unwrap();
    let (handle, mut handled) = counting_consumer(&client, quick()).await;
    assert_eq!(next(&mut handled, 10).await, "first@example.com");

    // What nats.go's ExpectStream / ExpectLastSequence and nats-py's `stream=` send.
    let stored = foreign(
        &client,
        user::CreatedV2::SUBJECT,
        &[
            ("Nats-Expected-Stream", "IDENTITY"),
            ("Nats-Expected-Last-Sequence", "1"),
            ("Nats-Expected-Last-Subject-Sequence", "1"),
            ("Nats-Msg-Id", "foreign-poison-1"),
            ("content-type", "application/json"),
        ],
        "{not json",
    )
    .await
    .expect("IDENTITY stores it: the preconditions hold there");
    let entry = dlq.next(10).await;
    assert!(
        entry
            .headers
            .iter()
            .flat_map(|h| h.iter())
            .all(|(name, _)| {
                !AsRef::<str>::as_ref(name)
                    .to_ascii_lowercase()
                    .starts_with("nats-expected")
            }),
        "the entry must not carry headers the server acts on: {:?}",
        entry.headers
    );
    let entries = client
        .dead_letters()
        .list(&DeadLetterFilter::default())
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let letter = &entries[0];
    assert_eq!(letter.reason, DeadLetterReason::Poison);
    assert_eq!(letter.sequence, stored.sequence);
    assert_eq!(
        letter
            .headers
            .get("Nats-Expected-Stream")
            .map(|v| v.as_str()),
        Some("IDENTITY"),
        "the original values are kept as metadata"
    );
    assert_eq!(
        letter.headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some("foreign-poison-1")
    );
    assert_eq!(&letter.payload[..], b"{not json");

    // The replay goes back to IDENTITY, whose last sequence is no longer 1: it must be stored
    // all the same (and, still poison, be dead-lettered again).
    let replayed = client.dead_letters().replay(letter.id).await.unwrap();
    assert!(replayed.sequence > stored.sequence);
    let again = dlq.next(10).await;
    assert_eq!(&again.payload[..], b"{not json");
    handle.shutdown().await;
}

/// The server's `max_payload` (payload plus headers).
fn max_payload(client: &eventhub::Client) -> usize {
    client.nats().server_info().max_payload
}

/// `n` bytes that do not compress (xorshift output).
fn incompressible(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn events_at_the_size_limit_are_dead_lettered_and_stay_readable_and_replayable() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;
    let (handle, _handled) = counting_consumer(&client, quick()).await;
    let limit = max_payload(&client);
    let headers = [("content-type", "application/json"), ("ce-id", "big-one")];
    // Leave just enough room for the two headers: the message is as big as the server allows.
    let room = limit - 64;
    let mut compressible = vec![b'x'; room];
    compressible[0] = b'{';
    let random = incompressible(room);
    for (name, payload) in [("compressible", compressible), ("random", random)] {
        let stored = foreign(&client, user::CreatedV2::SUBJECT, &headers, payload.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: the server stores it: {e}"));
        let entry = dlq.next(10).await;
        let letter = client
            .dead_letters()
            .get(entry.info().unwrap().stream_sequence)
            .await
            .unwrap();
        assert_eq!(letter.reason, DeadLetterReason::Poison, "{name}");
        assert_eq!(letter.sequence, stored.sequence, "{name}");
        assert_eq!(letter.payload.len(), payload.len(), "{name}");
        assert!(
            letter.payload == payload,
            "{name}: the original payload is readable"
        );
        let replayed = client.dead_letters().replay(letter.id).await.unwrap();
        let again = dlq.next(10).await;
        let letter = client
            .dead_letters()
            .get(again.info().unwrap().stream_sequence)
            .await
            .unwrap();
        assert_eq!(letter.sequence, replayed.sequence, "{name}");
        assert!(
            letter.payload == payload,
            "{name}: a replay carries it whole"
        );
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn an_idempotent_consumer_handles_every_event_that_has_no_ce_id() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let (handle, mut handled) =
        counting_consumer(&client, quick().idempotent(Duration::from_secs(600))).await;
    // A foreign producer sends bare payloads: no ce-id, some with a Nats-Msg-Id.
    for (i, msg_id) in [None, None, Some("m-3"), Some("m-4")]
        .into_iter()
        .enumerate()
    {
        let email = format!("bare-{i}@example.com");
        let h: Vec<(&str, &str)> = msg_id.map(|m| ("Nats-Msg-Id", m)).into_iter().collect();
        foreign(&client, user::CreatedV2::SUBJECT, &h, valid_v2(&email))
            .await
            .unwrap();
    }
    let mut got: Vec<String> = Vec::new();
    for _ in 0..4 {
        got.push(next(&mut handled, 10).await);
    }
    got.sort();
    assert_eq!(
        got,
        (0..4)
            .map(|i| format!("bare-{i}@example.com"))
            .collect::<Vec<_>>()
    );
    let stats = handle.shutdown().await;
    assert_eq!(stats.duplicates_skipped, 0, "{stats:?}");
    assert_eq!(stats.handled, 4, "{stats:?}");
}

/// Stores `copies` messages carrying the same event (same `ce-id`), each with its own
/// `Nats-Msg-Id` so the stream keeps them all.
async fn store_copies(client: &eventhub::Client, id: &str, copies: usize) {
    let payload = valid_v2("copied@example.com");
    for c in 0..copies {
        let msg_id = format!("{id}-copy-{c}");
        foreign(
            client,
            user::CreatedV2::SUBJECT,
            &[
                ("ce-id", id),
                ("ce-type", "user.created"),
                ("ce-specversion", "1.0"),
                ("ce-source", "auth"),
                ("Nats-Msg-Id", &msg_id),
            ],
            payload.clone(),
        )
        .await
        .unwrap();
    }
}

/// A consumer whose handler holds every run until `release` is notified, counting runs.
async fn held_consumer(
    client: &eventhub::Client,
    runs: Arc<AtomicUsize>,
    release: Arc<tokio::sync::Notify>,
) -> eventhub::ConsumerHandle {
    client
        .consumer::<user::CreatedV2>(quick().idempotent(Duration::from_secs(600)).concurrency(8))
        .await
        .unwrap()
        .spawn(move |_env| {
            let (runs, release) = (runs.clone(), release.clone());
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                release.notified().await;
                Ok(())
            }
        })
}

/// Waits until `handle` has received `n` messages.
async fn received(handles: &[&eventhub::ConsumerHandle], n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got: u64 = handles.iter().map(|h| h.stats().received).sum();
        if got >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {got} of {n} received"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn copies_of_one_event_arriving_together_run_the_handler_once() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    store_copies(&client, "evt-copied", 6).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let handle = held_consumer(&client, runs.clone(), release.clone()).await;
    // All six are in hand at once (one pull batch, eight workers) while the first run holds.
    received(&[&handle], 6).await;
    release.notify_waiters();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handle.stats().handled + handle.stats().duplicates_skipped < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            handle.stats()
        );
        release.notify_waiters();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = handle.shutdown().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "{stats:?}");
    assert_eq!(stats.duplicates_skipped, 5, "{stats:?}");
}

#[tokio::test]
async fn copies_of_one_event_at_two_instances_run_the_handler_once() {
    let (server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let other = connect(&server, "profile").await;
    let runs = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let a = held_consumer(&client, runs.clone(), release.clone()).await;
    let b = held_consumer(&other, runs.clone(), release.clone()).await;
    store_copies(&client, "evt-shared", 8).await;
    received(&[&a, &b], 8).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (sa, sb) = (a.stats(), b.stats());
        if sa.handled + sb.handled + sa.duplicates_skipped + sb.duplicates_skipped >= 8 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{sa:?} {sb:?}");
        release.notify_waiters();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (sa, sb) = (a.shutdown().await, b.shutdown().await);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "{sa:?} {sb:?}");
    assert_eq!(sa.handled + sb.handled, 1, "{sa:?} {sb:?}");
}

#[tokio::test]
async fn a_forged_replay_mark_does_not_make_an_event_vanish() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let (handle, mut handled) = counting_consumer(&client, quick()).await;
    // Claims to be a dead-letter replay meant for another consumer: without a check, this
    // consumer would ack it unhandled.
    foreign(
        &client,
        user::CreatedV2::SUBJECT,
        &[
            ("ce-id", "forged-replay"),
            ("eventhub-replay-of", "EVENTHUB_DLQ:1"),
            ("eventhub-replay-for", "payments__user_created"),
            ("Nats-Msg-Id", "forged-replay:replay:1"),
        ],
        valid_v2("forged@example.com"),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut handled, 10).await, "forged@example.com");
    let stats = handle.shutdown().await;
    assert_eq!(stats.replays_skipped, 0, "{stats:?}");
    assert_eq!(stats.forged_replay_marks, 1, "{stats:?}");
}

#[tokio::test]
async fn what_the_schema_refuses_is_dead_lettered_and_what_it_allows_is_handled() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;
    let (handle, mut handled) = counting_consumer(&client, quick()).await;
    let base = serde_json::to_value(user_created_v2("ok@example.com")).unwrap();
    let with = |field: &str, value: serde_json::Value| {
        let mut v = base.clone();
        v[field] = value;
        serde_json::to_vec(&v).unwrap()
    };
    // The schema says `format: email`, `display_name` is a string (not null) when present.
    let refused = [
        (
            "not an email",
            with("email", "not-an-email".into()),
            "/email",
        ),
        ("empty email", with("email", "".into()), "/email"),
        (
            "null for a string",
            with("display_name", serde_json::Value::Null),
            "/display_name",
        ),
    ];
    for (what, payload, pointer) in refused {
        foreign(
            &client,
            user::CreatedV2::SUBJECT,
            &[("content-type", "application/json")],
            payload,
        )
        .await
        .unwrap();
        let error = dlq_error(&dlq.next(10).await);
        assert!(error.contains(pointer), "{what}: {error}");
    }
    // Media types are case-insensitive and may carry parameters.
    for ct in ["Application/JSON", "application/json; charset=utf-8"] {
        foreign(
            &client,
            user::CreatedV2::SUBJECT,
            &[("content-type", ct)],
            valid_v2(&format!("{}@example.com", ct.len())),
        )
        .await
        .unwrap();
        next(&mut handled, 10).await;
    }
    let stats = handle.shutdown().await;
    assert_eq!(stats.poison, 3, "{stats:?}");
    assert_eq!(stats.handled, 2, "{stats:?}");
}

#[tokio::test]
async fn subjects_outside_the_catalog_are_not_stored() {
    let (_server, client) = server_and_client("auth").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    for subject in [
        "events.user.created",
        "events.user.created.v2.x",
        "events.user.no-such-event.v1",
    ] {
        let result = foreign(&client, subject, &[], valid_v2("nobody@example.com")).await;
        assert!(
            result.is_err(),
            "{subject} was stored although no consumer could ever read it: {result:?}"
        );
    }
    // Catalog subjects still are.
    foreign(
        &client,
        user::CreatedV2::SUBJECT,
        &[],
        valid_v2("someone@example.com"),
    )
    .await
    .unwrap();
    assert_eq!(user::CreatedV2::SUBJECT, "events.user.created.v2");
}

#[tokio::test]
async fn the_claim_of_an_instance_that_died_expires_and_the_redelivery_is_handled() {
    let (server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let options = || {
        quick()
            .idempotent(Duration::from_secs(600))
            .ack_wait(Duration::from_secs(1))
    };
    // The first instance claims the event and dies in its handler.
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let doomed = client
        .consumer::<user::CreatedV2>(options())
        .await
        .unwrap()
        .spawn(move |_env| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(());
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    client
        .publisher()
        .publish(&user_created_v2("orphan@example.com"))
        .await
        .unwrap();
    next(&mut started, 10).await;
    doomed.abort();
    // Another instance gets the redelivery once the ack wait passes, and handles it once the
    // dead instance's claim has expired.
    let survivor = connect(&server, "profile").await;
    let (handle, mut handled) = counting_consumer(&survivor, options()).await;
    assert_eq!(next(&mut handled, 15).await, "orphan@example.com");
    let stats = handle.shutdown().await;
    assert_eq!(stats.handled, 1, "{stats:?}");
    assert_eq!(stats.duplicates_skipped, 0, "{stats:?}");
}

#[tokio::test]
async fn a_dead_letter_whose_headers_name_another_durable_cannot_be_replayed_into_it() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    // A service may write its own durable's dead letters; this one names another durable in
    // the headers, hoping an operator's replay delivers it there.
    let stored = foreign(
        &client,
        "dlq.profile__user_created.events.user.created.v2",
        &[
            ("eventhub-dlq-consumer", "payments__user_created"),
            ("eventhub-dlq-subject", "events.user.created.v2"),
            ("eventhub-dlq-stream", "IDENTITY"),
            ("eventhub-dlq-sequence", "1"),
            ("eventhub-dlq-reason", "rejected"),
        ],
        valid_v2("planted@example.com"),
    )
    .await
    .unwrap();
    let letter = client.dead_letters().get(stored.sequence).await.unwrap();
    assert!(letter.consumer.is_empty(), "{letter:?}");
    assert!(letter.error.contains("forged entry"), "{}", letter.error);
    let err = client
        .dead_letters()
        .replay(stored.sequence)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        eventhub::error::DeadLetterErrorKind::Corrupt,
        "{err}"
    );
    // Nothing reached the stream.
    let identity = client.jetstream().get_stream("IDENTITY").await.unwrap();
    assert_eq!(identity.cached_info().state.messages, 0);
}

#[tokio::test]
async fn a_consumer_checking_types_only_handles_what_its_type_reads_and_dead_letters_the_rest() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;
    let (handle, mut handled) =
        counting_consumer(&client, quick().validation(eventhub::Validation::Types)).await;
    let base = serde_json::to_value(user_created_v2("ok@example.com")).unwrap();
    let with = |field: &str, value: serde_json::Value| {
        let mut v = base.clone();
        v[field] = value;
        serde_json::to_vec(&v).unwrap()
    };
    let mut without_locale = base.clone();
    without_locale.as_object_mut().unwrap().remove("locale");
    // What the generated type cannot read is still a dead letter naming the field.
    let refused = [
        ("a number for a string", with("email", 42.into()), "email"),
        (
            "a required field missing",
            serde_json::to_vec(&without_locale).unwrap(),
            "locale",
        ),
        (
            "shorter than minLength",
            with("display_name", "".into()),
            "display_name",
        ),
        ("not JSON", b"{\"email\":".to_vec(), "JSON"),
    ];
    for (what, payload, field) in refused {
        foreign(&client, user::CreatedV2::SUBJECT, &[], payload)
            .await
            .unwrap();
        let error = dlq_error(&dlq.next(10).await);
        assert!(error.contains(field), "{what}: {error}");
    }
    // `format: email` is the schema's, not the type's: a types-only consumer handles it (the
    // trade-off `Validation::Types` documents), where the default dead-letters it (above).
    foreign(
        &client,
        user::CreatedV2::SUBJECT,
        &[],
        with("email", "not-an-email".into()),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut handled, 10).await, "not-an-email");
    let stats = handle.shutdown().await;
    assert_eq!(stats.poison, 4, "{stats:?}");
    assert_eq!(stats.handled, 1, "{stats:?}");
}
