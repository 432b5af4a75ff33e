//! The router: handlers per event, run over a batch, answered with failures.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http;
use base64::Engine as _;
use futures::FutureExt as _;
use futures::future::join_all;
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shardline_wire::webhook::{self, VerifyError};
use shardline_wire::{Batch, BatchResponse, Record};
use tracing::Instrument as _;

use crate::config::Config;
use crate::context::{Context, Delivery, RecordInfo, Shared};
use crate::error::Error;
use crate::event::Event;

type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;
type ErasedHandler =
    Arc<dyn Fn(Context, &RawValue) -> Result<HandlerFuture, serde_json::Error> + Send + Sync>;

/// An async function that handles one event type: `async fn(Context, E) -> Result<(), Error>`.
pub trait Handler<E>: Send + Sync + 'static {
    /// Runs the handler.
    fn call(&self, ctx: Context, event: E) -> HandlerFuture;
}

impl<F, Fut, E> Handler<E> for F
where
    F: Fn(Context, E) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    fn call(&self, ctx: Context, event: E) -> HandlerFuture {
        Box::pin(self(ctx, event))
    }
}

/// What happens to the rest of a guild's records after one fails with a
/// retryable error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuildOrdering {
    /// The guild's later records in the batch are not run and are reported
    /// as failed too, so they are retried after the failed one (default).
    #[default]
    Strict,
    /// The guild's later records run anyway; only the failed record is retried.
    Continue,
}

/// A bot: handlers registered per event.
///
/// ```no_run
/// use shardline_lambda_bot::{Bot, Context, Error, event::MessageCreate};
///
/// async fn ping(ctx: Context, msg: MessageCreate) -> Result<(), Error> {
///     if msg.content == "!ping" {
///         ctx.http().create_message(msg.channel_id).content("pong").await?;
///     }
///     Ok(())
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), shardline_lambda_bot::RunError> {
///     shardline_lambda_bot::run(Bot::new().on(ping)).await
/// }
/// ```
#[derive(Clone, Default)]
pub struct Bot {
    handlers: HashMap<&'static str, Vec<ErasedHandler>>,
    ordering: GuildOrdering,
}

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut events: Vec<_> = self.handlers.keys().collect();
        events.sort();
        f.debug_struct("Bot")
            .field("events", &events)
            .field("ordering", &self.ordering)
            .finish()
    }
}

impl Bot {
    /// A bot with no handlers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for the event type it takes. Several handlers for
    /// one event run in registration order.
    pub fn on<E: Event, H: Handler<E>>(mut self, handler: H) -> Self {
        let handler = Arc::new(handler);
        let erased: ErasedHandler = Arc::new(move |ctx: Context, data: &RawValue| {
            let event: E = serde_json::from_str(data.get())?;
            Ok(handler.call(ctx, event))
        });
        self.handlers.entry(E::NAME).or_default().push(erased);
        self
    }

    /// Sets what happens to a guild's later records after one fails.
    pub fn ordering(mut self, ordering: GuildOrdering) -> Self {
        self.ordering = ordering;
        self
    }

    /// The event names that have handlers.
    pub fn events(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.keys().copied()
    }

    /// Binds the bot to its configuration, building the clients it needs.
    pub fn with_config(self, config: Config) -> BotService {
        BotService {
            bot: Arc::new(self),
            shared: Arc::new(Shared::new(config)),
        }
    }
}

/// A bot bound to its configuration and clients: what the Lambda runtime calls.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct BotService {
    bot: Arc<Bot>,
    shared: Arc<Shared>,
}

/// What a function answers.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// The answer to a batch invocation.
    Batch(BatchResponse),
    /// The answer to a Function URL / API Gateway request.
    Http(Box<ApiGatewayV2httpResponse>),
}

