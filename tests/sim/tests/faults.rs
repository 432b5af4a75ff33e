//! Faults on demand: each kind, per shard or all, through the Rust API, the
//! HTTP control endpoint and scheduled `--fault` specs.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Incoming, ready_client};
use serde_json::{Value, json};
use shardline_sim::{Fault, ScheduledFault, SessionState, SimConfig, Simulator};

fn streaming() -> SimConfig {
    SimConfig {
        guilds: 8,
        events_per_second: 200.0,
        emit_tick: Duration::from_millis(5),
        identify_window: Duration::from_millis(1),
        ..SimConfig::default()
    }
}

fn quiet() -> SimConfig {
    SimConfig {
        events_per_second: 0.0,
        ..streaming()
    }
}

#[tokio::test]
async fn reconnect_and_invalid_session() {
    let sim = Simulator::start(quiet()).await.unwrap();
    let (mut client, session_id) = ready_client(&sim, None, [0, 1]).await;
    assert_eq!(sim.fault(Fault::Reconnect), 1);
    assert_eq!(client.until(7, None).await["d"], Value::Null);
    sim.fault(Fault::InvalidSession { resumable: true });
    assert_eq!(client.until(9, None).await["d"], true);
    assert_eq!(
        sim.stats().session(&session_id).unwrap().state,
        SessionState::Connected
    );
    sim.fault(Fault::InvalidSession { resumable: false });
    assert_eq!(client.until(9, None).await["d"], false);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stats = sim.stats();
    assert_eq!(
        stats.session(&session_id).unwrap().state,
        SessionState::Invalidated
    );
    assert_eq!(stats.faults.len(), 3);
}

