//! One route at run time: the consumer loop, batching, ordering lanes, the
//! delivery of a batch (with splitting) and what each outcome does to the
//! messages.
//!
//! Data path: `run_route` pulls messages → `none`: batches → one task per
//! batch (at most `concurrency.max` tasks) → `Delivery::deliver_batch` →
//! acks, delayed NAKs, dead letters; `per_guild`: one lane per guild
//! (in-process retries so later events wait behind a failing one) → the
//! same `deliver_batch`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures::StreamExt as _;
use shardline_wire::Names;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::aimd::Aimd;
use super::dead_letter::DeadLetter;
use super::message::Held;
use super::retry::{Decision, FailedEvent, decide};
use crate::target::{DeliveryFailure, DeliveryOutcome, FailureKind, PreparedBatch, Target};
use crate::{DeadLetterPolicy, Ordering, RouteConfig};

/// How a route's target is doing, as the bridge sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetState {
    /// Calls succeed.
    Healthy,
    /// Several calls in a row were throttled.
    Throttled,
    /// Several calls in a row failed.
    Failing,
    /// The target answered 410 Gone; the route stopped.
    Disabled,
}

/// Consecutive failed calls before the state says so.
const FAILURES_BEFORE_STATE_CHANGE: u32 = 3;
/// Consecutive successful calls before a troubled target counts as healthy
/// again (so a throttled target's sawtooth does not flood the log).
const SUCCESSES_BEFORE_HEALTHY: u32 = 5;

/// Live figures of one route, shared with whoever holds a [`RouteStatus`].
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) target: String,
    pub(crate) aimd: Arc<Aimd>,
    state: Mutex<TargetState>,
    consecutive_failures: AtomicU32,
    consecutive_successes: AtomicU32,
    pub(crate) acked: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) calls: AtomicU64,
}

impl Shared {
    pub(crate) fn new(name: String, target: String, aimd: Arc<Aimd>) -> Self {
        Self {
            name,
            target,
            aimd,
            state: Mutex::new(TargetState::Healthy),
            consecutive_failures: AtomicU32::new(0),
            consecutive_successes: AtomicU32::new(0),
            acked: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    pub(crate) fn state(&self) -> TargetState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&self, new: TargetState, reason: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let old = *state;
        if old == new || old == TargetState::Disabled {
            return;
        }
        *state = new;
        match new {
            TargetState::Healthy => tracing::info!(
                route = %self.name, target = %self.target, from = ?old, to = ?new,
                "target state changed: healthy again"
            ),
            TargetState::Disabled => tracing::error!(
                route = %self.name, target = %self.target, from = ?old, to = ?new, reason,
                "target state changed: route DISABLED (the endpoint answered 410 Gone); \
                 fix the target and restart the bridge"
            ),
            _ => tracing::warn!(
                route = %self.name, target = %self.target, from = ?old, to = ?new, reason,
                "target state changed"
            ),
        }
    }

    fn record_call(&self, outcome: &DeliveryOutcome) {
        self.calls.fetch_add(1, AtomicOrdering::Relaxed);
        let failure = match outcome {
            DeliveryOutcome::Failed(failure) => failure,
            _ => {
                self.consecutive_failures.store(0, AtomicOrdering::Relaxed);
                let successes = self
                    .consecutive_successes
                    .fetch_add(1, AtomicOrdering::Relaxed)
                    + 1;
                if successes >= SUCCESSES_BEFORE_HEALTHY {
                    self.set_state(TargetState::Healthy, "");
                }
                return;
            }
        };
        self.consecutive_successes.store(0, AtomicOrdering::Relaxed);
        let state = match failure.kind {
            FailureKind::Gone => {
                self.set_state(TargetState::Disabled, &failure.reason);
                return;
            }
            // A rejected record says nothing about the target's health.
            FailureKind::Rejected => return,
            FailureKind::Throttled => TargetState::Throttled,
            _ => TargetState::Failing,
        };
        let count = self
            .consecutive_failures
            .fetch_add(1, AtomicOrdering::Relaxed)
            + 1;
        if count >= FAILURES_BEFORE_STATE_CHANGE {
            self.set_state(state, &failure.reason);
        }
    }
}

/// What came of delivering a batch, for the messages not settled yet.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    /// Failed messages, to retry (or give up on), with the failure.
    pub(crate) retry: Vec<(Held, DeliveryFailure)>,
    /// Messages not tried because an earlier one in their guild failed (or
    /// the route was disabled); they keep their place.
    pub(crate) held_back: Vec<Held>,
    /// The target answered 410.
    pub(crate) gone: bool,
}

