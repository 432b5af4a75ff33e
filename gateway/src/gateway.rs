//! N shards in one process: configuration (TOML + environment), start-up
//! (NATS, the dispatch stream, `/gateway/bot`, the identify queue) and
//! graceful shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use shardline_jetstream::StreamSettings;
use shardline_wire::Names;
use tokio_util::sync::CancellationToken;

use crate::compression::Compression;
use crate::config::{EventFilter, ShardConfig, Token};
use crate::shard::{Shard, ShardDeps, ShardExit, ShardHandle};

/// Why the configuration is unusable. The message names the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown fields.
    #[error("parsing the configuration: {0}")]
    Parse(String),
    /// A field has an invalid value.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// The field (or environment variable).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Which shards this process runs: `start..end` (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRange {
    /// The first shard.
    pub start: u32,
    /// One past the last shard.
    pub end: u32,
}

impl std::str::FromStr for ShardRange {
    type Err = String;

    /// `"0..16"` (end exclusive), `"0-15"` (end inclusive) or `"7"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let number = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("{t:?} is not a shard id (write 0..16, 0-15 or 7)"))
        };
        let (start, end) = if let Some((a, b)) = s.split_once("..") {
            (number(a)?, number(b)?)
        } else if let Some((a, b)) = s.split_once('-') {
            (number(a)?, number(b)?.saturating_add(1))
        } else {
            let one = number(s)?;
            (one, one.saturating_add(1))
        };
        if start >= end {
            return Err(format!("{s:?} is an empty range"));
        }
        Ok(Self { start, end })
    }
}

impl<'de> Deserialize<'de> for ShardRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// NATS connection settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    /// Server URL(s), comma-separated. Default `nats://127.0.0.1:4222`.
    pub url: String,
    /// A `.creds` file (JWT + NKey), if the server needs one.
    pub credentials: Option<PathBuf>,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            credentials: None,
        }
    }
}

/// Which events are published (both empty = all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// Only these event names (empty = every event).
    pub allow: Vec<String>,
    /// Never these.
    pub deny: Vec<String>,
}

