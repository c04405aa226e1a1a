//! The generator: inputs of every class, from a seeded random source.

mod data;
mod headers;

use std::fmt;

use eventhub::Event;
use eventhub_catalog::events::user;
use serde_json::{Value, json};

use super::oracle::{self, Data, Encoding, Fault, StreamState};
use super::rig::{IDEMPOTENT, PLAIN, STALLED};

/// What kind of input, for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Class {
    SdkValid,
    ForeignValid,
    NoCeId,
    Copies,
    ServerHeaders,
    NearMaxPayload,
    ForgedReplay,
    SchemaInvalid,
    ContentType,
    OutsideCatalog,
    Fuzz,
    /// Replays of dead letters, copies of them, and their marks on other events (made after
    /// the first inputs settle, not drawn by [`Generator::next`]).
    Replay,
}

impl Class {
    pub(crate) const ALL: [Class; 12] = [
        Class::SdkValid,
        Class::ForeignValid,
        Class::NoCeId,
        Class::Copies,
        Class::ServerHeaders,
        Class::NearMaxPayload,
        Class::ForgedReplay,
        Class::SchemaInvalid,
        Class::ContentType,
        Class::OutsideCatalog,
        Class::Fuzz,
        Class::Replay,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Class::SdkValid => "valid, SDK publisher",
            Class::ForeignValid => "valid, foreign headers",
            Class::NoCeId => "no ce-id",
            Class::Copies => "copies of one event id",
            Class::ServerHeaders => "Nats-* headers",
            Class::NearMaxPayload => "sizes up to max_payload",
            Class::ForgedReplay => "forged replay marks",
            Class::SchemaInvalid => "schema-invalid data",
            Class::ContentType => "content types",
            Class::OutsideCatalog => "subjects outside the catalog",
            Class::Fuzz => "header + payload fuzz",
            Class::Replay => "replays, copied, marks moved",
        }
    }

    /// How often the generator picks it (copies come in groups).
    fn weight(self) -> u32 {
        match self {
            Class::SdkValid => 14,
            Class::ForeignValid => 8,
            Class::NoCeId => 5,
            Class::Copies => 3,
            Class::ServerHeaders => 12,
            Class::NearMaxPayload => 2,
            Class::ForgedReplay => 6,
            Class::SchemaInvalid => 10,
            Class::ContentType => 8,
            Class::OutsideCatalog => 4,
            Class::Fuzz => 28,
            Class::Replay => 0,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who sends an input.
#[derive(Debug, Clone)]
pub(crate) enum Via {
    /// The SDK's publisher, a typed event of this version.
    Sdk(u32),
    /// Plain async-nats, these headers exactly.
    Raw(Vec<(String, String)>),
}

/// One generated input.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub(crate) class: Class,
    /// What it is, in a few words (for disagreements).
    pub(crate) what: String,
    pub(crate) subject: String,
    pub(crate) via: Via,
    pub(crate) data: Data,
}

impl Input {
    #[cfg(test)]
    pub(crate) fn headers(&self) -> &[(String, String)] {
        match &self.via {
            Via::Sdk(_) => &[],
            Via::Raw(h) => h,
        }
    }
}

/// The subject of a `user.created` version this build knows.
pub(crate) fn subject(version: u32) -> &'static str {
    match version {
        1 => <user::CreatedV1 as Event>::SUBJECT,
        _ => <user::CreatedV2 as Event>::SUBJECT,
    }
}

/// The generator's state: the random source, the stream as it should be, and what was sent.
pub(crate) struct Generator {
    pub(crate) rng: fastrand::Rng,
    pub(crate) max_payload: usize,
    n: usize,
    /// Message ids sent, so a duplicate can be sent on purpose.
    msg_ids: Vec<String>,
}

impl Generator {
    pub(crate) fn new(seed: u64, max_payload: usize) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            max_payload,
            n: 0,
            msg_ids: Vec::new(),
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.usize(..items.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.f64() < p
    }

    pub(crate) fn fresh_id(&mut self) -> String {
        self.n += 1;
        format!("{:016x}-{}", self.rng.u64(..), self.n)
    }

    fn version(&mut self) -> u32 {
        if self.chance(0.7) { 2 } else { 1 }
    }

    /// The next inputs (several for a group of copies).
    pub(crate) fn next(&mut self, state: &StreamState) -> Vec<Input> {
        let total: u32 = Class::ALL.iter().map(|c| c.weight()).sum();
        let mut roll = self.rng.u32(..total);
        let class = Class::ALL
            .into_iter()
            .find(|c| {
                if roll < c.weight() {
                    true
                } else {
                    roll -= c.weight();
                    false
                }
            })
            .unwrap_or(Class::Fuzz);
        match class {
            Class::SdkValid => vec![self.sdk_valid()],
            Class::ForeignValid => vec![self.foreign_valid()],
            Class::NoCeId => vec![self.no_ce_id()],
            Class::Copies => self.copies(),
            Class::ServerHeaders => vec![self.server_headers(state)],
            Class::NearMaxPayload => vec![self.near_max()],
            Class::ForgedReplay => vec![self.forged_replay()],
            Class::SchemaInvalid => vec![self.schema_invalid()],
            Class::ContentType => vec![self.content_type()],
            Class::OutsideCatalog => vec![self.outside_catalog()],
            Class::Fuzz | Class::Replay => vec![self.fuzz(state)],
        }
    }

