//! Replay: read a selection of stored dispatches back, in stream order.
//!
//! A replay reads with an ordered, ephemeral consumer (no state left on the
//! server, no effect on live delivery), bounded by the stream's last sequence
//! when it started, so it ends even while live events keep arriving.

use std::future::Future;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use governor::{Quota, RateLimiter};
use shardline_wire::{Names, Record};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

use crate::record::{RecordError, StoredDispatch};

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The first retained event.
    First,
    /// A stream sequence.
    Sequence(u64),
    /// The first event stored at or after this time.
    Time(OffsetDateTime),
}

/// Where a replay ends (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The last stream sequence to include.
    Sequence(u64),
    /// The last stored time to include.
    Time(OffsetDateTime),
}

/// Which stored dispatches to replay.
///
/// ```
/// use shardline_jetstream::replay::{Selection, Start};
/// let selection = Selection {
///     start: Start::Sequence(100),
///     events: vec!["MESSAGE_CREATE".into()],
///     shards: vec![0, 3],
///     ..Selection::default()
/// };
/// assert_eq!(selection.filter_subjects(&shardline_wire::Names::new("discord", "app").unwrap()),
///     ["discord.dispatch.MESSAGE_CREATE.0", "discord.dispatch.MESSAGE_CREATE.3"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Where to start.
    pub start: Start,
    /// Where to stop (inclusive); the stream's end when the replay began otherwise.
    pub end: Option<End>,
    /// Event names; all when empty.
    pub events: Vec<String>,
    /// Guild ids; all when empty. Events without a guild never match a guild filter.
    pub guilds: Vec<String>,
    /// Shard ids; all when empty.
    pub shards: Vec<u32>,
}

impl Default for Selection {
    fn default() -> Self {
        Self {
            start: Start::First,
            end: None,
            events: Vec::new(),
            guilds: Vec::new(),
            shards: Vec::new(),
        }
    }
}

impl Selection {
    /// The consumer filter subjects for the event and shard filters (none: the whole stream).
    pub fn filter_subjects(&self, names: &Names) -> Vec<String> {
        let mut events: Vec<&str> = self.events.iter().map(String::as_str).collect();
        events.sort_unstable();
        events.dedup();
        let mut shards = self.shards.clone();
        shards.sort_unstable();
        shards.dedup();
        match (events.is_empty(), shards.is_empty()) {
            (true, true) => Vec::new(),
            (false, true) => events
                .iter()
                .map(|e| names.dispatch_filter(e, None))
                .collect(),
            (true, false) => shards
                .iter()
                .map(|s| names.dispatch_filter("*", Some(*s)))
                .collect(),
            (false, false) => events
                .iter()
                .flat_map(|e| {
                    shards
                        .iter()
                        .map(move |s| names.dispatch_filter(e, Some(*s)))
                })
                .collect(),
        }
    }

    fn wants_guild(&self, guild: Option<&str>) -> bool {
        self.guilds.is_empty() || guild.is_some_and(|g| self.guilds.iter().any(|want| want == g))
    }
}

/// Why a replay could not run or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The start lies before the oldest event the stream still holds.
    #[error(
        "{requested} is before the first retained event: the stream now starts at sequence \
         {first_sequence} ({first_time}); start there or later"
    )]
    BeforeRetention {
        /// The start that was asked for.
        requested: String,
        /// The first stream sequence still stored.
        first_sequence: u64,
        /// When that event was stored (RFC 3339).
        first_time: String,
    },
    /// No event of this name is stored.
    #[error("no {event} events are stored in {stream}; stored event types: {stored}")]
    UnknownEvent {
        /// The name that was asked for.
        event: String,
        /// The stream.
        stream: String,
        /// The stored event types with their counts.
        stored: String,
    },
    /// The end is before the start.
    #[error("the end of the range ({end}) is before its start ({start})")]
    EmptyRange {
        /// The start.
        start: String,
        /// The end.
        end: String,
    },
    /// The dispatch stream does not exist.
    #[error("stream {0} does not exist (has a gateway run with this prefix and app name?)")]
    NoStream(String),
    /// A stored message could not be read as a dispatch.
    #[error("reading a stored dispatch")]
    Record(#[from] RecordError),
    /// Talking to NATS failed.
    #[error("NATS: {0}")]
    Nats(String),
    /// The sink refused a record.
    #[error("writing the replayed records")]
    Sink(#[source] std::io::Error),
}

/// Receives replayed records in stream order.
pub trait RecordSink: Send {
    /// Takes one record; it counts as delivered when this returns `Ok`.
    fn send(&mut self, record: Record) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Takes one stored dispatch. The default builds the [`Record`] and calls
    /// [`RecordSink::send`]; sinks that write bytes can skip building it.
    fn send_stored(
        &mut self,
        stored: &StoredDispatch<'_>,
        names: &Names,
        replay: bool,
    ) -> impl Future<Output = Result<(), ReplayError>> + Send {
        let record = stored.to_record(names, 1, replay);
        async move { self.send(record?).await.map_err(ReplayError::Sink) }
    }
    /// Makes everything sent so far durable (flushes files).
    fn flush(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;
}

/// Writes records as JSON Lines, one record per line, in the shape functions receive.
#[derive(Debug)]
pub struct JsonLinesSink<W> {
    out: tokio::io::BufWriter<W>,
    line: Vec<u8>,
}

impl<W: AsyncWrite + Unpin + Send> JsonLinesSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out: tokio::io::BufWriter::with_capacity(256 * 1024, out),
            line: Vec::with_capacity(4096),
        }
    }
}

