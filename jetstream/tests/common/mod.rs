//! Shared pieces of the bridge tests: a NATS server with the dispatch
//! stream, an event publisher, and an in-test HTTP target that records every
//! call and answers as each test scripts it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt as _;
use shardline_harness::NatsServer;
use shardline_jetstream::bridge::DeadLetter;
use shardline_jetstream::{HttpTargetConfig, RouteConfig, StreamSettings, TargetConfig};
use shardline_wire::{Batch, Names, Record, headers};
use tokio::time::Instant;

/// A NATS server with the dispatch stream.
pub struct Env {
    pub server: NatsServer,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub names: Names,
}

pub async fn env() -> Env {
    let server = NatsServer::start();
    let client = server.client().await;
    let js = jetstream::new(client.clone());
    let names = Names::new("discord", "test").unwrap();
    shardline_jetstream::ensure_dispatch_stream(&js, &names, &StreamSettings::default())
        .await
        .unwrap();
    Env {
        server,
        client,
        js,
        names,
    }
}

/// One event to publish: `n` is carried in the payload so the target can
/// tell events apart.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: &'static str,
    pub guild: Option<String>,
    pub n: u64,
}

pub fn message_events(count: u64, guilds: u64) -> Vec<Event> {
    (0..count)
        .map(|n| Event {
            name: "MESSAGE_CREATE",
            guild: Some(format!("{}", 1000 + n % guilds.max(1))),
            n,
        })
        .collect()
}

/// Publishes events as a shard would (subject, headers, raw payload),
/// pipelining the acks.
pub async fn publish(env: &Env, events: &[Event]) {
    for chunk in events.chunks(2000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for event in chunk {
            let shard = (event.n % 4) as u32;
            let mut h = async_nats::HeaderMap::new();
            h.insert(headers::MSG_ID, headers::msg_id(shard, "session", event.n));
            h.insert(headers::SHARD, shard.to_string());
            h.insert(headers::SEQ, event.n.to_string());
            h.insert(headers::SESSION, "session");
            h.insert(headers::RECEIVED_AT, now_rfc3339());
            let guild = match &event.guild {
                Some(guild) => {
                    h.insert(headers::GUILD_ID, guild.as_str());
                    format!(",\"guild_id\":\"{guild}\"")
                }
                None => String::new(),
            };
            let payload = format!("{{\"n\":{}{guild},\"content\":\"hello\"}}", event.n);
            let subject = env.names.dispatch_subject(event.name, shard);
            acks.push(
                env.js
                    .publish_with_headers(subject, h, payload.into())
                    .await
                    .unwrap(),
            );
        }
        for ack in acks {
            ack.await.unwrap();
        }
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The `n` of a record.
pub fn n_of(record: &Record) -> u64 {
    let value: serde_json::Value = serde_json::from_str(record.data.get()).unwrap();
    value["n"].as_u64().unwrap()
}

/// An HTTP route with settings that keep tests fast.
pub fn http_route(name: &str, url: &str) -> RouteConfig {
    let mut route = RouteConfig::new(
        name,
        vec!["MESSAGE_CREATE".into()],
        TargetConfig::Http(HttpTargetConfig::new(url, Vec::new())),
    );
    route.batch.max_wait = Duration::from_millis(5);
    route.retry.initial_backoff = Duration::from_millis(100);
    route.retry.max_backoff = Duration::from_secs(1);
    route.retry.max_attempts = 100;
    route.ack_wait = Duration::from_secs(10);
    if let TargetConfig::Http(http) = &mut route.target {
        http.timeout = Duration::from_secs(2);
    }
    route
}

pub fn set_http_timeout(route: &mut RouteConfig, timeout: Duration) {
    if let TargetConfig::Http(http) = &mut route.target {
        http.timeout = timeout;
    }
}

/// Every dead letter in the dead-letter stream, in stream order.
pub async fn dead_letters(env: &Env) -> Vec<DeadLetter> {
    let Ok(mut stream) = env.js.get_stream(env.names.dlq_stream()).await else {
        return Vec::new();
    };
    let count = stream.info().await.unwrap().state.messages;
    if count == 0 {
        return Vec::new();
    }
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut letters = Vec::new();
    while (letters.len() as u64) < count {
        let msg = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .expect("dead letters arrive")
            .unwrap()
            .unwrap();
        letters.push(
            DeadLetter::from_parts(msg.headers.as_ref().unwrap(), msg.payload.clone()).unwrap(),
        );
    }
    letters
}

/// Pending figures of a route's consumer: (not yet delivered, unacknowledged).
pub async fn consumer_backlog(env: &Env, route: &str) -> (u64, usize) {
    let stream = env
        .js
        .get_stream(env.names.dispatch_stream())
        .await
        .unwrap();
    let info = stream
        .consumer_info(format!("bridge_{route}"))
        .await
        .unwrap();
    (info.num_pending, info.num_ack_pending)
}

/// How the target answers one call.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Sleep this long before answering.
    pub delay: Duration,
    /// `false` for answers the bridge is expected to time out on.
    pub counts: bool,
}

impl Answer {
    pub fn ok() -> Self {
        Self::status(200)
    }
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
            counts: true,
        }
    }
    /// An answer that comes after the bridge gave up on the call.
    pub fn too_late(delay: Duration) -> Self {
        Self {
            delay,
            counts: false,
            ..Self::ok()
        }
    }
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn with_body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// One call the target received.
#[derive(Debug, Clone)]
pub struct Call {
    pub uri: String,
    pub at: Instant,
    pub answered_at: Instant,
    pub records: Vec<Record>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub answer: Answer,
}

