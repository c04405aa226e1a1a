//! Streams: their declarations (generated from a catalog's `streams.json`) and idempotent
//! provisioning that reports drift and conflicts.
//!
//! A stream captures exactly the subjects of the event versions of the catalogs that use it
//! (`events.user.created.v1`, `events.user.created.v2`…), never a wildcard: a publish to a
//! subject outside every catalog fails at the producer instead of being stored where no
//! consumer reads it.
//!
//! Catalogs can share a stream. One catalog *owns* it (creates it, sets its limits); others
//! declare it `external` and only add their subjects. Provisioning records in the stream's
//! metadata who owns it (`eventhub.owner`) and which subjects each other catalog added
//! (`eventhub.subjects.<catalog>`), so that no catalog ever removes a subject it did not add,
//! and a stream two catalogs both claim is reported as a conflict, not "fixed".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::{self, stream};

use crate::error::{ProvisionError, ProvisionErrorKind};

/// Retention policy of a stream. Work-queue retention is not offered: it deletes an event once
/// one consumer acks it, so a second service would never see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Keep events until the stream's limits (age, size) remove them.
    Limits,
    /// Keep events while some consumer still has to acknowledge them.
    Interest,
}

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// On disk; survives restarts.
    File,
    /// In memory; lost on restart.
    Memory,
}

/// What a full stream discards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// Drop the oldest events.
    Old,
    /// Refuse new events.
    New,
}

/// A declared stream. The generated `STREAMS` of a catalog holds one per entry of its
/// `streams.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpec {
    /// Stream name, e.g. `IDENTITY`.
    pub name: &'static str,
    /// What the stream holds.
    pub description: &'static str,
    /// Whether the catalog owns the stream (creates it and sets its limits), or adds its
    /// subjects to a stream another catalog owns (`"external": true`; the settings below are
    /// then not used).
    pub owned: bool,
    /// The subjects the catalog puts in it: one per event version, e.g.
    /// `events.user.created.v2`.
    pub subjects: &'static [&'static str],
    /// Retention policy.
    pub retention: Retention,
    /// Storage type.
    pub storage: Storage,
    /// How long events are kept (zero: forever).
    pub max_age: Duration,
    /// Number of replicas (3 in a cluster).
    pub replicas: usize,
    /// Window within which a repeated event id is dropped as a duplicate.
    pub duplicate_window: Duration,
    /// Largest accepted message, if limited below the server's `max_payload`.
    pub max_msg_size: Option<u64>,
    /// Largest total size of the stream, if limited.
    pub max_bytes: Option<u64>,
    /// What to discard when full.
    pub discard: Discard,
    /// Whether the stream holds message schedules (`allow_msg_schedules`, nats-server 2.12):
    /// what [`Publisher::publish_at`](crate::Publisher::publish_at) and its kin need. Its
    /// subjects then include [`schedule_subjects`](StreamSpec::schedule_subjects) (generated
    /// by the codegen), where the schedules wait. The server cannot turn it off again.
    pub allow_msg_schedules: bool,
    /// Whether the stream takes atomic batches (`allow_atomic`, nats-server 2.12): what
    /// [`EventGroup`](crate::publish::EventGroup) needs.
    pub allow_atomic: bool,
    /// Whether the stream honours a per-message TTL (`allow_msg_ttl`, nats-server 2.11): set
    /// when an event of the stream declares `x-ttl`.
    pub allow_msg_ttl: bool,
    /// How long the marker the server leaves when the last message of a subject expires or is
    /// removed stays (`subject_delete_marker_ttl`, nats-server 2.11; needs `allow_msg_ttl`).
    pub subject_delete_marker_ttl: Option<Duration>,
}

