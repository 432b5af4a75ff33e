//! The shard task: connect, HELLO, IDENTIFY or RESUME, read and hand over
//! dispatches, heartbeat, send commands, and react to everything Discord does.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Subscriber;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::heartbeat::{Beat, Heartbeat};
use super::policy::{CloseAction, RESUMABLE_CLOSE, close_action};
use super::{ShardDeps, ShardExit, ShardState, ShardStatus};
use crate::command::{CommandLimiter, CommandReply, validate_command};
use crate::compression::Decompressor;
use crate::config::ShardConfig;
use crate::frame::{self, op};
use crate::pipeline::{self, Entry, PipelineConfig, SessionMeta};
use crate::publish::Dispatch;
use crate::queue::{IdentifyPermit, IdentifyQueue, QueueError};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type PermitWait =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<IdentifyPermit, QueueError>> + Send>>;

/// How long closing the socket may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The live session of a shard.
#[derive(Debug, Clone)]
struct Session {
    id: Arc<str>,
    resume_url: String,
    /// Last seq received (not necessarily committed).
    seq: u64,
}

/// How a connection ended.
#[derive(Debug)]
enum Ended {
    /// Reconnect; `resume` keeps the session. `healthy` if the connection got
    /// as far as READY/RESUMED (resets the back-off).
    Reconnect {
        resume: bool,
        delay: Duration,
        healthy: bool,
    },
    Fatal {
        code: u16,
        reason: &'static str,
    },
    Shutdown,
}

pub(super) async fn run(
    config: ShardConfig,
    queue: Arc<dyn IdentifyQueue>,
    deps: ShardDeps,
    status: Arc<watch::Sender<ShardStatus>>,
    cancel: CancellationToken,
) -> ShardExit {
    let span = tracing::info_span!("shard", shard = config.shard_id);
    async move {
        let mut shard = match ShardTask::start(config, queue, deps, status, cancel).await {
            Some(shard) => shard,
            None => return ShardExit::Shutdown,
        };
        let exit = shard.run().await;
        shard.set_state(ShardState::Stopped(exit.clone()));
        exit
    }
    .instrument(span)
    .await
}

struct ShardTask {
    config: ShardConfig,
    queue: Arc<dyn IdentifyQueue>,
    deps: ShardDeps,
    status: Arc<watch::Sender<ShardStatus>>,
    cancel: CancellationToken,
    session: Option<Session>,
    pipeline: mpsc::Sender<Entry>,
    pipeline_task: Option<tokio::task::JoinHandle<()>>,
    commands: Option<Subscriber>,
    queued: VecDeque<Bytes>,
    failures: u32,
    guilds: u32,
    pending_ready_guilds: u32,
}

