//! `shardline dlq`: see why events failed, send them back, remove them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use shardline_jetstream::dlq::{self, DlqEntry, DlqFilter};
use shardline_jetstream::{BridgeConfig, RouteSender};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::nats::NatsArgs;

/// Options of `shardline dlq`.
#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DlqCommand {
    /// List dead letters with the reason each one failed.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter in full, with its original payload.
    Show {
        /// The dead letter's sequence (first column of `list`).
        sequence: u64,
    },
    /// Send dead letters back through their route (or another), removing each once delivered.
    Redrive {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        routes: RouteArgs,
    },
    /// Remove dead letters. Needs a filter or --all, and --yes.
    Purge {
        #[command(flatten)]
        filter: FilterArgs,
        /// Remove every dead letter.
        #[arg(long)]
        all: bool,
        /// Really remove them (without it, only says what would be removed).
        #[arg(long)]
        yes: bool,
    },
}

/// Which dead letters.
#[derive(Debug, Clone, clap::Args)]
pub struct FilterArgs {
    /// Only dead letters of these routes.
    #[arg(long = "route", value_delimiter = ',')]
    routes: Vec<String>,
    /// Only these event types.
    #[arg(long = "event", value_delimiter = ',')]
    events: Vec<String>,
    /// Only these guild ids.
    #[arg(long = "guild", value_delimiter = ',')]
    guilds: Vec<String>,
    /// Only these shard ids.
    #[arg(long = "shard", value_delimiter = ',')]
    shards: Vec<u32>,
    /// Only these dead-letter sequences.
    #[arg(long = "seq", value_delimiter = ',')]
    sequences: Vec<u64>,
    /// Only dead letters from this long ago or later (e.g. `2h`).
    #[arg(long, value_parser = parse_duration)]
    since: Option<Duration>,
}

impl FilterArgs {
    fn filter(&self) -> DlqFilter {
        DlqFilter {
            routes: self.routes.clone(),
            events: self.events.clone(),
            guilds: self.guilds.clone(),
            shards: self.shards.clone(),
            sequences: self.sequences.clone(),
            since: self.since.map(|ago| OffsetDateTime::now_utc() - ago),
        }
    }
}

/// Where routes are defined, and which one to send to.
#[derive(Debug, Clone, clap::Args)]
pub struct RouteArgs {
    /// The bridge configuration that defines the routes.
    #[arg(long, env = "SHARDLINE_BRIDGE_CONFIG", default_value = "bridge.toml")]
    config: PathBuf,
    /// Send through this route instead of each dead letter's own.
    #[arg(long)]
    to_route: Option<String>,
}

impl RouteArgs {
    /// Routes from `config`, optionally sending everything to `to_route`.
    pub fn new(config: PathBuf, to_route: Option<String>) -> Self {
        Self { config, to_route }
    }

    /// Loads the bridge configuration.
    pub fn load(&self) -> anyhow::Result<BridgeConfig> {
        let text = std::fs::read_to_string(&self.config).with_context(|| {
            format!(
                "reading the bridge configuration {} (set --config or SHARDLINE_BRIDGE_CONFIG)",
                self.config.display()
            )
        })?;
        BridgeConfig::from_toml(&text, |name| std::env::var(name).ok())
            .with_context(|| format!("invalid bridge configuration in {}", self.config.display()))
    }

