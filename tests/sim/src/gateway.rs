//! One gateway WebSocket connection: HELLO, heartbeats, IDENTIFY/RESUME,
//! the dispatch stream, commands, Discord's rules, and faults.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, MissedTickBehavior};

use crate::compress::{Compress, Encoder};
use crate::config::{KNOWN_INTENTS, PRIVILEGED_INTENTS};
use crate::events::{self, guilds_for_shard, shard_of};
use crate::fault::{Fault, FaultRequest};
use crate::ledger::{IdentifyRecord, Violation};
use crate::state::{Broadcast, Session, Shared, StartOutcome, lock};

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed with this code (or none).
    ClientClose(Option<u16>),
    /// The server closed with this code.
    ServerClose(u16),
    /// The TCP connection went away (or the server dropped it on purpose).
    Gone,
}

/// What handling something asks the loop to do next.
#[derive(Debug)]
enum Flow {
    Continue,
    Close {
        code: u16,
        reason: &'static str,
        violation: Option<Violation>,
    },
    Drop,
}

impl Flow {
    fn close(code: u16, reason: &'static str, violation: Violation) -> Self {
        Self::Close {
            code,
            reason,
            violation: Some(violation),
        }
    }
}

/// Outbound messages of one loop turn, written and flushed together.
#[derive(Debug, Default)]
struct Outbox {
    /// A gateway message (to encode) or a raw frame, with its seq if sequenced.
    items: Vec<(OutItem, Option<u64>)>,
}

#[derive(Debug)]
enum OutItem {
    Gateway(Bytes),
    Raw(Message),
}

type Tx = SplitSink<WebSocket, Message>;
type Rx = SplitStream<WebSocket>;

/// Runs one connection to its end.
pub(crate) async fn serve(socket: WebSocket, shared: Arc<Shared>, compress: Compress) {
    shared.conns_open.fetch_add(1, Ordering::Relaxed);
    let id = shared.next_conn_id();
    let span = tracing::debug_span!("connection", conn = id, compress = ?compress);
    let _enter = span.enter();
    drop(_enter);
    match Encoder::new(compress) {
        Ok(encoder) => {
            let mut conn = Connection::new(id, shared.clone(), compress, encoder);
            let (tx, rx) = socket.split();
            let end = conn.run(tx, rx).await;
            tracing::debug!(conn = id, end = ?end, "connection ended");
            conn.detach(end);
        }
        Err(error) => tracing::warn!(%error, "no compression context"),
    }
    shared.conns_open.fetch_sub(1, Ordering::Relaxed);
}

struct Connection {
    id: u64,
    shared: Arc<Shared>,
    compress: Compress,
    encoder: Encoder,
    session: Option<Arc<Mutex<Session>>>,
    shard: Option<u32>,
    num_shards: u32,
    last_heartbeat: Instant,
    zombie: bool,
    stalled_until: Option<Instant>,
    window_start: Instant,
    window_count: u32,
    credit: f64,
    last_emit: Instant,
    out: Outbox,
}

impl Connection {
    fn new(id: u64, shared: Arc<Shared>, compress: Compress, encoder: Encoder) -> Self {
        let now = Instant::now();
        Self {
            id,
            shared,
            compress,
            encoder,
            session: None,
            shard: None,
            num_shards: 1,
            last_heartbeat: now,
            zombie: false,
            stalled_until: None,
            window_start: now,
            window_count: 0,
            credit: 0.0,
            last_emit: now,
            out: Outbox::default(),
        }
    }