/// Everything a route's tasks share.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) config: RouteConfig,
    pub(crate) names: Names,
    pub(crate) js: jetstream::Context,
    pub(crate) target: Arc<dyn Target>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) disabled: CancellationToken,
}

impl Delivery {
    fn ordered(&self) -> bool {
        self.config.ordering == Ordering::PerGuild
    }

    /// Delivers `items` (oldest first). Whole-batch function errors and
    /// rejections split the batch in halves until the bad record is alone.
    /// Successes are acknowledged, terminal failures dead-lettered; what is
    /// left to retry comes back.
    pub(crate) async fn deliver_batch(&self, items: Vec<Held>) -> Settled {
        let ordered = self.ordered();
        let mut work: VecDeque<Vec<Held>> = VecDeque::from([items]);
        let mut out = Settled::default();
        while let Some(chunk) = work.pop_front() {
            if out.gone || (ordered && !out.retry.is_empty()) {
                out.held_back.extend(chunk);
                continue;
            }
            // The body is written straight from the stored bytes: no
            // re-serialisation of Discord's payloads.
            let mut body = Vec::with_capacity(chunk.iter().map(|h| h.size).sum::<usize>() + 16);
            body.extend_from_slice(b"{\"records\":[");
            let mut good = Vec::with_capacity(chunk.len());
            for held in chunk {
                let start = body.len();
                if !good.is_empty() {
                    body.push(b',');
                }
                match held
                    .stored()
                    .write_json_line(&self.names, held.attempt(), false, &mut body)
                {
                    Ok(()) => {
                        if body.last() == Some(&b'\n') {
                            body.pop();
                        }
                        good.push(held);
                    }
                    Err(e) => {
                        body.truncate(start);
                        self.give_up(&held, &format!("malformed dispatch: {e}"))
                            .await;
                    }
                }
            }
            if good.is_empty() {
                continue;
            }
            body.extend_from_slice(b"]}");
            let ids = good.iter().map(|h| h.id.clone()).collect();
            let batch = PreparedBatch::from_body(body.into(), ids);
            let outcome = self.call(&good, &batch).await;
            match outcome {
                DeliveryOutcome::Accepted { failed } if failed.is_empty() => {
                    self.ack_all(&good).await;
                }
                DeliveryOutcome::Accepted { failed } => {
                    let failure = DeliveryFailure::new(
                        FailureKind::FunctionError,
                        "named in the response's batchItemFailures",
                    );
                    let first_failed = good
                        .iter()
                        .position(|h| failed.contains(&h.id))
                        .unwrap_or(good.len());
                    let mut done = Vec::new();
                    for (index, held) in good.into_iter().enumerate() {
                        if failed.contains(&held.id) {
                            out.retry.push((held, failure.clone()));
                        } else if ordered && index > first_failed {
                            // Per guild: nothing after a failure counts as done,
                            // so the failed one is retried before them.
                            out.held_back.push(held);
                        } else {
                            done.push(held);
                        }
                    }
                    self.ack_all(&done).await;
                }
                DeliveryOutcome::Failed(failure) => match failure.kind {
                    FailureKind::Gone => {
                        out.gone = true;
                        out.held_back.extend(good);
                        self.disabled.cancel();
                    }
                    FailureKind::FunctionError | FailureKind::Rejected if good.len() > 1 => {
                        tracing::debug!(
                            route = %self.config.name, records = good.len(), reason = %failure.reason,
                            "splitting a failed batch"
                        );
                        let second = good.split_off(good.len() / 2);
                        work.push_front(second);
                        work.push_front(good);
                    }
                    FailureKind::Rejected => {
                        for held in &good {
                            self.give_up(held, &failure.reason).await;
                        }
                    }
                    _ => out
                        .retry
                        .extend(good.into_iter().map(|held| (held, failure.clone()))),
                },
            }
        }
        out
    }

    /// One call to the target, under a concurrency permit, keeping the
    /// messages' ack timers alive while it runs.
    async fn call(&self, held: &[Held], batch: &PreparedBatch) -> DeliveryOutcome {
        let aimd = self.shared.aimd.clone();
        let target = self.target.clone();
        let call = async move {
            let _permit = aimd.acquire().await;
            target.deliver(batch).await
        };
        let outcome = with_progress(call, held, self.config.ack_wait).await;
        match &outcome {
            DeliveryOutcome::Failed(f) if f.kind == FailureKind::Throttled => {
                self.shared.aimd.on_throttle();
            }
            _ => self.shared.aimd.on_success(),
        }
        self.shared.record_call(&outcome);
        outcome
    }

