//! The example bot under `cargo lambda watch`, invoked through the Invoke API
//! and through its Function URL, with a real `nats-server` for gateway commands
//! and the Discord simulator recording the REST calls the bot makes.
#![allow(clippy::unwrap_used)]

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};
use shardline_harness::{NatsServer, free_port, tools_dir};
use shardline_lambda_bot::testing::{
    self, member_add, member_chunk, message_create, record, slash_command,
};
use shardline_sim::{RestCall, SimConfig, SimHandle, Simulator};
use shardline_wire::BatchResponse;
use shardline_wire::webhook::SigningKey;

const FUNCTION: &str = "example-bot";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Compiling the bot on a cold target dir is the slow part of the first invoke.
const FIRST_INVOKE_TIMEOUT: Duration = Duration::from_secs(300);
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// `cargo-lambda`: `SHARDLINE_CARGO_LAMBDA`, else the project's `.tools/venv`,
/// else `PATH`. Missing is a failure: the test command installs it.
fn cargo_lambda() -> PathBuf {
    let candidates = std::env::var_os("SHARDLINE_CARGO_LAMBDA")
        .map(PathBuf::from)
        .into_iter()
        .chain([tools_dir().join("venv/bin/cargo-lambda")])
        .chain(std::env::var_os("PATH").into_iter().flat_map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("cargo-lambda"))
                .collect::<Vec<_>>()
        }));
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "cargo-lambda not found (SHARDLINE_CARGO_LAMBDA, .tools/venv/bin, PATH). Install it with \
         `source scripts/setup.sh && ensure_cargo_lambda` (PyPI package cargo-lambda), or run the \
         README's test command, which does"
    );
}

