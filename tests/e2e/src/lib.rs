//! End-to-end helpers: run the gateway (in-process or as the `shardline`
//! binary) against the simulator and a real `nats-server`, and compare the
//! simulator's ledger with the dispatch stream.
//!
//! # Layout
//!
//! - [`Stack`]: a NATS server plus a simulator, with the gateway configuration
//!   pointing at both.
//! - [`stream_dispatches`]: every dispatch in the stream, by session and seq.
//! - [`check_exactly_once`]: the ledger-vs-stream comparison.
//! - [`GatewayProcess`]: the real `shardline gateway` binary, killable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use shardline_gateway::GatewayConfig;
use shardline_harness::{NatsServer, Process};
use shardline_sim::{SimConfig, SimHandle, SimStats, Simulator};
use shardline_wire::{Names, headers};

/// The test token. Distinctive so a log grep cannot miss it.
pub const TOKEN: &str = "e2e-TOKEN-d0n0tl0g-5ecret";

/// A NATS server and a simulator.
#[derive(Debug)]
pub struct Stack {
    /// The NATS server.
    pub nats: NatsServer,
    /// The simulator.
    pub sim: SimHandle,
    /// The names the gateway publishes under.
    pub names: Names,
}

impl Stack {
    /// Starts both. The simulator accepts [`TOKEN`].
    pub async fn start(sim: SimConfig) -> Self {
        let nats = NatsServer::start();
        let sim = Simulator::start(SimConfig {
            token: shardline_sim::Token::new(TOKEN),
            ..sim
        })
        .await
        .expect("the simulator starts");
        Self {
            nats,
            sim,
            names: Names::new("discord", "e2e").expect("valid names"),
        }
    }

    /// A gateway configuration for this stack (all shards the simulator recommends).
    pub fn gateway_config(&self) -> GatewayConfig {
        let mut config = GatewayConfig::from_sources(
            &format!(
                "token = \"{TOKEN}\"\nprefix = \"discord\"\napp = \"e2e\"\nrest_url = \"{}\"\nidentify_window = \"10ms\"\nsession_save_interval = \"200ms\"\nshutdown_timeout = \"20s\"\n[nats]\nurl = \"{}\"\n",
                self.sim.api_url(),
                self.nats.url()
            ),
            |_| None,
        )
        .expect("valid e2e configuration");
        config.intents = 513;
        config
    }

    /// Environment variables that make `shardline gateway` use this stack.
    pub fn gateway_env(&self) -> Vec<(String, String)> {
        vec![
            ("SHARDLINE_TOKEN".into(), TOKEN.into()),
            ("SHARDLINE_NATS_URL".into(), self.nats.url()),
            ("SHARDLINE_REST_URL".into(), self.sim.api_url()),
            ("SHARDLINE_PREFIX".into(), "discord".into()),
            ("SHARDLINE_APP".into(), "e2e".into()),
            ("SHARDLINE_IDENTIFY_WINDOW".into(), "10ms".into()),
            ("SHARDLINE_SESSION_SAVE_INTERVAL".into(), "200ms".into()),
        ]
    }

    /// The JetStream context.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        self.nats.jetstream().await
    }
}

/// One dispatch as found in the stream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stored {
    /// `Discord-Session`.
    pub session: String,
    /// `Discord-Shard`.
    pub shard: u32,
    /// `Discord-Seq`.
    pub seq: u64,
}

