//! The function's configuration, read from its environment once per cold start.

use std::fmt;
use std::time::Duration;

use shardline_wire::Names;
use shardline_wire::webhook::SigningKey;

/// A Discord bot token. `Debug` and `Display` never show it.
///
/// ```
/// let token = shardline_lambda_bot::Token::new("Bot abc.def");
/// assert_eq!(format!("{token:?} {token}"), "Token(<redacted>) <redacted>");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token. A bare token gets the `Bot ` prefix Discord expects.
    pub fn new(token: impl Into<String>) -> Self {
        let token = token.into();
        let token = token.trim();
        if token.starts_with("Bot ") || token.starts_with("Bearer ") {
            Self(token.to_owned())
        } else {
            Self(format!("Bot {token}"))
        }
    }

    /// The token, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where Discord REST requests go: `https://discord.com` by default, or a REST
/// proxy or the simulator (`http://127.0.0.1:8080`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiBase {
    /// Host, port and optional path prefix, without the scheme.
    pub host: String,
    /// `true` for `http://`, `false` for `https://`.
    pub use_http: bool,
}

impl ApiBase {
    /// Parses `http://host:port[/path]` or `https://host[/path]`.
    ///
    /// ```
    /// let base = shardline_lambda_bot::ApiBase::parse("http://127.0.0.1:8080/").unwrap();
    /// assert_eq!((base.host.as_str(), base.use_http), ("127.0.0.1:8080", true));
    /// ```
    pub fn parse(url: &str) -> Result<Self, &'static str> {
        let url = url.trim();
        let (use_http, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (false, rest)
        } else {
            return Err("it must start with http:// or https://");
        };
        let host = rest.trim_end_matches('/');
        let host = host.strip_suffix("/api/v10").unwrap_or(host);
        if host.is_empty() {
            return Err("it has no host");
        }
        Ok(Self {
            host: host.to_owned(),
            use_http,
        })
    }
}

/// A configuration value that is missing or invalid, named by its variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Environment variables the SDK reads.
pub mod env {
    /// The bot token (required).
    pub const DISCORD_TOKEN: &str = "DISCORD_TOKEN";
    /// Base URL of the Discord REST API (default `https://discord.com`).
    pub const DISCORD_API_URL: &str = "SHARDLINE_DISCORD_API_URL";
    /// NATS server URL(s), comma-separated, for gateway commands (optional).
    pub const NATS_URL: &str = "SHARDLINE_NATS_URL";
    /// Path of a NATS `.creds` file (optional).
    pub const NATS_CREDS: &str = "SHARDLINE_NATS_CREDS";
    /// Subject prefix (default `discord`).
    pub const PREFIX: &str = "SHARDLINE_PREFIX";
    /// The gateway's shard count, for commands to guilds other than the record's (optional).
    pub const SHARD_COUNT: &str = "SHARDLINE_SHARD_COUNT";
    /// Standard Webhooks secrets (`whsec_…`), comma-separated, newest first.
    pub const WEBHOOK_SECRETS: &str = "SHARDLINE_WEBHOOK_SECRETS";
    /// Accepted clock skew of `webhook-timestamp`, in seconds (default 300).
    pub const WEBHOOK_TOLERANCE_SECS: &str = "SHARDLINE_WEBHOOK_TOLERANCE_SECS";
    /// How long a gateway command waits for the shard's answer, in ms (default 5000).
    pub const COMMAND_TIMEOUT_MS: &str = "SHARDLINE_COMMAND_TIMEOUT_MS";
}

