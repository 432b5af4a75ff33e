//! Shared pieces of the coordinator integration tests: a fake shard runner
//! and "processes" (each with its own tokio runtime and NATS connection) that
//! can be crashed.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardline_gateway::{FixedGatewayInfo, IdentifyQueue, RunnerFuture, ShardRunner, StartError};
use twilight_model::gateway::SessionStartLimit;
use twilight_model::gateway::connection_info::BotConnectionInfo;

/// `/gateway/bot` as a test wants it.
pub fn gateway_info(
    shards: u32,
    max_concurrency: u16,
    total: u32,
    remaining: u32,
    reset_ms: u64,
) -> FixedGatewayInfo {
    FixedGatewayInfo(BotConnectionInfo {
        session_start_limit: SessionStartLimit {
            max_concurrency,
            remaining,
            reset_after: reset_ms,
            total,
        },
        shards,
        url: "ws://127.0.0.1:1".into(),
    })
}

/// Something running on its own runtime, like a separate process: `crash`
/// drops every task and connection at once, without any clean-up.
pub struct Process {
    runtime: Option<tokio::runtime::Runtime>,
    main: Option<tokio::task::JoinHandle<()>>,
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl Process {
    pub fn spawn<F, Fut>(make: F) -> Self
    where
        F: FnOnce(tokio_util::sync::CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let main = runtime.spawn(make(shutdown.clone()));
        Self {
            runtime: Some(runtime),
            main: Some(main),
            shutdown,
        }
    }

    /// Like SIGKILL: nothing gets to clean up.
    pub fn crash(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// A clean stop: the shutdown token fires and the main task finishes.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(main) = self.main.take() {
            tokio::time::timeout(Duration::from_secs(5), main)
                .await
                .expect("the process stops in time")
                .expect("the process's main task succeeds");
        }
        self.crash();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.crash();
    }
}

/// One identify as the fake shards saw it.
#[derive(Debug, Clone, Copy)]
pub struct Identify {
    pub shard: u32,
    pub bucket: u32,
    pub at: Instant,
    pub worker: usize,
}

/// Everything the fake shards of all workers did.
#[derive(Debug, Default)]
pub struct Ledger {
    pub identifies: Mutex<Vec<Identify>>,
    /// Which worker runs each shard right now (a shard twice is a bug).
    pub running: Mutex<BTreeMap<u32, BTreeSet<usize>>>,
    pub double_runs: Mutex<Vec<u32>>,
}

impl Ledger {
    pub fn identifies(&self) -> Vec<Identify> {
        self.identifies.lock().unwrap().clone()
    }

    /// Asserts no bucket saw two identifies closer than `window - tolerance`.
    pub fn assert_windows(&self, window: Duration, tolerance: Duration) {
        let all = self.identifies();
        let Some(first) = all.iter().map(|i| i.at).min() else {
            return;
        };
        let mut by_bucket: BTreeMap<u32, Vec<Instant>> = BTreeMap::new();
        for identify in all.iter().copied() {
            by_bucket
                .entry(identify.bucket)
                .or_default()
                .push(identify.at);
        }
        for (bucket, mut times) in by_bucket {
            times.sort();
            for pair in times.windows(2) {
                let gap = pair[1] - pair[0];
                assert!(
                    gap + tolerance >= window,
                    "bucket {bucket}: two identifies {gap:?} apart (window {window:?}), at {:?} and {:?} after the first",
                    pair[0] - first,
                    pair[1] - first,
                );
            }
        }
    }
}

/// A shard runner whose shards ask the queue for a permit, "identify" by
/// writing to the ledger, and are READY at once. A shard that was READY
/// before (on any worker) resumes without a permit, as real shards do with a
/// stored session.
#[derive(Debug)]
pub struct FakeRunner {
    pub worker: usize,
    pub queue: Arc<dyn IdentifyQueue>,
    pub ledger: Arc<Ledger>,
    pub sessions: Arc<Mutex<BTreeSet<u32>>>,
    tasks: Mutex<BTreeMap<u32, tokio::task::JoinHandle<()>>>,
    ready: Arc<Mutex<BTreeSet<u32>>>,
}

impl FakeRunner {
    pub fn new(
        worker: usize,
        queue: Arc<dyn IdentifyQueue>,
        ledger: Arc<Ledger>,
        sessions: Arc<Mutex<BTreeSet<u32>>>,
    ) -> Self {
        Self {
            worker,
            queue,
            ledger,
            sessions,
            tasks: Mutex::default(),
            ready: Arc::default(),
        }
    }
}

impl ShardRunner for FakeRunner {
    fn start(&self, shard_id: u32, shard_count: u32) -> RunnerFuture<'_, Result<(), StartError>> {
        Box::pin(async move {
            {
                let mut running = self.ledger.running.lock().unwrap();
                let workers = running.entry(shard_id).or_default();
                workers.insert(self.worker);
                if workers.len() > 1 {
                    self.ledger.double_runs.lock().unwrap().push(shard_id);
                }
            }
            let queue = self.queue.clone();
            let ledger = self.ledger.clone();
            let ready = self.ready.clone();
            let sessions = self.sessions.clone();
            let worker = self.worker;
            let task = tokio::spawn(async move {
                let resumable = sessions.lock().unwrap().contains(&shard_id);
                if !resumable {
                    let permit = queue.acquire(shard_id, shard_count).await.unwrap();
                    ledger.identifies.lock().unwrap().push(Identify {
                        shard: shard_id,
                        bucket: permit.bucket,
                        at: Instant::now(),
                        worker,
                    });
                    sessions.lock().unwrap().insert(shard_id);
                }
                ready.lock().unwrap().insert(shard_id);
            });
            self.tasks.lock().unwrap().insert(shard_id, task);
            Ok(())
        })
    }

    fn stop(&self, shard_id: u32) -> RunnerFuture<'_, ()> {
        Box::pin(async move {
            if let Some(task) = self.tasks.lock().unwrap().remove(&shard_id) {
                task.abort();
            }
            self.ready.lock().unwrap().remove(&shard_id);
            if let Some(workers) = self.ledger.running.lock().unwrap().get_mut(&shard_id) {
                workers.remove(&self.worker);
            }
        })
    }

    fn ready(&self) -> BTreeSet<u32> {
        self.ready.lock().unwrap().clone()
    }
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
pub async fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Ledger {
    /// A crashed worker runs nothing any more.
    pub fn forget_worker(&self, worker: usize) {
        for workers in self.running.lock().unwrap().values_mut() {
            workers.remove(&worker);
        }
    }

    /// Shards running on exactly one worker.
    pub fn running_once(&self) -> usize {
        self.running
            .lock()
            .unwrap()
            .values()
            .filter(|workers| workers.len() == 1)
            .count()
    }
}

/// `(shards, max_concurrency, total, remaining, reset_after_ms)` of `/gateway/bot`.
pub type FixedInfoArgs = (u32, u16, u32, u32, u64);
