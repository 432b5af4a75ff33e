//! What a handler gets besides its event: clients, the record's metadata, config.

use std::sync::Arc;
use std::time::Duration;

use shardline_wire::Record;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::OnceCell;
use twilight_model::id::Id;
use twilight_model::id::marker::GuildMarker;

use crate::config::Config;
use crate::gateway::{CommandError, GatewayCommands};

/// Clients built once per cold start and shared by every invocation.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    http: twilight_http::Client,
    nats: OnceCell<async_nats::Client>,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        // rustls needs one process-wide crypto provider. A build that links
        // more than one (a workspace that also has the AWS SDK) cannot pick
        // by itself, so choose ring, the one twilight-http is built with.
        // An error means a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = twilight_http::Client::builder()
            .token(config.token.expose().to_owned())
            .timeout(Duration::from_secs(10));
        if let Some(base) = &config.api_base {
            builder = builder.proxy(base.host.clone(), base.use_http);
        }
        Self {
            http: builder.build(),
            config,
            nats: OnceCell::new(),
        }
    }

    /// The NATS client, connected on first use; a failed connect is retried
    /// by the next caller.
    pub(crate) async fn nats(&self) -> Result<&async_nats::Client, CommandError> {
        let url = self
            .config
            .nats_url
            .as_deref()
            .ok_or(CommandError::NotConfigured)?;
        self.nats
            .get_or_try_init(|| async {
                let mut options = async_nats::ConnectOptions::new()
                    .name("shardline-lambda-bot")
                    .request_timeout(Some(self.config.command_timeout))
                    .connection_timeout(self.config.command_timeout);
                if let Some(path) = &self.config.nats_creds {
                    options = options.credentials_file(path).await.map_err(|error| {
                        CommandError::Connect(async_nats::ConnectError::with_source(
                            async_nats::ConnectErrorKind::Io,
                            error,
                        ))
                    })?;
                }
                tracing::debug!(url, "connecting to NATS");
                options.connect(url).await.map_err(CommandError::Connect)
            })
            .await
    }
}

/// How the record reached the function.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// A direct invocation (the bridge calling the Lambda Invoke API).
    Invoke,
    /// An HTTP request (Function URL or API Gateway) with a verified signature.
    Webhook {
        /// The `webhook-id` header, stable across retries.
        id: String,
    },
}

/// The metadata of the record being handled.
#[derive(Debug, Clone)]
pub struct RecordInfo {
    /// `<stream>:<stream sequence>`, unique per stored event.
    pub id: String,
    /// The event name, e.g. `MESSAGE_CREATE`.
    pub event: String,
    /// The shard that received the event.
    pub shard: u32,
    /// The gateway sequence number.
    pub seq: u64,
    /// The guild, when the event has one.
    pub guild_id: Option<Id<GuildMarker>>,
    /// Delivery attempt, starting at 1.
    pub attempt: u32,
    /// `true` when re-sent by a replay or a dead-letter redrive.
    pub replay: bool,
    /// When the gateway read the frame, if the record's timestamp parsed.
    pub received_at: Option<OffsetDateTime>,
    /// How the record arrived.
    pub delivery: Delivery,
}

impl RecordInfo {
    pub(crate) fn from_record(record: &Record, delivery: Delivery) -> Self {
        Self {
            id: record.id.clone(),
            event: record.event.clone(),
            shard: record.shard,
            seq: record.seq,
            guild_id: record
                .guild_id
                .as_deref()
                .and_then(|id| id.parse::<u64>().ok())
                .and_then(Id::new_checked),
            attempt: record.attempt,
            replay: record.replay,
            received_at: OffsetDateTime::parse(&record.received_at, &Rfc3339).ok(),
            delivery,
        }
    }

    /// How long ago the gateway received the event (gateway-to-handler
    /// latency on a first delivery). `None` when the timestamp is unknown or
    /// in the future.
    pub fn age(&self) -> Option<Duration> {
        let age = OffsetDateTime::now_utc() - self.received_at?;
        age.try_into().ok()
    }
}

/// What a handler gets besides its event. Cheap to clone.
///
/// ```no_run
/// use shardline_lambda_bot::{Context, Error, event::MessageCreate};
///
/// async fn echo(ctx: Context, msg: MessageCreate) -> Result<(), Error> {
///     if let Some(text) = msg.content.strip_prefix("!echo ") {
///         ctx.http().create_message(msg.channel_id).content(text).await?;
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Context {
    shared: Arc<Shared>,
    record: Arc<RecordInfo>,
}

impl Context {
    pub(crate) fn new(shared: Arc<Shared>, record: RecordInfo) -> Self {
        Self {
            shared,
            record: Arc::new(record),
        }
    }

    /// The Discord REST client (pointed at `SHARDLINE_DISCORD_API_URL` when set).
    pub fn http(&self) -> &twilight_http::Client {
        &self.shared.http
    }

    /// Sends gateway commands (request guild members, voice state, presence).
    pub fn gateway(&self) -> GatewayCommands {
        let record_guild = self
            .record
            .guild_id
            .map(|guild| (guild.get(), self.record.shard));
        GatewayCommands::new(Arc::clone(&self.shared), record_guild)
    }

    /// The record being handled: shard, seq, attempt, replay flag, timestamps.
    pub fn record(&self) -> &RecordInfo {
        &self.record
    }

    /// The function's configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_info_parses_ids_and_times() {
        let record: Record = serde_json::from_str(
            r#"{"id":"S:1","event":"X","shard":2,"seq":9,"guild_id":"41771983423143937",
                "received_at":"2020-01-01T00:00:00.123456789Z","attempt":3,"replay":true,"data":{}}"#,
        )
        .unwrap();
        let info = RecordInfo::from_record(&record, Delivery::Invoke);
        assert_eq!(info.guild_id, Some(Id::new(41771983423143937)));
        assert!(info.replay);
        assert!(info.age().unwrap() > Duration::from_secs(86_400));
        let mut future = record.clone();
        future.received_at = "2999-01-01T00:00:00Z".into();
        assert_eq!(
            RecordInfo::from_record(&future, Delivery::Invoke).age(),
            None
        );
    }
}
