//! The daily session budget (`session_start_limit`): how many IDENTIFYs the bot
//! may still send before Discord resets the count, and the reserve it never spends.
//!
//! Exhausting the budget terminates every session and resets the bot token, so
//! the coordinator stops granting permits when `remaining` reaches the reserve
//! and waits for the reset. RESUME does not count against the budget and needs
//! no permit.

use std::time::Duration;

use tokio::time::Instant;

/// How long Discord's budget period lasts when the coordinator has to guess
/// the next reset (after a reset passed and before `/gateway/bot` is fetched again).
pub const BUDGET_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// The reserve used when none is configured: `max(5, ceil(1 % of total))`.
///
/// Five identifies is enough to bring back a handful of shards by hand (or let
/// an operator run `ctl` checks) while the rest waits for the reset; for large
/// budgets (big bots get 2,000+ per day) one percent keeps the same margin in
/// proportion. The reserve is never more than the total.
///
/// ```
/// use shardline_gateway::default_reserve;
/// assert_eq!(default_reserve(1000), 10);
/// assert_eq!(default_reserve(100), 5);
/// assert_eq!(default_reserve(3), 3);
/// ```
pub fn default_reserve(total: u32) -> u32 {
    total.div_ceil(100).max(5).min(total)
}

/// `session_start_limit` as Discord reports it, observed at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSnapshot {
    /// Identifies allowed per period.
    pub total: u32,
    /// Identifies left in this period.
    pub remaining: u32,
    /// Time until `remaining` goes back to `total`.
    pub reset_after: Duration,
}

impl From<&twilight_model::gateway::SessionStartLimit> for BudgetSnapshot {
    fn from(limit: &twilight_model::gateway::SessionStartLimit) -> Self {
        Self {
            total: limit.total,
            remaining: limit.remaining,
            reset_after: Duration::from_millis(limit.reset_after),
        }
    }
}

/// Why the budget refused an identify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "session start budget at its reserve ({remaining} left, reserve {reserve}); resets in {resets_in:?}"
)]
pub struct BudgetExhausted {
    /// Identifies Discord still allows in this period.
    pub remaining: u32,
    /// The part of them shardline never spends.
    pub reserve: u32,
    /// Time until the reset.
    pub resets_in: Duration,
}

/// The session budget as the coordinator tracks it between fetches.
///
/// Every granted permit spends one identify. A fresh snapshot from
/// `/gateway/bot` never raises `remaining` within the same period (the
/// coordinator may have granted permits whose IDENTIFY Discord has not seen
/// yet); after a reset it takes Discord's figures.
///
/// ```
/// use std::time::Duration;
/// use shardline_gateway::{BudgetSnapshot, SessionBudget};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let now = tokio::time::Instant::now();
/// let snapshot = BudgetSnapshot { total: 20, remaining: 7, reset_after: Duration::from_secs(60) };
/// let mut budget = SessionBudget::new(snapshot, 5, now);
/// assert!(budget.try_spend(now).is_ok());
/// assert!(budget.try_spend(now).is_ok());
/// let refused = budget.try_spend(now).unwrap_err();
/// assert_eq!(refused.remaining, 5);
/// assert_eq!(refused.resets_in, Duration::from_secs(60));
/// // After the reset the budget is back to its total.
/// assert!(budget.try_spend(now + Duration::from_secs(60)).is_ok());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SessionBudget {
    total: u32,
    remaining: u32,
    reserve: u32,
    reset_at: Instant,
}

impl SessionBudget {
    /// A budget from a snapshot taken at `now`, never spending the last `reserve`.
    pub fn new(snapshot: BudgetSnapshot, reserve: u32, now: Instant) -> Self {
        Self {
            total: snapshot.total,
            remaining: snapshot.remaining.min(snapshot.total),
            reserve,
            reset_at: now + snapshot.reset_after,
        }
    }

    /// Takes a fresh snapshot into account.
    ///
    /// Within the current period `remaining` only goes down (permits granted
    /// here may not have reached Discord yet); a snapshot whose reset lies
    /// clearly later belongs to a new period and is taken as it is.
    pub fn observe(&mut self, snapshot: BudgetSnapshot, now: Instant) {
        self.roll_over(now);
        let reset_at = now + snapshot.reset_after;
        // A period is at least hours long; tolerate request latency.
        let slack = Duration::from_millis(500);
        if reset_at > self.reset_at + slack {
            self.remaining = snapshot.remaining;
        } else {
            self.remaining = self.remaining.min(snapshot.remaining);
        }
        self.total = snapshot.total;
        self.remaining = self.remaining.min(self.total);
        self.reset_at = reset_at;
    }

    /// Spends one identify, or says why not and for how long.
    pub fn try_spend(&mut self, now: Instant) -> Result<(), BudgetExhausted> {
        self.check(now)?;
        self.remaining -= 1;
        Ok(())
    }

