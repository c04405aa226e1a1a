//! The codegen goldens compile against this runtime, and their types behave: every event
//! round-trips through JSON and decodes through its family.

#[allow(dead_code, unreachable_pub)]
mod catalog {
    include!("../../codegen/tests/golden/catalog.rs");
}

use catalog::shop;
use eventhub::Consumable;
use eventhub::Event;
use eventhub::error::DecodeErrorKind;
use eventhub::wire::RawEvent;

fn raw(json: &str) -> RawEvent<'_> {
    RawEvent::new(Some("application/json"), json.as_bytes())
}

#[test]
fn generated_constants_follow_the_file_names() {
    assert_eq!(shop::OrderPlacedV1::TYPE, "shop.order-placed");
    assert_eq!(shop::OrderPlacedV1::SUBJECT, "events.shop.order-placed.v1");
    assert_eq!(shop::OrderPlacedV1::STREAM, "SHOP");
    assert_eq!(
        shop::OrderPlacedV1::SCHEMA_ID,
        "https://schemas.example.com/shop/order-placed/v1"
    );
    assert_eq!(
        shop::CartCheckedOutV2::SUBJECT,
        shop::subjects::CART_CHECKED_OUT_V2
    );
    assert_eq!(
        shop::CartCheckedOutV2::SCHEMA_ID,
        "urn:eventhub:schema:shop.cart.checked-out:v2"
    );
    let family = <shop::CartCheckedOut as Consumable>::FAMILY;
    assert_eq!(family.versions, &[1, 2]);
    assert_eq!(family.subjects, &["events.shop.cart.checked-out.*"]);
    assert_eq!(
        <shop::CartCheckedOutV1 as Consumable>::FAMILY.subjects,
        &[shop::subjects::CART_CHECKED_OUT_V1]
    );
    assert_eq!(catalog::STREAMS[0].max_msg_size, Some(65536));
    assert_eq!(catalog::CATALOG.len(), 3);
}

