//! Bridge configuration: one TOML file plus environment variables.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use shardline_wire::webhook::SigningKey;

use super::filter::{EventFilter, FilterError};
use crate::streams::{StreamSettings, duration_serde};

/// Lambda's synchronous payload limit (6 MB); a batch body never exceeds it.
pub const LAMBDA_MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// A configuration that failed validation. The message names the field.
///
/// ```
/// let text = r#"
/// [[route]]
/// name = "a b"
/// events = ["MESSAGE_CREATE"]
/// target = { kind = "http", url = "http://127.0.0.1:8080/" }
/// "#;
/// let err = shardline_jetstream::BridgeConfig::from_toml(text, |_| None).unwrap_err();
/// assert!(err.to_string().contains("route[0].name"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// The field, as a path (`route[0].batch.max_bytes`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A secret string (signing secrets). `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Configuration of `shardline bridge`.
///
/// ```toml
/// nats_url = "nats://127.0.0.1:4222"
/// prefix = "discord"
/// app = "mybot"
///
/// [[route]]
/// name = "bot"
/// events = ["MESSAGE_CREATE", "GUILD_*", "INTERACTION_CREATE"]
/// ordering = "per_guild"
/// target = { kind = "lambda", function = "bot", endpoint = "http://127.0.0.1:9000" }
/// batch = { max_records = 10, max_wait = "20ms" }
/// retry = { max_attempts = 8, max_event_age = "1h" }
/// ```
///
/// Environment variables override the top-level fields: `SHARDLINE_NATS_URL`,
/// `SHARDLINE_PREFIX`, `SHARDLINE_APP`. Signing secrets are best given through
/// the environment variable a route names in `target.signing_secrets_env`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// NATS server URL(s), comma-separated. Default `nats://127.0.0.1:4222`.
    #[serde(default = "default_nats_url")]
    pub nats_url: String,
    /// Subject prefix. Default `discord`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Application name (streams are `DISCORD_<APP>`). Default `dev`.
    #[serde(default = "default_app")]
    pub app: String,
    /// Settings of the dead-letter stream the bridge creates when absent.
    #[serde(default)]
    pub dlq_stream: StreamSettings,
    /// How long a stopping bridge waits for in-flight calls before it
    /// releases what is left. Default 10 s.
    #[serde(default = "default_shutdown_grace", with = "duration_serde")]
    pub shutdown_grace: Duration,
    /// The routes, as `[[route]]` tables.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
}

fn default_nats_url() -> String {
    "nats://127.0.0.1:4222".into()
}
fn default_prefix() -> String {
    "discord".into()
}
fn default_app() -> String {
    "dev".into()
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(10)
}

/// One route: which events, to which target, how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Route name: letters, digits, `_` and `-`. The durable consumer is
    /// `bridge_<name>` and dead letters go to `<prefix>.dlq.<name>`.
    pub name: String,
    /// Event names (`MESSAGE_CREATE`), prefixes ending in `*` (`GUILD_*`,
    /// expanded against the known Discord dispatch names), or `*` for all.
    pub events: Vec<String>,
    /// Where the batches go.
    pub target: TargetConfig,
    /// Batching. Defaults: 10 records, 6 MB, 20 ms.
    #[serde(default)]
    pub batch: BatchConfig,
    /// `none` (default) or `per_guild`.
    #[serde(default)]
    pub ordering: Ordering,
    /// Concurrent calls.
    #[serde(default)]
    pub concurrency: ConcurrencyConfig,
    /// Retries and their limits.
    #[serde(default)]
    pub retry: RetryConfig,
    /// What happens to an event the route gives up on. Default `stream`.
    #[serde(default)]
    pub dead_letter: DeadLetterPolicy,
    /// Where a new consumer starts: `all` (default) or `new`.
    #[serde(default)]
    pub start: StartPolicy,
    /// JetStream ack wait: an event not acknowledged (nor marked in
    /// progress) within it is redelivered. Default 30 s.
    #[serde(default = "default_ack_wait", with = "duration_serde")]
    pub ack_wait: Duration,
    /// The most events of this route held unacknowledged at once, across
    /// all bridge processes. Default 1000.
    #[serde(default = "default_max_ack_pending")]
    pub max_ack_pending: i64,
}

