//! [`GatewayShardRunner`]: the [`ShardRunner`] that runs real gateway shards.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{RunnerFuture, ShardRunner, StartError};
use crate::config::ShardConfig;
use crate::queue::IdentifyQueue;
use crate::shard::{Shard, ShardDeps, ShardExit, ShardHandle, ShardState};

/// Runs gateway shards for a worker: each assigned shard is a [`Shard`] that
/// loads its stored session (RESUME) or asks `queue` for a permit (IDENTIFY).
///
/// ```no_run
/// # async fn demo(deps: shardline_gateway::ShardDeps, client: async_nats::Client) {
/// use std::sync::Arc;
/// use shardline_gateway::{GatewayShardRunner, RemoteQueue, ShardConfig, Token};
/// let names = shardline_wire::Names::new("discord", "mybot").unwrap();
/// let template = ShardConfig::new(0, 1, Token::new("token"), 513, "wss://gateway.discord.gg");
/// let runner = GatewayShardRunner::new(template, Arc::new(RemoteQueue::new(client, &names)), deps);
/// # }
/// ```
#[derive(Debug)]
pub struct GatewayShardRunner {
    template: ShardConfig,
    queue: Arc<dyn IdentifyQueue>,
    deps: ShardDeps,
    shards: Mutex<BTreeMap<u32, ShardHandle>>,
    stop_timeout: Duration,
}

impl GatewayShardRunner {
    /// Shards configured like `template` (its shard id and count are replaced).
    pub fn new(template: ShardConfig, queue: Arc<dyn IdentifyQueue>, deps: ShardDeps) -> Self {
        Self {
            template,
            queue,
            deps,
            shards: Mutex::new(BTreeMap::new()),
            stop_timeout: Duration::from_secs(30),
        }
    }

    /// How long one shard may take to stop gracefully (default 30 s).
    pub fn with_stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    fn shards(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, ShardHandle>> {
        // A panic while holding this lock leaves a valid map behind.
        self.shards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ShardRunner for GatewayShardRunner {
    fn start(&self, shard_id: u32, shard_count: u32) -> RunnerFuture<'_, Result<(), StartError>> {
        Box::pin(async move {
            let finished = {
                let mut shards = self.shards();
                match shards.get(&shard_id) {
                    Some(handle) if !handle.is_finished() => return Ok(()),
                    Some(_) => shards.remove(&shard_id),
                    None => None,
                }
            };
            if let Some(handle) = finished {
                let exit = handle.join().await;
                tracing::warn!(shard = shard_id, ?exit, "restarting a shard that stopped");
            }
            let mut config = self.template.clone();
            config.shard_id = shard_id;
            config.shard_count = shard_count;
            let handle = Shard::spawn(config, self.queue.clone(), self.deps.clone());
            self.shards().insert(shard_id, handle);
            Ok(())
        })
    }

    fn stop(&self, shard_id: u32) -> RunnerFuture<'_, ()> {
        Box::pin(async move {
            let Some(handle) = self.shards().remove(&shard_id) else {
                return;
            };
            match tokio::time::timeout(self.stop_timeout, handle.shutdown()).await {
                Ok(ShardExit::Shutdown) => tracing::debug!(shard = shard_id, "shard stopped"),
                Ok(exit) => tracing::warn!(shard = shard_id, ?exit, "shard stopped"),
                Err(_) => tracing::warn!(
                    shard = shard_id,
                    timeout = ?self.stop_timeout,
                    "shard did not stop in time"
                ),
            }
        })
    }

    fn ready(&self) -> BTreeSet<u32> {
        self.shards()
            .iter()
            .filter(|(_, handle)| handle.current().state == ShardState::Active)
            .map(|(shard, _)| *shard)
            .collect()
    }
}
