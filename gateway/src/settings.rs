//! Settings of the coordinator and the worker (the `[coordinator]` and
//! `[worker]` sections of the configuration file).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::shard_count::ShardCountSetting;

/// Settings of `shardline coordinator`. Every field has a default.
///
/// ```
/// let settings: shardline_gateway::CoordinatorSettings =
///     toml::from_str("shard_count = 64\nlease_ttl = \"3s\"").unwrap();
/// assert_eq!(settings.lease_ttl, std::time::Duration::from_secs(3));
/// settings.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorSettings {
    /// This coordinator's id in the lease and logs (default: random).
    pub id: Option<String>,
    /// `"recommended"` (default) or a number.
    pub shard_count: ShardCountSetting,
    /// The large-bot multiple the shard count must honour (default:
    /// `max_concurrency` when above 1).
    pub shard_multiple: Option<u32>,
    /// The bot's guild count, when known, for the 2,500-guilds-per-shard check.
    pub guilds: Option<u64>,
    /// Overrides `max_concurrency` from `/gateway/bot` (for tests and pinned set-ups).
    pub max_concurrency: Option<u32>,
    /// One IDENTIFY per bucket per window (default 5 s, Discord's). Not read
    /// from the `[coordinator]` section: the configuration's top-level
    /// `identify_window` sets it for every mode.
    #[serde(skip)]
    pub identify_window: Duration,
    /// Extra spacing between two permits of a bucket, and the longest a
    /// permit may travel to its shard before it must not be used (default:
    /// identify_window / 50, i.e. 100 ms for 5 s).
    #[serde(default, with = "optional_duration_text")]
    pub identify_margin: Option<Duration>,
    /// Identifies of `session_start_limit` never spent (default `max(5, 1 % of total)`).
    pub session_reserve: Option<u32>,
    /// Leadership lease time to live (default 10 s). A standby takes over this
    /// long after the leader's last renewal.
    #[serde(with = "duration_text")]
    pub lease_ttl: Duration,
    /// How often `/gateway/bot` is read again (default 5 min).
    #[serde(with = "duration_text")]
    pub refresh_interval: Duration,
    /// At most this many shards per worker (the seed's `shardsPerWorker`).
    pub shards_per_worker: Option<u32>,
    /// Wait for this many workers before the first assignment (the seed's `totalWorkers`).
    pub total_workers: Option<u32>,
    /// Without `total_workers`: how long a new leader lets workers register
    /// before the first assignment (default 2 s).
    #[serde(with = "duration_text")]
    pub assignment_settle: Duration,
    /// KV replicas for the buckets (1 locally, 3 in a cluster).
    pub kv_replicas: usize,
}

impl Default for CoordinatorSettings {
    fn default() -> Self {
        Self {
            id: None,
            shard_count: ShardCountSetting::Recommended,
            shard_multiple: None,
            guilds: None,
            max_concurrency: None,
            identify_window: Duration::from_secs(5),
            identify_margin: None,
            session_reserve: None,
            lease_ttl: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(300),
            shards_per_worker: None,
            total_workers: None,
            assignment_settle: Duration::from_secs(2),
            kv_replicas: 1,
        }
    }
}

/// A setting out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidSetting {
    /// The field, e.g. `coordinator.lease_ttl`.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidSetting {
    InvalidSetting {
        field,
        reason: reason.into(),
    }
}

impl CoordinatorSettings {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.identify_window < Duration::from_millis(1) {
            return Err(invalid(
                "coordinator.identify_window",
                "must be at least 1ms",
            ));
        }
        if self.lease_ttl < Duration::from_millis(100) {
            return Err(invalid("coordinator.lease_ttl", "must be at least 100ms"));
        }
        if self.refresh_interval < Duration::from_secs(1) {
            return Err(invalid(
                "coordinator.refresh_interval",
                "must be at least 1s",
            ));
        }
        if self.max_concurrency == Some(0) {
            return Err(invalid("coordinator.max_concurrency", "must be at least 1"));
        }
        if self.shards_per_worker == Some(0) {
            return Err(invalid(
                "coordinator.shards_per_worker",
                "must be at least 1",
            ));
        }
        if self.kv_replicas == 0 || self.kv_replicas > 5 {
            return Err(invalid("coordinator.kv_replicas", "must be 1 to 5"));
        }
        if let Some(id) = &self.id {
            validate_id("coordinator.id", id)?;
        }
        Ok(())
    }
}

/// Settings of `shardline worker`.
///
/// ```
/// let settings: shardline_gateway::WorkerSettings = toml::from_str("id = \"worker-1\"").unwrap();
/// settings.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// The worker id (default: random). Letters, digits, `-` and `_`.
    pub id: Option<String>,
    /// Registration lease time to live (default 10 s): the worker's shards move
    /// to other workers this long after it stops renewing.
    #[serde(with = "duration_text")]
    pub lease_ttl: Duration,
    /// How long the coordinator may hold one permit request (default 10 s).
    #[serde(with = "duration_text")]
    pub permit_hold: Duration,
    /// KV replicas for the buckets.
    pub kv_replicas: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            id: None,
            lease_ttl: Duration::from_secs(10),
            permit_hold: Duration::from_secs(10),
            kv_replicas: 1,
        }
    }
}

impl WorkerSettings {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.lease_ttl < Duration::from_millis(100) {
            return Err(invalid("worker.lease_ttl", "must be at least 100ms"));
        }
        if self.permit_hold < Duration::from_millis(10) {
            return Err(invalid("worker.permit_hold", "must be at least 10ms"));
        }
        if self.kv_replicas == 0 || self.kv_replicas > 5 {
            return Err(invalid("worker.kv_replicas", "must be 1 to 5"));
        }
        if let Some(id) = &self.id {
            validate_id("worker.id", id)?;
        }
        Ok(())
    }
}

fn validate_id(field: &'static str, id: &str) -> Result<(), InvalidSetting> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            field,
            format!("{id:?}: use 1 to 64 letters, digits, '-' or '_'"),
        ));
    }
    Ok(())
}

/// A fresh random id with a prefix, e.g. `worker-3f9a12c4`.
pub(crate) fn random_id(prefix: &str) -> String {
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &uuid[..8])
}

/// Optional durations written as `"5s"`, `"200ms"`, `"10m"`.
mod optional_duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => s.serialize_str(&humantime::format_duration(*value).to_string()),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

/// Durations written as `"5s"`, `"200ms"`, `"10m"`.
mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(crate) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let settings = CoordinatorSettings {
            lease_ttl: Duration::from_millis(1),
            ..Default::default()
        };
        assert!(
            settings
                .validate()
                .unwrap_err()
                .to_string()
                .contains("coordinator.lease_ttl")
        );
        let worker = WorkerSettings {
            id: Some("bad id".into()),
            ..Default::default()
        };
        assert!(
            worker
                .validate()
                .unwrap_err()
                .to_string()
                .contains("worker.id")
        );
        let unknown = toml::from_str::<CoordinatorSettings>("shard_cuont = 3").unwrap_err();
        assert!(unknown.to_string().contains("shard_cuont"), "{unknown}");
        let bad = toml::from_str::<CoordinatorSettings>("lease_ttl = \"soon\"").unwrap_err();
        assert!(bad.to_string().contains("lease_ttl"), "{bad}");
    }

    #[test]
    fn random_ids_are_valid() {
        let id = random_id("worker");
        validate_id("worker.id", &id).unwrap();
        assert_ne!(id, random_id("worker"));
    }
}
