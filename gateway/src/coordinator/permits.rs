//! The permit scheduler: the one place a bot's identify permits come from.
//!
//! An actor task owns one `governor` limiter per bucket (`shard_id %
//! max_concurrency`, one permit per window), the queue of waiting requests
//! (ordered by shard id within each bucket, so start-up goes out in bucket
//! order) and the [`SessionBudget`]. Requests arrive through a cheap
//! [`PermitScheduler`] handle, in process (it implements [`IdentifyQueue`]) or
//! from the NATS permit service.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::budget::{BudgetExhausted, BudgetSnapshot, SessionBudget};
use crate::clock::{TokioClock, TokioInstant};
use crate::queue::{IdentifyPermit, IdentifyQueue, PermitFuture, QueueError};

type BucketLimiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// How the scheduler hands out permits.
#[derive(Debug, Clone)]
pub struct PermitSettings {
    /// Buckets: Discord's `max_concurrency`.
    pub max_concurrency: u32,
    /// One permit per bucket per window (Discord: 5 s).
    pub window: Duration,
    /// Extra spacing between two permits of a bucket, and the longest a permit
    /// may take to reach its shard: a permit that arrives later is not used
    /// (the shard asks again). Together they keep IDENTIFYs a full window apart
    /// however late a reply travels. Default: window / 50.
    pub margin: Duration,
    /// Wait one full window before the first permit. A new leader does this
    /// so a permit granted by the previous leader just before it died never
    /// shares a window with the first of its own.
    pub wait_first_window: bool,
}

impl PermitSettings {
    /// Settings for `max_concurrency` buckets and a `window`, without the initial wait.
    pub fn new(max_concurrency: u32, window: Duration) -> Self {
        let window = window.max(Duration::from_millis(1));
        Self {
            max_concurrency: max_concurrency.max(1),
            window,
            margin: window / 50,
            wait_first_window: false,
        }
    }
}

/// What a request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Identify now; the permit is used once.
    Granted {
        /// The permit.
        permit: IdentifyPermit,
        /// When it was granted.
        granted_at: Instant,
    },
    /// No permit within the request's hold time; ask again.
    Wait(WaitReason),
}

/// Why a request is still waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum WaitReason {
    /// Other shards of the same bucket are ahead.
    Queued,
    /// The session budget is at its reserve until the reset.
    Budget {
        /// Identifies left in this period.
        remaining: u32,
        /// The part never spent.
        reserve: u32,
        /// Milliseconds until the reset.
        resets_in_ms: u64,
    },
}

impl From<BudgetExhausted> for WaitReason {
    fn from(exhausted: BudgetExhausted) -> Self {
        Self::Budget {
            remaining: exhausted.remaining,
            reserve: exhausted.reserve,
            resets_in_ms: millis(exhausted.resets_in),
        }
    }
}

/// The budget part of [`PermitStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStatus {
    /// Identifies per period.
    pub total: u32,
    /// Identifies left in this period.
    pub remaining: u32,
    /// Identifies never spent.
    pub reserve: u32,
    /// When the budget resets, Unix milliseconds.
    pub resets_at_unix_ms: u64,
    /// `true` while permits are held back because `remaining` is at the reserve.
    pub exhausted: bool,
}

/// What the scheduler is doing, for logs, metrics and `ctl status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitStatus {
    /// Permits granted since the scheduler started.
    pub granted: u64,
    /// Requests waiting for a permit.
    pub waiting: u64,
    /// The budget, when one is tracked.
    pub budget: Option<BudgetStatus>,
    /// A human-readable reason when permits are held back.
    pub paused_reason: Option<String>,
}

struct Waiter {
    hold_until: Option<Instant>,
    reply: oneshot::Sender<Decision>,
}

enum Command {
    Request {
        shard_id: u32,
        hold_until: Option<Instant>,
        reply: oneshot::Sender<Decision>,
    },
    Observe(BudgetSnapshot),
}

struct Bucket {
    limiter: BucketLimiter,
    /// Waiting requests by shard id (a newer request for a shard replaces the older one).
    waiting: BTreeMap<u32, Waiter>,
    next_allowed: Option<Instant>,
}

