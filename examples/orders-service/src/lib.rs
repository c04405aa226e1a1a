//! The orders service: its own event (`orders.shipped` v1, generated from `schemas/`) and the
//! handler that reacts to it.

/// The event types generated from `schemas/` by `build.rs`.
pub mod events {
    include!(concat!(env!("OUT_DIR"), "/events.rs"));
}

use eventhub::{Envelope, HandlerError};
use events::orders::ShippedV1;

/// What the service tells the customer once an order has shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The order, as its id's text.
    pub order_id: String,
    /// The text of the message.
    pub text: String,
}

/// Handles `orders.shipped`: a shipment without a tracking number is told to the customer
/// without one; a carrier the service does not deliver with is rejected (dead-lettered).
pub fn on_shipped(env: &Envelope<ShippedV1>) -> Result<Notice, HandlerError> {
    let carrier = env.carrier.as_str();
    if carrier.eq_ignore_ascii_case("unknown") {
        return Err(HandlerError::reject(format!(
            "order {} shipped with an unknown carrier",
            env.order_id
        )));
    }
    let text = match &env.tracking_number {
        Some(number) => format!(
            "Your order is on its way with {carrier} ({})",
            number.as_str()
        ),
        None => format!("Your order is on its way with {carrier}"),
    };
    Ok(Notice {
        order_id: env.order_id.to_string(),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventhub::testing::envelope;

    fn shipped(carrier: &str) -> ShippedV1 {
        ShippedV1::builder()
            .order_id(uuid::Uuid::now_v7())
            .carrier(carrier)
            .tracking_number(Some("JD0123".try_into().unwrap()))
            .shipped_at(chrono::Utc::now())
            .try_into()
            .expect("a complete shipment")
    }

    #[test]
    fn a_shipment_becomes_a_notice_with_its_tracking_number() {
        let event = shipped("DHL");
        let order_id = event.order_id.to_string();
        let notice = on_shipped(&envelope(event).delivered(1).build()).unwrap();
        assert_eq!(notice.order_id, order_id);
        assert_eq!(notice.text, "Your order is on its way with DHL (JD0123)");
    }

    #[test]
    fn an_unknown_carrier_is_rejected_not_retried() {
        let err = on_shipped(&envelope(shipped("unknown")).build()).unwrap_err();
        assert!(!err.is_retryable(), "{err}");
    }

    #[test]
    fn the_builder_refuses_a_missing_field_and_an_overlong_carrier() {
        let missing: Result<ShippedV1, _> = ShippedV1::builder()
            .order_id(uuid::Uuid::now_v7())
            .carrier("DHL")
            .try_into();
        assert!(missing.unwrap_err().to_string().contains("shipped_at"));
        let long: Result<ShippedV1, _> = ShippedV1::builder()
            .order_id(uuid::Uuid::now_v7())
            .carrier("x".repeat(65).as_str())
            .shipped_at(chrono::Utc::now())
            .try_into();
        assert!(long.is_err());
    }
}
