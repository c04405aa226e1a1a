//! JetStream-native features against a real nats-server 2.15: scheduled and delayed events,
//! atomic event groups, per-message TTL, per-key ordering.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventhub::error::PublishErrorKind;
use eventhub::publish::{EventGroup, Schedule};
use eventhub::topology::ProvisionOptions;
use eventhub::{
    Client, Consumable, ConsumerOptions, Event, HandlerError, PublishOptions, StreamSpec,
};
use eventhub_catalog::events::{order, system, user};

use crate::support::{
    DlqWatch, next, quick, record, server_and_client, user_created_v1, user_created_v2,
};

/// Provisions the catalog with `change` applied to stream `name`'s declaration.
async fn provision_with(client: &Client, name: &str, change: fn(&mut StreamSpec)) {
    let mut options = ProvisionOptions::new(&eventhub_catalog::TOPOLOGY);
    for spec in &mut options.streams {
        if spec.name == name {
            change(spec);
        }
    }
    client.provision_with(&options).await.expect("provision");
}

/// IDENTITY with schedules (and its schedule subjects, as the codegen declares them).
fn with_schedules(spec: &mut StreamSpec) {
    spec.allow_msg_schedules = true;
    let mut subjects = spec.subjects.to_vec();
    let pattern: &'static str = Box::leak(spec.schedule_subjects().into_boxed_str());
    subjects.push(pattern);
    spec.subjects = Box::leak(subjects.into_boxed_slice());
}

/// How many messages a stream holds.
async fn stored(client: &Client, stream: &str) -> u64 {
    let mut s = client.jetstream().get_stream(stream).await.unwrap();
    s.info().await.unwrap().state.messages
}

