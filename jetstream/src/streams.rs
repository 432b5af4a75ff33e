//! Stream and KV bucket definitions.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use serde::Deserialize;
use shardline_wire::Names;

/// Why a stream or bucket could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// The server refused or failed the stream request.
    #[error("creating stream {name}")]
    Stream {
        /// Stream name.
        name: String,
        /// What the server said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server refused or failed the consumer request.
    #[error("creating consumer {name} on stream {stream}")]
    Consumer {
        /// Consumer name.
        name: String,
        /// Stream name.
        stream: String,
        /// What the server said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server refused or failed the bucket request.
    #[error("creating key-value bucket {name}")]
    Bucket {
        /// Bucket name.
        name: String,
        /// What the server said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Retention and replication of the dispatch and dead-letter streams.
///
/// Defaults: file storage, 1 replica, 7 days, 10 GiB, a 5 minute duplicate
/// window (longer than the 2 minute minimum so a shard that restarts slowly
/// still has its re-sent events dropped).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSettings {
    /// Replicas (1 locally, 3 in a cluster).
    pub replicas: usize,
    /// How long events are kept.
    #[serde(with = "duration_serde")]
    pub max_age: Duration,
    /// The most bytes kept; older events are dropped first.
    pub max_bytes: i64,
    /// The window in which a repeated `Nats-Msg-Id` is dropped.
    #[serde(with = "duration_serde")]
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            replicas: 1,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 10 * 1024 * 1024 * 1024,
            duplicate_window: Duration::from_secs(300),
        }
    }
}

/// Serde for durations written as `"5m"`, `"7d"`, `"250ms"`.
pub(crate) mod duration_serde {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Creates the dispatch stream `DISCORD_<APP>` on `<prefix>.dispatch.>`, or
/// updates an existing one to these settings.
pub async fn ensure_dispatch_stream(
    js: &jetstream::Context,
    names: &Names,
    settings: &StreamSettings,
) -> Result<stream::Stream, DefinitionError> {
    let config = stream::Config {
        name: names.dispatch_stream(),
        description: Some("Discord gateway dispatches, one message per event".into()),
        subjects: vec![names.dispatch_wildcard()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_age: settings.max_age,
        max_bytes: settings.max_bytes,
        duplicate_window: settings.duplicate_window,
        num_replicas: settings.replicas,
        allow_direct: true,
        ..Default::default()
    };
    ensure_stream(js, config).await
}

/// Creates the dead-letter stream `DISCORD_<APP>_DLQ` on `<prefix>.dlq.>`.
/// Dead letters are kept until removed on purpose (no age limit).
pub async fn ensure_dlq_stream(
    js: &jetstream::Context,
    names: &Names,
    settings: &StreamSettings,
) -> Result<stream::Stream, DefinitionError> {
    let config = stream::Config {
        name: names.dlq_stream(),
        description: Some("Dispatches a bridge route gave up on, with the reason".into()),
        subjects: vec![names.dlq_wildcard()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_bytes: settings.max_bytes,
        duplicate_window: settings.duplicate_window,
        num_replicas: settings.replicas,
        allow_direct: true,
        ..Default::default()
    };
    ensure_stream(js, config).await
}

async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, DefinitionError> {
    let name = config.name.clone();
    let wrap = |source: Box<dyn std::error::Error + Send + Sync>| DefinitionError::Stream {
        name: name.clone(),
        source,
    };
    match js.get_stream(&config.name).await {
        Ok(mut existing) => {
            let current = existing
                .info()
                .await
                .map_err(|e| wrap(Box::new(e)))?
                .config
                .clone();
            // Fields we do not manage keep the operator's values.
            let wanted = merge_managed(current.clone(), &config);
            if wanted != current {
                js.update_stream(wanted)
                    .await
                    .map_err(|e| wrap(Box::new(e)))?;
            }
            Ok(existing)
        }
        Err(_) => match js.create_stream(config.clone()).await {
            Ok(stream) => Ok(stream),
            // Another process may have created it in between.
            Err(error) => js
                .get_stream(&config.name)
                .await
                .map_err(|_| wrap(Box::new(error))),
        },
    }
}

fn merge_managed(mut current: stream::Config, wanted: &stream::Config) -> stream::Config {
    current.subjects = wanted.subjects.clone();
    current.max_age = wanted.max_age;
    current.max_bytes = wanted.max_bytes;
    current.duplicate_window = wanted.duplicate_window;
    current.num_replicas = wanted.num_replicas;
    current.allow_direct = wanted.allow_direct;
    current
}

/// The durable pull consumer of a bridge route on the dispatch stream.
///
/// Explicit acks; `filter_subjects` from the route's events; no server-side
/// delivery limit (the bridge counts attempts and dead-letters by itself, so
/// the server never drops an event silently); `ack_wait` and
/// `max_ack_pending` from the route. Several bridge processes bind to the
/// same consumer and share its events.
pub fn route_consumer_config(
    names: &Names,
    route: &crate::RouteConfig,
    filter: &crate::EventFilter,
) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(route.consumer_name()),
        description: Some(format!("shardline bridge route {}", route.name)),
        ack_policy: consumer::AckPolicy::Explicit,
        deliver_policy: match route.start {
            crate::StartPolicy::All => consumer::DeliverPolicy::All,
            crate::StartPolicy::New => consumer::DeliverPolicy::New,
        },
        ack_wait: route.ack_wait,
        max_deliver: -1,
        filter_subjects: filter.subjects(names),
        max_ack_pending: route.max_ack_pending,
        ..Default::default()
    }
}

/// Creates a route's durable consumer, or updates it to the route's filters
/// and limits (the start policy of an existing consumer is kept).
pub async fn ensure_route_consumer(
    js: &jetstream::Context,
    names: &Names,
    route: &crate::RouteConfig,
    filter: &crate::EventFilter,
) -> Result<consumer::PullConsumer, DefinitionError> {
    let stream_name = names.dispatch_stream();
    let mut config = route_consumer_config(names, route, filter);
    let wrap = |source: Box<dyn std::error::Error + Send + Sync>| DefinitionError::Consumer {
        name: route.consumer_name(),
        stream: stream_name.clone(),
        source,
    };
    let stream = js
        .get_stream(&stream_name)
        .await
        .map_err(|e| wrap(Box::new(e)))?;
    if let Ok(info) = stream.consumer_info(route.consumer_name()).await {
        // The deliver policy cannot change on an existing consumer.
        config.deliver_policy = info.config.deliver_policy;
    }
    stream
        .create_consumer(config)
        .await
        .map_err(|e| wrap(Box::new(e)))
}

/// Which of shardline's KV buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketKind {
    /// Per-shard sessions (`session_id`, committed seq, resume URL).
    Sessions,
    /// Worker leases and shard assignments.
    Shards,
    /// The coordinator leadership lease.
    Coordinator,
}

