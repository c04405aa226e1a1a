//! The shipped metadata schemas (`sdk/metadata/*.schema.json`) against what the SDK writes:
//! the headers of published events, replays and dead letters, read back raw from the streams.

use async_nats::HeaderMap;
use eventhub::Client;
use eventhub::HandlerError;
use eventhub::PublishOptions;
use eventhub::metadata::{DeadLetterHeaders, EnvelopeHeaders, MetadataSchema};
use eventhub::topology::DLQ_STREAM;
use eventhub::wire::headers;
use eventhub_catalog::events::{CATALOG, user};
use serde_json::{Map, Value, json};

use crate::support::{DlqWatch, quick, server_and_client, user_created_v1, user_created_v2};

/// A validator of the shipped schema file (not the generated one: the file is what other tools
/// read), with formats (`date-time`) checked.
fn validator(schema: MetadataSchema) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sdk/metadata")
        .join(schema.file_name());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the shipped schema {}: {e}", path.display()));
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        schema.schema(),
        "{} is stale (see `cargo test -p eventhub metadata`)",
        path.display()
    );
    jsonschema::options()
        .should_validate_formats(true)
        .build(&value)
        .unwrap_or_else(|e| panic!("{} does not compile: {e}", path.display()))
}

/// Headers as a JSON object of name to value, as a tool reading the message sees them. A
/// repeated header becomes an array (which no schema allows: eventhub writes each once).
fn to_json(h: &HeaderMap) -> Value {
    let mut out = Map::new();
    for (name, values) in h.iter() {
        let name: &str = name.as_ref();
        let values: Vec<Value> = values.iter().map(|v| json!(v.as_str())).collect();
        let value = match <[Value; 1]>::try_from(values) {
            Ok([one]) => one,
            Err(many) => Value::Array(many),
        };
        out.insert(name.to_string(), value);
    }
    Value::Object(out)
}

/// The violations of `instance`, one line each: empty when it is valid.
fn violations(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path().as_str()))
        .collect()
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let problems = violations(validator, instance);
    assert!(
        problems.is_empty(),
        "{what} does not match its schema:\n  {}\nheaders: {instance:#}",
        problems.join("\n  ")
    );
}

/// `instance` changed by `change` is invalid, and the violations mention `mentions`.
fn assert_invalid_when(
    validator: &jsonschema::Validator,
    instance: &Value,
    change: impl FnOnce(&mut Map<String, Value>),
    mentions: &str,
) {
    let mut changed = instance.clone();
    change(changed.as_object_mut().unwrap());
    let problems = violations(validator, &changed);
    assert!(
        problems.iter().any(|p| p.contains(mentions)),
        "expected a violation about {mentions}, got {problems:?} for {changed:#}"
    );
}

/// The stored headers of message `sequence` of `stream`, as JSON.
async fn stored_headers(client: &Client, stream: &str, sequence: u64) -> Value {
    let stream = client.jetstream().get_stream(stream).await.unwrap();
    let message = stream.get_raw_message(sequence).await.unwrap();
    to_json(&message.headers)
}

/// The headers of a dead letter other than the `eventhub-dlq-*` ones: the original's.
/// The original's headers in a dead letter: those kept aside back under their own names.
fn original_part(entry: &Value) -> Value {
    let mut out = Map::new();
    for (name, value) in entry.as_object().unwrap() {
        if let Some(original) = name.strip_prefix(eventhub::dlq::ORIGINAL_HEADER_PREFIX) {
            out.insert(original.to_string(), value.clone());
        } else if !name.starts_with("eventhub-dlq-") && name != headers::MSG_ID {
            out.insert(name.clone(), value.clone());
        }
    }
    Value::Object(out)
}