/// Name of the stream that holds dead letters.
pub const DLQ_STREAM: &str = "EVENTHUB_DLQ";
/// Subject prefix of dead letters: `dlq.<consumer>.<original subject>`.
pub const DLQ_PREFIX: &str = "dlq";
/// Name of the stream that captures JetStream's max-deliveries advisories, so that none is
/// missed while no sweeper runs.
pub const ADVISORY_STREAM: &str = "EVENTHUB_ADVISORIES";
/// Subject of JetStream's max-deliveries advisories (`…<stream>.<consumer>`).
pub const MAX_DELIVERIES_ADVISORY: &str = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES";

impl StreamSpec {
    /// The dead-letter stream: limits retention (never work-queue, so entries can be inspected
    /// without being consumed), file storage, kept for 90 days. Its one-hour duplicate window
    /// makes a failure written twice (by a consumer and by the sweeper) one entry.
    pub const DEAD_LETTERS: StreamSpec = StreamSpec {
        name: DLQ_STREAM,
        description: "eventhub dead letters: events a consumer could not handle, with why.",
        owned: true,
        subjects: &["dlq.>"],
        retention: Retention::Limits,
        storage: Storage::File,
        max_age: Duration::from_secs(90 * 86_400),
        replicas: 1,
        duplicate_window: Duration::from_secs(3600),
        max_msg_size: None,
        max_bytes: None,
        discard: Discard::Old,
        allow_msg_schedules: false,
        allow_atomic: false,
        allow_msg_ttl: false,
        subject_delete_marker_ttl: None,
    };

    /// The stream capturing max-deliveries advisories for the sweeper.
    pub const ADVISORIES: StreamSpec = StreamSpec {
        name: ADVISORY_STREAM,
        description: "eventhub: JetStream max-deliveries advisories, swept into the dead letters.",
        owned: true,
        subjects: &["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"],
        retention: Retention::Limits,
        storage: Storage::File,
        max_age: Duration::from_secs(7 * 86_400),
        replicas: 1,
        duplicate_window: Duration::from_secs(120),
        max_msg_size: None,
        max_bytes: None,
        discard: Discard::Old,
        allow_msg_schedules: false,
        allow_atomic: false,
        allow_msg_ttl: false,
        subject_delete_marker_ttl: None,
    };

    /// The JetStream configuration for this declaration.
    pub fn to_config(&self) -> stream::Config {
        stream::Config {
            name: self.name.to_string(),
            description: (!self.description.is_empty()).then(|| self.description.to_string()),
            subjects: self.subjects.iter().map(|s| s.to_string()).collect(),
            retention: match self.retention {
                Retention::Limits => stream::RetentionPolicy::Limits,
                Retention::Interest => stream::RetentionPolicy::Interest,
            },
            storage: match self.storage {
                Storage::File => stream::StorageType::File,
                Storage::Memory => stream::StorageType::Memory,
            },
            discard: match self.discard {
                Discard::Old => stream::DiscardPolicy::Old,
                Discard::New => stream::DiscardPolicy::New,
            },
            max_age: self.max_age,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            max_message_size: self
                .max_msg_size
                .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX)),
            max_bytes: self
                .max_bytes
                .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
            allow_direct: true,
            allow_message_schedules: self.allow_msg_schedules,
            allow_atomic_publish: self.allow_atomic,
            allow_message_ttl: self.allow_msg_ttl,
            subject_delete_marker_ttl: self.subject_delete_marker_ttl,
            ..Default::default()
        }
    }

    /// The subject pattern under which this stream's schedules wait:
    /// `schedules.<STREAM>.>` (each service's under `schedules.<STREAM>.<service>.>`: see
    /// [`schedule_subject`]).
    pub fn schedule_subjects(&self) -> String {
        format!("{SCHEDULE_PREFIX}.{}.>", self.name)
    }
}

/// Subject prefix of schedules: a schedule named `key` of service `svc` in stream `S` waits on
/// `schedules.S.svc.key` until the server publishes its event.
pub const SCHEDULE_PREFIX: &str = "schedules";

/// The subject of schedule `key` of `service` in `stream`: `schedules.<stream>.<service>.<key>`.
/// Under the generated permissions a service may publish only under its own name
/// (`schedules.<stream>.<service>.>`), so it can neither replace nor cancel another's schedule.
pub fn schedule_subject(stream: &str, service: &str, key: &str) -> String {
    format!("{SCHEDULE_PREFIX}.{stream}.{service}.{key}")
}