    /// One sender per configured route, each with its own budget.
    pub async fn senders(
        &self,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<BTreeMap<String, RouteSender>> {
        let config = self.load()?;
        let known: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
        if let Some(wanted) = &self.to_route {
            anyhow::ensure!(
                known.contains(&wanted.as_str()),
                "no route named {wanted:?} in {}; routes: {}",
                self.config.display(),
                known.join(", ")
            );
        }
        let mut senders = BTreeMap::new();
        for route in &config.routes {
            let sender = RouteSender::for_route(route, shutdown.clone())
                .await
                .with_context(|| format!("building the target of route {}", route.name))?;
            senders.insert(route.name.clone(), sender);
        }
        Ok(senders)
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    text.parse::<humantime::Duration>()
        .map(Into::into)
        .map_err(|e| format!("{e} (write e.g. 2h, 30m, 1d)"))
}

fn when(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_else(|_| time.to_string())
}

/// Runs a `dlq` subcommand.
pub async fn run(args: DlqArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let names = args.nats.names()?;
    let client = args.nats.connect().await?;
    let js = async_nats::jetstream::new(client);
    match args.command {
        DlqCommand::List { filter, json } => {
            if !json {
                println!(
                    "{:>6}  {:<20}  {:<12}  {:<22}  {:>5}  {:>20}  {:>3}  error",
                    "seq", "dead-lettered", "route", "event", "shard", "guild", "try"
                );
            }
            let count = dlq::scan(&js, &names, &filter.filter(), |entry| {
                if json {
                    println!("{}", entry_json(&names, &entry, false));
                } else {
                    let (event, shard) = names
                        .parse_dispatch_subject(&entry.letter.subject)
                        .unwrap_or(("?", 0));
                    println!(
                        "{:>6}  {:<20}  {:<12}  {:<22}  {:>5}  {:>20}  {:>3}  {}",
                        entry.sequence,
                        when(entry.stored_at).chars().take(20).collect::<String>(),
                        entry.letter.route,
                        event,
                        shard,
                        entry.guild_id().unwrap_or("-"),
                        entry.letter.attempts,
                        entry.letter.error
                    );
                }
            })
            .await?;
            eprintln!("{count} dead letter(s)");
        }
        DlqCommand::Show { sequence } => {
            let entry = dlq::get(&js, &names, sequence).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&entry_json(&names, &entry, true))?
            );
        }
        DlqCommand::Redrive { filter, routes } => {
            let senders = routes.senders(&shutdown).await?;
            let report = dlq::redrive(
                &js,
                &names,
                &filter.filter(),
                &senders,
                routes.to_route.as_deref(),
            )
            .await?;
            for (sequence, reason) in &report.failed {
                eprintln!("dead letter {sequence} failed again and stays: {reason}");
            }
            println!(
                "redrove {} dead letter(s); {} failed again and stay in the dead-letter stream",
                report.delivered,
                report.failed.len()
            );
            anyhow::ensure!(report.failed.is_empty(), "some dead letters failed again");
        }
        DlqCommand::Purge { filter, all, yes } => {
            let filter = filter.filter();
            anyhow::ensure!(
                all || !filter.is_empty(),
                "purge needs a filter (--route, --event, --guild, --shard, --seq, --since) or --all"
            );
            let mut sequences = Vec::new();
            dlq::scan(&js, &names, &filter, |entry| sequences.push(entry.sequence)).await?;
            if !yes {
                println!(
                    "{} dead letter(s) match; nothing removed (add --yes to remove them)",
                    sequences.len()
                );
                return Ok(());
            }
            let removed = dlq::remove(&js, &names, &sequences).await?;
            println!("removed {removed} dead letter(s)");
        }
    }
    Ok(())
}

fn entry_json(
    names: &shardline_wire::Names,
    entry: &DlqEntry,
    with_payload: bool,
) -> serde_json::Value {
    let (event, shard) = names
        .parse_dispatch_subject(&entry.letter.subject)
        .map(|(e, s)| (e.to_owned(), Some(s)))
        .unwrap_or_else(|| ("?".into(), None));
    let mut value = serde_json::json!({
        "seq": entry.sequence,
        "dead_lettered_at": when(entry.stored_at),
        "route": entry.letter.route,
        "event": event,
        "shard": shard,
        "guild_id": entry.guild_id(),
        "attempts": entry.letter.attempts,
        "error": entry.letter.error,
        "stream": entry.letter.stream,
        "stream_seq": entry.letter.stream_seq,
        "subject": entry.letter.subject,
    });
    if with_payload {
        let payload = serde_json::from_slice::<serde_json::Value>(&entry.letter.payload)
            .unwrap_or_else(|_| String::from_utf8_lossy(&entry.letter.payload).into());
        value["data"] = payload;
    }
    value
}
