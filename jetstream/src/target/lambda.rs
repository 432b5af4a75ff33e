//! AWS Lambda through the Invoke API.

use std::time::Duration;

use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::config::timeout::TimeoutConfig;
use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::primitives::Blob;

use super::{
    BoxFuture, DeliveryFailure, DeliveryOutcome, FailureKind, PreparedBatch, Target,
    parse_batch_response,
};
use crate::LambdaTargetConfig;

/// Invokes a Lambda function synchronously (`RequestResponse`) with the batch
/// as its payload.
///
/// A function error (`X-Amz-Function-Error`, or HTTP 500 as `cargo lambda
/// watch` answers) fails the batch; `TooManyRequestsException` (429) is a
/// throttle with its `Retry-After`; the SDK's own retries are off, so the
/// bridge alone decides about retries.
///
/// ```no_run
/// # async fn demo() {
/// use shardline_jetstream::{LambdaTarget, LambdaTargetConfig};
/// let config: LambdaTargetConfig = toml::from_str(
///     "function = \"bot\"\nendpoint = \"http://127.0.0.1:9000\"").unwrap();
/// let target = LambdaTarget::new(&config).await;
/// # }
/// ```
#[derive(Debug)]
pub struct LambdaTarget {
    client: aws_sdk_lambda::Client,
    function: String,
    qualifier: Option<String>,
    endpoint: Option<String>,
    timeout: Duration,
}

impl LambdaTarget {
    /// Builds the client: region and credentials from the environment, with
    /// the endpoint override (and, for it, local credentials when the
    /// environment has none).
    pub async fn new(config: &LambdaTargetConfig) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        let region = config.region.clone().or_else(|| {
            std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .ok()
        });
        loader = loader.region(Region::new(region.unwrap_or_else(|| "us-east-1".into())));
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                loader = loader.credentials_provider(Credentials::new(
                    "shardline-local",
                    "shardline-local",
                    None,
                    None,
                    "shardline-local-endpoint",
                ));
            }
        }
        let shared = loader.load().await;
        let lambda = aws_sdk_lambda::config::Builder::from(&shared)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(config.timeout)
                    .build(),
            )
            .build();
        Self {
            client: aws_sdk_lambda::Client::from_conf(lambda),
            function: config.function.clone(),
            qualifier: config.qualifier.clone(),
            endpoint: config.endpoint.clone(),
            timeout: config.timeout,
        }
    }

    async fn call(&self, batch: &PreparedBatch) -> DeliveryOutcome {
        let result = self
            .client
            .invoke()
            .function_name(&self.function)
            .set_qualifier(self.qualifier.clone())
            .payload(Blob::new(batch.body.to_vec()))
            .send()
            .await;
        match result {
            Ok(output) => {
                let payload = output.payload().map(Blob::as_ref).unwrap_or_default();
                if let Some(kind) = output.function_error() {
                    return DeliveryOutcome::Failed(DeliveryFailure::new(
                        FailureKind::FunctionError,
                        format!("function error ({kind}): {}", snippet(payload)),
                    ));
                }
                parse_batch_response(payload, &batch.ids)
            }
            Err(error) => DeliveryOutcome::Failed(self.failure(error)),
        }
    }

    fn failure(&self, error: SdkError<InvokeError>) -> DeliveryFailure {
        let status = error.raw_response().map(|r| r.status().as_u16());
        let body = error
            .raw_response()
            .and_then(|r| r.body().bytes())
            .map(snippet)
            .unwrap_or_default();
        match error {
            SdkError::TimeoutError(_) => DeliveryFailure::new(
                FailureKind::Transient,
                format!(
                    "timed out after {}",
                    humantime::format_duration(self.timeout)
                ),
            ),
            SdkError::DispatchFailure(e) => DeliveryFailure::new(
                FailureKind::Transient,
                if e.is_timeout() {
                    format!(
                        "timed out after {}",
                        humantime::format_duration(self.timeout)
                    )
                } else {
                    format!("could not reach the Invoke API: {e:?}")
                },
            ),
            SdkError::ServiceError(service) => {
                let status = status.unwrap_or(0);
                match service.into_err() {
                    InvokeError::TooManyRequestsException(throttle) => DeliveryFailure {
                        kind: FailureKind::Throttled,
                        reason: format!(
                            "throttled: {}",
                            throttle.message().unwrap_or("TooManyRequestsException")
                        ),
                        retry_after: throttle
                            .retry_after_seconds()
                            .and_then(|s| s.trim().parse::<f64>().ok())
                            .filter(|s| s.is_finite() && *s >= 0.0)
                            .map(|s| Duration::from_secs_f64(s.min(86_400.0))),
                    },
                    InvokeError::RequestTooLargeException(e) => DeliveryFailure::new(
                        FailureKind::Rejected,
                        format!("request too large: {}", e.message().unwrap_or_default()),
                    ),
                    InvokeError::InvalidRequestContentException(e) => DeliveryFailure::new(
                        FailureKind::Rejected,
                        format!(
                            "invalid request content: {}",
                            e.message().unwrap_or_default()
                        ),
                    ),
                    other => {
                        let kind = match status {
                            429 => FailureKind::Throttled,
                            // `cargo lambda watch` answers a function error with 500.
                            500 => FailureKind::FunctionError,
                            _ => FailureKind::Transient,
                        };
                        let detail = if body.is_empty() {
                            other.to_string()
                        } else {
                            body
                        };
                        DeliveryFailure::new(kind, format!("Invoke API HTTP {status}: {detail}"))
                    }
                }
            }
            SdkError::ResponseError(_) => DeliveryFailure::new(
                match status {
                    Some(500) => FailureKind::FunctionError,
                    Some(429) => FailureKind::Throttled,
                    _ => FailureKind::Transient,
                },
                format!("unreadable Invoke API response (HTTP {status:?}): {body}"),
            ),
            other => DeliveryFailure::new(
                FailureKind::Transient,
                format!("Invoke API call failed: {other}"),
            ),
        }
    }
}

impl Target for LambdaTarget {
    fn describe(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("lambda {} at {endpoint}", self.function),
            None => format!("lambda {}", self.function),
        }
    }

    fn deliver<'a>(&'a self, batch: &'a PreparedBatch) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(self.call(batch))
    }
}

fn snippet(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(300)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}
