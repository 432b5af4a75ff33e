#![allow(clippy::unwrap_used)]

//! 16 shards against the simulator: every dispatch it emitted is in the
//! stream exactly once, with zlib-stream and with zstd-stream.

use std::time::Duration;

use shardline_e2e::{Stack, settle_and_compare};
use shardline_gateway::{Compression, Gateway};
use shardline_sim::SimConfig;
use tokio_util::sync::CancellationToken;

const SHARDS: u32 = 16;
const EVENTS_PER_SHARD: u64 = 1_500;

async fn sixteen_shards(compression: Compression) {
    let stack = Stack::start(SimConfig {
        guilds: 64,
        shards: Some(SHARDS),
        max_concurrency: 16,
        identify_window: Duration::from_millis(10),
        events_per_second: 3_000.0,
        emit_tick: Duration::from_millis(10),
        max_events_per_shard: Some(EVENTS_PER_SHARD),
        heartbeat_interval: Duration::from_secs(5),
        ..SimConfig::default()
    })
    .await;
    let mut config = stack.gateway_config();
    config.compression = compression;
    let shutdown = CancellationToken::new();
    let gateway = tokio::spawn(Gateway::run(config, shutdown.clone()));

    let min = (u64::from(SHARDS) * EVENTS_PER_SHARD) as usize;
    let comparison = settle_and_compare(&stack, min, Duration::from_secs(60))
        .await
        .unwrap();
    shutdown.cancel();
    gateway.await.unwrap().unwrap();

    assert!(comparison.emitted >= min, "{comparison:?}");
    assert!(
        comparison.exactly_once(),
        "missing {} (e.g. {:?}), duplicated {} (e.g. {:?}), unexpected {}",
        comparison.missing.len(),
        comparison.missing.first(),
        comparison.duplicated.len(),
        comparison.duplicated.first(),
        comparison.unexpected.len()
    );
    let stats = stack.sim.stats();
    assert_eq!(
        stats.identifies.len(),
        SHARDS as usize,
        "one IDENTIFY per shard"
    );
    assert!(
        stats.violations.values().all(|n| *n == 0),
        "{:?}",
        stats.violations
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_shards_zlib_stream_exactly_once() {
    sixteen_shards(Compression::ZlibStream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_shards_zstd_stream_exactly_once() {
    sixteen_shards(Compression::ZstdStream).await;
}
