//! The worker: registers with a lease in the shards bucket, runs the shards
//! the coordinator assigns to it, and reports what runs and what is READY.
//!
//! A worker that cannot renew its lease for one TTL stops its shards (in a
//! resumable way) before the coordinator hands them to another worker, so a
//! shard never runs twice. Shards that move RESUME from their stored session.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt as _;
use shardline_wire::Names;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod runner;

pub use runner::GatewayShardRunner;

use crate::coordinator::records::{AssignmentRecord, WorkerRecord, assign_key, worker_key};
use crate::lease::unix_ms_now;
use crate::settings::{WorkerSettings, random_id};

/// The future [`ShardRunner`] methods return.
pub type RunnerFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a shard could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("starting shard {shard_id}: {reason}")]
pub struct StartError {
    /// The shard.
    pub shard_id: u32,
    /// Why.
    pub reason: String,
}

/// Starts and stops shards for a worker. The real runner spawns gateway
/// shards that ask a [`crate::RemoteQueue`] for identify permits; tests use a fake.
pub trait ShardRunner: Send + Sync + std::fmt::Debug {
    /// Starts `shard_id` of `shard_count`; returns once it runs (not once READY).
    fn start(&self, shard_id: u32, shard_count: u32) -> RunnerFuture<'_, Result<(), StartError>>;
    /// Stops `shard_id`, keeping its session resumable, and returns once it stopped.
    fn stop(&self, shard_id: u32) -> RunnerFuture<'_, ()>;
    /// Shards that are connected and READY (or RESUMED).
    fn ready(&self) -> BTreeSet<u32>;
}

/// Why the worker stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The shards bucket could not be opened.
    #[error("opening the shards bucket")]
    Bucket(#[from] shardline_jetstream::DefinitionError),
    /// NATS failed in a way the worker cannot ride out.
    #[error("NATS: {0}")]
    Nats(String),
}

/// A worker process's main loop.
///
/// ```no_run
/// # async fn demo(runner: std::sync::Arc<dyn shardline_gateway::ShardRunner>) -> Result<(), Box<dyn std::error::Error>> {
/// use shardline_gateway::{Worker, WorkerSettings};
/// use tokio_util::sync::CancellationToken;
/// let client = async_nats::connect("nats://127.0.0.1:4222").await?;
/// let names = shardline_wire::Names::new("discord", "mybot")?;
/// Worker::new(WorkerSettings::default(), client, names, runner)
///     .run(CancellationToken::new())
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Worker {
    settings: WorkerSettings,
    client: async_nats::Client,
    names: Names,
    runner: Arc<dyn ShardRunner>,
    id: String,
}

impl Worker {
    /// A worker that runs its shards through `runner`.
    pub fn new(
        settings: WorkerSettings,
        client: async_nats::Client,
        names: Names,
        runner: Arc<dyn ShardRunner>,
    ) -> Self {
        let id = settings.id.clone().unwrap_or_else(|| random_id("worker"));
        Self {
            settings,
            client,
            names,
            runner,
            id,
        }
    }

    /// This worker's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Registers, runs assigned shards until `shutdown`, then stops them and
    /// deregisters so the coordinator moves them at once.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let js = async_nats::jetstream::new(self.client.clone());
        let store =
            shardline_jetstream::shards_bucket(&js, &self.names, self.settings.kv_replicas).await?;
        let mut state = WorkerState {
            store,
            id: self.id.clone(),
            ttl: self.settings.lease_ttl,
            runner: self.runner.clone(),
            running: BTreeMap::new(),
            ready: BTreeSet::new(),
            applied_revision: 0,
            lease_revision: None,
            valid_until: Instant::now(),
            since: unix_ms_now(),
        };
        let result = state.run(&shutdown).await;
        state.stop_all().await;
        state.deregister().await;
        result
    }
}

