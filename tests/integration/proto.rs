//! Protobuf payloads: every catalog event round-trips, the `.proto` text matches the
//! descriptors, JSON and protobuf producers share a stream, and a malformed protobuf payload is
//! poison.

use std::collections::BTreeSet;

use async_nats::HeaderMap;
use eventhub::Client;
use eventhub::Codec;
use eventhub::ConnectOptions;
use eventhub::Event;
use eventhub::EventInfo;
use eventhub::PublishOptions;
use eventhub::dlq::DeadLetterReason;
use eventhub::error::DecodeErrorKind;
use eventhub::wire::EventVisitor;
use eventhub::wire::RawEvent;
use eventhub::wire::headers;
use eventhub::wire::proto::{Kind, Message, Shape};
use eventhub_catalog::events::user;
use serde_json::Value;

use crate::support::{
    DlqWatch, next, quick, record, server_and_client, user_created_v1, user_created_v2,
};

/// The fixture instances of an event: `tests/fixtures/events/<type>.v<N>.json`, a JSON array
/// whose first instance sets every property (optional ones included) and whose others vary
/// (absent optional properties, zeros, empty strings and arrays, nulls).
fn fixtures(info: &EventInfo) -> Result<Vec<Value>, String> {
    let path = format!(
        "{}/fixtures/events/{}.v{}.json",
        env!("CARGO_MANIFEST_DIR"),
        info.event_type,
        info.version
    );
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{} v{} has no fixture ({path}: {e}); add one with an instance of the event",
            info.event_type, info.version
        )
    })?;
    match serde_json::from_str(&text) {
        Ok(Value::Array(items)) if !items.is_empty() => Ok(items),
        _ => Err(format!(
            "{path}: expected a non-empty JSON array of instances"
        )),
    }
}

/// Round-trips every fixture of every event type through protobuf.
#[derive(Default)]
struct RoundTrip {
    problems: Vec<String>,
    instances: usize,
    events: usize,
}

impl RoundTrip {
    fn check<E: Event + PartialEq>(&mut self, info: &EventInfo, i: usize, json: &Value) {
        let what = format!("{} v{} fixture #{i}", info.event_type, info.version);
        let event: E = match serde_json::from_value(json.clone()) {
            Ok(e) => e,
            Err(e) => {
                return self
                    .problems
                    .push(format!("{what} is not a valid event: {e}"));
            }
        };
        let bytes = match eventhub::wire::proto::encode(&event) {
            Ok(b) => b,
            Err(e) => return self.problems.push(format!("{what}: {e}")),
        };
        assert!(
            serde_json::from_slice::<Value>(&bytes).is_err(),
            "{what}: protobuf bytes are not JSON"
        );
        let raw = RawEvent::new(Some(eventhub::wire::codec::PROTOBUF), &bytes);
        match raw.decode_event::<E>() {
            Ok(back) if back == event => {}
            Ok(back) => self
                .problems
                .push(format!("{what} came back different:\n{event:?}\n{back:?}")),
            Err(e) => return self.problems.push(format!("{what}: {e}")),
        }
        // The JSON form is the same too (no property gained or lost on the way).
        let value = eventhub::wire::proto::decode_value(info.proto, &bytes).unwrap();
        let expected = serde_json::to_value(&event).unwrap();
        if value != expected {
            self.problems
                .push(format!("{what}: JSON forms differ:\n{expected}\n{value}"));
        }
        // And JSON still works for the same event.
        let json_bytes = serde_json::to_vec(&event).unwrap();
        let raw = RawEvent::new(Some(eventhub::wire::codec::JSON), &json_bytes);
        assert_eq!(raw.decode_event::<E>().unwrap(), event, "{what} as JSON");
        self.instances += 1;
    }
}

impl EventVisitor for RoundTrip {
    fn visit<E: Event + PartialEq>(&mut self, info: &'static EventInfo) {
        self.events += 1;
        assert_eq!(
            E::PROTO,
            info.proto,
            "{} v{}",
            info.event_type,
            info.version
        );
        match fixtures(info) {
            Ok(items) => {
                for (i, json) in items.iter().enumerate() {
                    self.check::<E>(info, i, json);
                }
            }
            Err(e) => self.problems.push(e),
        }
    }
}

#[test]
fn every_catalog_event_round_trips_through_protobuf() {
    let mut check = RoundTrip::default();
    eventhub_catalog::events::for_each_event(&mut check);
    assert_eq!(check.events, eventhub_catalog::events::CATALOG.len());
    assert!(check.problems.is_empty(), "{}", check.problems.join("\n"));
    assert!(check.instances >= check.events);
}