    fn sdk_valid(&mut self) -> Input {
        let version = self.version();
        Input {
            class: Class::SdkValid,
            what: format!("v{version} via the SDK"),
            subject: subject(version).to_string(),
            via: Via::Sdk(version),
            data: self.valid_data(),
        }
    }

    fn foreign_valid(&mut self) -> Input {
        let version = self.version();
        let id = self.fresh_id();
        let mut h = self.ce_headers(&id);
        let mut data = self.valid_data();
        let what;
        match self.rng.u32(..5) {
            0 => {
                let ct = *self.pick(&[
                    "Application/JSON",
                    "APPLICATION/JSON; charset=utf-8",
                    "application/json;charset=UTF-8",
                    " application/json ",
                ]);
                what = format!("content-type {ct:?}");
                h.push(("content-type".into(), ct.into()));
            }
            1 => {
                data = self.protobuf(version);
                let ct = *self.pick(&["application/protobuf", "Application/X-Protobuf"]);
                what = format!("protobuf, {ct}");
                h.push(("content-type".into(), ct.into()));
            }
            2 => {
                what = "traceparent and times that do not parse".into();
                h.push(("traceparent".into(), "00-zz-yy-01".into()));
                h.push(("ce-time".into(), "not a time".into()));
                h.push(("ce-correlationid".into(), self.value()));
            }
            3 => {
                what = "repeated ce-id values".into();
                h.push(("ce-id".into(), self.fresh_id()));
            }
            _ => {
                what = "random extra headers".into();
                for _ in 0..self.rng.usize(1..6) {
                    let name = format!("x-{}", self.rng.u32(..100));
                    let value = self.value();
                    h.push((name, value));
                }
            }
        }
        if self.chance(0.5) {
            let m = self.fresh_id();
            self.msg_ids.push(m.clone());
            h.push(("Nats-Msg-Id".into(), m));
        }
        self.raw(
            Class::ForeignValid,
            format!("v{version}, {what}"),
            subject(version),
            h,
            data,
        )
    }

    fn no_ce_id(&mut self) -> Input {
        let version = self.version();
        let mut h = Vec::new();
        let what = match self.rng.u32(..3) {
            0 => "no headers at all",
            1 => {
                let m = self.fresh_id();
                self.msg_ids.push(m.clone());
                h.push(("Nats-Msg-Id".into(), m));
                "Nats-Msg-Id only"
            }
            _ => {
                h.push(("ce-id".into(), String::new()));
                h.push(("content-type".into(), "application/json".into()));
                "an empty ce-id"
            }
        };
        let data = self.valid_data();
        self.raw(
            Class::NoCeId,
            format!("v{version}, {what}"),
            subject(version),
            h,
            data,
        )
    }

    /// Copies of one event: the same `ce-id` under distinct message ids (the stream keeps
    /// them all), or the same `Nats-Msg-Id` (the stream keeps the first).
    fn copies(&mut self) -> Vec<Input> {
        let version = self.version();
        let id = self.fresh_id();
        let data = self.valid_data();
        let k = self.rng.usize(2..=6);
        let same_msg_id = self.chance(0.25);
        let msg_id = self.fresh_id();
        (0..k)
            .map(|c| {
                let mut h = if same_msg_id {
                    Vec::new()
                } else {
                    self.ce_headers(&id)
                };
                let m = if same_msg_id {
                    msg_id.clone()
                } else {
                    self.fresh_id()
                };
                self.msg_ids.push(m.clone());
                h.push(("Nats-Msg-Id".into(), m));
                let what = if same_msg_id {
                    format!("copy {} of {k}, one Nats-Msg-Id", c + 1)
                } else {
                    format!("copy {} of {k}, one ce-id", c + 1)
                };
                self.raw(Class::Copies, what, subject(version), h, data.clone())
            })
            .collect()
    }

    fn server_headers(&mut self, state: &StreamState) -> Input {
        let version = self.version();
        let subject = subject(version);
        let id = self.fresh_id();
        let mut h = if self.chance(0.5) {
            self.ce_headers(&id)
        } else {
            Vec::new()
        };
        let mut names = Vec::new();
        for _ in 0..self.rng.usize(1..=3) {
            let (n, v) = self.nats_header(state, subject);
            names.push(format!("{n}: {}", short(&v)));
            h.push((n, v));
        }
        let data = if self.chance(0.6) {
            self.invalid_data()
        } else {
            self.valid_data()
        };
        self.raw(Class::ServerHeaders, names.join(", "), subject, h, data)
    }

