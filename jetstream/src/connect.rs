//! How every shardline service connects to NATS.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// NATS connection settings shared by every service.
///
/// Every field can also come from the environment, which is how the
/// Terraform stack passes secrets: `SHARDLINE_NATS_URL`, `SHARDLINE_NATS_CREDS`,
/// (a path, or the file's contents), `SHARDLINE_NATS_USER`,
/// `SHARDLINE_NATS_PASSWORD`, `SHARDLINE_NATS_CA_PEM`
/// (the CA certificate itself, PEM) and `SHARDLINE_NATS_CA_FILE`.
///
/// ```
/// let settings = shardline_jetstream::NatsSettings::from_env(|name| match name {
///     "SHARDLINE_NATS_URL" => Some("nats://10.0.0.1:4222,nats://10.0.0.2:4222".into()),
///     "SHARDLINE_NATS_PASSWORD" => Some("hunter2".into()),
///     _ => None,
/// });
/// assert_eq!(settings.urls(), ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]);
/// assert!(!format!("{settings:?}").contains("hunter2"));
/// ```
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    /// Server URL(s), comma-separated. Default `nats://127.0.0.1:4222`.
    pub url: Option<String>,
    /// A `.creds` file (JWT + nkey).
    pub creds_file: Option<PathBuf>,
    /// The contents of a `.creds` file (as a secrets manager injects them).
    /// Never shown in `Debug`.
    pub creds: Option<String>,
    /// User name, with `password`.
    pub user: Option<String>,
    /// Password, with `user`. Never shown in `Debug`.
    pub password: Option<String>,
    /// A CA certificate (PEM text) to trust, which also turns TLS on.
    pub ca_pem: Option<String>,
    /// A CA certificate file to trust, which also turns TLS on.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("url", &self.url)
            .field("creds_file", &self.creds_file)
            .field("creds", &self.creds.as_ref().map(|_| "<redacted>"))
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The settings are inconsistent.
    #[error("NATS settings: {0}")]
    Settings(String),
    /// A credentials or CA file could not be used.
    #[error("NATS settings: reading {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// No server answered.
    #[error("connecting to NATS at {url}")]
    Connect {
        /// Where.
        url: String,
        /// What the client said.
        #[source]
        source: async_nats::ConnectError,
    },
}

impl NatsSettings {
    /// Settings from the environment only (through `env`).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Self {
        let mut settings = Self::default();
        settings.apply_env(env);
        settings
    }

    /// Overrides fields with the `SHARDLINE_NATS_*` variables that are set.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) {
        let non_empty = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(url) = non_empty("SHARDLINE_NATS_URL") {
            self.url = Some(url);
        }
        if let Some(creds) = non_empty("SHARDLINE_NATS_CREDS") {
            // A path, or the file's contents injected from a secret.
            if creds.contains("-----BEGIN") {
                self.creds = Some(creds);
            } else {
                self.creds_file = Some(creds.into());
            }
        }
        if let Some(user) = non_empty("SHARDLINE_NATS_USER") {
            self.user = Some(user);
        }
        if let Some(password) = non_empty("SHARDLINE_NATS_PASSWORD") {
            self.password = Some(password);
        }
        if let Some(pem) = non_empty("SHARDLINE_NATS_CA_PEM") {
            self.ca_pem = Some(pem);
        }
        if let Some(file) = non_empty("SHARDLINE_NATS_CA_FILE") {
            self.ca_file = Some(file.into());
        }
    }

    /// The server URLs.
    pub fn urls(&self) -> Vec<String> {
        self.url
            .as_deref()
            .unwrap_or("nats://127.0.0.1:4222")
            .split(',')
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect()
    }

    /// Connects with these settings; `name` is the client name the server shows.
    pub async fn connect(&self, name: &str) -> Result<async_nats::Client, ConnectError> {
        let urls = self.urls();
        self.options(name)
            .await?
            .connect(urls.clone())
            .await
            .map_err(|source| ConnectError::Connect {
                url: urls.join(","),
                source,
            })
    }

    /// The client options these settings describe (authentication and TLS),
    /// for services that add their own (reconnect policy, callbacks).
    pub async fn options(&self, name: &str) -> Result<async_nats::ConnectOptions, ConnectError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(5));
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => {
                options = options.user_and_password(user.clone(), password.clone());
            }
            (None, None) => {}
            _ => {
                return Err(ConnectError::Settings(
                    "user and password go together: set both or neither".into(),
                ));
            }
        }
        if let Some(path) = &self.creds_file {
            options =
                options
                    .credentials_file(path)
                    .await
                    .map_err(|source| ConnectError::File {
                        path: path.clone(),
                        source,
                    })?;
        }
        if let Some(creds) = &self.creds {
            options = options
                .credentials(creds)
                .map_err(|e| ConnectError::Settings(format!("SHARDLINE_NATS_CREDS: {e}")))?;
        }
        if let Some(path) = &self.ca_file {
            options = options
                .add_root_certificates(path.clone())
                .require_tls(true);
        }
        if let Some(pem) = &self.ca_pem {
            let path =
                std::env::temp_dir().join(format!("shardline-nats-ca-{}.pem", std::process::id()));
            std::fs::write(&path, pem).map_err(|source| ConnectError::File {
                path: path.clone(),
                source,
            })?;
            options = options.add_root_certificates(path).require_tls(true);
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_and_redacts() {
        let mut settings: NatsSettings =
            toml::from_str("url = \"nats://a:1\"\nuser = \"u\"").unwrap();
        settings.apply_env(|name| (name == "SHARDLINE_NATS_PASSWORD").then(|| "secret".to_owned()));
        assert_eq!(settings.password.as_deref(), Some("secret"));
        assert_eq!(settings.urls(), ["nats://a:1"]);
        let debug = format!("{settings:?}");
        assert!(
            !debug.contains("secret") && debug.contains("<redacted>"),
            "{debug}"
        );
        assert!(toml::from_str::<NatsSettings>("urll = \"x\"").is_err());
    }

    #[tokio::test]
    async fn half_of_user_and_password_is_refused() {
        let settings = NatsSettings {
            user: Some("u".into()),
            ..Default::default()
        };
        let err = settings.connect("t").await.unwrap_err();
        assert!(err.to_string().contains("user and password"), "{err}");
    }
}
