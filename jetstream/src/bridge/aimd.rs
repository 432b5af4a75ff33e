//! AIMD concurrency: a limit on calls in flight that halves on throttling
//! and grows by about one per round of successes.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

/// Successive throttles within this window count as one congestion signal,
/// so a burst of 429s from calls that were already in flight halves the
/// limit once, not once per call.
const DECREASE_WINDOW: Duration = Duration::from_millis(200);

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    last_decrease: Option<Instant>,
}

/// An adaptive limit on concurrent calls (a semaphore whose size moves).
#[derive(Debug)]
pub(crate) struct Aimd {
    state: Mutex<State>,
    changed: Notify,
    min: usize,
    max: usize,
}

/// One call slot; released on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    aimd: Arc<Aimd>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut state = self.aimd.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
        }
        self.aimd.changed.notify_waiters();
    }
}

impl Aimd {
    /// Starts at the maximum.
    pub(crate) fn new(min: usize, max: usize) -> Arc<Self> {
        let max = max.max(1);
        Arc::new(Self {
            state: Mutex::new(State {
                limit: max as f64,
                in_flight: 0,
                last_decrease: None,
            }),
            changed: Notify::new(),
            min: min.clamp(1, max),
            max,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain numbers behind; go on.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a free slot.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.lock();
                if state.in_flight < state.limit.floor() as usize {
                    state.in_flight += 1;
                    return Permit { aimd: self.clone() };
                }
            }
            changed.await;
        }
    }

    /// A call succeeded (or failed for a reason other than throttling).
    pub(crate) fn on_success(&self) {
        let grew = {
            let mut state = self.lock();
            let before = state.limit.floor();
            state.limit = (state.limit + 1.0 / state.limit).min(self.max as f64);
            state.limit.floor() > before
        };
        if grew {
            self.changed.notify_waiters();
        }
    }

    /// The target throttled a call: halve the limit (once per window).
    pub(crate) fn on_throttle(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        if state
            .last_decrease
            .is_some_and(|at| now.duration_since(at) < DECREASE_WINDOW)
        {
            return;
        }
        state.last_decrease = Some(now);
        state.limit = (state.limit / 2.0).max(self.min as f64);
    }

    /// The current limit (whole calls).
    pub(crate) fn limit(&self) -> usize {
        self.lock().limit.floor() as usize
    }

    /// Calls in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn halves_on_throttle_and_grows_back() {
        let aimd = Aimd::new(1, 16);
        assert_eq!(aimd.limit(), 16);
        aimd.on_throttle();
        // A second throttle in the same window does not halve again.
        aimd.on_throttle();
        assert_eq!(aimd.limit(), 8);
        tokio::time::advance(DECREASE_WINDOW).await;
        aimd.on_throttle();
        assert_eq!(aimd.limit(), 4);
        for _ in 0..5 {
            tokio::time::advance(DECREASE_WINDOW).await;
            aimd.on_throttle();
        }
        assert_eq!(aimd.limit(), 1, "never under the minimum");
        // Additive increase: about one per `limit` successes.
        let mut successes = 0;
        while aimd.limit() < 16 {
            aimd.on_success();
            successes += 1;
        }
        assert!((100..200).contains(&successes), "{successes}");
        for _ in 0..100 {
            aimd.on_success();
        }
        assert_eq!(aimd.limit(), 16, "never over the maximum");
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_waits_for_a_slot() {
        let aimd = Aimd::new(1, 2);
        let a = aimd.acquire().await;
        let _b = aimd.acquire().await;
        assert_eq!(aimd.in_flight(), 2);
        let waiter = tokio::spawn({
            let aimd = aimd.clone();
            async move { aimd.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        drop(a);
        let _c = waiter.await.unwrap();
        assert_eq!(aimd.in_flight(), 2);
        // A lowered limit holds new calls back until in-flight ones finish.
        aimd.on_throttle();
        assert_eq!(aimd.limit(), 1);
        let blocked = tokio::time::timeout(Duration::from_millis(50), aimd.acquire()).await;
        assert!(blocked.is_err());
    }
}
