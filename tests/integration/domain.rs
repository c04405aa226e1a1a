//! One consumer of a whole domain (`events::photo::Any`): every family of the domain arrives
//! through one durable, matched exhaustively; a type of the domain this build does not know is
//! dead-lettered with a reason, never skipped.

use async_nats::HeaderMap;
use eventhub::wire::headers;
use eventhub_catalog::events::photo;
use serde_json::json;

use crate::support::{DlqWatch, next, quick, server_and_client};

fn uploaded() -> photo::UploadedV1 {
    serde_json::from_value(json!({
        "photo_id": "0190b1f0-0000-7000-8000-000000000001",
        "owner_id": "0190b1f0-0000-7000-8000-000000000002",
        "content_type": "image/png",
        "size_bytes": 1024,
        "storage_key": "originals/1",
        "uploaded_at": "2026-12-04T10:00:00Z"
    }))
    .unwrap()
}

fn started() -> photo::ProcessingStartedV1 {
    serde_json::from_value(json!({
        "photo_id": "0190b1f0-0000-7000-8000-000000000001",
        "job_id": "0190b1f0-0000-7000-8000-000000000003",
        "started_at": "2026-12-04T10:00:01Z"
    }))
    .unwrap()
}

/// What the handler tells apart: the exhaustive match is the point (a new family of the
/// domain makes this function fail to compile until it is handled).
fn describe(event: &photo::Any) -> String {
    match event {
        photo::Any::Uploaded(photo::Uploaded::V1(e)) => {
            format!("uploaded {}", e.storage_key.as_str())
        }
        photo::Any::ProcessingStarted(photo::ProcessingStarted::V1(_)) => "started".into(),
        photo::Any::ProcessingCompleted(_) => "completed".into(),
        photo::Any::ProcessingFailed(_) => "failed".into(),
    }
}

#[tokio::test]
async fn one_consumer_receives_every_family_of_a_domain_and_dead_letters_unknown_types() {
    let (_server, client) = server_and_client("gallery").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = client
        .consumer::<photo::Any>(quick().concurrency(1))
        .await
        .expect("a consumer of the photo domain")
        .spawn(move |env| {
            let _ = tx.send((describe(&env), env.event_type()));
            async { Ok(()) }
        });

    client.publisher().publish(&uploaded()).await.unwrap();
    client.publisher().publish(&started()).await.unwrap();
    // A type of the domain this build does not know: a newer catalog added it to the stream.
    let js = client.jetstream();
    let mut stream = js.get_stream("PHOTOS").await.unwrap();
    let mut config = stream.info().await.unwrap().config.clone();
    config.subjects.push("events.photo.cropped.v1".into());
    js.update_stream(config).await.unwrap();
    let mut h = HeaderMap::new();
    h.insert(headers::ID, "foreign-1");
    h.insert(headers::MSG_ID, "foreign-1");
    h.insert(headers::CONTENT_TYPE, "application/json");
    client
        .jetstream()
        .publish_with_headers("events.photo.cropped.v1", h, "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();

    assert_eq!(
        next(&mut rx, 10).await,
        ("uploaded originals/1".to_string(), "photo.uploaded")
    );
    assert_eq!(
        next(&mut rx, 10).await,
        ("started".to_string(), "photo.processing.started")
    );
    let letter = dlq.next(10).await;
    assert!(
        letter
            .subject
            .as_str()
            .ends_with(".events.photo.cropped.v1"),
        "{}",
        letter.subject
    );
    let h = letter.headers.clone().unwrap();
    assert_eq!(h.get(headers::DLQ_REASON).unwrap().as_str(), "poison");
    let error = h.get(headers::DLQ_ERROR).unwrap().as_str().to_string();
    assert!(
        error.contains("photo.cropped") && error.contains("photo.uploaded"),
        "the reason names the unknown type and the known ones: {error}"
    );
    let stats = handle.shutdown().await;
    assert_eq!((stats.received, stats.dead_lettered), (3, 1));
    assert!(rx.try_recv().is_err(), "nothing else reached the handler");
}
