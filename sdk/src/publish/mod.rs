//! Publishing typed events: one at a time, pipelined, scheduled ([`Schedule`]) or as an atomic
//! group ([`EventGroup`]).

mod group;
mod publisher;
mod receipt;
mod schedule;
mod version;

pub use group::{EventGroup, GroupReceipt};
pub use publisher::{Pipeline, PipelineFailure, PipelineReport, PublishOptions, Publisher, TTL};
pub(crate) use publisher::{RecordedMessage, Recording};
pub use receipt::Receipt;
pub use schedule::{Schedule, Scheduled};
pub use version::{Feature, Version};

/// The headers of JetStream message schedules (set by eventhub, or by the server on the
/// events it publishes from a schedule).
pub mod schedule_headers {
    pub use super::schedule::{
        SCHEDULE, SCHEDULE_NEXT, SCHEDULE_TARGET, SCHEDULE_TIME_ZONE, SCHEDULE_TTL, SCHEDULER,
    };
}
