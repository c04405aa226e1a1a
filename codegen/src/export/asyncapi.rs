//! AsyncAPI 3.0.0: `asyncapi.json`.
//!
//! A channel per subject (`address` = the subject), a message per event version (payload = its
//! schema, headers = the envelope headers, correlation id from `ce-correlationid`), a `send` and
//! a `receive` operation per channel with the NATS binding, servers from the options.
//! Definitions become `components/schemas`: AsyncAPI resolves a payload's `$ref`s against the
//! whole document, so the bundled `#/$defs/X` would not resolve there. The payload schemas use
//! only keywords that mean the same in JSON Schema draft-07 (AsyncAPI's default schema format)
//! and 2020-12 (the catalog's); the schema id is kept as `x-eventhub.schemaId`.

use serde_json::{Map, Value, json};

use super::model::{Ev, View, map_refs, ref_name};
use super::options::Options;

/// The version of the NATS bindings (operation binding).
const NATS_BINDING_VERSION: &str = "0.1.0";

pub(super) fn render(view: &View<'_>, options: &Options) -> String {
    let mut servers = Map::new();
    for s in &options.servers {
        servers.insert(
            s.name.clone(),
            json!({ "host": s.host, "protocol": "nats", "description": s.description }),
        );
    }
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for e in &view.events {
        channels.insert(e.name.clone(), channel(e, options));
        messages.insert(e.name.clone(), message(e));
        for (action, verb, how) in [
            (
                "send",
                "Publish",
                "JetStream stores it in the stream and drops a duplicate `Nats-Msg-Id` within \
                 the stream's duplicate window.",
            ),
            (
                "receive",
                "Consume",
                "Through a durable JetStream pull consumer with explicit ack; what cannot be \
                 handled goes to the dead-letter stream.",
            ),
        ] {
            operations.insert(
                format!("{action}{}", e.name),
                json!({
                    "action": action,
                    "channel": { "$ref": format!("#/channels/{}", e.name) },
                    "messages": [{ "$ref": format!("#/channels/{}/messages/{}", e.name, e.name) }],
                    "summary": format!("{verb} `{}` v{} on `{}`.", e.event_type(), e.version(), e.subject),
                    "description": how,
                    "bindings": { "nats": { "bindingVersion": NATS_BINDING_VERSION } },
                }),
            );
        }
    }
    let mut schemas = Map::new();
    let headers = match &options.envelope_headers {
        Some(h) => {
            let mut h = h.clone();
            if let Some(m) = h.as_object_mut() {
                // `retain` keeps the order of the others (`remove` may not).
                m.retain(|k, _| k != "$schema" && k != "$id");
            }
            h
        }
        None => json!({
            "description": "Header values are strings.",
            "type": "object",
            "additionalProperties": { "type": "string" },
        }),
    };
    schemas.insert("EnvelopeHeaders".into(), headers);
    for (name, def) in &view.defs {
        schemas.insert(name.clone(), components_refs(&def.schema));
    }
    let mut tags: Vec<Value> = Vec::new();
    for domain in view.domains().keys() {
        tags.push(json!({ "name": domain }));
    }
    let doc = json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": options.title,
            "version": options.version,
            "description": format!(
                "Events of the eventhub catalog: {} event version(s) in {} stream(s). Each \
                 subject is `events.<type>.v<N>`; payloads are JSON, attributes travel as \
                 CloudEvents headers (binary mode).",
                view.events.len(),
                view.streams.len()
            ),
            "tags": tags,
        },
        "defaultContentType": "application/json",
        "servers": servers,
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages, "schemas": schemas },
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("values serialize");
    text.push('\n');
    text
}

fn channel(e: &Ev<'_>, options: &Options) -> Value {
    let mut c = json!({
        "address": e.subject,
        "title": format!("{} v{}", e.event_type(), e.version()),
        "messages": {
            e.name.clone(): { "$ref": format!("#/components/messages/{}", e.name) },
        },
        "x-eventhub-stream": e.stream(),
    });
    if !e.description().is_empty() {
        c["description"] = e.description().into();
    }
    if options.services.is_some() {
        c["x-eventhub-publishers"] = json!(e.publishers);
        c["x-eventhub-consumers"] = json!(e.consumers);
    }
    c
}

fn message(e: &Ev<'_>) -> Value {
    let mut payload = components_refs(&e.root);
    if let Some(m) = payload.as_object_mut() {
        // Examples are given per message below; in the payload they would be checked twice.
        m.retain(|k, _| k != "examples");
    }
    let mut m = json!({
        "name": e.event_type(),
        "title": format!("{} v{}", e.event_type(), e.version()),
        "contentType": "application/json",
        "headers": { "$ref": "#/components/schemas/EnvelopeHeaders" },
        "payload": payload,
        "correlationId": {
            "description": "Shared by every event of one business flow.",
            "location": "$message.header#/ce-correlationid",
        },
        "tags": [{ "name": e.domain() }],
        "x-eventhub": {
            "type": e.event_type(),
            "version": e.version(),
            "subject": e.subject,
            "stream": e.stream(),
            "schemaId": e.schema_id(),
        },
    });
    if !e.description().is_empty() {
        m["summary"] = first_sentence(e.description()).into();
        m["description"] = e.description().into();
    }
    if !e.examples.is_empty() {
        m["examples"] = e
            .examples
            .iter()
            .enumerate()
            .map(|(i, p)| json!({ "name": format!("example-{}", i + 1), "payload": p }))
            .collect();
    }
    m
}

/// A schema with `#/$defs/X` references pointing into `#/components/schemas/X`.
fn components_refs(schema: &Value) -> Value {
    let mut out = schema.clone();
    map_refs(&mut out, &|r| {
        ref_name(r).map(|n| format!("#/components/schemas/{n}"))
    });
    out
}

fn first_sentence(s: &str) -> String {
    let end = s.find(". ").map(|i| i + 1).unwrap_or(s.len());
    s[..end].trim().to_string()
}
