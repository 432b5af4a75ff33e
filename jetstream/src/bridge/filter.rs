//! Route event filters → JetStream consumer filter subjects.
//!
//! NATS wildcards match whole tokens only, so `GUILD_*` (a prefix of an event
//! name) cannot be a subject filter. A pattern ending in `*` is expanded
//! against [`KNOWN_EVENTS`], the Discord dispatch names, and each match becomes
//! one filter subject; the server then sends the route only what it wants.
//! Exact names need not be known (a new Discord event can be routed by name).

use std::collections::BTreeSet;

use shardline_wire::Names;

/// Discord dispatch event names, for expanding `PREFIX_*` patterns.
///
/// Every name twilight-model 0.18 knows, plus newer ones it does not
/// (soundboard, voice channel effects). A unit test keeps this in step with
/// twilight's `EventType`.
pub const KNOWN_EVENTS: &[&str] = &[
    "APPLICATION_COMMAND_PERMISSIONS_UPDATE",
    "AUTO_MODERATION_ACTION_EXECUTION",
    "AUTO_MODERATION_RULE_CREATE",
    "AUTO_MODERATION_RULE_DELETE",
    "AUTO_MODERATION_RULE_UPDATE",
    "CHANNEL_CREATE",
    "CHANNEL_DELETE",
    "CHANNEL_PINS_UPDATE",
    "CHANNEL_UPDATE",
    "ENTITLEMENT_CREATE",
    "ENTITLEMENT_DELETE",
    "ENTITLEMENT_UPDATE",
    "GUILD_AUDIT_LOG_ENTRY_CREATE",
    "GUILD_BAN_ADD",
    "GUILD_BAN_REMOVE",
    "GUILD_CREATE",
    "GUILD_DELETE",
    "GUILD_EMOJIS_UPDATE",
    "GUILD_INTEGRATIONS_UPDATE",
    "GUILD_MEMBER_ADD",
    "GUILD_MEMBERS_CHUNK",
    "GUILD_MEMBER_REMOVE",
    "GUILD_MEMBER_UPDATE",
    "GUILD_ROLE_CREATE",
    "GUILD_ROLE_DELETE",
    "GUILD_ROLE_UPDATE",
    "GUILD_SCHEDULED_EVENT_CREATE",
    "GUILD_SCHEDULED_EVENT_DELETE",
    "GUILD_SCHEDULED_EVENT_UPDATE",
    "GUILD_SCHEDULED_EVENT_USER_ADD",
    "GUILD_SCHEDULED_EVENT_USER_REMOVE",
    "GUILD_SOUNDBOARD_SOUND_CREATE",
    "GUILD_SOUNDBOARD_SOUND_DELETE",
    "GUILD_SOUNDBOARD_SOUND_UPDATE",
    "GUILD_SOUNDBOARD_SOUNDS_UPDATE",
    "GUILD_STICKERS_UPDATE",
    "GUILD_UPDATE",
    "INTEGRATION_CREATE",
    "INTEGRATION_DELETE",
    "INTEGRATION_UPDATE",
    "INTERACTION_CREATE",
    "INVITE_CREATE",
    "INVITE_DELETE",
    "MESSAGE_CREATE",
    "MESSAGE_DELETE",
    "MESSAGE_DELETE_BULK",
    "MESSAGE_POLL_VOTE_ADD",
    "MESSAGE_POLL_VOTE_REMOVE",
    "MESSAGE_REACTION_ADD",
    "MESSAGE_REACTION_REMOVE",
    "MESSAGE_REACTION_REMOVE_ALL",
    "MESSAGE_REACTION_REMOVE_EMOJI",
    "MESSAGE_UPDATE",
    "PRESENCE_UPDATE",
    "RATE_LIMITED",
    "READY",
    "RESUMED",
    "SOUNDBOARD_SOUNDS",
    "STAGE_INSTANCE_CREATE",
    "STAGE_INSTANCE_DELETE",
    "STAGE_INSTANCE_UPDATE",
    "SUBSCRIPTION_CREATE",
    "SUBSCRIPTION_DELETE",
    "SUBSCRIPTION_UPDATE",
    "THREAD_CREATE",
    "THREAD_DELETE",
    "THREAD_LIST_SYNC",
    "THREAD_MEMBERS_UPDATE",
    "THREAD_MEMBER_UPDATE",
    "THREAD_UPDATE",
    "TYPING_START",
    "USER_UPDATE",
    "VOICE_CHANNEL_EFFECT_SEND",
    "VOICE_SERVER_UPDATE",
    "VOICE_STATE_UPDATE",
    "WEBHOOKS_UPDATE",
];

/// A route's `events` list that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// The list is empty.
    #[error("no events given (use [\"*\"] for every event)")]
    Empty,
    /// An entry is not an event name or pattern.
    #[error("{0:?} is not an event name (A-Z, 0-9 and '_', optionally ending in '*')")]
    Invalid(String),
    /// A pattern matches no known event.
    #[error("{0:?} matches no known Discord event")]
    NoMatch(String),
}

