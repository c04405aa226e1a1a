//! Publishing typed events.

use eventhub::Consumable;
use eventhub::Event;
use eventhub::PublishOptions;
use eventhub::wire::RawEvent;
use eventhub::wire::headers;
use eventhub_catalog::events::user;

use crate::support::{server_and_client, user_created_v1};

#[tokio::test]
async fn a_published_event_reads_back_equal_with_its_headers() {
    let (_server, client) = server_and_client("auth").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let event = user_created_v1("ada@example.com");

    let receipt = client.publisher().publish(&event).await.expect("publish");
    assert_eq!(receipt.stream, "IDENTITY");
    assert_eq!(receipt.subject, "events.user.created.v1");
    assert!(!receipt.duplicate);

    let stream = client.jetstream().get_stream("IDENTITY").await.unwrap();
    let stored = stream.get_raw_message(receipt.sequence).await.unwrap();
    assert_eq!(stored.subject.as_str(), user::CreatedV1::SUBJECT);
    let h = |name: &str| stored.headers.get(name).map(|v| v.as_str().to_string());
    assert_eq!(h(headers::SPECVERSION).as_deref(), Some("1.0"));
    assert_eq!(h(headers::ID).as_deref(), Some(receipt.id.as_str()));
    assert_eq!(h(headers::MSG_ID).as_deref(), Some(receipt.id.as_str()));
    assert_eq!(h(headers::TYPE).as_deref(), Some("user.created"));
    assert_eq!(h(headers::SOURCE).as_deref(), Some("auth"));
    // The lean wire format leaves out what a reader infers: the default schema id, JSON, and
    // for a new flow a correlation id equal to the event id; nothing caused it.
    assert_eq!(
        user::CreatedV1::SCHEMA_ID,
        eventhub::wire::headers::default_schema_id("user.created", 1)
    );
    assert_eq!(h(headers::DATASCHEMA), None);
    assert_eq!(h(headers::CONTENT_TYPE), None);
    assert_eq!(h(headers::CORRELATION_ID), None);
    assert_eq!(h(headers::CAUSATION_ID), None);
    // A default id (a UUIDv7) holds the event's time and starts its trace: neither `ce-time`
    // nor `traceparent` is written (readers derive both from `ce-id`).
    assert_eq!(h(headers::TIME), None);
    assert_eq!(h(headers::TRACEPARENT), None);
    let time = eventhub::wire::headers::time_of_id(&receipt.id).unwrap();
    assert!((chrono::Utc::now() - time).num_seconds().abs() < 60);
    // Time-ordered ids: a UUIDv7.
    assert_eq!(
        uuid::Uuid::parse_str(&receipt.id)
            .unwrap()
            .get_version_num(),
        7
    );

    let content_type = h(headers::CONTENT_TYPE);
    let raw = RawEvent::new(content_type.as_deref(), &stored.payload);
    let back = user::Created::decode(1, &raw).expect("decode");
    assert_eq!(back, user::Created::V1(event));
}

#[tokio::test]
async fn the_same_event_id_twice_is_stored_once() {
    let (_server, client) = server_and_client("auth").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let event = user_created_v1("ada@example.com");
    let options = PublishOptions::default()
        .id(eventhub::wire::headers::new_event_id())
        .correlation_id("signup-42");
    let publisher = client.publisher();
    let first = publisher
        .publish_with(&event, options.clone())
        .await
        .unwrap();
    let second = publisher.publish_with(&event, options).await.unwrap();
    assert!(!first.duplicate);
    assert!(
        second.duplicate,
        "a repeat inside the duplicate window is flagged"
    );
    assert_eq!(first.sequence, second.sequence);
    let mut stream = client.jetstream().get_stream("IDENTITY").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
}

#[tokio::test]
async fn publishing_before_provisioning_names_the_missing_stream() {
    let (_server, client) = server_and_client("auth").await;
    let err = client
        .publisher()
        .publish(&user_created_v1("ada@example.com"))
        .await
        .expect_err("no stream yet");
    assert_eq!(err.kind(), eventhub::error::PublishErrorKind::NoStream);
    assert!(
        err.to_string()
            .contains("no stream answered for `events.user.created.v1`"),
        "{err}"
    );
    assert!(err.to_string().contains("provision"), "{err}");
}

