//! What a declaration of services says, once read and checked: plain data.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The account that holds the event system (JetStream enabled).
pub const ACCOUNT: &str = "EVENTS";
/// The system account (server monitoring) and its one user.
pub const SYSTEM_ACCOUNT: &str = "SYS";
/// The user of [`SYSTEM_ACCOUNT`].
pub const SYSTEM_USER: &str = "sys";
/// The stream of dead letters (`dlq.<durable>.<original subject>`).
pub const DLQ_STREAM: &str = "EVENTHUB_DLQ";
/// The stream capturing JetStream's max-deliveries advisories for the sweeper.
pub const ADVISORY_STREAM: &str = "EVENTHUB_ADVISORIES";
/// The sweeper's durable consumer on [`ADVISORY_STREAM`].
pub const SWEEPER_DURABLE: &str = "eventhub_sweeper";
/// Prefix of the key-value bucket of an idempotent consumer: `EVENTHUB_IDEMPOTENCY_<durable>`.
pub const IDEMPOTENCY_PREFIX: &str = "EVENTHUB_IDEMPOTENCY_";

/// A validated declaration of services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services {
    /// The file as shown in messages (`schemas/services.json`).
    pub file: PathBuf,
    /// What the declaration is about.
    pub description: Option<String>,
    /// Users that may do everything in [`ACCOUNT`]: the operators' CLI, provisioning.
    pub operators: Vec<String>,
    /// The user the SDK's sweeper runs as, if it has its own (else an operator runs it).
    pub sweeper: Option<String>,
    /// The HTTP gateway's user, if declared.
    pub gateway: Option<Gateway>,
    /// The services, in declaration order.
    pub services: Vec<Service>,
    /// Declared nkey public keys by user (several during a rotation).
    pub nkeys: BTreeMap<String, Vec<String>>,
    /// Every stream of the catalog (the sweeper reads them all).
    pub streams: Vec<String>,
}

/// One service: a user named like it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The service's name: its NATS user, its `ce-source`, the prefix of its durables.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// The event types it owns.
    pub publishes: Vec<Published>,
    /// Its durable consumers.
    pub consumes: Vec<Consumer>,
    /// The sagas it runs (eventhub-patterns).
    pub sagas: Vec<Saga>,
    /// The event-sourced aggregate types it owns (eventhub-patterns' `EventStore`).
    pub aggregates: Vec<Aggregate>,
    /// The request types it answers (eventhub-patterns' `RequestExt::respond`).
    pub responds: Vec<RequestType>,
    /// The request types it sends (`RequestExt::request`).
    pub requests: Vec<RequestType>,
    /// May run `Client::health` (stream names and its consumers' state).
    pub health: bool,
    /// May render the metrics gauges (its consumers' state and dead-letter counts).
    pub metrics: bool,
}

/// An event type a service publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// `user.created`
    pub event_type: String,
    /// The stream that stores it.
    pub stream: String,
    /// Whether that stream holds message schedules: the service then schedules its events
    /// under `schedules.<stream>.<service>.>`.
    pub schedules: bool,
    /// The subject of every version in the catalog (`events.user.created.v1`, …).
    pub subjects: Vec<String>,
}

/// A request type a service answers or sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestType {
    /// `user.lookup`
    pub request_type: String,
    /// The subject of every version in the catalog (`rpc.user.lookup.v1`, …).
    pub subjects: Vec<String>,
}

/// A durable consumer of one event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// `user.created`
    pub event_type: String,
    /// The durable's name.
    pub durable: String,
    /// The stream it reads.
    pub stream: String,
    /// The versions it may filter on; `None`: the whole family.
    pub versions: Option<Vec<u32>>,
    /// The filter subjects it may create the durable with: the family wildcard
    /// (`events.user.created.*`, which the SDK uses for a family enum) when no versions are
    /// given, else one subject per version.
    pub filters: Vec<String>,
    /// The window of its idempotency bucket, if the consumer is idempotent.
    pub idempotency: Option<Duration>,
}

