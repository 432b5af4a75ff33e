//! Retry decisions: exponential backoff with jitter, within the route's
//! attempt and age limits and Discord's interaction deadline.

use std::time::Duration;

use crate::RetryConfig;

/// Discord wants the first answer to an interaction within 3 s; a retry
/// that would land later is useless, so it is dead-lettered instead.
pub const INTERACTION_DEADLINE: Duration = Duration::from_secs(3);

/// What to do with a failed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this delay.
    Retry(Duration),
    /// Give up, for this reason.
    GiveUp(String),
}

/// The facts about one failed event that a decision needs.
#[derive(Debug, Clone, Copy)]
pub struct FailedEvent<'a> {
    /// Attempts made so far (the failed one included).
    pub attempts: u32,
    /// Time since the event was stored.
    pub age: Duration,
    /// Time since the gateway received it (for the interaction deadline).
    pub since_received: Duration,
    /// The event name.
    pub event: &'a str,
    /// What went wrong.
    pub reason: &'a str,
    /// The delay the target asked for, if any.
    pub retry_after: Option<Duration>,
}

/// The backoff before attempt `attempts + 1`: `initial * 2^(attempts-1)`,
/// capped at `max`, then jittered into its upper half with `jitter` in `[0, 1)`.
///
/// ```
/// use std::time::Duration;
/// use shardline_jetstream::bridge::backoff;
/// let s = Duration::from_secs;
/// assert_eq!(backoff(1, s(1), s(60), 0.0), Duration::from_millis(500));
/// assert_eq!(backoff(3, s(1), s(60), 0.5), s(3));
/// assert_eq!(backoff(30, s(1), s(60), 0.0), s(30));
/// ```
pub fn backoff(attempts: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1u32 << exponent).min(max);
    let half = base / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// Decides between a retry and giving up.
///
/// ```
/// use std::time::Duration;
/// use shardline_jetstream::RetryConfig;
/// use shardline_jetstream::bridge::{decide, Decision, FailedEvent};
/// let config = RetryConfig { max_attempts: 3, ..Default::default() };
/// let failed = FailedEvent { attempts: 3, age: Duration::ZERO, since_received: Duration::ZERO,
///     event: "MESSAGE_CREATE", reason: "HTTP 500", retry_after: None };
/// assert!(matches!(decide(&config, &failed, 0.5), Decision::GiveUp(_)));
/// ```
pub fn decide(config: &RetryConfig, failed: &FailedEvent<'_>, jitter: f64) -> Decision {
    if failed.attempts >= config.max_attempts {
        return Decision::GiveUp(format!(
            "gave up after {} attempts: {}",
            failed.attempts, failed.reason
        ));
    }
    let mut delay = backoff(
        failed.attempts,
        config.initial_backoff,
        config.max_backoff,
        jitter,
    );
    if let Some(asked) = failed.retry_after {
        delay = delay.max(asked);
    }
    if failed.age + delay > config.max_event_age {
        return Decision::GiveUp(format!(
            "event older than max_event_age ({}) by the next attempt: {}",
            humantime::format_duration(config.max_event_age),
            failed.reason
        ));
    }
    if failed.event == "INTERACTION_CREATE" && failed.since_received + delay > INTERACTION_DEADLINE
    {
        return Decision::GiveUp(format!(
            "INTERACTION_CREATE not retried past Discord's 3 s response deadline: {}",
            failed.reason
        ));
    }
    Decision::Retry(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(attempts: u32) -> FailedEvent<'static> {
        FailedEvent {
            attempts,
            age: Duration::ZERO,
            since_received: Duration::ZERO,
            event: "MESSAGE_CREATE",
            reason: "HTTP 500",
            retry_after: None,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_in_upper_half() {
        let config = RetryConfig::default();
        for attempts in 1..8 {
            let full = config.initial_backoff * (1 << (attempts - 1));
            let low = backoff(attempts, config.initial_backoff, config.max_backoff, 0.0);
            let high = backoff(attempts, config.initial_backoff, config.max_backoff, 0.999);
            assert_eq!(low, full / 2);
            assert!(high < full && high > low);
        }
        assert_eq!(
            backoff(40, config.initial_backoff, config.max_backoff, 0.0),
            config.max_backoff / 2
        );
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let config = RetryConfig::default();
        let mut event = failed(1);
        event.retry_after = Some(Duration::from_secs(7));
        assert_eq!(
            decide(&config, &event, 0.0),
            Decision::Retry(Duration::from_secs(7))
        );
    }

    #[test]
    fn limits_give_up_with_reasons() {
        let config = RetryConfig {
            max_attempts: 5,
            max_event_age: Duration::from_secs(60),
            ..Default::default()
        };
        assert!(matches!(
            decide(&config, &failed(4), 0.0),
            Decision::Retry(_)
        ));
        let Decision::GiveUp(reason) = decide(&config, &failed(5), 0.0) else {
            panic!()
        };
        assert!(
            reason.contains("5 attempts") && reason.contains("HTTP 500"),
            "{reason}"
        );
        let mut old = failed(1);
        old.age = Duration::from_secs(60);
        let Decision::GiveUp(reason) = decide(&config, &old, 0.0) else {
            panic!()
        };
        assert!(reason.contains("max_event_age"), "{reason}");
    }

    #[test]
    fn interactions_stop_at_three_seconds() {
        let config = RetryConfig {
            initial_backoff: Duration::from_millis(200),
            ..Default::default()
        };
        let mut event = failed(1);
        event.event = "INTERACTION_CREATE";
        event.since_received = Duration::from_millis(500);
        assert!(matches!(decide(&config, &event, 0.0), Decision::Retry(_)));
        event.since_received = Duration::from_millis(2950);
        let Decision::GiveUp(reason) = decide(&config, &event, 0.0) else {
            panic!()
        };
        assert!(reason.contains("3 s"), "{reason}");
    }
}