/// The configuration of `shardline gateway`.
///
/// Read from TOML, then overridden by environment variables:
/// `SHARDLINE_TOKEN` (or `DISCORD_TOKEN`), `SHARDLINE_INTENTS`,
/// `SHARDLINE_SHARD_COUNT`, `SHARDLINE_SHARDS`, `SHARDLINE_COMPRESSION`,
/// `SHARDLINE_NATS_URL`, `SHARDLINE_NATS_CREDENTIALS`, `SHARDLINE_PREFIX`,
/// `SHARDLINE_APP`, `SHARDLINE_REST_URL`, `SHARDLINE_GATEWAY_URL`,
/// `SHARDLINE_MAX_ACKS_IN_FLIGHT`, `SHARDLINE_IDENTIFY_WINDOW`,
/// `SHARDLINE_SESSION_SAVE_INTERVAL`, `SHARDLINE_EVENTS_ALLOW` and
/// `SHARDLINE_EVENTS_DENY` (comma-separated).
///
/// ```
/// use shardline_gateway::GatewayConfig;
/// let config = GatewayConfig::from_sources(
///     r#"
///     token = "from-file"
///     intents = 513
///     shards = "0..4"
///     shard_count = 8
///     compression = "zstd-stream"
///     [events]
///     deny = ["TYPING_START"]
///     "#,
///     |name| (name == "SHARDLINE_APP").then(|| "mybot".to_owned()),
/// ).unwrap();
/// assert_eq!(config.app, "mybot");
/// assert_eq!(config.shard_count, Some(8));
/// assert!(!format!("{config:?}").contains("from-file"));
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// The bot token (required; prefer `SHARDLINE_TOKEN` over the file).
    pub token: Option<Token>,
    /// Gateway intents (default 513: GUILDS | GUILD_MESSAGES).
    pub intents: u64,
    /// Total shard count (default: Discord's recommendation from `/gateway/bot`).
    pub shard_count: Option<u32>,
    /// The shards this process runs (default: all).
    pub shards: Option<ShardRange>,
    /// Transport compression (default `zlib-stream`).
    pub compression: Compression,
    /// NATS connection.
    pub nats: NatsSettings,
    /// Subject prefix (default `discord`).
    pub prefix: String,
    /// Application name; streams are `DISCORD_<APP>` (default `app`).
    pub app: String,
    /// Discord REST base URL (default `https://discord.com/api/v10`).
    pub rest_url: String,
    /// Overrides the gateway URL `/gateway/bot` returns.
    pub gateway_url: Option<String>,
    /// Gateway API version (default 10).
    pub api_version: u8,
    /// Event allow / deny lists.
    pub events: EventSettings,
    /// Publishes awaiting their ack, per shard (default 256).
    pub max_acks_in_flight: usize,
    /// How often sessions are stored (default `1s`).
    #[serde(deserialize_with = "duration")]
    pub session_save_interval: Duration,
    /// How long graceful shutdown may take (default `30s`).
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// `large_threshold` in IDENTIFY, 50..=250 (default 50).
    pub large_threshold: u8,
    /// Dispatch stream retention.
    pub stream: StreamSettings,
    /// Sessions bucket replicas (default 1).
    pub kv_replicas: usize,
    /// The identify window per bucket (default `5s`, Discord's; shorter only
    /// against a simulator).
    #[serde(deserialize_with = "duration")]
    pub identify_window: Duration,
    /// `[coordinator]`: session reserve, shard count rules, leases and
    /// assignment (the budget and shard count rules apply to this one-process mode too).
    pub coordinator: crate::settings::CoordinatorSettings,
    /// `[worker]`: used by `shardline worker`.
    pub worker: crate::settings::WorkerSettings,
    /// WebSocket read buffer per shard in bytes (default 4096: small idle
    /// shards; 65536 reads faster on busy shards).
    pub read_buffer_size: usize,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            token: None,
            intents: 513,
            shard_count: None,
            shards: None,
            compression: Compression::ZlibStream,
            nats: NatsSettings::default(),
            prefix: "discord".into(),
            app: "app".into(),
            rest_url: "https://discord.com/api/v10".into(),
            gateway_url: None,
            api_version: 10,
            events: EventSettings::default(),
            max_acks_in_flight: 256,
            session_save_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
            large_threshold: 50,
            stream: StreamSettings::default(),
            kv_replicas: 1,
            identify_window: Duration::from_secs(5),
            coordinator: crate::settings::CoordinatorSettings::default(),
            worker: crate::settings::WorkerSettings::default(),
            read_buffer_size: 4 * 1024,
        }
    }
}

