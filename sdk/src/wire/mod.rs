//! The wire layer: what an event is ([`Event`], [`Consumable`]),
//! how it travels ([`headers`], [`codec`]), how it is checked ([`schema`]), encrypted
//! ([`crypto`]), encoded as protobuf ([`proto`]) and traced ([`trace`]), and what a typed request is
//! ([`request`]). It knows no `Client`:
//! everything here works on values, so tools and tests use it without a server.

pub mod codec;
pub mod crypto;
mod event;
pub mod headers;
pub mod proto;
pub mod request;
pub mod schema;
pub mod signing;
pub mod trace;

pub use event::{
    Consumable, Event, EventInfo, EventVisitor, Family, RawEvent, Validation, decode_decrypting,
    parse_subject,
};
