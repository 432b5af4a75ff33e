//! The gateway benchmark, in one run on this machine:
//!
//! 1. events/s from the simulator through shardline shards to acknowledged
//!    JetStream publishes (zstd-stream and zlib-stream);
//! 2. the ceiling: raw async-nats publishes of the same payloads and headers
//!    to the same server, with the same number of acks in flight;
//! 3. the peer: twilight-gateway receiving and deserialising the same
//!    simulator stream (zstd-stream);
//! 4. resident memory per idle shard with many shards on zlib-stream (the
//!    simulator runs as a separate `shardline sim` process so only the
//!    shards count).
//!
//! `cargo bench -p shardline-e2e --bench gateway`; knobs: `BENCH_SHARDS` (4),
//! `BENCH_EVENTS` per shard (50000), `BENCH_IDLE_SHARDS` (5000, 0 skips).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use shardline_e2e::{ShardSet, Stack, TOKEN, shardline_binary, stream_len};
use shardline_gateway::{Compression, ShardState};
use shardline_sim::{SimConfig, Simulator};

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sim_config(shards: u32, events: u64) -> SimConfig {
    SimConfig {
        guilds: u64::from(shards) * 4,
        shards: Some(shards),
        max_concurrency: shards,
        identify_window: Duration::from_millis(1),
        events_per_second: 1_000_000.0,
        emit_tick: Duration::from_millis(2),
        max_events_per_shard: Some(events),
        resume_buffer: 1024,
        record_event_names: false,
        heartbeat_interval: Duration::from_secs(30),
        ..SimConfig::default()
    }
}

struct Rate {
    events: u64,
    elapsed: Duration,
}

