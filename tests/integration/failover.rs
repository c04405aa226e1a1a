//! Failover consumers (JetStream priority groups): one active instance with a standby that
//! takes over, and overflow instances that help only with a backlog.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use eventhub::consume::Failover;
use eventhub::{Client, ConsumerHandle, ConsumerOptions};
use eventhub_catalog::events::user;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::support::{connect, consumer_counts, next, quick, server_and_client, user_created_v2};

const DURABLE: &str = "payments__user_created";

/// A consumer instance of `payments` on its own connection, reporting `(instance, event id)`.
async fn instance(
    server: &eventhub_testkit::NatsServer,
    options: ConsumerOptions,
    label: char,
    tx: mpsc::UnboundedSender<(char, String)>,
    gate: Option<Arc<Semaphore>>,
) -> (Client, ConsumerHandle) {
    let client = connect(server, "payments").await;
    let handle = client
        .consumer::<user::Created>(options)
        .await
        .unwrap()
        .spawn(move |env| {
            let (tx, gate) = (tx.clone(), gate.clone());
            async move {
                if let Some(gate) = gate {
                    gate.acquire().await.unwrap().forget();
                }
                tx.send((label, env.meta().id.clone())).unwrap();
                Ok(())
            }
        });
    (client, handle)
}

async fn publish(client: &Client, n: usize, tag: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for i in 0..n {
        let receipt = client
            .publisher()
            .publish(&user_created_v2(&format!("{tag}{i}@example.com")))
            .await
            .unwrap();
        ids.insert(receipt.id);
    }
    ids
}

/// Waits until the durable has nothing pending and nothing unacknowledged.
async fn settled(client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while consumer_counts(client, "IDENTITY", DURABLE).await != (0, 0) {
        assert!(Instant::now() < deadline, "the durable never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_pinned_durable_has_one_active_instance_and_a_standby_takes_over_when_it_dies() {
    let (server, auth) = server_and_client("auth").await;
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let takeover = Duration::from_secs(2);
    let options = quick()
        .ack_wait(Duration::from_secs(2))
        .failover(Failover::pinned(takeover));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (client_a, a) = instance(&server, options.clone(), 'a', tx.clone(), None).await;
    let (client_b, b) = instance(&server, options.clone(), 'b', tx.clone(), None).await;

    // The server's view: one group, pinned once an event was delivered.
    let published = publish(&auth, 30, "first").await;
    let mut handled = Vec::new();
    while handled.len() < 30 {
        handled.push(next(&mut rx, 20).await);
    }
    let active = handled[0].0;
    assert!(
        handled.iter().all(|(who, _)| *who == active),
        "one instance handles everything while it lives: {handled:?}"
    );
    assert_eq!(
        handled
            .iter()
            .map(|(_, id)| id.clone())
            .collect::<BTreeSet<_>>(),
        published
    );
    settled(&auth).await;

    // The active instance dies: it stops pulling and its connection goes (as after kill -9).
    let ((dead_client, dead), (_, survivor), standby) = if active == 'a' {
        ((client_a, a), (client_b, b), 'b')
    } else {
        ((client_b, b), (client_a, a), 'a')
    };
    let died = Instant::now();
    dead.abort();
    dead_client.nats().drain().await.unwrap();
    let second = publish(&auth, 20, "second").await;
    let mut after = Vec::new();
    while after.len() < 20 {
        after.push(next(&mut rx, 30).await);
    }
    let took = died.elapsed();
    assert!(
        after.iter().all(|(who, _)| *who == standby),
        "the standby handles what comes after: {after:?}"
    );
    assert_eq!(
        after
            .iter()
            .map(|(_, id)| id.clone())
            .collect::<BTreeSet<_>>(),
        second,
        "nothing lost or doubled across the takeover"
    );
    // The server moves the pin after `takeover` of silence; the standby's next pull (every
    // takeover / 2) gets it. Generous bound for a loaded machine.
    assert!(
        took < takeover * 4,
        "takeover took {took:?} (takeover time {takeover:?})"
    );
    eprintln!("takeover after the active instance's connection closed: {took:?}");
    survivor.shutdown().await;
}

#[tokio::test]
async fn an_overflow_standby_helps_only_while_a_backlog_waits() {
    let (server, auth) = server_and_client("auth").await;
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The primary handles one event at a time, and only when the test lets it.
    let gate = Arc::new(Semaphore::new(0));
    let one_at_a_time = quick().concurrency(1).prefetch(0);
    let (_pc, primary) = instance(
        &server,
        one_at_a_time.clone().failover(Failover::primary()),
        'p',
        tx.clone(),
        Some(gate.clone()),
    )
    .await;
    let (_sc, standby) = instance(
        &server,
        quick().failover(Failover::standby(50)),
        's',
        tx.clone(),
        None,
    )
    .await;

    // A small load (never more than 50 waiting): the primary alone.
    let mut first = Vec::new();
    for i in 0..10 {
        publish(&auth, 1, &format!("small{i}-")).await;
        gate.add_permits(1);
        first.push(next(&mut rx, 20).await);
    }
    assert!(
        first.iter().all(|(who, _)| *who == 'p'),
        "the standby stays idle under the threshold: {first:?}"
    );

    // A backlog of 200 while the primary is stuck on one event: the standby drains it down
    // to the threshold, then stops; the primary does the rest.
    let backlog = publish(&auth, 200, "backlog").await;
    let mut by_standby = BTreeSet::new();
    while by_standby.len() < 149 {
        let (who, id) = next(&mut rx, 20).await;
        assert_eq!(
            who, 's',
            "only the standby can handle while the primary is stuck"
        );
        by_standby.insert(id);
    }
    // 51 wait: one held by the primary, 50 pending — not above the threshold.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ack_pending, pending) = consumer_counts(&auth, "IDENTITY", DURABLE).await;
        if (ack_pending, pending) == (1, 50) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expected 1 ack-pending and 50 pending, got {ack_pending} and {pending}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gate.add_permits(51);
    let mut by_primary = BTreeSet::new();
    while by_primary.len() < 51 {
        let (who, id) = next(&mut rx, 20).await;
        assert_eq!(who, 'p', "the standby idles at or under the threshold");
        by_primary.insert(id);
    }
    assert!(by_primary.is_disjoint(&by_standby));
    let all: BTreeSet<_> = by_primary.union(&by_standby).cloned().collect();
    assert_eq!(all, backlog, "every event of the backlog, once");
    primary.shutdown().await;
    standby.shutdown().await;
}

#[tokio::test]
async fn a_takeover_shorter_than_a_second_is_refused() {
    let (_server, client) = server_and_client("payments").await;
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let err = client
        .consumer::<user::Created>(quick().failover(Failover::pinned(Duration::from_millis(300))))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), eventhub::error::ConsumeErrorKind::InvalidConfig);
    assert!(err.to_string().contains("takeover"), "{err}");
}
