//! What a [`Client`] opens: publishers, consumers, the dead letters, the streams. Each is
//! defined in its own module, which knows the client; the client knows none of them.

use std::time::Instant;

use crate::client::Client;
use crate::consume::{Consumer, ConsumerOptions};
use crate::error::{ConsumeError, ProvisionError, ProvisionErrorKind};
use crate::publish::Publisher;
use crate::topology::{self, ProvisionOptions, ProvisionReport, Topology};
use crate::wire::Consumable;

impl Client {
    /// A publisher for this service.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(self.clone())
    }

    /// The dead-letter queue: list, read, replay and delete entries.
    pub fn dead_letters(&self) -> crate::dlq::DeadLetters {
        crate::dlq::DeadLetters::new(self.clone())
    }

    /// Creates or updates a catalog's streams (its generated `TOPOLOGY`) plus eventhub's
    /// dead-letter and advisory streams. Idempotent; the report lists drift found and fixed,
    /// and what it left alone because another catalog has a say in it.
    pub async fn provision(&self, topology: &Topology) -> Result<ProvisionReport, ProvisionError> {
        self.provision_with(&ProvisionOptions::new(topology)).await
    }

    /// [`Client::provision`] with options (a dry run, other streams, a replica override).
    pub async fn provision_with(
        &self,
        options: &ProvisionOptions,
    ) -> Result<ProvisionReport, ProvisionError> {
        // A forbidden JetStream API call is answered with an asynchronous permissions
        // violation, not a reply: race it, so a service without the right fails now.
        let since = Instant::now();
        let result = tokio::select! {
            result = topology::provision(self.jetstream(), options) => result,
            subject = self.permissions().first_denied_since(since) => Err(ProvisionError::new(
                ProvisionErrorKind::Rejected,
                format!(
                    "service `{}` ({}) may not use `{subject}`: provisioning needs the JetStream \
                     API of the streams, and the server refused it (permissions violation)",
                    self.service(),
                    self.identity()
                ),
            )),
        };
        if let Ok(report) = &result {
            for (stream, conflict) in report.conflicts() {
                tracing::warn!(service = %self.service(), "eventhub: stream {stream} left alone: {conflict}");
            }
        }
        result
    }

    /// Creates or updates the durable consumer of `E` for this service and returns it, ready
    /// to run a handler. `E` is one event version (a generated struct such as
    /// `events::user::CreatedV2`) or a family (the generated enum `events::user::Created`:
    /// every version).
    ///
    /// Updating applies the new ack wait, max deliver, max ack pending and filter subjects;
    /// where a durable starts ([`StartFrom`](crate::StartFrom)) is fixed when it is created.
    pub async fn consumer<E: Consumable>(
        &self,
        options: ConsumerOptions,
    ) -> Result<Consumer<E>, ConsumeError> {
        Consumer::create(self, options).await
    }
}
