//! 7. Adversarial: a foreign-style publisher (plain async-nats, any headers, any bytes) sends
//!    every kind of input a producer can send, interleaved with valid events the SDK
//!    publishes, while a family consumer, an idempotent consumer in two instances, a consumer
//!    that dies during every delivery and a sweeper run. An oracle decides before each send what
//!    must become of it; the ledger compares, per input:
//!
//!    - refused at publish: the client's `max_payload` check, no stream for the subject, or the
//!      JetStream error code a failed precondition or a disabled feature gets;
//!    - valid and stored: handled at least once by the plain consumer and exactly once (per
//!      event id) by the idempotent one, never dead-lettered;
//!    - invalid and stored: dead-lettered as poison by both consumers, with an error naming
//!      what is wrong, never handled;
//!    - stored at all: dead-lettered (max-deliver) by the sweeper for the consumer that died;
//!    - every dead letter keeps the original payload and headers (`Nats-*` ones given back
//!      under their names);
//!    - then some dead letters are replayed: only their consumer handles them (the other acks
//!      them unhandled, as the replay record vouches), byte-for-byte copies of a replay are
//!      treated like it, and its marks moved onto another event are not honoured;
//!
//!    and nothing else: nothing pending or unacknowledged at the end, the sweeper's backlog
//!    empty. A disagreement fails the run with the seed that reproduces it.

mod inputs;
mod ledger;
mod oracle;
mod rig;
mod send;

use std::time::{Duration, Instant};

use anyhow::bail;
use async_nats::jetstream;
use eventhub::Client;
use eventhub::ConnectOptions;
use eventhub::dlq::DeadLetterFilter;
use eventhub_testkit::NatsServer;
use inputs::Generator;
use ledger::Observed;
use rig::Rig;
use send::Sender;

use crate::ledger::Row;
use crate::scenarios::Scale;

