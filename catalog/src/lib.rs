//! The organisation's event catalog: the Rust types generated at build time from the JSON
//! Schemas in `schemas/` (one struct per event version, one enum per family, subject constants),
//! the declared streams ([`TOPOLOGY`]), every event with its bundled schema ([`CATALOG`]), and the
//! conversions between versions.
//!
//! The runtime, [`eventhub`], knows no catalog: a service depends on it and on the catalog
//! crate(s) whose events it publishes or consumes.
//!
//! ```no_run
//! use eventhub::{Client, ConnectOptions};
//! use eventhub_catalog::{TOPOLOGY, events::user};
//! # async fn demo(event: user::CreatedV2) -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect(ConnectOptions::new("auth")).await?;
//! client.provision(&TOPOLOGY).await?;
//! let receipt = client.publisher().publish(&event).await?;
//! assert!(!receipt.duplicate);
//! # Ok(()) }
//! ```

/// The event types generated from `schemas/`.
pub mod events {
    include!(concat!(env!("OUT_DIR"), "/events.rs"));
}

mod upcast;

include!(concat!(env!("OUT_DIR"), "/signing.rs"));

/// A [`Trust`](eventhub::wire::signing::Trust) requiring a valid signature from every service
/// the declaration lists nkeys for ([`SIGNING_KEYS`]) and knowing each type's publisher
/// ([`PUBLISHERS`]: a scheduled event of another service's type is forged); give it to the
/// consumers' client with [`ConnectOptions::trust`](eventhub::ConnectOptions::trust).
pub fn trust() -> Result<eventhub::wire::signing::Trust, eventhub::wire::signing::SigningError> {
    let trust = SIGNING_KEYS.iter().try_fold(
        eventhub::wire::signing::Trust::new(),
        |trust, (service, keys)| trust.service(service, keys.iter()),
    )?;
    Ok(PUBLISHERS
        .iter()
        .fold(trust, |trust, (ty, service)| trust.publisher(ty, service)))
}

pub use events::{CATALOG, PROTO_FILE, STREAMS, TOPOLOGY, for_each_event};
