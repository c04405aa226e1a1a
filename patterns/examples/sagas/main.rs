//! Seed 004's sagas against a running nats-server (`NATS_URL`, default `nats://127.0.0.1:4222`,
//! e.g. `nats-server -js`): User Registration and GDPR User Deletion, with the services around
//! them, and their outcomes printed.
//!
//! ```text
//! cargo run -p eventhub-patterns --example sagas
//! ```
//!
//! - ada registers: profile, preferences, welcome email, analytics: **completed**;
//! - bob's welcome email bounces: **compensated** (profile, preferences and account undone);
//! - cid's preferences service is down: the step times out: **compensated**;
//! - dora asks for erasure: every service confirms: **completed**;
//! - eve asks for erasure, analytics never confirms: after the deadline, **escalated**.
//!
//! `SAGA_TIMEOUT_SECS` (default 3) is both the registration's step timeout and the erasure
//! deadline (production would use hours and days). Each run uses fresh user ids; `eventhub
//! sagas list registration` shows the records afterwards.

#[path = "flows.rs"]
mod flows;

use std::time::Duration;

use anyhow::Context;
use eventhub::{Client, ConnectOptions};
use eventhub_catalog::{TOPOLOGY, events::user};
use eventhub_patterns::saga::{self, SagaRecord, SagaRecords};
use flows::{Behaviour, GdprErasure, Registration};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let timeout = Duration::from_secs(
        std::env::var("SAGA_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let connect = |service: &'static str| {
        let url = url.clone();
        async move {
            Client::connect(ConnectOptions::new(service).url(url))
                .await
                .with_context(|| format!("connecting as {service} (is nats-server -js running?)"))
        }
    };
    connect("ops").await?.provision(&TOPOLOGY).await?;

    let id = || uuid::Uuid::now_v7().to_string();
    let (ada, bob, cid, dora, eve) = (id(), id(), id(), id(), id());
    let names = [
        (ada.clone(), "ada"),
        (bob.clone(), "bob"),
        (cid.clone(), "cid"),
        (dora.clone(), "dora"),
        (eve.clone(), "eve"),
    ];
    let name = move |text: String| {
        names
            .iter()
            .fold(text, |t, (id, name)| t.replace(id.as_str(), name))
    };

    let (log, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let behaviour = Behaviour {
        bounce: [bob.clone()].into(),
        preferences_silent: [cid.clone()].into(),
        analytics_silent: [eve.clone()].into(),
    };
    let services = flows::start_services(&url, behaviour, log).await?;
    let printer = {
        let name = name.clone();
        tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                println!("  [{}]", name(line));
            }
        })
    };

    let onboarding = connect("onboarding").await?;
    let registration = saga::start(
        &onboarding,
        Registration {
            step_timeout: timeout,
        },
        Registration::options(),
    )
    .await?;
    let privacy = connect("privacy").await?;
    let erasure = saga::start(
        &privacy,
        GdprErasure { deadline: timeout },
        GdprErasure::options(),
    )
    .await?;

    println!("User Registration (step timeout {timeout:?}):");
    let auth = connect("auth").await?;
    for (user, email) in [(&ada, "ada"), (&bob, "bob"), (&cid, "cid")] {
        let created: user::CreatedV2 = serde_json::from_value(serde_json::json!({
            "user_id": user, "email": format!("{email}@example.com"), "locale": "de-DE",
            "created_at": chrono::Utc::now(),
        }))?;
        auth.publisher().publish(&created).await?;
    }
    for user in [&ada, &bob, &cid] {
        show::<flows::RegistrationState>(registration.records(), user, &name).await?;
    }

    println!("\nGDPR User Deletion (deadline {timeout:?}):");
    for user in [&dora, &eve] {
        let deleted: user::DeletedV1 = serde_json::from_value(serde_json::json!({
            "user_id": user, "reason": "gdpr_erasure", "deleted_at": chrono::Utc::now(),
        }))?;
        auth.publisher().publish(&deleted).await?;
    }
    for user in [&dora, &eve] {
        show::<flows::ErasureState>(erasure.records(), user, &name).await?;
    }

    registration.stop().await;
    erasure.stop().await;
    for s in services {
        s.shutdown().await;
    }
    printer.abort();
    Ok(())
}

/// Waits for the saga of `user` to finish and prints its outcome.
async fn show<S: Serialize + DeserializeOwned>(
    records: &SagaRecords,
    user: &str,
    name: &impl Fn(String) -> String,
) -> anyhow::Result<()> {
    let record: SagaRecord<S> = tokio::time::timeout(
        Duration::from_secs(60),
        records.wait_for(user, |r: &SagaRecord<S>| r.status.is_terminal()),
    )
    .await
    .context("the saga did not finish within 60 s")??;
    println!(
        "{}: {:?} after {} steps",
        name(user.to_string()),
        record.status,
        record.step
    );
    for h in &record.history {
        println!(
            "    step {}: {} -> {:?}",
            h.step,
            name(h.input.clone()),
            h.status
        );
    }
    println!("    state: {}", name(serde_json::to_string(&record.state)?));
    Ok(())
}
