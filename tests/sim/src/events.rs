//! What the simulated Discord says: guild ids per shard, READY, GUILD_CREATE
//! and the stream of dispatches (a pool of templates built once from the
//! seed, stamped per event with the guild id and a fresh snowflake).

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};

/// Milliseconds since the Discord epoch (2015) of the first simulated guild:
/// 2020-01-01T00:00:00Z.
const GUILD_EPOCH_MS: u64 = 157_766_400_000;
/// The bot user's and application's id.
pub(crate) const BOT_USER_ID: u64 = 1_100_000_000_000_000_001;

/// The snowflake of guild number `index` (0-based). Guild `index` lives on
/// shard `(GUILD_EPOCH_MS + index) % num_shards`.
pub(crate) fn guild_id(index: u64) -> u64 {
    ((GUILD_EPOCH_MS + index) << 22) | (index.wrapping_mul(2_654_435_761) & 0x3F_FFFF)
}

/// Discord's rule, computed here independently of the gateway code.
pub(crate) fn shard_of(guild_id: u64, num_shards: u32) -> u32 {
    let shards = u64::from(num_shards.max(1));
    u32::try_from((guild_id >> 22) % shards).expect("a remainder below a u32 fits a u32")
}

/// Ids of the guilds (out of `total`) that belong to `shard` of `num_shards`.
pub(crate) fn guilds_for_shard(shard: u32, num_shards: u32, total: u64) -> Vec<u64> {
    let n = u64::from(num_shards.max(1));
    let first = (u64::from(shard) + n - GUILD_EPOCH_MS % n) % n;
    (first..total).step_by(n as usize).map(guild_id).collect()
}

/// A snowflake for an object created now-ish: `serial` makes it unique.
pub(crate) fn object_id(serial: u64) -> u64 {
    // 2024-06-01 in Discord-epoch milliseconds, plus one ms per 4096 serials.
    const BASE_MS: u64 = 296_956_800_000;
    ((BASE_MS + (serial >> 12)) << 22) | (serial & 0xFFF)
}

/// The kinds of stream dispatch, with their share of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    PresenceUpdate,
    MessageCreate,
    TypingStart,
    MessageReactionAdd,
    MessageDelete,
    GuildMemberAdd,
    GuildMemberRemove,
    InteractionCreate,
    GuildDelete,
}

impl Kind {
    /// Per-mille weights: presence-heavy, like a real mid-size bot.
    const MIX: [(Kind, u32); 9] = [
        (Kind::PresenceUpdate, 340),
        (Kind::MessageCreate, 250),
        (Kind::TypingStart, 150),
        (Kind::MessageReactionAdd, 100),
        (Kind::MessageDelete, 40),
        (Kind::GuildMemberAdd, 45),
        (Kind::GuildMemberRemove, 35),
        (Kind::InteractionCreate, 39),
        (Kind::GuildDelete, 1),
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::PresenceUpdate => "PRESENCE_UPDATE",
            Kind::MessageCreate => "MESSAGE_CREATE",
            Kind::TypingStart => "TYPING_START",
            Kind::MessageReactionAdd => "MESSAGE_REACTION_ADD",
            Kind::MessageDelete => "MESSAGE_DELETE",
            Kind::GuildMemberAdd => "GUILD_MEMBER_ADD",
            Kind::GuildMemberRemove => "GUILD_MEMBER_REMOVE",
            Kind::InteractionCreate => "INTERACTION_CREATE",
            Kind::GuildDelete => "GUILD_DELETE",
        }
    }

    fn pick(rng: &mut StdRng) -> Kind {
        let mut roll = rng.random_range(0..1000u32);
        for (kind, weight) in Self::MIX {
            if roll < weight {
                return kind;
            }
            roll -= weight;
        }
        Kind::PresenceUpdate
    }
}

/// How a template's head is stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// `{"guild_id":"G",`
    Guild,
    /// `{"guild_id":"G","id":"N",`
    GuildAndId,
    /// `{"guild_id":"G","id":"N","token":"sim_N",`
    Interaction,
    /// `{"id":"G",` (guild objects carry their id as `id`)
    GuildAsId,
}

#[derive(Debug, Clone)]
struct Template {
    kind: Kind,
    head: Head,
    /// The rest of the `d` object after the head, ending with `}`.
    tail: String,
}

/// The pool every session draws its dispatches from.
#[derive(Debug)]
pub(crate) struct EventPool {
    templates: Vec<Template>,
}