#[tokio::test]
async fn drop_ends_tcp_without_a_close_frame_and_keeps_the_session() {
    let sim = Simulator::start(quiet()).await.unwrap();
    let (mut client, session_id) = ready_client(&sim, None, [0, 1]).await;
    sim.fault(Fault::Drop);
    loop {
        match client.next_within(Duration::from_secs(5)).await {
            Incoming::Payload(_) => continue,
            Incoming::Gone => break,
            other => panic!("expected the TCP connection to vanish, got {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        sim.stats().session(&session_id).unwrap().state,
        SessionState::Resumable
    );
}

#[tokio::test]
async fn close_with_a_code_hits_only_the_target_shard() {
    let sim = Simulator::start(quiet()).await.unwrap();
    let (mut zero, _) = ready_client(&sim, None, [0, 2]).await;
    let (mut one, one_session) = ready_client(&sim, None, [1, 2]).await;
    assert_eq!(sim.fault_shard(1, Fault::Close { code: 4000 }), 1);
    assert_eq!(one.closed().await, Some(4000));
    zero.heartbeat().await;
    assert_eq!(zero.until(11, None).await["op"], 11);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        sim.stats().session(&one_session).unwrap().state,
        SessionState::Resumable,
        "4000 keeps the session"
    );
}

#[tokio::test]
async fn zombie_stops_acks_but_not_dispatches() {
    let sim = Simulator::start(streaming()).await.unwrap();
    let (mut client, _) = ready_client(&sim, None, [0, 1]).await;
    sim.fault(Fault::Zombie);
    tokio::time::sleep(Duration::from_millis(20)).await;
    client.heartbeat().await;
    let mut dispatches = 0;
    while dispatches < 30 {
        let v = client.payload().await;
        assert_ne!(v["op"], 11, "a zombie never ACKs");
        if v["op"] == 0 {
            dispatches += 1;
        }
    }
}

#[tokio::test]
async fn corrupt_frames_in_each_mode() {
    for mode in [Some("zlib-stream"), Some("zstd-stream"), None] {
        let sim = Simulator::start(quiet()).await.unwrap();
        let (mut client, _) = ready_client(&sim, mode, [0, 1]).await;
        sim.fault(Fault::CorruptFrame);
        loop {
            match client.next_within(Duration::from_secs(5)).await {
                Incoming::Payload(_) => continue,
                Incoming::Undecodable(_) => break,
                other => panic!("{mode:?}: expected garbage, got {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn non_json_and_oversized_frames() {
    let sim = Simulator::start(quiet()).await.unwrap();
    let (mut client, session_id) = ready_client(&sim, Some("zlib-stream"), [0, 1]).await;
    sim.fault(Fault::NonJson);
    loop {
        match client.next_within(Duration::from_secs(5)).await {
            Incoming::Payload(_) => continue,
            Incoming::Undecodable(bytes) => {
                assert_eq!(bytes, b"this is not json {");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    sim.fault(Fault::Oversized { bytes: 200_000 });
    let big = client.until(0, Some("MESSAGE_CREATE")).await;
    assert!(big.to_string().len() > 200_000);
    let seq = big["s"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stats = sim.stats();
    let session = stats.session(&session_id).unwrap();
    assert!(
        session.was_sent(seq),
        "an oversized dispatch is in the ledger"
    );
}

#[tokio::test]
async fn stall_silences_the_connection_for_a_while() {
    let sim = Simulator::start(streaming()).await.unwrap();
    let (mut client, _) = ready_client(&sim, None, [0, 1]).await;
    client.until(0, Some("MESSAGE_CREATE")).await;
    sim.fault(Fault::Stall { ms: 300 });
    // Drain what was in flight, then expect silence.
    let started = tokio::time::Instant::now();
    let silent_for;
    loop {
        let before = tokio::time::Instant::now();
        match client.next_within(Duration::from_millis(150)).await {
            Incoming::Timeout => {
                silent_for = before.elapsed();
                break;
            }
            Incoming::Payload(_) => assert!(started.elapsed() < Duration::from_millis(100)),
            other => panic!("{other:?}"),
        }
    }
    assert!(silent_for >= Duration::from_millis(150));
    // And the stream comes back after the stall.
    let v = client.until(0, None).await;
    assert!(started.elapsed() >= Duration::from_millis(250), "{v}");
}

#[tokio::test]
async fn guilds_grow_over_time() {
    let sim = Simulator::start(SimConfig {
        guilds: 998,
        ..quiet()
    })
    .await
    .unwrap();
    let (mut client, session_id) = ready_client(&sim, None, [1, 2]).await;
    sim.fault(Fault::GrowGuilds {
        count: 6,
        over_ms: 60,
    });
    // Guilds 998..1004: the odd-numbered shard gets three of them.
    let mut created = Vec::new();
    while created.len() < 3 {
        let v = client.until(0, Some("GUILD_CREATE")).await;
        created.push(v["d"]["id"].as_str().unwrap().parse::<u64>().unwrap());
    }
    for id in &created {
        assert_eq!((id >> 22) % 2, 1);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = sim.stats();
    assert_eq!(stats.guilds, 1004);
    assert_eq!(
        stats.session(&session_id).unwrap().guilds.len(),
        499 + 3,
        "the session's guild list grew"
    );
    let bot: Value = reqwest::Client::new()
        .get(format!("{}/gateway/bot", sim.api_url()))
        .header("Authorization", "Bot sim-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bot["shards"], 2, "1004 guilds → 2 shards");
}

#[tokio::test]
async fn the_http_control_endpoint_applies_faults() {
    let sim = Simulator::start(quiet()).await.unwrap();
    let (mut client, _) = ready_client(&sim, None, [0, 1]).await;
    let http = reqwest::Client::new();
    let answer: Value = http
        .post(format!("{}/sim/fault", sim.url()))
        .json(&json!({"fault": {"kind": "close", "code": 4001}, "shard": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["connections"], 1);
    assert_eq!(client.closed().await, Some(4001));
    let bad = http
        .post(format!("{}/sim/fault", sim.url()))
        .json(&json!({"fault": {"kind": "explode"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn scheduled_faults_fire_on_time() {
    let fault: ScheduledFault = "close=4002@150ms#0".parse().unwrap();
    let sim = Simulator::start(SimConfig {
        faults: vec![fault],
        ..quiet()
    })
    .await
    .unwrap();
    let started = tokio::time::Instant::now();
    let (mut client, _) = ready_client(&sim, None, [0, 1]).await;
    assert_eq!(client.closed().await, Some(4002));
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(sim.stats().faults[0].connections, 1);
}