impl GatewayConfig {
    /// Reads `path` (if any) and the process environment, then validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?,
            None => String::new(),
        };
        Self::from_sources(&text, |name| std::env::var(name).ok())
    }

    /// Parses `toml`, applies the variables `env` returns, and validates.
    pub fn from_sources(
        toml: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config: Self =
            toml::from_str(toml).map_err(|e| ConfigError::Parse(e.to_string()))?;
        if let Some(token) = env("SHARDLINE_TOKEN").or_else(|| env("DISCORD_TOKEN")) {
            config.token = Some(Token::new(token));
        }
        if let Some(v) = env("SHARDLINE_INTENTS") {
            config.intents = v
                .parse()
                .map_err(|_| invalid("SHARDLINE_INTENTS", "not a number"))?;
        }
        if let Some(v) = env("SHARDLINE_SHARD_COUNT") {
            config.shard_count = Some(
                v.parse()
                    .map_err(|_| invalid("SHARDLINE_SHARD_COUNT", "not a number"))?,
            );
        }
        if let Some(v) = env("SHARDLINE_SHARDS") {
            config.shards = Some(v.parse().map_err(|e| invalid("SHARDLINE_SHARDS", e))?);
        }
        if let Some(v) = env("SHARDLINE_COMPRESSION") {
            config.compression =
                v.parse()
                    .map_err(|e: crate::compression::UnknownCompression| {
                        invalid("SHARDLINE_COMPRESSION", e.to_string())
                    })?;
        }
        if let Some(v) = env("SHARDLINE_NATS_URL") {
            config.nats.url = v;
        }
        if let Some(v) = env("SHARDLINE_NATS_CREDENTIALS") {
            config.nats.credentials = Some(v.into());
        }
        // The name every other service reads; contents (not a path) are
        // handled when connecting.
        if let Some(v) = env("SHARDLINE_NATS_CREDS").filter(|v| !v.contains("-----BEGIN")) {
            config.nats.credentials = Some(v.into());
        }
        if let Some(v) = env("SHARDLINE_PREFIX") {
            config.prefix = v;
        }
        if let Some(v) = env("SHARDLINE_APP") {
            config.app = v;
        }
        if let Some(v) = env("SHARDLINE_REST_URL") {
            config.rest_url = v;
        }
        if let Some(v) = env("SHARDLINE_GATEWAY_URL") {
            config.gateway_url = Some(v);
        }
        if let Some(v) = env("SHARDLINE_IDENTIFY_WINDOW") {
            config.identify_window = humantime::parse_duration(&v)
                .map_err(|e| invalid("SHARDLINE_IDENTIFY_WINDOW", e.to_string()))?;
        }
        if let Some(v) = env("SHARDLINE_SESSION_SAVE_INTERVAL") {
            config.session_save_interval = humantime::parse_duration(&v)
                .map_err(|e| invalid("SHARDLINE_SESSION_SAVE_INTERVAL", e.to_string()))?;
        }
        if let Some(v) = env("SHARDLINE_EVENTS_DENY") {
            config.events.deny = v
                .split(',')
                .map(|e| e.trim().to_owned())
                .filter(|e| !e.is_empty())
                .collect();
        }
        if let Some(v) = env("SHARDLINE_EVENTS_ALLOW") {
            config.events.allow = v
                .split(',')
                .map(|e| e.trim().to_owned())
                .filter(|e| !e.is_empty())
                .collect();
        }
        if let Some(v) = env("SHARDLINE_MAX_ACKS_IN_FLIGHT") {
            config.max_acks_in_flight = v
                .parse()
                .map_err(|_| invalid("SHARDLINE_MAX_ACKS_IN_FLIGHT", "not a number"))?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.token {
            Some(token) if !token.is_empty() => {}
            _ => {
                return Err(invalid(
                    "token",
                    "missing: set SHARDLINE_TOKEN (or `token` in the file)",
                ));
            }
        }
        Names::new(&self.prefix, &self.app).map_err(|e| invalid("prefix/app", e.to_string()))?;
        if !(50..=250).contains(&self.large_threshold) {
            return Err(invalid("large_threshold", "must be within 50..=250"));
        }
        if self.max_acks_in_flight == 0 {
            return Err(invalid("max_acks_in_flight", "must be at least 1"));
        }
        if self.shard_count == Some(0) {
            return Err(invalid("shard_count", "must be at least 1"));
        }
        if let (Some(range), Some(count)) = (self.shards, self.shard_count)
            && range.end > count
        {
            return Err(invalid(
                "shards",
                format!("{}..{} exceeds shard_count {count}", range.start, range.end),
            ));
        }
        if self.nats.url.trim().is_empty() {
            return Err(invalid("nats.url", "is empty"));
        }
        if self.session_save_interval.is_zero() {
            return Err(invalid("session_save_interval", "must be above zero"));
        }
        self.coordinator
            .validate()
            .and_then(|()| self.worker.validate())
            .map_err(|e| invalid(e.field, e.reason))?;
        Ok(())
    }

    /// The shard count setting: `shard_count` (or `SHARDLINE_SHARD_COUNT`)
    /// when set, else `[coordinator] shard_count`.
    pub fn coordinator_shard_count(&self) -> crate::shard_count::ShardCountSetting {
        match self.shard_count {
            Some(count) => crate::shard_count::ShardCountSetting::Fixed(count),
            None => self.coordinator.shard_count,
        }
    }

    /// The subject / stream names.
    pub fn names(&self) -> Result<Names, ConfigError> {
        Names::new(&self.prefix, &self.app).map_err(|e| invalid("prefix/app", e.to_string()))
    }
}

