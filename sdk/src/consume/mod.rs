//! Durable consumers: typed handlers with ack, retry with backoff, max-deliver and dead letters.
//!
//! [`Client::consumer`] creates (or updates) a durable pull consumer for one event version or a
//! whole family; [`Consumer::spawn`] or [`Consumer::run`] runs a handler on every event:
//!
//! | handler outcome | what happens |
//! |---|---|
//! | `Ok(())` | ack |
//! | retryable error, panic, timeout | `Nak` with the backoff delay; on the last allowed delivery: dead letter |
//! | [`HandlerError::reject`] | dead letter now (reason `rejected`) |
//! | payload does not decode | dead letter now (reason `poison`), the handler never sees it |
//!
//! A dead letter is acknowledged by the dead-letter stream before the event is `Term`ed, so an
//! event leaves its consumer only once it is stored elsewhere.

mod handler;
mod idempotency;
mod options;
mod pull;

use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind, kv};
use chrono::{DateTime, Utc};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use idempotency::{Claim, Guard};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::client::Client;
use crate::dlq::{self, DeadLetterReason};
use crate::envelope::{Envelope, Known, Metadata};
use crate::error::{ConsumeError, ConsumeErrorKind};
use crate::event::{Consumable, RawEvent, parse_subject};
use crate::metrics::ConsumerCounters;
use crate::publish::Publisher;
use crate::trace::TraceContext;
use pull::{Arrival, Puller};

pub use handler::HandlerError;
pub use idempotency::{IDEMPOTENCY_PREFIX, bucket_config as idempotency_bucket_config};
pub use options::{Backoff, ConsumerOptions, StartFrom};

/// Metadata key marking consumers eventhub manages.
const MANAGED: &str = "eventhub.managed";

impl Client {
    /// Creates or updates the durable consumer of `E` for this service and returns it, ready
    /// to run a handler. `E` is one event version (`events::user::CreatedV2`) or a family
    /// (`events::user::Created`: every version, as an enum).
    ///
    /// Updating applies the new ack wait, max deliver, max ack pending and filter subjects;
    /// where a durable starts ([`StartFrom`]) is fixed when it is created.
    pub async fn consumer<E: Consumable>(
        &self,
        options: ConsumerOptions,
    ) -> Result<Consumer<E>, ConsumeError> {
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| options::default_name(self.service(), E::FAMILY.event_type));
        validate(&name, &options)?;
        // One filter subject travels in the create subject
        // (`$JS.API.CONSUMER.CREATE.<stream>.<durable>.<filter>`), so the server's permissions
        // can pin a durable to its own events; a list of filters only travels in the body.
        let (filter_subject, filter_subjects) = match E::FAMILY.subjects {
            [one] => (one.to_string(), Vec::new()),
            many => (String::new(), many.iter().map(|s| s.to_string()).collect()),
        };
        let config = consumer::pull::Config {
            durable_name: Some(name.clone()),
            description: Some(format!(
                "eventhub: {} handles {}",
                self.service(),
                E::FAMILY.event_type
            )),
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_deliver: i64::from(options.max_deliver),
            max_ack_pending: i64::from(options.max_ack_pending),
            filter_subject,
            filter_subjects,
            deliver_policy: match options.start_from {
                StartFrom::All => DeliverPolicy::All,
                StartFrom::New => DeliverPolicy::New,
            },
            metadata: [
                (MANAGED.to_string(), "true".to_string()),
                ("eventhub.service".to_string(), self.service().to_string()),
                (
                    "eventhub.event_type".to_string(),
                    E::FAMILY.event_type.to_string(),
                ),
            ]
            .into(),
            ..Default::default()
        };
        // A forbidden JetStream API call or subscription is answered with an asynchronous
        // permissions violation, not a reply: race it, so it fails now and says what.
        let since = std::time::Instant::now();
        let pull = async {
            ensure(self, E::FAMILY.stream, &config).await?;
            let slots = Arc::new(Semaphore::new(options.concurrency + options.prefetch));
            let puller = Puller::new(self, E::FAMILY.stream, &name, slots, options.fetch_expires)
                .await
                .map_err(|e| {
                    ConsumeError::with_source(
                        ConsumeErrorKind::Unreachable,
                        format!(
                            "consumer {name} cannot subscribe its inbox at {}",
                            self.url()
                        ),
                        e,
                    )
                })?;
            let guard = match options.idempotency_window {
                Some(window) => Some(Guard::open(self, &name, window, options.ack_wait).await?),
                None => None,
            };
            Ok::<_, ConsumeError>((puller, guard))
        };
        let (puller, guard) = tokio::select! {
            result = pull => result?,
            subject = self.permissions().first_denied_since(since) => {
                // Creating the bucket starts with the account's limits (`$JS.API.INFO`).
                let bucket = subject == "$JS.API.INFO"
                    || subject.starts_with(&format!("$JS.API.STREAM.UPDATE.KV_{IDEMPOTENCY_PREFIX}"))
                    || subject.starts_with(&format!("$JS.API.STREAM.CREATE.KV_{IDEMPOTENCY_PREFIX}"));
                let fix = if bucket && options.idempotency_window.is_some() {
                    "services may not create or change streams: declare the consumer's \
                     `idempotency` window in schemas/services.json (the same as in the code) and \
                     have an operator create the bucket (`eventhub config apply`)"
                } else {
                    "declare it in schemas/services.json and regenerate nats.conf \
                     (`eventhub config nats`)"
                };
                return Err(ConsumeError::new(
                    ConsumeErrorKind::PermissionDenied,
                    format!(
                        "service `{}` ({}) may not use `{subject}`, which consumer {name} needs: \
                         the server refused it (permissions violation); {fix}",
                        self.service(),
                        self.identity()
                    ),
                ));
            }
        };
        Ok(Consumer {
            client: self.clone(),
            name,
            stream: E::FAMILY.stream,
            config,
            options,
            puller,
            guard,
            _event: PhantomData,
        })
    }
}