#[tokio::test]
async fn a_delayed_event_arrives_when_due_with_its_envelope() {
    let (_server, client) = server_and_client("auth").await;
    provision_with(&client, "IDENTITY", with_schedules).await;
    let (handle, mut rx) =
        record::<user::CreatedV1, _>(&client, quick(), |env| (env.meta().clone(), Instant::now()))
            .await;
    let sent = Instant::now();
    let scheduled = client
        .publisher()
        .publish_after(
            &user_created_v1("later@example.com"),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(
        scheduled.subject,
        format!("schedules.IDENTITY.auth.{}", scheduled.receipt.id)
    );
    let (meta, at) = next(&mut rx, 10).await;
    assert!(
        at - sent >= Duration::from_millis(1500),
        "fired after {:?}, before it was due",
        at - sent
    );
    // An ordinary event: its id, type, source and subject, plus the server's scheduler mark.
    assert_eq!(meta.id, scheduled.receipt.id);
    assert_eq!(meta.scheduler.as_deref(), Some(scheduled.subject.as_str()));
    assert_eq!(
        meta.occurrence, None,
        "one shot: no occurrences to tell apart"
    );
    assert_eq!(meta.occurrence_id(), scheduled.receipt.id);
    assert_eq!(meta.event_type, "user.created");
    assert_eq!(meta.source.as_deref(), Some("auth"));
    assert_eq!(meta.subject, user::CreatedV1::SUBJECT);
    assert_eq!(
        meta.headers
            .get(eventhub::publish::schedule_headers::SCHEDULER)
            .map(|v| v.as_str()),
        Some(scheduled.subject.as_str())
    );
    // The one-shot schedule is gone: only the event remains.
    assert_eq!(stored(&client, "IDENTITY").await, 1);
    handle.shutdown().await;
}

#[tokio::test]
async fn a_cancelled_schedule_never_fires_and_a_key_replaces_its_schedule() {
    let (_server, client) = server_and_client("auth").await;
    provision_with(&client, "IDENTITY", with_schedules).await;
    let (handle, mut rx) =
        record::<user::CreatedV1, _>(&client, quick(), |env| env.event().email.to_string()).await;
    let publisher = client.publisher();
    let cancelled = publisher
        .publish_after(
            &user_created_v1("cancelled@example.com"),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    // The same key twice: the second replaces the first.
    for email in ["replaced@example.com", "kept@example.com"] {
        publisher
            .schedule(
                &user_created_v1(email),
                Schedule::after(Duration::from_secs(1)).key("welcome-42"),
                PublishOptions::default(),
            )
            .await
            .unwrap();
    }
    assert!(
        publisher
            .cancel_schedule("IDENTITY", &cancelled.key)
            .await
            .unwrap()
    );
    assert!(
        !publisher
            .cancel_schedule("IDENTITY", &cancelled.key)
            .await
            .unwrap(),
        "nothing left to cancel"
    );
    // A marker due after the others: when it arrives, they would have too.
    publisher
        .publish_after(
            &user_created_v1("marker@example.com"),
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let email = next(&mut rx, 10).await;
        if email == "marker@example.com" {
            break;
        }
        seen.push(email);
    }
    assert_eq!(seen, vec!["kept@example.com".to_string()]);
    handle.shutdown().await;
}

#[tokio::test]
async fn a_recurring_schedule_fires_until_cancelled() {
    let (_server, client) = server_and_client("auth").await;
    provision_with(&client, "IDENTITY", with_schedules).await;
    let (handle, mut rx) = record::<user::CreatedV1, _>(&client, quick(), |env| {
        (env.event().email.to_string(), env.meta().sequence)
    })
    .await;
    let publisher = client.publisher();
    let tick = publisher
        .schedule(
            &user_created_v1("tick@example.com"),
            Schedule::every(Duration::from_secs(1)).key("tick"),
            PublishOptions::default(),
        )
        .await
        .unwrap();
    let (first, s1) = next(&mut rx, 10).await;
    let (second, s2) = next(&mut rx, 10).await;
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("tick@example.com", "tick@example.com")
    );
    assert!(s2 > s1, "two occurrences, two stream sequences");
    assert!(
        publisher
            .cancel_schedule("IDENTITY", &tick.key)
            .await
            .unwrap()
    );
    publisher
        .publish_after(
            &user_created_v1("marker@example.com"),
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    let mut after_cancel = 0;
    loop {
        let (email, _) = next(&mut rx, 10).await;
        if email == "marker@example.com" {
            break;
        }
        after_cancel += 1;
    }
    // One may have been on its way while the schedule was purged; never more.
    assert!(after_cancel <= 1, "{after_cancel} ticks after cancelling");
    handle.shutdown().await;
}

#[tokio::test]
async fn each_occurrence_of_a_recurring_schedule_is_its_own_event_for_an_idempotent_consumer() {
    let (server, client) = server_and_client("auth").await;
    provision_with(&client, "IDENTITY", with_schedules).await;
    // The effect of each handled occurrence, by occurrence id; the second occurrence fails its
    // first delivery.
    let effects: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let options = || quick().name("ticks").idempotent(Duration::from_secs(600));
    let handler = |effects: Arc<Mutex<BTreeMap<String, u32>>>,
                   tx: tokio::sync::mpsc::UnboundedSender<(String, u64)>| {
        move |env: eventhub::Envelope<user::CreatedV1>| {
            let effects = effects.clone();
            let tx = tx.clone();
            async move {
                let meta = env.meta();
                let id = meta.occurrence_id().into_owned();
                let _ = tx.send((id.clone(), meta.delivered));
                let mut effects = effects.lock().unwrap();
                if effects.len() == 1 && !effects.contains_key(&id) && meta.delivered == 1 {
                    return Err(HandlerError::retry("the second occurrence fails once"));
                }
                *effects.entry(id).or_default() += 1;
                Ok(())
            }
        }
    };
    let handle = client
        .consumer::<user::CreatedV1>(options())
        .await
        .unwrap()
        .spawn(handler(effects.clone(), tx.clone()));
    let publisher = client.publisher();
    let tick = publisher
        .schedule(
            &user_created_v1("tick@example.com"),
            Schedule::every(Duration::from_secs(1)).key("tick"),
            PublishOptions::default(),
        )
        .await
        .unwrap();
    let mut failed_then_handled = None;
    let mut delivered: Vec<(String, u64)> = Vec::new();
    while effects.lock().unwrap().len() < 3 {
        let (id, attempt) = next(&mut rx, 10).await;
        if attempt == 2 {
            failed_then_handled = Some(id.clone());
        }
        delivered.push((id, attempt));
    }
    assert!(
        publisher
            .cancel_schedule("IDENTITY", &tick.key)
            .await
            .unwrap()
    );
    let stats = handle.shutdown().await;
    let effects = effects.lock().unwrap().clone();
    // Distinct occurrences of one event id, each `<ce-id>@<occurrence>`.
    for id in effects.keys() {
        assert!(
            id.starts_with(&format!("{}@", tick.receipt.id)),
            "{id} is an occurrence of {}",
            tick.receipt.id
        );
    }
    let failed = failed_then_handled.expect("the failed occurrence was redelivered");
    assert_eq!(
        delivered.iter().filter(|(id, _)| *id == failed).count(),
        2,
        "failed once, delivered again: {delivered:?}"
    );
    assert!(
        effects.values().all(|n| *n == 1),
        "each occurrence's effect recorded exactly once: {effects:?}"
    );
    assert_eq!(stats.duplicates_skipped, 0, "{stats:?}");

    // Every stored occurrence delivered again (the durable recreated from the start): each is
    // a duplicate of what was handled, none runs the handler.
    let stream = client.jetstream().get_stream("IDENTITY").await.unwrap();
    stream.delete_consumer("ticks").await.unwrap();
    let again: Arc<Mutex<BTreeMap<String, u32>>> = Arc::new(Mutex::new(effects.clone()));
    let (tx2, mut rx2) = tokio::sync::mpsc::unbounded_channel();
    let handle = client
        .consumer::<user::CreatedV1>(options())
        .await
        .unwrap()
        .spawn(handler(again.clone(), tx2));
    // A fresh event after the occurrences: once it is handled, they were all seen.
    let last = publisher
        .publish(&user_created_v1("after@example.com"))
        .await
        .unwrap();
    loop {
        let (id, _) = next(&mut rx2, 10).await;
        if id == last.id {
            break;
        }
    }
    let stats = handle.shutdown().await;
    let again = again.lock().unwrap().clone();
    assert!(
        stats.duplicates_skipped >= effects.len() as u64,
        "every handled occurrence skipped: {stats:?}"
    );
    for (id, n) in &effects {
        assert_eq!(again.get(id), Some(n), "{id} ran again: {again:?}");
    }
    drop(server);
}

/// Stores a raw schedule (as a hostile client would) in `stream`.
async fn raw_schedule(
    client: &Client,
    subject: &str,
    headers: &[(&str, &str)],
    payload: Vec<u8>,
) -> u64 {
    let mut h = async_nats::HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, *v);
    }
    client
        .jetstream()
        .publish_with_headers(subject.to_string(), h, payload.into())
        .await
        .unwrap()
        .await
        .unwrap_or_else(|e| panic!("the server stores `{subject}`: {e}"))
        .sequence
}