/// Where a stream's schedule namespace puts the service that stored a schedule: the service of
/// `schedules.<stream>.<service>.<key>`; `None` for any other subject (the subjects of eventhub
/// before the namespaces, `schedules.<stream>.<key>`, name no service).
pub fn schedule_owner(subject: &str) -> Option<&str> {
    let mut tokens = subject.split('.');
    let (Some(SCHEDULE_PREFIX), Some(_stream), Some(service), Some(_key), None) = (
        tokens.next(),
        tokens.next(),
        tokens.next(),
        tokens.next(),
        tokens.next(),
    ) else {
        return None;
    };
    Some(service)
}

/// The subject of the marker that cancels the schedule on `subject`: one token longer than any
/// schedule subject (so never one), within the namespace of the schedule's service.
pub(crate) fn cancel_marker_subject(subject: &str) -> String {
    match subject.split('.').count() {
        4.. => format!("{subject}.cancelled"),
        _ => format!("{subject}.cancelled.legacy"),
    }
}

/// A catalog's streams: what [`Client::provision`](crate::Client::provision) creates or
/// updates. Generated as `TOPOLOGY` next to a catalog's event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    /// The catalog's name (`catalog` in its `streams.json`): provisioning records which
    /// subjects of a shared stream belong to it.
    pub catalog: &'static str,
    /// Its streams.
    pub streams: &'static [StreamSpec],
}

/// The catalog name under which eventhub's own streams are provisioned.
pub(crate) const EVENTHUB_CATALOG: &str = "eventhub";
/// Stream metadata key: the catalog that owns the stream.
pub(crate) const OWNER_KEY: &str = "eventhub.owner";
/// Stream metadata key prefix: `eventhub.subjects.<catalog>` lists (comma-separated) the
/// subjects another catalog added to the stream.
pub(crate) const SUBJECTS_KEY_PREFIX: &str = "eventhub.subjects.";

/// How to provision.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProvisionOptions {
    /// The catalog whose streams these are (see [`Topology::catalog`]).
    pub catalog: String,
    /// The streams to provision; by default every declared stream plus eventhub's dead-letter
    /// and advisory streams (which are provisioned as eventhub's own).
    pub streams: Vec<StreamSpec>,
    /// Replicas for every stream, overriding the declarations (e.g. 3 in a cluster, 1 on a
    /// developer machine).
    pub replicas: Option<usize>,
    /// Only compare; change nothing (a plan).
    pub dry_run: bool,
}

impl ProvisionOptions {
    /// Sets the replicas of every stream (3 in a cluster), overriding the declarations.
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = Some(replicas);
        self
    }

    /// Only compares (a plan); changes nothing.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Also provisions `stream` (e.g. one of a catalog of tests or benchmarks).
    pub fn stream(mut self, stream: StreamSpec) -> Self {
        self.streams.push(stream);
        self
    }
}

impl ProvisionOptions {
    /// Provisions `topology`'s streams plus eventhub's dead-letter and advisory streams.
    pub fn new(topology: &Topology) -> Self {
        let mut streams = topology.streams.to_vec();
        streams.push(StreamSpec::DEAD_LETTERS);
        streams.push(StreamSpec::ADVISORIES);
        Self {
            catalog: topology.catalog.to_string(),
            streams,
            replicas: None,
            dry_run: false,
        }
    }
}

/// What provisioning did (or, in a dry run, would do) to one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamAction {
    /// The stream did not exist and was created.
    Created,
    /// The stream differed from its declaration and was updated.
    Updated,
    /// The stream matched its declaration.
    Unchanged,
    /// Dry run: the stream does not exist and would be created.
    WouldCreate,
    /// Dry run: the stream differs and would be updated.
    WouldUpdate,
    /// Left alone: another catalog owns the stream, or a subject is claimed by two catalogs,
    /// or an external stream does not exist yet ([`StreamReport::conflicts`] says which).
    Conflict,
}

