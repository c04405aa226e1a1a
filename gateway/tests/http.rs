//! `POST /v1/events` against a real nats-server: every status code of the contract.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn post(
    hub: &Hub,
    key: Option<&str>,
    body: &Value,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut req = http().post(hub.url("/v1/events")).json(body);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body: Value = resp.json().await.expect("a JSON body");
    (status, body, headers)
}

#[tokio::test]
async fn accepted_only_once_stored_and_idempotent_by_id() {
    let hub = start().await;
    let id = uuid();
    let owner = uuid();
    let mut body = envelope("photo.uploaded", "photo", photo_uploaded(&owner));
    body["id"] = json!(id);
    body["metadata"] = json!({"correlationId": "corr-1", "causationId": "cause-1"});
    let (status, answer, _) = post(&hub, Some(PHOTO_KEY), &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "accepted");
    assert_eq!(answer["eventId"], id.as_str());
    assert_eq!(answer["receipt"]["duplicate"], false);
    let stream = answer["receipt"]["stream"].as_str().unwrap().to_string();
    let sequence = answer["receipt"]["sequence"].as_u64().unwrap();

    // The receipt names the stored message, with the caller as source and the id as dedup key.
    let stored = hub
        .client
        .jetstream()
        .get_stream(&stream)
        .await
        .unwrap()
        .get_raw_message(sequence)
        .await
        .unwrap();
    let h = stored.headers;
    assert_eq!(h.get("ce-source").unwrap().as_str(), "photo");
    assert_eq!(h.get("Nats-Msg-Id").unwrap().as_str(), id);
    assert_eq!(h.get("ce-correlationid").unwrap().as_str(), "corr-1");
    assert_eq!(h.get("ce-causationid").unwrap().as_str(), "cause-1");
    let data: Value = serde_json::from_slice(&stored.payload).unwrap();
    assert_eq!(data["owner_id"], owner.as_str());

    let (status, again, _) = post(&hub, Some(PHOTO_KEY), &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["receipt"]["duplicate"], true);
    assert_eq!(again["receipt"]["sequence"].as_u64(), Some(sequence));
}

#[tokio::test]
async fn http2_cleartext_clients_publish() {
    // Cleartext HTTP/2 with prior knowledge, as a proxy or service mesh speaks to an upstream.
    let hub = start().await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let ids: Vec<String> = (0..8).map(|_| uuid()).collect();
    let answers = futures::future::join_all(ids.iter().map(|id| {
        let mut body = envelope("photo.uploaded", "photo", photo_uploaded(&uuid()));
        body["id"] = json!(id);
        h2.post(hub.url("/v1/events"))
            .header("x-api-key", PHOTO_KEY)
            .json(&body)
            .send()
    }))
    .await;
    for (id, answer) in ids.iter().zip(answers) {
        let resp = answer.expect("an HTTP/2 answer");
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["eventId"], id.as_str());
    }
}

#[tokio::test]
async fn jwt_bearer_publishes_and_version_defaults_to_latest() {
    let hub = start().await;
    let token = jwt("auth", None, JWT_SECRET);
    let data = json!({
        "user_id": uuid(), "email": "ada@example.com", "locale": "en-GB",
        "created_at": "2026-12-04T10:00:00Z"
    });
    let resp = http()
        .post(hub.url("/v1/events"))
        .bearer_auth(&token)
        .json(&envelope("user.created", "auth", data))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let answer: Value = resp.json().await.unwrap();
    let stored = hub
        .client
        .jetstream()
        .get_stream(answer["receipt"]["stream"].as_str().unwrap())
        .await
        .unwrap()
        .get_raw_message(answer["receipt"]["sequence"].as_u64().unwrap())
        .await
        .unwrap();
    let latest = eventhub_catalog::CATALOG
        .iter()
        .filter(|e| e.event_type == "user.created")
        .map(|e| e.version)
        .max()
        .unwrap();
    assert_eq!(
        stored.subject.as_str(),
        format!("events.user.created.v{latest}")
    );
}

