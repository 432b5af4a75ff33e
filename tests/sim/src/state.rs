//! State shared by every connection and the HTTP handlers: sessions,
//! identify buckets, the session start limit, the ledger, fault fan-out.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::compress::Compress;
use crate::config::SimConfig;
use crate::events::{EventPool, Picker};
use crate::fault::{Fault, FaultRequest};
use crate::ledger::{
    CommandRecord, EmittedEvent, FaultRecord, IdentifyRecord, RestCall, SeqRange,
    SessionStartLimit, SessionState, SessionStats, SimStats, Violation, add_range,
};

/// Locks a mutex, recovering from poisoning (a panicked connection task must
/// not take the whole simulator down).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What every live connection hears.
#[derive(Debug, Clone)]
pub(crate) enum Broadcast {
    Fault(FaultRequest),
    GuildAdded(u64),
    Revoked,
}

/// One gateway session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) shard: [u32; 2],
    pub(crate) guilds: Vec<u64>,
    pub(crate) seq: u64,
    /// Recent dispatches for RESUME, oldest first.
    pub(crate) buffer: VecDeque<(u64, Bytes)>,
    pub(crate) picker: Picker,
    /// The connection that holds it (0 = none).
    pub(crate) owner: u64,
    pub(crate) detached_at: Option<Instant>,
    pub(crate) invalidated: bool,
    pub(crate) sent: Vec<SeqRange>,
    /// Event name per seq (index `seq - 1`) when names are recorded.
    pub(crate) names: Vec<&'static str>,
    pub(crate) stream_events: u64,
    pub(crate) resumes: u32,
    pub(crate) replayed: u64,
    pub(crate) compress: Compress,
}

impl Session {
    /// Keeps dispatch `seq` (already assigned with [`Self::next_seq`]) for
    /// RESUME and the ledger.
    pub(crate) fn keep(
        &mut self,
        seq: u64,
        name: &'static str,
        text: &Bytes,
        record_names: bool,
        capacity: usize,
    ) {
        if self.buffer.len() >= capacity {
            self.buffer.pop_front();
        }
        self.buffer.push_back((seq, text.clone()));
        if record_names {
            self.names.push(name);
        }
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(crate) fn mark_sent(&mut self, first: u64, last: u64) {
        add_range(&mut self.sent, first, last);
    }

    fn state(&self, now: Instant, ttl: Duration) -> SessionState {
        if self.invalidated {
            SessionState::Invalidated
        } else if self.owner != 0 {
            SessionState::Connected
        } else if self
            .detached_at
            .is_some_and(|at| now.duration_since(at) > ttl)
        {
            SessionState::Invalidated
        } else {
            SessionState::Resumable
        }
    }

    /// Whether RESUME may pick it up now.
    pub(crate) fn resumable(&self, now: Instant, ttl: Duration) -> bool {
        !self.invalidated
            && (self.owner != 0
                || self
                    .detached_at
                    .is_none_or(|at| now.duration_since(at) <= ttl))
    }

    fn stats(&self, now: Instant, ttl: Duration) -> SessionStats {
        let mut events = Vec::new();
        if !self.names.is_empty() {
            for range in &self.sent {
                for seq in range.first..=range.last {
                    if let Some(name) = usize::try_from(seq - 1)
                        .ok()
                        .and_then(|i| self.names.get(i))
                    {
                        events.push(EmittedEvent {
                            seq,
                            name: (*name).to_owned(),
                        });
                    }
                }
            }
        }
        SessionStats {
            session_id: self.id.clone(),
            shard_id: self.shard[0],
            num_shards: self.shard[1],
            guilds: self.guilds.iter().map(u64::to_string).collect(),
            last_seq: self.seq,
            sent: self.sent.clone(),
            events,
            stream_events: self.stream_events,
            resumes: self.resumes,
            replayed: self.replayed,
            state: self.state(now, ttl),
            compress: self.compress,
        }
    }
}

#[derive(Debug, Default)]
struct LedgerInner {
    identifies: Vec<IdentifyRecord>,
    violations: BTreeMap<String, u64>,
    commands: BTreeMap<String, u64>,
    command_log: Vec<CommandRecord>,
    rest: Vec<RestCall>,
    faults: Vec<FaultRecord>,
}

#[derive(Debug)]
struct StartLimit {
    remaining: u32,
    reset_at: Instant,
}

/// Outcome of asking for a session start.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StartOutcome {
    Ok,
    /// The bucket's window is closed.
    RateLimited,
    /// That was the last one: the token is now revoked.
    Exhausted,
}

