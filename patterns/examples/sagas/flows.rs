//! Seed 004's two sagas, and the services around them (shared by `examples/sagas` and
//! `tests/seed_sagas.rs`).
//!
//! - [`Registration`]: a new user (`user.created`) gets a profile, default preferences, a welcome
//!   email, and is counted by analytics. A step that fails or does not finish in time is
//!   compensated: `onboarding.cancelled` makes the profile, preferences and auth services undo
//!   what they did.
//! - [`GdprErasure`]: a GDPR erasure request (`user.deleted`, reason `gdpr_erasure`) is done when
//!   every service that holds user data has confirmed; after the deadline the saga escalates
//!   (`erasure.escalated`, status `failed`) so that a person follows up.
//!
//! Both correlate by the payload's `user_id` (every input carries it), not by the producer's
//! correlation id, and take every time they emit from their inputs: a step repeated after a
//! crash must emit the same events to be dropped as a duplicate.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eventhub::{Client, ConnectOptions, ConsumerHandle, ConsumerOptions, Envelope, Upcasted};
use eventhub::{Consumable, Event};
use eventhub_catalog::events::{erasure, onboarding, user};
use eventhub_patterns::Recorded;
use eventhub_patterns::saga::{Saga, SagaOptions, SagaStatus, Step, StepError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The services that hold user data and must confirm an erasure.
pub const ERASING_SERVICES: [&str; 5] = [
    "profile",
    "preferences",
    "notifications",
    "payments",
    "analytics",
];

fn make<E: DeserializeOwned>(value: serde_json::Value) -> Result<E, StepError> {
    serde_json::from_value(value).map_err(|e| StepError(format!("building an event: {e}")))
}

fn decode<E: Consumable>(event: &Recorded) -> Result<E, StepError> {
    E::decode(event.version, &event.raw()).map_err(|e| StepError(e.to_string()))
}

/// The `user_id` of an input: the saga instance.
fn user_id(event: &Recorded) -> Option<String> {
    #[derive(Deserialize)]
    struct HasUser {
        user_id: String,
    }
    serde_json::from_slice::<HasUser>(&event.payload)
        .ok()
        .map(|h| h.user_id)
}

fn emitted(e: eventhub_patterns::EncodeError) -> StepError {
    StepError(e.to_string())
}

/// Where a registration is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// No `user.created` yet.
    #[default]
    New,
    /// Waiting for the profile service.
    Profile,
    /// Waiting for the preferences service.
    Preferences,
    /// Waiting for the notifications service.
    WelcomeEmail,
    /// Completed (analytics got `onboarding.completed`).
    Done,
    /// Compensated.
    Cancelled,
}

impl Stage {
    /// The timeout token and the `onboarding.cancelled` step of a waiting stage.
    fn step(self) -> Option<&'static str> {
        match self {
            Stage::Profile => Some("profile"),
            Stage::Preferences => Some("preferences"),
            Stage::WelcomeEmail => Some("welcome_email"),
            _ => None,
        }
    }
}

/// The registration saga's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistrationState {
    pub user_id: String,
    pub locale: String,
    pub referral_code: Option<String>,
    pub registered_at: Option<DateTime<Utc>>,
    pub stage: Stage,
    /// When the current step began (the time of the input that began it).
    pub since: Option<DateTime<Utc>>,
}

/// User Registration: profile → default preferences → welcome email → analytics.
#[derive(Debug, Clone)]
pub struct Registration {
    /// How long each step may take.
    pub step_timeout: Duration,
}

impl Registration {
    /// Its inputs, all in stream IDENTITY.
    pub fn options() -> SagaOptions {
        SagaOptions::new(
            user::CreatedV2::STREAM,
            [
                "events.user.created.*",
                onboarding::ProfileCreatedV1::SUBJECT,
                onboarding::PreferencesSetV1::SUBJECT,
                onboarding::WelcomeSentV1::SUBJECT,
                onboarding::WelcomeFailedV1::SUBJECT,
            ],
        )
    }

