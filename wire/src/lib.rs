//! The wire contract between shardline's parts.
//!
//! Everything that crosses a process boundary is named here and nowhere else:
//! the NATS subject and header names the gateway publishes with, the record
//! shape a bot function receives, the partial-failure answer it returns, and
//! the Standard Webhooks signature that HTTP deliveries carry. The gateway,
//! the bridge and the Lambda SDK all depend on this crate and on nothing of
//! each other, so a Lambda binary stays small.
//!
//! # Layout
//!
//! - [`Names`]: every subject, stream and bucket name under one prefix.
//! - [`headers`]: the header names on each published dispatch.
//! - [`Record`], [`Batch`], [`BatchResponse`]: what a function receives and answers.
//! - [`webhook`]: Standard Webhooks signing and verification.
//!
//! The data path: gateway → `Names::dispatch_subject` + [`headers`] → JetStream
//! → bridge builds [`Record`]s into a [`Batch`] → function → [`BatchResponse`].

mod names;
mod record;
pub mod webhook;

pub use names::{InvalidName, Names, shard_for_guild};
pub use record::{Batch, BatchItemFailure, BatchResponse, Record};

/// Header names carried by every dispatch published to JetStream.
pub mod headers {
    /// JetStream's de-duplication id: `<shard>:<session_id>:<seq>`.
    pub const MSG_ID: &str = "Nats-Msg-Id";
    /// The shard id that received the dispatch.
    pub const SHARD: &str = "Discord-Shard";
    /// The gateway sequence number (`s`) of the dispatch.
    pub const SEQ: &str = "Discord-Seq";
    /// The gateway session id the dispatch arrived on.
    pub const SESSION: &str = "Discord-Session";
    /// The guild id from `d.guild_id`, when the event has one.
    pub const GUILD_ID: &str = "Discord-Guild-Id";
    /// When the gateway read the frame, RFC 3339 with nanoseconds, UTC.
    pub const RECEIVED_AT: &str = "Discord-Received-At";
    /// Present (value `true`) on dispatches that an old and a new shard set
    /// may both have published during a reshard overlap.
    pub const RESHARD_OVERLAP: &str = "Discord-Reshard-Overlap";
    /// The shard count of the shard set that published the dispatch.
    pub const SHARD_COUNT: &str = "Discord-Shard-Count";

    /// The de-duplication id for one dispatch.
    ///
    /// ```
    /// assert_eq!(shardline_wire::headers::msg_id(3, "abc", 881), "3:abc:881");
    /// ```
    pub fn msg_id(shard: u32, session_id: &str, seq: u64) -> String {
        format!("{shard}:{session_id}:{seq}")
    }
}
