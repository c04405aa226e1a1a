//! Request-reply with the request types the catalog generates from
//! `schemas/user/lookup.request.v1.json` and `lookup.response.v1.json`, against a real
//! nats-server.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use eventhub_catalog::events::user::{LookupRequestV1, LookupResponseV1};
use eventhub_patterns::{
    ErrorReply, Incoming, Request, RequestError, RequestExt, ResponderOptions,
};
use serde_json::Value;

/// The instances of `tests/fixtures/events/<name>`.
fn fixtures(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/../tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_generated_pair_names_its_subject_and_bundled_schemas() {
    assert_eq!(LookupRequestV1::SUBJECT, "rpc.user.lookup.v1");
    let request: Value = serde_json::from_str(LookupRequestV1::REQUEST_SCHEMA.unwrap()).unwrap();
    let response: Value = serde_json::from_str(LookupRequestV1::RESPONSE_SCHEMA.unwrap()).unwrap();
    // Bundled: the shared UserId travels with each side.
    assert!(request["$defs"]["UserId"].is_object(), "{request}");
    assert!(response["$defs"]["UserId"].is_object(), "{response}");
    let check = |schema: &Value, v: &Value| {
        eventhub::wire::schema::Validator::new(&schema.to_string())
            .check(v)
            .unwrap_or_else(|e| panic!("{v}: {e}"));
    };
    for v in fixtures("user.lookup.request.v1.json") {
        check(&request, &v);
    }
    for v in fixtures("user.lookup.response.v1.json") {
        check(&response, &v);
    }
}

#[tokio::test]
async fn a_catalog_request_round_trips_and_a_bad_payload_never_reaches_the_handler() {
    let server = NatsServer::start();
    let users = connect(&server, "users").await;
    let answers: Vec<LookupResponseV1> = fixtures("user.lookup.response.v1.json")
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let known = answers[0].clone();
    let (calls, mut calls_rx) = tokio::sync::mpsc::unbounded_channel();
    let responder = users
        .respond(
            ResponderOptions::default(),
            move |incoming: Incoming<LookupRequestV1>| {
                let _ = calls.send(incoming.request.clone());
                let known = known.clone();
                async move {
                    if incoming.request.user_id == known.user_id {
                        Ok(known)
                    } else {
                        Err(ErrorReply::new("not_found", "no such user"))
                    }
                }
            },
        )
        .await
        .unwrap();

    let admin = connect(&server, "admin").await;
    let request: LookupRequestV1 =
        serde_json::from_value(fixtures("user.lookup.request.v1.json").remove(0)).unwrap();
    let response = admin.request(&request).await.unwrap();
    assert_eq!(response, answers[0]);
    assert_eq!(calls_rx.recv().await.unwrap(), request);

    // A foreign requester's payloads that break the request schema: not a uuid, a missing
    // field, a field the schema does not allow.
    for payload in [
        r#"{"user_id":"7"}"#,
        r#"{}"#,
        r#"{"user_id":"0190b8d2-5a8e-7c3e-9d5e-1f2a3b4c5d6e","admin":true}"#,
    ] {
        let reply = admin
            .nats()
            .request(LookupRequestV1::SUBJECT, payload.as_bytes().to_vec().into())
            .await
            .unwrap();
        let headers = reply.headers.as_ref().expect("reply headers");
        assert_eq!(headers.get("eventhub-reply").unwrap().as_str(), "error");
        let body: Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(body["code"], "invalid_request", "{payload}: {body}");
    }
    assert_eq!(responder.stats().invalid.load(Ordering::Relaxed), 3);

    // An unknown user is a domain error, typed.
    let mut other = fixtures("user.lookup.request.v1.json").remove(0);
    other["user_id"] = serde_json::to_value(&answers[1].user_id).unwrap();
    let other: LookupRequestV1 = serde_json::from_value(other).unwrap();
    match admin.request(&other).await.unwrap_err() {
        RequestError::Failed { reply, .. } => assert_eq!(reply.code.as_str(), "not_found"),
        e => panic!("expected not_found, got {e}"),
    }
    // The handler saw the two valid requests only.
    assert_eq!(calls_rx.recv().await.unwrap(), other);
    assert!(calls_rx.try_recv().is_err());
    responder.shutdown().await;
}