/// `cargo lambda watch` in its own process group, killed with its children on drop.
struct Watch {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl Watch {
    fn start(env: &[(&str, String)]) -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let env_vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut command = Command::new(cargo_lambda());
        command
            .args([
                "lambda",
                "watch",
                "--quiet",
                "--invoke-address",
                "127.0.0.1",
            ])
            .args(["--invoke-port", &port.to_string()])
            .args(["--env-vars", &env_vars.join(",")])
            // The example's own folder: its manifest names the one binary.
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            // Reuse the target dir this test was built in (shared deps, no rebuild).
            .env("CARGO_TARGET_DIR", target_dir())
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .process_group(0);
        let child = command.spawn().unwrap();
        Self { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let group = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // The group may still hold the bot process after cargo-lambda exits.
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The target dir of this test binary: `<target>/<profile>/deps/watch-…`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return dir.into();
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// The REST calls the simulator recorded.
fn rest_calls(sim: &SimHandle) -> Vec<RestCall> {
    sim.stats().rest
}

/// Waits until `cargo lambda watch` accepts connections.
async fn wait_for_port(watch: &Watch) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", watch.port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen within 60 s:\n{}",
            watch.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn message_text(calls: &[RestCall], channel: u64) -> Vec<&str> {
    let path = format!("/api/v10/channels/{channel}/messages");
    calls
        .iter()
        .filter(|call| call.method == "POST" && call.path == path)
        .filter_map(|call| call.body.as_ref()?["content"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_bot_under_cargo_lambda_watch() {
    let nats = NatsServer::start();
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let watch = Watch::start(&[
        ("DISCORD_TOKEN", sim.token().expose().to_owned()),
        ("SHARDLINE_DISCORD_API_URL", sim.url()),
        ("SHARDLINE_NATS_URL", nats.url()),
        ("SHARDLINE_WEBHOOK_SECRETS", SECRET.to_owned()),
        ("SHARDLINE_COMMAND_TIMEOUT_MS", "2000".to_owned()),
        ("WELCOME_CHANNEL_ID", "200".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]);
    wait_for_port(&watch).await;

    // The gateway's side of commands: shard 1 answers, nobody serves shard 7.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut shard_1 = client.subscribe("discord.command.1").await.unwrap();
    client.flush().await.unwrap();
    let commands = Arc::new(Mutex::new(Vec::<Value>::new()));
    let gateway = {
        let commands = Arc::clone(&commands);
        let client = client.clone();
        tokio::spawn(async move {
            while let Some(message) = shard_1.next().await {
                commands
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&message.payload).unwrap());
                if let Some(reply) = message.reply {
                    client
                        .publish(reply, r#"{"accepted":true}"#.into())
                        .await
                        .unwrap();
                }
            }
        })
    };

    let http = reqwest::Client::new();
    let invoke_url = watch.url(&format!("/2015-03-31/functions/{FUNCTION}/invocations"));

    // 1. The Invoke API, the way the bridge calls the function.
    let batch = testing::batch([
        record(
            "S:1",
            "MESSAGE_CREATE",
            0,
            Some(10),
            message_create(10, 100, 1000, "!ping"),
        ),
        record(
            "S:2",
            "GUILD_MEMBER_ADD",
            0,
            Some(20),
            member_add(20, 4242, "ada"),
        ),
        record(
            "S:3",
            "INTERACTION_CREATE",
            0,
            Some(30),
            slash_command(30, 300, 900, 901, "tok-1", "hello"),
        ),
        record(
            "S:4",
            "MESSAGE_CREATE",
            1,
            Some(40),
            message_create(40, 400, 1001, "!members ad"),
        ),
        // Shard 7 has no shard process listening: this record must be retried.
        record(
            "S:5",
            "MESSAGE_CREATE",
            7,
            Some(50),
            message_create(50, 500, 1002, "!members zz"),
        ),
        record(
            "S:6",
            "GUILD_MEMBERS_CHUNK",
            1,
            Some(40),
            member_chunk(40, "400", &["ada", "bob"]),
        ),
    ]);
    let response = http
        .post(&invoke_url)
        .json(&batch)
        .timeout(FIRST_INVOKE_TIMEOUT)
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke failed: {e}\n{}", watch.log_tail()));
    assert_eq!(response.status(), 200, "{}", watch.log_tail());
    let answer: BatchResponse = response.json().await.unwrap();
    assert_eq!(
        answer,
        BatchResponse::failing(["S:5"]),
        "{}",
        watch.log_tail()
    );

    {
        let calls = rest_calls(&sim);
        assert!(calls.iter().all(|call| call.status < 300), "{calls:?}");
        let ping = message_text(&calls, 100);
        assert_eq!(ping.len(), 1, "{calls:?}");
        assert!(
            ping[0].starts_with("pong: ") && ping[0].contains(" ms from the gateway"),
            "{ping:?}"
        );
        assert_eq!(message_text(&calls, 200), ["Welcome, <@4242>!"]);
        assert_eq!(message_text(&calls, 400), ["found: ada, bob"]);
        assert!(message_text(&calls, 500).is_empty());
        let callback = calls
            .iter()
            .find(|call| call.path == "/api/v10/interactions/901/tok-1/callback")
            .unwrap_or_else(|| panic!("no interaction callback in {calls:?}"));
        assert_eq!(callback.method, "POST");
        let body = callback.body.as_ref().unwrap();
        assert_eq!(body["type"], 4);
        assert_eq!(body["data"]["content"], "Hello, <@1>!");
    }
    {
        let commands = commands.lock().unwrap().clone();
        assert_eq!(commands.len(), 1, "{commands:?}");
        assert_eq!(commands[0]["op"], 8);
        assert_eq!(commands[0]["d"]["guild_id"], "40");
        assert_eq!(commands[0]["d"]["query"], "ad");
        assert_eq!(commands[0]["d"]["nonce"], "400");
    }

    // A payload that is neither a batch nor an HTTP request is a function
    // error, which cargo lambda watch answers with 500.
    let response = http
        .post(&invoke_url)
        .json(&json!({"hello": "world"}))
        .timeout(INVOKE_TIMEOUT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);

    // 2. The Function URL, the way an HTTP target is called: signed.
    let key = SigningKey::parse(SECRET).unwrap();
    let function_url = watch.url(&format!("/lambda-url/{FUNCTION}/"));
    let signed_post = |batch: &shardline_wire::Batch, key: &SigningKey, id: &str| {
        let body = serde_json::to_string(batch).unwrap();
        let mut request = http
            .post(&function_url)
            .header("content-type", "application/json")
            .timeout(INVOKE_TIMEOUT);
        let headers = testing::webhook_headers(
            std::slice::from_ref(key),
            id,
            testing::unix_now(),
            body.as_bytes(),
        );
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(body)
    };

    let good = testing::batch([record(
        "S:7",
        "MESSAGE_CREATE",
        0,
        Some(10),
        message_create(10, 101, 1003, "!ping"),
    )]);
    let response = signed_post(&good, &key, "msg_1").send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", watch.log_tail());
    let answer: BatchResponse = response.json().await.unwrap();
    assert!(answer.batch_item_failures.is_empty(), "{answer:?}");
    assert_eq!(message_text(&rest_calls(&sim), 101).len(), 1);

    let forged = testing::batch([record(
        "S:8",
        "MESSAGE_CREATE",
        0,
        Some(10),
        message_create(10, 102, 1004, "!ping"),
    )]);
    let wrong_key = SigningKey::from_bytes(vec![7u8; 32]);
    let response = signed_post(&forged, &wrong_key, "msg_2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "{}", watch.log_tail());
    let calls_now = rest_calls(&sim);
    assert!(
        message_text(&calls_now, 102).is_empty(),
        "a handler ran for a forged delivery: {calls_now:?}"
    );

    gateway.abort();
    drop(watch);
    sim.shutdown().await;
}
