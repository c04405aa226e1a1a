//! Conversions between versions of the catalog's events, for consumers of
//! [`Upcasted`](eventhub::upcast::Upcasted): they live next to the generated types (Rust's
//! orphan rule lets only this crate implement `From` between two of them); the team that adds a
//! version adds its conversion.

use crate::events::user;

/// `user.created` v1 → v2: v2 requires `locale`, which v1 did not carry; a v1 user gets `und`
/// (BCP 47 "undetermined"), so consumers fall back to their default language.
impl From<user::CreatedV1> for user::CreatedV2 {
    fn from(v1: user::CreatedV1) -> Self {
        user::CreatedV2 {
            created_at: v1.created_at,
            display_name: v1.display_name.map(|name| {
                String::from(name)
                    .try_into()
                    .expect("v1 and v2 constrain display_name alike")
            }),
            email: v1.email,
            locale: "und".parse().expect("`und` is a valid locale"),
            referral_code: None,
            user_id: v1.user_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventhub::upcast::Upcast;

    #[test]
    fn a_v1_user_upcasts_to_v2_with_an_undetermined_locale() {
        let v1: user::CreatedV1 = serde_json::from_value(serde_json::json!({
            "user_id": "0190b8d2-5a8e-7c3e-9d5e-1f2a3b4c5d6e",
            "email": "ada@example.com",
            "display_name": "Ada",
            "created_at": "2026-01-02T03:04:05Z"
        }))
        .unwrap();
        let v2: user::CreatedV2 = user::Created::V1(v1.clone()).upcast();
        assert_eq!(v2.email, v1.email);
        assert_eq!(*v2.locale, "und");
        assert_eq!(v2.display_name.as_deref().map(String::as_str), Some("Ada"));
        let same: user::CreatedV2 = user::Created::V2(v2.clone()).upcast();
        assert_eq!(same, v2);
    }
}
