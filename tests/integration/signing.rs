//! Signed events: an event whose `ce-source` is a signing service is handled only when its
//! signature proves it; anything else is dead-lettered as `forged`, never handled.

use async_nats::HeaderMap;
use eventhub::dlq::DeadLetterReason;
use eventhub::wire::headers;
use eventhub::wire::signing::{SIGNATURE, Signer, Trust};
use eventhub::{Client, ConnectOptions, Event};
use eventhub_catalog::events::payment;
use eventhub_testkit::NatsServer;

use crate::support::{letters_of, next, quick, record};

fn payment() -> payment::CreatedV1 {
    serde_json::from_value(serde_json::json!({
        "payment_id": uuid::Uuid::now_v7(),
        "user_id": uuid::Uuid::now_v7(),
        "amount": { "amount_minor": 990, "currency": "EUR" },
        "method": "card",
        "created_at": "2026-11-23T10:00:00Z",
    }))
    .expect("a valid payment.created v1")
}

fn seed() -> String {
    nkeys::KeyPair::new_user().seed().expect("a user seed")
}

async fn connect(server: &NatsServer, options: ConnectOptions) -> Client {
    Client::connect(options.url(server.client_url()))
        .await
        .expect("connect")
}

/// A raw publish, as a foreign client would make it: headers and payload as given.
async fn raw(client: &Client, headers: HeaderMap, payload: Vec<u8>) {
    client
        .jetstream()
        .publish_with_headers(payment::CreatedV1::SUBJECT, headers, payload.into())
        .await
        .expect("sent")
        .await
        .expect("stored");
}

fn claimed(source: &str, id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(headers::SOURCE, source);
    h.insert(headers::ID, id);
    h.insert(headers::CONTENT_TYPE, "application/json");
    h
}

#[tokio::test]
async fn a_forged_event_lands_in_the_dead_letters_as_forged_and_a_signed_one_is_handled() {
    let server = NatsServer::start();
    let (old_key, new_key) = (seed(), seed());
    let old = Signer::from_seed(&old_key).unwrap();
    let new = Signer::from_seed(&new_key).unwrap();
    // During a rotation both keys are declared.
    let trust = Trust::new()
        .service("payments", [old.public_key(), new.public_key()])
        .unwrap();
    let ledger = connect(&server, ConnectOptions::new("ledger").trust(trust)).await;
    ledger.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let payments = connect(
        &server,
        ConnectOptions::new("payments").signing_seed(&new_key),
    )
    .await;
    let unsigned = connect(&server, ConnectOptions::new("payments")).await;
    let auth = connect(&server, ConnectOptions::new("auth")).await;
    let options = quick().name("ledger__payment_created");
    let (handle, mut handled) =
        record::<payment::CreatedV1, _>(&ledger, options, |env| env.meta().id.clone()).await;

    // Forgeries, each a different way.
    payments_unsigned(&unsigned).await;
    let body = serde_json::to_vec(&payment()).unwrap();
    let mut foreign = claimed("payments", "forged-foreign-key");
    let intruder = Signer::from_seed(&seed()).unwrap();
    let sig = intruder.sign(
        "payments",
        "forged-foreign-key",
        payment::CreatedV1::SUBJECT,
        &body,
    );
    foreign.insert(SIGNATURE, sig.as_str());
    raw(&auth, foreign, body.clone()).await;
    let mut tampered = claimed("payments", "forged-tampered");
    let sig = old.sign(
        "payments",
        "forged-tampered",
        payment::CreatedV1::SUBJECT,
        &body,
    );
    tampered.insert(SIGNATURE, sig.as_str());
    let other_body = serde_json::to_vec(&payment()).unwrap();
    raw(&auth, tampered, other_body).await;
    let mut garbage = claimed("payments", "forged-garbage");
    garbage.insert(SIGNATURE, "not-a-signature");
    raw(&auth, garbage, body.clone()).await;

    // The genuine ones: signed with the new key by the SDK, with the old one by hand (a
    // service not yet rotated), and one from a service that does not sign.
    let genuine = payments.publisher().publish(&payment()).await.unwrap();
    let mut by_old = claimed("payments", "signed-old-key");
    let sig = old.sign(
        "payments",
        "signed-old-key",
        payment::CreatedV1::SUBJECT,
        &body,
    );
    by_old.insert(SIGNATURE, sig.as_str());
    raw(&auth, by_old, body.clone()).await;
    let from_auth = auth.publisher().publish(&payment()).await.unwrap();

    let mut ids = vec![
        next(&mut handled, 10).await,
        next(&mut handled, 10).await,
        next(&mut handled, 10).await,
    ];
    ids.sort();
    let mut expected = vec![genuine.id, "signed-old-key".to_string(), from_auth.id];
    expected.sort();
    assert_eq!(ids, expected);

    let letters = letters_of(&ledger, "ledger__payment_created", 4).await;
    let mut forged: Vec<_> = letters
        .iter()
        .map(|l| {
            assert_eq!(l.reason, DeadLetterReason::Forged, "{l:?}");
            l.event_id.clone().unwrap_or_default()
        })
        .collect();
    forged.sort();
    assert_eq!(
        forged,
        [
            "forged-foreign-key",
            "forged-garbage",
            "forged-tampered",
            "forged-unsigned"
        ]
    );
    let stats = handle.shutdown().await;
    assert_eq!((stats.forged, stats.handled), (4, 3), "{stats:?}");
    assert!(handled.try_recv().is_err(), "a forged event was handled");
}

