//! Stream messages → records.

use std::time::Duration;

use async_nats::jetstream;
use shardline_wire::{Names, headers};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{RecordError, StoredDispatch};

/// A message the bridge holds, with what it needs to know about it.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) msg: jetstream::Message,
    pub(crate) id: String,
    pub(crate) stream_seq: u64,
    pub(crate) event: String,
    pub(crate) guild: Option<String>,
    pub(crate) stored_at: OffsetDateTime,
    pub(crate) received_at: Option<OffsetDateTime>,
    /// Server-side delivery count of this copy.
    pub(crate) delivered: u32,
    /// Retries the bridge made itself without a redelivery (per-guild lanes).
    pub(crate) local_retries: u32,
    /// Approximate size in a batch body.
    pub(crate) size: usize,
}

impl Held {
    /// Checks the message (a dispatch subject, a JSON payload) and reads
    /// what the bridge needs from its metadata and headers.
    pub(crate) fn new(names: &Names, msg: jetstream::Message) -> Result<Self, RecordError> {
        let info = msg
            .info()
            .map_err(|_| RecordError::Subject(msg.subject.to_string()))?;
        let id = format!("{}:{}", info.stream, info.stream_sequence);
        let stream_seq = info.stream_sequence;
        let delivered = u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX);
        let stored_at = info.published;
        let (event, _) = names
            .parse_dispatch_subject(&msg.subject)
            .ok_or_else(|| RecordError::Subject(msg.subject.to_string()))?;
        // Validated once here; batch bodies then embed the bytes as they are.
        serde_json::from_slice::<serde::de::IgnoredAny>(&msg.payload)
            .map_err(|_| RecordError::Payload(stream_seq))?;
        let header = |name: &str| msg.headers.as_ref().and_then(|h| h.get(name));
        let guild = header(headers::GUILD_ID)
            .map(|v| v.as_str().to_owned())
            .filter(|g| !g.is_empty());
        let received_at = header(headers::RECEIVED_AT)
            .and_then(|v| OffsetDateTime::parse(v.as_str(), &Rfc3339).ok());
        Ok(Self {
            id,
            stream_seq,
            event: event.to_owned(),
            guild,
            stored_at,
            received_at,
            delivered,
            local_retries: 0,
            size: msg.payload.len() + 256,
            msg,
        })
    }

    /// Attempts so far, counting this one.
    pub(crate) fn attempt(&self) -> u32 {
        self.delivered.saturating_add(self.local_retries)
    }

    /// The stored dispatch, for building its record.
    pub(crate) fn stored(&self) -> StoredDispatch<'_> {
        StoredDispatch {
            stream: self.id.rsplit_once(':').map(|(s, _)| s).unwrap_or_default(),
            stream_sequence: self.stream_seq,
            subject: &self.msg.subject,
            headers: self.msg.headers.as_ref(),
            payload: &self.msg.payload,
        }
    }

    pub(crate) fn age(&self, now: OffsetDateTime) -> Duration {
        Duration::try_from(now - self.stored_at).unwrap_or_default()
    }

    pub(crate) fn since_received(&self, now: OffsetDateTime) -> Duration {
        Duration::try_from(now - self.received_at.unwrap_or(self.stored_at)).unwrap_or_default()
    }
}
