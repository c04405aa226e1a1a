//! The attack suite, under the repository's generated `nats.conf`: every declared service (and
//! the sweeper), connected with its own credentials through a raw async-nats client — a
//! foreign client, not the SDK — tries to read, steal, forge or destroy what is not its own,
//! while the SDK's victims (every declared consumer) handle their events.
//!
//! Every attempt must be **denied** (the server's permissions violation naming the subject, or
//! a JetStream API error refusing it) or verifiably **dropped** (a subscription that received
//! nothing while a control subscription of `ops` saw the victims' deliveries flow; a request
//! nobody answered, with the server's state checked unchanged afterwards). Anything else is
//! **leaked**, and the test fails. What permissions cannot prevent is measured and shown as a
//! known gap, with what closes it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{HeaderMap, StatusCode};
use bytes::Bytes;
use eventhub::Client;
use eventhub::ConsumerHandle;
use eventhub::Event;
use eventhub::HandlerError;
use eventhub::wire::headers;
use eventhub_catalog::events::{erasure, onboarding, payment, photo, user};
use eventhub_codegen::services::{Consumer, Role};
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use crate::security::{Secured, password};
use crate::support::{DlqWatch, next, quick};

/// What came of one attempt.
#[derive(Debug, Clone)]
enum Outcome {
    /// Refused, with the evidence.
    Denied(String),
    /// Nothing happened (checked by the state comparison at the end).
    Dropped(String),
    /// The attacker got data, or changed something.
    Leaked(String),
}

/// One row of the table.
#[derive(Debug, Default)]
struct Row {
    attempts: usize,
    denied: usize,
    dropped: usize,
    leaked: Vec<String>,
    /// How the first attempt was refused.
    evidence: Option<String>,
    /// For known gaps: why permissions cannot prevent it and what does.
    gap: Option<&'static str>,
}

#[derive(Default)]
struct Report {
    rows: Vec<(String, Row)>,
}

impl Report {
    fn row(&mut self, attack: &str) -> &mut Row {
        if let Some(i) = self.rows.iter().position(|(a, _)| a == attack) {
            return &mut self.rows[i].1;
        }
        self.rows.push((attack.to_string(), Row::default()));
        &mut self.rows.last_mut().unwrap().1
    }

    fn record(&mut self, attack: &str, who: &str, what: &str, outcome: Outcome) {
        let row = self.row(attack);
        row.attempts += 1;
        match outcome {
            Outcome::Denied(how) => {
                row.denied += 1;
                row.evidence.get_or_insert(how);
            }
            Outcome::Dropped(how) => {
                row.dropped += 1;
                row.evidence.get_or_insert(how);
            }
            Outcome::Leaked(how) => row.leaked.push(format!("{who}: {what}: {how}")),
        }
    }

    fn gap(&mut self, attack: &str, why: &'static str, attempts: usize, succeeded: usize) {
        let row = self.row(attack);
        row.gap = Some(why);
        row.attempts += attempts;
        row.leaked = (0..succeeded).map(|_| String::new()).collect();
    }

    fn print(&self) -> usize {
        let width = self.rows.iter().map(|(a, _)| a.len()).max().unwrap_or(6);
        println!(
            "\n{:<width$}  {:>8}  {:>6}  {:>7}  {:>6}",
            "attack", "attempts", "denied", "dropped", "leaked"
        );
        let mut leaked = 0;
        let mut gaps = Vec::new();
        for (attack, row) in &self.rows {
            match row.gap {
                None => {
                    leaked += row.leaked.len();
                    println!(
                        "{attack:<width$}  {:>8}  {:>6}  {:>7}  {:>6}  e.g. {}",
                        row.attempts,
                        row.denied,
                        row.dropped,
                        row.leaked.len(),
                        row.evidence.as_deref().unwrap_or("-")
                    );
                }
                Some(why) => {
                    println!(
                        "{attack:<width$}  {:>8}  {:>6}  {:>7}  {:>6}  (gap)",
                        row.attempts,
                        "-",
                        "-",
                        row.leaked.len()
                    );
                    gaps.push((attack, why));
                }
            }
        }
        println!("\nknown gaps (not counted as leaks; permissions cannot close them):");
        for (attack, why) in gaps {
            println!("  - {attack}: {why}");
        }
        for (attack, row) in &self.rows {
            if row.gap.is_none() {
                for l in &row.leaked {
                    println!("LEAKED {attack}: {l:.300}");
                }
            }
        }
        leaked
    }
}

/// A raw async-nats connection with a user's credentials, recording the server's permission
/// violations.
struct Attacker {
    name: String,
    role: Role,
    client: async_nats::Client,
    violations: Arc<(Mutex<Vec<String>>, Notify)>,
}

impl Attacker {
    async fn connect(s: &Secured, name: &str, role: Role) -> Attacker {
        let violations: Arc<(Mutex<Vec<String>>, Notify)> = Arc::default();
        let sink = violations.clone();
        let client =
            async_nats::ConnectOptions::with_user_and_password(name.to_string(), password(name))
                .custom_inbox_prefix(eventhub::client::service_inbox_prefix(name))
                .event_callback(move |event| {
                    let sink = sink.clone();
                    async move {
                        if let async_nats::Event::ServerError(async_nats::ServerError::Other(msg)) =
                            event
                        {
                            sink.0.lock().unwrap().push(msg.to_ascii_lowercase());
                            sink.1.notify_waiters();
                        }
                    }
                })
                .connect(s.server.client_url())
                .await
                .unwrap();
        Attacker {
            name: name.to_string(),
            role,
            client,
            violations,
        }
    }

