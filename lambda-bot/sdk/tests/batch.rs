//! Batches driven through `BotService` with `LambdaEvent`s built here.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use shardline_lambda_bot::event::{MemberAdd, MessageCreate};
use shardline_lambda_bot::testing::{self, lambda_event, message_create, record};
use shardline_lambda_bot::{Bot, BotService, Config, Context, Error, GuildOrdering, Response};

type Log = Arc<Mutex<Vec<String>>>;

fn service(bot: Bot) -> BotService {
    bot.with_config(Config::with_token("test-token"))
}

/// A bot whose MESSAGE_CREATE handler logs `<record id>` and fails as the
/// message content says: `fail` (retryable), `permanent`, `panic`, `sleep <ms>`.
fn scripted_bot(log: &Log) -> Bot {
    let log = Arc::clone(log);
    Bot::new().on(move |ctx: Context, msg: MessageCreate| {
        let log = Arc::clone(&log);
        async move {
            if let Some(ms) = msg.content.strip_prefix("sleep ") {
                tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
            }
            log.lock().unwrap().push(ctx.record().id.clone());
            match msg.content.as_str() {
                "fail" => Err(Error::new("the upstream is busy")),
                "permanent" => Err(Error::permanent("this will never work")),
                "panic" => panic!("handler bug"),
                _ => Ok(()),
            }
        }
    })
}

fn msg(id: &str, guild: u64, content: &str) -> shardline_lambda_bot::Record {
    record(
        id,
        "MESSAGE_CREATE",
        0,
        Some(guild),
        message_create(guild, 1, 1, content),
    )
}

