//! A 3-node R3 cluster beside one server (R1), and how cost grows with the event's size; each
//! beside raw async-nats in the same run, sides alternating, the median pair shown.

use anyhow::Context as _;
use async_nats::jetstream;
use eventhub::Consumable;
use eventhub::Event;
use eventhub::Validation;
use eventhub_catalog::events::{config, order};

use crate::measure::{Report, Row, Run, Section};
use crate::scenarios::{Env, Side, WINDOW, Wire, median_pair, sides, throughput};
use crate::sdk;

/// Pipelined publish and consume (1 handler) of `event`, raw and eventhub alternating:
/// the median pairs.
async fn publish_and_consume<E: Event + Consumable>(
    env: &Env<'_>,
    event: &E,
    n: usize,
    rounds: usize,
    window: usize,
) -> anyhow::Result<[(Run, Run); 2]> {
    let (mut raw, mut sdk) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for side in sides(round) {
            env.purge::<E>().await?;
            match side {
                Side::Raw => raw.push(env.raw_publish(event, n, window, Wire::Eventhub).await?),
                Side::Sdk => sdk.push(env.sdk_publish(event, n, window).await?),
            }
        }
    }
    let (r, s) = median_pair(&raw, &sdk, throughput);
    let publish = (r.clone(), s.clone());
    env.purge::<E>().await?;
    env.sdk_publish(event, n, window).await?;
    let (mut raw, mut sdk) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for side in sides(round) {
            match side {
                Side::Raw => raw.push(env.raw_consume::<E>(n, 1).await?),
                Side::Sdk => sdk.push(env.sdk_consume::<E>(n, 1, Validation::Types).await?),
            }
        }
    }
    let (r, s) = median_pair(&raw, &sdk, throughput);
    Ok([publish, (r.clone(), s.clone())])
}

/// Publish and consume of the typical event on one server (R1) and on a 3-node cluster with
/// every stream replicated three times (R3).
pub(crate) async fn cluster(
    env: &Env<'_>,
    typical: &order::PlacedV1,
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = env.plan.cluster_events;
    let rounds = env.plan.scale_rounds;
    eprintln!("scale: 3-node cluster, R3 beside R1, {n} events");
    let cluster = tokio::task::spawn_blocking(|| eventhub_testkit::Cluster::try_start(3))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("start a 3-node cluster")?;
    let url = cluster.client_url();
    let client = sdk::connect(&url).await?;
    sdk::provision(&client, Some(3), &[]).await?;
    let urls: Vec<&str> = url.split(',').collect();
    let js = jetstream::new(async_nats::connect(urls.as_slice()).await?);
    let r3 = Env {
        client: &client,
        signed: &client,
        js: &js,
        plan: env.plan,
    };
    for (label, on) in [("R1", env), ("R3", &r3)] {
        eprintln!("  {label}");
        let [(rp, sp), (rc, sc)] = publish_and_consume(on, typical, n, rounds, WINDOW).await?;
        let (publish, consume) = match label {
            "R1" => (
                "R1, 1 server: publish pipelined (ev/s)",
                "R1, 1 server: consume + decode + ack (ev/s)",
            ),
            _ => (
                "R3, 3 nodes: publish pipelined (ev/s)",
                "R3, 3 nodes: consume + decode + ack (ev/s)",
            ),
        };
        let size = "typical";
        report.rows.push(Row::of(
            Section::Scale,
            size,
            publish,
            rp.per_sec,
            sp.per_sec,
        ));
        report.rows.push(Row::of(
            Section::Scale,
            size,
            consume,
            rc.per_sec,
            sc.per_sec,
        ));
    }
    report.notes.push((
        Section::Scale,
        format!(
            "R1 / R3: {n} typical events a run, 4096 in flight, consume with 1 handler; the three \
             nodes of the cluster run on this same machine."
        ),
    ));
    drop(cluster);
    Ok(())
}

/// A `config.updated` event whose JSON payload is exactly `bytes` long (its `new_value` a
/// string padded to fit).
fn sized_event(bytes: usize) -> anyhow::Result<config::UpdatedV1> {
    let make = |pad: usize| -> anyhow::Result<config::UpdatedV1> {
        Ok(serde_json::from_value(serde_json::json!({
            "key": "bench.payload",
            "new_value": "x".repeat(pad),
            "updated_by": "0190a000-0000-7000-8000-000000000001",
            "updated_at": "2026-11-23T10:00:00Z",
        }))?)
    };
    let empty = serde_json::to_vec(&make(0)?)?.len();
    anyhow::ensure!(bytes >= empty, "an event of {bytes} bytes is too small");
    let event = make(bytes - empty)?;
    anyhow::ensure!(serde_json::to_vec(&event)?.len() == bytes);
    Ok(event)
}

/// The sizes measured, with their labels.
const SIZES: [(&str, usize); 3] = [("256 B", 256), ("4 KiB", 4096), ("64 KiB", 65536)];

/// Publish and consume at 256 B, 4 KiB and 64 KiB of payload.
pub(crate) async fn sizes(env: &Env<'_>, report: &mut Report) -> anyhow::Result<()> {
    let mut counts = Vec::new();
    for (label, bytes) in SIZES {
        let event = sized_event(bytes)?;
        // The same bytes per run at every size, within bounds.
        let n = (env.plan.size_bytes / bytes).clamp(1000, env.plan.pipelined);
        // At most 16 MiB in flight: 4096 events of 64 KiB (256 MiB) overflow nats-server's
        // queue of a stream's pending publishes, which answers `429 too many requests`.
        let window = WINDOW.min((16 << 20) / bytes).max(64);
        counts.push(format!("{label}: {n} ({window} in flight)"));
        eprintln!("scale: {label} events, {n} a run");
        let [(rp, sp), (rc, sc)] =
            publish_and_consume(env, &event, n, env.plan.scale_rounds, window).await?;
        report.rows.push(Row::of(
            Section::Scale,
            label,
            "size: publish pipelined (ev/s)",
            rp.per_sec,
            sp.per_sec,
        ));
        report.rows.push(Row::of(
            Section::Scale,
            label,
            "  client CPU per published event (µs)",
            rp.cpu_micros_per_event(),
            sp.cpu_micros_per_event(),
        ));
        report.rows.push(Row::of(
            Section::Scale,
            label,
            "size: consume + decode + ack (ev/s)",
            rc.per_sec,
            sc.per_sec,
        ));
        report.rows.push(Row::of(
            Section::Scale,
            label,
            "  client CPU per consumed event (µs)",
            rc.cpu_micros_per_event(),
            sc.cpu_micros_per_event(),
        ));
    }
    env.purge::<config::UpdatedV1>().await?;
    report.notes.push((
        Section::Scale,
        format!(
            "sizes: a config.updated event whose JSON payload is exactly 256 B, 4 KiB or 64 KiB \
             (a padded string value), plus eventhub's headers on both sides; events a run (in flight): {}.",
            counts.join(", ")
        ),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sized_events_have_their_size() {
        for (_, bytes) in super::SIZES {
            let e = super::sized_event(bytes).expect("an event");
            assert_eq!(serde_json::to_vec(&e).unwrap().len(), bytes);
        }
    }
}