    fn mark(&self) -> usize {
        self.violations.0.lock().unwrap().len()
    }

    /// Resolves once the server reports a violation of `kind` (`publish`, `subscription`) for
    /// exactly `subject` after `since`.
    async fn violation(&self, kind: &str, subject: &str, since: usize) {
        let wanted = format!(
            "permissions violation for {kind} to \"{}\"",
            subject.to_ascii_lowercase()
        );
        loop {
            let notified = self.violations.1.notified();
            if self.violations.0.lock().unwrap()[since..]
                .iter()
                .any(|m| m.starts_with(&wanted))
            {
                return;
            }
            notified.await;
        }
    }

    /// Publishes to `subject` with a reply inbox and classifies what comes back.
    async fn request(&self, subject: &str, headers: Option<HeaderMap>, body: Value) -> Outcome {
        let body: Bytes = if body.is_null() {
            Bytes::new()
        } else {
            serde_json::to_vec(&body).unwrap().into()
        };
        self.send(subject, headers, body).await
    }

    async fn send(&self, subject: &str, headers: Option<HeaderMap>, body: Bytes) -> Outcome {
        let inbox = self.client.new_inbox();
        let mut replies = self.client.subscribe(inbox.clone()).await.unwrap();
        let since = self.mark();
        let sent = match headers {
            Some(h) => {
                self.client
                    .publish_with_reply_and_headers(subject.to_string(), inbox, h, body)
                    .await
            }
            None => {
                self.client
                    .publish_with_reply(subject.to_string(), inbox, body)
                    .await
            }
        };
        sent.unwrap();
        self.client.flush().await.unwrap();
        let outcome = tokio::select! {
            () = self.violation("publish", subject, since) => {
                Outcome::Denied(format!("permissions violation for publish to {subject}"))
            }
            reply = replies.next() => classify(reply.expect("the reply subscription is open")),
            () = tokio::time::sleep(Duration::from_secs(3)) => {
                Outcome::Dropped("no answer and no violation within 3 s".into())
            }
        };
        let _ = replies.unsubscribe().await;
        outcome
    }

    /// Subscribes to `subject`; whether the server refused it.
    async fn subscribe(&self, subject: &str) -> (async_nats::Subscriber, bool) {
        let since = self.mark();
        let sub = self.client.subscribe(subject.to_string()).await.unwrap();
        self.client.flush().await.unwrap();
        let refused = tokio::time::timeout(
            Duration::from_secs(3),
            self.violation("subscription", subject, since),
        )
        .await
        .is_ok();
        (sub, refused)
    }
}

/// A JetStream answer is a denial only when it refuses for the reason the attack tried to get
/// around; any other answer means the request got through.
fn classify(reply: async_nats::Message) -> Outcome {
    match reply.status {
        Some(StatusCode::NO_RESPONDERS) => return Outcome::Dropped("no responders".into()),
        Some(code) if code != StatusCode::OK => {
            return Outcome::Leaked(format!("answered with status {code}"));
        }
        _ => {}
    }
    let text = String::from_utf8_lossy(&reply.payload).to_string();
    let Ok(json) = serde_json::from_str::<Value>(&text) else {
        return Outcome::Leaked(format!("got {} bytes: {:.80}", text.len(), text));
    };
    if let Some(error) = json.get("error") {
        let code = error["err_code"].as_u64().unwrap_or(0);
        let description = error["description"].as_str().unwrap_or_default();
        // 10131: the body's filter is not the subject's; 10137: a filter list with the
        // subject-based API; a pull durable cannot become a push consumer.
        if code == 10131 || code == 10137 || description.contains("pull consumer to push") {
            return Outcome::Denied(format!("JetStream {code}: {description}"));
        }
        return Outcome::Leaked(format!("answered: JetStream {code}: {description}"));
    }
    Outcome::Leaked(format!("answered: {text}"))
}

/// The payload of a victim event of `event_type` whose id the victim reports.
/// The first fixture instance of the newest version of `event_type`, and its subject.
fn fixture_payload(event_type: &str) -> Option<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/events");
    let prefix = format!("{event_type}.v");
    let version = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            name.strip_prefix(&prefix)?
                .strip_suffix(".json")?
                .parse::<u32>()
                .ok()
        })
        .max()?;
    let text = std::fs::read_to_string(format!("{dir}/{prefix}{version}.json")).ok()?;
    let items: Vec<Value> = serde_json::from_str(&text).ok()?;
    Some((
        format!("events.{event_type}.v{version}"),
        items.into_iter().next()?,
    ))
}

