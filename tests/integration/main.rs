//! Integration tests: every test starts its own nats-server (random port, temp store).

mod consume;
mod dlq;
mod harness;
mod idempotency;
mod metadata;
mod observability;
mod provision;
mod publish;
mod support;
mod versions;
