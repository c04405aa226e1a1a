//! `POST /v1/events:batch` against a real nats-server: per-item results in order, the
//! batch-level refusals (401, 400, 413) and that a refused item stores nothing.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;

async fn post_batch(hub: &Hub, key: Option<&str>, body: String) -> (StatusCode, Value) {
    let mut req = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .post(hub.url("/v1/events:batch"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn each_item_gets_the_answer_it_would_get_alone_in_order() {
    let hub = start().await;
    let owner = uuid();
    let mut first = envelope("photo.uploaded", "photo", photo_uploaded(&owner));
    first["id"] = json!("batch-evt-1");
    let mut bad = photo_uploaded(&owner);
    bad["size_bytes"] = json!("big");
    let items = json!([
        first.clone(),
        envelope("photo.uploaded", "photo", bad),
        envelope("photo.deleted", "photo", json!({})),
        envelope("auth.logout", "auth", json!({})),
        {"eventType": "photo.uploaded"},
        first,
        envelope("photo.uploaded", "photo", photo_uploaded(&owner)),
    ]);
    let (status, answer) = post_batch(&hub, Some(PHOTO_KEY), items.to_string()).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{answer}");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(answer["failed"], 4, "{answer}");
    let results = answer["results"].as_array().unwrap();
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["httpStatus"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 400, 404, 403, 400, 202, 202]);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
    }
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[0]["eventId"], "batch-evt-1");
    assert_eq!(results[0]["receipt"]["duplicate"], false);
    assert_eq!(results[1]["errorCode"], "SCHEMA_VALIDATION_ERROR");
    assert_eq!(results[1]["details"][0]["field"], "data.size_bytes");
    assert_eq!(results[2]["errorCode"], "UNKNOWN_EVENT_TYPE");
    assert_eq!(results[3]["errorCode"], "FORBIDDEN");
    assert_eq!(results[4]["errorCode"], "INVALID_REQUEST");
    // The same id again: a duplicate of the first, not a second copy.
    assert_eq!(results[5]["receipt"]["duplicate"], true);
    assert_eq!(
        results[5]["receipt"]["sequence"],
        results[0]["receipt"]["sequence"]
    );
    // Stored in request order, and only the accepted ones.
    let (a, b) = (
        results[0]["receipt"]["sequence"].as_u64().unwrap(),
        results[6]["receipt"]["sequence"].as_u64().unwrap(),
    );
    assert_eq!(b, a + 1, "the refused items stored nothing");
    let photos = hub.client.jetstream().get_stream("PHOTOS").await.unwrap();
    assert_eq!(photos.cached_info().state.messages, 2);
}

#[tokio::test]
async fn batch_level_refusals() {
    let hub = start_with(|c| c.max_batch(3, 64 * 1024)).await;
    let one = envelope("photo.uploaded", "photo", photo_uploaded(&uuid()));
    let (status, answer) = post_batch(&hub, None, json!([one]).to_string()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");

    let (status, answer) = post_batch(&hub, Some(PHOTO_KEY), one.to_string()).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an object, not an array: {answer}"
    );
    assert_eq!(answer["errorCode"], "INVALID_REQUEST");
    let (status, _) = post_batch(&hub, Some(PHOTO_KEY), "[]".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let four = json!([one, one, one, one]).to_string();
    let (status, answer) = post_batch(&hub, Some(PHOTO_KEY), four).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["errorCode"], "PAYLOAD_TOO_LARGE");

    let mut big = one.clone();
    big["data"]["storage_key"] = json!("k".repeat(70 * 1024));
    let (status, answer) = post_batch(&hub, Some(PHOTO_KEY), json!([big]).to_string()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");

    // Nothing of the refused batches was stored.
    let photos = hub.client.jetstream().get_stream("PHOTOS").await.unwrap();
    assert_eq!(photos.cached_info().state.messages, 0);
}
