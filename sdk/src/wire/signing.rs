//! Signed events: who published an event, proven.
//!
//! NATS tells a subscriber nothing about the publisher, and `ce-source` is a header anyone
//! allowed to publish on a subject can set. A service holding an nkey (ed25519) signs each
//! event it publishes: the header [`SIGNATURE`] carries its public key and a signature over
//!
//! ```text
//! eventhub-signature/1 \n <ce-source> \n <ce-id> \n <subject> \n <hex SHA-256 of the payload>
//! ```
//!
//! (the subject names the event type and version). A consumer given a [`Trust`] verifies
//! every event whose `ce-source` is a service the trust declares: an event without a
//! signature, signed by a key not declared for that service, or whose id, subject or payload
//! changed after signing is dead-lettered with reason `forged` and never handled. Events from
//! services the trust does not list are delivered as before (a trust can require signatures
//! from every source: [`Trust::require_all`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_nats::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::wire::headers;

/// The header of the signature: `<public nkey>.<base64url signature>`.
pub const SIGNATURE: &str = "eventhub-signature";

const CONTEXT: &str = "eventhub-signature/1";

/// What signing or trusting a key refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SigningError(String);

/// Signs what a service publishes with its nkey (an ed25519 key; `S…` seed).
#[derive(Clone)]
pub struct Signer {
    key: Arc<nkeys::KeyPair>,
    public: Arc<str>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the seed.
        f.debug_struct("Signer")
            .field("public_key", &self.public)
            .finish()
    }
}

impl Signer {
    /// A signer from an nkey seed (`SU…`, as `eventhub config nkeys` writes them).
    pub fn from_seed(seed: &str) -> Result<Self, SigningError> {
        let key = nkeys::KeyPair::from_seed(seed.trim())
            .map_err(|e| SigningError(format!("the signing seed is not a valid nkey seed: {e}")))?;
        Ok(Self {
            public: key.public_key().into(),
            key: Arc::new(key),
        })
    }

    /// Its public key (`U…`): what a [`Trust`] declares for the service.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The [`SIGNATURE`] header value for an event.
    pub fn sign(&self, source: &str, id: &str, subject: &str, payload: &[u8]) -> String {
        let signed = signed_bytes(source, id, subject, payload);
        // An nkey made from a seed always holds its private key: signing cannot fail.
        let signature = self.key.sign(&signed).unwrap_or_default();
        format!("{}.{}", self.public, URL_SAFE_NO_PAD.encode(signature))
    }
}

/// The public keys each service signs with, and which service publishes which event type:
/// what a consumer checks events against.
#[derive(Clone, Default)]
pub struct Trust {
    keys: HashMap<String, Vec<(String, Arc<nkeys::KeyPair>)>>,
    require_all: bool,
    /// Event type -> the service that publishes it.
    publishers: HashMap<String, String>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut services: Vec<_> = self
            .keys
            .iter()
            .map(|(s, k)| (s, k.iter().map(|(p, _)| p).collect::<Vec<_>>()))
            .collect();
        services.sort();
        let mut publishers: Vec<_> = self.publishers.iter().collect();
        publishers.sort();
        f.debug_struct("Trust")
            .field("services", &services)
            .field("require_all", &self.require_all)
            .field("publishers", &publishers)
            .finish()
    }
}

