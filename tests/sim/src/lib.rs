//! A Discord gateway and REST simulator with Discord's limits enforced and
//! faults on demand — the stand-in for Discord in every shardline test and
//! benchmark, and `shardline sim` for local development.
//!
//! It is written from Discord's documentation, independently of
//! `shardline-gateway`, so that a protocol bug cannot hide in shared code.
//!
//! One listener serves:
//! - the gateway WebSocket on `/` (and `/resume`, the `resume_gateway_url`),
//!   `?v=10&encoding=json` with `compress=zlib-stream`, `zstd-stream` or none;
//! - REST: `GET /api/v10/gateway`, `GET /api/v10/gateway/bot` (needs
//!   `Authorization: Bot <token>`), `POST /api/v10/channels/{id}/messages`,
//!   `POST /api/v10/interactions/{id}/{token}/callback`;
//! - control: `GET /sim/stats` (the [`SimStats`] ledger as JSON) and
//!   `POST /sim/fault` (a [`FaultRequest`] as JSON).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use shardline_sim::{Fault, SimConfig, Simulator};
//!
//! # async fn demo() -> Result<(), shardline_sim::SimError> {
//! let sim = Simulator::start(SimConfig {
//!     guilds: 20,
//!     shards: Some(2),
//!     events_per_second: 100.0,
//!     max_events_per_shard: Some(500),
//!     identify_window: Duration::from_millis(10),
//!     ..SimConfig::default()
//! })
//! .await?;
//! // Point the gateway under test at `sim.url()` (REST) / `sim.gateway_url()`.
//! sim.fault(Fault::Reconnect); // op 7 to every connection
//! sim.fault_shard(1, Fault::Close { code: 4000 });
//! let stats = sim.stats();
//! for (session_id, shard, seq, name) in stats.emitted() {
//!     println!("{session_id} shard {shard}: #{seq} {name}");
//! }
//! # Ok(()) }
//! ```
//!
//! # Discord's rules it enforces
//! Each breach is counted in [`SimStats::violations`] by [`Violation`]:
//! one IDENTIFY per bucket (`shard_id % max_concurrency`) per
//! `identify_window` (op 9 otherwise); `session_start_limit` (the last start
//! revokes the token: every connection closes 4004, and so does any later
//! IDENTIFY); `command_limit` commands per `command_window` (4008); payloads
//! over `max_payload` (4002); bad token (4004); invalid shard (4010); too many
//! guilds per shard (4011); unknown or disallowed intents (4013/4014); no
//! heartbeat within `heartbeat_timeout` (4009).
//!
//! # Determinism
//! Guild ids, session ids and the dispatch mix follow `seed`. The stream
//! runs at `events_per_second` per shard, written every `emit_tick`, and
//! stops at `max_events_per_shard` / `max_events_total`. Guild number `i`
//! has snowflake `((T0 + i) << 22) | low_bits` so `(id >> 22) % shards`
//! spreads them evenly; [`SimHandle::guild_ids`] lists a shard's guilds.
//!
//! # Layout
//! - `config` — [`SimConfig`], [`Token`], validation.
//! - `http` — the axum router: WebSocket upgrade, REST, `/sim` control.
//! - `gateway` — one connection: HELLO → IDENTIFY/RESUME → READY,
//!   GUILD_CREATE, the dispatch stream; rules; faults.
//! - `compress` — per-connection zlib-stream / zstd-stream contexts.
//! - `events` — guild snowflakes per shard, READY/GUILD_CREATE, the pool of
//!   dispatch templates stamped per event.
//! - `state` — sessions (seq, resume buffer), identify buckets, the session
//!   start limit, fault fan-out.
//! - `ledger` — [`SimStats`] and its parts.
//! - `fault` — [`Fault`], [`FaultRequest`], [`ScheduledFault`] (`--fault`).
//!
//! Data path: the `http` router upgrades a connection → `gateway::serve`
//! owns it; a tick asks `state` for quota, stamps templates from `events`
//! into the session's resume buffer, encodes them with `compress`, writes
//! the batch and marks the seqs sent in the session (read by `ledger`).

#![recursion_limit = "256"]

