//! Events as the patterns store them: encoded with their type and version, and read back.

use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use eventhub::wire::{RawEvent, headers};
use eventhub::{Event, TraceContext};

/// Header carrying the event version where the subject does not (aggregate streams).
pub const VERSION_HEADER: &str = "eventhub-version";

/// Why an event cannot be encoded for storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The event does not match its JSON Schema; nothing was stored.
    #[error("{event_type} v{version} does not match its schema: {violations}")]
    Invalid {
        /// The event type.
        event_type: &'static str,
        /// The version.
        version: u32,
        /// Every violation, by JSON pointer.
        violations: eventhub::wire::schema::Violations,
    },
    /// The event has fields its schema marks `x-sensitive`: aggregate streams keep events for
    /// ever and are read by replays, so they refuse what they would store in plaintext.
    #[error(
        "{event_type} v{version} has fields marked x-sensitive ({fields:?}); the patterns store \
         no encrypted fields, so keep them out of aggregate events"
    )]
    Sensitive {
        /// The event type.
        event_type: &'static str,
        /// The version.
        version: u32,
        /// The sensitive fields.
        fields: &'static [&'static str],
    },
    /// Serialization failed.
    #[error("{event_type} cannot be serialized: {source}")]
    Serialize {
        /// The event type.
        event_type: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
}

/// One event encoded as JSON, with what identifies its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// `user.created`
    pub event_type: &'static str,
    /// `2`
    pub version: u32,
    /// The schema id (`ce-dataschema`).
    pub schema_id: &'static str,
    /// The JSON payload.
    pub payload: Bytes,
}

impl Encoded {
    /// Encodes `event` as JSON after checking it against its schema.
    pub fn of<E: Event>(event: &E) -> Result<Self, EncodeError> {
        if !E::SENSITIVE.is_empty() {
            return Err(EncodeError::Sensitive {
                event_type: E::TYPE,
                version: E::VERSION,
                fields: E::SENSITIVE,
            });
        }
        let value = serde_json::to_value(event).map_err(|source| EncodeError::Serialize {
            event_type: E::TYPE,
            source,
        })?;
        E::validator()
            .check(&value)
            .map_err(|violations| EncodeError::Invalid {
                event_type: E::TYPE,
                version: E::VERSION,
                violations,
            })?;
        let payload = serde_json::to_vec(&value).map_err(|source| EncodeError::Serialize {
            event_type: E::TYPE,
            source,
        })?;
        Ok(Self {
            event_type: E::TYPE,
            version: E::VERSION,
            schema_id: E::SCHEMA_ID,
            payload: payload.into(),
        })
    }

    /// The CloudEvents headers of this event (binary mode), its version, and `Nats-Msg-Id`.
    pub(crate) fn headers(
        &self,
        id: &str,
        source: &str,
        correlation_id: &str,
        trace: &TraceContext,
    ) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(headers::SPECVERSION, "1.0");
        h.insert(headers::ID, id);
        h.insert(headers::TYPE, self.event_type);
        h.insert(headers::SOURCE, source);
        h.insert(
            headers::TIME,
            Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .as_str(),
        );
        h.insert(headers::DATASCHEMA, self.schema_id);
        h.insert(headers::CONTENT_TYPE, "application/json");
        h.insert(headers::CORRELATION_ID, correlation_id);
        h.insert(headers::TRACEPARENT, trace.header().as_str());
        h.insert(headers::MSG_ID, id);
        h.insert(VERSION_HEADER, self.version.to_string().as_str());
        h
    }
}

/// An event read back from a stream: its attributes and raw payload.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `ce-id`.
    pub id: String,
    /// `ce-type`.
    pub event_type: String,
    /// The version (`eventhub-version` header, else the subject's `v<N>`).
    pub version: u32,
    /// The subject it is stored on.
    pub subject: String,
    /// Its stream sequence.
    pub sequence: u64,
    /// `ce-time`, else the time a UUIDv7 `ce-id` holds, else when the stream stored it.
    pub time: DateTime<Utc>,
    /// `ce-correlationid`, if any.
    pub correlation_id: Option<String>,
    /// `content-type`, if any.
    pub content_type: Option<String>,
    /// The payload.
    pub payload: Bytes,
}

impl Recorded {
    /// Reads the attributes of a stored message. `None` when it carries no event type or
    /// version: not an event eventhub wrote, nor one on an `events.<type>.v<N>` subject.
    pub(crate) fn from_parts(
        subject: &str,
        sequence: u64,
        stored: DateTime<Utc>,
        h: Option<&HeaderMap>,
        payload: Bytes,
    ) -> Option<Self> {
        let get = |name: &str| h.and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
        // On an `events.<type>.v<N>` subject the subject decides (publish permissions are per
        // subject; a header is whatever the producer wrote); elsewhere the headers do.
        let (event_type, version) = match eventhub::wire::parse_subject(subject) {
            Some((t, v)) => (t.to_string(), v),
            None => (get(headers::TYPE)?, get(VERSION_HEADER)?.parse().ok()?),
        };
        Some(Self {
            id: get(headers::ID).unwrap_or_else(|| format!("{sequence}")),
            event_type,
            version,
            subject: subject.to_string(),
            sequence,
            // The lean wire format leaves out a time the event id holds.
            time: get(headers::TIME)
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc))
                .or_else(|| get(headers::ID).as_deref().and_then(headers::time_of_id))
                .unwrap_or(stored),
            correlation_id: get(headers::CORRELATION_ID),
            content_type: get(headers::CONTENT_TYPE),
            payload,
        })
    }

    /// The payload with its content type, to decode with a generated type
    /// (`Consumable::decode(version, &recorded.raw())`).
    pub fn raw(&self) -> RawEvent<'_> {
        RawEvent::new(self.content_type.as_deref(), &self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, *v);
        }
        h
    }

    #[test]
    fn the_subject_decides_type_and_version_where_it_names_them() {
        let forged = headers(&[("ce-type", "payment.created"), (VERSION_HEADER, "9")]);
        let r = Recorded::from_parts(
            "events.user.updated.v1",
            7,
            Utc::now(),
            Some(&forged),
            Bytes::new(),
        )
        .unwrap();
        assert_eq!((r.event_type.as_str(), r.version), ("user.updated", 1));

        let stored = headers(&[("ce-type", "user.created"), (VERSION_HEADER, "2")]);
        let r =
            Recorded::from_parts("es.user.u1", 8, Utc::now(), Some(&stored), Bytes::new()).unwrap();
        assert_eq!((r.event_type.as_str(), r.version), ("user.created", 2));

        let no_version = headers(&[("ce-type", "user.created")]);
        assert!(
            Recorded::from_parts("es.user.u1", 9, Utc::now(), Some(&no_version), Bytes::new())
                .is_none()
        );
        assert!(Recorded::from_parts("es.user.u1", 9, Utc::now(), None, Bytes::new()).is_none());
    }
}