/// An invocation the function could not make sense of.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvocationError {
    /// Neither a batch (`records`) nor an HTTP request (`requestContext`).
    #[error(
        "the payload is neither a shardline batch (records) nor an HTTP request (requestContext)"
    )]
    UnknownPayload,
    /// The payload looked like one of them but did not decode.
    #[error("the {what} payload did not decode")]
    Decode {
        /// `batch` or `HTTP request`.
        what: &'static str,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

impl From<InvocationError> for lambda_runtime::Diagnostic {
    fn from(error: InvocationError) -> Self {
        let mut message = error.to_string();
        if let Some(source) = std::error::Error::source(&error) {
            message = format!("{message}: {source}");
        }
        Self {
            error_type: "InvocationError".into(),
            error_message: message,
        }
    }
}

enum Outcome {
    Done,
    Retry,
}

impl BotService {
    /// Handles any invocation: a batch from the bridge, or an HTTP request
    /// (Function URL, API Gateway v2) carrying a signed batch.
    pub async fn handle(
        &self,
        event: LambdaEvent<Box<RawValue>>,
    ) -> Result<Response, InvocationError> {
        #[derive(Deserialize)]
        struct Probe {
            records: Option<serde::de::IgnoredAny>,
            #[serde(rename = "requestContext")]
            request_context: Option<serde::de::IgnoredAny>,
        }
        let raw = event.payload.get();
        let probe: Probe =
            serde_json::from_str(raw).map_err(|_| InvocationError::UnknownPayload)?;
        if probe.records.is_some() {
            let batch: Batch =
                serde_json::from_str(raw).map_err(|source| InvocationError::Decode {
                    what: "batch",
                    source,
                })?;
            let response = self
                .handle_batch(LambdaEvent::new(batch, event.context))
                .await;
            Ok(Response::Batch(response))
        } else if probe.request_context.is_some() {
            let request: ApiGatewayV2httpRequest =
                serde_json::from_str(raw).map_err(|source| InvocationError::Decode {
                    what: "HTTP request",
                    source,
                })?;
            let response = self
                .handle_http(LambdaEvent::new(request, event.context))
                .await;
            Ok(Response::Http(Box::new(response)))
        } else {
            Err(InvocationError::UnknownPayload)
        }
    }

    /// Runs a batch: records in order within a guild, guilds concurrently.
    /// Answers with the records to retry.
    pub async fn handle_batch(&self, event: LambdaEvent<Batch>) -> BatchResponse {
        self.run_batch(event.payload, Delivery::Invoke).await
    }

    /// Verifies a signed HTTP delivery and runs its batch. A bad or missing
    /// signature gets 401 and runs no handler.
    pub async fn handle_http(
        &self,
        event: LambdaEvent<ApiGatewayV2httpRequest>,
    ) -> ApiGatewayV2httpResponse {
        let request = event.payload;
        let method = request.request_context.http.method.as_str();
        if method != "POST" {
            return http_response(405, &serde_json::json!({"error": "use POST"}));
        }
        let body = match (&request.body, request.is_base64_encoded) {
            (None, _) => Vec::new(),
            (Some(body), false) => body.clone().into_bytes(),
            (Some(body), true) => match base64::engine::general_purpose::STANDARD.decode(body) {
                Ok(bytes) => bytes,
                Err(_) => {
                    return http_response(
                        400,
                        &serde_json::json!({"error": "the body is not valid base64"}),
                    );
                }
            },
        };
        let webhook_id = match self.verify(&request.headers, &body) {
            Ok(id) => id,
            Err(error) => {
                tracing::warn!(%error, "rejected an HTTP delivery");
                return http_response(401, &serde_json::json!({"error": error.to_string()}));
            }
        };
        let batch: Batch = match serde_json::from_slice(&body) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, webhook_id, "an HTTP delivery's body is not a batch");
                return http_response(
                    400,
                    &serde_json::json!({"error": format!("the body is not a batch: {error}")}),
                );
            }
        };
        let response = self
            .run_batch(batch, Delivery::Webhook { id: webhook_id })
            .await;
        http_response(200, &response)
    }

    fn verify(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<String, VerifyError> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .ok_or(VerifyError::MissingHeader(name))
        };
        let keys = &self.shared.config.webhook_keys;
        if keys.is_empty() {
            tracing::error!(
                "an HTTP delivery arrived but SHARDLINE_WEBHOOK_SECRETS is not set; rejecting it"
            );
            return Err(VerifyError::NoKeys);
        }
        let id = header(webhook::ID_HEADER)?;
        let timestamp = header(webhook::TIMESTAMP_HEADER)?;
        let signature = header(webhook::SIGNATURE_HEADER)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default();
        webhook::verify(
            keys,
            id,
            timestamp,
            signature,
            body,
            now,
            self.shared.config.webhook_tolerance.as_secs(),
        )?;
        Ok(id.to_owned())
    }

    async fn run_batch(&self, batch: Batch, delivery: Delivery) -> BatchResponse {
        let order: Vec<String> = batch.records.iter().map(|r| r.id.clone()).collect();
        let mut groups: Vec<Vec<Record>> = Vec::new();
        let mut group_of: HashMap<Option<String>, usize> = HashMap::new();
        for record in batch.records {
            let index = *group_of.entry(record.guild_id.clone()).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[index].push(record);
        }
        let failed: HashSet<String> = join_all(
            groups
                .into_iter()
                .map(|records| self.run_guild(records, &delivery)),
        )
        .await
        .into_iter()
        .flatten()
        .collect();
        // Answer in the batch's order, whatever order the guilds finished in.
        BatchResponse::failing(order.into_iter().filter(|id| failed.contains(id)))
    }

    /// Runs one guild's records in order; returns the ids to retry.
    async fn run_guild(&self, records: Vec<Record>, delivery: &Delivery) -> Vec<String> {
        let mut failed = Vec::new();
        for record in records {
            if !failed.is_empty() && self.bot.ordering == GuildOrdering::Strict {
                tracing::debug!(id = %record.id, "held back behind an earlier failure in its guild");
                failed.push(record.id);
                continue;
            }
            if let Outcome::Retry = self.run_record(&record, delivery).await {
                failed.push(record.id);
            }
        }
        failed
    }

    async fn run_record(&self, record: &Record, delivery: &Delivery) -> Outcome {
        let Some(handlers) = self.bot.handlers.get(record.event.as_str()) else {
            tracing::trace!(id = %record.id, event = %record.event, "no handler");
            return Outcome::Done;
        };
        let span = tracing::info_span!(
            "record",
            id = %record.id,
            event = %record.event,
            shard = record.shard,
            seq = record.seq,
            attempt = record.attempt,
            replay = record.replay,
        );
        let ctx = Context::new(
            Arc::clone(&self.shared),
            RecordInfo::from_record(record, delivery.clone()),
        );
        async move {
            for handler in handlers {
                let future = match handler(ctx.clone(), &record.data) {
                    Ok(future) => future,
                    Err(error) => {
                        // Retrying cannot make the payload decode: acknowledge it.
                        // The stream still holds it for `shardline replay`.
                        tracing::error!(%error, "the event did not decode; acknowledging it");
                        return Outcome::Done;
                    }
                };
                match AssertUnwindSafe(future).catch_unwind().await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) if error.retryable() => {
                        tracing::warn!(%error, "handler failed; the record will be retried");
                        return Outcome::Retry;
                    }
                    Ok(Err(error)) => {
                        tracing::error!(%error, "handler failed permanently; acknowledging the record");
                    }
                    Err(_) => {
                        tracing::error!("handler panicked; the record will be retried");
                        return Outcome::Retry;
                    }
                }
            }
            Outcome::Done
        }
        .instrument(span)
        .await
    }
}

fn http_response(status: i64, body: &impl Serialize) -> ApiGatewayV2httpResponse {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = status;
    response.headers = headers;
    response.body = Some(Body::Text(
        serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned()),
    ));
    response
}
