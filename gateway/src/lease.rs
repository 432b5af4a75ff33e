//! Leases in NATS KV: the coordinator's leadership and the workers' registrations.
//!
//! A lease is a key whose holder rewrites it (compare-and-set on the key's
//! revision) every third of its TTL. Nobody compares wall clocks: an observer
//! considers a lease lapsed when the key's revision has not changed for one TTL
//! *on the observer's own monotonic clock*, counted from when it first saw that
//! revision. The holder, in turn, considers itself the holder only until one
//! TTL after it *sent* its last successful write. The write lies between the two
//! instants, so the holder always gives up before any observer takes over.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a lease operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// NATS could not be asked.
    #[error("lease {key}: {message}")]
    Store {
        /// The lease key.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// Stopped before the lease was acquired.
    #[error("stopped before acquiring lease {key}")]
    Cancelled {
        /// The lease key.
        key: String,
    },
}

/// The value of a lease key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Who holds the lease.
    pub holder: String,
    /// The lease's time to live in milliseconds.
    pub ttl_ms: u64,
    /// When the holder acquired it (Unix milliseconds, informational).
    pub since_unix_ms: u64,
}

/// Tracks when each key's revision last changed, on the local monotonic clock.
#[derive(Debug, Default, Clone)]
pub struct RevisionAges {
    seen: HashMap<String, (u64, Instant)>,
}

impl RevisionAges {
    /// Records that `key` was seen at `revision` at `now`.
    pub fn observe(&mut self, key: &str, revision: u64, now: Instant) {
        match self.seen.get_mut(key) {
            Some((seen, _)) if *seen == revision => {}
            Some(entry) => *entry = (revision, now),
            None => {
                self.seen.insert(key.to_owned(), (revision, now));
            }
        }
    }

    /// `true` when `key` has kept the same revision for `ttl`.
    pub fn lapsed(&self, key: &str, ttl: Duration, now: Instant) -> bool {
        self.seen
            .get(key)
            .is_some_and(|(_, since)| now.saturating_duration_since(*since) >= ttl)
    }

    /// Forgets `key`.
    pub fn forget(&mut self, key: &str) {
        self.seen.remove(key);
    }
}

/// Contends for a leadership lease held in one KV key.
///
/// ```no_run
/// # async fn demo(store: async_nats::jetstream::kv::Store) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use shardline_gateway::LeaderLease;
/// use tokio_util::sync::CancellationToken;
/// let lease = LeaderLease::new(store, "leader", "coordinator-a", Duration::from_secs(10));
/// let leadership = lease.campaign(&CancellationToken::new()).await?;
/// leadership.lost().cancelled().await; // lead until the lease is lost
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LeaderLease {
    store: kv::Store,
    key: String,
    holder: String,
    ttl: Duration,
}

