//! Field-level encryption of `x-sensitive` fields: round trip, ciphertext at rest (JSON and
//! protobuf), consumers without the key, key rotation, altered or moved ciphertext dead-lettered,
//! no publish without a key — and plaintext in no log, span or dead-letter header.

use std::sync::atomic::Ordering;

use async_nats::HeaderMap;
use bytes::Bytes;
use eventhub::Client;
use eventhub::Codec;
use eventhub::ConnectOptions;
use eventhub::Event;
use eventhub::Keyring;
use eventhub::PublishOptions;
use eventhub::Receipt;
use eventhub::dlq::DeadLetterReason;
use eventhub::error::PublishErrorKind;
use eventhub::wire::headers;
use eventhub_catalog::events::user;
use serde_json::Value;

use crate::support::{DlqWatch, capture_logs, next, quick, record};

const K1: [u8; 32] = [0x11; 32];
const K2: [u8; 32] = [0x22; 32];

/// Every sensitive value of [`contact`] for `email`: none may appear where it is stored.
fn secrets(email: &str) -> Vec<String> {
    vec![
        email.to_string(),
        "+441632960961".into(),
        "countess@analytical.example".into(),
        "ada.backup@example.com".into(),
        "12 St James's Square".into(),
        "Flat 3".into(),
        "SW1Y 4JH".into(),
    ]
}

/// A `user.contact-changed` v1 setting every field, the email `email`.
fn contact(email: &str) -> user::ContactChangedV1 {
    serde_json::from_value(serde_json::json!({
        "user_id": uuid::Uuid::now_v7(),
        "email": email,
        "phone": "+441632960961",
        "recovery_emails": ["countess@analytical.example", "ada.backup@example.com"],
        "mailing_address": {
            "line1": "12 St James's Square",
            "line2": "Flat 3",
            "postal_code": "SW1Y 4JH",
            "city": "London",
            "country": "GB"
        },
        "changed_by": "user",
        "changed_at": "2026-11-23T10:00:00Z"
    }))
    .expect("a valid user.contact-changed v1")
}

/// A client of `service` with `keyring` (or none), whatever the environment says.
async fn connect_with(
    server: &eventhub_testkit::NatsServer,
    service: &str,
    keyring: Option<Keyring>,
) -> Client {
    let options = ConnectOptions::new(service).url(server.client_url());
    let options = match keyring {
        Some(k) => options.keyring(k),
        None => options.without_keyring(),
    };
    Client::connect(options)
        .await
        .expect("connect to the test server")
}

fn ring(keys: &[(&str, [u8; 32])]) -> Keyring {
    let (first, rest) = keys.split_first().unwrap();
    rest.iter().fold(
        Keyring::new(first.0, first.1).unwrap(),
        |ring, (id, key)| ring.with_key(*id, *key).unwrap(),
    )
}

/// The message a receipt names, as the stream stores it.
async fn stored(client: &Client, receipt: &Receipt) -> (HeaderMap, Bytes) {
    let message = client
        .jetstream()
        .get_stream(&receipt.stream)
        .await
        .unwrap()
        .get_raw_message(receipt.sequence)
        .await
        .unwrap();
    (message.headers, message.payload)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.as_str())
}

/// The next `expected.len()` items of `rx`, which must be `expected` in any order (handlers run
/// concurrently).
async fn receive_all<T: PartialEq + std::fmt::Debug>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    expected: &[T],
) {
    let mut got = Vec::new();
    for _ in expected {
        got.push(next(rx, 10).await);
    }
    for e in expected {
        assert!(got.contains(e), "expected {e:?} among {got:?}");
    }
}

#[track_caller]
fn assert_no_secret(what: &str, text: &[u8], secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{what} holds the plaintext {secret:?}"
        );
    }
}

#[tokio::test]
async fn a_consumer_holding_the_key_receives_the_plaintext() {
    assert_eq!(
        user::ContactChangedV1::SENSITIVE,
        [
            "/email",
            "/phone",
            "/recovery_emails/*",
            "/mailing_address/line1",
            "/mailing_address/line2",
            "/mailing_address/postal_code"
        ]
    );
    let server = eventhub_testkit::NatsServer::start();
    let auth = connect_with(&server, "auth", Some(ring(&[("k1", K1)]))).await;
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let profile = connect_with(&server, "profile", Some(ring(&[("k1", K1)]))).await;
    // The family and the single version both decrypt.
    let (family, mut rx) =
        record::<user::ContactChanged, _>(&profile, quick(), |env| env.event().clone()).await;
    let support = connect_with(&server, "support", Some(ring(&[("k1", K1)]))).await;
    let (single, mut srx) =
        record::<user::ContactChangedV1, _>(&support, quick(), |env| env.event().clone()).await;

    let event = contact("ada@lovelace.example");
    let mut minimal = contact("grace@example.com");
    minimal.phone = None;
    minimal.recovery_emails.clear();
    minimal.mailing_address = None;
    for e in [&event, &minimal] {
        auth.publisher().publish(e).await.unwrap();
    }
    receive_all(
        &mut rx,
        &[
            user::ContactChanged::V1(event.clone()),
            user::ContactChanged::V1(minimal.clone()),
        ],
    )
    .await;
    receive_all(&mut srx, &[event, minimal]).await;
    assert_eq!(family.shutdown().await.poison, 0);
    assert_eq!(single.shutdown().await.poison, 0);
}

