//! Request-reply under the repository's `nats.conf` (generated from `schemas/services.json`):
//! `auth` answers `user.lookup` and `admin` sends it, as declared; an undeclared requester
//! cannot send it, an undeclared responder cannot take it, and the responder may reply to the
//! requests it received but not publish into another service's inbox.

mod common;

use std::time::Duration;

use eventhub_catalog::events::user::{LookupRequestV1, LookupResponseV1};
use eventhub_patterns::{
    Incoming, Request, RequestError, RequestExt, RequestOptions, ResponderOptions,
};
use eventhub_testkit::NatsServer;
use futures::{FutureExt, StreamExt};

const USER_ID: &str = common::USER_ID;

use common::{connect_as as connect, secured};

/// Waits until the server's log (read from its output as it comes) has `needle`.
async fn wait_log(server: &NatsServer, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !server.log().contains(needle) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never logged {needle:?}:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn request() -> LookupRequestV1 {
    serde_json::from_value(serde_json::json!({ "user_id": USER_ID })).unwrap()
}

#[tokio::test]
async fn declared_services_request_and_answer_and_nobody_else() {
    let server = secured();
    let auth = connect(&server, "auth").await;
    let (calls, mut calls_rx) = tokio::sync::mpsc::unbounded_channel();
    let responder = auth
        .respond(
            ResponderOptions::default(),
            move |incoming: Incoming<LookupRequestV1>| {
                let _ = calls.send(incoming.source.clone());
                async move {
                    Ok(
                        serde_json::from_value::<LookupResponseV1>(serde_json::json!({
                            "user_id": USER_ID, "email": "ada@example.com"
                        }))
                        .unwrap(),
                    )
                }
            },
        )
        .await
        .expect("auth answers user.lookup");

    // admin is declared a requester: its request is answered, through auth's response
    // permission (auth may not publish into admin's inbox otherwise).
    let admin = connect(&server, "admin").await;
    let response = admin.request(&request()).await.expect("admin requests");
    assert_eq!(response.email, "ada@example.com");
    assert_eq!(calls_rx.recv().await.unwrap().as_deref(), Some("admin"));

    // payments is not: its request never reaches the responder (a responder listens, so the
    // server would answer "no responders" at once if it had been delivered).
    let payments = connect(&server, "payments").await;
    let err = payments
        .request_with(
            &request(),
            RequestOptions::default().timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RequestError::Timeout { .. }), "{err}");
    wait_log(
        &server,
        "Publish Violation - Subject \"rpc.user.lookup.v1\"",
    )
    .await;

    // The responder replies to requests only: a message it publishes into admin's inbox
    // (a forged reply) is refused, while its reply to admin's next request, sent after it on
    // the same connection, arrives.
    let mut probe = admin.nats().subscribe("_INBOX_admin.forged").await.unwrap();
    admin.nats().flush().await.unwrap();
    auth.nats()
        .publish("_INBOX_admin.forged", "forged".into())
        .await
        .unwrap();
    admin.request(&request()).await.expect("the next request");
    assert!(
        probe.next().now_or_never().is_none(),
        "auth published into admin's inbox"
    );

    // payments may not answer user.lookup: the server refuses its subscription, and requests
    // keep going to auth alone.
    let stolen = payments
        .respond(
            ResponderOptions::default(),
            |_: Incoming<LookupRequestV1>| async move {
                Err(eventhub_patterns::ErrorReply::new(
                    "stolen",
                    "answered by payments",
                ))
            },
        )
        .await
        .expect("the refusal comes asynchronously");
    wait_log(
        &server,
        "Subscription Violation - Subject \"rpc.user.lookup.v1\"",
    )
    .await;
    for _ in 0..5 {
        admin.request(&request()).await.expect("auth answers");
    }
    assert_eq!(
        stolen
            .stats()
            .failed
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    responder.shutdown().await;
    // The subject names the request type's version.
    assert_eq!(LookupRequestV1::SUBJECT, "rpc.user.lookup.v1");
}
