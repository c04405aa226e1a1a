//! Per-key ordering with parallelism ([`ConsumerOptions::ordered_by_key`]): events with the
//! same partition key (`x-partition-key` in their schema, [`Consumable::partition_key`]) are
//! handled one after another in the order they arrived; events of different keys run
//! concurrently, up to the consumer's concurrency.
//!
//! A failing event keeps its key: it is retried *in place* (after the backoff delay, without a
//! `Nak`, which would let the later events of its key overtake it) while the later events of
//! its key wait, all kept alive with in-progress acks. Other keys go on. After `max_deliver`
//! attempts the event goes to the dead letters as usual and its key moves on.
//!
//! Scope: the order holds within one consumer instance. Instances sharing a durable share its
//! events with no affinity by key (JetStream has none), so run one instance per durable where
//! order per key matters, or partition the subjects.
//!
//! [`ConsumerOptions::ordered_by_key`]: super::ConsumerOptions::ordered_by_key
//! [`Consumable::partition_key`]: crate::Consumable::partition_key

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use tokio::sync::{OwnedMutexGuard, watch};

use super::waiting::Waiting;

/// The keys of one running consumer with events in flight: each a fair (first come, first
/// served) lock, so the events of a key take their turns in arrival order.
#[derive(Debug, Default)]
pub(super) struct KeyLocks {
    keys: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// An event's turn on its key: the key's later events wait until it is dropped.
pub(super) struct KeyTurn {
    guard: Option<OwnedMutexGuard<()>>,
    key: String,
    locks: Arc<KeyLocks>,
}

impl Drop for KeyTurn {
    fn drop(&mut self) {
        let mut keys = self.locks.keys.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.guard.take());
        // Nobody holds or waits for the key: forget it (the map only holds keys in flight).
        if keys
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            keys.remove(&self.key);
        }
    }
}

impl KeyLocks {
    /// Waits for the turn of `message` on `key`, keeping it alive with in-progress acks. `None`
    /// when the consumer stops meanwhile (the caller gives the message back).
    ///
    /// Its place in the key's queue is taken on the first poll, before anything else: a
    /// delivery's processing reaches this without awaiting, so places follow arrival order.
    pub(super) async fn turn(
        self: &Arc<Self>,
        key: String,
        message: &jetstream::Message,
        mut waiting: watch::Receiver<Waiting>,
    ) -> Option<KeyTurn> {
        let lock = {
            let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.entry(key.clone()).or_default().clone()
        };
        let mut turn = KeyTurn {
            guard: None,
            key,
            locks: self.clone(),
        };
        let acquire = lock.lock_owned();
        tokio::pin!(acquire);
        loop {
            tokio::select! {
                biased;
                guard = &mut acquire => {
                    turn.guard = Some(guard);
                    return Some(turn);
                }
                changed = waiting.changed() => {
                    if changed.is_err() || waiting.borrow_and_update().stop {
                        return None;
                    }
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        }
    }
}

/// Waits `delay` before an event is tried again in place, keeping it alive. `false` when the
/// consumer stops meanwhile.
pub(super) async fn pause(
    delay: Duration,
    message: &jetstream::Message,
    mut waiting: watch::Receiver<Waiting>,
) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            biased;
            () = &mut sleep => return true,
            changed = waiting.changed() => {
                if changed.is_err() || waiting.borrow_and_update().stop {
                    return false;
                }
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_forgotten_once_nobody_holds_or_waits_for_it() {
        let locks = Arc::new(KeyLocks::default());
        let lock = {
            let mut keys = locks.keys.lock().unwrap();
            keys.entry("k".into()).or_default().clone()
        };
        let turn = KeyTurn {
            guard: Some(lock.clone().lock_owned().await),
            key: "k".into(),
            locks: locks.clone(),
        };
        drop(lock);
        assert_eq!(locks.keys.lock().unwrap().len(), 1);
        drop(turn);
        assert!(locks.keys.lock().unwrap().is_empty());
    }
}
