//! One shard's publish pipeline: publishes in order, awaits a bounded number
//! of acknowledgements concurrently, retries failed ones, advances the
//! committed seq strictly in order and stores the session (debounced).
//!
//! The shard hands over entries through a bounded channel; when the channel
//! is full the shard stops reading its WebSocket (back-pressure, not loss).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::publish::PublishAck;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument as _;

use crate::publish::{Dispatch, DispatchPublisher, PublishError};
use crate::session::{SessionStore, StoredSession};
use crate::shard::ShardStatus;

/// Where a session's identity comes from: READY (or the store at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionMeta {
    pub(crate) session_id: Arc<str>,
    pub(crate) resume_gateway_url: String,
    pub(crate) shard_count: u32,
}

/// What the shard hands to the pipeline, in the order it read it.
#[derive(Debug)]
pub(crate) enum Entry {
    /// Publish this dispatch.
    Dispatch(Box<Dispatch>),
    /// A filtered event: not published, but its seq counts as handled.
    Skip(u64),
    /// The session was invalidated: forget the stored one.
    Forget,
    /// A new session begins with this dispatch (READY).
    Ready(SessionMeta, Box<Entry>),
    /// Reply once everything before is acknowledged and the session stored.
    Flush(oneshot::Sender<()>),
}

/// Entries in the order the shard read them; each completes in any order,
/// and completed entries leave strictly from the front. This is what keeps
/// the committed seq from ever passing an unacknowledged publish.
#[derive(Debug)]
pub(crate) struct CommitWindow<E> {
    slots: VecDeque<Option<E>>,
    /// Index of `slots[0]`.
    front: u64,
}

impl<E> CommitWindow<E> {
    pub(crate) fn new() -> Self {
        Self {
            slots: VecDeque::new(),
            front: 0,
        }
    }

    /// Reserves the next position.
    pub(crate) fn push(&mut self) -> u64 {
        self.slots.push_back(None);
        self.front + self.slots.len() as u64 - 1
    }