    async fn run(&mut self, mut tx: Tx, mut rx: Rx) -> End {
        let shared = self.shared.clone();
        let config = &shared.config;
        let hello = json!({
            "t": null, "s": null, "op": 10,
            "d": {
                "heartbeat_interval": u64::try_from(config.heartbeat_interval.as_millis()).unwrap_or(u64::MAX),
                "_trace": ["shardline-sim"],
            }
        });
        self.gateway(hello.to_string());
        let timeout = config.heartbeat_timeout();
        let mut tick = tokio::time::interval(config.emit_tick);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut broadcast = self.shared.broadcast.subscribe();
        let shutdown = self.shared.shutdown.clone();
        loop {
            if let Some(end) = self.flush(&mut tx).await {
                return end;
            }
            let deadline = self.last_heartbeat + timeout;
            let flow = tokio::select! {
                biased;
                () = shutdown.cancelled() => Flow::Close { code: 1001, reason: "simulator shutting down", violation: None },
                message = rx.next() => match message {
                    None | Some(Err(_)) => return End::Gone,
                    Some(Ok(Message::Close(frame))) => return End::ClientClose(frame.map(|f| f.code)),
                    Some(Ok(Message::Text(text))) => self.on_payload(text.as_bytes()),
                    Some(Ok(Message::Binary(data))) => self.on_payload(&data),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Flow::Continue,
                },
                () = tokio::time::sleep_until(deadline) => Flow::close(4009, "heartbeat timeout", Violation::HeartbeatTimeout),
                note = broadcast.recv() => match note {
                    Ok(note) => self.on_broadcast(note),
                    Err(RecvError::Lagged(_)) => Flow::Continue,
                    Err(RecvError::Closed) => Flow::Drop,
                },
                _ = tick.tick() => self.on_tick(),
            };
            match flow {
                Flow::Continue => {}
                Flow::Drop => return End::Gone,
                Flow::Close {
                    code,
                    reason,
                    violation,
                } => {
                    if let Some(violation) = violation {
                        self.shared.violation(violation);
                    }
                    // What was queued before the close still goes out.
                    let _ = self.flush(&mut tx).await;
                    let frame = CloseFrame {
                        code,
                        reason: Utf8Bytes::from_static(reason),
                    };
                    let _ = tx.send(Message::Close(Some(frame))).await;
                    return End::ServerClose(code);
                }
            }
        }
    }

    /// Writes the outbox; `Some` when the socket failed.
    async fn flush(&mut self, tx: &mut Tx) -> Option<End> {
        if self.out.items.is_empty() {
            return None;
        }
        let items = std::mem::take(&mut self.out.items);
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for (item, seq) in items {
            let message = match item {
                OutItem::Raw(message) => message,
                OutItem::Gateway(text) => match self.encoder.encode(&text) {
                    Ok(Some(data)) => Message::Binary(Bytes::from(data)),
                    Ok(None) => match Utf8Bytes::try_from(text) {
                        Ok(text) => Message::Text(text),
                        Err(_) => continue,
                    },
                    Err(error) => {
                        tracing::warn!(%error, "compression failed, dropping connection");
                        return Some(End::Gone);
                    }
                },
            };
            if tx.feed(message).await.is_err() {
                return Some(End::Gone);
            }
            if let Some(seq) = seq {
                match ranges.last_mut() {
                    Some(last) if last.1 + 1 == seq => last.1 = seq,
                    _ => ranges.push((seq, seq)),
                }
            }
        }
        if tx.flush().await.is_err() {
            return Some(End::Gone);
        }
        if let Some(session) = &self.session {
            let mut session = lock(session);
            for (first, last) in ranges {
                session.mark_sent(first, last);
            }
        }
        None
    }

    fn gateway(&mut self, text: String) {
        self.out
            .items
            .push((OutItem::Gateway(Bytes::from(text)), None));
    }

