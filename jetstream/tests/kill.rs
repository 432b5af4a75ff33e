//! Acceptance: SIGKILL the bridge five times during delivery and restart it;
//! every event is still delivered at least once.
//!
//! The bridge runs in a child process: this test binary started again with
//! `SHARDLINE_BRIDGE_CHILD_CONFIG` set, running [`bridge_child_process`],
//! which does what `shardline bridge` does (load the TOML, connect, run
//! `shardline_jetstream::bridge::run` until SIGTERM). Re-running the test
//! binary, rather than looking for a `shardline` binary, means the child is
//! always built from the code under test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Answer, Receiver, consumer_backlog, dead_letters, env, message_events, publish};
use shardline_harness::Process;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const CHILD_ENV: &str = "SHARDLINE_BRIDGE_CHILD_CONFIG";

/// The child bridge process of `sigkill_five_times_loses_nothing`; returns at
/// once unless started by it (with `SHARDLINE_BRIDGE_CHILD_CONFIG` set).
#[test]
#[ignore = "entry point of the child bridge process that the kill test starts"]
fn bridge_child_process() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let text = std::fs::read_to_string(path).unwrap();
        let config =
            shardline_jetstream::BridgeConfig::from_toml(&text, |k| std::env::var(k).ok()).unwrap();
        let client = async_nats::connect(&config.nats_url).await.unwrap();
        let shutdown = CancellationToken::new();
        let cancel = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
            term.recv().await;
            cancel.cancel();
        });
        shardline_jetstream::bridge::run(&config, client.clone(), shutdown)
            .await
            .unwrap();
        client.drain().await.ok();
    });
}

fn spawn_bridge(config: &std::path::Path, log: &std::path::Path) -> Process {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "bridge_child_process",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, config);
    Process::spawn("bridge", command, log).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_five_times_loses_nothing() {
    const EVENTS: usize = 6000;
    let env = env().await;
    let receiver = Receiver::start(|_, _, _| Answer::ok().after(Duration::from_millis(10))).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bridge.toml");
    let log = dir.path().join("bridge.log");
    std::fs::write(
        &config,
        format!(
            r#"
nats_url = "{nats}"
prefix = "discord"
app = "test"
shutdown_grace = "2s"

[[route]]
name = "killed"
events = ["MESSAGE_*"]
ack_wait = "2s"
target = {{ kind = "http", url = "{url}", timeout = "2s" }}
batch = {{ max_records = 20, max_wait = "5ms" }}
concurrency = {{ max = 2 }}
retry = {{ initial_backoff = "100ms", max_backoff = "1s", max_attempts = 50 }}
"#,
            nats = env.server.url(),
            url = receiver.url(),
        ),
    )
    .unwrap();
    publish(&env, &message_events(EVENTS as u64, 20)).await;

    let mut bridge = spawn_bridge(&config, &log);
    let mut kills = 0;
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while kills < 5 {
        let accepted = receiver.accepted_ids().len();
        if accepted >= last + 400 {
            assert!(
                bridge.is_running(),
                "the bridge exited by itself:\n{}",
                tail(&log)
            );
            bridge.kill();
            kills += 1;
            println!("SIGKILL {kills} after {accepted} events accepted");
            last = accepted;
            bridge = spawn_bridge(&config, &log);
        }
        assert!(
            Instant::now() < deadline,
            "stalled at {accepted} accepted:\n{}",
            tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        last < EVENTS,
        "all events were delivered before the fifth kill"
    );
    receiver
        .wait_accepted(EVENTS, Duration::from_secs(60))
        .await;
    let accepted = receiver.accepted_ids();
    let twice = accepted.values().filter(|&&n| n > 1).count();
    let redelivered = receiver
        .calls()
        .iter()
        .flat_map(|c| c.records.iter())
        .filter(|r| r.attempt > 1)
        .count();
    println!(
        "{} events accepted; {twice} of them more than once; {redelivered} records sent as redeliveries",
        accepted.len()
    );
    assert!(
        redelivered > 0,
        "the kills should have interrupted deliveries"
    );
    assert!(dead_letters(&env).await.is_empty());
    // Every event is acknowledged in the end.
    let settle = Instant::now() + Duration::from_secs(10);
    loop {
        let backlog = consumer_backlog(&env, "killed").await;
        if backlog == (0, 0) {
            break;
        }
        assert!(Instant::now() < settle, "backlog left: {backlog:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A SIGTERM stops it cleanly.
    let status = bridge
        .terminate(Duration::from_secs(10))
        .expect("the bridge exits on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", tail(&log));
}

fn tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
