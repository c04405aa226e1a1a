//! One delivery, from arrival to ack: replay marks checked, decoded (poison set aside at once),
//! a free handler waited for, the handler service called while the delivery is kept alive, and
//! the [decision](super::decide()) carried out: ack, nak with a delay, or dead letter.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, kv};
use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tracing::Instrument;

use super::decide::{Decision, Outcome, decide};
use super::envelope::{Envelope, Metadata};
use super::handler::{FailureKind, HandlerError, Processed};
use super::options::ConsumerOptions;
use super::waiting::Waiting;
use crate::client::Client;
use crate::counters::ConsumerCounters as Counters;
use crate::dlq::{self, DeadLetterReason};
use crate::error::DecodeError;
use crate::publish::Publisher;
use crate::publish::schedule_headers;
use crate::wire::crypto::{Decryptor, Keyring};
use crate::wire::headers::{self, Known};
use crate::wire::trace::TraceContext;
use crate::wire::{Consumable, RawEvent, parse_subject};

/// What every delivery of one running consumer shares.
pub(super) struct Shared<S> {
    pub(super) client: Client,
    pub(super) publisher: Publisher,
    pub(super) name: String,
    pub(super) options: ConsumerOptions,
    /// The handler, wrapped in its layers.
    pub(super) service: S,
    /// What this instance did: its stats, and (summed per durable) its metrics.
    pub(super) counters: Arc<Counters>,
    pub(super) workers: Semaphore,
    /// Events waiting for a worker watch this, not a timer each: the loop bumps it every
    /// keep-alive period (they send an in-progress ack) and on shutdown (they hand their event
    /// back).
    pub(super) waiting: watch::Receiver<Waiting>,
    /// The dead-letter replay records, opened when the first replay mark arrives.
    pub(super) replays: tokio::sync::OnceCell<kv::Store>,
    /// The partition keys with events in flight ([`ConsumerOptions::ordered_by_key`]).
    pub(super) keys: Arc<super::keyed::KeyLocks>,
}

