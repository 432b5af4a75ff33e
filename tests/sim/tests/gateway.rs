//! The gateway protocol, by a hand-written client: HELLO, IDENTIFY → READY →
//! GUILD_CREATE → the stream, in all three transport modes; heartbeats;
//! RESUME; the ledger.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Client, INTENTS, Incoming};
use shardline_sim::{SessionState, SimConfig, SimHandle, Simulator};

fn fast() -> SimConfig {
    SimConfig {
        guilds: 12,
        events_per_second: 400.0,
        emit_tick: Duration::from_millis(5),
        identify_window: Duration::from_millis(1),
        ..SimConfig::default()
    }
}

async fn ready(sim: &SimHandle, compress: Option<&str>, shard: [u32; 2]) -> (Client, String) {
    let mut client = Client::connect(&sim.gateway_url(), "/", compress).await;
    client.hello().await;
    client.identify(shard, INTENTS).await;
    let ready = client.until(0, Some("READY")).await;
    (
        client,
        ready["d"]["session_id"].as_str().unwrap().to_owned(),
    )
}

async fn stream_in(compress: Option<&str>) {
    let sim = Simulator::start(SimConfig {
        max_events_per_shard: Some(200),
        ..fast()
    })
    .await
    .unwrap();
    let mut client = Client::connect(&sim.gateway_url(), "/", compress).await;
    let interval = client.hello().await;
    assert_eq!(interval, 41_250);
    client.identify([1, 3], INTENTS).await;
    let ready = client.payload().await;
    assert_eq!(ready["t"], "READY", "{ready}");
    assert_eq!(ready["s"], 1);
    let d = &ready["d"];
    let session_id = d["session_id"].as_str().unwrap().to_owned();
    assert_eq!(
        d["resume_gateway_url"],
        format!("{}/resume", sim.gateway_url())
    );
    assert_eq!(d["shard"], serde_json::json!([1, 3]));
    let guilds: Vec<u64> = d["guilds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            assert_eq!(g["unavailable"], true);
            g["id"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(guilds.len(), 4, "12 guilds over 3 shards");
    assert_eq!(guilds, sim.guild_ids(1, 3));
    for id in &guilds {
        assert_eq!((id >> 22) % 3, 1);
    }
    // One GUILD_CREATE per guild, then the stream; seqs without gaps.
    let mut expected_seq = 2;
    let mut created = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut stream = 0;
    while stream < 200 {
        let v = client.payload().await;
        if v["op"] == 11 {
            continue;
        }
        assert_eq!(v["op"], 0, "{v}");
        assert_eq!(v["s"], expected_seq, "{v}");
        expected_seq += 1;
        let name = v["t"].as_str().unwrap().to_owned();
        if name == "GUILD_CREATE" {
            assert_eq!(stream, 0, "GUILD_CREATEs come first");
            created.insert(v["d"]["id"].as_str().unwrap().parse::<u64>().unwrap());
            continue;
        }
        stream += 1;
        let guild = v["d"]["guild_id"]
            .as_str()
            .or(v["d"]["id"].as_str())
            .unwrap()
            .parse::<u64>()
            .unwrap();
        assert!(guilds.contains(&guild), "{name} for a guild of this shard");
        names.insert(name);
    }
    assert_eq!(created, guilds.iter().copied().collect());
    assert!(names.len() >= 4, "a mix of events: {names:?}");
    // The cap holds: nothing more comes.
    client.heartbeat().await;
    let ack = client.payload().await;
    assert_eq!(ack["op"], 11);
    assert!(matches!(
        client.next_within(Duration::from_millis(100)).await,
        Incoming::Timeout
    ));
    let stats = sim.stats();
    let session = stats.session(&session_id).unwrap();
    assert_eq!(session.state, SessionState::Connected);
    assert_eq!(session.shard_id, 1);
    assert_eq!(session.last_seq, expected_seq - 1);
    assert_eq!(session.sent_count(), session.last_seq);
    assert_eq!(session.events.len() as u64, session.last_seq);
    assert_eq!(session.stream_events, 200);
    assert_eq!(session.events[0].name, "READY");
    assert_eq!(stats.commands_of("identify"), 1);
    assert_eq!(stats.commands_of("heartbeat"), 1);
    assert_eq!(stats.identifies.len(), 1);
    assert_eq!(stats.identifies[0].outcome, "ready");
    assert_eq!(stats.stream_events, 200);
}

#[tokio::test]
async fn stream_uncompressed() {
    stream_in(None).await;
}

#[tokio::test]
async fn stream_zlib() {
    stream_in(Some("zlib-stream")).await;
}

#[tokio::test]
async fn stream_zstd() {
    stream_in(Some("zstd-stream")).await;
}

#[tokio::test]
async fn resume_replays_what_the_client_missed() {
    let sim = Simulator::start(SimConfig {
        guilds: 2,
        events_per_second: 1000.0,
        ..fast()
    })
    .await
    .unwrap();
    let (mut client, session_id) = ready(&sim, Some("zlib-stream"), [0, 1]).await;
    // Read a little, then vanish without reading the rest.
    for _ in 0..20 {
        client.payload().await;
    }
    let seen = client.last_seq.unwrap();
    client.close(4000).await;
    drop(client);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stats = sim.stats();
    let session = stats.session(&session_id).unwrap();
    assert_eq!(session.state, SessionState::Resumable);
    let mut client = Client::connect(&sim.gateway_url(), "/resume", Some("zstd-stream")).await;
    client.hello().await;
    client.resume(&session_id, seen).await;
    let mut next = seen + 1;
    loop {
        let v = client.payload().await;
        if v["op"] == 0 {
            assert_eq!(v["s"], next, "{v}");
            next += 1;
            if v["t"] == "RESUMED" {
                break;
            }
        }
    }
    let stats = sim.stats();
    let session = stats.session(&session_id).unwrap();
    assert_eq!(session.resumes, 1);
    assert!(
        session.replayed >= 40,
        "50 ms away at 1000/s: {}",
        session.replayed
    );
    assert_eq!(session.state, SessionState::Connected);
    // The stream goes on after RESUMED.
    let v = client.until(0, None).await;
    assert_eq!(v["s"], next);
}

#[tokio::test]
async fn unknown_or_ended_sessions_get_op9_false() {
    let sim = Simulator::start(fast()).await.unwrap();
    let mut client = Client::connect(&sim.gateway_url(), "/resume", None).await;
    client.hello().await;
    client.resume("no-such-session", 3).await;
    let v = client.payload().await;
    assert_eq!(v["op"], 9);
    assert_eq!(v["d"], false);

    // A client closing with 1000 ends its session.
    let (mut client, session_id) = ready(&sim, None, [0, 1]).await;
    client.close(1000).await;
    drop(client);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut client = Client::connect(&sim.gateway_url(), "/resume", None).await;
    client.hello().await;
    client.resume(&session_id, 1).await;
    let v = client.until(9, None).await;
    assert_eq!(v["d"], false);
    let stats = sim.stats();
    assert_eq!(
        stats.session(&session_id).unwrap().state,
        SessionState::Invalidated
    );
}

#[tokio::test]
async fn expired_sessions_cannot_resume() {
    let sim = Simulator::start(SimConfig {
        session_ttl: Duration::from_millis(20),
        ..fast()
    })
    .await
    .unwrap();
    let (mut client, session_id) = ready(&sim, None, [0, 1]).await;
    client.close(4000).await;
    drop(client);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let mut client = Client::connect(&sim.gateway_url(), "/resume", None).await;
    client.hello().await;
    client.resume(&session_id, 1).await;
    let v = client.until(9, None).await;
    assert_eq!(v["d"], false);
}

#[tokio::test]
async fn request_guild_members_is_answered_and_recorded() {
    let sim = Simulator::start(SimConfig {
        events_per_second: 0.0,
        ..fast()
    })
    .await
    .unwrap();
    let (mut client, _) = ready(&sim, None, [0, 1]).await;
    let guild = sim.guild_ids(0, 1)[3];
    client
        .send(serde_json::json!({"op": 8, "d": {"guild_id": guild.to_string(), "query": "", "limit": 3, "nonce": "n1"}}))
        .await;
    client
        .send(serde_json::json!({"op": 3, "d": {"since": null, "activities": [], "status": "idle", "afk": false}}))
        .await;
    client
        .send(serde_json::json!({"op": 4, "d": {"guild_id": guild.to_string(), "channel_id": null, "self_mute": false, "self_deaf": false}}))
        .await;
    let chunk = client.until(0, Some("GUILD_MEMBERS_CHUNK")).await;
    assert_eq!(chunk["d"]["guild_id"], guild.to_string());
    assert_eq!(chunk["d"]["nonce"], "n1");
    assert_eq!(chunk["d"]["members"].as_array().unwrap().len(), 3);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stats = sim.stats();
    assert_eq!(stats.commands_of("request_guild_members"), 1);
    assert_eq!(stats.commands_of("presence_update"), 1);
    assert_eq!(stats.commands_of("voice_state_update"), 1);
    let ops: Vec<u8> = stats.command_log.iter().map(|c| c.op).collect();
    assert_eq!(ops, vec![8, 3, 4]);
    assert_eq!(stats.command_log[1].d["status"], "idle");
}

#[tokio::test]
async fn server_heartbeat_request_is_answered() {
    let sim = Simulator::start(SimConfig {
        events_per_second: 0.0,
        ..fast()
    })
    .await
    .unwrap();
    let (mut client, _) = ready(&sim, None, [0, 1]).await;
    sim.fault(shardline_sim::Fault::RequestHeartbeat);
    let v = client.until(1, None).await;
    assert!(v["d"].is_u64());
    client.heartbeat().await;
    let ack = client.until(11, None).await;
    assert_eq!(ack["op"], 11);
}
