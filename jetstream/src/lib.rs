//! JetStream for shardline: the stream, consumer and KV definitions in one
//! place, the bridge to serverless functions, replay and dead-letter redrive.
//!
//! # Layout
//!
//! - `streams`: [`StreamSettings`], [`ensure_dispatch_stream`], [`ensure_dlq_stream`]
//!   and the KV buckets ([`sessions_bucket`], [`shards_bucket`], [`coordinator_bucket`]).
//!   Every process that needs a stream or bucket creates it through these, so
//!   their definitions never drift apart.
//! - `record`: [`StoredDispatch`] turns a stored message back into the
//!   [`shardline_wire::Record`] a function receives.
//! - [`replay`]: selection by time, sequence, event, guild and shard; an
//!   ordered ephemeral consumer; JSON Lines and counting sinks; progress and resume.

mod record;
pub mod replay;
mod streams;

pub use record::{RecordError, StoredDispatch};

pub use streams::{
    BucketKind, DefinitionError, StreamSettings, coordinator_bucket, ensure_dispatch_stream,
    ensure_dlq_stream, open_bucket, sessions_bucket, shards_bucket,
};
