//! Simulator configuration: what Discord looks like (guilds, limits, windows)
//! and how fast it talks.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fault::ScheduledFault;

/// A bot token. `Debug` and `Display` print `<redacted>`.
///
/// ```
/// let token = shardline_sim::Token::new("secret");
/// assert_eq!(format!("{token:?}"), "<redacted>");
/// assert_eq!(token.expose(), "secret");
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token text, for comparisons and for clients that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything the simulator can be told. Plain data: build it with struct
/// update syntax over [`SimConfig::default()`].
///
/// ```
/// use std::time::Duration;
/// let config = shardline_sim::SimConfig {
///     guilds: 40,
///     shards: Some(4),
///     events_per_second: 200.0,
///     max_events_per_shard: Some(1_000),
///     identify_window: Duration::from_millis(20),
///     ..shardline_sim::SimConfig::default()
/// };
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// The only token accepted by REST and IDENTIFY. Default `sim-token`.
    pub token: Token,
    /// Guilds the bot is in, across all shards. Default 10.
    pub guilds: u64,
    /// Shard count recommended by `GET /gateway/bot`. Default: one per 1000
    /// guilds, at least 1.
    pub shards: Option<u32>,
    /// `session_start_limit.max_concurrency`: number of identify buckets. Default 1.
    pub max_concurrency: u32,
    /// How long a bucket stays closed after an IDENTIFY. Default 5 s.
    #[serde(with = "duration_text")]
    pub identify_window: Duration,
    /// `session_start_limit.total`. Default 1000.
    pub session_start_total: u32,
    /// `session_start_limit.remaining` at start. Default: `session_start_total`.
    pub session_start_remaining: Option<u32>,
    /// When `remaining` goes back to `total`, counted from start. Default 24 h.
    #[serde(with = "duration_text")]
    pub session_start_reset: Duration,
    /// The `heartbeat_interval` sent in HELLO. Default 41.25 s.
    #[serde(with = "duration_text")]
    pub heartbeat_interval: Duration,
    /// A connection that sends no heartbeat for this long is closed (code
    /// 4009) and counted. Default: 1.5 × `heartbeat_interval`.
    #[serde(with = "duration_text_opt")]
    pub heartbeat_timeout: Option<Duration>,
    /// Dispatches per second per shard after the GUILD_CREATEs. Default 10;
    /// 0 emits nothing but READY and the GUILD_CREATEs.
    pub events_per_second: f64,
    /// How often a connection wakes up to emit its share of events (the
    /// share is written as one batch). Default 50 ms.
    #[serde(with = "duration_text")]
    pub emit_tick: Duration,
    /// Stop emitting stream events on a shard after this many (per shard id,
    /// across its sessions). READY and GUILD_CREATE don't count. Default: no cap.
    pub max_events_per_shard: Option<u64>,
    /// Stop emitting stream events after this many in total. Default: no cap.
    pub max_events_total: Option<u64>,
    /// Seed of every random choice (session ids, event mix, contents). Default 1.
    pub seed: u64,
    /// Dispatches kept per session for RESUME. Default 4096.
    pub resume_buffer: usize,
    /// How long a disconnected session can be resumed. Default 180 s.
    #[serde(with = "duration_text")]
    pub session_ttl: Duration,
    /// Commands a connection may send per `command_window`. Default 120.
    pub command_limit: u32,
    /// Default 60 s.
    #[serde(with = "duration_text")]
    pub command_window: Duration,
    /// Largest payload a client may send, in bytes. Default 4096.
    pub max_payload: usize,
    /// More guilds than this on one shard closes IDENTIFY with 4011. Default 2500.
    pub max_guilds_per_shard: u64,
    /// Privileged intents (bits 1, 8, 15) the application may use; asking for
    /// another one closes with 4014. Default: all three.
    pub allowed_privileged_intents: u64,
    /// Keep each session's event names in the ledger (costs memory on long
    /// runs). Default true.
    pub record_event_names: bool,
    /// Faults to inject at given times after start (`--fault`).
    pub faults: Vec<ScheduledFault>,
}

