//! Faults injected on demand: what they do and which shards they hit.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One misbehaviour of the simulated Discord, applied to live connections.
///
/// In JSON (the control endpoint `POST /sim/fault`) a fault is tagged by
/// `kind`: `{"kind":"close","code":4000}`, `{"kind":"stall","ms":2000}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Fault {
    /// Send op 7 RECONNECT; the session stays resumable.
    Reconnect,
    /// Send op 9 INVALID SESSION with `d = resumable`; `false` ends the session.
    InvalidSession {
        /// Whether the client may RESUME.
        resumable: bool,
    },
    /// Drop the TCP connection without a close frame.
    Drop,
    /// Stop answering heartbeats with ACKs (a zombied connection).
    Zombie,
    /// Send a close frame with this code, then end the connection.
    Close {
        /// The WebSocket close code (e.g. 4000).
        code: u16,
    },
    /// Send a frame the client cannot decompress (or, uncompressed, a binary
    /// frame of garbage).
    CorruptFrame,
    /// Send a sequenced MESSAGE_CREATE dispatch of about this many bytes.
    Oversized {
        /// Approximate JSON size in bytes.
        bytes: usize,
    },
    /// Send a text payload that is not JSON.
    NonJson,
    /// Send nothing (no ACK, no dispatch) for this long.
    Stall {
        /// Milliseconds.
        ms: u64,
    },
    /// Send op 1: the client must heartbeat at once.
    RequestHeartbeat,
    /// The bot joins `count` more guilds, spread over `over_ms`; each new
    /// guild's shard (if connected) gets a GUILD_CREATE.
    GrowGuilds {
        /// How many guilds.
        count: u64,
        /// Over how many milliseconds (0 = at once).
        #[serde(default)]
        over_ms: u64,
    },
}

/// A fault with its target, as posted to `POST /sim/fault`:
/// `{"fault":{"kind":"reconnect"},"shard":3}` (no `shard` = all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRequest {
    /// What to do.
    pub fault: Fault,
    /// Which shard; all when absent.
    #[serde(default)]
    pub shard: Option<u32>,
}

/// A fault fired at a time after start: `--fault KIND[=ARG][@AFTER][#SHARD]`,
/// e.g. `reconnect@10s`, `close=4000@5s#2`, `stall=3s@1m`, `grow=500@30s`,
/// `invalid=true`, `oversized=100000`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// What to do.
    pub fault: Fault,
    /// Which shard; all when absent.
    pub shard: Option<u32>,
    /// When, counted from the simulator's start.
    #[serde(with = "crate::config::duration_text")]
    pub after: Duration,
}

/// A `--fault` argument the simulator cannot read.
#[derive(Debug, thiserror::Error)]
#[error("bad fault `{text}`: {reason}")]
pub struct FaultParseError {
    text: String,
    reason: String,
}

impl FromStr for ScheduledFault {
    type Err = FaultParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| FaultParseError {
            text: text.to_owned(),
            reason,
        };
        let (rest, shard) = match text.split_once('#') {
            Some((rest, shard)) => (
                rest,
                Some(
                    shard
                        .parse::<u32>()
                        .map_err(|e| err(format!("shard: {e}")))?,
                ),
            ),
            None => (text, None),
        };
        let (rest, after) = match rest.split_once('@') {
            Some((rest, after)) => (
                rest,
                humantime::parse_duration(after).map_err(|e| err(format!("time: {e}")))?,
            ),
            None => (rest, Duration::ZERO),
        };
        let (kind, arg) = match rest.split_once('=') {
            Some((kind, arg)) => (kind, Some(arg)),
            None => (rest, None),
        };
        let need = |what: &str| arg.ok_or_else(|| err(format!("`{kind}` needs ={what}")));
        let fault = match kind {
            "reconnect" | "op7" => Fault::Reconnect,
            "invalid" | "op9" => Fault::InvalidSession {
                resumable: arg
                    .unwrap_or("false")
                    .parse()
                    .map_err(|e| err(format!("resumable: {e}")))?,
            },
            "drop" => Fault::Drop,
            "zombie" => Fault::Zombie,
            "close" => Fault::Close {
                code: need("CODE")?
                    .parse()
                    .map_err(|e| err(format!("code: {e}")))?,
            },
            "corrupt" => Fault::CorruptFrame,
            "oversized" => Fault::Oversized {
                bytes: arg
                    .unwrap_or("1048576")
                    .parse()
                    .map_err(|e| err(format!("bytes: {e}")))?,
            },
            "non-json" | "nonjson" => Fault::NonJson,
            "stall" => Fault::Stall {
                ms: duration_ms(
                    humantime::parse_duration(need("DURATION")?)
                        .map_err(|e| err(format!("duration: {e}")))?,
                ),
            },
            "heartbeat" | "op1" => Fault::RequestHeartbeat,
            "grow" => {
                let arg = need("COUNT[/OVER]")?;
                let (count, over) = match arg.split_once('/') {
                    Some((count, over)) => (
                        count,
                        humantime::parse_duration(over).map_err(|e| err(format!("over: {e}")))?,
                    ),
                    None => (arg, Duration::ZERO),
                };
                Fault::GrowGuilds {
                    count: count.parse().map_err(|e| err(format!("count: {e}")))?,
                    over_ms: duration_ms(over),
                }
            }
            other => return Err(err(format!("unknown kind `{other}`"))),
        };
        Ok(Self {
            fault,
            shard,
            after,
        })
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reconnect => f.write_str("reconnect"),
            Self::InvalidSession { resumable } => write!(f, "invalid_session({resumable})"),
            Self::Drop => f.write_str("drop"),
            Self::Zombie => f.write_str("zombie"),
            Self::Close { code } => write!(f, "close({code})"),
            Self::CorruptFrame => f.write_str("corrupt_frame"),
            Self::Oversized { bytes } => write!(f, "oversized({bytes})"),
            Self::NonJson => f.write_str("non_json"),
            Self::Stall { ms } => write!(f, "stall({ms}ms)"),
            Self::RequestHeartbeat => f.write_str("request_heartbeat"),
            Self::GrowGuilds { count, over_ms } => write!(f, "grow_guilds({count}/{over_ms}ms)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        let f: ScheduledFault = "close=4000@5s#2".parse().unwrap();
        assert_eq!(f.fault, Fault::Close { code: 4000 });
        assert_eq!(f.shard, Some(2));
        assert_eq!(f.after, Duration::from_secs(5));
        let f: ScheduledFault = "grow=500/10s".parse().unwrap();
        assert_eq!(
            f.fault,
            Fault::GrowGuilds {
                count: 500,
                over_ms: 10_000
            }
        );
        assert_eq!(f.shard, None);
        let f: ScheduledFault = "invalid=true".parse().unwrap();
        assert_eq!(f.fault, Fault::InvalidSession { resumable: true });
        assert!("close".parse::<ScheduledFault>().is_err());
        assert!("explode".parse::<ScheduledFault>().is_err());
    }

    #[test]
    fn json_shape() {
        let req: FaultRequest =
            serde_json::from_str(r#"{"fault":{"kind":"stall","ms":20},"shard":1}"#).unwrap();
        assert_eq!(req.fault, Fault::Stall { ms: 20 });
        assert_eq!(req.shard, Some(1));
    }
}
