//! Publishing one dispatch to JetStream with its de-duplication id and headers.

use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture};
use bytes::Bytes;
use shardline_wire::{Names, headers};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The error of a publish or of its acknowledgement.
pub type PublishError = async_nats::jetstream::context::PublishError;

/// One dispatch as read from the gateway: the envelope fields and the raw `d`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    /// The shard that received it.
    pub shard: u32,
    /// The session it arrived on.
    pub session_id: Arc<str>,
    /// Its gateway sequence number.
    pub seq: u64,
    /// The event name (`t`).
    pub event: Box<str>,
    /// `d.guild_id`, when present.
    pub guild_id: Option<u64>,
    /// When the shard read the frame.
    pub received_at: OffsetDateTime,
    /// The raw `d` JSON bytes, as received.
    pub payload: Bytes,
}

impl Dispatch {
    /// The headers this dispatch is published with.
    ///
    /// ```
    /// use shardline_gateway::Dispatch;
    /// let d = Dispatch {
    ///     shard: 3, session_id: "abc".into(), seq: 881, event: "MESSAGE_CREATE".into(),
    ///     guild_id: Some(42), received_at: time::OffsetDateTime::UNIX_EPOCH, payload: "{}".into(),
    /// };
    /// let h = d.headers();
    /// assert_eq!(h.get("Nats-Msg-Id").unwrap().as_str(), "3:abc:881");
    /// assert_eq!(h.get("Discord-Guild-Id").unwrap().as_str(), "42");
    /// ```
    pub fn headers(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            headers::MSG_ID,
            headers::msg_id(self.shard, &self.session_id, self.seq).as_str(),
        );
        map.insert(headers::SHARD, self.shard.to_string().as_str());
        map.insert(headers::SEQ, self.seq.to_string().as_str());
        map.insert(headers::SESSION, &*self.session_id);
        if let Some(guild) = self.guild_id {
            map.insert(headers::GUILD_ID, guild.to_string().as_str());
        }
        let at = self
            .received_at
            .format(&Rfc3339)
            .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"));
        map.insert(headers::RECEIVED_AT, at.as_str());
        map
    }
}

/// Publishes dispatches to `<prefix>.dispatch.<EVENT>.<shard>`.
///
/// [`DispatchPublisher::publish`] returns once the message is handed to the
/// client; the returned future resolves with JetStream's acknowledgement, so
/// callers can keep many publishes in flight.
///
/// ```no_run
/// # async fn demo(js: async_nats::jetstream::Context, dispatch: shardline_gateway::Dispatch) -> Result<(), Box<dyn std::error::Error>> {
/// use shardline_gateway::DispatchPublisher;
/// let publisher = DispatchPublisher::new(js, shardline_wire::Names::new("discord", "mybot")?);
/// let ack = publisher.publish(&dispatch).await?;
/// let ack = ack.await?;
/// println!("stored as {} (duplicate: {})", ack.sequence, ack.duplicate);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DispatchPublisher {
    js: jetstream::Context,
    names: Names,
}

impl DispatchPublisher {
    /// A publisher on `js` under `names`.
    pub fn new(js: jetstream::Context, names: Names) -> Self {
        Self { js, names }
    }

    /// The names it publishes under.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Sends `dispatch`; await the returned future for the acknowledgement.
    pub async fn publish(&self, dispatch: &Dispatch) -> Result<PublishAckFuture, PublishError> {
        let subject = self.names.dispatch_subject(&dispatch.event, dispatch.shard);
        self.js
            .publish_with_headers(subject, dispatch.headers(), dispatch.payload.clone())
            .await
    }
}