/// Messages in the dispatch stream now (0 when it does not exist yet).
pub async fn stream_len(js: &async_nats::jetstream::Context, names: &Names) -> u64 {
    match js.get_stream(names.dispatch_stream()).await {
        Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Every dispatch in the stream, read with an ordered consumer.
pub async fn stream_dispatches(
    js: &async_nats::jetstream::Context,
    names: &Names,
) -> anyhow::Result<Vec<Stored>> {
    let stream = js.get_stream(names.dispatch_stream()).await?;
    let total = stream.cached_info().state.messages;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await?;
    let mut messages = consumer.messages().await?;
    let mut out = Vec::with_capacity(total as usize);
    while (out.len() as u64) < total {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .context("reading the stream timed out")?
            .context("the stream ended")??;
        let h = message
            .headers
            .as_ref()
            .context("a dispatch without headers")?;
        let get = |name: &str| -> anyhow::Result<String> {
            Ok(h.get(name)
                .with_context(|| format!("missing header {name}"))?
                .as_str()
                .to_owned())
        };
        let stored = Stored {
            session: get(headers::SESSION)?,
            shard: get(headers::SHARD)?.parse()?,
            seq: get(headers::SEQ)?.parse()?,
        };
        let msg_id = get(headers::MSG_ID)?;
        if msg_id != headers::msg_id(stored.shard, &stored.session, stored.seq) {
            bail!("Nats-Msg-Id {msg_id} does not match the other headers");
        }
        out.push(stored);
    }
    Ok(out)
}

/// What the comparison found.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Emitted by the simulator.
    pub emitted: usize,
    /// In the stream.
    pub stored: usize,
    /// Emitted but not in the stream.
    pub missing: Vec<Stored>,
    /// In the stream more than once.
    pub duplicated: Vec<Stored>,
    /// In the stream but never emitted.
    pub unexpected: Vec<Stored>,
}

impl Comparison {
    /// `true` when the stream holds each emitted dispatch exactly once.
    pub fn exactly_once(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.unexpected.is_empty()
    }
}

/// Compares the simulator's ledger with the stream, by session and seq.
pub fn compare(stats: &SimStats, stored: &[Stored]) -> Comparison {
    let emitted: BTreeSet<Stored> = stats
        .emitted()
        .map(|(session, shard, seq, _)| Stored {
            session: session.to_owned(),
            shard,
            seq,
        })
        .collect();
    let mut counts: BTreeMap<&Stored, usize> = BTreeMap::new();
    for s in stored {
        *counts.entry(s).or_default() += 1;
    }
    Comparison {
        emitted: emitted.len(),
        stored: stored.len(),
        missing: emitted
            .iter()
            .filter(|e| !counts.contains_key(e))
            .cloned()
            .collect(),
        duplicated: counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(s, _)| (*s).clone())
            .collect(),
        unexpected: counts
            .keys()
            .filter(|s| !emitted.contains(*s))
            .map(|s| (*s).clone())
            .collect(),
    }
}

/// Waits until the stream holds as many dispatches as the simulator emitted,
/// and the simulator has emitted at least `min_emitted`; then compares.
pub async fn settle_and_compare(
    stack: &Stack,
    min_emitted: usize,
    timeout: Duration,
) -> anyhow::Result<Comparison> {
    let js = stack.jetstream().await;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let emitted = stack.sim.stats().emitted().count();
        let stored = stream_len(&js, &stack.names).await as usize;
        if emitted >= min_emitted && stored >= emitted {
            // Quiet for a moment: nothing more arrives.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let emitted_after = stack.sim.stats().emitted().count();
            let stored_after = stream_len(&js, &stack.names).await as usize;
            if emitted_after == emitted && stored_after == stored {
                break;
            }
            continue;
        }
        if tokio::time::Instant::now() > deadline {
            let stats = stack.sim.stats();
            let stored = stream_dispatches(&js, &stack.names)
                .await
                .unwrap_or_default();
            let c = compare(&stats, &stored);
            bail!(
                "not settled after {timeout:?}: emitted {emitted} (wanted ≥ {min_emitted}), stored {}; missing {:?}…",
                c.stored,
                c.missing.iter().take(5).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = stream_dispatches(&js, &stack.names).await?;
    Ok(compare(&stack.sim.stats(), &stored))
}

/// The `shardline` binary, built if needed (once per test process).
pub fn shardline_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Ok(path) = std::env::var("SHARDLINE_BIN") {
                return PathBuf::from(path);
            }
            // Test binaries live in <target>/<profile>/deps/.
            let exe = std::env::current_exe().expect("the test knows its path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("test binary inside <target>/<profile>/deps")
                .to_owned();
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "-p", "shardline", "--bin", "shardline"])
                .current_dir(shardline_harness::workspace_root());
            if release {
                build.arg("--release");
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "building the shardline binary failed");
            let binary = profile_dir.join("shardline");
            assert!(binary.exists(), "no binary at {}", binary.display());
            binary
        })
        .clone()
}

/// A running `shardline gateway` process, its output appended to a log file.
#[derive(Debug)]
pub struct GatewayProcess {
    process: Process,
}

