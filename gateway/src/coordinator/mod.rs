//! The coordinator: one active per bot (chosen through a KV lease), any number
//! of standbys.
//!
//! While it leads, it reads `/gateway/bot`, decides the shard count, owns the
//! identify buckets and the session budget ([`PermitScheduler`], answered over
//! NATS by the permit service), spreads shards over the registered workers and
//! writes the status `ctl status` reads. When it loses the lease it stops
//! granting at once and stands by again.

pub(crate) mod assign;
pub(crate) mod permits;
mod protocol;
pub(crate) mod records;
mod service;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt as _;
use shardline_wire::Names;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use assign::{Plan, WorkerView, balance, next_assignment};
pub use permits::{
    BudgetStatus, Decision, PermitScheduler, PermitSettings, PermitStatus, WaitReason,
};
pub use protocol::{PermitReply, PermitRequest};
pub use records::{
    AssignmentRecord, CoordinatorStatus, LEADER_KEY, Progress, STATUS_KEY, WorkerRecord,
    WorkerStatus, assign_key, worker_key,
};

use crate::budget::{BudgetSnapshot, SessionBudget, default_reserve};
use crate::gateway_info::{GatewayInfoError, GatewayInfoSource};
use crate::lease::{LeaderLease, Leadership, LeaseError, RevisionAges, unix_ms_now};
use crate::settings::{CoordinatorSettings, random_id};
use crate::shard_count::{ShardCountError, ShardCountRules, choose_shard_count};
use records::{ASSIGN_PREFIX, WORKER_PREFIX};