type Script = dyn Fn(&[Record], &HeaderMap, &Bytes) -> Answer + Send + Sync;

/// The in-test HTTP target.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub in_flight: Arc<std::sync::atomic::AtomicUsize>,
    pub max_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    /// Serves on 127.0.0.1 (a free port), answering each call with `script`.
    pub async fn start(
        script: impl Fn(&[Record], &HeaderMap, &Bytes) -> Answer + Send + Sync + 'static,
    ) -> Self {
        Self::start_counting(Arc::default(), script).await
    }

    /// Like [`Receiver::start`], counting calls in progress in `in_flight`
    /// (the script can read it).
    pub async fn start_counting(
        in_flight: Arc<std::sync::atomic::AtomicUsize>,
        script: impl Fn(&[Record], &HeaderMap, &Bytes) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let script: Arc<Script> = Arc::new(script);
        let calls = Arc::new(Mutex::new(Vec::new()));
        let max_in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let state = (
            script,
            calls.clone(),
            in_flight.clone(),
            max_in_flight.clone(),
        );
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let (script, calls, in_flight, max_in_flight) = state.clone();
                async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = in_flight.fetch_add(1, SeqCst) + 1;
                    max_in_flight.fetch_max(now, SeqCst);
                    let at = Instant::now();
                    let batch: Batch = serde_json::from_slice(&body).expect("a batch body");
                    let answer = script(&batch.records, &headers, &body);
                    if !answer.delay.is_zero() {
                        tokio::time::sleep(answer.delay).await;
                    }
                    calls.lock().unwrap().push(Call {
                        uri: uri.to_string(),
                        at,
                        answered_at: Instant::now(),
                        records: batch.records,
                        headers: headers.clone(),
                        body: body.clone(),
                        answer: answer.clone(),
                    });
                    in_flight.fetch_sub(1, SeqCst);
                    let mut response = axum::http::Response::builder()
                        .status(StatusCode::from_u16(answer.status).unwrap());
                    for (name, value) in &answer.headers {
                        response = response.header(name, value);
                    }
                    response.body(axum::body::Body::from(answer.body)).unwrap()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            calls,
            in_flight,
            max_in_flight,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Record ids answered with 2xx and not named in batchItemFailures.
    pub fn accepted_ids(&self) -> HashMap<String, usize> {
        let mut accepted = HashMap::new();
        for call in self.calls.lock().unwrap().iter() {
            if !call.answer.counts || !(200..300).contains(&call.answer.status) {
                continue;
            }
            let failed: Vec<String> =
                serde_json::from_str::<shardline_wire::BatchResponse>(&call.answer.body)
                    .map(|r| {
                        r.batch_item_failures
                            .into_iter()
                            .map(|f| f.item_identifier)
                            .collect()
                    })
                    .unwrap_or_default();
            for record in &call.records {
                if !failed.contains(&record.id) {
                    *accepted.entry(record.id.clone()).or_insert(0) += 1;
                }
            }
        }
        accepted
    }

    /// Waits until `count` distinct records were accepted, or panics after `limit`.
    pub async fn wait_accepted(&self, count: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let accepted = self.accepted_ids().len();
            if accepted >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {accepted} of {count} records accepted within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Installs a test subscriber once (RUST_LOG decides what shows).
pub fn init_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
    });
}
