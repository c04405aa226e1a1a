//! `GET /v1/stream` over WebSocket against a real nats-server: live events, rooms, resume
//! after a reconnect with nothing missed, refused subscriptions, slow clients, shutdown.

mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(hub: &Hub, query: &str) -> (Ws, Value) {
    let url = format!("ws://{}/v1/stream?{query}", hub.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "subscribed", "{hello}");
    (ws, hello)
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("the connection is open")
            .expect("a frame");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn publish(hub: &Hub, owner: &str) -> u64 {
    let resp = reqwest::Client::new()
        .post(hub.url("/v1/events"))
        .header("x-api-key", PHOTO_KEY)
        .json(&envelope("photo.uploaded", "photo", photo_uploaded(owner)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    body["receipt"]["sequence"].as_u64().unwrap()
}

#[tokio::test]
async fn a_user_receives_its_room_live_and_resumes_after_reconnect_missing_nothing() {
    let mut hub = start().await;
    let (alice, bob) = (uuid(), uuid());
    let token = jwt("photo", Some(&alice), JWT_SECRET);
    let (mut ws, hello) = connect(&hub, &format!("types=photo.*&token={token}")).await;
    assert_eq!(hello["user"], alice.as_str());

    let s1 = publish(&hub, &alice).await;
    publish(&hub, &bob).await;
    let s2 = publish(&hub, &alice).await;
    let mut last = 0;
    for want in [s1, s2] {
        let e = next_json(&mut ws).await;
        assert_eq!(e["type"], "event");
        assert_eq!(e["stream"], "PHOTOS");
        assert_eq!(e["eventType"], "photo.uploaded");
        assert_eq!(e["source"], "photo");
        assert_eq!(e["data"]["owner_id"], alice.as_str());
        assert_eq!(e["sequence"].as_u64(), Some(want), "{e}");
        last = want;
    }
    ws.close(None).await.unwrap();
    drop(ws);

    // Missed while away: two of alice's, one of bob's.
    let m1 = publish(&hub, &alice).await;
    publish(&hub, &bob).await;
    let m2 = publish(&hub, &alice).await;
    let (mut ws, hello) = connect(
        &hub,
        &format!("types=photo.*&token={token}&from=PHOTOS:{last}"),
    )
    .await;
    assert_eq!(hello["streams"]["PHOTOS"], last);
    publish(&hub, &bob).await;
    let live = publish(&hub, &alice).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = next_json(&mut ws).await;
        assert_eq!(e["data"]["owner_id"], alice.as_str(), "{e}");
        got.push(e["sequence"].as_u64().unwrap());
    }
    assert_eq!(got, [m1, m2, live], "nothing missed, nothing of bob's");

    // Shutdown closes the stream with 1001 and the gateway stops.
    let gateway = hub.gateway.take().unwrap();
    let stopping = tokio::spawn(gateway.shutdown());
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed within 10 s");
    assert_eq!(close.unwrap().code, CloseCode::Away);
    drop(ws);
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the gateway stops within 10 s")
        .unwrap()
        .unwrap();
    hub.server.stop();
}

#[tokio::test]
async fn a_service_follows_what_it_may_read_and_nothing_else() {
    let hub = start().await;
    let http = reqwest::Client::new();
    let get = |query: String, key: Option<&'static str>| {
        let mut req = http.get(hub.url(&format!("/v1/stream?{query}")));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        req.send()
    };
    // No credentials.
    assert_eq!(
        get("types=photo.*".into(), None).await.unwrap().status(),
        401
    );
    // auth neither publishes nor consumes photo events.
    let resp = get("types=photo.uploaded".into(), Some(AUTH_KEY))
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // A user's token cannot join another user's room.
    let token = jwt("photo", Some(&uuid()), JWT_SECRET);
    let resp = get(format!("types=photo.*&user={}&token={token}", uuid()), None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // Unknown types.
    let resp = get("types=nope.*".into(), Some(PHOTO_KEY)).await.unwrap();
    assert_eq!(resp.status(), 404);

    // A service key over WebSocket: every event of its types, any user.
    let url = format!("ws://{}/v1/stream?types=photo.uploaded", hub.addr);
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    request
        .headers_mut()
        .insert("x-api-key", PHOTO_KEY.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "subscribed");
    let a = publish(&hub, &uuid()).await;
    let b = publish(&hub, &uuid()).await;
    assert_eq!(next_json(&mut ws).await["sequence"].as_u64(), Some(a));
    assert_eq!(next_json(&mut ws).await["sequence"].as_u64(), Some(b));
}

#[tokio::test]
async fn a_slow_client_is_dropped_and_the_server_keeps_serving() {
    let hub = start_with(|c| c.ws_buffer(8)).await;
    let token = jwt("photo", None, JWT_SECRET);
    let (mut slow, _) = connect(&hub, &format!("types=photo.*&token={token}")).await;
    // Enough data to fill the socket buffers while the client reads nothing.
    let publisher = hub.client.publisher();
    let info = eventhub_catalog::CATALOG
        .iter()
        .find(|e| e.event_type == "photo.uploaded")
        .unwrap();
    let mut data = photo_uploaded(&uuid());
    data["storage_key"] = json!("k".repeat(16 * 1024));
    let total = 1500;
    for _ in 0..total {
        publisher
            .publish_json(info, &data, eventhub::PublishOptions::default())
            .await
            .unwrap();
    }
    let mut events = 0;
    let code = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match slow.next().await {
                Some(Ok(Message::Text(_))) => events += 1,
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => {}
                other => panic!("expected frames then a close, got {other:?}"),
            }
        }
    })
    .await
    .expect("the slow client is closed");
    assert_eq!(code, Some(CloseCode::Policy));
    assert!(
        events < total,
        "dropped before receiving everything ({events})"
    );

    // Others are still served.
    let (mut ws, _) = connect(&hub, &format!("types=photo.*&token={token}")).await;
    let seq = publish(&hub, &uuid()).await;
    assert_eq!(next_json(&mut ws).await["sequence"].as_u64(), Some(seq));
    ws.send(Message::Close(None)).await.ok();
}