#[tokio::test]
async fn schema_violations_are_all_listed_by_field() {
    let hub = start().await;
    let mut data = photo_uploaded(&uuid());
    data["size_bytes"] = json!(0);
    data["content_type"] = json!("image/gif");
    data["owner_id"] = json!("not-a-uuid");
    let (status, answer, _) = post(
        &hub,
        Some(PHOTO_KEY),
        &envelope("photo.uploaded", "photo", data),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["status"], "error");
    assert_eq!(answer["errorCode"], "SCHEMA_VALIDATION_ERROR");
    let mut fields: Vec<&str> = answer["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["data.content_type", "data.owner_id", "data.size_bytes"],
        "{answer}"
    );
    assert!(
        answer["details"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| !d["error"].as_str().unwrap().is_empty())
    );
    // Nothing was stored.
    let info = hub
        .client
        .jetstream()
        .get_stream("PHOTOS")
        .await
        .map(|s| s.cached_info().state.messages);
    assert!(matches!(info, Ok(0) | Err(_)), "{info:?}");

    // A missing field names the object it is missing from.
    let mut data = photo_uploaded(&uuid());
    data.as_object_mut().unwrap().remove("storage_key");
    let (status, answer, _) = post(
        &hub,
        Some(PHOTO_KEY),
        &envelope("photo.uploaded", "photo", data),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["details"][0]["field"], "data", "{answer}");
    assert!(
        answer["details"][0]["error"]
            .as_str()
            .unwrap()
            .contains("storage_key"),
        "{answer}"
    );
}