fn validate(name: &str, options: &ConsumerOptions) -> Result<(), ConsumeError> {
    let invalid = |what: String| Err(ConsumeError::new(ConsumeErrorKind::InvalidConfig, what));
    if name.is_empty()
        || name.len() > 200
        || name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return invalid(format!(
            "consumer name `{name}` is invalid: use letters, digits, `-` and `_`"
        ));
    }
    if options.concurrency == 0 {
        return invalid(format!("consumer {name}: concurrency must be at least 1"));
    }
    if options.max_deliver == 0 {
        return invalid(format!(
            "consumer {name}: max_deliver must be at least 1 (events that keep failing go to \
             the dead letters after that many deliveries)"
        ));
    }
    if options.ack_wait < Duration::from_millis(100) {
        return invalid(format!(
            "consumer {name}: ack_wait {:?} is too short (at least 100ms)",
            options.ack_wait
        ));
    }
    Ok(())
}

async fn ensure(
    client: &Client,
    stream: &str,
    config: &consumer::pull::Config,
) -> Result<PullConsumer, ConsumeError> {
    let name = config.durable_name.as_deref().unwrap_or_default();
    let stream_handle = client.jetstream().get_stream(stream).await.map_err(|e| {
        use async_nats::jetstream::context::GetStreamErrorKind as K;
        match e.kind() {
            K::JetStream(_) => ConsumeError::with_source(
                ConsumeErrorKind::NoStream,
                format!(
                    "stream {stream} (for consumer {name}) does not exist: provision the \
                     topology first (Client::provision, or `eventhub topology apply`)"
                ),
                e,
            ),
            _ => ConsumeError::with_source(
                ConsumeErrorKind::Unreachable,
                format!("cannot look up stream {stream} at {}", client.url()),
                e,
            ),
        }
    })?;
    // A filter that no subject of the stream matches would run and receive nothing, silently.
    let captured = &stream_handle.cached_info().config.subjects;
    let filters = config
        .filter_subjects
        .iter()
        .chain(Some(&config.filter_subject).filter(|f| !f.is_empty()));
    for filter in filters {
        if !captured.iter().any(|s| subjects_collide(s, filter)) {
            return Err(ConsumeError::new(
                ConsumeErrorKind::NoStream,
                format!(
                    "stream {stream} captures no subject that consumer {name}'s filter \
                     `{filter}` matches (it captures {}): provision the catalog that declares \
                     these events (its topology adds their subjects to the stream)",
                    captured.join(", ")
                ),
            ));
        }
    }
    stream_handle
        .create_consumer(config.clone())
        .await
        .map_err(|e| {
            use async_nats::jetstream::stream::ConsumerErrorKind as K;
            match e.kind() {
                K::TimedOut | K::Request => ConsumeError::with_source(
                    ConsumeErrorKind::Unreachable,
                    format!(
                        "cannot create consumer {name} on {stream} at {}",
                        client.url()
                    ),
                    e,
                ),
                _ => ConsumeError::with_source(
                    ConsumeErrorKind::InvalidConfig,
                    format!(
                        "the server refused consumer {name} on {stream} (an existing durable \
                         with a different start position must be deleted to change it)"
                    ),
                    e,
                ),
            }
        })
}

/// A durable consumer of `E`, created by [`Client::consumer`]; run it with
/// [`Consumer::spawn`] or [`Consumer::run`].
#[derive(Debug)]
pub struct Consumer<E> {
    client: Client,
    name: String,
    stream: &'static str,
    config: consumer::pull::Config,
    options: ConsumerOptions,
    /// The pull requests and the slots they hold: `concurrency + prefetch`.
    puller: Puller,
    guard: Option<Guard>,
    _event: PhantomData<fn() -> E>,
}