fn default_ack_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_max_ack_pending() -> i64 {
    1000
}

/// Where a route's batches go.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetConfig {
    /// An AWS Lambda function through the Invoke API.
    Lambda(LambdaTargetConfig),
    /// An HTTP(S) endpoint with Standard Webhooks signatures.
    Http(HttpTargetConfig),
}

/// The Lambda Invoke API target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaTargetConfig {
    /// Function name or ARN.
    pub function: String,
    /// Version or alias.
    #[serde(default)]
    pub qualifier: Option<String>,
    /// Endpoint override (e.g. `http://127.0.0.1:9000` for `cargo lambda watch`).
    /// With an override and no AWS credentials in the environment, fixed
    /// local credentials are used.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// AWS region; default from the environment, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Time limit of one invocation. Default 60 s.
    #[serde(default = "default_lambda_timeout", with = "duration_serde")]
    pub timeout: Duration,
}

fn default_lambda_timeout() -> Duration {
    Duration::from_secs(60)
}

/// The HTTP(S) target.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTargetConfig {
    /// The URL batches are POSTed to.
    pub url: String,
    /// Time limit of one request. Default 10 s.
    #[serde(default = "default_http_timeout", with = "duration_serde")]
    pub timeout: Duration,
    /// Signing secrets (`whsec_…`), newest first. Prefer `signing_secrets_env`.
    #[serde(default)]
    pub signing_secrets: Vec<Secret>,
    /// An environment variable holding comma-separated signing secrets.
    #[serde(default)]
    pub signing_secrets_env: Option<String>,
    /// Parsed keys (filled in by validation).
    #[serde(skip)]
    pub(crate) keys: Vec<SigningKey>,
}

impl fmt::Debug for HttpTargetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTargetConfig")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("signing_secrets", &self.signing_secrets)
            .field("signing_secrets_env", &self.signing_secrets_env)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl HttpTargetConfig {
    /// A config for `url` that signs with `keys`.
    pub fn new(url: impl Into<String>, keys: Vec<SigningKey>) -> Self {
        Self {
            url: url.into(),
            timeout: default_http_timeout(),
            signing_secrets: Vec::new(),
            signing_secrets_env: None,
            keys,
        }
    }

    /// The signing keys, newest first.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }
}

fn default_http_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Batching limits; a batch is sent when any is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Records per invocation (1 = no batching). Default 10.
    pub max_records: usize,
    /// Body bytes per invocation, at most 6 MB (Lambda's limit). Default 6 MB.
    pub max_bytes: usize,
    /// How long the first record of a batch waits for more. Default 20 ms.
    #[serde(with = "duration_serde")]
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: 10,
            max_bytes: LAMBDA_MAX_PAYLOAD,
            max_wait: Duration::from_millis(20),
        }
    }
}

/// Delivery order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// No order: batches run in parallel; a failed event is retried on its own.
    #[default]
    None,
    /// In order within a guild, in parallel across guilds. A failing event
    /// holds back only its own guild's later events.
    PerGuild,
}

/// Concurrency of calls to the target, adapted by AIMD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConcurrencyConfig {
    /// The most calls in flight at once. Default 16.
    pub max: usize,
    /// The floor the limit never falls under on throttling. Default 1.
    pub min: usize,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        Self { max: 16, min: 1 }
    }
}

