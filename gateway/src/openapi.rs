//! The OpenAPI 3.1 document of the gateway, generated from a catalog: each event version's
//! schema is one variant of the `POST /v1/events` request body.

use std::collections::BTreeMap;

use eventhub::EventInfo;
use serde_json::{Map, Value, json};

/// The component name of an event version's data schema: `photo_uploaded_v1`.
pub fn component_name(info: &EventInfo) -> String {
    format!(
        "{}_v{}",
        info.event_type.replace(['.', '-'], "_"),
        info.version
    )
}

/// Rewrites `#/$defs/X` references to `#/components/schemas/<prefix>__X`.
fn rewrite_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(def) = r.strip_prefix("#/$defs/")
            {
                *r = format!("#/components/schemas/{prefix}__{def}");
            }
            for v in map.values_mut() {
                rewrite_refs(v, prefix);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, prefix)),
        _ => {}
    }
}

/// The document for `catalog`.
pub fn document(catalog: &[EventInfo]) -> Value {
    let mut schemas: Map<String, Value> = Map::new();
    let mut variants = Vec::new();
    let mut latest: BTreeMap<&str, u32> = BTreeMap::new();
    for info in catalog {
        let v = latest.entry(info.event_type).or_default();
        *v = (*v).max(info.version);
    }
    for info in catalog {
        let name = component_name(info);
        let mut schema: Value = serde_json::from_str(info.schema).unwrap_or_else(
            |e| json!({"description": format!("the catalog's schema does not parse: {e}")}),
        );
        rewrite_refs(&mut schema, &name);
        if let Value::Object(map) = &mut schema {
            // The document is one resource: a nested `$id` would move the base of its refs.
            map.remove("$id");
            map.remove("$schema");
            if let Some(Value::Object(defs)) = map.remove("$defs") {
                for (def, body) in defs {
                    schemas.insert(format!("{name}__{def}"), body);
                }
            }
        }
        schemas.insert(name.clone(), schema);
        let is_latest = latest.get(info.event_type) == Some(&info.version);
        let mut required = vec!["eventType", "source", "data"];
        if !is_latest {
            required.push("version");
        }
        let request = format!("Publish_{name}");
        schemas.insert(
            request.clone(),
            json!({
                "title": format!("{} v{}", info.event_type, info.version),
                "description": format!(
                    "Publishes {} version {} (subject `{}`, stream `{}`){}.",
                    info.event_type, info.version, info.subject, info.stream,
                    if is_latest { "; the default version of this type" } else { "" }
                ),
                "type": "object",
                "required": required,
                "additionalProperties": false,
                "properties": {
                    "eventType": {"const": info.event_type},
                    "version": {"const": info.version},
                    "source": {"type": "string", "description": "The publishing service: must be the caller."},
                    "id": {"$ref": "#/components/schemas/EventId"},
                    "timestamp": {"type": "string", "format": "date-time"},
                    "data": {"$ref": format!("#/components/schemas/{name}")},
                    "metadata": {"$ref": "#/components/schemas/Metadata"}
                }
            }),
        );
        variants.push(json!({"$ref": format!("#/components/schemas/{request}")}));
    }
    schemas.insert(
        "EventId".into(),
        json!({
            "type": "string", "minLength": 1, "maxLength": crate::publish::MAX_ID_LEN,
            "pattern": "^[!-~]+$",
            "description": "The event id, also the idempotency key: publishing the same id again within the stream's duplicate window stores it once."
        }),
    );
    schemas.insert(
        "Metadata".into(),
        json!({
            "type": "object", "additionalProperties": false,
            "properties": {
                "correlationId": {"$ref": "#/components/schemas/EventId"},
                "causationId": {"$ref": "#/components/schemas/EventId"},
                "traceparent": {"type": "string", "description": "W3C trace context."}
            }
        }),
    );
    schemas.insert("PublishRequest".into(), json!({"oneOf": variants}));
    schemas.insert(
        "Accepted".into(),
        json!({
            "type": "object",
            "required": ["status", "eventId", "timestamp", "receipt"],
            "properties": {
                "status": {"const": "accepted"},
                "eventId": {"type": "string"},
                "timestamp": {"type": "string", "format": "date-time"},
                "receipt": {
                    "type": "object",
                    "required": ["stream", "sequence", "duplicate"],
                    "properties": {
                        "stream": {"type": "string"},
                        "sequence": {"type": "integer", "minimum": 1},
                        "duplicate": {"type": "boolean"}
                    }
                }
            }
        }),
    );
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["status", "errorCode", "message"],
            "properties": {
                "status": {"const": "error"},
                "errorCode": {"enum": [
                    "INVALID_REQUEST", "SCHEMA_VALIDATION_ERROR", "UNKNOWN_EVENT_TYPE",
                    "UNKNOWN_VERSION", "PAYLOAD_TOO_LARGE", "UNAUTHORIZED", "FORBIDDEN",
                    "UNAVAILABLE", "NOT_FOUND", "INTERNAL"
                ]},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "error"],
                        "properties": {"field": {"type": "string"}, "error": {"type": "string"}}
                    }
                }
            }
        }),
    );
    schemas.insert(
        "BatchResult".into(),
        json!({
            "type": "object",
            "required": ["status", "accepted", "failed", "results"],
            "properties": {
                "status": {"const": "completed"},
                "accepted": {"type": "integer", "minimum": 0},
                "failed": {"type": "integer", "minimum": 0},
                "results": {
                    "type": "array",
                    "description": "One per item, in request order: the item's HTTP status beside the body POST /v1/events would have answered.",
                    "items": {
                        "type": "object",
                        "required": ["index", "httpStatus", "status"],
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "httpStatus": {"type": "integer", "enum": [202, 400, 403, 404, 413, 503]}
                        },
                        "oneOf": [
                            {"$ref": "#/components/schemas/Accepted"},
                            {"$ref": "#/components/schemas/Error"}
                        ]
                    }
                }
            }
        }),
    );
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        })
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "eventhub gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Publish events of the catalog over HTTP. Generated from the catalog compiled into the gateway."
        },
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": {
            "/v1/events": {
                "post": {
                    "operationId": "publishEvent",
                    "summary": "Publish one event; 202 once the stream stored it.",
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PublishRequest"}}}
                    },
                    "responses": {
                        "202": {
                            "description": "Stored.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}
                        },
                        "400": error("INVALID_REQUEST or SCHEMA_VALIDATION_ERROR (details lists every violation)."),
                        "401": error("UNAUTHORIZED: no or an invalid credential."),
                        "403": error("FORBIDDEN: the caller does not own this event type, or `source` is not the caller."),
                        "404": error("UNKNOWN_EVENT_TYPE or UNKNOWN_VERSION."),
                        "413": error("PAYLOAD_TOO_LARGE."),
                        "503": {
                            "description": "UNAVAILABLE: the event store did not confirm; publish again with the same id.",
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                        }
                    }
                }
            },
            "/v1/events:batch": {
                "post": {
                    "operationId": "publishEvents",
                    "summary": "Publish several events, in order, each stored before the next; 207 with one result per item.",
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {"schema": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"$ref": "#/components/schemas/PublishRequest"}
                        }}}
                    },
                    "responses": {
                        "207": {
                            "description": "Every item tried; each result says whether it was stored (httpStatus 202) or why not.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchResult"}}}
                        },
                        "400": error("INVALID_REQUEST: not a JSON array, or empty."),
                        "401": error("UNAUTHORIZED: no or an invalid credential."),
                        "413": error("PAYLOAD_TOO_LARGE: more items than the gateway's limit, or a body over its batch size limit.")
                    }
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "security": [],
                    "summary": "Connected to NATS and every stream of the catalog present.",
                    "responses": {
                        "200": {"description": "Healthy."},
                        "503": {"description": "Unhealthy."}
                    }
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "summary": "This document.",
                    "responses": {"200": {"description": "The document."}}
                }
            }
        },
        "components": {
            "schemas": Value::Object(schemas),
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
        }
    })
}
