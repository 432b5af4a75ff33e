//! What the coordinator and the workers keep in NATS KV.
//!
//! Shards bucket (`<prefix>_shards`):
//! - `workers.<id>`: a worker's lease and report ([`WorkerRecord`]), rewritten by the worker.
//! - `assign.<id>`: the shards a worker should run ([`AssignmentRecord`]), written by the leader.
//!
//! Coordinator bucket (`<prefix>_coordinator`):
//! - `leader`: the leadership lease ([`crate::LeaseRecord`]).
//! - `status`: what `ctl status` shows ([`CoordinatorStatus`]).

use serde::{Deserialize, Serialize};

use super::permits::PermitStatus;

/// Key prefix of worker leases.
pub const WORKER_PREFIX: &str = "workers.";
/// Key prefix of worker assignments.
pub const ASSIGN_PREFIX: &str = "assign.";
/// The leadership lease key.
pub const LEADER_KEY: &str = "leader";
/// The status key.
pub const STATUS_KEY: &str = "status";

/// `workers.<id>`.
pub fn worker_key(id: &str) -> String {
    format!("{WORKER_PREFIX}{id}")
}

/// `assign.<id>`.
pub fn assign_key(id: &str) -> String {
    format!("{ASSIGN_PREFIX}{id}")
}

/// A worker's lease value: who it is and what it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// The worker id.
    pub id: String,
    /// Lease time to live in milliseconds.
    pub ttl_ms: u64,
    /// When the worker registered (Unix milliseconds).
    pub since_unix_ms: u64,
    /// Shards it runs, including ones starting or stopping.
    pub running: Vec<u32>,
    /// Shards connected and READY (or RESUMED).
    pub ready: Vec<u32>,
    /// The revision of `assign.<id>` it last applied.
    pub applied_revision: u64,
}

/// The shards one worker should run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentRecord {
    /// The bot's shard count.
    pub shard_count: u32,
    /// The shard ids, ascending.
    pub shards: Vec<u32>,
}

/// Start-up progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Shards READY.
    pub ready: u32,
    /// Shards in total.
    pub total: u32,
    /// Estimated time until all are READY, in milliseconds.
    pub eta_ms: u64,
}

/// One worker as the status shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// The worker id.
    pub id: String,
    /// Shards assigned.
    pub assigned: u32,
    /// Shards running.
    pub running: u32,
    /// Shards READY.
    pub ready: u32,
}

/// The coordinator's status record, for `ctl status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorStatus {
    /// The active coordinator.
    pub leader: String,
    /// When it became the leader (Unix milliseconds).
    pub leader_since_unix_ms: u64,
    /// When this record was written (Unix milliseconds).
    pub updated_unix_ms: u64,
    /// The bot's shard count.
    pub shard_count: u32,
    /// Identify buckets.
    pub max_concurrency: u32,
    /// One identify per bucket per this many milliseconds.
    pub window_ms: u64,
    /// Permits and the session budget.
    pub permits: PermitStatus,
    /// Start-up progress.
    pub progress: Progress,
    /// Live workers.
    pub workers: Vec<WorkerStatus>,
    /// Shards no worker runs yet.
    pub unassigned: u32,
}