#[tokio::test]
async fn stored_events_hold_ciphertext_in_json_and_protobuf() {
    let server = eventhub_testkit::NatsServer::start();
    let auth = connect_with(&server, "auth", Some(ring(&[("k1", K1)]))).await;
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    for codec in [Codec::Json, Codec::Protobuf] {
        let email = format!("{codec:?}@lovelace.example").to_lowercase();
        let receipt = auth
            .publisher()
            .with_codec(codec)
            .publish(&contact(&email))
            .await
            .unwrap();
        let (h, payload) = stored(&auth, &receipt).await;
        assert_eq!(header(&h, headers::ENCRYPTION_KEY), Some("k1"), "{codec:?}");
        assert_eq!(
            header(&h, headers::CONTENT_TYPE),
            Some(codec.content_type())
        );
        assert_no_secret(
            &format!("the stored {codec:?} payload"),
            &payload,
            &secrets(&email),
        );
        // Fields not marked stay readable.
        let info = eventhub_catalog::events::CATALOG
            .iter()
            .find(|i| i.subject == user::ContactChangedV1::SUBJECT)
            .unwrap();
        let value: Value = match codec {
            Codec::Json => serde_json::from_slice(&payload).unwrap(),
            _ => eventhub::wire::proto::decode_value(info.proto, &payload).unwrap(),
        };
        assert_eq!(value["mailing_address"]["city"], "London", "{codec:?}");
        assert_eq!(value["changed_by"], "user");
        let sealed = [
            &value["email"],
            &value["phone"],
            &value["recovery_emails"][0],
            &value["recovery_emails"][1],
            &value["mailing_address"]["line1"],
            &value["mailing_address"]["line2"],
            &value["mailing_address"]["postal_code"],
        ];
        for v in sealed {
            let text = v
                .as_str()
                .unwrap_or_else(|| panic!("{codec:?}: {v} is a string"));
            assert!(text.starts_with("enc:v1:k1:"), "{codec:?}: {text}");
        }
    }
    // Events without sensitive fields carry no key header.
    let receipt = auth
        .publisher()
        .publish(&crate::support::user_created_v2("x@example.com"))
        .await
        .unwrap();
    assert_eq!(
        header(&stored(&auth, &receipt).await.0, headers::ENCRYPTION_KEY),
        None
    );
}

#[tokio::test]
async fn a_consumer_without_the_key_sees_ciphertext_and_still_handles_the_event() {
    let (_logs, logs) = capture_logs();
    let server = eventhub_testkit::NatsServer::start();
    let auth = connect_with(&server, "auth", Some(ring(&[("k1", K1)]))).await;
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    // One service has no keys at all, the other only an unrelated one.
    let admin = connect_with(&server, "admin", None).await;
    let (admin_handle, mut arx) =
        record::<user::ContactChangedV1, _>(&admin, quick(), |env| env.event().clone()).await;
    let audit = connect_with(&server, "audit", Some(ring(&[("k9", K2)]))).await;
    let (audit_handle, mut urx) =
        record::<user::ContactChanged, _>(&audit, quick(), |env| env.event().clone()).await;

    let event = contact("ada@lovelace.example");
    let receipt = auth.publisher().publish(&event).await.unwrap();
    let (_, payload) = stored(&auth, &receipt).await;
    let as_stored: user::ContactChangedV1 = serde_json::from_slice(&payload).unwrap();

    let seen = next(&mut arx, 10).await;
    assert_eq!(seen, as_stored, "exactly what is stored: ciphertext");
    assert!(seen.email.starts_with("enc:v1:k1:"), "{}", seen.email);
    assert_eq!(seen.user_id, event.user_id);
    assert_eq!(
        next(&mut urx, 10).await,
        user::ContactChanged::V1(as_stored)
    );
    let stats = admin_handle.shutdown().await;
    assert_eq!((stats.handled, stats.poison), (1, 0));
    assert_eq!(audit_handle.shutdown().await.handled, 1);

    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains(
            "encrypted with key `k1`, which this service's keyring (active key `k9`) lacks"
        ),
        "the keyring without the key warns: {logs}"
    );
    assert_no_secret("the logs", logs.as_bytes(), &secrets(&event.email));
}