/// Everything the simulator's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) pool: EventPool,
    pub(crate) started: Instant,
    pub(crate) http_url: String,
    pub(crate) ws_url: String,
    pub(crate) guild_count: AtomicU64,
    pub(crate) stream_total: AtomicU64,
    per_shard_stream: Mutex<HashMap<u32, u64>>,
    pub(crate) sessions: Mutex<Vec<Arc<Mutex<Session>>>>,
    session_index: Mutex<HashMap<String, Arc<Mutex<Session>>>>,
    ledger: Mutex<LedgerInner>,
    buckets: Mutex<HashMap<u32, Instant>>,
    start_limit: Mutex<StartLimit>,
    pub(crate) revoked: AtomicBool,
    pub(crate) broadcast: broadcast::Sender<Broadcast>,
    pub(crate) serial: AtomicU64,
    session_counter: AtomicU64,
    conn_counter: AtomicU64,
    pub(crate) conns_open: AtomicU64,
    pub(crate) shutdown: CancellationToken,
}

impl Shared {
    pub(crate) fn new(config: SimConfig, http_url: String, ws_url: String) -> Self {
        let now = Instant::now();
        let remaining = config
            .session_start_remaining
            .unwrap_or(config.session_start_total);
        let (broadcast, _) = broadcast::channel(256);
        Self {
            pool: EventPool::new(config.seed, 512),
            started: now,
            http_url,
            ws_url,
            guild_count: AtomicU64::new(config.guilds),
            stream_total: AtomicU64::new(0),
            per_shard_stream: Mutex::new(HashMap::new()),
            sessions: Mutex::new(Vec::new()),
            session_index: Mutex::new(HashMap::new()),
            ledger: Mutex::new(LedgerInner::default()),
            buckets: Mutex::new(HashMap::new()),
            start_limit: Mutex::new(StartLimit {
                remaining,
                reset_at: now + config.session_start_reset,
            }),
            revoked: AtomicBool::new(false),
            broadcast,
            serial: AtomicU64::new(1),
            session_counter: AtomicU64::new(0),
            conn_counter: AtomicU64::new(0),
            conns_open: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
            config,
        }
    }

    pub(crate) fn at_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn next_conn_id(&self) -> u64 {
        self.conn_counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn violation(&self, kind: Violation) {
        tracing::debug!(violation = kind.as_str(), "client broke a rule");
        *lock(&self.ledger)
            .violations
            .entry(kind.as_str().to_owned())
            .or_default() += 1;
    }

    pub(crate) fn command(&self, name: &str) {
        let mut ledger = lock(&self.ledger);
        match ledger.commands.get_mut(name) {
            Some(count) => *count += 1,
            None => {
                ledger.commands.insert(name.to_owned(), 1);
            }
        }
    }

    pub(crate) fn log_command(&self, op: u8, shard_id: Option<u32>, d: serde_json::Value) {
        let at_ms = self.at_ms();
        lock(&self.ledger).command_log.push(CommandRecord {
            at_ms,
            op,
            shard_id,
            d,
        });
    }

    pub(crate) fn identify(&self, record: IdentifyRecord) {
        lock(&self.ledger).identifies.push(record);
    }

    pub(crate) fn rest_call(&self, call: RestCall) {
        lock(&self.ledger).rest.push(call);
    }

    /// Applies a session start for `bucket`: the window, then the limit.
    pub(crate) fn try_start(&self, bucket: u32) -> StartOutcome {
        let now = Instant::now();
        {
            let mut buckets = lock(&self.buckets);
            if let Some(last) = buckets.get(&bucket)
                && now.duration_since(*last) < self.config.identify_window
            {
                return StartOutcome::RateLimited;
            }
            buckets.insert(bucket, now);
        }
        let mut limit = lock(&self.start_limit);
        if now >= limit.reset_at {
            limit.remaining = self.config.session_start_total;
            limit.reset_at = now + self.config.session_start_reset;
        }
        limit.remaining = limit.remaining.saturating_sub(1);
        if limit.remaining == 0 {
            StartOutcome::Exhausted
        } else {
            StartOutcome::Ok
        }
    }

    pub(crate) fn session_start_limit(&self) -> SessionStartLimit {
        let now = Instant::now();
        let limit = lock(&self.start_limit);
        let (remaining, reset_after) = if now >= limit.reset_at {
            (
                self.config.session_start_total,
                self.config.session_start_reset,
            )
        } else {
            (limit.remaining, limit.reset_at - now)
        };
        SessionStartLimit {
            total: self.config.session_start_total,
            remaining,
            reset_after: u64::try_from(reset_after.as_millis()).unwrap_or(u64::MAX),
            max_concurrency: self.config.max_concurrency,
        }
    }

    /// Revokes the token: every session ends, every connection closes 4004.
    pub(crate) fn revoke(&self) {
        if self.revoked.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::warn!("session start limit exhausted: token revoked");
        self.violation(Violation::SessionStartLimitExhausted);
        for session in lock(&self.sessions).iter() {
            lock(session).invalidated = true;
        }
        let _ = self.broadcast.send(Broadcast::Revoked);
    }

    pub(crate) fn new_session(
        &self,
        shard: [u32; 2],
        guilds: Vec<u64>,
        owner: u64,
        compress: Compress,
    ) -> Arc<Mutex<Session>> {
        let n = self.session_counter.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!(
            "{:016x}{:016x}",
            self.config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(shard[0]),
            n
        );
        let session = Arc::new(Mutex::new(Session {
            id: id.clone(),
            shard,
            guilds,
            seq: 0,
            buffer: VecDeque::new(),
            picker: Picker::new(
                self.config.seed ^ (u64::from(shard[0]) << 32) ^ n.wrapping_mul(0x2545_F491),
            ),
            owner,
            detached_at: None,
            invalidated: false,
            sent: Vec::new(),
            names: Vec::new(),
            stream_events: 0,
            resumes: 0,
            replayed: 0,
            compress,
        }));
        lock(&self.sessions).push(session.clone());
        lock(&self.session_index).insert(id, session.clone());
        session
    }

    pub(crate) fn find_session(&self, id: &str) -> Option<Arc<Mutex<Session>>> {
        lock(&self.session_index).get(id).cloned()
    }

    /// Takes up to `want` stream events from the caps for `shard`.
    pub(crate) fn take_stream_quota(&self, shard: u32, want: u64) -> u64 {
        let mut grant = want;
        if let Some(total_cap) = self.config.max_events_total {
            let mut current = self.stream_total.load(Ordering::Relaxed);
            loop {
                let g = grant.min(total_cap.saturating_sub(current));
                if g == 0 {
                    return 0;
                }
                match self.stream_total.compare_exchange_weak(
                    current,
                    current + g,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        grant = g;
                        break;
                    }
                    Err(now) => current = now,
                }
            }
        } else {
            self.stream_total.fetch_add(grant, Ordering::Relaxed);
        }
        if let Some(shard_cap) = self.config.max_events_per_shard {
            let mut per = lock(&self.per_shard_stream);
            let used = per.entry(shard).or_default();
            let g = grant.min(shard_cap.saturating_sub(*used));
            *used += g;
            if g < grant {
                // Give back what the shard cap refused.
                self.stream_total.fetch_sub(grant - g, Ordering::Relaxed);
            }
            grant = g;
        }
        grant
    }

