//! Discord gateway shards, the identify coordinator and the workers.
//!
//! # Layout
//!
//! - `queue`: the [`IdentifyQueue`] trait every shard asks before it sends
//!   IDENTIFY, and [`LocalQueue`], a plain in-process implementation (one
//!   `governor` limiter per bucket `shard_id % max_concurrency`).
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
//!   and stops shards through a [`ShardRunner`].
//! - `settings`: [`CoordinatorSettings`], [`WorkerSettings`].
//!
//! The identify path: shard → [`IdentifyQueue::acquire`] → ([`RemoteQueue`] →
//! NATS `<prefix>.identify` →) [`PermitScheduler`] → permit → IDENTIFY.

mod budget;
mod clock;
mod coordinator;
mod gateway_info;
mod lease;
mod queue;
mod remote_queue;
mod settings;
mod shard_count;
mod worker;

pub use budget::{BUDGET_PERIOD, BudgetExhausted, BudgetSnapshot, SessionBudget, default_reserve};
pub use clock::TokioClock;
pub use coordinator::{
    AssignmentRecord, BudgetStatus, Coordinator, CoordinatorError, CoordinatorStatus, Decision,
    LEADER_KEY, PermitReply, PermitRequest, PermitScheduler, PermitSettings, PermitStatus, Plan,
    Progress, STATUS_KEY, WaitReason, WorkerRecord, WorkerStatus, WorkerView, assign_key, balance,
    next_assignment, worker_key,
};
pub use gateway_info::{
    DISCORD_API, FixedGatewayInfo, GatewayInfoClient, GatewayInfoError, GatewayInfoFuture,
    GatewayInfoSource, RestAuthorization,
};
pub use lease::{LeaderLease, Leadership, LeaseError, LeaseRecord, RevisionAges};
pub use queue::{IdentifyPermit, IdentifyQueue, LocalQueue, PermitFuture, QueueError};
pub use remote_queue::{DEFAULT_HOLD, RemoteQueue};
pub use settings::{CoordinatorSettings, InvalidSetting, WorkerSettings};
pub use shard_count::{
    MAX_GUILDS_PER_SHARD, ShardCountError, ShardCountRules, ShardCountSetting, choose_shard_count,
};
pub use worker::{RunnerFuture, ShardRunner, StartError, Worker, WorkerError};