#[tokio::test]
async fn a_schedule_that_makes_the_server_publish_another_services_event_is_dead_lettered() {
    use eventhub::publish::schedule_headers as sh;
    use eventhub::wire::headers as ce;
    let (server, client) = server_and_client("auth").await;
    provision_with(&client, "IDENTITY", with_schedules).await;
    let mut dlq = DlqWatch::start(&client).await;
    // The consumer knows who publishes user.created (the catalog's trust does, from the
    // declaration of services).
    let consumer = Client::connect(
        eventhub::ConnectOptions::new("profile")
            .url(server.client_url())
            .trust(eventhub::wire::signing::Trust::new().publisher("user.created", "auth")),
    )
    .await
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = consumer
        .consumer::<user::Created>(quick())
        .await
        .unwrap()
        .spawn(move |env| {
            let _ = tx.send(env.meta().id.clone());
            async { Ok(()) }
        });
    let legit = client
        .publisher()
        .publish(&user_created_v2("real@example.com"))
        .await
        .unwrap();
    assert_eq!(next(&mut rx, 10).await, legit.id);

    // `payments` may schedule in IDENTITY (a hand-written permission: the generated ones give a
    // stream with schedules one publisher). The server publishes what it is told, where.
    let now = "@at 2000-01-01T00:00:00Z";
    let payload = serde_json::to_vec(&user_created_v1("forged@example.com")).unwrap();
    // 1. The server copies auth's last user.created v2 (its headers, auth's source) elsewhere.
    raw_schedule(
        &client,
        "schedules.IDENTITY.payments.copy",
        &[
            (sh::SCHEDULE, now),
            ("Nats-Schedule-Source", user::CreatedV2::SUBJECT),
            (sh::SCHEDULE_TARGET, user::CreatedV1::SUBJECT),
        ],
        Vec::new(),
    )
    .await;
    // 2. Its own name and source, another service's event type.
    raw_schedule(
        &client,
        "schedules.IDENTITY.payments.target",
        &[
            (sh::SCHEDULE, now),
            (sh::SCHEDULE_TARGET, user::CreatedV1::SUBJECT),
            (ce::ID, "forged-target"),
            (ce::TYPE, "user.created"),
            (ce::SOURCE, "payments"),
            (ce::CONTENT_TYPE, "application/json"),
        ],
        payload.clone(),
    )
    .await;
    // 3. An event marked as scheduled by auth, stored by payments directly.
    raw_schedule(
        &client,
        user::CreatedV1::SUBJECT,
        &[
            (sh::SCHEDULER, "schedules.IDENTITY.auth.welcome"),
            (sh::SCHEDULE_NEXT, "purge"),
            (ce::ID, "forged-mark"),
            (ce::TYPE, "user.created"),
            (ce::SOURCE, "payments"),
            (ce::CONTENT_TYPE, "application/json"),
        ],
        payload,
    )
    .await;
    let mut why = Vec::new();
    for _ in 0..3 {
        let entry = dlq.next(15).await;
        let h = entry.headers.as_ref().unwrap();
        assert_eq!(
            h.get(ce::DLQ_REASON).map(|v| v.as_str()),
            Some("forged"),
            "{h:?}"
        );
        why.push(h.get(ce::DLQ_ERROR).unwrap().as_str().to_string());
    }
    why.sort();
    assert!(
        why.iter()
            .any(|w| w.contains("`auth` publishes user.created")),
        "{why:?}"
    );
    assert!(
        why.iter().any(|w| w.contains(
            "schedule `schedules.IDENTITY.payments.copy` of service `payments`, but its \
             ce-source is `auth`"
        )),
        "{why:?}"
    );
    assert!(
        why.iter()
            .any(|w| w.contains("of service `auth`, but its ce-source is `payments`")),
        "{why:?}"
    );
    // auth's own schedule still reaches the handler.
    let own = client
        .publisher()
        .publish_after(&user_created_v1("own@example.com"), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(next(&mut rx, 10).await, own.receipt.id);
    let stats = handle.shutdown().await;
    assert_eq!((stats.handled, stats.forged), (2, 3), "{stats:?}");
    assert!(rx.try_recv().is_err(), "nothing forged was handled");
}

#[tokio::test]
async fn cron_schedules_take_a_time_zone_and_bad_ones_get_typed_errors() {
    let (_server, client) = server_and_client("auth").await;
    provision_with(&client, "IDENTITY", with_schedules).await;
    let publisher = client.publisher();
    let daily = publisher
        .schedule(
            &user_created_v1("report@example.com"),
            Schedule::cron("0 0 9 * * mon-fri")
                .in_time_zone("Europe/Amsterdam")
                .key("daily-report"),
            PublishOptions::default(),
        )
        .await
        .unwrap();
    let stream = client.jetstream().get_stream("IDENTITY").await.unwrap();
    let held = stream
        .direct_get_last_for_subject(&daily.subject)
        .await
        .unwrap();
    let header = |name| held.headers.get(name).map(|v| v.as_str().to_string());
    use eventhub::publish::schedule_headers as sh;
    assert_eq!(header(sh::SCHEDULE).as_deref(), Some("0 0 9 * * mon-fri"));
    assert_eq!(
        header(sh::SCHEDULE_TIME_ZONE).as_deref(),
        Some("Europe/Amsterdam")
    );
    assert_eq!(
        header(sh::SCHEDULE_TARGET).as_deref(),
        Some(user::CreatedV1::SUBJECT)
    );
    // A zone the server does not know: refused by the server, typed.
    let err = publisher
        .schedule(
            &user_created_v1("mars@example.com"),
            Schedule::cron("@daily").in_time_zone("Mars/Olympus_Mons"),
            PublishOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::InvalidSchedule, "{err}");
    // A 5-field crontab: refused before sending.
    let err = publisher
        .schedule(
            &user_created_v1("five@example.com"),
            Schedule::cron("*/5 * * * *"),
            PublishOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::InvalidSchedule, "{err}");
    // Only the daily schedule is held.
    assert_eq!(stored(&client, "IDENTITY").await, 1);
}

#[tokio::test]
async fn a_stream_without_schedules_refuses_them_with_a_typed_error() {
    let (_server, client) = server_and_client("auth").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let err = client
        .publisher()
        .publish_after(&user_created_v1("x@example.com"), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::FeatureDisabled, "{err}");
    assert!(err.to_string().contains("allow_msg_schedules"), "{err}");
    assert_eq!(stored(&client, "IDENTITY").await, 0);
}

#[tokio::test]
async fn the_catalog_declares_schedules_atomic_groups_and_ttls_from_streams_json() {
    let spec = |name: &str| {
        *eventhub_catalog::STREAMS
            .iter()
            .find(|s| s.name == name)
            .unwrap()
    };
    let orders = spec("ORDERS");
    assert!(orders.allow_msg_schedules && orders.allow_atomic);
    assert!(orders.subjects.contains(&"schedules.ORDERS.>"));
    assert!(spec("PAYMENTS").allow_atomic);
    // system.health.check declares `x-ttl`: its stream honours per-message TTLs.
    assert!(spec("ADMIN").allow_msg_ttl);
    assert_eq!(system::HealthCheckV1::TTL, Some(Duration::from_secs(3600)));
    assert_eq!(order::PlacedV1::PARTITION_KEY, Some("/order_id"));
    // Provisioned as declared.
    let (_server, client) = server_and_client("ops").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut stream = client.jetstream().get_stream("ORDERS").await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert!(config.allow_message_schedules && config.allow_atomic_publish);
    // Provisioning again changes nothing (no drift reported for the flags).
    let report = client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    assert!(
        report.streams.iter().all(|s| s.drift.is_empty()),
        "{report:?}"
    );
}

#[tokio::test]
async fn an_atomic_group_of_several_types_is_stored_together_and_once() {
    let (_server, client) = server_and_client("auth").await;
    provision_with(&client, "IDENTITY", |s| s.allow_atomic = true).await;
    let mut group = client.publisher().group();
    let a = group.add(&user_created_v1("a@example.com")).unwrap();
    let b = group.add(&user_created_v2("b@example.com")).unwrap();
    let c = group.add(&user_created_v1("c@example.com")).unwrap();
    let receipt = group.publish().await.unwrap();
    assert_eq!(receipt.ids, vec![a.clone(), b, c]);
    assert_eq!(receipt.stream, "IDENTITY");
    assert_eq!(receipt.last_sequence - receipt.first_sequence, 2);
    assert!(!receipt.duplicate);
    // What a consumer sees: three ordinary events, in the group's order.
    let stream = client.jetstream().get_stream("IDENTITY").await.unwrap();
    let first = stream
        .get_raw_message(receipt.first_sequence)
        .await
        .unwrap();
    assert_eq!(
        first
            .headers
            .get(eventhub::wire::headers::ID)
            .map(|v| v.as_str()),
        Some(a.as_str())
    );
    // Published again (a retry after a lost ack): stored once.
    let again = group.publish().await.unwrap();
    assert!(again.duplicate, "{again:?}");
    assert_eq!(stored(&client, "IDENTITY").await, 3);
}

#[tokio::test]
async fn a_group_is_all_or_nothing() {
    let (_server, client) = server_and_client("auth").await;
    provision_with(&client, "IDENTITY", |s| s.allow_atomic = true).await;
    let publisher = client.publisher();
    let earlier = publisher
        .publish(&user_created_v1("earlier@example.com"))
        .await
        .unwrap();
    // The last event repeats a stored id: the whole group is refused, the first two too.
    let mut group = publisher.group();
    group.add(&user_created_v1("one@example.com")).unwrap();
    group.add(&user_created_v1("two@example.com")).unwrap();
    group
        .add_with(
            &user_created_v1("again@example.com"),
            PublishOptions::default().id(earlier.id),
        )
        .unwrap();
    let err = group.publish().await.unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::Rejected, "{err}");
    assert_eq!(stored(&client, "IDENTITY").await, 1);
}

