//! Dead letters and replays to a route, against a real nats-server, the real
//! bridge and an in-test HTTP target.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use shardline_jetstream::dlq::{self, DlqError, DlqFilter};
use shardline_jetstream::replay::{self, ReplayOptions, Selection};
use shardline_jetstream::{Bridge, BridgeConfig, RouteConfig, RouteSender, StreamSettings};
use tokio_util::sync::CancellationToken;

async fn start(env: &Env, routes: Vec<RouteConfig>) -> (Bridge, CancellationToken) {
    init_tracing();
    let shutdown = CancellationToken::new();
    let config = BridgeConfig {
        nats_url: env.server.url(),
        prefix: env.names.prefix().to_owned(),
        app: "test".into(),
        dlq_stream: StreamSettings::default(),
        shutdown_grace: Duration::from_secs(5),
        routes,
    };
    let bridge = Bridge::start(&config, env.client.clone(), shutdown.clone())
        .await
        .unwrap();
    (bridge, shutdown)
}

async fn wait_dead_letters(env: &Env, count: usize) {
    for _ in 0..200 {
        if dead_letters(env).await.len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} dead letters arrived");
}

async fn sequences(env: &Env, filter: &DlqFilter) -> Vec<u64> {
    let mut found = Vec::new();
    dlq::scan(&env.js, &env.names, filter, |entry| {
        found.push(entry.sequence)
    })
    .await
    .unwrap();
    found
}

