//! Field-level encryption of the fields a schema marks `"x-sensitive": true`.
//!
//! Publishing an event with such fields ([`Event::SENSITIVE`](crate::Event::SENSITIVE)) encrypts each present string
//! value with the client's active key ([`ConnectOptions::keyring`](crate::ConnectOptions::keyring))
//! before it is encoded (JSON or protobuf: the ciphertext is a string), and names the key in the
//! header [`ENCRYPTION_KEY`](crate::wire::headers::ENCRYPTION_KEY). Without a key the publish fails
//! with [`PublishErrorKind::NoEncryptionKey`] and
//! nothing is sent: plaintext never leaves the service.
//!
//! A consumer that holds the named key gets the event decrypted. One that does not (no keyring,
//! or a keyring without that key) gets the event as stored, the marked fields holding their
//! ciphertext, and its handler runs. A field that does not decrypt with a key the consumer holds
//! (altered, or moved from another field or event) makes the event poison: it is dead-lettered
//! with [`DecodeErrorKind::Decryption`].
//!
//! Without the cargo feature `encryption` (on by default) the types stay (a keyring still
//! loads), but nothing is sealed: publishing an event with `x-sensitive` fields fails with
//! [`PublishErrorKind::NoEncryptionKey`], and consumers get those fields as ciphertext, as a
//! consumer without the key does.
//!
//! The encrypted value: `enc:v1:<key id>:<base64url, unpadded, of nonce ‖ ciphertext ‖ tag>`,
//! AES-256-GCM with a random 96-bit nonce per value. The associated data binds the value to its
//! place: `<event type>.v<version>` NUL `<JSON pointer of the field>` NUL `<event id>`
//! (e.g. `user.contact-changed.v1\0/recovery_emails/0\0019a…`), so a ciphertext copied into
//! another field, event type or event does not decrypt.

mod keyring;

#[cfg(feature = "encryption")]
use aes_gcm::aead::{Aead, AeadCore, OsRng, Payload};
use async_nats::HeaderMap;
#[cfg(feature = "encryption")]
use base64::Engine;
#[cfg(feature = "encryption")]
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

pub use keyring::{
    ACTIVE_KEY_VAR, KEY_FILE_VAR, KEY_LEN, KEYS_VAR, Keyring, KeyringError, KeyringErrorKind,
};

use crate::error::{DecodeError, DecodeErrorKind, PublishError, PublishErrorKind};
use crate::wire::headers;

/// How every encrypted value starts.
pub const PREFIX: &str = "enc:v1:";

/// Bytes of the AES-GCM nonce.
#[cfg(feature = "encryption")]
const NONCE_LEN: usize = 12;
/// Bytes of the AES-GCM tag.
#[cfg(feature = "encryption")]
const TAG_LEN: usize = 16;

/// Decrypts the `x-sensitive` fields of received events with the key their header names.
/// Made by the consumer for an event whose key it holds; generated
/// [`Consumable::decode_decrypting`](crate::Consumable::decode_decrypting) implementations call
/// [`decode_decrypting`](crate::wire::decode_decrypting), which calls
/// [`Decryptor::open_fields`].
#[derive(Debug)]
pub struct Decryptor<'a> {
    keyring: &'a Keyring,
    key_id: &'a str,
    event_id: &'a str,
}

impl<'a> Decryptor<'a> {
    /// A decryptor for an event with id `event_id` whose header names key `key_id`.
    pub(crate) fn new(keyring: &'a Keyring, key_id: &'a str, event_id: &'a str) -> Self {
        Self {
            keyring,
            key_id,
            event_id,
        }
    }

    /// The id of the event being decrypted, for error messages.
    pub fn event_id(&self) -> &str {
        self.event_id
    }