    pub(crate) fn record_fault(&self, request: &FaultRequest, connections: usize) {
        let at_ms = self.at_ms();
        lock(&self.ledger).faults.push(FaultRecord {
            at_ms,
            fault: request.fault.clone(),
            shard: request.shard,
            connections,
        });
    }

    /// Sends a fault to live connections (and starts guild growth).
    pub(crate) fn apply_fault(self: &Arc<Self>, request: FaultRequest) -> usize {
        tracing::info!(fault = %request.fault, shard = ?request.shard, "fault");
        if let Fault::GrowGuilds { count, over_ms } = request.fault {
            self.record_fault(&request, 0);
            let shared = self.clone();
            tokio::spawn(async move { shared.grow_guilds(count, over_ms).await });
            return 0;
        }
        let reached = self
            .broadcast
            .send(Broadcast::Fault(request.clone()))
            .unwrap_or(0);
        self.record_fault(&request, reached);
        reached
    }

    async fn grow_guilds(&self, count: u64, over_ms: u64) {
        if count == 0 {
            return;
        }
        let step = Duration::from_millis(over_ms) / u32::try_from(count).unwrap_or(u32::MAX);
        for _ in 0..count {
            let index = self.guild_count.fetch_add(1, Ordering::SeqCst);
            let _ = self
                .broadcast
                .send(Broadcast::GuildAdded(crate::events::guild_id(index)));
            if !step.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(step) => {}
                    () = self.shutdown.cancelled() => return,
                }
            }
        }
    }

    pub(crate) fn stats(&self) -> SimStats {
        let now = Instant::now();
        let ttl = self.config.session_ttl;
        let sessions = lock(&self.sessions)
            .iter()
            .map(|s| lock(s).stats(now, ttl))
            .collect();
        let ledger = lock(&self.ledger);
        SimStats {
            uptime_ms: self.at_ms(),
            sessions,
            identifies: ledger.identifies.clone(),
            violations: ledger.violations.clone(),
            commands: ledger.commands.clone(),
            command_log: ledger.command_log.clone(),
            rest: ledger.rest.clone(),
            faults: ledger.faults.clone(),
            connections_total: self.conn_counter.load(Ordering::Relaxed),
            connections_open: self.conns_open.load(Ordering::Relaxed),
            stream_events: self.stream_total.load(Ordering::Relaxed),
            guilds: self.guild_count.load(Ordering::Relaxed),
            token_revoked: self.revoked.load(Ordering::Relaxed),
            session_start_limit: self.session_start_limit(),
        }
    }
}