async fn gauge(hub: &Hub, name: &str) -> u64 {
    let text = reqwest::get(hub.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

/// Polls `/metrics` until `name` reads `want` (the feed stops on its own timer).
async fn await_gauge(hub: &Hub, name: &str, want: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = gauge(hub, name).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} is {got}, not {want}, after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn clients_share_one_live_feed_per_stream_which_stops_without_clients() {
    let hub = start_with(|c| c.feed_linger(Duration::from_millis(50))).await;
    let token = jwt("photo", None, JWT_SECRET);
    assert_eq!(gauge(&hub, "eventhub_gateway_stream_feeds").await, 0);
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(
            connect(&hub, &format!("types=photo.*&token={token}"))
                .await
                .0,
        );
    }
    assert_eq!(gauge(&hub, "eventhub_gateway_stream_feeds").await, 1);
    assert_eq!(gauge(&hub, "eventhub_gateway_stream_members").await, 5);
    let info = hub
        .client
        .jetstream()
        .get_stream("PHOTOS")
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(
        info.state.consumer_count, 1,
        "one consumer for five clients"
    );
    let seq = publish(&hub, &uuid()).await;
    for ws in &mut clients {
        assert_eq!(next_json(ws).await["sequence"].as_u64(), Some(seq));
    }
    for mut ws in clients {
        ws.close(None).await.unwrap();
    }
    await_gauge(&hub, "eventhub_gateway_stream_members", 0).await;
    await_gauge(&hub, "eventhub_gateway_stream_feeds", 0).await;
    // A new client starts a new feed and misses nothing published while none ran.
    let missed = publish(&hub, &uuid()).await;
    let (mut ws, _) = connect(
        &hub,
        &format!("types=photo.*&token={token}&from=PHOTOS:{seq}"),
    )
    .await;
    let live = publish(&hub, &uuid()).await;
    assert_eq!(next_json(&mut ws).await["sequence"].as_u64(), Some(missed));
    assert_eq!(next_json(&mut ws).await["sequence"].as_u64(), Some(live));
}

/// Clients resume from many positions while events are being stored and the live feed is
/// moving: each receives exactly every event after its `from`, in order, once.
#[tokio::test]
async fn resuming_while_events_flow_misses_nothing_and_repeats_nothing() {
    let hub = start().await;
    let token = jwt("photo", None, JWT_SECRET);
    let query = format!("types=photo.uploaded&token={token}");
    // Keeps the feed running and moving during the whole test.
    let (mut watcher, _) = connect(&hub, &query).await;
    let publisher = hub.client.publisher();
    let info = eventhub_catalog::CATALOG
        .iter()
        .find(|e| e.event_type == "photo.uploaded")
        .unwrap();
    let mut first = 0;
    for _ in 0..100 {
        let r = publisher
            .publish_json(info, &photo_uploaded(&uuid()), Default::default())
            .await
            .unwrap();
        if first == 0 {
            first = r.sequence;
        }
    }
    let total = 600u64;
    let last = first + total - 1;
    let flowing = tokio::spawn({
        let publisher = publisher.clone();
        async move {
            for _ in 100..total {
                publisher
                    .publish_json(info, &photo_uploaded(&uuid()), Default::default())
                    .await
                    .unwrap();
            }
        }
    });
    let mut readers = Vec::new();
    for i in 0..12u64 {
        // from: before the first event, inside the stored ones, and near the moving head.
        let from = first - 1 + i * 45;
        let (mut ws, hello) = connect(&hub, &format!("{query}&from=PHOTOS:{from}")).await;
        assert_eq!(hello["streams"]["PHOTOS"], from);
        readers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while got.last() != Some(&last) {
                let e = next_json(&mut ws).await;
                got.push(e["sequence"].as_u64().expect("an event frame"));
            }
            (from, got)
        }));
    }
    flowing.await.unwrap();
    for reader in readers {
        let (from, got) = reader.await.unwrap();
        let want: Vec<u64> = (from + 1..=last).collect();
        assert_eq!(got, want, "resumed from {from}");
    }
    let mut live = Vec::new();
    while live.last() != Some(&last) {
        live.push(next_json(&mut watcher).await["sequence"].as_u64().unwrap());
    }
    assert_eq!(live, (first..=last).collect::<Vec<_>>());
}