impl Consumer {
    /// Its key-value bucket, `EVENTHUB_IDEMPOTENCY_<durable>` (used only when idempotent).
    pub fn idempotency_bucket(&self) -> String {
        format!("{IDEMPOTENCY_PREFIX}{}", self.durable)
    }
}

/// A saga a service runs (eventhub-patterns' `saga::start`): its durables, its bucket and its
/// timer stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saga {
    /// Its name (`Saga::NAME`): lowercase letters, digits and `_`.
    pub name: String,
    /// The event types it reacts to.
    pub inputs: Vec<String>,
    /// The stream of its inputs (one for all of them).
    pub stream: String,
    /// The subject of every version of every input: its durable's filters.
    pub filters: Vec<String>,
}

impl Saga {
    /// `SAGA_<NAME>`: its key-value bucket (instances) and its stream (timers).
    pub fn store(&self) -> String {
        format!("SAGA_{}", self.name.to_ascii_uppercase())
    }

    /// `saga_<name>`: its durable on the input stream.
    pub fn durable(&self) -> String {
        format!("saga_{}", self.name)
    }

    /// `saga_<name>_timeouts`: its durable on its own stream.
    pub fn timeouts_durable(&self) -> String {
        format!("saga_{}_timeouts", self.name)
    }
}

/// An event-sourced aggregate type a service owns (eventhub-patterns' `EventStore`): its
/// stream, its subjects and its snapshot bucket, which only the owner may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// `Aggregate::TYPE`: lowercase letters, digits, `_` and `-` (`account`).
    pub aggregate_type: String,
}

impl Aggregate {
    /// `ES_<TYPE>` (`-` as `_`): its stream.
    pub fn stream(&self) -> String {
        format!(
            "ES_{}",
            self.aggregate_type.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// `es.<type>.*`: one subject per aggregate, the id as last token.
    pub fn subjects(&self) -> String {
        format!("es.{}.*", self.aggregate_type)
    }

    /// `ES_SNAPSHOTS_<TYPE>`: its snapshot bucket.
    pub fn snapshot_bucket(&self) -> String {
        format!("ES_SNAPSHOTS_{}", &self.stream()[3..])
    }
}

/// The HTTP gateway: publishes events on behalf of declared services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// Its user.
    pub name: String,
    /// The services whose events it may publish.
    pub publishes_for: Vec<String>,
}

impl Services {
    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The services that sign their events: those with declared nkeys (their public keys, the
    /// keys they sign with; see the sdk's `wire::signing`), in declaration order.
    pub fn signing_keys(&self) -> Vec<(&str, &[String])> {
        self.services
            .iter()
            .filter_map(|s| {
                self.nkeys
                    .get(&s.name)
                    .map(|keys| (s.name.as_str(), keys.as_slice()))
            })
            .collect()
    }

    /// The service that answers `request_type`.
    pub fn responder_of(&self, request_type: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.responds.iter().any(|r| r.request_type == request_type))
    }

    /// The service that owns `event_type`.
    pub fn publisher_of(&self, event_type: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.publishes.iter().any(|p| p.event_type == event_type))
    }
}

/// The default durable name of `service` consuming `event_type`, as the SDK names it:
/// `payments__user_created`.
pub fn default_durable(service: &str, event_type: &str) -> String {
    format!("{service}__{}", event_type.replace(['.', '-'], "_"))
}

/// The inbox prefix of a service's connections, as the SDK sets it: `_INBOX_<service>`. Its
/// user may subscribe only below it.
pub fn inbox_prefix(service: &str) -> String {
    format!("_INBOX_{service}")
}

/// The environment variable holding a user's password: `EVENTHUB_<USER>_PASSWORD` (upper case,
/// `-` as `_`), as the SDK reads it.
pub fn password_var(user: &str) -> String {
    format!(
        "EVENTHUB_{}_PASSWORD",
        user.to_ascii_uppercase().replace('-', "_")
    )
}