#[tokio::test]
async fn published_event_headers_match_the_envelope_schema() {
    let envelope = validator(MetadataSchema::EnvelopeHeaders);
    let (_server, client) = server_and_client("auth").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let publisher = client.publisher();

    let plain = publisher
        .publish(&user_created_v1("ada@example.com"))
        .await
        .unwrap();
    let caused = publisher
        .publish_with(
            &user_created_v2("grace@example.com"),
            PublishOptions::default()
                .correlation_id("signup-42")
                .causation_id(plain.id.clone()),
        )
        .await
        .unwrap();

    let plain_h = stored_headers(&client, &plain.stream, plain.sequence).await;
    assert_valid(&envelope, &plain_h, "a published event");
    assert_eq!(plain_h[headers::ID], json!(plain.id));
    assert!(plain_h.get(headers::CAUSATION_ID).is_none());
    let caused_h = stored_headers(&client, &caused.stream, caused.sequence).await;
    assert_valid(&envelope, &caused_h, "an event with a causation");
    assert_eq!(caused_h[headers::CAUSATION_ID], json!(plain.id));

    // The Rust type reads the same map.
    let typed: EnvelopeHeaders = serde_json::from_value(caused_h.clone()).unwrap();
    assert_eq!(typed.id, caused.id);
    assert_eq!(typed.causationid.as_deref(), Some(plain.id.as_str()));
    assert!(typed.other.is_empty(), "{:?}", typed.other);

    // The schema is not vacuous: each of these breaks it.
    for required in [
        headers::SPECVERSION,
        headers::ID,
        headers::TYPE,
        headers::SOURCE,
        headers::MSG_ID,
    ] {
        assert_invalid_when(
            &envelope,
            &plain_h,
            |h| {
                h.remove(required);
            },
            required,
        );
    }
    let set = |name: &'static str, value: Value| {
        move |h: &mut Map<String, Value>| {
            h.insert(name.to_string(), value);
        }
    };
    assert_invalid_when(
        &envelope,
        &plain_h,
        set(headers::TIME, json!("yesterday")),
        headers::TIME,
    );
    assert_invalid_when(
        &envelope,
        &plain_h,
        set(headers::SPECVERSION, json!("0.3")),
        headers::SPECVERSION,
    );
    assert_invalid_when(
        &envelope,
        &plain_h,
        set(headers::SOURCE, json!("Auth Service")),
        headers::SOURCE,
    );
    assert_invalid_when(
        &envelope,
        &plain_h,
        set("traceparent", json!(["a", "b"])),
        "traceparent",
    );
    assert_invalid_when(
        &envelope,
        &plain_h,
        set("traceparent", json!("not-a-trace")),
        "traceparent",
    );
    // A default publish leaves out the time and trace its UUIDv7 id implies (the lean form);
    // a follow-up or an explicit time writes them. Other headers are fine as strings.
    assert!(plain_h.get(headers::TIME).is_none(), "{plain_h}");
    assert!(plain_h.get("traceparent").is_none(), "{plain_h}");
    let timed = client
        .publisher()
        .publish_with(
            &user_created_v2("hopper@example.com"),
            PublishOptions::default().time("2026-11-23T10:00:00.5Z".parse().unwrap()),
        )
        .await
        .unwrap();
    let timed_h = stored_headers(&client, &timed.stream, timed.sequence).await;
    assert_valid(&envelope, &timed_h, "an event with its own time");
    assert_eq!(timed_h[headers::TIME], json!("2026-11-23T10:00:00.500000Z"));
    let mut traced = plain_h.clone();
    traced["traceparent"] = json!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    traced["x-tenant"] = json!("acme");
    assert_valid(
        &envelope,
        &traced,
        "an event with a traceparent and another header",
    );
}

