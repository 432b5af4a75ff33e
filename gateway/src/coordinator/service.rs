//! The NATS front of the permit scheduler: answers identify permit requests
//! while this coordinator is the leader.

use std::time::Duration;

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use super::permits::{Decision, PermitScheduler};
use super::protocol::{PermitReply, PermitRequest};

/// The longest a request is held, whatever it asks for.
pub const MAX_HOLD: Duration = Duration::from_secs(60);

/// Answers permit requests on `subject` until `shutdown` fires or the scheduler closes.
pub(crate) async fn serve_permits(
    client: async_nats::Client,
    subject: String,
    scheduler: PermitScheduler,
    shutdown: CancellationToken,
) -> Result<(), async_nats::SubscribeError> {
    let mut requests = client.subscribe(subject.clone()).await?;
    // The subscription must be live before workers are told to ask.
    if let Err(error) = client.flush().await {
        tracing::warn!(%error, "flushing the permit subscription failed");
    }
    tracing::info!(subject, "answering identify permit requests");
    loop {
        let message = tokio::select! {
            message = requests.next() => message,
            () = shutdown.cancelled() => break,
        };
        let Some(message) = message else { break };
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let received_at = tokio::time::Instant::now();
        let client = client.clone();
        let scheduler = scheduler.clone();
        tokio::spawn(async move {
            let reply = answer(&scheduler, &message.payload, received_at).await;
            let body = serde_json::to_vec(&reply).expect("permit replies serialise");
            if let Err(error) = client.publish(reply_to, body.into()).await {
                tracing::warn!(%error, "sending a permit reply failed");
            }
        });
    }
    if let Err(error) = requests.unsubscribe().await {
        tracing::debug!(%error, "unsubscribing from permit requests failed");
    }
    Ok(())
}

async fn answer(
    scheduler: &PermitScheduler,
    payload: &[u8],
    received_at: tokio::time::Instant,
) -> PermitReply {
    let request: PermitRequest = match serde_json::from_slice(payload) {
        Ok(request) => request,
        Err(error) => {
            return PermitReply::Invalid {
                error: error.to_string(),
            };
        }
    };
    let hold = Duration::from_millis(request.hold_ms).min(MAX_HOLD);
    match scheduler.request(request.shard_id, Some(hold)).await {
        Ok(Decision::Granted { permit, granted_at }) => {
            tracing::debug!(
                shard = permit.shard_id,
                bucket = permit.bucket,
                worker = request.worker.as_deref().unwrap_or("-"),
                "permit sent"
            );
            PermitReply::Granted {
                shard_id: permit.shard_id,
                bucket: permit.bucket,
                held_us: micros(granted_at.saturating_duration_since(received_at)),
                margin_us: micros(scheduler.margin()),
            }
        }
        Ok(Decision::Wait(reason)) => PermitReply::Wait { reason },
        Err(_) => PermitReply::NotLeader,
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
