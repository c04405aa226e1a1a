//! The NATS permissions of every declared user: exactly the subjects the SDK uses for what the
//! declaration allows, nothing more.
//!
//! What each grant is for (the SDK call that needs it):
//!
//! | grant | for |
//! |---|---|
//! | `events.<type>.v<N>` (each version of each owned type) | `Publisher::publish` |
//! | `schedules.<stream>.<service>.>` (each stream with `allow_msg_schedules` it publishes into) | `Publisher::schedule` and its kin store schedules under the service's own name, `Publisher::cancel_schedule` publishes the cancel marker there |
//! | `$JS.API.STREAM.INFO.<stream>` | `Client::consumer` looks its stream up |
//! | `$JS.API.CONSUMER.CREATE.<stream>.<durable>.<filter>` | `Client::consumer` creates or updates its durable; the filter rides in the subject, so the grant pins it |
//! | `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>` | pull requests |
//! | `$JS.ACK.<stream>.<durable>.>` | ack, nak, in-progress, term |
//! | `dlq.<durable>.<filter>` | dead letters of its durable |
//! | `$JS.API.CONSUMER.INFO.<stream>.<durable>` | health and metrics: its durables' state |
//! | `$JS.API.STREAM.NAMES` | health: which streams exist |
//! | `$JS.API.STREAM.INFO.EVENTHUB_DLQ` | metrics: dead-letter counts |
//! | `$JS.API.STREAM.INFO.KV_<bucket>`, `$JS.API.DIRECT.GET.KV_<bucket>.$KV.<bucket>.>`, `$KV.<bucket>.>` | an idempotent consumer opens its bucket, reads and records event ids |
//! | `$JS.API.STREAM.INFO.KV_EVENTHUB_REPLAYS`, `$JS.API.DIRECT.GET.KV_EVENTHUB_REPLAYS.$KV.EVENTHUB_REPLAYS.>` | a consumer checks a dead-letter replay mark against its record (it sees the replayed payload anyway) |
//! | for each saga it runs (`sagas`): `$JS.API.STREAM.INFO` of its input stream, of `SAGA_<NAME>` and of `KV_SAGA_<NAME>` | `saga::start` opens the input stream, the timer stream and the bucket an operator provisioned (`eventhub config apply`); it never creates them |
//! | `$JS.API.CONSUMER.INFO.<input stream>.saga_<name>`, `$JS.API.CONSUMER.MSG.NEXT.<input stream>.saga_<name>`, `$JS.ACK.<input stream>.saga_<name>.>` | its inputs, on the durable the operator created (the bare create subject is denied: its body may carry any filter) |
//! | the same three for `SAGA_<NAME>.saga_<name>_timeouts` | the timeouts the server publishes from the schedules |
//! | `$JS.API.DIRECT.GET.KV_SAGA_<NAME>.$KV.SAGA_<NAME>.>`, `$KV.SAGA_<NAME>.>` | reads and writes (compare-and-set) its instances |
//! | `saga.<name>.timer.*` | arms a timer (a `Nats-Schedule` message whose target the server keeps inside `SAGA_<NAME>`) and clears it (a message that rolls the schedule up, instead of the purge API). Not `saga.<name>.timeout.*`: only the server publishes a timeout, from a schedule, so nobody can fire one by hand |
//! | for each aggregate type it owns (`aggregates`): `$JS.API.STREAM.INFO.ES_<TYPE>`, `$JS.API.STREAM.INFO.KV_ES_SNAPSHOTS_<TYPE>` | `EventStore::open` opens the stream and the snapshot bucket an operator provisioned |
//! | `es.<type>.*` | `EventStore::append`: one message or an atomic batch, with `Nats-Expected-Last-Subject-Sequence` (the stream allows neither rollups, TTLs nor schedules) |
//! | `$JS.API.DIRECT.GET.ES_<TYPE>`, `$JS.API.DIRECT.GET.ES_<TYPE>.es.<type>.*` | `EventStore::load`: the last event of an aggregate, the events after a sequence (one by one or batched); no consumer |
//! | `$JS.API.DIRECT.GET.KV_ES_SNAPSHOTS_<TYPE>.$KV.ES_SNAPSHOTS_<TYPE>.>`, `$KV.ES_SNAPSHOTS_<TYPE>.>` | reads and writes (compare-and-set) snapshots |
//! | subscribe `_INBOX_<service>.>` | replies and deliveries, on the inbox prefix the SDK sets per service |
//! | `rpc.<type>.v<N>` (each version of each type in `requests`) | eventhub-patterns' `RequestExt::request`; the reply comes to its inbox |
//! | subscribe `rpc.<type>.v<N>` (each type in `responds`), `allow_responses` | `RequestExt::respond`: its queue group takes the requests, and it may publish one reply to the reply subject of each request it received, not to other inboxes |
//!
//! Creating or updating a stream is never granted to a service, not even its idempotency
//! bucket, its saga's bucket and timer stream or its aggregate's stream: a stream's subjects are in the request body, and a stream on another service's inbox
//! prefix captures that service's deliveries. Operators create the buckets
//! (`eventhub config apply`).

