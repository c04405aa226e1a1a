//! Consuming: a durable consumer of every `user.created` version, with retries and dead letters.
//!
//! `cargo run -p eventhub-examples --example consume`, then publish with
//! `cargo run -p eventhub-examples --example publish`; Ctrl-C stops it gracefully.

use std::time::Duration;

use eventhub::{Backoff, Client, ConnectOptions, ConsumerOptions, HandlerError};
use eventhub_catalog::{TOPOLOGY, events::user};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = Client::connect(ConnectOptions::from_env("profile")).await?;
    client.provision(&TOPOLOGY).await?;
    let options = ConsumerOptions::default()
        .concurrency(8)
        .max_deliver(5)
        .backoff(Backoff::schedule([
            Duration::from_secs(1),
            Duration::from_secs(5),
        ]));

    // The durable `profile__user_created`: events published while this was down wait for it.
    let stats = client
        .consumer::<user::Created>(options)
        .await?
        .run(
            |env| async move {
                match env.event() {
                    // Ok acks; an error (`?`) is retried with the backoff above.
                    user::Created::V2(u) => {
                        println!("profile for {} ({})", u.email, u.locale.as_str())
                    }
                    // A rejection goes to the dead letters at once, with its reason.
                    user::Created::V1(_) => return Err(HandlerError::reject("v1 has no locale")),
                }
                Ok(())
            },
            tokio::signal::ctrl_c(),
        )
        .await;
    println!(
        "handled {}, retried {}, dead-lettered {}",
        stats.handled, stats.retried, stats.dead_lettered
    );
    Ok(())
}
