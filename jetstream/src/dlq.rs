//! The dead-letter stream: see why events failed, send them back once the bug
//! is fixed, and remove them only when asked.

use std::collections::BTreeMap;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use shardline_wire::{Names, Record, headers};
use time::OffsetDateTime;

use crate::bridge::DeadLetter;
use crate::record::StoredDispatch;
use crate::resend::RouteSender;

/// Which dead letters an operation applies to. Empty lists match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DlqFilter {
    /// Routes that gave up.
    pub routes: Vec<String>,
    /// Event names.
    pub events: Vec<String>,
    /// Guild ids.
    pub guilds: Vec<String>,
    /// Shard ids.
    pub shards: Vec<u32>,
    /// Dead-letter stream sequences.
    pub sequences: Vec<u64>,
    /// Only dead letters stored at or after this time.
    pub since: Option<OffsetDateTime>,
}

impl DlqFilter {
    /// `true` when no filter is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn matches(&self, names: &Names, entry: &DlqEntry) -> bool {
        let (event, shard) = names
            .parse_dispatch_subject(&entry.letter.subject)
            .unwrap_or(("", u32::MAX));
        let guild = entry.guild_id();
        (self.events.is_empty() || self.events.iter().any(|e| e == event))
            && (self.shards.is_empty() || self.shards.contains(&shard))
            && (self.guilds.is_empty() || guild.is_some_and(|g| self.guilds.iter().any(|w| w == g)))
            && (self.sequences.is_empty() || self.sequences.contains(&entry.sequence))
            && self.since.is_none_or(|since| entry.stored_at >= since)
    }
}

/// One stored dead letter.
#[derive(Debug, Clone)]
pub struct DlqEntry {
    /// Its sequence in the dead-letter stream.
    pub sequence: u64,
    /// When it was dead-lettered (stored).
    pub stored_at: OffsetDateTime,
    /// The envelope and the original dispatch.
    pub letter: DeadLetter,
}

impl DlqEntry {
    /// The original dispatch's guild id, when it had one.
    pub fn guild_id(&self) -> Option<&str> {
        self.letter
            .headers
            .get(headers::GUILD_ID)
            .map(|v| v.as_str())
    }

    /// The original event name.
    pub fn event<'a>(&'a self, names: &Names) -> &'a str {
        names
            .parse_dispatch_subject(&self.letter.subject)
            .map(|(event, _)| event)
            .unwrap_or("?")
    }

    /// The record a function receives when this dead letter is sent again.
    pub fn to_record(&self, names: &Names) -> Result<Record, DlqError> {
        StoredDispatch {
            stream: &self.letter.stream,
            stream_sequence: self.letter.stream_seq,
            subject: &self.letter.subject,
            headers: Some(&self.letter.headers),
            payload: &self.letter.payload,
        }
        .to_record(names, 1, true)
        .map_err(|e| DlqError::Invalid {
            sequence: self.sequence,
            reason: e.to_string(),
        })
    }
}

/// Why a dead-letter operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DlqError {
    /// Talking to NATS failed.
    #[error("NATS: {0}")]
    Nats(String),
    /// No dead letter has this sequence.
    #[error("no dead letter with sequence {0} in {1}")]
    NotFound(u64, String),
    /// A stored message is not a valid dead letter.
    #[error("dead letter {sequence} cannot be read: {reason}")]
    Invalid {
        /// Its sequence.
        sequence: u64,
        /// What is wrong.
        reason: String,
    },
    /// A dead letter names a route the configuration does not define.
    #[error(
        "dead letter {sequence} is from route {route:?}, which the bridge configuration does not \
         define (routes: {known}); pass --to-route to choose one"
    )]
    UnknownRoute {
        /// Its sequence.
        sequence: u64,
        /// The route it names.
        route: String,
        /// The configured routes.
        known: String,
    },
}

fn nats(error: impl std::fmt::Display) -> DlqError {
    DlqError::Nats(error.to_string())
}