fn payload(event_type: &str, marker: &str) -> (String, Value) {
    let now = "2026-11-23T10:00:00Z";
    match event_type {
        "user.created" => (
            user::CreatedV2::SUBJECT.to_string(),
            json!({
                "user_id": uuid::Uuid::now_v7(), "email": format!("{marker}@example.com"),
                "display_name": "Victim", "locale": "en-GB", "created_at": now,
            }),
        ),
        "payment.created" => (
            payment::CreatedV1::SUBJECT.to_string(),
            json!({
                "payment_id": uuid::Uuid::now_v7(), "user_id": uuid::Uuid::now_v7(),
                "amount": { "amount_minor": 4242, "currency": "EUR" }, "method": "card",
                "created_at": now,
            }),
        ),
        "photo.uploaded" => (
            photo::UploadedV1::SUBJECT.to_string(),
            json!({
                "photo_id": uuid::Uuid::now_v7(), "owner_id": uuid::Uuid::now_v7(),
                "content_type": "image/png", "size_bytes": 1, "storage_key": marker,
                "uploaded_at": now,
            }),
        ),
        // The saga events: the first instance of their fixture, on the subject of their
        // newest version (tests/fixtures/events/<type>.v<N>.json).
        other => fixture_payload(other).unwrap_or_else(|| {
            panic!(
                "the attack suite has no victim events of `{other}`: add a fixture \
                 (tests/fixtures/events) or a `payload` arm so every declared consumer is \
                 attacked"
            )
        }),
    }
}

async fn publish<E: Event>(client: &Client, body: Value, id: Option<String>) -> String {
    let event: E = serde_json::from_value(body).unwrap();
    let mut options = eventhub::PublishOptions::default();
    options.id = id;
    client
        .publisher()
        .publish_with(&event, options)
        .await
        .unwrap()
        .id
}

/// Publishes a victim event of `event_type` as its owner (with event id `id` if given);
/// returns its id.
async fn publish_victim_event(owner: &Client, event_type: &str, id: Option<String>) -> String {
    let (_, body) = payload(event_type, &format!("secret-{}", uuid::Uuid::now_v7()));
    match event_type {
        "user.created" => publish::<user::CreatedV2>(owner, body, id).await,
        "payment.created" => publish::<payment::CreatedV1>(owner, body, id).await,
        "photo.uploaded" => publish::<photo::UploadedV1>(owner, body, id).await,
        "user.deleted" => publish::<user::DeletedV1>(owner, body, id).await,
        "erasure.escalated" => publish::<erasure::EscalatedV1>(owner, body, id).await,
        "onboarding.cancelled" => publish::<onboarding::CancelledV1>(owner, body, id).await,
        "onboarding.completed" => publish::<onboarding::CompletedV1>(owner, body, id).await,
        "onboarding.preferences-requested" => {
            publish::<onboarding::PreferencesRequestedV1>(owner, body, id).await
        }
        "onboarding.welcome-requested" => {
            publish::<onboarding::WelcomeRequestedV1>(owner, body, id).await
        }
        other => unreachable!("{other}: add it to publish_victim_event"),
    }
}

/// Runs the declared consumer `c` with the SDK; it reports `(durable, event id)` of every
/// delivery and rejects (dead-letters) event ids starting with `reject` unless replayed.
async fn victim(
    client: &Client,
    c: &Consumer,
    tx: mpsc::UnboundedSender<(String, String)>,
) -> ConsumerHandle {
    async fn run<E: eventhub::Consumable>(
        client: &Client,
        durable: String,
        tx: mpsc::UnboundedSender<(String, String)>,
    ) -> ConsumerHandle {
        client
            .consumer::<E>(quick())
            .await
            .expect("the victim's durable under the generated config")
            .spawn(move |env| {
                let id = env.meta().id.clone();
                let reject = id.starts_with("reject")
                    && env.meta().headers.get(headers::REPLAY_OF).is_none();
                let _ = tx.send((durable.clone(), id));
                async move {
                    if reject {
                        Err(HandlerError::reject("the victim rejects it"))
                    } else {
                        Ok(())
                    }
                }
            })
    }
    let durable = c.durable.clone();
    match (c.event_type.as_str(), c.versions.as_deref()) {
        ("user.created", None) => run::<user::Created>(client, durable, tx).await,
        ("user.created", Some([2])) => run::<user::CreatedV2>(client, durable, tx).await,
        ("payment.created", None) => run::<payment::Created>(client, durable, tx).await,
        ("photo.uploaded", None) => run::<photo::Uploaded>(client, durable, tx).await,
        ("user.deleted", None) => run::<user::Deleted>(client, durable, tx).await,
        ("erasure.escalated", None) => run::<erasure::Escalated>(client, durable, tx).await,
        ("onboarding.cancelled", None) => run::<onboarding::Cancelled>(client, durable, tx).await,
        ("onboarding.completed", None) => run::<onboarding::Completed>(client, durable, tx).await,
        ("onboarding.preferences-requested", None) => {
            run::<onboarding::PreferencesRequested>(client, durable, tx).await
        }
        ("onboarding.welcome-requested", None) => {
            run::<onboarding::WelcomeRequested>(client, durable, tx).await
        }
        other => panic!(
            "the attack suite has no victim for {other:?}: add it to `victim` so every declared \
             consumer is attacked"
        ),
    }
}

/// A durable's filters, deliver subject (push) and max deliver.
type Durable = (Vec<String>, Option<String>, i64);

