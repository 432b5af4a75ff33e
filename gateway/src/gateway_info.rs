//! `GET /gateway/bot`: the recommended shard count and the session budget.
//!
//! The base URL is configurable: Discord itself, a REST proxy (which may want
//! its own `Authorization` value), or the simulator. 429 answers are waited
//! out (`Retry-After` header or the body's `retry_after`), server errors and
//! network failures retried with backoff, and a 401 reported at once.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use twilight_model::gateway::connection_info::BotConnectionInfo;

/// Discord's REST API base.
pub const DISCORD_API: &str = "https://discord.com/api/v10";

/// A secret `Authorization` header value (`Bot <token>`, or what a REST proxy expects).
/// It never appears in `Debug` or `Display`.
///
/// ```
/// let auth = shardline_gateway::RestAuthorization::bot_token("not-a-real-token");
/// assert_eq!(format!("{auth:?}"), "RestAuthorization(<redacted>)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RestAuthorization(String);

impl RestAuthorization {
    /// `Bot <token>`.
    pub fn bot_token(token: &str) -> Self {
        Self(format!("Bot {}", token.trim()))
    }

    /// A header value used as given (for REST proxies).
    pub fn header_value(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RestAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestAuthorization(<redacted>)")
    }
}

impl std::fmt::Display for RestAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why `/gateway/bot` could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayInfoError {
    /// Discord (or the proxy) refused the credentials.
    #[error(
        "GET /gateway/bot: unauthorized (HTTP {status}); check the bot token or proxy authorization"
    )]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// Still failing after every retry.
    #[error("GET /gateway/bot failed after {attempts} attempts: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(String),
}

/// The future [`GatewayInfoSource::fetch`] returns.
pub type GatewayInfoFuture<'a> =
    Pin<Box<dyn Future<Output = Result<BotConnectionInfo, GatewayInfoError>> + Send + 'a>>;

/// Where the coordinator gets `/gateway/bot` from: the REST client, or a fixed
/// value in tests and for operators who pin everything.
pub trait GatewayInfoSource: Send + Sync + std::fmt::Debug {
    /// Reads the current connection info.
    fn fetch(&self) -> GatewayInfoFuture<'_>;
}

/// A fixed `/gateway/bot` answer.
#[derive(Debug, Clone)]
pub struct FixedGatewayInfo(pub BotConnectionInfo);

impl GatewayInfoSource for FixedGatewayInfo {
    fn fetch(&self) -> GatewayInfoFuture<'_> {
        let info = self.0.clone();
        Box::pin(async move { Ok(info) })
    }
}

/// Reads `/gateway/bot` over HTTP, with retries.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use shardline_gateway::{GatewayInfoClient, GatewayInfoSource, RestAuthorization};
/// let client = GatewayInfoClient::new(
///     "https://discord.com/api/v10",
///     RestAuthorization::bot_token(&std::env::var("DISCORD_TOKEN")?),
/// )?;
/// let info = client.fetch().await?;
/// println!("{} shards recommended", info.shards);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct GatewayInfoClient {
    http: reqwest::Client,
    url: String,
    authorization: RestAuthorization,
    attempts: u32,
    base_backoff: Duration,
}

impl GatewayInfoClient {
    /// A client for `<base_url>/gateway/bot`.
    pub fn new(base_url: &str, authorization: RestAuthorization) -> Result<Self, GatewayInfoError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .user_agent(concat!(
                "DiscordBot (https://example.invalid/shardline, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .build()
            .map_err(|error| GatewayInfoError::Client(error.to_string()))?;
        Ok(Self {
            http,
            url: format!("{}/gateway/bot", base_url.trim_end_matches('/')),
            authorization,
            attempts: 6,
            base_backoff: Duration::from_millis(500),
        })
    }

    /// Attempts per fetch (default 6) and the first backoff (default 500 ms, doubling).
    pub fn with_retries(mut self, attempts: u32, base_backoff: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.base_backoff = base_backoff;
        self
    }

    async fn fetch_with_retries(&self) -> Result<BotConnectionInfo, GatewayInfoError> {
        let mut last = String::new();
        for attempt in 0..self.attempts {
            let backoff = self.base_backoff * 2u32.saturating_pow(attempt.min(6));
            let response = self
                .http
                .get(&self.url)
                .header(reqwest::header::AUTHORIZATION, self.authorization.expose())
                .send()
                .await;
            let wait = match response {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        match response.json::<BotConnectionInfo>().await {
                            Ok(info) => return Ok(info),
                            Err(error) => {
                                last = format!("unreadable body: {error}");
                                backoff
                            }
                        }
                    } else if status == reqwest::StatusCode::UNAUTHORIZED
                        || status == reqwest::StatusCode::FORBIDDEN
                    {
                        return Err(GatewayInfoError::Unauthorized {
                            status: status.as_u16(),
                        });
                    } else if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                        let header = retry_after_header(response.headers());
                        let body = response.bytes().await.unwrap_or_default();
                        let wait = header
                            .or_else(|| retry_after_body(&body))
                            .unwrap_or(backoff);
                        last = format!("rate limited (429), retry after {wait:?}");
                        tracing::warn!(?wait, "GET /gateway/bot rate limited");
                        wait
                    } else {
                        last = format!("HTTP {status}");
                        backoff
                    }
                }
                Err(error) => {
                    last = error.without_url().to_string();
                    backoff
                }
            };
            if attempt + 1 < self.attempts {
                tracing::debug!(attempt, ?wait, last, "GET /gateway/bot failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
        Err(GatewayInfoError::GaveUp {
            attempts: self.attempts,
            last,
        })
    }
}

impl GatewayInfoSource for GatewayInfoClient {
    fn fetch(&self) -> GatewayInfoFuture<'_> {
        Box::pin(self.fetch_with_retries())
    }
}

fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    seconds(value.trim().parse::<f64>().ok()?)
}

fn retry_after_body(body: &[u8]) -> Option<Duration> {
    #[derive(serde::Deserialize)]
    struct RateLimited {
        retry_after: f64,
    }
    let parsed: RateLimited = serde_json::from_slice(body).ok()?;
    seconds(parsed.retry_after)
}

fn seconds(value: f64) -> Option<Duration> {
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_header_or_body() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "1.5".parse().unwrap());
        assert_eq!(
            retry_after_header(&headers),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after_body(
                br#"{"message":"You are being rate limited.","retry_after":0.25,"global":false}"#
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after_body(b"nope"), None);
        assert_eq!(seconds(-1.0), None);
    }

    #[test]
    fn authorization_is_redacted() {
        let auth = RestAuthorization::bot_token("abc.def");
        assert_eq!(auth.to_string(), "<redacted>");
        assert!(!format!("{auth:?}").contains("abc"));
        assert_eq!(auth.expose(), "Bot abc.def");
    }
}