impl fmt::Display for StreamAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamAction::Created => "created",
            StreamAction::Updated => "updated",
            StreamAction::Unchanged => "unchanged",
            StreamAction::WouldCreate => "would create",
            StreamAction::WouldUpdate => "would update",
            StreamAction::Conflict => "conflict",
        })
    }
}

/// One setting where the server's stream differs from its declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// The setting, e.g. `max_age`.
    pub field: &'static str,
    /// Its declared value.
    pub declared: String,
    /// Its value on the server before provisioning.
    pub actual: String,
}

/// The outcome for one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReport {
    /// Stream name.
    pub name: String,
    /// What happened.
    pub action: StreamAction,
    /// How the server's stream differed from the declaration (empty when created or unchanged).
    pub drift: Vec<Drift>,
    /// What provisioning left alone because another catalog has a say in it.
    pub conflicts: Vec<String>,
}

/// The outcome of provisioning every stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProvisionReport {
    /// One report per stream, in declaration order.
    pub streams: Vec<StreamReport>,
}

impl ProvisionReport {
    /// Whether any stream was (or would be) created or updated.
    pub fn changed(&self) -> bool {
        self.streams
            .iter()
            .any(|s| s.action != StreamAction::Unchanged)
    }

    /// Every conflict found, with its stream name.
    pub fn conflicts(&self) -> impl Iterator<Item = (&str, &str)> {
        self.streams.iter().flat_map(|s| {
            s.conflicts
                .iter()
                .map(move |c| (s.name.as_str(), c.as_str()))
        })
    }

    /// Every drift found, with its stream name.
    pub fn drift(&self) -> impl Iterator<Item = (&str, &Drift)> {
        self.streams
            .iter()
            .flat_map(|s| s.drift.iter().map(move |d| (s.name.as_str(), d)))
    }
}

impl fmt::Display for ProvisionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.streams {
            writeln!(f, "{:<22} {}", s.name, s.action)?;
            for d in &s.drift {
                writeln!(
                    f,
                    "{:<22}   drift: {} was {}, declared {}",
                    "", d.field, d.actual, d.declared
                )?;
            }
            for c in &s.conflicts {
                writeln!(f, "{:<22}   conflict: {c}", "")?;
            }
        }
        Ok(())
    }
}

/// Creates or updates every stream in `options`. Idempotent: a second run reports every stream
/// `Unchanged`.
pub(crate) async fn provision(
    js: &jetstream::Context,
    options: &ProvisionOptions,
) -> Result<ProvisionReport, ProvisionError> {
    let mut report = ProvisionReport::default();
    for spec in &options.streams {
        let catalog = if [DLQ_STREAM, ADVISORY_STREAM].contains(&spec.name) {
            EVENTHUB_CATALOG
        } else {
            options.catalog.as_str()
        };
        let one = if spec.owned {
            provision_owned(js, spec, catalog, options).await?
        } else {
            provision_external(js, spec, catalog, options.dry_run).await?
        };
        report.streams.push(one);
    }
    Ok(report)
}

/// The server's configuration of stream `name`, `None` if it does not exist.
async fn current(
    js: &jetstream::Context,
    name: &str,
) -> Result<Option<stream::Config>, ProvisionError> {
    match js.get_stream(name).await {
        Ok(s) => Ok(Some(s.cached_info().config.clone())),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(err)
                if err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            _ => Err(unreachable_err(name, e)),
        },
    }
}

/// The subjects each other catalog recorded in a stream's metadata.
fn guests(config: &stream::Config, except: &str) -> BTreeMap<String, BTreeSet<String>> {
    config
        .metadata
        .iter()
        .filter_map(|(k, v)| {
            let catalog = k.strip_prefix(SUBJECTS_KEY_PREFIX)?;
            (catalog != except).then(|| (catalog.to_string(), split_subjects(v)))
        })
        .collect()
}

