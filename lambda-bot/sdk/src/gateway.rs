//! Gateway commands: asking a shard to send an opcode to Discord.
//!
//! A command is the gateway payload Discord expects (`{"op":8,"d":{…}}`),
//! sent as a NATS request to `<prefix>.command.<shard>`; the shard that holds
//! the guild's connection answers whether it accepted it.

use std::sync::Arc;

use serde::Serialize;
use shardline_wire::shard_for_guild;
use twilight_model::gateway::payload::outgoing::{RequestGuildMembers, UpdateVoiceState};
use twilight_model::id::Id;
use twilight_model::id::marker::GuildMarker;

use crate::context::Shared;

/// Why a gateway command was not delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// `SHARDLINE_NATS_URL` is not set, so the function cannot reach the gateway.
    #[error("gateway commands need SHARDLINE_NATS_URL")]
    NotConfigured,
    /// The shard for a guild is unknown: it is not the record's guild, and
    /// `SHARDLINE_SHARD_COUNT` is not set.
    #[error("the shard of guild {guild_id} is unknown: set SHARDLINE_SHARD_COUNT")]
    UnknownShard {
        /// The guild the command was for.
        guild_id: u64,
    },
    /// The command could not be encoded as JSON.
    #[error("the command could not be encoded")]
    Encode(#[source] serde_json::Error),
    /// Connecting to NATS failed.
    #[error("connecting to NATS failed")]
    Connect(#[source] async_nats::ConnectError),
    /// No shard is listening on the subject (the shard is restarting or not running).
    #[error("no shard answers on {subject}")]
    NoResponders {
        /// The command subject.
        subject: String,
    },
    /// The shard did not answer in time.
    #[error("the shard did not answer on {subject} in time")]
    TimedOut {
        /// The command subject.
        subject: String,
    },
    /// The request failed for another reason.
    #[error("the command request on {subject} failed")]
    Request {
        /// The command subject.
        subject: String,
        /// The NATS error.
        #[source]
        source: async_nats::RequestError,
    },
    /// The shard refused the command (too large, malformed, not allowed).
    #[error("the shard rejected the command: {reason}")]
    Rejected {
        /// The shard's reason.
        reason: String,
    },
}

impl CommandError {
    /// Whether sending again later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Connect(_)
                | Self::NoResponders { .. }
                | Self::TimedOut { .. }
                | Self::Request { .. }
        )
    }
}

/// Sends gateway commands to the shard that holds a guild. Get one with
/// [`Context::gateway`](crate::Context::gateway).
///
/// ```no_run
/// # async fn example(ctx: shardline_lambda_bot::Context) -> Result<(), shardline_lambda_bot::Error> {
/// use shardline_lambda_bot::model::gateway::payload::outgoing::RequestGuildMembers;
/// use shardline_lambda_bot::model::id::Id;
///
/// let request = RequestGuildMembers::builder(Id::new(41771983423143937))
///     .nonce("lookup-1")
///     .query("ad", Some(10));
/// ctx.gateway().request_guild_members(&request).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct GatewayCommands {
    shared: Arc<Shared>,
    /// The record's guild and the shard it arrived on: exact for that guild
    /// without knowing the shard count.
    record_guild: Option<(u64, u32)>,
}

impl GatewayCommands {
    pub(crate) fn new(shared: Arc<Shared>, record_guild: Option<(u64, u32)>) -> Self {
        Self {
            shared,
            record_guild,
        }
    }

    /// The shard holding `guild_id`: the record's shard for the record's guild,
    /// else `(guild_id >> 22) % SHARDLINE_SHARD_COUNT`.
    pub fn shard_for(&self, guild_id: Id<GuildMarker>) -> Result<u32, CommandError> {
        let guild_id = guild_id.get();
        match (self.record_guild, self.shared.config.shard_count) {
            (Some((guild, shard)), _) if guild == guild_id => Ok(shard),
            (_, Some(count)) => Ok(shard_for_guild(guild_id, count)),
            _ => Err(CommandError::UnknownShard { guild_id }),
        }
    }

    /// Asks Discord for a guild's members (op 8); they arrive as
    /// `GUILD_MEMBERS_CHUNK` events, carrying the request's nonce.
    pub async fn request_guild_members(
        &self,
        request: &RequestGuildMembers,
    ) -> Result<(), CommandError> {
        self.send_for_guild(request.d.guild_id, request).await
    }

    /// Joins, moves or leaves a voice channel (op 4).
    pub async fn update_voice_state(&self, update: &UpdateVoiceState) -> Result<(), CommandError> {
        self.send_for_guild(update.d.guild_id, update).await
    }

    /// Sends any gateway payload to the shard holding `guild_id`.
    pub async fn send_for_guild(
        &self,
        guild_id: Id<GuildMarker>,
        command: &impl Serialize,
    ) -> Result<(), CommandError> {
        let shard = self.shard_for(guild_id)?;
        self.send_to_shard(shard, command).await
    }

    /// Sends any gateway payload to one shard (e.g. a presence update).
    #[tracing::instrument(skip(self, command), fields(subject))]
    pub async fn send_to_shard(
        &self,
        shard: u32,
        command: &impl Serialize,
    ) -> Result<(), CommandError> {
        let payload = serde_json::to_vec(command).map_err(CommandError::Encode)?;
        let subject = self.shared.config.names.command_subject(shard);
        tracing::Span::current().record("subject", subject.as_str());
        let client = self.shared.nats().await?;
        let reply = client
            .request(subject.clone(), payload.into())
            .await
            .map_err(|source| match source.kind() {
                async_nats::RequestErrorKind::NoResponders => CommandError::NoResponders {
                    subject: subject.clone(),
                },
                async_nats::RequestErrorKind::TimedOut => CommandError::TimedOut {
                    subject: subject.clone(),
                },
                async_nats::RequestErrorKind::InvalidSubject
                | async_nats::RequestErrorKind::MaxPayloadExceeded => CommandError::Rejected {
                    reason: source.to_string(),
                },
                _ => CommandError::Request {
                    subject: subject.clone(),
                    source,
                },
            })?;
        match rejection(&reply.payload) {
            Some(reason) => Err(CommandError::Rejected { reason }),
            None => {
                tracing::debug!("gateway command accepted");
                Ok(())
            }
        }
    }
}

/// The shard's answer: an empty body or `{"accepted":true}` accepts;
/// `{"accepted":false,"reason":"…"}` (or `"error":"…"`) rejects.
fn rejection(reply: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Reply {
        accepted: Option<bool>,
        ok: Option<bool>,
        reason: Option<String>,
        error: Option<String>,
    }
    if reply.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    match serde_json::from_slice::<Reply>(reply) {
        Ok(reply) => {
            let refused = reply.accepted == Some(false) || reply.ok == Some(false);
            if refused || reply.error.is_some() {
                Some(
                    reply
                        .reason
                        .or(reply.error)
                        .unwrap_or_else(|| "no reason given".to_owned()),
                )
            } else {
                None
            }
        }
        Err(_) => Some(format!(
            "unreadable answer {:?}",
            String::from_utf8_lossy(&reply[..reply.len().min(200)])
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::rejection;

    #[test]
    fn reads_answers() {
        assert_eq!(rejection(b""), None);
        assert_eq!(rejection(br#"{"accepted":true}"#), None);
        assert_eq!(
            rejection(br#"{"accepted":false,"reason":"payload over 4096 bytes"}"#).as_deref(),
            Some("payload over 4096 bytes")
        );
        assert_eq!(rejection(br#"{"error":"bad"}"#).as_deref(), Some("bad"));
        assert!(rejection(b"nope").is_some());
    }
}
