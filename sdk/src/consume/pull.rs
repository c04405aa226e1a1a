//! Pull requests of one consumer, all answered on one inbox.
//!
//! A request asks for as many events as there are free slots and reserves those slots; every
//! event that arrives takes one, and a request that ends short (it expired, or the server
//! ended it) frees what it did not deliver, as the status message says. So a consumer never
//! holds more events than its slots, and one subscription serves every request: no inbox is
//! subscribed and unsubscribed per request.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::{StatusCode, Subject, Subscriber};
use futures::{FutureExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::Failover;
use crate::client::Client;

/// What arrived on the inbox.
pub(super) enum Arrival {
    /// An event, with the slot it holds until its handling ends.
    Event(jetstream::Message, OwnedSemaphorePermit),
    /// An event no slot is free for (delivered after its request was given up for lost).
    Surplus(jetstream::Message),
    /// Bookkeeping: a heartbeat, or a request that ended short (its slots are free again).
    Status,
    /// The server cannot serve requests for this durable (it or its stream is gone, or no
    /// server answers): every reserved slot is free; look the durable up again before asking.
    Refused(String),
    /// The subscription ended (the client was closed).
    Closed,
}

/// The pull requests of one durable and the slots they reserve.
#[derive(Debug)]
pub(super) struct Puller {
    client: Client,
    /// `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`.
    subject: Subject,
    inbox: Subject,
    subscription: Subscriber,
    slots: std::sync::Arc<Semaphore>,
    /// Slots of events asked for that have not arrived yet.
    reserved: Option<OwnedSemaphorePermit>,
    expires: Duration,
    /// When every request sent so far has been answered, delivered or expired; reserved slots
    /// still unaccounted for then belong to requests that were lost (a server restart).
    settled_by: Instant,
    /// The durable's priority group, if it has one: every request names it.
    failover: Failover,
    /// The pin the server gave this instance (a pinned durable), sent with every request;
    /// `None` while on standby.
    pin_id: Option<String>,
}

impl Puller {
    /// Subscribes the inbox the requests of `durable` are answered on.
    pub(super) async fn new(
        client: &Client,
        stream: &str,
        durable: &str,
        slots: std::sync::Arc<Semaphore>,
        expires: Duration,
        failover: Failover,
    ) -> Result<Self, async_nats::SubscribeError> {
        let inbox = client.nats().new_inbox();
        let subscription = client.nats().subscribe(inbox.clone()).await?;
        Ok(Self {
            client: client.clone(),
            subject: Subject::from(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}")),
            inbox: Subject::from(inbox),
            subscription,
            slots,
            reserved: None,
            expires,
            settled_by: Instant::now(),
            failover,
            pin_id: None,
        })
    }

    /// Every slot of the consumer: free, reserved by requests, or held by arrived events.
    pub(super) fn slots(&self) -> &std::sync::Arc<Semaphore> {
        &self.slots
    }

    /// Slots reserved by requests still open.
    pub(super) fn reserved(&self) -> usize {
        self.reserved.as_ref().map_or(0, |r| r.num_permits())
    }

    /// Asks for one event per slot of `slots`, which stay reserved until the events arrive or
    /// the request ends.
    pub(super) async fn request(
        &mut self,
        slots: OwnedSemaphorePermit,
    ) -> Result<(), async_nats::PublishError> {
        let body = request_body(
            slots.num_permits(),
            self.expires,
            self.failover,
            self.pin_id.as_deref(),
        );
        self.client
            .nats()
            .publish_with_reply(self.subject.clone(), self.inbox.clone(), body.into())
            .await?;
        match &mut self.reserved {
            Some(reserved) => reserved.merge(slots),
            None => self.reserved = Some(slots),
        }
        // An open request ends by its expiry with a status message; allow as long again for
        // it to arrive from a busy server.
        self.settled_by = Instant::now() + self.expires + self.expires.max(Duration::from_secs(1));
        Ok(())
    }

    /// Waits for what arrives next on the inbox.
    pub(super) async fn next(&mut self) -> Arrival {
        match self.subscription.next().await {
            Some(message) => self.arrived(message),
            None => Arrival::Closed,
        }
    }

    /// What has already arrived, without waiting.
    pub(super) fn next_now(&mut self) -> Option<Arrival> {
        self.next().now_or_never()
    }

    /// When reserved slots become overdue (their requests lost); `None` if none are reserved.
    pub(super) fn overdue_at(&self) -> Option<Instant> {
        (self.reserved() > 0).then_some(self.settled_by)
    }

    /// Unsubscribes the inbox and waits until the command is on its way: then the server, once
    /// it has read it (a flush), delivers nothing more here; what it delivered before stays
    /// readable with [`Puller::next_now`]. Dropping the subscription is not
    /// enough: async-nats sends that unsubscribe later when its command queue is full (a busy
    /// consumer's acks), and the server would keep delivering to the open requests meanwhile,
    /// to an inbox nobody reads.
    pub(super) async fn close(&mut self) {
        let _ = self.subscription.unsubscribe().await;
    }

    /// Frees every reserved slot: their requests are considered ended.
    pub(super) fn forget_requests(&mut self) {
        self.reserved = None;
    }

    fn arrived(&mut self, message: async_nats::Message) -> Arrival {
        match message.status {
            None | Some(StatusCode::OK) => {
                if matches!(self.failover, Failover::Pinned { .. }) {
                    // The server appends its pin to every message it delivers to the pinned
                    // instance; a producer's own `Nats-Pin-Id` header would come first, so the
                    // last one is the server's.
                    if let Some(id) = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get_last("Nats-Pin-Id"))
                        && self.pin_id.as_deref() != Some(id.as_str())
                    {
                        tracing::info!(pin = id.as_str(), "eventhub consumer: pinned (active)");
                        self.pin_id = Some(id.as_str().to_string());
                    }
                }
                let slot = self
                    .reserved
                    .as_mut()
                    .and_then(|r| r.split(1))
                    .or_else(|| self.slots.clone().try_acquire_owned().ok());
                let message = jetstream::Message {
                    message,
                    context: self.client.jetstream().clone(),
                };
                match slot {
                    Some(slot) => Arrival::Event(message, slot),
                    None => Arrival::Surplus(message),
                }
            }
            Some(StatusCode::IDLE_HEARTBEAT) => Arrival::Status,
            Some(StatusCode::PIN_ID_MISMATCH) => {
                // The pin moved to another instance (this one was silent past the takeover
                // time, or an operator unpinned it): every open request carries the old id and
                // is refused the same way. Back to standby: ask again without an id.
                if self.pin_id.take().is_some() {
                    tracing::warn!(
                        "eventhub consumer: the server moved the pin to another instance; standing by"
                    );
                }
                self.forget_requests();
                Arrival::Status
            }
            Some(StatusCode::TIMEOUT | StatusCode::REQUEST_TERMINATED)
                if message.description.as_deref() != Some("Consumer Deleted") =>
            {
                // A request ended short: its undelivered events are in the header.
                let undelivered = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Pending-Messages"))
                    .and_then(|v| v.as_str().parse::<usize>().ok());
                match (undelivered, self.reserved.as_mut()) {
                    (Some(n), Some(reserved)) => {
                        drop(reserved.split(n.min(reserved.num_permits())));
                    }
                    // Without the count, free everything: a surplus event is handed back.
                    (None, _) => self.forget_requests(),
                    (_, None) => {}
                }
                Arrival::Status
            }
            status => {
                self.forget_requests();
                let why = match (status, message.description) {
                    (Some(StatusCode::NO_RESPONDERS), _) => "no responders".to_string(),
                    (Some(code), Some(d)) => format!("{code} {d}"),
                    (Some(code), None) => code.to_string(),
                    (None, _) => "no status".to_string(),
                };
                Arrival::Refused(why)
            }
        }
    }
}