#[tokio::test]
async fn after_a_rotation_old_events_stay_readable_to_holders_of_the_old_key() {
    let server = eventhub_testkit::NatsServer::start();
    let before = connect_with(&server, "auth", Some(ring(&[("k1", K1)]))).await;
    before.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let old = contact("before@example.com");
    let r1 = before.publisher().publish(&old).await.unwrap();
    // The rotation: k2 added and active, k1 kept for what is stored.
    let after = connect_with(&server, "auth", Some(ring(&[("k1", K1), ("k2", K2)]))).await;
    assert_eq!(after.keyring().unwrap().active_key_id(), "k2");
    let new = contact("after@example.com");
    let r2 = after.publisher().publish(&new).await.unwrap();
    assert_eq!(
        header(&stored(&after, &r1).await.0, headers::ENCRYPTION_KEY),
        Some("k1")
    );
    assert_eq!(
        header(&stored(&after, &r2).await.0, headers::ENCRYPTION_KEY),
        Some("k2")
    );

    let both = connect_with(&server, "profile", Some(ring(&[("k1", K1), ("k2", K2)]))).await;
    let (both_handle, mut brx) =
        record::<user::ContactChangedV1, _>(&both, quick(), |env| env.event().clone()).await;
    receive_all(&mut brx, &[old.clone(), new.clone()]).await;

    let only_new = connect_with(&server, "admin", Some(ring(&[("k2", K2)]))).await;
    let (new_handle, mut nrx) =
        record::<user::ContactChangedV1, _>(&only_new, quick(), |env| env.event().clone()).await;
    let (mut ciphertext, mut plaintext) = (None, None);
    for _ in 0..2 {
        let seen = next(&mut nrx, 10).await;
        if seen.user_id == old.user_id {
            ciphertext = Some(seen);
        } else {
            plaintext = Some(seen);
        }
    }
    let ciphertext = ciphertext.expect("the event from before the rotation");
    assert!(
        ciphertext.email.starts_with("enc:v1:k1:"),
        "{}",
        ciphertext.email
    );
    assert_eq!(plaintext.as_ref(), Some(&new));
    assert_eq!(both_handle.shutdown().await.handled, 2);
    assert_eq!(new_handle.shutdown().await.poison, 0);
}