fn split_subjects(v: &str) -> BTreeSet<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn report(name: &str, action: StreamAction) -> StreamReport {
    StreamReport {
        name: name.to_string(),
        action,
        drift: Vec::new(),
        conflicts: Vec::new(),
    }
}

async fn provision_owned(
    js: &jetstream::Context,
    spec: &StreamSpec,
    catalog: &str,
    options: &ProvisionOptions,
) -> Result<StreamReport, ProvisionError> {
    let mut wanted = spec.to_config();
    if let Some(r) = options.replicas {
        wanted.num_replicas = r;
    }
    wanted
        .metadata
        .insert(OWNER_KEY.to_string(), catalog.to_string());
    let name = wanted.name.clone();
    let dry_run = options.dry_run;
    let Some(current) = current(js, &name).await? else {
        if !dry_run {
            js.create_stream(wanted).await.map_err(|e| {
                ProvisionError::with_source(
                    ProvisionErrorKind::Rejected,
                    format!("creating stream {name} failed"),
                    e,
                )
            })?;
        }
        let action = if dry_run {
            StreamAction::WouldCreate
        } else {
            StreamAction::Created
        };
        return Ok(report(&name, action));
    };
    if let Some(owner) = current.metadata.get(OWNER_KEY)
        && owner != catalog
    {
        let mut r = report(&name, StreamAction::Conflict);
        r.conflicts.push(format!(
            "owned by catalog `{owner}`, and catalog `{catalog}` declares it as its own too: \
             declare it `\"external\": true` in one of them"
        ));
        return Ok(r);
    }
    // Subjects other catalogs added stay; so does what they recorded.
    let mut conflicts = Vec::new();
    let mut subjects: BTreeSet<String> = wanted.subjects.iter().cloned().collect();
    for (guest, theirs) in guests(&current, catalog) {
        for s in theirs {
            if !current.subjects.contains(&s) {
                continue;
            }
            if !subjects.insert(s.clone()) {
                conflicts.push(format!(
                    "subject `{s}` is declared by this catalog and by catalog `{guest}`"
                ));
            }
        }
        let key = format!("{SUBJECTS_KEY_PREFIX}{guest}");
        if let Some(v) = current.metadata.get(&key) {
            wanted.metadata.insert(key, v.clone());
        }
    }
    wanted.subjects = subjects.into_iter().collect();
    let mut drift = diff(&wanted, &current);
    if current.metadata.get(OWNER_KEY).map(String::as_str) != Some(catalog) {
        drift.push(Drift {
            field: "owner",
            declared: catalog.to_string(),
            actual: current
                .metadata
                .get(OWNER_KEY)
                .cloned()
                .unwrap_or_else(|| "(not recorded)".to_string()),
        });
    }
    if drift.is_empty() {
        let mut r = report(&name, StreamAction::Unchanged);
        r.conflicts = conflicts;
        return Ok(r);
    }
    if let Some(d) = drift.iter().find(|d| d.field == "storage") {
        return Err(ProvisionError::new(
            ProvisionErrorKind::Conflict,
            format!(
                "stream {name} uses {} storage on the server but {} is declared; JetStream cannot \
                 change storage in place: back the stream up, delete it and provision again",
                d.actual, d.declared
            ),
        ));
    }
    if !dry_run {
        let mut updated = current.clone();
        updated.description = wanted.description.clone();
        updated.subjects = wanted.subjects.clone();
        updated.retention = wanted.retention;
        updated.max_age = wanted.max_age;
        updated.num_replicas = wanted.num_replicas;
        updated.duplicate_window = wanted.duplicate_window;
        updated.max_message_size = wanted.max_message_size;
        updated.max_bytes = wanted.max_bytes;
        updated.discard = wanted.discard;
        updated.allow_direct = wanted.allow_direct;
        // Never turned off here: the server refuses to disable schedules, and a flag another
        // catalog's events rely on is not this one's to remove.
        updated.allow_message_schedules |= wanted.allow_message_schedules;
        updated.allow_atomic_publish |= wanted.allow_atomic_publish;
        updated.allow_message_ttl |= wanted.allow_message_ttl;
        if wanted.subject_delete_marker_ttl.is_some() {
            updated.subject_delete_marker_ttl = wanted.subject_delete_marker_ttl;
        }
        updated.metadata = wanted.metadata.clone();
        update(js, updated, &drift).await?;
    }
    Ok(StreamReport {
        name,
        action: if dry_run {
            StreamAction::WouldUpdate
        } else {
            StreamAction::Updated
        },
        drift,
        conflicts,
    })
}