impl<W: AsyncWrite + Unpin + Send> RecordSink for JsonLinesSink<W> {
    async fn send(&mut self, record: Record) -> std::io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, &record)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line).await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush().await
    }

    async fn send_stored(
        &mut self,
        stored: &StoredDispatch<'_>,
        names: &Names,
        replay: bool,
    ) -> Result<(), ReplayError> {
        self.line.clear();
        stored.write_json_line(names, 1, replay, &mut self.line)?;
        self.out
            .write_all(&self.line)
            .await
            .map_err(ReplayError::Sink)
    }
}

/// Counts records without sending them (`--dry-run`).
#[derive(Debug, Default)]
pub struct CountingSink {
    /// Records seen.
    pub count: u64,
}

impl RecordSink for CountingSink {
    async fn send(&mut self, _record: Record) -> std::io::Result<()> {
        self.count += 1;
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How a replay sends.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// At most this many records per second; unlimited when `None`.
    pub rate_per_second: Option<NonZeroU32>,
    /// Mark records `replay: true` (the default for `shardline replay`).
    pub mark_replay: bool,
}

/// Where a replay is, reported periodically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Records delivered to the sink.
    pub delivered: u64,
    /// Stored events read (including those a guild filter skipped).
    pub scanned: u64,
    /// Stored events the selection covers at most (from the consumer's pending count).
    pub total: u64,
    /// The last stream sequence read.
    pub last_sequence: Option<u64>,
}

/// How a replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// Final counts.
    pub progress: ReplayProgress,
    /// `None` when the selection was replayed completely; otherwise the stream
    /// sequence to pass to `--resume-from` to continue.
    pub resume_from: Option<u64>,
}

/// Replays `selection` from the dispatch stream into `sink`.
///
/// Stops early (with [`ReplayOutcome::resume_from`] set) when `shutdown` fires.
/// `on_progress` is called after every record and at the end; it should be cheap.
pub async fn replay<S: RecordSink>(
    js: &jetstream::Context,
    names: &Names,
    selection: &Selection,
    options: &ReplayOptions,
    sink: &mut S,
    shutdown: &CancellationToken,
    mut on_progress: impl FnMut(&ReplayProgress),
) -> Result<ReplayOutcome, ReplayError> {
    let stream_name = names.dispatch_stream();
    let mut stream = js
        .get_stream(&stream_name)
        .await
        .map_err(|_| ReplayError::NoStream(stream_name.clone()))?;
    let state = stream
        .info()
        .await
        .map_err(|e| ReplayError::Nats(e.to_string()))?
        .state
        .clone();
    check_range(selection, &state)?;
    check_events(&stream, names, selection).await?;

    let mut progress = ReplayProgress {
        delivered: 0,
        scanned: 0,
        total: 0,
        last_sequence: None,
    };
    let snapshot_last = state.last_sequence;
    if state.messages == 0 {
        on_progress(&progress);
        return Ok(ReplayOutcome {
            progress,
            resume_from: None,
        });
    }
    let deliver_policy = match selection.start {
        Start::First => consumer::DeliverPolicy::All,
        Start::Sequence(start_sequence) => {
            consumer::DeliverPolicy::ByStartSequence { start_sequence }
        }
        Start::Time(start_time) => consumer::DeliverPolicy::ByStartTime { start_time },
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subjects: selection.filter_subjects(names),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| ReplayError::Nats(e.to_string()))?;
    progress.total = consumer.cached_info().num_pending;
    if progress.total == 0 {
        on_progress(&progress);
        return Ok(ReplayOutcome {
            progress,
            resume_from: None,
        });
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| ReplayError::Nats(e.to_string()))?;
    // Read ahead in its own task, so fetching and writing overlap.
    let (ahead, mut messages_rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let reader = tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            if ahead.send(message).await.is_err() {
                break;
            }
        }
    });
    let _reader = AbortOnDrop(reader);
    let limiter = options
        .rate_per_second
        .map(|rate| RateLimiter::direct(Quota::per_second(rate)));

    let mut interrupted = false;
    loop {
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => { interrupted = true; break; }
            next = messages_rx.recv() => next,
        };
        let Some(message) = next else { break };
        let message = message.map_err(|e| ReplayError::Nats(e.to_string()))?;
        let info = message
            .info()
            .map_err(|e| ReplayError::Nats(e.to_string()))?;
        let sequence = info.stream_sequence;
        let pending = info.pending;
        if sequence > snapshot_last || past_end(selection.end, sequence, info.published) {
            break;
        }
        let stored = StoredDispatch {
            stream: &stream_name,
            stream_sequence: sequence,
            subject: message.subject.as_str(),
            headers: message.headers.as_ref(),
            payload: &message.payload,
        };
        if selection.wants_guild(stored.guild_id()) {
            if let Some(limiter) = &limiter {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => { interrupted = true; break; }
                    () = limiter.until_ready() => {}
                }
            }
            sink.send_stored(&stored, names, options.mark_replay)
                .await?;
            progress.delivered += 1;
        }
        progress.scanned += 1;
        progress.last_sequence = Some(sequence);
        on_progress(&progress);
        if pending == 0 || sequence == snapshot_last {
            break;
        }
    }
    sink.flush().await.map_err(ReplayError::Sink)?;
    on_progress(&progress);
    let resume_from = interrupted.then(|| match progress.last_sequence {
        Some(last) => last + 1,
        None => match selection.start {
            Start::Sequence(start) => start,
            _ => state.first_sequence,
        },
    });
    Ok(ReplayOutcome {
        progress,
        resume_from,
    })
}