/// The bucket of dead-letter replay records (`eventhub::dlq::REPLAY_BUCKET`).
const REPLAY_BUCKET: &str = "EVENTHUB_REPLAYS";

use super::declaration::{
    ACCOUNT, ADVISORY_STREAM, DLQ_STREAM, SWEEPER_DURABLE, SYSTEM_ACCOUNT, SYSTEM_USER, Service,
    Services, inbox_prefix,
};

/// What a user is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Everything in the event account: the CLI, provisioning, replaying dead letters.
    Operator,
    /// A declared service.
    Service,
    /// The sweeper: reads events by sequence and writes any dead letter.
    Sweeper,
    /// The HTTP gateway: publishes on behalf of declared services.
    Gateway,
    /// The system account's user (server monitoring).
    System,
}

/// One NATS user of the generated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user (and, for a service, the service) name.
    pub name: String,
    /// What it is for.
    pub role: Role,
    /// The account it belongs to.
    pub account: &'static str,
    /// One line saying what it may do, for the configuration's comments.
    pub summary: String,
    /// `None`: everything in its account.
    pub permissions: Option<Permissions>,
}

/// Subjects a user may publish to and subscribe to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Publish allow list.
    pub publish_allow: Vec<String>,
    /// Publish deny list: the administrative API, listed although nothing allows it, so that a
    /// broad grant added by hand later still cannot delete or purge.
    pub publish_deny: Vec<String>,
    /// Subscribe allow list.
    pub subscribe_allow: Vec<String>,
    /// Whether it may reply to the requests it receives (NATS `allow_responses`: one reply to
    /// each request's reply subject, whatever its inbox), as a responder of request-reply.
    pub allow_responses: bool,
}

/// The JetStream API no service, sweeper or gateway may use. The bare consumer-create subject of
/// each durable is denied next to these: its body may carry any filter.
const DENIED_API: &[&str] = &[
    "$JS.API.CONSUMER.DURABLE.CREATE.>",
    "$JS.API.CONSUMER.DELETE.>",
    "$JS.API.STREAM.CREATE.>",
    "$JS.API.STREAM.UPDATE.>",
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.PURGE.>",
    "$JS.API.STREAM.MSG.DELETE.>",
];

fn push(list: &mut Vec<String>, subject: String) {
    if !list.contains(&subject) {
        list.push(subject);
    }
}

fn denied(extra: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = extra.into_iter().collect();
    out.extend(DENIED_API.iter().map(|s| s.to_string()));
    out
}