/// Handles one delivery. `held` is its slot among the consumer's `concurrency + prefetch`.
pub(super) async fn process<E, S>(
    shared: Arc<Shared<S>>,
    message: jetstream::Message,
    held: OwnedSemaphorePermit,
) where
    E: Consumable,
    S: Service<Envelope<E>, Response = Processed, Error = HandlerError> + Clone + Send + 'static,
    S::Future: Send + 'static,
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

    let mut failed = dlq::Failed {
        subject: message.subject.as_str(),
        headers: hdrs,
        payload: message.payload.clone(),
        stream: &stream,
        sequence,
        consumer: &shared.name,
        deliveries: delivered,
    };

    // Who sent it, proven before anything else reads it.
    if let Some(trust) = shared.client.trust()
        && let Err(why) = trust.verify(&shared_headers, message.subject.as_str(), &message.payload)
    {
        Counters::bump(&counters.forged);
        tracing::warn!(consumer = %shared.name, "eventhub: {stream} #{sequence} is forged: {why}");
        let decision = decide(Outcome::Forged(&why), delivered, max_deliver(&shared));
        carry_out(&shared, &message, &failed, decision, None).await;
        return;
    }

    if let Some(scheduler) = shared_headers.get(schedule_headers::SCHEDULER)
        && let Some(why) = forged_schedule(
            scheduler.as_str(),
            known.source,
            message.subject.as_str(),
            shared.client.trust(),
        )
    {
        Counters::bump(&counters.forged);
        tracing::warn!(consumer = %shared.name, "eventhub: {stream} #{sequence} is forged: {why}");
        let decision = decide(Outcome::Forged(&why), delivered, max_deliver(&shared));
        carry_out(&shared, &message, &failed, decision, None).await;
        return;
    }

    // Decode before waiting for a worker: a poison message is set aside at once.
    let decode = || match parse_subject(message.subject.as_str()) {
        // The type decides what it decodes: one family, or every family of a domain it knows
        // (`Consumable::decode_typed` refuses any other type).
        Some((ty, version)) => {
            let raw = RawEvent::new(known.content_type, &message.payload)
                .with_validation(shared.options.validation);
            let event = if E::HAS_SENSITIVE_FIELDS {
                decode_with_keys::<E>(&shared.client, &shared.name, ty, version, &raw, hdrs)
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
    let (mut event, version) = match decode() {
        Ok(ok) => ok,
        Err(error) => {
            Counters::bump(&counters.poison);
            let decision = decide(
                Outcome::Undecodable(&error),
                delivered,
                max_deliver(&shared),
            );
            carry_out(&shared, &message, &failed, decision, None).await;
            return;
        }
    };

    // Events of one key, one at a time in arrival order (taken before any await: see
    // KeyLocks::turn). The key is read only when ordering needs it: reading it serializes
    // the event.
    let key = if shared.options.ordered_by_key {
        event.partition_key()
    } else {
        None
    };
    let key_turn = match key {
        Some(key) => {
            match shared
                .keys
                .turn(key, &message, shared.waiting.clone())
                .await
            {
                Some(turn) => Some(turn),
                None => {
                    give_back(message, shared.counters.clone()).await;
                    return;
                }
            }
        }
        _ => None,
    };

    // Take a free handler; if none, wait, keeping the message alive meanwhile.
    let mut worker = match shared.workers.try_acquire() {
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

    // A failing event of a key is tried again here, not nak'ed (see keyed): `attempt` counts
    // its deliveries and tries.
    let mut attempt = delivered;
    loop {
        let meta = metadata(
            &message,
            &shared_headers,
            &known,
            E::FAMILY.event_type,
            version,
            stream.clone(),
            sequence,
            attempt,
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
            delivered = attempt,
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
        let call = shared
            .service
            .clone()
            .oneshot(envelope)
            .instrument(span.clone());
        tokio::pin!(call);
        // In-progress acks while the handler (and its layers: an idempotency claim being waited
        // for, say) runs, so the delivery is not redelivered mid-work.
        let period = keep_alive_period(&shared.options);
        let mut keep_alive = tokio::time::interval_at(Instant::now() + period, period);
        let result = loop {
            tokio::select! {
                biased;
                result = &mut call => break result,
                _ = keep_alive.tick() => {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        };
        let outcome = match &result {
            Ok(done) => Outcome::Done(*done),
            Err(e) => {
                match e.kind() {
                    FailureKind::Panicked => Counters::bump(&counters.panics),
                    FailureKind::TimedOut => Counters::bump(&counters.timeouts),
                    _ => {}
                }
                Outcome::Failed(e)
            }
        };
        let duplicate = matches!(result, Ok(Processed::Duplicate));
        let decision = decide(outcome, attempt, max_deliver(&shared));
        if let (Some(_), Decision::Retry { delay, error }) = (&key_turn, &decision) {
            let delay = delay.unwrap_or_else(|| shared.options.backoff.delay(attempt));
            tracing::warn!(parent: &span, "eventhub: attempt {attempt} of {} failed, trying again in place in {delay:?} (its key waits): {error}", shared.options.max_deliver);
            Counters::bump(&counters.retried);
            // Free the handler slot for other keys while this one waits.
            drop(worker);
            if !super::keyed::pause(delay, &message, shared.waiting.clone()).await {
                give_back(message, shared.counters.clone()).await;
                return;
            }
            worker = match shared.workers.acquire().await {
                Ok(p) => p,
                Err(_) => return,
            };
            match decode() {
                Ok((again, _)) => event = again,
                Err(_) => return,
            }
            attempt += 1;
            failed.deliveries = attempt;
            continue;
        }
        carry_out(&shared, &message, &failed, decision, Some(duplicate))
            .instrument(span)
            .await;
        return;
    }
}

fn max_deliver<S>(shared: &Shared<S>) -> u64 {
    u64::from(shared.options.max_deliver)
}

/// Acks, retries or dead-letters a delivery as decided. `handled`: whether the handler service
/// ran (`Some(duplicate)`: it was a duplicate) — counted when acked.
async fn carry_out<S>(
    shared: &Shared<S>,
    message: &jetstream::Message,
    failed: &dlq::Failed<'_>,
    decision: Decision,
    handled: Option<bool>,
) {
    let counters = &shared.counters;
    let span = tracing::Span::current();
    match decision {
        Decision::Ack => match message.ack().await {
            Ok(()) => {
                if handled == Some(true) {
                    Counters::bump(&counters.duplicates_skipped);
                    span.record("outcome", "duplicate");
                } else {
                    Counters::bump(&counters.handled);
                    span.record("outcome", "ok");
                }
            }
            Err(e) => {
                span.record("outcome", "ack-failed");
                tracing::warn!("eventhub: ack failed ({e}); the event will be delivered again")
            }
        },
        Decision::Retry { delay, error } => {
            let delivered = failed.deliveries;
            let delay = delay.unwrap_or_else(|| shared.options.backoff.delay(delivered));
            let max = shared.options.max_deliver;
            tracing::warn!(
                "eventhub: delivery {delivered} of {max} failed, retrying in {delay:?}: {error}"
            );
            Counters::bump(&counters.retried);
            span.record("outcome", "retry");
            if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
                tracing::warn!(
                    "eventhub: nak failed ({e}); the event is delivered again after the ack wait"
                );
            }
        }
        Decision::DeadLetter { reason, error } => {
            Box::pin(dead_letter(shared, message, failed, reason, &error)).await;
        }
    }
}

/// Moves a message to the dead letters: stores the entry, waits for its ack, then `Term`s the
/// original. If the entry cannot be stored, the message is `Nak`ed and stays in its stream.
async fn dead_letter<S>(
    shared: &Shared<S>,
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
                shared.counters.dead_lettered(reason.as_str());
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

/// Decodes a received event of a type with sensitive fields: decrypted when the consumer holds
/// the key its header names, as stored (ciphertext in those fields) when it does not.
fn decode_with_keys<E: Consumable>(
    client: &Client,
    consumer: &str,
    event_type: &str,
    version: u32,
    raw: &RawEvent<'_>,
    hdrs: Option<&HeaderMap>,
) -> Result<E, DecodeError> {
    let header = |name: &str| hdrs?.get(name).map(|v| v.as_str());
    let Some(key_id) = header(headers::ENCRYPTION_KEY) else {
        return E::decode_typed(event_type, version, raw);
    };
    match client.keyring() {
        // Without the `encryption` feature, as without the key: the fields stay ciphertext.
        Some(keyring) if cfg!(feature = "encryption") && keyring.contains(key_id) => {
            let decryptor =
                Decryptor::new(keyring, key_id, header(headers::ID).unwrap_or_default());
            E::decode_typed_decrypting(event_type, version, raw, &decryptor)
        }
        keyring => {
            note_missing_key(consumer, event_type, key_id, keyring);
            E::decode_typed(event_type, version, raw)
        }
    }
}

/// Says once per consumer and key that its handler gets ciphertext.
fn note_missing_key(consumer: &str, event_type: &str, key_id: &str, keyring: Option<&Keyring>) {
    // Bounded by consumers × keys; most processes never insert anything.
    static NOTED: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());
    let first = NOTED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert((consumer.to_string(), key_id.to_string()));
    if !first {
        return;
    }
    match keyring {
        // A service without keys may well be meant to see ciphertext only.
        None => tracing::debug!(
            consumer,
            key_id,
            "eventhub: {event_type} events are encrypted with key `{key_id}` and this service \
             holds no keys: its handler receives the x-sensitive fields as ciphertext"
        ),
        Some(keyring) => tracing::warn!(
            consumer,
            key_id,
            "eventhub: {event_type} events are encrypted with key `{key_id}`, which this \
             service's keyring (active key `{}`) lacks: its handler receives the x-sensitive \
             fields as ciphertext; add the key to decrypt them",
            keyring.active_key_id()
        ),
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
async fn replay_is_recorded<S>(
    shared: &Shared<S>,
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
    let header = |name: &str| headers_map.get(name).map(|v| v.as_str().to_string());
    Metadata {
        id: event_id(known, &stream, sequence),
        event_type: event_type.to_string(),
        version,
        source: owned(known.source),
        // The lean wire format leaves out a time and trace the event id implies.
        time: known
            .time
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| known.id.and_then(crate::wire::headers::time_of_id))
            .unwrap_or(published),
        subject: message.subject.to_string(),
        stream,
        sequence,
        delivered,
        // The lean wire format leaves out a correlation id equal to the event id: an event
        // with an id and no correlation starts its own flow.
        correlation_id: owned(known.correlation_id.or(known.id)),
        causation_id: owned(known.causation_id),
        trace: known
            .traceparent
            .and_then(TraceContext::parse)
            .or_else(|| known.id.and_then(TraceContext::of_event_id)),
        scheduler: header(schedule_headers::SCHEDULER),
        occurrence: header(schedule_headers::SCHEDULE_NEXT).filter(|next| next.as_str() != PURGE),
        headers: headers_map.clone(),
    }
}

/// `Nats-Schedule-Next` of the event a one-shot schedule published (the schedule is purged).
const PURGE: &str = "purge";

/// Why a scheduled event (one carrying `Nats-Scheduler`) is forged, if it is. The server
/// publishes a schedule's event on the schedule's `Nats-Schedule-Target`, whatever the
/// permissions of the service that stored it, and copies another subject's last message
/// when asked (`Nats-Schedule-Source`): the schedule's namespace must name the event's
/// `ce-source`, and that service must be the type's declared publisher when the trust knows it.
fn forged_schedule(
    scheduler: &str,
    source: Option<&str>,
    subject: &str,
    trust: Option<&crate::wire::signing::Trust>,
) -> Option<String> {
    let source_text = source.unwrap_or("(none)");
    match crate::topology::schedule_owner(scheduler) {
        Some(owner) if Some(owner) == source => {}
        Some(owner) => {
            return Some(format!(
                "published from schedule `{scheduler}` of service `{owner}`, but its ce-source \
                 is `{source_text}`: a service schedules only its own events"
            ));
        }
        // `schedules.<stream>.<key>`: eventhub before namespaces (only an operator can write
        // there under the generated permissions).
        None if scheduler.starts_with("schedules.") && scheduler.split('.').count() == 3 => {}
        None => {
            return Some(format!(
                "carries Nats-Scheduler `{scheduler}`, which is not a schedule subject \
                 (schedules.<stream>.<service>.<key>)"
            ));
        }
    }
    let event_type = parse_subject(subject).map(|(ty, _)| ty)?;
    match trust.and_then(|t| t.publisher_of(event_type)) {
        Some(publisher) if Some(publisher) != source => Some(format!(
            "a scheduled {event_type} event from `{source_text}`, but `{publisher}` publishes \
             {event_type}: the server published it from a schedule on a subject its service \
             may not publish to"
        )),
        _ => None,
    }
}

/// How often an event that waits, or whose handler runs, is kept alive: half the ack wait.
pub(super) fn keep_alive_period(options: &ConsumerOptions) -> Duration {
    (options.ack_wait / 2).max(Duration::from_millis(50))
}

/// Returns a message that will not be handled here (shutdown) to the server at once.
pub(super) async fn give_back(message: jetstream::Message, counters: Arc<Counters>) {
    Counters::bump(&counters.returned);
    if let Err(e) = message.ack_with(AckKind::Nak(None)).await {
        tracing::debug!(
            "eventhub: returning a message failed ({e}); it is redelivered after the ack wait"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::forged_schedule;
    use crate::wire::signing::Trust;

    const SUBJECT: &str = "events.user.created.v1";

    #[test]
    fn a_schedule_vouches_only_for_its_own_services_events() {
        let own = "schedules.IDENTITY.auth.welcome";
        assert_eq!(forged_schedule(own, Some("auth"), SUBJECT, None), None);
        let why = forged_schedule(own, Some("payments"), SUBJECT, None).unwrap();
        assert!(
            why.contains("of service `auth`, but its ce-source is `payments`"),
            "{why}"
        );
        assert!(forged_schedule(own, None, SUBJECT, None).is_some());
        // The type's declared publisher, when the trust knows it.
        let trust = Trust::new().publisher("user.created", "auth");
        assert_eq!(
            forged_schedule(own, Some("auth"), SUBJECT, Some(&trust)),
            None
        );
        let theirs = "schedules.IDENTITY.payments.x";
        let why = forged_schedule(theirs, Some("payments"), SUBJECT, Some(&trust)).unwrap();
        assert!(why.contains("`auth` publishes user.created"), "{why}");
        // Subjects before the namespaces name no service; anything else is no schedule.
        assert_eq!(
            forged_schedule(
                "schedules.IDENTITY.old",
                Some("auth"),
                SUBJECT,
                Some(&trust)
            ),
            None
        );
        assert!(
            forged_schedule("schedules.IDENTITY.old", Some("x"), SUBJECT, Some(&trust)).is_some()
        );
        assert!(forged_schedule("events.user.created.v1", Some("auth"), SUBJECT, None).is_some());
        assert!(
            forged_schedule(
                "schedules.IDENTITY.auth.k.cancelled",
                Some("auth"),
                SUBJECT,
                None
            )
            .is_some()
        );
    }
}
