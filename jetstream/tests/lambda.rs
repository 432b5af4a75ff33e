//! The Lambda target against an in-test fake of the Invoke API
//! (`POST /2015-03-31/functions/{name}/invocations`), answering as AWS does
//! and as `cargo lambda watch` does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    Answer, Receiver, consumer_backlog, dead_letters, env, message_events, n_of, publish,
};
use shardline_jetstream::{
    Bridge, BridgeConfig, DeliveryOutcome, FailureKind, LambdaTarget, LambdaTargetConfig,
    PreparedBatch, RouteConfig, StreamSettings, Target, TargetConfig,
};
use shardline_wire::{Batch, BatchResponse, Record};
use tokio_util::sync::CancellationToken;

fn lambda_config(endpoint: &str) -> LambdaTargetConfig {
    toml::from_str(&format!(
        "function = \"bot\"\nendpoint = \"{endpoint}\"\ntimeout = \"2s\""
    ))
    .unwrap()
}

fn batch() -> Batch {
    let record = |seq: u64| Record {
        id: format!("S:{seq}"),
        event: "MESSAGE_CREATE".into(),
        shard: 0,
        seq,
        guild_id: None,
        received_at: "2026-01-01T00:00:00Z".into(),
        attempt: 1,
        replay: false,
        data: serde_json::value::RawValue::from_string(format!("{{\"n\":{seq}}}")).unwrap(),
    };
    Batch {
        records: vec![record(1), record(2)],
    }
}

/// Each Invoke API answer maps to the right outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_api_answers_map_to_outcomes() {
    let answers = Arc::new(Mutex::new(vec![
        Answer::ok().with_body(
            serde_json::to_string(&BatchResponse::failing(["S:2"])).unwrap(),
        ),
        Answer::ok()
            .with_header("X-Amz-Function-Error", "Unhandled")
            .with_body(r#"{"errorType":"Panic","errorMessage":"boom"}"#),
        // `cargo lambda watch` reports a function error as HTTP 500.
        Answer::status(500).with_body(r#"{"errorType":"Panic","errorMessage":"boom"}"#),
        Answer::status(429)
            .with_header("x-amzn-errortype", "TooManyRequestsException")
            .with_header("Retry-After", "2")
            .with_body(r#"{"Type":"User","message":"Rate Exceeded.","Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"}"#),
        Answer::ok().with_body("null"),
        Answer::status(413)
            .with_header("x-amzn-errortype", "RequestTooLargeException")
            .with_body(r#"{"Type":"User","message":"Request must be smaller than 6291456 bytes"}"#),
    ]));
    let receiver = Receiver::start({
        let answers = answers.clone();
        move |_, _, _| answers.lock().unwrap().remove(0)
    })
    .await;
    let target = LambdaTarget::new(&lambda_config(&format!("http://{}", receiver.addr))).await;
    let prepared = PreparedBatch::new(&batch()).unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.push(target.deliver(&prepared).await);
    }
    assert_eq!(
        outcomes[0],
        DeliveryOutcome::Accepted {
            failed: vec!["S:2".into()]
        }
    );
    let kind = |o: &DeliveryOutcome| match o {
        DeliveryOutcome::Failed(f) => Some((f.kind, f.retry_after)),
        _ => None,
    };
    assert_eq!(kind(&outcomes[1]), Some((FailureKind::FunctionError, None)));
    assert_eq!(kind(&outcomes[2]), Some((FailureKind::FunctionError, None)));
    assert_eq!(
        kind(&outcomes[3]),
        Some((FailureKind::Throttled, Some(Duration::from_secs(2))))
    );
    assert_eq!(outcomes[4], DeliveryOutcome::Accepted { failed: vec![] });
    assert_eq!(kind(&outcomes[5]).map(|k| k.0), Some(FailureKind::Rejected));
    let calls = receiver.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.uri == "/2015-03-31/functions/bot/invocations"),
        "{:?}",
        calls.iter().map(|c| &c.uri).collect::<Vec<_>>()
    );
    assert_eq!(calls[0].body, prepared.body, "the payload is the batch");
    assert!(target.describe().contains("lambda bot"));
}

/// Through the bridge: a throttle, a function error and partial failures are
/// all honoured, and every event is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_delivers_through_the_invoke_api() {
    let env = env().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let receiver = Receiver::start({
        let calls = calls.clone();
        move |records, _, _| match calls.fetch_add(1, AtomicOrdering::SeqCst) {
            0 => Answer::status(429)
                .with_header("x-amzn-errortype", "TooManyRequestsException")
                .with_header("Retry-After", "1")
                .with_body(r#"{"Type":"User","message":"Rate Exceeded."}"#),
            1 => Answer::status(500).with_body(r#"{"errorMessage":"boom"}"#),
            _ => {
                let failed: Vec<&str> = records
                    .iter()
                    .filter(|r| r.attempt == 1 && n_of(r).is_multiple_of(5))
                    .map(|r| r.id.as_str())
                    .collect();
                Answer::ok()
                    .with_body(serde_json::to_string(&BatchResponse::failing(failed)).unwrap())
            }
        }
    })
    .await;
    let mut route = RouteConfig::new(
        "lambda",
        vec!["MESSAGE_CREATE".into()],
        TargetConfig::Lambda(lambda_config(&format!("http://{}", receiver.addr))),
    );
    route.batch.max_wait = Duration::from_millis(5);
    route.retry.initial_backoff = Duration::from_millis(100);
    let config = BridgeConfig {
        nats_url: env.server.url(),
        prefix: "discord".into(),
        app: "test".into(),
        dlq_stream: StreamSettings::default(),
        shutdown_grace: Duration::from_secs(5),
        routes: vec![route],
    };
    let shutdown = CancellationToken::new();
    let bridge = Bridge::start(&config, env.client.clone(), shutdown.clone())
        .await
        .unwrap();
    publish(&env, &message_events(100, 4)).await;
    receiver.wait_accepted(100, Duration::from_secs(20)).await;
    let mut first_attempt_failures = 0;
    for call in receiver.calls().iter().filter(|c| c.answer.status == 200) {
        let response: BatchResponse = serde_json::from_str(&call.answer.body).unwrap();
        for failure in &response.batch_item_failures {
            let record = call
                .records
                .iter()
                .find(|r| r.id == failure.item_identifier)
                .unwrap();
            assert!(n_of(record).is_multiple_of(5));
            first_attempt_failures += 1;
        }
    }
    assert!(first_attempt_failures > 0);
    assert!(dead_letters(&env).await.is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(consumer_backlog(&env, "lambda").await, (0, 0));
    shutdown.cancel();
    bridge.wait().await;
}