#[tokio::test]
async fn group_limits_and_a_stream_without_atomic_publish_give_typed_errors() {
    let (_server, client) = server_and_client("auth").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let publisher = client.publisher();
    let mut group = publisher.group();
    assert_eq!(
        group.publish().await.unwrap_err().kind(),
        PublishErrorKind::GroupLimit
    );
    group.add(&user_created_v1("a@example.com")).unwrap();
    // Another stream: not atomic with the first.
    let placed: order::PlacedV1 = serde_json::from_value(order_placed("k1", 1)).unwrap();
    assert_eq!(
        group.add(&placed).unwrap_err().kind(),
        PublishErrorKind::GroupLimit
    );
    let scheduled = PublishOptions::default().schedule(Schedule::after(Duration::from_secs(1)));
    assert_eq!(
        group
            .add_with(&user_created_v1("b@example.com"), scheduled)
            .unwrap_err()
            .kind(),
        PublishErrorKind::GroupLimit
    );
    // IDENTITY does not allow atomic publish.
    let err = group.publish().await.unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::FeatureDisabled, "{err}");
    assert!(err.to_string().contains("allow_atomic"), "{err}");
    assert_eq!(stored(&client, "IDENTITY").await, 0);
    // At most 1,000 events, refused at the 1,001st add, before anything is sent.
    let mut big = publisher.group();
    let event = user_created_v1("many@example.com");
    for _ in 0..EventGroup::MAX_EVENTS {
        big.add(&event).unwrap();
    }
    assert_eq!(
        big.add(&event).unwrap_err().kind(),
        PublishErrorKind::GroupLimit
    );
}

