//! The scenarios, each run for raw async-nats and for eventhub.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use eventhub::Client;
use eventhub::Consumable;
use eventhub::Event;
use eventhub::Validation;
use futures::StreamExt;

use crate::measure::{Meter, Row, Run, Target, quantile};
use crate::plan::Plan;
pub(crate) use crate::plan::{Clock, WINDOW, env_number};
use crate::sdk;

/// Handlers for the concurrent consume runs.
pub(crate) const HANDLERS: usize = 8;

/// What raw async-nats sends with each event.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wire {
    /// The payload and a `Nats-Msg-Id` (for de-duplication) only.
    Bare,
    /// The headers eventhub sends for a JSON event that starts a flow (the lean form: no
    /// `content-type`, default `ce-dataschema` or correlation id equal to the id, no `ce-time`
    /// or `traceparent` when the UUIDv7 id implies them): the CloudEvents required attributes
    /// and `Nats-Msg-Id`.
    Eventhub,
}

impl Wire {
    fn headers<E: Event>(self, id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Wire::Eventhub = self {
            headers.insert("ce-specversion", "1.0");
            headers.insert("ce-id", id);
            headers.insert("ce-type", E::TYPE);
            headers.insert("ce-source", "bench");
        }
        headers.insert("Nats-Msg-Id", id);
        headers
    }
}

pub(crate) struct Env<'a> {
    pub(crate) client: &'a Client,
    /// A client that signs what it publishes and verifies what it consumes (ed25519).
    pub(crate) signed: &'a Client,
    pub(crate) js: &'a jetstream::Context,
    pub(crate) plan: Plan,
}

/// Of runs taken side by side (`a[i]` next to `b[i]`), the pair whose ratio is the median.
/// Runs next to each other share the machine's speed of the moment, which on this virtual
/// machine drifts by ±15% within minutes: the median pair is steadier than either side's best
/// (a lucky raw run against an unlucky eventhub one, or the reverse).
pub(crate) fn median_pair<'a, T>(
    a: &'a [T],
    b: &'a [T],
    ratio: impl Fn(&T, &T) -> f64,
) -> (&'a T, &'a T) {
    let mut pairs: Vec<(&T, &T)> = a.iter().zip(b).collect();
    pairs.sort_by(|x, y| ratio(x.0, x.1).total_cmp(&ratio(y.0, y.1)));
    pairs[pairs.len() / 2]
}

/// One side of a comparison.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    Raw,
    Sdk,
}

/// The order of the sides in round `round`: raw first in even rounds, eventhub first in odd
/// ones, so neither side always runs on a server just warmed (or just burdened) by the other.
pub(crate) fn sides(round: usize) -> [Side; 2] {
    if round.is_multiple_of(2) {
        [Side::Raw, Side::Sdk]
    } else {
        [Side::Sdk, Side::Raw]
    }
}

