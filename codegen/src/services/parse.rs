//! Reading and checking the declaration of services against the catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use super::declaration::{
    Aggregate, Consumer, Gateway, Published, RequestType, SWEEPER_DURABLE, SYSTEM_USER, Saga,
    Service, Services, default_durable,
};
use crate::catalog::Catalog;
use crate::diagnostic::{Diagnostics, Error, pointer_push, suggest};
use crate::topology::parse_duration_ms;

const ROOT_KEYS: &[&str] = &[
    "$schema",
    "$comment",
    "description",
    "operators",
    "sweeper",
    "gateway",
    "services",
    "nkeys",
];
const SERVICE_KEYS: &[&str] = &[
    "description",
    "publishes",
    "consumes",
    "sagas",
    "aggregates",
    "responds",
    "requests",
    "health",
    "metrics",
];
const SAGA_KEYS: &[&str] = &["name", "inputs"];
const CONSUMER_KEYS: &[&str] = &["event", "durable", "versions", "idempotency"];
const GATEWAY_KEYS: &[&str] = &["name", "description", "publishes_for"];

/// What the catalog says about one event type.
struct EventType {
    stream: String,
    /// Whether its stream holds message schedules (`allow_msg_schedules`).
    schedules: bool,
    /// (version, subject), by version.
    versions: Vec<(u32, String)>,
}

struct Parser<'a> {
    file: &'a Path,
    diags: Diagnostics,
    types: BTreeMap<String, EventType>,
    /// User name -> where it was declared.
    users: BTreeMap<String, String>,
    /// Durable name -> where it was declared.
    durables: BTreeMap<String, String>,
    /// Event type -> (owner, where).
    owners: BTreeMap<String, (String, String)>,
    /// Saga name -> where it was declared.
    sagas: BTreeMap<String, String>,
    /// Aggregate stream -> where its type was declared.
    aggregates: BTreeMap<String, String>,
    /// (pointer to its inputs, saga, inputs), checked against the publishers at the end.
    saga_inputs: Vec<(String, String, Vec<String>)>,
    /// Request type -> its subjects, by version.
    request_types: BTreeMap<String, Vec<String>>,
    /// Request type -> (responding service, where).
    responders: BTreeMap<String, (String, String)>,
    /// (where, requesting service, request type), checked against the responders at the end.
    requesters: Vec<(String, String, String)>,
}

pub(super) fn parse(file: &Path, doc: &Value, catalog: &Catalog) -> Result<Services, Error> {
    let mut types: BTreeMap<String, EventType> = BTreeMap::new();
    for e in catalog.events() {
        let schedules = catalog
            .streams
            .iter()
            .any(|s| s.name == e.stream && s.allow_msg_schedules);
        let t = types.entry(e.event_type.clone()).or_insert(EventType {
            stream: e.stream.clone(),
            schedules,
            versions: Vec::new(),
        });
        t.versions.push((e.version, e.subject.clone()));
    }
    let mut request_types: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in catalog.requests() {
        request_types
            .entry(r.request_type.clone())
            .or_default()
            .push(r.subject.clone());
    }
    let mut p = Parser {
        file,
        diags: Diagnostics::default(),
        types,
        users: BTreeMap::new(),
        durables: BTreeMap::new(),
        owners: BTreeMap::new(),
        sagas: BTreeMap::new(),
        aggregates: BTreeMap::new(),
        saga_inputs: Vec::new(),
        request_types,
        responders: BTreeMap::new(),
        requesters: Vec::new(),
    };
    p.users.insert(
        SYSTEM_USER.to_string(),
        "(the system account's user)".into(),
    );
    p.durables.insert(
        SWEEPER_DURABLE.to_string(),
        "(the sweeper's durable)".into(),
    );
    let services = p.root(doc, catalog);
    p.diags.check().map_err(|e| match e {
        Error::Invalid(d) => Error::InvalidServices(d),
        other => other,
    })?;
    Ok(services.expect("a declaration without diagnostics is complete"))
}