#[tokio::test]
async fn a_thousand_events_in_one_group_are_stored() {
    let (_server, client) = server_and_client("auth").await;
    provision_with(&client, "IDENTITY", |s| s.allow_atomic = true).await;
    let mut group = client.publisher().group();
    let event = user_created_v1("many@example.com");
    for _ in 0..EventGroup::MAX_EVENTS {
        group.add(&event).unwrap();
    }
    let receipt = group.publish().await.unwrap();
    assert_eq!(receipt.last_sequence, 1000);
    assert_eq!(stored(&client, "IDENTITY").await, 1000);
}

#[tokio::test]
async fn an_event_with_x_ttl_carries_it_and_needs_allow_msg_ttl() {
    let (_server, client) = server_and_client("admin").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let check: system::HealthCheckV1 = serde_json::from_value(serde_json::json!({
        "service": "payments",
        "status": "healthy",
        "checks": [],
        "checked_at": "2026-12-04T10:00:00Z",
    }))
    .unwrap();
    let receipt = client.publisher().publish(&check).await.unwrap();
    let stream = client.jetstream().get_stream("ADMIN").await.unwrap();
    let stored_check = stream.get_raw_message(receipt.sequence).await.unwrap();
    assert_eq!(
        stored_check
            .headers
            .get(eventhub::publish::TTL)
            .map(|v| v.as_str()),
        Some("3600s")
    );
    // A stream provisioned without per-message TTLs refuses it, typed.
    let (_server2, other) = server_and_client("admin").await;
    provision_with(&other, "ADMIN", |s| s.allow_msg_ttl = false).await;
    let err = other.publisher().publish(&check).await.unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::FeatureDisabled, "{err}");
    assert!(err.to_string().contains("allow_msg_ttl"), "{err}");
}