/// The function's configuration.
///
/// Read from the environment with [`Config::from_env`]; build it by hand in tests.
///
/// ```
/// let config = shardline_lambda_bot::Config::from_lookup(|name| match name {
///     "DISCORD_TOKEN" => Some("abc".into()),
///     "SHARDLINE_DISCORD_API_URL" => Some("http://127.0.0.1:8080".into()),
///     _ => None,
/// })
/// .unwrap();
/// assert_eq!(config.names.command_subject(3), "discord.command.3");
/// assert!(config.nats_url.is_none());
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// `DISCORD_TOKEN`: the bot token.
    pub token: Token,
    /// `SHARDLINE_DISCORD_API_URL`: where REST calls go; `None` is discord.com.
    pub api_base: Option<ApiBase>,
    /// `SHARDLINE_NATS_URL`: NATS for gateway commands; `None` disables them.
    pub nats_url: Option<String>,
    /// `SHARDLINE_NATS_CREDS`: a NATS credentials file.
    pub nats_creds: Option<std::path::PathBuf>,
    /// `SHARDLINE_PREFIX`: subject names (default prefix `discord`).
    pub names: Names,
    /// `SHARDLINE_SHARD_COUNT`: the gateway's shard count, when known.
    pub shard_count: Option<u32>,
    /// `SHARDLINE_WEBHOOK_SECRETS`: keys that sign HTTP deliveries.
    pub webhook_keys: Vec<SigningKey>,
    /// `SHARDLINE_WEBHOOK_TOLERANCE_SECS`: accepted timestamp skew (default 300 s).
    pub webhook_tolerance: Duration,
    /// `SHARDLINE_COMMAND_TIMEOUT_MS`: gateway command answer timeout (default 5 s).
    pub command_timeout: Duration,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (a variable name to its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let invalid = |variable: &'static str, reason: String| ConfigError { variable, reason };

        let token = get(env::DISCORD_TOKEN)
            .map(Token::new)
            .ok_or_else(|| invalid(env::DISCORD_TOKEN, "it is not set".into()))?;
        let api_base = get(env::DISCORD_API_URL)
            .map(|url| ApiBase::parse(&url))
            .transpose()
            .map_err(|reason| invalid(env::DISCORD_API_URL, reason.into()))?;
        let prefix = get(env::PREFIX).unwrap_or_else(|| "discord".to_owned());
        // The application name only scopes stream names, which a function never uses.
        let names =
            Names::new(&prefix, "bot").map_err(|error| invalid(env::PREFIX, error.to_string()))?;
        let shard_count = get(env::SHARD_COUNT)
            .map(|value| match value.trim().parse::<u32>() {
                Ok(0) | Err(_) => Err(invalid(
                    env::SHARD_COUNT,
                    format!("{value:?} is not a positive integer"),
                )),
                Ok(count) => Ok(count),
            })
            .transpose()?;
        let webhook_keys = get(env::WEBHOOK_SECRETS)
            .map(|secrets| SigningKey::parse_list(&secrets))
            .transpose()
            .map_err(|error| invalid(env::WEBHOOK_SECRETS, error.to_string()))?
            .unwrap_or_default();
        let seconds = |variable: &'static str, default: u64| {
            get(variable)
                .map(|value| {
                    value
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| invalid(variable, format!("{value:?} is not a whole number")))
                })
                .transpose()
                .map(|value| value.unwrap_or(default))
        };
        let webhook_tolerance = Duration::from_secs(seconds(env::WEBHOOK_TOLERANCE_SECS, 300)?);
        let command_timeout = Duration::from_millis(seconds(env::COMMAND_TIMEOUT_MS, 5000)?);

        Ok(Self {
            token,
            api_base,
            nats_url: get(env::NATS_URL),
            nats_creds: get(env::NATS_CREDS).map(Into::into),
            names,
            shard_count,
            webhook_keys,
            webhook_tolerance,
            command_timeout,
        })
    }

    /// A configuration for tests: the given token, everything else default.
    pub fn with_token(token: impl Into<String>) -> Self {
        Self {
            token: Token::new(token),
            api_base: None,
            nats_url: None,
            nats_creds: None,
            names: Names::new("discord", "bot").expect("the default prefix is valid"),
            shard_count: None,
            webhook_keys: Vec::new(),
            webhook_tolerance: Duration::from_secs(300),
            command_timeout: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn errors_name_the_variable() {
        let err = Config::from_lookup(lookup(&[])).unwrap_err();
        assert_eq!(err.variable, "DISCORD_TOKEN");
        let err = Config::from_lookup(lookup(&[
            ("DISCORD_TOKEN", "t"),
            ("SHARDLINE_SHARD_COUNT", "0"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().starts_with("SHARDLINE_SHARD_COUNT:"),
            "{err}"
        );
        let err = Config::from_lookup(lookup(&[
            ("DISCORD_TOKEN", "t"),
            ("SHARDLINE_WEBHOOK_SECRETS", "whsec_!!"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "SHARDLINE_WEBHOOK_SECRETS");
        let err = Config::from_lookup(lookup(&[
            ("DISCORD_TOKEN", "t"),
            ("SHARDLINE_DISCORD_API_URL", "discord.com"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "SHARDLINE_DISCORD_API_URL");
    }

    #[test]
    fn reads_everything() {
        let config = Config::from_lookup(lookup(&[
            ("DISCORD_TOKEN", "secret-token"),
            ("SHARDLINE_PREFIX", "prod.discord"),
            ("SHARDLINE_SHARD_COUNT", "16"),
            ("SHARDLINE_NATS_URL", "nats://127.0.0.1:4222"),
            (
                "SHARDLINE_WEBHOOK_SECRETS",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            ("SHARDLINE_COMMAND_TIMEOUT_MS", "250"),
        ]))
        .unwrap();
        assert_eq!(config.names.command_subject(2), "prod.discord.command.2");
        assert_eq!(config.shard_count, Some(16));
        assert_eq!(config.webhook_keys.len(), 1);
        assert_eq!(config.command_timeout, Duration::from_millis(250));
        assert_eq!(config.token.expose(), "Bot secret-token");
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret-token"), "{debug}");
        assert!(!debug.contains("MfKQ9r8"), "{debug}");
    }

    #[test]
    fn api_base_forms() {
        assert_eq!(
            ApiBase::parse("https://discord.com/api/v10").unwrap(),
            ApiBase {
                host: "discord.com".into(),
                use_http: false
            }
        );
        assert!(ApiBase::parse("ftp://x").is_err());
        assert!(ApiBase::parse("http://").is_err());
    }
}