/// `payments` publishing through the SDK without its signing key: unsigned.
async fn payments_unsigned(client: &Client) {
    let mut options = eventhub::PublishOptions::default();
    options.id = Some("forged-unsigned".into());
    client
        .publisher()
        .publish_with(&payment(), options)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_replayed_signed_event_still_verifies() {
    let server = NatsServer::start();
    let key = seed();
    let signer = Signer::from_seed(&key).unwrap();
    let trust = Trust::new()
        .service("payments", [signer.public_key()])
        .unwrap();
    let ledger = connect(&server, ConnectOptions::new("ledger").trust(trust)).await;
    ledger.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let payments = connect(&server, ConnectOptions::new("payments").signing_seed(&key)).await;
    // The handler rejects the first delivery: the event is dead-lettered, then replayed.
    let (tx, mut handled) = tokio::sync::mpsc::unbounded_channel();
    let handle = ledger
        .consumer::<payment::CreatedV1>(quick().name("ledger__payment_created"))
        .await
        .unwrap()
        .spawn(move |env| {
            let tx = tx.clone();
            async move {
                if env.meta().headers.get(headers::REPLAY_OF).is_none() {
                    return Err(eventhub::HandlerError::reject("not yet"));
                }
                let _ = tx.send(env.meta().id.clone());
                Ok(())
            }
        });
    let receipt = payments.publisher().publish(&payment()).await.unwrap();
    let letters = letters_of(&ledger, "ledger__payment_created", 1).await;
    assert_eq!(letters[0].reason, DeadLetterReason::Rejected);
    ledger.dead_letters().replay(letters[0].id).await.unwrap();
    assert_eq!(next(&mut handled, 10).await, receipt.id);
    let stats = handle.shutdown().await;
    assert_eq!(stats.forged, 0, "{stats:?}");
}

#[tokio::test]
async fn a_bad_signing_seed_fails_at_connect() {
    let server = NatsServer::start();
    let err = Client::connect(
        ConnectOptions::new("payments")
            .url(server.client_url())
            .signing_seed("SUnot-a-seed"),
    )
    .await
    .expect_err("invalid seed");
    assert_eq!(
        err.kind(),
        eventhub::error::ConnectErrorKind::InvalidOptions
    );
    assert!(err.to_string().contains("signing seed"), "{err}");
}
