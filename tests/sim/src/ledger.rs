//! The ledger: what the simulator emitted, received and refused, for tests
//! to assert on (`GET /sim/stats`, [`SimHandle::stats`](crate::SimHandle::stats)).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compress::Compress;
use crate::fault::Fault;

/// A rule of Discord's that a client broke, as counted in
/// [`SimStats::violations`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Violation {
    /// IDENTIFY while its bucket's window was closed (answered with op 9).
    IdentifyRateLimit,
    /// The last session start was spent: token revoked, sessions closed.
    SessionStartLimitExhausted,
    /// More than `command_limit` commands in `command_window` (close 4008).
    CommandRateLimit,
    /// A payload over `max_payload` bytes (close 4002).
    PayloadTooLarge,
    /// A payload that is not a JSON gateway message (close 4002).
    DecodeError,
    /// An unknown opcode (close 4001).
    UnknownOpcode,
    /// A command before IDENTIFY (close 4003).
    NotAuthenticated,
    /// A second IDENTIFY on one connection (close 4005).
    AlreadyAuthenticated,
    /// A wrong token, or the revoked one (close 4004).
    AuthenticationFailed,
    /// A RESUME with a sequence the session never reached (close 4007).
    InvalidSeq,
    /// A shard id not below the shard count (close 4010).
    InvalidShard,
    /// Too many guilds on one shard (close 4011).
    ShardingRequired,
    /// Unknown intent bits (close 4013).
    InvalidIntents,
    /// A privileged intent the application may not use (close 4014).
    DisallowedIntents,
    /// No heartbeat within the timeout (close 4009).
    HeartbeatTimeout,
}

impl Violation {
    /// The snake_case name used as key in [`SimStats::violations`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdentifyRateLimit => "identify_rate_limit",
            Self::SessionStartLimitExhausted => "session_start_limit_exhausted",
            Self::CommandRateLimit => "command_rate_limit",
            Self::PayloadTooLarge => "payload_too_large",
            Self::DecodeError => "decode_error",
            Self::UnknownOpcode => "unknown_opcode",
            Self::NotAuthenticated => "not_authenticated",
            Self::AlreadyAuthenticated => "already_authenticated",
            Self::AuthenticationFailed => "authentication_failed",
            Self::InvalidSeq => "invalid_seq",
            Self::InvalidShard => "invalid_shard",
            Self::ShardingRequired => "sharding_required",
            Self::InvalidIntents => "invalid_intents",
            Self::DisallowedIntents => "disallowed_intents",
            Self::HeartbeatTimeout => "heartbeat_timeout",
        }
    }
}

/// An inclusive range of sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    /// First seq.
    pub first: u64,
    /// Last seq (inclusive).
    pub last: u64,
}

/// One dispatch the simulator wrote to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmittedEvent {
    /// Its `s`.
    pub seq: u64,
    /// Its `t`.
    pub name: String,
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// A connection holds it.
    Connected,
    /// No connection; it can be resumed until `session_ttl` runs out.
    Resumable,
    /// Ended (op 9 false, client close 1000/1001, fatal close, revocation,
    /// or expired).
    Invalidated,
}

/// One session's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionStats {
    /// The `session_id` sent in READY.
    pub session_id: String,
    /// `shard[0]` of its IDENTIFY.
    pub shard_id: u32,
    /// `shard[1]` of its IDENTIFY.
    pub num_shards: u32,
    /// Guild ids READY listed (plus guilds joined later).
    pub guilds: Vec<String>,
    /// The last seq assigned.
    pub last_seq: u64,
    /// Seqs successfully written to a client (first writes and replays),
    /// merged into ranges. Every assigned seq up to `last_seq` is here unless
    /// its connection failed before writing it.
    pub sent: Vec<SeqRange>,
    /// Each sent dispatch, by seq (READY, GUILD_CREATE, the stream, RESUMED,
    /// GUILD_MEMBERS_CHUNK), when `record_event_names` is on.
    pub events: Vec<EmittedEvent>,
    /// Stream dispatches generated (what the caps count).
    pub stream_events: u64,
    /// Successful RESUMEs.
    pub resumes: u32,
    /// Dispatches written again by RESUME replays.
    pub replayed: u64,
    /// Where it stands.
    pub state: SessionState,
    /// Compression of its latest connection.
    pub compress: Compress,
}

impl SessionStats {
    /// Whether `seq` was written to a client.
    pub fn was_sent(&self, seq: u64) -> bool {
        self.sent.iter().any(|r| r.first <= seq && seq <= r.last)
    }

    /// How many distinct seqs were written.
    pub fn sent_count(&self) -> u64 {
        self.sent.iter().map(|r| r.last - r.first + 1).sum()
    }
}

/// One IDENTIFY the simulator received.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentifyRecord {
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    /// `shard[0]`.
    pub shard_id: u32,
    /// `shard[1]`.
    pub num_shards: u32,
    /// `shard_id % max_concurrency`.
    pub bucket: u32,
    /// `ready`, `rate_limited`, or `closed_NNNN`.
    pub outcome: String,
    /// The session READY created.
    pub session_id: Option<String>,
}

/// A gateway command (other than heartbeat, identify, resume) received.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandRecord {
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    /// Opcode.
    pub op: u8,
    /// The connection's shard id, when identified.
    pub shard_id: Option<u32>,
    /// The payload's `d`.
    pub d: Value,
}