impl Parser<'_> {
    fn err(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.diags.push(self.file, pointer, message);
    }

    fn unknown_keys(&mut self, ptr: &str, map: &Map<String, Value>, known: &[&str], what: &str) {
        for k in map.keys() {
            if known.contains(&k.as_str()) {
                continue;
            }
            let hint = suggest(k, known.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            let listed: Vec<&str> = known
                .iter()
                .copied()
                .filter(|k| !k.starts_with('$'))
                .collect();
            self.err(
                pointer_push(ptr, k),
                format!(
                    "unknown key `{k}` in {what}{hint}; known: {}",
                    listed.join(", ")
                ),
            );
        }
    }

    fn root(&mut self, doc: &Value, catalog: &Catalog) -> Option<Services> {
        let Some(root) = doc.as_object() else {
            self.err(
                "",
                "the declaration must be a JSON object with a `services` object",
            );
            return None;
        };
        self.unknown_keys("", root, ROOT_KEYS, "the declaration");
        let description = self.text(root, "", "description");
        let operators = self.operators(root.get("operators"));
        let sweeper = match root.get("sweeper") {
            None => None,
            Some(v) => match v.as_str() {
                Some(name) => self.user_name(name, "/sweeper").then(|| name.to_string()),
                None => {
                    self.err(
                        "/sweeper",
                        "`sweeper` must be the name of the sweeper's user",
                    );
                    None
                }
            },
        };
        let mut services = Vec::new();
        match root.get("services").and_then(Value::as_object) {
            Some(map) => {
                for (name, decl) in map {
                    if let Some(s) = self.service(name, decl) {
                        services.push(s);
                    }
                }
            }
            None => self.err(
                "/services",
                "`services` must be an object: service name -> what it publishes and consumes",
            ),
        }
        self.unpublished_consumptions(&services);
        self.one_publisher_per_schedule_stream(&services);
        let gateway = match root.get("gateway") {
            None => None,
            Some(v) => self.gateway(v, &services),
        };
        let nkeys = match root.get("nkeys") {
            None => BTreeMap::new(),
            Some(v) => self.nkeys(v),
        };
        Some(Services {
            file: self.file.to_path_buf(),
            description,
            operators,
            sweeper,
            gateway,
            services,
            nkeys,
            streams: catalog.streams.iter().map(|s| s.name.clone()).collect(),
        })
    }

    fn text(&mut self, map: &Map<String, Value>, ptr: &str, key: &str) -> Option<String> {
        let v = map.get(key)?;
        match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.err(pointer_push(ptr, key), format!("`{key}` must be a string"));
                None
            }
        }
    }

    fn flag(&mut self, map: &Map<String, Value>, ptr: &str, key: &str) -> bool {
        match map.get(key) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.err(
                    pointer_push(ptr, key),
                    format!("`{key}` must be true or false"),
                );
                false
            }
        }
    }

    /// Checks a user name and records it; false when it is invalid or taken.
    fn user_name(&mut self, name: &str, ptr: &str) -> bool {
        let valid = name.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            self.err(
                ptr,
                format!(
                    "`{name}` is not a valid name: lowercase letters, digits and `-`, starting \
                     with a letter, at most 64 characters (it names a NATS user, an inbox \
                     prefix and durable consumers)"
                ),
            );
            return false;
        }
        if let Some(first) = self.users.get(name) {
            let first = first.clone();
            self.err(
                ptr,
                format!("the name `{name}` is already taken by {first}: every user needs its own"),
            );
            return false;
        }
        self.users.insert(name.to_string(), format!("`#{ptr}`"));
        true
    }

    fn operators(&mut self, v: Option<&Value>) -> Vec<String> {
        let Some(items) = v.and_then(Value::as_array).filter(|a| !a.is_empty()) else {
            self.err(
                "/operators",
                "`operators` must be a non-empty array of user names (e.g. [\"ops\"]): they \
                 provision streams and run the CLI",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ptr = format!("/operators/{i}");
            match item.as_str() {
                Some(name) if self.user_name(name, &ptr) => out.push(name.to_string()),
                Some(_) => {}
                None => self.err(ptr, "an operator is a user name (a string)"),
            }
        }
        out
    }

    /// The catalog type `name`, or an error at `ptr` with the closest known one.
    fn event_type(&mut self, name: &str, ptr: &str) -> Option<(String, Vec<(u32, String)>)> {
        if let Some(t) = self.types.get(name) {
            return Some((t.stream.clone(), t.versions.clone()));
        }
        let hint = suggest(name, self.types.keys().map(String::as_str))
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        self.err(
            ptr,
            format!(
                "unknown event type `{name}`{hint}: the catalog has no schema for it \
                 (schemas/<domain>/<name>.v<N>.json)"
            ),
        );
        None
    }

    fn service(&mut self, name: &str, decl: &Value) -> Option<Service> {
        let ptr = pointer_push("/services", name);
        let named = self.user_name(name, &ptr);
        let Some(map) = decl.as_object() else {
            self.err(
                &ptr,
                "a service is an object: publishes, consumes, health, metrics",
            );
            return None;
        };
        self.unknown_keys(&ptr, map, SERVICE_KEYS, &format!("service `{name}`"));
        let description = self.text(map, &ptr, "description");
        let health = self.flag(map, &ptr, "health");
        let metrics = self.flag(map, &ptr, "metrics");
        let publishes = self.publishes(name, &ptr, map.get("publishes"));
        let consumes = self.consumes(name, &ptr, map.get("consumes"));
        let sagas = self.sagas(&ptr, map.get("sagas"));
        let aggregates = self.aggregates(&ptr, map.get("aggregates"));
        let responds = self.request_list(name, &ptr, "responds", map.get("responds"));
        let requests = self.request_list(name, &ptr, "requests", map.get("requests"));
        named.then(|| Service {
            name: name.to_string(),
            description,
            publishes,
            consumes,
            sagas,
            aggregates,
            responds,
            requests,
            health,
            metrics,
        })
    }

    fn publishes(&mut self, service: &str, ptr: &str, v: Option<&Value>) -> Vec<Published> {
        let ptr = pointer_push(ptr, "publishes");
        let Some(v) = v else { return Vec::new() };
        let Some(items) = v.as_array() else {
            self.err(
                &ptr,
                "`publishes` must be an array of event types (\"user.created\")",
            );
            return Vec::new();
        };
        let mut out: Vec<Published> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{ptr}/{i}");
            let Some(ty) = item.as_str() else {
                self.err(p, "an event type is a string (\"user.created\")");
                continue;
            };
            let Some((stream, versions)) = self.event_type(ty, &p) else {
                continue;
            };
            if let Some((owner, at)) = self.owners.get(ty) {
                let why = if owner == service {
                    format!("`{ty}` is listed twice")
                } else {
                    format!(
                        "`{ty}` is already published by `{owner}` (#{at}): an event type has \
                         exactly one publishing service, so its subscribers know who stands \
                         behind it; move it, or publish through `{owner}`"
                    )
                };
                self.err(p, why);
                continue;
            }
            self.owners
                .insert(ty.to_string(), (service.to_string(), p.clone()));
            let schedules = self.types.get(ty).is_some_and(|t| t.schedules);
            out.push(Published {
                event_type: ty.to_string(),
                stream,
                schedules,
                subjects: versions.into_iter().map(|(_, s)| s).collect(),
            });
        }
        out
    }

    fn consumes(&mut self, service: &str, ptr: &str, v: Option<&Value>) -> Vec<Consumer> {
        let ptr = pointer_push(ptr, "consumes");
        let Some(v) = v else { return Vec::new() };
        let Some(items) = v.as_array() else {
            self.err(
                &ptr,
                "`consumes` must be an array of consumers ({\"event\": \"user.created\"}), one \
                 per durable",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(c) = self.consumer(service, &format!("{ptr}/{i}"), item) {
                out.push(c);
            }
        }
        out
    }

    /// `responds` or `requests`: request types of the catalog, each once; a request type has
    /// one responding service.
    fn request_list(
        &mut self,
        service: &str,
        ptr: &str,
        key: &str,
        v: Option<&Value>,
    ) -> Vec<RequestType> {
        let ptr = pointer_push(ptr, key);
        let Some(v) = v else { return Vec::new() };
        let Some(items) = v.as_array() else {
            self.err(
                &ptr,
                format!("`{key}` must be an array of request types (\"user.lookup\")"),
            );
            return Vec::new();
        };
        let mut out: Vec<RequestType> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{ptr}/{i}");
            let Some(ty) = item.as_str() else {
                self.err(p, "a request type is a string (\"user.lookup\")");
                continue;
            };
            let Some(subjects) = self.request_types.get(ty).cloned() else {
                let hint = suggest(ty, self.request_types.keys().map(String::as_str))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                self.err(
                    p,
                    format!(
                        "unknown request type `{ty}`{hint}: the catalog has no \
                         schemas/<domain>/<name>.request.v<N>.json for it"
                    ),
                );
                continue;
            };
            if out.iter().any(|r| r.request_type == ty) {
                self.err(p, format!("`{ty}` is listed twice"));
                continue;
            }
            if key == "responds" {
                if let Some((owner, at)) = self.responders.get(ty) {
                    let (owner, at) = (owner.clone(), at.clone());
                    self.err(
                        p,
                        format!(
                            "`{ty}` is already answered by `{owner}` (#{at}): a request type \
                             has one responding service (its instances share the requests in \
                             a queue group)"
                        ),
                    );
                    continue;
                }
                self.responders
                    .insert(ty.to_string(), (service.to_string(), p.clone()));
            } else {
                self.requesters
                    .push((p.clone(), service.to_string(), ty.to_string()));
            }
            out.push(RequestType {
                request_type: ty.to_string(),
                subjects,
            });
        }
        out
    }

    fn sagas(&mut self, ptr: &str, v: Option<&Value>) -> Vec<Saga> {
        let ptr = pointer_push(ptr, "sagas");
        let Some(v) = v else { return Vec::new() };
        let Some(items) = v.as_array() else {
            self.err(
                &ptr,
                "`sagas` must be an array of sagas ({\"name\": \"registration\", \"inputs\": \
                 [\"user.created\"]})",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = self.saga(&format!("{ptr}/{i}"), item) {
                out.push(s);
            }
        }
        out
    }

    fn aggregates(&mut self, ptr: &str, v: Option<&Value>) -> Vec<Aggregate> {
        let ptr = pointer_push(ptr, "aggregates");
        let Some(v) = v else { return Vec::new() };
        let Some(items) = v.as_array() else {
            self.err(
                &ptr,
                "`aggregates` must be an array of aggregate types ([\"account\"])",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{ptr}/{i}");
            let ty = item.as_str().unwrap_or_default();
            let valid = !ty.is_empty()
                && ty.len() <= 64
                && ty.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !valid {
                self.err(
                    p,
                    "an aggregate type is its `Aggregate::TYPE`: 1-64 lowercase letters, digits, \
                     `_` and `-` (it names the stream ES_<TYPE> and the subjects es.<type>.*)",
                );
                continue;
            }
            let aggregate = Aggregate {
                aggregate_type: ty.to_string(),
            };
            // `a-b` and `a_b` share the stream ES_A_B.
            if let Some(first) = self.aggregates.get(&aggregate.stream()) {
                let first = first.clone();
                self.err(
                    p,
                    format!(
                        "aggregate type `{ty}` (stream {}) is already declared by {first}: an \
                         aggregate's history has one owner",
                        aggregate.stream()
                    ),
                );
                continue;
            }
            self.aggregates
                .insert(aggregate.stream(), format!("`#{p}`"));
            out.push(aggregate);
        }
        out
    }

    fn saga(&mut self, ptr: &str, item: &Value) -> Option<Saga> {
        let Some(map) = item.as_object() else {
            self.err(
                ptr,
                "a saga is an object: {\"name\": \"registration\", \"inputs\": [\"user.created\"]}",
            );
            return None;
        };
        self.unknown_keys(ptr, map, SAGA_KEYS, "a saga");
        let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            self.err(
                pointer_push(ptr, "name"),
                "a saga's `name` is its `Saga::NAME`: 1-64 lowercase letters, digits and `_` (it \
                 names the bucket SAGA_<NAME> and the subjects saga.<name>.>)",
            );
            return None;
        }
        if let Some(first) = self.sagas.get(name) {
            let first = first.clone();
            self.err(
                ptr,
                format!(
                    "saga `{name}` is already declared by {first}: a saga's instances live in \
                     one bucket, so one service runs it"
                ),
            );
            return None;
        }
        self.sagas.insert(name.to_string(), format!("`#{ptr}`"));
        let inputs_ptr = pointer_push(ptr, "inputs");
        let Some(items) = map
            .get("inputs")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        else {
            self.err(
                &inputs_ptr,
                "a saga needs `inputs`: the event types it reacts to (at least one)",
            );
            return None;
        };
        let mut inputs = Vec::new();
        let mut filters = Vec::new();
        let mut stream: Option<String> = None;
        for (i, item) in items.iter().enumerate() {
            let p = format!("{inputs_ptr}/{i}");
            let Some(ty) = item.as_str() else {
                self.err(p, "an input is an event type (\"user.created\")");
                return None;
            };
            let (s, versions) = self.event_type(ty, &p)?;
            match &stream {
                Some(first) if *first != s => {
                    self.err(
                        p,
                        format!(
                            "`{ty}` is stored in stream {s}, the saga's other inputs in {first}: \
                             a saga reads one stream (one durable), so its inputs must share it"
                        ),
                    );
                    return None;
                }
                _ => stream = Some(s),
            }
            inputs.push(ty.to_string());
            filters.extend(versions.into_iter().map(|(_, subject)| subject));
        }
        self.saga_inputs
            .push((inputs_ptr, name.to_string(), inputs.clone()));
        let saga = Saga {
            name: name.to_string(),
            inputs,
            stream: stream.expect("at least one input"),
            filters,
        };
        for durable in [saga.durable(), saga.timeouts_durable()] {
            if let Some(first) = self.durables.get(&durable) {
                let first = first.clone();
                self.err(
                    ptr,
                    format!("the saga's durable `{durable}` is already declared by {first}"),
                );
                return None;
            }
            self.durables.insert(durable, format!("`#{ptr}`"));
        }
        Some(saga)
    }

    fn consumer(&mut self, service: &str, ptr: &str, item: &Value) -> Option<Consumer> {
        let map = match item {
            Value::Object(map) => map,
            Value::String(ty) => {
                self.err(
                    ptr,
                    format!("a consumer is an object: write {{\"event\": \"{ty}\"}}"),
                );
                return None;
            }
            _ => {
                self.err(
                    ptr,
                    "a consumer is an object: {\"event\": \"user.created\"}",
                );
                return None;
            }
        };
        self.unknown_keys(ptr, map, CONSUMER_KEYS, "a consumer");
        let Some(ty) = map.get("event").and_then(Value::as_str) else {
            self.err(ptr, "a consumer needs `event`: the event type it consumes");
            return None;
        };
        let (stream, known) = self.event_type(ty, &pointer_push(ptr, "event"))?;
        let durable = match map.get("durable") {
            None => default_durable(service, ty),
            Some(v) => {
                let name = v.as_str().unwrap_or_default();
                let valid = !name.is_empty()
                    && name.len() <= 200
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid {
                    self.err(
                        pointer_push(ptr, "durable"),
                        "`durable` must be 1-200 characters of A-Z, a-z, 0-9, _ and - (it \
                         names a subject token, a dead-letter subject and a key-value bucket)",
                    );
                    return None;
                }
                name.to_string()
            }
        };
        if let Some(first) = self.durables.get(&durable) {
            let first = first.clone();
            self.err(
                ptr,
                format!(
                    "durable `{durable}` is already declared by {first}: instances of one \
                     durable share its events, so two consumers need two names (set `durable`)"
                ),
            );
            return None;
        }
        self.durables.insert(durable.clone(), format!("`#{ptr}`"));
        let versions = match map.get("versions") {
            None => None,
            Some(v) => Some(self.versions(ty, &pointer_push(ptr, "versions"), v, &known)?),
        };
        let filters = match &versions {
            None => {
                // NATS matches a literal `>` in a published subject against `*` in a
                // permission, so the family grant also allows the filter `events.<type>.>`:
                // harmless unless another type lives below this one.
                let below: Vec<&String> = self
                    .types
                    .keys()
                    .filter(|other| other.starts_with(&format!("{ty}.")))
                    .collect();
                if let Some(other) = below.first() {
                    let other = other.to_string();
                    self.err(
                        ptr,
                        format!(
                            "consuming the whole family of `{ty}` grants the filter \
                             `events.{ty}.*`, which NATS also lets match `events.{ty}.>` and so \
                             `{other}`: list `versions` to pin the filter to exact subjects"
                        ),
                    );
                    return None;
                }
                vec![format!("{}.{ty}.*", crate::naming::SUBJECT_PREFIX)]
            }
            Some(vs) => known
                .iter()
                .filter(|(v, _)| vs.contains(v))
                .map(|(_, s)| s.clone())
                .collect(),
        };
        let idempotency = match map.get("idempotency") {
            None => None,
            Some(v) => match v.as_str().and_then(parse_duration_ms) {
                Some(ms) if ms > 0 => Some(Duration::from_millis(ms)),
                _ => {
                    self.err(
                        pointer_push(ptr, "idempotency"),
                        "`idempotency` is the window handled event ids are remembered for, a \
                         duration like \"30m\", \"24h\" or \"7d\" (longer than 0)",
                    );
                    return None;
                }
            },
        };
        Some(Consumer {
            event_type: ty.to_string(),
            durable,
            stream,
            versions,
            filters,
            idempotency,
        })
    }

    fn versions(
        &mut self,
        ty: &str,
        ptr: &str,
        v: &Value,
        known: &[(u32, String)],
    ) -> Option<Vec<u32>> {
        let listed = || {
            known
                .iter()
                .map(|(v, _)| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
            self.err(
                ptr,
                format!(
                    "`versions` must be a non-empty array of version numbers of `{ty}` ({}); \
                     leave it out to consume every version",
                    listed()
                ),
            );
            return None;
        };
        let mut out = BTreeSet::new();
        let before = self.diags.len();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{ptr}/{i}");
            match item.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if known.iter().any(|(v, _)| *v == n) => {
                    if !out.insert(n) {
                        self.err(p, format!("version {n} is listed twice"));
                    }
                }
                Some(n) => self.err(
                    p,
                    format!(
                        "`{ty}` has no version {n} in the catalog (it has {})",
                        listed()
                    ),
                ),
                None => self.err(p, "a version is a positive integer"),
            }
        }
        (self.diags.len() == before).then(|| out.into_iter().collect())
    }

    /// A stream that allows message schedules accepts rollup headers from every publisher
    /// (nats-server turns `allow_rollup_hdrs` on with `allow_msg_schedules`), and a message with
    /// `Nats-Rollup: all` on any subject of the stream purges the whole stream; a message with
    /// `Nats-Schedule-Next: purge` purges any schedule in it. Subject permissions cannot refuse
    /// a header, so only the stream's one owner may publish into it.
    fn one_publisher_per_schedule_stream(&mut self, services: &[Service]) {
        let mut first: BTreeMap<&str, &str> = BTreeMap::new();
        for s in services {
            for (i, p) in s.publishes.iter().enumerate() {
                if !p.schedules {
                    continue;
                }
                match first.get(p.stream.as_str()) {
                    None => {
                        first.insert(&p.stream, &s.name);
                    }
                    Some(owner) if *owner == s.name => {}
                    Some(owner) => self.err(
                        format!("{}/publishes/{i}", pointer_push("/services", &s.name)),
                        format!(
                            "`{}` publishes `{}` into stream {}, which `{owner}` publishes into \
                             too: a stream with `allow_msg_schedules` takes rollup headers from \
                             any publisher (nats-server requires `allow_rollup_hdrs` for \
                             schedules), so one service could purge the other's events \
                             (`Nats-Rollup: all`) or cancel its schedules; give each service \
                             its own stream with schedules",
                            s.name, p.event_type, p.stream
                        ),
                    ),
                }
            }
        }
    }

    fn unpublished_consumptions(&mut self, services: &[Service]) {
        for (ptr, service, ty) in std::mem::take(&mut self.requesters) {
            if !self.responders.contains_key(&ty) {
                self.err(
                    ptr,
                    format!(
                        "`{service}` requests `{ty}`, which no service answers: add it to the \
                         `responds` of the service that answers it"
                    ),
                );
            }
        }
        for (ptr, saga, inputs) in std::mem::take(&mut self.saga_inputs) {
            for (j, input) in inputs.iter().enumerate() {
                if !self.owners.contains_key(input) {
                    self.err(
                        format!("{ptr}/{j}"),
                        format!(
                            "saga `{saga}` reacts to `{input}`, which no service publishes: add \
                             it to the `publishes` of the service that owns it"
                        ),
                    );
                }
            }
        }
        for s in services {
            for (i, c) in s.consumes.iter().enumerate() {
                if self.owners.contains_key(&c.event_type) {
                    continue;
                }
                self.err(
                    format!("{}/consumes/{i}", pointer_push("/services", &s.name)),
                    format!(
                        "`{}` consumes `{}`, which no service publishes: add it to the \
                         `publishes` of the service that owns it",
                        s.name, c.event_type
                    ),
                );
            }
        }
    }

    fn gateway(&mut self, v: &Value, services: &[Service]) -> Option<Gateway> {
        let Some(map) = v.as_object() else {
            self.err(
                "/gateway",
                "`gateway` is an object: {\"name\": \"gateway\", \"publishes_for\": [services]}",
            );
            return None;
        };
        self.unknown_keys("/gateway", map, GATEWAY_KEYS, "the gateway");
        let name = match map.get("name").and_then(Value::as_str) {
            Some(name) => self
                .user_name(name, "/gateway/name")
                .then(|| name.to_string()),
            None => {
                self.err("/gateway", "the gateway needs `name`: its user");
                None
            }
        };
        let Some(items) = map.get("publishes_for").and_then(Value::as_array) else {
            self.err(
                "/gateway",
                "the gateway needs `publishes_for`: the services whose events it may publish",
            );
            return None;
        };
        let mut publishes_for = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("/gateway/publishes_for/{i}");
            let Some(s) = item.as_str() else {
                self.err(p, "a service name (a string)");
                continue;
            };
            if services.iter().any(|x| x.name == s) {
                publishes_for.push(s.to_string());
                continue;
            }
            let hint = suggest(s, services.iter().map(|x| x.name.as_str()))
                .map(|x| format!(" (did you mean `{x}`?)"))
                .unwrap_or_default();
            self.err(p, format!("unknown service `{s}`{hint}"));
        }
        Some(Gateway {
            name: name?,
            publishes_for,
        })
    }

    fn nkeys(&mut self, v: &Value) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        let Some(map) = v.as_object() else {
            self.err(
                "/nkeys",
                "`nkeys` is an object: user -> public nkey (\"U…\")",
            );
            return out;
        };
        for (user, keys) in map {
            let ptr = pointer_push("/nkeys", user);
            if !self.users.contains_key(user) {
                let hint = suggest(user, self.users.keys().map(String::as_str))
                    .map(|x| format!(" (did you mean `{x}`?)"))
                    .unwrap_or_default();
                self.err(&ptr, format!("`{user}` is not a declared user{hint}"));
                continue;
            }
            let list: Vec<(String, &Value)> = match keys {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (format!("{ptr}/{i}"), k))
                    .collect(),
                one => vec![(ptr.clone(), one)],
            };
            let mut found = Vec::new();
            for (p, k) in list {
                match k.as_str() {
                    Some(k) if is_user_public_key(k) => found.push(k.to_string()),
                    _ => self.err(
                        p,
                        "not a user's public nkey: 56 characters starting with `U` (generate \
                         them with `eventhub config nkeys --out DIR`)",
                    ),
                }
            }
            if !found.is_empty() {
                out.insert(user.clone(), found);
            }
        }
        out
    }
}

/// The shape of a user's public nkey: `U` and 55 more base32 characters. The server checks
/// the checksum when it loads the configuration.
pub(crate) fn is_user_public_key(k: &str) -> bool {
    k.len() == 56
        && k.starts_with('U')
        && k.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}
