//! Replay speed to a JSON Lines file beside the raw ordered-consumer read rate
//! of the same stream, in one run.
//!
//! `cargo bench -p shardline-jetstream --bench replay [-- EVENTS]` (default 200,000 events of 1 KiB).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::IntoFuture as _;
use std::time::Instant;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use futures::StreamExt as _;
use shardline_harness::NatsServer;
use shardline_jetstream::replay::{self, JsonLinesSink, ReplayOptions, Selection};
use shardline_wire::{Names, headers};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let events: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let server = NatsServer::start();
    let js = server.jetstream().await;
    let names = Names::new("discord", "bench").unwrap();
    shardline_jetstream::ensure_dispatch_stream(&js, &names, &Default::default())
        .await
        .unwrap();

    // A 1 KiB dispatch payload, as a gateway would store it.
    let payload = format!(
        r#"{{"id":"1300000000000000000","channel_id":"1300000000000000001","guild_id":"41771983423143937","content":"{}","author":{{"id":"1","username":"bench"}}}}"#,
        "x".repeat(880)
    );
    let started = Instant::now();
    let mut acks = futures::stream::FuturesUnordered::new();
    for i in 1..=events {
        let mut map = async_nats::HeaderMap::new();
        map.insert(
            headers::MSG_ID,
            headers::msg_id((i % 16) as u32, "bench", i).as_str(),
        );
        map.insert(headers::SEQ, i.to_string().as_str());
        map.insert(headers::SHARD, (i % 16).to_string().as_str());
        map.insert(headers::SESSION, "bench");
        map.insert(headers::GUILD_ID, "41771983423143937");
        map.insert(headers::RECEIVED_AT, "2026-11-25T00:00:00.000000000Z");
        acks.push(
            js.publish_with_headers(
                names.dispatch_subject("MESSAGE_CREATE", (i % 16) as u32),
                map,
                payload.clone().into(),
            )
            .await
            .unwrap()
            .into_future(),
        );
        if acks.len() >= 256 {
            acks.next().await.unwrap().unwrap();
        }
    }
    while let Some(ack) = acks.next().await {
        ack.unwrap();
    }
    eprintln!(
        "stored {events} events of {} bytes in {:.1} s",
        payload.len(),
        started.elapsed().as_secs_f64()
    );

    // The ceiling: an ordered consumer that only counts.
    let stream = js.get_stream(names.dispatch_stream()).await.unwrap();
    let started = Instant::now();
    let consumer = stream
        .create_consumer(OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut read = 0u64;
    let mut bytes = 0usize;
    while read < events {
        let message = messages.next().await.unwrap().unwrap();
        bytes += message.payload.len();
        read += 1;
    }
    let raw_rate = read as f64 / started.elapsed().as_secs_f64();
    drop(messages);
    assert!(bytes > 0);

    // shardline replay to a JSON Lines file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.jsonl");
    let file = tokio::fs::File::create(&path).await.unwrap();
    let mut sink = JsonLinesSink::new(file);
    let started = Instant::now();
    let outcome = replay::replay(
        &js,
        &names,
        &Selection::default(),
        &ReplayOptions {
            mark_replay: true,
            ..Default::default()
        },
        &mut sink,
        &CancellationToken::new(),
        |_| {},
    )
    .await
    .unwrap();
    let replay_rate = outcome.progress.delivered as f64 / started.elapsed().as_secs_f64();
    assert_eq!(outcome.progress.delivered, events);
    let written = std::fs::metadata(&path).unwrap().len();

    println!(
        "replay benchmark: {events} events of {} bytes, nats-server file storage",
        payload.len()
    );
    println!("  raw ordered consumer read : {raw_rate:>10.0} events/s (ceiling)");
    println!(
        "  shardline replay → JSONL  : {replay_rate:>10.0} events/s ({:.2}× the ceiling, {:.0} MiB written)",
        replay_rate / raw_rate,
        written as f64 / 1048576.0
    );
}
