//! Shard configuration: the token, intents, compression, event filters and
//! the tuning knobs of one shard.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::compression::Compression;

/// A Discord bot token. `Debug` and `Display` print `<redacted>`; only
/// [`Token::expose`] gives the value, for the IDENTIFY payload and the REST
/// `Authorization` header.
///
/// ```
/// use shardline_gateway::Token;
/// let token = Token::new("very-secret");
/// assert_eq!(format!("{token:?} {token}"), "<redacted> <redacted>");
/// assert_eq!(token.expose(), "very-secret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    /// Wraps a token. A leading `Bot ` is removed (it is added where needed).
    pub fn new(token: impl AsRef<str>) -> Self {
        let token = token.as_ref().trim();
        let token = token.strip_prefix("Bot ").unwrap_or(token);
        Self(Arc::from(token))
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `true` when no token was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Token::new)
    }
}

/// Which dispatch event types are published. Dropped events still advance the
/// shard's seq (they are "handled" by being skipped).
///
/// ```
/// use shardline_gateway::EventFilter;
/// let only_messages = EventFilter::allow(["MESSAGE_CREATE"]);
/// assert!(only_messages.publishes("MESSAGE_CREATE"));
/// assert!(!only_messages.publishes("TYPING_START"));
/// let no_typing = EventFilter::deny(["TYPING_START"]);
/// assert!(no_typing.publishes("MESSAGE_CREATE"));
/// assert!(!no_typing.publishes("TYPING_START"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    allow: Option<HashSet<String>>,
    deny: HashSet<String>,
}

impl EventFilter {
    /// Publishes every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Publishes only these events.
    pub fn allow<I, S>(events: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            allow: Some(events.into_iter().map(Into::into).collect()),
            deny: HashSet::new(),
        }
    }

    /// Publishes every event except these.
    pub fn deny<I, S>(events: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            allow: None,
            deny: events.into_iter().map(Into::into).collect(),
        }
    }

    /// An allow list (empty = everything) and a deny list applied after it.
    pub fn new(allow: Vec<String>, deny: Vec<String>) -> Self {
        Self {
            allow: (!allow.is_empty()).then(|| allow.into_iter().collect()),
            deny: deny.into_iter().collect(),
        }
    }

    /// Whether `event` is published.
    pub fn publishes(&self, event: &str) -> bool {
        self.allow
            .as_ref()
            .is_none_or(|allow| allow.contains(event))
            && !self.deny.contains(event)
    }
}

/// Reconnect back-off: capped exponential with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay (before jitter).
    pub base: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before reconnect attempt `failures` (0 = the first retry after
    /// a failure): uniform in `[d/2, d]` with `d = min(max, base * 2^failures)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = shardline_gateway::Backoff { base: Duration::from_secs(1), max: Duration::from_secs(8) };
    /// let d = b.delay(10);
    /// assert!(d >= Duration::from_secs(4) && d <= Duration::from_secs(8));
    /// ```
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.min(20)).unwrap_or(u32::MAX);
        let cap = self.base.saturating_mul(factor).min(self.max);
        let half = cap / 2;
        half + cap.saturating_sub(half).mul_f64(rand::random::<f64>())
    }
}

/// Everything one shard needs to know.
///
/// ```
/// use shardline_gateway::{ShardConfig, Token};
/// let config = ShardConfig::new(0, 1, Token::new("x"), 513, "wss://gateway.discord.gg");
/// assert_eq!(config.api_version, 10);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShardConfig {
    /// This shard's id.
    pub shard_id: u32,
    /// The total number of shards.
    pub shard_count: u32,
    /// The bot token.
    pub token: Token,
    /// Gateway intents.
    pub intents: u64,
    /// The gateway URL (from `/gateway/bot`), without query.
    pub gateway_url: String,
    /// Gateway API version (default 10).
    pub api_version: u8,
    /// Transport compression (default zlib-stream).
    pub compression: Compression,
    /// Which events are published.
    pub events: EventFilter,
    /// The most publishes awaiting their JetStream ack (default 256).
    pub max_acks_in_flight: usize,
    /// How often the committed session is written to the KV bucket (default 1 s).
    pub session_save_interval: Duration,
    /// Reconnect back-off.
    pub backoff: Backoff,
    /// `large_threshold` in IDENTIFY (50..=250, default 50).
    pub large_threshold: u8,
    /// Optional presence for IDENTIFY, raw JSON (op 3's `d` shape).
    pub presence: Option<String>,
    /// The largest decompressed message accepted (default 64 MiB).
    pub max_message_size: usize,
    /// How many outbound commands wait for rate-limit room (default 256).
    pub command_queue: usize,
    /// The WebSocket read buffer (default 4 KiB; small keeps idle shards small).
    pub read_buffer_size: usize,
    /// How long a connect + HELLO may take (default 30 s).
    pub connect_timeout: Duration,
}

impl ShardConfig {
    /// A configuration with the defaults for everything else.
    pub fn new(
        shard_id: u32,
        shard_count: u32,
        token: Token,
        intents: u64,
        gateway_url: impl Into<String>,
    ) -> Self {
        Self {
            shard_id,
            shard_count,
            token,
            intents,
            gateway_url: gateway_url.into(),
            api_version: 10,
            compression: Compression::default(),
            events: EventFilter::all(),
            max_acks_in_flight: 256,
            session_save_interval: Duration::from_secs(1),
            backoff: Backoff::default(),
            large_threshold: 50,
            presence: None,
            max_message_size: 64 << 20,
            command_queue: 256,
            read_buffer_size: 4 * 1024,
            connect_timeout: Duration::from_secs(30),
        }
    }

    /// `gateway_url` (or a resume URL) with the version, encoding and
    /// compression query.
    pub(crate) fn connect_url(&self, base: &str) -> String {
        let base = base.split('?').next().unwrap_or(base);
        let base = base.trim_end_matches('/');
        let mut url = format!("{base}/?v={}&encoding=json", self.api_version);
        if let Some(compress) = self.compression.query_value() {
            url.push_str("&compress=");
            url.push_str(compress);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_never_printed() {
        let config = ShardConfig::new(0, 1, Token::new("Bot sekrit-token"), 1, "ws://x");
        let debug = format!("{config:?}");
        assert!(!debug.contains("sekrit"), "{debug}");
        assert_eq!(config.token.expose(), "sekrit-token");
    }

    #[test]
    fn connect_url_has_the_query() {
        let mut c = ShardConfig::new(0, 1, Token::new("t"), 1, "wss://gateway.discord.gg");
        assert_eq!(
            c.connect_url("wss://gateway.discord.gg"),
            "wss://gateway.discord.gg/?v=10&encoding=json&compress=zlib-stream"
        );
        c.compression = Compression::None;
        assert_eq!(
            c.connect_url("wss://r.discord.gg/?v=9"),
            "wss://r.discord.gg/?v=10&encoding=json"
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for failures in 0..30 {
            let d = b.delay(failures);
            assert!(d <= Duration::from_secs(2), "{failures}: {d:?}");
        }
        assert!(b.delay(0) <= Duration::from_millis(100));
        assert!(b.delay(3) >= Duration::from_millis(400));
    }

    #[test]
    fn filter_allow_then_deny() {
        let f = EventFilter::new(vec!["A".into(), "B".into()], vec!["B".into()]);
        assert!(f.publishes("A"));
        assert!(!f.publishes("B"));
        assert!(!f.publishes("C"));
        assert!(EventFilter::all().publishes("ANY"));
    }
}