/// The stored event of `receipt`, its JSON payload changed by `f`, published again under the
/// `Nats-Msg-Id` `<event id>:<tag>` (the same event id).
async fn republish_altered(
    client: &Client,
    receipt: &Receipt,
    tag: &str,
    f: impl FnOnce(&mut Value),
) {
    let (mut h, payload) = stored(client, receipt).await;
    let mut value: Value = serde_json::from_slice(&payload).unwrap();
    f(&mut value);
    h.insert(headers::MSG_ID, format!("{}:{tag}", receipt.id).as_str());
    client
        .jetstream()
        .publish_with_headers(
            receipt.subject,
            h,
            serde_json::to_vec(&value).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test]
async fn altered_or_moved_ciphertext_is_dead_lettered_as_poison_without_plaintext() {
    let (_logs, logs) = capture_logs();
    let server = eventhub_testkit::NatsServer::start();
    let keys = ring(&[("k1", K1)]);
    let auth = connect_with(&server, "auth", Some(keys.clone())).await;
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&auth).await;
    let first = contact("ada@lovelace.example");
    let second = contact("grace@example.com");
    let r1 = auth.publisher().publish(&first).await.unwrap();
    let r2 = auth.publisher().publish(&second).await.unwrap();
    let (_, other_payload) = stored(&auth, &r2).await;
    let other: Value = serde_json::from_slice(&other_payload).unwrap();

    // One character of the email's ciphertext changed.
    republish_altered(&auth, &r1, "flipped", |v| {
        let text = v["email"].as_str().unwrap().to_string();
        let flipped = if text.ends_with('A') { 'B' } else { 'A' };
        v["email"] = format!("{}{flipped}", &text[..text.len() - 1]).into();
    })
    .await;
    // The phone's ciphertext moved into the email field of the same event.
    republish_altered(&auth, &r1, "moved", |v| v["email"] = v["phone"].clone()).await;
    // The email's ciphertext of another event, same field.
    republish_altered(&auth, &r1, "copied", |v| {
        v["email"] = other["email"].clone()
    })
    .await;
    // Plaintext where the event says ciphertext.
    republish_altered(&auth, &r1, "plain", |v| {
        v["email"] = "ada@lovelace.example".into()
    })
    .await;

    let profile = connect_with(&server, "profile", Some(keys)).await;
    let (handle, mut rx) =
        record::<user::ContactChangedV1, _>(&profile, quick(), |env| env.event().clone()).await;
    receive_all(&mut rx, &[first.clone(), second.clone()]).await;
    let mut errors = Vec::new();
    for _ in 0..4 {
        let entry = dlq.next(10).await;
        let h = entry.headers.clone().unwrap();
        assert_eq!(
            header(&h, headers::DLQ_REASON),
            Some(DeadLetterReason::Poison.as_str())
        );
        assert_eq!(
            header(&h, headers::DLQ_CONSUMER),
            Some("profile__user_contact_changed")
        );
        let all: String = h
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| format!("{k}: {}\n", v.as_str())))
            .collect();
        assert_no_secret(
            "a dead letter's headers",
            all.as_bytes(),
            &secrets(&first.email),
        );
        assert_no_secret(
            "a dead letter's headers",
            all.as_bytes(),
            &secrets(&second.email),
        );
        errors.push(header(&h, headers::DLQ_ERROR).unwrap().to_string());
    }
    let count = |needle: &str| errors.iter().filter(|e| e.contains(needle)).count();
    assert_eq!(
        count("field `/email` does not decrypt with key `k1`: authentication failed"),
        3,
        "{errors:#?}"
    );
    assert_eq!(
        count("field `/email` does not decrypt with key `k1`: it is not encrypted"),
        1,
        "{errors:#?}"
    );
    assert!(
        errors.iter().all(|e| e.contains("user.contact-changed v1")),
        "{errors:#?}"
    );
    let stats = handle.shutdown().await;
    assert_eq!(
        (stats.handled, stats.poison, stats.dead_lettered),
        (2, 4, 4)
    );
    assert!(rx.try_recv().is_err(), "the handler saw no altered event");
    // The plaintext written in by hand is in the dead letter's payload (as it was published);
    // everything eventhub itself wrote stays clean.
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("dead-lettered"), "{logs}");
    assert_no_secret("the logs", logs.as_bytes(), &secrets(&second.email));
    let mut without_injected = secrets(&first.email);
    without_injected.remove(0);
    assert_no_secret("the logs", logs.as_bytes(), &without_injected);
}

#[tokio::test]
async fn publishing_without_a_key_fails_before_anything_is_sent() {
    let server = eventhub_testkit::NatsServer::start();
    let ops = connect_with(&server, "ops", None).await;
    ops.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let auth = connect_with(&server, "auth", None).await;
    let sent = || auth.nats().statistics().out_messages.load(Ordering::SeqCst);
    let before = sent();
    let event = contact("ada@lovelace.example");

    let err = auth.publisher().publish(&event).await.unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::NoEncryptionKey);
    let text = err.to_string();
    for expected in [
        "user.contact-changed v1",
        "/email",
        "service `auth` holds no encryption key",
        "nothing was sent",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    assert_no_secret("the error", text.as_bytes(), &secrets(&event.email));
    let mut pipeline = auth.publisher().pipeline(8);
    let err = pipeline.send(&event).await.unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::NoEncryptionKey);
    assert_eq!(pipeline.finish().await.stored, 0);
    let info = eventhub_catalog::events::CATALOG
        .iter()
        .find(|i| i.subject == user::ContactChangedV1::SUBJECT)
        .unwrap();
    assert_eq!(info.sensitive, user::ContactChangedV1::SENSITIVE);
    let err = auth
        .publisher()
        .publish_json(
            info,
            &serde_json::to_value(&event).unwrap(),
            PublishOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), PublishErrorKind::NoEncryptionKey);

    assert_eq!(sent(), before, "no message left the client");
    let mut stream = ops.jetstream().get_stream("IDENTITY").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0);

    // With a key, the JSON path of the CLI encrypts too.
    let keyed = connect_with(&server, "auth", Some(ring(&[("k1", K1)]))).await;
    let receipt = keyed
        .publisher()
        .publish_json(
            info,
            &serde_json::to_value(&event).unwrap(),
            PublishOptions::default(),
        )
        .await
        .unwrap();
    let (h, payload) = stored(&keyed, &receipt).await;
    assert_eq!(header(&h, headers::ENCRYPTION_KEY), Some("k1"));
    assert_no_secret("the stored payload", &payload, &secrets(&event.email));
}
