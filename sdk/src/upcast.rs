//! Upcasting: a handler written for one version receives every version of its family.
//!
//! Every family enum implements [`Upcast<T>`] for each `T` that all its versions convert into
//! (`From<CreatedV1> for CreatedV2`, and `CreatedV2` into itself). A consumer of
//! [`Upcasted<F, T>`] subscribes to the whole family `F`, decodes whichever version arrived and
//! hands the handler a `T`:
//!
//! ```ignore
//! use eventhub::{Client, ConsumerOptions, Upcasted};
//! use eventhub_catalog::events::user;
//! # async fn demo(client: Client) -> Result<(), eventhub::error::ConsumeError> {
//! client
//!     .consumer::<Upcasted<user::Created, user::CreatedV2>>(ConsumerOptions::default())
//!     .await?
//!     .run(|env| async move {
//!         let user: &user::CreatedV2 = env.event(); // v1 events arrive converted
//!         println!("{} ({}), sent as v{}", user.email, *user.locale, env.event().version());
//!         Ok(())
//!     }, std::future::pending::<()>())
//!     .await;
//! # Ok(()) }
//! ```
//!
//! Conversions between generated versions live in the catalog's crate, next to the generated
//! types (Rust's orphan rule lets only that crate implement `From` between two of them); the team
//! that adds a version adds its conversion. A service may instead convert every version into a type of its
//! own (`impl From<user::CreatedV1> for MyUser` is allowed in the service's crate) and consume
//! `Upcasted<user::Created, MyUser>`.

use std::fmt;
use std::ops::Deref;

use crate::error::DecodeError;
use crate::wire::crypto::Decryptor;
use crate::wire::{Consumable, Family, RawEvent};

/// Converts a family's value, whatever its version, into `T`. Generated for every family
/// enum, for every `T` all its versions convert into.
pub trait Upcast<T> {
    /// The value as a `T`.
    fn upcast(self) -> T;
}

/// An event of family `F` (any version), converted into `T` on arrival. Dereferences to `T`.
pub struct Upcasted<F, T> {
    event: T,
    version: u32,
    _family: std::marker::PhantomData<fn() -> F>,
}

impl<F: Consumable + Upcast<T>, T> Upcasted<F, T> {
    fn from_family(family: F) -> Self {
        Upcasted {
            version: family.version(),
            event: family.upcast(),
            _family: std::marker::PhantomData,
        }
    }
}

impl<F, T> Upcasted<F, T> {
    /// The version the event was published as.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The converted event.
    pub fn into_inner(self) -> T {
        self.event
    }
}

impl<F, T> Deref for Upcasted<F, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.event
    }
}

impl<F, T: fmt::Debug> fmt::Debug for Upcasted<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upcasted")
            .field("version", &self.version)
            .field("event", &self.event)
            .finish()
    }
}

impl<F, T> Consumable for Upcasted<F, T>
where
    F: Consumable + Upcast<T>,
    T: fmt::Debug + Send + Sync + 'static,
{
    const FAMILY: Family = F::FAMILY;
    const HAS_SENSITIVE_FIELDS: bool = F::HAS_SENSITIVE_FIELDS;

    fn decode(version: u32, raw: &RawEvent<'_>) -> Result<Self, DecodeError> {
        F::decode(version, raw).map(Self::from_family)
    }

    /// Decrypts before converting: the conversion may not keep the fields' places.
    fn decode_decrypting(
        version: u32,
        raw: &RawEvent<'_>,
        decryptor: &Decryptor<'_>,
    ) -> Result<Self, DecodeError> {
        F::decode_decrypting(version, raw, decryptor).map(Self::from_family)
    }

    fn version(&self) -> u32 {
        self.version
    }
}
