//! The idempotency guard: an event id is claimed in a key-value bucket before its handler runs,
//! so copies of one event (delivered together, or to two instances) run the handler once.
//!
//! A key holds `claim` while some instance handles the event, and `done:<sequence>` once it was
//! handled. A claim is made with an expected revision (it succeeds for exactly one claimant)
//! and a time to live of one ack wait, renewed while the handler runs: a claim whose holder died
//! expires, and the event's redelivery claims it again. A failed attempt releases its claim, so
//! its retry is not held up.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::{self, stream::StorageType};
use bytes::Bytes;

use crate::client::Client;
use crate::error::{ConsumeError, ConsumeErrorKind};

/// Prefix of the key-value buckets where idempotent consumers record handled event ids
/// (`EVENTHUB_IDEMPOTENCY_<durable>`).
pub const IDEMPOTENCY_PREFIX: &str = "EVENTHUB_IDEMPOTENCY_";

const CLAIM: &[u8] = b"claim";

/// The bucket of one idempotent consumer.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    client: Client,
    kv: kv::Store,
    bucket: String,
    /// How long a claim lives unless renewed.
    claim_ttl: Duration,
}

/// What trying to claim an event id gave.
#[derive(Debug)]
pub(super) enum Claim {
    /// This instance holds the claim (at this revision): run the handler.
    Mine(u64),
    /// The event was handled before: ack it without running the handler.
    Done,
    /// Another instance (or worker) holds the claim right now.
    Busy,
    /// The bucket could not be reached: handle the event rather than lose it.
    Unknown(String),
}

impl Guard {
    /// The bucket of consumer `name`, created or updated to keep handled ids for `window`.
    pub(super) async fn open(
        client: &Client,
        name: &str,
        window: Duration,
        ack_wait: Duration,
    ) -> Result<Self, ConsumeError> {
        let bucket = format!("{IDEMPOTENCY_PREFIX}{name}");
        let guard = |kv| Self {
            client: client.clone(),
            kv,
            bucket: bucket.clone(),
            // Whole seconds (the server's unit), at least one.
            claim_ttl: Duration::from_secs(ack_wait.as_secs().max(1) + 1),
        };
        // Under the generated permissions a service may not create or change streams (a
        // stream's subjects are free, so it could capture another service's deliveries): an
        // operator creates the bucket beforehand (`eventhub config apply`), and a bucket with
        // the wanted window and per-key time to live is used as it is.
        if let Ok(stream) = client.jetstream().get_stream(format!("KV_{bucket}")).await {
            let config = &stream.cached_info().config;
            if config.max_age == window
                && config.allow_message_ttl
                && let Ok(kv) = client.jetstream().get_key_value(&bucket).await
            {
                return Ok(guard(kv));
            }
        }
        let kv = client
            .jetstream()
            .create_or_update_key_value(bucket_config(name, window))
            .await
            .map_err(|e| {
                ConsumeError::with_source(
                    ConsumeErrorKind::InvalidConfig,
                    format!(
                        "cannot create the idempotency bucket {bucket} at {}",
                        client.url()
                    ),
                    e,
                )
            })?;
        Ok(guard(kv))
    }

    /// Tries to claim `key` for this instance.
    pub(super) async fn claim(&self, key: &str) -> Claim {
        let mut expected = 0;
        // Two rounds: a key deleted (released) or expired since is claimed at its revision.
        for _ in 0..3 {
            match self.put(key, CLAIM.into(), expected, true).await {
                Ok(revision) => return Claim::Mine(revision),
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {}
                Err(e) => return Claim::Unknown(e.to_string()),
            }
            match self.kv.entry(key).await {
                Ok(Some(entry)) if entry.operation == Operation::Put => {
                    return if entry.value.starts_with(CLAIM) {
                        Claim::Busy
                    } else {
                        Claim::Done
                    };
                }
                Ok(Some(entry)) => expected = entry.revision,
                // Expired between the two requests: the next round sees its marker.
                Ok(None) => {}
                Err(e) => return Claim::Unknown(e.to_string()),
            }
        }
        Claim::Busy
    }

    /// Renews a claim held at `revision` for another time to live; its new revision.
    pub(super) async fn renew(&self, key: &str, revision: u64) -> Option<u64> {
        self.put(key, CLAIM.into(), revision, true).await.ok()
    }

