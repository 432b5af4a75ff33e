//! Delivery targets: where a route's batches go.
//!
//! A [`Target`] takes one [`PreparedBatch`] (the serialised
//! [`shardline_wire::Batch`]) and answers a [`DeliveryOutcome`]; it never
//! retries by itself and never touches JetStream. The bridge (and the replay
//! tool) decide what an outcome means for the messages.

mod http;
mod lambda;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use shardline_wire::{Batch, BatchResponse};

pub use http::HttpTarget;
pub use lambda::LambdaTarget;

use crate::TargetConfig;

/// A boxed future, so targets can be used as `dyn Target`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Somewhere batches can be delivered.
///
/// ```no_run
/// use shardline_jetstream::{HttpTarget, PreparedBatch, Target};
/// # async fn demo(batch: shardline_wire::Batch) -> Result<(), Box<dyn std::error::Error>> {
/// let target = HttpTarget::new("http://127.0.0.1:8080/hook", vec![], std::time::Duration::from_secs(5))?;
/// let outcome = target.deliver(&PreparedBatch::new(&batch)?).await;
/// println!("{outcome:?}");
/// # Ok(()) }
/// ```
pub trait Target: Send + Sync + std::fmt::Debug + 'static {
    /// A short description for logs (`http https://…`, `lambda bot`).
    fn describe(&self) -> String;

    /// Sends one batch, once.
    fn deliver<'a>(&'a self, batch: &'a PreparedBatch) -> BoxFuture<'a, DeliveryOutcome>;
}

/// A batch serialised once, ready to send (and to re-send unchanged).
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    /// The JSON body: `{"records":[…]}`.
    pub body: Bytes,
    /// The record ids, in order.
    pub ids: Vec<String>,
    /// The Standard Webhooks `webhook-id`: derived from the record ids, so
    /// the same records always carry the same id, across retries too.
    pub webhook_id: String,
}

impl PreparedBatch {
    /// Serialises `batch`.
    pub fn new(batch: &Batch) -> Result<Self, serde_json::Error> {
        let body = serde_json::to_vec(batch)?;
        let ids: Vec<String> = batch.records.iter().map(|r| r.id.clone()).collect();
        Ok(Self {
            body: Bytes::from(body),
            webhook_id: webhook_id(&ids),
            ids,
        })
    }