    async fn ack_all(&self, held: &[Held]) {
        let acks = held.iter().map(|h| async move {
            if let Err(e) = h.msg.double_ack().await {
                // The event will be redelivered: at least once, never lost.
                tracing::warn!(route = %self.config.name, id = %h.id, error = %e, "acknowledgement not confirmed");
            }
        });
        futures::future::join_all(acks).await;
        self.shared
            .acked
            .fetch_add(held.len() as u64, AtomicOrdering::Relaxed);
    }

    /// Decides between a retry and giving up for one failed message.
    pub(crate) fn decide(&self, held: &Held, failure: &DeliveryFailure) -> Decision {
        let now = OffsetDateTime::now_utc();
        decide(
            &self.config.retry,
            &FailedEvent {
                attempts: held.attempt(),
                age: held.age(now),
                since_received: held.since_received(now),
                event: &held.event,
                reason: &failure.reason,
                retry_after: failure.retry_after,
            },
            rand::random::<f64>(),
        )
    }

    /// Retries by delayed NAK, or gives up (the `none` ordering).
    async fn nak_or_give_up(&self, retry: Vec<(Held, DeliveryFailure)>) {
        for (held, failure) in retry {
            match self.decide(&held, &failure) {
                Decision::Retry(delay) => {
                    tracing::debug!(
                        route = %self.config.name, id = %held.id, attempt = held.attempt(),
                        delay = ?delay, reason = %failure.reason, "retrying later"
                    );
                    self.shared.retried.fetch_add(1, AtomicOrdering::Relaxed);
                    if let Err(e) = held.msg.ack_with(AckKind::Nak(Some(delay))).await {
                        tracing::warn!(route = %self.config.name, id = %held.id, error = %e, "delayed NAK not sent; redelivery after ack_wait");
                    }
                }
                Decision::GiveUp(reason) => self.give_up(&held, &reason).await,
            }
        }
    }

    /// Dead-letters (or discards) a message, then terminates it. When the
    /// dead letter cannot be stored the message is NAKed for later instead.
    pub(crate) async fn give_up(&self, held: &Held, reason: &str) {
        let attempts = held.attempt();
        if self.config.dead_letter == DeadLetterPolicy::Stream {
            let letter = DeadLetter {
                route: self.config.name.clone(),
                subject: held.msg.subject.to_string(),
                stream: self.names.dispatch_stream(),
                stream_seq: held.stream_seq,
                attempts,
                error: reason.to_owned(),
                failed_at: OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                headers: held.msg.headers.clone().unwrap_or_default(),
                payload: held.msg.payload.clone(),
            };
            if let Err(e) = letter.publish(&self.js, &self.names).await {
                tracing::error!(route = %self.config.name, id = %held.id, error = %e, "dead letter not stored; retrying later");
                let delay = self
                    .config
                    .retry
                    .initial_backoff
                    .max(Duration::from_secs(1));
                let _ = held.msg.ack_with(AckKind::Nak(Some(delay))).await;
                return;
            }
            tracing::warn!(route = %self.config.name, id = %held.id, event = %held.event, attempts, reason, "dead-lettered");
        } else {
            tracing::warn!(route = %self.config.name, id = %held.id, event = %held.event, attempts, reason, "discarded (dead_letter = \"discard\")");
        }
        self.shared
            .dead_lettered
            .fetch_add(1, AtomicOrdering::Relaxed);
        if let Err(e) = held.msg.double_ack_with(AckKind::Term).await {
            tracing::warn!(route = %self.config.name, id = %held.id, error = %e, "terminate not confirmed; a redelivery would be dead-lettered again (deduplicated)");
        }
    }

    /// Hands messages back to the stream for someone else (shutdown), or for
    /// later (`delay`).
    async fn release(&self, held: impl IntoIterator<Item = Held>, delay: Option<Duration>) {
        let naks = held.into_iter().map(|h| async move {
            let _ = h.msg.ack_with(AckKind::Nak(delay)).await;
        });
        futures::future::join_all(naks).await;
    }
}

/// Runs `work` while sending an in-progress ack for `held` every third of
/// `ack_wait`, so a long call is not redelivered under it.
async fn with_progress<F: std::future::Future>(
    work: F,
    held: &[Held],
    ack_wait: Duration,
) -> F::Output {
    let every = (ack_wait / 3).max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = ticker.tick() => progress(held.iter()).await,
        }
    }
}