    fn next(
        &self,
        mut state: RegistrationState,
        stage: Stage,
        at: DateTime<Utc>,
    ) -> Step<RegistrationState> {
        state.stage = stage;
        state.since = Some(at);
        let token = stage.step().expect("a waiting stage");
        Step::running(state).timeout(self.step_timeout, token)
    }

    fn cancel(
        state: &RegistrationState,
        reason: &str,
        detail: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Step<RegistrationState>, StepError> {
        let step = state.stage.step().unwrap_or("profile");
        let mut cancelled = serde_json::json!({
            "user_id": state.user_id, "step": step, "reason": reason, "cancelled_at": at,
        });
        if let Some(detail) = detail {
            cancelled["detail"] = detail.chars().take(500).collect::<String>().into();
        }
        let cancelled: onboarding::CancelledV1 = make(cancelled)?;
        let mut state = state.clone();
        state.stage = Stage::Cancelled;
        Step::finished(state, SagaStatus::Compensated)
            .emit(&cancelled)
            .map_err(emitted)
    }
}

impl Saga for Registration {
    const NAME: &'static str = "registration";
    type State = RegistrationState;

    fn correlate(&self, event: &Recorded) -> Option<String> {
        user_id(event)
    }

    fn on_event(
        &self,
        state: &RegistrationState,
        event: &Recorded,
    ) -> Result<Step<RegistrationState>, StepError> {
        let at = event.time;
        match (event.event_type.as_str(), state.stage) {
            ("user.created", Stage::New) => {
                // v1 sign-ups are upcast (the catalog's `From<CreatedV1> for CreatedV2`).
                let created =
                    Upcasted::<user::Created, user::CreatedV2>::decode(event.version, &event.raw())
                        .map_err(|e| StepError(e.to_string()))?
                        .into_inner();
                let state = RegistrationState {
                    user_id: created.user_id.to_string(),
                    locale: created.locale.to_string(),
                    referral_code: created.referral_code.clone(),
                    registered_at: Some(created.created_at),
                    ..Default::default()
                };
                Ok(self.next(state, Stage::Profile, at))
            }
            ("onboarding.profile-created", Stage::Profile) => {
                decode::<onboarding::ProfileCreatedV1>(event)?;
                let ask: onboarding::PreferencesRequestedV1 = make(serde_json::json!({
                    "user_id": state.user_id, "locale": state.locale, "newsletter": false,
                    "requested_at": at,
                }))?;
                self.next(state.clone(), Stage::Preferences, at)
                    .emit(&ask)
                    .map_err(emitted)
            }
            ("onboarding.preferences-set", Stage::Preferences) => {
                decode::<onboarding::PreferencesSetV1>(event)?;
                let ask: onboarding::WelcomeRequestedV1 = make(serde_json::json!({
                    "user_id": state.user_id, "locale": state.locale, "requested_at": at,
                }))?;
                self.next(state.clone(), Stage::WelcomeEmail, at)
                    .emit(&ask)
                    .map_err(emitted)
            }
            ("onboarding.welcome-sent", Stage::WelcomeEmail) => {
                decode::<onboarding::WelcomeSentV1>(event)?;
                let mut done = serde_json::json!({
                    "user_id": state.user_id, "locale": state.locale,
                    "registered_at": state.registered_at, "completed_at": at,
                });
                if let Some(code) = &state.referral_code {
                    done["referral_code"] = code.as_str().into();
                }
                let done: onboarding::CompletedV1 = make(done)?;
                let mut state = state.clone();
                state.stage = Stage::Done;
                Step::finished(state, SagaStatus::Completed)
                    .emit(&done)
                    .map_err(emitted)
            }
            ("onboarding.welcome-failed", Stage::WelcomeEmail) => {
                let failed = decode::<onboarding::WelcomeFailedV1>(event)?;
                Self::cancel(state, "failed", Some(&failed.reason), at)
            }
            // Anything else (a repeat, a step out of order, no instance) changes nothing.
            _ => Ok(Step::ignore()),
        }
    }