/// Opens (creating when absent) one of shardline's KV buckets.
pub async fn open_bucket(
    js: &jetstream::Context,
    names: &Names,
    kind: BucketKind,
    replicas: usize,
) -> Result<kv::Store, DefinitionError> {
    let (bucket, description, history) = match kind {
        BucketKind::Sessions => (names.sessions_bucket(), "Discord session per shard", 1),
        BucketKind::Shards => (
            names.shards_bucket(),
            "Worker leases and shard assignments",
            1,
        ),
        BucketKind::Coordinator => (
            names.coordinator_bucket(),
            "Coordinator leadership lease",
            1,
        ),
    };
    if let Ok(store) = js.get_key_value(&bucket).await {
        return Ok(store);
    }
    js.create_key_value(kv::Config {
        bucket: bucket.clone(),
        description: description.into(),
        history,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|source| DefinitionError::Bucket {
        name: bucket,
        source: Box::new(source),
    })
}

/// The sessions bucket.
pub async fn sessions_bucket(
    js: &jetstream::Context,
    names: &Names,
    replicas: usize,
) -> Result<kv::Store, DefinitionError> {
    open_bucket(js, names, BucketKind::Sessions, replicas).await
}

/// The shard assignment and worker lease bucket.
pub async fn shards_bucket(
    js: &jetstream::Context,
    names: &Names,
    replicas: usize,
) -> Result<kv::Store, DefinitionError> {
    open_bucket(js, names, BucketKind::Shards, replicas).await
}

/// The coordinator lease bucket.
pub async fn coordinator_bucket(
    js: &jetstream::Context,
    names: &Names,
    replicas: usize,
) -> Result<kv::Store, DefinitionError> {
    open_bucket(js, names, BucketKind::Coordinator, replicas).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardline_harness::NatsServer;

    #[tokio::test]
    async fn dispatch_stream_drops_duplicate_msg_ids() {
        let server = NatsServer::start();
        let js = server.jetstream().await;
        let names = Names::new("discord", "test").unwrap();
        ensure_dispatch_stream(&js, &names, &StreamSettings::default())
            .await
            .unwrap();
        // Idempotent: a second process ensuring the same stream is fine.
        ensure_dispatch_stream(&js, &names, &StreamSettings::default())
            .await
            .unwrap();
        let subject = names.dispatch_subject("MESSAGE_CREATE", 0);
        let mut duplicates = 0;
        for _ in 0..3 {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(shardline_wire::headers::MSG_ID, "0:s:1");
            let ack = js
                .publish_with_headers(subject.clone(), headers, "{}".into())
                .await
                .unwrap()
                .await
                .unwrap();
            duplicates += usize::from(ack.duplicate);
        }
        assert_eq!(duplicates, 2);
        let mut stream = js.get_stream(names.dispatch_stream()).await.unwrap();
        assert_eq!(stream.info().await.unwrap().state.messages, 1);
    }

    #[tokio::test]
    async fn buckets_open_twice() {
        let server = NatsServer::start();
        let js = server.jetstream().await;
        let names = Names::new("discord", "test").unwrap();
        let a = sessions_bucket(&js, &names, 1).await.unwrap();
        a.put("0", "x".into()).await.unwrap();
        let b = sessions_bucket(&js, &names, 1).await.unwrap();
        assert_eq!(b.get("0").await.unwrap().unwrap(), "x");
        shards_bucket(&js, &names, 1).await.unwrap();
        coordinator_bucket(&js, &names, 1).await.unwrap();
    }

    #[test]
    fn settings_parse_durations() {
        let settings: StreamSettings =
            toml::from_str("max_age = \"2d\"\nduplicate_window = \"10m\"").unwrap();
        assert_eq!(settings.max_age, Duration::from_secs(2 * 86400));
        assert_eq!(settings.duplicate_window, Duration::from_secs(600));
        assert_eq!(settings.replicas, 1);
        let bad = toml::from_str::<StreamSettings>("max_age = \"soon\"").unwrap_err();
        assert!(bad.to_string().contains("max_age"), "{bad}");
    }
}
