//! Signed HTTP deliveries (Function URL / API Gateway v2) through `BotService`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use shardline_lambda_bot::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use shardline_lambda_bot::aws_lambda_events::encodings::Body;
use shardline_lambda_bot::event::MessageCreate;
use shardline_lambda_bot::testing::{self, lambda_event, message_create, record};
use shardline_lambda_bot::{Bot, BotService, Config, Context, Error, Response};
use shardline_wire::webhook::SigningKey;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn counting_service(runs: &Arc<AtomicUsize>, keys: Vec<SigningKey>) -> BotService {
    let runs = Arc::clone(runs);
    let mut config = Config::with_token("t");
    config.webhook_keys = keys;
    Bot::new()
        .on(move |_ctx: Context, msg: MessageCreate| {
            let runs = Arc::clone(&runs);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                if msg.content == "fail" {
                    return Err(Error::new("busy"));
                }
                Ok(())
            }
        })
        .with_config(config)
}

fn body() -> String {
    serde_json::to_string(&testing::batch([
        record(
            "S:1",
            "MESSAGE_CREATE",
            0,
            Some(1),
            message_create(1, 2, 3, "ok"),
        ),
        record(
            "S:2",
            "MESSAGE_CREATE",
            0,
            Some(4),
            message_create(4, 2, 3, "fail"),
        ),
    ]))
    .unwrap()
}

fn key() -> SigningKey {
    SigningKey::parse(SECRET).unwrap()
}

#[tokio::test]
async fn a_signed_delivery_runs_and_answers_with_failures() {
    let runs = Arc::new(AtomicUsize::new(0));
    let service = counting_service(&runs, vec![key()]);
    let body = body();
    let headers = testing::webhook_headers(&[key()], "msg_1", testing::unix_now(), body.as_bytes());
    let response = service
        .handle_http(lambda_event(testing::http_request(&body, headers)))
        .await;
    assert_eq!(response.status_code, 200, "{response:?}");
    let answer: shardline_lambda_bot::BatchResponse =
        serde_json::from_str(&text(&response)).unwrap();
    assert_eq!(
        answer,
        shardline_lambda_bot::BatchResponse::failing(["S:2"])
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn bad_signatures_get_401_and_run_nothing() {
    let runs = Arc::new(AtomicUsize::new(0));
    let service = counting_service(&runs, vec![key()]);
    let body = body();
    let now = testing::unix_now();
    let other = SigningKey::from_bytes(vec![7u8; 32]);

    let mut cases = Vec::new();
    // Signed with the wrong key.
    cases.push(testing::http_request(
        &body,
        testing::webhook_headers(&[other], "msg_1", now, body.as_bytes()),
    ));
    // Signed correctly, then the body was changed.
    let tampered = body.replace("\"ok\"", "\"ko\"");
    cases.push(testing::http_request(
        &tampered,
        testing::webhook_headers(&[key()], "msg_1", now, body.as_bytes()),
    ));
    // A replay of an old delivery: the signature is right, the timestamp stale.
    cases.push(testing::http_request(
        &body,
        testing::webhook_headers(&[key()], "msg_1", now - 3600, body.as_bytes()),
    ));
    // No signature at all.
    cases.push(testing::http_request(&body, []));

    for request in cases {
        let response = service.handle_http(lambda_event(request)).await;
        assert_eq!(response.status_code, 401, "{response:?}");
    }
    // No keys configured: nothing can be verified, so nothing is accepted.
    let unconfigured = counting_service(&runs, Vec::new());
    let headers = testing::webhook_headers(&[key()], "msg_1", now, body.as_bytes());
    let response = unconfigured
        .handle_http(lambda_event(testing::http_request(&body, headers)))
        .await;
    assert_eq!(response.status_code, 401);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "a handler ran for a rejected delivery"
    );
}

#[tokio::test]
async fn base64_bodies_and_payload_detection() {
    let runs = Arc::new(AtomicUsize::new(0));
    let service = counting_service(&runs, vec![key()]);
    let body = body();
    let headers = testing::webhook_headers(&[key()], "msg_2", testing::unix_now(), body.as_bytes());
    let mut request = testing::http_request(
        &base64::engine::general_purpose::STANDARD.encode(&body),
        headers,
    );
    request.is_base64_encoded = true;
    // Through the entry point `run` uses: the payload says it is an HTTP request.
    let raw = serde_json::value::to_raw_value(&request).unwrap();
    let Response::Http(response) = service.handle(lambda_event(raw)).await.unwrap() else {
        panic!("an HTTP request gets an HTTP response");
    };
    assert_eq!(response.status_code, 200, "{response:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

fn text(response: &ApiGatewayV2httpResponse) -> String {
    match &response.body {
        Some(Body::Text(text)) => text.clone(),
        other => panic!("expected a text body, got {other:?}"),
    }
}