    /// Decrypts, in `value` (an event of `event_type` v`version`), every field at the JSON
    /// pointers `sensitive` (`*` for any array index). The error names the field and key,
    /// never a value.
    pub fn open_fields(
        &self,
        event_type: &str,
        version: u32,
        sensitive: &[&str],
        value: &mut Value,
    ) -> Result<(), DecodeError> {
        let failed = |detail: String| {
            DecodeError::new(
                DecodeErrorKind::Decryption,
                format!(
                    "{event_type} v{version} (event {}): {detail}",
                    self.event_id
                ),
            )
        };
        let key = self
            .keyring
            .get(self.key_id)
            .ok_or_else(|| failed(format!("key `{}` is not in the keyring", self.key_id)))?;
        let place = Place {
            event_type,
            version,
            event_id: self.event_id,
        };
        for path in sensitive {
            visit(value, path, &mut |pointer, field| {
                let Value::String(text) = field else {
                    return Err(failed(format!("field `{pointer}` is not a string")));
                };
                *text = open(key, &place.aad(pointer), text).map_err(|why| {
                    failed(format!(
                        "field `{pointer}` does not decrypt with key `{}`: {why}",
                        self.key_id
                    ))
                })?;
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// Where a value sits, bound into its ciphertext as associated data.
struct Place<'a> {
    event_type: &'a str,
    version: u32,
    event_id: &'a str,
}

impl Place<'_> {
    fn aad(&self, pointer: &str) -> Vec<u8> {
        format!(
            "{}.v{}\0{pointer}\0{}",
            self.event_type, self.version, self.event_id
        )
        .into_bytes()
    }
}

/// What is being sealed: an event of `event_type` v`version`, its fields at `sensitive`.
pub(crate) struct Sealing<'a> {
    pub(crate) event_type: &'a str,
    pub(crate) version: u32,
    pub(crate) sensitive: &'a [&'a str],
    /// The publishing service, for the error saying it holds no key.
    pub(crate) service: &'a str,
}

/// The event `value` (with id `event_id`) as a JSON value whose sensitive fields are encrypted
/// with the keyring's active key. Fails when there is no keyring.
pub(crate) fn seal(
    keyring: Option<&Keyring>,
    target: &Sealing<'_>,
    event_id: &str,
    mut value: Value,
) -> Result<Value, PublishError> {
    let what = format!("{} v{} (id {event_id})", target.event_type, target.version);
    if !cfg!(feature = "encryption") {
        return Err(PublishError::new(
            PublishErrorKind::NoEncryptionKey,
            format!(
                "{what} has fields marked x-sensitive ({}) and this build of eventhub has no \
                 encryption (cargo feature `encryption`); nothing was sent",
                target.sensitive.join(", "),
            ),
        ));
    }
    let Some(keyring) = keyring else {
        return Err(PublishError::new(
            PublishErrorKind::NoEncryptionKey,
            format!(
                "{what} has fields marked x-sensitive ({}) and service `{}` holds no encryption \
                 key: set {KEYS_VAR} or {KEY_FILE_VAR}, or ConnectOptions::keyring; nothing was \
                 sent",
                target.sensitive.join(", "),
                target.service
            ),
        ));
    };
    let key = keyring.active();
    let place = Place {
        event_type: target.event_type,
        version: target.version,
        event_id,
    };
    for path in target.sensitive {
        visit(&mut value, path, &mut |pointer, field| match field {
            Value::String(text) => {
                *text = seal_text(key, &place.aad(pointer), text).map_err(|why| {
                    PublishError::new(
                        PublishErrorKind::Encode,
                        format!("cannot encrypt field `{pointer}` of {what}: {why}"),
                    )
                })?;
                Ok(())
            }
            other => Err(PublishError::new(
                PublishErrorKind::Encode,
                format!(
                    "field `{pointer}` of {what} is marked x-sensitive and must be a string, \
                     found {}",
                    crate::wire::codec::json_kind(other)
                ),
            )),
        })?;
    }
    Ok(value)
}

/// Adds the header naming the key [`seal`] encrypted with (a client's keyring does not
/// change, so it is the key of the payload).
pub(crate) fn mark(h: &mut HeaderMap, keyring: Option<&Keyring>) {
    if let Some(keyring) = keyring {
        h.insert(headers::ENCRYPTION_KEY, keyring.active_key_id());
    }
}

/// Without the `encryption` feature nothing is sealed or opened.
#[cfg(not(feature = "encryption"))]
const WITHOUT: &str = "this build of eventhub has no encryption (cargo feature `encryption`)";

#[cfg(not(feature = "encryption"))]
fn seal_text(_: &keyring::Key, _: &[u8], _: &str) -> Result<String, &'static str> {
    Err(WITHOUT)
}