    fn on_timeout(
        &self,
        state: &RegistrationState,
        token: &str,
    ) -> Result<Step<RegistrationState>, StepError> {
        if state.stage.step() != Some(token) {
            return Ok(Step::ignore());
        }
        // The deadline, not the clock: a repeat of this step emits the same event.
        let at = state.since.unwrap_or_default()
            + chrono::Duration::from_std(self.step_timeout).unwrap_or_default();
        Self::cancel(state, "timeout", None, at)
    }
}

/// The GDPR deletion saga's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErasureState {
    pub user_id: String,
    /// When the erasure was requested (`None`: no request yet).
    pub requested_at: Option<DateTime<Utc>>,
    /// The services that confirmed.
    pub confirmed: BTreeSet<String>,
    /// Records erased, over all services.
    pub records: u64,
}

/// GDPR User Deletion: every service in [`ERASING_SERVICES`] confirms, or the saga escalates
/// after `deadline`.
#[derive(Debug, Clone)]
pub struct GdprErasure {
    /// How long the services have.
    pub deadline: Duration,
}

impl GdprErasure {
    /// Its inputs, all in stream IDENTITY.
    pub fn options() -> SagaOptions {
        SagaOptions::new(
            user::DeletedV1::STREAM,
            [
                user::DeletedV1::SUBJECT,
                erasure::ProfileConfirmedV1::SUBJECT,
                erasure::PreferencesConfirmedV1::SUBJECT,
                erasure::NotificationsConfirmedV1::SUBJECT,
                erasure::PaymentsConfirmedV1::SUBJECT,
                erasure::AnalyticsConfirmedV1::SUBJECT,
            ],
        )
    }
}

impl Saga for GdprErasure {
    const NAME: &'static str = "gdpr_erasure";
    type State = ErasureState;

    fn correlate(&self, event: &Recorded) -> Option<String> {
        user_id(event)
    }

    fn on_event(
        &self,
        state: &ErasureState,
        event: &Recorded,
    ) -> Result<Step<ErasureState>, StepError> {
        if event.event_type == "user.deleted" {
            let deleted = decode::<user::DeletedV1>(event)?;
            if state.requested_at.is_some() || deleted.reason != user::DeletedV1Reason::GdprErasure
            {
                return Ok(Step::ignore());
            }
            let state = ErasureState {
                user_id: deleted.user_id.to_string(),
                requested_at: Some(event.time),
                ..Default::default()
            };
            return Ok(Step::running(state).timeout(self.deadline, "erasure"));
        }
        // `erasure.<service>-confirmed`: the type comes from the subject, which only that
        // service may publish to, so the service named in it is the one that confirmed.
        let Some(service) = event
            .event_type
            .strip_prefix("erasure.")
            .and_then(|s| s.strip_suffix("-confirmed"))
        else {
            return Ok(Step::ignore());
        };
        if state.requested_at.is_none() || state.confirmed.contains(service) {
            return Ok(Step::ignore());
        }
        #[derive(Deserialize)]
        struct Confirmation {
            records: u64,
        }
        let c: Confirmation = serde_json::from_slice(&event.payload)
            .map_err(|e| StepError(format!("a confirmation without records: {e}")))?;
        let mut state = state.clone();
        state.confirmed.insert(service.to_string());
        state.records += c.records;
        if ERASING_SERVICES
            .iter()
            .all(|s| state.confirmed.contains(*s))
        {
            let done: erasure::CompletedV1 = make(serde_json::json!({
                "user_id": state.user_id, "services": state.confirmed,
                "requested_at": state.requested_at, "completed_at": event.time,
            }))?;
            return Step::finished(state, SagaStatus::Completed)
                .emit(&done)
                .map_err(emitted);
        }
        Ok(Step::running(state))
    }

