//! Stream messages → records.

use std::time::Duration;

use async_nats::jetstream;
use serde_json::value::RawValue;
use shardline_wire::{Names, Record, headers};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A stored dispatch that cannot become a record (it will never deliver).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The subject is not `<prefix>.dispatch.<EVENT>.<shard>`.
    #[error("subject {0:?} is not a dispatch subject")]
    Subject(String),
    /// The payload is not JSON.
    #[error("payload is not JSON: {0}")]
    Payload(String),
    /// The message has no JetStream metadata.
    #[error("not a JetStream message: {0}")]
    NotJetStream(String),
}

/// Builds the [`Record`] a function receives from one stored dispatch.
///
/// `id` is `<stream>:<stream_seq>`; event and shard come from the subject;
/// seq, guild and receive time from the headers (the receive time falls back
/// to `stored_at` when the header is missing); `data` is the payload, byte
/// for byte.
///
/// ```
/// let names = shardline_wire::Names::new("discord", "app").unwrap();
/// let mut headers = async_nats::HeaderMap::new();
/// headers.insert(shardline_wire::headers::SEQ, "881");
/// headers.insert(shardline_wire::headers::GUILD_ID, "42");
/// let record = shardline_jetstream::bridge::record_from_parts(
///     &names, "DISCORD_APP", 12, "discord.dispatch.MESSAGE_CREATE.3", Some(&headers),
///     br#"{"content" : "hi"}"#, time::OffsetDateTime::UNIX_EPOCH, 1, false).unwrap();
/// assert_eq!(record.id, "DISCORD_APP:12");
/// assert_eq!((record.event.as_str(), record.shard, record.seq), ("MESSAGE_CREATE", 3, 881));
/// assert_eq!(record.data.get(), r#"{"content" : "hi"}"#);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn record_from_parts(
    names: &Names,
    stream: &str,
    stream_seq: u64,
    subject: &str,
    headers: Option<&async_nats::HeaderMap>,
    payload: &[u8],
    stored_at: OffsetDateTime,
    attempt: u32,
    replay: bool,
) -> Result<Record, RecordError> {
    let (event, shard) = names
        .parse_dispatch_subject(subject)
        .ok_or_else(|| RecordError::Subject(subject.to_owned()))?;
    let header = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let text =
        String::from_utf8(payload.to_vec()).map_err(|e| RecordError::Payload(e.to_string()))?;
    let data = RawValue::from_string(text).map_err(|e| RecordError::Payload(e.to_string()))?;
    Ok(Record {
        id: format!("{stream}:{stream_seq}"),
        event: event.to_owned(),
        shard,
        seq: header(headers::SEQ)
            .and_then(|s| s.parse().ok())
            .unwrap_or_default(),
        guild_id: header(headers::GUILD_ID).filter(|g| !g.is_empty()),
        received_at: header(headers::RECEIVED_AT).unwrap_or_else(|| {
            stored_at
                .format(&Rfc3339)
                .unwrap_or_else(|_| stored_at.unix_timestamp().to_string())
        }),
        attempt,
        replay,
        data,
    })
}

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
    pub(crate) fn new(names: &Names, msg: jetstream::Message) -> Result<Self, RecordError> {
        let info = msg
            .info()
            .map_err(|e| RecordError::NotJetStream(e.to_string()))?;
        let id = format!("{}:{}", info.stream, info.stream_sequence);
        let stream_seq = info.stream_sequence;
        let delivered = u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX);
        let stored_at = info.published;
        let (event, _) = names
            .parse_dispatch_subject(&msg.subject)
            .ok_or_else(|| RecordError::Subject(msg.subject.to_string()))?;
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

    pub(crate) fn record(&self, names: &Names) -> Result<Record, RecordError> {
        let stream = self
            .id
            .rsplit_once(':')
            .map(|(stream, _)| stream)
            .unwrap_or_default();
        record_from_parts(
            names,
            stream,
            self.stream_seq,
            &self.msg.subject,
            self.msg.headers.as_ref(),
            &self.msg.payload,
            self.stored_at,
            self.attempt(),
            false,
        )
    }

    pub(crate) fn age(&self, now: OffsetDateTime) -> Duration {
        Duration::try_from(now - self.stored_at).unwrap_or_default()
    }

    pub(crate) fn since_received(&self, now: OffsetDateTime) -> Duration {
        Duration::try_from(now - self.received_at.unwrap_or(self.stored_at)).unwrap_or_default()
    }
}
