//! Discord gateway shards, the identify coordinator and the workers.
//!
//! # Layout
//!
//! - `queue`: the [`IdentifyQueue`] trait every shard asks before it sends
//!   IDENTIFY, and [`LocalQueue`], a plain in-process implementation (one
//!   `governor` limiter per bucket `shard_id % max_concurrency`).
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
//! - `gateway_info`: `GET /gateway/bot` ([`GatewayInfoClient`]) with retries and 429 handling.
//! - `shard_count`: [`choose_shard_count`]: the recommendation or a configured
//!   count, the large-bot multiple, at most 2,500 guilds per shard.
//! - `budget`: [`SessionBudget`], `session_start_limit` and its reserve.
//! - `coordinator`: [`PermitScheduler`] (the buckets and the budget, an actor),
//!   its NATS permit service, the leadership lease and shard assignment
//!   ([`Coordinator`]).
//! - `remote_queue`: [`RemoteQueue`], the [`IdentifyQueue`] of a worker process,
//!   asking the coordinator over NATS.
//! - `lease`: KV leases ([`LeaderLease`], [`RevisionAges`]) that never compare wall clocks.
//! - `worker`: [`Worker`], which registers, watches its assignment and starts
//!   and stops shards through a [`ShardRunner`] ([`GatewayShardRunner`] for real shards).
//! - `settings`: [`CoordinatorSettings`], [`WorkerSettings`].
//! - `services`: [`run_coordinator`] and [`run_worker`], wired from a [`GatewayConfig`].
//!
//! The data path: WebSocket frame → `compression` → `frame` (envelope only) →
//! `pipeline` (bounded) → [`DispatchPublisher`] → JetStream ack → committed seq
//! → [`SessionStore`].
//!
//! The identify path: shard → [`IdentifyQueue::acquire`] → ([`RemoteQueue`] →
//! NATS `<prefix>.identify` →) [`PermitScheduler`] → permit → IDENTIFY.

mod budget;
mod clock;
mod command;
mod compression;
mod config;
mod coordinator;
mod frame;
mod gateway;
mod gateway_info;
mod lease;
mod pipeline;
mod publish;
mod queue;
mod remote_queue;
mod services;
mod session;
mod settings;
mod shard;
mod shard_count;
mod worker;

pub use budget::{BUDGET_PERIOD, BudgetExhausted, BudgetSnapshot, SessionBudget, default_reserve};
pub use clock::TokioClock;
pub use command::{COMMAND_BURST, CommandReply, MAX_COMMAND_BYTES, validate_command};
pub use compression::{Compression, DecompressError, UnknownCompression};
pub use config::{Backoff, EventFilter, ShardConfig, Token};
pub use coordinator::{
    AssignmentRecord, BudgetStatus, Coordinator, CoordinatorError, CoordinatorStatus, Decision,
    LEADER_KEY, PermitReply, PermitRequest, PermitScheduler, PermitSettings, PermitStatus, Plan,
    Progress, STATUS_KEY, WaitReason, WorkerRecord, WorkerStatus, WorkerView, assign_key, balance,
    next_assignment, worker_key,
};
pub use gateway::{
    ConfigError, EventSettings, Gateway, GatewayBot, GatewayConfig, GatewayError, NatsSettings,
    SessionStartLimit, ShardRange, fetch_gateway_bot,
};
pub use gateway_info::{
    DISCORD_API, FixedGatewayInfo, GatewayInfoClient, GatewayInfoError, GatewayInfoFuture,
    GatewayInfoSource, RestAuthorization,
};
pub use lease::{LeaderLease, Leadership, LeaseError, LeaseRecord, RevisionAges};
pub use publish::{Dispatch, DispatchPublisher, PublishError};
pub use queue::{IdentifyPermit, IdentifyQueue, LocalQueue, PermitFuture, QueueError};
pub use remote_queue::{DEFAULT_HOLD, RemoteQueue};
pub use services::{ServiceError, run_coordinator, run_worker};
pub use session::{SessionError, SessionStore, StoredSession};
pub use settings::{CoordinatorSettings, InvalidSetting, WorkerSettings};
pub use shard::{Shard, ShardDeps, ShardExit, ShardHandle, ShardState, ShardStatus};
pub use shard_count::{
    MAX_GUILDS_PER_SHARD, ShardCountError, ShardCountRules, ShardCountSetting, choose_shard_count,
};
pub use worker::{GatewayShardRunner, RunnerFuture, ShardRunner, StartError, Worker, WorkerError};