/// A handle to the permit scheduler task; cheap to clone. The task ends when
/// the last handle drops or its shutdown token fires.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use shardline_gateway::{IdentifyQueue, PermitScheduler, PermitSettings};
/// use tokio_util::sync::CancellationToken;
///
/// let scheduler = PermitScheduler::spawn(
///     PermitSettings::new(4, Duration::from_millis(50)),
///     None,
///     None,
///     CancellationToken::new(),
/// );
/// let permit = scheduler.acquire(6, 16).await.unwrap();
/// assert_eq!(permit.bucket, 2);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PermitScheduler {
    commands: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<PermitStatus>,
    max_concurrency: u32,
    margin: Duration,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Request { shard_id, .. } => write!(f, "Request({shard_id})"),
            Self::Observe(snapshot) => write!(f, "Observe({snapshot:?})"),
        }
    }
}

impl PermitScheduler {
    /// Starts the scheduler task.
    ///
    /// `budget`: the session budget to honour (`None`: unlimited). `fence`: a
    /// deadline past which no permit may go out (the leadership lease's
    /// validity; `None`: always allowed). The task stops at `shutdown`; waiting
    /// requests then fail.
    pub fn spawn(
        settings: PermitSettings,
        budget: Option<SessionBudget>,
        fence: Option<watch::Receiver<Instant>>,
        shutdown: CancellationToken,
    ) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(PermitStatus::default());
        let max_concurrency = settings.max_concurrency.max(1);
        let margin = settings.margin;
        let actor = SchedulerTask::new(settings, budget, fence, status_tx);
        tokio::spawn(actor.run(receiver, shutdown));
        Self {
            commands,
            status,
            max_concurrency,
            margin,
        }
    }

    /// The number of buckets.
    pub fn max_concurrency(&self) -> u32 {
        self.max_concurrency
    }

    /// The longest a permit may travel before it must not be used.
    pub fn margin(&self) -> Duration {
        self.margin
    }

    /// Asks for a permit for `shard_id`. With `hold`, the request gives up
    /// after that long with [`Decision::Wait`] (the NATS service uses this so
    /// remote requests never outlive their timeout); without, it waits until granted.
    pub async fn request(
        &self,
        shard_id: u32,
        hold: Option<Duration>,
    ) -> Result<Decision, QueueError> {
        let (reply, answer) = oneshot::channel();
        let hold_until = hold.map(|hold| Instant::now() + hold);
        self.commands
            .send(Command::Request {
                shard_id,
                hold_until,
                reply,
            })
            .map_err(|_| QueueError::Closed)?;
        answer.await.map_err(|_| QueueError::Closed)
    }

    /// Takes a fresh `session_start_limit` into account.
    pub fn observe_budget(&self, snapshot: BudgetSnapshot) {
        // A closed scheduler has no budget to update.
        let _ = self.commands.send(Command::Observe(snapshot));
    }

    /// The scheduler's status, updated as it changes.
    pub fn status(&self) -> watch::Receiver<PermitStatus> {
        self.status.clone()
    }

    /// `true` once the scheduler task has ended.
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }
}

impl IdentifyQueue for PermitScheduler {
    fn acquire(&self, shard_id: u32, _shard_count: u32) -> PermitFuture<'_> {
        Box::pin(async move {
            loop {
                // In process a permit reaches its shard by a direct wake-up;
                // the margin in the spacing covers that delay.
                match self.request(shard_id, None).await? {
                    Decision::Granted { permit, .. } => return Ok(permit),
                    Decision::Wait(_) => {}
                }
            }
        })
    }
}

struct SchedulerTask {
    buckets: Vec<Bucket>,
    budget: Option<SessionBudget>,
    fence: Option<watch::Receiver<Instant>>,
    status: watch::Sender<PermitStatus>,
    granted: u64,
    /// The reset the "budget exhausted" warning was logged for.
    warned_for_reset: Option<Instant>,
    clock: TokioClock,
}

