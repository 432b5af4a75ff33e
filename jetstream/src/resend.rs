//! Sending stored events again through a route's target, outside the live
//! consumer: what `shardline replay --to-route` and `shardline dlq redrive` use.
//!
//! A [`RouteSender`] has its own budget (one call at a time, at the caller's
//! rate), so live delivery on the same route is not disturbed. It applies the
//! route's retry policy: partial failures are retried alone, a batch the
//! function fails or rejects is split to find the bad record, throttling and
//! transient errors are retried with backoff.

use std::collections::VecDeque;
use std::sync::Arc;

use shardline_wire::{Batch, Record};
use tokio_util::sync::CancellationToken;

use crate::bridge::{Decision, FailedEvent, decide};
use crate::target::{DeliveryOutcome, FailureKind, PreparedBatch, Target, TargetError};
use crate::{RetryConfig, RouteConfig};

/// What happened to the records given to [`RouteSender::send`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// Ids of the records the target accepted.
    pub delivered: Vec<String>,
    /// Ids of the records given up on, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Delivers records to one route's target with the route's retries.
#[derive(Debug)]
pub struct RouteSender {
    route: String,
    target: Arc<dyn Target>,
    retry: RetryConfig,
    max_records: usize,
    max_bytes: usize,
    buffer: Vec<Record>,
    buffered_bytes: usize,
    shutdown: CancellationToken,
}

impl RouteSender {
    /// A sender for `route`, building its target from the route's configuration.
    pub async fn for_route(
        route: &RouteConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, TargetError> {
        let target = crate::target::target_from_config(&route.target).await?;
        Ok(Self::new(route, target, shutdown))
    }

    /// A sender for `route` delivering to `target`.
    pub fn new(route: &RouteConfig, target: Arc<dyn Target>, shutdown: CancellationToken) -> Self {
        Self {
            route: route.name.clone(),
            target,
            retry: route.retry,
            max_records: route.batch.max_records.max(1),
            max_bytes: route.batch.max_bytes.max(1),
            buffer: Vec::new(),
            buffered_bytes: 0,
            shutdown,
        }
    }

    /// The route's name.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The most records one call carries.
    pub fn max_records(&self) -> usize {
        self.max_records
    }

    /// Sends `records` (one batch, split when needed), retrying per the route's policy.
    pub async fn send(&self, records: Vec<Record>) -> SendReport {
        let mut report = SendReport::default();
        let mut queue: VecDeque<(Vec<Record>, u32)> = VecDeque::from([(records, 0)]);
        while let Some((mut batch, attempts_before)) = queue.pop_front() {
            if batch.is_empty() {
                continue;
            }
            let attempts = attempts_before + 1;
            for record in &mut batch {
                record.attempt = attempts;
            }
            let outcome = match PreparedBatch::new(&Batch {
                records: batch.clone(),
            }) {
                Ok(prepared) => self.target.deliver(&prepared).await,
                Err(error) => {
                    fail_all(
                        &mut report,
                        &batch,
                        &format!("serialising the batch: {error}"),
                    );
                    continue;
                }
            };
            let (retry, reason, retry_after) = match outcome {
                DeliveryOutcome::Accepted { failed } => {
                    let (bad, good): (Vec<Record>, Vec<Record>) =
                        batch.into_iter().partition(|r| failed.contains(&r.id));
                    report.delivered.extend(good.into_iter().map(|r| r.id));
                    (
                        bad,
                        "the function reported the record as failed".to_owned(),
                        None,
                    )
                }
                DeliveryOutcome::Failed(failure) => match failure.kind {
                    FailureKind::Gone => {
                        fail_all(&mut report, &batch, &failure.reason);
                        continue;
                    }
                    FailureKind::Rejected | FailureKind::FunctionError if batch.len() > 1 => {
                        // Find the bad record: each goes alone, without spending an attempt.
                        for record in batch {
                            queue.push_back((vec![record], attempts_before));
                        }
                        continue;
                    }
                    FailureKind::Rejected => {
                        fail_all(&mut report, &batch, &failure.reason);
                        continue;
                    }
                    _ => (batch, failure.reason, failure.retry_after),
                },
            };
            if retry.is_empty() {
                continue;
            }
            let event = if retry.iter().all(|r| r.event == retry[0].event) {
                retry[0].event.clone()
            } else {
                String::new()
            };
            let failed = FailedEvent {
                attempts,
                // Re-sent events are old on purpose: age limits do not apply.
                age: std::time::Duration::ZERO,
                since_received: std::time::Duration::ZERO,
                event: &event,
                reason: &reason,
                retry_after,
            };
            match decide(&self.retry, &failed, rand::random::<f64>()) {
                Decision::Retry(delay) => {
                    tracing::debug!(route = %self.route, records = retry.len(), ?delay, %reason, "retrying");
                    tokio::select! {
                        () = self.shutdown.cancelled() => {
                            fail_all(&mut report, &retry, &format!("interrupted while waiting to retry: {reason}"));
                        }
                        () = tokio::time::sleep(delay) => queue.push_back((retry, attempts)),
                    }
                }
                Decision::GiveUp(why) => fail_all(&mut report, &retry, &why),
            }
        }
        report
    }

    async fn send_buffer(&mut self) -> std::io::Result<()> {
        let records = std::mem::take(&mut self.buffer);
        self.buffered_bytes = 0;
        let report = self.send(records).await;
        match report.failed.first() {
            None => Ok(()),
            Some((id, reason)) => Err(std::io::Error::other(format!(
                "{} record(s) could not be delivered to route {}; first: {id}: {reason}",
                report.failed.len(),
                self.route
            ))),
        }
    }
}

fn fail_all(report: &mut SendReport, records: &[Record], reason: &str) {
    report
        .failed
        .extend(records.iter().map(|r| (r.id.clone(), reason.to_owned())));
}

impl crate::replay::RecordSink for RouteSender {
    async fn send(&mut self, record: Record) -> std::io::Result<()> {
        let size = record.data.get().len() + 256;
        if !self.buffer.is_empty() && self.buffered_bytes + size > self.max_bytes {
            self.send_buffer().await?;
        }
        self.buffered_bytes += size;
        self.buffer.push(record);
        if self.buffer.len() >= self.max_records {
            self.send_buffer().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.send_buffer().await
    }
}
