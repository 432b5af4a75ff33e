#![allow(clippy::unwrap_used)]

//! The real `shardline gateway` binary, SIGKILLed five times during a
//! 50,000-event run and restarted each time: every shard RESUMEs from its
//! stored session (no extra IDENTIFY) and the stream holds every dispatch the
//! simulator emitted exactly once.

use std::time::Duration;

use shardline_e2e::{GatewayProcess, Stack, settle_and_compare, stream_len};
use shardline_sim::SimConfig;

const SHARDS: u32 = 4;
const EVENTS: u64 = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_five_times_loses_and_duplicates_nothing() {
    let stack = Stack::start(SimConfig {
        guilds: 16,
        shards: Some(SHARDS),
        max_concurrency: SHARDS,
        identify_window: Duration::from_millis(10),
        events_per_second: 2_000.0,
        emit_tick: Duration::from_millis(10),
        max_events_per_shard: Some(EVENTS / u64::from(SHARDS)),
        resume_buffer: 50_000,
        heartbeat_interval: Duration::from_secs(5),
        ..SimConfig::default()
    })
    .await;
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("gateway.log");
    let env = stack.gateway_env();
    let js = stack.jetstream().await;

    let mut gateway = GatewayProcess::start(&env, &log);
    // Every shard identified and publishing before the first crash.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stack.sim.stats().identifies.len() < SHARDS as usize
        || stream_len(&js, &stack.names).await < 2_000
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gateway did not start; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;

    for _ in 0..5 {
        gateway.kill();
        tokio::time::sleep(Duration::from_millis(150)).await;
        gateway = GatewayProcess::start(&env, &log);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let emitted_at_last_kill = stack.sim.stats().emitted().count();
    let settling = std::time::Instant::now();

    let comparison = settle_and_compare(&stack, EVENTS as usize, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nlog tail:\n{}",
                tail(&std::fs::read_to_string(&log).unwrap_or_default())
            )
        });
    eprintln!("settled in {:?}", settling.elapsed());
    let stopping = std::time::Instant::now();
    let status = gateway.terminate(Duration::from_secs(20));
    eprintln!("SIGTERM → exit {status:?} in {:?}", stopping.elapsed());
    assert!(
        status.is_some_and(|s| s.success()),
        "graceful exit on SIGTERM"
    );

    let stats = stack.sim.stats();
    assert!(
        emitted_at_last_kill < comparison.emitted,
        "the crashes happened mid-run ({emitted_at_last_kill} of {})",
        comparison.emitted
    );
    assert!(
        comparison.exactly_once(),
        "missing {} (e.g. {:?}), duplicated {} (e.g. {:?}), unexpected {}",
        comparison.missing.len(),
        comparison.missing.first(),
        comparison.duplicated.len(),
        comparison.duplicated.first(),
        comparison.unexpected.len()
    );
    assert_eq!(
        stats.identifies.len(),
        SHARDS as usize,
        "restarts RESUMEd instead of identifying: {:?}",
        stats.identifies
    );
    let resumes: u32 = stats.sessions.iter().map(|s| s.resumes).sum();
    assert!(resumes >= 5 * SHARDS, "{resumes} resumes");
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
