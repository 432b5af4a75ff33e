//! Building invocations in tests: records, batches, Discord payloads and
//! signed HTTP requests, so a bot's handlers can be driven without AWS.
//!
//! ```
//! use shardline_lambda_bot::testing;
//!
//! let record = testing::record("S:1", "MESSAGE_CREATE", 0, Some(10),
//!     testing::message_create(10, 20, 30, "!ping"));
//! let event = testing::lambda_event(testing::batch([record]));
//! assert_eq!(event.payload.records.len(), 1);
//! ```

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::http;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use shardline_wire::webhook::{self, SigningKey};
use shardline_wire::{Batch, Record};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A record as the bridge sends it, received by the gateway just now.
pub fn record(id: &str, event: &str, shard: u32, guild_id: Option<u64>, data: Value) -> Record {
    let received_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("RFC 3339 formats every present-day UTC time");
    let data = serde_json::value::to_raw_value(&data).expect("a JSON value serialises");
    Record {
        id: id.to_owned(),
        event: event.to_owned(),
        shard,
        seq: 1,
        guild_id: guild_id.map(|id| id.to_string()),
        received_at,
        attempt: 1,
        replay: false,
        data,
    }
}

/// A batch of records.
pub fn batch(records: impl IntoIterator<Item = Record>) -> Batch {
    Batch {
        records: records.into_iter().collect(),
    }
}

/// Wraps a payload in a `LambdaEvent` with a default invocation context.
pub fn lambda_event<T>(payload: T) -> LambdaEvent<T> {
    LambdaEvent::new(payload, lambda_runtime::Context::default())
}

/// A Discord user object.
pub fn user(id: u64, name: &str) -> Value {
    json!({"id": id.to_string(), "username": name, "discriminator": "0", "avatar": null})
}

/// A `MESSAGE_CREATE` payload from user 1 (`tester`).
pub fn message_create(guild_id: u64, channel_id: u64, message_id: u64, content: &str) -> Value {
    json!({
        "id": message_id.to_string(), "channel_id": channel_id.to_string(),
        "guild_id": guild_id.to_string(), "author": user(1, "tester"), "content": content,
        "timestamp": "2026-11-25T00:00:00.000000+00:00", "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": [], "embeds": [], "pinned": false, "type": 0
    })
}

/// A guild member object.
pub fn member(user_id: u64, name: &str) -> Value {
    json!({
        "user": user(user_id, name), "roles": [], "joined_at": "2026-11-25T00:00:00.000000+00:00",
        "deaf": false, "mute": false, "flags": 0, "nick": null,
        "communication_disabled_until": null
    })
}

/// A `GUILD_MEMBER_ADD` payload.
pub fn member_add(guild_id: u64, user_id: u64, name: &str) -> Value {
    let mut value = member(user_id, name);
    value["guild_id"] = json!(guild_id.to_string());
    value
}

/// A `GUILD_MEMBERS_CHUNK` payload answering a request with `nonce`.
pub fn member_chunk(guild_id: u64, nonce: &str, names: &[&str]) -> Value {
    let members: Vec<Value> = (100u64..)
        .zip(names)
        .map(|(id, name)| member(id, name))
        .collect();
    json!({
        "guild_id": guild_id.to_string(), "members": members, "chunk_index": 0,
        "chunk_count": 1, "not_found": [], "nonce": nonce
    })
}

/// An `INTERACTION_CREATE` payload: slash command `name` used by user 1 in a guild.
pub fn slash_command(
    guild_id: u64,
    channel_id: u64,
    application_id: u64,
    interaction_id: u64,
    token: &str,
    name: &str,
) -> Value {
    json!({
        "id": interaction_id.to_string(), "application_id": application_id.to_string(),
        "type": 2, "token": token, "version": 1, "guild_id": guild_id.to_string(),
        "channel": {"id": channel_id.to_string(), "type": 0},
        "channel_id": channel_id.to_string(),
        "member": {
            "user": user(1, "tester"), "roles": [], "joined_at": "2026-11-25T00:00:00.000000+00:00",
            "deaf": false, "mute": false, "flags": 0, "permissions": "0"
        },
        "data": {"id": "500", "name": name, "type": 1},
        "attachment_size_limit": 10485760, "authorizing_integration_owners": {},
        "entitlements": []
    })
}

/// The Standard Webhooks headers for `body` signed with `keys` at `timestamp`.
pub fn webhook_headers(
    keys: &[SigningKey],
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    [
        (webhook::ID_HEADER, id.to_owned()),
        (webhook::TIMESTAMP_HEADER, timestamp.to_string()),
        (
            webhook::SIGNATURE_HEADER,
            webhook::sign(keys, id, timestamp, body),
        ),
    ]
}

/// A Function URL / API Gateway v2 `POST` request carrying `body` and `headers`.
pub fn http_request<'a>(
    body: &str,
    headers: impl IntoIterator<Item = (&'a str, String)>,
) -> ApiGatewayV2httpRequest {
    let mut request = ApiGatewayV2httpRequest::default();
    request.request_context.http.method = http::Method::POST;
    request.raw_path = Some("/".to_owned());
    request.body = Some(body.to_owned());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            request.headers.insert(name, value);
        }
    }
    request
}

/// Unix time now, in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{InteractionCreate, MemberAdd, MemberChunk, MessageCreate};

    #[test]
    fn payloads_decode_as_twilight_types() {
        let msg: MessageCreate = serde_json::from_value(message_create(1, 2, 3, "hi")).unwrap();
        assert_eq!(msg.content, "hi");
        let add: MemberAdd = serde_json::from_value(member_add(1, 7, "new")).unwrap();
        assert_eq!(add.user.name, "new");
        let chunk: MemberChunk = serde_json::from_value(member_chunk(1, "n", &["a", "b"])).unwrap();
        assert_eq!(chunk.members.len(), 2);
        let interaction: InteractionCreate =
            serde_json::from_value(slash_command(1, 2, 3, 4, "tok", "hello")).unwrap();
        assert_eq!(interaction.token, "tok");
    }
}
