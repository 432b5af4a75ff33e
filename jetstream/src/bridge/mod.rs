//! The bridge: JetStream → serverless functions, acknowledged only after
//! the target accepted each event.
//!
//! # Layout
//!
//! - `config`: [`BridgeConfig`], [`RouteConfig`] and their parts, validated
//!   with errors that name the field.
//! - `filter`: route events (`MESSAGE_CREATE`, `GUILD_*`) → consumer filter subjects.
//! - `message`: a stream message → [`shardline_wire::Record`].
//! - `route`: the consumer loop, batching, `per_guild` lanes, splitting,
//!   and what each [`DeliveryOutcome`](crate::DeliveryOutcome) does to the messages.
//! - `retry`: backoff with jitter and the give-up rules.
//! - `aimd`: the adaptive concurrency limit.
//! - `dead_letter`: the dead-letter envelope.
//!
//! The data path: [`Bridge::start`] ensures the streams and one durable pull
//! consumer per route → `route` pulls, batches and calls the route's
//! [`Target`] → success: confirmed ack; failure: delayed NAK (or an
//! in-order retry for `per_guild`); out of attempts or age: dead letter,
//! then `+TERM`.

mod aimd;
mod config;
mod dead_letter;
mod filter;
mod message;
mod retry;
mod route;

use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::Duration;

use async_nats::jetstream;
use shardline_wire::Names;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::{
    BatchConfig, BridgeConfig, ConcurrencyConfig, ConfigError, DeadLetterPolicy, HttpTargetConfig,
    LAMBDA_MAX_PAYLOAD, LambdaTargetConfig, Ordering, RetryConfig, RouteConfig, Secret,
    StartPolicy, TargetConfig,
};
pub use dead_letter::{DeadLetter, DeadLetterError, NotADeadLetter, dlq_headers};
pub use filter::{EventFilter, FilterError, KNOWN_EVENTS};
pub use retry::{Decision, FailedEvent, INTERACTION_DEADLINE, backoff, decide};
pub use route::TargetState;

use crate::target::{Target, TargetError, target_from_config};
use crate::{DefinitionError, StreamSettings};

/// The bridge could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The prefix or application name is invalid.
    #[error(transparent)]
    Names(#[from] shardline_wire::InvalidName),
    /// A stream or consumer could not be created.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// A route's events are invalid.
    #[error("route {route}: events")]
    Filter {
        /// The route.
        route: String,
        /// What is wrong.
        #[source]
        source: FilterError,
    },
    /// A route's target could not be built.
    #[error("route {route}: target")]
    Target {
        /// The route.
        route: String,
        /// What is wrong.
        #[source]
        source: TargetError,
    },
}

/// Live figures of one route.
#[derive(Debug, Clone)]
pub struct RouteStatus(Arc<route::Shared>);

impl RouteStatus {
    /// The route's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }
    /// Calls to the target in flight now.
    pub fn in_flight(&self) -> usize {
        self.0.aimd.in_flight()
    }
    /// The current concurrency limit (AIMD).
    pub fn concurrency_limit(&self) -> usize {
        self.0.aimd.limit()
    }
    /// How the target is doing.
    pub fn state(&self) -> TargetState {
        self.0.state()
    }
    /// Events acknowledged after a successful delivery.
    pub fn acked(&self) -> u64 {
        self.0.acked.load(AtomicOrdering::Relaxed)
    }
    /// Retries scheduled.
    pub fn retried(&self) -> u64 {
        self.0.retried.load(AtomicOrdering::Relaxed)
    }
    /// Events given up on (dead-lettered or discarded).
    pub fn dead_lettered(&self) -> u64 {
        self.0.dead_lettered.load(AtomicOrdering::Relaxed)
    }
    /// Calls made to the target.
    pub fn calls(&self) -> u64 {
        self.0.calls.load(AtomicOrdering::Relaxed)
    }
}

/// A running bridge: one task per route.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use shardline_jetstream::{Bridge, BridgeConfig};
/// let config = BridgeConfig::from_toml(&std::fs::read_to_string("bridge.toml")?, |k| std::env::var(k).ok())?;
/// let client = async_nats::connect(&config.nats_url).await?;
/// let shutdown = tokio_util::sync::CancellationToken::new();
/// let bridge = Bridge::start(&config, client, shutdown.clone()).await?;
/// println!("{} routes", bridge.routes().len());
/// bridge.wait().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Bridge {
    routes: Vec<RouteStatus>,
    tasks: JoinSet<()>,
}