/// Counts of what a consumer did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Messages received.
    pub received: u64,
    /// Events handled successfully and acked.
    pub handled: u64,
    /// Failed attempts sent back for a retry (`Nak` with delay).
    pub retried: u64,
    /// Events moved to the dead letters (any reason).
    pub dead_lettered: u64,
    /// Of those, poison (undecodable) events.
    pub poison: u64,
    /// Handler panics (counted as retryable failures).
    pub panics: u64,
    /// Handler timeouts (counted as retryable failures).
    pub timeouts: u64,
    /// Replays from the dead letters meant for another consumer (checked against the replay's
    /// record), acked unhandled.
    pub replays_skipped: u64,
    /// Events marked as a dead-letter replay for another consumer without a matching replay
    /// record (a forged or stale mark): handled like any event, and logged.
    pub forged_replay_marks: u64,
    /// Events received but not handled because of a shutdown, returned at once for another
    /// instance.
    pub returned: u64,
    /// Events acked without running the handler because their id was handled before
    /// ([`ConsumerOptions::idempotent`]).
    pub duplicates_skipped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    handled: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    poison: AtomicU64,
    panics: AtomicU64,
    timeouts: AtomicU64,
    replays_skipped: AtomicU64,
    forged_replay_marks: AtomicU64,
    returned: AtomicU64,
    duplicates_skipped: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ConsumerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConsumerStats {
            received: get(&self.received),
            handled: get(&self.handled),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            poison: get(&self.poison),
            panics: get(&self.panics),
            timeouts: get(&self.timeouts),
            replays_skipped: get(&self.replays_skipped),
            forged_replay_marks: get(&self.forged_replay_marks),
            returned: get(&self.returned),
            duplicates_skipped: get(&self.duplicates_skipped),
        }
    }
}

/// A running consumer, from [`Consumer::spawn`].
#[derive(Debug)]
pub struct ConsumerHandle {
    name: String,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<ConsumerStats>,
    counters: Arc<Counters>,
}

impl ConsumerHandle {
    /// The durable's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the consumer did so far.
    pub fn stats(&self) -> ConsumerStats {
        self.counters.snapshot()
    }

    /// Graceful shutdown: stops fetching, returns fetched events not yet started to the server
    /// (for another instance), lets running handlers finish (up to
    /// [`ConsumerOptions::shutdown_timeout`], then cancels them), and returns the final counts.
    pub async fn shutdown(self) -> ConsumerStats {
        let _ = self.shutdown.send(true);
        match self.task.await {
            Ok(stats) => stats,
            Err(_) => self.counters.snapshot(),
        }
    }

    /// Stops at once, like a crashed process: running handlers are dropped mid-work and
    /// nothing more is acknowledged; the server delivers their events again after the ack
    /// wait.
    pub fn abort(self) {
        self.task.abort();
    }
}

struct Shared<F> {
    client: Client,
    publisher: Publisher,
    name: String,
    options: ConsumerOptions,
    handler: F,
    counters: Arc<Counters>,
    /// The client's metrics of this durable.
    metrics: Arc<ConsumerCounters>,
    workers: Semaphore,
    /// Events waiting for a worker watch this, not a timer each: the loop bumps it every
    /// keep-alive period (they send an in-progress ack) and on shutdown (they hand their event
    /// back).
    waiting: watch::Receiver<Waiting>,
    guard: Option<Guard>,
    /// The dead-letter replay records, opened when the first replay mark arrives.
    replays: tokio::sync::OnceCell<kv::Store>,
}

/// What the consumer loop tells events waiting for a worker.
#[derive(Debug, Clone, Copy, Default)]
struct Waiting {
    /// Keep-alive periods elapsed.
    ticks: u64,
    /// The consumer is stopping.
    stop: bool,
}