/// Why the coordinator stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// A KV bucket could not be opened.
    #[error("opening the coordinator's KV buckets")]
    Buckets(#[from] shardline_jetstream::DefinitionError),
    /// The shard count is not acceptable.
    #[error(transparent)]
    ShardCount(#[from] ShardCountError),
    /// `/gateway/bot` refused the credentials.
    #[error(transparent)]
    GatewayInfo(#[from] GatewayInfoError),
    /// The leadership lease failed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// NATS failed in a way the coordinator cannot ride out.
    #[error("NATS: {0}")]
    Nats(String),
}

/// The coordinator service.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use shardline_gateway::{Coordinator, CoordinatorSettings, GatewayInfoClient, RestAuthorization};
/// use tokio_util::sync::CancellationToken;
/// let client = async_nats::connect("nats://127.0.0.1:4222").await?;
/// let names = shardline_wire::Names::new("discord", "mybot")?;
/// let info = GatewayInfoClient::new(
///     shardline_gateway::DISCORD_API,
///     RestAuthorization::bot_token(&std::env::var("DISCORD_TOKEN")?),
/// )?;
/// let coordinator = Coordinator::new(CoordinatorSettings::default(), client, names, Arc::new(info));
/// coordinator.run(CancellationToken::new()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Coordinator {
    settings: CoordinatorSettings,
    client: async_nats::Client,
    names: Names,
    info: Arc<dyn GatewayInfoSource>,
    id: String,
}

impl Coordinator {
    /// A coordinator using `client` and reading `/gateway/bot` from `info`.
    pub fn new(
        settings: CoordinatorSettings,
        client: async_nats::Client,
        names: Names,
        info: Arc<dyn GatewayInfoSource>,
    ) -> Self {
        let id = settings
            .id
            .clone()
            .unwrap_or_else(|| random_id("coordinator"));
        Self {
            settings,
            client,
            names,
            info,
            id,
        }
    }

    /// This coordinator's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stands by, leads when it gets the lease, stands by again when it loses
    /// it; returns at `shutdown` (releasing the lease) or on a fatal error
    /// (an unacceptable shard count, refused credentials).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), CoordinatorError> {
        let js = async_nats::jetstream::new(self.client.clone());
        let replicas = self.settings.kv_replicas;
        let coordinator_store =
            shardline_jetstream::coordinator_bucket(&js, &self.names, replicas).await?;
        let shards_store = shardline_jetstream::shards_bucket(&js, &self.names, replicas).await?;
        let lease = LeaderLease::new(
            coordinator_store.clone(),
            LEADER_KEY,
            self.id.clone(),
            self.settings.lease_ttl,
        );
        tracing::info!(
            id = self.id,
            "coordinator started; contending for leadership"
        );
        loop {
            let leadership = match lease.campaign(&shutdown).await {
                Ok(leadership) => leadership,
                Err(LeaseError::Cancelled { .. }) => return Ok(()),
                Err(error) => return Err(error.into()),
            };
            metrics::gauge!("shardline_coordinator_leader").set(1.0);
            let outcome = self
                .lead(&leadership, &coordinator_store, &shards_store, &shutdown)
                .await;
            metrics::gauge!("shardline_coordinator_leader").set(0.0);
            leadership.release().await;
            match outcome {
                Ok(()) if shutdown.is_cancelled() => return Ok(()),
                Ok(()) => tracing::warn!(id = self.id, "leadership lost; standing by"),
                Err(
                    error @ (CoordinatorError::ShardCount(_) | CoordinatorError::GatewayInfo(_)),
                ) => {
                    return Err(error);
                }
                Err(error) => {
                    tracing::warn!(%error, id = self.id, "leading failed; standing by");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn lead(
        &self,
        leadership: &Leadership,
        coordinator_store: &kv::Store,
        shards_store: &kv::Store,
        shutdown: &CancellationToken,
    ) -> Result<(), CoordinatorError> {
        let lost = leadership.lost();
        let duties = shutdown.child_token();
        let _stop_duties = duties.clone().drop_guard();
        let leader_since = unix_ms_now();
        let info = loop {
            let fetched = tokio::select! {
                fetched = self.info.fetch() => fetched,
                () = lost.cancelled() => return Ok(()),
                () = shutdown.cancelled() => return Ok(()),
            };
            match fetched {
                Ok(info) => break info,
                Err(error @ GatewayInfoError::Unauthorized { .. }) => return Err(error.into()),
                Err(error) => {
                    tracing::warn!(%error, "reading /gateway/bot failed; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        let max_concurrency = self
            .settings
            .max_concurrency
            .unwrap_or(u32::from(info.session_start_limit.max_concurrency))
            .max(1);
        let shard_count = choose_shard_count(
            self.settings.shard_count,
            info.shards,
            max_concurrency,
            ShardCountRules {
                multiple_of: self.settings.shard_multiple,
                guilds: self.settings.guilds,
            },
        )?;
        let snapshot = BudgetSnapshot::from(&info.session_start_limit);
        let reserve = self
            .settings
            .session_reserve
            .unwrap_or_else(|| default_reserve(snapshot.total));
        let budget = self
            .budget_after_failover(coordinator_store, snapshot, reserve)
            .await;
        let window = self.settings.identify_window;
        let margin = self.settings.identify_margin.unwrap_or(window / 50);
        tracing::info!(
            margin = ?margin,
            id = self.id,
            shard_count,
            recommended = info.shards,
            max_concurrency,
            window = ?window,
            budget_total = snapshot.total,
            budget_remaining = budget.remaining(),
            reserve,
            "leading: first permits after one window"
        );
        let scheduler = PermitScheduler::spawn(
            PermitSettings {
                max_concurrency,
                window,
                margin: self.settings.identify_margin.unwrap_or(window / 50),
                wait_first_window: true,
            },
            Some(budget),
            Some(leadership.valid_until()),
            duties.clone(),
        );
        let service = tokio::spawn(service::serve_permits(
            self.client.clone(),
            self.names.identify_subject(),
            scheduler.clone(),
            duties.clone(),
        ));
        tokio::spawn(refresh_budget(
            self.info.clone(),
            scheduler.clone(),
            self.settings.refresh_interval,
            duties.clone(),
        ));
        let mut assigner = Assigner {
            settings: &self.settings,
            shards_store,
            coordinator_store,
            shard_count,
            max_concurrency,
            window,
            leader: self.id.clone(),
            leader_since,
            scheduler: scheduler.clone(),
            workers: BTreeMap::new(),
            ages: RevisionAges::default(),
            published: BTreeMap::new(),
            settled: false,
            started: Instant::now(),
            last_status: None,
            last_status_write: Instant::now(),
            last_progress_log: None,
        };
        let result = assigner.run(&lost, shutdown).await;
        duties.cancel();
        if let Ok(Err(error)) = service.await {
            tracing::warn!(%error, "the permit service failed");
        }
        result
    }

    /// A new leader starts from the fresh snapshot, but never from more than
    /// the previous leader last knew was left in the same period (Discord may
    /// not have seen the identifies it granted last).
    async fn budget_after_failover(
        &self,
        coordinator_store: &kv::Store,
        snapshot: BudgetSnapshot,
        reserve: u32,
    ) -> SessionBudget {
        let now = Instant::now();
        let previous = match coordinator_store.get(STATUS_KEY).await {
            Ok(Some(bytes)) => serde_json::from_slice::<CoordinatorStatus>(&bytes)
                .ok()
                .and_then(|status| status.permits.budget),
            _ => None,
        };
        match previous {
            Some(previous) => {
                let resets_in =
                    Duration::from_millis(previous.resets_at_unix_ms.saturating_sub(unix_ms_now()));
                let mut budget = SessionBudget::new(
                    BudgetSnapshot {
                        total: previous.total,
                        remaining: previous.remaining,
                        reset_after: resets_in,
                    },
                    reserve,
                    now,
                );
                budget.observe(snapshot, now);
                budget
            }
            None => SessionBudget::new(snapshot, reserve, now),
        }
    }
}

async fn refresh_budget(
    info: Arc<dyn GatewayInfoSource>,
    scheduler: PermitScheduler,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        let status = scheduler.status().borrow().clone();
        let wait = match status.budget {
            // Look again just after the reset, so identifies continue on time.
            Some(budget) if budget.exhausted => {
                let until_reset = budget.resets_at_unix_ms.saturating_sub(unix_ms_now());
                Duration::from_millis(until_reset + 1_000).min(interval)
            }
            _ => interval,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
        match info.fetch().await {
            Ok(info) => scheduler.observe_budget(BudgetSnapshot::from(&info.session_start_limit)),
            Err(error) => tracing::warn!(%error, "refreshing /gateway/bot failed"),
        }
    }
}

struct Assigner<'a> {
    settings: &'a CoordinatorSettings,
    shards_store: &'a kv::Store,
    coordinator_store: &'a kv::Store,
    shard_count: u32,
    max_concurrency: u32,
    window: Duration,
    leader: String,
    leader_since: u64,
    scheduler: PermitScheduler,
    /// Live workers: their last record and its revision.
    workers: BTreeMap<String, (WorkerRecord, u64)>,
    ages: RevisionAges,
    /// What was last written to `assign.<id>`, and the revision.
    published: BTreeMap<String, (BTreeSet<u32>, u64)>,
    settled: bool,
    started: Instant,
    last_status: Option<CoordinatorStatus>,
    last_status_write: Instant,
    last_progress_log: Option<(u32, Instant)>,
}

impl Assigner<'_> {
    async fn run(
        &mut self,
        lost: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> Result<(), CoordinatorError> {
        self.load_published().await?;
        let mut watch = self
            .shards_store
            .watch_with_history(format!("{WORKER_PREFIX}*"))
            .await
            .map_err(|error| CoordinatorError::Nats(error.to_string()))?;
        let tick_every =
            (self.window / 2).clamp(Duration::from_millis(20), Duration::from_millis(250));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                entry = watch.next() => match entry {
                    Some(Ok(entry)) => self.apply_worker_entry(entry),
                    Some(Err(error)) => {
                        return Err(CoordinatorError::Nats(format!("watching workers: {error}")));
                    }
                    None => return Err(CoordinatorError::Nats("the worker watch ended".into())),
                },
                _ = tick.tick() => self.reconcile().await,
                () = lost.cancelled() => return Ok(()),
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    async fn load_published(&mut self) -> Result<(), CoordinatorError> {
        let mut keys = self
            .shards_store
            .keys()
            .await
            .map_err(|error| CoordinatorError::Nats(error.to_string()))?;
        let mut assign_keys = Vec::new();
        while let Some(key) = keys.next().await {
            match key {
                Ok(key) if key.starts_with(ASSIGN_PREFIX) => assign_keys.push(key),
                Ok(_) => {}
                Err(error) => return Err(CoordinatorError::Nats(error.to_string())),
            }
        }
        for key in assign_keys {
            let Some(worker) = key.strip_prefix(ASSIGN_PREFIX) else {
                continue;
            };
            if let Ok(Some(entry)) = self.shards_store.entry(key.clone()).await
                && entry.operation == kv::Operation::Put
                && let Ok(record) = serde_json::from_slice::<AssignmentRecord>(&entry.value)
            {
                let shards = if record.shard_count == self.shard_count {
                    record.shards.into_iter().collect()
                } else {
                    BTreeSet::new()
                };
                self.published
                    .insert(worker.to_owned(), (shards, entry.revision));
            }
        }
        Ok(())
    }

    fn apply_worker_entry(&mut self, entry: kv::Entry) {
        let Some(id) = entry.key.strip_prefix(WORKER_PREFIX).map(str::to_owned) else {
            return;
        };
        match entry.operation {
            kv::Operation::Put => match serde_json::from_slice::<WorkerRecord>(&entry.value) {
                Ok(record) => {
                    if !self.workers.contains_key(&id) {
                        tracing::info!(worker = id, "worker registered");
                    }
                    self.ages
                        .observe(&entry.key, entry.revision, Instant::now());
                    self.workers.insert(id, (record, entry.revision));
                }
                Err(error) => tracing::warn!(worker = id, %error, "unreadable worker record"),
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                if self.workers.remove(&id).is_some() {
                    tracing::info!(worker = id, "worker left; its shards move to other workers");
                }
                self.ages.forget(&entry.key);
            }
        }
    }

    async fn reap_lapsed(&mut self, now: Instant) {
        let lapsed: Vec<(String, u64)> = self
            .workers
            .iter()
            .filter(|(id, (record, _))| {
                let ttl = Duration::from_millis(record.ttl_ms.max(1));
                self.ages.lapsed(&worker_key(id), ttl, now)
            })
            .map(|(id, (_, revision))| (id.clone(), *revision))
            .collect();
        for (id, revision) in lapsed {
            let key = worker_key(&id);
            // Confirm with a direct read: a stalled watch must not kill a live worker.
            match self.shards_store.entry(key.clone()).await {
                Ok(Some(entry))
                    if entry.operation == kv::Operation::Put && entry.revision != revision =>
                {
                    self.apply_worker_entry(entry);
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(worker = id, %error, "cannot confirm a lapsed worker; keeping it");
                    continue;
                }
            }
            let shards = self
                .published
                .get(&id)
                .map_or(0, |(shards, _)| shards.len());
            tracing::warn!(
                worker = id,
                shards,
                "worker lease lapsed; reassigning its shards"
            );
            if let Err(error) = self
                .shards_store
                .delete_expect_revision(&key, Some(revision))
                .await
            {
                tracing::debug!(worker = id, %error, "deleting a lapsed worker record failed");
            }
            if let Err(error) = self.shards_store.delete(assign_key(&id)).await {
                tracing::debug!(worker = id, %error, "deleting a lapsed worker's assignment failed");
            }
            self.workers.remove(&id);
            self.published.remove(&id);
            self.ages.forget(&key);
        }
    }

    async fn reconcile(&mut self) {
        let now = Instant::now();
        self.reap_lapsed(now).await;
        if !self.settled {
            let enough = match self.settings.total_workers {
                Some(total) => self.workers.len() >= total as usize,
                None => {
                    now.saturating_duration_since(self.started) >= self.settings.assignment_settle
                        && !self.workers.is_empty()
                }
            };
            if !enough {
                self.write_status(now).await;
                return;
            }
            self.settled = true;
            // Assignments of workers that are gone are stale.
            let stale: Vec<String> = self
                .published
                .keys()
                .filter(|id| !self.workers.contains_key(*id))
                .cloned()
                .collect();
            for id in stale {
                self.published.remove(&id);
                if let Err(error) = self.shards_store.delete(assign_key(&id)).await {
                    tracing::debug!(worker = id, %error, "deleting a stale assignment failed");
                }
            }
            tracing::info!(
                workers = self.workers.len(),
                shards = self.shard_count,
                "assigning shards"
            );
        }
        let live: Vec<String> = self.workers.keys().cloned().collect();
        let current: Plan = self
            .published
            .iter()
            .filter(|(id, _)| self.workers.contains_key(*id))
            .map(|(id, (shards, _))| (id.clone(), shards.clone()))
            .collect();
        let plan = balance(
            self.shard_count,
            &live,
            &current,
            self.settings.shards_per_worker,
        );
        let views: BTreeMap<String, WorkerView> = self
            .workers
            .iter()
            .map(|(id, (record, _))| {
                let (published, published_revision) =
                    self.published.get(id).cloned().unwrap_or_default();
                (
                    id.clone(),
                    WorkerView {
                        running: record.running.iter().copied().collect(),
                        applied_revision: record.applied_revision,
                        published_revision,
                        published,
                    },
                )
            })
            .collect();
        let next = next_assignment(&plan, &views);
        for (id, shards) in next {
            let unchanged = self
                .published
                .get(&id)
                .is_some_and(|(published, _)| *published == shards);
            if unchanged {
                continue;
            }
            let record = AssignmentRecord {
                shard_count: self.shard_count,
                shards: shards.iter().copied().collect(),
            };
            let body = serde_json::to_vec(&record).expect("assignments serialise");
            match self.shards_store.put(assign_key(&id), body.into()).await {
                Ok(revision) => {
                    tracing::info!(
                        worker = id,
                        shards = shards.len(),
                        revision,
                        "assignment written"
                    );
                    self.published.insert(id, (shards, revision));
                }
                Err(error) => tracing::warn!(worker = id, %error, "writing an assignment failed"),
            }
        }
        self.write_status(now).await;
    }

    async fn write_status(&mut self, now: Instant) {
        let ready: BTreeSet<u32> = self
            .workers
            .values()
            .flat_map(|(record, _)| record.ready.iter().copied())
            .filter(|shard| *shard < self.shard_count)
            .collect();
        let ready = u32::try_from(ready.len()).unwrap_or(u32::MAX);
        let left = self.shard_count.saturating_sub(ready);
        let eta = self.window * left.div_ceil(self.max_concurrency);
        let assigned: u32 = self
            .published
            .values()
            .map(|(shards, _)| u32::try_from(shards.len()).unwrap_or(u32::MAX))
            .sum();
        let permits = self.scheduler.status().borrow().clone();
        let workers = self
            .workers
            .iter()
            .map(|(id, (record, _))| WorkerStatus {
                id: id.clone(),
                assigned: self.published.get(id).map_or(0, |(shards, _)| {
                    u32::try_from(shards.len()).unwrap_or(u32::MAX)
                }),
                running: u32::try_from(record.running.len()).unwrap_or(u32::MAX),
                ready: u32::try_from(record.ready.len()).unwrap_or(u32::MAX),
            })
            .collect();
        let mut status = CoordinatorStatus {
            leader: self.leader.clone(),
            leader_since_unix_ms: self.leader_since,
            updated_unix_ms: 0,
            shard_count: self.shard_count,
            max_concurrency: self.max_concurrency,
            window_ms: permits::millis(self.window),
            permits,
            progress: Progress {
                ready,
                total: self.shard_count,
                eta_ms: permits::millis(eta),
            },
            workers,
            unassigned: self.shard_count.saturating_sub(assigned),
        };
        metrics::gauge!("shardline_shards_ready").set(f64::from(ready));
        metrics::gauge!("shardline_shards_total").set(f64::from(self.shard_count));
        metrics::gauge!("shardline_workers_live").set(self.workers.len() as f64);
        self.log_progress(ready, eta, now);
        let changed = self.last_status.as_ref() != Some(&status);
        if !changed
            && now.saturating_duration_since(self.last_status_write) < Duration::from_secs(5)
        {
            return;
        }
        self.last_status = Some(status.clone());
        self.last_status_write = now;
        status.updated_unix_ms = unix_ms_now();
        let body = serde_json::to_vec(&status).expect("status serialises");
        if let Err(error) = self.coordinator_store.put(STATUS_KEY, body.into()).await {
            tracing::warn!(%error, "writing the status failed");
        }
    }

    fn log_progress(&mut self, ready: u32, eta: Duration, now: Instant) {
        let due = match self.last_progress_log {
            None => ready > 0,
            Some((logged, at)) => {
                ready != logged
                    && (ready == self.shard_count
                        || now.saturating_duration_since(at) >= Duration::from_secs(2))
            }
        };
        if !due {
            return;
        }
        self.last_progress_log = Some((ready, now));
        if ready >= self.shard_count {
            tracing::info!(
                ready,
                total = self.shard_count,
                "all {} shards identified",
                self.shard_count
            );
        } else {
            tracing::info!(
                ready,
                total = self.shard_count,
                eta_ms = permits::millis(eta),
                "identified {ready}/{} shards, about {} left",
                self.shard_count,
                describe_duration(eta)
            );
        }
    }
}

/// "26 min", "40 s", "2 h 5 min".
pub(crate) fn describe_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64().round() as u64;
    if seconds < 120 {
        format!("{seconds} s")
    } else if seconds < 7200 {
        format!("{} min", seconds.div_ceil(60))
    } else {
        format!("{} h {} min", seconds / 3600, (seconds % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(
            describe_duration(Duration::from_secs(26 * 60 - 20)),
            "26 min"
        );
        assert_eq!(describe_duration(Duration::from_millis(3200)), "3 s");
        assert_eq!(describe_duration(Duration::from_secs(7500)), "2 h 5 min");
    }
}
