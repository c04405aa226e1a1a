//! Times encoding and decoding the typical event (`order.placed` v1, the first fixture
//! instance) as JSON and as protobuf, and prints protobuf's time as a ratio of JSON's.
//!
//! `cargo run --release -p eventhub-catalog --example proto_timing [-- ITERATIONS]`
//! (200 000 by default). A quick comparison for codec changes, not a benchmark suite.

use std::hint::black_box;
use std::time::{Duration, Instant};

use eventhub_catalog::events::order;

fn time(n: usize, mut f: impl FnMut()) -> Duration {
    // Warm up caches and allocators first.
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed()
}

fn main() -> anyhow::Result<()> {
    let n: usize = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => 200_000,
    };
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/events/order.placed.v1.json"
    );
    let instances: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let event: order::PlacedV1 = serde_json::from_value(instances[0].clone())?;

    let json = serde_json::to_vec(&event)?;
    let proto = eventhub::wire::proto::encode(&event)?;
    let back: order::PlacedV1 = eventhub::wire::proto::decode(&proto)?;
    anyhow::ensure!(back == event, "protobuf does not round-trip");

    let json_enc = time(n, || {
        black_box(serde_json::to_vec(black_box(&event)).unwrap());
    });
    let proto_enc = time(n, || {
        black_box(eventhub::wire::proto::encode(black_box(&event)).unwrap());
    });
    let json_dec = time(n, || {
        black_box(serde_json::from_slice::<order::PlacedV1>(black_box(&json)).unwrap());
    });
    let proto_dec = time(n, || {
        black_box(eventhub::wire::proto::decode::<order::PlacedV1>(black_box(&proto)).unwrap());
    });
    let per = |d: Duration| d.as_nanos() as f64 / n as f64;
    println!(
        "order.placed v1: {} bytes JSON, {} bytes protobuf; {n} iterations",
        json.len(),
        proto.len()
    );
    println!(
        "encode: JSON {:.0} ns, protobuf {:.0} ns ({:.2}x JSON)",
        per(json_enc),
        per(proto_enc),
        per(proto_enc) / per(json_enc)
    );
    println!(
        "decode: JSON {:.0} ns, protobuf {:.0} ns ({:.2}x JSON)",
        per(json_dec),
        per(proto_dec),
        per(proto_dec) / per(json_dec)
    );
    Ok(())
}
