//! What the adversarial fault scenario (`eventhub-faults --only adversarial`) found: inputs a
//! foreign producer can store that ended in limbo or broke a consumer. Each test failed
//! before its fix; the last waits for one in async-nats.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use eventhub::Consumable;
use eventhub::Event;
use eventhub::Sweeper;
use eventhub::dlq::DeadLetterReason;
use eventhub_catalog::events::user;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::support::{
    DlqWatch, connect, consumer_counts, letters_of, next, quick, record, server_and_client,
    user_created_v2,
};

/// The largest header block a stream stores.
const MAX_HEADERS: usize = 65_535;

/// Publishes as a foreign client: exactly these headers (in this order) and payload.
async fn foreign(
    client: &eventhub::Client,
    headers: &[(&str, &str)],
    payload: Vec<u8>,
) -> Result<u64, String> {
    let mut h = HeaderMap::new();
    for (name, value) in headers {
        h.append(*name, *value);
    }
    client
        .jetstream()
        .publish_with_headers(user::CreatedV2::SUBJECT, h, payload.into())
        .await
        .map_err(|e| e.to_string())?
        .await
        .map(|ack| ack.sequence)
        .map_err(|e| e.to_string())
}

/// A durable on IDENTITY whose process dies during every delivery (it never acks, one
/// delivery allowed), so each message reaches the sweeper. Stops when dropped.
async fn crashing(client: &eventhub::Client) -> tokio::task::JoinHandle<()> {
    let consumer: PullConsumer = client
        .jetstream()
        .get_stream("IDENTITY")
        .await
        .unwrap()
        .create_consumer(pull::Config {
            durable_name: Some("crashing".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_millis(300),
            max_deliver: 1,
            filter_subjects: user::Created::FAMILY
                .subjects
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    tokio::spawn(async move {
        loop {
            if let Ok(mut batch) = consumer
                .fetch()
                .expires(Duration::from_millis(300))
                .messages()
                .await
            {
                while let Some(_dropped) = batch.next().await {}
            }
        }
    })
}

#[tokio::test]
async fn a_message_stored_with_64_kib_of_headers_is_dead_lettered() {
    let (server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let _sweeper = Sweeper::new(&client).spawn().await.unwrap();
    let crasher = crashing(&client).await;
    let (handle, _handled) =
        record::<user::CreatedV2, _>(&client, quick(), |env| env.email.clone()).await;
    // Everything the stream stores of headers, with a `Nats-*` one the dead letter renames
    // (longer) and a poison payload.
    let mut headers = vec![
        ("ce-id", "evt-64k".to_string()),
        ("Nats-Expected-Stream", "IDENTITY".to_string()),
    ];
    let block = |h: &[(&str, String)]| -> usize {
        12 + h
            .iter()
            .map(|(n, v)| n.len() + 2 + v.len() + 2)
            .sum::<usize>()
    };
    let pad = MAX_HEADERS - block(&headers) - "x-padding: \r\n".len();
    headers.push(("x-padding", "p".repeat(pad)));
    assert_eq!(block(&headers), MAX_HEADERS);
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let other = connect(&server, "auth").await;
    let sequence = foreign(&other, &pairs, b"{not json".to_vec())
        .await
        .expect("the stream stores 64 KiB of headers");

    for consumer in ["profile__user_created", "crashing"] {
        let letters = letters_of(&client, consumer, 1).await;
        let letter = &letters[0];
        assert_eq!(letter.sequence, sequence, "{consumer}");
        let reason = if consumer == "crashing" {
            DeadLetterReason::MaxDeliver
        } else {
            DeadLetterReason::Poison
        };
        assert_eq!(letter.reason, reason, "{consumer}");
        assert_eq!(&letter.payload[..], b"{not json", "{consumer}");
        assert_eq!(letter.event_id.as_deref(), Some("evt-64k"), "{consumer}");
    }
    let stats = handle.shutdown().await;
    assert_eq!(
        stats.dead_lettered, 1,
        "stored once, not retried: {stats:?}"
    );
    crasher.abort();
}

#[tokio::test]
async fn the_sweepers_dead_letter_keeps_every_header_value() {
    let (server, client) = server_and_client("ops").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let _sweeper = Sweeper::new(&client).spawn().await.unwrap();
    let crasher = crashing(&client).await;
    let other = connect(&server, "auth").await;
    foreign(
        &other,
        &[
            ("ce-id", "first"),
            ("ce-id", "second"),
            ("Nats-Batch-Sequence", "1"),
            ("Nats-Batch-Sequence", "2"),
        ],
        b"{}".to_vec(),
    )
    .await
    .unwrap();
    let letters = letters_of(&client, "crashing", 1).await;
    let all = |name: &str| -> Vec<String> {
        letters[0]
            .headers
            .get_all(name)
            .map(|v| v.as_str().to_string())
            .collect()
    };
    assert_eq!(all("ce-id"), ["first", "second"]);
    assert_eq!(all("Nats-Batch-Sequence"), ["1", "2"]);
    assert_eq!(
        letters[0].event_id.as_deref(),
        Some("first"),
        "the id a consumer reads"
    );
    crasher.abort();
}

#[tokio::test]
async fn a_long_event_id_does_not_cut_an_idempotent_consumer_off() {
    let (server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let (handle, mut handled) = record::<user::CreatedV2, _>(
        &client,
        quick()
            .ack_wait(Duration::from_secs(2))
            .idempotent(Duration::from_secs(600)),
        |env| env.email.clone(),
    )
    .await;
    let producer = connect(&server, "auth").await;
    // Its key (`x` and the id's hex bytes) once made a subject past the server's 4 KiB
    // control line: the server closed the consumer's connection at every claim.
    let long = "~".repeat(3000);
    let payload = serde_json::to_vec(&user_created_v2("long@example.com")).unwrap();
    foreign(&producer, &[("ce-id", &long)], payload)
        .await
        .unwrap();
    producer
        .publisher()
        .publish(&user_created_v2("after@example.com"))
        .await
        .unwrap();
    let mut got = vec![next(&mut handled, 10).await, next(&mut handled, 10).await];
    got.sort();
    assert_eq!(got, ["after@example.com", "long@example.com"]);
    // Both settled: nothing pending or unacknowledged, and no handler ran again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while consumer_counts(&client, "IDENTITY", "profile__user_created").await != (0, 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            handle.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = handle.shutdown().await;
    assert!(
        handled.try_recv().is_err(),
        "a handler ran twice: {stats:?}"
    );
    assert_eq!(stats.handled, 2, "{stats:?}");
    assert!(
        !server.log().contains("maximum control line exceeded"),
        "the server closed a connection"
    );
}

#[tokio::test]
async fn reading_and_replaying_a_dead_letter_keeps_every_header_value() {
    let (server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;
    let (handle, _handled) =
        record::<user::CreatedV2, _>(&client, quick(), |env| env.email.clone()).await;
    let other = connect(&server, "auth").await;
    // Two content types: a consumer reads the first (unsupported: poison).
    foreign(
        &other,
        &[
            ("ce-id", "two-types"),
            ("content-type", "text/plain"),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&user_created_v2("two@example.com")).unwrap(),
    )
    .await
    .unwrap();
    let entry = dlq.next(10).await;
    let id = entry.info().unwrap().stream_sequence;
    let letter = client.dead_letters().get(id).await.unwrap();
    let types: Vec<&str> = letter
        .headers
        .get_all("content-type")
        .map(|v| v.as_str())
        .collect();
    assert_eq!(types, ["text/plain", "application/json"], "get({id})");
    // The replay is the same event: poison for the same reason.
    client.dead_letters().replay(id).await.unwrap();
    let again = dlq.next(10).await;
    let error = again
        .headers
        .as_ref()
        .and_then(|h| h.get(eventhub::wire::headers::DLQ_ERROR))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default();
    assert!(error.contains("content-type `text/plain`"), "{error}");
    handle.shutdown().await;
}

#[tokio::test]
async fn a_producer_cannot_pre_empt_a_replay() {
    let (server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;
    let (handle, _handled) =
        record::<user::CreatedV2, _>(&client, quick(), |env| env.email.clone()).await;
    let other = connect(&server, "auth").await;
    // The message id a replay of dead letter 1 of event `x` once got: `x:replay:1`. A producer
    // who sends it first made the stream drop the replay as a duplicate, and the dead letter
    // was deleted all the same.
    let stored = foreign(
        &other,
        &[("ce-id", "x"), ("Nats-Msg-Id", "x:replay:1")],
        b"{not json".to_vec(),
    )
    .await
    .unwrap();
    let entry = dlq.next(10).await;
    assert_eq!(entry.info().unwrap().stream_sequence, 1);
    let replayed = client.dead_letters().replay(1).await.unwrap();
    assert!(!replayed.duplicate, "{replayed:?}");
    assert!(replayed.sequence > stored, "{replayed:?}");
    // It reached the consumer again (still poison).
    let again = dlq.next(10).await;
    assert_eq!(
        again
            .headers
            .as_ref()
            .and_then(|h| h.get(eventhub::wire::headers::DLQ_SEQUENCE))
            .map(|v| v.as_str().to_string()),
        Some(replayed.sequence.to_string())
    );
    // Replaying it again (as after a failed delete) does not publish it twice.
    handle.shutdown().await;
}

/// Publishes over a bare TCP connection, as any NATS client can: `HPUB` with `header_lines`
/// (each `Name: value\r\n`) as bytes. Returns the JetStream reply.
async fn publish_over_the_wire(
    url: &str,
    subject: &str,
    header_lines: &[u8],
    payload: &[u8],
) -> String {
    let tcp = tokio::net::TcpStream::connect(url.trim_start_matches("nats://"))
        .await
        .unwrap();
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap(); // INFO
    w.write_all(b"CONNECT {\"verbose\":false,\"headers\":true,\"protocol\":1}\r\nSUB _R.x 1\r\n")
        .await
        .unwrap();
    let mut block = b"NATS/1.0\r\n".to_vec();
    block.extend_from_slice(header_lines);
    block.extend_from_slice(b"\r\n");
    let total = block.len() + payload.len();
    let op = format!("HPUB {subject} _R.x {} {total}\r\n", block.len());
    w.write_all(op.as_bytes()).await.unwrap();
    w.write_all(&block).await.unwrap();
    w.write_all(payload).await.unwrap();
    w.write_all(b"\r\n").await.unwrap();
    loop {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        if line.starts_with("MSG") {
            let n: usize = line.split_whitespace().last().unwrap().parse().unwrap();
            let mut reply = vec![0; n + 2];
            r.read_exact(&mut reply).await.unwrap();
            return String::from_utf8_lossy(&reply[..n]).to_string();
        }
        assert!(!line.starts_with("-ERR"), "{line}");
    }
}

#[tokio::test]
async fn the_sweeper_dead_letters_a_message_whose_headers_async_nats_cannot_read() {
    let (server, client) = server_and_client("ops").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let _sweeper = Sweeper::new(&client).spawn().await.unwrap();
    // Its consumer dies on it (here: its connection is closed at the delivery).
    let crasher = crashing(&connect(&server, "crashing").await).await;
    let reply = publish_over_the_wire(
        &server.client_url(),
        user::CreatedV2::SUBJECT,
        b"X-Caf\xc3\xa9 Name: \xff\r\nce-id: unreadable\r\n",
        b"{}",
    )
    .await;
    assert!(reply.contains("\"seq\":1"), "stored: {reply}");
    let letters = letters_of(&client, "crashing", 1).await;
    let letter = &letters[0];
    assert_eq!(letter.reason, DeadLetterReason::MaxDeliver);
    assert_eq!(letter.event_id.as_deref(), Some("unreadable"));
    // What no header can hold is made readable: the name escaped, the value's bad bytes
    // replaced.
    assert_eq!(
        letter.headers.get("X-Caf%C3%A9%20Name").map(|v| v.as_str()),
        Some("\u{fffd}")
    );
    assert_eq!(&letter.payload[..], b"{}");
    crasher.abort();
}

/// nats.go and nats-py send header names and values async-nats refuses to read (a space or a
/// non-ASCII letter in a name, a value that is not UTF-8); nats-server stores them. async-nats
/// 0.51/0.52 then drops the consumer's whole connection at every delivery of such a message
/// (`connection.rs`: "header isn't valid utf-8", `HeaderName::from_str`), so the consumer
/// receives nothing at all — not the message, not the valid events after it, which end up
/// dead-lettered as max-deliver by the sweeper. The sweeper itself now reads such messages
/// (its own header parser) and dead-letters them. Needs async-nats to deliver the message
/// (or skip the bad header lines) instead of closing the connection.
#[tokio::test]
#[ignore = "async-nats closes the connection on header lines it cannot parse; needs a fix there"]
async fn headers_other_clients_can_send_do_not_stall_a_consumer() {
    let (server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let (handle, mut handled) = record::<user::CreatedV2, _>(
        &client,
        quick().ack_wait(Duration::from_secs(1)).max_deliver(3),
        |env| env.email.clone(),
    )
    .await;
    let mut dlq = DlqWatch::start(&client).await;
    let payload = serde_json::to_vec(&user_created_v2("odd-header@example.com")).unwrap();
    let reply = publish_over_the_wire(
        &server.client_url(),
        user::CreatedV2::SUBJECT,
        b"X-Caf\xc3\xa9 Name: \xff\r\n",
        &payload,
    )
    .await;
    assert!(reply.contains("\"seq\":1"), "stored: {reply}");
    client
        .publisher()
        .publish(&user_created_v2("valid@example.com"))
        .await
        .unwrap();
    // The valid event is handled; the odd one is handled or dead-lettered.
    let mut got = Vec::new();
    while let Ok(Some(email)) = tokio::time::timeout(Duration::from_secs(10), handled.recv()).await
    {
        got.push(email);
        if got.len() == 2 {
            break;
        }
    }
    assert!(got.contains(&"valid@example.com".to_string()), "{got:?}");
    if got.len() < 2 {
        let entry = dlq.next(10).await;
        assert_eq!(entry.info().unwrap().stream_sequence, 1);
    }
    handle.shutdown().await;
}