/// Why the gateway could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// NATS could not be reached.
    #[error("connecting to NATS at {url}")]
    Nats {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The dispatch stream or sessions bucket could not be created.
    #[error("setting up JetStream")]
    JetStream(#[from] shardline_jetstream::DefinitionError),
    /// `GET /gateway/bot` failed.
    #[error("asking Discord for /gateway/bot: {0}")]
    GatewayBot(String),
    /// Every shard stopped on a fatal close code.
    #[error("every shard stopped: {0}")]
    AllShardsStopped(String),
}

/// What `GET /gateway/bot` answers (the parts the gateway uses).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GatewayBot {
    /// The gateway URL.
    pub url: String,
    /// Recommended shard count.
    pub shards: u32,
    /// Identify budget.
    pub session_start_limit: SessionStartLimit,
}

/// The identify budget from `/gateway/bot`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SessionStartLimit {
    /// Identifies per 24 h.
    pub total: u32,
    /// Identifies left.
    pub remaining: u32,
    /// Milliseconds until the budget resets.
    pub reset_after: u64,
    /// Identify buckets.
    pub max_concurrency: u32,
}

/// Fetches `/gateway/bot` from `rest_url`.
pub async fn fetch_gateway_bot(rest_url: &str, token: &Token) -> Result<GatewayBot, GatewayError> {
    let url = format!("{}/gateway/bot", rest_url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .user_agent("DiscordBot (shardline, 0.1)")
        .build()
        .map_err(|e| GatewayError::GatewayBot(e.without_url().to_string()))?;
    let response = client
        .get(&url)
        .header("Authorization", format!("Bot {}", token.expose()))
        .send()
        .await
        .map_err(|e| GatewayError::GatewayBot(format!("{url}: {}", e.without_url())))?;
    let status = response.status();
    if !status.is_success() {
        return Err(GatewayError::GatewayBot(format!("{url} answered {status}")));
    }
    response
        .json()
        .await
        .map_err(|e| GatewayError::GatewayBot(format!("{url}: {}", e.without_url())))
}

/// Runs shards in this process until `shutdown` fires.
#[derive(Debug)]
pub struct Gateway;

impl Gateway {
    /// Connects to NATS, ensures the dispatch stream, asks Discord for the
    /// gateway URL and identify buckets, starts the configured shards and
    /// runs until `shutdown`; then stops every shard gracefully.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use shardline_gateway::{Gateway, GatewayConfig};
    /// let config = GatewayConfig::load(Some("shardline.toml".as_ref()))?;
    /// let shutdown = tokio_util::sync::CancellationToken::new();
    /// Gateway::run(config, shutdown).await?;
    /// # Ok(()) }
    /// ```
    pub async fn run(
        config: GatewayConfig,
        shutdown: CancellationToken,
    ) -> Result<(), GatewayError> {
        config.validate()?;
        let names = config.names()?;
        let token = config
            .token
            .clone()
            .ok_or_else(|| invalid("token", "missing"))?;
        let client = connect_nats(&config.nats).await?;
        let js = async_nats::jetstream::new(client.clone());
        shardline_jetstream::ensure_dispatch_stream(&js, &names, &config.stream).await?;
        let kv = shardline_jetstream::sessions_bucket(&js, &names, config.kv_replicas).await?;
        let deps = ShardDeps {
            publisher: crate::publish::DispatchPublisher::new(js, names),
            sessions: crate::session::SessionStore::new(kv),
            nats: client.clone(),
        };
        let bot = fetch_gateway_bot(&config.rest_url, &token).await?;
        let max_concurrency = config
            .coordinator
            .max_concurrency
            .unwrap_or(bot.session_start_limit.max_concurrency)
            .max(1);
        let shard_count = crate::shard_count::choose_shard_count(
            config.coordinator_shard_count(),
            bot.shards,
            max_concurrency,
            crate::shard_count::ShardCountRules {
                multiple_of: config.coordinator.shard_multiple,
                guilds: config.coordinator.guilds,
            },
        )
        .map_err(|e| invalid("shard_count", e.to_string()))?;
        let range = config.shards.unwrap_or(ShardRange {
            start: 0,
            end: shard_count,
        });
        if range.end > shard_count {
            return Err(invalid("shards", format!("exceeds the shard count {shard_count}")).into());
        }
        let gateway_url = config.gateway_url.clone().unwrap_or(bot.url);
        tracing::info!(
            shards = %format!("{}..{}", range.start, range.end),
            shard_count,
            max_concurrency,
            remaining = bot.session_start_limit.remaining,
            compression = %config.compression,
            "starting shards"
        );
        // The coordinator's scheduler in process: buckets in order, the
        // session budget and its reserve (invariant 3).
        let limit = &bot.session_start_limit;
        let snapshot = crate::budget::BudgetSnapshot {
            total: limit.total,
            remaining: limit.remaining,
            reset_after: Duration::from_millis(limit.reset_after),
        };
        let reserve = config
            .coordinator
            .session_reserve
            .unwrap_or_else(|| crate::budget::default_reserve(snapshot.total));
        let budget =
            crate::budget::SessionBudget::new(snapshot, reserve, tokio::time::Instant::now());
        let mut permits =
            crate::coordinator::PermitSettings::new(max_concurrency, config.identify_window);
        if let Some(margin) = config.coordinator.identify_margin {
            permits.margin = margin;
        }
        let scheduler = crate::coordinator::PermitScheduler::spawn(
            permits,
            Some(budget),
            None,
            shutdown.child_token(),
        );
        let queue: Arc<dyn crate::queue::IdentifyQueue> = Arc::new(scheduler);
        let mut handles: Vec<ShardHandle> = Vec::new();
        for shard_id in range.start..range.end {
            let mut shard = ShardConfig::new(
                shard_id,
                shard_count,
                token.clone(),
                config.intents,
                gateway_url.clone(),
            );
            shard.api_version = config.api_version;
            shard.compression = config.compression;
            shard.events =
                EventFilter::new(config.events.allow.clone(), config.events.deny.clone());
            shard.max_acks_in_flight = config.max_acks_in_flight;
            shard.session_save_interval = config.session_save_interval;
            shard.large_threshold = config.large_threshold;
            shard.read_buffer_size = config.read_buffer_size;
            handles.push(Shard::spawn(shard, queue.clone(), deps.clone()));
        }
        let result = supervise(&handles, &shutdown).await;
        tracing::info!("stopping shards");
        let stopping = futures::future::join_all(handles.into_iter().map(ShardHandle::shutdown));
        match tokio::time::timeout(config.shutdown_timeout, stopping).await {
            Ok(exits) => {
                let clean = exits.iter().filter(|e| **e == ShardExit::Shutdown).count();
                tracing::info!(clean, total = exits.len(), "shards stopped");
            }
            Err(_) => {
                tracing::warn!(timeout = ?config.shutdown_timeout, "shards did not stop in time")
            }
        }
        if let Err(error) = client.flush().await {
            tracing::warn!(%error, "flushing NATS");
        }
        result
    }
}

pub(crate) async fn connect_nats(
    settings: &NatsSettings,
) -> Result<async_nats::Client, GatewayError> {
    let wrap = |source: Box<dyn std::error::Error + Send + Sync>| GatewayError::Nats {
        url: settings.url.clone(),
        source,
    };
    // User, password, CA and credentials contents come from the environment
    // (`SHARDLINE_NATS_USER`, `…_PASSWORD`, `…_CA_PEM`, `…_CREDS`), as the
    // deployed stack injects them from its secrets.
    let mut shared = shardline_jetstream::NatsSettings::from_env(|name| std::env::var(name).ok());
    shared.url = Some(settings.url.clone());
    if let Some(path) = &settings.credentials {
        shared.creds_file = Some(path.clone());
    }
    let options = shared
        .options("shardline-gateway")
        .await
        .map_err(|e| wrap(Box::new(e)))?
        .retry_on_initial_connect()
        .max_reconnects(None);
    let connect = options.connect(shared.urls());
    match tokio::time::timeout(Duration::from_secs(60), connect).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(wrap(Box::new(e))),
        Err(_) => Err(wrap("no answer within 60 s".into())),
    }
}

