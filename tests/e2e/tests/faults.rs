#![allow(clippy::unwrap_used)]

//! Every fault the simulator can inject gets the right reaction — resume,
//! identify again, or stop with a clear reason — with no panic and nothing
//! lost.

use std::time::Duration;

use shardline_e2e::{ShardSet, Stack, assert_exactly_once, settle_and_compare, wait_for_sim};
use shardline_gateway::{Compression, ShardExit};
use shardline_sim::{Fault, SimConfig, SimStats};

const SHARDS: u32 = 2;
const EVENTS_PER_SHARD: u64 = 1_500;

fn sim_config() -> SimConfig {
    SimConfig {
        guilds: 8,
        shards: Some(SHARDS),
        max_concurrency: SHARDS,
        identify_window: Duration::from_millis(10),
        events_per_second: 500.0,
        emit_tick: Duration::from_millis(10),
        max_events_per_shard: Some(EVENTS_PER_SHARD),
        resume_buffer: 50_000,
        heartbeat_interval: Duration::from_millis(500),
        ..SimConfig::default()
    }
}

fn resumes_of_shard(stats: &SimStats, shard: u32) -> u32 {
    stats.sessions_of_shard(shard).map(|s| s.resumes).sum()
}

/// Runs 2 shards, applies `fault` to shard 0 once traffic flows, waits for
/// `reaction`, then checks exactly-once delivery.
async fn survive(
    compression: Compression,
    fault: Fault,
    what: &str,
    reaction: impl Fn(&SimStats) -> bool,
) -> SimStats {
    let stack = Stack::start(sim_config()).await;
    let shards = ShardSet::start(&stack, SHARDS, compression).await;
    shards.wait_active(Duration::from_secs(20)).await;
    wait_for_sim(&stack, "traffic", Duration::from_secs(20), |s| {
        s.emitted().count() > 400
    })
    .await;
    assert!(
        stack.sim.fault_shard(0, fault) > 0,
        "the fault reached shard 0"
    );
    wait_for_sim(&stack, what, Duration::from_secs(20), &reaction).await;
    let total = (u64::from(SHARDS) * EVENTS_PER_SHARD) as usize;
    let comparison = settle_and_compare(&stack, total, Duration::from_secs(40))
        .await
        .unwrap();
    let exits = shards.shutdown().await;
    assert!(exits.iter().all(|e| *e == ShardExit::Shutdown), "{exits:?}");
    assert_exactly_once(&comparison);
    stack.sim.stats()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op7_reconnect_resumes() {
    let stats = survive(Compression::ZlibStream, Fault::Reconnect, "a RESUME", |s| {
        resumes_of_shard(s, 0) >= 1
    })
    .await;
    assert_eq!(stats.identifies.len(), SHARDS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op9_resumable_resumes() {
    let stats = survive(
        Compression::ZstdStream,
        Fault::InvalidSession { resumable: true },
        "a RESUME",
        |s| resumes_of_shard(s, 0) >= 1,
    )
    .await;
    assert_eq!(stats.identifies.len(), SHARDS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op9_not_resumable_identifies_again_after_a_pause() {
    let stats = survive(
        Compression::ZlibStream,
        Fault::InvalidSession { resumable: false },
        "a second IDENTIFY",
        |s| s.identifies.iter().filter(|i| i.shard_id == 0).count() == 2,
    )
    .await;
    let ids: Vec<_> = stats
        .identifies
        .iter()
        .filter(|i| i.shard_id == 0)
        .collect();
    let pause = ids[1].at_ms - ids[0].at_ms;
    assert!(pause >= 1_000, "re-identified after only {pause} ms");
    assert_eq!(resumes_of_shard(&stats, 0), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zombie_connection_is_closed_and_resumed() {
    let stats = survive(Compression::ZlibStream, Fault::Zombie, "a RESUME", |s| {
        resumes_of_shard(s, 0) >= 1
    })
    .await;
    assert_eq!(stats.identifies.len(), SHARDS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_tcp_resumes() {
    let stats = survive(Compression::ZstdStream, Fault::Drop, "a RESUME", |s| {
        resumes_of_shard(s, 0) >= 1
    })
    .await;
    assert_eq!(stats.identifies.len(), SHARDS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_compressed_frame_resumes() {
    for compression in [Compression::ZlibStream, Compression::ZstdStream] {
        let stats = survive(compression, Fault::CorruptFrame, "a RESUME", |s| {
            resumes_of_shard(s, 0) >= 1
        })
        .await;
        assert_eq!(stats.identifies.len(), SHARDS as usize);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_json_frame_resumes() {
    let stats = survive(Compression::None, Fault::NonJson, "a RESUME", |s| {
        resumes_of_shard(s, 0) >= 1
    })
    .await;
    assert_eq!(stats.identifies.len(), SHARDS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumable_close_code_resumes_and_4009_identifies() {
    let stats = survive(
        Compression::ZlibStream,
        Fault::Close { code: 4000 },
        "a RESUME",
        |s| resumes_of_shard(s, 0) >= 1,
    )
    .await;
    assert_eq!(stats.identifies.len(), SHARDS as usize);
    let stats = survive(
        Compression::ZlibStream,
        Fault::Close { code: 4009 },
        "a second IDENTIFY",
        |s| s.identifies.iter().filter(|i| i.shard_id == 0).count() == 2,
    )
    .await;
    assert_eq!(resumes_of_shard(&stats, 0), 0);
}

/// A fatal close code stops only that shard, with the reason; the other shard
/// goes on, and what shard 0 received before is stored.
async fn fatal(code: u16, reason_has: &str) {
    let stack = Stack::start(sim_config()).await;
    let mut shards = ShardSet::start(&stack, SHARDS, Compression::ZlibStream).await;
    shards.wait_active(Duration::from_secs(20)).await;
    wait_for_sim(&stack, "traffic", Duration::from_secs(20), |s| {
        s.emitted().count() > 400
    })
    .await;
    assert!(stack.sim.fault_shard(0, Fault::Close { code }) > 0);
    let shard0 = shards.handles.remove(0);
    let exit = tokio::time::timeout(Duration::from_secs(10), shard0.join())
        .await
        .expect("shard 0 stops by itself");
    match &exit {
        ShardExit::Fatal { code: got, reason } => {
            assert_eq!(*got, code);
            assert!(reason.contains(reason_has), "{reason}");
        }
        other => panic!("expected a fatal stop, got {other:?}"),
    }
    // Shard 1 runs to the end; nothing emitted to either is lost.
    let emitted_to_shard0: usize = stack
        .sim
        .stats()
        .emitted()
        .filter(|(_, shard, _, _)| *shard == 0)
        .count();
    let total = EVENTS_PER_SHARD as usize + emitted_to_shard0;
    let comparison = settle_and_compare(&stack, total, Duration::from_secs(40))
        .await
        .unwrap();
    assert_exactly_once(&comparison);
    let stats = stack.sim.stats();
    assert_eq!(stats.identifies.len(), SHARDS as usize, "never reconnected");
    assert_eq!(stats.sessions_of_shard(0).count(), 1);
    let exits = shards.shutdown().await;
    assert_eq!(exits, vec![ShardExit::Shutdown]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_4004_stops_the_shard_with_the_reason() {
    fatal(4004, "authentication failed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_4014_stops_the_shard_with_the_reason() {
    fatal(4014, "disallowed intents").await;
}
