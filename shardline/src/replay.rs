//! `shardline replay`: get back any stored event.

use std::io::IsTerminal as _;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use shardline_jetstream::replay::{
    self, CountingSink, End, JsonLinesSink, RecordSink, ReplayOptions, ReplayOutcome,
    ReplayProgress, Selection, Start, Throughput,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::nats::NatsArgs;

/// Options of `shardline replay`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("start").args(["since", "from", "from_seq", "resume_from"])))]
#[command(group(clap::ArgGroup::new("end").args(["to", "to_seq"])))]
pub struct ReplayArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// Start this long ago (e.g. `2h`, `30m`, `1d`).
    #[arg(long, value_parser = parse_duration)]
    since: Option<Duration>,
    /// Start at this time (RFC 3339, e.g. `2026-11-25T10:00:00Z`).
    #[arg(long, value_parser = parse_time)]
    from: Option<OffsetDateTime>,
    /// End at this time, inclusive (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    to: Option<OffsetDateTime>,
    /// Start at this stream sequence.
    #[arg(long)]
    from_seq: Option<u64>,
    /// End at this stream sequence, inclusive.
    #[arg(long)]
    to_seq: Option<u64>,
    /// Continue an interrupted replay from the sequence it printed (keeps the other filters).
    #[arg(long)]
    resume_from: Option<u64>,
    /// Only these event types (repeat or comma-separate: `MESSAGE_CREATE,INTERACTION_CREATE`).
    #[arg(long = "event", value_delimiter = ',')]
    events: Vec<String>,
    /// Only these guild ids (repeat or comma-separate).
    #[arg(long = "guild", value_delimiter = ',')]
    guilds: Vec<String>,
    /// Only these shard ids (repeat or comma-separate).
    #[arg(long = "shard", value_delimiter = ',')]
    shards: Vec<u32>,
    /// Write JSON Lines to this file (standard output when absent or `-`). With
    /// `--resume-from` the file is appended to.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Send to this bridge route's target (with `replay: true`, the route's
    /// retries and a budget of its own) instead of writing JSON Lines.
    #[arg(long, conflicts_with = "output")]
    to_route: Option<String>,
    /// The bridge configuration that defines the routes (with `--to-route`).
    #[arg(long, env = "SHARDLINE_BRIDGE_CONFIG", default_value = "bridge.toml")]
    config: PathBuf,
    /// At most this many records per second.
    #[arg(long)]
    rate: Option<NonZeroU32>,
    /// Count what would be sent, send nothing.
    #[arg(long)]
    dry_run: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    text.parse::<humantime::Duration>()
        .map(Into::into)
        .map_err(|e| format!("{e} (write e.g. 2h, 30m, 1d)"))
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| format!("{e} (write RFC 3339, e.g. 2026-11-25T10:00:00Z)"))
}

impl ReplayArgs {
    fn selection(&self) -> Selection {
        let start = if let Some(seq) = self.resume_from.or(self.from_seq) {
            Start::Sequence(seq)
        } else if let Some(time) = self.from {
            Start::Time(time)
        } else if let Some(ago) = self.since {
            Start::Time(OffsetDateTime::now_utc() - ago)
        } else {
            Start::First
        };
        let end = match (self.to_seq, self.to) {
            (Some(seq), _) => Some(End::Sequence(seq)),
            (None, Some(time)) => Some(End::Time(time)),
            (None, None) => None,
        };
        Selection {
            start,
            end,
            events: self.events.clone(),
            guilds: self.guilds.clone(),
            shards: self.shards.clone(),
        }
    }
}

