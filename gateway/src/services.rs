//! `shardline coordinator` and `shardline worker`, wired from a [`GatewayConfig`]
//! (the same file the one-process `shardline gateway` reads, with its
//! `[coordinator]` and `[worker]` sections).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{EventFilter, ShardConfig, Token};
use crate::coordinator::{Coordinator, CoordinatorError};
use crate::gateway::{ConfigError, GatewayConfig, GatewayError, connect_nats};
use crate::gateway_info::{
    GatewayInfoClient, GatewayInfoError, GatewayInfoSource, RestAuthorization,
};
use crate::remote_queue::RemoteQueue;
use crate::shard::ShardDeps;
use crate::worker::{GatewayShardRunner, Worker, WorkerError};

/// Why a coordinator or worker process stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// Configuration, NATS or JetStream set-up failed.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The coordinator failed.
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    /// The worker failed.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// `/gateway/bot` could not be read.
    #[error(transparent)]
    GatewayInfo(#[from] GatewayInfoError),
}

fn token(config: &GatewayConfig) -> Result<Token, GatewayError> {
    config.token.clone().ok_or_else(|| {
        GatewayError::Config(ConfigError::Invalid {
            field: "token",
            reason: "missing: set SHARDLINE_TOKEN".into(),
        })
    })
}

fn gateway_info(
    config: &GatewayConfig,
    authorization: Option<RestAuthorization>,
) -> Result<GatewayInfoClient, ServiceError> {
    let authorization = match authorization {
        Some(authorization) => authorization,
        None => RestAuthorization::bot_token(token(config)?.expose()),
    };
    Ok(GatewayInfoClient::new(&config.rest_url, authorization)?)
}

/// Runs `shardline coordinator` until `shutdown`.
///
/// `authorization` replaces `Bot <token>` for `/gateway/bot` (a REST proxy's own value).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let config = shardline_gateway::GatewayConfig::load(Some("shardline.toml".as_ref()))?;
/// shardline_gateway::run_coordinator(config, None, tokio_util::sync::CancellationToken::new()).await?;
/// # Ok(()) }
/// ```
pub async fn run_coordinator(
    config: GatewayConfig,
    authorization: Option<RestAuthorization>,
    shutdown: CancellationToken,
) -> Result<(), ServiceError> {
    config.validate().map_err(GatewayError::from)?;
    let names = config.names().map_err(GatewayError::from)?;
    let info = gateway_info(&config, authorization)?;
    let client = connect_nats(&config.nats).await?;
    let mut settings = config.coordinator.clone();
    settings.identify_window = config.identify_window;
    settings.shard_count = config.coordinator_shard_count();
    let coordinator = Coordinator::new(settings, client.clone(), names, Arc::new(info));
    let result = coordinator.run(shutdown).await;
    if let Err(error) = client.flush().await {
        tracing::debug!(%error, "flushing NATS");
    }
    Ok(result?)
}

/// Runs `shardline worker` until `shutdown`: registers, runs the shards the
/// coordinator assigns, asking it for identify permits.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let config = shardline_gateway::GatewayConfig::load(Some("shardline.toml".as_ref()))?;
/// shardline_gateway::run_worker(config, None, tokio_util::sync::CancellationToken::new()).await?;
/// # Ok(()) }
/// ```
pub async fn run_worker(
    config: GatewayConfig,
    authorization: Option<RestAuthorization>,
    shutdown: CancellationToken,
) -> Result<(), ServiceError> {
    config.validate().map_err(GatewayError::from)?;
    let names = config.names().map_err(GatewayError::from)?;
    let token = token(&config)?;
    let client = connect_nats(&config.nats).await?;
    let js = async_nats::jetstream::new(client.clone());
    shardline_jetstream::ensure_dispatch_stream(&js, &names, &config.stream)
        .await
        .map_err(GatewayError::from)?;
    let sessions = shardline_jetstream::sessions_bucket(&js, &names, config.kv_replicas)
        .await
        .map_err(GatewayError::from)?;
    let deps = ShardDeps {
        publisher: crate::publish::DispatchPublisher::new(js, names.clone()),
        sessions: crate::session::SessionStore::new(sessions),
        nats: client.clone(),
    };
    let gateway_url = match &config.gateway_url {
        Some(url) => url.clone(),
        None => gateway_info(&config, authorization)?.fetch().await?.url,
    };
    let mut template = ShardConfig::new(0, 1, token, config.intents, gateway_url);
    template.api_version = config.api_version;
    template.compression = config.compression;
    template.events = EventFilter::new(config.events.allow.clone(), config.events.deny.clone());
    template.max_acks_in_flight = config.max_acks_in_flight;
    template.session_save_interval = config.session_save_interval;
    template.large_threshold = config.large_threshold;
    template.read_buffer_size = config.read_buffer_size;
    let mut queue = RemoteQueue::new(client.clone(), &names).with_hold(config.worker.permit_hold);
    let worker_id = config
        .worker
        .id
        .clone()
        .unwrap_or_else(|| crate::settings::random_id("worker"));
    queue = queue.with_worker(worker_id.clone());
    let runner = GatewayShardRunner::new(template, Arc::new(queue), deps)
        .with_stop_timeout(config.shutdown_timeout);
    let mut settings = config.worker.clone();
    settings.id = Some(worker_id);
    let result = Worker::new(settings, client.clone(), names, Arc::new(runner))
        .run(shutdown)
        .await;
    if let Err(error) = client.flush().await {
        tracing::debug!(%error, "flushing NATS");
    }
    Ok(result?)
}