impl<E: Consumable> Consumer<E> {
    /// The durable's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream it reads.
    pub fn stream(&self) -> &'static str {
        self.stream
    }

    /// Runs `handler` on every event in the background.
    pub fn spawn<F, Fut>(self, handler: F) -> ConsumerHandle
    where
        F: Fn(Envelope<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), crate::HandlerError>> + Send + 'static,
    {
        let (tx, rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let name = self.name.clone();
        let metrics =
            self.client
                .registry()
                .consumer(&self.name, self.stream, E::FAMILY.event_type);
        // Alive (for health) until the task ends; a graceful end retires it.
        let running = metrics.start();
        let run = self.run_loop(handler, rx, counters.clone(), metrics);
        let task = tokio::spawn(async move {
            let stats = run.await;
            running.finish();
            stats
        });
        ConsumerHandle {
            name,
            shutdown: tx,
            task,
            counters,
        }
    }

    /// Runs `handler` on every event until `shutdown` resolves (e.g.
    /// `tokio::signal::ctrl_c()`), then shuts down gracefully (see
    /// [`ConsumerHandle::shutdown`]) and returns the counts.
    pub async fn run<F, Fut, S>(self, handler: F, shutdown: S) -> ConsumerStats
    where
        F: Fn(Envelope<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), crate::HandlerError>> + Send + 'static,
        S: Future + Send,
    {
        let handle = self.spawn(handler);
        shutdown.await;
        handle.shutdown().await
    }

    async fn run_loop<F, Fut>(
        self,
        handler: F,
        mut shutdown: watch::Receiver<bool>,
        counters: Arc<Counters>,
        metrics: Arc<ConsumerCounters>,
    ) -> ConsumerStats
    where
        F: Fn(Envelope<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), crate::HandlerError>> + Send + 'static,
    {
        let Consumer {
            client,
            name,
            stream,
            config,
            options,
            mut puller,
            guard,
            ..
        } = self;
        let held_max = options.concurrency + options.prefetch;
        let min_batch = u32::try_from(held_max.div_ceil(2)).unwrap_or(u32::MAX);
        let held = puller.slots().clone();
        let (waiting, waiting_rx) = watch::channel(Waiting::default());
        let period = keep_alive_period(&options);
        let mut keep_alive = tokio::time::interval_at(Instant::now() + period, period);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shared = Arc::new(Shared {
            publisher: client.publisher(),
            client: client.clone(),
            name: name.clone(),
            workers: Semaphore::new(options.concurrency),
            options: options.clone(),
            handler,
            counters: counters.clone(),
            metrics,
            waiting: waiting_rx,
            guard,
            replays: tokio::sync::OnceCell::new(),
        });
        // Handlers run as futures of this task, not spawned tasks: no hand-off between threads
        // per event (handlers with heavy CPU work should spawn it themselves).
        let mut tasks: FuturesUnordered<Pin<Box<dyn Future<Output = ()> + Send>>> =
            FuturesUnordered::new();
        // Pull requests overlap: the next one leaves as soon as half the slots are free, while
        // earlier ones still deliver, so the consumer never idles for a round trip between
        // batches. Every delivered message holds one slot until its handling ends.
        let mut failures = 0u32;
        tracing::info!(consumer = %name, stream, "eventhub consumer started");
        loop {
            // Ask for more as soon as half the slots are free, before anything else: a loop busy
            // with arrived messages must not put the next request off until they run out.
            let free = held.available_permits();
            let permits = if free >= min_batch as usize {
                held.clone()
                    .try_acquire_many_owned(u32::try_from(free).unwrap_or(u32::MAX))
                    .ok()
            } else {
                None
            };
            let overdue = puller.overdue_at();
            let refused = match permits {
                Some(permits) => request(&mut puller, &held, permits).await,
                None => tokio::select! {
                    biased;
                    () = stopped(&mut shutdown) => break,
                    // Rarely ready, so first: a busy loop must not starve the keep-alive.
                    _ = keep_alive.tick() => {
                        waiting.send_modify(|w| w.ticks += 1);
                        None
                    }
                    Some(()) = tasks.next(), if !tasks.is_empty() => None,
                    arrival = puller.next() => match arrival {
                        Arrival::Event(message, slot) => {
                            failures = 0;
                            Counters::bump(&counters.received);
                            tasks.push(Box::pin(process::<E, F, Fut>(shared.clone(), message, slot)));
                            None
                        }
                        Arrival::Surplus(message) => {
                            tasks.push(Box::pin(give_back_quietly(message)));
                            None
                        }
                        Arrival::Status => {
                            // A request was served (it expired): the server is back.
                            failures = 0;
                            None
                        }
                        Arrival::Refused(why) => Some(why),
                        Arrival::Closed => break,
                    },
                    () = sleep_until(overdue), if overdue.is_some() => {
                        tracing::debug!(consumer = %name, "eventhub pull requests unanswered past their expiry; asking again");
                        puller.forget_requests();
                        None
                    }
                    permits = held.clone().acquire_many_owned(min_batch) => match permits {
                        Ok(permits) => request(&mut puller, &held, permits).await,
                        Err(_) => break,
                    },
                },
            };
            let Some(why) = refused else { continue };
            failures += 1;
            tracing::warn!(consumer = %name, "eventhub pull request failed: {why}; retrying");
            let pause = Duration::from_millis(100 * 2u64.pow(failures.min(5)));
            tokio::select! {
                () = stopped(&mut shutdown) => break,
                () = tokio::time::sleep(pause) => {}
            }
            // The durable may be gone (deleted, or a server restarted on an empty store):
            // create it again.
            let _ = ensure(&client, stream, &config).await;
        }
        // Events waiting for a worker go back; what already arrived and will not be handled
        // here too. What is still on its way is redelivered after the ack wait.
        waiting.send_modify(|w| w.stop = true);
        // No more deliveries: the server reads the unsubscribe before the flush's answer. What
        // it delivered until then is in the subscription's buffer, and goes back too.
        puller.close().await;
        let _ = client.nats().flush().await;
        while let Some(arrival) = puller.next_now() {
            match arrival {
                Arrival::Event(message, _) | Arrival::Surplus(message) => {
                    // Counted as received too, so that received = handled + returned + ….
                    Counters::bump(&counters.received);
                    tasks.push(Box::pin(give_back(message, counters.clone())));
                }
                Arrival::Status | Arrival::Refused(_) => {}
                Arrival::Closed => break,
            }
        }
        drop(puller);
        let drain = async { while tasks.next().await.is_some() {} };
        if tokio::time::timeout(options.shutdown_timeout, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                consumer = %name,
                running = tasks.len(),
                "eventhub consumer: handlers still running after the shutdown timeout of {:?} \
                 were cancelled; their events will be delivered again",
                options.shutdown_timeout
            );
            tasks.clear();
        }
        // Acks are fire-and-forget: make sure they left before returning.
        let _ = client.nats().flush().await;
        let stats = counters.snapshot();
        tracing::info!(consumer = %name, ?stats, "eventhub consumer stopped");
        stats
    }
}