/// The events a route takes, resolved to exact event names (or all events).
///
/// ```
/// use shardline_jetstream::EventFilter;
/// let names = shardline_wire::Names::new("discord", "app").unwrap();
/// let filter = EventFilter::parse(&["MESSAGE_CREATE".into(), "GUILD_BAN_*".into()]).unwrap();
/// assert_eq!(filter.subjects(&names), [
///     "discord.dispatch.GUILD_BAN_ADD.*",
///     "discord.dispatch.GUILD_BAN_REMOVE.*",
///     "discord.dispatch.MESSAGE_CREATE.*",
/// ]);
/// assert!(filter.matches("GUILD_BAN_ADD") && !filter.matches("GUILD_CREATE"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    /// Every dispatch.
    All,
    /// These event names.
    Events(BTreeSet<String>),
}

impl EventFilter {
    /// Resolves a route's `events` list.
    pub fn parse(events: &[String]) -> Result<Self, FilterError> {
        if events.is_empty() {
            return Err(FilterError::Empty);
        }
        let mut names = BTreeSet::new();
        for entry in events {
            let entry = entry.trim();
            if entry == "*" {
                return Ok(Self::All);
            }
            let (stem, pattern) = match entry.strip_suffix('*') {
                Some(stem) => (stem, true),
                None => (entry, false),
            };
            let valid = !stem.is_empty()
                && stem
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(FilterError::Invalid(entry.to_owned()));
            }
            if pattern {
                let before = names.len();
                names.extend(
                    KNOWN_EVENTS
                        .iter()
                        .filter(|known| known.starts_with(stem))
                        .map(|known| (*known).to_owned()),
                );
                if names.len() == before
                    && !KNOWN_EVENTS.iter().any(|known| known.starts_with(stem))
                {
                    return Err(FilterError::NoMatch(entry.to_owned()));
                }
            } else {
                names.insert(stem.to_owned());
            }
        }
        Ok(Self::Events(names))
    }

    /// The consumer's filter subjects.
    pub fn subjects(&self, names: &Names) -> Vec<String> {
        match self {
            Self::All => vec![names.dispatch_filter("*", None)],
            Self::Events(events) => events
                .iter()
                .map(|event| names.dispatch_event_filter(event))
                .collect(),
        }
    }

    /// Whether an event name passes the filter.
    pub fn matches(&self, event: &str) -> bool {
        match self {
            Self::All => true,
            Self::Events(events) => events.contains(event),
        }
    }
}

impl std::fmt::Display for EventFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Events(events) => {
                let list: Vec<&str> = events.iter().map(String::as_str).collect();
                f.write_str(&list.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twilight_model::gateway::event::EventType;

    /// Names newer than twilight-model 0.18's `EventType`.
    const NEWER_THAN_TWILIGHT: &[&str] = &[
        "GUILD_SOUNDBOARD_SOUND_CREATE",
        "GUILD_SOUNDBOARD_SOUND_DELETE",
        "GUILD_SOUNDBOARD_SOUND_UPDATE",
        "GUILD_SOUNDBOARD_SOUNDS_UPDATE",
        "SOUNDBOARD_SOUNDS",
        "VOICE_CHANNEL_EFFECT_SEND",
    ];

    /// Checked through twilight's serde names (its `TryFrom<&str>` lags them
    /// for a few events).
    #[test]
    fn known_events_agree_with_twilight() {
        for name in KNOWN_EVENTS {
            let parsed = serde_json::from_value::<EventType>(serde_json::json!(name));
            assert_eq!(
                parsed.is_ok(),
                !NEWER_THAN_TWILIGHT.contains(name),
                "{name}: twilight says {parsed:?}"
            );
            if let Ok(kind) = parsed {
                assert_eq!(kind.name(), Some(*name));
            }
        }
        let mut sorted = KNOWN_EVENTS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            KNOWN_EVENTS.len(),
            "duplicates in KNOWN_EVENTS"
        );
    }

    #[test]
    fn guild_pattern_expands() {
        let filter = EventFilter::parse(&["GUILD_*".into()]).unwrap();
        assert!(filter.matches("GUILD_CREATE"));
        assert!(filter.matches("GUILD_MEMBERS_CHUNK"));
        assert!(!filter.matches("MESSAGE_CREATE"));
        let names = Names::new("discord", "app").unwrap();
        let subjects = filter.subjects(&names);
        assert!(subjects.contains(&"discord.dispatch.GUILD_CREATE.*".to_owned()));
        assert!(
            subjects
                .iter()
                .all(|s| s.starts_with("discord.dispatch.GUILD_"))
        );
    }

    #[test]
    fn star_means_everything_and_bad_entries_fail() {
        let names = Names::new("discord", "app").unwrap();
        let all = EventFilter::parse(&["MESSAGE_CREATE".into(), "*".into()]).unwrap();
        assert_eq!(all.subjects(&names), ["discord.dispatch.*.*"]);
        assert_eq!(EventFilter::parse(&[]), Err(FilterError::Empty));
        assert!(matches!(
            EventFilter::parse(&["message_create".into()]),
            Err(FilterError::Invalid(_))
        ));
        assert!(matches!(
            EventFilter::parse(&["NOPE_*".into()]),
            Err(FilterError::NoMatch(_))
        ));
        // Unknown exact names are allowed: Discord adds events.
        assert!(EventFilter::parse(&["BRAND_NEW_EVENT".into()]).is_ok());
    }
}
