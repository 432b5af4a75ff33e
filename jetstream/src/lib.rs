//! JetStream for shardline: the stream, consumer and KV definitions in one
//! place, the bridge to serverless functions, replay and dead-letter redrive.
//!
//! # Layout
//!
//! - `streams`: [`StreamSettings`], [`ensure_dispatch_stream`], [`ensure_dlq_stream`]
//!   and the KV buckets ([`sessions_bucket`], [`shards_bucket`], [`coordinator_bucket`]).
//!   Every process that needs a stream or bucket creates it through these, so
//!   their definitions never drift apart.

mod streams;

pub use streams::{
    BucketKind, DefinitionError, StreamSettings, coordinator_bucket, ensure_dispatch_stream,
    ensure_dlq_stream, open_bucket, sessions_bucket, shards_bucket,
};