/// A REST request received.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestCall {
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    /// `GET`, `POST`…
    pub method: String,
    /// The path, e.g. `/api/v10/channels/1/messages`.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// The JSON body, if there was one.
    pub body: Option<Value>,
}

/// A fault applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    /// What.
    pub fault: Fault,
    /// Target shard (none = all).
    pub shard: Option<u32>,
    /// Live connections it was sent to.
    pub connections: usize,
}

/// `session_start_limit` as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStartLimit {
    /// Starts per reset period.
    pub total: u32,
    /// Starts left.
    pub remaining: u32,
    /// Milliseconds until `remaining` goes back to `total`.
    pub reset_after: u64,
    /// Identify buckets.
    pub max_concurrency: u32,
}

/// Everything the ledger knows. Returned by `GET /sim/stats` and
/// [`SimHandle::stats`](crate::SimHandle::stats).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimStats {
    /// Milliseconds since start.
    pub uptime_ms: u64,
    /// Every session ever created, in creation order.
    pub sessions: Vec<SessionStats>,
    /// Every IDENTIFY, in order.
    pub identifies: Vec<IdentifyRecord>,
    /// Rule violations by [`Violation::as_str`].
    pub violations: BTreeMap<String, u64>,
    /// Commands received by name (`heartbeat`, `identify`, `presence_update`,
    /// `voice_state_update`, `resume`, `request_guild_members`, `op_N`).
    pub commands: BTreeMap<String, u64>,
    /// Presence, voice and member requests with their payloads.
    pub command_log: Vec<CommandRecord>,
    /// REST requests.
    pub rest: Vec<RestCall>,
    /// Faults applied.
    pub faults: Vec<FaultRecord>,
    /// WebSocket connections accepted so far.
    pub connections_total: u64,
    /// WebSocket connections open now.
    pub connections_open: u64,
    /// Stream dispatches generated (the caps count these).
    pub stream_events: u64,
    /// Guilds the bot is in now.
    pub guilds: u64,
    /// Whether the token was revoked.
    pub token_revoked: bool,
    /// As `GET /gateway/bot` would report it now.
    pub session_start_limit: SessionStartLimit,
}

impl SimStats {
    /// The count of one kind of violation.
    pub fn violations_of(&self, kind: Violation) -> u64 {
        self.violations.get(kind.as_str()).copied().unwrap_or(0)
    }

    /// The count of one command name.
    pub fn commands_of(&self, name: &str) -> u64 {
        self.commands.get(name).copied().unwrap_or(0)
    }

    /// A session by id.
    pub fn session(&self, session_id: &str) -> Option<&SessionStats> {
        self.sessions.iter().find(|s| s.session_id == session_id)
    }

    /// Sessions of one shard id.
    pub fn sessions_of_shard(&self, shard_id: u32) -> impl Iterator<Item = &SessionStats> {
        self.sessions.iter().filter(move |s| s.shard_id == shard_id)
    }

    /// Every dispatch written to a client as `(session_id, shard_id, seq,
    /// name)`, each seq once. Needs `record_event_names`.
    ///
    /// ```no_run
    /// # async fn demo(sim: shardline_sim::SimHandle) {
    /// let stats = sim.stats();
    /// let expected: Vec<_> = stats
    ///     .emitted()
    ///     .filter(|(_, _, _, name)| *name != "READY")
    ///     .collect();
    /// # }
    /// ```
    pub fn emitted(&self) -> impl Iterator<Item = (&str, u32, u64, &str)> {
        self.sessions.iter().flat_map(|s| {
            s.events
                .iter()
                .map(move |e| (s.session_id.as_str(), s.shard_id, e.seq, e.name.as_str()))
        })
    }

    /// How many dispatches were written to clients in total (distinct seqs).
    pub fn sent_total(&self) -> u64 {
        self.sessions.iter().map(SessionStats::sent_count).sum()
    }
}

/// Merges `[first, last]` into sorted disjoint ranges.
pub(crate) fn add_range(ranges: &mut Vec<SeqRange>, first: u64, last: u64) {
    if let Some(tail) = ranges.last_mut() {
        if first <= tail.last + 1 && first >= tail.first {
            tail.last = tail.last.max(last);
            return;
        }
        if first > tail.last + 1 {
            ranges.push(SeqRange { first, last });
            return;
        }
    } else {
        ranges.push(SeqRange { first, last });
        return;
    }
    // Out of order (a replay of old seqs): insert and re-merge.
    ranges.push(SeqRange { first, last });
    ranges.sort_by_key(|r| r.first);
    let mut merged: Vec<SeqRange> = Vec::with_capacity(ranges.len());
    for r in ranges.drain(..) {
        match merged.last_mut() {
            Some(m) if r.first <= m.last + 1 => m.last = m.last.max(r.last),
            _ => merged.push(r),
        }
    }
    *ranges = merged;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge() {
        let mut r = Vec::new();
        add_range(&mut r, 1, 3);
        add_range(&mut r, 4, 6);
        add_range(&mut r, 9, 9);
        add_range(&mut r, 5, 8);
        assert_eq!(r, vec![SeqRange { first: 1, last: 9 }]);
        add_range(&mut r, 12, 12);
        add_range(&mut r, 2, 2);
        assert_eq!(
            r,
            vec![
                SeqRange { first: 1, last: 9 },
                SeqRange {
                    first: 12,
                    last: 12
                }
            ]
        );
    }
}