pub(super) fn users(s: &Services) -> Vec<User> {
    let mut out = Vec::new();
    for name in &s.operators {
        out.push(User {
            name: name.clone(),
            role: Role::Operator,
            account: ACCOUNT,
            summary: format!(
                "operator: everything in {ACCOUNT} (the CLI, provisioning, replaying dead letters)"
            ),
            permissions: None,
        });
    }
    for service in &s.services {
        out.push(User {
            name: service.name.clone(),
            role: Role::Service,
            account: ACCOUNT,
            summary: summary(service),
            permissions: Some(service_permissions(service)),
        });
    }
    if let Some(name) = &s.sweeper {
        let mut allow = vec![
            format!("$JS.API.STREAM.INFO.{ADVISORY_STREAM}"),
            format!("$JS.API.CONSUMER.CREATE.{ADVISORY_STREAM}.{SWEEPER_DURABLE}"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{ADVISORY_STREAM}.{SWEEPER_DURABLE}"),
            // async-nats asks for the consumer's state after a reconnect.
            format!("$JS.API.CONSUMER.INFO.{ADVISORY_STREAM}.{SWEEPER_DURABLE}"),
            format!("$JS.ACK.{ADVISORY_STREAM}.{SWEEPER_DURABLE}.>"),
        ];
        for stream in &s.streams {
            push(&mut allow, format!("$JS.API.STREAM.INFO.{stream}"));
            push(&mut allow, format!("$JS.API.STREAM.MSG.GET.{stream}"));
        }
        push(&mut allow, "dlq.>".into());
        out.push(User {
            name: name.clone(),
            role: Role::Sweeper,
            account: ACCOUNT,
            summary: format!(
                "the SDK's sweeper ({SWEEPER_DURABLE}): reads max-deliveries advisories, reads \
                 those events by sequence in every stream and writes their dead letters"
            ),
            permissions: Some(Permissions {
                publish_allow: allow,
                publish_deny: denied([]),
                subscribe_allow: vec![format!("{}.>", inbox_prefix(name))],
                allow_responses: false,
            }),
        });
    }
    if let Some(gw) = &s.gateway {
        let mut allow = Vec::new();
        for owner in &gw.publishes_for {
            for p in s
                .service(owner)
                .map(|o| &o.publishes[..])
                .unwrap_or_default()
            {
                for subject in &p.subjects {
                    push(&mut allow, subject.clone());
                }
            }
        }
        // Following events for WebSocket clients (`GET /v1/stream`): ordered consumers, whose
        // names async-nats picks (none at first, `<random>_<n>` when it recreates one), on any
        // stream; the gateway filters what each caller may read. Health: the stream names.
        for stream in &s.streams {
            push(&mut allow, format!("$JS.API.STREAM.INFO.{stream}"));
            push(&mut allow, format!("$JS.API.CONSUMER.CREATE.{stream}"));
            push(&mut allow, format!("$JS.API.CONSUMER.CREATE.{stream}.*"));
            push(&mut allow, format!("$JS.API.CONSUMER.CREATE.{stream}.*.>"));
            push(&mut allow, format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.*"));
        }
        push(&mut allow, "$JS.API.STREAM.NAMES".into());
        // ...but never a declared durable: neither its filter nor its deliveries.
        let mut durables = Vec::new();
        for saga in s.services.iter().flat_map(|x| &x.sagas) {
            durables.push(format!(
                "$JS.API.CONSUMER.CREATE.{}.{}",
                saga.stream,
                saga.durable()
            ));
            durables.push(format!(
                "$JS.API.CONSUMER.CREATE.{}.{}.>",
                saga.stream,
                saga.durable()
            ));
            durables.push(format!(
                "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
                saga.stream,
                saga.durable()
            ));
        }
        for c in s.services.iter().flat_map(|x| &x.consumes) {
            durables.push(format!(
                "$JS.API.CONSUMER.CREATE.{}.{}",
                c.stream, c.durable
            ));
            durables.push(format!(
                "$JS.API.CONSUMER.CREATE.{}.{}.>",
                c.stream, c.durable
            ));
            durables.push(format!(
                "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
                c.stream, c.durable
            ));
        }
        out.push(User {
            name: gw.name.clone(),
            role: Role::Gateway,
            account: ACCOUNT,
            summary: format!(
                "publishes on behalf of {}; follows every stream for WebSocket clients",
                list_or_nothing(&gw.publishes_for)
            ),
            permissions: Some(Permissions {
                publish_allow: allow,
                publish_deny: denied(durables),
                subscribe_allow: vec![format!("{}.>", inbox_prefix(&gw.name))],
                allow_responses: false,
            }),
        });
    }
    out.push(User {
        name: SYSTEM_USER.to_string(),
        role: Role::System,
        account: SYSTEM_ACCOUNT,
        summary: "system account: server monitoring".into(),
        permissions: None,
    });
    out
}

fn list_or_nothing(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items.join(", ")
    }
}

fn summary(s: &Service) -> String {
    let publishes: Vec<String> = s.publishes.iter().map(|p| p.event_type.clone()).collect();
    let consumes: Vec<String> = s
        .consumes
        .iter()
        .map(|c| {
            let mut text = format!("{} as {}", c.event_type, c.durable);
            if let Some(v) = &c.versions {
                let v: Vec<String> = v.iter().map(|v| format!("v{v}")).collect();
                text.push_str(&format!(" ({})", v.join(", ")));
            }
            if let Some(window) = c.idempotency {
                text.push_str(&format!(" idempotent for {}", human(window)));
            }
            text
        })
        .collect();
    let mut line = format!(
        "publishes {}; consumes {}",
        list_or_nothing(&publishes),
        list_or_nothing(&consumes)
    );
    if !s.sagas.is_empty() {
        let sagas: Vec<String> = s
            .sagas
            .iter()
            .map(|x| format!("{} on {}", x.name, x.inputs.join(", ")))
            .collect();
        line.push_str(&format!("; runs saga {}", sagas.join("; saga ")));
    }
    if !s.aggregates.is_empty() {
        let types: Vec<&str> = s
            .aggregates
            .iter()
            .map(|a| a.aggregate_type.as_str())
            .collect();
        line.push_str(&format!("; owns aggregate {}", types.join(", ")));
    }
    for (what, list) in [("answers", &s.responds), ("requests", &s.requests)] {
        if !list.is_empty() {
            let types: Vec<&str> = list.iter().map(|r| r.request_type.as_str()).collect();
            line.push_str(&format!("; {what} {}", types.join(", ")));
        }
    }
    let uses: Vec<&str> = [(s.health, "health"), (s.metrics, "metrics")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, what)| *what)
        .collect();
    if !uses.is_empty() {
        line.push_str(&format!("; {}", uses.join(", ")));
    }
    line
}