async fn progress(held: impl Iterator<Item = &Held>) {
    let acks = held.map(|h| h.msg.ack_with(AckKind::Progress));
    for result in futures::future::join_all(acks).await {
        if let Err(e) = result {
            tracing::debug!(error = %e, "in-progress ack not sent");
        }
    }
}

fn batch_bytes(items: &VecDeque<Held>) -> usize {
    items.iter().map(|h| h.size).sum()
}

/// Takes up to the batch limits from the front (always at least one).
fn take_batch(queue: &mut VecDeque<Held>, max_records: usize, max_bytes: usize) -> Vec<Held> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(front) = queue.front() {
        if !batch.is_empty() && (batch.len() >= max_records || bytes + front.size > max_bytes) {
            break;
        }
        bytes += front.size;
        batch.extend(queue.pop_front());
    }
    batch
}

/// How long one pull request stays open on the server.
const PULL_EXPIRES: Duration = Duration::from_secs(2);
/// The delay of a NAK that hands an event back on shutdown: longer than
/// [`PULL_EXPIRES`], so that our own pull requests, which the server may keep
/// a moment after we stop, are gone and another bridge process gets it.
const RELEASE_DELAY: Duration = Duration::from_secs(3);

/// Runs one route until `shutdown` (or until its target is gone).
pub(crate) async fn run_route(
    delivery: Arc<Delivery>,
    consumer: PullConsumer,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let config = &delivery.config;
    let fetch = (config.batch.max_records * config.concurrency.max)
        .clamp(16, 1000)
        .min(usize::try_from(config.max_ack_pending).unwrap_or(1000));
    let max_ack_pending = usize::try_from(config.max_ack_pending).unwrap_or(1000);
    let stop = CancellationToken::new();
    let stopper = {
        let stop = stop.clone();
        let shutdown = shutdown.clone();
        let disabled = delivery.disabled.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = disabled.cancelled() => {}
            }
            stop.cancel();
        })
    };
    let mut tasks = JoinSet::new();
    let mut lanes: HashMap<String, Lane> = HashMap::new();
    let mut batch: VecDeque<Held> = VecDeque::new();
    let mut deadline: Option<Instant> = None;
    let mut gc = tokio::time::interval(Duration::from_secs(1));
    'consume: while !stop.is_cancelled() {
        let mut messages = match consumer
            .stream()
            .max_messages_per_batch(fetch)
            .expires(PULL_EXPIRES)
            .heartbeat(PULL_EXPIRES / 2)
            .messages()
            .await
        {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(route = %config.name, error = %e, "cannot pull from the consumer; retrying");
                tokio::select! {
                    _ = stop.cancelled() => break 'consume,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue 'consume,
                }
            }
        };
        loop {
            let flush_at = deadline;
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    // Take what was pulled but not yet handed over and release
                    // it once our pull requests have expired (NAKed at once,
                    // it would go straight back to them).
                    // (Bounded: the server sends at most max_ack_pending.)
                    let mut leftovers = Vec::new();
                    while leftovers.len() < max_ack_pending {
                        match tokio::time::timeout(Duration::from_millis(50), messages.next()).await {
                            Ok(Some(Ok(msg))) => leftovers.push(msg),
                            Ok(Some(Err(_))) => {}
                            Ok(None) | Err(_) => break,
                        }
                    }
                    drop(messages);
                    let naks = leftovers.iter().map(|msg| msg.ack_with(AckKind::Nak(Some(RELEASE_DELAY))));
                    futures::future::join_all(naks).await;
                    break 'consume;
                }
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(e) = joined {
                        tracing::error!(route = %config.name, error = %e, "delivery task failed");
                    }
                }
                _ = tokio::time::sleep_until(flush_at.unwrap_or_else(Instant::now)), if flush_at.is_some() => {
                    deadline = None;
                    spawn_batch(&delivery, &mut tasks, std::mem::take(&mut batch)).await;
                }
                _ = gc.tick() => lanes.retain(|_, lane| lane.pending.load(AtomicOrdering::Acquire) > 0),
                next = messages.next() => match next {
                    Some(Ok(msg)) => {
                        let held = match Held::new(&delivery.names, msg.clone()) {
                            Ok(held) => held,
                            Err(e) => {
                                give_up_raw(&delivery, msg, &e.to_string()).await;
                                continue;
                            }
                        };
                        if delivery.ordered() {
                            let key = held.guild.clone().unwrap_or_default();
                            send_to_lane(&delivery, &mut lanes, &mut tasks, &stop, key, held);
                        } else {
                            batch.push_back(held);
                            if deadline.is_none() {
                                deadline = Some(Instant::now() + config.batch.max_wait);
                            }
                            if batch.len() >= config.batch.max_records
                                || batch_bytes(&batch) >= config.batch.max_bytes
                            {
                                deadline = None;
                                spawn_batch(&delivery, &mut tasks, std::mem::take(&mut batch)).await;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(route = %config.name, error = %e, "pull error");
                    }
                    None => {
                        tracing::warn!(route = %config.name, "message stream ended; pulling again");
                        continue 'consume;
                    }
                },
            }
        }
    }
    // Stop reading; give back what was not sent; let in-flight work finish.
    delivery.release(batch.drain(..), Some(RELEASE_DELAY)).await;
    lanes.clear();
    let drained = tokio::time::timeout(grace, async {
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                tracing::error!(route = %config.name, error = %e, "delivery task failed");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            route = %config.name, grace = ?grace,
            "in-flight deliveries did not finish within the shutdown grace; their events will be redelivered"
        );
        tasks.shutdown().await;
    }
    stopper.abort();
    tracing::info!(route = %config.name, "route stopped");
}

