//! Scheduled and delayed events over JetStream message schedules (`Nats-Schedule`).
//!
//! A schedule is a message of the event's own stream, on `schedules.<STREAM>.<service>.<key>`
//! (the publishing service's namespace: see [`crate::topology::schedule_subject`]), that
//! carries the event (its payload and its CloudEvents headers) plus the `Nats-Schedule*`
//! headers; at the due time the *server* publishes a copy on the event's subject, without the
//! schedule's `Nats-Schedule*`, `Nats-Msg-Id` and `Nats-Expected-*` headers and with
//! `Nats-Scheduler` (the schedule's subject) added. Consumers see an ordinary event with its
//! `ce-id`, type and source. A one-shot schedule is then removed; a recurring one stays until
//! it is cancelled. One schedule per key: a new one with the same key replaces it.
//!
//! Each event a recurring schedule publishes also carries `Nats-Schedule-Next` (when the
//! schedule fires next), which the server sets and a client cannot (it may only send
//! `purge`): a consumer tells occurrences apart by it
//! ([`Metadata::occurrence_id`](crate::consume::Metadata::occurrence_id)).
//!
//! The server publishes the event itself, whatever the subject permissions of the service that
//! stored the schedule: a consumer checks that `Nats-Scheduler` names the event's `ce-source`
//! (and, when its [`Trust`](crate::wire::signing::Trust) declares publishers, that this
//! service publishes the type), and dead-letters the event as forged otherwise.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::receipt::Receipt;
use super::version::Feature;
use crate::error::{PublishError, PublishErrorKind};

/// Header: the schedule (`@at <RFC 3339>`, `@every <duration>`, a 6-field cron expression).
pub const SCHEDULE: &str = "Nats-Schedule";
/// Header: the subject the server publishes the event on (the event's subject).
pub const SCHEDULE_TARGET: &str = "Nats-Schedule-Target";
/// Header: the IANA time zone of a cron schedule.
pub const SCHEDULE_TIME_ZONE: &str = "Nats-Schedule-Time-Zone";
/// Header: the TTL the server puts on each event it publishes.
pub const SCHEDULE_TTL: &str = "Nats-Schedule-TTL";
/// Header the server adds to an event it published from a schedule: the schedule's subject.
pub const SCHEDULER: &str = "Nats-Scheduler";
/// Header the server adds to an event it published from a schedule: when the schedule fires
/// next (RFC 3339), or `purge` for a one-shot schedule.
pub const SCHEDULE_NEXT: &str = "Nats-Schedule-Next";

/// When the server publishes a scheduled event.
///
/// ```
/// use std::time::Duration;
/// use eventhub::publish::Schedule;
/// let reminder = Schedule::after(Duration::from_secs(3600)).key("order-42-reminder");
/// let report = Schedule::cron("0 0 9 * * mon-fri").in_time_zone("Europe/Amsterdam");
/// let heartbeat = Schedule::every(Duration::from_secs(30));
/// # let _ = (reminder, report, heartbeat);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    when: When,
    key: Option<String>,
    time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum When {
    At(DateTime<Utc>),
    Every(Duration),
    Cron(String),
}

impl Schedule {
    /// Once, at `when` (a time in the past fires at once). nats-server 2.12.
    pub fn at(when: DateTime<Utc>) -> Self {
        Self {
            when: When::At(when),
            key: None,
            time_zone: None,
        }
    }

