#![allow(clippy::unwrap_used)]

//! Everything `shardline gateway` logs during a run — at trace level, through
//! reconnects, re-identifies and a refused token — never contains the token.

use std::time::Duration;

use shardline_e2e::{GatewayProcess, Stack, TOKEN, stream_len, wait_for_sim};
use shardline_sim::{Fault, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_appears_in_the_logs() {
    let stack = Stack::start(SimConfig {
        guilds: 4,
        shards: Some(2),
        max_concurrency: 2,
        identify_window: Duration::from_millis(10),
        events_per_second: 200.0,
        heartbeat_interval: Duration::from_millis(500),
        ..SimConfig::default()
    })
    .await;
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("gateway.log");
    let mut env = stack.gateway_env();
    env.push(("RUST_LOG".into(), "trace".into()));
    let gateway = GatewayProcess::start(&env, &log);
    let js = stack.jetstream().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stream_len(&js, &stack.names).await < 100 {
        assert!(tokio::time::Instant::now() < deadline, "no traffic");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.sim.fault(Fault::Reconnect);
    stack
        .sim
        .fault_shard(1, Fault::InvalidSession { resumable: false });
    wait_for_sim(&stack, "a re-identify", Duration::from_secs(20), |s| {
        s.identifies.len() == 3
    })
    .await;
    let status = gateway.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()));

    // A wrong token: /gateway/bot refuses it, the process exits with an error.
    let mut bad = env.clone();
    for (key, value) in &mut bad {
        if key == "SHARDLINE_TOKEN" {
            *value = format!("{TOKEN}-but-wrong");
        }
    }
    let mut refused = GatewayProcess::start(&bad, &log);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while refused.is_running() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a refused token ends the process"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("IDENTIFY"), "the log is the gateway's");
    assert!(text.contains("RESUME"), "the log covers a resume");
    assert!(
        text.contains("gateway/bot"),
        "the log covers the refused token"
    );
    let leaks: Vec<&str> = text.lines().filter(|l| l.contains(TOKEN)).collect();
    assert!(
        leaks.is_empty(),
        "{} log lines contain the token, e.g. {:?}",
        leaks.len(),
        leaks.first()
    );
}
