//! HTTP(S) endpoints with Standard Webhooks signatures.

use std::time::Duration;

use reqwest::StatusCode;
use shardline_wire::webhook::{self, SigningKey};

use super::{
    BoxFuture, DeliveryFailure, DeliveryOutcome, FailureKind, PreparedBatch, Target, TargetError,
    parse_batch_response, parse_retry_after,
};

/// POSTs batches as JSON, signed per Standard Webhooks.
///
/// 2xx is success (the body may carry `batchItemFailures`); 408, 429, 5xx,
/// timeouts and connection errors are retried, honouring `Retry-After`; 410
/// disables the route; any other 4xx is a rejection.
///
/// ```no_run
/// use shardline_jetstream::HttpTarget;
/// use shardline_wire::webhook::SigningKey;
/// let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
/// let target = HttpTarget::new("https://bot.example.invalid/discord", vec![key],
///     std::time::Duration::from_secs(10)).unwrap();
/// ```
pub struct HttpTarget {
    client: reqwest::Client,
    url: reqwest::Url,
    keys: Vec<SigningKey>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTarget")
            .field("url", &self.url.as_str())
            .field("keys", &self.keys.len())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HttpTarget {
    /// A target for `url`, signing with `keys` (none: unsigned), giving up on
    /// a call after `timeout`.
    pub fn new(url: &str, keys: Vec<SigningKey>, timeout: Duration) -> Result<Self, TargetError> {
        let url = reqwest::Url::parse(url).map_err(|_| TargetError::Url(url.to_owned()))?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("shardline-bridge/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(TargetError::Http)?;
        Ok(Self {
            client,
            url,
            keys,
            timeout,
        })
    }

    async fn call(&self, batch: &PreparedBatch) -> DeliveryOutcome {
        let now = time::OffsetDateTime::now_utc();
        let timestamp = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let mut request = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(webhook::ID_HEADER, &batch.webhook_id)
            .header(webhook::TIMESTAMP_HEADER, timestamp.to_string());
        if !self.keys.is_empty() {
            request = request.header(
                webhook::SIGNATURE_HEADER,
                webhook::sign(&self.keys, &batch.webhook_id, timestamp, &batch.body),
            );
        }
        let response = match request.body(batch.body.clone()).send().await {
            Ok(response) => response,
            Err(e) => return DeliveryOutcome::Failed(transport_failure(&e, self.timeout)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return DeliveryOutcome::Failed(transport_failure(&e, self.timeout)),
        };
        if status.is_success() {
            return parse_batch_response(&body, &batch.ids);
        }
        let kind = match status {
            StatusCode::TOO_MANY_REQUESTS => FailureKind::Throttled,
            StatusCode::REQUEST_TIMEOUT => FailureKind::Transient,
            StatusCode::GONE => FailureKind::Gone,
            StatusCode::INTERNAL_SERVER_ERROR => FailureKind::FunctionError,
            s if s.is_server_error() => FailureKind::Transient,
            s if s.is_client_error() => FailureKind::Rejected,
            // 1xx/3xx: nothing we can act on; try again later.
            _ => FailureKind::Transient,
        };
        DeliveryOutcome::Failed(DeliveryFailure {
            kind,
            reason: status_reason(status, &body),
            retry_after,
        })
    }
}

impl Target for HttpTarget {
    fn describe(&self) -> String {
        format!("http {}", self.url)
    }

    fn deliver<'a>(&'a self, batch: &'a PreparedBatch) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(self.call(batch))
    }
}

fn transport_failure(error: &reqwest::Error, timeout: Duration) -> DeliveryFailure {
    let reason = if error.is_timeout() {
        format!("timed out after {}", humantime::format_duration(timeout))
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        format!("request failed: {}", error_chain(error))
    };
    DeliveryFailure::new(FailureKind::Transient, reason)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `HTTP 400 Bad Request: <start of body>`.
fn status_reason(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    }
}
