//! Acceptance: through the Lambda Invoke API (aws-sdk-lambda pointed at
//! `cargo lambda watch`), the example bot receives events and its partial
//! failures are honoured.
//!
//! Needs `cargo-lambda` (`SHARDLINE_CARGO_LAMBDA`, `.tools/venv/bin`, or
//! `PATH`; the project's set-up installs it from PyPI). The first invocation
//! compiles the example bot, which can take minutes on a cold target dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{consumer_backlog, dead_letters, env};
use futures::StreamExt as _;
use shardline_harness::{free_port, tools_dir, workspace_root};
use shardline_jetstream::{Bridge, BridgeConfig, RouteConfig, StreamSettings, TargetConfig};
use shardline_lambda_bot::testing::message_create;
use shardline_sim::{SimConfig, Simulator};
use shardline_wire::headers;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const FUNCTION: &str = "example-bot";

fn cargo_lambda() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("cargo-lambda"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    std::env::var_os("SHARDLINE_CARGO_LAMBDA")
        .map(PathBuf::from)
        .into_iter()
        .chain([tools_dir().join("venv/bin/cargo-lambda")])
        .chain(on_path)
        .find(|candidate| candidate.is_file())
        .expect(
            "cargo-lambda not found (SHARDLINE_CARGO_LAMBDA, .tools/venv/bin, PATH); \
             the README's test command installs it (PyPI package cargo-lambda)",
        )
}

/// `cargo lambda watch` in a process group of its own; the group is killed on drop.
struct Watch {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl Watch {
    fn start(vars: &[(&str, String)]) -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let vars: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let exe = std::env::current_exe().unwrap();
                exe.ancestors().nth(3).unwrap().to_path_buf()
            });
        let child = Command::new(cargo_lambda())
            .args([
                "lambda",
                "watch",
                "--quiet",
                "--invoke-address",
                "127.0.0.1",
            ])
            .args(["--invoke-port", &port.to_string()])
            .args(["--env-vars", &vars.join(",")])
            .current_dir(workspace_root().join("lambda-bot/example"))
            .env("CARGO_TARGET_DIR", target_dir)
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        Self { child, port, log }
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let group = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            std::thread::sleep(Duration::from_millis(500));
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

async fn publish(env: &common::Env, n: u64, shard: u32, guild: u64, data: serde_json::Value) {
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::MSG_ID, headers::msg_id(shard, "watch", n));
    h.insert(headers::SHARD, shard.to_string());
    h.insert(headers::SEQ, n.to_string());
    h.insert(headers::SESSION, "watch");
    h.insert(headers::GUILD_ID, guild.to_string());
    h.insert(headers::RECEIVED_AT, common::now_rfc3339());
    env.js
        .publish_with_headers(
            env.names.dispatch_subject("MESSAGE_CREATE", shard),
            h,
            serde_json::to_vec(&data).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_bot_under_cargo_lambda_watch_through_the_bridge() {
    common::init_tracing();
    let env = env().await;
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let watch = Watch::start(&[
        ("DISCORD_TOKEN", sim.token().expose().to_owned()),
        ("SHARDLINE_DISCORD_API_URL", sim.url()),
        ("SHARDLINE_NATS_URL", env.server.url()),
        ("SHARDLINE_COMMAND_TIMEOUT_MS", "1000".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]);
    // The gateway side of commands: shard 1 answers; nobody serves shard 7.
    let mut shard_1 = env.client.subscribe("discord.command.1").await.unwrap();
    env.client.flush().await.unwrap();
    let answering = env.client.clone();
    let commands = tokio::spawn(async move {
        let mut seen = 0;
        while let Some(message) = shard_1.next().await {
            seen += 1;
            if let Some(reply) = message.reply {
                answering
                    .publish(reply, r#"{"accepted":true}"#.into())
                    .await
                    .unwrap();
            }
        }
        seen
    });

    let mut route = RouteConfig::new(
        "bot",
        vec!["MESSAGE_CREATE".into()],
        TargetConfig::Lambda(
            toml::from_str(&format!(
                "function = \"{FUNCTION}\"\nendpoint = \"http://127.0.0.1:{}\"\ntimeout = \"300s\"",
                watch.port
            ))
            .unwrap(),
        ),
    );
    route.batch.max_wait = Duration::from_millis(300);
    route.retry.max_attempts = 2;
    route.retry.initial_backoff = Duration::from_millis(200);
    let config = BridgeConfig {
        nats_url: env.server.url(),
        prefix: "discord".into(),
        app: "test".into(),
        dlq_stream: StreamSettings::default(),
        shutdown_grace: Duration::from_secs(5),
        routes: vec![route],
    };
    publish(&env, 1, 0, 10, message_create(10, 100, 1000, "!ping")).await;
    publish(&env, 2, 1, 40, message_create(40, 400, 1001, "!members ad")).await;
    publish(&env, 3, 7, 50, message_create(50, 500, 1002, "!members zz")).await;
    let shutdown = CancellationToken::new();
    let bridge = Bridge::start(&config, env.client.clone(), shutdown.clone())
        .await
        .unwrap();
    let status = bridge.route("bot").unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(420);
    while status.acked() < 2 || status.dead_lettered() < 1 {
        assert!(
            Instant::now() < deadline,
            "acked {}, dead-lettered {}; cargo lambda watch:\n{}",
            status.acked(),
            status.dead_lettered(),
            watch.tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The failed item alone was retried, then dead-lettered with the reason.
    let letters = dead_letters(&env).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].stream_seq, 3);
    assert_eq!(letters[0].attempts, 2);
    assert!(
        letters[0].error.contains("batchItemFailures"),
        "{}",
        letters[0].error
    );
    assert_eq!(status.acked(), 2);
    // The bot really ran: it answered !ping through the (simulated) REST API.
    let pong = sim.stats().rest.iter().any(|call| {
        call.method == "POST"
            && call.path == "/api/v10/channels/100/messages"
            && call
                .body
                .as_ref()
                .and_then(|b| b["content"].as_str())
                .is_some_and(|c| c.starts_with("pong"))
    });
    assert!(
        pong,
        "no pong posted; cargo lambda watch:\n{}",
        watch.tail()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(consumer_backlog(&env, "bot").await, (0, 0));
    shutdown.cancel();
    bridge.wait().await;
    commands.abort();
}
