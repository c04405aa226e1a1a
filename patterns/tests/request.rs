//! Typed request-reply against a real nats-server.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use eventhub_patterns::{
    ErrorCode, ErrorReply, Incoming, Request, RequestError, RequestExt, RequestOptions,
    ResponderOptions,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lookup {
    user_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Found {
    email: String,
    /// Which responder answered.
    by: String,
}

impl Request for Lookup {
    type Response = Found;
    const SUBJECT: &'static str = "rpc.user.lookup.v1";
    const REQUEST_SCHEMA: Option<&'static str> = Some(
        r#"{"type":"object","properties":{"user_id":{"type":"string","pattern":"^u[0-9]+$"}},
            "required":["user_id"],"additionalProperties":false}"#,
    );
    const RESPONSE_SCHEMA: Option<&'static str> = Some(
        r#"{"type":"object","properties":{"email":{"type":"string","format":"email"},"by":{"type":"string"}},
            "required":["email","by"]}"#,
    );
}

/// The directory: `u1` exists, `u0` panics, `u9` sleeps, `u7` answers an invalid email,
/// anything else is not found.
async fn directory(name: &'static str, incoming: Incoming<Lookup>) -> Result<Found, ErrorReply> {
    match incoming.request.user_id.as_str() {
        "u1" => Ok(Found {
            email: "ada@example.com".into(),
            by: name.into(),
        }),
        "u0" => panic!("the directory crashed"),
        "u9" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Err(ErrorReply::new("late", "too late"))
        }
        "u7" => Ok(Found {
            email: "not an email".into(),
            by: name.into(),
        }),
        other => Err(ErrorReply::new("not_found", format!("no user {other}"))),
    }
}

fn lookup(id: &str) -> Lookup {
    Lookup { user_id: id.into() }
}