/// Retries: exponential backoff with jitter, within attempt and age limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per event, the first included. Default 10.
    pub max_attempts: u32,
    /// Events older than this (since stored) are not retried. Default 6 h.
    #[serde(with = "duration_serde")]
    pub max_event_age: Duration,
    /// The first retry delay; each further one doubles. Default 1 s.
    #[serde(with = "duration_serde")]
    pub initial_backoff: Duration,
    /// The longest retry delay. Default 5 min.
    #[serde(with = "duration_serde")]
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            max_event_age: Duration::from_secs(6 * 3600),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// What happens to an event whose attempts or age ran out, or that the
/// target rejected for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterPolicy {
    /// Publish it to the dead-letter stream with the reason, then terminate it.
    #[default]
    Stream,
    /// Log it and terminate it.
    Discard,
}

/// Where a newly created consumer starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPolicy {
    /// Every event still in the stream.
    #[default]
    All,
    /// Only events stored after the consumer was created.
    New,
}

impl BridgeConfig {
    /// Parses TOML, applies environment overrides (read through `env`), reads
    /// signing secrets and validates everything.
    pub fn from_toml(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text).map_err(|e| {
            let field = e
                .span()
                .map(|span| {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}")
                })
                .unwrap_or_else(|| "config".into());
            ConfigError::new(field, e.message().to_owned())
        })?;
        if let Some(url) = env("SHARDLINE_NATS_URL") {
            config.nats_url = url;
        }
        if let Some(prefix) = env("SHARDLINE_PREFIX") {
            config.prefix = prefix;
        }
        if let Some(app) = env("SHARDLINE_APP") {
            config.app = app;
        }
        config.validate(&env)?;
        Ok(config)
    }

    /// Checks every field and parses the signing secrets.
    pub fn validate(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        shardline_wire::Names::new(&self.prefix, &self.app).map_err(|e| {
            let field = if e.to_string().contains("prefix") {
                "prefix"
            } else {
                "app"
            };
            ConfigError::new(field, e.to_string())
        })?;
        if self.routes.is_empty() {
            return Err(ConfigError::new(
                "route",
                "at least one [[route]] is needed",
            ));
        }
        let mut seen = HashSet::new();
        for (index, route) in self.routes.iter_mut().enumerate() {
            let at = format!("route[{index}]");
            route.validate(&at, env)?;
            if !seen.insert(route.name.clone()) {
                return Err(ConfigError::new(
                    format!("{at}.name"),
                    format!("route name {:?} is used twice", route.name),
                ));
            }
        }
        Ok(())
    }
}

impl RouteConfig {
    /// A route with default settings.
    pub fn new(name: impl Into<String>, events: Vec<String>, target: TargetConfig) -> Self {
        Self {
            name: name.into(),
            events,
            target,
            batch: BatchConfig::default(),
            ordering: Ordering::default(),
            concurrency: ConcurrencyConfig::default(),
            retry: RetryConfig::default(),
            dead_letter: DeadLetterPolicy::default(),
            start: StartPolicy::default(),
            ack_wait: default_ack_wait(),
            max_ack_pending: default_max_ack_pending(),
        }
    }

    /// The event filter the route's `events` describe.
    pub fn filter(&self) -> Result<EventFilter, FilterError> {
        EventFilter::parse(&self.events)
    }

    /// The durable consumer name: `bridge_<route>`.
    pub fn consumer_name(&self) -> String {
        format!("bridge_{}", self.name)
    }

