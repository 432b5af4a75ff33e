//! [`RemoteQueue`]: the identify queue of a worker process, asking the active
//! coordinator for each permit over NATS request/reply.

use std::time::Duration;

use shardline_wire::Names;

use crate::coordinator::{PermitReply, PermitRequest, WaitReason};
use crate::queue::{IdentifyPermit, IdentifyQueue, PermitFuture, QueueError};

/// How long the coordinator may hold one request by default.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(10);

/// Extra time on top of the hold for the reply to travel back.
const REPLY_MARGIN: Duration = Duration::from_secs(2);

/// Asks the active coordinator for identify permits over NATS.
///
/// `acquire` returns only with a permit: while the bucket is busy, the budget
/// is at its reserve or no coordinator answers, it keeps asking (and says why
/// in the logs). Every answer the coordinator sends is fresh, so a lost reply
/// costs a slot in the window, never a second permit.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use shardline_gateway::{IdentifyQueue, RemoteQueue};
/// let client = async_nats::connect("nats://127.0.0.1:4222").await?;
/// let names = shardline_wire::Names::new("discord", "mybot")?;
/// let queue = RemoteQueue::new(client, &names);
/// let permit = queue.acquire(3, 16).await?;
/// println!("shard {} may identify", permit.shard_id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RemoteQueue {
    client: async_nats::Client,
    subject: String,
    hold: Duration,
    worker: Option<String>,
}

impl RemoteQueue {
    /// A queue asking on `names.identify_subject()`.
    pub fn new(client: async_nats::Client, names: &Names) -> Self {
        Self {
            client,
            subject: names.identify_subject(),
            hold: DEFAULT_HOLD,
            worker: None,
        }
    }

    /// How long the coordinator may hold each request (default 10 s).
    pub fn with_hold(mut self, hold: Duration) -> Self {
        self.hold = hold.max(Duration::from_millis(10));
        self
    }

    /// The worker id sent along for the coordinator's logs.
    pub fn with_worker(mut self, worker: impl Into<String>) -> Self {
        self.worker = Some(worker.into());
        self
    }

    async fn ask(&self, shard_id: u32, shard_count: u32) -> Result<IdentifyPermit, QueueError> {
        let request = PermitRequest {
            shard_id,
            shard_count,
            hold_ms: crate::coordinator::permits::millis(self.hold),
            worker: self.worker.clone(),
        };
        let body = serde_json::to_vec(&request).expect("permit requests serialise");
        let mut backoff = Backoff::default();
        let mut said_budget = false;
        loop {
            let ask = async_nats::Request::new()
                .payload(body.clone().into())
                .timeout(Some(self.hold + REPLY_MARGIN));
            let sent_at = tokio::time::Instant::now();
            match self.client.send_request(self.subject.clone(), ask).await {
                Ok(message) => match serde_json::from_slice::<PermitReply>(&message.payload) {
                    Ok(PermitReply::Granted {
                        shard_id,
                        bucket,
                        held_us,
                        margin_us,
                    }) => {
                        // The reply travelled at most the round trip minus the hold.
                        let travelled = sent_at
                            .elapsed()
                            .saturating_sub(Duration::from_micros(held_us));
                        if travelled <= Duration::from_micros(margin_us) {
                            return Ok(IdentifyPermit { shard_id, bucket });
                        }
                        metrics::counter!("shardline_identify_permits_late_total").increment(1);
                        tracing::info!(
                            shard = shard_id,
                            travelled = ?travelled,
                            margin = ?Duration::from_micros(margin_us),
                            "permit arrived too late to use safely; asking again"
                        );
                        backoff.reset();
                    }
                    Ok(PermitReply::Wait {
                        reason:
                            WaitReason::Budget {
                                remaining,
                                reserve,
                                resets_in_ms,
                            },
                    }) => {
                        if !said_budget {
                            said_budget = true;
                            tracing::info!(
                                shard = shard_id,
                                remaining,
                                reserve,
                                resets_in = ?Duration::from_millis(resets_in_ms),
                                "identify waits: the session start budget is at its reserve"
                            );
                        }
                        backoff.reset();
                    }
                    Ok(PermitReply::Wait {
                        reason: WaitReason::Queued,
                    }) => backoff.reset(),
                    Ok(PermitReply::NotLeader) => {
                        tokio::time::sleep(backoff.next()).await;
                    }
                    Ok(PermitReply::Invalid { error }) => {
                        return Err(QueueError::Unavailable(format!(
                            "the coordinator refused the permit request: {error}"
                        )));
                    }
                    Err(error) => {
                        return Err(QueueError::Unavailable(format!(
                            "unreadable permit reply: {error}"
                        )));
                    }
                },
                Err(error) => {
                    let wait = backoff.next();
                    match error.kind() {
                        async_nats::RequestErrorKind::TimedOut => {
                            tracing::debug!(
                                shard = shard_id,
                                "permit request timed out; asking again"
                            );
                        }
                        async_nats::RequestErrorKind::NoResponders => {
                            if backoff.attempts == 5 {
                                tracing::warn!(
                                    shard = shard_id,
                                    subject = self.subject,
                                    "no coordinator answers identify permit requests; still asking"
                                );
                            }
                        }
                        _ => {
                            tracing::warn!(shard = shard_id, %error, "permit request failed; asking again");
                        }
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

impl IdentifyQueue for RemoteQueue {
    fn acquire(&self, shard_id: u32, shard_count: u32) -> PermitFuture<'_> {
        Box::pin(self.ask(shard_id, shard_count))
    }
}

/// 50 ms doubling to 2 s.
#[derive(Debug, Default)]
struct Backoff {
    attempts: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = Duration::from_millis(50) * 2u32.saturating_pow(self.attempts.min(6));
        self.attempts += 1;
        wait.min(Duration::from_secs(2))
    }

    fn reset(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_two_seconds() {
        let mut backoff = Backoff::default();
        let waits: Vec<Duration> = (0..8).map(|_| backoff.next()).collect();
        assert_eq!(waits[0], Duration::from_millis(50));
        assert_eq!(waits[1], Duration::from_millis(100));
        assert_eq!(waits[7], Duration::from_secs(2));
        backoff.reset();
        assert_eq!(backoff.next(), Duration::from_millis(50));
    }
}
