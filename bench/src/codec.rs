//! JSON vs protobuf over every event of the catalog: encoded size, encode and decode time.
//!
//! Each event type's fixture instances (`tests/fixtures/events/<type>.v<N>.json`, the ones the
//! round-trip tests use) are encoded and decoded the way the SDK does it: encoding is what a
//! publisher runs for the codec (`serde_json::to_vec`, `eventhub::wire::proto::encode`), decoding is
//! what a consumer runs (`RawEvent::decode_event` with the content type). No server involved.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use eventhub::Event;
use eventhub::EventInfo;
use eventhub::wire::EventVisitor;
use eventhub::wire::RawEvent;
use serde_json::{Value, json};

/// One measurement batch runs at least this long.
const BATCH: Duration = Duration::from_millis(8);
/// Batches per figure; the fastest counts (the least disturbed by other processes).
const ROUNDS: usize = 3;

/// The figures of one event type, per instance (averaged over its fixtures).
#[derive(Debug, Clone)]
struct Row {
    event: String,
    instances: usize,
    json_bytes: f64,
    proto_bytes: f64,
    json_encode_ns: f64,
    proto_encode_ns: f64,
    json_decode_ns: f64,
    proto_decode_ns: f64,
}

#[derive(Default)]
struct Bench {
    rows: Vec<Row>,
    problems: Vec<String>,
}

/// Nanoseconds per call of `f` over `items`: the fastest of [`ROUNDS`] batches.
fn ns_per_item<T>(items: &[T], mut f: impl FnMut(&T)) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let mut calls = 0u64;
        while started.elapsed() < BATCH {
            for item in items {
                f(black_box(item));
            }
            calls += items.len() as u64;
        }
        best = best.min(started.elapsed().as_nanos() as f64 / calls as f64);
    }
    best
}

fn fixtures(info: &EventInfo) -> anyhow::Result<Vec<Value>> {
    let path = format!(
        "{}/../tests/fixtures/events/{}.v{}.json",
        env!("CARGO_MANIFEST_DIR"),
        info.event_type,
        info.version
    );
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("parse {path}"))
}

impl Bench {
    fn measure<E: Event>(&mut self, info: &EventInfo) -> anyhow::Result<Row> {
        let events: Vec<E> = fixtures(info)?
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()
            .context("a fixture is not a valid event")?;
        if events.is_empty() {
            bail!("no fixture instance");
        }
        let json: Vec<Vec<u8>> = events
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<_, _>>()?;
        let proto: Vec<Vec<u8>> = events
            .iter()
            .map(|e| eventhub::wire::proto::encode(e))
            .collect::<Result<_, _>>()?;
        let mean = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() as f64 / v.len() as f64;
        let decode = |content_type: &'static str| {
            move |payload: &Vec<u8>| {
                let raw = RawEvent::new(Some(content_type), payload);
                black_box(raw.decode_event::<E>().expect("fixtures decode"));
            }
        };
        Ok(Row {
            event: format!("{} v{}", info.event_type, info.version),
            instances: events.len(),
            json_bytes: mean(&json),
            proto_bytes: mean(&proto),
            json_encode_ns: ns_per_item(&events, |e| {
                black_box(serde_json::to_vec(e).expect("encodes"));
            }),
            proto_encode_ns: ns_per_item(&events, |e| {
                black_box(eventhub::wire::proto::encode(e).expect("encodes"));
            }),
            json_decode_ns: ns_per_item(&json, decode(eventhub::wire::codec::JSON)),
            proto_decode_ns: ns_per_item(&proto, decode(eventhub::wire::codec::PROTOBUF)),
        })
    }
}

impl EventVisitor for Bench {
    fn visit<E: Event + PartialEq>(&mut self, info: &'static EventInfo) {
        match self.measure::<E>(info) {
            Ok(row) => self.rows.push(row),
            Err(e) => self
                .problems
                .push(format!("{} v{}: {e:#}", info.event_type, info.version)),
        }
    }
}