/// Reads every dead letter matching `filter`, oldest first, calling `each`.
/// Returns how many matched.
pub async fn scan(
    js: &jetstream::Context,
    names: &Names,
    filter: &DlqFilter,
    mut each: impl FnMut(DlqEntry),
) -> Result<u64, DlqError> {
    let stream_name = names.dlq_stream();
    let mut stream = match js.get_stream(&stream_name).await {
        Ok(stream) => stream,
        // No dead-letter stream yet: nothing was ever dead-lettered.
        Err(_) => return Ok(0),
    };
    let last = stream.info().await.map_err(nats)?.state.last_sequence;
    let filter_subjects: Vec<String> = filter
        .routes
        .iter()
        .map(|route| names.dlq_subject(route))
        .collect();
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subjects,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(0);
    }
    let mut messages = consumer.messages().await.map_err(nats)?;
    let mut matched = 0;
    while let Some(message) = messages.next().await {
        let message = message.map_err(nats)?;
        let info = message.info().map_err(nats)?;
        let (sequence, pending, stored_at) = (info.stream_sequence, info.pending, info.published);
        if sequence > last {
            break;
        }
        let letter = DeadLetter::from_parts(
            message.headers.as_ref().unwrap_or(&Default::default()),
            message.payload.clone(),
        )
        .map_err(|e| DlqError::Invalid {
            sequence,
            reason: e.to_string(),
        })?;
        let entry = DlqEntry {
            sequence,
            stored_at,
            letter,
        };
        if filter.matches(names, &entry) {
            matched += 1;
            each(entry);
        }
        if pending == 0 || sequence == last {
            break;
        }
    }
    Ok(matched)
}

/// One dead letter by its sequence.
pub async fn get(
    js: &jetstream::Context,
    names: &Names,
    sequence: u64,
) -> Result<DlqEntry, DlqError> {
    let stream_name = names.dlq_stream();
    let stream = js
        .get_stream(&stream_name)
        .await
        .map_err(|_| DlqError::NotFound(sequence, stream_name.clone()))?;
    let message = stream
        .get_raw_message(sequence)
        .await
        .map_err(|_| DlqError::NotFound(sequence, stream_name.clone()))?;
    let letter =
        DeadLetter::from_parts(&message.headers, message.payload.clone()).map_err(|e| {
            DlqError::Invalid {
                sequence,
                reason: e.to_string(),
            }
        })?;
    Ok(DlqEntry {
        sequence,
        stored_at: message.time,
        letter,
    })
}

/// Removes these dead letters. Returns how many were removed.
pub async fn remove(
    js: &jetstream::Context,
    names: &Names,
    sequences: &[u64],
) -> Result<u64, DlqError> {
    if sequences.is_empty() {
        return Ok(0);
    }
    let stream = js.get_stream(names.dlq_stream()).await.map_err(nats)?;
    let mut removed = 0;
    for &sequence in sequences {
        if stream.delete_message(sequence).await.map_err(nats)? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// What a redrive did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RedriveReport {
    /// Dead letters delivered and removed from the dead-letter stream.
    pub delivered: u64,
    /// Dead letters that failed again (kept), with the reason.
    pub failed: Vec<(u64, String)>,
}

/// Sends matching dead letters back through a route (their own, or
/// `senders[override]`), removing each from the dead-letter stream once its
/// target accepted it. Dead letters that fail again stay where they are.
pub async fn redrive(
    js: &jetstream::Context,
    names: &Names,
    filter: &DlqFilter,
    senders: &BTreeMap<String, RouteSender>,
    to_route: Option<&str>,
) -> Result<RedriveReport, DlqError> {
    let mut entries = Vec::new();
    scan(js, names, filter, |entry| entries.push(entry)).await?;
    let known = || senders.keys().cloned().collect::<Vec<_>>().join(", ");
    // Group by the route that will receive them, keeping stream order.
    let mut groups: BTreeMap<&str, Vec<&DlqEntry>> = BTreeMap::new();
    for entry in &entries {
        let route = to_route.unwrap_or(&entry.letter.route);
        if !senders.contains_key(route) {
            return Err(DlqError::UnknownRoute {
                sequence: entry.sequence,
                route: route.to_owned(),
                known: known(),
            });
        }
        groups.entry(route).or_default().push(entry);
    }
    let mut report = RedriveReport::default();
    for (route, entries) in groups {
        let sender = &senders[route];
        for chunk in entries.chunks(sender.max_records()) {
            let mut records = Vec::with_capacity(chunk.len());
            let mut by_id = BTreeMap::new();
            for entry in chunk {
                let record = entry.to_record(names)?;
                by_id.insert(record.id.clone(), entry.sequence);
                records.push(record);
            }
            let sent = sender.send(records).await;
            let delivered: Vec<u64> = sent
                .delivered
                .iter()
                .filter_map(|id| by_id.get(id).copied())
                .collect();
            report.delivered += remove(js, names, &delivered).await?;
            for (id, reason) in sent.failed {
                if let Some(sequence) = by_id.get(&id) {
                    report.failed.push((*sequence, reason));
                }
            }
        }
    }
    Ok(report)
}
