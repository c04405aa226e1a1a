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

mod decide;
mod driver;
mod envelope;
mod handler;
mod idempotency;
mod keyed;
pub mod layers;
mod options;
mod pull;
mod waiting;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{
    self, AckPolicy, DeliverPolicy, PriorityPolicy, PullConsumer,
};
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::layer::util::{Identity, Stack};
use tower::{Layer, Service, ServiceBuilder};

use crate::client::Client;
use crate::counters::ConsumerCounters as Counters;
use crate::error::{ConsumeError, ConsumeErrorKind};
use crate::publish::Publisher;
use crate::wire::Consumable;
use driver::{Shared, give_back, keep_alive_period};
use idempotency::Guard;
use layers::{IdempotencyLayer, MetricsLayer};
use pull::{Arrival, Puller};
use waiting::Waiting;

pub use decide::{Decision, Outcome, decide};
pub use envelope::{Envelope, Metadata};
pub use handler::{FailureKind, HandlerError, HandlerFn, Processed};
pub use idempotency::{IDEMPOTENCY_PREFIX, bucket_config as idempotency_bucket_config};
pub use layers::{CatchPanicLayer, TimeoutLayer};
pub use options::{Backoff, ConsumerOptions, Failover, StartFrom};

pub use crate::counters::ConsumerStats;

/// Metadata key marking consumers eventhub manages.
const MANAGED: &str = "eventhub.managed";

impl<E: Consumable> Consumer<E> {
    /// Creates or updates the durable consumer of `E` for `client`'s service (see
    /// [`Client::consumer`]).
    pub(crate) async fn create(
        client: &Client,
        options: ConsumerOptions,
    ) -> Result<Consumer<E>, ConsumeError> {
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| options::default_name(client.service(), E::FAMILY.event_type));
        validate(&name, &options)?;
        if options.failover != Failover::None && !client.server_at_least(2, 11) {
            return Err(ConsumeError::new(
                ConsumeErrorKind::Unsupported,
                format!(
                    "consumer {name}: failover ({:?}) needs nats-server 2.11 or later (priority \
                     groups); the server at {} is {}",
                    options.failover,
                    client.url(),
                    client.server_version()
                ),
            ));
        }
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
                client.service(),
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
                StartFrom::Time(start_time) => DeliverPolicy::ByStartTime { start_time },
                StartFrom::Sequence(start_sequence) => {
                    DeliverPolicy::ByStartSequence { start_sequence }
                }
            },
            priority_policy: match options.failover {
                Failover::None => PriorityPolicy::None,
                Failover::Pinned { .. } => PriorityPolicy::PinnedClient,
                Failover::Overflow { .. } => PriorityPolicy::Overflow,
            },
            priority_groups: match options.failover {
                Failover::None => Vec::new(),
                _ => vec![Failover::GROUP.to_string()],
            },
            priority_timeout: match options.failover {
                Failover::Pinned { takeover } => takeover,
                _ => Duration::ZERO,
            },
            metadata: [
                (MANAGED.to_string(), "true".to_string()),
                ("eventhub.service".to_string(), client.service().to_string()),
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
            ensure(client, E::FAMILY.stream, &config).await?;
            let slots = Arc::new(Semaphore::new(options.concurrency + options.prefetch));
            let puller = Puller::new(
                client,
                E::FAMILY.stream,
                &name,
                slots,
                options.pull_expires(),
                options.failover,
            )
            .await
            .map_err(|e| {
                ConsumeError::with_source(
                    ConsumeErrorKind::Unreachable,
                    format!(
                        "consumer {name} cannot subscribe its inbox at {}",
                        client.url()
                    ),
                    e,
                )
            })?;
            let guard = match options.idempotency_window {
                Some(window) => Some(Guard::open(client, &name, window, options.ack_wait).await?),
                None => None,
            };
            Ok::<_, ConsumeError>((puller, guard))
        };
        let (puller, guard) = tokio::select! {
            result = pull => result?,
            subject = client.permissions().first_denied_since(since) => {
                // Creating the bucket starts with the account's limits (`$JS.API.INFO`).
                let bucket = subject == "$JS.API.INFO"
                    || subject.starts_with(&format!("$JS.API.STREAM.UPDATE.KV_{IDEMPOTENCY_PREFIX}"))
                    || subject.starts_with(&format!("$JS.API.STREAM.CREATE.KV_{IDEMPOTENCY_PREFIX}"));
                let fix = if bucket && options.idempotency_window.is_some() {
                    "the service may not create its idempotency bucket; it must exist \
                     already, with the consumer's idempotency window (declared for the service)"
                } else {
                    "the service's permissions do not declare this consumer"
                };
                return Err(ConsumeError::new(
                    ConsumeErrorKind::PermissionDenied,
                    format!(
                        "service `{}` ({}) may not use `{subject}`, which consumer {name} needs: \
                         the server refused it (permissions violation); {fix}",
                        client.service(),
                        client.identity()
                    ),
                ));
            }
        };
        Ok(Consumer {
            client: client.clone(),
            name,
            stream: E::FAMILY.stream,
            config,
            options,
            puller,
            guard,
            layers: Identity::new(),
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
    if let Failover::Pinned { takeover } = options.failover
        && takeover < Duration::from_secs(1)
    {
        return invalid(format!(
            "consumer {name}: failover takeover {takeover:?} is too short (at least 1s: the \
             pinned instance pulls every takeover / 2)"
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
                         with a different start position or failover kind must be deleted to \
                         change it)"
                    ),
                    e,
                ),
            }
        })
}