pub(crate) fn throughput(raw: &Run, sdk: &Run) -> f64 {
    sdk.per_sec / raw.per_sec
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Env<'_> {
    /// Every scenario for one event.
    pub(crate) async fn all<E>(&self, event: &E) -> anyhow::Result<Vec<Row>>
    where
        E: Event + Consumable,
    {
        let mut rows = Vec::new();
        let n = self.plan.pipelined;

        eprintln!("{}: pipelined publish", E::TYPE);
        // Pipelined publish. The target compares eventhub with raw async-nats sending the same
        // message (payload and headers): what the SDK's code costs. The bare run (payload and
        // a Nats-Msg-Id only) shows what the wire format itself costs.
        // The targeted rows publish what raw publishes, straight from the type
        // (`Validation::Types`); the default publisher also checks each event against its
        // schema, measured beside.
        let (mut same, mut bare, mut sdk) = (Vec::new(), Vec::new(), Vec::new());
        let mut checked = Vec::new();
        for round in 0..self.plan.targeted_rounds {
            for side in sides(round) {
                self.purge::<E>().await?;
                match side {
                    Side::Raw => {
                        same.push(self.raw_publish(event, n, WINDOW, Wire::Eventhub).await?);
                        // Bare on the same side of the pair: it alternates with eventhub's
                        // run as raw's same-message run does.
                        self.purge::<E>().await?;
                        bare.push(self.raw_publish(event, n, WINDOW, Wire::Bare).await?);
                    }
                    Side::Sdk => {
                        sdk.push(
                            sdk::publish_checking(self.client, event, n, WINDOW, Validation::Types)
                                .await?,
                        );
                        self.purge::<E>().await?;
                        checked.push(self.sdk_publish(event, n, WINDOW).await?);
                    }
                }
            }
        }
        let (r, s) = median_pair(&same, &sdk, throughput);
        rows.push(Row::new(
            "publish pipelined, 4096 in flight (ev/s)",
            r.per_sec,
            s.per_sec,
            Target::AtLeast(0.9),
        ));
        rows.push(Row::new(
            "  client CPU per published event (µs)",
            r.cpu_micros_per_event(),
            s.cpu_micros_per_event(),
            Target::None,
        ));
        rows.push(Row::new(
            "  server CPU per published event (µs)",
            r.server_micros_per_event(),
            s.server_micros_per_event(),
            Target::None,
        ));
        rows.push(Row::new(
            "  peak RSS while publishing (MiB)",
            mib(r.usage.peak_rss_kib),
            mib(s.usage.peak_rss_kib),
            Target::None,
        ));
        let (rc, c) = median_pair(&same, &checked, throughput);
        rows.push(Row::new(
            "  with the schema check, the default (ev/s)",
            rc.per_sec,
            c.per_sec,
            Target::None,
        ));
        rows.push(Row::new(
            "  with the schema check: client CPU per event (µs)",
            rc.cpu_micros_per_event(),
            c.cpu_micros_per_event(),
            Target::None,
        ));
        let (b, bs) = median_pair(&bare, &sdk, throughput);
        rows.push(Row::new(
            "  wire format: vs raw bare (ev/s)",
            b.per_sec,
            bs.per_sec,
            Target::AtLeast(0.85),
        ));

        eprintln!("{}: signed publish", E::TYPE);
        // Signing (ed25519 over id, subject and the payload's SHA-256), beside the same SDK
        // publish unsigned: what signatures cost.
        let (mut plain, mut signed) = (Vec::new(), Vec::new());
        for round in 0..self.plan.rounds {
            for side in sides(round) {
                self.purge::<E>().await?;
                match side {
                    Side::Raw => plain.push(sdk::publish(self.client, event, n, WINDOW).await?),
                    Side::Sdk => signed.push(sdk::publish(self.signed, event, n, WINDOW).await?),
                }
            }
        }
        let (p, s) = median_pair(&plain, &signed, throughput);
        rows.push(Row::new(
            "signed publish pipelined; unsigned SDK beside (ev/s)",
            p.per_sec,
            s.per_sec,
            Target::None,
        ));

        eprintln!("{}: verified consume", E::TYPE);
        let consumed = self.plan.consumed;
        self.purge::<E>().await?;
        sdk::publish(self.signed, event, consumed, WINDOW).await?;
        let (mut plain, mut verified) = (Vec::new(), Vec::new());
        for round in 0..self.plan.rounds {
            for side in sides(round) {
                match side {
                    Side::Raw => plain.push(
                        sdk::consume::<E>(self.client, self.js, consumed, 1, Validation::Schema)
                            .await?,
                    ),
                    Side::Sdk => verified.push(
                        sdk::consume::<E>(self.signed, self.js, consumed, 1, Validation::Schema)
                            .await?,
                    ),
                }
            }
        }
        let (p, v) = median_pair(&plain, &verified, throughput);
        rows.push(Row::new(
            "verified consume, 1 handler; unverified SDK beside (ev/s)",
            p.per_sec,
            v.per_sec,
            Target::None,
        ));

        eprintln!("{}: publish awaiting each ack", E::TYPE);
        // One at a time.
        let (mut raw, mut sdk) = (Vec::new(), Vec::new());
        for round in 0..self.plan.rounds {
            for side in sides(round) {
                self.purge::<E>().await?;
                match side {
                    Side::Raw => raw.push(
                        self.raw_publish(event, self.plan.awaited, 1, Wire::Eventhub)
                            .await?,
                    ),
                    Side::Sdk => sdk.push(self.sdk_publish(event, self.plan.awaited, 1).await?),
                }
            }
        }
        let (r, s) = median_pair(&raw, &sdk, throughput);
        rows.push(Row::new(
            "publish awaiting each ack (ev/s)",
            r.per_sec,
            s.per_sec,
            Target::None,
        ));

        // Consume with handler and ack, from a backlog. The targeted rows do what raw does
        // (decode into the type, `Validation::Types`); the default consumer also checks each
        // event against its schema, measured beside.
        let n = self.plan.consumed;
        self.purge::<E>().await?;
        self.sdk_publish(event, n, WINDOW).await?;
        for handlers in [1, HANDLERS] {
            eprintln!("{}: consume with {handlers} handler(s)", E::TYPE);
            let (mut raw, mut sdk, mut checked) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..self.plan.targeted_rounds {
                for side in sides(round) {
                    match side {
                        Side::Raw => raw.push(self.raw_consume::<E>(n, handlers).await?),
                        Side::Sdk => {
                            sdk.push(
                                self.sdk_consume::<E>(n, handlers, Validation::Types)
                                    .await?,
                            );
                            checked.push(
                                self.sdk_consume::<E>(n, handlers, Validation::Schema)
                                    .await?,
                            );
                        }
                    }
                }
            }
            let (r, s) = median_pair(&raw, &sdk, throughput);
            let (rc, c) = median_pair(&raw, &checked, throughput);
            let name = if handlers == 1 {
                "consume + decode + ack, 1 handler (ev/s)"
            } else {
                "consume + decode + ack, 8 handlers (ev/s)"
            };
            rows.push(Row::new(name, r.per_sec, s.per_sec, Target::AtLeast(0.95)));
            if handlers == 1 {
                rows.push(Row::new(
                    "  client CPU per consumed event (µs)",
                    r.cpu_micros_per_event(),
                    s.cpu_micros_per_event(),
                    Target::None,
                ));
                rows.push(Row::new(
                    "  server CPU per consumed event (µs)",
                    r.server_micros_per_event(),
                    s.server_micros_per_event(),
                    Target::None,
                ));
                rows.push(Row::new(
                    "  peak RSS while consuming (MiB)",
                    mib(r.usage.peak_rss_kib),
                    mib(s.usage.peak_rss_kib),
                    Target::None,
                ));
            }
            rows.push(Row::new(
                "  with the schema check, the default (ev/s)",
                rc.per_sec,
                c.per_sec,
                Target::None,
            ));
            if handlers == 1 {
                rows.push(Row::new(
                    "  with the schema check: client CPU per event (µs)",
                    rc.cpu_micros_per_event(),
                    c.cpu_micros_per_event(),
                    Target::None,
                ));
            }
        }
        // What the wire format costs a consumer: raw consuming bare messages (payload and
        // `Nats-Msg-Id`) beside eventhub consuming its own, alternating in pairs like every
        // targeted row (each side's backlog published before its run): compared with runs made
        // minutes apart, the ratio followed the machine's drift.
        eprintln!("{}: consume bare messages (raw) beside eventhub's", E::TYPE);
        let (mut bare, mut lean) = (Vec::new(), Vec::new());
        for round in 0..self.plan.targeted_rounds {
            for side in sides(round) {
                self.purge::<E>().await?;
                match side {
                    Side::Raw => {
                        self.raw_publish(event, n, WINDOW, Wire::Bare).await?;
                        bare.push(self.raw_consume::<E>(n, 1).await?);
                    }
                    Side::Sdk => {
                        self.sdk_publish(event, n, WINDOW).await?;
                        lean.push(self.sdk_consume::<E>(n, 1, Validation::Types).await?);
                    }
                }
            }
        }
        let (b, bs) = median_pair(&bare, &lean, throughput);
        rows.push(Row::new(
            "  wire format: consume vs raw bare, 1 handler (ev/s)",
            b.per_sec,
            bs.per_sec,
            Target::AtLeast(0.85),
        ));

        // End-to-end latency at fixed rates.
        for (rate, names) in [
            (
                1_000,
                [
                    "latency p50 at 1k ev/s (µs)",
                    "latency p99 at 1k ev/s (µs)",
                    "latency p999 at 1k ev/s (µs)",
                ],
            ),
            (
                10_000,
                [
                    "latency p50 at 10k ev/s (µs)",
                    "latency p99 at 10k ev/s (µs)",
                    "latency p999 at 10k ev/s (µs)",
                ],
            ),
        ] {
            eprintln!("{}: latency at {rate}/s", E::TYPE);
            // Latency varies run to run (at 10k events/s on this machine nats-server stalls for
            // about 20 ms in most runs, and for 100 ms or more in about one in ten, whichever
            // side is running): alternate the sides, and take each side's quantiles over all
            // its runs.
            let (mut raw, mut sdk, mut bare) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..self.plan.rounds {
                for side in sides(round) {
                    self.purge::<E>().await?;
                    match side {
                        Side::Raw => raw.push(self.raw_latency(event, rate, Wire::Eventhub).await?),
                        Side::Sdk => sdk.push(self.sdk_latency(event, rate).await?),
                    }
                }
                self.purge::<E>().await?;
                bare.push(self.raw_latency(event, rate, Wire::Bare).await?);
            }
            let (r, s, b) = (pooled(&raw), pooled(&sdk), pooled(&bare));
            for (i, (q, name)) in [0.5, 0.99, 0.999].iter().zip(names).enumerate() {
                let target = if i == 1 {
                    Target::AtMost(1.2)
                } else {
                    Target::None
                };
                rows.push(Row::new(
                    name,
                    quantile(&r, *q) as f64,
                    quantile(&s, *q) as f64,
                    target,
                ));
            }
            rows.push(Row::new(
                if rate == 1_000 {
                    "  wire format: p99 at 1k vs raw bare (µs)"
                } else {
                    "  wire format: p99 at 10k vs raw bare (µs)"
                },
                quantile(&b, 0.99) as f64,
                quantile(&s, 0.99) as f64,
                Target::None,
            ));
        }
        Ok(rows)
    }

    /// Runs one side of one scenario for profiling: `raw-publish`, `raw-publish-bare`,
    /// `sdk-publish`, `raw-consume`, `sdk-consume` (`-8`: with 8 handlers); or both sides, a line
    /// per run: `latency` at 10k events/s, `publish-ab`, `consume-ab`, `consume-8-ab` alternating
    /// pairs of runs (seven, or `EVENTHUB_BENCH_ROUNDS`).
    pub(crate) async fn profile<E: Event + Consumable>(
        &self,
        what: &str,
        event: &E,
    ) -> anyhow::Result<()> {
        let n = 300_000;
        self.purge::<E>().await?;
        let run = match what {
            "raw-publish" => self.raw_publish(event, n, WINDOW, Wire::Eventhub).await?,
            "raw-publish-bare" => self.raw_publish(event, n, WINDOW, Wire::Bare).await?,
            "sdk-publish" => {
                sdk::publish_checking(self.client, event, n, WINDOW, profile_validation()).await?
            }
            "raw-consume" | "sdk-consume" | "raw-consume-8" | "sdk-consume-8" => {
                self.sdk_publish(event, n, WINDOW).await?;
                let handlers = if what.ends_with("-8") { HANDLERS } else { 1 };
                if what.starts_with("raw") {
                    self.raw_consume::<E>(n, handlers).await?
                } else {
                    self.sdk_consume::<E>(n, handlers, profile_validation())
                        .await?
                }
            }
            "publish-ab" | "consume-ab" | "consume-8-ab" => {
                // Both sides, alternating, 100k events a run: a ratio per pair of runs, so a
                // machine that changes speed over minutes does not decide the comparison.
                let n = 100_000;
                let handlers = if what == "consume-8-ab" { HANDLERS } else { 1 };
                if what != "publish-ab" && matches!(profile_wire(), Wire::Eventhub) {
                    self.sdk_publish(event, n, WINDOW).await?;
                }
                let mut ratios = Vec::new();
                let rounds = env_number("EVENTHUB_BENCH_ROUNDS").unwrap_or(self.plan.rounds);
                for round in 0..rounds {
                    let (mut raw, mut sdk) = (None, None);
                    for side in sides(round) {
                        let run = if what == "publish-ab" {
                            self.purge::<E>().await?;
                            match side {
                                Side::Raw => {
                                    self.raw_publish(event, n, WINDOW, profile_wire()).await?
                                }
                                Side::Sdk => {
                                    sdk::publish_checking(
                                        self.client,
                                        event,
                                        n,
                                        WINDOW,
                                        profile_validation(),
                                    )
                                    .await?
                                }
                            }
                        } else {
                            if let Wire::Bare = profile_wire() {
                                // Raw consumes bare messages, eventhub its own: each side's
                                // backlog published before its run.
                                self.purge::<E>().await?;
                                match side {
                                    Side::Raw => {
                                        self.raw_publish(event, n, WINDOW, Wire::Bare).await?
                                    }
                                    Side::Sdk => self.sdk_publish(event, n, WINDOW).await?,
                                };
                            }
                            match side {
                                Side::Raw => self.raw_consume::<E>(n, handlers).await?,
                                Side::Sdk => {
                                    self.sdk_consume::<E>(n, handlers, profile_validation())
                                        .await?
                                }
                            }
                        };
                        *match side {
                            Side::Raw => &mut raw,
                            Side::Sdk => &mut sdk,
                        } = Some(run);
                    }
                    let (raw, sdk) = (raw.expect("ran"), sdk.expect("ran"));
                    let ratio = sdk.per_sec / raw.per_sec;
                    eprintln!(
                        "{what} ({} first): raw {:.0} ev/s, eventhub {:.0} ev/s, ratio {ratio:.2}; CPU µs/event client {:.1} / {:.1}, server {:.1} / {:.1}",
                        if round.is_multiple_of(2) {
                            "raw"
                        } else {
                            "eventhub"
                        },
                        raw.per_sec,
                        sdk.per_sec,
                        raw.cpu_micros_per_event(),
                        sdk.cpu_micros_per_event(),
                        raw.server_micros_per_event(),
                        sdk.server_micros_per_event()
                    );
                    ratios.push(ratio);
                }
                ratios.sort_by(f64::total_cmp);
                eprintln!("{what}: median ratio {:.2}", ratios[ratios.len() / 2]);
                return Ok(());
            }
            "latency" => {
                // Both sides alternating at `EVENTHUB_BENCH_RATE` events/s (default 10k), a
                // quantile line per run, then each side's quantiles over all its runs.
                let rate = env_number("EVENTHUB_BENCH_RATE").unwrap_or(10_000);
                let (mut raw, mut sdk) = (Vec::new(), Vec::new());
                for round in 0..self.plan.rounds {
                    for side in sides(round).map(|s| match s {
                        Side::Raw => "raw",
                        Side::Sdk => "sdk",
                    }) {
                        self.purge::<E>().await?;
                        let l = if side == "raw" {
                            self.raw_latency(event, rate, Wire::Eventhub).await?
                        } else {
                            self.sdk_latency(event, rate).await?
                        };
                        eprintln!("{side} latency at {rate}/s (µs): {}", quantiles(&l));
                        if side == "raw" { &mut raw } else { &mut sdk }.push(l);
                    }
                }
                let (raw, sdk) = (pooled(&raw), pooled(&sdk));
                eprintln!("all runs, raw (µs): {}", quantiles(&raw));
                eprintln!("all runs, eventhub (µs): {}", quantiles(&sdk));
                eprintln!(
                    "p99 ratio {:.2}",
                    quantile(&sdk, 0.99) as f64 / quantile(&raw, 0.99).max(1) as f64
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown profile {other}"),
        };
        eprintln!("{what}: {:.0} ev/s", run.per_sec);
        Ok(())
    }

    pub(crate) async fn purge<E: Event>(&self) -> anyhow::Result<()> {
        let stream = self.js.get_stream(E::STREAM).await?;
        stream.purge().await.context("purge")?;
        Ok(())
    }

    /// Raw: serialize, `Nats-Msg-Id`, publish, keep `window` acks in flight.
    /// Raw async-nats: serializes the same struct and sends it with the headers `wire` says,
    /// built the plain way.
    pub(crate) async fn raw_publish<E: Event>(
        &self,
        event: &E,
        n: usize,
        window: usize,
        wire: Wire,
    ) -> anyhow::Result<Run> {
        let meter = Meter::start();
        let start = Instant::now();
        let mut in_flight = VecDeque::with_capacity(window);
        for _ in 0..n {
            let payload = Bytes::from(serde_json::to_vec(event)?);
            let id = uuid::Uuid::now_v7().to_string();
            let headers = wire.headers::<E>(&id);
            let ack = self
                .js
                .publish_with_headers(E::SUBJECT, headers, payload)
                .await?;
            in_flight.push_back(ack);
            if in_flight.len() >= window
                && let Some(oldest) = in_flight.pop_front()
            {
                oldest.await?;
            }
        }
        for ack in in_flight {
            ack.await?;
        }
        let per_sec = n as f64 / start.elapsed().as_secs_f64();
        Ok(Run {
            per_sec,
            usage: meter.stop(),
            events: n,
        })
    }

    pub(crate) async fn sdk_publish<E: Event>(
        &self,
        event: &E,
        n: usize,
        window: usize,
    ) -> anyhow::Result<Run> {
        sdk::publish(self.client, event, n, window).await
    }

    /// Raw: a durable pull consumer from the start of the stream; decode, ack.
    pub(crate) async fn raw_consume<E: Event>(
        &self,
        n: usize,
        handlers: usize,
    ) -> anyhow::Result<Run> {
        let name = format!("raw_{}", uuid::Uuid::now_v7().simple());
        let stream = self.js.get_stream(E::STREAM).await?;
        let pull = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                filter_subject: E::SUBJECT.to_string(),
                max_ack_pending: 1000,
                ..Default::default()
            })
            .await?;
        let meter = Meter::start();
        let start = Instant::now();
        let messages = pull.messages().await?;
        messages
            // A missed idle heartbeat (a stalled machine) is reported as an item; the stream
            // goes on.
            .filter_map(|m| std::future::ready(m.ok()))
            .take(n)
            .for_each_concurrent(handlers, |m| async move {
                let _event: E = serde_json::from_slice(&m.payload).expect("decodes");
                m.ack().await.expect("ack");
            })
            .await;
        let per_sec = n as f64 / start.elapsed().as_secs_f64();
        let usage = meter.stop();
        stream.delete_consumer(&name).await?;
        Ok(Run {
            per_sec,
            usage,
            events: n,
        })
    }

    /// eventhub: see [`sdk::consume`].
    pub(crate) async fn sdk_consume<E: Event + Consumable>(
        &self,
        n: usize,
        handlers: usize,
        validation: Validation,
    ) -> anyhow::Result<Run> {
        sdk::consume::<E>(self.client, self.js, n, handlers, validation).await
    }

    /// Events to send per 1 ms tick and in total for a latency run at `rate`.
    fn latency_counts(&self, rate: usize) -> (usize, usize) {
        let per_tick = (rate / 1000).max(1);
        (per_tick, rate * self.plan.latency_secs as usize)
    }

    async fn raw_latency<E: Event>(
        &self,
        event: &E,
        rate: usize,
        wire: Wire,
    ) -> anyhow::Result<Vec<u64>> {
        let (per_tick, total) = self.latency_counts(rate);
        let clock = Clock::new(total);
        let stream = self.js.get_stream(E::STREAM).await?;
        let name = format!("rawlat_{}", uuid::Uuid::now_v7().simple());
        let pull = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                filter_subject: E::SUBJECT.to_string(),
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await?;
        let messages = pull.messages().await?;
        let c = clock.clone();
        let receiver = tokio::spawn(async move {
            messages
                .filter_map(|m| std::future::ready(m.ok()))
                .take(total)
                .for_each(|m| {
                    let c = c.clone();
                    async move {
                        let _event: E = serde_json::from_slice(&m.payload).expect("decodes");
                        let id = m
                            .headers
                            .as_ref()
                            .and_then(|h| h.get("Nats-Msg-Id"))
                            .map(|v| v.as_str().to_string())
                            .unwrap_or_default();
                        c.received(&id);
                        m.ack().await.expect("ack");
                    }
                })
                .await;
        });
        let mut ticks = tokio::time::interval(Duration::from_millis(1));
        let mut in_flight = VecDeque::new();
        let mut sent = 0;
        while sent < total {
            ticks.tick().await;
            for _ in 0..per_tick.min(total - sent) {
                // The clock starts before the event is serialized and its headers built, as
                // on eventhub's side (its `send_with` does both).
                clock.sent(sent);
                let payload = Bytes::from(serde_json::to_vec(event)?);
                let headers = wire.headers::<E>(&format!("lat-{}-{sent}", clock.run));
                in_flight.push_back(
                    self.js
                        .publish_with_headers(E::SUBJECT, headers, payload)
                        .await?,
                );
                if in_flight.len() >= WINDOW
                    && let Some(a) = in_flight.pop_front()
                {
                    a.await?;
                }
                sent += 1;
            }
        }
        for a in in_flight {
            a.await?;
        }
        tokio::time::timeout(Duration::from_secs(30), receiver).await??;
        stream.delete_consumer(&name).await?;
        Ok(clock.latencies())
    }

    async fn sdk_latency<E: Event + Consumable>(
        &self,
        event: &E,
        rate: usize,
    ) -> anyhow::Result<Vec<u64>> {
        let (per_tick, total) = self.latency_counts(rate);
        sdk::latency(self.client, self.js, event, rate, per_tick, total).await
    }
}