#[test]
fn a_family_decodes_each_version_and_refuses_unknown_ones() {
    let v1 = shop::CartCheckedOut::decode(1, &raw(r#"{"cart_id":"c1","items":2}"#)).unwrap();
    assert_eq!(v1.version(), 1);
    assert!(matches!(v1, shop::CartCheckedOut::V1(ref e) if e.cart_id == "c1"));

    let err = shop::CartCheckedOut::decode(2, &raw(r#"{"cart_id":"c1"}"#)).unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::SchemaMismatch);
    assert!(err.to_string().contains("customer_id"), "{err}");

    let err = shop::CartCheckedOut::decode(3, &raw(r#"{"cart_id":"c1"}"#)).unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::UnknownVersion);
    assert!(
        err.to_string()
            .contains("unknown version v3 of shop.cart.checked-out (this consumer knows v1, v2)"),
        "{err}"
    );
}

#[test]
fn constraints_of_the_schema_are_enforced_when_decoding() {
    let ok = r#"{"order_id":"0190a0c2-9d3e-7c2f-8f6e-2b1d6c1e4a11","placed_at":"2026-11-23T10:00:00Z",
        "total":{"amount_minor":1999,"currency":"EUR"},
        "lines":[{"sku":"A-1","quantity":1,"price":{"amount_minor":1999,"currency":"EUR"}}]}"#;
    let order: shop::OrderPlacedV1 = raw(ok).decode().unwrap();
    assert_eq!(order.total.amount_minor, 1999);
    let json = serde_json::to_string(&order).unwrap();
    assert_eq!(raw(&json).decode::<shop::OrderPlacedV1>().unwrap(), order);

    // pattern on a shared definition, minimum on a local one, closed object.
    for (bad, field) in [
        (
            ok.replace("\"EUR\"}}]", "\"euro\"}}]"),
            "lines[0].price.currency",
        ),
        (
            ok.replace("\"quantity\":1", "\"quantity\":0"),
            "lines[0].quantity",
        ),
        (
            ok.replace("\"sku\":\"A-1\"", "\"sku\":\"A-1\",\"colour\":\"red\""),
            "lines[0]",
        ),
    ] {
        let err = raw(&bad).decode::<shop::OrderPlacedV1>().unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::SchemaMismatch);
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
}

#[test]
fn every_catalog_entry_carries_a_self_contained_schema() {
    for info in catalog::CATALOG {
        let schema: serde_json::Value = serde_json::from_str(info.schema).unwrap();
        assert_eq!(schema["$id"], info.schema_id);
        let text = info.schema;
        for (i, _) in text.match_indices("\"$ref\":\"") {
            let target = &text[i + 8..];
            let target = &target[..target.find('"').unwrap()];
            let name = target
                .strip_prefix("#/$defs/")
                .expect("bundled refs are local");
            assert!(
                schema["$defs"][name].is_object(),
                "{} lacks $defs/{name}",
                info.subject
            );
        }
    }
}

#[test]
fn golden_events_round_trip_through_protobuf_and_decode_by_content_type() {
    let order: shop::OrderPlacedV1 = raw(
        r#"{"order_id":"0190a0c2-9d3e-7c2f-8f6e-2b1d6c1e4a11","placed_at":"2026-11-23T10:00:00Z",
        "total":{"amount_minor":0,"currency":"EUR"},"channel":"app","coupon":"",
        "attributes":{"gift":"yes","note":""},
        "lines":[{"sku":"A-1","quantity":1,"price":{"amount_minor":1999,"currency":"EUR"}}]}"#,
    )
    .decode()
    .unwrap();
    let minimal = shop::OrderPlacedV1 {
        attributes: Default::default(),
        channel: None,
        coupon: None,
        ..order.clone()
    };
    // The codegen generated the encoder and decoder of each event version.
    assert!(<shop::OrderPlacedV1 as Event>::PROTO_CODEC.is_some());
    assert!(<shop::CartCheckedOutV1 as Event>::PROTO_CODEC.is_some());
    assert!(<shop::CartCheckedOutV2 as Event>::PROTO_CODEC.is_some());
    for event in [order, minimal] {
        let bytes = eventhub::wire::proto::encode(&event).unwrap();
        // The generated encoder and the descriptor-driven one agree.
        let proto = <shop::OrderPlacedV1 as Event>::PROTO;
        let value = serde_json::to_value(&event).unwrap();
        let from_value = eventhub::wire::proto::encode_value(proto, &value).unwrap();
        assert_eq!(
            eventhub::wire::proto::decode_value(proto, &bytes).unwrap(),
            value
        );
        assert_eq!(
            eventhub::wire::proto::decode::<shop::OrderPlacedV1>(&from_value).unwrap(),
            event
        );
        let protobuf = RawEvent::new(Some("application/protobuf"), &bytes);
        assert_eq!(
            protobuf.decode_event::<shop::OrderPlacedV1>().unwrap(),
            event
        );
        // JSON and protobuf payloads of the same event decode equal.
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            raw(&json).decode_event::<shop::OrderPlacedV1>().unwrap(),
            event
        );
        // `decode` stays JSON-only.
        assert_eq!(
            protobuf.decode::<shop::OrderPlacedV1>().unwrap_err().kind(),
            DecodeErrorKind::UnsupportedContentType
        );
    }

    // Families decode protobuf too, and protobuf is checked against the schema like JSON is.
    let v2 = shop::CartCheckedOutV2 {
        cart_id: "c1".into(),
        customer_id: "u1".into(),
        delivery_note: None,
        items: Some(0),
    };
    let bytes = eventhub::wire::proto::encode(&v2).unwrap();
    let protobuf = RawEvent::new(Some("application/protobuf"), &bytes);
    assert_eq!(
        shop::CartCheckedOut::decode(2, &protobuf).unwrap(),
        shop::CartCheckedOut::V2(v2)
    );
    let v1_bytes = eventhub::wire::proto::encode(&shop::CartCheckedOutV1 {
        cart_id: "c1".into(),
        items: None,
    })
    .unwrap();
    let err =
        shop::CartCheckedOut::decode(2, &RawEvent::new(Some("application/protobuf"), &v1_bytes))
            .unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::SchemaMismatch);
    assert!(err.to_string().contains("customer_id"), "{err}");
    let err =
        shop::CartCheckedOut::decode(1, &RawEvent::new(Some("text/plain"), b"c1")).unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::UnsupportedContentType);
}

#[test]
fn the_proto_file_declares_every_catalog_message() {
    for info in catalog::CATALOG {
        let name = info.proto.name.strip_prefix("eventhub.events.").unwrap();
        assert!(
            catalog::PROTO_FILE.contains(&format!("\nmessage {name} {{\n")),
            "{name}"
        );
        assert_eq!(info.proto.pointer, "");
    }
    assert!(catalog::PROTO_FILE.contains("  map<string, string> attributes = 1;\n"));
    assert!(catalog::PROTO_FILE.contains("  repeated OrderPlacedV1Line lines = 4;\n"));
}

#[test]
fn a_generated_request_pairs_its_response_subject_and_schemas() {
    use eventhub::wire::request::Request;
    assert_eq!(shop::QuoteRequestV1::SUBJECT, "rpc.shop.quote.v1");
    let request: serde_json::Value =
        serde_json::from_str(shop::QuoteRequestV1::REQUEST_SCHEMA.unwrap()).unwrap();
    let response: serde_json::Value =
        serde_json::from_str(shop::QuoteRequestV1::RESPONSE_SCHEMA.unwrap()).unwrap();
    assert_eq!(request["required"], serde_json::json!(["sku", "quantity"]));
    // The response's shared Money travels with it.
    assert!(response["$defs"]["Money"].is_object(), "{response}");
    let quote: <shop::QuoteRequestV1 as Request>::Response =
        serde_json::from_str(r#"{"total":{"amount_minor":1250,"currency":"EUR"}}"#).unwrap();
    let _: shop::QuoteResponseV1 = quote;
}
