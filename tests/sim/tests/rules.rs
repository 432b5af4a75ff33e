//! Discord's rules, enforced and counted: REST auth, identify buckets, the
//! session start limit and token revocation, command rate, payload size,
//! token, shard, sharding, intents, heartbeat timeout, protocol order.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{INTENTS, hello_client, ready_client};
use serde_json::{Value, json};
use shardline_sim::{SessionState, SimConfig, Simulator, Violation};

fn quiet() -> SimConfig {
    SimConfig {
        events_per_second: 0.0,
        identify_window: Duration::from_millis(1),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn rest_gateway_bot_needs_the_token_and_reports_limits() {
    let sim = Simulator::start(SimConfig {
        guilds: 2500,
        max_concurrency: 4,
        session_start_total: 100,
        session_start_remaining: Some(42),
        ..quiet()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let open: Value = http
        .get(format!("{}/gateway", sim.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(open["url"], sim.gateway_url());
    let bot = format!("{}/gateway/bot", sim.api_url());
    assert_eq!(http.get(&bot).send().await.unwrap().status(), 401);
    let wrong = http
        .get(&bot)
        .header("Authorization", "Bot nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok: Value = http
        .get(&bot)
        .header("Authorization", "Bot sim-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["url"], sim.gateway_url());
    assert_eq!(ok["shards"], 3, "2500 guilds → 3 shards");
    let limit = &ok["session_start_limit"];
    assert_eq!(limit["total"], 100);
    assert_eq!(limit["remaining"], 42);
    assert_eq!(limit["max_concurrency"], 4);
    assert!(limit["reset_after"].as_u64().unwrap() > 86_000_000);

    // Bot REST calls are recorded.
    let sent = http
        .post(format!("{}/channels/123/messages", sim.api_url()))
        .header("Authorization", "Bot sim-token")
        .json(&json!({"content": "pong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let message: Value = sent.json().await.unwrap();
    assert_eq!(message["channel_id"], "123");
    assert_eq!(message["content"], "pong");
    let unauth = http
        .post(format!("{}/channels/123/messages", sim.api_url()))
        .json(&json!({"content": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    let callback = http
        .post(format!("{}/interactions/77/tok/callback", sim.api_url()))
        .json(&json!({"type": 4, "data": {"content": "hi"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 204);

    let stats = sim.stats();
    let calls: Vec<(&str, &str, u16)> = stats
        .rest
        .iter()
        .map(|c| (c.method.as_str(), c.path.as_str(), c.status))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("GET", "/api/v10/gateway", 200),
            ("GET", "/api/v10/gateway/bot", 401),
            ("GET", "/api/v10/gateway/bot", 401),
            ("GET", "/api/v10/gateway/bot", 200),
            ("POST", "/api/v10/channels/123/messages", 200),
            ("POST", "/api/v10/channels/123/messages", 401),
            ("POST", "/api/v10/interactions/77/tok/callback", 204),
        ]
    );
    assert_eq!(stats.rest[4].body.as_ref().unwrap()["content"], "pong");
    assert_eq!(stats.rest[6].body.as_ref().unwrap()["type"], 4);
    // The ledger is served over HTTP too.
    let over_http: Value = http
        .get(format!("{}/sim/stats", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http["rest"].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn one_identify_per_bucket_per_window() {
    let sim = Simulator::start(SimConfig {
        max_concurrency: 2,
        identify_window: Duration::from_millis(300),
        ..quiet()
    })
    .await
    .unwrap();
    // Shards 0 and 1 are in different buckets: both pass.
    let (_a, _) = ready_client(&sim, None, [0, 4]).await;
    let (_b, _) = ready_client(&sim, None, [1, 4]).await;
    // Shard 2 shares bucket 0 with shard 0: refused with op 9.
    let mut c = hello_client(&sim).await;
    c.identify([2, 4], INTENTS).await;
    let v = c.payload().await;
    assert_eq!(v["op"], 9);
    assert_eq!(v["d"], false);
    // After the window it passes, on the same connection.
    tokio::time::sleep(Duration::from_millis(320)).await;
    c.identify([2, 4], INTENTS).await;
    let v = c.until(0, Some("READY")).await;
    assert_eq!(v["d"]["shard"], json!([2, 4]));

    let stats = sim.stats();
    assert_eq!(stats.violations_of(Violation::IdentifyRateLimit), 1);
    let outcomes: Vec<(u32, u32, &str)> = stats
        .identifies
        .iter()
        .map(|i| (i.shard_id, i.bucket, i.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (0, 0, "ready"),
            (1, 1, "ready"),
            (2, 0, "rate_limited"),
            (2, 0, "ready")
        ]
    );
    let bucket0: Vec<u64> = stats
        .identifies
        .iter()
        .filter(|i| i.bucket == 0 && i.outcome == "ready")
        .map(|i| i.at_ms)
        .collect();
    assert!(bucket0[1] - bucket0[0] >= 300, "{bucket0:?}");
}

#[tokio::test]
async fn spending_the_last_session_start_revokes_the_token() {
    let sim = Simulator::start(SimConfig {
        session_start_total: 10,
        session_start_remaining: Some(3),
        ..quiet()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let remaining = || async {
        let v: Value = http
            .get(format!("{}/gateway/bot", sim.api_url()))
            .header("Authorization", "Bot sim-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["session_start_limit"]["remaining"].as_u64()
    };
    let (mut a, session_a) = ready_client(&sim, None, [0, 2]).await;
    assert_eq!(remaining().await, Some(2));
    let (mut b, _) = ready_client(&sim, None, [1, 2]).await;
    assert_eq!(remaining().await, Some(1));
    // The last one: every session ends with 4004.
    let mut c = hello_client(&sim).await;
    c.identify([0, 2], INTENTS).await;
    assert_eq!(c.closed().await, Some(4004));
    assert_eq!(a.closed().await, Some(4004));
    assert_eq!(b.closed().await, Some(4004));
    // The token is dead everywhere.
    assert_eq!(remaining().await, None, "REST answers 401");
    let mut d = hello_client(&sim).await;
    d.identify([1, 2], INTENTS).await;
    assert_eq!(d.closed().await, Some(4004));
    let mut e = hello_client(&sim).await;
    e.resume(&session_a, 1).await;
    assert_eq!(e.closed().await, Some(4004));

    let stats = sim.stats();
    assert!(stats.token_revoked);
    assert_eq!(
        stats.violations_of(Violation::SessionStartLimitExhausted),
        1
    );
    assert_eq!(
        stats.session(&session_a).unwrap().state,
        SessionState::Invalidated
    );
}

#[tokio::test]
async fn more_than_the_command_limit_closes_4008() {
    let sim = Simulator::start(SimConfig {
        command_limit: 5,
        ..quiet()
    })
    .await
    .unwrap();
    let (mut client, _) = ready_client(&sim, None, [0, 1]).await; // IDENTIFY is command 1
    for _ in 0..4 {
        client.heartbeat().await;
        assert_eq!(client.until(11, None).await["op"], 11);
    }
    client.heartbeat().await;
    assert_eq!(client.closed().await, Some(4008));
    assert_eq!(sim.stats().violations_of(Violation::CommandRateLimit), 1);
}

#[tokio::test]
async fn the_command_window_slides() {
    let sim = Simulator::start(SimConfig {
        command_limit: 3,
        command_window: Duration::from_millis(100),
        ..quiet()
    })
    .await
    .unwrap();
    let (mut client, _) = ready_client(&sim, None, [0, 1]).await;
    for _ in 0..4 {
        client.heartbeat().await;
        client.heartbeat().await;
        assert_eq!(client.until(11, None).await["op"], 11);
        assert_eq!(client.until(11, None).await["op"], 11);
        tokio::time::sleep(Duration::from_millis(110)).await;
    }
    assert_eq!(sim.stats().violations_of(Violation::CommandRateLimit), 0);
}

async fn closes_with(config: SimConfig, payload: String, code: u16, kind: Violation) {
    let sim = Simulator::start(config).await.unwrap();
    let mut client = hello_client(&sim).await;
    client.send_raw(payload).await;
    assert_eq!(client.closed().await, Some(code), "{kind:?}");
    assert_eq!(sim.stats().violations_of(kind), 1, "{kind:?}");
}

fn identify(token: &str, shard: [u32; 2], intents: u64) -> String {
    json!({"op": 2, "d": {"token": token, "intents": intents, "shard": shard,
        "properties": {"os": "linux", "browser": "t", "device": "t"}}})
    .to_string()
}

#[tokio::test]
async fn payload_rules() {
    let big = json!({"op": 3, "d": {"status": "x".repeat(4100)}}).to_string();
    closes_with(quiet(), big, 4002, Violation::PayloadTooLarge).await;
    closes_with(quiet(), "{not json".into(), 4002, Violation::DecodeError).await;
    closes_with(
        quiet(),
        r#"{"op":99,"d":null}"#.into(),
        4001,
        Violation::UnknownOpcode,
    )
    .await;
    closes_with(
        quiet(),
        r#"{"op":3,"d":{"status":"idle"}}"#.into(),
        4003,
        Violation::NotAuthenticated,
    )
    .await;
}

#[tokio::test]
async fn identify_rules() {
    closes_with(
        quiet(),
        identify("wrong", [0, 1], INTENTS),
        4004,
        Violation::AuthenticationFailed,
    )
    .await;
    closes_with(
        quiet(),
        identify("sim-token", [2, 2], INTENTS),
        4010,
        Violation::InvalidShard,
    )
    .await;
    closes_with(
        SimConfig {
            guilds: 30,
            max_guilds_per_shard: 10,
            ..quiet()
        },
        identify("sim-token", [0, 2], INTENTS),
        4011,
        Violation::ShardingRequired,
    )
    .await;
    closes_with(
        quiet(),
        identify("sim-token", [0, 1], 1 << 17),
        4013,
        Violation::InvalidIntents,
    )
    .await;
    closes_with(
        SimConfig {
            allowed_privileged_intents: 0,
            ..quiet()
        },
        identify("sim-token", [0, 1], 1 | (1 << 8)),
        4014,
        Violation::DisallowedIntents,
    )
    .await;
}

#[tokio::test]
async fn twilight_style_bot_prefix_is_accepted_and_a_second_identify_is_not() {
    let sim = Simulator::start(quiet()).await.unwrap();
    let mut client = hello_client(&sim).await;
    client.identify_with("Bot sim-token", [0, 1], INTENTS).await;
    client.until(0, Some("READY")).await;
    client.identify([0, 1], INTENTS).await;
    assert_eq!(client.closed().await, Some(4005));
    assert_eq!(
        sim.stats().violations_of(Violation::AlreadyAuthenticated),
        1
    );
}

#[tokio::test]
async fn resume_past_the_last_seq_closes_4007() {
    let sim = Simulator::start(quiet()).await.unwrap();
    let (mut client, session_id) = ready_client(&sim, None, [0, 1]).await;
    client.close(4000).await;
    drop(client);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut client = hello_client(&sim).await;
    client.resume(&session_id, 10_000).await;
    assert_eq!(client.closed().await, Some(4007));
    assert_eq!(sim.stats().violations_of(Violation::InvalidSeq), 1);
}

#[tokio::test]
async fn a_silent_client_is_closed_4009() {
    let sim = Simulator::start(SimConfig {
        heartbeat_interval: Duration::from_millis(40),
        heartbeat_timeout: Some(Duration::from_millis(60)),
        ..quiet()
    })
    .await
    .unwrap();
    // A heartbeating client stays.
    let (mut alive, _) = ready_client(&sim, None, [0, 1]).await;
    // A silent one goes.
    let mut client = Client::connect(&sim.gateway_url(), "/", None).await;
    assert_eq!(client.hello().await, 40);
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        alive.heartbeat().await;
    }
    assert_eq!(client.closed().await, Some(4009));
    alive.heartbeat().await;
    assert_eq!(alive.until(11, None).await["op"], 11);
    assert_eq!(sim.stats().violations_of(Violation::HeartbeatTimeout), 1);
}

use common::Client;