async fn give_up_raw(delivery: &Delivery, msg: jetstream::Message, reason: &str) {
    let letter_msg = msg;
    tracing::warn!(route = %delivery.config.name, subject = %letter_msg.subject, reason, "malformed message");
    let (stream_seq, attempts) = letter_msg
        .info()
        .map(|i| (i.stream_sequence, u32::try_from(i.delivered).unwrap_or(1)))
        .unwrap_or((0, 1));
    let letter = DeadLetter {
        route: delivery.config.name.clone(),
        subject: letter_msg.subject.to_string(),
        stream: delivery.names.dispatch_stream(),
        stream_seq,
        attempts,
        error: format!("malformed dispatch: {reason}"),
        failed_at: OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        headers: letter_msg.headers.clone().unwrap_or_default(),
        payload: letter_msg.payload.clone(),
    };
    if delivery.config.dead_letter == DeadLetterPolicy::Stream
        && letter.publish(&delivery.js, &delivery.names).await.is_err()
    {
        let _ = letter_msg
            .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
            .await;
        return;
    }
    delivery
        .shared
        .dead_lettered
        .fetch_add(1, AtomicOrdering::Relaxed);
    let _ = letter_msg.double_ack_with(AckKind::Term).await;
}

/// `none` ordering: one task per batch, at most `concurrency.max` at once.
async fn spawn_batch(delivery: &Arc<Delivery>, tasks: &mut JoinSet<()>, batch: VecDeque<Held>) {
    if batch.is_empty() {
        return;
    }
    while tasks.len() >= delivery.config.concurrency.max {
        if let Some(Err(e)) = tasks.join_next().await {
            tracing::error!(route = %delivery.config.name, error = %e, "delivery task failed");
        }
    }
    let delivery = delivery.clone();
    tasks.spawn(async move {
        let settled = delivery.deliver_batch(batch.into()).await;
        delivery.nak_or_give_up(settled.retry).await;
        if !settled.held_back.is_empty() {
            delivery
                .release(settled.held_back, Some(Duration::from_secs(30)))
                .await;
        }
    });
}

/// A guild's lane as the consumer loop sees it.
#[derive(Debug)]
struct Lane {
    tx: mpsc::UnboundedSender<Held>,
    /// Messages sent to the lane and not yet settled; a lane at zero can be
    /// dropped (nothing is in its channel or queue).
    pending: Arc<AtomicUsize>,
}

fn send_to_lane(
    delivery: &Arc<Delivery>,
    lanes: &mut HashMap<String, Lane>,
    tasks: &mut JoinSet<()>,
    stop: &CancellationToken,
    key: String,
    held: Held,
) {
    let lane = lanes.entry(key).or_insert_with(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        tasks.spawn(run_lane(
            delivery.clone(),
            rx,
            pending.clone(),
            stop.clone(),
        ));
        Lane { tx, pending }
    });
    lane.pending.fetch_add(1, AtomicOrdering::AcqRel);
    if let Err(mpsc::error::SendError(held)) = lane.tx.send(held) {
        // The lane ended (it only does on shutdown); hand the event back.
        lane.pending.fetch_sub(1, AtomicOrdering::AcqRel);
        let delivery = delivery.clone();
        tasks.spawn(async move { delivery.release([held], Some(RELEASE_DELAY)).await });
    }
}

