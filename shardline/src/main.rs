//! The `shardline` binary: parses arguments, loads configuration, installs
//! tracing and a shutdown signal, then hands over to the libraries.

mod bridge;
mod coordinator;
mod dev;
mod dlq;
mod gateway;
mod logging;
mod nats;
mod observe;
mod replay;
mod shutdown;
mod sim;
mod worker;

use clap::{Parser, Subcommand};

/// shardline: the Discord gateway that never loses an event.
#[derive(Debug, Parser)]
#[command(name = "shardline", version, about, propagate_version = true)]
struct Cli {
    /// Log format: `text` or `json`.
    #[arg(
        long,
        global = true,
        env = "SHARDLINE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole stack on this machine: NATS, the Discord simulator (or real
    /// Discord with DISCORD_TOKEN), the gateway, the bridge and the example bot.
    Dev(dev::DevArgs),
    /// Run shards and the coordinator in one process (small bots).
    Gateway(gateway::GatewayArgs),
    /// Run the identify coordinator (one active per bot, any number of standbys).
    Coordinator(coordinator::CoordinatorArgs),
    /// Run a worker that starts the shards the coordinator assigns to it.
    Worker(worker::WorkerArgs),
    /// Deliver events from JetStream to serverless functions.
    Bridge(bridge::BridgeArgs),
    /// Re-send stored events to standard output, a file or a bridge route.
    Replay(replay::ReplayArgs),
    /// List, show, redrive and purge dead letters.
    Dlq(dlq::DlqArgs),
    /// Operate a running gateway through the coordinator.
    Ctl,
    /// Serve a Discord gateway and REST simulator.
    Sim(sim::SimArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::install(cli.log_format);
    let shutdown = shutdown::on_signal();
    match cli.command {
        Command::Dev(args) => dev::run(args, shutdown).await,
        Command::Gateway(args) => gateway::run(args, shutdown).await,
        Command::Coordinator(args) => coordinator::run(args, shutdown).await,
        Command::Worker(args) => worker::run(args, shutdown).await,
        Command::Bridge(args) => bridge::run(args, shutdown).await,
        Command::Replay(args) => replay::run(args, shutdown).await,
        Command::Dlq(args) => dlq::run(args, shutdown).await,
        Command::Ctl => not_built("ctl", 10),
        Command::Sim(args) => sim::run(args, shutdown).await,
    }
}

fn not_built(command: &str, issue: u32) -> anyhow::Result<()> {
    anyhow::bail!("`shardline {command}` is not built yet (tracked in issue {issue})")
}
