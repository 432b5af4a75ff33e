//! `shardline gateway`: N shards in one process.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

/// Options of `shardline gateway`.
#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// The TOML configuration file; environment variables override it
    /// (`SHARDLINE_TOKEN`, `SHARDLINE_NATS_URL`, … see docs).
    #[arg(long, short, env = "SHARDLINE_CONFIG")]
    config: Option<PathBuf>,
}

/// Loads the configuration and runs the shards until `shutdown`.
pub async fn run(args: GatewayArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = shardline_gateway::GatewayConfig::load(args.config.as_deref())?;
    shardline_gateway::Gateway::run(config, shutdown).await?;
    Ok(())
}