    /// Checks the route; `at` names it in errors (`route[0]`).
    pub fn validate(
        &mut self,
        at: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let field = |name: &str| format!("{at}.{name}");
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ConfigError::new(
                field("name"),
                format!(
                    "{:?} is not a route name (letters, digits, '_' and '-')",
                    self.name
                ),
            ));
        }
        self.filter()
            .map_err(|e| ConfigError::new(field("events"), e.to_string()))?;
        if self.batch.max_records == 0 || self.batch.max_records > 10_000 {
            return Err(ConfigError::new(
                field("batch.max_records"),
                "must be between 1 and 10000",
            ));
        }
        if self.batch.max_bytes < 1024 || self.batch.max_bytes > LAMBDA_MAX_PAYLOAD {
            return Err(ConfigError::new(
                field("batch.max_bytes"),
                format!("must be between 1024 and {LAMBDA_MAX_PAYLOAD} (Lambda's 6 MB limit)"),
            ));
        }
        if self.concurrency.max == 0 {
            return Err(ConfigError::new(
                field("concurrency.max"),
                "must be at least 1",
            ));
        }
        if self.concurrency.min == 0 || self.concurrency.min > self.concurrency.max {
            return Err(ConfigError::new(
                field("concurrency.min"),
                "must be at least 1 and at most concurrency.max",
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(ConfigError::new(
                field("retry.max_attempts"),
                "must be at least 1",
            ));
        }
        if self.retry.initial_backoff.is_zero() {
            return Err(ConfigError::new(
                field("retry.initial_backoff"),
                "must be above zero (a zero delay would be a redelivery hot loop)",
            ));
        }
        if self.retry.max_backoff < self.retry.initial_backoff {
            return Err(ConfigError::new(
                field("retry.max_backoff"),
                "must be at least retry.initial_backoff",
            ));
        }
        if self.ack_wait < Duration::from_secs(1) {
            return Err(ConfigError::new(field("ack_wait"), "must be at least 1s"));
        }
        if self.max_ack_pending < 1 {
            return Err(ConfigError::new(
                field("max_ack_pending"),
                "must be at least 1",
            ));
        }
        match &mut self.target {
            TargetConfig::Lambda(lambda) => {
                if lambda.function.trim().is_empty() {
                    return Err(ConfigError::new(
                        field("target.function"),
                        "a function name or ARN is needed",
                    ));
                }
                if let Some(endpoint) = &lambda.endpoint {
                    check_url(endpoint)
                        .map_err(|e| ConfigError::new(field("target.endpoint"), e))?;
                }
            }
            TargetConfig::Http(http) => {
                check_url(&http.url).map_err(|e| ConfigError::new(field("target.url"), e))?;
                let mut keys = Vec::new();
                for (i, secret) in http.signing_secrets.iter().enumerate() {
                    keys.push(SigningKey::parse(secret.expose()).map_err(|e| {
                        ConfigError::new(
                            field(&format!("target.signing_secrets[{i}]")),
                            e.to_string(),
                        )
                    })?);
                }
                if let Some(var) = &http.signing_secrets_env {
                    let value = env(var).ok_or_else(|| {
                        ConfigError::new(
                            field("target.signing_secrets_env"),
                            format!("environment variable {var} is not set"),
                        )
                    })?;
                    keys.extend(SigningKey::parse_list(&value).map_err(|e| {
                        ConfigError::new(field("target.signing_secrets_env"), format!("{var}: {e}"))
                    })?);
                }
                if !keys.is_empty() {
                    http.keys = keys;
                }
            }
        }
        Ok(())
    }
}