/// Waits until `done` holds or `deadline` passes.
async fn until(deadline: Instant, mut done: impl FnMut() -> bool) {
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The adversarial scenario (see the module docs).
pub(crate) async fn adversarial(scale: Scale) -> anyhow::Result<Row> {
    let started = Instant::now();
    let seed = scale.seed.unwrap_or_else(|| fastrand::u64(..));
    let count = scale.adversarial;
    eprintln!(
        "adversarial: seed {seed}, {count} inputs (reproduce: cargo run --release -p \
         eventhub-faults -- --only adversarial --seed {seed} --count {count})"
    );
    let server = NatsServer::builder().start()?;
    let url = server.client_url();
    let auth = Client::connect(ConnectOptions::new("auth").url(&url)).await?;
    auth.provision(&eventhub_catalog::TOPOLOGY).await?;
    let max_payload = auth.nats().server_info().max_payload;
    // The oracle assumes IDENTITY enables none of the features headers can ask for.
    let identity = auth
        .jetstream()
        .get_stream(oracle::STREAM)
        .await?
        .cached_info()
        .config
        .clone();
    if identity.allow_rollup
        || identity.allow_message_ttl
        || identity.allow_message_schedules
        || identity.allow_atomic_publish
        || identity.allow_message_counter
        || identity.allow_batch_publish
    {
        bail!("IDENTITY enables a feature the oracle assumes off: {identity:?}");
    }
    let foreign = jetstream::new(async_nats::connect(&url).await?);
    let rig = Rig::start(&url, &foreign).await?;

    let mut generator = Generator::new(seed, max_payload);
    let mut sender = Sender::new(auth.publisher(), foreign, max_payload);
    while sender.sent.len() < count {
        for input in generator.next(&sender.state) {
            sender.send(input).await?;
        }
    }
    let published_in = started.elapsed();
    let deadline = Instant::now() + scale.limit;
    let settled = |sent: &[ledger::Sent]| {
        ledger::settled(sent, &rig.plain_runs, &rig.idempotent_runs, |c, q| {
            rig.dead_lettered(c, q)
        })
    };
    until(deadline, || settled(&sender.sent)).await;
    sender
        .replays(&auth, &mut generator, (count / 40).clamp(3, 100))
        .await?;
    until(deadline, || settled(&sender.sent)).await;
    // Then nothing may be left in flight anywhere.
    let mut left = rig.in_flight().await?;
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = rig.in_flight().await?;
    }
    let settled_in = started.elapsed() - published_in;
    let (plain_runs, idempotent_runs) = (rig.plain_runs.clone(), rig.idempotent_runs.clone());
    let (stats, entries) = rig.stop().await;

    // What the dead letters hold, through the SDK's reader (payloads resolved, original
    // headers given back).
    let letters = auth
        .dead_letters()
        .list(&DeadLetterFilter::default())
        .await?;
    let Sender {
        sent,
        mut disagreements,
        ..
    } = sender;
    let tally = ledger::judge(
        &sent,
        &Observed {
            plain: &plain_runs,
            idempotent: &idempotent_runs,
            entries: &entries,
            letters: &letters,
            stats: &stats,
            left: &left,
        },
        &mut disagreements,
    );
    let stored: Vec<&ledger::Sent> = sent.iter().filter(|s| s.sequence.is_some()).collect();
    let valid: Vec<u64> = stored
        .iter()
        .filter(|s| s.reading.is_ok())
        .filter_map(|s| s.sequence)
        .collect();
    let [ia, ib] = &stats.idempotent;
    let row = Row {
        scenario: "adversarial",
        acknowledged: valid.len(),
        handled: valid.iter().filter(|q| plain_runs.at(**q) > 0).count(),
        duplicates_seen: plain_runs.repeated(),
        duplicates_removed: ia.duplicates_skipped + ib.duplicates_skipped,
        lost: disagreements.len(),
        dlq: letters.len(),
        duration: started.elapsed(),
        notes: format!(
            "seed {seed}: {} inputs ({} stored: {} valid, {} invalid) published in {:.1} s, \
             settled in {:.1} s; plain consumer {} received, {} forged replay marks handled; \
             idempotent {} + {} received, {} copies and {} replays skipped; sweeper {} \
             advisories, {} swept; {} dead letters; {} disagreements",
            sent.len(),
            stored.len(),
            valid.len(),
            stored.len() - valid.len(),
            published_in.as_secs_f64(),
            settled_in.as_secs_f64(),
            stats.plain.received,
            stats.plain.forged_replay_marks,
            ia.received,
            ib.received,
            ia.duplicates_skipped + ib.duplicates_skipped,
            ia.replays_skipped + ib.replays_skipped,
            stats.sweeper.advisories,
            stats.sweeper.swept,
            letters.len(),
            disagreements.len()
        ),
        table: ledger::render(&tally, seed, count),
    };
    if !disagreements.is_empty() {
        let text: Vec<String> = disagreements
            .iter()
            .take(40)
            .map(|d| format!("  {d}"))
            .collect();
        bail!(
            "{} disagreement(s) between the oracle and eventhub (seed {seed}, reproduce with \
             --only adversarial --seed {seed} --count {count}):\n{}\n\n{}",
            disagreements.len(),
            text.join("\n"),
            row.table
        );
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::inputs::Generator;
    use super::oracle::StreamState;

    /// The generator is deterministic per seed and stays within what a client can send.
    #[test]
    fn inputs_reproduce_from_their_seed() {
        let run = |seed| {
            let mut g = Generator::new(seed, 1 << 20);
            let state = StreamState::default();
            (0..300)
                .flat_map(|_| g.next(&state))
                .map(|i| {
                    for (name, value) in i.headers() {
                        assert!(name.chars().all(|c| c.is_ascii_graphic() && c != ':'));
                        assert!(!value.contains(['\r', '\n']));
                    }
                    let headers = i.headers().to_vec();
                    (i.subject, i.data.bytes, headers)
                })
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a.len(), run(7).len());
        assert!(a == run(7));
        assert!(a.iter().any(|(_, _, h)| h.is_empty()));
        assert!(a != run(8));
    }
}
