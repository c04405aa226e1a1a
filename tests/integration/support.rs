//! Helpers shared by the integration tests.

use eventhub::Client;
use eventhub::ConnectOptions;
use eventhub_catalog::events::{shared, user};
use eventhub_testkit::NatsServer;

/// A fresh server and a client of `service` connected to it.
pub(crate) async fn server_and_client(service: &str) -> (NatsServer, Client) {
    let server = NatsServer::start();
    let client = connect(&server, service).await;
    (server, client)
}

/// A client of `service` connected to `server`.
pub(crate) async fn connect(server: &NatsServer, service: &str) -> Client {
    Client::connect(ConnectOptions::new(service).url(server.client_url()))
        .await
        .expect("connect to the test server")
}

/// A `user.created` v1 event with a fresh user id.
pub(crate) fn user_created_v1(email: &str) -> user::CreatedV1 {
    serde_json::from_value(serde_json::json!({
        "user_id": uuid::Uuid::now_v7(),
        "email": email,
        "display_name": "Ada",
        "created_at": "2026-11-23T10:00:00Z",
    }))
    .expect("a valid user.created v1")
}

/// The user id of an event, for assertions.
#[allow(dead_code)]
pub(crate) fn user_id(e: &user::CreatedV1) -> &shared::UserId {
    &e.user_id
}

/// A `user.created` v2 event with a fresh user id.
pub(crate) fn user_created_v2(email: &str) -> user::CreatedV2 {
    serde_json::from_value(serde_json::json!({
        "user_id": uuid::Uuid::now_v7(),
        "email": email,
        "display_name": "Ada",
        "locale": "en-GB",
        "created_at": "2026-11-23T10:00:00Z",
    }))
    .expect("a valid user.created v2")
}

/// Consumer options for tests: short fetch expiry so shutdowns are quick, fast retries.
pub(crate) fn quick() -> eventhub::ConsumerOptions {
    eventhub::ConsumerOptions::default()
        .fetch_expires(std::time::Duration::from_millis(300))
        .backoff(eventhub::Backoff::schedule([
            std::time::Duration::from_millis(50),
        ]))
}

/// Waits for the next item of `rx`, failing the test after `secs` seconds.
pub(crate) async fn next<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>, secs: u64) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(secs), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("nothing arrived within {secs}s"))
        .expect("channel closed")
}

/// Watches the dead-letter stream: yields entries once they are stored.
pub(crate) struct DlqWatch {
    messages: async_nats::jetstream::consumer::pull::Ordered,
}

impl DlqWatch {
    /// Starts watching (the topology must be provisioned).
    pub(crate) async fn start(client: &Client) -> Self {
        let stream = client
            .jetstream()
            .get_stream(eventhub::topology::DLQ_STREAM)
            .await
            .expect("the DLQ stream");
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
            .await
            .expect("an ordered consumer on the DLQ");
        Self {
            messages: consumer.messages().await.expect("DLQ messages"),
        }
    }

    /// The next stored entry, failing the test after `secs` seconds.
    pub(crate) async fn next(&mut self, secs: u64) -> async_nats::jetstream::Message {
        use futures::StreamExt;
        tokio::time::timeout(std::time::Duration::from_secs(secs), self.messages.next())
            .await
            .unwrap_or_else(|_| panic!("no dead letter within {secs}s"))
            .expect("DLQ watch ended")
            .expect("DLQ watch failed")
    }
}

/// The durable's ack-pending and pending counts, from the server.
pub(crate) async fn consumer_counts(client: &Client, stream: &str, name: &str) -> (usize, u64) {
    let stream = client.jetstream().get_stream(stream).await.unwrap();
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(name).await.unwrap();
    let info = consumer.info().await.unwrap();
    (info.num_ack_pending, info.num_pending)
}

/// Runs a consumer of `E` whose handler acks every event and reports `what(envelope)` on the
/// returned channel.
pub(crate) async fn record<E, T>(
    client: &Client,
    options: eventhub::ConsumerOptions,
    what: fn(&eventhub::Envelope<E>) -> T,
) -> (
    eventhub::ConsumerHandle,
    tokio::sync::mpsc::UnboundedReceiver<T>,
)
where
    E: eventhub::Consumable,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = client
        .consumer::<E>(options)
        .await
        .expect("create the consumer")
        .spawn(move |env| {
            let _ = tx.send(what(&env));
            async { Ok(()) }
        });
    (handle, rx)
}

/// Everything `tracing` writes while the guard lives (this thread; the tests' runtimes are
/// single-threaded, so consumers' tasks included), spans' fields and every level.
pub(crate) fn capture_logs() -> (
    tracing::subscriber::DefaultGuard,
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) {
    #[derive(Clone)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Sink(buffer.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), buffer)
}

/// The dead letters of `consumer`, once there are `n` (failing after 20 s).
pub(crate) async fn letters_of(
    client: &eventhub::Client,
    consumer: &str,
    n: usize,
) -> Vec<eventhub::DeadLetter> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let letters = client
            .dead_letters()
            .list(&eventhub::dlq::DeadLetterFilter::default().consumer(consumer))
            .await
            .unwrap();
        if letters.len() >= n {
            return letters;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{consumer}: {} of {n} dead letters",
            letters.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
