//! Bridge benchmark, in one run against a local nats-server:
//!
//! 1. the raw JetStream consume rate of N stored dispatches (a durable pull
//!    consumer that only acknowledges): the ceiling;
//! 2. deliveries per second of the same N events through a bridge route
//!    (batches of 100) to a no-op HTTP target, confirmed acks included;
//! 3. the p50/p99 latency from emitting an event (publishing it to the
//!    dispatch stream as a shard would, stamped with `Discord-Received-At`)
//!    to the target receiving it, at a fixed rate.
//!
//! Run: `cargo bench -p shardline-jetstream --bench bridge`
//! (`BRIDGE_BENCH_EVENTS`, `BRIDGE_BENCH_RATE`, `BRIDGE_BENCH_SECONDS` adjust it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use shardline_harness::NatsServer;
use shardline_jetstream::{
    Bridge, BridgeConfig, HttpTargetConfig, RouteConfig, StartPolicy, StreamSettings, TargetConfig,
};
use shardline_wire::{Batch, Names, headers};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn publish(js: &jetstream::Context, names: &Names, from: u64, count: u64, event: &str) {
    let mut acks = Vec::new();
    for n in from..from + count {
        acks.push(publish_one(js, names, n, event).await);
        if acks.len() == 1000 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

async fn publish_one(
    js: &jetstream::Context,
    names: &Names,
    n: u64,
    event: &str,
) -> async_nats::jetstream::context::PublishAckFuture {
    let shard = (n % 16) as u32;
    let guild = 41_771_983_423_143_937 + n % 500;
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::MSG_ID, headers::msg_id(shard, "bench", n));
    h.insert(headers::SHARD, shard.to_string());
    h.insert(headers::SEQ, n.to_string());
    h.insert(headers::SESSION, "bench");
    h.insert(headers::GUILD_ID, guild.to_string());
    h.insert(
        headers::RECEIVED_AT,
        OffsetDateTime::now_utc().format(&Rfc3339).unwrap(),
    );
    let payload = format!(
        r#"{{"id":"{n}","channel_id":"1234567890","guild_id":"{guild}","author":{{"id":"42","username":"bench"}},"content":"message number {n} for the bridge benchmark","timestamp":"2026-11-25T00:00:00.000000+00:00","mentions":[],"attachments":[],"embeds":[]}}"#
    );
    js.publish_with_headers(names.dispatch_subject(event, shard), h, payload.into())
        .await
        .unwrap()
}

#[derive(Default)]
struct Seen {
    records: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
}

async fn noop_target(seen: Arc<Seen>) -> String {
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            let now = OffsetDateTime::now_utc();
            let batch: Batch = serde_json::from_slice(&body).unwrap();
            seen.records
                .fetch_add(batch.records.len() as u64, AtomicOrdering::Relaxed);
            if batch.records.iter().any(|r| r.event == "TYPING_START") {
                let mut latencies = seen.latencies.lock().unwrap();
                for record in &batch.records {
                    let emitted = OffsetDateTime::parse(&record.received_at, &Rfc3339).unwrap();
                    latencies.push(Duration::try_from(now - emitted).unwrap_or_default());
                }
            }
            ""
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let events = env_number("BRIDGE_BENCH_EVENTS", 50_000);
    let rate = env_number("BRIDGE_BENCH_RATE", 1000);
    let seconds = env_number("BRIDGE_BENCH_SECONDS", 5);
    let server = NatsServer::start();
    let client = server.client().await;
    let js = jetstream::new(client.clone());
    let names = Names::new("discord", "bench").unwrap();
    let mut stream =
        shardline_jetstream::ensure_dispatch_stream(&js, &names, &StreamSettings::default())
            .await
            .unwrap();
    publish(&js, &names, 0, events, "MESSAGE_CREATE").await;
    let bytes = stream.info().await.unwrap().state.bytes;
    println!(
        "stored {events} MESSAGE_CREATE dispatches ({} bytes each on average)",
        bytes / events
    );

    // 1. The ceiling: consume and acknowledge, nothing else.
    let raw = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("raw".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            filter_subject: names.dispatch_event_filter("MESSAGE_CREATE"),
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let started = Instant::now();
    let mut messages = raw
        .stream()
        .max_messages_per_batch(1000)
        .messages()
        .await
        .unwrap();
    let mut consumed = 0;
    while consumed < events {
        let msg = messages.next().await.unwrap().unwrap();
        msg.ack().await.unwrap();
        consumed += 1;
    }
    let raw_elapsed = started.elapsed();
    let raw_rate = events as f64 / raw_elapsed.as_secs_f64();
    drop(messages);

    // 2. Throughput through the bridge to a no-op HTTP target.
    let seen = Arc::new(Seen::default());
    let url = noop_target(seen.clone()).await;
    let mut route = RouteConfig::new(
        "throughput",
        vec!["MESSAGE_CREATE".into()],
        TargetConfig::Http(HttpTargetConfig::new(url.clone(), Vec::new())),
    );
    route.batch.max_records = 100;
    route.batch.max_wait = Duration::from_millis(5);
    route.concurrency.max = 16;
    route.max_ack_pending = 10_000;
    let mut latency_route = RouteConfig::new(
        "latency",
        vec!["TYPING_START".into()],
        TargetConfig::Http(HttpTargetConfig::new(url, Vec::new())),
    );
    latency_route.batch.max_records = 10;
    latency_route.batch.max_wait = Duration::from_millis(2);
    latency_route.start = StartPolicy::New;
    let config = BridgeConfig {
        nats_url: server.url(),
        prefix: "discord".into(),
        app: "bench".into(),
        dlq_stream: StreamSettings::default(),
        shutdown_grace: Duration::from_secs(5),
        routes: vec![route, latency_route],
    };
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let bridge = Bridge::start(&config, client.clone(), shutdown.clone())
        .await
        .unwrap();
    let status = bridge.route("throughput").unwrap().clone();
    while status.acked() < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let bridge_elapsed = started.elapsed();
    let bridge_rate = events as f64 / bridge_elapsed.as_secs_f64();

    // 3. Latency at a fixed rate, emitting as a shard would.
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut pending_acks = Vec::new();
    for n in 0..total {
        ticker.tick().await;
        pending_acks.push(publish_one(&js, &names, events + n, "TYPING_START").await);
        if pending_acks.len() >= 100 {
            for ack in pending_acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in pending_acks {
        ack.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while (seen.latencies.lock().unwrap().len() as u64) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut latencies = seen.latencies.lock().unwrap().clone();
    latencies.sort();
    shutdown.cancel();
    bridge.wait().await;

    println!();
    println!(
        "raw JetStream consume + ack (ceiling): {raw_rate:>9.0} msgs/s  ({events} in {raw_elapsed:.2?})"
    );
    println!(
        "bridge → no-op HTTP target, batches of 100: {bridge_rate:>9.0} events/s ({events} in {bridge_elapsed:.2?}, {:.0} % of the ceiling, {} calls)",
        100.0 * bridge_rate / raw_rate,
        status.calls()
    );
    println!(
        "emit → target latency at {rate}/s for {seconds} s ({} events, batches ≤ 10, max_wait 2 ms): p50 {:.2?}  p99 {:.2?}  max {:.2?}",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
}