const WORDS: [&str; 24] = [
    "shard",
    "gateway",
    "hello",
    "ping",
    "pong",
    "event",
    "stream",
    "guild",
    "channel",
    "bot",
    "resume",
    "ready",
    "heartbeat",
    "latency",
    "zombie",
    "bucket",
    "identify",
    "nats",
    "lambda",
    "deploy",
    "the",
    "a",
    "with",
    "rust",
];

fn sentence(rng: &mut StdRng, max_words: usize) -> String {
    let count = rng.random_range(1..=max_words);
    let mut text = String::new();
    for i in 0..count {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    text
}

fn user(rng: &mut StdRng) -> Value {
    let id = object_id(rng.random_range(0..1u64 << 40));
    json!({
        "id": id.to_string(),
        "username": format!("user{}", id % 100_000),
        "discriminator": "0",
        "global_name": format!("User {}", id % 100_000),
        "avatar": null,
        "bot": false,
        "public_flags": 0,
    })
}

fn member(user: Option<Value>) -> Value {
    let mut member = json!({
        "nick": null,
        "avatar": null,
        "roles": [],
        "joined_at": "2023-03-14T15:09:26.535000+00:00",
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false,
    });
    if let (Some(user), Some(map)) = (user, member.as_object_mut()) {
        map.insert("user".into(), user);
    }
    member
}

fn tail_of(value: &Value) -> String {
    let text = value.to_string();
    // `{"a":1}` → `"a":1}`: the head supplies the opening brace.
    text.strip_prefix('{').map(str::to_owned).unwrap_or(text)
}

fn template(kind: Kind, rng: &mut StdRng) -> Template {
    let channel = object_id(rng.random_range(0..1u64 << 40)).to_string();
    let timestamp = "2024-06-01T12:00:00.000000+00:00";
    let (head, body) = match kind {
        Kind::PresenceUpdate => {
            let statuses = ["online", "idle", "dnd"];
            let status = statuses[rng.random_range(0..statuses.len())];
            let activities = if rng.random_bool(0.6) {
                json!([{"name": sentence(rng, 3), "type": 0, "created_at": 1_717_243_200_000u64}])
            } else {
                json!([])
            };
            let user_id = object_id(rng.random_range(0..1u64 << 40)).to_string();
            (
                Head::Guild,
                json!({
                    "user": {"id": user_id},
                    "status": status,
                    "activities": activities,
                    "client_status": {"desktop": status},
                }),
            )
        }
        Kind::MessageCreate => {
            let mentions = if rng.random_bool(0.2) {
                json!([user(rng)])
            } else {
                json!([])
            };
            (
                Head::GuildAndId,
                json!({
                    "channel_id": channel,
                    "author": user(rng),
                    "member": member(None),
                    "content": sentence(rng, 40),
                    "timestamp": timestamp,
                    "edited_timestamp": null,
                    "tts": false,
                    "mention_everyone": false,
                    "mentions": mentions,
                    "mention_roles": [],
                    "attachments": [],
                    "embeds": [],
                    "components": [],
                    "pinned": false,
                    "type": 0,
                    "flags": 0,
                }),
            )
        }
        Kind::TypingStart => (
            Head::Guild,
            json!({
                "channel_id": channel,
                "user_id": object_id(rng.random_range(0..1u64 << 40)).to_string(),
                "timestamp": 1_717_243_200u64,
                "member": member(Some(user(rng))),
            }),
        ),
        Kind::MessageReactionAdd => {
            let emojis = ["👍", "🎉", "❤️", "😂", "🦀"];
            (
                Head::Guild,
                json!({
                    "user_id": object_id(rng.random_range(0..1u64 << 40)).to_string(),
                    "channel_id": channel,
                    "message_id": object_id(rng.random_range(0..1u64 << 40)).to_string(),
                    "message_author_id": object_id(rng.random_range(0..1u64 << 40)).to_string(),
                    "emoji": {"id": null, "name": emojis[rng.random_range(0..emojis.len())]},
                    "member": member(Some(user(rng))),
                    "burst": false,
                    "burst_colors": [],
                    "type": 0,
                }),
            )
        }
        Kind::MessageDelete => (Head::GuildAndId, json!({"channel_id": channel})),
        Kind::GuildMemberAdd => {
            let mut body = member(Some(user(rng)));
            if let Some(map) = body.as_object_mut() {
                map.insert("joined_at".into(), json!(timestamp));
            }
            (Head::Guild, body)
        }
        Kind::GuildMemberRemove => (Head::Guild, json!({"user": user(rng)})),
        Kind::InteractionCreate => {
            let mut member = member(Some(user(rng)));
            if let Some(map) = member.as_object_mut() {
                map.insert("permissions".into(), json!("2248473465835073"));
            }
            (
                Head::Interaction,
                json!({
                    "application_id": BOT_USER_ID.to_string(),
                    "type": 2,
                    "data": {
                        "id": object_id(7).to_string(),
                        "name": "ping",
                        "type": 1,
                        "options": [],
                    },
                    "channel_id": channel,
                    "channel": {"id": channel, "type": 0, "name": "general", "permissions": "2248473465835073"},
                    "member": member,
                    "version": 1,
                    "app_permissions": "2248473465835073",
                    "locale": "en-US",
                    "guild_locale": "en-US",
                    "entitlements": [],
                    "authorizing_integration_owners": {"0": "0"},
                    "context": 0,
                    "attachment_size_limit": 10_485_760,
                }),
            )
        }
        Kind::GuildDelete => (Head::GuildAsId, json!({"unavailable": true})),
    };
    Template {
        kind,
        head,
        tail: tail_of(&body),
    }
}

impl EventPool {
    /// Builds `size` templates from `seed`.
    pub(crate) fn new(seed: u64, size: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x005E_ED0F_E7E7);
        let templates = (0..size.max(1))
            .map(|_| {
                let kind = Kind::pick(&mut rng);
                template(kind, &mut rng)
            })
            .collect();
        Self { templates }
    }

    /// Writes one dispatch payload (`{"t":..,"s":..,"op":0,"d":{..}}`) into
    /// `out` and returns its event name. `pick` chooses the template,
    /// `serial` makes ids unique.
    pub(crate) fn write_dispatch(
        &self,
        out: &mut String,
        pick: usize,
        guild: u64,
        serial: u64,
        seq: u64,
    ) -> &'static str {
        use std::fmt::Write as _;
        let template = &self.templates[pick % self.templates.len()];
        let name = template.kind.name();
        // Writing into a String cannot fail.
        let _ = write!(out, r#"{{"t":"{name}","s":{seq},"op":0,"d":{{"#);
        let id = object_id(serial);
        let _ = match template.head {
            Head::Guild => write!(out, r#""guild_id":"{guild}","#),
            Head::GuildAndId => write!(out, r#""guild_id":"{guild}","id":"{id}","#),
            Head::Interaction => {
                write!(
                    out,
                    r#""guild_id":"{guild}","id":"{id}","token":"sim_{id}","#
                )
            }
            Head::GuildAsId => write!(out, r#""id":"{guild}","#),
        };
        out.push_str(&template.tail);
        out.push('}');
        name
    }

    pub(crate) fn len(&self) -> usize {
        self.templates.len()
    }
}

/// A dispatch payload with a given name and body.
pub(crate) fn dispatch(name: &str, seq: u64, d: &Value) -> String {
    format!(r#"{{"t":"{name}","s":{seq},"op":0,"d":{d}}}"#)
}

/// READY's `d`.
pub(crate) fn ready(session_id: &str, resume_url: &str, shard: [u32; 2], guilds: &[u64]) -> Value {
    let guilds: Vec<Value> = guilds
        .iter()
        .map(|id| json!({"id": id.to_string(), "unavailable": true}))
        .collect();
    json!({
        "v": 10,
        "user": {
            "id": BOT_USER_ID.to_string(),
            "username": "shardline-sim",
            "discriminator": "0",
            "global_name": null,
            "avatar": null,
            "accent_color": null,
            "banner": null,
            "bot": true,
            "mfa_enabled": false,
            "verified": true,
            "flags": 0,
        },
        "guilds": guilds,
        "session_id": session_id,
        "resume_gateway_url": resume_url,
        "shard": shard,
        "application": {"id": BOT_USER_ID.to_string(), "flags": 0},
        "_trace": ["shardline-sim"],
    })
}

/// GUILD_CREATE's `d` for a guild (small: one channel, one role, the bot).
pub(crate) fn guild_create(guild: u64) -> Value {
    let channel = (guild + 1).to_string();
    json!({
        "id": guild.to_string(),
        "name": format!("guild {}", guild % 100_000),
        "icon": null,
        "splash": null,
        "discovery_splash": null,
        "banner": null,
        "description": null,
        "owner_id": object_id(guild % 4096).to_string(),
        "afk_channel_id": null,
        "afk_timeout": 300,
        "application_id": null,
        "default_message_notifications": 1,
        "explicit_content_filter": 0,
        "features": [],
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_progress_bar_enabled": false,
        "preferred_locale": "en-US",
        "public_updates_channel_id": null,
        "rules_channel_id": null,
        "system_channel_id": null,
        "system_channel_flags": 0,
        "vanity_url_code": null,
        "verification_level": 1,
        "widget_enabled": false,
        "roles": [{
            "id": guild.to_string(),
            "name": "@everyone",
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
            "hoist": false,
            "icon": null,
            "unicode_emoji": null,
            "position": 0,
            "permissions": "2248473465835073",
            "managed": false,
            "mentionable": false,
            "flags": 0,
        }],
        "emojis": [],
        "stickers": [],
        "joined_at": "2024-01-01T00:00:00.000000+00:00",
        "large": false,
        "unavailable": false,
        "member_count": 2,
        "members": [],
        "channels": [{
            "id": channel,
            "type": 0,
            "guild_id": guild.to_string(),
            "name": "general",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": false,
            "parent_id": null,
            "topic": null,
            "last_message_id": null,
            "rate_limit_per_user": 0,
        }],
        "threads": [],
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
    })
}

/// GUILD_MEMBERS_CHUNK's `d` answering REQUEST_GUILD_MEMBERS.
pub(crate) fn members_chunk(guild: u64, nonce: Option<&str>, seed: u64, limit: u64) -> Value {
    let mut rng = StdRng::seed_from_u64(seed ^ guild);
    let count = limit.clamp(1, 5);
    let members: Vec<Value> = (0..count).map(|_| member(Some(user(&mut rng)))).collect();
    let mut d = json!({
        "guild_id": guild.to_string(),
        "members": members,
        "chunk_index": 0,
        "chunk_count": 1,
        "not_found": [],
    });
    if let (Some(nonce), Some(map)) = (nonce, d.as_object_mut()) {
        map.insert("nonce".into(), json!(nonce));
    }
    d
}

/// A seeded picker of templates and guilds for one session.
#[derive(Debug)]
pub(crate) struct Picker {
    rng: StdRng,
}

impl Picker {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub(crate) fn index(&mut self, len: usize) -> usize {
        if len == 0 {
            0
        } else {
            self.rng.random_range(0..len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guilds_land_on_their_shard() {
        for shards in [1u32, 2, 3, 16, 100, 5000] {
            let mut seen = 0;
            for shard in 0..shards.min(40) {
                for id in guilds_for_shard(shard, shards, 2000) {
                    assert_eq!(((id >> 22) % u64::from(shards)) as u32, shard);
                    assert_eq!(shard_of(id, shards), shard);
                    seen += 1;
                }
            }
            if shards <= 40 {
                assert_eq!(seen, 2000, "every guild on exactly one shard of {shards}");
            }
        }
    }

    #[test]
    fn dispatches_are_json_with_guild_ids() {
        let pool = EventPool::new(7, 64);
        let mut out = String::new();
        for pick in 0..pool.len() {
            out.clear();
            let name = pool.write_dispatch(&mut out, pick, guild_id(3), 99, 5);
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["t"], name);
            assert_eq!(v["s"], 5);
            let gid = v["d"].get("guild_id").or_else(|| v["d"].get("id")).unwrap();
            assert_eq!(gid, &json!(guild_id(3).to_string()));
        }
    }

    /// Every payload must parse as the real thing: twilight-model's gateway
    /// event types (written by people who never saw this simulator).
    #[test]
    fn payloads_parse_with_twilight_model() {
        use serde::de::DeserializeSeed as _;
        use twilight_model::gateway::event::GatewayEventDeserializer;

        fn parse(text: &str) {
            let deserializer = GatewayEventDeserializer::from_json(text)
                .unwrap_or_else(|| panic!("not a gateway event: {text}"));
            let mut json = serde_json::Deserializer::from_str(text);
            if let Err(error) = deserializer.deserialize(&mut json) {
                panic!("twilight-model rejects {error}: {text}");
            }
        }

        let pool = EventPool::new(3, 200);
        let mut out = String::new();
        let mut names = std::collections::BTreeSet::new();
        for pick in 0..pool.len() {
            out.clear();
            names.insert(pool.write_dispatch(&mut out, pick, guild_id(1), 5, 9));
            parse(&out);
        }
        assert!(names.len() >= 7, "a mix of kinds: {names:?}");
        parse(&dispatch(
            "READY",
            1,
            &ready("abc", "ws://127.0.0.1:1/resume", [0, 2], &[guild_id(0)]),
        ));
        parse(&dispatch("GUILD_CREATE", 2, &guild_create(guild_id(0))));
        parse(&dispatch(
            "GUILD_MEMBERS_CHUNK",
            3,
            &members_chunk(guild_id(0), Some("n"), 1, 3),
        ));
        parse(&dispatch("RESUMED", 4, &json!({"_trace": []})));
    }
}
