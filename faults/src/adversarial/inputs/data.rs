//! Payloads, and what each schema version says of them.

use serde_json::{Value, json};

use super::{Generator, json_data};
use crate::adversarial::oracle::{Data, Encoding, Fault};
use eventhub_catalog::events::user;

impl Generator {
    /// A valid `user.created` v2 object (also valid as v1: v1 ignores `locale` and
    /// `referral_code`).
    pub(super) fn valid_object(&mut self) -> serde_json::Map<String, Value> {
        let n = self.fresh_id();
        let mut o = serde_json::Map::new();
        let mut random = [0u8; 16];
        self.rng.fill(&mut random);
        let uuid = if self.chance(0.2) {
            uuid::Builder::from_random_bytes(random)
                .into_uuid()
                .to_string()
                .to_uppercase()
        } else {
            let millis = 1_790_000_000_000 + self.rng.u64(..1_000_000_000);
            let mut rest = [0u8; 10];
            rest.copy_from_slice(&random[..10]);
            uuid::Builder::from_unix_timestamp_millis(millis, &rest)
                .into_uuid()
                .to_string()
        };
        o.insert("user_id".into(), json!(uuid));
        let email = self
            .pick(&[
                "user-{n}@example.com",
                "first.last+{n}@mail.example.org",
                "{n}@example.co.uk",
            ])
            .replace("{n}", &n);
        o.insert("email".into(), json!(email));
        if self.chance(0.6) {
            let name = self
                .pick(&[
                    "Ada",
                    "Zoë Ünïcødé 🎉",
                    "x",
                    "\u{1b}[2J\u{7}bell",
                    "O'Brien \"Q\"",
                ])
                .to_string();
            let name = if self.chance(0.05) {
                "é".repeat(100)
            } else {
                name
            };
            o.insert("display_name".into(), json!(name));
        }
        o.insert(
            "locale".into(),
            json!(*self.pick(&["en", "de-DE", "yue", "pt-BR"])),
        );
        if self.chance(0.3) {
            o.insert(
                "referral_code".into(),
                json!(*self.pick(&["", "FRIEND-2026", "\u{0}\u{1f}", "🎁"])),
            );
        }
        let created = *self.pick(&[
            "2026-11-23T10:00:00Z",
            "2026-11-23T10:00:00.123456+02:00",
            "1999-12-31T23:59:59-08:00",
        ]);
        o.insert("created_at".into(), json!(created));
        if self.chance(0.1) {
            // Properties the schema does not list are allowed.
            o.insert("extra".into(), json!({"nested": [1, 2, 3]}));
        }
        o
    }

    pub(crate) fn valid_data(&mut self) -> Data {
        let o = self.valid_object();
        json_data(Value::Object(o), Fault::None, Fault::None)
    }

    /// JSON data with one or two faults, and what each version says of them.
    pub(super) fn invalid_data(&mut self) -> Data {
        let mut o = self.valid_object();
        let mut v1 = Vec::new();
        let mut v2 = Vec::new();
        let mut missing1 = Vec::new();
        let mut missing2 = Vec::new();
        let faults = if self.chance(0.3) { 2 } else { 1 };
        for _ in 0..faults {
            // (field, bad value, checked by v1)
            let choice: (&str, Value, bool) = match self.rng.u32(..22) {
                0 => ("email", json!(""), true),
                1 => ("email", json!("not-an-email"), true),
                2 => ("email", json!("user@"), true),
                3 => ("email", json!("@example.com"), true),
                4 => ("email", Value::Null, true),
                5 => ("email", json!(7), true),
                6 => ("user_id", json!("not-a-uuid"), true),
                7 => ("user_id", json!(""), true),
                8 => ("user_id", json!("0190b8d2-5a8e-7c3e-9d5e"), true),
                9 => ("display_name", json!(""), true),
                10 => ("display_name", json!("x".repeat(101)), true),
                11 => ("display_name", Value::Null, true),
                12 => ("display_name", json!(["Ada"]), true),
                13 => ("locale", json!("EN"), false),
                14 => ("locale", json!("en_GB"), false),
                15 => ("locale", Value::Null, false),
                16 => ("referral_code", json!(42), false),
                17 => ("referral_code", Value::Null, false),
                18 => ("created_at", json!("yesterday"), true),
                19 => ("created_at", json!("2026-13-01T00:00:00Z"), true),
                20 => ("created_at", json!("2026-11-23"), true),
                _ => ("", Value::Null, true),
            };
            match choice {
                ("", _, _) => {
                    // A required property missing.
                    let field = *self.pick(&["user_id", "email", "created_at", "locale"]);
                    if o.remove(field).is_some() {
                        v2.retain(|f| f != field);
                        v1.retain(|f| f != field);
                        missing2.push(field.to_string());
                        if field != "locale" {
                            missing1.push(field.to_string());
                        }
                    }
                }
                (field, value, in_v1) => {
                    if missing2.iter().any(|m| m == field) {
                        continue;
                    }
                    o.insert(field.to_string(), value);
                    if !v2.iter().any(|f| f == field) {
                        v2.push(field.to_string());
                    }
                    if in_v1 && !v1.iter().any(|f| f == field) {
                        v1.push(field.to_string());
                    }
                }
            }
        }
        let fault = |fields: Vec<String>, missing: Vec<String>| {
            if !missing.is_empty() {
                // A missing property and a bad one: the error names both; the words checked
                // are those of the missing one (`required`), which comes with it.
                Fault::Missing(missing)
            } else if fields.is_empty() {
                Fault::None
            } else {
                Fault::Fields(fields)
            }
        };
        json_data(Value::Object(o), fault(v1, missing1), fault(v2, missing2))
    }

    pub(super) fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill(&mut v);
        v
    }

    /// Some payload: mostly JSON (valid or not), sometimes protobuf or random bytes.
    pub(super) fn any_data(&mut self, version: u32) -> Data {
        match self.rng.u32(..10) {
            0..=3 => self.valid_data(),
            4..=6 => self.invalid_data(),
            7 => self.protobuf(version),
            _ => {
                let n = self.size();
                Data {
                    bytes: self.random_bytes(n),
                    encoding: Encoding::Bytes,
                    v1: Fault::NotObject,
                    v2: Fault::NotObject,
                }
            }
        }
    }

    /// A payload size from 0 up to `max_payload`, mostly small.
    pub(super) fn size(&mut self) -> usize {
        match self.rng.u32(..20) {
            0 => 0,
            1..=14 => self.rng.usize(1..512),
            15..=18 => self.rng.usize(512..64 * 1024),
            _ => self.rng.usize(64 * 1024..self.max_payload),
        }
    }

    /// A valid event of `version`, protobuf-encoded.
    pub(super) fn protobuf(&mut self, version: u32) -> Data {
        let o = Value::Object(self.valid_object());
        let bytes = if version == 1 {
            let e: user::CreatedV1 = serde_json::from_value(o).expect("a valid v1");
            eventhub::wire::proto::encode(&e).expect("encodes")
        } else {
            let e: user::CreatedV2 = serde_json::from_value(o).expect("a valid v2");
            eventhub::wire::proto::encode(&e).expect("encodes")
        };
        Data {
            bytes,
            encoding: Encoding::Protobuf,
            v1: Fault::None,
            v2: Fault::None,
        }
    }
}