impl ShardTask {
    async fn start(
        config: ShardConfig,
        queue: Arc<dyn IdentifyQueue>,
        deps: ShardDeps,
        status: Arc<watch::Sender<ShardStatus>>,
        cancel: CancellationToken,
    ) -> Option<Self> {
        let shard_id = config.shard_id;
        // The stored session decides RESUME or IDENTIFY: wait for NATS rather
        // than identify needlessly.
        let mut attempt = 0u32;
        let stored = loop {
            match deps.sessions.load(shard_id).await {
                Ok(stored) => break stored,
                Err(error) => {
                    tracing::warn!(%error, source = ?std::error::Error::source(&error), "cannot read the stored session yet");
                    let delay = config.backoff.delay(attempt);
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        _ = cancel.cancelled() => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        };
        let stored = stored.filter(|s| {
            let fits = s.shard_count == config.shard_count;
            if !fits {
                tracing::info!(
                    stored = s.shard_count,
                    now = config.shard_count,
                    "stored session is for another shard count; identifying"
                );
            }
            fits
        });
        let session = stored.as_ref().map(|s| Session {
            id: Arc::from(s.session_id.as_str()),
            resume_url: s.resume_gateway_url.clone(),
            seq: s.seq,
        });
        if let Some(s) = &stored {
            tracing::info!(session = %s.session_id, seq = s.seq, "resuming the stored session");
            status.send_modify(|st| {
                st.seq = s.seq;
                st.committed_seq = s.seq;
                st.session_id = Some(Arc::from(s.session_id.as_str()));
            });
        }
        let (pipeline, pipeline_task) = pipeline::spawn(
            PipelineConfig {
                shard: shard_id,
                max_in_flight: config.max_acks_in_flight.max(1),
                save_interval: config.session_save_interval,
            },
            deps.publisher.clone(),
            deps.sessions.clone(),
            stored,
            status.clone(),
        );
        let subject = deps.publisher.names().command_subject(shard_id);
        let commands = match deps.nats.subscribe(subject.clone()).await {
            Ok(subscriber) => Some(subscriber),
            Err(error) => {
                tracing::warn!(%error, subject, "commands disabled: cannot subscribe");
                None
            }
        };
        Some(Self {
            config,
            queue,
            deps,
            status,
            cancel,
            session,
            pipeline,
            pipeline_task: Some(pipeline_task),
            commands,
            queued: VecDeque::new(),
            failures: 0,
            guilds: 0,
            pending_ready_guilds: 0,
        })
    }

    fn set_state(&self, state: ShardState) {
        let seq = self.session.as_ref().map_or(0, |s| s.seq);
        let session_id = self.session.as_ref().map(|s| s.id.clone());
        let guilds = self.guilds;
        self.status.send_modify(|s| {
            s.state = state;
            s.seq = seq;
            s.session_id = session_id;
            s.guilds = guilds;
        });
    }

    async fn run(&mut self) -> ShardExit {
        let mut delay = Duration::ZERO;
        loop {
            if !delay.is_zero() {
                self.set_state(ShardState::Reconnecting);
                tokio::select! {
                    _ = self.cancel.cancelled() => return self.finish(None).await,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            self.set_state(ShardState::Connecting);
            let base = self
                .session
                .as_ref()
                .map_or(self.config.gateway_url.as_str(), |s| s.resume_url.as_str());
            let url = self.config.connect_url(base);
            let connect = tokio::time::timeout(self.config.connect_timeout, self.connect(&url));
            let socket = tokio::select! {
                _ = self.cancel.cancelled() => return self.finish(None).await,
                result = connect => result,
            };
            let socket = match socket {
                Ok(Ok(socket)) => socket,
                Ok(Err(error)) => {
                    tracing::warn!(error = %error, "cannot connect to the gateway");
                    delay = self.next_failure_delay();
                    continue;
                }
                Err(_) => {
                    tracing::warn!("connecting to the gateway timed out");
                    delay = self.next_failure_delay();
                    continue;
                }
            };
            match self.connection(socket).await {
                Ended::Shutdown => return self.finish(None).await,
                Ended::Fatal { code, reason } => {
                    tracing::error!(
                        code,
                        reason,
                        "gateway closed the shard for good; not reconnecting"
                    );
                    let exit = ShardExit::Fatal {
                        code,
                        reason: reason.to_owned(),
                    };
                    return self.finish(Some(exit)).await;
                }
                Ended::Reconnect {
                    resume,
                    delay: wait,
                    healthy,
                } => {
                    if !resume && self.session.take().is_some() {
                        let _ = self.pipeline.send(Entry::Forget).await;
                    }
                    if healthy {
                        self.failures = 0;
                        delay = wait;
                    } else {
                        delay = wait.max(self.next_failure_delay());
                    }
                }
            }
        }
    }

    fn next_failure_delay(&mut self) -> Duration {
        let delay = self.config.backoff.delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    async fn connect(&self, url: &str) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(self.config.read_buffer_size.max(1024))
            .write_buffer_size(0)
            .max_message_size(Some(self.config.max_message_size));
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(ws_config), true).await?;
        Ok(socket)
    }

    /// Awaits every in-flight publish, stores the session and stops the pipeline.
    async fn finish(&mut self, exit: Option<ShardExit>) -> ShardExit {
        self.set_state(ShardState::ShuttingDown);
        self.flush().await;
        if let Some(task) = self.pipeline_task.take() {
            // Closing our sender ends the pipeline once it is drained.
            let (closed, _) = mpsc::channel(1);
            drop(std::mem::replace(&mut self.pipeline, closed));
            let _ = task.await;
        }
        if let Some(mut commands) = self.commands.take() {
            let _ = commands.unsubscribe().await;
            self.reject_queued("the shard stopped").await;
        }
        exit.unwrap_or(ShardExit::Shutdown)
    }

    async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.pipeline.send(Entry::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn reject_queued(&mut self, why: &str) {
        // Queued commands were already answered "accepted"; nothing to reply.
        if !self.queued.is_empty() {
            tracing::warn!(dropped = self.queued.len(), why, "queued commands not sent");
        }
        self.queued.clear();
    }

    /// Runs one connection until it ends.
    async fn connection(&mut self, mut socket: Socket) -> Ended {
        let mut decompressor =
            match Decompressor::new(self.config.compression, self.config.max_message_size) {
                Ok(d) => d,
                Err(error) => {
                    tracing::error!(%error, "cannot create a decompressor");
                    return Ended::Reconnect {
                        resume: true,
                        delay: Duration::from_secs(1),
                        healthy: false,
                    };
                }
            };
        // HELLO first.
        let hello = tokio::time::timeout(self.config.connect_timeout, async {
            loop {
                match socket.next().await {
                    Some(Ok(WsMessage::Text(text))) => {
                        let bytes = Bytes::from(text);
                        match decompressor.text(bytes) {
                            Ok(message) => return hello_of(message.as_bytes()),
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                    Some(Ok(WsMessage::Binary(bin))) => match decompressor.binary(&bin) {
                        Ok(Some(message)) => return hello_of(message.as_bytes()),
                        Ok(None) => {}
                        Err(e) => return Err(e.to_string()),
                    },
                    Some(Ok(WsMessage::Close(frame))) => {
                        return Ok(HelloOutcome::Closed(
                            frame.map_or(1005, |f| u16::from(f.code)),
                        ));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("connection ended before HELLO".to_owned()),
                }
            }
        });
        let hello = tokio::select! {
            _ = self.cancel.cancelled() => {
                close(&mut socket).await;
                return Ended::Shutdown;
            }
            result = hello => result,
        };
        let interval = match hello {
            Ok(Ok(HelloOutcome::Interval(interval))) => interval,
            Ok(Ok(HelloOutcome::Closed(code))) => return closed_with(code, false),
            Ok(Err(why)) => {
                tracing::warn!(why, "no HELLO; reconnecting");
                return Ended::Reconnect {
                    resume: true,
                    delay: Duration::ZERO,
                    healthy: false,
                };
            }
            Err(_) => {
                tracing::warn!("no HELLO in time; reconnecting");
                close(&mut socket).await;
                return Ended::Reconnect {
                    resume: true,
                    delay: Duration::ZERO,
                    healthy: false,
                };
            }
        };
        let mut conn = Connection {
            socket,
            decompressor,
            heartbeat: Heartbeat::new(interval, Instant::now(), rand::random::<f64>()),
            limiter: CommandLimiter::new(),
            next_command: None,
            active: false,
            permit_wait: None,
        };
        if let Some(ended) = self.open_session(&mut conn).await {
            return ended;
        }
        let ended = self.drive(&mut conn).await;
        if !matches!(ended, Ended::Fatal { .. }) {
            close(&mut conn.socket).await;
        }
        ended
    }

    /// Sends RESUME for a known session, or starts waiting for a permit.
    async fn open_session(&mut self, conn: &mut Connection) -> Option<Ended> {
        match &self.session {
            Some(session) => {
                let payload = serde_json::json!({
                    "op": op::RESUME,
                    "d": {
                        "token": self.config.token.expose(),
                        "session_id": &*session.id,
                        "seq": session.seq,
                    }
                });
                tracing::info!(session = %session.id, seq = session.seq, "sending RESUME");
                self.set_state(ShardState::Resuming);
                if let Err(error) = conn.send_text(payload.to_string()).await {
                    tracing::warn!(%error, "cannot send RESUME");
                    return Some(lost(conn.active));
                }
            }
            None => {
                self.set_state(ShardState::WaitingForPermit);
                conn.permit_wait = Some(self.acquire_permit(Duration::ZERO));
            }
        }
        None
    }

    fn acquire_permit(&self, after: Duration) -> PermitWait {
        let queue = self.queue.clone();
        let (shard, count) = (self.config.shard_id, self.config.shard_count);
        Box::pin(async move {
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            queue.acquire(shard, count).await
        })
    }

    async fn identify(&mut self, conn: &mut Connection) -> Option<Ended> {
        let mut d = serde_json::json!({
            "token": self.config.token.expose(),
            "intents": self.config.intents,
            "properties": {
                "os": std::env::consts::OS,
                "browser": "shardline",
                "device": "shardline",
            },
            "shard": [self.config.shard_id, self.config.shard_count],
            "large_threshold": self.config.large_threshold,
        });
        if let Some(value) = self
            .config
            .presence
            .as_deref()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        {
            d["presence"] = value;
        }
        let payload = serde_json::json!({ "op": op::IDENTIFY, "d": d });
        tracing::info!("sending IDENTIFY");
        self.set_state(ShardState::Identifying);
        if let Err(error) = conn.send_text(payload.to_string()).await {
            tracing::warn!(%error, "cannot send IDENTIFY");
            return Some(lost(conn.active));
        }
        None
    }

    /// The connection's event loop.
    async fn drive(&mut self, conn: &mut Connection) -> Ended {
        let mut slot: Option<mpsc::OwnedPermit<Entry>> = None;
        loop {
            if slot.is_none() {
                match self.pipeline.clone().try_reserve_owned() {
                    Ok(permit) => slot = Some(permit),
                    Err(mpsc::error::TrySendError::Full(_)) => conn.heartbeat.stall(),
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        tracing::error!("the publish pipeline stopped");
                        return Ended::Shutdown;
                    }
                }
            }
            let send_commands = conn.active && !self.queued.is_empty();
            let command_at = conn.next_command.unwrap_or_else(Instant::now);
            let room_for_commands = self.queued.len() < self.config.command_queue;
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => {
                    self.set_state(ShardState::ShuttingDown);
                    self.flush().await;
                    return Ended::Shutdown;
                }
                _ = tokio::time::sleep_until(conn.heartbeat.deadline()) => {
                    match conn.heartbeat.on_deadline(Instant::now()) {
                        Beat::Send => {
                            if let Err(error) = self.heartbeat(conn).await {
                                tracing::warn!(%error, "cannot send a heartbeat");
                                return lost(conn.active);
                            }
                        }
                        Beat::Zombie => {
                            tracing::warn!("no heartbeat ACK since the last beat: zombie connection; reconnecting to resume");
                            return Ended::Reconnect { resume: true, delay: Duration::ZERO, healthy: conn.active };
                        }
                    }
                }
                permit = async { conn.permit_wait.as_mut().expect("guarded by is_some").await }, if conn.permit_wait.is_some() => {
                    conn.permit_wait = None;
                    match permit {
                        Ok(_) => {
                            if let Some(ended) = self.identify(conn).await {
                                return ended;
                            }
                        }
                        Err(error) => {
                            let wait = match &error {
                                QueueError::BudgetExhausted { resets_in } => (*resets_in).min(Duration::from_secs(60)),
                                _ => Duration::from_secs(1),
                            };
                            tracing::warn!(%error, ?wait, "no identify permit yet");
                            conn.permit_wait = Some(self.acquire_permit(wait));
                        }
                    }
                }
                reserved = self.pipeline.clone().reserve_owned(), if slot.is_none() => {
                    match reserved {
                        Ok(permit) => slot = Some(permit),
                        Err(_) => {
                            tracing::error!("the publish pipeline stopped");
                            return Ended::Shutdown;
                        }
                    }
                }
                message = conn.socket.next(), if slot.is_some() => {
                    if let Some(ended) = self.on_frame(conn, message, &mut slot).await {
                        return ended;
                    }
                }
                request = next_request(&mut self.commands), if room_for_commands => {
                    match request {
                        Some(request) => self.on_command(request).await,
                        None => {
                            tracing::warn!("command subscription ended");
                            self.commands = None;
                        }
                    }
                }
                _ = tokio::time::sleep_until(command_at), if send_commands => {
                    if let Err(error) = self.send_commands(conn).await {
                        tracing::warn!(%error, "cannot send a command");
                        return lost(conn.active);
                    }
                }
            }
        }
    }

    async fn heartbeat(&mut self, conn: &mut Connection) -> Result<(), WsError> {
        let payload = match &self.session {
            Some(session) => format!("{{\"op\":1,\"d\":{}}}", session.seq),
            None => "{\"op\":1,\"d\":null}".to_owned(),
        };
        let seq = self.session.as_ref().map_or(0, |s| s.seq);
        self.status.send_modify(|s| s.seq = seq);
        conn.send_text(payload).await
    }

    async fn on_frame(
        &mut self,
        conn: &mut Connection,
        message: Option<Result<WsMessage, WsError>>,
        slot: &mut Option<mpsc::OwnedPermit<Entry>>,
    ) -> Option<Ended> {
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                tracing::warn!(%error, "connection lost; reconnecting to resume");
                return Some(lost(conn.active));
            }
            None => {
                tracing::warn!("connection closed without a close frame; reconnecting to resume");
                return Some(lost(conn.active));
            }
        };
        let decoded = match message {
            WsMessage::Text(text) => conn.decompressor.text(Bytes::from(text)).map(Some),
            WsMessage::Binary(bin) => conn.decompressor.binary(&bin),
            WsMessage::Close(frame) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                return Some(closed_with(code, conn.active));
            }
            _ => return None,
        };
        let decoded = match decoded {
            Ok(Some(decoded)) => decoded,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(%error, "undecodable frame; reconnecting to resume");
                return Some(lost(conn.active));
            }
        };
        let envelope = match frame::envelope(decoded.as_bytes()) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(%error, "unreadable gateway message; reconnecting to resume");
                return Some(lost(conn.active));
            }
        };
        match envelope.op {
            op::DISPATCH => {
                let Some(seq) = envelope.seq else {
                    tracing::warn!(event = envelope.event, "dispatch without a seq; ignored");
                    return None;
                };
                let event = envelope.event.unwrap_or("UNKNOWN");
                let data = envelope.data.unwrap_or(b"null");
                let mut begins = None;
                match event {
                    "READY" => {
                        let Some(ready) = frame::ready(data) else {
                            tracing::warn!("READY without a session id; identifying again");
                            return Some(Ended::Reconnect {
                                resume: false,
                                delay: Duration::from_secs(1),
                                healthy: false,
                            });
                        };
                        let id: Arc<str> = Arc::from(ready.session_id.as_str());
                        let resume_url = ready
                            .resume_gateway_url
                            .unwrap_or_else(|| self.config.gateway_url.clone());
                        tracing::info!(session = %id, guilds = ready.guilds, "READY");
                        begins = Some(SessionMeta {
                            session_id: id.clone(),
                            resume_gateway_url: resume_url.clone(),
                            shard_count: self.config.shard_count,
                        });
                        self.session = Some(Session {
                            id,
                            resume_url,
                            seq,
                        });
                        self.guilds = ready.guilds;
                        self.pending_ready_guilds = ready.guilds;
                        conn.active = true;
                        self.failures = 0;
                        self.set_state(ShardState::Active);
                    }
                    "RESUMED" => {
                        tracing::info!("RESUMED");
                        conn.active = true;
                        self.failures = 0;
                        self.set_state(ShardState::Active);
                    }
                    "GUILD_CREATE" => {
                        if self.pending_ready_guilds > 0 {
                            self.pending_ready_guilds -= 1;
                        } else {
                            self.guilds = self.guilds.saturating_add(1);
                        }
                    }
                    "GUILD_DELETE" if !frame::unavailable(data) => {
                        self.guilds = self.guilds.saturating_sub(1);
                    }
                    _ => {}
                }
                let Some(session) = self.session.as_mut() else {
                    tracing::warn!(event, seq, "dispatch before READY; ignored");
                    return None;
                };
                session.seq = session.seq.max(seq);
                let entry = if self.config.events.publishes(event) {
                    Entry::Dispatch(Box::new(Dispatch {
                        shard: self.config.shard_id,
                        session_id: session.id.clone(),
                        seq,
                        event: event.into(),
                        guild_id: frame::guild_id(data),
                        received_at: time::OffsetDateTime::now_utc(),
                        payload: decoded.slice(data),
                    }))
                } else {
                    Entry::Skip(seq)
                };
                let entry = match begins {
                    Some(meta) => Entry::Ready(meta, Box::new(entry)),
                    None => entry,
                };
                if let Some(permit) = slot.take() {
                    permit.send(entry);
                }
                None
            }
            op::HEARTBEAT => {
                drop(decoded);
                if let Err(error) = self.heartbeat(conn).await {
                    tracing::warn!(%error, "cannot answer a heartbeat request");
                    return Some(lost(conn.active));
                }
                None
            }
            op::HEARTBEAT_ACK => {
                conn.heartbeat.on_ack(Instant::now());
                let latency = conn.heartbeat.latency();
                self.status.send_modify(|s| s.latency = latency);
                None
            }
            op::RECONNECT => {
                tracing::info!("gateway asked to reconnect");
                Some(Ended::Reconnect {
                    resume: true,
                    delay: Duration::ZERO,
                    healthy: true,
                })
            }
            op::INVALID_SESSION => {
                if frame::resumable(envelope.data) {
                    tracing::info!("session invalidated but resumable; resuming");
                    Some(Ended::Reconnect {
                        resume: true,
                        delay: Duration::ZERO,
                        healthy: true,
                    })
                } else {
                    let delay = Duration::from_millis(1000 + rand::random::<u64>() % 4000);
                    tracing::info!(
                        ?delay,
                        "session invalidated; identifying again after a pause"
                    );
                    Some(Ended::Reconnect {
                        resume: false,
                        delay,
                        healthy: true,
                    })
                }
            }
            _ => None,
        }
    }

    async fn on_command(&mut self, request: async_nats::Message) {
        let reply = match validate_command(&request.payload) {
            Err(error) => CommandReply::rejected(error),
            Ok(()) if self.queued.len() >= self.config.command_queue => {
                CommandReply::rejected("the shard's command queue is full; try again later")
            }
            Ok(()) => {
                self.queued.push_back(request.payload.clone());
                CommandReply::Accepted {
                    queued: self.queued.len() - 1,
                }
            }
        };
        if let CommandReply::Rejected { error } = &reply {
            tracing::info!(error, "command rejected");
        }
        if let Some(to) = request.reply
            && let Err(error) = self.deps.nats.publish(to, reply.to_bytes()).await
        {
            tracing::warn!(%error, "cannot answer a command request");
        }
    }

    async fn send_commands(&mut self, conn: &mut Connection) -> Result<(), WsError> {
        conn.next_command = None;
        while !self.queued.is_empty() {
            if let Err(at) = conn.limiter.check() {
                conn.next_command = Some(at);
                break;
            }
            let Some(payload) = self.queued.pop_front() else {
                break;
            };
            match Utf8Bytes::try_from(payload) {
                Ok(text) => conn.socket.send(WsMessage::Text(text)).await?,
                Err(_) => tracing::warn!("command is not UTF-8; dropped"),
            }
        }
        Ok(())
    }
}