/// The samples of several runs, sorted.
pub(crate) fn pooled(runs: &[Vec<u64>]) -> Vec<u64> {
    let mut all: Vec<u64> = runs.concat();
    all.sort_unstable();
    all
}

/// `p50 … p99 … p999 …` of sorted samples.
fn quantiles(sorted: &[u64]) -> String {
    format!(
        "p50 {} p99 {} p999 {}",
        quantile(sorted, 0.5),
        quantile(sorted, 0.99),
        quantile(sorted, 0.999)
    )
}

/// What raw sends in `publish-ab`: `EVENTHUB_BENCH_WIRE=bare` for the payload and a
/// `Nats-Msg-Id` only, otherwise eventhub's headers.
fn profile_wire() -> Wire {
    match std::env::var("EVENTHUB_BENCH_WIRE").as_deref() {
        Ok("bare") => Wire::Bare,
        _ => Wire::Eventhub,
    }
}

/// What eventhub checks in a profile: `EVENTHUB_BENCH_VALIDATION=schema` for the default
/// consumer and publisher, otherwise the targeted rows' `Validation::Types`.
fn profile_validation() -> Validation {
    match std::env::var("EVENTHUB_BENCH_VALIDATION").as_deref() {
        Ok("schema") => Validation::Schema,
        _ => Validation::Types,
    }
}