    /// Payloads filling the message to `max_payload` or just under it, or one byte over;
    /// compressible or not, valid or not; or headers that fill it.
    fn near_max(&mut self) -> Input {
        let version = self.version();
        let subject = subject(version);
        let id = self.fresh_id();
        let mut h = self.ce_headers(&id);
        h.push(("content-type".into(), "application/json".into()));
        let slack = *self.pick(&[0usize, 0, 1, 17, 300, 2000]);
        let over = self.chance(0.15);
        let kind = self.rng.u32(..5);
        if kind == 4 {
            // The headers fill what a stream stores of them (64 KiB), or one byte more; the
            // dead letter adds its own.
            let data = if self.chance(0.5) {
                self.valid_data()
            } else {
                self.invalid_data()
            };
            let slack = *self.pick(&[0usize, 1, 50, 300, 700, 1500]);
            if self.chance(0.5) {
                h.push(("Nats-Expected-Stream".into(), "IDENTITY".into()));
            }
            let target = if over {
                oracle::MAX_HEADERS + 1
            } else {
                oracle::MAX_HEADERS - slack
            };
            let pad = target - oracle::wire_size(&h, 0) - "x-padding: \r\n".len();
            h.push(("x-padding".into(), "p".repeat(pad)));
            let what = format!("{target} bytes of headers, {} of payload", data.bytes.len());
            return self.raw(Class::NearMaxPayload, what, subject, h, data);
        }
        let room = self.max_payload - oracle::wire_size(&h, 0) - slack;
        let size = if over { room + slack + 1 } else { room };
        let (data, what) = match kind {
            0 | 1 => {
                // Valid (kind 0) or not (an empty email), filled with a long referral code.
                let mut o = self.valid_object();
                let (v1, v2) = if kind == 1 {
                    o.insert("email".into(), json!(""));
                    let f = Fault::Fields(vec!["email".into()]);
                    (f.clone(), f)
                } else {
                    (Fault::None, Fault::None)
                };
                o.insert("referral_code".into(), json!(""));
                let base = serde_json::to_vec(&o).expect("JSON").len();
                let fill = size.saturating_sub(base);
                let code: String = if self.chance(0.5) {
                    "a".repeat(fill)
                } else {
                    // Alphanumeric noise compresses poorly.
                    (0..fill).map(|_| self.rng.alphanumeric()).collect()
                };
                o.insert("referral_code".into(), json!(code));
                let d = json_data(Value::Object(o), v1, v2);
                let what = if kind == 0 { "valid" } else { "invalid" };
                (d, format!("{what} JSON of {size} bytes"))
            }
            2 => {
                let b = self.random_bytes(size);
                (
                    Data {
                        bytes: b,
                        encoding: Encoding::Bytes,
                        v1: Fault::NotObject,
                        v2: Fault::NotObject,
                    },
                    format!("{size} random bytes"),
                )
            }
            _ => {
                let mut b = vec![b'x'; size];
                if let Some(first) = b.first_mut() {
                    *first = b'{';
                }
                (
                    Data {
                        bytes: b,
                        encoding: Encoding::Bytes,
                        v1: Fault::NotObject,
                        v2: Fault::NotObject,
                    },
                    format!("{size} compressible bytes"),
                )
            }
        };
        self.raw(
            Class::NearMaxPayload,
            format!("{what}, slack {slack}, over: {over}"),
            subject,
            h,
            data,
        )
    }

    fn forged_replay(&mut self) -> Input {
        let version = self.version();
        let id = self.fresh_id();
        let mut h = self.ce_headers(&id);
        let target = self
            .pick(&[
                PLAIN,
                IDEMPOTENT,
                STALLED,
                "payments__user_created",
                "",
                "\u{1b}[2J",
            ])
            .to_string();
        h.push(("eventhub-replay-for".into(), target.clone()));
        if self.chance(0.8) {
            let of = self
                .pick(&[
                    "EVENTHUB_DLQ:1",
                    "EVENTHUB_DLQ:999999",
                    "EVENTHUB_DLQ:x",
                    "IDENTITY:1",
                ])
                .to_string();
            h.push(("eventhub-replay-of".into(), of));
        }
        if self.chance(0.5) {
            h.push(("Nats-Msg-Id".into(), format!("{id}:replay:1")));
        }
        let data = if self.chance(0.7) {
            self.valid_data()
        } else {
            self.invalid_data()
        };
        self.raw(
            Class::ForgedReplay,
            format!("replay mark for {target:?}"),
            subject(version),
            h,
            data,
        )
    }