/// Waits for `shutdown`, or for every shard to stop by itself.
async fn supervise(
    handles: &[ShardHandle],
    shutdown: &CancellationToken,
) -> Result<(), GatewayError> {
    let mut statuses: Vec<_> = handles.iter().map(ShardHandle::status).collect();
    loop {
        let stopped: Vec<String> = statuses
            .iter()
            .filter_map(|rx| {
                let status = rx.borrow();
                match &status.state {
                    crate::shard::ShardState::Stopped(exit) => {
                        Some(format!("shard {}: {exit:?}", status.shard_id))
                    }
                    _ => None,
                }
            })
            .collect();
        if !statuses.is_empty() && stopped.len() == statuses.len() {
            return Err(GatewayError::AllShardsStopped(stopped.join("; ")));
        }
        let changed =
            futures::future::select_all(statuses.iter_mut().map(|rx| Box::pin(rx.changed())));
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = changed => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn token_is_required_and_redacted() {
        let err = GatewayConfig::from_sources("", no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("token"), "{err}");
        let config = GatewayConfig::from_sources("", |n| {
            (n == "SHARDLINE_TOKEN").then(|| "secret-value".to_owned())
        })
        .unwrap();
        assert!(!format!("{config:?}").contains("secret-value"));
    }

    #[test]
    fn errors_name_the_field() {
        let with_token = "token = \"t\"\n";
        let err = GatewayConfig::from_sources(&format!("{with_token}large_threshold = 10"), no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("large_threshold"), "{err}");
        let err = GatewayConfig::from_sources(
            &format!("{with_token}shards = \"0..9\"\nshard_count = 4"),
            no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("shards"), "{err}");
        let err =
            GatewayConfig::from_sources(&format!("{with_token}compression = \"gzip\""), no_env)
                .unwrap_err()
                .to_string();
        assert!(err.contains("compression") || err.contains("gzip"), "{err}");
        let err = GatewayConfig::from_sources(with_token, |n| {
            (n == "SHARDLINE_INTENTS").then(|| "lots".to_owned())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("SHARDLINE_INTENTS"), "{err}");
        let err = GatewayConfig::from_sources(&format!("{with_token}bogus = 1"), no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn shard_ranges() {
        assert_eq!(
            "0..16".parse::<ShardRange>().unwrap(),
            ShardRange { start: 0, end: 16 }
        );
        assert_eq!(
            "3-7".parse::<ShardRange>().unwrap(),
            ShardRange { start: 3, end: 8 }
        );
        assert_eq!(
            "5".parse::<ShardRange>().unwrap(),
            ShardRange { start: 5, end: 6 }
        );
        assert!("4..4".parse::<ShardRange>().is_err());
        assert!("x".parse::<ShardRange>().is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let config = GatewayConfig::from_sources(
            "token = \"a\"\nprefix = \"file\"\n[nats]\nurl = \"nats://file:4222\"",
            |n| match n {
                "SHARDLINE_PREFIX" => Some("env".into()),
                "SHARDLINE_NATS_URL" => Some("nats://env:4222".into()),
                "SHARDLINE_SHARDS" => Some("2..4".into()),
                _ => None,
            },
        )
        .unwrap();
        assert_eq!(config.prefix, "env");
        assert_eq!(config.nats.url, "nats://env:4222");
        assert_eq!(config.shards, Some(ShardRange { start: 2, end: 4 }));
    }
}