/// Sends a pull request for `permits` (and whatever else is free by now); the reason when it
/// cannot be sent.
async fn request(
    puller: &mut Puller,
    held: &Arc<Semaphore>,
    mut permits: OwnedSemaphorePermit,
) -> Option<String> {
    let extra = u32::try_from(held.available_permits()).unwrap_or(0);
    if extra > 0
        && let Ok(more) = held.clone().try_acquire_many_owned(extra)
    {
        permits.merge(more);
    }
    puller.request(permits).await.err().map(|e| e.to_string())
}

/// Sleeps until `at`; forever if `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Returns a message no slot was held for.
async fn give_back_quietly(message: jetstream::Message) {
    let _ = message.ack_with(AckKind::Nak(None)).await;
}

/// Returns a message that will not be handled here (shutdown) to the server at once.
async fn give_back(message: jetstream::Message, counters: Arc<Counters>) {
    Counters::bump(&counters.returned);
    if let Err(e) = message.ack_with(AckKind::Nak(None)).await {
        tracing::debug!(
            "eventhub: returning a message failed ({e}); it is redelivered after the ack wait"
        );
    }
}

/// What came of one handler run.
enum Outcome {
    Handled,
    Failed(crate::HandlerError),
    Panicked(String),
    TimedOut(Duration),
}

