//! Discord gateway shards and the identify coordinator.
//!
//! # Layout
//!
//! - `queue`: the [`IdentifyQueue`] trait every shard asks before it sends
//!   IDENTIFY, and [`LocalQueue`], the in-process implementation (one
//!   `governor` limiter per bucket `shard_id % max_concurrency`). The
//!   coordinator's cross-process queue implements the same trait over NATS.
//! - `shard`: [`Shard::spawn`] runs one gateway connection (HELLO, heartbeats,
//!   zombie detection, IDENTIFY with a permit, RESUME, op 7 / op 9, the
//!   close-code policy, back-off) and returns a [`ShardHandle`].
//! - `compression`: zlib-stream / zstd-stream, one context per connection.
//! - `frame`: lazy reading of `op`, `s`, `t`, `d` and `d.guild_id`.
//! - `publish`: [`DispatchPublisher`] publishes a [`Dispatch`]'s raw `d` with
//!   its headers; `pipeline` keeps a bounded number of acks in flight, advances
//!   the committed seq in order and stores the session through [`SessionStore`].
//! - `command`: outbound commands from `<prefix>.command.<shard>`, validated
//!   and rate-limited per connection.
//! - `gateway`: [`Gateway`] runs N shards in one process from a [`GatewayConfig`].
//!
//! The data path: WebSocket frame → `compression` → `frame` (envelope only) →
//! `pipeline` (bounded) → [`DispatchPublisher`] → JetStream ack → committed seq
//! → [`SessionStore`].

mod clock;
mod command;
mod compression;
mod config;
mod frame;
mod gateway;
mod pipeline;
mod publish;
mod queue;
mod session;
mod shard;

pub use clock::TokioClock;
pub use command::{COMMAND_BURST, CommandReply, MAX_COMMAND_BYTES, validate_command};
pub use compression::{Compression, DecompressError, UnknownCompression};
pub use config::{Backoff, EventFilter, ShardConfig, Token};
pub use gateway::{
    ConfigError, EventSettings, Gateway, GatewayBot, GatewayConfig, GatewayError, NatsSettings,
    SessionStartLimit, ShardRange, fetch_gateway_bot,
};
pub use publish::{Dispatch, DispatchPublisher, PublishError};
pub use queue::{IdentifyPermit, IdentifyQueue, LocalQueue, PermitFuture, QueueError};
pub use session::{SessionError, SessionStore, StoredSession};
pub use shard::{Shard, ShardDeps, ShardExit, ShardHandle, ShardState, ShardStatus};
