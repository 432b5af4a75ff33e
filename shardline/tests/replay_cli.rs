//! `shardline replay` through the real binary.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use shardline_harness::NatsServer;
use shardline_wire::{Names, Record, headers};

const APP: &str = "clitest";

async fn publish(server: &NatsServer, count: u64) {
    let js = server.jetstream().await;
    let names = Names::new("discord", APP).unwrap();
    shardline_jetstream::ensure_dispatch_stream(&js, &names, &Default::default())
        .await
        .unwrap();
    for i in 1..=count {
        let event = if i % 2 == 0 {
            "MESSAGE_CREATE"
        } else {
            "TYPING_START"
        };
        let mut map = async_nats::HeaderMap::new();
        map.insert(headers::MSG_ID, format!("0:s:{i}").as_str());
        map.insert(headers::SEQ, i.to_string().as_str());
        map.insert(headers::GUILD_ID, if i % 3 == 0 { "7" } else { "8" });
        map.insert(headers::RECEIVED_AT, "2026-11-25T00:00:00Z");
        js.publish_with_headers(
            names.dispatch_subject(event, (i % 4) as u32),
            map,
            format!(r#"{{"i":{i}}}"#).into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
}

fn shardline(server: &NatsServer, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shardline"));
    command
        .arg("replay")
        .args(["--nats-url", &server.url(), "--app", APP])
        .args(args)
        .env_remove("SHARDLINE_NATS_URL")
        .stdin(Stdio::null());
    command
}

fn run(server: &NatsServer, args: &[&str]) -> Output {
    shardline(server, args).output().unwrap()
}

fn records(text: &str) -> Vec<Record> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn filters_and_writes_json_lines() {
    let server = NatsServer::start();
    publish(&server, 40).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let out = run(
        &server,
        &[
            "--event",
            "MESSAGE_CREATE",
            "--guild",
            "7",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = records(&std::fs::read_to_string(&file).unwrap());
    let seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![6, 12, 18, 24, 30, 36]);
    assert!(got.iter().all(|r| r.replay && r.event == "MESSAGE_CREATE"));

    let out = run(
        &server,
        &["--from-seq", "5", "--to-seq", "9", "--shard", "1"],
    );
    assert!(out.status.success());
    let seqs: Vec<u64> = records(&String::from_utf8(out.stdout).unwrap())
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, vec![5, 9]);

    let out = run(&server, &["--dry-run", "--event", "TYPING_START"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("20 records would be sent"));
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let server = NatsServer::start();
    publish(&server, 10).await;
    let out = run(&server, &["--event", "MESAGE_CREATE"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MESAGE_CREATE") && err.contains("MESSAGE_CREATE (5)"),
        "{err}"
    );

    let out = run(&server, &["--from", "yesterday"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));

    let out = run(&server, &["--from-seq", "3", "--since", "1h"]);
    assert!(!out.status.success(), "two starts are refused");
}

#[tokio::test]
async fn interrupted_replay_prints_how_to_resume() {
    let server = NatsServer::start();
    publish(&server, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let path = file.to_str().unwrap().to_owned();
    let child = shardline(&server, &["--rate", "20", "--output", &path])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let err = String::from_utf8_lossy(&out.stderr);
    let next: u64 = err
        .split("--resume-from ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume hint in: {err}"));
    let first = records(&std::fs::read_to_string(&file).unwrap()).len() as u64;
    assert!(first > 0 && first < 60, "interrupted part-way: {first}");
    assert_eq!(next, first + 1);

    let out = run(
        &server,
        &["--resume-from", &next.to_string(), "--output", &path],
    );
    assert!(out.status.success());
    let seqs: Vec<u64> = records(&std::fs::read_to_string(&file).unwrap())
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=60).collect::<Vec<_>>(),
        "every event exactly once"
    );
}