impl SchedulerTask {
    fn new(
        settings: PermitSettings,
        budget: Option<SessionBudget>,
        fence: Option<watch::Receiver<Instant>>,
        status: watch::Sender<PermitStatus>,
    ) -> Self {
        let spacing = (settings.window + settings.margin).max(Duration::from_millis(1));
        let quota = Quota::with_period(spacing)
            .expect("the spacing is at least 1 ms")
            .allow_burst(NonZeroU32::MIN);
        let clock = TokioClock;
        let buckets = (0..settings.max_concurrency.max(1))
            .map(|_| {
                let limiter = RateLimiter::direct_with_clock(quota, clock);
                if settings.wait_first_window {
                    // Spend the burst now: the first permit comes one window later.
                    let _ = limiter.check();
                }
                Bucket {
                    limiter,
                    waiting: BTreeMap::new(),
                    next_allowed: None,
                }
            })
            .collect();
        Self {
            buckets,
            budget,
            fence,
            status,
            granted: 0,
            warned_for_reset: None,
            clock,
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        shutdown: CancellationToken,
    ) {
        loop {
            let now = Instant::now();
            self.expire_holds(now);
            self.grant_ready(now);
            self.publish_status(now);
            let wake = self.next_wake();
            let mut fence = self.fence.clone();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => {
                        self.handle(command);
                        // Take every request that is already here, so a burst
                        // is served in bucket order, not arrival order.
                        while let Ok(command) = commands.try_recv() {
                            self.handle(command);
                        }
                    }
                    None => break,
                },
                () = sleep_until_some(wake) => {}
                () = fence_changed(fence.as_mut()) => {}
                () = shutdown.cancelled() => break,
            }
        }
        tracing::debug!(granted = self.granted, "permit scheduler stopped");
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Request {
                shard_id,
                hold_until,
                reply,
            } => {
                let bucket = (shard_id as usize) % self.buckets.len();
                // A newer request for the same shard replaces the older one.
                self.buckets[bucket]
                    .waiting
                    .insert(shard_id, Waiter { hold_until, reply });
            }
            Command::Observe(snapshot) => {
                let now = Instant::now();
                match self.budget.as_mut() {
                    Some(budget) => budget.observe(snapshot, now),
                    None => {
                        tracing::debug!("no budget tracked; snapshot ignored");
                    }
                }
            }
        }
    }

    fn expire_holds(&mut self, now: Instant) {
        let reason = self.wait_reason(now);
        for bucket in &mut self.buckets {
            let expired: Vec<u32> = bucket
                .waiting
                .iter()
                .filter(|(_, waiter)| {
                    waiter.reply.is_closed() || waiter.hold_until.is_some_and(|until| until <= now)
                })
                .map(|(shard, _)| *shard)
                .collect();
            for shard in expired {
                if let Some(waiter) = bucket.waiting.remove(&shard) {
                    // The requester may be gone already; then nobody needs the answer.
                    let _ = waiter.reply.send(Decision::Wait(reason.clone()));
                }
            }
        }
    }

    fn wait_reason(&mut self, now: Instant) -> WaitReason {
        match self.budget.as_mut().map(|budget| budget.check(now)) {
            Some(Err(exhausted)) => exhausted.into(),
            _ => WaitReason::Queued,
        }
    }

    fn fenced(&self, now: Instant) -> bool {
        self.fence
            .as_ref()
            .is_some_and(|fence| *fence.borrow() <= now)
    }

    fn grant_ready(&mut self, now: Instant) {
        for bucket in &mut self.buckets {
            bucket.next_allowed = None;
        }
        if self.fenced(now) {
            return;
        }
        for index in 0..self.buckets.len() {
            loop {
                // Skip requesters that went away: a permit nobody receives is wasted.
                while let Some(entry) = self.buckets[index].waiting.first_entry() {
                    if entry.get().reply.is_closed() {
                        entry.remove();
                    } else {
                        break;
                    }
                }
                if self.buckets[index].waiting.is_empty() {
                    self.buckets[index].next_allowed = None;
                    break;
                }
                if let Some(budget) = self.budget.as_mut()
                    && let Err(exhausted) = budget.check(now)
                {
                    let reset_at = budget.reset_at();
                    self.note_exhausted(exhausted, reset_at);
                    return;
                }
                let bucket = &mut self.buckets[index];
                match bucket.limiter.check() {
                    Ok(()) => {
                        let Some((shard_id, waiter)) = bucket.waiting.pop_first() else {
                            break;
                        };
                        if let Some(budget) = self.budget.as_mut() {
                            // Checked just above, on the same instant.
                            let _ = budget.try_spend(now);
                        }
                        self.granted += 1;
                        let bucket_id = u32::try_from(index).unwrap_or(u32::MAX);
                        metrics::counter!("shardline_identify_permits_granted_total").increment(1);
                        tracing::debug!(
                            shard = shard_id,
                            bucket = bucket_id,
                            "identify permit granted"
                        );
                        let permit = IdentifyPermit {
                            shard_id,
                            bucket: bucket_id,
                        };
                        let decision = Decision::Granted {
                            permit,
                            granted_at: now,
                        };
                        if waiter.reply.send(decision).is_err() {
                            // Safe: the window counts from this grant either way.
                            tracing::debug!(
                                shard = shard_id,
                                "permit granted to a requester that left"
                            );
                        }
                    }
                    Err(not_until) => {
                        let wait = not_until.wait_time_from(self.clock.now());
                        bucket.next_allowed = Some(now + wait);
                        break;
                    }
                }
            }
        }
        if self.warned_for_reset.take().is_some() {
            tracing::info!("session start budget reset; identifies continue");
            metrics::gauge!("shardline_identify_budget_exhausted").set(0.0);
        }
    }

    fn note_exhausted(&mut self, exhausted: BudgetExhausted, reset_at: Instant) {
        if self.warned_for_reset != Some(reset_at) {
            self.warned_for_reset = Some(reset_at);
            tracing::warn!(
                remaining = exhausted.remaining,
                reserve = exhausted.reserve,
                resets_in = ?exhausted.resets_in,
                resets_at = %format_unix_ms(unix_ms_in(exhausted.resets_in)),
                "session start budget at its reserve: no identify permits until the reset"
            );
            metrics::gauge!("shardline_identify_budget_exhausted").set(1.0);
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut consider = |at: Instant| {
            wake = Some(wake.map_or(at, |current| current.min(at)));
        };
        let mut any_waiting = false;
        for bucket in &self.buckets {
            if bucket.waiting.is_empty() {
                continue;
            }
            any_waiting = true;
            if let Some(at) = bucket.next_allowed {
                consider(at);
            }
            for waiter in bucket.waiting.values() {
                if let Some(until) = waiter.hold_until {
                    consider(until);
                }
            }
        }
        if any_waiting {
            if let Some(budget) = &self.budget {
                consider(budget.reset_at());
            }
            if let Some(fence) = &self.fence {
                // Fenced: the lease task moves the fence on renewal; poll now and then too.
                consider((*fence.borrow()).max(Instant::now()) + Duration::from_millis(100));
            }
        }
        wake
    }

    fn publish_status(&mut self, now: Instant) {
        let waiting = self
            .buckets
            .iter()
            .map(|bucket| bucket.waiting.len() as u64)
            .sum();
        let fenced = self.fenced(now);
        let budget = self.budget.as_mut().map(|budget| {
            let exhausted = budget.check(now).is_err();
            BudgetStatus {
                total: budget.total(),
                remaining: budget.remaining(),
                reserve: budget.reserve(),
                resets_at_unix_ms: unix_ms_in(budget.reset_at().saturating_duration_since(now)),
                exhausted,
            }
        });
        let paused_reason = match &budget {
            Some(status) if status.exhausted => Some(format!(
                "session start budget at its reserve ({} left, reserve {}); identifies resume at {}",
                status.remaining,
                status.reserve,
                format_unix_ms(status.resets_at_unix_ms)
            )),
            _ if fenced => Some("leadership lease not confirmed; permits paused".to_owned()),
            _ => None,
        };
        if let Some(budget) = &budget {
            metrics::gauge!("shardline_identify_budget_remaining").set(f64::from(budget.remaining));
        }
        metrics::gauge!("shardline_identify_waiting").set(waiting as f64);
        let status = PermitStatus {
            granted: self.granted,
            waiting,
            budget,
            paused_reason,
        };
        self.status.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
        });
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn fence_changed(fence: Option<&mut watch::Receiver<Instant>>) {
    match fence {
        Some(fence) => {
            if fence.changed().await.is_err() {
                // The lease task ended: the fence stays where it is.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Unix milliseconds `from_now` in the future.
pub(crate) fn unix_ms_in(from_now: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    millis(now + from_now)
}

/// An RFC 3339 rendering of Unix milliseconds.
pub(crate) fn format_unix_ms(unix_ms: u64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{unix_ms} ms after the Unix epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Settings without the margin, so grant times are exact multiples of the window.
    fn exact(max_concurrency: u32, window: Duration) -> PermitSettings {
        PermitSettings {
            margin: Duration::ZERO,
            ..PermitSettings::new(max_concurrency, window)
        }
    }

    fn grants_respect_windows(grants: &[(u32, Duration)], buckets: u32, window: Duration) {
        for bucket in 0..buckets {
            let mut times: Vec<Duration> = grants
                .iter()
                .filter(|(b, _)| *b == bucket)
                .map(|(_, at)| *at)
                .collect();
            times.sort();
            for pair in times.windows(2) {
                assert!(pair[1] - pair[0] >= window, "bucket {bucket}: {times:?}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn grants_in_bucket_order_one_per_window() {
        let window = Duration::from_secs(5);
        let scheduler = Arc::new(PermitScheduler::spawn(
            exact(4, window),
            None,
            None,
            CancellationToken::new(),
        ));
        let start = Instant::now();
        let mut tasks = Vec::new();
        // A burst arrives in reverse order; permits still go out by shard id.
        for shard in (0..16u32).rev() {
            let scheduler = scheduler.clone();
            tasks.push(tokio::spawn(async move {
                let permit = scheduler.acquire(shard, 16).await.unwrap();
                (permit, start.elapsed())
            }));
        }
        let mut grants = Vec::new();
        for task in tasks {
            let (permit, at) = task.await.unwrap();
            assert_eq!(permit.bucket, permit.shard_id % 4);
            grants.push((permit.shard_id, at));
        }
        for (shard, at) in &grants {
            assert_eq!(*at, window * (shard / 4), "shard {shard}");
        }
        let buckets: Vec<(u32, Duration)> = grants.iter().map(|(s, t)| (s % 4, *t)).collect();
        grants_respect_windows(&buckets, 4, window);
    }

    #[tokio::test(start_paused = true)]
    async fn the_margin_spaces_permits_further() {
        let mut settings = PermitSettings::new(1, Duration::from_secs(5));
        assert_eq!(settings.margin, Duration::from_millis(100));
        settings.margin = Duration::from_millis(250);
        let scheduler = PermitScheduler::spawn(settings, None, None, CancellationToken::new());
        let start = Instant::now();
        scheduler.acquire(0, 1).await.unwrap();
        scheduler.acquire(1, 1).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(5_250));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_leader_waits_one_window() {
        let window = Duration::from_millis(200);
        let mut settings = exact(2, window);
        settings.wait_first_window = true;
        let scheduler = PermitScheduler::spawn(settings, None, None, CancellationToken::new());
        let start = Instant::now();
        scheduler.acquire(0, 2).await.unwrap();
        assert_eq!(start.elapsed(), window);
    }

    #[tokio::test(start_paused = true)]
    async fn budget_20_reserve_5_grants_exactly_15_of_32() {
        let start = Instant::now();
        let budget = SessionBudget::new(
            BudgetSnapshot {
                total: 20,
                remaining: 20,
                reset_after: Duration::from_secs(60),
            },
            5,
            start,
        );
        let scheduler = Arc::new(PermitScheduler::spawn(
            exact(4, Duration::from_millis(200)),
            Some(budget),
            None,
            CancellationToken::new(),
        ));
        let granted = Arc::new(std::sync::atomic::AtomicU32::new(0));
        for shard in 0..32u32 {
            let scheduler = scheduler.clone();
            let granted = granted.clone();
            tokio::spawn(async move {
                scheduler.acquire(shard, 32).await.unwrap();
                granted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(granted.load(std::sync::atomic::Ordering::SeqCst), 15);
        let status = scheduler.status().borrow().clone();
        let budget = status.budget.clone().unwrap();
        assert!(budget.exhausted);
        assert_eq!(budget.remaining, 5);
        assert_eq!(status.waiting, 17);
        let reason = status.paused_reason.unwrap();
        assert!(
            reason.contains("reserve") && reason.contains("resume at"),
            "{reason}"
        );
        // After the reset, 15 more (the budget is 20 again, the reserve still 5).
        tokio::time::sleep(Duration::from_secs(40)).await;
        assert_eq!(granted.load(std::sync::atomic::Ordering::SeqCst), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn held_requests_get_an_answer_in_time() {
        let scheduler = PermitScheduler::spawn(
            exact(1, Duration::from_secs(5)),
            None,
            None,
            CancellationToken::new(),
        );
        let first = scheduler
            .request(0, Some(Duration::from_secs(1)))
            .await
            .unwrap();
        assert!(matches!(first, Decision::Granted { .. }));
        let start = Instant::now();
        let second = scheduler
            .request(1, Some(Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(second, Decision::Wait(WaitReason::Queued));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        // The expired request did not take the slot: the next ask gets it on time.
        let third = scheduler
            .request(1, Some(Duration::from_secs(10)))
            .await
            .unwrap();
        assert!(matches!(third, Decision::Granted { .. }));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn no_permit_past_the_fence() {
        let (fence_tx, fence) = watch::channel(Instant::now() + Duration::from_secs(1));
        let scheduler = PermitScheduler::spawn(
            exact(1, Duration::from_millis(100)),
            None,
            Some(fence),
            CancellationToken::new(),
        );
        let start = Instant::now();
        scheduler.acquire(0, 1).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pending = tokio::spawn({
            let scheduler = scheduler.clone();
            async move { scheduler.acquire(1, 1).await }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!pending.is_finished(), "granted while fenced");
        fence_tx
            .send(Instant::now() + Duration::from_secs(10))
            .unwrap();
        pending.await.unwrap().unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    proptest::proptest! {
        /// Random arrival orders, hold times and budgets: no bucket ever gets two
        /// permits inside one window, and the budget never goes below its reserve.
        #[test]
        fn windows_and_budget_hold_for_any_request_order(
            max_concurrency in 1u32..5,
            window_ms in 1u64..2_000,
            total in 1u32..40,
            reserve in 0u32..8,
            requests in proptest::collection::vec((0u32..48, 0u64..6_000, proptest::option::of(1u64..3_000)), 1..48),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            runtime.block_on(async move {
                let window = Duration::from_millis(window_ms);
                let start = Instant::now();
                let budget = SessionBudget::new(
                    BudgetSnapshot { total, remaining: total, reset_after: Duration::from_secs(3600) },
                    reserve,
                    start,
                );
                let scheduler = Arc::new(PermitScheduler::spawn(
                    PermitSettings::new(max_concurrency, window),
                    Some(budget),
                    None,
                    CancellationToken::new(),
                ));
                let grants = Arc::new(std::sync::Mutex::new(Vec::new()));
                for (shard, delay, hold) in requests {
                    let scheduler = scheduler.clone();
                    let grants = grants.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                        let decision = scheduler
                            .request(shard, hold.map(Duration::from_millis))
                            .await;
                        if let Ok(Decision::Granted { permit, .. }) = decision {
                            assert_eq!(permit.bucket, permit.shard_id % max_concurrency);
                            grants.lock().unwrap().push((permit.bucket, start.elapsed()));
                        }
                    });
                }
                // Everything that can be granted is, well before the budget resets.
                tokio::time::sleep(Duration::from_secs(600)).await;
                let grants = grants.lock().unwrap().clone();
                grants_respect_windows(&grants, max_concurrency, window);
                assert!(grants.len() as u32 <= total.saturating_sub(reserve));
            });
        }
    }
}