#[cfg(not(feature = "encryption"))]
fn open(_: &keyring::Key, _: &[u8], _: &str) -> Result<String, String> {
    Err(WITHOUT.into())
}

/// `enc:v1:<kid>:<base64url(nonce ‖ ciphertext ‖ tag)>`
#[cfg(feature = "encryption")]
fn seal_text(key: &keyring::Key, aad: &[u8], plaintext: &str) -> Result<String, &'static str> {
    let nonce = aes_gcm::Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = key
        .cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext.as_bytes(),
                aad,
            },
        )
        .map_err(|_| "the value is too long for AES-GCM")?;
    let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&sealed);
    Ok(format!(
        "{PREFIX}{}:{}",
        key.id,
        URL_SAFE_NO_PAD.encode(blob)
    ))
}

/// The plaintext of an encrypted value. The reasons never contain the value.
#[cfg(feature = "encryption")]
fn open(key: &keyring::Key, aad: &[u8], text: &str) -> Result<String, String> {
    let Some(rest) = text.strip_prefix(PREFIX) else {
        return Err(
            "it is not encrypted (no `enc:v1:` prefix), though the event says it is".into(),
        );
    };
    let Some((id, data)) = rest.split_once(':') else {
        return Err("it is malformed (no key id)".into());
    };
    if id != key.id {
        return Err(format!(
            "it names key `{}`",
            id.chars().take(64).collect::<String>().escape_debug()
        ));
    }
    let blob = URL_SAFE_NO_PAD
        .decode(data)
        .map_err(|_| "its data is not base64url".to_string())?;
    if blob.len() < NONCE_LEN + TAG_LEN {
        return Err("its data is truncated".into());
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let plain = key
        .cipher
        .decrypt(nonce.into(), Payload { msg: sealed, aad })
        .map_err(|_| {
            "authentication failed: the ciphertext was altered, or belongs to another field, \
             event type or event"
                .to_string()
        })?;
    String::from_utf8(plain).map_err(|_| "the plaintext is not UTF-8".to_string())
}

/// Calls `f` with the JSON pointer and the value of every non-null value at `path` (a JSON
/// pointer whose `*` tokens stand for every item of an array). Absent values are skipped.
fn visit<E>(
    value: &mut Value,
    path: &str,
    f: &mut impl FnMut(&str, &mut Value) -> Result<(), E>,
) -> Result<(), E> {
    let tokens: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut pointer = String::new();
    visit_tokens(value, &tokens, &mut pointer, f)
}

fn visit_tokens<E>(
    value: &mut Value,
    tokens: &[String],
    pointer: &mut String,
    f: &mut impl FnMut(&str, &mut Value) -> Result<(), E>,
) -> Result<(), E> {
    let Some((token, rest)) = tokens.split_first() else {
        return match value {
            Value::Null => Ok(()),
            other => f(pointer, other),
        };
    };
    let len = pointer.len();
    match value {
        Value::Array(items) if token == "*" => {
            for (i, item) in items.iter_mut().enumerate() {
                pointer.push('/');
                pointer.push_str(&i.to_string());
                visit_tokens(item, rest, pointer, f)?;
                pointer.truncate(len);
            }
        }
        Value::Object(map) => {
            if let Some(child) = map.get_mut(token.as_str()) {
                pointer.push('/');
                pointer.push_str(&token.replace('~', "~0").replace('/', "~1"));
                visit_tokens(child, rest, pointer, f)?;
                pointer.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(all(test, feature = "encryption"))]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(id: &str, fill: u8) -> Keyring {
        Keyring::new(id, [fill; KEY_LEN]).unwrap()
    }

    const PLACE: Place<'static> = Place {
        event_type: "user.contact-changed",
        version: 1,
        event_id: "0190a000-0000-7000-8000-000000000001",
    };

    #[test]
    fn a_value_round_trips_in_the_documented_format() {
        let ring = key("k1", 1);
        let sealed = seal_text(ring.active(), &PLACE.aad("/email"), "ada@example.com").unwrap();
        let data = sealed
            .strip_prefix("enc:v1:k1:")
            .expect("prefix and key id");
        let blob = URL_SAFE_NO_PAD.decode(data).unwrap();
        assert_eq!(blob.len(), NONCE_LEN + "ada@example.com".len() + TAG_LEN);
        assert!(!sealed.contains("ada"));
        assert_eq!(
            open(ring.active(), &PLACE.aad("/email"), &sealed).unwrap(),
            "ada@example.com"
        );
        // A fresh nonce each time: equal values do not give equal ciphertexts.
        let again = seal_text(ring.active(), &PLACE.aad("/email"), "ada@example.com").unwrap();
        assert_ne!(sealed, again);
        // The documented layout, decrypted without this module's helpers.
        use aes_gcm::KeyInit;
        let cipher = aes_gcm::Aes256Gcm::new(&[1u8; KEY_LEN].into());
        let aad = b"user.contact-changed.v1\0/email\x000190a000-0000-7000-8000-000000000001";
        let plain = cipher
            .decrypt(
                blob[..NONCE_LEN].into(),
                Payload {
                    msg: &blob[NONCE_LEN..],
                    aad,
                },
            )
            .unwrap();
        assert_eq!(plain, b"ada@example.com");
    }

    #[test]
    fn a_value_does_not_open_elsewhere_altered_or_with_another_key() {
        let ring = key("k1", 1);
        let sealed = seal_text(ring.active(), &PLACE.aad("/email"), "ada@example.com").unwrap();
        let other_event = Place {
            event_id: "0190a000-0000-7000-8000-000000000002",
            ..PLACE
        };
        let other_type = Place {
            event_type: "user.created",
            ..PLACE
        };
        let other_version = Place {
            version: 2,
            ..PLACE
        };
        for aad in [
            PLACE.aad("/phone"),
            other_event.aad("/email"),
            other_type.aad("/email"),
            other_version.aad("/email"),
        ] {
            let e = open(ring.active(), &aad, &sealed).unwrap_err();
            assert!(e.contains("authentication failed"), "{e}");
        }
        // One character of the data changed.
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(open(ring.active(), &PLACE.aad("/email"), &altered).is_err());
        // Same id, another key.
        let impostor = key("k1", 2);
        assert!(open(impostor.active(), &PLACE.aad("/email"), &sealed).is_err());
        let e = open(key("k2", 1).active(), &PLACE.aad("/email"), &sealed).unwrap_err();
        assert_eq!(e, "it names key `k1`");
        for bad in [
            "ada@example.com",
            "enc:v1:k1",
            "enc:v1:k1:%%",
            "enc:v1:k1:AAAA",
        ] {
            let e = open(ring.active(), &PLACE.aad("/email"), bad).unwrap_err();
            assert!(!e.contains("ada"), "{e}");
        }
    }

    #[test]
    fn paths_reach_nested_fields_and_array_items_and_skip_absent_ones() {
        let mut value = json!({
            "email": "a@x",
            "phone": null,
            "contacts": [{"phone": "1"}, {"name": "n"}, {"phone": "3"}],
            "tags": ["t0", "t1"],
            "a/b": "slash"
        });
        let mut seen = Vec::new();
        for path in [
            "/email",
            "/phone",
            "/missing",
            "/contacts/*/phone",
            "/tags/*",
            "/a~1b",
            "/email/*",
        ] {
            visit(&mut value, path, &mut |pointer, v: &mut Value| {
                seen.push((pointer.to_string(), v.clone()));
                *v = json!("x");
                Ok::<(), ()>(())
            })
            .unwrap();
        }
        let pointers: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/email",
                "/contacts/0/phone",
                "/contacts/2/phone",
                "/tags/0",
                "/tags/1",
                "/a~1b"
            ]
        );
        assert_eq!(value["contacts"][1], json!({"name": "n"}));
        assert_eq!(value["phone"], Value::Null);
    }
}
