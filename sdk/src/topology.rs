//! Streams: their declarations (generated from `schemas/streams.json`) and idempotent
//! provisioning that reports drift.

use std::collections::BTreeSet;
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

/// A declared stream. The generated [`events::STREAMS`](crate::events::STREAMS) holds one per
/// entry of `schemas/streams.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpec {
    /// Stream name, e.g. `IDENTITY`.
    pub name: &'static str,
    /// What the stream holds.
    pub description: &'static str,
    /// Subjects it captures, e.g. `events.user.>`.
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
        subjects: &["dlq.>"],
        retention: Retention::Limits,
        storage: Storage::File,
        max_age: Duration::from_secs(90 * 86_400),
        replicas: 1,
        duplicate_window: Duration::from_secs(3600),
        max_msg_size: None,
        max_bytes: None,
        discard: Discard::Old,
    };

    /// The stream capturing max-deliveries advisories for the sweeper.
    pub const ADVISORIES: StreamSpec = StreamSpec {
        name: ADVISORY_STREAM,
        description: "eventhub: JetStream max-deliveries advisories, swept into the dead letters.",
        subjects: &["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"],
        retention: Retention::Limits,
        storage: Storage::File,
        max_age: Duration::from_secs(7 * 86_400),
        replicas: 1,
        duplicate_window: Duration::from_secs(120),
        max_msg_size: None,
        max_bytes: None,
        discard: Discard::Old,
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
            ..Default::default()
        }
    }
}

/// How to provision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionOptions {
    /// The streams to provision; by default every declared stream plus eventhub's dead-letter
    /// and advisory streams.
    pub streams: Vec<StreamSpec>,
    /// Replicas for every stream, overriding the declarations (e.g. 3 in a cluster, 1 on a
    /// developer machine).
    pub replicas: Option<usize>,
    /// Only compare; change nothing (a plan).
    pub dry_run: bool,
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        let mut streams = crate::events::STREAMS.to_vec();
        streams.push(StreamSpec::DEAD_LETTERS);
        streams.push(StreamSpec::ADVISORIES);
        Self {
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
}

impl fmt::Display for StreamAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamAction::Created => "created",
            StreamAction::Updated => "updated",
            StreamAction::Unchanged => "unchanged",
            StreamAction::WouldCreate => "would create",
            StreamAction::WouldUpdate => "would update",
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
        let mut wanted = spec.to_config();
        if let Some(r) = options.replicas {
            wanted.num_replicas = r;
        }
        report
            .streams
            .push(provision_one(js, wanted, options.dry_run).await?);
    }
    Ok(report)
}

async fn provision_one(
    js: &jetstream::Context,
    wanted: stream::Config,
    dry_run: bool,
) -> Result<StreamReport, ProvisionError> {
    let name = wanted.name.clone();
    let current = match js.get_stream(&name).await {
        Ok(s) => Some(s.cached_info().config.clone()),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(err)
                if err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                None
            }
            _ => return Err(unreachable_err(&name, e)),
        },
    };
    let Some(current) = current else {
        if !dry_run {
            js.create_stream(wanted).await.map_err(|e| {
                ProvisionError::with_source(
                    ProvisionErrorKind::Rejected,
                    format!("creating stream {name} failed"),
                    e,
                )
            })?;
        }
        return Ok(StreamReport {
            name,
            action: if dry_run {
                StreamAction::WouldCreate
            } else {
                StreamAction::Created
            },
            drift: Vec::new(),
        });
    };
    let drift = diff(&wanted, &current);
    if drift.is_empty() {
        return Ok(StreamReport {
            name,
            action: StreamAction::Unchanged,
            drift,
        });
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
        js.update_stream(updated).await.map_err(|e| {
            ProvisionError::with_source(
                ProvisionErrorKind::Rejected,
                format!(
                    "updating stream {name} failed ({})",
                    drift.iter().map(|d| d.field).collect::<Vec<_>>().join(", ")
                ),
                e,
            )
        })?;
    }
    Ok(StreamReport {
        name,
        action: if dry_run {
            StreamAction::WouldUpdate
        } else {
            StreamAction::Updated
        },
        drift,
    })
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
    out
}