    /// A batch from a body already written (`{"records":[…]}`) and the ids
    /// of its records, in order.
    pub fn from_body(body: Bytes, ids: Vec<String>) -> Self {
        Self {
            webhook_id: webhook_id(&ids),
            body,
            ids,
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// `true` for a batch without records.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// `msg_<base64url(sha256(ids joined by newlines))[..32]>`.
fn webhook_id(ids: &[String]) -> String {
    let mut hash = Sha256::new();
    for id in ids {
        hash.update(id.as_bytes());
        hash.update(b"\n");
    }
    let digest = hash.finalize();
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    format!("msg_{}", &encoded[..32])
}

/// What one call to a target came to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryOutcome {
    /// The target took the batch; `failed` names the records it reports as
    /// failed (`batchItemFailures`), empty when all succeeded.
    Accepted {
        /// Ids of the records to retry.
        failed: Vec<String>,
    },
    /// The call as a whole failed.
    Failed(DeliveryFailure),
}

/// Why a whole call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFailure {
    /// What kind of failure, which decides what happens next.
    pub kind: FailureKind,
    /// A short human-readable reason (status, error), kept in dead letters.
    pub reason: String,
    /// How long the target asked us to wait (`Retry-After`, `retryAfterSeconds`).
    pub retry_after: Option<Duration>,
}

impl DeliveryFailure {
    /// A failure without a requested delay.
    pub fn new(kind: FailureKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// The kinds of failed calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The target is throttling (HTTP 429, Lambda `TooManyRequestsException`):
    /// retry later and lower the concurrency.
    Throttled,
    /// Not about the records (timeout, connection, 408, 502–504): retry as is.
    Transient,
    /// The function failed on the batch (function error, HTTP 500): split
    /// the batch to find the bad record, then retry.
    FunctionError,
    /// The target refused the batch for good (4xx): split, then dead-letter.
    Rejected,
    /// The endpoint is gone (HTTP 410): the route is disabled.
    Gone,
}

/// Reads a target's answer body as a [`BatchResponse`] for `ids`.
///
/// An empty body, `null`, or a JSON value without `batchItemFailures` means
/// every record succeeded. A response that names records not in the batch
/// fails the whole batch (as Lambda event source mappings do).
///
/// ```
/// use shardline_jetstream::{DeliveryOutcome, parse_batch_response};
/// let ids = vec!["S:1".to_owned(), "S:2".to_owned()];
/// assert_eq!(parse_batch_response(b"", &ids), DeliveryOutcome::Accepted { failed: vec![] });
/// assert_eq!(
///     parse_batch_response(br#"{"batchItemFailures":[{"itemIdentifier":"S:2"}]}"#, &ids),
///     DeliveryOutcome::Accepted { failed: vec!["S:2".into()] },
/// );
/// ```
pub fn parse_batch_response(body: &[u8], ids: &[String]) -> DeliveryOutcome {
    let text = body.trim_ascii();
    if text.is_empty() || text == b"null" {
        return DeliveryOutcome::Accepted { failed: Vec::new() };
    }
    let value: serde_json::Value = match serde_json::from_slice(text) {
        Ok(value) => value,
        // Webhook receivers often answer "OK": any 2xx is success.
        Err(_) => return DeliveryOutcome::Accepted { failed: Vec::new() },
    };
    if value.get("batchItemFailures").is_none() {
        return DeliveryOutcome::Accepted { failed: Vec::new() };
    }
    let response: BatchResponse = match serde_json::from_value(value) {
        Ok(response) => response,
        Err(e) => {
            return DeliveryOutcome::Failed(DeliveryFailure::new(
                FailureKind::FunctionError,
                format!("malformed batchItemFailures: {e}"),
            ));
        }
    };
    let mut failed = Vec::with_capacity(response.batch_item_failures.len());
    for item in response.batch_item_failures {
        if !ids.contains(&item.item_identifier) {
            return DeliveryOutcome::Failed(DeliveryFailure::new(
                FailureKind::FunctionError,
                format!(
                    "batchItemFailures names {:?}, which is not in the batch",
                    item.item_identifier
                ),
            ));
        }
        if !failed.contains(&item.item_identifier) {
            failed.push(item.item_identifier);
        }
    }
    DeliveryOutcome::Accepted { failed }
}

/// A target that could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The HTTP client could not be built.
    #[error("building the HTTP client")]
    Http(#[source] reqwest::Error),
    /// A URL is invalid.
    #[error("invalid URL {0:?}")]
    Url(String),
}

/// Builds the target a route's configuration describes.
pub async fn target_from_config(config: &TargetConfig) -> Result<Arc<dyn Target>, TargetError> {
    Ok(match config {
        TargetConfig::Http(http) => Arc::new(HttpTarget::new(
            &http.url,
            http.keys().to_vec(),
            http.timeout,
        )?),
        TargetConfig::Lambda(lambda) => Arc::new(LambdaTarget::new(lambda).await),
    })
}

/// Parses `Retry-After`: delay seconds, or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Some(Duration::from_secs_f64(seconds.min(86_400.0)));
        }
        return None;
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = at - now;
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec!["S:1".into(), "S:2".into()]
    }

    #[test]
    fn bodies_that_mean_success() {
        for body in [&b""[..], b"null", b"OK", b"{}", b"  \n", b"{\"ok\":true}"] {
            assert_eq!(
                parse_batch_response(body, &ids()),
                DeliveryOutcome::Accepted { failed: vec![] },
                "{body:?}"
            );
        }
        assert_eq!(
            parse_batch_response(br#"{"batchItemFailures":[]}"#, &ids()),
            DeliveryOutcome::Accepted { failed: vec![] }
        );
    }

    #[test]
    fn unknown_ids_fail_the_batch() {
        let outcome = parse_batch_response(
            br#"{"batchItemFailures":[{"itemIdentifier":"X:9"}]}"#,
            &ids(),
        );
        assert!(matches!(
            outcome,
            DeliveryOutcome::Failed(DeliveryFailure {
                kind: FailureKind::FunctionError,
                ..
            })
        ));
        let outcome = parse_batch_response(br#"{"batchItemFailures":[{"nope":1}]}"#, &ids());
        assert!(matches!(outcome, DeliveryOutcome::Failed(_)));
    }

    #[test]
    fn webhook_id_is_stable_and_distinct() {
        let a = webhook_id(&ids());
        assert_eq!(a, webhook_id(&ids()));
        assert_ne!(a, webhook_id(&["S:1".to_owned()]));
        assert!(a.starts_with("msg_") && a.len() == 36, "{a}");
    }

    #[test]
    fn retry_after_forms() {
        let now = time::macros::datetime!(2015-10-21 07:28:00 UTC);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