enum HelloOutcome {
    Interval(Duration),
    Closed(u16),
}

struct Connection {
    socket: Socket,
    decompressor: Decompressor,
    heartbeat: Heartbeat,
    limiter: CommandLimiter,
    next_command: Option<Instant>,
    /// READY or RESUMED seen on this connection.
    active: bool,
    permit_wait: Option<PermitWait>,
}

impl Connection {
    async fn send_text(&mut self, text: String) -> Result<(), WsError> {
        self.socket.send(WsMessage::text(text)).await
    }
}

async fn next_request(commands: &mut Option<Subscriber>) -> Option<async_nats::Message> {
    match commands {
        Some(subscriber) => subscriber.next().await,
        None => std::future::pending().await,
    }
}

/// A connection that dropped: resume, after a pause if it never got going.
fn lost(healthy: bool) -> Ended {
    Ended::Reconnect {
        resume: true,
        delay: Duration::ZERO,
        healthy,
    }
}

/// The reaction to a close code.
fn closed_with(code: u16, healthy: bool) -> Ended {
    match close_action(code) {
        CloseAction::Resume => {
            tracing::info!(code, "gateway closed the connection; resuming");
            lost(healthy)
        }
        CloseAction::Reidentify => {
            tracing::info!(code, "gateway closed the session; identifying again");
            Ended::Reconnect {
                resume: false,
                delay: Duration::ZERO,
                healthy,
            }
        }
        CloseAction::Stop(reason) => Ended::Fatal { code, reason },
    }
}

fn hello_of(message: &[u8]) -> Result<HelloOutcome, String> {
    let envelope = frame::envelope(message).map_err(|e| e.to_string())?;
    if envelope.op != op::HELLO {
        return Err(format!("expected HELLO, got op {}", envelope.op));
    }
    frame::heartbeat_interval(envelope.data)
        .filter(|ms| *ms > 0)
        .map(|ms| HelloOutcome::Interval(Duration::from_millis(ms)))
        .ok_or_else(|| "HELLO without a heartbeat interval".to_owned())
}

async fn close(socket: &mut Socket) {
    let frame = CloseFrame {
        code: CloseCode::from(RESUMABLE_CLOSE),
        reason: "".into(),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close(Some(frame))).await;
}