/// What the server holds, compared before and after the attacks.
#[derive(Debug, PartialEq, Eq)]
struct State {
    /// Stream -> messages.
    streams: BTreeMap<String, u64>,
    /// (stream, consumer) -> (filters, deliver subject, max deliver).
    consumers: BTreeMap<(String, String), Durable>,
}

async fn state(ops: &Client) -> State {
    let js = ops.jetstream();
    let names: Vec<String> = js.stream_names().map(|n| n.unwrap()).collect().await;
    let mut streams = BTreeMap::new();
    let mut consumers = BTreeMap::new();
    for name in names {
        let mut stream = js.get_stream(&name).await.unwrap();
        streams.insert(name.clone(), stream.info().await.unwrap().state.messages);
        let infos: Vec<_> = stream.consumers().map(|c| c.unwrap()).collect().await;
        for info in infos {
            // The operator's own readers (DlqWatch) are ephemeral and come and go.
            if info.config.durable_name.is_none() {
                continue;
            }
            let mut filters = info.config.filter_subjects.clone();
            if !info.config.filter_subject.is_empty() {
                filters.push(info.config.filter_subject.clone());
            }
            consumers.insert(
                (name.clone(), info.name.clone()),
                (
                    filters,
                    info.config.deliver_subject.clone(),
                    info.config.max_deliver,
                ),
            );
        }
    }
    State { streams, consumers }
}

fn event_headers(source: &str, id: &str, event_type: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(headers::SPECVERSION, "1.0");
    h.insert(headers::ID, id);
    h.insert(headers::MSG_ID, id);
    h.insert(headers::TYPE, event_type);
    h.insert(headers::SOURCE, source);
    h.insert(headers::CONTENT_TYPE, eventhub::wire::codec::JSON);
    h
}

