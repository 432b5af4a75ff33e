//! Write Discord bot handlers as AWS Lambda functions fed by shardline.
//!
//! shardline's gateway stores every Discord dispatch in NATS JetStream; its
//! bridge invokes your function with batches of records. This crate turns those
//! batches into calls of typed handlers, and answers with the records to retry.
//!
//! ```no_run
//! use shardline_lambda_bot::{Bot, Context, Error, event::MessageCreate};
//!
//! async fn ping(ctx: Context, msg: MessageCreate) -> Result<(), Error> {
//!     if msg.content == "!ping" {
//!         ctx.http().create_message(msg.channel_id).content("pong").await?;
//!     }
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), shardline_lambda_bot::RunError> {
//!     shardline_lambda_bot::tracing::init_default_subscriber();
//!     shardline_lambda_bot::run(Bot::new().on(ping)).await
//! }
//! ```
//!
//! # Layout
//!
//! - [`Bot`] (`bot`): handlers registered per event type; [`BotService`] runs
//!   a batch (in order within a guild, guilds concurrently), verifies signed
//!   HTTP deliveries, and builds the `batchItemFailures` answer.
//! - [`event`]: the Discord event types (`twilight-model`) and the [`Event`]
//!   trait naming each one's dispatch.
//! - [`Context`] (`context`): the REST client, [`GatewayCommands`] (`gateway`),
//!   the record's metadata ([`RecordInfo`]) and the [`Config`] (`config`).
//! - [`Error`] (`error`): retryable unless marked permanent.
//! - [`testing`]: records, batches, Discord payloads and signed requests for tests.
//!
//! The data path: Lambda runtime → [`run`] → [`BotService::handle`] → batch
//! (Invoke API) or HTTP request (Function URL, signature checked) →
//! per-guild record queues → your handlers → [`BatchResponse`].

mod bot;
mod config;
mod context;
mod error;
pub mod event;
mod gateway;
pub mod testing;

pub use bot::{Bot, BotService, GuildOrdering, Handler, InvocationError, Response};
pub use config::{ApiBase, Config, ConfigError, Token, env};
pub use context::{Context, Delivery, RecordInfo};
pub use error::{BoxError, Error, ResultExt, RunError};
pub use event::Event;
pub use gateway::{CommandError, GatewayCommands};
pub use shardline_wire::{Batch, BatchItemFailure, BatchResponse, Record};

/// AWS event types (`apigw::ApiGatewayV2httpRequest` for Function URLs).
pub use aws_lambda_events;
/// The Lambda runtime, for `LambdaEvent` and `Context` in tests.
pub use lambda_runtime;
/// The Lambda runtime's tracing set-up: call
/// `shardline_lambda_bot::tracing::init_default_subscriber()` in `main`.
pub use lambda_runtime::tracing;
/// The Discord REST client.
pub use twilight_http as http;
/// Discord's types.
pub use twilight_model as model;

/// Runs `bot` as a Lambda function: reads [`Config`] from the environment,
/// builds its clients once, then serves invocations until the runtime stops.
///
/// Batches from the bridge (Invoke API) and signed HTTP deliveries (Function
/// URL, API Gateway v2) are both accepted; the payload tells which.
pub async fn run(bot: Bot) -> Result<(), RunError> {
    let config = Config::from_env().map_err(RunError::Config)?;
    let service = bot.with_config(config);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Box<serde_json::value::RawValue>>| {
            let service = service.clone();
            async move { service.handle(event).await }
        },
    ))
    .await
    .map_err(RunError::Runtime)
}
