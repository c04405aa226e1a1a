//! Observability: trace context across services, Prometheus metrics, health.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventhub::HandlerError;
use eventhub::PublishOptions;
use eventhub::TraceContext;
use eventhub::health::HealthOptions;
use eventhub::wire::headers;
use eventhub_catalog::events::{payment, user};
use tokio::sync::{Semaphore, mpsc};

use crate::support::{DlqWatch, connect, next, quick, record, server_and_client, user_created_v2};

fn payment_for(user_id: &eventhub_catalog::events::shared::UserId) -> payment::CreatedV1 {
    serde_json::from_value(serde_json::json!({
        "payment_id": uuid::Uuid::now_v7(),
        "user_id": user_id,
        "amount": { "amount_minor": 990, "currency": "EUR" },
        "method": "card",
        "created_at": "2026-11-23T10:00:00Z",
    }))
    .expect("a valid payment.created v1")
}

#[tokio::test]
async fn a_trace_id_is_carried_from_the_publisher_to_two_services_and_their_follow_ups() {
    let (server, auth) = server_and_client("auth").await;
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();

    // Two services consume user.created; payments publishes a follow-up, admin consumes it.
    let profile = connect(&server, "profile").await;
    let (profile_handle, mut profile_rx) =
        record::<user::Created, _>(&profile, quick(), |env| env.meta().trace).await;
    let payments = connect(&server, "payments").await;
    let (tx, mut payments_rx) = mpsc::unbounded_channel();
    let payments_handle = payments
        .consumer::<user::CreatedV2>(quick())
        .await
        .unwrap()
        .spawn(move |env| {
            let tx = tx.clone();
            async move {
                let receipt = env.publisher().publish(&payment_for(&env.user_id)).await?;
                let _ = tx.send((env.meta().trace, receipt));
                Ok(())
            }
        });
    let admin = connect(&server, "admin").await;
    let (admin_handle, mut admin_rx) =
        record::<payment::Created, _>(&admin, quick(), |env| env.meta().trace).await;

    let receipt = auth
        .publisher()
        .publish(&user_created_v2("ada@example.com"))
        .await
        .unwrap();
    assert_eq!(
        receipt.parent_span_id, None,
        "a root publish starts a trace"
    );
    assert_ne!(receipt.trace.trace_id().get(), 0);

    // A root publish with a default id (a UUIDv7) starts the trace that id implies, so the
    // wire carries no `traceparent`: readers derive the same context from `ce-id`.
    let stored = auth
        .jetstream()
        .get_stream(receipt.stream.as_str())
        .await
        .unwrap()
        .get_raw_message(receipt.sequence)
        .await
        .unwrap();
    assert_eq!(stored.headers.get(headers::TRACEPARENT), None);
    assert_eq!(
        Some(receipt.trace),
        TraceContext::of_event_id(&receipt.id),
        "the id's trace"
    );

    // Both services see the publisher's trace id (and its span as parent).
    let seen_by_profile = next(&mut profile_rx, 10).await.expect("a trace context");
    let (seen_by_payments, follow_up) = next(&mut payments_rx, 10).await;
    assert_eq!(seen_by_profile, receipt.trace);
    assert_eq!(seen_by_payments, Some(receipt.trace));

    // The follow-up continues the trace: same trace id, a new span, the handled event's span
    // as parent; its consumer sees it.
    assert_eq!(follow_up.trace.trace_id(), receipt.trace.trace_id());
    assert_ne!(follow_up.trace.span_id(), receipt.trace.span_id());
    assert_eq!(follow_up.parent_span_id, Some(receipt.trace.span_id()));
    let seen_by_admin = next(&mut admin_rx, 10).await.expect("a trace context");
    assert_eq!(seen_by_admin, follow_up.trace);

    // An explicit parent (e.g. from an incoming HTTP request) is continued.
    let incoming =
        TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    let continued = auth
        .publisher()
        .publish_with(
            &user_created_v2("grace@example.com"),
            PublishOptions::default().trace_parent(incoming),
        )
        .await
        .unwrap();
    assert_eq!(continued.trace.trace_id(), incoming.trace_id());
    assert_eq!(continued.parent_span_id, Some(incoming.span_id()));
    assert_eq!(
        next(&mut profile_rx, 10).await.unwrap().trace_id(),
        incoming.trace_id()
    );
    let (_, follow_up) = next(&mut payments_rx, 10).await;
    assert_eq!(follow_up.trace.trace_id(), incoming.trace_id());
    assert_eq!(next(&mut admin_rx, 10).await.unwrap(), follow_up.trace);

    // An invalid traceparent from elsewhere is ignored, not an error: the event is handled
    // and its follow-up starts a new trace.
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::TRACEPARENT, "00-not-a-trace-01");
    h.insert(headers::CONTENT_TYPE, eventhub::wire::codec::JSON);
    let payload = serde_json::to_vec(&user_created_v2("raw@example.com")).unwrap();
    auth.jetstream()
        .publish_with_headers(
            <user::CreatedV2 as eventhub::Event>::SUBJECT,
            h,
            payload.into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(next(&mut profile_rx, 10).await, None);
    let (seen, follow_up) = next(&mut payments_rx, 10).await;
    assert_eq!(seen, None);
    assert_eq!(follow_up.parent_span_id, None);
    assert_eq!(next(&mut admin_rx, 10).await.unwrap(), follow_up.trace);

    for handle in [profile_handle, payments_handle, admin_handle] {
        let stats = handle.shutdown().await;
        assert_eq!(stats.dead_lettered, 0, "{stats:?}");
    }
}