/// Adds this catalog's subjects to a stream another catalog owns (and removes those it added
/// before and no longer declares); changes nothing else.
async fn provision_external(
    js: &jetstream::Context,
    spec: &StreamSpec,
    catalog: &str,
    dry_run: bool,
) -> Result<StreamReport, ProvisionError> {
    let name = spec.name;
    let Some(current) = current(js, name).await? else {
        let mut r = report(name, StreamAction::Conflict);
        r.conflicts.push(
            "does not exist: another catalog owns it (declared `external` here) and must \
             provision it first"
                .to_string(),
        );
        return Ok(r);
    };
    let key = format!("{SUBJECTS_KEY_PREFIX}{catalog}");
    let before = current
        .metadata
        .get(&key)
        .map(|v| split_subjects(v))
        .unwrap_or_default();
    let mut conflicts = Vec::new();
    let mut mine = BTreeSet::new();
    for s in spec.subjects {
        let s = s.to_string();
        if current.subjects.contains(&s) && !before.contains(&s) {
            conflicts.push(format!(
                "subject `{s}` is already in the stream, added by another catalog; left to it"
            ));
        } else {
            mine.insert(s);
        }
    }
    let mut subjects: Vec<String> = current
        .subjects
        .iter()
        .filter(|s| !before.contains(*s) || mine.contains(*s))
        .cloned()
        .collect();
    for s in &mine {
        if !subjects.contains(s) {
            subjects.push(s.clone());
        }
    }
    let recorded = mine.iter().cloned().collect::<Vec<_>>().join(",");
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    let mut drift = Vec::new();
    if set(&subjects) != set(&current.subjects) {
        drift.push(Drift {
            field: "subjects",
            declared: format!("{:?}", set(&subjects)),
            actual: format!("{:?}", set(&current.subjects)),
        });
    }
    if current.metadata.get(&key).map(String::as_str) != Some(recorded.as_str()) && !mine.is_empty()
        || (mine.is_empty() && current.metadata.contains_key(&key))
    {
        drift.push(Drift {
            field: "catalog subjects",
            declared: recorded.clone(),
            actual: current.metadata.get(&key).cloned().unwrap_or_default(),
        });
    }
    let action = match (drift.is_empty(), dry_run) {
        (true, _) if !conflicts.is_empty() => StreamAction::Conflict,
        (true, _) => StreamAction::Unchanged,
        (false, true) => StreamAction::WouldUpdate,
        (false, false) => {
            let mut updated = current.clone();
            updated.subjects = subjects;
            if mine.is_empty() {
                updated.metadata.remove(&key);
            } else {
                updated.metadata.insert(key, recorded);
            }
            update(js, updated, &drift).await?;
            StreamAction::Updated
        }
    };
    Ok(StreamReport {
        name: name.to_string(),
        action,
        drift,
        conflicts,
    })
}

async fn update(
    js: &jetstream::Context,
    config: stream::Config,
    drift: &[Drift],
) -> Result<(), ProvisionError> {
    let name = config.name.clone();
    js.update_stream(config).await.map_err(|e| {
        ProvisionError::with_source(
            ProvisionErrorKind::Rejected,
            format!(
                "updating stream {name} failed ({})",
                drift.iter().map(|d| d.field).collect::<Vec<_>>().join(", ")
            ),
            e,
        )
    })?;
    Ok(())
}