    /// Completes position `index` and returns every effect that can now leave,
    /// in order.
    pub(crate) fn complete(&mut self, index: u64, effect: E) -> Vec<E> {
        if let Some(slot) = index
            .checked_sub(self.front)
            .and_then(|p| usize::try_from(p).ok())
            .and_then(|p| self.slots.get_mut(p))
        {
            *slot = Some(effect);
        }
        let mut ready = Vec::new();
        while matches!(self.slots.front(), Some(Some(_))) {
            if let Some(Some(effect)) = self.slots.pop_front() {
                ready.push(effect);
            }
            self.front += 1;
        }
        ready
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

enum Effect {
    Seq(u64),
    Session(SessionMeta),
    Forget,
    Flush(oneshot::Sender<()>),
}

type AckFuture =
    Pin<Box<dyn Future<Output = (u64, Box<Dispatch>, Result<PublishAck, PublishError>)> + Send>>;
type SaveFuture = Pin<Box<dyn Future<Output = (Saved, bool)> + Send>>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Saved {
    Nothing,
    Session(StoredSession),
    Forgotten,
}

/// Settings of one pipeline.
#[derive(Debug, Clone)]
pub(crate) struct PipelineConfig {
    pub(crate) shard: u32,
    pub(crate) max_in_flight: usize,
    pub(crate) save_interval: Duration,
}

/// Starts the pipeline task. `initial` is the session the shard resumes, if any.
pub(crate) fn spawn(
    config: PipelineConfig,
    publisher: DispatchPublisher,
    store: SessionStore,
    initial: Option<StoredSession>,
    status: Arc<watch::Sender<ShardStatus>>,
) -> (mpsc::Sender<Entry>, tokio::task::JoinHandle<()>) {
    let capacity = config.max_in_flight.clamp(1, 1024);
    let (tx, rx) = mpsc::channel(capacity);
    let span = tracing::info_span!("pipeline", shard = config.shard);
    let pipeline = Pipeline::new(config, publisher, store, initial, status);
    let task = tokio::spawn(pipeline.run(rx).instrument(span));
    (tx, task)
}

struct Pipeline {
    config: PipelineConfig,
    publisher: DispatchPublisher,
    store: SessionStore,
    status: Arc<watch::Sender<ShardStatus>>,
    window: CommitWindow<Effect>,
    acks: FuturesUnordered<AckFuture>,
    meta: Option<SessionMeta>,
    committed: u64,
    saved: Saved,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Pipeline {
    fn new(
        config: PipelineConfig,
        publisher: DispatchPublisher,
        store: SessionStore,
        initial: Option<StoredSession>,
        status: Arc<watch::Sender<ShardStatus>>,
    ) -> Self {
        let (meta, committed, saved) = match initial {
            Some(session) => (
                Some(SessionMeta {
                    session_id: Arc::from(session.session_id.as_str()),
                    resume_gateway_url: session.resume_gateway_url.clone(),
                    shard_count: session.shard_count,
                }),
                session.seq,
                Saved::Session(session),
            ),
            None => (None, 0, Saved::Nothing),
        };
        Self {
            config,
            publisher,
            store,
            status,
            window: CommitWindow::new(),
            acks: FuturesUnordered::new(),
            meta,
            committed,
            saved,
            flushes: Vec::new(),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Entry>) {
        let mut save_tick = tokio::time::interval(self.config.save_interval);
        save_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut saving: Option<SaveFuture> = None;
        let mut open = true;
        loop {
            if !open && self.window.is_empty() && saving.is_none() && self.flushes.is_empty() {
                // The shard is gone and everything is stored as far as it goes.
                if self.wanted() != self.saved {
                    saving = Some(self.save());
                } else {
                    break;
                }
            }
            tokio::select! {
                Some((index, dispatch, result)) = self.acks.next(), if !self.acks.is_empty() => {
                    match result {
                        Ok(_) => self.complete(index, Effect::Seq(dispatch.seq)),
                        Err(error) => self.retry(index, dispatch, error),
                    }
                }
                entry = rx.recv(), if open && self.acks.len() < self.config.max_in_flight => {
                    match entry {
                        Some(entry) => self.accept(entry).await,
                        None => open = false,
                    }
                }
                _ = save_tick.tick(), if saving.is_none() => {
                    if self.wanted() != self.saved {
                        saving = Some(self.save());
                    }
                }
                (saved, ok) = async { saving.as_mut().expect("guarded by is_some").await }, if saving.is_some() => {
                    saving = None;
                    if ok {
                        self.saved = saved;
                        self.status.send_modify(|s| s.committed_seq = self.committed);
                    }
                }
            }
            if !self.flushes.is_empty() && saving.is_none() {
                if self.wanted() == self.saved {
                    for flush in self.flushes.drain(..) {
                        let _ = flush.send(());
                    }
                } else {
                    saving = Some(self.save());
                }
            }
        }
    }

    async fn accept(&mut self, entry: Entry) {
        let entry = match entry {
            Entry::Ready(meta, then) => {
                let index = self.window.push();
                self.complete(index, Effect::Session(meta));
                *then
            }
            entry => entry,
        };
        let index = self.window.push();
        match entry {
            Entry::Dispatch(dispatch) => match self.publisher.publish(&dispatch).await {
                Ok(ack) => self.acks.push(Box::pin(async move {
                    let result = ack.await;
                    (index, dispatch, result)
                })),
                Err(error) => self.retry(index, dispatch, error),
            },
            Entry::Skip(seq) => {
                self.complete(index, Effect::Seq(seq));
            }
            Entry::Forget => {
                self.complete(index, Effect::Forget);
            }
            Entry::Flush(reply) => {
                self.complete(index, Effect::Flush(reply));
            }
            Entry::Ready(meta, _) => {
                // Never nested: treat as a bare session start.
                self.complete(index, Effect::Session(meta));
            }
        }
    }

    fn retry(&mut self, index: u64, dispatch: Box<Dispatch>, error: PublishError) {
        tracing::warn!(seq = dispatch.seq, %error, "publish not acknowledged; retrying");
        let publisher = self.publisher.clone();
        self.acks.push(Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let result = match publisher.publish(&dispatch).await {
                Ok(ack) => ack.await,
                Err(error) => Err(error),
            };
            (index, dispatch, result)
        }));
    }

    /// Marks position `index` done and applies every effect that can leave.
    fn complete(&mut self, index: u64, effect: Effect) {
        for effect in self.window.complete(index, effect) {
            match effect {
                Effect::Seq(seq) => self.committed = seq,
                Effect::Session(meta) => {
                    self.meta = Some(meta);
                    self.committed = 0;
                }
                Effect::Forget => {
                    self.meta = None;
                    self.committed = 0;
                }
                Effect::Flush(reply) => self.flushes.push(reply),
            }
        }
    }

    fn wanted(&self) -> Saved {
        match &self.meta {
            Some(meta) => Saved::Session(StoredSession {
                session_id: meta.session_id.to_string(),
                seq: self.committed,
                resume_gateway_url: meta.resume_gateway_url.clone(),
                shard_count: meta.shard_count,
            }),
            None if self.saved == Saved::Nothing => Saved::Nothing,
            None => Saved::Forgotten,
        }
    }

    fn save(&self) -> SaveFuture {
        let wanted = self.wanted();
        let store = self.store.clone();
        let shard = self.config.shard;
        Box::pin(async move {
            let result = match &wanted {
                Saved::Session(session) => store.save(shard, session).await,
                Saved::Forgotten => store.forget(shard).await,
                Saved::Nothing => Ok(()),
            };
            match result {
                Ok(()) => (wanted, true),
                Err(error) => {
                    tracing::warn!(error = %error, source = ?std::error::Error::source(&error), "session not stored; will retry");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    (wanted, false)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::CommitWindow;
    use proptest::prelude::*;

    proptest! {
        /// Acks complete in any order; the committed seq only ever moves to a
        /// seq whose publish and every earlier one completed.
        #[test]
        fn committed_never_passes_an_unacked_publish(
            order in (1usize..200).prop_flat_map(|n| Just((0..n as u64).collect::<Vec<_>>()).prop_shuffle())
        ) {
            let mut window = CommitWindow::new();
            let n = order.len() as u64;
            for expected in 0..n {
                prop_assert_eq!(window.push(), expected);
            }
            let mut acked = vec![false; order.len()];
            let mut committed: Option<u64> = None;
            for index in order {
                acked[index as usize] = true;
                for seq in window.complete(index, index) {
                    prop_assert_eq!(Some(seq), committed.map_or(Some(0), |c| Some(c + 1)));
                    committed = Some(seq);
                }
                if let Some(c) = committed {
                    prop_assert!(acked[..=c as usize].iter().all(|a| *a));
                }
                // Nothing ackable is held back.
                let prefix = acked.iter().take_while(|a| **a).count();
                prop_assert_eq!(committed.map_or(0, |c| c as usize + 1), prefix);
            }
            prop_assert!(window.is_empty());
        }
    }

    #[test]
    fn out_of_order_acks_commit_in_order() {
        let mut window = CommitWindow::new();
        let (a, b, c) = (window.push(), window.push(), window.push());
        assert!(window.complete(c, "c").is_empty());
        assert!(window.complete(b, "b").is_empty());
        assert_eq!(window.complete(a, "a"), vec!["a", "b", "c"]);
    }
}