/// Runs a replay; exits non-zero when interrupted, after saying how to resume.
pub async fn run(args: ReplayArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let names = args.nats.names()?;
    let client = args.nats.connect().await?;
    let js = async_nats::jetstream::new(client);
    let selection = args.selection();
    let options = ReplayOptions {
        rate_per_second: args.rate,
        mark_replay: true,
    };
    let mut reporter = Reporter::new();
    let outcome = if let Some(route) = &args.to_route {
        let routes = crate::dlq::RouteArgs::new(args.config.clone(), Some(route.clone()));
        let mut senders = routes.senders(&shutdown).await?;
        let mut sink = senders
            .remove(route)
            .expect("senders() checked that the route exists");
        let outcome = run_into(
            &js,
            &names,
            &selection,
            &options,
            &mut sink,
            &shutdown,
            &mut reporter,
        )
        .await?;
        eprintln!(
            "sent {} records to route {route}",
            outcome.progress.delivered
        );
        outcome
    } else if args.dry_run {
        let mut sink = CountingSink::default();
        let outcome = run_into(
            &js,
            &names,
            &selection,
            &options,
            &mut sink,
            &shutdown,
            &mut reporter,
        )
        .await?;
        eprintln!("dry run: {} records would be sent", sink.count);
        outcome
    } else {
        match args
            .output
            .as_deref()
            .filter(|path| *path != std::path::Path::new("-"))
        {
            Some(path) => {
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(args.resume_from.is_some())
                    .truncate(args.resume_from.is_none())
                    .open(path)
                    .await
                    .with_context(|| format!("opening --output {}", path.display()))?;
                let mut sink = JsonLinesSink::new(file);
                run_into(
                    &js,
                    &names,
                    &selection,
                    &options,
                    &mut sink,
                    &shutdown,
                    &mut reporter,
                )
                .await?
            }
            None => {
                let mut sink = JsonLinesSink::new(tokio::io::stdout());
                run_into(
                    &js,
                    &names,
                    &selection,
                    &options,
                    &mut sink,
                    &shutdown,
                    &mut reporter,
                )
                .await?
            }
        }
    };
    reporter.finish(&outcome.progress);
    match outcome.resume_from {
        None => {
            eprintln!(
                "replayed {} records ({} scanned)",
                outcome.progress.delivered, outcome.progress.scanned
            );
            Ok(())
        }
        Some(next) => {
            eprintln!(
                "replay interrupted after {} records; continue with:\n  {}",
                outcome.progress.delivered,
                resume_command(next)
            );
            std::process::exit(130);
        }
    }
}

async fn run_into<S: RecordSink>(
    js: &async_nats::jetstream::Context,
    names: &shardline_wire::Names,
    selection: &Selection,
    options: &ReplayOptions,
    sink: &mut S,
    shutdown: &CancellationToken,
    reporter: &mut Reporter,
) -> anyhow::Result<ReplayOutcome> {
    Ok(
        replay::replay(js, names, selection, options, sink, shutdown, |p| {
            reporter.update(p)
        })
        .await?,
    )
}

/// The command line that continues from `next`: this one, with its start replaced.
fn resume_command(next: u64) -> String {
    let mut words = Vec::new();
    let mut args = std::env::args();
    words.push(args.next().unwrap_or_else(|| "shardline".into()));
    let mut skip_value = false;
    for arg in args {
        if skip_value {
            skip_value = false;
            continue;
        }
        let flag = arg.split('=').next().unwrap_or_default();
        if matches!(flag, "--since" | "--from" | "--from-seq" | "--resume-from") {
            skip_value = !arg.contains('=');
            continue;
        }
        words.push(arg);
    }
    words.push(format!("--resume-from {next}"));
    words.join(" ")
}

/// Shows progress: a bar on a terminal, a plain line every 5 s otherwise.
struct Reporter {
    bar: Option<indicatif::ProgressBar>,
    throughput: Throughput,
    last_line: Instant,
}

impl Reporter {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} events  {per_sec}  {eta} left  {msg}",
                )
                .expect("the progress template is valid"),
            );
            bar
        });
        Self {
            bar,
            throughput: Throughput::default(),
            last_line: Instant::now(),
        }
    }

    fn update(&mut self, progress: &ReplayProgress) {
        if let Some(bar) = &self.bar {
            bar.set_length(progress.total);
            bar.set_position(progress.scanned);
            bar.set_message(format!("{} sent", progress.delivered));
        } else if self.last_line.elapsed() >= Duration::from_secs(5) {
            self.last_line = Instant::now();
            let (rate, eta) = self.throughput.estimate(progress);
            eprintln!(
                "replay: {}/{} scanned, {} sent, {rate:.0}/s, {} left, at stream sequence {}",
                progress.scanned,
                progress.total,
                progress.delivered,
                eta.map(
                    |d| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
                )
                .unwrap_or_else(|| "unknown".into()),
                progress.last_sequence.unwrap_or_default(),
            );
        }
    }

    fn finish(&self, progress: &ReplayProgress) {
        if let Some(bar) = &self.bar {
            bar.set_position(progress.scanned);
            bar.finish();
        }
    }
}