/// A durable consumer of `E`, created by [`Client::consumer`]; run it with
/// [`Consumer::spawn`] or [`Consumer::run`] (a closure as handler), or
/// [`Consumer::spawn_service`] (any `tower::Service`). `L` is the stack of layers added with
/// [`Consumer::layer`].
#[derive(Debug)]
pub struct Consumer<E, L = Identity> {
    client: Client,
    name: String,
    stream: &'static str,
    config: consumer::pull::Config,
    options: ConsumerOptions,
    /// The pull requests and the slots they hold: `concurrency + prefetch`.
    puller: Puller,
    guard: Option<Guard>,
    layers: L,
    _event: PhantomData<fn() -> E>,
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

impl<E: Consumable, L> Consumer<E, L> {
    /// The durable's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream it reads.
    pub fn stream(&self) -> &'static str {
        self.stream
    }

    /// Adds a layer around the handler, inside the built-in ones (see [`layers`]): any
    /// `tower::Layer` whose service takes an [`Envelope<E>`] and answers [`Processed`] or a
    /// [`HandlerError`]. Layers added first are outermost.
    pub fn layer<T>(self, layer: T) -> Consumer<E, Stack<T, L>> {
        Consumer {
            client: self.client,
            name: self.name,
            stream: self.stream,
            config: self.config,
            options: self.options,
            puller: self.puller,
            guard: self.guard,
            layers: Stack::new(layer, self.layers),
            _event: PhantomData,
        }
    }

    /// Runs `handler` on every event in the background.
    pub fn spawn<F, Fut>(self, handler: F) -> ConsumerHandle
    where
        F: Fn(Envelope<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
        L: Layer<HandlerFn<F>>,
        L::Service: Service<Envelope<E>, Response = Processed, Error = HandlerError>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Envelope<E>>>::Future: Send + 'static,
    {
        self.spawn_service(HandlerFn::new(handler))
    }

    /// Runs `service` (a handler as a `tower::Service`, inside this consumer's layers) on every
    /// event in the background.
    pub fn spawn_service<H>(self, service: H) -> ConsumerHandle
    where
        L: Layer<H>,
        L::Service: Service<Envelope<E>, Response = Processed, Error = HandlerError>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Envelope<E>>>::Future: Send + 'static,
    {
        let (tx, rx) = watch::channel(false);
        let name = self.name.clone();
        let durable =
            self.client
                .registry()
                .consumer(&self.name, self.stream, E::FAMILY.event_type);
        // One set of counts for the stats and the metrics; alive (for health) until the task
        // ends, and a graceful end retires it.
        let (counters, running) = durable.start();
        let inner = self.layers.layer(service);
        let builtin = ServiceBuilder::new()
            .layer(CatchPanicLayer)
            .option_layer(self.guard.clone().map(|guard| IdempotencyLayer {
                guard,
                renew_every: keep_alive_period(&self.options),
                record_for: self.options.ack_wait,
                consumer: self.name.as_str().into(),
            }))
            .option_layer(self.options.handler_timeout.map(TimeoutLayer::new))
            .layer(MetricsLayer {
                counters: counters.clone(),
                latency: durable.latency.clone(),
            })
            .service(inner);
        let run = run_loop(
            self.client,
            self.name,
            self.stream,
            self.config,
            self.options,
            self.puller,
            builtin,
            rx,
            counters.clone(),
        );
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
    pub async fn run<F, Fut, Sd>(self, handler: F, shutdown: Sd) -> ConsumerStats
    where
        F: Fn(Envelope<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
        L: Layer<HandlerFn<F>>,
        L::Service: Service<Envelope<E>, Response = Processed, Error = HandlerError>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Envelope<E>>>::Future: Send + 'static,
        Sd: Future + Send,
    {
        let handle = self.spawn(handler);
        shutdown.await;
        handle.shutdown().await
    }
}

/// The consumer's loop: pulls, hands each delivery to [`driver::process`], and shuts down.
#[allow(clippy::too_many_arguments)]
async fn run_loop<E, S>(
    client: Client,
    name: String,
    stream: &'static str,
    config: consumer::pull::Config,
    options: ConsumerOptions,
    mut puller: Puller,
    service: S,
    mut shutdown: watch::Receiver<bool>,
    counters: Arc<Counters>,
) -> ConsumerStats
where
    E: Consumable,
    S: Service<Envelope<E>, Response = Processed, Error = HandlerError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    {
        let held_max = options.concurrency + options.prefetch;
        let min_batch = u32::try_from(held_max.div_ceil(2)).unwrap_or(u32::MAX);
        let held = puller.slots().clone();
        let (waiting, waiting_rx) = watch::channel(Waiting::default());
        let period = keep_alive_period(&options);
        let mut keep_alive = tokio::time::interval_at(Instant::now() + period, period);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shared = Arc::new(Shared {
            publisher: Publisher::new(client.clone()),
            client: client.clone(),
            name: name.clone(),
            workers: Semaphore::new(options.concurrency),
            options: options.clone(),
            service,
            counters: counters.clone(),
            waiting: waiting_rx,
            replays: tokio::sync::OnceCell::new(),
            keys: Default::default(),
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
                            tasks.push(Box::pin(driver::process::<E, S>(shared.clone(), message, slot)));
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

/// Resolves once a shutdown is requested (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
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
