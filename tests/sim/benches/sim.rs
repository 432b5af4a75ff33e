//! Load benchmark: one simulator holding many concurrent shard connections
//! and emitting dispatches at a high total rate, against lightweight raw
//! WebSocket clients in the same process (same 2 cores).
//!
//! Run: `cargo bench -p shardline-sim --bench sim` (defaults: 5000 shards,
//! 25 dispatches/s each, 10 s measured). Options: `--shards N --rate R
//! --secs S --compress none|zlib-stream|zstd-stream --skip-reference`.
//!
//! Reference, measured in the same run with the same clients: a bare
//! tokio-tungstenite server writing one pre-built frame per dispatch at the
//! same rate — the cost of the WebSocket traffic alone, with no simulator.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use shardline_sim::{SimConfig, Simulator};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

struct Args {
    shards: u32,
    rate: f64,
    secs: u64,
    compress: String,
    reference: bool,
}

fn args() -> Args {
    let mut args = Args {
        shards: 5000,
        rate: 25.0,
        secs: 10,
        compress: "none".into(),
        reference: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--shards" => args.shards = it.next().unwrap().parse().unwrap(),
            "--rate" => args.rate = it.next().unwrap().parse().unwrap(),
            "--secs" => args.secs = it.next().unwrap().parse().unwrap(),
            "--compress" => args.compress = it.next().unwrap(),
            "--skip-reference" => args.reference = false,
            _ => {} // `--bench` and friends from cargo
        }
    }
    args
}

fn fd_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Counters shared by the clients.
#[derive(Default)]
struct Counts {
    dispatches: AtomicU64,
    ready: AtomicU64,
    failed: AtomicU64,
}