/// An `order.placed` v1 of order `key` (a UUID made from it) with `n` items.
fn order_placed(key: &str, n: u64) -> serde_json::Value {
    let money = serde_json::json!({"amount_minor": n, "currency": "EUR"});
    // One UUID per key, made from the key's bytes.
    let mut bytes = [0u8; 16];
    for (i, b) in key.bytes().enumerate() {
        bytes[i % 16] ^= b;
    }
    let order_id = uuid::Uuid::from_bytes(bytes);
    serde_json::json!({
        "order_id": order_id,
        "user_id": uuid::Uuid::now_v7(),
        "line_items": [{"sku": "sku-1", "name": "thing", "quantity": n, "unit_price": money, "total": money}],
        "subtotal": money, "tax": money, "shipping": money, "total": money,
        "shipping_address": {"line1": "1 Main St", "city": "Utrecht", "country": "NL"},
        "placed_at": "2026-12-04T10:00:00Z",
    })
}

#[tokio::test]
async fn keyed_consumers_keep_per_key_order_through_random_failures() {
    let (_server, client) = server_and_client("shop").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    const KEYS: u64 = 6;
    const PER_KEY: u64 = 12;
    let mut pipeline = client.publisher().pipeline(256);
    for n in 1..=PER_KEY {
        for k in 0..KEYS {
            let e: order::PlacedV1 =
                serde_json::from_value(order_placed(&format!("k{k}"), n)).unwrap();
            pipeline.send(&e).await.unwrap();
        }
    }
    assert!(pipeline.finish().await.failures.is_empty());
    // A third of the attempts fail (randomly, reproducibly): each must block only its key.
    let rng = Arc::new(Mutex::new(0x2545_F491_4F6C_DD1Du64));
    let handled: Arc<Mutex<BTreeMap<String, Vec<u64>>>> = Arc::default();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let options = ConsumerOptions::default()
        .fetch_expires(Duration::from_millis(300))
        .backoff(eventhub::Backoff::schedule([Duration::from_millis(20)]))
        .max_deliver(50)
        .concurrency(4)
        .ordered_by_key(true);
    let (h, r) = (handled.clone(), rng.clone());
    let consumer = client
        .consumer::<order::Placed>(options)
        .await
        .unwrap()
        .spawn(move |env| {
            let (handled, rng, done_tx) = (h.clone(), r.clone(), done_tx.clone());
            async move {
                let order::Placed::V1(e) = env.event();
                let key = env.event().partition_key().expect("a keyed event");
                let n = e.line_items[0].quantity.get();
                // Time for a later event of the key to overtake, were it allowed to.
                tokio::time::sleep(Duration::from_millis(2)).await;
                let fail = {
                    let mut x = rng.lock().unwrap();
                    *x ^= *x << 13;
                    *x ^= *x >> 7;
                    *x ^= *x << 17;
                    *x % 3 == 0
                };
                if fail {
                    return Err(HandlerError::retry("random failure"));
                }
                handled.lock().unwrap().entry(key).or_default().push(n);
                let _ = done_tx.send(());
                Ok(())
            }
        });
    for _ in 0..KEYS * PER_KEY {
        next(&mut done_rx, 60).await;
    }
    let stats = consumer.shutdown().await;
    assert!(stats.retried > 0, "some attempts failed: {stats:?}");
    let handled = handled.lock().unwrap();
    assert_eq!(handled.len() as u64, KEYS);
    for (key, ns) in handled.iter() {
        assert_eq!(
            ns,
            &(1..=PER_KEY).collect::<Vec<_>>(),
            "events of key {key} out of order"
        );
    }
}
