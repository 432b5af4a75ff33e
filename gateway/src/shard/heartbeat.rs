//! Heartbeat timing and zombie detection for one connection.

use std::time::Duration;

use tokio::time::Instant;

/// What to do when the heartbeat deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Send a heartbeat now.
    Send,
    /// The previous beat was never acknowledged: the connection is a zombie.
    Zombie,
}

/// The heartbeat schedule: the first beat after `interval * jitter`, then one
/// every interval; a beat that finds the previous one unacknowledged means
/// the connection is dead.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    interval: Duration,
    next: Instant,
    awaiting_ack: bool,
    sent_at: Option<Instant>,
    /// Set while the shard could not read (back-pressure): a missing ACK
    /// then proves nothing.
    stalled: bool,
    latency: Option<Duration>,
}

impl Heartbeat {
    /// `jitter` is uniform in `[0, 1)`.
    pub(crate) fn new(interval: Duration, now: Instant, jitter: f64) -> Self {
        let jitter = jitter.clamp(0.0, 1.0);
        Self {
            interval,
            next: now + interval.mul_f64(jitter),
            awaiting_ack: false,
            sent_at: None,
            stalled: false,
            latency: None,
        }
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.next
    }

    pub(crate) fn on_deadline(&mut self, now: Instant) -> Beat {
        if self.awaiting_ack && !self.stalled {
            return Beat::Zombie;
        }
        self.awaiting_ack = true;
        self.stalled = false;
        self.sent_at = Some(now);
        self.next = now + self.interval;
        Beat::Send
    }

    pub(crate) fn on_ack(&mut self, now: Instant) {
        if self.awaiting_ack {
            self.latency = self.sent_at.map(|at| now.saturating_duration_since(at));
        }
        self.awaiting_ack = false;
    }

    pub(crate) fn stall(&mut self) {
        self.stalled = true;
    }

    pub(crate) fn latency(&self) -> Option<Duration> {
        self.latency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn first_beat_is_jittered_then_regular() {
        let start = Instant::now();
        let mut hb = Heartbeat::new(Duration::from_secs(40), start, 0.25);
        assert_eq!(hb.deadline() - start, Duration::from_secs(10));
        tokio::time::sleep_until(hb.deadline()).await;
        assert_eq!(hb.on_deadline(Instant::now()), Beat::Send);
        tokio::time::sleep(Duration::from_millis(30)).await;
        hb.on_ack(Instant::now());
        assert_eq!(hb.latency(), Some(Duration::from_millis(30)));
        assert_eq!(hb.deadline() - start, Duration::from_secs(50));
        tokio::time::sleep_until(hb.deadline()).await;
        assert_eq!(hb.on_deadline(Instant::now()), Beat::Send);
    }

    #[tokio::test(start_paused = true)]
    async fn no_ack_between_two_beats_is_a_zombie() {
        let mut hb = Heartbeat::new(Duration::from_secs(40), Instant::now(), 0.0);
        assert_eq!(hb.on_deadline(Instant::now()), Beat::Send);
        tokio::time::sleep_until(hb.deadline()).await;
        assert_eq!(hb.on_deadline(Instant::now()), Beat::Zombie);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_reader_is_not_a_zombie() {
        let mut hb = Heartbeat::new(Duration::from_secs(40), Instant::now(), 0.0);
        assert_eq!(hb.on_deadline(Instant::now()), Beat::Send);
        hb.stall();
        tokio::time::sleep_until(hb.deadline()).await;
        assert_eq!(hb.on_deadline(Instant::now()), Beat::Send);
        // Reading again without an ACK: the next beat finds the zombie.
        tokio::time::sleep_until(hb.deadline()).await;
        assert_eq!(hb.on_deadline(Instant::now()), Beat::Zombie);
    }
}