/// A pull request's JSON for `batch` events: the priority group's fields where the durable has
/// one (`group`; a standby's `min_pending`; a pinned instance's `id`).
fn request_body(batch: usize, expires: Duration, failover: Failover, pin: Option<&str>) -> String {
    let mut body = serde_json::json!({"batch": batch, "expires": expires.as_nanos() as u64});
    match failover {
        Failover::None => {}
        Failover::Pinned { .. } => {
            body["group"] = Failover::GROUP.into();
            if let Some(id) = pin {
                body["id"] = id.into();
            }
        }
        Failover::Overflow { standby_above } => {
            body["group"] = Failover::GROUP.into();
            if let Some(pending) = standby_above {
                // The server serves a request with `min_pending: n` while at least n wait.
                body["min_pending"] = pending.saturating_add(1).into();
            }
        }
    }
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(failover: Failover, pin: Option<&str>) -> serde_json::Value {
        serde_json::from_str(&request_body(7, Duration::from_millis(500), failover, pin)).unwrap()
    }

    #[test]
    fn pull_requests_name_the_priority_group_and_carry_the_pin_or_threshold() {
        use serde_json::json;
        assert_eq!(
            body(Failover::None, Some("ignored")),
            json!({"batch": 7, "expires": 500_000_000})
        );
        let pinned = Failover::pinned(Duration::from_secs(2));
        assert_eq!(
            body(pinned, None),
            json!({"batch": 7, "expires": 500_000_000, "group": "eventhub"})
        );
        assert_eq!(
            body(pinned, Some("a\"b")),
            json!({"batch": 7, "expires": 500_000_000, "group": "eventhub", "id": "a\"b"})
        );
        assert_eq!(
            body(Failover::primary(), None),
            json!({"batch": 7, "expires": 500_000_000, "group": "eventhub"})
        );
        assert_eq!(
            body(Failover::standby(50), None),
            json!({"batch": 7, "expires": 500_000_000, "group": "eventhub", "min_pending": 51})
        );
    }
}
