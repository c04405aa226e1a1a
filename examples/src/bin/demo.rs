//! The flagship demo: services talking through events.
//!
//! - **auth** publishes `user.created` for new users (and, as a buggy build would, one malformed
//!   event);
//! - **payments** and **profile** each consume `user.created` with their own durable consumer:
//!   payments opens a billing account and publishes `payment.created`; profile creates the
//!   profile, failing once on a transient error and succeeding on the retry;
//! - **admin** consumes `payment.created` and writes an audit line, following the correlation
//!   id back to the sign-up;
//! - the malformed event goes to the dead letters (reason `poison`) for both consumers, while
//!   good events keep flowing; an operator could replay or delete those entries.
//!
//! Run it with `scripts/demo` (starts nats-server with nats.conf if none is running), or
//! `cargo run -p eventhub-examples --bin demo` against `$NATS_URL`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use eventhub::Backoff;
use eventhub::Client;
use eventhub::ConnectOptions;
use eventhub::ConsumerHandle;
use eventhub::ConsumerOptions;
use eventhub::Envelope;
use eventhub::Event;
use eventhub::HandlerError;
use eventhub::PublishOptions;
use eventhub::Sweeper;
use eventhub::dlq::DeadLetterFilter;
use eventhub::topology::StreamAction;
use eventhub::wire::headers;
use eventhub_catalog::events::{payment, user};
use tokio::sync::mpsc;

/// What the services report to the demo's main loop.
enum Report {
    /// A service finished handling the event with this id.
    Handled(&'static str, String),
}

fn options() -> ConsumerOptions {
    ConsumerOptions::default()
        .backoff(Backoff::schedule([Duration::from_millis(500)]))
        .fetch_expires(Duration::from_millis(500))
}

fn short(id: &str) -> &str {
    id.get(id.len().saturating_sub(8)..).unwrap_or(id)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = chrono::Utc::now();
    let connect = |service: &'static str| async move {
        Client::connect(ConnectOptions::from_env(service))
            .await
            .with_context(|| format!("service {service}"))
    };
    // ops provisions, sweeps and reads the dead letters; each service connects as its own user
    // (nats.conf grants it only what it owns and consumes).
    let ops = connect("ops").await?;
    let auth = connect("auth").await?;
    println!(
        "eventhub demo at {}: auth publishes user.created; payments and profile consume it; \
         admin consumes payment.created\n",
        auth.url()
    );
    let report = ops.provision(&eventhub_catalog::TOPOLOGY).await?;
    let changed = report
        .streams
        .iter()
        .filter(|s| s.action != StreamAction::Unchanged)
        .count();
    println!(
        "[ops]      streams provisioned: {} declared, {changed} created or updated",
        report.streams.len()
    );
    let sweeper = Sweeper::new(&ops).spawn().await?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let consumers = start_services(&connect, tx).await?;

    // auth: two sign-ups, a retried publish (same id: stored once), and one malformed event.
    let mut expected = BTreeSet::new();
    let publisher = auth.publisher();
    for (email, name) in [
        ("ada@example.com", "Ada Lovelace"),
        ("grace@example.com", "Grace Hopper"),
    ] {
        let event: user::CreatedV2 = serde_json::from_value(serde_json::json!({
            "user_id": uuid::Uuid::now_v7(),
            "email": email,
            "display_name": name,
            "locale": "en-GB",
            "created_at": chrono::Utc::now(),
        }))?;
        let receipt = publisher.publish(&event).await?;
        println!(
            "[auth]     published user.created v2 for {email} -> {} #{} (id …{})",
            receipt.stream,
            receipt.sequence,
            short(&receipt.id)
        );
        expected.insert(("payments", receipt.id.clone()));
        expected.insert(("profile", receipt.id.clone()));
        if email.starts_with("ada") {
            let again = publisher
                .publish_with(&event, PublishOptions::default().id(receipt.id.clone()))
                .await?;
            println!(
                "[auth]     published it again with the same id -> duplicate: {} (stored once)",
                again.duplicate
            );
        }
    }
    let mut h = async_nats::HeaderMap::new();
    let bad_id = eventhub::wire::headers::new_event_id();
    h.insert(headers::ID, bad_id.as_str());
    h.insert(headers::MSG_ID, bad_id.as_str());
    h.insert(headers::SOURCE, "auth");
    h.insert(headers::CONTENT_TYPE, eventhub::wire::codec::JSON);
    auth.jetstream()
        .publish_with_headers(
            <user::CreatedV2 as Event>::SUBJECT,
            h,
            br#"{"user_id": 42, "email": "broken@example.com"}"#.as_slice().into(),
        )
        .await?
        .await?;
    println!(
        "[auth]     published a malformed user.created v2 (user_id is a number, locale missing) \
         (id …{})",
        short(&bad_id)
    );