impl PartialEq for Trust {
    fn eq(&self, other: &Self) -> bool {
        let keys = |t: &Trust| {
            let mut v: Vec<_> = t
                .keys
                .iter()
                .map(|(s, k)| {
                    (
                        s.clone(),
                        k.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        self.require_all == other.require_all
            && keys(self) == keys(other)
            && self.publishers == other.publishers
    }
}

impl Eq for Trust {}

impl Trust {
    /// Trusts nothing and requires nothing: add services with [`Trust::service`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Events whose `ce-source` is `service` must be signed by one of `public_keys` (`U…`;
    /// two during a key rotation).
    pub fn service<I, K>(mut self, service: &str, public_keys: I) -> Result<Self, SigningError>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for key in public_keys {
            let key = key.as_ref().trim();
            let pair = nkeys::KeyPair::from_public_key(key)
                .ok()
                .filter(|_| key.starts_with('U'))
                .ok_or_else(|| {
                    SigningError(format!(
                        "`{key}` (declared for service `{service}`) is not a user's public nkey \
                         (56 characters starting with `U`)"
                    ))
                })?;
            parsed.push((key.to_string(), Arc::new(pair)));
        }
        if parsed.is_empty() {
            return Err(SigningError(format!(
                "service `{service}` is trusted with no public key"
            )));
        }
        self.keys
            .entry(service.to_string())
            .or_default()
            .extend(parsed);
        Ok(self)
    }

    /// Requires a valid signature from every event, whatever its source: an event from a
    /// source the trust does not declare is forged.
    pub fn require_all(mut self) -> Self {
        self.require_all = true;
        self
    }

    /// Declares `service` as the publisher of `event_type` (`user.created`), as the declaration
    /// of services does. The server publishes the events of a schedule itself, whatever the
    /// permissions of the service that stored it: a scheduled event of a type whose declared
    /// publisher is not its `ce-source` is forged.
    pub fn publisher(mut self, event_type: &str, service: &str) -> Self {
        self.publishers
            .insert(event_type.to_string(), service.to_string());
        self
    }

    /// The declared publisher of `event_type`, if any.
    pub fn publisher_of(&self, event_type: &str) -> Option<&str> {
        self.publishers.get(event_type).map(String::as_str)
    }

    /// Whether events from `service` must be signed.
    pub fn declares(&self, service: &str) -> bool {
        self.keys.contains_key(service)
    }

    /// Checks an event's signature. `Ok(Some(key))`: signed by `key`, declared for its source;
    /// `Ok(None)`: its source need not sign; `Err`: forged, saying why.
    pub fn verify(
        &self,
        hdrs: &HeaderMap,
        subject: &str,
        payload: &[u8],
    ) -> Result<Option<&str>, String> {
        let header = |name: &str| hdrs.get(name).map(|v| v.as_str());
        let source = header(headers::SOURCE);
        let declared = source.and_then(|s| self.keys.get(s));
        let Some(keys) = declared else {
            if self.require_all {
                return Err(match source {
                    Some(s) => format!("source `{s}` is not a service this consumer trusts"),
                    None => {
                        "no ce-source: every event must be signed by a trusted service".to_string()
                    }
                });
            }
            return Ok(None);
        };
        let source = source.unwrap_or_default();
        let Some(value) = header(SIGNATURE) else {
            return Err(format!(
                "not signed, yet its ce-source `{source}` is a service that signs its events"
            ));
        };
        let Some((public, signature)) = value.split_once('.') else {
            return Err(format!("malformed {SIGNATURE} header"));
        };
        let Some((key, pair)) = keys.iter().find(|(k, _)| k == public) else {
            return Err(format!(
                "signed by {public}, which is not a key of service `{source}`"
            ));
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| format!("malformed {SIGNATURE} header"))?;
        let id = header(headers::ID).unwrap_or_default();
        pair.verify(&signed_bytes(source, id, subject, payload), &signature)
            .map_err(|_| {
                format!(
                    "the signature of service `{source}` does not match the event (its id, \
                     subject or payload changed after signing, or it was signed for another event)"
                )
            })?;
        Ok(Some(key))
    }
}

fn signed_bytes(source: &str, id: &str, subject: &str, payload: &[u8]) -> Vec<u8> {
    let digest = Sha256::digest(payload);
    let mut out = Vec::with_capacity(CONTEXT.len() + source.len() + id.len() + subject.len() + 68);
    for part in [CONTEXT, source, id, subject] {
        out.extend_from_slice(part.as_bytes());
        out.push(b'\n');
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in digest {
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0xf)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(signer: Option<&Signer>, source: &str, id: &str, payload: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(headers::SOURCE, source);
        h.insert(headers::ID, id);
        if let Some(signer) = signer {
            h.insert(
                SIGNATURE,
                signer
                    .sign(source, id, "events.payment.created.v1", payload)
                    .as_str(),
            );
        }
        h
    }

    #[test]
    fn only_what_the_declared_key_signed_verifies() {
        let payments = Signer::from_seed(&nkeys::KeyPair::new_user().seed().unwrap()).unwrap();
        let other = Signer::from_seed(&nkeys::KeyPair::new_user().seed().unwrap()).unwrap();
        let trust = Trust::new()
            .service("payments", [payments.public_key()])
            .unwrap();
        let subject = "events.payment.created.v1";
        let ok = event(Some(&payments), "payments", "e1", b"{}");
        assert_eq!(
            trust.verify(&ok, subject, b"{}"),
            Ok(Some(payments.public_key()))
        );
        let cases = [
            (
                "unsigned",
                event(None, "payments", "e1", b"{}"),
                subject,
                &b"{}"[..],
            ),
            (
                "foreign key",
                event(Some(&other), "payments", "e1", b"{}"),
                subject,
                b"{}",
            ),
            ("payload changed", ok.clone(), subject, b"{\"x\":1}"),
            (
                "subject changed",
                ok.clone(),
                "events.payment.created.v2",
                b"{}",
            ),
        ];
        for (name, h, subject, payload) in cases {
            assert!(trust.verify(&h, subject, payload).is_err(), "{name}");
        }
        let mut relabelled = ok.clone();
        relabelled.insert(headers::ID, "e2");
        assert!(
            trust.verify(&relabelled, subject, b"{}").is_err(),
            "id changed"
        );
        // Another source is not checked unless every source must sign.
        let auth = event(None, "auth", "e3", b"{}");
        assert_eq!(trust.verify(&auth, subject, b"{}"), Ok(None));
        assert!(
            trust
                .clone()
                .require_all()
                .verify(&auth, subject, b"{}")
                .is_err()
        );
    }

    #[test]
    fn a_trust_refuses_what_is_not_a_user_public_key() {
        let seed = nkeys::KeyPair::new_user().seed().unwrap();
        assert!(Trust::new().service("payments", [seed.as_str()]).is_err());
        assert!(Trust::new().service("payments", ["Ubogus"]).is_err());
        assert!(
            Trust::new()
                .service("payments", Vec::<String>::new())
                .is_err()
        );
        assert!(Signer::from_seed("SUnot-a-seed").is_err());
    }
}