#[tokio::test]
async fn malformed_envelopes_are_invalid_requests() {
    let hub = start().await;
    for body in [
        json!({"eventType": "photo.uploaded", "source": "photo"}),
        json!({"eventType": "photo.uploaded", "source": "photo", "data": {}, "extra": 1}),
        json!({"eventType": "photo.uploaded", "source": "photo", "data": {}, "timestamp": "yesterday"}),
        json!({"eventType": "photo.uploaded", "source": "photo", "data": {}, "id": "has space"}),
    ] {
        let (status, answer, _) = post(&hub, Some(PHOTO_KEY), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        assert_eq!(answer["errorCode"], "INVALID_REQUEST", "{body} -> {answer}");
    }
    let resp = http()
        .post(hub.url("/v1/events"))
        .header("x-api-key", PHOTO_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_types_and_versions_are_404() {
    let hub = start().await;
    let (status, answer, _) = post(
        &hub,
        Some(PHOTO_KEY),
        &envelope("photo.deleted", "photo", json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["errorCode"], "UNKNOWN_EVENT_TYPE");
    let mut body = envelope("photo.uploaded", "photo", photo_uploaded(&uuid()));
    body["version"] = json!(9);
    let (status, answer, _) = post(&hub, Some(PHOTO_KEY), &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["errorCode"], "UNKNOWN_VERSION");
    assert!(
        answer["message"].as_str().unwrap().contains("has 1"),
        "{answer}"
    );
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let hub = start_with(|c| c.max_body(16 * 1024)).await;
    let mut data = photo_uploaded(&uuid());
    data["storage_key"] = json!("k".repeat(20 * 1024));
    let (status, answer, _) = post(
        &hub,
        Some(PHOTO_KEY),
        &envelope("photo.uploaded", "photo", data),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["errorCode"], "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn events_over_the_servers_max_payload_are_413() {
    // The body limit lets 2 MiB through; nats-server's max_payload (1 MiB) does not.
    let hub = start_with(|c| c.max_body(2 * 1024 * 1024)).await;
    let mut data = photo_uploaded(&uuid());
    data["storage_key"] = json!("k".repeat(1024 * 1024 + 10));
    let (status, answer, _) = post(
        &hub,
        Some(PHOTO_KEY),
        &envelope("photo.uploaded", "photo", data),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["errorCode"], "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn missing_or_bad_credentials_are_401() {
    let hub = start().await;
    let body = envelope("photo.uploaded", "photo", photo_uploaded(&uuid()));
    let (status, answer, headers) = post(&hub, None, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["errorCode"], "UNAUTHORIZED");
    assert!(headers.contains_key("www-authenticate"));
    let (status, _, _) = post(&hub, Some("photo-key-0123456789abcdef0123456788"), &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for token in [
        jwt("photo", None, b"a-different-secret-of-thirty-two-bytes!"),
        jwt("mallory", None, JWT_SECRET),
        "not.a.jwt".to_string(),
    ] {
        let resp = http()
            .post(hub.url("/v1/events"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn publishing_what_the_caller_does_not_own_is_403() {
    let hub = start().await;
    let data = json!({
        "user_id": uuid(), "email": "ada@example.com", "locale": "en-GB",
        "created_at": "2026-12-04T10:00:00Z"
    });
    // photo does not own user.created (auth does).
    let (status, answer, _) = post(
        &hub,
        Some(PHOTO_KEY),
        &envelope("user.created", "photo", data.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["errorCode"], "FORBIDDEN");
    // auth owns it but may not claim another source.
    let (status, answer, _) = post(
        &hub,
        Some(AUTH_KEY),
        &envelope("user.created", "photo", data),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    // An operator is not a publisher.
    let (status, _, _) = post(
        &hub,
        Some(OPS_KEY),
        &envelope("photo.uploaded", "ops", photo_uploaded(&uuid())),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn unreachable_store_is_503_with_retry_after_and_nothing_stored() {
    let mut hub = start().await;
    // Warm the caller's connection first, so the answer is about the store, not connecting.
    let (status, _, _) = post(
        &hub,
        Some(PHOTO_KEY),
        &envelope("photo.uploaded", "photo", photo_uploaded(&uuid())),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    hub.server.stop();
    let id = uuid();
    let mut body = envelope("photo.uploaded", "photo", photo_uploaded(&uuid()));
    body["id"] = json!(id);
    let (status, answer, headers) = post(&hub, Some(PHOTO_KEY), &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["errorCode"], "UNAVAILABLE");
    assert!(headers.contains_key("retry-after"));
    // Data that could never be stored is the caller's to fix, store or no store: 400.
    let mut invalid = photo_uploaded(&uuid());
    invalid["size_bytes"] = json!(0);
    let (status, answer, _) = post(
        &hub,
        Some(PHOTO_KEY),
        &envelope("photo.uploaded", "photo", invalid),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["errorCode"], "SCHEMA_VALIDATION_ERROR");
    assert_eq!(answer["details"][0]["field"], "data.size_bytes", "{answer}");

    // Back up: the retry with the same id is stored exactly once.
    hub.server.start_again().unwrap();
    let mut accepted = None;
    for _ in 0..100 {
        let (status, answer, _) = post(&hub, Some(PHOTO_KEY), &body).await;
        if status == StatusCode::ACCEPTED {
            accepted = Some(answer);
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = accepted.expect("accepted once the server is back");
    assert_eq!(answer["eventId"], id.as_str());
    assert_eq!(answer["receipt"]["sequence"], 2, "{answer}");
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let hub = start().await;
    let resp = http().get(hub.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let health: Value = resp.json().await.unwrap();
    assert_eq!(health["connected"], true);
    let (status, _, _) = post(
        &hub,
        Some(PHOTO_KEY),
        &envelope("photo.uploaded", "photo", photo_uploaded(&uuid())),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let text = http()
        .get(hub.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("eventhub_gateway_requests_total{route=\"/v1/events\",status=\"202\"} 1"),
        "{text}"
    );
    let doc: Value = http()
        .get(hub.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let variants = doc["components"]["schemas"]["PublishRequest"]["oneOf"]
        .as_array()
        .unwrap();
    assert_eq!(variants.len(), eventhub_catalog::CATALOG.len());
}
