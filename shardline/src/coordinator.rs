//! `shardline coordinator`: the identify coordinator (one active per bot, any
//! number of standbys).

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

/// Options of `shardline coordinator`.
#[derive(Debug, clap::Args)]
pub struct CoordinatorArgs {
    /// The TOML configuration file (the same as `shardline gateway`'s, with a
    /// `[coordinator]` section); environment variables override it.
    #[arg(long, short, env = "SHARDLINE_CONFIG")]
    config: Option<PathBuf>,
    /// This coordinator's id in the lease and the logs (default: random).
    #[arg(long, env = "SHARDLINE_COORDINATOR_ID")]
    id: Option<String>,
    /// The `Authorization` value for `/gateway/bot` when a REST proxy wants
    /// its own (default: `Bot <token>`).
    #[arg(long, env = "SHARDLINE_REST_AUTHORIZATION", hide_env_values = true)]
    rest_authorization: Option<String>,
}

/// Loads the configuration and runs the coordinator until `shutdown`.
pub async fn run(args: CoordinatorArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut config = shardline_gateway::GatewayConfig::load(args.config.as_deref())?;
    if args.id.is_some() {
        config.coordinator.id = args.id;
        config.validate()?;
    }
    let authorization = args
        .rest_authorization
        .map(shardline_gateway::RestAuthorization::header_value);
    shardline_gateway::run_coordinator(config, authorization, shutdown).await?;
    Ok(())
}