/// Geometric mean of `protobuf / json` over the rows.
fn geomean(rows: &[Row], ratio: impl Fn(&Row) -> f64) -> f64 {
    (rows.iter().map(|r| ratio(r).ln()).sum::<f64>() / rows.len() as f64).exp()
}

/// Runs the codec comparison and prints it (a table, or JSON with `json`).
pub(crate) fn run(json_output: bool) -> anyhow::Result<()> {
    let mut bench = Bench::default();
    let started = Instant::now();
    eventhub_catalog::events::for_each_event(&mut bench);
    if !bench.problems.is_empty() {
        bail!("{}", bench.problems.join("\n"));
    }
    let rows = &bench.rows;
    let size = |r: &Row| r.proto_bytes / r.json_bytes;
    let enc = |r: &Row| r.proto_encode_ns / r.json_encode_ns;
    let dec = |r: &Row| r.proto_decode_ns / r.json_decode_ns;
    if json_output {
        let per_event: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "event": r.event, "instances": r.instances,
                    "json_bytes": r.json_bytes, "protobuf_bytes": r.proto_bytes,
                    "json_encode_ns": r.json_encode_ns, "protobuf_encode_ns": r.proto_encode_ns,
                    "json_decode_ns": r.json_decode_ns, "protobuf_decode_ns": r.proto_decode_ns,
                })
            })
            .collect();
        let report = json!({
            "events": per_event,
            "geomean_ratio": {"size": geomean(rows, size), "encode": geomean(rows, enc), "decode": geomean(rows, dec)},
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "JSON vs protobuf over the catalog's fixtures ({} event types, {} instances); per event, \
         fastest of {ROUNDS} batches; ratio = protobuf / JSON\n",
        rows.len(),
        rows.iter().map(|r| r.instances).sum::<usize>()
    );
    println!(
        "{:<32} {:>6} {:>6} {:>6} | {:>8} {:>8} {:>6} | {:>8} {:>8} {:>6}",
        "event", "json B", "pb B", "size", "json enc", "pb enc", "enc", "json dec", "pb dec", "dec"
    );
    for r in rows {
        println!(
            "{:<32} {:>6.0} {:>6.0} {:>6.2} | {:>8.0} {:>8.0} {:>6.2} | {:>8.0} {:>8.0} {:>6.2}",
            r.event,
            r.json_bytes,
            r.proto_bytes,
            size(r),
            r.json_encode_ns,
            r.proto_encode_ns,
            enc(r),
            r.json_decode_ns,
            r.proto_decode_ns,
            dec(r)
        );
    }
    let total = |f: fn(&Row) -> f64| rows.iter().map(f).sum::<f64>();
    let (jb, pb) = (total(|r| r.json_bytes), total(|r| r.proto_bytes));
    let (je, pe) = (total(|r| r.json_encode_ns), total(|r| r.proto_encode_ns));
    let (jd, pd) = (total(|r| r.json_decode_ns), total(|r| r.proto_decode_ns));
    println!(
        "{:<32} {:>6.0} {:>6.0} {:>6.2} | {:>8.0} {:>8.0} {:>6.2} | {:>8.0} {:>8.0} {:>6.2}",
        "sum (one of each event)",
        jb,
        pb,
        pb / jb,
        je,
        pe,
        pe / je,
        jd,
        pd,
        pd / jd
    );
    println!(
        "{:<32} {:>6} {:>6} {:>6.2} | {:>8} {:>8} {:>6.2} | {:>8} {:>8} {:>6.2}",
        "geometric mean of ratios",
        "",
        "",
        geomean(rows, size),
        "",
        "",
        geomean(rows, enc),
        "",
        "",
        geomean(rows, dec)
    );
    println!(
        "\nbytes: payload only (headers are the same for both codecs); times in ns per event; \
         took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