async fn process<E, F, Fut>(
    shared: Arc<Shared<F>>,
    message: jetstream::Message,
    held: OwnedSemaphorePermit,
) where
    E: Consumable,
    F: Fn(Envelope<E>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), crate::HandlerError>> + Send + 'static,
{
    let _held = held;
    let (stream, sequence, delivered, published) = match message.info() {
        Ok(info) => (
            info.stream.to_string(),
            info.stream_sequence,
            u64::try_from(info.delivered).unwrap_or(1),
            info.published,
        ),
        Err(e) => {
            tracing::warn!(consumer = %shared.name, "eventhub: not a JetStream message ({e}); ignored");
            return;
        }
    };
    // The headers move into the envelope's metadata (shared, not copied).
    let mut message = message;
    let shared_headers = Arc::new(message.message.headers.take().unwrap_or_default());
    let hdrs = Some(&*shared_headers);
    let known = Known::scan(&shared_headers);
    let counters = &shared.counters;

    if let Some(target) = known.replay_for
        && target != shared.name
    {
        if replay_is_recorded(&shared, &known, target, &message).await {
            Counters::bump(&counters.replays_skipped);
            let _ = message.ack().await;
            return;
        }
        // Not a replay eventhub made: the event is handled like any other, never dropped.
        Counters::bump(&counters.forged_replay_marks);
        tracing::warn!(
            consumer = %shared.name,
            "eventhub: {stream} #{sequence} is marked as a dead-letter replay for {target}, \
             but no replay record vouches for it; handling it"
        );
    }

    let failed = dlq::Failed {
        subject: message.subject.as_str(),
        headers: hdrs,
        payload: message.payload.clone(),
        stream: &stream,
        sequence,
        consumer: &shared.name,
        deliveries: delivered,
    };

    // Decode before waiting for a worker: a poison message is set aside at once.
    let decoded = match parse_subject(message.subject.as_str()) {
        // The type decides what it decodes: one type, or every type of a domain it knows.
        Some((ty, version)) => {
            let raw = RawEvent {
                content_type: known.content_type,
                payload: &message.payload,
            };
            let event = if E::HAS_SENSITIVE_FIELDS {
                crate::crypto::decode::<E>(&shared.client, &shared.name, ty, version, &raw, hdrs)
            } else {
                E::decode_typed(ty, version, &raw)
            };
            event
                .map(|event| (event, version))
                .map_err(|e| format!("{}: {e}", message.subject))
        }
        None => Err(format!(
            "`{}` is not an event subject (events.<type>.v<N>)",
            message.subject
        )),
    };
    let (event, version) = match decoded {
        Ok(ok) => ok,
        Err(error) => {
            Counters::bump(&counters.poison);
            Box::pin(dead_letter(
                &shared,
                &message,
                &failed,
                DeadLetterReason::Poison,
                &error,
            ))
            .await;
            return;
        }
    };

    let period = keep_alive_period(&shared.options);

    // Handled before (a redelivery after a lost ack, a late duplicate), or being handled by
    // another worker or instance right now: claim the id before running the handler.
    let mut claim = None;
    if let Some(guard) = &shared.guard {
        let key = idempotency::key(&event_id(&known, &stream, sequence));
        let mut pause = Duration::from_millis(20);
        let mut waiting = shared.waiting.clone();
        loop {
            match guard.claim(&key).await {
                Claim::Mine(revision) => {
                    claim = Some((key, Some(revision)));
                    break;
                }
                Claim::Done => {
                    Counters::bump(&counters.duplicates_skipped);
                    let _ = message.ack().await;
                    return;
                }
                Claim::Unknown(e) => {
                    // Not knowing is not a reason to lose the event: handle it.
                    tracing::warn!(consumer = %shared.name, "eventhub: idempotency claim failed ({e}); handling the event");
                    claim = Some((key, None));
                    break;
                }
                Claim::Busy => {
                    // A copy is being handled: wait for its outcome, keeping this one alive.
                    tokio::select! {
                        changed = waiting.changed() => {
                            if changed.is_err() || waiting.borrow_and_update().stop {
                                give_back(message, shared.counters.clone()).await;
                                return;
                            }
                            let _ = message.ack_with(AckKind::Progress).await;
                        }
                        () = tokio::time::sleep(pause) => {
                            pause = (pause * 2).min(Duration::from_secs(1));
                        }
                    }
                }
            }
        }
    }

    // Take a free handler; if none, wait, keeping the message alive meanwhile.
    let _worker = match shared.workers.try_acquire() {
        Ok(p) => p,
        Err(_) => {
            let mut waiting = shared.waiting.clone();
            if waiting.borrow_and_update().stop {
                give_back(message, shared.counters.clone()).await;
                return;
            }
            // One acquire for the whole wait: it keeps its place in the queue (events start in
            // the order they arrived).
            let acquire = shared.workers.acquire();
            tokio::pin!(acquire);
            loop {
                tokio::select! {
                    biased;
                    changed = waiting.changed() => {
                        if changed.is_err() || waiting.borrow_and_update().stop {
                            give_back(message, shared.counters.clone()).await;
                            return;
                        }
                        let _ = message.ack_with(AckKind::Progress).await;
                    }
                    permit = &mut acquire => match permit {
                        Ok(p) => break p,
                        Err(_) => return,
                    },
                }
            }
        }
    };
    let mut next_progress = Instant::now() + period;

    let meta = metadata(
        &message,
        &shared_headers,
        &known,
        E::FAMILY.event_type,
        version,
        stream.clone(),
        sequence,
        delivered,
        published,
    );
    let span = tracing::info_span!(
        "eventhub.handle",
        consumer = %shared.name,
        event.id = %meta.id,
        event.r#type = E::FAMILY.event_type,
        event.version = version,
        subject = %message.subject,
        stream = %stream,
        stream.sequence = sequence,
        delivered,
        correlation_id = meta.correlation_id.as_deref().unwrap_or(""),
        trace_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    if let Some(trace) = &meta.trace {
        span.record("trace_id", tracing::field::display(trace.trace_id()));
        span.record("parent_span_id", tracing::field::display(trace.span_id()));
    }
    let envelope = Envelope::new(event, meta, &shared.publisher);
    let run = AssertUnwindSafe((shared.handler)(envelope).instrument(span.clone())).catch_unwind();
    tokio::pin!(run);
    // One timer serves both the in-progress acks and the handler timeout.
    let timeout = shared.options.handler_timeout;
    let deadline = timeout.map(|t| Instant::now() + t);
    let wake_at = |progress: Instant| deadline.map_or(progress, |d| d.min(progress));
    let timer = tokio::time::sleep_until(wake_at(next_progress));
    tokio::pin!(timer);
    let started = std::time::Instant::now();
    let outcome = loop {
        tokio::select! {
            biased;
            result = &mut run => break match result {
                Ok(Ok(())) => Outcome::Handled,
                Ok(Err(e)) => Outcome::Failed(e),
                Err(panic) => Outcome::Panicked(panic_message(panic.as_ref())),
            },
            () = &mut timer => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break Outcome::TimedOut(timeout.unwrap_or_default());
                }
                let _ = message.ack_with(AckKind::Progress).await;
                if let (Some(guard), Some((key, Some(revision)))) = (&shared.guard, &mut claim)
                    && let Some(renewed) = guard.renew(key, *revision).await
                {
                    *revision = renewed;
                }
                next_progress = Instant::now() + period;
                timer.as_mut().reset(wake_at(next_progress));
            }
        }
    };
    shared.metrics.latency.observe(started.elapsed());
    if let (Some(guard), Some((key, revision))) = (&shared.guard, claim) {
        if matches!(outcome, Outcome::Handled) {
            // Recorded before the ack, so a redelivery finds it. While the server is out of
            // reach the record is retried (for up to one ack wait) rather than given up: an
            // unrecorded event would run its handler again when redelivered.
            let give_up = Instant::now() + shared.options.ack_wait;
            let mut pause = Duration::from_millis(50);
            loop {
                match guard.done(&key, sequence).await {
                    Ok(_) => break,
                    Err(e) if Instant::now() + pause < give_up => {
                        tracing::debug!(consumer = %shared.name, "eventhub: idempotency record failed ({e}); retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                    }
                    Err(e) => {
                        tracing::warn!(consumer = %shared.name, "eventhub: could not record handled event {key} for idempotency ({e}); a redelivery would run the handler again");
                        break;
                    }
                }
            }
        } else if let Some(revision) = revision {
            guard.release(&key, revision).await;
        }
    }
    settle(&shared, &message, &failed, outcome)
        .instrument(span)
        .await;
}

/// Whether some subject matches both patterns (`*` one token, `>` the rest).
fn subjects_collide(a: &str, b: &str) -> bool {
    let (mut x, mut y) = (a.split('.'), b.split('.'));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(p), Some(q)) if p == q || p == "*" || q == "*" => {}
            _ => return false,
        }
    }
}