/// The bytes the protobuf encoder wrote for each fixture instance before its generated
/// replacement (`tests/fixtures/proto/<type>.v<N>.hex`, one line per instance): the encoder
/// writes exactly them, and they decode to the instance.
#[derive(Default)]
struct StoredBytes {
    problems: Vec<String>,
    compared: usize,
}

impl EventVisitor for StoredBytes {
    fn visit<E: Event + PartialEq>(&mut self, info: &'static EventInfo) {
        let what = format!("{} v{}", info.event_type, info.version);
        // The generated codec itself, not the fallback through the JSON value.
        let Some(codec) = E::PROTO_CODEC else {
            return self.problems.push(format!(
                "{what}: the codegen generated no protobuf codec for it"
            ));
        };
        let path = format!(
            "{}/fixtures/proto/{}.v{}.hex",
            env!("CARGO_MANIFEST_DIR"),
            info.event_type,
            info.version
        );
        // Events added after the bytes were stored have none.
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let Ok(instances) = fixtures(info) else {
            return; // reported by the round-trip test
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() != instances.len() {
            self.problems.push(format!(
                "{path}: {} lines for {} fixture instances",
                lines.len(),
                instances.len()
            ));
            return;
        }
        for (i, (line, json)) in lines.iter().zip(&instances).enumerate() {
            let event: E = serde_json::from_value(json.clone()).expect("fixtures are events");
            let stored = hex(line.trim());
            let mut bytes = Vec::new();
            if (codec.encode)(&event, &mut bytes).is_err() {
                self.problems
                    .push(format!("{what} fixture #{i}: the generated encoder fails"));
            } else if bytes != stored {
                self.problems.push(format!(
                    "{what} fixture #{i}: encodes as\n{}\nnot as stored\n{}",
                    to_hex(&bytes),
                    line.trim()
                ));
            }
            match (codec.decode)(&stored, 0) {
                Ok(back) if back == event => {}
                Ok(back) => self.problems.push(format!(
                    "{what} fixture #{i}: stored bytes decode as {back:?}, not {event:?}"
                )),
                Err(_) => {
                    // The fallback names why.
                    let why = eventhub::wire::proto::decode::<E>(&stored).err();
                    self.problems.push(format!(
                        "{what} fixture #{i}: the generated decoder fails on the stored bytes \
                         ({why:?})"
                    ))
                }
            }
            self.compared += 1;
        }
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_generated_codecs_write_and_read_the_stored_bytes() {
    let mut check = StoredBytes::default();
    eventhub_catalog::events::for_each_event(&mut check);
    assert!(check.problems.is_empty(), "{}", check.problems.join("\n"));
    assert!(
        check.compared >= 20,
        "only {} instances compared",
        check.compared
    );
}

#[test]
fn the_fixtures_set_every_field_of_every_message() {
    let mut missing = Vec::new();
    for info in eventhub_catalog::events::CATALOG {
        let Ok(items) = fixtures(info) else {
            continue; // reported by the round-trip test
        };
        let mut seen = BTreeSet::new();
        for item in &items {
            cover(info.proto, item, &mut seen);
        }
        let mut all = BTreeSet::new();
        fields_of(info.proto, &mut BTreeSet::new(), &mut all);
        for (message, field) in all.difference(&seen) {
            missing.push(format!(
                "{} v{}: no fixture sets {message}.{field}",
                info.event_type, info.version
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

fn cover(m: &'static Message, v: &Value, seen: &mut BTreeSet<(&'static str, &'static str)>) {
    if m.shape == Shape::Wrapper {
        seen.insert((m.name, m.fields[0].name));
        return cover_field(m.fields[0].repeated, m.fields[0].kind, v, seen);
    }
    let Some(obj) = v.as_object() else { return };
    for f in m.fields {
        if let Some(x) = obj.get(f.name)
            && (!x.is_null() || f.kind == Kind::Json)
        {
            seen.insert((m.name, f.name));
            cover_field(f.repeated, f.kind, x, seen);
        }
    }
}

fn cover_field(
    repeated: bool,
    kind: Kind,
    v: &Value,
    seen: &mut BTreeSet<(&'static str, &'static str)>,
) {
    match (repeated, v) {
        (true, Value::Array(items)) => {
            for item in items {
                cover_field(false, kind, item, seen);
            }
        }
        (_, v) => match kind {
            Kind::Message(m) => cover(m, v, seen),
            Kind::Map(entry) => {
                for value in v.as_object().into_iter().flat_map(|o| o.values()) {
                    seen.insert((entry.name, "key"));
                    seen.insert((entry.name, "value"));
                    cover_field(false, entry.fields[1].kind, value, seen);
                }
            }
            _ => {}
        },
    }
}

fn fields_of(
    m: &'static Message,
    visited: &mut BTreeSet<&'static str>,
    out: &mut BTreeSet<(&'static str, &'static str)>,
) {
    if !visited.insert(m.name) {
        return;
    }
    for f in m.fields {
        out.insert((m.name, f.name));
        if let Kind::Message(n) | Kind::Map(n) = f.kind {
            fields_of(n, visited, out);
        }
    }
}

/// The `.proto` text declares the package, every root message, and for every message of the
/// descriptors its fields with their numbers, and nothing else.
#[test]
fn the_proto_file_matches_the_descriptors() {
    let text = eventhub_catalog::events::PROTO_FILE;
    assert!(text.contains("\nsyntax = \"proto3\";\n"), "{text}");
    assert!(text.contains("\npackage eventhub.events;\n"), "{text}");
    let parsed = parse_proto(text);
    let mut expected = Vec::new();
    for info in eventhub_catalog::events::CATALOG {
        let mut visited = BTreeSet::new();
        declared_messages(info.proto, &mut visited, &mut expected);
    }
    expected.sort();
    let mut parsed_sorted = parsed.clone();
    parsed_sorted.sort();
    assert_eq!(parsed_sorted, expected);
}

/// (full message name, [(field name, number)], [reserved numbers]) as the `.proto` text has
/// them; map fields count as fields of their message.
type Declared = (String, Vec<(String, u32)>, Vec<u32>);

fn declared_messages(
    m: &'static Message,
    visited: &mut BTreeSet<&'static str>,
    out: &mut Vec<Declared>,
) {
    if !visited.insert(m.name) {
        return;
    }
    if m.shape != Shape::MapEntry {
        let mut fields: Vec<(String, u32)> = m
            .fields
            .iter()
            .map(|f| (f.name.to_string(), f.number))
            .collect();
        fields.sort();
        out.push((m.name.to_string(), fields, m.reserved.to_vec()));
    }
    for f in m.fields {
        if let Kind::Message(n) | Kind::Map(n) = f.kind {
            declared_messages(n, visited, out);
        }
    }
}

/// A small reader of the generated `.proto` text: messages (nested ones by full name), their
/// field declarations (`[label] type name = number [options];`) and `reserved` numbers.
/// Checks the braces balance and that every statement ends in `;`.
fn parse_proto(text: &str) -> Vec<Declared> {
    let mut out: Vec<Declared> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    let mut names: Vec<String> = vec!["eventhub.events".into()];
    for line in text.lines() {
        let line = line.split("//").next().unwrap().trim();
        if line.is_empty() || line.starts_with("syntax ") || line.starts_with("package ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("message ") {
            let name = rest.strip_suffix(" {").expect("message Name {");
            let full = format!("{}.{name}", names.last().unwrap());
            names.push(full.clone());
            out.push((full, Vec::new(), Vec::new()));
            stack.push(out.len() - 1);
            continue;
        }
        if line == "}" {
            stack.pop().expect("balanced braces");
            names.pop();
            continue;
        }
        let statement = line.strip_suffix(';').expect("statements end in ;");
        let current = *stack.last().expect("fields are inside messages");
        if let Some(n) = statement.strip_prefix("reserved ") {
            if let Ok(n) = n.parse() {
                out[current].2.push(n);
            } else {
                assert!(n.starts_with('"'), "reserved names are quoted: {line}");
            }
            continue;
        }
        let (decl, number) = statement.split_once(" = ").expect("a field: ... = N");
        let number = number.split(' ').next().unwrap().parse().expect("a number");
        let json_name = statement
            .split_once("[json_name = \"")
            .map(|(_, rest)| rest.split('"').next().unwrap().to_string());
        let name = decl.rsplit(' ').next().unwrap().to_string();
        out[current].1.push((json_name.unwrap_or(name), number));
    }
    assert!(stack.is_empty(), "unclosed message");
    for m in &mut out {
        m.1.sort();
    }
    out
}

#[tokio::test]
async fn json_and_protobuf_producers_share_a_stream() {
    let (server, client) = server_and_client("auth").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let protobuf = Client::connect(
        ConnectOptions::new("signup")
            .url(server.client_url())
            .codec(Codec::Protobuf),
    )
    .await
    .unwrap();
    assert_eq!(protobuf.publisher().codec(), Codec::Protobuf);
    let (handle, mut rx) = record::<user::Created, _>(&client, quick(), |env| {
        (
            env.meta().sequence,
            env.event().clone(),
            env.meta()
                .headers
                .get(headers::CONTENT_TYPE)
                .map(|v| v.as_str().to_string()),
        )
    })
    .await;

    let as_json = user_created_v1("json@example.com");
    let as_protobuf = user_created_v2("protobuf@example.com");
    let chosen_per_publish = user_created_v1("per-publish@example.com");
    let sent = [
        (
            client.publisher().publish(&as_json).await.unwrap(),
            user::Created::V1(as_json),
            // JSON is the default: the lean wire format does not announce it.
            None,
        ),
        (
            protobuf.publisher().publish(&as_protobuf).await.unwrap(),
            user::Created::V2(as_protobuf.clone()),
            Some(eventhub::wire::codec::PROTOBUF),
        ),
        (
            client
                .publisher()
                .publish_with(
                    &chosen_per_publish,
                    PublishOptions::default().codec(Codec::Protobuf),
                )
                .await
                .unwrap(),
            user::Created::V1(chosen_per_publish),
            Some(eventhub::wire::codec::PROTOBUF),
        ),
    ];
    let mut received = Vec::new();
    for _ in 0..sent.len() {
        received.push(next(&mut rx, 10).await);
    }
    received.sort_by_key(|r| r.0);
    for ((receipt, event, content_type), (sequence, got, got_type)) in sent.iter().zip(&received) {
        assert_eq!(*sequence, receipt.sequence);
        assert_eq!(got, event, "decoded equal to what was sent");
        assert_eq!(got_type.as_deref(), *content_type);
    }

    // What the stream stores: protobuf, announced as such.
    let stream = client.jetstream().get_stream("IDENTITY").await.unwrap();
    let stored = stream.get_raw_message(sent[1].0.sequence).await.unwrap();
    assert_eq!(
        stored
            .headers
            .get(headers::CONTENT_TYPE)
            .map(|v| v.as_str()),
        Some("application/protobuf")
    );
    assert!(
        serde_json::from_slice::<Value>(&stored.payload).is_err(),
        "the payload is not JSON"
    );
    let json_size = serde_json::to_vec(&as_protobuf).unwrap().len();
    assert!(
        stored.payload.len() < json_size,
        "{} bytes of protobuf vs {json_size} of JSON",
        stored.payload.len()
    );
    assert_eq!(
        eventhub::wire::proto::decode::<user::CreatedV2>(&stored.payload).unwrap(),
        as_protobuf
    );

    let stats = handle.shutdown().await;
    assert_eq!((stats.handled, stats.poison), (3, 0));
}

#[tokio::test]
async fn a_malformed_protobuf_payload_is_poison_naming_the_field() {
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;
    let (handle, mut rx) =
        record::<user::Created, _>(&client, quick().concurrency(1), |env| env.meta().id.clone())
            .await;

    // A valid v2 event whose field `locale` is cut short: its length says 40 bytes, 2 follow.
    let good = user_created_v2("good@example.com");
    let bytes = eventhub::wire::proto::encode(&good).unwrap();
    let locale = user::CreatedV2::PROTO.field_named("locale").unwrap();
    let mut malformed = bytes.clone();
    malformed.extend_from_slice(&[(locale.number << 3 | 2) as u8, 40, b'e', b'n']);
    let mut h = HeaderMap::new();
    h.insert(headers::ID, "cut-short");
    h.insert(headers::MSG_ID, "cut-short");
    h.insert(headers::CONTENT_TYPE, eventhub::wire::codec::PROTOBUF);
    client
        .jetstream()
        .publish_with_headers(user::CreatedV2::SUBJECT, h, malformed.clone().into())
        .await
        .unwrap()
        .await
        .unwrap();

    let entry = dlq.next(10).await;
    let entry_headers = entry.headers.as_ref().expect("dead-letter headers");
    assert_eq!(
        entry_headers.get(headers::DLQ_REASON).map(|v| v.as_str()),
        Some("poison")
    );
    let error = entry_headers
        .get(headers::DLQ_ERROR)
        .map(|v| v.as_str().to_string())
        .unwrap();
    let expected = format!(
        "invalid protobuf payload at `/locale`: field {} of eventhub.events.UserCreatedV2",
        locale.number
    );
    assert!(error.contains(&expected), "{error}");
    assert!(error.contains("runs past the end"), "{error}");

    let letters = client
        .dead_letters()
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, DeadLetterReason::Poison);
    assert_eq!(letters[0].deliveries, 1, "no retries wasted");
    assert_eq!(
        letters[0].payload, malformed,
        "the payload is kept as it came"
    );

    // The same bytes minus the damage decode, and good events keep flowing.
    let raw = RawEvent::new(Some(eventhub::wire::codec::PROTOBUF), &malformed);
    assert_eq!(
        raw.decode_event::<user::CreatedV2>().unwrap_err().kind(),
        DecodeErrorKind::InvalidProtobuf
    );
    let receipt = client
        .publisher()
        .with_codec(Codec::Protobuf)
        .publish(&good)
        .await
        .unwrap();
    assert_eq!(next(&mut rx, 10).await, receipt.id);
    let stats = handle.shutdown().await;
    assert_eq!((stats.poison, stats.handled), (1, 1));
}
