//! The twilight-gateway conformance run, shared by the zstd-stream test
//! (this package) and the zlib-stream test (package `shardline-sim-zlib`).
#![allow(clippy::unwrap_used, dead_code)]

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::Value;
use shardline_sim::{Compress, Fault, SimConfig, Simulator};
use twilight_gateway::{ConfigBuilder, EventTypeFlags, Intents, Message, Shard, ShardId};

/// Runs twilight-gateway against a simulator and returns the compression
/// the session used (twilight picks it by cargo feature).
pub async fn twilight_survives_op7() -> Compress {
    let sim = Simulator::start(SimConfig {
        guilds: 6,
        events_per_second: 2000.0,
        emit_tick: Duration::from_millis(5),
        heartbeat_interval: Duration::from_millis(500),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let config = ConfigBuilder::new(
        sim.token().expose().to_owned(),
        Intents::GUILDS | Intents::GUILD_MESSAGES | Intents::GUILD_PRESENCES,
    )
    .proxy_url(sim.gateway_url())
    .build();
    let mut shard = Shard::with_config(ShardId::new(1, 2), config);

    let mut seqs: Vec<u64> = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    let mut session_id = None;
    let mut reconnects = 0;
    let mut resumed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seqs.len() < 1500 {
        assert!(tokio::time::Instant::now() < deadline, "too slow");
        let message = tokio::time::timeout(Duration::from_secs(5), shard.next())
            .await
            .expect("twilight yields within 5 s")
            .expect("the shard stream goes on");
        let Ok(Message::Text(text)) = message else {
            continue;
        };
        // Every payload parses as twilight-model's event types.
        twilight_gateway::parse(text.clone(), EventTypeFlags::all())
            .unwrap_or_else(|e| panic!("twilight cannot parse {e}: {text}"));
        let v: Value = serde_json::from_str(&text).unwrap();
        match v["op"].as_u64() {
            Some(0) => {
                let name = v["t"].as_str().unwrap().to_owned();
                seqs.push(v["s"].as_u64().unwrap());
                if name == "READY" {
                    session_id = Some(v["d"]["session_id"].as_str().unwrap().to_owned());
                    assert_eq!(v["d"]["shard"], serde_json::json!([1, 2]));
                }
                if name == "RESUMED" {
                    resumed = true;
                }
                names.insert(name);
                if seqs.len() == 300 {
                    assert_eq!(sim.fault_shard(1, Fault::Reconnect), 1);
                }
            }
            Some(7) => reconnects += 1,
            _ => {}
        }
    }
    assert_eq!(reconnects, 1);
    assert!(resumed, "twilight resumed after op 7");
    // Each seq exactly once, none missing: the replay filled the gap.
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
    for name in ["READY", "GUILD_CREATE", "MESSAGE_CREATE", "PRESENCE_UPDATE"] {
        assert!(names.contains(name), "{name} in {names:?}");
    }

    let stats = sim.stats();
    let session = stats.session(session_id.as_deref().unwrap()).unwrap();
    assert_eq!(session.resumes, 1);
    assert!(session.replayed > 0, "missed events were replayed");
    assert_eq!(stats.identifies.len(), 1, "RESUME, not a new IDENTIFY");
    assert_eq!(stats.commands_of("resume"), 1);
    // What twilight saw is exactly what the ledger says was sent.
    let last = *seqs.last().unwrap();
    for seq in 1..=last {
        assert!(session.was_sent(seq));
    }
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
    session.compress
}
