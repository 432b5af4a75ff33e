//! `shardline dev`: the whole stack on one machine.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// Options of `shardline dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// NATS to use. A server already answering there is reused; otherwise one
    /// is started on that loopback port.
    #[arg(
        long,
        env = "SHARDLINE_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// The `nats-server` binary to start when none answers (default: the one
    /// the set-up installed in `.tools/`, else `nats-server` on PATH).
    #[arg(long, env = "SHARDLINE_NATS_SERVER")]
    nats_server: Option<PathBuf>,
    /// Where the local stack keeps its JetStream store.
    #[arg(long, env = "SHARDLINE_DEV_DATA", default_value = ".shardline/dev")]
    data_dir: PathBuf,
    /// Subject prefix.
    #[arg(long, env = "SHARDLINE_PREFIX", default_value = "discord")]
    prefix: String,
    /// Application name (streams are named `DISCORD_<APP>`).
    #[arg(long, env = "SHARDLINE_APP", default_value = "dev")]
    app: String,
    /// Stop by itself after this long (e.g. `30s`); runs until Ctrl-C otherwise.
    #[arg(long, value_parser = humantime_duration)]
    run_for: Option<Duration>,
    #[command(flatten)]
    observe: crate::observe::ObserveArgs,
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    text.parse::<humantime::Duration>()
        .map(Into::into)
        .map_err(|e| format!("{e} (write e.g. 30s, 5m)"))
}

/// Runs the local stack until `shutdown` fires.
pub async fn run(args: DevArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let names = shardline_wire::Names::new(&args.prefix, &args.app)?;
    let observe = crate::observe::start(&args.observe, shutdown.clone()).await?;
    let (client, mut nats) = connect_or_start(&args).await?;
    let js = async_nats::jetstream::new(client.clone());
    let settings = shardline_jetstream::StreamSettings::default();
    shardline_jetstream::ensure_dispatch_stream(&js, &names, &settings).await?;
    shardline_jetstream::ensure_dlq_stream(&js, &names, &settings).await?;
    shardline_jetstream::sessions_bucket(&js, &names, 1).await?;
    tracing::info!(
        stream = names.dispatch_stream(),
        dlq = names.dlq_stream(),
        "JetStream ready"
    );
    println!("shardline dev: NATS ready at {}", args.nats_url);
    println!(
        "  dispatch stream {}  dead letters {}",
        names.dispatch_stream(),
        names.dlq_stream()
    );
    println!(
        "  this stack runs NATS only so far; start `shardline sim`, `shardline gateway` and \
         `shardline bridge` beside it (see the README) until `dev` composes them (issue 9)"
    );
    if let Some(addr) = observe.local_addr {
        println!("  metrics http://{addr}/metrics  health http://{addr}/healthz");
    }
    observe.readiness.set(true);
    println!("Press Ctrl-C to stop.");

    match args.run_for {
        Some(limit) => {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(limit) => tracing::info!("run-for limit reached"),
            }
        }
        None => shutdown.cancelled().await,
    }

    client.drain().await.ok();
    if let Some(child) = nats.as_mut() {
        stop_child(child).await;
        println!("shardline dev: stopped the nats-server it started");
    }
    Ok(())
}

async fn connect_or_start(args: &DevArgs) -> anyhow::Result<(async_nats::Client, Option<Child>)> {
    let quick = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(1));
    if let Ok(client) = quick.connect(&args.nats_url).await {
        tracing::info!(url = %args.nats_url, "reusing the nats-server that answers there");
        return Ok((client, None));
    }
    let port = loopback_port(&args.nats_url)?;
    let binary = args.nats_server.clone().unwrap_or_else(default_nats_server);
    let store = args.data_dir.join("nats");
    std::fs::create_dir_all(&store)
        .with_context(|| format!("creating the JetStream store {}", store.display()))?;
    tracing::info!(binary = %binary.display(), port, store = %store.display(), "starting nats-server");
    let child = Command::new(&binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (install it with the README's set-up command, or set SHARDLINE_NATS_SERVER)",
                binary.display()
            )
        })?;
    let options = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(1));
    let client = tokio::time::timeout(Duration::from_secs(20), options.connect(&args.nats_url))
        .await
        .context("nats-server did not accept clients within 20 s")??;
    Ok((client, Some(child)))
}

fn default_nats_server() -> PathBuf {
    let local = PathBuf::from(".tools/venv/bin/nats-server");
    if local.exists() {
        local
    } else {
        PathBuf::from("nats-server")
    }
}

/// The port of a `nats://127.0.0.1:PORT` or `nats://localhost:PORT` URL.
fn loopback_port(url: &str) -> anyhow::Result<u16> {
    let rest = url.strip_prefix("nats://").unwrap_or(url);
    let (host, port) = rest
        .rsplit_once(':')
        .with_context(|| format!("--nats-url {url:?} has no port"))?;
    anyhow::ensure!(
        matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        "no NATS answers at {url}, and shardline dev only starts one on a loopback address"
    );
    port.parse()
        .with_context(|| format!("--nats-url {url:?} has an invalid port"))
}

async fn stop_child(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_nats_is_started() {
        assert_eq!(loopback_port("nats://127.0.0.1:4222").unwrap(), 4222);
        assert_eq!(loopback_port("nats://localhost:5000").unwrap(), 5000);
        let err = loopback_port("nats://nats.example:4222")
            .unwrap_err()
            .to_string();
        assert!(err.contains("loopback"), "{err}");
        assert!(loopback_port("nats://127.0.0.1:http").is_err());
    }
}
