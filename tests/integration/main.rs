//! Integration tests: every test starts its own nats-server (random port, temp store).

mod attacks;
mod consume;
mod dlq;
mod domain;
mod encryption;
mod failover;
mod harness;
mod hostile;
mod idempotency;
mod jetstream;
mod limbo;
mod metadata;
mod observability;
mod proto;
mod provision;
mod publish;
mod security;
mod signing;
mod support;
mod testing;
mod versions;
