//! Build-time code generation for eventhub.
//!
//! The JSON Schemas under `schemas/` are the single source of truth for every event. This crate
//! reads them, validates them strictly (a problem is reported with the file, the JSON pointer and
//! what is wrong — never a panic), bundles cross-file references, and generates Rust:
//!
//! - per event version a serde struct (`events::user::CreatedV1`) implementing `Event`
//!   (type, version, subject, schema id, stream, and the fields marked `x-sensitive`, which the
//!   SDK encrypts: plain strings only, checked here) and `Consumable`;
//! - per event family an enum over its versions (`events::user::Created::{V1, V2}`), and per
//!   domain an enum over its families (`events::photo::Any`), for a consumer of a whole domain;
//! - per domain a `subjects` module of constants; a `CATALOG` of every event with its bundled
//!   schema, and the `STREAMS` declared in `schemas/streams.json`;
//! - per event version its protobuf messages (the `descriptors` module, `Event::PROTO`), with
//!   field numbers that stay stable across compatible changes ([`proto`]), the `.proto` text of
//!   the catalog (`PROTO_FILE`), and `for_each_event`, which visits every event type.
//!
//! Beside the catalog, [`services`] reads the declaration of services (`schemas/services.json`:
//! who publishes and who consumes which events) and renders the NATS permissions from it
//! ([`services::nats`]); [`Config::compile`] rejects a declaration that does not fit the
//! catalog.
//!
//! Layout of the catalog:
//!
//! ```text
//! schemas/
//!   streams.json                 stream topology
//!   services.json                who publishes and consumes what (optional)
//!   shared/money.json            shared definitions ($defs only), referenced from events
//!   user/created.v1.json         event `user.created` version 1, subject events.user.created.v1
//!   photo/processing/started.v1.json   event `photo.processing.started` version 1
//! ```
//!
//! Use it from a build script ([`Config`] has the options):
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     eventhub_codegen::Config::new().schemas("schemas").compile()?;
//!     Ok(())
//! }
//! ```
//! and include the result with `include!(concat!(env!("OUT_DIR"), "/events.rs"))`.
//!
//! The generated module also lists the catalog's own schema files (`SCHEMA_FILES`) and its
//! name (`CATALOG_NAME`), so another catalog can build on it without copying it
//! ([`Config::extern_catalog`]).
//!
//! Modules read top-down (`scripts/check-layers` checks there is no import cycle): [`Config`]
//! drives the rest; `export`, `services` and `release` read a loaded [`Catalog`]; `generate`
//! turns one into Rust; `catalog` loads one (with `validate`, `topology`, `lock`, `externs`);
//! `proto`, `compat`, `sensitive` and `naming` know schemas; `files` and `diagnostic` are the
//! ground floor.

mod catalog;
pub mod compat;
mod config;
mod constraints;
mod diagnostic;
mod domain_enum;
mod embed;
pub mod export;
mod extensions;
mod externs;
mod files;
mod generate;
mod guard;
mod lock;
mod naming;
pub mod proto;
mod proto_codec;
pub mod release;
mod sensitive;
pub mod services;
mod topology;
mod validate;

pub use catalog::{Catalog, EventEntry, EventInfoData};
pub use config::{Config, OUT_FILE, compile};
pub use diagnostic::{Diagnostic, Error};
pub use externs::ExternCatalog;
pub use files::write_if_changed;
pub use naming::{SERVICES_FILE, SHARED_DIR, SUBJECT_PREFIX, TOPOLOGY_FILE};
pub use proto::{FieldNumbers, assign_field_numbers};