/// One lightweight client: HELLO, IDENTIFY, then count dispatch frames.
async fn client(url: String, shard: [u32; 2], identify: bool, counts: Arc<Counts>) {
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0);
    let Ok((mut ws, _)) =
        tokio_tungstenite::connect_async_with_config(url, Some(config), true).await
    else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if identify {
        let _hello = ws.next().await;
        let identify = format!(
            r#"{{"op":2,"d":{{"token":"sim-token","intents":513,"shard":[{},{}],"properties":{{"os":"linux","browser":"bench","device":"bench"}}}}}}"#,
            shard[0], shard[1]
        );
        if ws.send(Message::Text(identify.into())).await.is_err() {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    let mut ready = false;
    while let Some(Ok(message)) = ws.next().await {
        let is_dispatch = match &message {
            Message::Text(text) => text.as_bytes().starts_with(br#"{"t":""#),
            Message::Binary(_) => true,
            _ => false,
        };
        if !is_dispatch {
            continue;
        }
        if !ready {
            ready = true;
            counts.ready.fetch_add(1, Ordering::Relaxed);
        }
        counts.dispatches.fetch_add(1, Ordering::Relaxed);
    }
}

async fn connect_all(url: &str, args: &Args, identify: bool, counts: &Arc<Counts>) {
    let started = Instant::now();
    let tasks = (0..args.shards).map(|i| {
        let url = url.to_owned();
        let counts = counts.clone();
        let shards = args.shards;
        async move {
            tokio::spawn(client(url, [i, shards], identify, counts));
            // Pace connects a little so the accept queue never overflows.
            tokio::task::yield_now().await;
        }
    });
    futures::stream::iter(tasks)
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    while counts.ready.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed)
        < u64::from(args.shards)
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "clients not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  {} clients ready ({} failed) in {:.1} s",
        counts.ready.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}

/// CPU time this process has used, in seconds (user + system, from
/// /proc/self/stat at the usual 100 ticks per second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// What one measured window saw.
struct Window {
    server_rate: f64,
    client_rate: f64,
    /// Cores busy in the whole process (simulator or reference server, and
    /// the clients).
    cores: f64,
}

/// Measures `secs` seconds.
async fn measure(secs: u64, counts: &Counts, server: impl Fn() -> u64) -> Window {
    tokio::time::sleep(Duration::from_secs(1)).await; // settle
    let (s0, c0, cpu0, t0) = (
        server(),
        counts.dispatches.load(Ordering::Relaxed),
        cpu_seconds(),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let s1 = server();
    let c1 = counts.dispatches.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    Window {
        server_rate: (s1 - s0) as f64 / elapsed,
        client_rate: (c1 - c0) as f64 / elapsed,
        cores: (cpu_seconds() - cpu0) / elapsed,
    }
}

async fn simulator_run(args: &Args) -> (u64, Window) {
    let sim = Simulator::start(SimConfig {
        guilds: u64::from(args.shards) * 2,
        shards: Some(args.shards),
        max_concurrency: args.shards,
        identify_window: Duration::from_millis(1),
        session_start_total: 1_000_000,
        heartbeat_interval: Duration::from_secs(3600),
        events_per_second: args.rate,
        emit_tick: Duration::from_millis(200),
        resume_buffer: 64,
        record_event_names: false,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let compress = if args.compress == "none" {
        String::new()
    } else {
        format!("&compress={}", args.compress)
    };
    let url = format!("{}/?v=10&encoding=json{compress}", sim.gateway_url());
    let counts = Arc::new(Counts::default());
    connect_all(&url, args, true, &counts).await;
    let open = sim.connections_open();
    let window = measure(args.secs, &counts, || sim.stream_events()).await;
    sim.shutdown().await;
    (open, window)
}

/// The reference server: per connection, every 200 ms, write the same
/// pre-built ~600-byte dispatch `rate / 5` times, then flush.
async fn reference_run(args: &Args) -> (u64, Window) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let open = Arc::new(AtomicU64::new(0));
    let frame: String = format!(
        r#"{{"t":"MESSAGE_CREATE","s":1,"op":0,"d":{{"guild_id":"661727371173888000","content":"{}"}}}}"#,
        "x".repeat(520)
    );
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let per_tick = (args.rate / 5.0).round() as u64;
    let accept = {
        let written = written.clone();
        let open = open.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let _ = tcp.set_nodelay(true);
                let written = written.clone();
                let open = open.clone();
                let frame = frame.clone();
                tokio::spawn(async move {
                    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
                    let Ok(mut ws) =
                        tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
                    else {
                        return;
                    };
                    open.fetch_add(1, Ordering::Relaxed);
                    let mut tick = tokio::time::interval(Duration::from_millis(200));
                    loop {
                        tick.tick().await;
                        for _ in 0..per_tick {
                            if ws.feed(Message::Text(frame.clone().into())).await.is_err() {
                                return;
                            }
                        }
                        if ws.flush().await.is_err() {
                            return;
                        }
                        written.fetch_add(per_tick, Ordering::Relaxed);
                    }
                });
            }
        })
    };
    let counts = Arc::new(Counts::default());
    connect_all(&url, args, false, &counts).await;
    let opened = open.load(Ordering::Relaxed);
    let window = measure(args.secs, &counts, || written.load(Ordering::Relaxed)).await;
    accept.abort();
    (opened, window)
}

fn main() {
    let args = args();
    let needed = u64::from(args.shards) * 2 + 256;
    if let Some(limit) = fd_limit() {
        assert!(
            limit >= needed,
            "open-file limit {limit} < {needed}: raise it (ulimit -n {needed})"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "shardline-sim bench: {} shards × {} dispatches/s (target {:.0}/s total), {} s, compress {}",
            args.shards,
            args.rate,
            f64::from(args.shards) * args.rate,
            args.secs,
            args.compress
        );
        println!("simulator:");
        let (open, w) = simulator_run(&args).await;
        println!(
            "  RESULT simulator: {open} concurrent shard connections, {:.0} dispatches/s emitted, {:.0}/s received, {:.2} cores busy (simulator + clients)",
            w.server_rate, w.client_rate, w.cores
        );
        if args.reference {
            tokio::time::sleep(Duration::from_secs(1)).await;
            println!("reference (bare tokio-tungstenite server, pre-built frames):");
            let (open, w) = reference_run(&args).await;
            println!(
                "  RESULT reference: {open} concurrent connections, {:.0} frames/s written, {:.0}/s received, {:.2} cores busy (bare server + clients)",
                w.server_rate, w.client_rate, w.cores
            );
        }
    });
}