mod compress;
mod config;
mod events;
mod fault;
mod gateway;
mod http;
mod ledger;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use compress::Compress;
pub use config::{ConfigError, KNOWN_INTENTS, PRIVILEGED_INTENTS, SimConfig, Token};
pub use fault::{Fault, FaultParseError, FaultRequest, ScheduledFault};
pub use ledger::{
    CommandRecord, EmittedEvent, FaultRecord, IdentifyRecord, RestCall, SeqRange,
    SessionStartLimit, SessionState, SessionStats, SimStats, Violation,
};

use state::Shared;

/// The simulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listener could not be bound or read.
    #[error("simulator listener")]
    Io(#[source] std::io::Error),
}

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Starts a simulator on a free loopback port.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), shardline_sim::SimError> {
    /// let sim = shardline_sim::Simulator::start(Default::default()).await?;
    /// println!("REST at {}, gateway at {}", sim.url(), sim.gateway_url());
    /// # Ok(()) }
    /// ```
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(SimError::Io)?;
        Self::start_on(listener, config).await
    }

    /// Starts a simulator on a listener the caller bound.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:7878").await?;
    /// let sim = shardline_sim::Simulator::start_on(listener, Default::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_on(listener: TcpListener, config: SimConfig) -> Result<SimHandle, SimError> {
        config.validate()?;
        let addr = listener.local_addr().map_err(SimError::Io)?;
        let shared = Arc::new(Shared::new(
            config,
            format!("http://{addr}"),
            format!("ws://{addr}"),
        ));
        for scheduled in shared.config.faults.clone() {
            let shared = shared.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(scheduled.after) => {
                        shared.apply_fault(FaultRequest { fault: scheduled.fault, shard: scheduled.shard });
                    }
                    () = shared.shutdown.cancelled() => {}
                }
            });
        }
        let router = http::router(shared.clone());
        let token = shared.shutdown.clone();
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "simulator listener failed");
            }
        });
        tracing::info!(%addr, "Discord simulator listening");
        Ok(SimHandle {
            shared,
            addr,
            server: Some(server),
        })
    }
}

/// A running simulator. Cheap to query; dropping it stops the simulator
/// (connections are closed with 1001).
#[derive(Debug)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// The listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The REST base, `http://127.0.0.1:PORT` (the API is under `/api/v10`).
    pub fn url(&self) -> String {
        self.shared.http_url.clone()
    }

    /// The REST API base, `http://127.0.0.1:PORT/api/v10`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v10", self.shared.http_url)
    }

    /// The gateway base, `ws://127.0.0.1:PORT` (what `/gateway/bot` returns
    /// as `url`); connect to `{gateway_url}/?v=10&encoding=json[&compress=…]`.
    pub fn gateway_url(&self) -> String {
        self.shared.ws_url.clone()
    }

    /// The token the simulator accepts.
    pub fn token(&self) -> &Token {
        &self.shared.config.token
    }

    /// The configuration in force.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// The ledger as it stands.
    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    /// Applies `fault` to every live connection; returns how many it reached.
    pub fn fault(&self, fault: Fault) -> usize {
        self.shared.apply_fault(FaultRequest { fault, shard: None })
    }

    /// Applies `fault` to the connections of shard `shard_id`.
    pub fn fault_shard(&self, shard_id: u32, fault: Fault) -> usize {
        self.shared.apply_fault(FaultRequest {
            fault,
            shard: Some(shard_id),
        })
    }

    /// Applies a [`FaultRequest`] (as `POST /sim/fault` does).
    pub fn apply(&self, request: FaultRequest) -> usize {
        self.shared.apply_fault(request)
    }

    /// The guild ids shard `shard_id` of `num_shards` holds now.
    pub fn guild_ids(&self, shard_id: u32, num_shards: u32) -> Vec<u64> {
        events::guilds_for_shard(
            shard_id,
            num_shards,
            self.shared
                .guild_count
                .load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    /// Discord's `(guild_id >> 22) % num_shards`.
    pub fn shard_for_guild(guild_id: u64, num_shards: u32) -> u32 {
        events::shard_of(guild_id, num_shards)
    }

    /// WebSocket connections open now.
    pub fn connections_open(&self) -> u64 {
        self.shared
            .conns_open
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the simulator and waits for its listener to close.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}