/// Acceptance: dead letters from a failing target are listed with their
/// reasons, redriven once the target is fixed (delivered, then gone from the
/// DLQ), and purged by filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_redriven_and_purged() {
    let env = env().await;
    let fixed = Arc::new(AtomicBool::new(false));
    let flag = fixed.clone();
    // Guild 1001's events are refused until the "bug" is fixed.
    let receiver = Receiver::start(move |records, _, _| {
        let bad = records
            .iter()
            .any(|r| r.guild_id.as_deref() == Some("1001"));
        if bad && !flag.load(Ordering::SeqCst) {
            Answer::status(400).with_body("guild 1001 is not configured")
        } else {
            Answer::ok()
        }
    })
    .await;
    let route = http_route("bot", &receiver.url());
    let (bridge, shutdown) = start(&env, vec![route.clone()]).await;
    publish(&env, &message_events(40, 4)).await;
    wait_dead_letters(&env, 10).await;
    receiver.wait_accepted(30, Duration::from_secs(15)).await;
    shutdown.cancel();
    bridge.wait().await;

    // Listed, with their reasons.
    let mut entries = Vec::new();
    dlq::scan(&env.js, &env.names, &DlqFilter::default(), |e| {
        entries.push(e)
    })
    .await
    .unwrap();
    assert_eq!(entries.len(), 10);
    for entry in &entries {
        assert_eq!(entry.guild_id(), Some("1001"));
        assert_eq!(entry.letter.route, "bot");
        assert_eq!(entry.event(&env.names), "MESSAGE_CREATE");
        assert!(entry.letter.error.contains("400"), "{}", entry.letter.error);
    }
    let filter = |f: DlqFilter| f;
    assert!(
        sequences(
            &env,
            &filter(DlqFilter {
                guilds: vec!["1000".into()],
                ..Default::default()
            })
        )
        .await
        .is_empty()
    );
    assert_eq!(
        sequences(
            &env,
            &filter(DlqFilter {
                routes: vec!["bot".into()],
                ..Default::default()
            })
        )
        .await
        .len(),
        10
    );
    assert!(
        sequences(
            &env,
            &filter(DlqFilter {
                routes: vec!["other".into()],
                ..Default::default()
            })
        )
        .await
        .is_empty()
    );
    let shown = dlq::get(&env.js, &env.names, entries[0].sequence)
        .await
        .unwrap();
    assert_eq!(shown.letter.stream_seq, entries[0].letter.stream_seq);
    assert!(matches!(
        dlq::get(&env.js, &env.names, 9999).await,
        Err(DlqError::NotFound(9999, _))
    ));

    // A redrive while the target still fails keeps the dead letters.
    let stop = CancellationToken::new();
    let mut quick = route.clone();
    quick.retry.max_attempts = 2;
    let mut senders = BTreeMap::new();
    senders.insert(
        "bot".to_owned(),
        RouteSender::for_route(&quick, stop.clone()).await.unwrap(),
    );
    let first_two = DlqFilter {
        sequences: vec![entries[0].sequence, entries[1].sequence],
        ..Default::default()
    };
    let report = dlq::redrive(&env.js, &env.names, &first_two, &senders, None)
        .await
        .unwrap();
    assert_eq!(report.delivered, 0);
    assert_eq!(report.failed.len(), 2);
    assert_eq!(sequences(&env, &DlqFilter::default()).await.len(), 10);

    // An unknown route is named, with the routes that exist.
    let err = dlq::redrive(&env.js, &env.names, &first_two, &senders, Some("nope"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("\"nope\"") && err.to_string().contains("bot"),
        "{err}"
    );

    // Fixed: redrive half of them; they are delivered, marked replay, and leave the DLQ.
    fixed.store(true, Ordering::SeqCst);
    let half = DlqFilter {
        sequences: entries[..5].iter().map(|e| e.sequence).collect(),
        ..Default::default()
    };
    let report = dlq::redrive(&env.js, &env.names, &half, &senders, None)
        .await
        .unwrap();
    assert_eq!(report.delivered, 5, "{:?}", report.failed);
    let redriven: Vec<_> = receiver
        .calls()
        .into_iter()
        .filter(|c| c.answer.status == 200)
        .flat_map(|c| c.records)
        .filter(|r| r.replay)
        .collect();
    assert_eq!(redriven.len(), 5);
    assert!(
        redriven
            .iter()
            .all(|r| r.guild_id.as_deref() == Some("1001"))
    );
    let left = sequences(&env, &DlqFilter::default()).await;
    assert_eq!(
        left,
        entries[5..].iter().map(|e| e.sequence).collect::<Vec<_>>()
    );

    // Purged by filter: only what matches goes.
    let one = DlqFilter {
        sequences: vec![left[0]],
        ..Default::default()
    };
    assert_eq!(
        dlq::remove(&env.js, &env.names, &sequences(&env, &one).await)
            .await
            .unwrap(),
        1
    );
    assert_eq!(sequences(&env, &DlqFilter::default()).await.len(), 4);
    let rest = sequences(
        &env,
        &DlqFilter {
            guilds: vec!["1001".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(dlq::remove(&env.js, &env.names, &rest).await.unwrap(), 4);
    assert!(sequences(&env, &DlqFilter::default()).await.is_empty());
}

/// Acceptance: a replay to a route reaches the target marked `replay: true`
/// while live delivery on the same route continues unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_to_a_route_runs_beside_live_delivery() {
    let env = env().await;
    let receiver = Receiver::start(|_, _, _| Answer::ok()).await;
    let route = http_route("bot", &receiver.url());
    let (bridge, shutdown) = start(&env, vec![route.clone()]).await;
    let first = message_events(60, 3);
    publish(&env, &first).await;
    receiver.wait_accepted(60, Duration::from_secs(15)).await;

    // Replay the first 60 while 60 more arrive live.
    let live: Vec<Event> = (60..120)
        .map(|n| Event {
            name: "MESSAGE_CREATE",
            guild: Some(format!("{}", 1000 + n % 3)),
            n,
        })
        .collect();
    let live_env_js = env.js.clone();
    let live_names = env.names.clone();
    let publisher = tokio::spawn({
        let env = Env {
            server: shardline_harness::NatsServer::start(),
            client: env.client.clone(),
            js: live_env_js,
            names: live_names,
        };
        async move {
            publish(&env, &live).await;
        }
    });
    let stop = CancellationToken::new();
    let mut sink = RouteSender::for_route(&route, stop.clone()).await.unwrap();
    let selection = Selection {
        end: Some(replay::End::Sequence(60)),
        ..Selection::default()
    };
    let options = ReplayOptions {
        mark_replay: true,
        ..Default::default()
    };
    let outcome = replay::replay(
        &env.js,
        &env.names,
        &selection,
        &options,
        &mut sink,
        &stop,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(outcome.progress.delivered, 60);
    publisher.await.unwrap();
    receiver.wait_accepted(120, Duration::from_secs(15)).await;
    shutdown.cancel();
    bridge.wait().await;

    let records: Vec<_> = receiver
        .calls()
        .into_iter()
        .flat_map(|c| c.records)
        .collect();
    let replayed: Vec<u64> = records.iter().filter(|r| r.replay).map(n_of).collect();
    let mut sorted = replayed.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..60).collect::<Vec<_>>(),
        "each of the first 60 replayed once"
    );
    let mut live_seen: Vec<u64> = records.iter().filter(|r| !r.replay).map(n_of).collect();
    live_seen.sort_unstable();
    live_seen.dedup();
    assert_eq!(
        live_seen,
        (0..120).collect::<Vec<_>>(),
        "live delivery got everything"
    );
    let (pending, ack_pending) = consumer_backlog(&env, "bot").await;
    assert_eq!(
        (pending, ack_pending),
        (0, 0),
        "the live consumer is caught up"
    );
}