fn failures(response: &shardline_lambda_bot::BatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

#[tokio::test]
async fn a_retryable_failure_reports_exactly_that_record() {
    let log = Log::default();
    let service = service(scripted_bot(&log));
    let batch = testing::batch([
        msg("S:1", 10, "ok"),
        msg("S:2", 20, "ok"),
        msg("S:3", 30, "fail"),
        msg("S:4", 10, "ok"),
        msg("S:5", 40, "ok"),
    ]);
    let response = service.handle_batch(lambda_event(batch)).await;
    assert_eq!(failures(&response), ["S:3"]);
    let mut ran = log.lock().unwrap().clone();
    ran.sort();
    assert_eq!(ran, ["S:1", "S:2", "S:3", "S:4", "S:5"]);
}

#[tokio::test]
async fn permanent_errors_and_undecodable_events_are_acknowledged() {
    let log = Log::default();
    let service = service(scripted_bot(&log));
    let batch = testing::batch([
        msg("S:1", 10, "permanent"),
        msg("S:2", 10, "ok"),
        // A MESSAGE_CREATE that is not a message: retrying will not help.
        record("S:3", "MESSAGE_CREATE", 0, Some(20), json!({"nope": true})),
        // No handler for this event: acknowledged without being decoded.
        record(
            "S:4",
            "TYPING_START",
            0,
            Some(20),
            json!("not even an object"),
        ),
    ]);
    let response = service.handle_batch(lambda_event(batch)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(*log.lock().unwrap(), ["S:1", "S:2"]);
}

#[tokio::test]
async fn a_panicking_handler_is_retried_not_fatal() {
    let log = Log::default();
    let service = service(scripted_bot(&log));
    let batch = testing::batch([msg("S:1", 10, "panic"), msg("S:2", 20, "ok")]);
    let response = service.handle_batch(lambda_event(batch)).await;
    assert_eq!(failures(&response), ["S:1"]);
}

#[tokio::test(start_paused = true)]
async fn order_within_a_guild_concurrency_across_guilds() {
    let log = Log::default();
    let service = service(scripted_bot(&log));
    // Guild 10's first record is the slowest: if guild order were not kept,
    // S:3 would finish before S:1.
    let batch = testing::batch([
        msg("S:1", 10, "sleep 300"),
        msg("S:2", 20, "sleep 100"),
        msg("S:3", 10, "sleep 10"),
        msg("S:4", 20, "sleep 10"),
        msg("S:5", 30, "sleep 50"),
    ]);
    let started = tokio::time::Instant::now();
    let response = service.handle_batch(lambda_event(batch)).await;
    let elapsed = started.elapsed();
    assert!(response.batch_item_failures.is_empty());
    let ran = log.lock().unwrap().clone();
    let position = |id: &str| ran.iter().position(|r| r == id).unwrap();
    assert!(position("S:1") < position("S:3"), "{ran:?}");
    assert!(position("S:2") < position("S:4"), "{ran:?}");
    // Guilds ran side by side: the slowest guild (310 ms) bounds the batch,
    // not the sum of every record (470 ms).
    assert_eq!(ran.first().map(String::as_str), Some("S:5"), "{ran:?}");
    assert!(elapsed < Duration::from_millis(320), "{elapsed:?}");
}

#[tokio::test]
async fn strict_ordering_holds_back_the_rest_of_a_failed_guild() {
    let log = Log::default();
    let service = service(scripted_bot(&log));
    let batch = testing::batch([
        msg("S:1", 10, "fail"),
        msg("S:2", 20, "ok"),
        msg("S:3", 10, "ok"),
        msg("S:4", 10, "ok"),
    ]);
    let response = service.handle_batch(lambda_event(batch.clone())).await;
    assert_eq!(failures(&response), ["S:1", "S:3", "S:4"]);
    assert_eq!(
        *log.lock().unwrap(),
        ["S:1", "S:2"],
        "held-back records ran"
    );

    let log = Log::default();
    let service = scripted_bot(&log)
        .ordering(GuildOrdering::Continue)
        .with_config(Config::with_token("t"));
    let response = service.handle_batch(lambda_event(batch)).await;
    assert_eq!(failures(&response), ["S:1"]);
    assert_eq!(log.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn typed_handlers_get_their_own_events_and_metadata() {
    let seen = Log::default();
    let on_join = {
        let seen = Arc::clone(&seen);
        move |ctx: Context, member: MemberAdd| {
            let seen = Arc::clone(&seen);
            async move {
                let info = ctx.record();
                assert_eq!(info.guild_id, Some(member.guild_id));
                assert!(info.age().unwrap() < Duration::from_secs(60));
                seen.lock().unwrap().push(format!(
                    "{} joined {} via shard {}",
                    member.user.name, member.guild_id, info.shard
                ));
                Ok(())
            }
        }
    };
    let service = service(Bot::new().on(on_join));
    let batch = testing::batch([
        record(
            "S:1",
            "GUILD_MEMBER_ADD",
            5,
            Some(77),
            testing::member_add(77, 9, "ada"),
        ),
        msg("S:2", 77, "ignored: no MESSAGE_CREATE handler"),
    ]);
    let response = service.handle_batch(lambda_event(batch)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(*seen.lock().unwrap(), ["ada joined 77 via shard 5"]);
}

#[tokio::test]
async fn handle_detects_a_batch_payload() {
    let log = Log::default();
    let service = service(scripted_bot(&log));
    let batch = testing::batch([msg("S:1", 10, "fail")]);
    let raw = serde_json::value::to_raw_value(&batch).unwrap();
    let Response::Batch(response) = service.handle(lambda_event(raw)).await.unwrap() else {
        panic!("a batch gets a batch response");
    };
    assert_eq!(failures(&response), ["S:1"]);
    let json = serde_json::to_value(Response::Batch(response)).unwrap();
    assert_eq!(
        json,
        json!({"batchItemFailures": [{"itemIdentifier": "S:1"}]})
    );

    let other = serde_json::value::to_raw_value(&json!({"hello": "world"})).unwrap();
    assert!(service.handle(lambda_event(other)).await.is_err());
}

#[tokio::test]
async fn the_token_never_shows_in_debug_output() {
    let seen = Log::default();
    let bot = {
        let seen = Arc::clone(&seen);
        Bot::new().on(move |ctx: Context, _msg: MessageCreate| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap().push(format!("{ctx:?}"));
                Ok(())
            }
        })
    };
    let service = bot.with_config(Config::with_token("very-secret-token"));
    let batch = testing::batch([msg("S:1", 10, "hi")]);
    service.handle_batch(lambda_event(batch)).await;
    let context = seen.lock().unwrap().concat();
    assert!(context.contains("S:1"), "{context}");
    for text in [format!("{service:?}"), context] {
        assert!(!text.contains("very-secret-token"), "{text}");
    }
}