fn create(stream: &str, config: Value) -> Value {
    json!({ "stream_name": stream, "config": config, "action": "" })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_declared_service_attacks_the_others_and_nothing_leaks() {
    let s = Secured::start();
    let ops = s.ops().await;
    let mut dlq = DlqWatch::start(&ops).await;
    let mut report = Report::default();
    let declared = s.services.users();

    let mut attackers = Vec::new();
    for u in &declared {
        if matches!(u.role, Role::Service | Role::Sweeper | Role::Gateway) {
            attackers.push(Attacker::connect(&s, &u.name, u.role).await);
        }
    }
    let names: Vec<String> = attackers.iter().map(|a| a.name.clone()).collect();
    // Every declared consumer: (service, consumer).
    let consumers: Vec<(String, Consumer)> = s
        .services
        .services
        .iter()
        .flat_map(|svc| svc.consumes.iter().map(|c| (svc.name.clone(), c.clone())))
        .collect();
    let owns = |who: &str, ty: &str| s.services.publisher_of(ty).is_some_and(|p| p.name == who);
    // The gateway publishes for the services of `gateway.publishes_for` (by design, see the
    // gaps below): for it, those types count as its own.
    let speaks_for = |who: &str, ty: &str| {
        owns(who, ty)
            || s.services.gateway.as_ref().is_some_and(|g| {
                g.name == who
                    && s.services
                        .publisher_of(ty)
                        .is_some_and(|p| g.publishes_for.contains(&p.name))
            })
    };

    // --- Listening for others' deliveries while they flow -------------------------------------
    let control_client =
        async_nats::ConnectOptions::with_user_and_password("ops".into(), password("ops"))
            .connect(s.server.client_url())
            .await
            .unwrap();
    let mut control = BTreeMap::new();
    for (service, _) in &consumers {
        let prefix = eventhub::client::service_inbox_prefix(service);
        if !control.contains_key(service) {
            let sub = control_client
                .subscribe(format!("{prefix}.>"))
                .await
                .unwrap();
            control.insert(service.clone(), sub);
        }
    }
    let mut taps = Vec::new();
    for a in &attackers {
        let mut subjects = vec![
            (
                "read deliveries: subscribe `_INBOX.>`",
                "_INBOX.>".to_string(),
            ),
            ("read deliveries: subscribe `>`", ">".to_string()),
        ];
        for other in names.iter().filter(|n| **n != a.name) {
            subjects.push((
                "read deliveries: subscribe another's inbox prefix",
                format!("{}.>", eventhub::client::service_inbox_prefix(other)),
            ));
        }
        for subject in ["events.>", "dlq.>", "$JS.API.>", "$JS.ACK.>", "$KV.>"] {
            subjects.push((
                "read traffic: subscribe events, dead letters, API, acks, buckets",
                subject.to_string(),
            ));
        }
        for (attack, subject) in subjects {
            let (sub, refused) = a.subscribe(&subject).await;
            taps.push((attack, a.name.clone(), subject, sub, refused));
        }
    }

    // --- The victims: every declared consumer, with the SDK, as its own user -----------------
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut handles = Vec::new();
    let mut clients = BTreeMap::new();
    for svc in &s.services.services {
        clients.insert(svc.name.clone(), s.connect(&svc.name).await);
    }
    for (service, c) in &consumers {
        handles.push(victim(&clients[service], c, tx.clone()).await);
    }
    let types: BTreeSet<&str> = consumers
        .iter()
        .map(|(_, c)| c.event_type.as_str())
        .collect();
    let mut ids = BTreeSet::new();
    for ty in &types {
        let owner = &clients[&s.services.publisher_of(ty).unwrap().name];
        for _ in 0..3 {
            ids.insert(publish_victim_event(owner, ty, None).await);
        }
        let reject = format!("reject-{}", uuid::Uuid::now_v7());
        ids.insert(publish_victim_event(owner, ty, Some(reject)).await);
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    while consumers
        .iter()
        .any(|(_, c)| seen.get(&c.durable).copied().unwrap_or(0) < 4)
    {
        let (durable, id) = next(&mut rx, 20).await;
        assert!(
            ids.contains(&id),
            "victims see only the events published for them"
        );
        *seen.entry(durable).or_default() += 1;
    }
    for _ in &consumers {
        dlq.next(20).await; // each victim dead-lettered its rejected event
    }
    for a in &attackers {
        a.client.flush().await.unwrap();
    }
    control_client.flush().await.unwrap();
    for (service, sub) in &mut control {
        let mut deliveries = 0;
        while let Some(Some(m)) = sub.next().now_or_never() {
            if m.reply.as_ref().is_some_and(|r| r.starts_with("$JS.ACK.")) {
                deliveries += 1;
            }
        }
        assert!(
            deliveries >= 4,
            "control: {service}'s deliveries flowed on its inbox prefix ({deliveries})"
        );
    }
    for (attack, who, subject, mut sub, refused) in taps {
        let mut received = 0;
        while let Some(Some(_)) = sub.next().now_or_never() {
            received += 1;
        }
        let outcome = match (received, refused) {
            (0, true) => Outcome::Denied("permissions violation for subscription".into()),
            (0, false) => Outcome::Dropped("received nothing while deliveries flowed".into()),
            (n, _) => Outcome::Leaked(format!("received {n} messages")),
        };
        report.record(attack, &who, &subject, outcome);
    }

    // --- Requests: steal, create, forge, destroy ----------------------------------------------
    let before = state(&ops).await;
    let mut streams: Vec<String> = s.services.streams.clone();
    streams.extend([
        eventhub::topology::DLQ_STREAM.to_string(),
        eventhub::topology::ADVISORY_STREAM.to_string(),
    ]);
    for (_, c) in &consumers {
        if c.idempotency.is_some() {
            streams.push(format!("KV_{}", c.idempotency_bucket()));
        }
    }
    let catalog_subjects: Vec<(String, String, String)> = eventhub_catalog::events::CATALOG
        .iter()
        .map(|e| {
            (
                e.event_type.to_string(),
                e.subject.to_string(),
                e.stream.to_string(),
            )
        })
        .collect();
    for a in &attackers {
        let me = a.name.as_str();
        let mine: Vec<&Consumer> = consumers
            .iter()
            .filter(|(s, _)| s == me)
            .map(|(_, c)| c)
            .collect();
        let theirs: Vec<&(String, Consumer)> = consumers.iter().filter(|(s, _)| s != me).collect();
        let mut attempts: Vec<(&str, String, Option<HeaderMap>, Value)> = Vec::new();
        let steal = format!("{}__steal", me.replace('-', "_"));
        for (_, c) in &theirs {
            let (st, d) = (&c.stream, &c.durable);
            attempts.push((
                "steal deliveries: pull from another's durable",
                format!("$JS.API.CONSUMER.MSG.NEXT.{st}.{d}"),
                None,
                json!({ "batch": 1, "no_wait": true }),
            ));
            attempts.push((
                "ack or nak another's deliveries",
                format!("$JS.ACK.{st}.{d}.1.1.1.0.0"),
                None,
                Value::String("-NAK".into()),
            ));
            attempts.push((
                "inspect another's durable (CONSUMER.INFO)",
                format!("$JS.API.CONSUMER.INFO.{st}.{d}"),
                None,
                Value::Null,
            ));
            attempts.push((
                "take over another's durable (its own create subject)",
                format!("$JS.API.CONSUMER.CREATE.{st}.{d}.{}", c.filters[0]),
                None,
                create(
                    st,
                    json!({ "durable_name": d, "ack_policy": "explicit",
                    "filter_subject": c.filters[0], "max_deliver": 1 }),
                ),
            ));
            // Writing any durable's dead letters is the sweeper's job (see the gaps below).
            if a.role != Role::Sweeper {
                attempts.push((
                    "forge a dead letter for another's durable",
                    format!("dlq.{d}.{}", c.filters[0].replace('*', "v1")),
                    Some(event_headers(me, "forged", &c.event_type)),
                    json!({}),
                ));
            }
            if !speaks_for(me, &c.event_type) {
                let mut h = event_headers(
                    me,
                    &format!("forged-{}", uuid::Uuid::now_v7()),
                    &c.event_type,
                );
                h.insert(headers::REPLAY_OF, "EVENTHUB_DLQ:1");
                h.insert(headers::REPLAY_FOR, d.as_str());
                let (subject, body) = payload(&c.event_type, "forged");
                attempts.push(("replay into another's durable", subject, Some(h), body));
            }
            attempts.push((
                "read others' dead letters",
                format!(
                    "$JS.API.DIRECT.GET.EVENTHUB_DLQ.dlq.{d}.{}",
                    c.filters[0].replace('*', "v1")
                ),
                None,
                Value::Null,
            ));
            attempts.push((
                "read others' dead letters",
                format!("$JS.API.CONSUMER.CREATE.EVENTHUB_DLQ.{steal}.dlq.{d}.>"),
                None,
                create("EVENTHUB_DLQ", json!({ "name": steal, "filter_subject": format!("dlq.{d}.>"), "ack_policy": "none" })),
            ));
            if c.idempotency.is_some() {
                let b = c.idempotency_bucket();
                for (subject, body) in [
                    (format!("$JS.API.STREAM.INFO.KV_{b}"), Value::Null),
                    (format!("$JS.API.DIRECT.GET.KV_{b}.$KV.{b}.x"), Value::Null),
                    (format!("$KV.{b}.x"), json!("poisoned")),
                ] {
                    attempts.push((
                        "read or write another's idempotency bucket",
                        subject,
                        None,
                        body,
                    ));
                }
            }
        }
        // The gateway follows every stream through ordered consumers (by design, see the gaps
        // below); taking over a declared durable is still refused to it (the rows above).
        let foreign_streams: &[String] = if a.role == Role::Gateway {
            &[]
        } else {
            &s.services.streams
        };
        for stream in foreign_streams {
            let own = mine.iter().find(|c| &c.stream == stream);
            let durable = own.map_or(steal.clone(), |c| c.durable.clone());
            let mut foreign: Vec<String> = vec![">".into(), "events.>".into()];
            for (ty, subject, st) in &catalog_subjects {
                if st == stream && own.is_none_or(|c| &c.event_type != ty) {
                    foreign.push(subject.clone());
                }
            }
            for f in foreign {
                attempts.push((
                    "consumer with a foreign filter (extended create subject)",
                    format!("$JS.API.CONSUMER.CREATE.{stream}.{durable}.{f}"),
                    None,
                    create(stream, json!({ "durable_name": durable, "ack_policy": "explicit", "filter_subject": f })),
                ));
            }
            let any =
                json!({ "durable_name": durable, "ack_policy": "explicit", "filter_subject": ">" });
            for subject in [
                format!("$JS.API.CONSUMER.CREATE.{stream}"),
                format!("$JS.API.CONSUMER.CREATE.{stream}.{durable}"),
                format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}"),
            ] {
                attempts.push((
                    "consumer with any filter (bare, ephemeral, legacy create)",
                    subject,
                    None,
                    create(stream, any.clone()),
                ));
            }
            if a.role != Role::Sweeper {
                attempts.push((
                    "read a stream's events by sequence",
                    format!("$JS.API.STREAM.MSG.GET.{stream}"),
                    None,
                    json!({ "seq": 1 }),
                ));
                attempts.push((
                    "read a stream's events by sequence",
                    format!("$JS.API.DIRECT.GET.{stream}"),
                    None,
                    json!({ "seq": 1 }),
                ));
            }
        }
        for c in &mine {
            let (st, d, f) = (&c.stream, &c.durable, &c.filters[0]);
            let subject = format!("$JS.API.CONSUMER.CREATE.{st}.{d}.{f}");
            attempts.push((
                "own durable, another filter in the body",
                subject.clone(),
                None,
                create(st, json!({ "durable_name": d, "ack_policy": "explicit", "filter_subject": "events.>" })),
            ));
            attempts.push((
                "own durable, another filter in the body",
                subject.clone(),
                None,
                create(st, json!({ "durable_name": d, "ack_policy": "explicit", "filter_subjects": [f, "events.>"] })),
            ));
            // Another stream's subject: one of this stream would be refused as a delivery
            // cycle before the push conversion is even considered.
            let foreign = catalog_subjects
                .iter()
                .find(|(ty, _, stream)| !owns(me, ty) && stream != st)
                .unwrap();
            attempts.push((
                "own durable turned push, delivering elsewhere",
                subject,
                None,
                create(st, json!({ "durable_name": d, "ack_policy": "explicit", "filter_subject": f, "deliver_subject": foreign.1 })),
            ));
        }
        for (ty, subject, _) in &catalog_subjects {
            if !speaks_for(me, ty) {
                let id = format!("forged-{}", uuid::Uuid::now_v7());
                attempts.push((
                    "publish events it does not own",
                    subject.clone(),
                    Some(event_headers(me, &id, ty)),
                    json!({}),
                ));
            }
        }
        // Schedules: the server publishes whatever a stored schedule says, and a cancel marker
        // purges any schedule; only a stream's publisher may store or cancel one, under its
        // own name.
        for spec in eventhub_catalog::TOPOLOGY
            .streams
            .iter()
            .filter(|x| x.allow_msg_schedules)
        {
            let st = spec.name;
            let Some((ty, target, _)) = catalog_subjects.iter().find(|(_, _, x)| x == st) else {
                continue;
            };
            let publishes_here = s
                .services
                .service(me)
                .is_some_and(|x| x.publishes.iter().any(|p| p.stream == st));
            for owner in names.iter().map(String::as_str).chain(["(legacy)"]) {
                if owner == me && publishes_here {
                    continue;
                }
                let subject = if owner == "(legacy)" {
                    format!("schedules.{st}.attack")
                } else {
                    format!("schedules.{st}.{owner}.attack")
                };
                let id = format!("forged-{}", uuid::Uuid::now_v7());
                let mut h = event_headers(me, &id, ty);
                h.insert("Nats-Schedule", "@at 2000-01-01T00:00:00Z");
                h.insert("Nats-Schedule-Target", target.as_str());
                attempts.push((
                    "store or cancel a schedule in another's name",
                    subject.clone(),
                    Some(h),
                    json!({}),
                ));
                let mut marker = HeaderMap::new();
                marker.insert("Nats-Schedule-Next", "purge");
                marker.insert("Nats-Scheduler", subject.as_str());
                attempts.push((
                    "store or cancel a schedule in another's name",
                    format!("{subject}.cancelled"),
                    Some(marker),
                    Value::Null,
                ));
            }
        }
        for stream in &streams {
            for (subject, body) in [
                (format!("$JS.API.STREAM.DELETE.{stream}"), Value::Null),
                (format!("$JS.API.STREAM.PURGE.{stream}"), Value::Null),
                (
                    format!("$JS.API.STREAM.MSG.DELETE.{stream}"),
                    json!({ "seq": 1 }),
                ),
                (
                    format!("$JS.API.STREAM.UPDATE.{stream}"),
                    json!({ "name": stream, "subjects": ["_INBOX_ops.>"] }),
                ),
            ] {
                attempts.push((
                    "admin API: delete, purge, update streams, delete messages",
                    subject,
                    None,
                    body,
                ));
            }
        }
        for (_, c) in &consumers {
            attempts.push((
                "admin API: delete consumers",
                format!("$JS.API.CONSUMER.DELETE.{}.{}", c.stream, c.durable),
                None,
                Value::Null,
            ));
        }
        attempts.push((
            "admin API: delete consumers",
            format!(
                "$JS.API.CONSUMER.DELETE.{}.{}",
                eventhub::topology::ADVISORY_STREAM,
                eventhub::dlq::SWEEPER_DURABLE
            ),
            None,
            Value::Null,
        ));
        for other in names.iter().filter(|n| *n != me) {
            let capture = json!({ "subjects": [format!("{}.>", eventhub::client::service_inbox_prefix(other))], "storage": "memory" });
            let mut named = |name: String| {
                let mut body = capture.clone();
                body["name"] = json!(name);
                attempts.push((
                    "create a stream capturing another's inbox",
                    format!("$JS.API.STREAM.CREATE.{name}"),
                    None,
                    body,
                ));
            };
            named(format!("STEAL_{}", other.replace('-', "_")));
            for c in &mine {
                named(format!("KV_{}", c.idempotency_bucket()));
            }
        }
        for (subject, body) in [
            (
                format!("$JS.API.STREAM.MSG.GET.{}", eventhub::topology::DLQ_STREAM),
                json!({ "seq": 1 }),
            ),
            (
                format!("$JS.API.DIRECT.GET.{}", eventhub::topology::DLQ_STREAM),
                json!({ "seq": 1 }),
            ),
            (
                format!("$JS.API.CONSUMER.CREATE.{}", eventhub::topology::DLQ_STREAM),
                create(
                    eventhub::topology::DLQ_STREAM,
                    json!({ "filter_subject": "dlq.>", "ack_policy": "none" }),
                ),
            ),
        ] {
            attempts.push(("read others' dead letters", subject, None, body));
        }
        for (attack, subject, headers, body) in attempts {
            let outcome = a.request(&subject, headers, body).await;
            report.record(attack, me, &subject, outcome);
        }
    }
    let after = state(&ops).await;
    report.record(
        "server state unchanged after every attempt",
        "ops",
        "streams, messages, durables",
        if after == before {
            Outcome::Denied("identical".into())
        } else {
            Outcome::Leaked(format!("before {before:?}\nafter {after:?}"))
        },
    );

    // --- Known gaps: measured, not counted as leaks --------------------------------------------
    // ce-source is a header: permissions decide subjects, not what a publisher says it is.
    let (mut tried, mut stored) = (0, 0);
    for svc in &s.services.services {
        let Some(own) = svc.publishes.first() else {
            continue;
        };
        let a = attackers.iter().find(|a| a.name == svc.name).unwrap();
        let other = names.iter().find(|n| **n != svc.name).unwrap();
        let id = format!("forged-{}", uuid::Uuid::now_v7());
        let subject = own.subjects.last().unwrap();
        tried += 1;
        // Stored (a publish ack) is what counts; the payload does not matter.
        if let Outcome::Leaked(_) = a
            .request(
                subject,
                Some(event_headers(other, &id, &own.event_type)),
                json!({}),
            )
            .await
        {
            stored += 1;
        }
    }
    report.gap(
        "forge ce-source (own subject, another's name)",
        "not prevented by permissions: NATS does not tell a subscriber who published; needs \
         signed events (each service signs with its nkey, consumers verify)",
        tried,
        stored,
    );
    // A dead letter written in a durable's own namespace whose headers name another durable: the
    // SDK reads it as forged (its headers disagree with the subject it is stored under, which
    // the permissions pin) and an operator's replay refuses it.
    let attack = "forged dead letter, replayed by an operator into another's durable";
    for (service, c) in &consumers {
        let Some((_, target)) = theirs_of(&consumers, service, &s) else {
            continue;
        };
        let a = attackers.iter().find(|a| &a.name == service).unwrap();
        let id = format!("forged-{}", uuid::Uuid::now_v7());
        let (subject, body) = payload(&target.event_type, "forged");
        let mut h = event_headers(service, &id, &target.event_type);
        h.insert(headers::DLQ_REASON, "rejected");
        h.insert(headers::DLQ_STREAM, target.stream.as_str());
        h.insert(headers::DLQ_SEQUENCE, "1");
        h.insert(headers::DLQ_SUBJECT, subject.as_str());
        h.insert(headers::DLQ_CONSUMER, target.durable.as_str());
        let own_subject = c.filters[0].replace('*', "v1");
        let where_ = format!("dlq.{}.{own_subject}", c.durable);
        a.request(&where_, Some(h), body).await;
        let entries = ops.dead_letters().list(&Default::default()).await.unwrap();
        let outcome = match entries
            .iter()
            .find(|e| e.event_id.as_deref() == Some(id.as_str()))
        {
            None => Outcome::Dropped("not stored".into()),
            Some(e) => match ops.dead_letters().replay(e.id).await {
                Err(err) if err.kind() == eventhub::error::DeadLetterErrorKind::Corrupt => {
                    Outcome::Denied("replay refused: forged entry".into())
                }
                other => {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
                    let mut reached = false;
                    while let Ok(Some((_, got))) =
                        tokio::time::timeout_at(deadline, rx.recv()).await
                    {
                        if got == id {
                            reached = true;
                            break;
                        }
                    }
                    if reached {
                        Outcome::Leaked(format!("replayed into {}: {other:?}", target.durable))
                    } else {
                        Outcome::Dropped(format!("replay {other:?}, nothing delivered"))
                    }
                }
            },
        };
        report.record(attack, service, &where_, outcome);
    }
    // The metrics grant (STREAM.INFO of the DLQ) answers a subjects filter over every durable.
    let (mut tried, mut seen_counts) = (0, 0);
    for a in attackers
        .iter()
        .filter(|a| s.services.service(&a.name).is_some_and(|x| x.metrics))
    {
        tried += 1;
        let outcome = a
            .request(
                &format!("$JS.API.STREAM.INFO.{}", eventhub::topology::DLQ_STREAM),
                None,
                json!({ "subjects_filter": "dlq.>" }),
            )
            .await;
        if let Outcome::Leaked(text) = outcome
            && consumers
                .iter()
                .any(|(svc, c)| svc != &a.name && text.contains(&c.durable))
        {
            seen_counts += 1;
        }
    }
    report.gap(
        "count others' dead letters (metrics' STREAM.INFO on the DLQ)",
        "counts per durable and subject are visible, never content; needs the dlq-depth gauge \
         to read per-durable counts some other way (a filtered consumer's num_pending)",
        tried,
        seen_counts,
    );

    let (mut tried, mut written) = (0, 0);
    for a in attackers.iter().filter(|a| a.role == Role::Sweeper) {
        let (_, c) = &consumers[0];
        tried += 1;
        let subject = format!("dlq.{}.{}", c.durable, c.filters[0].replace('*', "v1"));
        let outcome = a
            .request(
                &subject,
                Some(event_headers(&a.name, "swept", &c.event_type)),
                json!({}),
            )
            .await;
        if let Outcome::Leaked(_) = outcome {
            written += 1;
        }
    }
    if let Some(g) = &s.services.gateway {
        let publishes = catalog_subjects
            .iter()
            .filter(|(ty, _, _)| speaks_for(&g.name, ty))
            .count();
        report.gap(
            "the gateway publishes for its services and reads every stream (by design)",
            "eventhub-gateway publishes the types of `gateway.publishes_for` as the calling \
             service after authenticating it, and follows every stream through ordered consumers \
             for WebSocket clients, filtering per caller; declared durables, acks, dead letters \
             and the admin API stay refused to it (the rows above), so guard its credentials \
             like an operator's",
            catalog_subjects.len(),
            publishes,
        );
    }
    report.gap(
        "the sweeper writes and reads any durable's events (by design)",
        "its job: it reads an exhausted event by sequence in any stream and writes its dead \
         letter under the durable that failed; it can do nothing else (no subscription, no \
         publish of events, no admin API: see the rows above), so guard its credentials like an \
         operator's",
        tried,
        written,
    );

    for h in handles {
        h.shutdown().await;
    }
    let leaked = report.print();
    assert_eq!(leaked, 0, "the attacks above leaked (see the table)");
    let total: usize = report
        .rows
        .iter()
        .filter(|(_, r)| r.gap.is_none())
        .map(|(_, r)| r.attempts)
        .sum();
    assert!(total > 500, "the suite attempted {total} attacks");
}

/// A consumer of another service, of a type `service` does not own, if any.
fn theirs_of<'a>(
    consumers: &'a [(String, Consumer)],
    service: &str,
    s: &Secured,
) -> Option<&'a (String, Consumer)> {
    consumers.iter().find(|(svc, c)| {
        svc != service
            && s.services
                .publisher_of(&c.event_type)
                .is_none_or(|p| p.name != service)
    })
}
