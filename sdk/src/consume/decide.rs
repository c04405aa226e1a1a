//! What to do with a delivery once its handling is over: a pure function of the outcome and the
//! delivery count, so every rule of the consumer has a unit test and no server.

use std::time::Duration;

use super::handler::{FailureKind, HandlerError, Processed};
use crate::dlq::DeadLetterReason;

/// How the handling of one delivery went.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// The handler service finished with this.
    Done(Processed),
    /// The handler service failed.
    Failed(&'a HandlerError),
    /// The message could not be decoded (not JSON, not of the schema, unknown version or type,
    /// unsupported content type, a field that does not decrypt); the handler never saw it.
    Undecodable(&'a str),
    /// Its signature does not prove its source ([`crate::wire::signing`]); the handler never
    /// saw it.
    Forged(&'a str),
}

/// What the consumer does with the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Acknowledge it: done.
    Ack,
    /// Deliver it again after `delay`; `None`: the consumer's backoff for this delivery.
    Retry {
        /// The delay the handler asked for ([`HandlerError::retry_after`]).
        delay: Option<Duration>,
        /// Why, for the log.
        error: String,
    },
    /// Store it in the dead letters (then `Term` it).
    DeadLetter {
        /// Why.
        reason: DeadLetterReason,
        /// The last error.
        error: String,
    },
}

/// The rules: success or a skip acks; an undecodable message is poison at once, a forged one
/// forged at once; a rejection is
/// dead-lettered at once; any other failure (an error, a panic, a timeout) is retried until the
/// last allowed delivery (`delivered >= max_deliver`), which is dead-lettered as `max-deliver`.
pub fn decide(outcome: Outcome<'_>, delivered: u64, max_deliver: u64) -> Decision {
    let error = match outcome {
        Outcome::Done(_) => return Decision::Ack,
        Outcome::Undecodable(why) => {
            return Decision::DeadLetter {
                reason: DeadLetterReason::Poison,
                error: why.to_string(),
            };
        }
        Outcome::Forged(why) => {
            return Decision::DeadLetter {
                reason: DeadLetterReason::Forged,
                error: why.to_string(),
            };
        }
        Outcome::Failed(e) if e.kind() == FailureKind::Reject => {
            return Decision::DeadLetter {
                reason: DeadLetterReason::Rejected,
                error: e.to_string(),
            };
        }
        Outcome::Failed(e) => e,
    };
    if delivered >= max_deliver {
        return Decision::DeadLetter {
            reason: DeadLetterReason::MaxDeliver,
            error: format!("delivery {delivered} of {max_deliver} failed: {error}"),
        };
    }
    Decision::Retry {
        delay: error.delay(),
        error: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_meets_its_rule() {
        let retry = HandlerError::retry("store down");
        let after = HandlerError::retry_after(Duration::from_secs(7), "rate limited");
        let reject = HandlerError::reject("blocked domain");
        let panic = HandlerError::panicked("index out of bounds");
        let timeout = HandlerError::timed_out(Duration::from_secs(60));
        let dl = |reason: DeadLetterReason, error: &str| Decision::DeadLetter {
            reason,
            error: error.to_string(),
        };
        let again = |delay: Option<Duration>, error: &str| Decision::Retry {
            delay,
            error: error.to_string(),
        };
        let cases: Vec<(&str, Outcome<'_>, u64, u64, Decision)> = vec![
            (
                "handled",
                Outcome::Done(Processed::Handled),
                1,
                5,
                Decision::Ack,
            ),
            (
                "handled on the last delivery",
                Outcome::Done(Processed::Handled),
                5,
                5,
                Decision::Ack,
            ),
            (
                "duplicate",
                Outcome::Done(Processed::Duplicate),
                3,
                5,
                Decision::Ack,
            ),
            (
                "poison",
                Outcome::Undecodable("not JSON"),
                1,
                5,
                dl(DeadLetterReason::Poison, "not JSON"),
            ),
            (
                "forged, even on a first delivery",
                Outcome::Forged("not signed"),
                1,
                5,
                dl(DeadLetterReason::Forged, "not signed"),
            ),
            (
                "rejected",
                Outcome::Failed(&reject),
                1,
                5,
                dl(DeadLetterReason::Rejected, "blocked domain"),
            ),
            (
                "rejected on the last delivery",
                Outcome::Failed(&reject),
                5,
                5,
                dl(DeadLetterReason::Rejected, "blocked domain"),
            ),
            (
                "retryable",
                Outcome::Failed(&retry),
                1,
                5,
                again(None, "store down"),
            ),
            (
                "retry after",
                Outcome::Failed(&after),
                2,
                5,
                again(Some(Duration::from_secs(7)), "rate limited"),
            ),
            (
                "panic",
                Outcome::Failed(&panic),
                1,
                5,
                again(None, "handler panicked: index out of bounds"),
            ),
            (
                "timeout",
                Outcome::Failed(&timeout),
                4,
                5,
                again(None, "handler timed out after 60s"),
            ),
            (
                "last delivery",
                Outcome::Failed(&retry),
                5,
                5,
                dl(
                    DeadLetterReason::MaxDeliver,
                    "delivery 5 of 5 failed: store down",
                ),
            ),
            (
                "past the last (max_deliver lowered)",
                Outcome::Failed(&panic),
                9,
                5,
                dl(
                    DeadLetterReason::MaxDeliver,
                    "delivery 9 of 5 failed: handler panicked: index out of bounds",
                ),
            ),
            (
                "one delivery allowed",
                Outcome::Failed(&timeout),
                1,
                1,
                dl(
                    DeadLetterReason::MaxDeliver,
                    "delivery 1 of 1 failed: handler timed out after 60s",
                ),
            ),
        ];
        for (what, outcome, delivered, max, expected) in cases {
            assert_eq!(decide(outcome, delivered, max), expected, "{what}");
        }
    }
}
