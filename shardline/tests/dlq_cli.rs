//! `shardline dlq` through the real binary.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use shardline_harness::NatsServer;
use shardline_jetstream::bridge::DeadLetter;
use shardline_wire::{Batch, Names, headers};

const APP: &str = "dlqcli";

/// Stores `count` dead letters of route `bot`, guilds alternating 7 and 8.
async fn dead_letters(server: &NatsServer, count: u64) {
    let js = server.jetstream().await;
    let names = Names::new("discord", APP).unwrap();
    shardline_jetstream::ensure_dlq_stream(&js, &names, &Default::default())
        .await
        .unwrap();
    for i in 1..=count {
        let mut original = async_nats::HeaderMap::new();
        original.insert(headers::SEQ, i.to_string().as_str());
        original.insert(headers::GUILD_ID, if i % 2 == 0 { "8" } else { "7" });
        original.insert(headers::RECEIVED_AT, "2026-11-25T00:00:00Z");
        DeadLetter {
            route: "bot".into(),
            subject: names.dispatch_subject("MESSAGE_CREATE", 0),
            stream: names.dispatch_stream(),
            stream_seq: i,
            attempts: 3,
            error: format!("HTTP 400 Bad Request: no such channel {i}"),
            failed_at: "2026-11-25T00:00:00Z".into(),
            headers: original,
            payload: format!(r#"{{"i":{i}}}"#).into(),
        }
        .publish(&js, &names)
        .await
        .unwrap();
    }
}

fn dlq(server: &NatsServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shardline"))
        .arg("dlq")
        .args(["--nats-url", &server.url(), "--app", APP])
        .args(args)
        .env_remove("SHARDLINE_NATS_URL")
        .env_remove("SHARDLINE_BRIDGE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An HTTP target that records every record it accepts.
async fn receiver() -> (String, Arc<Mutex<Vec<shardline_wire::Record>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let store = seen.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let store = store.clone();
        async move {
            let batch: Batch = serde_json::from_slice(&body).unwrap();
            store.lock().unwrap().extend(batch.records);
            "{}"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_show_redrive_and_purge() {
    let server = NatsServer::start();
    dead_letters(&server, 6).await;

    let out = dlq(&server, &["list"]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = text(&out);
    assert!(listing.contains("6 dead letter(s)"), "{listing}");
    assert!(listing.contains("no such channel 5"), "{listing}");

    let out = dlq(&server, &["list", "--guild", "8", "--json"]);
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|l| l["guild_id"] == "8" && l["route"] == "bot")
    );

    let out = dlq(&server, &["show", "2"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["data"]["i"], 2);
    assert_eq!(shown["attempts"], 3);
    let out = dlq(&server, &["show", "99"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no dead letter with sequence 99"),
        "{}",
        text(&out)
    );

    // Purge needs a filter (or --all), and --yes to act.
    let out = dlq(&server, &["purge"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("needs a filter"), "{}", text(&out));
    let out = dlq(&server, &["purge", "--guild", "7"]);
    assert!(
        text(&out).contains("3 dead letter(s) match; nothing removed"),
        "{}",
        text(&out)
    );
    assert!(text(&dlq(&server, &["list"])).contains("6 dead letter(s)"));
    let out = dlq(&server, &["purge", "--guild", "7", "--yes"]);
    assert!(text(&out).contains("removed 3"), "{}", text(&out));

    // Redrive through the route a bridge configuration defines.
    let (url, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[[route]]\nname = \"bot\"\nevents = [\"MESSAGE_CREATE\"]\n[route.target]\nkind = \"http\"\nurl = \"{url}\"\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let out = dlq(
        &server,
        &["redrive", "--config", config, "--to-route", "nope"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no route named \"nope\""),
        "{}",
        text(&out)
    );
    let out = dlq(&server, &["redrive", "--config", config]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("redrove 3"), "{}", text(&out));
    let records = seen.lock().unwrap().clone();
    let mut delivered: Vec<u64> = records.iter().map(|r| r.seq).collect();
    delivered.sort_unstable();
    assert_eq!(delivered, vec![2, 4, 6]);
    assert!(records.iter().all(|r| r.replay));
    assert!(text(&dlq(&server, &["list"])).contains("0 dead letter(s)"));
}