impl Rate {
    fn per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// Shardline: simulator → shards → acked publishes.
async fn shardline_rate(shards: u32, events: u64, compression: Compression) -> (Rate, Stack) {
    let stack = Stack::start(sim_config(shards, events)).await;
    let js = stack.jetstream().await;
    let set = ShardSet::start_with(&stack, shards, |c| {
        c.compression = compression;
        c.read_buffer_size = 64 * 1024;
    })
    .await;
    let total = u64::from(shards) * events;
    let mut start: Option<(Instant, u64)> = None;
    let mut last = 0;
    loop {
        let n = stream_len(&js, &stack.names).await;
        if start.is_none() && n > 0 {
            start = Some((Instant::now(), n));
        }
        if n >= total {
            last = n;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        let _ = last;
    }
    let (t0, n0) = start.expect("traffic started");
    let rate = Rate {
        events: last - n0,
        elapsed: t0.elapsed(),
    };
    set.shutdown().await;
    (rate, stack)
}

/// The ceiling: the same payloads and headers published straight from
/// async-nats with the same acks in flight per publisher.
async fn ceiling(stack: &Stack, publishers: u32) -> Rate {
    let js = stack.jetstream().await;
    let stream = js.get_stream(stack.names.dispatch_stream()).await.unwrap();
    let total = stream.cached_info().state.messages;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut batches: Vec<Vec<(String, async_nats::HeaderMap, bytes::Bytes)>> =
        (0..publishers).map(|_| Vec::new()).collect();
    let mut i = 0u64;
    while i < total {
        let m = messages.next().await.unwrap().unwrap();
        let mut headers = m.headers.clone().unwrap_or_default();
        let id = format!("ceiling:{i}");
        headers.insert("Nats-Msg-Id", id.as_str());
        let subject = m.subject.replacen("discord.", "ceiling.", 1);
        batches[(i % u64::from(publishers)) as usize].push((subject, headers, m.payload.clone()));
        i += 1;
    }
    drop(messages);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "CEILING".into(),
        subjects: vec!["ceiling.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(300),
        ..Default::default()
    })
    .await
    .unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = batches
        .into_iter()
        .map(|batch| {
            let js = js.clone();
            tokio::spawn(async move {
                let mut acks = FuturesUnordered::new();
                for (subject, headers, payload) in batch {
                    let ack = js
                        .publish_with_headers(subject, headers, payload)
                        .await
                        .unwrap();
                    acks.push(std::future::IntoFuture::into_future(ack));
                    if acks.len() >= 256 {
                        acks.next().await.unwrap().unwrap();
                    }
                }
                while let Some(ack) = acks.next().await {
                    ack.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    Rate {
        events: total,
        elapsed: start.elapsed(),
    }
}

/// The peer: twilight-gateway shards receiving and deserialising the stream.
async fn twilight_rate(shards: u32, events: u64) -> (Rate, u64) {
    use twilight_gateway::{
        ConfigBuilder, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
        queue::InMemoryQueue,
    };
    let sim = Simulator::start(SimConfig {
        token: shardline_sim::Token::new(TOKEN),
        ..sim_config(shards, events)
    })
    .await
    .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first = Arc::new(std::sync::OnceLock::<Instant>::new());
    let queue = InMemoryQueue::new(
        u16::try_from(shards).unwrap(),
        1000,
        Duration::from_secs(86_400),
        1000,
    );
    let mut tasks = Vec::new();
    for id in 0..shards {
        let config =
            ConfigBuilder::new(TOKEN.to_owned(), Intents::GUILDS | Intents::GUILD_MESSAGES)
                .proxy_url(sim.gateway_url())
                .queue(queue.clone())
                .build();
        let mut shard = Shard::with_config(ShardId::new(id, shards), config);
        let (received, errors, first) = (received.clone(), errors.clone(), first.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(item) = shard.next_event(EventTypeFlags::all()).await {
                match item {
                    Ok(event) => {
                        if event.kind().name().is_some() {
                            first.get_or_init(Instant::now);
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let total = u64::from(shards) * events;
    let mut n0 = None;
    loop {
        let n = received.load(Ordering::Relaxed) + errors.load(Ordering::Relaxed);
        if n0.is_none() && n > 0 {
            n0 = Some(n);
        }
        if n >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = first.get().expect("twilight received events").elapsed();
    for task in tasks {
        task.abort();
    }
    sim.shutdown().await;
    (
        Rate {
            events: total,
            elapsed,
        },
        errors.load(Ordering::Relaxed),
    )
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

/// Resident memory per idle shard: `count` shards on zlib-stream, each with
/// READY and 3 GUILD_CREATE, the simulator in its own process.
async fn idle_memory(count: u32) -> f64 {
    let nats = shardline_harness::NatsServer::start();
    let port = shardline_harness::free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sim.toml");
    std::fs::write(
        &config,
        format!(
            "token = \"{TOKEN}\"\nguilds = {}\nshards = {count}\nmax_concurrency = {count}\nsession_start_total = {}\nidentify_window = \"1ms\"\nevents_per_second = 0.0\nrecord_event_names = false\n",
            u64::from(count) * 3,
            count * 2
        ),
    )
    .unwrap();
    let mut command = std::process::Command::new(shardline_binary());
    command
        .args(["sim", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&config);
    let _sim =
        shardline_harness::Process::spawn("shardline sim", command, &dir.path().join("sim.log"))
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the simulator did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = nats.client().await;
    let names = shardline_wire::Names::new("discord", "bench").unwrap();
    let js = async_nats::jetstream::new(client.clone());
    shardline_jetstream::ensure_dispatch_stream(&js, &names, &Default::default())
        .await
        .unwrap();
    let deps = shardline_gateway::ShardDeps::open(client, names)
        .await
        .unwrap();
    let queue: Arc<dyn shardline_gateway::IdentifyQueue> = Arc::new(
        shardline_gateway::LocalQueue::new(count, Duration::from_millis(1)),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib();
    let handles: Vec<_> = (0..count)
        .map(|id| {
            let mut config = shardline_gateway::ShardConfig::new(
                id,
                count,
                shardline_gateway::Token::new(TOKEN),
                513,
                format!("ws://127.0.0.1:{port}"),
            );
            config.compression = Compression::ZlibStream;
            shardline_gateway::Shard::spawn(config, queue.clone(), deps.clone())
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let active = handles
            .iter()
            .filter(|h| h.current().state == ShardState::Active)
            .count();
        if active == handles.len() {
            break;
        }
        assert!(Instant::now() < deadline, "only {active} shards active");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the GUILD_CREATEs arrive and publishes settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib();
    let per_shard = (after.saturating_sub(before)) as f64 / f64::from(count);
    futures::future::join_all(handles.into_iter().map(|h| h.shutdown())).await;
    per_shard
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let shards = u32::try_from(knob("BENCH_SHARDS", 4)).unwrap();
        let events = knob("BENCH_EVENTS", 50_000);
        let idle = u32::try_from(knob("BENCH_IDLE_SHARDS", 5_000)).unwrap();
        if shards > 0 {
            throughput(shards, events).await;
        }
        if idle > 0 {
            let per_shard = idle_memory(idle).await;
            println!(
                "resident memory per idle shard ({idle} shards, zlib-stream, READY + 3 GUILD_CREATE): {per_shard:.1} KiB"
            );
        }
    });
}

async fn throughput(shards: u32, events: u64) {
    println!("shardline gateway benchmark: {shards} shards x {events} events");

    let (zstd, stack) = shardline_rate(shards, events, Compression::ZstdStream).await;
    println!(
        "shardline (zstd-stream) sim -> shards -> acked JetStream: {:>9.0} events/s ({} in {:.2?})",
        zstd.per_second(),
        zstd.events,
        zstd.elapsed
    );
    let ceiling = ceiling(&stack, shards).await;
    println!(
        "ceiling: raw async-nats publish, same payloads+headers:   {:>9.0} events/s ({} in {:.2?})",
        ceiling.per_second(),
        ceiling.events,
        ceiling.elapsed
    );
    drop(stack);
    let (zlib, stack) = shardline_rate(shards, events, Compression::ZlibStream).await;
    drop(stack);
    println!(
        "shardline (zlib-stream) sim -> shards -> acked JetStream: {:>9.0} events/s ({} in {:.2?})",
        zlib.per_second(),
        zlib.events,
        zlib.elapsed
    );
    let (twilight, errors) = twilight_rate(shards, events).await;
    println!(
        "peer: twilight-gateway 0.18 (zstd-stream) receive+deserialise: {:>9.0} events/s ({} in {:.2?}, {errors} errors)",
        twilight.per_second(),
        twilight.events,
        twilight.elapsed
    );
    println!(
        "shardline zstd / ceiling = {:.2}; shardline zstd / twilight = {:.2}",
        zstd.per_second() / ceiling.per_second(),
        zstd.per_second() / twilight.per_second()
    );
}
