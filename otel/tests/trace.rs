//! One trace across services: an event published inside a span continues its trace, and the
//! consumer's handler runs in a span of that trace (exported by a real OpenTelemetry SDK, to
//! memory; a real nats-server in between).

use std::time::Duration;

use eventhub::{Client, ConnectOptions, ConsumerOptions};
use eventhub_catalog::events::user;
use eventhub_testkit::NatsServer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

fn user_created() -> user::CreatedV2 {
    serde_json::from_value(serde_json::json!({
        "user_id": uuid::Uuid::now_v7(),
        "email": "ada@example.com",
        "display_name": "Ada",
        "locale": "en-GB",
        "created_at": "2026-11-23T10:00:00Z",
    }))
    .unwrap()
}

#[tokio::test]
async fn a_handler_span_joins_the_trace_of_the_span_that_published() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("eventhub-otel-test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = NatsServer::start();
    let connect = |service| Client::connect(ConnectOptions::new(service).url(server.client_url()));
    let auth = connect("auth").await.unwrap();
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let profile = connect("profile").await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = profile
        .consumer::<user::CreatedV2>(
            ConsumerOptions::default().fetch_expires(Duration::from_millis(300)),
        )
        .await
        .unwrap()
        .layer(eventhub_otel::OtelLayer)
        .spawn(move |_env| {
            let tx = tx.clone();
            async move {
                // A span the handler opens: it must land in the publisher's trace.
                tracing::info_span!("create_profile").in_scope(|| {});
                let _ = tx.send(eventhub_otel::current());
                Ok(())
            }
        });

    let request = tracing::info_span!("http_request");
    let receipt = async {
        eventhub_otel::publisher(&auth.publisher())
            .publish(&user_created())
            .await
    }
    .instrument(request.clone())
    .await
    .unwrap();
    let in_handler = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("handled")
        .unwrap()
        .expect("the handler runs inside a span with an OpenTelemetry context");
    handle.shutdown().await;
    drop(request);
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let find = |name: &str| {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no span {name} in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };
    let (request, handle_span, inner) = (
        find("http_request"),
        find("eventhub.handle"),
        find("create_profile"),
    );
    let trace = request.span_context.trace_id();
    assert_eq!(
        receipt.trace.trace_id().to_string(),
        trace.to_string(),
        "the event continues the request's trace"
    );
    assert_eq!(handle_span.span_context.trace_id(), trace);
    assert_eq!(inner.span_context.trace_id(), trace);
    assert_eq!(inner.parent_span_id, handle_span.span_context.span_id());
    // The handler's parent is the publish (the event's traceparent), a child of the request.
    assert_eq!(
        handle_span.parent_span_id.to_string(),
        receipt.trace.span_id().to_string()
    );
    assert_eq!(
        receipt.parent_span_id.map(|s| s.to_string()),
        Some(request.span_context.span_id().to_string())
    );
    assert_eq!(in_handler.trace_id().to_string(), trace.to_string());
}

#[tokio::test]
async fn without_an_opentelemetry_subscriber_events_start_their_own_trace() {
    assert!(eventhub_otel::current().is_none());
    let server = NatsServer::start();
    let auth = Client::connect(ConnectOptions::new("auth").url(server.client_url()))
        .await
        .unwrap();
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let receipt = eventhub_otel::publisher(&auth.publisher())
        .publish(&user_created())
        .await
        .unwrap();
    assert!(receipt.parent_span_id.is_none(), "{receipt:?}");
}