#[tokio::test]
async fn dead_letter_headers_match_the_dead_letter_schema() {
    let envelope = validator(MetadataSchema::EnvelopeHeaders);
    let dead_letter = validator(MetadataSchema::DeadLetterHeaders);
    let (_server, client) = server_and_client("profile").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let mut dlq = DlqWatch::start(&client).await;
    // Rejects `reject@…`, fails everything else on its only allowed delivery (max-deliver).
    let handle = client
        .consumer::<user::CreatedV2>(quick().max_deliver(1))
        .await
        .unwrap()
        .spawn(|env| async move {
            if env.email.starts_with("reject@") {
                Err(HandlerError::reject("rejected:\r\nblocked domain"))
            } else {
                Err(HandlerError::retry("the profile store is down"))
            }
        });

    let publisher = client.publisher();
    let rejected = publisher
        .publish(&user_created_v2("reject@example.com"))
        .await
        .unwrap();
    let exhausted = publisher
        .publish(&user_created_v2("retry@example.com"))
        .await
        .unwrap();
    // Poison with eventhub's headers (the SDK refuses to publish it: a producer that skipped
    // the check), not of the schema's shape.
    let info = CATALOG
        .iter()
        .find(|i| i.event_type == "user.created" && i.version == 2)
        .unwrap();
    let mut h = async_nats::HeaderMap::new();
    for (name, value) in [
        (headers::SPECVERSION, "1.0"),
        (headers::ID, "0190a000-0000-7000-8000-0000000000aa"),
        (headers::TYPE, info.event_type),
        (headers::SOURCE, "auth"),
        (headers::TIME, "2026-11-23T10:00:00Z"),
        (headers::DATASCHEMA, info.schema_id),
        (headers::CONTENT_TYPE, "application/json"),
        (
            headers::CORRELATION_ID,
            "0190a000-0000-7000-8000-0000000000aa",
        ),
        (headers::MSG_ID, "0190a000-0000-7000-8000-0000000000aa"),
    ] {
        h.insert(name, value);
    }
    let poison_id = "0190a000-0000-7000-8000-0000000000aa".to_string();
    let poison = client
        .jetstream()
        .publish_with_headers(info.subject, h, json!({"user_id": 42}).to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    // Poison without any header: a message eventhub did not publish is dead-lettered too.
    let bare = client
        .jetstream()
        .publish("events.user.created.v2", "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let mut entries = Vec::new();
    for _ in 0..4 {
        let m = dlq.next(10).await;
        let sequence = m.info().unwrap().stream_sequence;
        entries.push((
            sequence,
            stored_headers(&client, DLQ_STREAM, sequence).await,
        ));
    }
    let stats = handle.shutdown().await;
    assert_eq!(stats.dead_lettered, 4);

    let by = |reason: &str, sequence: u64| {
        entries
            .iter()
            .find(|(_, h)| {
                h[headers::DLQ_REASON] == json!(reason)
                    && h[headers::DLQ_SEQUENCE] == json!(sequence.to_string())
            })
            .unwrap_or_else(|| panic!("no {reason} dead letter of #{sequence}: {entries:#?}"))
    };
    let (rejected_id, rejected_h) = by("rejected", rejected.sequence);
    let (_, exhausted_h) = by("max-deliver", exhausted.sequence);
    let (_, poison_h) = by("poison", poison.sequence);
    let (_, bare_h) = by("poison", bare.sequence);

    for (what, h, event_id) in [
        ("a rejected event's dead letter", rejected_h, &rejected.id),
        ("a max-deliver dead letter", exhausted_h, &exhausted.id),
        ("a poison event's dead letter", poison_h, &poison_id),
    ] {
        assert_valid(&dead_letter, h, what);
        // The original headers are eventhub's envelope, kept (but for the replaced msg id).
        assert_valid(
            &envelope,
            &original_part(h),
            &format!("the original of {what}"),
        );
        assert_eq!(h[headers::ID], json!(event_id), "{what}");
        let typed: DeadLetterHeaders = serde_json::from_value(h.clone()).unwrap();
        assert_eq!(
            typed.msg_id,
            format!("dlq:IDENTITY:{}:profile__user_created", typed.sequence)
        );
        assert_eq!(typed.original[headers::ID], *event_id);
    }
    assert_valid(
        &dead_letter,
        bare_h,
        "a header-less poison message's dead letter",
    );
    assert!(
        bare_h.get(headers::ID).is_none(),
        "nothing but the dead-letter headers: {bare_h:#}"
    );
    let error = rejected_h[headers::DLQ_ERROR].as_str().unwrap();
    assert!(
        error.contains("rejected:  blocked domain"),
        "one line: {error:?}"
    );

    // The schema is not vacuous.
    for required in [
        headers::DLQ_REASON,
        headers::DLQ_ERROR,
        headers::DLQ_DELIVERIES,
        headers::DLQ_STREAM,
        headers::DLQ_SEQUENCE,
        headers::DLQ_SUBJECT,
        headers::DLQ_CONSUMER,
        headers::DLQ_FAILED_AT,
        headers::MSG_ID,
    ] {
        assert_invalid_when(
            &dead_letter,
            rejected_h,
            |h| {
                h.remove(required);
            },
            required,
        );
    }
    let set = |name: &'static str, value: &'static str| {
        move |h: &mut Map<String, Value>| {
            h.insert(name.to_string(), json!(value));
        }
    };
    for (name, bad) in [
        (headers::DLQ_REASON, "exploded"),
        (headers::DLQ_DELIVERIES, "one"),
        (headers::DLQ_SEQUENCE, "-1"),
        (headers::DLQ_FAILED_AT, "2026-11-23 10:00"),
        (headers::DLQ_ERROR, "two\nlines"),
        (headers::MSG_ID, "0190a000-0000-7000-8000-000000000000"),
    ] {
        assert_invalid_when(&dead_letter, rejected_h, set(name, bad), name);
    }

    // A replay of the rejected entry carries the envelope plus the replay headers.
    let replayed = client.dead_letters().replay(*rejected_id).await.unwrap();
    let replay_h = stored_headers(&client, &replayed.stream, replayed.sequence).await;
    assert_valid(&envelope, &replay_h, "a replayed event");
    assert_eq!(
        replay_h[headers::REPLAY_OF],
        json!(format!("{DLQ_STREAM}:{rejected_id}"))
    );
    assert_eq!(
        replay_h[headers::REPLAY_FOR],
        json!("profile__user_created")
    );
    assert_invalid_when(
        &envelope,
        &replay_h,
        set(headers::REPLAY_OF, "EVENTHUB_DLQ:latest"),
        headers::REPLAY_OF,
    );
}
