//! Sending: each input's fate decided by the oracle first, then sent, one at a time (the
//! preconditions are about the stream's state, which only these publishes change).

use anyhow::bail;
use async_nats::jetstream::{self, context::PublishErrorKind};
use eventhub::DeadLetter;
use eventhub::Publisher;
use eventhub::topology::DLQ_STREAM;
use eventhub::wire::headers;
use eventhub_catalog::events::user;

use super::inputs::{Class, Generator, Input, Via};
use super::ledger::{Disagreement, Header, Sent};
use super::oracle::{self, Data, Publish, Reading, Refusal, StreamState};
use super::rig::PLAIN;

/// The two producers and what they sent.
pub(crate) struct Sender {
    /// The SDK's publisher.
    publisher: Publisher,
    /// A foreign producer: plain async-nats, no eventhub.
    foreign: jetstream::Context,
    max_payload: usize,
    /// The stream as the oracle models it.
    pub(crate) state: StreamState,
    pub(crate) sent: Vec<Sent>,
    pub(crate) disagreements: Vec<Disagreement>,
}

/// The JetStream error code in a publish error, if the server sent one.
fn error_code(e: &jetstream::context::PublishError) -> Option<u16> {
    let source = std::error::Error::source(e).map(|s| s.to_string());
    let text = format!("{e} {source:?}");
    let at = text.find("error code ")? + "error code ".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn describe(p: &Publish) -> String {
    match p {
        Publish::Stored => "stored".into(),
        Publish::Duplicate => "dropped as a duplicate".into(),
        Publish::Refused(Refusal::TooLarge) => "refused: over max_payload".into(),
        Publish::Refused(Refusal::OutsideCatalog) => "refused: no stream captures it".into(),
        Publish::Refused(Refusal::Code(c)) => format!("refused with error code {c:?}"),
    }
}

/// Whether a stream of the catalog captures `subject` in IDENTITY.
fn captured(subject: &str) -> bool {
    eventhub_catalog::events::CATALOG
        .iter()
        .any(|e| e.subject == subject && e.stream == oracle::STREAM)
}

fn header_map(headers: &[Header]) -> async_nats::HeaderMap {
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in headers {
        map.append(name.as_str(), value.as_str());
    }
    map
}

/// The headers of a dead letter as `(name, value)` lines.
fn lines(letter: &DeadLetter) -> impl Iterator<Item = Header> + '_ {
    letter.headers.iter().flat_map(|(n, vs)| {
        vs.iter()
            .map(move |v| (AsRef::<str>::as_ref(n).to_string(), v.to_string()))
    })
}

impl Sender {
    pub(crate) fn new(
        publisher: Publisher,
        foreign: jetstream::Context,
        max_payload: usize,
    ) -> Self {
        Self {
            publisher,
            foreign,
            max_payload,
            state: StreamState::default(),
            sent: Vec::new(),
            disagreements: Vec::new(),
        }
    }