/// The three privileged intents: GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT.
pub const PRIVILEGED_INTENTS: u64 = (1 << 1) | (1 << 8) | (1 << 15);
/// Every intent bit Discord defines: 0..=16, 20, 21, 24 and 25.
pub const KNOWN_INTENTS: u64 = 0x0331_FFFF;

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            token: Token::new("sim-token"),
            guilds: 10,
            shards: None,
            max_concurrency: 1,
            identify_window: Duration::from_secs(5),
            session_start_total: 1000,
            session_start_remaining: None,
            session_start_reset: Duration::from_secs(24 * 3600),
            heartbeat_interval: Duration::from_millis(41_250),
            heartbeat_timeout: None,
            events_per_second: 10.0,
            emit_tick: Duration::from_millis(50),
            max_events_per_shard: None,
            max_events_total: None,
            seed: 1,
            resume_buffer: 4096,
            session_ttl: Duration::from_secs(180),
            command_limit: 120,
            command_window: Duration::from_secs(60),
            max_payload: 4096,
            max_guilds_per_shard: 2500,
            allowed_privileged_intents: PRIVILEGED_INTENTS,
            record_event_names: true,
            faults: Vec::new(),
        }
    }
}

/// A configuration the simulator refuses, naming the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field has a value the simulator cannot work with.
    #[error("invalid simulator config `{field}`: {reason}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl SimConfig {
    /// Checks the values, naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason| Err(ConfigError::Invalid { field, reason });
        if self.token.expose().is_empty() {
            return bad("token", "must not be empty");
        }
        if self.max_concurrency == 0 {
            return bad("max_concurrency", "must be at least 1");
        }
        if self.shards == Some(0) {
            return bad("shards", "must be at least 1");
        }
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat_interval", "must be positive");
        }
        if !(self.events_per_second.is_finite() && self.events_per_second >= 0.0) {
            return bad("events_per_second", "must be a finite number >= 0");
        }
        if self.emit_tick.is_zero() {
            return bad("emit_tick", "must be positive");
        }
        if self.command_limit == 0 || self.command_window.is_zero() {
            return bad("command_limit", "limit and window must be positive");
        }
        if self.max_payload < 64 {
            return bad("max_payload", "must be at least 64 bytes");
        }
        if self.resume_buffer == 0 {
            return bad("resume_buffer", "must be at least 1");
        }
        Ok(())
    }

    /// The shard count `GET /gateway/bot` recommends for `guilds` guilds.
    pub fn recommended_shards(&self, guilds: u64) -> u32 {
        self.shards
            .unwrap_or_else(|| u32::try_from(guilds.div_ceil(1000).max(1)).unwrap_or(u32::MAX))
    }

    /// The heartbeat timeout in force.
    pub fn heartbeat_timeout(&self) -> Duration {
        self.heartbeat_timeout
            .unwrap_or(self.heartbeat_interval + self.heartbeat_interval / 2)
    }
}

/// Durations as human text (`5s`, `250ms`) in TOML/JSON.
pub(crate) mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

pub(crate) mod duration_text_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let config = SimConfig {
            max_concurrency: 0,
            ..SimConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("max_concurrency"), "{err}");
    }

    #[test]
    fn recommended_shards_follow_guilds() {
        let config = SimConfig::default();
        assert_eq!(config.recommended_shards(1), 1);
        assert_eq!(config.recommended_shards(2500), 3);
        let fixed = SimConfig {
            shards: Some(7),
            ..SimConfig::default()
        };
        assert_eq!(fixed.recommended_shards(1), 7);
    }

    #[test]
    fn known_intents_cover_privileged() {
        assert_eq!(KNOWN_INTENTS & PRIVILEGED_INTENTS, PRIVILEGED_INTENTS);
        assert_eq!(KNOWN_INTENTS & (1 << 17), 0);
    }
}