    fn on_timeout(
        &self,
        state: &ErasureState,
        _token: &str,
    ) -> Result<Step<ErasureState>, StepError> {
        let missing: Vec<&str> = ERASING_SERVICES
            .iter()
            .copied()
            .filter(|s| !state.confirmed.contains(*s))
            .collect();
        let requested = state.requested_at.unwrap_or_default();
        let escalated: erasure::EscalatedV1 = make(serde_json::json!({
            "user_id": state.user_id, "confirmed": state.confirmed, "missing": missing,
            "requested_at": requested,
            "escalated_at": requested + chrono::Duration::from_std(self.deadline).unwrap_or_default(),
        }))?;
        // Failed: it can neither complete nor undo an erasure; a person takes over.
        Step::finished(state.clone(), SagaStatus::Failed)
            .emit(&escalated)
            .map_err(emitted)
    }
}

/// How the simulated services behave, by user id.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Users whose welcome email bounces.
    pub bounce: BTreeSet<String>,
    /// Users the preferences service never answers for (it is down for them).
    pub preferences_silent: BTreeSet<String>,
    /// Users whose erasure the analytics service never confirms.
    pub analytics_silent: BTreeSet<String>,
}

/// A line of what a simulated service did, e.g. `profile: deleted the profile of <user>`.
pub type Log = mpsc::UnboundedSender<String>;

async fn connect(url: &str, service: &str) -> anyhow::Result<Client> {
    Ok(Client::connect(ConnectOptions::new(service).url(url)).await?)
}

fn options() -> ConsumerOptions {
    ConsumerOptions::default().fetch_expires(Duration::from_millis(500))
}

/// Starts `service`'s durable consumer of `E`: `handler` returns what to publish (if anything)
/// and a line for the log.
async fn react<E, R, F>(client: &Client, log: &Log, handler: F) -> anyhow::Result<ConsumerHandle>
where
    E: Consumable + Send + Sync + 'static,
    R: Event + Send + Sync + 'static,
    F: Fn(&E) -> Option<(Option<R>, String)> + Send + Sync + 'static,
{
    let log = log.clone();
    let handler = std::sync::Arc::new(handler);
    Ok(client
        .consumer::<E>(options())
        .await?
        .spawn(move |env: Envelope<E>| {
            let (log, handler) = (log.clone(), handler.clone());
            async move {
                if let Some((reply, line)) = handler(env.event()) {
                    if let Some(reply) = reply {
                        env.publisher().publish(&reply).await?;
                    }
                    let _ = log.send(line);
                }
                Ok(())
            }
        }))
}

fn event<E: DeserializeOwned>(value: serde_json::Value) -> E {
    serde_json::from_value(value).expect("a valid event")
}

/// An erasure confirmation of `E` for a deleted user (`None` for other deletions).
fn confirm<E: Event + DeserializeOwned>(
    service: &'static str,
    deleted: &user::DeletedV1,
    records: u64,
) -> Option<(Option<E>, String)> {
    if deleted.reason != user::DeletedV1Reason::GdprErasure {
        return None;
    }
    let confirmed: E = event(serde_json::json!({
        "user_id": deleted.user_id, "records": records, "erased_at": Utc::now(),
    }));
    Some((
        Some(confirmed),
        format!("{service}: erased {records} records of {}", deleted.user_id),
    ))
}