impl LeaderLease {
    /// A lease on `key` in `store`, for `holder`, lasting `ttl` unless renewed.
    pub fn new(
        store: kv::Store,
        key: impl Into<String>,
        holder: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            store,
            key: key.into(),
            holder: holder.into(),
            ttl: ttl.max(Duration::from_millis(30)),
        }
    }

    /// The lease's time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn record(&self) -> bytes::Bytes {
        let record = LeaseRecord {
            holder: self.holder.clone(),
            ttl_ms: crate::coordinator::permits::millis(self.ttl),
            since_unix_ms: unix_ms_now(),
        };
        serde_json::to_vec(&record)
            .expect("lease records serialise")
            .into()
    }

    /// Waits until this holder has the lease, then keeps renewing it in the
    /// background. Returns early with [`LeaseError::Cancelled`] at `shutdown`.
    pub async fn campaign(&self, shutdown: &CancellationToken) -> Result<Leadership, LeaseError> {
        let mut ages = RevisionAges::default();
        let poll = (self.ttl / 4).max(Duration::from_millis(10));
        let mut said_standby = false;
        loop {
            let sent_at = Instant::now();
            match self.store.entry(self.key.clone()).await {
                Ok(entry) => {
                    let live = entry.filter(|entry| entry.operation == kv::Operation::Put);
                    match live {
                        None => match self.store.create(&self.key, self.record()).await {
                            Ok(revision) => return Ok(self.lead(revision, sent_at)),
                            Err(error) => {
                                tracing::debug!(%error, key = self.key, "lease taken by another contender");
                            }
                        },
                        Some(entry) => {
                            let now = Instant::now();
                            ages.observe(&self.key, entry.revision, now);
                            let theirs = serde_json::from_slice::<LeaseRecord>(&entry.value).ok();
                            let ttl = theirs
                                .as_ref()
                                .map_or(self.ttl, |record| Duration::from_millis(record.ttl_ms));
                            if !said_standby {
                                said_standby = true;
                                tracing::info!(
                                    key = self.key,
                                    holder = theirs.as_ref().map_or("?", |r| r.holder.as_str()),
                                    "lease held by another process; standing by"
                                );
                            }
                            if ages.lapsed(&self.key, ttl, now) {
                                let sent_at = Instant::now();
                                match self
                                    .store
                                    .update(&self.key, self.record(), entry.revision)
                                    .await
                                {
                                    Ok(revision) => {
                                        tracing::warn!(
                                            key = self.key,
                                            previous =
                                                theirs.as_ref().map_or("?", |r| r.holder.as_str()),
                                            "previous lease holder lapsed; taking over"
                                        );
                                        return Ok(self.lead(revision, sent_at));
                                    }
                                    Err(error) => {
                                        tracing::debug!(%error, key = self.key, "lease takeover lost a race");
                                    }
                                }
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, key = self.key, "reading the lease failed");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = shutdown.cancelled() => {
                    return Err(LeaseError::Cancelled { key: self.key.clone() });
                }
            }
        }
    }

    fn lead(&self, revision: u64, sent_at: Instant) -> Leadership {
        let (valid_tx, valid_until) = watch::channel(sent_at + self.ttl);
        let lost = CancellationToken::new();
        let release = CancellationToken::new();
        tracing::info!(key = self.key, holder = self.holder, "lease acquired");
        let renewal = tokio::spawn(renew(
            self.clone(),
            revision,
            valid_tx,
            lost.clone(),
            release.clone(),
        ));
        Leadership {
            valid_until,
            lost,
            release,
            renewal: Some(renewal),
        }
    }
}

async fn renew(
    lease: LeaderLease,
    mut revision: u64,
    valid_until: watch::Sender<Instant>,
    lost: CancellationToken,
    release: CancellationToken,
) {
    let every = (lease.ttl / 3).max(Duration::from_millis(10));
    loop {
        let deadline = *valid_until.borrow();
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(key = lease.key, "lease not renewed in time; giving up leadership");
                lost.cancel();
                return;
            }
            () = release.cancelled() => {
                // Fence first, then let the standbys in at once.
                valid_until.send_replace(Instant::now());
                lost.cancel();
                if let Err(error) = lease.store.delete_expect_revision(&lease.key, Some(revision)).await {
                    tracing::debug!(%error, key = lease.key, "releasing the lease failed; it will lapse");
                }
                return;
            }
        }
        let sent_at = Instant::now();
        match lease
            .store
            .update(&lease.key, lease.record(), revision)
            .await
        {
            Ok(next) => {
                revision = next;
                valid_until.send_replace(sent_at + lease.ttl);
            }
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                tracing::warn!(key = lease.key, "lease taken over by another process");
                valid_until.send_replace(Instant::now());
                lost.cancel();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, key = lease.key, "renewing the lease failed; retrying");
            }
        }
    }
}

/// Holding a leadership lease. Renewal runs in the background until the
/// lease is lost or [`Leadership::release`] is called.
#[derive(Debug)]
pub struct Leadership {
    valid_until: watch::Receiver<Instant>,
    lost: CancellationToken,
    release: CancellationToken,
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl Leadership {
    /// The instant until which this process may act as the holder; moves on
    /// with every renewal. Pass it to the permit scheduler as its fence.
    pub fn valid_until(&self) -> watch::Receiver<Instant> {
        self.valid_until.clone()
    }

    /// Cancelled when the lease is lost (taken over, not renewed in time or released).
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Gives the lease up now, so a standby can take over without waiting for
    /// it to lapse, and waits (up to 2 s) until the key is deleted.
    pub async fn release(mut self) {
        self.release.cancel();
        if let Some(renewal) = self.renewal.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), renewal).await;
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.release.cancel();
    }
}

pub(crate) fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(crate::coordinator::permits::millis)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn revision_ages_count_from_first_sight() {
        let mut ages = RevisionAges::default();
        let start = Instant::now();
        let ttl = Duration::from_secs(10);
        ages.observe("a", 1, start);
        ages.observe("a", 1, start + Duration::from_secs(9));
        assert!(!ages.lapsed("a", ttl, start + Duration::from_secs(9)));
        assert!(ages.lapsed("a", ttl, start + Duration::from_secs(10)));
        ages.observe("a", 2, start + Duration::from_secs(11));
        assert!(!ages.lapsed("a", ttl, start + Duration::from_secs(20)));
        assert!(!ages.lapsed("unknown", ttl, start + Duration::from_secs(100)));
    }
}
