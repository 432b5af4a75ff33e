//! NATS connection options shared by every subcommand.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

/// Where NATS is and which names to use.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long,
        env = "SHARDLINE_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// A NATS credentials file (`.creds`), when the server requires one.
    #[arg(long, env = "SHARDLINE_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// Subject prefix.
    #[arg(long, env = "SHARDLINE_PREFIX", default_value = "discord")]
    pub prefix: String,
    /// Application name (streams are named `DISCORD_<APP>`).
    #[arg(long, env = "SHARDLINE_APP", default_value = "dev")]
    pub app: String,
}

impl NatsArgs {
    /// The names under the configured prefix and application.
    pub fn names(&self) -> anyhow::Result<shardline_wire::Names> {
        Ok(shardline_wire::Names::new(&self.prefix, &self.app)?)
    }

    /// Connects, failing with a message that names the URL.
    pub async fn connect(&self) -> anyhow::Result<async_nats::Client> {
        let mut options = async_nats::ConnectOptions::new()
            .name("shardline")
            .connection_timeout(Duration::from_secs(5));
        if let Some(creds) = &self.nats_creds {
            options = options
                .credentials_file(creds)
                .await
                .with_context(|| format!("reading NATS credentials {}", creds.display()))?;
        }
        let urls: Vec<&str> = self.nats_url.split(',').map(str::trim).collect();
        options
            .connect(urls)
            .await
            .with_context(|| format!("connecting to NATS at {}", self.nats_url))
    }
}
