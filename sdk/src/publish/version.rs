//! Which nats-server version each JetStream feature needs, checked against the version the
//! connected server announced (its `INFO`), so that an old server gives a clear error instead
//! of a message it silently stores as an ordinary one (an old server ignores the
//! `Nats-Schedule` and `Nats-Batch-*` headers it does not know).

use std::fmt;

use crate::error::{PublishError, PublishErrorKind};

/// A JetStream feature eventhub uses, with the nats-server version that brought it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Feature {
    /// One-shot schedules (`Nats-Schedule: @at …`): nats-server 2.12.
    ScheduleAt,
    /// Recurring schedules (`@every …`, cron): nats-server 2.14.
    RecurringSchedule,
    /// A time zone on a cron schedule (`Nats-Schedule-Time-Zone`): nats-server 2.14.
    ScheduleTimeZone,
    /// Atomic batches (`Nats-Batch-*`): nats-server 2.12.
    AtomicPublish,
    /// Per-message TTL (`Nats-TTL`): nats-server 2.11.
    MessageTtl,
}

impl Feature {
    /// The first nats-server version with the feature: `(major, minor, patch)`.
    pub fn min_version(self) -> Version {
        match self {
            Feature::ScheduleAt | Feature::AtomicPublish => Version(2, 12, 0),
            Feature::RecurringSchedule | Feature::ScheduleTimeZone => Version(2, 14, 0),
            Feature::MessageTtl => Version(2, 11, 0),
        }
    }

    /// What the feature is called in errors and docs.
    pub fn name(self) -> &'static str {
        match self {
            Feature::ScheduleAt => "scheduled events (Nats-Schedule @at)",
            Feature::RecurringSchedule => "recurring schedules (@every, cron)",
            Feature::ScheduleTimeZone => "cron schedules in a time zone",
            Feature::AtomicPublish => "atomic event groups (Nats-Batch-*)",
            Feature::MessageTtl => "per-message TTL (Nats-TTL)",
        }
    }

    /// Whether a server announcing `server_version` (its `INFO` `version`, e.g. `2.15.1`)
    /// has the feature. An unparsable version is an error, not a guess.
    pub fn check(self, server_version: &str) -> Result<(), PublishError> {
        let needed = self.min_version();
        match Version::parse(server_version) {
            Some(v) if v >= needed => Ok(()),
            Some(_) => Err(PublishError::new(
                PublishErrorKind::ServerTooOld,
                format!(
                    "{} need nats-server {needed} or later; the server runs {server_version}: \
                     upgrade it (an older server would store the event as an ordinary message); \
                     nothing was sent",
                    self.name()
                ),
            )),
            None => Err(PublishError::new(
                PublishErrorKind::ServerTooOld,
                format!(
                    "{} need nats-server {needed} or later; the server announced version \
                     `{server_version}`, which is not one eventhub can read; nothing was sent",
                    self.name()
                ),
            )),
        }
    }
}

/// A nats-server version: major, minor, patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parses `2.15.1`, `v2.12.0`, `2.12.0-RC.3` (a pre-release counts as its release: the
    /// features it announces are there).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().strip_prefix('v').unwrap_or(s.trim());
        let core = s.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        if parts.next().is_some() {
            return None;
        }
        Some(Version(major, minor, patch))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(Version::parse("2.15.1"), Some(Version(2, 15, 1)));
        assert_eq!(Version::parse("v2.12.0-RC.3"), Some(Version(2, 12, 0)));
        assert_eq!(Version::parse("2.11"), Some(Version(2, 11, 0)));
        assert_eq!(Version::parse("banana"), None);
        assert_eq!(Version::parse("2.x.1"), None);
        assert!(Version(2, 9, 10) < Version(2, 11, 0));
        assert!(Version(2, 15, 1) > Version(2, 14, 0));
    }

    #[test]
    fn an_old_server_is_refused_with_the_version_it_needs() {
        // Debian's nats-server is 2.9.10: none of these features.
        for feature in [
            Feature::ScheduleAt,
            Feature::RecurringSchedule,
            Feature::AtomicPublish,
            Feature::MessageTtl,
        ] {
            let e = feature.check("2.9.10").unwrap_err();
            assert_eq!(e.kind(), PublishErrorKind::ServerTooOld);
            assert!(e.to_string().contains("2.9.10"), "{e}");
            assert!(
                e.to_string().contains(&feature.min_version().to_string()),
                "{e}"
            );
        }
        // 2.12 has @at and atomic batches, not cron.
        assert!(Feature::ScheduleAt.check("2.12.3").is_ok());
        assert!(Feature::AtomicPublish.check("2.12.0").is_ok());
        assert!(Feature::RecurringSchedule.check("2.12.3").is_err());
        assert!(Feature::ScheduleTimeZone.check("2.13.0").is_err());
        assert!(Feature::MessageTtl.check("2.11.0").is_ok());
        assert!(Feature::RecurringSchedule.check("2.15.1").is_ok());
        assert_eq!(
            Feature::AtomicPublish.check("garbage").unwrap_err().kind(),
            PublishErrorKind::ServerTooOld
        );
    }
}