    /// `Ok` when one more identify may be spent at `now`.
    pub fn check(&mut self, now: Instant) -> Result<(), BudgetExhausted> {
        self.roll_over(now);
        if self.remaining > self.reserve {
            Ok(())
        } else {
            Err(BudgetExhausted {
                remaining: self.remaining,
                reserve: self.reserve,
                resets_in: self.reset_at.saturating_duration_since(now),
            })
        }
    }

    /// Identifies left in this period (as far as the coordinator knows).
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Identifies per period.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// The identifies never spent.
    pub fn reserve(&self) -> u32 {
        self.reserve
    }

    /// When the budget resets.
    pub fn reset_at(&self) -> Instant {
        self.reset_at
    }

    fn roll_over(&mut self, now: Instant) {
        if now >= self.reset_at {
            self.remaining = self.total;
            // Until the next fetch says otherwise, assume a full period.
            while self.reset_at <= now {
                self.reset_at += BUDGET_PERIOD;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(total: u32, remaining: u32, reset_ms: u64) -> BudgetSnapshot {
        BudgetSnapshot {
            total,
            remaining,
            reset_after: Duration::from_millis(reset_ms),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_the_reserve_and_continues_after_reset() {
        let start = Instant::now();
        let mut budget = SessionBudget::new(snapshot(20, 20, 10_000), 5, start);
        let mut granted = 0;
        while budget.try_spend(start).is_ok() {
            granted += 1;
        }
        assert_eq!(granted, 15);
        let refused = budget.check(start + Duration::from_secs(4)).unwrap_err();
        assert_eq!(refused.resets_in, Duration::from_secs(6));
        assert_eq!(refused.remaining, 5);
        // One millisecond before the reset: still refused.
        assert!(budget.check(start + Duration::from_millis(9_999)).is_err());
        assert!(budget.try_spend(start + Duration::from_secs(10)).is_ok());
        assert_eq!(budget.remaining(), 19);
    }

    #[tokio::test(start_paused = true)]
    async fn a_snapshot_never_raises_remaining_within_the_period() {
        let start = Instant::now();
        let mut budget = SessionBudget::new(snapshot(1000, 100, 60_000), 10, start);
        for _ in 0..30 {
            budget.try_spend(start).unwrap();
        }
        // Discord has only seen 10 of the 30 identifies yet.
        budget.observe(snapshot(1000, 90, 59_000), start + Duration::from_secs(1));
        assert_eq!(budget.remaining(), 70);
        // Discord has seen more than we granted (another tool identified): follow it.
        budget.observe(snapshot(1000, 40, 58_000), start + Duration::from_secs(2));
        assert_eq!(budget.remaining(), 40);
        // A new period: take Discord's figures.
        budget.observe(
            snapshot(1000, 1000, 86_000_000),
            start + Duration::from_secs(61),
        );
        assert_eq!(budget.remaining(), 1000);
    }

    #[test]
    fn default_reserve_is_at_least_five_and_one_percent() {
        assert_eq!(default_reserve(20), 5);
        assert_eq!(default_reserve(1000), 10);
        assert_eq!(default_reserve(2000), 20);
        assert_eq!(default_reserve(1001), 11);
        assert_eq!(default_reserve(0), 0);
    }

    proptest::proptest! {
        /// Whatever the order of spends, snapshots and clock jumps, the budget
        /// never goes below its reserve, and a period never grants more than
        /// `total - reserve` identifies.
        #[test]
        fn never_below_the_reserve(
            total in 1u32..200,
            reserve in 0u32..20,
            ops in proptest::collection::vec((0u8..3, 0u64..3_000, 0u32..200), 1..200),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            runtime.block_on(async move {
                let start = Instant::now();
                let period = 10_000u64;
                let mut budget = SessionBudget::new(snapshot(total, total, period), reserve, start);
                let mut granted_in_period = 0u32;
                let mut period_end = start + Duration::from_millis(period);
                let mut now = start;
                for (op, advance, value) in ops {
                    now += Duration::from_millis(advance);
                    if now >= period_end {
                        granted_in_period = 0;
                        while period_end <= now {
                            period_end += BUDGET_PERIOD;
                        }
                    }
                    match op {
                        0 | 1 => {
                            if budget.try_spend(now).is_ok() {
                                granted_in_period += 1;
                                assert!(budget.remaining() >= reserve);
                            }
                        }
                        _ => {
                            // Discord reports at most what we know was left.
                            let remaining = value.min(budget.remaining());
                            budget.observe(
                                BudgetSnapshot {
                                    total,
                                    remaining,
                                    reset_after: period_end.saturating_duration_since(now),
                                },
                                now,
                            );
                        }
                    }
                    assert!(granted_in_period <= total.saturating_sub(reserve));
                }
            });
        }
    }
}