    /// Once, `delay` from now. nats-server 2.12.
    pub fn after(delay: Duration) -> Self {
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        Self::at(
            Utc::now()
                .checked_add_signed(delay)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// Every `interval` (at least a second, whole milliseconds), from when the schedule is
    /// stored, until it is cancelled. nats-server 2.14.
    pub fn every(interval: Duration) -> Self {
        Self {
            when: When::Every(interval),
            key: None,
            time_zone: None,
        }
    }

    /// On a 6-field cron expression (`seconds minutes hours day-of-month month day-of-week`,
    /// e.g. `0 30 9 * * mon-fri`) or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`; in
    /// UTC unless [`Schedule::in_time_zone`]. Until cancelled. nats-server 2.14.
    pub fn cron(expression: impl Into<String>) -> Self {
        Self {
            when: When::Cron(expression.into()),
            key: None,
            time_zone: None,
        }
    }

    /// Evaluates a cron schedule in an IANA time zone (`Europe/Amsterdam`), daylight saving
    /// included. Only for [`Schedule::cron`]. nats-server 2.14.
    pub fn in_time_zone(mut self, zone: impl Into<String>) -> Self {
        self.time_zone = Some(zone.into());
        self
    }

    /// Names the schedule (letters, digits, `-`, `_`; at most 128): a schedule published with
    /// the same key replaces the pending one, and [`Publisher::cancel_schedule`] takes it.
    /// Default: the event id.
    ///
    /// [`Publisher::cancel_schedule`]: crate::Publisher::cancel_schedule
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The key the schedule waits under: [`Schedule::key`], else the event id.
    pub(crate) fn key_or<'a>(&'a self, id: &'a str) -> &'a str {
        self.key.as_deref().unwrap_or(id)
    }

    /// The feature (and so the server version) the schedule needs.
    pub(crate) fn features(&self) -> impl Iterator<Item = Feature> {
        let main = match self.when {
            When::At(_) => Feature::ScheduleAt,
            When::Every(_) | When::Cron(_) => Feature::RecurringSchedule,
        };
        std::iter::once(main).chain(self.time_zone.as_ref().map(|_| Feature::ScheduleTimeZone))
    }

    /// Whether the server publishes the event once (and then removes the schedule).
    pub fn is_one_shot(&self) -> bool {
        matches!(self.when, When::At(_))
    }

    /// The headers of the schedule, checked as the server would: `(name, value)` pairs.
    pub(crate) fn headers(&self, id: &str) -> Result<Vec<(&'static str, String)>, PublishError> {
        let invalid = |why: String| {
            PublishError::new(
                PublishErrorKind::InvalidSchedule,
                format!("{why}; nothing was sent"),
            )
        };
        let key = self.key_or(id);
        if !valid_key(key) {
            return Err(invalid(format!(
                "schedule key `{key}` must be 1-128 letters, digits, `-` or `_` (it becomes a \
                 subject token)"
            )));
        }
        let pattern = match &self.when {
            // Millisecond precision: the server parses RFC 3339 with fractions.
            When::At(t) => format!("@at {}", t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            When::Every(d) => {
                if *d < Duration::from_secs(1) {
                    return Err(invalid(format!(
                        "a schedule every {d:?} is too frequent: nats-server takes intervals of \
                         a second or more"
                    )));
                }
                format!("@every {}ms", d.as_millis())
            }
            When::Cron(expr) => {
                let expr = expr.trim();
                let predefined = [
                    "@yearly",
                    "@annually",
                    "@monthly",
                    "@weekly",
                    "@daily",
                    "@midnight",
                    "@hourly",
                ];
                if !predefined.contains(&expr) && expr.split_whitespace().count() != 6 {
                    return Err(invalid(format!(
                        "cron expression `{expr}` must have 6 fields (seconds minutes hours \
                         day-of-month month day-of-week, e.g. `0 30 9 * * mon-fri`) or be one \
                         of {}",
                        predefined.join(", ")
                    )));
                }
                expr.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        };
        let mut headers = vec![(SCHEDULE, pattern)];
        if let Some(zone) = &self.time_zone {
            if !matches!(self.when, When::Cron(_)) {
                return Err(invalid(format!(
                    "time zone `{zone}` on a schedule that is not cron: only cron schedules take \
                     a time zone (an instant or an interval is the same everywhere)"
                )));
            }
            let plausible = !zone.is_empty()
                && zone
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b))
                && !zone.starts_with(['+', '-']);
            if !plausible {
                return Err(invalid(format!(
                    "time zone `{zone}` is not an IANA zone name like `Europe/Amsterdam` (fixed \
                     offsets are refused by the server)"
                )));
            }
            headers.push((SCHEDULE_TIME_ZONE, zone.clone()));
        }
        Ok(headers)
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A stored schedule: what [`Publisher::publish_at`](crate::Publisher::publish_at) and its
/// kin return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// The stored schedule message (stream, sequence, the event id its event carries).
    pub receipt: Receipt,
    /// The schedule's key ([`Schedule::key`], or the event id).
    pub key: String,
    /// The subject the schedule waits on: `schedules.<STREAM>.<service>.<key>`.
    pub subject: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &Schedule) -> Option<PublishErrorKind> {
        s.headers("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
            .err()
            .map(|e| e.kind())
    }

    #[test]
    fn schedules_become_the_headers_the_server_reads() {
        let at = DateTime::parse_from_rfc3339("2030-01-02T03:04:05.678Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Schedule::at(at).headers("id").unwrap(),
            vec![(SCHEDULE, "@at 2030-01-02T03:04:05.678Z".to_string())]
        );
        assert_eq!(
            Schedule::every(Duration::from_secs(90))
                .headers("id")
                .unwrap(),
            vec![(SCHEDULE, "@every 90000ms".to_string())]
        );
        assert_eq!(
            Schedule::cron("0  30 9 * * mon-fri")
                .in_time_zone("Europe/Amsterdam")
                .headers("id")
                .unwrap(),
            vec![
                (SCHEDULE, "0 30 9 * * mon-fri".to_string()),
                (SCHEDULE_TIME_ZONE, "Europe/Amsterdam".to_string())
            ]
        );
        assert!(Schedule::cron("@hourly").headers("id").is_ok());
    }

    #[test]
    fn what_the_server_would_refuse_is_refused_before_sending() {
        let bad = PublishErrorKind::InvalidSchedule;
        // The classic 5-field crontab: nats-server wants seconds too.
        assert_eq!(kind(&Schedule::cron("*/5 * * * *")), Some(bad));
        assert_eq!(
            kind(&Schedule::every(Duration::from_millis(500))),
            Some(bad)
        );
        assert_eq!(
            kind(&Schedule::every(Duration::from_secs(5)).in_time_zone("Europe/Paris")),
            Some(bad)
        );
        assert_eq!(
            kind(&Schedule::cron("@daily").in_time_zone("+02:00")),
            Some(bad)
        );
        assert_eq!(
            kind(&Schedule::after(Duration::from_secs(1)).key("a.b")),
            Some(bad)
        );
        assert_eq!(
            kind(&Schedule::after(Duration::from_secs(1)).key("")),
            Some(bad)
        );
        assert_eq!(kind(&Schedule::after(Duration::from_secs(1))), None);
    }

    #[test]
    fn each_schedule_names_the_server_version_it_needs() {
        let at: Vec<_> = Schedule::after(Duration::ZERO).features().collect();
        assert_eq!(at, vec![Feature::ScheduleAt]);
        let cron: Vec<_> = Schedule::cron("@daily")
            .in_time_zone("UTC")
            .features()
            .collect();
        assert_eq!(
            cron,
            vec![Feature::RecurringSchedule, Feature::ScheduleTimeZone]
        );
    }
}