    /// Sends one input and records what the oracle expected and what happened.
    pub(crate) async fn send(&mut self, input: Input) -> anyhow::Result<()> {
        let n = self.sent.len();
        let (expected, sequence, received, key) = match &input.via {
            Via::Sdk(version) => {
                let receipt = match version {
                    1 => {
                        let e: user::CreatedV1 = serde_json::from_slice(&input.data.bytes)?;
                        self.publisher.publish(&e).await
                    }
                    _ => {
                        let e: user::CreatedV2 = serde_json::from_slice(&input.data.bytes)?;
                        self.publisher.publish(&e).await
                    }
                };
                match receipt {
                    Ok(r) if !r.duplicate => {
                        let h = [("Nats-Msg-Id".to_string(), r.id.clone())];
                        self.state.stored(&input.subject, r.sequence, &h);
                        (Publish::Stored, Some(r.sequence), Vec::new(), r.id)
                    }
                    other => bail!(
                        "input {n} ({}): the SDK did not store a valid event: {other:?}",
                        input.what
                    ),
                }
            }
            Via::Raw(h) => {
                let expected = oracle::server(
                    &self.state,
                    &input.subject,
                    h,
                    input.data.bytes.len(),
                    self.max_payload,
                    captured,
                );
                let result = match self
                    .foreign
                    .publish_with_headers(
                        input.subject.clone(),
                        header_map(h),
                        input.data.bytes.clone().into(),
                    )
                    .await
                {
                    Ok(ack) => ack.await,
                    Err(e) => Err(e),
                };
                let (got, sequence) = match &result {
                    Ok(ack) if ack.duplicate => (Publish::Duplicate, None),
                    Ok(ack) => (Publish::Stored, Some(ack.sequence)),
                    Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                        (Publish::Refused(Refusal::TooLarge), None)
                    }
                    Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                        (Publish::Refused(Refusal::OutsideCatalog), None)
                    }
                    Err(e) => match error_code(e) {
                        Some(code) => (Publish::Refused(Refusal::Code(vec![code])), None),
                        None => bail!("input {n} ({}): publish failed: {e}", input.what),
                    },
                };
                let agrees = match (&expected, &got) {
                    (Publish::Refused(Refusal::Code(want)), Publish::Refused(Refusal::Code(c))) => {
                        want.contains(&c[0])
                    }
                    (a, b) => a == b,
                };
                if !agrees {
                    self.disagreements.push(Disagreement {
                        n: Some(n),
                        class: input.class,
                        what: input.what.clone(),
                        detail: format!(
                            "publish: expected {}, got {} ({:?})",
                            describe(&expected),
                            describe(&got),
                            result.as_ref().err().map(|e| e.to_string())
                        ),
                    });
                }
                if let Some(seq) = sequence {
                    self.state.stored(&input.subject, seq, h);
                }
                let received = oracle::received(h);
                let key = oracle::event_id(&received)
                    .unwrap_or_else(|| format!("{}:{}", oracle::STREAM, sequence.unwrap_or(0)));
                (expected, sequence, received, key)
            }
        };
        let version = eventhub::wire::parse_subject(&input.subject).map_or(0, |(_, v)| v);
        let reading = match input.via {
            Via::Sdk(_) => Ok(()),
            Via::Raw(_) => oracle::consume(version, &received, &input.data),
        };
        let replay_for = oracle::first(&received, headers::REPLAY_FOR).map(str::to_string);
        self.sent.push(Sent {
            n,
            input,
            expected,
            sequence,
            received,
            reading,
            key,
            replay_for,
            vouched: false,
            check_headers: true,
        });
        Ok(())
    }

    /// Records an input eventhub or this sender stored outside [`Sender::send`].
    #[allow(clippy::too_many_arguments)]
    fn stored(
        &mut self,
        what: String,
        subject: &str,
        sequence: u64,
        received: Vec<Header>,
        data: Data,
        reading: Reading,
        key: String,
        vouched: bool,
        check_headers: bool,
    ) {
        let replay_for = oracle::first(&received, headers::REPLAY_FOR).map(str::to_string);
        self.sent.push(Sent {
            n: self.sent.len(),
            input: Input {
                class: Class::Replay,
                what,
                subject: subject.to_string(),
                via: Via::Raw(received.clone()),
                data,
            },
            expected: Publish::Stored,
            sequence: Some(sequence),
            received,
            reading,
            key,
            replay_for,
            vouched,
            check_headers,
        });
    }

    /// Publishes as the foreign producer; the stream sequence.
    async fn publish_raw(
        &mut self,
        subject: &str,
        headers: &[Header],
        payload: bytes::Bytes,
    ) -> anyhow::Result<u64> {
        let ack = self
            .foreign
            .publish_with_headers(subject.to_string(), header_map(headers), payload)
            .await?
            .await?;
        self.state.stored(subject, ack.sequence, headers);
        Ok(ack.sequence)
    }

    /// Replays up to `n` of the plain consumer's dead letters (only it may handle a replay),
    /// sends a byte-for-byte copy of each replay as a producer can (the replay record vouches
    /// for its bytes), and moves each replay's marks onto another event (it does not).
    pub(crate) async fn replays(
        &mut self,
        client: &eventhub::Client,
        generator: &mut Generator,
        n: usize,
    ) -> anyhow::Result<()> {
        let poison = client
            .dead_letters()
            .list(
                &eventhub::dlq::DeadLetterFilter::default()
                    .consumer(PLAIN)
                    .limit(n),
            )
            .await?;
        for letter in &poison {
            let Some(original) = self
                .sent
                .iter()
                .find(|s| s.sequence == Some(letter.sequence))
            else {
                continue;
            };
            let data = original.input.data.clone();
            let version = eventhub::wire::parse_subject(&letter.subject).map_or(0, |(_, v)| v);
            let replayed = client.dead_letters().replay(letter.id).await?;
            self.state.stored(&letter.subject, replayed.sequence, &[]);
            // What the replay carries: the original's headers but those the server acts on
            // (and any old marks), then its marks when they fit.
            let mut carried: Vec<Header> = lines(letter)
                .filter(|(n, _)| {
                    let lower = n.to_ascii_lowercase();
                    !lower.starts_with("nats-") && !lower.starts_with("eventhub-replay-")
                })
                .collect();
            let marks = [
                (
                    headers::REPLAY_OF.to_string(),
                    format!("{DLQ_STREAM}:{}", letter.id),
                ),
                (headers::REPLAY_FOR.to_string(), PLAIN.to_string()),
            ];
            if replayed.targeted {
                carried.extend(marks.iter().cloned());
            }
            let received = oracle::received(&carried);
            let reading = oracle::consume(version, &received, &data);
            let key = oracle::event_id(&received)
                .unwrap_or_else(|| format!("{}:{}", oracle::STREAM, replayed.sequence));
            self.stored(
                format!("replay of dead letter {}", letter.id),
                &letter.subject,
                replayed.sequence,
                received,
                data.clone(),
                reading.clone(),
                key,
                replayed.targeted,
                false,
            );
            if !replayed.targeted {
                continue;
            }
            // A producer copies the replay: same bytes and marks, its own message id.
            let mut copy = carried.clone();
            copy.push(("Nats-Msg-Id".into(), generator.fresh_id()));
            let sequence = self
                .publish_raw(&letter.subject, &copy, letter.payload.clone())
                .await?;
            let received = oracle::received(&copy);
            let key = oracle::event_id(&received).unwrap_or_default();
            self.stored(
                format!("copy of the replay of dead letter {}", letter.id),
                &letter.subject,
                sequence,
                received,
                data,
                reading,
                key,
                true,
                true,
            );
            // Its marks on another event: no record vouches for these bytes.
            let other = generator.valid_data();
            let id = generator.fresh_id();
            let mut moved = vec![("ce-id".to_string(), id.clone())];
            moved.extend(marks.iter().cloned());
            let sequence = self
                .publish_raw(&letter.subject, &moved, other.bytes.clone().into())
                .await?;
            self.stored(
                format!("marks of the replay of dead letter {} moved", letter.id),
                &letter.subject,
                sequence,
                oracle::received(&moved),
                other,
                Ok(()),
                id,
                false,
                true,
            );
        }
        Ok(())
    }
}