fn unreachable_err(
    name: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> ProvisionError {
    ProvisionError::with_source(
        ProvisionErrorKind::Unreachable,
        format!("could not read stream {name} from the server"),
        e,
    )
}

/// The declared settings that differ on the server.
fn diff(wanted: &stream::Config, actual: &stream::Config) -> Vec<Drift> {
    let mut out = Vec::new();
    let mut check = |field: &'static str, declared: String, actual: String| {
        if declared != actual {
            out.push(Drift {
                field,
                declared,
                actual,
            });
        }
    };
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    check(
        "subjects",
        format!("{:?}", set(&wanted.subjects)),
        format!("{:?}", set(&actual.subjects)),
    );
    check(
        "retention",
        format!("{:?}", wanted.retention),
        format!("{:?}", actual.retention),
    );
    check(
        "storage",
        format!("{:?}", wanted.storage),
        format!("{:?}", actual.storage),
    );
    check(
        "max_age",
        format!("{:?}", wanted.max_age),
        format!("{:?}", actual.max_age),
    );
    check(
        "replicas",
        wanted.num_replicas.max(1).to_string(),
        actual.num_replicas.max(1).to_string(),
    );
    check(
        "duplicate_window",
        format!("{:?}", wanted.duplicate_window),
        format!("{:?}", actual.duplicate_window),
    );
    check(
        "max_msg_size",
        wanted.max_message_size.to_string(),
        actual.max_message_size.to_string(),
    );
    check(
        "max_bytes",
        wanted.max_bytes.to_string(),
        actual.max_bytes.to_string(),
    );
    check(
        "discard",
        format!("{:?}", wanted.discard),
        format!("{:?}", actual.discard),
    );
    check(
        "description",
        format!("{:?}", wanted.description.as_deref().unwrap_or("")),
        format!("{:?}", actual.description.as_deref().unwrap_or("")),
    );
    check(
        "allow_direct",
        wanted.allow_direct.to_string(),
        actual.allow_direct.to_string(),
    );
    if wanted.subject_delete_marker_ttl.is_some() {
        check(
            "subject_delete_marker_ttl",
            format!("{:?}", wanted.subject_delete_marker_ttl),
            format!("{:?}", actual.subject_delete_marker_ttl),
        );
    }
    // Flags are only ever turned on (see provision_owned): one on the server and not declared
    // is no drift.
    let mut enabled = |field: &'static str, declared: bool, actual: bool| {
        if declared && !actual {
            out.push(Drift {
                field,
                declared: "true".to_string(),
                actual: "false".to_string(),
            });
        }
    };
    enabled(
        "allow_msg_schedules",
        wanted.allow_message_schedules,
        actual.allow_message_schedules,
    );
    enabled(
        "allow_atomic",
        wanted.allow_atomic_publish,
        actual.allow_atomic_publish,
    );
    enabled(
        "allow_msg_ttl",
        wanted.allow_message_ttl,
        actual.allow_message_ttl,
    );
    out
}

#[cfg(test)]
mod schedule_subject_tests {
    use super::*;

    #[test]
    fn schedules_wait_in_their_services_namespace_and_markers_never_collide() {
        let subject = schedule_subject("ORDERS", "shop", "daily");
        assert_eq!(subject, "schedules.ORDERS.shop.daily");
        assert_eq!(schedule_owner(&subject), Some("shop"));
        assert_eq!(schedule_owner("schedules.ORDERS.daily"), None);
        assert_eq!(
            schedule_owner("schedules.ORDERS.shop.daily.cancelled"),
            None
        );
        assert_eq!(schedule_owner("events.ORDERS.shop.daily"), None);
        assert_eq!(
            cancel_marker_subject(&subject),
            "schedules.ORDERS.shop.daily.cancelled"
        );
        // Five tokens: never a schedule subject (three or four).
        assert_eq!(
            cancel_marker_subject("schedules.ORDERS.daily"),
            "schedules.ORDERS.daily.cancelled.legacy"
        );
    }
}
