//! Discord gateway shards and the identify coordinator.
//!
//! # Layout
//!
//! - `queue`: the [`IdentifyQueue`] trait every shard asks before it sends
//!   IDENTIFY, and [`LocalQueue`], the in-process implementation (one
//!   `governor` limiter per bucket `shard_id % max_concurrency`). The
//!   coordinator's cross-process queue implements the same trait over NATS.
//!
//! Shards (issue 4) and the coordinator and workers (issue 5) fill in the rest.

mod clock;
mod queue;

pub use clock::TokioClock;
pub use queue::{IdentifyPermit, IdentifyQueue, LocalQueue, PermitFuture, QueueError};