/// Starts the services around the sagas (auth's compensation, profile, preferences,
/// notifications, payments' and analytics' erasure), each on its own connection.
pub async fn start_services(
    url: &str,
    behaviour: Behaviour,
    log: Log,
) -> anyhow::Result<Vec<ConsumerHandle>> {
    let b = std::sync::Arc::new(behaviour);
    let mut out = Vec::new();

    let auth = connect(url, "auth").await?;
    out.push(
        react(&auth, &log, |c: &onboarding::CancelledV1| {
            Some((
                None::<onboarding::CancelledV1>,
                format!("auth: disabled the account of {}", c.user_id),
            ))
        })
        .await?,
    );

    let profile = connect(url, "profile").await?;
    out.push(
        react(&profile, &log, |u: &user::CreatedV2| {
            let created: onboarding::ProfileCreatedV1 = event(serde_json::json!({
                "user_id": u.user_id, "created_at": Utc::now(),
            }));
            Some((
                Some(created),
                format!("profile: created the profile of {}", u.user_id),
            ))
        })
        .await?,
    );
    out.push(
        react(&profile, &log, |c: &onboarding::CancelledV1| {
            Some((
                None::<onboarding::CancelledV1>,
                format!("profile: deleted the profile of {}", c.user_id),
            ))
        })
        .await?,
    );
    out.push(
        react(&profile, &log, |d: &user::DeletedV1| {
            confirm::<erasure::ProfileConfirmedV1>("profile", d, 1)
        })
        .await?,
    );

    let preferences = connect(url, "preferences").await?;
    let silent = b.clone();
    out.push(
        react(
            &preferences,
            &log,
            move |r: &onboarding::PreferencesRequestedV1| {
                if silent.preferences_silent.contains(&r.user_id.to_string()) {
                    return Some((
                        None,
                        format!("preferences: (down) no answer for {}", r.user_id),
                    ));
                }
                let set: onboarding::PreferencesSetV1 = event(serde_json::json!({
                    "user_id": r.user_id, "set_at": Utc::now(),
                }));
                Some((
                    Some(set),
                    format!(
                        "preferences: stored the defaults of {} (locale {}, newsletter {})",
                        r.user_id,
                        r.locale.as_str(),
                        r.newsletter
                    ),
                ))
            },
        )
        .await?,
    );
    out.push(
        react(&preferences, &log, |c: &onboarding::CancelledV1| {
            Some((
                None::<onboarding::CancelledV1>,
                format!("preferences: deleted the preferences of {}", c.user_id),
            ))
        })
        .await?,
    );
    out.push(
        react(&preferences, &log, |d: &user::DeletedV1| {
            confirm::<erasure::PreferencesConfirmedV1>("preferences", d, 1)
        })
        .await?,
    );

    let notifications = connect(url, "notifications").await?;
    let (bounce, welcome_log) = (b.clone(), log.clone());
    // Two possible replies: its own consumer rather than `react`.
    out.push(
        notifications
            .consumer::<onboarding::WelcomeRequestedV1>(options())
            .await?
            .spawn(move |env: Envelope<onboarding::WelcomeRequestedV1>| {
                let (bounce, log) = (bounce.clone(), welcome_log.clone());
                async move {
                    let id = env.user_id.to_string();
                    if bounce.bounce.contains(&id) {
                        let failed: onboarding::WelcomeFailedV1 = event(serde_json::json!({
                            "user_id": id, "reason": "550 mailbox unavailable",
                            "failed_at": Utc::now(),
                        }));
                        env.publisher().publish(&failed).await?;
                        let _ =
                            log.send(format!("notifications: the welcome email to {id} bounced"));
                    } else {
                        let sent: onboarding::WelcomeSentV1 = event(serde_json::json!({
                            "user_id": id, "sent_at": Utc::now(),
                        }));
                        env.publisher().publish(&sent).await?;
                        let _ = log.send(format!("notifications: sent the welcome email to {id}"));
                    }
                    Ok(())
                }
            }),
    );
    out.push(
        react(&notifications, &log, |d: &user::DeletedV1| {
            confirm::<erasure::NotificationsConfirmedV1>("notifications", d, 3)
        })
        .await?,
    );

    let payments = connect(url, "payments").await?;
    out.push(
        react(&payments, &log, |d: &user::DeletedV1| {
            confirm::<erasure::PaymentsConfirmedV1>("payments", d, 2)
        })
        .await?,
    );

    let analytics = connect(url, "analytics").await?;
    out.push(
        react(&analytics, &log, |c: &onboarding::CompletedV1| {
            Some((
                None::<onboarding::CompletedV1>,
                format!(
                    "analytics: counted the new user {} (locale {})",
                    c.user_id,
                    c.locale.as_str()
                ),
            ))
        })
        .await?,
    );
    let silent = b;
    out.push(
        react(&analytics, &log, move |d: &user::DeletedV1| {
            if silent.analytics_silent.contains(&d.user_id.to_string()) {
                return Some((
                    None,
                    format!("analytics: (stuck) no confirmation for {}", d.user_id),
                ));
            }
            confirm::<erasure::AnalyticsConfirmedV1>("analytics", d, 7)
        })
        .await?,
    );
    Ok(out)
}