/// The value of one series (`name{labels}`) in a Prometheus text exposition.
#[track_caller]
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in:\n{body}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_what_happened() {
    const N: usize = 10;
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;

    // Events 0..3 fail once, event 3 is rejected, the rest succeed.
    let handle = client
        .consumer::<user::CreatedV2>(quick())
        .await
        .unwrap()
        .spawn(|env| async move {
            let n: usize = env.email.trim_end_matches("@example.com")[1..]
                .parse()
                .unwrap();
            match n {
                0..3 if env.meta().delivered == 1 => Err(HandlerError::retry("not yet")),
                3 => Err(HandlerError::reject("never")),
                _ => Ok(()),
            }
        });
    // Half one by one, half through a pipeline: both are counted.
    for i in 0..N / 2 {
        client
            .publisher()
            .publish(&user_created_v2(&format!("u{i}@example.com")))
            .await
            .unwrap();
    }
    let mut pipeline = client.publisher().pipeline(4);
    for i in N / 2..N {
        pipeline
            .send(&user_created_v2(&format!("u{i}@example.com")))
            .await
            .unwrap();
    }
    let report = pipeline.finish().await;
    assert_eq!((report.stored, report.failures.len()), ((N / 2) as u64, 0));
    dlq.next(10).await;

    // Await the outcome the server reports: nothing pending or unacknowledged.
    let consumer = "consumer=\"profile__user_created\"";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let body = loop {
        let body = client.metrics().render().await;
        let settled =
            |name: &str| sample(&body, &format!("{name}{{{consumer},stream=\"IDENTITY\"}}")) == 0.0;
        let handled = sample(
            &body,
            &format!("eventhub_handled_total{{{consumer},event_type=\"user.created\"}}"),
        );
        if handled == (N - 1) as f64
            && settled("eventhub_consumer_pending")
            && settled("eventhub_consumer_ack_pending")
        {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the consumer did not settle:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let labels = format!("{consumer},event_type=\"user.created\"");
    assert_eq!(
        sample(
            &body,
            "eventhub_published_total{event_type=\"user.created\"}"
        ),
        N as f64
    );
    assert_eq!(
        sample(
            &body,
            "eventhub_publish_failed_total{event_type=\"user.created\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            &body,
            "eventhub_publish_duration_seconds_count{event_type=\"user.created\"}"
        ),
        N as f64
    );
    assert_eq!(
        sample(
            &body,
            "eventhub_publish_duration_seconds_bucket{event_type=\"user.created\",le=\"+Inf\"}"
        ),
        N as f64
    );
    assert_eq!(
        sample(&body, &format!("eventhub_handled_total{{{labels}}}")),
        (N - 1) as f64
    );
    assert_eq!(
        sample(&body, &format!("eventhub_retried_total{{{labels}}}")),
        3.0
    );
    assert_eq!(
        sample(&body, &format!("eventhub_handle_failed_total{{{labels}}}")),
        4.0
    );
    assert_eq!(
        sample(
            &body,
            &format!("eventhub_dead_lettered_total{{{labels},reason=\"rejected\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &body,
            &format!("eventhub_dead_lettered_total{{{labels},reason=\"poison\"}}")
        ),
        0.0
    );
    // Every handler run: N first deliveries and 3 second ones.
    assert_eq!(
        sample(
            &body,
            &format!("eventhub_handler_duration_seconds_count{{{labels}}}")
        ),
        (N + 3) as f64
    );
    assert_eq!(
        sample(
            &body,
            "eventhub_consumer_dlq_depth{consumer=\"profile__user_created\"}"
        ),
        1.0
    );
    assert_eq!(sample(&body, "eventhub_dlq_depth"), 1.0);
    assert_eq!(sample(&body, "eventhub_connected"), 1.0);
    assert_eq!(
        sample(
            &body,
            "eventhub_consumer_running{consumer=\"profile__user_created\"}"
        ),
        1.0
    );
    for kind in ["counter", "histogram", "gauge"] {
        assert!(body.contains(&format!(" {kind}\n")), "no # TYPE {kind}");
    }
    assert!(body.contains("# HELP eventhub_handled_total "));

    // The instance's stats and the metrics are one set of counts.
    let stats = handle.shutdown().await;
    assert_eq!(
        (stats.handled, stats.retried, stats.dead_lettered),
        (9, 3, 1)
    );
    // A shut-down instance's counts stay in the metrics (counters never go down).
    let body = client.metrics().render().await;
    assert_eq!(
        sample(&body, &format!("eventhub_handled_total{{{labels}}}")),
        (N - 1) as f64
    );
    assert_eq!(
        sample(
            &body,
            "eventhub_consumer_running{consumer=\"profile__user_created\"}"
        ),
        0.0
    );
}

#[tokio::test]
async fn health_reports_lag_over_the_threshold_and_a_lost_server() {
    let (mut server, client) = server_and_client("profile").await;
    let options = HealthOptions::default().max_lag(5);
    // Before provisioning, the streams are missing.
    let health = client.health(&options).await;
    assert!(health.connected && !health.healthy, "{health:?}");
    assert!(health.streams.iter().all(|s| !s.present), "{health:?}");

    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    // One handler, one event at a time, blocked until released.
    let release = Arc::new(Semaphore::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let gate = release.clone();
    let handle = client
        .consumer::<user::CreatedV2>(quick().concurrency(1).prefetch(0))
        .await
        .unwrap()
        .spawn(move |_| {
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            async move {
                let _ = started_tx.send(());
                gate.acquire().await.unwrap().forget();
                Ok(())
            }
        });
    let health = client.health(&options).await;
    assert!(health.healthy, "{health:?}");
    assert!(health.streams.iter().all(|s| s.present));
    assert_eq!(health.consumers.len(), 1);
    let c = &health.consumers[0];
    assert_eq!(
        (
            c.name.as_str(),
            c.alive,
            c.pending,
            c.ack_pending,
            c.lagging
        ),
        ("profile__user_created", true, 0, 0, false)
    );
    // What an endpoint serves (the gateway's `/health`).
    assert_eq!(serde_json::to_value(&health).unwrap()["healthy"], true);

    // Seven events and a stuck handler: lag 7 > 5.
    for i in 0..7 {
        client
            .publisher()
            .publish(&user_created_v2(&format!("u{i}@example.com")))
            .await
            .unwrap();
    }
    next(&mut started, 10).await;
    let health = client.health(&options).await;
    assert!(!health.healthy && health.connected, "{health:?}");
    let c = &health.consumers[0];
    assert!(c.alive && c.lagging, "{c:?}");
    assert_eq!(c.pending + c.ack_pending, 7, "{c:?}");
    let json = serde_json::to_value(&health).unwrap();
    assert_eq!(json["consumers"][0]["lagging"], true);

    // Released, it catches up and is healthy again.
    release.add_permits(7);
    for _ in 0..6 {
        next(&mut started, 10).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handle.stats().handled < 7 || !client.health(&options).await.healthy {
        assert!(tokio::time::Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A consumer shut down on purpose is no longer expected.
    handle.shutdown().await;
    let health = client.health(&options).await;
    assert!(health.healthy && health.consumers.is_empty(), "{health:?}");

    // The server goes away: not connected, not healthy.
    server.kill();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let health = loop {
        let health = client.health(&options).await;
        if !health.connected {
            break health;
        }
        assert!(tokio::time::Instant::now() < deadline, "still connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!health.healthy, "{health:?}");
    assert!(health.streams.iter().all(|s| !s.present), "{health:?}");
    let metrics = client.metrics().render().await;
    assert!(metrics.contains("\neventhub_connected 0\n"), "{metrics}");
}

/// A span's name and its fields as recorded so far.
type SpanFields = (&'static str, BTreeMap<String, String>);

/// Spans seen by a test subscriber, by span id.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<BTreeMap<u64, SpanFields>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .insert(id.into_u64(), (attrs.metadata().name(), fields));
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some((_, fields)) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
}

impl Spans {
    /// The fields of the span `name` whose `event.id` is `id`.
    #[track_caller]
    fn of(&self, name: &str, id: &str) -> BTreeMap<String, String> {
        let spans = self.0.lock().unwrap();
        spans
            .values()
            .find(|(n, f)| *n == name && f.get("event.id").map(String::as_str) == Some(id))
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| panic!("no span {name} for event {id}"))
    }
}

#[tokio::test]
async fn publish_and_handle_spans_carry_the_event_the_trace_and_the_outcome() {
    use tracing_subscriber::layer::SubscriberExt;
    let spans = Spans::default();
    // The runtime of this test is single-threaded: the consumer's task sees the subscriber too.
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let handle = client
        .consumer::<user::CreatedV2>(quick())
        .await
        .unwrap()
        .spawn(|env| async move {
            match env.email.starts_with("bad") {
                true => Err(HandlerError::reject("bad user")),
                false => Ok(()),
            }
        });
    let good = client
        .publisher()
        .publish(&user_created_v2("good@example.com"))
        .await
        .unwrap();
    let bad = client
        .publisher()
        .publish(&user_created_v2("bad@example.com"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handle.stats().handled < 1 || handle.stats().dead_lettered < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            handle.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let publish = spans.of("eventhub.publish", &good.id);
    let expect = |fields: &BTreeMap<String, String>, key: &str, value: &str| {
        assert_eq!(
            fields.get(key).map(String::as_str),
            Some(value),
            "{key} in {fields:?}"
        );
    };
    expect(&publish, "event.type", "user.created");
    expect(&publish, "event.version", "2");
    expect(&publish, "subject", "events.user.created.v2");
    expect(&publish, "trace_id", &good.trace.trace_id().to_string());
    expect(&publish, "span_id", &good.trace.span_id().to_string());
    expect(&publish, "stream.sequence", &good.sequence.to_string());
    expect(&publish, "outcome", "ok");

    let handled = spans.of("eventhub.handle", &good.id);
    expect(&handled, "consumer", "profile__user_created");
    expect(&handled, "event.type", "user.created");
    expect(&handled, "event.version", "2");
    expect(&handled, "stream", "IDENTITY");
    expect(&handled, "stream.sequence", &good.sequence.to_string());
    expect(&handled, "delivered", "1");
    expect(&handled, "correlation_id", &good.id);
    expect(&handled, "trace_id", &good.trace.trace_id().to_string());
    expect(
        &handled,
        "parent_span_id",
        &good.trace.span_id().to_string(),
    );
    expect(&handled, "outcome", "ok");

    let rejected = spans.of("eventhub.handle", &bad.id);
    expect(&rejected, "trace_id", &bad.trace.trace_id().to_string());
    expect(&rejected, "outcome", "dead-letter: rejected");
    handle.shutdown().await;
}