    /// Records `key` as handled (the event's stream sequence as the value).
    pub(super) async fn done(&self, key: &str, sequence: u64) -> Result<u64, kv::PutError> {
        self.kv
            .put(key, Bytes::from(format!("done:{sequence}")))
            .await
    }

    /// Gives a claim up (the attempt failed), so the retry can claim it at once.
    pub(super) async fn release(&self, key: &str, revision: u64) {
        if let Err(e) = self.kv.delete_expect_revision(key, Some(revision)).await {
            tracing::debug!(
                bucket = %self.bucket,
                "eventhub: releasing the claim on {key} failed ({e}); it expires by itself"
            );
        }
    }

    /// Publishes `value` for `key` expecting the key's last revision to be `expected` (0: no
    /// value yet), with the claim's time to live when `ttl`.
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expected: u64,
        ttl: bool,
    ) -> Result<u64, jetstream::context::PublishError> {
        let mut h = HeaderMap::new();
        h.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected.to_string().as_str(),
        );
        if ttl {
            h.insert(
                "Nats-TTL",
                format!("{}s", self.claim_ttl.as_secs()).as_str(),
            );
        }
        let subject = format!("$KV.{}.{key}", self.bucket);
        let ack = self
            .client
            .jetstream()
            .publish_with_headers(subject, h, value)
            .await?
            .await?;
        Ok(ack.sequence)
    }
}

/// The idempotency bucket of durable consumer `durable` (`EVENTHUB_IDEMPOTENCY_<durable>`),
/// keeping handled ids for `window`, with the per-key time to live its claims use. A consumer
/// creates it; under permissions that forbid it, an operator creates it beforehand with this.
pub fn bucket_config(durable: &str, window: Duration) -> kv::Config {
    kv::Config {
        bucket: format!("{IDEMPOTENCY_PREFIX}{durable}"),
        description: format!("eventhub: event ids consumer {durable} handled"),
        history: 1,
        max_age: window,
        storage: StorageType::File,
        // Per-key time to live, for claims.
        limit_markers: Some(Duration::from_secs(1)),
        ..Default::default()
    }
}

/// The key of an event id in an idempotency bucket: the id itself when it is a valid key (a
/// UUID is), else `x` and its hex bytes; an id whose key would be longer than
/// [`MAX_KEY`] bytes, `xh` and its SHA-256 (hex). Keys travel in subjects, and a publish whose
/// control line exceeds the server's limit (4 KiB by default) closes the connection: a
/// producer choosing a long id must not be able to cut an idempotent consumer off. No key of
/// one form can be taken for one of another (valid ids never start with `x`, hex has no `h`).
pub(super) fn key(id: &str) -> String {
    let valid = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
        && !id.starts_with('x');
    if valid && id.len() <= MAX_KEY {
        id.to_string()
    } else if 2 * id.len() < MAX_KEY {
        format!("x{}", hex::encode(id))
    } else {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(id.as_bytes());
        format!("xh{}", hex::encode(digest))
    }
}

/// The longest key [`key`] makes (with the bucket name and a reply subject, well under the
/// server's 4 KiB control line).
const MAX_KEY: usize = 1024;

#[cfg(test)]
mod tests {
    use super::{MAX_KEY, key};

    #[test]
    fn keys_are_short_and_distinct_whatever_the_id() {
        let uuid = "0190b8d2-5a8e-7c3e-9d5e-1f2a3b4c5d6e";
        assert_eq!(key(uuid), uuid);
        assert_eq!(key("a.b"), "x612e62");
        assert_eq!(key("x1"), "x7831");
        let long = "~".repeat(5000);
        let hashed = key(&long);
        assert!(hashed.starts_with("xh") && hashed.len() == 66, "{hashed}");
        assert_ne!(key(&"~".repeat(5001)), hashed);
        assert!(key(&"a".repeat(5000)).starts_with("xh"));
        for id in [
            "",
            "é",
            &"a".repeat(MAX_KEY),
            &"a".repeat(MAX_KEY + 1),
            &"~".repeat(600),
        ] {
            let k = key(id);
            assert!(k.len() <= MAX_KEY, "{} bytes", k.len());
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=')),
                "{k}"
            );
        }
    }
}