/// The event id the envelope reports: `ce-id`, else `Nats-Msg-Id`, else `<stream>:<sequence>`.
fn event_id(known: &Known<'_>, stream: &str, sequence: u64) -> String {
    match known.id.or(known.msg_id) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("{stream}:{sequence}"),
    }
}

/// Whether a message marked as a replay for consumer `target` is one: the replay record
/// [`DeadLetters::replay`](crate::DeadLetters::replay) wrote names that consumer, subject and
/// payload. A producer can set the marks but cannot write the record.
async fn replay_is_recorded<F>(
    shared: &Shared<F>,
    known: &Known<'_>,
    target: &str,
    message: &jetstream::Message,
) -> bool {
    let Some(id) = known.replay_of.and_then(dlq::ReplayRecord::id_of) else {
        return false;
    };
    let bucket = shared
        .replays
        .get_or_try_init(|| shared.client.jetstream().get_key_value(dlq::REPLAY_BUCKET))
        .await;
    let record = match bucket {
        Ok(kv) => kv.get(dlq::ReplayRecord::key(id)).await,
        Err(e) => {
            tracing::debug!(consumer = %shared.name, "eventhub: no replay records to check against ({e})");
            return false;
        }
    };
    match record {
        Ok(Some(value)) => serde_json::from_slice::<dlq::ReplayRecord>(&value)
            .is_ok_and(|r| r.vouches_for(target, message.subject.as_str(), &message.payload)),
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(consumer = %shared.name, "eventhub: cannot read the replay record of dead letter {id} ({e}); handling the event");
            false
        }
    }
}

/// Acks, retries or dead-letters a handled message according to the outcome.
async fn settle<F>(
    shared: &Shared<F>,
    message: &jetstream::Message,
    failed: &dlq::Failed<'_>,
    outcome: Outcome,
) {
    let counters = &shared.counters;
    let metrics = &shared.metrics;
    let delivered = failed.deliveries;
    let span = tracing::Span::current();
    if !matches!(outcome, Outcome::Handled) {
        ConsumerCounters::bump(&metrics.failed);
    }
    let (error, delay) = match outcome {
        Outcome::Handled => {
            match message.ack().await {
                Ok(()) => {
                    Counters::bump(&counters.handled);
                    ConsumerCounters::bump(&metrics.handled);
                    span.record("outcome", "ok");
                }
                Err(e) => {
                    span.record("outcome", "ack-failed");
                    tracing::warn!("eventhub: ack failed ({e}); the event will be delivered again")
                }
            }
            return;
        }
        Outcome::Failed(e) if !e.is_retryable() => {
            let error = e.to_string();
            Box::pin(dead_letter(
                shared,
                message,
                failed,
                DeadLetterReason::Rejected,
                &error,
            ))
            .await;
            return;
        }
        Outcome::Failed(e) => (e.to_string(), e.delay()),
        Outcome::Panicked(msg) => {
            Counters::bump(&counters.panics);
            (format!("handler panicked: {msg}"), None)
        }
        Outcome::TimedOut(t) => {
            Counters::bump(&counters.timeouts);
            (format!("handler timed out after {t:?}"), None)
        }
    };
    let max = u64::from(shared.options.max_deliver);
    if delivered >= max {
        let error = format!("delivery {delivered} of {max} failed: {error}");
        Box::pin(dead_letter(
            shared,
            message,
            failed,
            DeadLetterReason::MaxDeliver,
            &error,
        ))
        .await;
        return;
    }
    let delay = delay.unwrap_or_else(|| shared.options.backoff.delay(delivered));
    tracing::warn!(
        "eventhub: delivery {delivered} of {max} failed, retrying in {delay:?}: {error}"
    );
    Counters::bump(&counters.retried);
    ConsumerCounters::bump(&metrics.retried);
    span.record("outcome", "retry");
    if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
        tracing::warn!(
            "eventhub: nak failed ({e}); the event is delivered again after the ack wait"
        );
    }
}

