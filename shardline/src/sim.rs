//! `shardline sim`: the Discord gateway and REST simulator on one listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use shardline_sim::{ScheduledFault, SimConfig, Simulator, Token};
use tokio_util::sync::CancellationToken;

/// Options of `shardline sim`. Flags override the `--config` file.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (REST, gateway WebSocket and `/sim` control).
    #[arg(long, env = "SHARDLINE_SIM_LISTEN", default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// A TOML file of simulator settings (the fields of `SimConfig`).
    #[arg(long, env = "SHARDLINE_SIM_CONFIG")]
    config: Option<PathBuf>,
    /// The bot token the simulator accepts (default `sim-token`).
    #[arg(long, env = "SHARDLINE_SIM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Guilds the bot is in, across all shards.
    #[arg(long)]
    guilds: Option<u64>,
    /// Shard count recommended by GET /gateway/bot (default: guilds / 1000).
    #[arg(long)]
    shards: Option<u32>,
    /// Identify buckets (`session_start_limit.max_concurrency`).
    #[arg(long)]
    max_concurrency: Option<u32>,
    /// Identify window per bucket, e.g. `5s`, `50ms`.
    #[arg(long, value_parser = duration)]
    identify_window: Option<Duration>,
    /// `session_start_limit.total`.
    #[arg(long)]
    session_start_total: Option<u32>,
    /// `session_start_limit.remaining` at start.
    #[arg(long)]
    session_start_remaining: Option<u32>,
    /// HELLO's heartbeat interval, e.g. `41250ms`.
    #[arg(long, value_parser = duration)]
    heartbeat_interval: Option<Duration>,
    /// Dispatches per second per shard.
    #[arg(long)]
    events_per_second: Option<f64>,
    /// Stop the stream of a shard after this many dispatches.
    #[arg(long)]
    max_events_per_shard: Option<u64>,
    /// Stop the stream after this many dispatches in total.
    #[arg(long)]
    max_events_total: Option<u64>,
    /// Seed of every random choice.
    #[arg(long)]
    seed: Option<u64>,
    /// A fault at a time: `KIND[=ARG][@AFTER][#SHARD]`, repeatable. Kinds:
    /// reconnect, invalid[=true|false], drop, zombie, close=CODE, corrupt,
    /// oversized[=BYTES], non-json, stall=DURATION, heartbeat,
    /// grow=COUNT[/OVER]. Example: `close=4000@10s#3`.
    #[arg(long = "fault")]
    faults: Vec<ScheduledFault>,
    /// Stop by itself after this long (e.g. `30s`).
    #[arg(long, value_parser = duration)]
    run_for: Option<Duration>,
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (write e.g. 5s, 250ms)"))
}

impl SimArgs {
    fn into_config(self) -> anyhow::Result<(SimConfig, SocketAddr, Option<Duration>)> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<SimConfig>(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => SimConfig::default(),
        };
        if let Some(token) = self.token {
            config.token = Token::new(token);
        }
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { config.$field = v; } )* };
        }
        set!(
            guilds,
            max_concurrency,
            identify_window,
            session_start_total,
            heartbeat_interval,
            events_per_second,
            seed
        );
        if self.shards.is_some() {
            config.shards = self.shards;
        }
        if self.session_start_remaining.is_some() {
            config.session_start_remaining = self.session_start_remaining;
        }
        if self.max_events_per_shard.is_some() {
            config.max_events_per_shard = self.max_events_per_shard;
        }
        if self.max_events_total.is_some() {
            config.max_events_total = self.max_events_total;
        }
        config.faults.extend(self.faults);
        config.validate()?;
        Ok((config, self.listen, self.run_for))
    }
}

/// Serves the simulator until `shutdown` fires (or `--run-for` runs out).
pub async fn run(args: SimArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (config, listen, run_for) = args.into_config()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let sim = Simulator::start_on(listener, config).await?;
    println!("shardline sim: Discord simulator on {}", sim.addr());
    println!("  REST     {}", sim.api_url());
    println!("  gateway  {}/?v=10&encoding=json", sim.gateway_url());
    println!(
        "  ledger   {}/sim/stats   faults: POST {}/sim/fault",
        sim.url(),
        sim.url()
    );
    match run_for {
        Some(limit) => {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(limit) => tracing::info!("run-for limit reached"),
            }
        }
        None => shutdown.cancelled().await,
    }
    sim.shutdown().await;
    Ok(())
}
