//! Discord events a handler can take, as `twilight-model` types.
//!
//! Every type here implements [`Event`], which ties it to its dispatch name;
//! `Bot::on` uses that to route records to handlers.

use serde::de::DeserializeOwned;

pub use twilight_model::gateway::payload::incoming::*;

/// A gateway dispatch a handler can be registered for.
///
/// Implemented for twilight's incoming payload types. To handle an event this
/// crate does not list, implement it for your own `Deserialize` type:
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct SoundboardSounds { guild_id: String }
///
/// impl shardline_lambda_bot::Event for SoundboardSounds {
///     const NAME: &'static str = "SOUNDBOARD_SOUNDS";
/// }
/// ```
pub trait Event: DeserializeOwned + Send + 'static {
    /// The dispatch's event name (`t`), e.g. `MESSAGE_CREATE`.
    const NAME: &'static str;
}

macro_rules! events {
    ($($ty:ident => $name:literal,)*) => {
        $(impl Event for $ty { const NAME: &'static str = $name; })*

        /// Every event name this module has a type for.
        pub const KNOWN: &[&str] = &[$($name),*];
    };
}

events! {
    AutoModerationActionExecution => "AUTO_MODERATION_ACTION_EXECUTION",
    AutoModerationRuleCreate => "AUTO_MODERATION_RULE_CREATE",
    AutoModerationRuleDelete => "AUTO_MODERATION_RULE_DELETE",
    AutoModerationRuleUpdate => "AUTO_MODERATION_RULE_UPDATE",
    BanAdd => "GUILD_BAN_ADD",
    BanRemove => "GUILD_BAN_REMOVE",
    ChannelCreate => "CHANNEL_CREATE",
    ChannelDelete => "CHANNEL_DELETE",
    ChannelPinsUpdate => "CHANNEL_PINS_UPDATE",
    ChannelUpdate => "CHANNEL_UPDATE",
    CommandPermissionsUpdate => "APPLICATION_COMMAND_PERMISSIONS_UPDATE",
    EntitlementCreate => "ENTITLEMENT_CREATE",
    EntitlementDelete => "ENTITLEMENT_DELETE",
    EntitlementUpdate => "ENTITLEMENT_UPDATE",
    GuildAuditLogEntryCreate => "GUILD_AUDIT_LOG_ENTRY_CREATE",
    GuildCreate => "GUILD_CREATE",
    GuildDelete => "GUILD_DELETE",
    GuildEmojisUpdate => "GUILD_EMOJIS_UPDATE",
    GuildIntegrationsUpdate => "GUILD_INTEGRATIONS_UPDATE",
    GuildScheduledEventCreate => "GUILD_SCHEDULED_EVENT_CREATE",
    GuildScheduledEventDelete => "GUILD_SCHEDULED_EVENT_DELETE",
    GuildScheduledEventUpdate => "GUILD_SCHEDULED_EVENT_UPDATE",
    GuildScheduledEventUserAdd => "GUILD_SCHEDULED_EVENT_USER_ADD",
    GuildScheduledEventUserRemove => "GUILD_SCHEDULED_EVENT_USER_REMOVE",
    GuildStickersUpdate => "GUILD_STICKERS_UPDATE",
    GuildUpdate => "GUILD_UPDATE",
    IntegrationCreate => "INTEGRATION_CREATE",
    IntegrationDelete => "INTEGRATION_DELETE",
    IntegrationUpdate => "INTEGRATION_UPDATE",
    InteractionCreate => "INTERACTION_CREATE",
    InviteCreate => "INVITE_CREATE",
    InviteDelete => "INVITE_DELETE",
    MemberAdd => "GUILD_MEMBER_ADD",
    MemberChunk => "GUILD_MEMBERS_CHUNK",
    MemberRemove => "GUILD_MEMBER_REMOVE",
    MemberUpdate => "GUILD_MEMBER_UPDATE",
    MessageCreate => "MESSAGE_CREATE",
    MessageDelete => "MESSAGE_DELETE",
    MessageDeleteBulk => "MESSAGE_DELETE_BULK",
    MessagePollVoteAdd => "MESSAGE_POLL_VOTE_ADD",
    MessagePollVoteRemove => "MESSAGE_POLL_VOTE_REMOVE",
    MessageUpdate => "MESSAGE_UPDATE",
    PresenceUpdate => "PRESENCE_UPDATE",
    RateLimited => "RATE_LIMITED",
    ReactionAdd => "MESSAGE_REACTION_ADD",
    ReactionRemove => "MESSAGE_REACTION_REMOVE",
    ReactionRemoveAll => "MESSAGE_REACTION_REMOVE_ALL",
    ReactionRemoveEmoji => "MESSAGE_REACTION_REMOVE_EMOJI",
    Ready => "READY",
    RoleCreate => "GUILD_ROLE_CREATE",
    RoleDelete => "GUILD_ROLE_DELETE",
    RoleUpdate => "GUILD_ROLE_UPDATE",
    StageInstanceCreate => "STAGE_INSTANCE_CREATE",
    StageInstanceDelete => "STAGE_INSTANCE_DELETE",
    StageInstanceUpdate => "STAGE_INSTANCE_UPDATE",
    SubscriptionCreate => "SUBSCRIPTION_CREATE",
    SubscriptionDelete => "SUBSCRIPTION_DELETE",
    SubscriptionUpdate => "SUBSCRIPTION_UPDATE",
    ThreadCreate => "THREAD_CREATE",
    ThreadDelete => "THREAD_DELETE",
    ThreadListSync => "THREAD_LIST_SYNC",
    ThreadMemberUpdate => "THREAD_MEMBER_UPDATE",
    ThreadMembersUpdate => "THREAD_MEMBERS_UPDATE",
    ThreadUpdate => "THREAD_UPDATE",
    TypingStart => "TYPING_START",
    UserUpdate => "USER_UPDATE",
    VoiceServerUpdate => "VOICE_SERVER_UPDATE",
    VoiceStateUpdate => "VOICE_STATE_UPDATE",
    WebhooksUpdate => "WEBHOOKS_UPDATE",
}

#[cfg(test)]
mod tests {
    use twilight_model::gateway::event::EventType;

    /// Our names agree with twilight's own spelling of each event.
    #[test]
    fn names_match_twilight() {
        for name in super::KNOWN {
            let kind: EventType = serde_json::from_value(serde_json::Value::from(*name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(kind.name(), Some(*name));
        }
    }
}
