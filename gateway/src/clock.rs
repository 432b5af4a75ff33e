//! A `governor` clock driven by tokio's time, so rate limits follow
//! `tokio::time::pause()` in tests.

use std::ops::Add;

use governor::clock::{Clock, Reference};
use governor::nanos::Nanos;

/// An instant on tokio's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(tokio::time::Instant);

impl TokioInstant {
    /// The tokio instant.
    pub fn into_inner(self) -> tokio::time::Instant {
        self.0
    }
}

impl Add<Nanos> for TokioInstant {
    type Output = Self;

    fn add(self, other: Nanos) -> Self {
        Self(self.0 + std::time::Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        Nanos::from(self.0.saturating_duration_since(earlier.0))
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        let duration = std::time::Duration::from(duration);
        Self(self.0.checked_sub(duration).unwrap_or(self.0))
    }
}

/// `governor`'s view of `tokio::time::Instant::now()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> Self::Instant {
        TokioInstant(tokio::time::Instant::now())
    }
}
