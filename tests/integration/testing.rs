//! Handler tests without a server: `eventhub::testing` builds envelopes and records follow-ups.
//! (No nats-server here: what these tests prove is that a handler can be tested without one.)

use eventhub::error::PublishErrorKind;
use eventhub::testing::{RecordingPublisher, envelope};
use eventhub::{Envelope, Event, HandlerError, Keyring};
use eventhub_catalog::events::{audit, user};

use crate::support::user_created_v2;

/// A handler under test: audits every new user, as a follow-up of the event.
async fn audit_new_user(env: Envelope<user::CreatedV2>) -> Result<(), HandlerError> {
    let entry: audit::CreatedV1 = serde_json::from_value(serde_json::json!({
        "audit_id": uuid::Uuid::now_v7(),
        "actor_id": env.user_id,
        "action": "user.created",
        "resource_type": "user",
        "resource_id": env.user_id.to_string(),
        "occurred_at": "2026-11-23T10:00:00Z",
    }))
    .map_err(HandlerError::reject)?;
    env.publisher()
        .publish(&entry)
        .await
        .map_err(HandlerError::retry)?;
    Ok(())
}

#[tokio::test]
async fn a_handler_runs_on_a_built_envelope_and_its_follow_ups_are_recorded() {
    let outbox = RecordingPublisher::new("profile");
    let env = envelope(user_created_v2("ada@example.com"))
        .id("evt-1")
        .delivered(3)
        .correlation_id("signup-42")
        .header("x-tenant", "acme")
        .publisher(&outbox)
        .build();
    assert_eq!(env.meta().delivered, 3);
    assert_eq!(env.meta().event_type, "user.created");
    assert_eq!(env.meta().subject, user::CreatedV2::SUBJECT);
    assert_eq!(
        env.meta().headers.get("x-tenant").map(|v| v.as_str()),
        Some("acme")
    );
    let user_id = env.user_id.clone();

    audit_new_user(env).await.expect("handled");

    let sent = outbox.published();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let follow_up = &sent[0];
    assert_eq!(follow_up.event_type(), "audit.created");
    assert_eq!(follow_up.subject(), audit::CreatedV1::SUBJECT);
    assert_eq!(follow_up.correlation_id(), Some("signup-42"));
    assert_eq!(follow_up.causation_id(), Some("evt-1"));
    assert_eq!(follow_up.header("ce-source"), Some("profile"));
    let decoded: audit::Created = follow_up.decode().expect("decodes as published");
    let audit::Created::V1(decoded) = decoded;
    assert_eq!(decoded.resource_id.to_string(), user_id.to_string());
}

#[tokio::test]
async fn a_recording_publisher_checks_what_a_real_one_checks() {
    let outbox = RecordingPublisher::new("auth");
    let publisher = outbox.publisher();
    let event = user_created_v2("ada@example.com");
    let first = publisher.publish(&event).await.expect("recorded");
    let mut options = eventhub::PublishOptions::default();
    options.id = Some(first.id.clone());
    let again = publisher
        .publish_with(&event, options)
        .await
        .expect("recorded");
    assert!(!first.duplicate && again.duplicate, "{first:?} {again:?}");
    assert_eq!(outbox.published().len(), 1, "a duplicate id is stored once");

    // Not valid against its schema: refused, as by a connected publisher.
    let mut invalid = event.clone();
    invalid.email = "not an email".parse().expect("the type accepts any string");
    let err = publisher.publish(&invalid).await.expect_err("invalid");
    assert_eq!(err.kind(), PublishErrorKind::Invalid, "{err}");
    assert_eq!(outbox.published().len(), 1);
    outbox.clear();
    assert!(outbox.published().is_empty());
}

#[tokio::test]
async fn sensitive_fields_are_encrypted_in_a_recording_too() {
    let contact: user::ContactChangedV1 = serde_json::from_value(serde_json::json!({
        "user_id": uuid::Uuid::now_v7(),
        "email": "countess@analytical.example",
        "changed_by": "user",
        "changed_at": "2026-11-23T10:00:00Z"
    }))
    .expect("a valid user.contact-changed v1");
    let keyless = RecordingPublisher::new("profile");
    let err = keyless
        .publisher()
        .publish(&contact)
        .await
        .expect_err("no key to encrypt with");
    assert!(keyless.published().is_empty(), "{err}");

    let keyed =
        RecordingPublisher::with_keyring("profile", Keyring::new("k1", [7; 32]).expect("a key"));
    keyed
        .publisher()
        .publish(&contact)
        .await
        .expect("encrypted");
    let sent = keyed.published();
    let stored = String::from_utf8_lossy(sent[0].payload());
    assert!(!stored.contains("countess@analytical.example"), "{stored}");
    assert_eq!(sent[0].header("eventhub-encryption-key"), Some("k1"));
}
