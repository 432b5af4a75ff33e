//! `shardline worker`: runs the shards the coordinator assigns to it.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

/// Options of `shardline worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The TOML configuration file (the same as `shardline gateway`'s, with a
    /// `[worker]` section); environment variables override it.
    #[arg(long, short, env = "SHARDLINE_CONFIG")]
    config: Option<PathBuf>,
    /// This worker's id (default: random).
    #[arg(long, env = "SHARDLINE_WORKER_ID")]
    id: Option<String>,
    /// The `Authorization` value for `/gateway/bot` when a REST proxy wants
    /// its own (default: `Bot <token>`).
    #[arg(long, env = "SHARDLINE_REST_AUTHORIZATION", hide_env_values = true)]
    rest_authorization: Option<String>,
}

/// Loads the configuration and runs the worker until `shutdown`.
pub async fn run(args: WorkerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut config = shardline_gateway::GatewayConfig::load(args.config.as_deref())?;
    if args.id.is_some() {
        config.worker.id = args.id;
        config.validate()?;
    }
    let authorization = args
        .rest_authorization
        .map(shardline_gateway::RestAuthorization::header_value);
    shardline_gateway::run_worker(config, authorization, shutdown).await?;
    Ok(())
}