/// How many messages the reader task may fetch ahead of the sink.
const READ_AHEAD: usize = 4096;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn past_end(end: Option<End>, sequence: u64, published: OffsetDateTime) -> bool {
    match end {
        Some(End::Sequence(last)) => sequence > last,
        Some(End::Time(last)) => published > last,
        None => false,
    }
}

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_else(|_| time.to_string())
}

fn describe_start(start: Start) -> String {
    match start {
        Start::First => "the first event".into(),
        Start::Sequence(seq) => format!("sequence {seq}"),
        Start::Time(time) => rfc3339(time),
    }
}

fn check_range(selection: &Selection, state: &jetstream::stream::State) -> Result<(), ReplayError> {
    // Events before the first stored one are gone only if something was removed.
    let retention_removed = state.first_sequence > 1;
    let too_early = match selection.start {
        Start::First => false,
        Start::Sequence(seq) => seq < state.first_sequence,
        Start::Time(time) => retention_removed && time < state.first_timestamp,
    };
    if too_early {
        return Err(ReplayError::BeforeRetention {
            requested: describe_start(selection.start),
            first_sequence: state.first_sequence,
            first_time: rfc3339(state.first_timestamp),
        });
    }
    let empty = match (selection.start, selection.end) {
        (Start::Sequence(start), Some(End::Sequence(end))) => end < start,
        (Start::Time(start), Some(End::Time(end))) => end < start,
        _ => false,
    };
    if empty {
        let end = match selection.end {
            Some(End::Sequence(seq)) => format!("sequence {seq}"),
            Some(End::Time(time)) => rfc3339(time),
            None => String::new(),
        };
        return Err(ReplayError::EmptyRange {
            start: describe_start(selection.start),
            end,
        });
    }
    Ok(())
}

async fn check_events(
    stream: &jetstream::stream::Stream,
    names: &Names,
    selection: &Selection,
) -> Result<(), ReplayError> {
    for event in &selection.events {
        let counts = subject_counts(stream, &names.dispatch_filter(event, None)).await?;
        if counts.is_empty() {
            let mut by_event: std::collections::BTreeMap<String, u64> = Default::default();
            for (subject, count) in subject_counts(stream, &names.dispatch_wildcard()).await? {
                if let Some((name, _)) = names.parse_dispatch_subject(&subject) {
                    *by_event.entry(name.to_owned()).or_default() += count;
                }
            }
            let stored = if by_event.is_empty() {
                "none (the stream is empty)".to_owned()
            } else {
                by_event
                    .iter()
                    .map(|(name, count)| format!("{name} ({count})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(ReplayError::UnknownEvent {
                event: event.clone(),
                stream: names.dispatch_stream(),
                stored,
            });
        }
    }
    Ok(())
}

async fn subject_counts(
    stream: &jetstream::stream::Stream,
    filter: &str,
) -> Result<Vec<(String, u64)>, ReplayError> {
    use futures::TryStreamExt as _;
    let info = stream
        .info_with_subjects(filter)
        .await
        .map_err(|e| ReplayError::Nats(e.to_string()))?;
    let subjects: Vec<(String, usize)> = info
        .try_collect()
        .await
        .map_err(|e| ReplayError::Nats(e.to_string()))?;
    Ok(subjects
        .into_iter()
        .map(|(subject, count)| (subject, count as u64))
        .collect())
}

/// A rate and time-left estimate for progress lines.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    started: Instant,
}

impl Default for Throughput {
    fn default() -> Self {
        Self {
            started: Instant::now(),
        }
    }
}

impl Throughput {
    /// Records per second so far, and the time left for `progress.total`.
    pub fn estimate(&self, progress: &ReplayProgress) -> (f64, Option<Duration>) {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = progress.scanned as f64 / elapsed;
        let left = progress.total.saturating_sub(progress.scanned);
        let eta = (rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / rate));
        (rate, eta)
    }
}