impl GatewayProcess {
    /// Starts `shardline gateway` with `env` (and `RUST_LOG`), logging to `log`.
    pub fn start(env: &[(String, String)], log: &Path) -> Self {
        let mut command = Command::new(shardline_binary());
        command.arg("gateway");
        command.env_remove("SHARDLINE_CONFIG");
        for (key, value) in env {
            command.env(key, value);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info,shardline_gateway=debug");
        }
        let process = Process::spawn("shardline gateway", command, log).expect("the binary starts");
        Self { process }
    }

    /// SIGKILL: a crash.
    pub fn kill(mut self) {
        self.process.kill();
    }

    /// SIGTERM, then wait up to `grace`.
    pub fn terminate(mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        self.process.terminate(grace)
    }

    /// `true` while it runs.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

/// Shards started directly through [`shardline_gateway::Shard::spawn`] (the
/// API the coordinator's workers use), against a [`Stack`].
#[derive(Debug)]
pub struct ShardSet {
    /// One handle per shard.
    pub handles: Vec<shardline_gateway::ShardHandle>,
}

impl ShardSet {
    /// Starts shards `0..count` of `count` with `compression`.
    pub async fn start(
        stack: &Stack,
        count: u32,
        compression: shardline_gateway::Compression,
    ) -> Self {
        Self::start_with(stack, count, |c| c.compression = compression).await
    }

    /// Starts shards `0..count` of `count`, letting `tune` adjust each config.
    pub async fn start_with(
        stack: &Stack,
        count: u32,
        tune: impl Fn(&mut shardline_gateway::ShardConfig),
    ) -> Self {
        use std::sync::Arc;
        let client = stack.nats.client().await;
        let js = async_nats::jetstream::new(client.clone());
        shardline_jetstream::ensure_dispatch_stream(
            &js,
            &stack.names,
            &shardline_jetstream::StreamSettings::default(),
        )
        .await
        .expect("the dispatch stream");
        let deps = shardline_gateway::ShardDeps::open(client, stack.names.clone())
            .await
            .expect("the sessions bucket");
        let queue: Arc<dyn shardline_gateway::IdentifyQueue> = Arc::new(
            shardline_gateway::LocalQueue::new(count, Duration::from_millis(10)),
        );
        let handles = (0..count)
            .map(|id| {
                let mut config = shardline_gateway::ShardConfig::new(
                    id,
                    count,
                    shardline_gateway::Token::new(TOKEN),
                    513,
                    stack.sim.gateway_url(),
                );
                config.session_save_interval = Duration::from_millis(200);
                config.backoff = shardline_gateway::Backoff {
                    base: Duration::from_millis(100),
                    max: Duration::from_secs(2),
                };
                tune(&mut config);
                shardline_gateway::Shard::spawn(config, queue.clone(), deps.clone())
            })
            .collect();
        Self { handles }
    }

    /// Waits until every shard is active.
    pub async fn wait_active(&self, timeout: Duration) {
        for handle in &self.handles {
            let mut status = handle.status();
            tokio::time::timeout(
                timeout,
                status.wait_for(|s| s.state == shardline_gateway::ShardState::Active),
            )
            .await
            .expect("the shard becomes active in time")
            .expect("the shard runs");
        }
    }

    /// Stops every shard gracefully.
    pub async fn shutdown(self) -> Vec<shardline_gateway::ShardExit> {
        futures::future::join_all(self.handles.into_iter().map(|h| h.shutdown())).await
    }
}

/// Waits until `check` holds for the simulator's stats.
pub async fn wait_for_sim(
    stack: &Stack,
    what: &str,
    timeout: Duration,
    check: impl Fn(&SimStats) -> bool,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let stats = stack.sim.stats();
        if check(&stats) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; identifies {:?}, faults {:?}",
            stats.identifies,
            stats.faults
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Asserts the comparison found each emitted dispatch exactly once.
pub fn assert_exactly_once(comparison: &Comparison) {
    assert!(
        comparison.exactly_once(),
        "emitted {}, stored {}: missing {} (e.g. {:?}), duplicated {} (e.g. {:?}), unexpected {} (e.g. {:?})",
        comparison.emitted,
        comparison.stored,
        comparison.missing.len(),
        comparison.missing.first(),
        comparison.duplicated.len(),
        comparison.duplicated.first(),
        comparison.unexpected.len(),
        comparison.unexpected.first(),
    );
}
