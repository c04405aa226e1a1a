//! Testing a handler without a server: build the envelope a consumer would hand it, and record
//! what it publishes (encoded and validated as for real).
//!
//! `cargo run -p eventhub-examples --example testing_handler` (no NATS needed); in a crate,
//! the same lines go in a `#[tokio::test]`.

use eventhub::testing::{RecordingPublisher, envelope};
use eventhub::{Envelope, HandlerError};
use eventhub_catalog::events::{payment, user};

/// The handler under test: opens a billing account, announced as `payment.created`.
async fn open_account(env: Envelope<user::CreatedV2>) -> Result<(), HandlerError> {
    let payment: payment::CreatedV1 = serde_json::from_value(serde_json::json!({
        "payment_id": uuid::Uuid::now_v7(),
        "user_id": env.user_id,
        "amount": { "amount_minor": 0, "currency": "EUR" },
        "method": "card",
        "created_at": chrono::Utc::now(),
    }))
    .map_err(HandlerError::reject)?;
    env.publisher().publish(&payment).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let signed_up: user::CreatedV2 = serde_json::from_value(serde_json::json!({
        "user_id": uuid::Uuid::now_v7(),
        "email": "ada@example.com",
        "display_name": "Ada Lovelace",
        "locale": "en-GB",
        "created_at": chrono::Utc::now(),
    }))?;
    let outbox = RecordingPublisher::new("payments");
    let env = envelope(signed_up)
        .correlation_id("signup-1")
        .publisher(&outbox)
        .build();
    let handled_id = env.meta().id.clone();

    open_account(env)
        .await
        .map_err(|e| anyhow::anyhow!("the handler failed: {e}"))?;

    let published = outbox.published();
    assert_eq!(published.len(), 1);
    let follow_up = &published[0];
    assert_eq!(follow_up.event_type(), "payment.created");
    // A follow-up keeps the flow's correlation id and names the event it came from.
    assert_eq!(follow_up.correlation_id(), Some("signup-1"));
    assert_eq!(follow_up.causation_id(), Some(handled_id.as_str()));
    println!("handler published {} as expected", follow_up.event_type());
    Ok(())
}