struct WorkerState {
    store: kv::Store,
    id: String,
    ttl: Duration,
    runner: Arc<dyn ShardRunner>,
    /// Running shards and their shard count.
    running: BTreeMap<u32, u32>,
    ready: BTreeSet<u32>,
    applied_revision: u64,
    lease_revision: Option<u64>,
    valid_until: Instant,
    since: u64,
}

impl WorkerState {
    async fn run(&mut self, shutdown: &CancellationToken) -> Result<(), WorkerError> {
        let key = assign_key(&self.id);
        self.register(shutdown).await?;
        let mut watch = self
            .store
            .watch_with_history(&key)
            .await
            .map_err(|error| WorkerError::Nats(error.to_string()))?;
        let mut tick = tokio::time::interval((self.ttl / 4).max(Duration::from_millis(20)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                entry = watch.next() => match entry {
                    Some(Ok(entry)) => {
                        self.apply_entry(Some(entry)).await;
                        self.renew().await;
                    }
                    Some(Err(error)) => tracing::warn!(%error, "assignment watch failed"),
                    None => {
                        watch = self
                            .store
                            .watch_with_history(&key)
                            .await
                            .map_err(|error| WorkerError::Nats(error.to_string()))?;
                    }
                },
                _ = tick.tick() => {
                    // A direct read as well: a stalled watch must not leave an assignment unapplied.
                    match self.store.entry(key.clone()).await {
                        Ok(entry) => {
                            let revision = entry.as_ref().map_or(0, |entry| entry.revision);
                            if revision > self.applied_revision
                                || (entry.is_none() && !self.running.is_empty())
                            {
                                self.apply_entry(entry).await;
                            }
                        }
                        Err(error) => tracing::debug!(%error, "reading the assignment failed"),
                    }
                    self.renew().await;
                    if Instant::now() >= self.valid_until {
                        self.fence(shutdown).await?;
                    }
                }
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    fn record(&self) -> bytes::Bytes {
        let record = WorkerRecord {
            id: self.id.clone(),
            ttl_ms: crate::coordinator::permits::millis(self.ttl),
            since_unix_ms: self.since,
            running: self.running.keys().copied().collect(),
            ready: self.ready.iter().copied().collect(),
            applied_revision: self.applied_revision,
        };
        serde_json::to_vec(&record)
            .expect("worker records serialise")
            .into()
    }

    /// Creates `workers.<id>`; waits for an old record with the same id to lapse.
    async fn register(&mut self, shutdown: &CancellationToken) -> Result<(), WorkerError> {
        let key = worker_key(&self.id);
        let mut ages = crate::lease::RevisionAges::default();
        loop {
            let sent_at = Instant::now();
            match self.store.create(&key, self.record()).await {
                Ok(revision) => {
                    self.lease_revision = Some(revision);
                    self.valid_until = sent_at + self.ttl;
                    tracing::info!(worker = self.id, "worker registered");
                    return Ok(());
                }
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                    if let Ok(Some(entry)) = self.store.entry(key.clone()).await {
                        ages.observe(&key, entry.revision, Instant::now());
                        if ages.lapsed(&key, self.ttl, Instant::now()) {
                            let sent_at = Instant::now();
                            if let Ok(revision) =
                                self.store.update(&key, self.record(), entry.revision).await
                            {
                                self.lease_revision = Some(revision);
                                self.valid_until = sent_at + self.ttl;
                                tracing::info!(
                                    worker = self.id,
                                    "worker registered (old record lapsed)"
                                );
                                return Ok(());
                            }
                        }
                    }
                    tracing::info!(
                        worker = self.id,
                        "a worker with this id is registered; waiting for its lease to lapse"
                    );
                }
                Err(error) => tracing::warn!(%error, "registering the worker failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep((self.ttl / 4).max(Duration::from_millis(20))) => {}
                () = shutdown.cancelled() => return Err(WorkerError::Nats("stopped before registering".into())),
            }
        }
    }

    async fn renew(&mut self) {
        self.ready = self
            .runner
            .ready()
            .into_iter()
            .filter(|shard| self.running.contains_key(shard))
            .collect();
        let Some(revision) = self.lease_revision else {
            return;
        };
        let sent_at = Instant::now();
        match self
            .store
            .update(worker_key(&self.id), self.record(), revision)
            .await
        {
            Ok(next) => {
                self.lease_revision = Some(next);
                self.valid_until = sent_at + self.ttl;
            }
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                tracing::error!(
                    worker = self.id,
                    "the coordinator declared this worker dead; stopping its shards"
                );
                self.lease_revision = None;
                self.valid_until = Instant::now();
            }
            Err(error) => tracing::warn!(%error, "renewing the worker lease failed"),
        }
    }

    /// The lease is gone: stop every shard (another worker may get them), then register again.
    async fn fence(&mut self, shutdown: &CancellationToken) -> Result<(), WorkerError> {
        tracing::error!(
            worker = self.id,
            shards = self.running.len(),
            "worker lease lapsed; stopping all shards before they are reassigned"
        );
        self.stop_all().await;
        self.applied_revision = 0;
        self.lease_revision = None;
        self.register(shutdown).await
    }

    async fn apply_entry(&mut self, entry: Option<kv::Entry>) {
        let Some(entry) = entry else {
            return self.apply(&AssignmentRecord::default(), 0).await;
        };
        if entry.revision <= self.applied_revision && entry.operation == kv::Operation::Put {
            return;
        }
        if self.lease_revision.is_none() {
            // Not registered: run nothing.
            return;
        }
        let record = match entry.operation {
            kv::Operation::Put => match serde_json::from_slice::<AssignmentRecord>(&entry.value) {
                Ok(record) => record,
                Err(error) => {
                    tracing::warn!(%error, "unreadable assignment");
                    return;
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => AssignmentRecord::default(),
        };
        self.apply(&record, entry.revision).await;
    }

    async fn apply(&mut self, record: &AssignmentRecord, revision: u64) {
        let wanted: BTreeSet<u32> = record.shards.iter().copied().collect();
        let to_stop: Vec<u32> = self
            .running
            .iter()
            .filter(|(shard, count)| !wanted.contains(shard) || **count != record.shard_count)
            .map(|(shard, _)| *shard)
            .collect();
        if !to_stop.is_empty() {
            tracing::info!(worker = self.id, shards = ?to_stop, "stopping shards");
            let runner = self.runner.clone();
            futures::future::join_all(to_stop.iter().map(|shard| runner.stop(*shard))).await;
            for shard in &to_stop {
                self.running.remove(shard);
            }
        }
        let to_start: Vec<u32> = wanted
            .iter()
            .copied()
            .filter(|shard| !self.running.contains_key(shard))
            .collect();
        if !to_start.is_empty() {
            tracing::info!(
                worker = self.id,
                count = to_start.len(),
                shard_count = record.shard_count,
                "starting shards"
            );
        }
        let mut all_started = true;
        for shard in to_start {
            match self.runner.start(shard, record.shard_count).await {
                Ok(()) => {
                    self.running.insert(shard, record.shard_count);
                }
                Err(error) => {
                    all_started = false;
                    tracing::warn!(%error, "a shard did not start; retrying on the next tick");
                }
            }
        }
        if all_started {
            self.applied_revision = revision;
        }
        metrics::gauge!("shardline_worker_shards").set(self.running.len() as f64);
    }

    async fn stop_all(&mut self) {
        let shards: Vec<u32> = self.running.keys().copied().collect();
        let runner = self.runner.clone();
        futures::future::join_all(shards.iter().map(|shard| runner.stop(*shard))).await;
        self.running.clear();
        self.ready.clear();
    }

    async fn deregister(&mut self) {
        if let Some(revision) = self.lease_revision.take()
            && let Err(error) = self
                .store
                .delete_expect_revision(worker_key(&self.id), Some(revision))
                .await
        {
            tracing::debug!(%error, "deregistering failed; the lease will lapse");
        }
    }
}