#[tokio::test]
async fn a_pipeline_reports_each_failure_with_the_event_it_belongs_to() {
    let (_server, client) = crate::support::server_and_client("shop").await;
    // Only IDENTITY exists: order.placed (stream ORDERS) cannot be stored.
    let identity = *eventhub_catalog::events::STREAMS
        .iter()
        .find(|s| s.name == "IDENTITY")
        .unwrap();
    client
        .provision_with(&{
            let mut options =
                eventhub::topology::ProvisionOptions::new(&eventhub_catalog::TOPOLOGY);
            options.streams = vec![identity];
            options
        })
        .await
        .unwrap();
    let money = |minor: u64| serde_json::json!({"amount_minor": minor, "currency": "EUR"});
    let order: eventhub_catalog::events::order::PlacedV1 =
        serde_json::from_value(serde_json::json!({
            "order_id": uuid::Uuid::now_v7(),
            "user_id": uuid::Uuid::now_v7(),
            "line_items": [{"sku": "A-1", "name": "Mug", "quantity": 1,
                            "unit_price": money(500), "total": money(500)}],
            "subtotal": money(500), "tax": money(95), "shipping": money(0), "total": money(595),
            "shipping_address": {"line1": "1 Main St", "city": "Leeds", "country": "GB"},
            "placed_at": "2026-11-23T10:00:00Z",
        }))
        .unwrap();

    let mut pipeline = client.publisher().pipeline(4);
    let mut order_ids = Vec::new();
    let mut first_user_id = None;
    for i in 0..12 {
        if i % 4 == 3 {
            order_ids.push((i, pipeline.send(&order).await.unwrap()));
        } else {
            let id = pipeline
                .send(&user_created_v1(&format!("p{i}@example.com")))
                .await
                .unwrap();
            first_user_id.get_or_insert(id);
        }
    }
    // The first user event again, same id: stored once, counted as a duplicate.
    pipeline
        .send_with(&user_created_v1("again@example.com"), {
            let mut options = PublishOptions::default();
            options.id = first_user_id.clone();
            options
        })
        .await
        .unwrap();
    let report = pipeline.finish().await;

    assert_eq!(report.stored, 10, "9 user events and the duplicate");
    assert_eq!(report.duplicates, 1);
    let failed: Vec<(usize, String)> = report
        .failures
        .iter()
        .map(|f| (f.index, f.id.clone()))
        .collect();
    assert_eq!(failed, order_ids, "each failure names its event");
    for f in &report.failures {
        assert_eq!(f.subject, "events.order.placed.v1");
        assert_eq!(
            f.error.kind(),
            eventhub::error::PublishErrorKind::NoStream,
            "{}",
            f.error
        );
    }
}

/// nats-server (≥ 2.11) bounds each stream's queue of publishes waiting to be stored and
/// answers `429 too many requests` beyond it, dropping the message. A pipeline reports each
/// such event as `Busy` (stored or failed, never unknown), and publishing it again with its id
/// stores it exactly once.
#[tokio::test]
async fn a_full_ingest_queue_answers_busy_and_the_same_ids_store_once_later() {
    use eventhub::error::PublishErrorKind;
    let server = eventhub_testkit::NatsServer::builder()
        .config(format!(
            "jetstream {{\n  store_dir: \"{}\"\n  max_buffered_msgs: 1\n}}\n",
            eventhub_testkit::STORE_DIR_PLACEHOLDER
        ))
        .start()
        .unwrap();
    let client = crate::support::connect(&server, "auth").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let publisher = client.publisher();
    // Pipelines of 1,000 until one outruns the store (with a queue of one message, the first
    // usually does).
    let (mut sent, mut stored) = (0u64, 0u64);
    let mut busy = Vec::new();
    for _ in 0..20 {
        let events: Vec<_> = (0..1000)
            .map(|i| user_created_v1(&format!("u{i}@example.com")))
            .collect();
        let mut pipeline = publisher.pipeline(1000);
        for event in &events {
            pipeline.send(event).await.unwrap();
        }
        let report = pipeline.finish().await;
        sent += 1000;
        stored += report.stored;
        assert_eq!(
            report.stored + report.failures.len() as u64,
            1000,
            "every event stored or reported"
        );
        for f in &report.failures {
            assert_eq!(f.error.kind(), PublishErrorKind::Busy, "{}", f.error);
            assert!(f.error.to_string().contains("busy"), "{}", f.error);
            busy.push((events[f.index].clone(), f.id.clone()));
        }
        if !busy.is_empty() {
            break;
        }
    }
    assert!(
        !busy.is_empty(),
        "no pipeline of 1,000 overflowed a queue of one message: the server never answered 429"
    );
    let mut stream = client.jetstream().get_stream("IDENTITY").await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        stored,
        "429 stored nothing"
    );
    for (event, id) in &busy {
        let receipt = publisher
            .publish_with(event, PublishOptions::default().id(id.clone()))
            .await
            .unwrap();
        assert!(!receipt.duplicate, "{id} was stored before");
    }
    assert_eq!(stream.info().await.unwrap().state.messages, sent);
}

