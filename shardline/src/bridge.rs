//! `shardline bridge`: deliver events from JetStream to serverless functions.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

/// Options of `shardline bridge`.
#[derive(Debug, clap::Args)]
pub struct BridgeArgs {
    /// The bridge's TOML configuration (routes as `[[route]]` tables).
    /// `SHARDLINE_NATS_URL`, `SHARDLINE_PREFIX` and `SHARDLINE_APP` override
    /// its top-level fields.
    #[arg(
        long,
        short,
        env = "SHARDLINE_BRIDGE_CONFIG",
        default_value = "bridge.toml"
    )]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
}

/// Loads the configuration and runs the bridge until `shutdown`.
pub async fn run(args: BridgeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let config =
        shardline_jetstream::BridgeConfig::from_toml(&text, |name| std::env::var(name).ok())
            .with_context(|| {
                format!("invalid bridge configuration in {}", args.config.display())
            })?;
    if args.check {
        println!(
            "{}: {} route(s), configuration is valid",
            args.config.display(),
            config.routes.len()
        );
        return Ok(());
    }
    // User, password, CA and credentials come from `SHARDLINE_NATS_*`, as for
    // every service.
    let mut nats = shardline_jetstream::NatsSettings::from_env(|name| std::env::var(name).ok());
    nats.url = Some(config.nats_url.clone());
    let options = nats
        .options("shardline-bridge")
        .await?
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5));
    let client = tokio::select! {
        client = options.connect(nats.urls()) => client
            .with_context(|| format!("connecting to NATS at {}", config.nats_url))?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    tracing::info!(url = %config.nats_url, routes = config.routes.len(), "bridge connected to NATS");
    shardline_jetstream::bridge::run(&config, client.clone(), shutdown)
        .await
        .context("starting the bridge")?;
    // Acks and NAKs sent during shutdown reach the server before we exit.
    client.drain().await.ok();
    tracing::info!("bridge stopped");
    Ok(())
}
