//! Header values: what any client can put in a header, `content-type`s, and the `Nats-*`
//! headers the server acts on.

use super::{Class, Generator, Input, Via};
use crate::adversarial::oracle::{Data, StreamState};

impl Generator {
    /// A header value: printable, unicode, control characters (never CR or LF, which no client
    /// can send in a value), padded, empty or very long.
    pub(super) fn value(&mut self) -> String {
        match self.rng.u32(..12) {
            0 => String::new(),
            1 => "  padded value \t".into(),
            2 => "\u{1b}]0;owned\u{7}\u{1b}[2J\u{0}\u{8}\u{7f}".into(),
            3 => "Zoë 🎉 ünïcødé \u{200b}\u{202e}".into(),
            4 => {
                let n = self.rng.usize(1_000..20_000);
                let c = *self.pick(&['a', 'é', '~', '\u{1b}']);
                std::iter::repeat_n(c, n).collect()
            }
            5 => {
                let n = self.rng.usize(1..64);
                (0..n)
                    .map(|_| {
                        let c = self.rng.u32(1..0x800);
                        char::from_u32(c)
                            .filter(|c| *c != '\r' && *c != '\n')
                            .unwrap_or('?')
                    })
                    .collect()
            }
            6 => "a: b; c=d, e".into(),
            _ => {
                let n = self.rng.usize(1..40);
                (0..n).map(|_| self.rng.alphanumeric()).collect()
            }
        }
    }

    /// A content-type value, with what a consumer must make of it.
    pub(super) fn content_type_value(&mut self) -> String {
        let essence = *self.pick(&[
            "application/json",
            "Application/JSON",
            "APPLICATION/JSON",
            "application/protobuf",
            "Application/X-Protobuf",
            "text/plain",
            "application/jsonx",
            "application/cloudevents+json",
            "json",
            "",
            "application/xml",
            "*/*",
        ]);
        let params = *self.pick(&[
            "",
            "",
            "; charset=utf-8",
            ";charset=UTF-8",
            " ; q=0.5; x=\"y;z\"",
            ";",
        ]);
        let mut v = format!("{essence}{params}");
        if self.chance(0.1) {
            v = format!(" {v} ");
        }
        if self.chance(0.05) {
            v.push_str(&self.value());
        }
        v
    }

    /// A `Nats-*` header and a value, drawn from what the server acts on (some values hold
    /// on the stream, some do not), lower-case spellings it ignores, and names it does not know.
    pub(super) fn nats_header(&mut self, state: &StreamState, subject: &str) -> (String, String) {
        let last = state.last_sequence;
        let last_here = state.last_by_subject.get(subject).copied().unwrap_or(0);
        let (name, value): (&str, String) = match self.rng.u32(..30) {
            0 => ("Nats-Expected-Stream", "IDENTITY".into()),
            1 => ("Nats-Expected-Stream", "ORDERS".into()),
            2 => ("Nats-Expected-Last-Sequence", last.to_string()),
            3 => ("Nats-Expected-Last-Sequence", (last + 1).to_string()),
            4 => ("Nats-Expected-Last-Subject-Sequence", last_here.to_string()),
            5 => (
                "Nats-Expected-Last-Subject-Sequence",
                (last_here + 7).to_string(),
            ),
            6 => (
                "Nats-Expected-Last-Subject-Sequence-Subject",
                subject.into(),
            ),
            7 => (
                "Nats-Expected-Last-Msg-Id",
                if state.last_msg_id.is_empty() {
                    "none".into()
                } else {
                    state.last_msg_id.clone()
                },
            ),
            8 => ("Nats-Expected-Last-Msg-Id", "not-the-last".into()),
            9 => (
                "Nats-Rollup",
                self.pick(&["sub", "all", "ALL", "nope"]).to_string(),
            ),
            10 => (
                "Nats-TTL",
                self.pick(&["5s", "1h", "never", "0", "00", "500ms", "abc", "60"])
                    .to_string(),
            ),
            11 => ("Nats-Msg-Id", self.fresh_id()),
            12 => match self.msg_ids.is_empty() {
                true => ("Nats-Msg-Id", self.fresh_id()),
                false => {
                    let i = self.rng.usize(..self.msg_ids.len());
                    ("Nats-Msg-Id", self.msg_ids[i].clone())
                }
            },
            13 => (
                "Nats-Schedule",
                self.pick(&[
                    "@every 1s",
                    "* * * * * *",
                    "@at 2030-01-01T00:00:00Z",
                    "soon",
                ])
                .to_string(),
            ),
            14 => (
                "Nats-Schedule-Time-Zone",
                self.pick(&["UTC", "Mars/Olympus_Mons"]).to_string(),
            ),
            15 => ("Nats-Schedule-TTL", "5s".into()),
            16 => ("Nats-Schedule-Target", "events.user.created.v1".into()),
            17 => ("Nats-Schedule-Source", "events.user.created.v2".into()),
            18 => ("Nats-Schedule-Rollup", "sub".into()),
            19 => (
                "Nats-Schedule-Next",
                self.pick(&["purge", "later"]).to_string(),
            ),
            20 => ("Nats-Scheduler", "events.user.created.v1".into()),
            21 => ("Nats-Batch-Id", self.fresh_id()),
            22 => ("Nats-Batch-Sequence", "1".into()),
            23 => ("Nats-Batch-Commit", "1".into()),
            24 => ("Nats-Incr", self.pick(&["1", "x"]).to_string()),
            25 => (
                "Nats-Stream-Source",
                "IDENTITY 1 > > events.user.created.v2".into(),
            ),
            26 => ("Nats-Required-Api-Level", "99".into()),
            27 => {
                // Spellings the server does not look up (its names are case-sensitive).
                let n = *self.pick(&[
                    "nats-expected-stream",
                    "NATS-ROLLUP",
                    "nats-ttl",
                    "nats-msg-id",
                    "Nats-Batch-id",
                ]);
                (n, "ORDERS".into())
            }
            28 => {
                let n = format!("Nats-Made-Up-{}", self.rng.u32(..1000));
                return (n, self.value());
            }
            _ => {
                let value = self.value();
                (
                    *self.pick(&["Nats-Expected-Stream", "Nats-Rollup", "Nats-TTL"]),
                    value,
                )
            }
        };
        if name == "Nats-Msg-Id" {
            self.msg_ids.push(value.clone());
        }
        (name.to_string(), value)
    }

    pub(super) fn raw(
        &self,
        class: Class,
        what: impl Into<String>,
        subject: &str,
        headers: Vec<(String, String)>,
        data: Data,
    ) -> Input {
        Input {
            class,
            what: what.into(),
            subject: subject.to_string(),
            via: Via::Raw(headers),
            data,
        }
    }

    /// CloudEvents headers a careful foreign producer sends.
    pub(super) fn ce_headers(&mut self, id: &str) -> Vec<(String, String)> {
        let mut h = vec![
            ("ce-specversion".to_string(), "1.0".to_string()),
            ("ce-id".to_string(), id.to_string()),
            ("ce-type".to_string(), "user.created".to_string()),
            ("ce-source".to_string(), "nats-py".to_string()),
        ];
        if self.chance(0.5) {
            h.push(("ce-time".into(), "2026-12-04T10:00:00Z".into()));
        }
        h
    }
}