impl Bridge {
    /// Ensures the streams and the routes' consumers, builds the targets,
    /// logs one line per route and starts delivering.
    pub async fn start(
        config: &BridgeConfig,
        client: async_nats::Client,
        shutdown: CancellationToken,
    ) -> Result<Self, BridgeError> {
        let mut routes = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            let target =
                target_from_config(&route.target)
                    .await
                    .map_err(|source| BridgeError::Target {
                        route: route.name.clone(),
                        source,
                    })?;
            routes.push((route.clone(), target));
        }
        let names = Names::new(&config.prefix, &config.app)?;
        let js = jetstream::new(client);
        Self::start_routes(
            js,
            names,
            &config.dlq_stream,
            routes,
            config.shutdown_grace,
            shutdown,
        )
        .await
    }

    /// Starts routes with targets built by the caller (a replay tool, a test
    /// with its own [`Target`]).
    pub async fn start_routes(
        js: jetstream::Context,
        names: Names,
        dlq_settings: &StreamSettings,
        routes: Vec<(RouteConfig, Arc<dyn Target>)>,
        grace: Duration,
        shutdown: CancellationToken,
    ) -> Result<Self, BridgeError> {
        if js.get_stream(names.dispatch_stream()).await.is_err() {
            crate::ensure_dispatch_stream(&js, &names, &StreamSettings::default()).await?;
        }
        crate::ensure_dlq_stream(&js, &names, dlq_settings).await?;
        let mut statuses = Vec::new();
        let mut tasks = JoinSet::new();
        for (config, target) in routes {
            let filter = config.filter().map_err(|source| BridgeError::Filter {
                route: config.name.clone(),
                source,
            })?;
            let consumer = crate::ensure_route_consumer(&js, &names, &config, &filter).await?;
            let aimd = aimd::Aimd::new(config.concurrency.min, config.concurrency.max);
            let shared = Arc::new(route::Shared::new(
                config.name.clone(),
                target.describe(),
                aimd,
            ));
            // Fresh: the create/update call just returned it.
            let consumer_state = consumer.cached_info().clone();
            tracing::info!(
                route = %config.name,
                events = %filter,
                filter_subjects = ?filter.subjects(&names),
                target = %target.describe(),
                ordering = ?config.ordering,
                batch_max_records = config.batch.max_records,
                batch_max_wait = ?config.batch.max_wait,
                concurrency_max = config.concurrency.max,
                max_attempts = config.retry.max_attempts,
                dead_letter = ?config.dead_letter,
                consumer = %config.consumer_name(),
                pending = consumer_state.num_pending,
                ack_pending = consumer_state.num_ack_pending,
                redelivered = consumer_state.num_redelivered,
                delivered_stream_seq = consumer_state.delivered.stream_sequence,
                "route started"
            );
            let delivery = Arc::new(route::Delivery {
                config,
                names: names.clone(),
                js: js.clone(),
                target,
                shared: shared.clone(),
                disabled: CancellationToken::new(),
            });
            tasks.spawn(route::run_route(
                delivery,
                consumer,
                shutdown.clone(),
                grace,
            ));
            statuses.push(RouteStatus(shared));
        }
        Ok(Self {
            routes: statuses,
            tasks,
        })
    }

    /// The routes' live figures.
    pub fn routes(&self) -> &[RouteStatus] {
        &self.routes
    }

    /// One route's live figures.
    pub fn route(&self, name: &str) -> Option<&RouteStatus> {
        self.routes.iter().find(|r| r.name() == name)
    }

    /// Waits until every route stopped (after shutdown, or when all targets
    /// are gone).
    pub async fn wait(mut self) {
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(e) = joined {
                tracing::error!(error = %e, "route task failed");
            }
        }
    }
}

/// Runs the bridge until `shutdown`, then finishes or releases in-flight work.
pub async fn run(
    config: &BridgeConfig,
    client: async_nats::Client,
    shutdown: CancellationToken,
) -> Result<(), BridgeError> {
    let bridge = Bridge::start(config, client, shutdown).await?;
    bridge.wait().await;
    Ok(())
}
