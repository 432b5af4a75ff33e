//! The test harness every shardline integration test uses.
//!
//! Tests never depend on a server already running: each one starts its own
//! `nats-server` on a free loopback port with a temporary store, and the server
//! is killed and its store deleted when the handle drops.
//!
//! # Layout
//!
//! - [`NatsServer`]: one JetStream-enabled server; stop, restart on the same
//!   port and store, kill.
//! - [`NatsCluster`]: three JetStream nodes routed together on loopback; kill
//!   and restart any node.
//! - [`nats_server_binary`]: finds a `nats-server` ≥ 2.10 (the project's
//!   `.tools/` folder, `SHARDLINE_NATS_SERVER`, or `PATH`).
//! - [`free_port`], [`workspace_root`], [`Process`]: small pieces other test crates share.

mod binary;
mod cluster;
mod process;
mod server;

pub use binary::{nats_server_binary, tools_dir, workspace_root};
pub use cluster::NatsCluster;
pub use process::{Process, free_port};
pub use server::NatsServer;

/// How long a server may take to accept clients and enable JetStream.
pub const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
