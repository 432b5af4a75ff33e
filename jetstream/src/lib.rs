//! JetStream for shardline: the stream, consumer and KV definitions in one
//! place, and the bridge to serverless functions.
//!
//! # Layout
//!
//! - `streams`: [`StreamSettings`], [`ensure_dispatch_stream`], [`ensure_dlq_stream`],
//!   [`ensure_route_consumer`] and the KV buckets ([`sessions_bucket`],
//!   [`shards_bucket`], [`coordinator_bucket`]). Every process that needs a
//!   stream, consumer or bucket creates it through these, so their
//!   definitions never drift apart.
//! - `record`: [`StoredDispatch`] turns a stored message back into the
//!   [`shardline_wire::Record`] a function receives.
//! - [`bridge`]: routes from the dispatch stream to serverless functions —
//!   [`Bridge`], [`BridgeConfig`], [`RouteConfig`] — acknowledging each event
//!   only after its target accepted it.
//! - `target`: where batches go — the [`Target`] trait, [`HttpTarget`]
//!   (Standard Webhooks signatures) and [`LambdaTarget`] (the Invoke API) —
//!   and the [`DeliveryOutcome`] of one call.
//! - [`dlq`]: list, show, redrive and purge dead letters; [`RouteSender`]
//!   sends stored events through a route's target with its retries but a
//!   budget of its own (redrive and `replay --to-route`).
//! - [`replay`]: selection by time, sequence, event, guild and shard; an
//!   ordered ephemeral consumer; JSON Lines and counting sinks; progress and resume.
//!
//! The bridge's data path: dispatch stream → a route's durable pull consumer →
//! [`shardline_wire::Record`]s in a [`shardline_wire::Batch`] →
//! [`Target::deliver`] → [`DeliveryOutcome`] → ack, delayed NAK, or dead
//! letter (`DISCORD_<APP>_DLQ`) then `+TERM`.

pub mod bridge;
mod connect;
pub mod dlq;
mod record;
pub mod replay;
mod resend;
mod streams;
mod target;

pub use bridge::{
    BatchConfig, Bridge, BridgeConfig, BridgeError, ConcurrencyConfig, ConfigError,
    DeadLetterPolicy, EventFilter, HttpTargetConfig, LambdaTargetConfig, Ordering, RetryConfig,
    RouteConfig, RouteStatus, StartPolicy, TargetConfig, TargetState,
};
pub use connect::{ConnectError, NatsSettings};
pub use record::{RecordError, StoredDispatch};
pub use resend::{RouteSender, SendReport};
pub use streams::{
    BucketKind, DefinitionError, StreamSettings, coordinator_bucket, ensure_dispatch_stream,
    ensure_dlq_stream, ensure_route_consumer, open_bucket, route_consumer_config, sessions_bucket,
    shards_bucket,
};
pub use target::{
    BoxFuture, DeliveryFailure, DeliveryOutcome, FailureKind, HttpTarget, LambdaTarget,
    PreparedBatch, Target, TargetError, parse_batch_response, target_from_config,
};