/// `24h`, `90m`, `30s`, `500ms`: the largest unit that divides the duration.
fn human(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

fn service_permissions(s: &Service) -> Permissions {
    let mut allow = Vec::new();
    for p in &s.publishes {
        for subject in &p.subjects {
            push(&mut allow, subject.clone());
        }
        if p.schedules {
            // Its own namespace only: a schedule on another service's subject would replace
            // that service's schedule (one schedule per subject).
            push(&mut allow, format!("schedules.{}.{}.>", p.stream, s.name));
        }
    }
    let mut bare_creates = Vec::new();
    for c in &s.consumes {
        let (stream, durable) = (&c.stream, &c.durable);
        push(&mut allow, format!("$JS.API.STREAM.INFO.{stream}"));
        for f in &c.filters {
            push(
                &mut allow,
                format!("$JS.API.CONSUMER.CREATE.{stream}.{durable}.{f}"),
            );
        }
        push(
            &mut allow,
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"),
        );
        push(&mut allow, format!("$JS.ACK.{stream}.{durable}.>"));
        for f in &c.filters {
            push(&mut allow, format!("dlq.{durable}.{f}"));
        }
        if s.health || s.metrics {
            push(
                &mut allow,
                format!("$JS.API.CONSUMER.INFO.{stream}.{durable}"),
            );
        }
        if c.idempotency.is_some() {
            let bucket = c.idempotency_bucket();
            push(&mut allow, format!("$JS.API.STREAM.INFO.KV_{bucket}"));
            push(
                &mut allow,
                format!("$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}.>"),
            );
            push(&mut allow, format!("$KV.{bucket}.>"));
        }
        bare_creates.push(format!("$JS.API.CONSUMER.CREATE.{stream}.{durable}"));
    }
    for saga in &s.sagas {
        let (stream, durable) = (&saga.stream, saga.durable());
        let store = saga.store();
        let timeouts = saga.timeouts_durable();
        push(&mut allow, format!("$JS.API.STREAM.INFO.{stream}"));
        push(&mut allow, format!("$JS.API.STREAM.INFO.{store}"));
        push(&mut allow, format!("$JS.API.STREAM.INFO.KV_{store}"));
        for (stream, durable) in [(stream, &durable), (&store, &timeouts)] {
            push(
                &mut allow,
                format!("$JS.API.CONSUMER.INFO.{stream}.{durable}"),
            );
            push(
                &mut allow,
                format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"),
            );
            push(&mut allow, format!("$JS.ACK.{stream}.{durable}.>"));
            bare_creates.push(format!("$JS.API.CONSUMER.CREATE.{stream}.{durable}"));
        }
        push(
            &mut allow,
            format!("$JS.API.DIRECT.GET.KV_{store}.$KV.{store}.>"),
        );
        push(&mut allow, format!("$KV.{store}.>"));
        push(&mut allow, format!("saga.{}.timer.*", saga.name));
    }
    for a in &s.aggregates {
        let (stream, bucket) = (a.stream(), a.snapshot_bucket());
        push(&mut allow, format!("$JS.API.STREAM.INFO.{stream}"));
        push(&mut allow, a.subjects());
        push(&mut allow, format!("$JS.API.DIRECT.GET.{stream}"));
        push(
            &mut allow,
            format!("$JS.API.DIRECT.GET.{stream}.{}", a.subjects()),
        );
        push(&mut allow, format!("$JS.API.STREAM.INFO.KV_{bucket}"));
        push(
            &mut allow,
            format!("$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}.>"),
        );
        push(&mut allow, format!("$KV.{bucket}.>"));
    }
    if !s.consumes.is_empty() {
        // Replay marks are checked against the records the replayer wrote (read only).
        push(
            &mut allow,
            format!("$JS.API.STREAM.INFO.KV_{REPLAY_BUCKET}"),
        );
        push(
            &mut allow,
            format!("$JS.API.DIRECT.GET.KV_{REPLAY_BUCKET}.$KV.{REPLAY_BUCKET}.>"),
        );
    }
    if s.health {
        push(&mut allow, "$JS.API.STREAM.NAMES".into());
    }
    if s.metrics {
        push(&mut allow, format!("$JS.API.STREAM.INFO.{DLQ_STREAM}"));
    }
    for r in &s.requests {
        for subject in &r.subjects {
            push(&mut allow, subject.clone());
        }
    }
    let mut subscribe = vec![format!("{}.>", inbox_prefix(&s.name))];
    for r in &s.responds {
        for subject in &r.subjects {
            push(&mut subscribe, subject.clone());
        }
    }
    Permissions {
        publish_allow: allow,
        publish_deny: denied(bare_creates),
        subscribe_allow: subscribe,
        allow_responses: !s.responds.is_empty(),
    }
}
