//! The bridge against a real nats-server and an in-test HTTP target:
//! acknowledgement only after success, retries, splitting, dead letters,
//! ordering, signatures, shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    Answer, Env, Event, Receiver, consumer_backlog, dead_letters, env, http_route, init_tracing,
    message_events, n_of, publish, set_http_timeout,
};
use rand::{Rng as _, SeedableRng as _};
use shardline_jetstream::{
    Bridge, BridgeConfig, HttpTargetConfig, Ordering, RouteConfig, StreamSettings, TargetConfig,
    TargetState,
};
use shardline_wire::BatchResponse;
use shardline_wire::webhook::{self, SigningKey};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn bridge_config(env: &Env, routes: Vec<RouteConfig>) -> BridgeConfig {
    BridgeConfig {
        nats_url: env.server.url(),
        prefix: env.names.prefix().to_owned(),
        app: "test".into(),
        dlq_stream: StreamSettings::default(),
        shutdown_grace: Duration::from_secs(5),
        routes,
    }
}

async fn start(env: &Env, routes: Vec<RouteConfig>) -> (Bridge, CancellationToken) {
    init_tracing();
    let shutdown = CancellationToken::new();
    let bridge = Bridge::start(
        &bridge_config(env, routes),
        env.client.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    (bridge, shutdown)
}

/// Acceptance: 20,000 events, 20 % of calls fail at random (500, 429 with
/// Retry-After, timeouts). Every event is accepted at least once, none is
/// dead-lettered, and no retry came sooner than its delay allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_events_survive_random_failures() {
    const EVENTS: usize = 20_000;
    const TIMEOUT: Duration = Duration::from_millis(300);
    let env = env().await;
    let rng = Mutex::new(rand::rngs::StdRng::seed_from_u64(20));
    let receiver = Receiver::start(move |_, _, _| {
        let roll: f64 = rng.lock().unwrap().random();
        if roll < 0.2 / 3.0 {
            Answer::status(500).with_body("boom")
        } else if roll < 0.4 / 3.0 {
            Answer::status(429).with_header("Retry-After", "1")
        } else if roll < 0.2 {
            Answer::too_late(TIMEOUT + Duration::from_millis(400))
        } else {
            Answer::ok()
        }
    })
    .await;
    let mut route = http_route("random", &receiver.url());
    route.batch.max_records = 50;
    route.concurrency.max = 16;
    set_http_timeout(&mut route, TIMEOUT);
    let backoff_floor = route.retry.initial_backoff / 2;
    let (bridge, shutdown) = start(&env, vec![route]).await;
    let started = Instant::now();
    publish(&env, &message_events(EVENTS as u64, 50)).await;
    receiver
        .wait_accepted(EVENTS, Duration::from_secs(120))
        .await;
    let elapsed = started.elapsed();

    let calls = receiver.calls();
    let status = bridge.route("random").unwrap().clone();
    println!(
        "{EVENTS} events in {elapsed:?}: {} calls, {} retries scheduled, {} dead-lettered",
        calls.len(),
        status.retried(),
        status.dead_lettered()
    );
    assert!(
        dead_letters(&env).await.is_empty(),
        "the DLQ must stay empty"
    );
    assert_eq!(status.dead_lettered(), 0);
    let failures = calls
        .iter()
        .filter(|c| !c.answer.counts || c.answer.status != 200)
        .count();
    assert!(
        failures * 100 / calls.len() >= 10,
        "the target should have failed a good share of calls ({failures}/{})",
        calls.len()
    );

    // Retries respect the delays.
    let mut by_record: HashMap<&str, Vec<&common::Call>> = HashMap::new();
    for call in &calls {
        for record in &call.records {
            by_record.entry(record.id.as_str()).or_default().push(call);
        }
    }
    let mut checked = 0;
    for attempts in by_record.values_mut() {
        attempts.sort_by_key(|c| c.at);
        for pair in attempts.windows(2) {
            let (first, next) = (pair[0], pair[1]);
            if first.answer.status == 429 {
                let gap = next.at.duration_since(first.answered_at);
                assert!(
                    gap >= Duration::from_millis(950),
                    "retried {gap:?} after a 429 with Retry-After: 1"
                );
                checked += 1;
            } else if !first.answer.counts {
                let gap = next.at.duration_since(first.at);
                assert!(
                    gap >= TIMEOUT,
                    "retried {gap:?} after the call started; it timed out only at {TIMEOUT:?}"
                );
                checked += 1;
            } else if first.answer.status == 500 && first.records.len() == 1 {
                let gap = next.at.duration_since(first.answered_at);
                assert!(
                    gap + Duration::from_millis(5) >= backoff_floor,
                    "retried {gap:?} after a 500, backoff floor {backoff_floor:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} retries checked");
    let (pending, ack_pending) = consumer_backlog(&env, "random").await;
    assert_eq!(pending, 0);
    // Acks of the last calls may still be on their way.
    assert!(ack_pending < 100, "{ack_pending} unacknowledged");
    shutdown.cancel();
    bridge.wait().await;
}

/// Acceptance: a target that answers 400 for one guild. Its events land in
/// the dead-letter stream with the reason, in order; every other guild's
/// events are delivered, in order, without waiting for the failing guild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_guild_is_dead_lettered_in_order_and_others_flow() {
    const BAD: &str = "1003";
    let env = env().await;
    let receiver = Receiver::start(|records, _, _| {
        if records.iter().any(|r| r.guild_id.as_deref() == Some(BAD)) {
            Answer::status(400)
                .with_body("guild not allowed")
                .after(Duration::from_millis(20))
        } else {
            Answer::ok()
        }
    })
    .await;
    let mut route = http_route("guilds", &receiver.url());
    route.ordering = Ordering::PerGuild;
    route.batch.max_records = 8;
    let (bridge, shutdown) = start(&env, vec![route]).await;
    let events = message_events(400, 8); // guilds 1000..1007, 50 events each
    publish(&env, &events).await;
    let good = events
        .iter()
        .filter(|e| e.guild.as_deref() != Some(BAD))
        .count();
    receiver.wait_accepted(good, Duration::from_secs(30)).await;
    let all_good_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while bridge.route("guilds").unwrap().dead_lettered() < 50 {
        assert!(
            Instant::now() < deadline,
            "the bad guild is not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bad_done_at = Instant::now();

    let letters = dead_letters(&env).await;
    assert_eq!(letters.len(), 50);
    let mut previous = 0;
    for letter in &letters {
        assert_eq!(letter.route, "guilds");
        assert!(
            letter.error.contains("400") && letter.error.contains("guild not allowed"),
            "{}",
            letter.error
        );
        assert!(
            letter
                .subject
                .starts_with("discord.dispatch.MESSAGE_CREATE.")
        );
        assert!(
            letter.stream_seq > previous,
            "dead letters out of order: {} after {previous}",
            letter.stream_seq
        );
        previous = letter.stream_seq;
        let payload: serde_json::Value = serde_json::from_slice(&letter.payload).unwrap();
        assert_eq!(payload["guild_id"], BAD);
        assert_eq!(
            letter
                .headers
                .get(shardline_wire::headers::GUILD_ID)
                .unwrap()
                .as_str(),
            BAD
        );
    }
    // Other guilds did not wait for the failing one.
    assert!(
        all_good_at < bad_done_at,
        "good guilds finished after the bad one"
    );
    // Within each guild, first deliveries are in order; the bad guild's
    // calls never skip ahead of an unsettled event.
    let calls = receiver.calls();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut bad_calls_min = Vec::new();
    for call in &calls {
        let guild = call.records[0].guild_id.clone().unwrap();
        assert!(
            call.records
                .iter()
                .all(|r| r.guild_id.as_ref() == Some(&guild)),
            "a per-guild batch mixes guilds"
        );
        let ns: Vec<u64> = call.records.iter().map(n_of).collect();
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "batch out of order: {ns:?}"
        );
        if guild == BAD {
            bad_calls_min.push(ns[0]);
        } else {
            let before = last.insert(guild.clone(), *ns.last().unwrap());
            if let Some(before) = before {
                assert!(ns[0] > before, "guild {guild}: {ns:?} after {before}");
            }
        }
    }
    assert!(
        bad_calls_min.windows(2).all(|w| w[0] <= w[1]),
        "the failing guild's later events went ahead: {bad_calls_min:?}"
    );
    shutdown.cancel();
    bridge.wait().await;
}

/// Per guild, a retried event holds back its guild's later events until it
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_guild_later_events_wait_behind_a_retry() {
    let env = env().await;
    let failures = Arc::new(AtomicUsize::new(0));
    let counter = failures.clone();
    let receiver = Receiver::start(move |records, _, _| {
        // Event 9 fails its first two attempts.
        if records.iter().any(|r| n_of(r) == 9) && counter.fetch_add(1, AtomicOrdering::SeqCst) < 2
        {
            Answer::status(503)
        } else {
            Answer::ok()
        }
    })
    .await;
    let mut route = http_route("ordered", &receiver.url());
    route.ordering = Ordering::PerGuild;
    route.batch.max_records = 1;
    let (bridge, shutdown) = start(&env, vec![route]).await;
    publish(&env, &message_events(40, 2)).await;
    receiver.wait_accepted(40, Duration::from_secs(20)).await;
    let calls = receiver.calls();
    // Guild of event 9 = 1001: its accepted order is 1, 3, 5, 7, 9, 11, …
    let accepted: Vec<u64> = calls
        .iter()
        .filter(|c| c.answer.status == 200 && c.records[0].guild_id.as_deref() == Some("1001"))
        .map(|c| n_of(&c.records[0]))
        .collect();
    let expected: Vec<u64> = (0..40).filter(|n| n % 2 == 1).collect();
    assert_eq!(accepted, expected);
    let nine = calls
        .iter()
        .filter(|c| n_of(&c.records[0]) == 9)
        .map(|c| c.records[0].attempt)
        .collect::<Vec<_>>();
    assert_eq!(nine, [1, 2, 3], "attempt numbers of the retried event");
    // The other guild did not wait: its last event came before event 9 succeeded.
    let nine_ok = calls
        .iter()
        .find(|c| n_of(&c.records[0]) == 9 && c.answer.status == 200)
        .unwrap()
        .at;
    let other_last = calls
        .iter()
        .filter(|c| c.records[0].guild_id.as_deref() == Some("1000"))
        .map(|c| c.at)
        .max()
        .unwrap();
    assert!(other_last < nine_ok, "guild 1000 waited for guild 1001");
    shutdown.cancel();
    bridge.wait().await;
}

/// Acceptance: a response naming two failed items retries only those two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_item_failures_retry_only_those_items() {
    let env = env().await;
    let receiver = Receiver::start(|records, _, _| {
        let failed: Vec<&str> = records
            .iter()
            .filter(|r| r.attempt == 1 && [3, 7].contains(&n_of(r)))
            .map(|r| r.id.as_str())
            .collect();
        Answer::ok().with_body(serde_json::to_string(&BatchResponse::failing(failed)).unwrap())
    })
    .await;
    let mut route = http_route("partial", &receiver.url());
    route.batch.max_records = 10;
    route.batch.max_wait = Duration::from_millis(300);
    let (bridge, shutdown) = start(&env, vec![route]).await;
    publish(&env, &message_events(10, 1)).await;
    receiver.wait_accepted(10, Duration::from_secs(10)).await;
    // Give a wrong retry the time to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = receiver.calls();
    let mut sent: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for call in &calls {
        for record in &call.records {
            sent.entry(n_of(record)).or_default().push(record.attempt);
        }
    }
    for (n, attempts) in &sent {
        if [3, 7].contains(n) {
            assert_eq!(attempts, &[1, 2], "event {n}");
        } else {
            assert_eq!(attempts, &[1], "event {n} was retried though it succeeded");
        }
    }
    assert_eq!(calls[0].records.len(), 10, "one batch of ten first");
    assert!(
        calls[1..]
            .iter()
            .all(|c| c.records.iter().all(|r| [3, 7].contains(&n_of(r)))),
        "retries carry only the failed items"
    );
    assert_eq!(consumer_backlog(&env, "partial").await, (0, 0));
    shutdown.cancel();
    bridge.wait().await;
}

/// Acceptance: HTTP deliveries verify with the Standard Webhooks scheme, for
/// each key of a rotated list; webhook-id stays the same across retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_with_each_rotated_key() {
    // The Standard Webhooks test-vector key, and a newer one.
    let old = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let new = SigningKey::parse("whsec_c2hhcmRsaW5lLXRlc3Qtc2lnbmluZy1rZXk=").unwrap();
    let env = env().await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let receiver = Receiver::start(move |_, _, _| {
        if counter.fetch_add(1, AtomicOrdering::SeqCst) < 2 {
            Answer::status(503)
        } else {
            Answer::ok()
        }
    })
    .await;
    let mut route = http_route("signed", &receiver.url());
    route.target = TargetConfig::Http(HttpTargetConfig::new(
        receiver.url(),
        vec![new.clone(), old.clone()],
    ));
    route.batch.max_records = 1;
    let (bridge, shutdown) = start(&env, vec![route]).await;
    publish(&env, &message_events(1, 1)).await;
    receiver.wait_accepted(1, Duration::from_secs(10)).await;
    let calls = receiver.calls();
    assert_eq!(calls.len(), 3);
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let header = |call: &common::Call, name: &str| {
        call.headers
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let first_id = header(&calls[0], webhook::ID_HEADER);
    for call in &calls {
        let id = header(call, webhook::ID_HEADER);
        assert_eq!(id, first_id, "webhook-id must be stable across retries");
        let timestamp = header(call, webhook::TIMESTAMP_HEADER);
        let signature = header(call, webhook::SIGNATURE_HEADER);
        assert_eq!(signature.split(' ').count(), 2, "one signature per key");
        for keys in [vec![old.clone()], vec![new.clone()]] {
            webhook::verify(&keys, &id, &timestamp, &signature, &call.body, now, 300).unwrap();
        }
        let stranger = SigningKey::from_bytes(vec![1u8; 32]);
        assert!(
            webhook::verify(
                &[stranger],
                &id,
                &timestamp,
                &signature,
                &call.body,
                now,
                300
            )
            .is_err()
        );
        let mut tampered = call.body.to_vec();
        tampered.push(b' ');
        assert!(
            webhook::verify(
                std::slice::from_ref(&old),
                &id,
                &timestamp,
                &signature,
                &tampered,
                now,
                300
            )
            .is_err()
        );
    }
    shutdown.cancel();
    bridge.wait().await;
}

/// Out of attempts: the dead letter carries subject, stream sequence,
/// attempts, the last error, the route, and the original headers and payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_attempts_dead_letter_with_the_envelope() {
    let env = env().await;
    let receiver =
        Receiver::start(|_, _, _| Answer::status(503).with_body("down for maintenance")).await;
    let mut route = http_route("doomed", &receiver.url());
    route.retry.max_attempts = 3;
    route.retry.initial_backoff = Duration::from_millis(50);
    route.batch.max_records = 1;
    let (bridge, shutdown) = start(&env, vec![route]).await;
    publish(&env, &message_events(2, 1)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.route("doomed").unwrap().dead_lettered() < 2 {
        assert!(Instant::now() < deadline, "not dead-lettered in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let letters = dead_letters(&env).await;
    assert_eq!(letters.len(), 2);
    let letter = letters.iter().find(|l| l.stream_seq == 1).unwrap();
    assert_eq!(letter.route, "doomed");
    assert_eq!(letter.stream, "DISCORD_TEST");
    assert_eq!(letter.attempts, 3);
    assert!(
        letter
            .subject
            .starts_with("discord.dispatch.MESSAGE_CREATE.")
    );
    assert!(
        letter.error.contains("3 attempts") && letter.error.contains("503"),
        "{}",
        letter.error
    );
    assert_eq!(
        letter
            .headers
            .get(shardline_wire::headers::MSG_ID)
            .unwrap()
            .as_str(),
        shardline_wire::headers::msg_id(0, "session", 0)
    );
    let payload: serde_json::Value = serde_json::from_slice(&letter.payload).unwrap();
    assert_eq!(payload["n"], 0);
    assert_eq!(receiver.calls().len(), 6, "three attempts per event");
    // Terminated: nothing left for the consumer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(consumer_backlog(&env, "doomed").await, (0, 0));
    shutdown.cancel();
    bridge.wait().await;
}

/// An INTERACTION_CREATE is not retried past Discord's 3 s deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactions_are_not_retried_past_three_seconds() {
    let env = env().await;
    let receiver = Receiver::start(|_, _, _| Answer::status(503)).await;
    let mut route = http_route("interactions", &receiver.url());
    route.events = vec!["INTERACTION_CREATE".into()];
    route.retry.initial_backoff = Duration::from_millis(400);
    route.retry.max_backoff = Duration::from_secs(10);
    let (bridge, shutdown) = start(&env, vec![route]).await;
    let published = Instant::now();
    publish(
        &env,
        &[Event {
            name: "INTERACTION_CREATE",
            guild: Some("1".into()),
            n: 0,
        }],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.route("interactions").unwrap().dead_lettered() < 1 {
        assert!(Instant::now() < deadline, "not dead-lettered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = receiver.calls();
    let last = calls.iter().map(|c| c.at).max().unwrap();
    assert!(
        last.duration_since(published) < Duration::from_secs(3),
        "an attempt came {:?} after the event",
        last.duration_since(published)
    );
    assert!(calls.len() >= 2, "it was retried within the deadline");
    let letters = dead_letters(&env).await;
    assert!(letters[0].error.contains("3 s"), "{}", letters[0].error);
    shutdown.cancel();
    bridge.wait().await;
}

/// HTTP 410 disables the route and leaves its events in the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_route() {
    let env = env().await;
    let receiver = Receiver::start(|_, _, _| Answer::status(410)).await;
    let route = http_route("gone", &receiver.url());
    let (bridge, _shutdown) = start(&env, vec![route]).await;
    let status = bridge.route("gone").unwrap().clone();
    publish(&env, &message_events(5, 1)).await;
    // The route stops by itself.
    tokio::time::timeout(Duration::from_secs(10), bridge.wait())
        .await
        .expect("the route stops after 410");
    assert_eq!(status.state(), TargetState::Disabled);
    assert_eq!(status.acked(), 0);
    assert!(dead_letters(&env).await.is_empty());
    let (pending, ack_pending) = consumer_backlog(&env, "gone").await;
    assert_eq!(
        pending as usize + ack_pending,
        5,
        "the events stay in the stream"
    );
}

/// Graceful shutdown finishes in-flight calls and releases the rest at once,
/// so another bridge takes them without waiting for the ack timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_or_releases_in_flight_work() {
    let env = env().await;
    let receiver = Receiver::start(|_, _, _| Answer::ok().after(Duration::from_millis(300))).await;
    let mut route = http_route("graceful", &receiver.url());
    route.ack_wait = Duration::from_secs(60);
    route.batch.max_records = 1;
    route.concurrency.max = 2;
    let (bridge, shutdown) = start(&env, vec![route.clone()]).await;
    publish(&env, &message_events(30, 1)).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    let stopped_at = Instant::now();
    shutdown.cancel();
    bridge.wait().await;
    let after_first = receiver.accepted_ids().len();

    assert!(after_first >= 2, "in-flight calls finished ({after_first})");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        stopped_at.elapsed()
    );
    // Nothing was left dangling for the 60 s ack timeout.
    let (bridge, shutdown) = start(&env, vec![route]).await;
    receiver.wait_accepted(30, Duration::from_secs(15)).await;
    shutdown.cancel();
    bridge.wait().await;
}

/// Acceptance: throttling (429) makes the route's concurrency fall, and it
/// recovers once the throttling stops. Prints the in-flight count over time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_lowers_concurrency_then_it_recovers() {
    const CAPACITY: usize = 3;
    let env = env().await;
    let throttling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let receiver = Receiver::start_counting(in_flight.clone(), {
        let throttling = throttling.clone();
        let in_flight = in_flight.clone();
        move |_, _, _| {
            if throttling.load(AtomicOrdering::SeqCst)
                && in_flight.load(AtomicOrdering::SeqCst) > CAPACITY
            {
                Answer::status(429).after(Duration::from_millis(5))
            } else {
                Answer::ok().after(Duration::from_millis(25))
            }
        }
    })
    .await;
    let mut route = http_route("throttled", &receiver.url());
    route.batch.max_records = 1;
    route.concurrency.max = 16;
    route.retry.initial_backoff = Duration::from_millis(50);
    route.retry.max_backoff = Duration::from_millis(200);
    route.retry.max_attempts = 1000;
    let (bridge, shutdown) = start(&env, vec![route]).await;
    let status = bridge.route("throttled").unwrap().clone();
    assert_eq!(status.concurrency_limit(), 16);
    publish(&env, &message_events(2000, 10)).await;

    let started = Instant::now();
    let mut samples: Vec<(Duration, usize, usize)> = Vec::new();
    let mut throttled_phase_end = None;
    while receiver.accepted_ids().len() < 2000 {
        let at = started.elapsed();
        samples.push((at, status.in_flight(), status.concurrency_limit()));
        if at > Duration::from_millis(1500) && throttled_phase_end.is_none() {
            throttling.store(false, AtomicOrdering::SeqCst);
            throttled_phase_end = Some(samples.len());
        }
        assert!(at < Duration::from_secs(60), "not done in time");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let split = throttled_phase_end.expect("the run outlasts the throttled phase");
    println!("t(ms)  in-flight  limit");
    for (at, in_flight, limit) in samples.iter().step_by(4) {
        println!("{:5}  {in_flight:9}  {limit:5}", at.as_millis());
    }
    let (throttled, free) = samples.split_at(split);
    let lowest = throttled.iter().map(|s| s.2).min().unwrap();
    assert!(lowest <= CAPACITY + 1, "the limit fell only to {lowest}");
    let late_throttled: Vec<usize> = throttled
        .iter()
        .filter(|s| s.0 > Duration::from_millis(700))
        .map(|s| s.1)
        .collect();
    let mean = late_throttled.iter().sum::<usize>() as f64 / late_throttled.len() as f64;
    assert!(
        mean <= (CAPACITY * 2) as f64,
        "in flight under throttling averaged {mean}"
    );
    let highest_after = free.iter().map(|s| s.2).max().unwrap();
    let busiest_after = free.iter().map(|s| s.1).max().unwrap();
    assert!(
        highest_after >= 12,
        "the limit recovered only to {highest_after}"
    );
    assert!(
        busiest_after >= 8,
        "in flight recovered only to {busiest_after}"
    );
    println!(
        "limit fell to {lowest} under throttling (mean in flight {mean:.1}), recovered to {highest_after} (in flight up to {busiest_after})"
    );
    assert!(dead_letters(&env).await.is_empty());
    shutdown.cancel();
    bridge.wait().await;
}
