//! One shard: one Discord gateway connection whose every dispatch ends up in
//! JetStream exactly once.
//!
//! [`Shard::spawn`] starts a shard as a task and returns a [`ShardHandle`] to
//! watch its [`ShardStatus`] and to stop it gracefully.

mod heartbeat;
mod policy;
mod run;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::ShardConfig;
use crate::publish::DispatchPublisher;
use crate::queue::IdentifyQueue;
use crate::session::SessionStore;

/// What a shard is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardState {
    /// Opening the WebSocket (or waiting to, after a failure).
    Connecting,
    /// Connected; waiting for an identify permit.
    WaitingForPermit,
    /// IDENTIFY sent; waiting for READY.
    Identifying,
    /// RESUME sent; waiting for RESUMED.
    Resuming,
    /// READY or RESUMED received; dispatches flow.
    Active,
    /// Disconnected; reconnecting after a pause.
    Reconnecting,
    /// Finishing in-flight publishes and storing the session.
    ShuttingDown,
    /// Stopped for good.
    Stopped(ShardExit),
}

/// Why a shard stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardExit {
    /// Asked to stop; the session was stored and stays resumable.
    Shutdown,
    /// Discord closed with a code that forbids reconnecting.
    Fatal {
        /// The close code (4004, 4010–4014).
        code: u16,
        /// What it means and what to fix.
        reason: String,
    },
    /// The shard task failed (a bug): the reason.
    Failed(String),
}

/// A snapshot of a shard, published on every change that matters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardStatus {
    /// The shard id.
    pub shard_id: u32,
    /// What it is doing.
    pub state: ShardState,
    /// Time from the last heartbeat to its ACK.
    pub latency: Option<Duration>,
    /// The last seq received (updated at each heartbeat and state change).
    pub seq: u64,
    /// The committed seq: this and every earlier dispatch are acknowledged.
    pub committed_seq: u64,
    /// Guilds on this shard.
    pub guilds: u32,
    /// The current session, if any.
    pub session_id: Option<Arc<str>>,
}

impl ShardStatus {
    fn new(shard_id: u32) -> Self {
        Self {
            shard_id,
            state: ShardState::Connecting,
            latency: None,
            seq: 0,
            committed_seq: 0,
            guilds: 0,
            session_id: None,
        }
    }
}

/// What a shard needs besides its configuration: where to publish, where
/// sessions live, and the NATS client for commands.
#[derive(Debug, Clone)]
pub struct ShardDeps {
    /// Publishes dispatches to the dispatch stream.
    pub publisher: DispatchPublisher,
    /// Stores sessions.
    pub sessions: SessionStore,
    /// Serves `<prefix>.command.<shard>`.
    pub nats: async_nats::Client,
}

impl ShardDeps {
    /// Opens the sessions bucket and bundles everything for `names`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = async_nats::connect("nats://127.0.0.1:4222").await?;
    /// let names = shardline_wire::Names::new("discord", "mybot")?;
    /// let deps = shardline_gateway::ShardDeps::open(client, names).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(
        client: async_nats::Client,
        names: shardline_wire::Names,
    ) -> Result<Self, shardline_jetstream::DefinitionError> {
        let js = async_nats::jetstream::new(client.clone());
        let kv = shardline_jetstream::sessions_bucket(&js, &names, 1).await?;
        Ok(Self {
            publisher: DispatchPublisher::new(js, names),
            sessions: SessionStore::new(kv),
            nats: client,
        })
    }
}

/// Starts shards.
#[derive(Debug)]
pub struct Shard;

impl Shard {
    /// Starts one shard as a task. It loads its stored session (RESUME) or
    /// asks `queue` for a permit (IDENTIFY), then runs until stopped.
    ///
    /// ```no_run
    /// # async fn demo(deps: shardline_gateway::ShardDeps) {
    /// use std::sync::Arc;
    /// use shardline_gateway::{LocalQueue, Shard, ShardConfig, Token};
    /// let queue = Arc::new(LocalQueue::new(1, std::time::Duration::from_secs(5)));
    /// let config = ShardConfig::new(0, 1, Token::new("token"), 513, "wss://gateway.discord.gg");
    /// let handle = Shard::spawn(config, queue, deps);
    /// // ... later:
    /// let exit = handle.shutdown().await;
    /// # }
    /// ```
    pub fn spawn(
        config: ShardConfig,
        queue: Arc<dyn IdentifyQueue>,
        deps: ShardDeps,
    ) -> ShardHandle {
        let shard_id = config.shard_id;
        let (status_tx, status) = watch::channel(ShardStatus::new(shard_id));
        let status_tx = Arc::new(status_tx);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run::run(
            config,
            queue,
            deps,
            status_tx.clone(),
            cancel.clone(),
        ));
        ShardHandle {
            shard_id,
            status,
            status_tx,
            cancel,
            task,
        }
    }
}

/// Controls one running shard. Dropping it leaves the shard running; use
/// [`ShardHandle::shutdown`] to stop it.
#[derive(Debug)]
pub struct ShardHandle {
    shard_id: u32,
    status: watch::Receiver<ShardStatus>,
    status_tx: Arc<watch::Sender<ShardStatus>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<ShardExit>,
}

impl ShardHandle {
    /// The shard id.
    pub fn shard_id(&self) -> u32 {
        self.shard_id
    }

    /// A receiver of status changes.
    pub fn status(&self) -> watch::Receiver<ShardStatus> {
        self.status.clone()
    }

    /// The current status.
    pub fn current(&self) -> ShardStatus {
        self.status.borrow().clone()
    }

    /// `true` once the shard stopped (for example on a fatal close code).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the shard gracefully: stop reading, await every in-flight
    /// acknowledgement, store the session, close with a resumable code.
    pub async fn shutdown(self) -> ShardExit {
        self.cancel.cancel();
        self.join().await
    }

    /// Waits for the shard to stop by itself (a fatal close code).
    pub async fn join(self) -> ShardExit {
        let exit = match self.task.await {
            Ok(exit) => exit,
            Err(error) => ShardExit::Failed(error.to_string()),
        };
        self.status_tx
            .send_modify(|s| s.state = ShardState::Stopped(exit.clone()));
        exit
    }

    /// Stops the shard at once, without storing anything (a crash, for tests).
    pub fn abort(self) {
        self.task.abort();
    }
}
