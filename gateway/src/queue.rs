//! Identify permits: no shard sends IDENTIFY without one.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::time::Duration;

use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::clock::{TokioClock, TokioInstant};

/// Permission for one shard to send one IDENTIFY.
///
/// A permit is used once: a shard that needs to identify again asks again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifyPermit {
    /// The shard the permit is for.
    pub shard_id: u32,
    /// Its bucket, `shard_id % max_concurrency`.
    pub bucket: u32,
}

/// Why no permit was granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue was shut down.
    #[error("the identify queue is closed")]
    Closed,
    /// The daily session budget is at its reserve; identifies resume after the reset.
    #[error("session start budget exhausted; identifies resume in {resets_in:?}")]
    BudgetExhausted {
        /// Time until Discord resets the budget.
        resets_in: Duration,
    },
    /// The queue could not be reached (for example, no coordinator answers).
    #[error("identify queue unavailable: {0}")]
    Unavailable(String),
}

/// The future [`IdentifyQueue::acquire`] returns.
pub type PermitFuture<'a> =
    Pin<Box<dyn Future<Output = Result<IdentifyPermit, QueueError>> + Send + 'a>>;

/// Hands out identify permits. Every shard awaits one before each IDENTIFY.
///
/// Implementations honour each bucket's window across everything that shares
/// the queue: [`LocalQueue`] within one process, the coordinator's queue across
/// processes and machines.
pub trait IdentifyQueue: Send + Sync + std::fmt::Debug {
    /// Waits for a permit for `shard_id` (of `shard_count` shards).
    fn acquire(&self, shard_id: u32, shard_count: u32) -> PermitFuture<'_>;
}

type BucketLimiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

#[derive(Debug)]
struct Bucket {
    limiter: BucketLimiter,
    /// Serialises waiters so permits go out first come, first served.
    turn: tokio::sync::Mutex<()>,
}

/// The in-process identify queue: one `governor` limiter per bucket, each
/// allowing one IDENTIFY per window.
///
/// ```
/// # async fn demo() {
/// use shardline_gateway::{IdentifyQueue, LocalQueue};
/// let queue = LocalQueue::new(16, std::time::Duration::from_secs(5));
/// let permit = queue.acquire(3, 64).await.unwrap();
/// assert_eq!(permit.bucket, 3);
/// # }
/// ```
#[derive(Debug)]
pub struct LocalQueue {
    buckets: Vec<Bucket>,
    clock: TokioClock,
}

impl LocalQueue {
    /// A queue with `max_concurrency` buckets, each allowing one IDENTIFY per `window`.
    /// A `max_concurrency` of 0 is treated as 1, and a zero window as 1 ms.
    pub fn new(max_concurrency: u32, window: Duration) -> Self {
        let window = window.max(Duration::from_millis(1));
        let quota = Quota::with_period(window)
            .expect("the window is at least 1 ms")
            .allow_burst(NonZeroU32::MIN);
        let clock = TokioClock;
        let buckets = (0..max_concurrency.max(1))
            .map(|_| Bucket {
                limiter: RateLimiter::direct_with_clock(quota, clock),
                turn: tokio::sync::Mutex::new(()),
            })
            .collect();
        Self { buckets, clock }
    }

    /// The number of buckets (`max_concurrency`).
    pub fn max_concurrency(&self) -> u32 {
        u32::try_from(self.buckets.len()).unwrap_or(u32::MAX)
    }

    async fn wait_for(&self, shard_id: u32) -> IdentifyPermit {
        let bucket_id = shard_id % self.max_concurrency();
        let bucket = &self.buckets[bucket_id as usize];
        let _turn = bucket.turn.lock().await;
        loop {
            match bucket.limiter.check() {
                Ok(()) => {
                    return IdentifyPermit {
                        shard_id,
                        bucket: bucket_id,
                    };
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

impl IdentifyQueue for LocalQueue {
    fn acquire(&self, shard_id: u32, _shard_count: u32) -> PermitFuture<'_> {
        Box::pin(async move { Ok(self.wait_for(shard_id).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn one_permit_per_bucket_per_window() {
        let queue = Arc::new(LocalQueue::new(4, Duration::from_secs(5)));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for shard in 0..16u32 {
            let queue = queue.clone();
            tasks.push(tokio::spawn(async move {
                let permit = queue.acquire(shard, 16).await.unwrap();
                (permit, start.elapsed())
            }));
        }
        let mut grants: Vec<(u32, Duration)> = Vec::new();
        for task in tasks {
            let (permit, at) = task.await.unwrap();
            assert_eq!(permit.bucket, permit.shard_id % 4);
            grants.push((permit.bucket, at));
        }
        for bucket in 0..4 {
            let mut times: Vec<Duration> = grants
                .iter()
                .filter(|(b, _)| *b == bucket)
                .map(|(_, t)| *t)
                .collect();
            times.sort();
            assert_eq!(times.len(), 4);
            for pair in times.windows(2) {
                assert!(pair[1] - pair[0] >= Duration::from_secs(5), "{times:?}");
            }
        }
        // 16 shards over 4 buckets: the last permit goes out after 3 windows, not later.
        let last = grants.iter().map(|(_, t)| *t).max().unwrap();
        assert!(
            last >= Duration::from_secs(15) && last < Duration::from_secs(16),
            "{last:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn no_bucket_ever_gets_two_permits_in_a_window(
            max_concurrency in 1u32..6,
            window_ms in 1u64..5_000,
            order in proptest::collection::vec((0u32..32, 0u64..10_000), 1..40),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            runtime.block_on(async move {
                let window = Duration::from_millis(window_ms);
                let queue = Arc::new(LocalQueue::new(max_concurrency, window));
                let start = Instant::now();
                let mut tasks = Vec::new();
                for (shard, delay) in order {
                    let queue = queue.clone();
                    tasks.push(tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                        let permit = queue.acquire(shard, 32).await.unwrap();
                        (permit.bucket, start.elapsed())
                    }));
                }
                let mut grants = Vec::new();
                for task in tasks {
                    grants.push(task.await.unwrap());
                }
                for bucket in 0..max_concurrency {
                    let mut times: Vec<Duration> =
                        grants.iter().filter(|(b, _)| *b == bucket).map(|(_, t)| *t).collect();
                    times.sort();
                    for pair in times.windows(2) {
                        assert!(pair[1] - pair[0] >= window, "bucket {bucket}: {times:?}");
                    }
                }
            });
        }
    }
}