#[tokio::test]
async fn a_request_round_trips_with_correlation_and_trace() {
    let server = NatsServer::start();
    let client = connect(&server, "users").await;
    let (seen, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let responder = client
        .respond(
            ResponderOptions::default(),
            move |incoming: Incoming<Lookup>| {
                let _ = seen.send((
                    incoming.correlation_id.clone(),
                    incoming.trace,
                    incoming.source.clone(),
                ));
                directory("a", incoming)
            },
        )
        .await
        .unwrap();
    let caller = connect(&server, "web").await;
    let found = caller.request(&lookup("u1")).await.unwrap();
    assert_eq!(found.email, "ada@example.com");

    let parent = eventhub::TraceContext::root();
    caller
        .request_with(
            &lookup("u1"),
            RequestOptions::default()
                .correlation_id("flow-7")
                .trace_parent(parent),
        )
        .await
        .unwrap();
    let _first = seen_rx.recv().await.unwrap();
    let (correlation, trace, source) = seen_rx.recv().await.unwrap();
    assert_eq!(correlation, "flow-7");
    assert_eq!(
        trace.trace_id(),
        parent.trace_id(),
        "the trace was not continued"
    );
    assert_eq!(source.as_deref(), Some("web"));
    assert_eq!(responder.stats().ok.load(Ordering::Relaxed), 2);
    responder.shutdown().await;
}

#[tokio::test]
async fn no_responders_fails_at_once_and_a_slow_responder_times_out() {
    let server = NatsServer::start();
    let client = connect(&server, "web").await;
    let started = std::time::Instant::now();
    let err = client.request(&lookup("u1")).await.unwrap_err();
    assert!(matches!(err, RequestError::NoResponders { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no-responders waited for the timeout"
    );

    let responder = client
        .respond(ResponderOptions::default(), |i| directory("a", i))
        .await
        .unwrap();
    let err = client
        .request_with(
            &lookup("u9"),
            RequestOptions::default().timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Timeout { after, .. } if after == Duration::from_millis(300)),
        "{err}"
    );
    responder.shutdown().await;
}

#[tokio::test]
async fn error_replies_are_typed_and_a_panic_or_a_bad_response_is_internal() {
    let server = NatsServer::start();
    let client = connect(&server, "users").await;
    let responder = client
        .respond(ResponderOptions::default(), |i| directory("a", i))
        .await
        .unwrap();
    let err = client.request(&lookup("u2")).await.unwrap_err();
    match err {
        RequestError::Failed { reply, .. } => {
            assert_eq!(reply.code, ErrorCode::Domain("not_found".into()));
            assert_eq!(reply.message, "no user u2");
        }
        other => panic!("{other}"),
    }
    for id in ["u0", "u7"] {
        let err = client.request(&lookup(id)).await.unwrap_err();
        assert!(
            matches!(&err, RequestError::Failed { reply, .. } if reply.code == ErrorCode::Internal),
            "{id}: {err}"
        );
    }
    // The responder survived the panic.
    assert_eq!(client.request(&lookup("u1")).await.unwrap().by, "a");
    assert_eq!(responder.stats().internal.load(Ordering::Relaxed), 2);
    assert_eq!(responder.stats().failed.load(Ordering::Relaxed), 1);
    responder.shutdown().await;
}

#[tokio::test]
async fn a_bad_request_payload_gets_a_typed_error_and_never_reaches_the_handler() {
    let server = NatsServer::start();
    let client = connect(&server, "users").await;
    let (calls, mut calls_rx) = tokio::sync::mpsc::unbounded_channel();
    let responder = client
        .respond(ResponderOptions::default(), move |i: Incoming<Lookup>| {
            let _ = calls.send(i.request.user_id.clone());
            directory("a", i)
        })
        .await
        .unwrap();
    // The typed requester refuses to send what breaks the schema.
    let err = client.request(&lookup("nope")).await.unwrap_err();
    assert!(matches!(err, RequestError::InvalidRequest { .. }), "{err}");

    // A foreign requester sends anything: not JSON, the wrong shape, an extra field.
    let raw = connect(&server, "foreign").await;
    for payload in [
        &b"{not json"[..],
        br#"{"user_id":7}"#,
        br#"{"user_id":"u1","x":1}"#,
    ] {
        let reply = raw
            .nats()
            .request(Lookup::SUBJECT, payload.to_vec().into())
            .await
            .unwrap();
        let headers = reply.headers.as_ref().expect("reply headers");
        assert_eq!(headers.get("eventhub-reply").unwrap().as_str(), "error");
        let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(body["code"], "invalid_request", "{body}");
        eventhub::wire::schema::Validator::new(eventhub_patterns::request::ERROR_REPLY_SCHEMA)
            .check(&body)
            .unwrap();
    }
    assert_eq!(responder.stats().invalid.load(Ordering::Relaxed), 3);
    // The handler ran for none of them: the next call it sees is this valid one.
    client.request(&lookup("u1")).await.unwrap();
    assert_eq!(calls_rx.recv().await.unwrap(), "u1");
    assert!(calls_rx.try_recv().is_err());
    responder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_responders_in_one_queue_group_share_the_load_and_answer_each_request_once() {
    let server = NatsServer::start();
    let a = connect(&server, "users").await;
    let b = connect(&server, "users").await;
    let ra = a
        .respond(ResponderOptions::default(), |i| directory("a", i))
        .await
        .unwrap();
    let rb = b
        .respond(ResponderOptions::default(), |i| directory("b", i))
        .await
        .unwrap();
    let caller = connect(&server, "web").await;
    let mut by = std::collections::HashMap::<String, u32>::new();
    for _ in 0..200 {
        let found = caller.request(&lookup("u1")).await.unwrap();
        *by.entry(found.by).or_default() += 1;
    }
    let (na, nb) = (
        by.get("a").copied().unwrap_or(0),
        by.get("b").copied().unwrap_or(0),
    );
    assert_eq!(na + nb, 200);
    // NATS picks a queue member at random per message: both get a fair share.
    assert!(na >= 50 && nb >= 50, "a answered {na}, b {nb}");
    let handled = ra.stats().ok.load(Ordering::Relaxed) + rb.stats().ok.load(Ordering::Relaxed);
    assert_eq!(handled, 200, "a request was answered twice");
    ra.shutdown().await;
    rb.shutdown().await;
}
