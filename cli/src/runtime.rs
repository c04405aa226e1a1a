//! The events the commands know: the catalogs given with `--schemas` (read at run time by
//! [`crate::schemas::activate`]), else the one compiled in. Below every command, so both the
//! schema commands and the output helpers read it.

use std::sync::OnceLock;

use eventhub::EventInfo;
use eventhub_catalog::events::CATALOG;

/// The catalogs given at run time, as [`EventInfo`]s; unset: the compiled-in catalog.
static RUNTIME: OnceLock<Vec<EventInfo>> = OnceLock::new();

/// Makes `infos` the events of this run (once; later calls change nothing).
pub(crate) fn set(infos: Vec<EventInfo>) {
    let _ = RUNTIME.set(infos);
}

/// Whether the events come from catalogs read at run time (no protobuf descriptors).
pub(crate) fn is_runtime() -> bool {
    RUNTIME.get().is_some()
}

/// Every event the commands know: the catalogs given, else the compiled-in one.
pub(crate) fn events() -> &'static [EventInfo] {
    RUNTIME.get().map_or(CATALOG, Vec::as_slice)
}

/// The streams of [`events`], each once.
pub(crate) fn streams() -> Vec<&'static str> {
    let mut streams: Vec<&'static str> = events().iter().map(|e| e.stream).collect();
    streams.sort_unstable();
    streams.dedup();
    streams
}
