//! The handler context against real servers: gateway commands over a real
//! `nats-server`, Discord REST against a recorder on loopback.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use futures::StreamExt as _;
use serde_json::{Value, json};
use shardline_harness::NatsServer;
use shardline_lambda_bot::event::MessageCreate;
use shardline_lambda_bot::model::gateway::payload::outgoing::RequestGuildMembers;
use shardline_lambda_bot::model::id::Id;
use shardline_lambda_bot::testing::{self, lambda_event, message_create, record};
use shardline_lambda_bot::{ApiBase, Bot, BotService, Config, Context, Error};

/// Sends `!members <guild>` as a member request for that guild.
async fn ask_members(ctx: Context, msg: MessageCreate) -> Result<(), Error> {
    let guild: u64 = msg.content.trim_start_matches("!members ").parse().unwrap();
    let request = RequestGuildMembers::builder(Id::new(guild))
        .nonce("n-1")
        .query("ad", Some(5));
    ctx.gateway().request_guild_members(&request).await?;
    Ok(())
}

fn command_service(nats_url: Option<String>, shard_count: Option<u32>) -> BotService {
    let mut config = Config::with_token("t");
    config.nats_url = nats_url;
    config.shard_count = shard_count;
    config.command_timeout = Duration::from_secs(2);
    Bot::new().on(ask_members).with_config(config)
}

fn ask(id: &str, shard: u32, record_guild: u64, target_guild: u64) -> shardline_lambda_bot::Record {
    record(
        id,
        "MESSAGE_CREATE",
        shard,
        Some(record_guild),
        message_create(record_guild, 1, 1, &format!("!members {target_guild}")),
    )
}