    fn stalled(&mut self) -> bool {
        match self.stalled_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                self.stalled_until = None;
                self.last_emit = Instant::now();
                false
            }
            None => false,
        }
    }

    /// Assigns a seq to a dispatch built from `d`, keeps it, queues it.
    fn dispatch(&mut self, name: &'static str, d: &Value) {
        let Some(session) = self.session.clone() else {
            return;
        };
        let mut session = lock(&session);
        let seq = session.next_seq();
        let text = Bytes::from(events::dispatch(name, seq, d));
        session.keep(
            seq,
            name,
            &text,
            self.shared.config.record_event_names,
            self.shared.config.resume_buffer,
        );
        self.out.items.push((OutItem::Gateway(text), Some(seq)));
    }

    fn on_payload(&mut self, data: &[u8]) -> Flow {
        let config = &self.shared.config;
        if data.len() > config.max_payload {
            return Flow::close(4002, "payload too large", Violation::PayloadTooLarge);
        }
        let now = Instant::now();
        if now.duration_since(self.window_start) >= config.command_window {
            self.window_start = now;
            self.window_count = 0;
        }
        self.window_count += 1;
        if self.window_count > config.command_limit {
            return Flow::close(4008, "rate limited", Violation::CommandRateLimit);
        }
        let Ok(payload) = serde_json::from_slice::<Value>(data) else {
            return Flow::close(4002, "decode error", Violation::DecodeError);
        };
        let Some(op) = payload.get("op").and_then(Value::as_u64) else {
            return Flow::close(4002, "decode error", Violation::DecodeError);
        };
        let d = payload.get("d").cloned().unwrap_or(Value::Null);
        match op {
            1 => {
                self.shared.command("heartbeat");
                self.last_heartbeat = now;
                if !self.zombie && !self.stalled() {
                    self.gateway(r#"{"t":null,"s":null,"op":11,"d":null}"#.to_owned());
                }
                Flow::Continue
            }
            2 => {
                self.shared.command("identify");
                self.on_identify(&d)
            }
            6 => {
                self.shared.command("resume");
                self.on_resume(&d)
            }
            3 | 4 | 8 | 31 | 43 => {
                let name = match op {
                    3 => "presence_update",
                    4 => "voice_state_update",
                    8 => "request_guild_members",
                    31 => "request_soundboard_sounds",
                    _ => "request_channel_info",
                };
                self.shared.command(name);
                if self.session.is_none() {
                    return Flow::close(4003, "not authenticated", Violation::NotAuthenticated);
                }
                let op = u8::try_from(op).expect("matched opcodes fit a u8");
                self.shared.log_command(op, self.shard, d.clone());
                if op == 8 {
                    self.on_request_members(&d);
                }
                Flow::Continue
            }
            other => {
                self.shared.command(&format!("op_{other}"));
                Flow::close(4001, "unknown opcode", Violation::UnknownOpcode)
            }
        }
    }

    fn token_ok(&self, d: &Value) -> bool {
        let token = d.get("token").and_then(Value::as_str).unwrap_or_default();
        let token = token.strip_prefix("Bot ").unwrap_or(token);
        token == self.shared.config.token.expose() && !self.shared.revoked.load(Ordering::SeqCst)
    }

    fn on_identify(&mut self, d: &Value) -> Flow {
        let shared = self.shared.clone();
        let config = &shared.config;
        let shard = d
            .get("shard")
            .and_then(Value::as_array)
            .map(|a| {
                (
                    a.first().and_then(Value::as_u64).unwrap_or(0),
                    a.get(1).and_then(Value::as_u64).unwrap_or(0),
                )
            })
            .unwrap_or((0, 1));
        let shard_id = u32::try_from(shard.0).unwrap_or(u32::MAX);
        let num_shards = u32::try_from(shard.1).unwrap_or(u32::MAX);
        let bucket = shard_id % config.max_concurrency;
        let record = |outcome: String, session_id: Option<String>| IdentifyRecord {
            at_ms: shared.at_ms(),
            shard_id,
            num_shards,
            bucket,
            outcome,
            session_id,
        };
        let closed = |code: u16, reason: &'static str, violation: Violation| {
            shared.identify(record(format!("closed_{code}"), None));
            Flow::close(code, reason, violation)
        };
        if self.session.is_some() {
            return closed(
                4005,
                "already authenticated",
                Violation::AlreadyAuthenticated,
            );
        }
        if !self.token_ok(d) {
            return closed(
                4004,
                "authentication failed",
                Violation::AuthenticationFailed,
            );
        }
        if num_shards == 0 || shard_id >= num_shards {
            return closed(4010, "invalid shard", Violation::InvalidShard);
        }
        let Some(intents) = d.get("intents").and_then(Value::as_u64) else {
            return closed(4013, "invalid intent(s)", Violation::InvalidIntents);
        };
        if intents & !KNOWN_INTENTS != 0 {
            return closed(4013, "invalid intent(s)", Violation::InvalidIntents);
        }
        if intents & PRIVILEGED_INTENTS & !config.allowed_privileged_intents != 0 {
            return closed(4014, "disallowed intent(s)", Violation::DisallowedIntents);
        }
        let total = shared.guild_count.load(Ordering::SeqCst);
        let guilds = guilds_for_shard(shard_id, num_shards, total);
        if guilds.len() as u64 > config.max_guilds_per_shard {
            return closed(4011, "sharding required", Violation::ShardingRequired);
        }
        match shared.try_start(bucket) {
            StartOutcome::RateLimited => {
                shared.identify(record("rate_limited".to_owned(), None));
                shared.violation(Violation::IdentifyRateLimit);
                self.gateway(r#"{"t":null,"s":null,"op":9,"d":false}"#.to_owned());
                Flow::Continue
            }
            StartOutcome::Exhausted => {
                shared.identify(record("closed_4004".to_owned(), None));
                shared.revoke();
                Flow::Close {
                    code: 4004,
                    reason: "authentication failed",
                    violation: None,
                }
            }
            StartOutcome::Ok => {
                let session = shared.new_session(
                    [shard_id, num_shards],
                    guilds.clone(),
                    self.id,
                    self.compress,
                );
                let session_id = lock(&session).id.clone();
                shared.identify(record("ready".to_owned(), Some(session_id.clone())));
                tracing::debug!(conn = self.id, shard_id, num_shards, session_id, "READY");
                self.session = Some(session);
                self.shard = Some(shard_id);
                self.num_shards = num_shards;
                let resume_url = format!("{}/resume", shared.ws_url);
                let ready =
                    events::ready(&session_id, &resume_url, [shard_id, num_shards], &guilds);
                self.dispatch("READY", &ready);
                for guild in guilds {
                    self.dispatch("GUILD_CREATE", &events::guild_create(guild));
                }
                self.start_stream();
                Flow::Continue
            }
        }
    }

    fn start_stream(&mut self) {
        self.credit = 0.0;
        self.last_emit = Instant::now();
    }

    fn on_resume(&mut self, d: &Value) -> Flow {
        if self.session.is_some() {
            return Flow::close(
                4005,
                "already authenticated",
                Violation::AlreadyAuthenticated,
            );
        }
        if !self.token_ok(d) {
            return Flow::close(
                4004,
                "authentication failed",
                Violation::AuthenticationFailed,
            );
        }
        let invalid = || r#"{"t":null,"s":null,"op":9,"d":false}"#.to_owned();
        let session_id = d.get("session_id").and_then(Value::as_str).unwrap_or("");
        let client_seq = d.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let Some(session) = self.shared.find_session(session_id) else {
            self.gateway(invalid());
            return Flow::Continue;
        };
        let config = &self.shared.config;
        let mut guard = lock(&session);
        if !guard.resumable(Instant::now(), config.session_ttl) {
            drop(guard);
            self.gateway(invalid());
            return Flow::Continue;
        }
        if client_seq > guard.seq {
            return Flow::close(4007, "invalid seq", Violation::InvalidSeq);
        }
        // Events kept happening while the client was away: Discord buffered
        // them, and RESUME replays them.
        if let Some(at) = guard.detached_at {
            let away = Instant::now().duration_since(at).as_secs_f64();
            let cap = (config.resume_buffer / 2) as f64;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let missed = (config.events_per_second * away).min(cap).floor() as u64;
            let shard = guard.shard[0];
            generate(&self.shared, &mut guard, shard, missed);
        }
        let oldest = guard.buffer.front().map_or(guard.seq + 1, |(seq, _)| *seq);
        if client_seq + 1 < oldest {
            // The missed dispatches are gone: the session cannot be resumed.
            guard.invalidated = true;
            drop(guard);
            self.gateway(invalid());
            return Flow::Continue;
        }
        guard.owner = self.id;
        guard.detached_at = None;
        guard.resumes += 1;
        guard.compress = self.compress;
        let replay: Vec<(u64, Bytes)> = guard
            .buffer
            .iter()
            .filter(|(seq, _)| *seq > client_seq)
            .cloned()
            .collect();
        guard.replayed += replay.len() as u64;
        self.shard = Some(guard.shard[0]);
        self.num_shards = guard.shard[1];
        tracing::debug!(
            conn = self.id,
            session_id,
            client_seq,
            replayed = replay.len(),
            "RESUMED"
        );
        drop(guard);
        for (seq, text) in replay {
            self.out.items.push((OutItem::Gateway(text), Some(seq)));
        }
        self.session = Some(session);
        self.dispatch("RESUMED", &json!({"_trace": ["shardline-sim"]}));
        self.start_stream();
        Flow::Continue
    }

    fn on_request_members(&mut self, d: &Value) {
        let guild_ids: Vec<u64> = match d.get("guild_id") {
            Some(Value::Array(ids)) => ids.iter().filter_map(snowflake).collect(),
            Some(id) => snowflake(id).into_iter().collect(),
            None => Vec::new(),
        };
        let nonce = d.get("nonce").and_then(Value::as_str).map(str::to_owned);
        let limit = d.get("limit").and_then(Value::as_u64).unwrap_or(0);
        let seed = self.shared.config.seed;
        for guild in guild_ids {
            if shard_of(guild, self.num_shards) == self.shard.unwrap_or(0) {
                let chunk = events::members_chunk(guild, nonce.as_deref(), seed, limit);
                self.dispatch("GUILD_MEMBERS_CHUNK", &chunk);
            }
        }
    }

    fn on_tick(&mut self) -> Flow {
        let Some(session) = self.session.clone() else {
            return Flow::Continue;
        };
        if lock(&session).owner != self.id {
            // Another connection resumed this session: this one is stale.
            return Flow::Drop;
        }
        if self.stalled() {
            self.last_emit = Instant::now();
            return Flow::Continue;
        }
        let config = &self.shared.config;
        let now = Instant::now();
        let elapsed = now.duration_since(self.last_emit).as_secs_f64();
        self.last_emit = now;
        if config.events_per_second <= 0.0 {
            return Flow::Continue;
        }
        // At most one second of backlog at once.
        self.credit = (self.credit + config.events_per_second * elapsed)
            .min(config.events_per_second.max(1.0));
        let want = self.credit.floor();
        if want < 1.0 {
            return Flow::Continue;
        }
        self.credit -= want;
        let shard = self.shard.unwrap_or(0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let fresh = generate(&self.shared, &mut lock(&session), shard, want as u64);
        for (seq, text) in fresh {
            self.out.items.push((OutItem::Gateway(text), Some(seq)));
        }
        Flow::Continue
    }

    fn on_broadcast(&mut self, note: Broadcast) -> Flow {
        match note {
            Broadcast::Revoked => Flow::Close {
                code: 4004,
                reason: "authentication failed",
                violation: None,
            },
            Broadcast::GuildAdded(guild) => {
                let (Some(shard), Some(session)) = (self.shard, self.session.clone()) else {
                    return Flow::Continue;
                };
                if shard_of(guild, self.num_shards) == shard {
                    lock(&session).guilds.push(guild);
                    self.dispatch("GUILD_CREATE", &events::guild_create(guild));
                }
                Flow::Continue
            }
            Broadcast::Fault(FaultRequest { fault, shard }) => {
                if shard.is_some() && shard != self.shard {
                    return Flow::Continue;
                }
                self.on_fault(fault)
            }
        }
    }

    fn on_fault(&mut self, fault: Fault) -> Flow {
        match fault {
            Fault::Reconnect => {
                self.gateway(r#"{"t":null,"s":null,"op":7,"d":null}"#.to_owned());
            }
            Fault::InvalidSession { resumable } => {
                self.gateway(format!(r#"{{"t":null,"s":null,"op":9,"d":{resumable}}}"#));
                if !resumable {
                    if let Some(session) = self.session.take() {
                        let mut session = lock(&session);
                        session.invalidated = true;
                        session.owner = 0;
                    }
                    self.shard = None;
                }
            }
            Fault::Drop => return Flow::Drop,
            Fault::Zombie => self.zombie = true,
            Fault::Close { code } => {
                return Flow::Close {
                    code,
                    reason: "simulated close",
                    violation: None,
                };
            }
            Fault::CorruptFrame => {
                let mut garbage = vec![0x6b, 0xc9, 0x07, 0xff, 0x13, 0x37, 0x00, 0x42];
                if self.compress == Compress::ZlibStream {
                    garbage.extend_from_slice(&[0, 0, 0xff, 0xff]);
                }
                self.out
                    .items
                    .push((OutItem::Raw(Message::Binary(Bytes::from(garbage))), None));
            }
            Fault::Oversized { bytes } => {
                if let Some(session) = self.session.clone() {
                    let guild = lock(&session).guilds.first().copied().unwrap_or(0);
                    let serial = self.shared.serial.fetch_add(1, Ordering::Relaxed);
                    let d = json!({
                        "guild_id": guild.to_string(),
                        "id": events::object_id(serial).to_string(),
                        "channel_id": (guild + 1).to_string(),
                        "author": {"id": "1", "username": "big", "discriminator": "0", "avatar": null},
                        "content": "x".repeat(bytes),
                        "timestamp": "2024-06-01T12:00:00.000000+00:00",
                        "edited_timestamp": null,
                        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
                        "attachments": [], "embeds": [], "pinned": false, "type": 0,
                    });
                    self.dispatch("MESSAGE_CREATE", &d);
                }
            }
            Fault::NonJson => self.gateway("this is not json {".to_owned()),
            Fault::Stall { ms } => {
                self.stalled_until = Some(Instant::now() + std::time::Duration::from_millis(ms));
            }
            Fault::RequestHeartbeat => {
                let seq = self.session.as_ref().map(|s| lock(s).seq);
                let d = seq.map_or_else(|| "null".to_owned(), |s| s.to_string());
                self.gateway(format!(r#"{{"t":null,"s":null,"op":1,"d":{d}}}"#));
            }
            Fault::GrowGuilds { .. } => {}
        }
        Flow::Continue
    }

    /// Leaves the session resumable, or ends it, as Discord would.
    fn detach(&mut self, end: End) {
        let Some(session) = self.session.take() else {
            return;
        };
        let mut session = lock(&session);
        if session.owner != self.id {
            return;
        }
        session.owner = 0;
        session.detached_at = Some(Instant::now());
        let ends_session = match end {
            End::ClientClose(code) => matches!(code, Some(1000 | 1001)),
            End::ServerClose(code) => matches!(code, 4004 | 4007 | 4009 | 4010..=4014),
            End::Gone => false,
        };
        if ends_session {
            session.invalidated = true;
        }
    }
}

/// Generates up to `want` stream dispatches into `session` (within the caps)
/// and returns them.
fn generate(shared: &Shared, session: &mut Session, shard: u32, want: u64) -> Vec<(u64, Bytes)> {
    if want == 0 || session.guilds.is_empty() {
        return Vec::new();
    }
    let grant = shared.take_stream_quota(shard, want);
    let config = &shared.config;
    let pool = &shared.pool;
    let mut fresh = Vec::with_capacity(usize::try_from(grant).unwrap_or(0));
    for _ in 0..grant {
        let seq = session.next_seq();
        let pick = session.picker.index(pool.len());
        let guild_count = session.guilds.len();
        let guild = session.guilds[session.picker.index(guild_count)];
        let serial = shared.serial.fetch_add(1, Ordering::Relaxed);
        let mut text = String::with_capacity(768);
        let name = pool.write_dispatch(&mut text, pick, guild, serial, seq);
        let text = Bytes::from(text);
        session.keep(
            seq,
            name,
            &text,
            config.record_event_names,
            config.resume_buffer,
        );
        session.stream_events += 1;
        fresh.push((seq, text));
    }
    fresh
}

fn snowflake(value: &Value) -> Option<u64> {
    match value {
        Value::String(text) => text.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}
