//! The identify permit protocol between workers and the active coordinator:
//! JSON request/reply on `Names::identify_subject()`.
//!
//! A worker asks for a permit for one shard and says how long the coordinator
//! may hold the request (`hold_ms`); the coordinator answers as soon as the
//! permit is granted, or at the end of the hold with the reason it still waits.
//! Only the active coordinator listens on the subject.

use serde::{Deserialize, Serialize};

use super::permits::WaitReason;

/// A request for one identify permit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitRequest {
    /// The shard that wants to IDENTIFY.
    pub shard_id: u32,
    /// Its shard count.
    pub shard_count: u32,
    /// How long the coordinator may hold the request before answering `wait`.
    pub hold_ms: u64,
    /// The asking worker, for logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

/// The coordinator's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum PermitReply {
    /// IDENTIFY now; the permit is used once.
    Granted {
        /// The shard.
        shard_id: u32,
        /// Its bucket.
        bucket: u32,
        /// Microseconds the coordinator held the request before granting it.
        /// The requester subtracts it from the round trip to bound how long
        /// the reply travelled.
        held_us: u64,
        /// A permit that travelled longer than this (microseconds) must not be used.
        margin_us: u64,
    },
    /// Not yet; ask again.
    Wait {
        /// Why.
        reason: WaitReason,
    },
    /// This coordinator is no longer the leader; ask again shortly.
    NotLeader,
    /// The request could not be read.
    Invalid {
        /// What was wrong.
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip() {
        let replies = [
            PermitReply::Granted {
                shard_id: 5,
                bucket: 1,
                held_us: 10,
                margin_us: 4000,
            },
            PermitReply::Wait {
                reason: WaitReason::Budget {
                    remaining: 5,
                    reserve: 5,
                    resets_in_ms: 1000,
                },
            },
            PermitReply::Wait {
                reason: WaitReason::Queued,
            },
            PermitReply::NotLeader,
        ];
        for reply in replies {
            let text = serde_json::to_string(&reply).unwrap();
            assert_eq!(serde_json::from_str::<PermitReply>(&text).unwrap(), reply);
        }
        let granted = serde_json::to_string(&PermitReply::Granted {
            shard_id: 5,
            bucket: 1,
            held_us: 7,
            margin_us: 100,
        })
        .unwrap();
        assert_eq!(
            granted,
            r#"{"decision":"granted","shard_id":5,"bucket":1,"held_us":7,"margin_us":100}"#
        );
    }
}
