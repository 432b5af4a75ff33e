#![allow(clippy::unwrap_used)]

//! NATS stopped for 10 s in the middle of a run and started again: the shards
//! stop reading, keep their sessions, and nothing is lost.

use std::time::Duration;

use shardline_e2e::{Stack, settle_and_compare, stream_len};
use shardline_gateway::Gateway;
use shardline_sim::SimConfig;
use tokio_util::sync::CancellationToken;

const SHARDS: u32 = 4;
const EVENTS_PER_SHARD: u64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_for_ten_seconds_loses_nothing() {
    let mut stack = Stack::start(SimConfig {
        guilds: 16,
        shards: Some(SHARDS),
        max_concurrency: SHARDS,
        identify_window: Duration::from_millis(10),
        events_per_second: 400.0,
        emit_tick: Duration::from_millis(20),
        max_events_per_shard: Some(EVENTS_PER_SHARD),
        resume_buffer: 50_000,
        heartbeat_interval: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await;
    let config = stack.gateway_config();
    let shutdown = CancellationToken::new();
    let gateway = tokio::spawn(Gateway::run(config, shutdown.clone()));
    let js = stack.jetstream().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stream_len(&js, &stack.names).await < 1_000 {
        assert!(tokio::time::Instant::now() < deadline, "no traffic");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(js);

    stack.nats.stop();
    let emitted_before = stack.sim.stats().emitted().count();
    tokio::time::sleep(Duration::from_secs(10)).await;
    stack.nats.restart();

    let total = (u64::from(SHARDS) * EVENTS_PER_SHARD) as usize;
    let comparison = settle_and_compare(&stack, total, Duration::from_secs(90))
        .await
        .unwrap();
    shutdown.cancel();
    gateway.await.unwrap().unwrap();

    assert!(emitted_before < total, "the outage happened mid-run");
    assert!(
        comparison.exactly_once(),
        "missing {} (e.g. {:?}), duplicated {}, unexpected {}",
        comparison.missing.len(),
        comparison.missing.first(),
        comparison.duplicated.len(),
        comparison.unexpected.len()
    );
    let stats = stack.sim.stats();
    assert_eq!(
        stats.identifies.len(),
        SHARDS as usize,
        "sessions were kept"
    );
}