/// Events stored before the lean wire format (every header written out) and events published
/// in it read the same: same event, same correlation, same metadata; the lean form's time and
/// trace are the ones its UUIDv7 id implies.
const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn events_in_the_full_and_the_lean_header_form_read_the_same() {
    let (_server, client) = server_and_client("auth").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let (handle, mut rx) = crate::support::record::<user::CreatedV1, _>(
        &client,
        crate::support::quick().name("compat__user_created"),
        |env| (env.event().clone(), env.meta().clone()),
    )
    .await;
    // The full form, as eventhub wrote it before: content type, schema id and a correlation
    // id equal to the event id all written out.
    let event = user_created_v1("full@example.com");
    let id = eventhub::wire::headers::new_event_id();
    let mut full = async_nats::HeaderMap::new();
    for (name, value) in [
        (headers::SPECVERSION, "1.0"),
        (headers::ID, id.as_str()),
        (headers::TYPE, "user.created"),
        (headers::SOURCE, "auth"),
        (headers::TIME, "2026-11-23T10:00:00.123456Z"),
        (headers::DATASCHEMA, user::CreatedV1::SCHEMA_ID),
        (headers::TRACEPARENT, TRACE),
        (headers::CONTENT_TYPE, "application/json"),
        (headers::CORRELATION_ID, id.as_str()),
        (headers::MSG_ID, id.as_str()),
    ] {
        full.insert(name, value);
    }
    client
        .jetstream()
        .publish_with_headers(
            user::CreatedV1::SUBJECT,
            full,
            serde_json::to_vec(&event).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let lean = client.publisher().publish(&event).await.unwrap();

    let (full_event, full_meta) = crate::support::next(&mut rx, 10).await;
    let (lean_event, lean_meta) = crate::support::next(&mut rx, 10).await;
    assert_eq!(full_event, event);
    assert_eq!(lean_event, event);
    assert_eq!(full_meta.correlation_id.as_deref(), Some(id.as_str()));
    assert_eq!(lean_meta.correlation_id.as_deref(), Some(lean.id.as_str()));
    // The written time and trace are read as written, to the microsecond; the lean form's are
    // its id's.
    assert_eq!(
        full_meta.time,
        chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00.123456Z").unwrap()
    );
    assert_eq!(full_meta.trace, eventhub::TraceContext::parse(TRACE));
    assert_eq!(
        Some(lean_meta.time),
        eventhub::wire::headers::time_of_id(&lean.id)
    );
    let trace = lean_meta.trace.expect("the lean form's trace");
    assert_eq!(trace.trace_id().to_string(), lean.id.replace('-', ""));
    assert_eq!(Some(trace), eventhub::TraceContext::of_event_id(&lean.id));
    for meta in [&full_meta, &lean_meta] {
        assert_eq!(meta.event_type, "user.created");
        assert_eq!(meta.version, 1);
        assert_eq!(meta.source.as_deref(), Some("auth"));
        assert_eq!(meta.causation_id, None);
    }
    handle.shutdown().await;
}

/// A publisher trusting its types sends what the generated type allows without the schema
/// check (a `format` the type cannot express gets through, for the consumers' own check to
/// catch), encoded straight from the type; the default publisher refuses it, and an untyped
/// JSON publish is checked whatever the publisher's setting.
#[tokio::test]
async fn a_publisher_trusting_its_types_skips_only_the_schema_check() {
    use eventhub::Validation;
    use eventhub::error::PublishErrorKind;

    let (_server, client) = server_and_client("auth").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let not_an_email = user_created_v1("not an email");
    let checking = client.publisher();
    assert_eq!(checking.validation(), Validation::Schema);
    let refused = checking.publish(&not_an_email).await.unwrap_err();
    assert_eq!(refused.kind(), PublishErrorKind::Invalid, "{refused}");
    assert!(refused.to_string().contains("email"), "{refused}");

    let trusting = checking.with_validation(Validation::Types);
    assert_eq!(trusting.validation(), Validation::Types);
    let receipt = trusting.publish(&not_an_email).await.unwrap();
    let stored = client
        .jetstream()
        .get_stream("IDENTITY")
        .await
        .unwrap()
        .get_raw_message(receipt.sequence)
        .await
        .unwrap();
    assert_eq!(
        stored.payload.as_ref(),
        serde_json::to_vec(&not_an_email).unwrap().as_slice(),
        "the type's own JSON"
    );
    let raw = RawEvent::new(None, &stored.payload);
    let dead_letter_reason = user::Created::decode(1, &raw).unwrap_err();
    assert!(
        dead_letter_reason.to_string().contains("email"),
        "a checking consumer refuses it: {dead_letter_reason}"
    );
    assert_eq!(
        user::Created::decode(1, &raw.with_validation(Validation::Types)).unwrap(),
        user::Created::V1(not_an_email.clone())
    );

    let info = eventhub_catalog::CATALOG
        .iter()
        .find(|e| e.event_type == "user.created" && e.version == 1)
        .unwrap();
    let untyped = trusting
        .publish_json(
            info,
            &serde_json::to_value(&not_an_email).unwrap(),
            PublishOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(untyped.kind(), PublishErrorKind::Invalid, "{untyped}");
    // A valid event goes out the same either way.
    trusting
        .publish(&user_created_v1("ada@example.com"))
        .await
        .unwrap();
}