    // Wait for every service to handle every good event (payments' events reach admin too).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut admin_left = 2;
    while !expected.is_empty() || admin_left > 0 {
        let report = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .context("the flow did not complete within 30 s")?;
        match report {
            Some(Report::Handled("admin", _)) => admin_left -= 1,
            Some(Report::Handled(service, id)) => {
                expected.remove(&(service, id));
            }
            None => bail!("the services stopped"),
        }
    }
    // And for the malformed event to reach the dead letters of both consumers.
    let dead_letters = ops.dead_letters();
    let filter = DeadLetterFilter::default().since(started);
    let entries = loop {
        let entries: Vec<_> = dead_letters
            .list(&filter)
            .await?
            .into_iter()
            .filter(|e| e.event_id.as_deref() == Some(bad_id.as_str()))
            .collect();
        if entries.len() >= 2 {
            break entries;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the malformed event did not reach the dead letters within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("\ndead letters of this run:");
    for e in &entries {
        println!(
            "  #{} consumer={} reason={} deliveries={} from {} #{}\n      error: {}",
            e.id, e.consumer, e.reason, e.deliveries, e.stream, e.sequence, e.error
        );
    }
    println!("  (replay one with DeadLetters::replay once the producer is fixed)");

    println!("\nconsumers:");
    for handle in consumers {
        let name = handle.name().to_string();
        let s = handle.shutdown().await;
        println!(
            "  {name:<28} handled {}  retried {}  dead-lettered {} (poison {})",
            s.handled, s.retried, s.dead_lettered, s.poison
        );
    }
    sweeper.shutdown().await;
    Ok(())
}

/// Starts payments, profile and admin, each with its own connection and durable consumer.
async fn start_services<C, F>(
    connect: &C,
    tx: mpsc::UnboundedSender<Report>,
) -> anyhow::Result<Vec<ConsumerHandle>>
where
    C: Fn(&'static str) -> F,
    F: std::future::Future<Output = anyhow::Result<Client>>,
{
    // payments: opens a billing account for each new user: a pending payment of the sign-up fee.
    let payments = connect("payments").await?;
    let t = tx.clone();
    let payments = payments.consumer::<user::Created>(options()).await?.spawn(
        move |env: Envelope<user::Created>| {
            let t = t.clone();
            async move {
                let user::Created::V2(created) = env.event() else {
                    return Ok(()); // v1 sign-ups have no locale to bill in; nothing to do
                };
                let payment: payment::CreatedV1 = serde_json::from_value(serde_json::json!({
                    "payment_id": uuid::Uuid::now_v7(),
                    "user_id": created.user_id,
                    "amount": { "amount_minor": 990, "currency": "EUR" },
                    "method": "card",
                    "created_at": chrono::Utc::now(),
                }))?;
                let receipt = env.publisher().publish(&payment).await?;
                println!(
                    "[payments] handled user.created for {} (delivery {}) -> published \
                     payment.created -> {} #{}",
                    created.email,
                    env.meta().delivered,
                    receipt.stream,
                    receipt.sequence
                );
                let _ = t.send(Report::Handled("payments", env.meta().id.clone()));
                Ok(())
            }
        },
    );

    // profile: the profile store times out once for grace; the retry succeeds.
    let profile = connect("profile").await?;
    let t = tx.clone();
    let failed_once = Arc::new(Mutex::new(BTreeSet::new()));
    let profile = profile.consumer::<user::CreatedV2>(options()).await?.spawn(
        move |env: Envelope<user::CreatedV2>| {
            let (t, failed_once) = (t.clone(), failed_once.clone());
            async move {
                let first_time = failed_once
                    .lock()
                    .map(|mut seen| seen.insert(env.meta().id.clone()))
                    .unwrap_or(false);
                if env.email.starts_with("grace") && first_time {
                    println!(
                        "[profile]  failed  user.created for {} (delivery {}): profile store \
                         timed out -> retry in 500ms",
                        env.email,
                        env.meta().delivered
                    );
                    return Err(HandlerError::retry("profile store timed out"));
                }
                println!(
                    "[profile]  handled user.created for {} (delivery {}): profile created, \
                     locale {}",
                    env.email,
                    env.meta().delivered,
                    env.locale.as_str()
                );
                let _ = t.send(Report::Handled("profile", env.meta().id.clone()));
                Ok(())
            }
        },
    );

    // admin: audits every payment, tracing it back to the sign-up by correlation id.
    let admin = connect("admin").await?;
    let t = tx;
    let admin = admin.consumer::<payment::Created>(options()).await?.spawn(
        move |env: Envelope<payment::Created>| {
            let t = t.clone();
            async move {
                let payment::Created::V1(p) = env.event();
                let meta = env.meta();
                println!(
                    "[admin]    handled payment.created {} {} (from {}; correlation …{}, caused \
                     by …{})",
                    p.amount.amount_minor,
                    p.amount.currency.as_str(),
                    meta.source.as_deref().unwrap_or("?"),
                    short(meta.correlation_id.as_deref().unwrap_or("")),
                    short(meta.causation_id.as_deref().unwrap_or("")),
                );
                let _ = t.send(Report::Handled("admin", meta.id.clone()));
                Ok(())
            }
        },
    );
    Ok(vec![payments, profile, admin])
}