fn check_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(format!("scheme {other:?} is not http or https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn parses_a_full_route() {
        let text = r#"
            app = "bot"
            [[route]]
            name = "main"
            events = ["MESSAGE_CREATE", "GUILD_*"]
            ordering = "per_guild"
            ack_wait = "45s"
            target = { kind = "http", url = "https://example.invalid/hook", timeout = "2s", signing_secrets_env = "HOOK_SECRETS" }
            batch = { max_records = 25, max_wait = "5ms" }
            concurrency = { max = 8 }
            retry = { max_attempts = 3, initial_backoff = "100ms" }
            dead_letter = "discard"
        "#;
        let env = |name: &str| (name == "HOOK_SECRETS").then(|| format!("{SECRET},{SECRET}"));
        let config = BridgeConfig::from_toml(text, env).unwrap();
        let route = &config.routes[0];
        assert_eq!(route.ordering, Ordering::PerGuild);
        assert_eq!(route.batch.max_records, 25);
        assert_eq!(route.batch.max_bytes, LAMBDA_MAX_PAYLOAD);
        assert_eq!(route.retry.initial_backoff, Duration::from_millis(100));
        assert_eq!(route.ack_wait, Duration::from_secs(45));
        assert_eq!(route.dead_letter, DeadLetterPolicy::Discard);
        match &route.target {
            TargetConfig::Http(http) => assert_eq!(http.keys().len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(route.consumer_name(), "bridge_main");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                "[[route]]\nname=\"a\"\nevents=[\"X\"]\ntarget={kind=\"http\",url=\"ftp://x\"}",
                "route[0].target.url",
            ),
            (
                "[[route]]\nname=\"a\"\nevents=[\"NOPE_*\"]\ntarget={kind=\"http\",url=\"http://x\"}",
                "route[0].events",
            ),
            (
                "[[route]]\nname=\"a\"\nevents=[\"X\"]\ntarget={kind=\"http\",url=\"http://x\"}\nbatch={max_bytes=7000000}",
                "route[0].batch.max_bytes",
            ),
            (
                "[[route]]\nname=\"a\"\nevents=[\"X\"]\ntarget={kind=\"lambda\",function=\"\"}",
                "route[0].target.function",
            ),
            (
                "[[route]]\nname=\"a\"\nevents=[\"X\"]\ntarget={kind=\"http\",url=\"http://x\",signing_secrets=[\"nope\"]}",
                "route[0].target.signing_secrets[0]",
            ),
            (
                "[[route]]\nname=\"a\"\nevents=[\"X\"]\ntarget={kind=\"http\",url=\"http://x\",signing_secrets_env=\"MISSING\"}",
                "route[0].target.signing_secrets_env",
            ),
            (
                "[[route]]\nname=\"a\"\nevents=[\"X\"]\ntarget={kind=\"http\",url=\"http://x\"}\n[[route]]\nname=\"a\"\nevents=[\"X\"]\ntarget={kind=\"http\",url=\"http://x\"}",
                "route[1].name",
            ),
            (
                "[[route]]\nname=\"a\"\nevents=[\"X\"]\ntarget={kind=\"http\",url=\"http://x\"}\nretry={initial_backoff=\"0s\"}",
                "route[0].retry.initial_backoff",
            ),
            ("", "route"),
        ];
        for (text, field) in cases {
            let err = BridgeConfig::from_toml(text, no_env).unwrap_err();
            assert_eq!(err.field, field, "{text}: {err}");
        }
    }

    #[test]
    fn env_overrides_top_level_fields() {
        let text = "[[route]]\nname=\"a\"\nevents=[\"X\"]\ntarget={kind=\"http\",url=\"http://x\"}";
        let env = |name: &str| match name {
            "SHARDLINE_APP" => Some("other".to_owned()),
            "SHARDLINE_NATS_URL" => Some("nats://127.0.0.1:1".to_owned()),
            _ => None,
        };
        let config = BridgeConfig::from_toml(text, env).unwrap();
        assert_eq!(config.app, "other");
        assert_eq!(config.nats_url, "nats://127.0.0.1:1");
        let bad = |name: &str| (name == "SHARDLINE_APP").then(|| "a b".to_owned());
        assert_eq!(BridgeConfig::from_toml(text, bad).unwrap_err().field, "app");
    }

    #[test]
    fn secrets_are_redacted() {
        let secret = Secret::new(SECRET);
        assert_eq!(format!("{secret:?} {secret}"), "<redacted> <redacted>");
        let text = format!(
            "[[route]]\nname=\"a\"\nevents=[\"X\"]\ntarget={{kind=\"http\",url=\"http://x\",signing_secrets=[\"{SECRET}\"]}}"
        );
        let config = BridgeConfig::from_toml(&text, no_env).unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "{shown}"
        );
    }
}