/// Receives into `queue` and keeps its ack timers alive while `work` runs.
/// With `interruptible`, returns `None` as soon as `stop` fires.
async fn with_upkeep<F: std::future::Future>(
    work: F,
    queue: &mut VecDeque<Held>,
    rx: &mut mpsc::UnboundedReceiver<Held>,
    open: &mut bool,
    stop: &CancellationToken,
    interruptible: bool,
    ack_wait: Duration,
) -> Option<F::Output> {
    let every = (ack_wait / 3).max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Some(out),
            _ = stop.cancelled(), if interruptible => return None,
            _ = ticker.tick() => progress(queue.iter()).await,
            next = rx.recv(), if *open => match next {
                Some(held) => queue.push_back(held),
                None => *open = false,
            },
        }
    }
}

/// `per_guild` ordering: one guild's events, strictly in order. A failed
/// event is retried here (the lane sleeps its backoff, keeping later events
/// behind it and their ack timers alive) until it succeeds or is given up.
async fn run_lane(
    delivery: Arc<Delivery>,
    mut rx: mpsc::UnboundedReceiver<Held>,
    pending: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    let config = &delivery.config;
    let ack_wait = config.ack_wait;
    let mut queue: VecDeque<Held> = VecDeque::new();
    let mut open = true;
    loop {
        if queue.is_empty() {
            if !open {
                return;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                next = rx.recv() => match next {
                    Some(held) => queue.push_back(held),
                    None => return,
                },
            }
        }
        // Wait up to max_wait for the batch to fill.
        if open
            && queue.len() < config.batch.max_records
            && batch_bytes(&queue) < config.batch.max_bytes
        {
            let window = tokio::time::sleep(config.batch.max_wait);
            tokio::pin!(window);
            while queue.len() < config.batch.max_records
                && batch_bytes(&queue) < config.batch.max_bytes
            {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = &mut window => break,
                    next = rx.recv() => match next {
                        Some(held) => queue.push_back(held),
                        None => { open = false; break; }
                    },
                }
            }
        }
        if stop.is_cancelled() {
            break;
        }
        let batch = take_batch(&mut queue, config.batch.max_records, config.batch.max_bytes);
        let sent = batch.len();
        let Some(settled) = with_upkeep(
            delivery.deliver_batch(batch),
            &mut queue,
            &mut rx,
            &mut open,
            &stop,
            false,
            ack_wait,
        )
        .await
        else {
            break;
        };
        if settled.gone {
            let back: Vec<Held> = settled
                .retry
                .into_iter()
                .map(|(held, _)| held)
                .chain(settled.held_back)
                .chain(queue.drain(..))
                .collect();
            delivery.release(back, Some(Duration::from_secs(30))).await;
            rx.close();
            while let Ok(held) = rx.try_recv() {
                delivery
                    .release([held], Some(Duration::from_secs(30)))
                    .await;
            }
            pending.store(0, AtomicOrdering::Release);
            return;
        }
        let mut keep = settled.held_back;
        let mut delay = Duration::ZERO;
        for (mut held, failure) in settled.retry {
            match delivery.decide(&held, &failure) {
                Decision::Retry(wait) => {
                    tracing::debug!(
                        route = %config.name, id = %held.id, attempt = held.attempt(),
                        delay = ?wait, reason = %failure.reason, "retrying in order"
                    );
                    delivery
                        .shared
                        .retried
                        .fetch_add(1, AtomicOrdering::Relaxed);
                    held.local_retries += 1;
                    delay = delay.max(wait);
                    keep.push(held);
                }
                Decision::GiveUp(reason) => delivery.give_up(&held, &reason).await,
            }
        }
        keep.sort_by_key(|h| h.stream_seq);
        pending.fetch_sub(sent - keep.len(), AtomicOrdering::AcqRel);
        for held in keep.into_iter().rev() {
            queue.push_front(held);
        }
        if !delay.is_zero() {
            let sleep = tokio::time::sleep(delay);
            if with_upkeep(sleep, &mut queue, &mut rx, &mut open, &stop, true, ack_wait)
                .await
                .is_none()
            {
                break;
            }
        }
    }
    // Shutdown: hand back everything not delivered, for another bridge.
    rx.close();
    while let Ok(held) = rx.try_recv() {
        queue.push_back(held);
    }
    pending.store(0, AtomicOrdering::Release);
    delivery.release(queue, Some(RELEASE_DELAY)).await;
}