fn failed(response: &shardline_lambda_bot::BatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

#[tokio::test]
async fn gateway_commands_reach_the_guilds_shard() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    // Shard 3 accepts, shard 5 rejects; nobody listens for shard 6.
    let mut accepting = client.subscribe("discord.command.3").await.unwrap();
    let mut rejecting = client.subscribe("discord.command.5").await.unwrap();
    client.flush().await.unwrap();
    let received = Arc::new(Mutex::new(Vec::<(String, Value)>::new()));
    let responder = {
        let client = client.clone();
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            loop {
                let (message, answer) = tokio::select! {
                    Some(m) = accepting.next() => (m, json!({"accepted": true})),
                    Some(m) = rejecting.next() => (m, json!({"accepted": false, "reason": "payload over 4096 bytes"})),
                    else => break,
                };
                let body: Value = serde_json::from_slice(&message.payload).unwrap();
                received
                    .lock()
                    .unwrap()
                    .push((message.subject.to_string(), body));
                let reply = message.reply.unwrap();
                client
                    .publish(reply, answer.to_string().into())
                    .await
                    .unwrap();
            }
        })
    };

    // A guild on shard 6 of 8, where nobody listens.
    let far_guild: u64 = 41771983423143937;
    assert_eq!(shardline_wire::shard_for_guild(far_guild, 8), 6);
    let far_guild_on_3 = (3u64 << 22) | 5; // (id >> 22) % 8 == 3
    let service = command_service(Some(nats.url()), Some(8));
    let batch = testing::batch([
        // The record's own guild: its shard (3) is used as is.
        ask("S:1", 3, 11, 11),
        // Another guild: (id >> 22) % SHARDLINE_SHARD_COUNT → shard 3.
        ask("S:2", 0, 12, far_guild_on_3),
        // Shard 5 rejects: permanent, acknowledged.
        ask("S:3", 5, 13, 13),
        // Nobody answers for shard 6: retried.
        ask("S:4", 6, 14, 14),
        // Shard 6 for far_guild (from the shard count): nobody answers either.
        ask("S:5", 1, 15, far_guild),
    ]);
    let response = service.handle_batch(lambda_event(batch)).await;
    assert_eq!(failed(&response), ["S:4", "S:5"]);

    let mut received = received.lock().unwrap().clone();
    // Sorted by guild id as text: "11" < "12582917" < "13".
    received.sort_by_key(|(_, body)| body["d"]["guild_id"].as_str().unwrap().to_owned());
    let summary: Vec<(String, Value, Value)> = received
        .iter()
        .map(|(subject, body)| {
            (
                subject.clone(),
                body["op"].clone(),
                body["d"]["guild_id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("discord.command.3".to_owned(), json!(8), json!("11")),
            (
                "discord.command.3".to_owned(),
                json!(8),
                json!(far_guild_on_3.to_string())
            ),
            ("discord.command.5".to_owned(), json!(8), json!("13")),
        ]
    );
    assert_eq!(received[0].1["d"]["nonce"], "n-1");
    assert_eq!(received[0].1["d"]["query"], "ad");
    responder.abort();
}

#[tokio::test]
async fn commands_without_nats_or_shard_count_are_permanent_errors() {
    // No NATS configured: retrying will not help.
    let service = command_service(None, None);
    let response = service
        .handle_batch(lambda_event(testing::batch([ask("S:1", 0, 11, 11)])))
        .await;
    assert!(response.batch_item_failures.is_empty());

    // NATS configured but unreachable: retried.
    let service = command_service(Some("nats://127.0.0.1:1".to_owned()), None);
    let response = service
        .handle_batch(lambda_event(testing::batch([ask("S:1", 0, 11, 11)])))
        .await;
    assert_eq!(failed(&response), ["S:1"]);

    // Another guild and no shard count: the shard is unknown, permanently.
    let nats = NatsServer::start();
    let service = command_service(Some(nats.url()), None);
    let response = service
        .handle_batch(lambda_event(testing::batch([ask("S:1", 0, 11, 12)])))
        .await;
    assert!(response.batch_item_failures.is_empty());
}

type Calls = Arc<Mutex<Vec<(u64, Value)>>>;

/// Records `POST /api/v10/channels/{id}/messages`; channel 403 answers 403,
/// channel 500 answers 500, others 200.
async fn rest_recorder() -> (String, Calls) {
    async fn create_message(
        State(calls): State<Calls>,
        Path(channel): Path<u64>,
        axum::Json(body): axum::Json<Value>,
    ) -> (StatusCode, axum::Json<Value>) {
        calls.lock().unwrap().push((channel, body));
        let status = match channel {
            403 => StatusCode::FORBIDDEN,
            500 => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::OK,
        };
        let body = if status == StatusCode::OK {
            json!({"id": "1", "channel_id": channel.to_string()})
        } else {
            json!({"code": 50013, "message": "Missing Permissions"})
        };
        (status, axum::Json(body))
    }
    let calls = Calls::default();
    let app = axum::Router::new()
        .route(
            "/api/v10/channels/{channel}/messages",
            axum::routing::post(create_message),
        )
        .with_state(Arc::clone(&calls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

#[tokio::test]
async fn rest_errors_are_classified_by_status() {
    let (url, calls) = rest_recorder().await;
    let mut config = Config::with_token("t");
    config.api_base = Some(ApiBase::parse(&url).unwrap());
    let service = Bot::new()
        .on(|ctx: Context, msg: MessageCreate| async move {
            ctx.http()
                .create_message(msg.channel_id)
                .content(&msg.content)
                .await?;
            Ok(())
        })
        .with_config(config);
    let batch = testing::batch([
        record(
            "S:1",
            "MESSAGE_CREATE",
            0,
            Some(1),
            message_create(1, 200, 9, "hello"),
        ),
        record(
            "S:2",
            "MESSAGE_CREATE",
            0,
            Some(2),
            message_create(2, 403, 9, "forbidden"),
        ),
        record(
            "S:3",
            "MESSAGE_CREATE",
            0,
            Some(3),
            message_create(3, 500, 9, "flaky"),
        ),
    ]);
    let response = service.handle_batch(lambda_event(batch)).await;
    // 403 will not change on retry; 500 may.
    assert_eq!(failed(&response), ["S:3"]);
    let mut calls = calls.lock().unwrap().clone();
    calls.sort_by_key(|(channel, _)| *channel);
    let seen: Vec<(u64, &str)> = calls
        .iter()
        .map(|(channel, body)| (*channel, body["content"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [(200, "hello"), (403, "forbidden"), (500, "flaky")]);
}