/// Moves a message to the dead letters: stores the entry, waits for its ack, then `Term`s the
/// original. If the entry cannot be stored, the message is `Nak`ed and stays in its stream.
async fn dead_letter<F>(
    shared: &Shared<F>,
    message: &jetstream::Message,
    failed: &dlq::Failed<'_>,
    reason: DeadLetterReason,
    error: &str,
) {
    let mut last_error = None;
    for attempt in 0..3u32 {
        match dlq::write(&shared.client, failed, &reason, error).await {
            Ok(id) => {
                tracing::error!(
                    consumer = %shared.name,
                    dead_letter = id,
                    %reason,
                    "eventhub: {} #{} ({}) dead-lettered after {} deliveries: {error}",
                    failed.stream,
                    failed.sequence,
                    failed.subject,
                    failed.deliveries,
                );
                Counters::bump(&shared.counters.dead_lettered);
                shared.metrics.dead_lettered(reason.as_str());
                tracing::Span::current().record(
                    "outcome",
                    tracing::field::display(format_args!("dead-letter: {reason}")),
                );
                if let Err(e) = message.ack_with(AckKind::Term).await {
                    tracing::warn!(
                        "eventhub: term after dead-lettering failed ({e}); a redelivery will find the entry already stored"
                    );
                }
                return;
            }
            Err(e) => {
                last_error = Some(e);
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
    let delay = shared.options.backoff.delay(failed.deliveries);
    tracing::Span::current().record("outcome", "kept: dead letter not stored");
    tracing::error!(
        consumer = %shared.name,
        "eventhub: could not dead-letter {} #{} ({}), keeping it for redelivery in {delay:?}: {}",
        failed.stream,
        failed.sequence,
        failed.subject,
        last_error.map(|e| e.to_string()).unwrap_or_default(),
    );
    let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
}

#[allow(clippy::too_many_arguments)]
fn metadata(
    message: &jetstream::Message,
    headers_map: &Arc<async_nats::HeaderMap>,
    known: &Known<'_>,
    event_type: &str,
    version: u32,
    stream: String,
    sequence: u64,
    delivered: u64,
    published: DateTime<Utc>,
) -> Metadata {
    let owned = |v: Option<&str>| v.map(str::to_string);
    Metadata {
        id: event_id(known, &stream, sequence),
        event_type: event_type.to_string(),
        version,
        source: owned(known.source),
        time: known
            .time
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(published),
        subject: message.subject.to_string(),
        stream,
        sequence,
        delivered,
        correlation_id: owned(known.correlation_id),
        causation_id: owned(known.causation_id),
        trace: known.traceparent.and_then(TraceContext::parse),
        headers: headers_map.clone(),
    }
}

/// How often an event that waits, or whose handler runs, is kept alive: half the ack wait.
fn keep_alive_period(options: &ConsumerOptions) -> Duration {
    (options.ack_wait / 2).max(Duration::from_millis(50))
}

/// Resolves once a shutdown is requested (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::subjects_collide;

    #[test]
    fn subject_patterns_collide_when_a_subject_matches_both() {
        for (a, b, collide) in [
            ("events.user.created.v2", "events.user.created.*", true),
            ("events.user.>", "events.user.created.*", true),
            ("events.order.>", "events.orders.shipped.*", false),
            ("events.user.created.v2", "events.user.created.v2", true),
            ("events.user.created.v2", "events.user.updated.*", false),
            ("events.user.created.v2.x", "events.user.created.*", false),
            ("dlq.>", "events.user.created.*", false),
        ] {
            assert_eq!(subjects_collide(a, b), collide, "{a} / {b}");
            assert_eq!(subjects_collide(b, a), collide, "{b} / {a}");
        }
    }
}