    fn schema_invalid(&mut self) -> Input {
        let version = self.version();
        let id = self.fresh_id();
        let mut h = self.ce_headers(&id);
        if self.chance(0.5) {
            h.push(("content-type".into(), "application/json".into()));
        }
        let data = self.invalid_data();
        let what = format!(
            "v{version}: {}",
            short(&String::from_utf8_lossy(&data.bytes))
        );
        self.raw(Class::SchemaInvalid, what, subject(version), h, data)
    }

    fn content_type(&mut self) -> Input {
        let version = self.version();
        let id = self.fresh_id();
        let mut h = self.ce_headers(&id);
        let name = *self.pick(&[
            "content-type",
            "content-type",
            "content-type",
            "Content-Type",
        ]);
        let value = self.content_type_value();
        h.push((name.to_string(), value.clone()));
        let data = if self.chance(0.15) {
            self.protobuf(version)
        } else {
            self.valid_data()
        };
        self.raw(
            Class::ContentType,
            format!("{name}: {}", short(&value)),
            subject(version),
            h,
            data,
        )
    }

    fn outside_catalog(&mut self) -> Input {
        let subject = *self.pick(&[
            "events.user.created",
            "events.user.created.v2.x",
            "events.user.created.v3",
            "events.user.created.v0",
            "events.user.created.V2",
            "events.user.created.v02",
            "events.user.createdx.v1",
            "events.user.created.latest",
        ]);
        let id = self.fresh_id();
        let h = self.ce_headers(&id);
        let data = self.valid_data();
        self.raw(Class::OutsideCatalog, subject, subject, h, data)
    }

    fn fuzz(&mut self, state: &StreamState) -> Input {
        let version = self.version();
        let subject = if self.chance(0.03) {
            "events.user.created.v7"
        } else {
            subject(version)
        };
        let mut h: Vec<(String, String)> = Vec::new();
        for _ in 0..self.rng.usize(0..9) {
            let header = match self.rng.u32(..8) {
                0 | 1 => {
                    let name = self
                        .pick(&[
                            "ce-id",
                            "ce-type",
                            "ce-source",
                            "ce-time",
                            "ce-specversion",
                            "ce-dataschema",
                            "ce-correlationid",
                            "ce-causationid",
                            "ce-Id",
                            "CE-ID",
                        ])
                        .to_string();
                    (name, self.value())
                }
                2 => self.nats_header(state, subject),
                3 => {
                    let name = *self.pick(&["content-type", "Content-Type", "CONTENT-TYPE"]);
                    let value = if self.chance(0.8) {
                        self.content_type_value()
                    } else {
                        self.value()
                    };
                    (name.to_string(), value)
                }
                4 => {
                    let name = *self.pick(&[
                        "eventhub-replay-for",
                        "eventhub-replay-of",
                        "eventhub-dlq-reason",
                        "eventhub-dlq-consumer",
                        "eventhub-dlq-payload",
                        "eventhub-dlq-original-Nats-TTL",
                        "Eventhub-Dlq-Error",
                        "eventhub-encryption-key",
                        "eventhub-dlq-headers-omitted",
                    ]);
                    let value = if self.chance(0.5) {
                        self.pick(&[PLAIN, IDEMPOTENT, "reference", "EVENTHUB_DLQ:1"])
                            .to_string()
                    } else {
                        self.value()
                    };
                    (name.to_string(), value)
                }
                5 => ("traceparent".to_string(), self.value()),
                _ => {
                    let name: String = format!(
                        "{}{}",
                        self.pick(&["x-", "X-", "", "_", "~!#$%&'*+^`|"]),
                        (0..self.rng.usize(1..12))
                            .map(|_| self.rng.alphanumeric())
                            .collect::<String>()
                    );
                    (name, self.value())
                }
            };
            h.push(header);
        }
        let data = self.any_data(version);
        let what = h
            .iter()
            .map(|(n, v)| format!("{n}: {}", short(v)))
            .collect::<Vec<_>>()
            .join(", ");
        let what = format!("[{what}] + {} payload bytes", data.bytes.len());
        self.raw(Class::Fuzz, what, subject, h, data)
    }
}

/// At most 60 characters of `s`, control characters escaped.
pub(crate) fn short(s: &str) -> String {
    let escaped: String = s.chars().flat_map(char::escape_debug).collect();
    if escaped.chars().count() > 60 {
        let cut: String = escaped.chars().take(57).collect();
        format!("{cut}…({} chars)", s.chars().count())
    } else {
        escaped
    }
}

/// JSON data with what each schema version says of it.
fn json_data(v: Value, v1: Fault, v2: Fault) -> Data {
    Data {
        bytes: serde_json::to_vec(&v).expect("JSON"),
        encoding: Encoding::Json,
        v1,
        v2,
    }
}
