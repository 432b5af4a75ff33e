//! Outbound gateway commands: validation, the per-connection rate limit and
//! the reply sent to whoever asked over NATS (`<prefix>.command.<shard>`).
//!
//! Discord allows 120 commands per connection per 60 s, heartbeats included,
//! and disconnects a client that sends more. Commands get a `governor` limiter
//! with a burst of [`COMMAND_BURST`] refilled over 60 s, so no 60 s window
//! holds more than twice the burst (110); the remaining 10 are kept for
//! heartbeats (at most 2 or 3 per minute). A command beyond the limit waits
//! in the shard's queue until there is room; it is never sent early.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use sonic_rs::JsonValueTrait as _;

use crate::clock::{TokioClock, TokioInstant};

/// The largest command payload Discord accepts (bytes).
pub const MAX_COMMAND_BYTES: usize = 4096;

/// Commands allowed at once on a fresh connection; the same number is
/// refilled evenly over 60 s.
pub const COMMAND_BURST: u32 = 55;

/// Opcodes a client may send as commands.
const COMMAND_OPS: [u64; 5] = [3, 4, 8, 31, 43];

/// The answer to a command request.
///
/// ```
/// use shardline_gateway::CommandReply;
/// let reply: CommandReply = serde_json::from_str(r#"{"status":"rejected","error":"too big"}"#).unwrap();
/// assert!(!reply.is_accepted());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum CommandReply {
    /// Queued for sending; it goes out as soon as the rate limit allows.
    Accepted {
        /// Commands ahead of it in the queue.
        queued: usize,
    },
    /// Not sent.
    Rejected {
        /// Why.
        error: String,
    },
}

impl CommandReply {
    /// `true` for [`CommandReply::Accepted`].
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted { .. })
    }

    pub(crate) fn rejected(error: impl Into<String>) -> Self {
        Self::Rejected {
            error: error.into(),
        }
    }

    pub(crate) fn to_bytes(&self) -> bytes::Bytes {
        serde_json::to_vec(self)
            .map(bytes::Bytes::from)
            .unwrap_or_else(|_| bytes::Bytes::from_static(b"{\"status\":\"rejected\"}"))
    }
}

/// Checks a command payload: at most 4096 bytes, a JSON object with a command
/// opcode and a `d`.
///
/// ```
/// use shardline_gateway::validate_command;
/// assert!(validate_command(br#"{"op":8,"d":{"guild_id":"1","query":"","limit":0}}"#).is_ok());
/// assert!(validate_command(br#"{"op":2,"d":{}}"#).is_err());
/// assert!(validate_command(&vec![b' '; 5000]).unwrap_err().contains("4096"));
/// ```
pub fn validate_command(payload: &[u8]) -> Result<(), String> {
    if payload.len() > MAX_COMMAND_BYTES {
        return Err(format!(
            "command payload is {} bytes; Discord accepts at most {MAX_COMMAND_BYTES} bytes",
            payload.len()
        ));
    }
    let op = sonic_rs::get(payload, ["op"])
        .map_err(|_| "command is not a JSON object with an `op` field".to_owned())?;
    let op = op
        .as_u64()
        .ok_or_else(|| "command `op` is not a number".to_owned())?;
    if !COMMAND_OPS.contains(&op) {
        return Err(format!(
            "op {op} is not a gateway command (allowed: 3, 4, 8, 31, 43)"
        ));
    }
    if sonic_rs::get(payload, ["d"]).is_err() {
        return Err("command has no `d` field".to_owned());
    }
    Ok(())
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// The per-connection command limiter.
#[derive(Debug)]
pub(crate) struct CommandLimiter {
    limiter: Limiter,
    clock: TokioClock,
}

impl CommandLimiter {
    pub(crate) fn new() -> Self {
        let burst = NonZeroU32::new(COMMAND_BURST).expect("the burst is not zero");
        let quota = Quota::with_period(Duration::from_secs(60) / COMMAND_BURST)
            .expect("the period is not zero")
            .allow_burst(burst);
        let clock = TokioClock;
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock),
            clock,
        }
    }

    /// Takes room for one command now, or tells when there will be room.
    pub(crate) fn check(&self) -> Result<(), tokio::time::Instant> {
        self.limiter.check().map_err(|not_until| {
            tokio::time::Instant::now() + not_until.wait_time_from(self.clock.now())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_110_commands_in_any_60_seconds() {
        let limiter = CommandLimiter::new();
        let start = Instant::now();
        let mut sent = Vec::new();
        // 300 commands arrive at once; each waits for room.
        while sent.len() < 300 {
            match limiter.check() {
                Ok(()) => sent.push(start.elapsed()),
                Err(at) => tokio::time::sleep_until(at).await,
            }
        }
        for (i, at) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .take_while(|t| **t < *at + Duration::from_secs(60))
                .count();
            assert!(
                in_window <= 110,
                "{in_window} commands in the 60 s after {at:?}"
            );
        }
        // The 121st command inside the first minute is held back.
        assert!(sent[120] >= Duration::from_secs(60), "{:?}", sent[120]);
        // But commands do flow: 55 at once, then about one a second.
        assert_eq!(sent[54], Duration::ZERO);
        assert!(sent[55] > Duration::ZERO && sent[55] <= Duration::from_millis(1100));
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(validate_command(b"nope").unwrap_err().contains("JSON"));
        assert!(
            validate_command(br#"{"op":"3","d":{}}"#)
                .unwrap_err()
                .contains("number")
        );
        assert!(
            validate_command(br#"{"op":3}"#)
                .unwrap_err()
                .contains("`d`")
        );
        assert!(validate_command(br#"{"op":3,"d":{"status":"online"}}"#).is_ok());
        let big = format!(r#"{{"op":3,"d":"{}"}}"#, "x".repeat(5 * 1024));
        let err = validate_command(big.as_bytes()).unwrap_err();
        assert!(err.contains("at most 4096"), "{err}");
    }

    #[test]
    fn replies_serialise() {
        let accepted = CommandReply::Accepted { queued: 2 };
        assert_eq!(
            accepted.to_bytes(),
            bytes::Bytes::from_static(br#"{"status":"accepted","queued":2}"#)
        );
    }
}
