//! Each shard's resumable session, kept in the sessions KV bucket (key = shard id).

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};

/// What a shard needs to RESUME after a restart. `seq` is the committed seq:
/// this event and every earlier one were acknowledged by JetStream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    /// The gateway session id from READY.
    pub session_id: String,
    /// The highest seq whose publish, and every earlier one, was acknowledged.
    pub seq: u64,
    /// Where to RESUME (`resume_gateway_url` from READY).
    pub resume_gateway_url: String,
    /// The shard count the session was identified with.
    pub shard_count: u32,
}

/// Why the session store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The KV bucket could not be read.
    #[error("reading session of shard {shard}")]
    Read {
        /// The shard.
        shard: u32,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The KV bucket could not be written.
    #[error("writing session of shard {shard}")]
    Write {
        /// The shard.
        shard: u32,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Sessions in the `<prefix>_sessions` KV bucket.
///
/// ```no_run
/// # async fn demo(js: async_nats::jetstream::Context) -> Result<(), Box<dyn std::error::Error>> {
/// use shardline_gateway::SessionStore;
/// let names = shardline_wire::Names::new("discord", "mybot")?;
/// let store = SessionStore::new(shardline_jetstream::sessions_bucket(&js, &names, 1).await?);
/// if let Some(session) = store.load(3).await? {
///     println!("shard 3 resumes {} at {}", session.session_id, session.seq);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SessionStore {
    kv: kv::Store,
}

impl SessionStore {
    /// A store over an opened sessions bucket.
    pub fn new(kv: kv::Store) -> Self {
        Self { kv }
    }

    /// The stored session of `shard`, if any. An unreadable value counts as none.
    pub async fn load(&self, shard: u32) -> Result<Option<StoredSession>, SessionError> {
        let value = self
            .kv
            .get(shard.to_string())
            .await
            .map_err(|e| SessionError::Read {
                shard,
                source: Box::new(e),
            })?;
        Ok(
            value.and_then(|bytes| match serde_json::from_slice(&bytes) {
                Ok(session) => Some(session),
                Err(error) => {
                    tracing::warn!(shard, %error, "ignoring unreadable stored session");
                    None
                }
            }),
        )
    }

    /// Stores the session of `shard`.
    pub async fn save(&self, shard: u32, session: &StoredSession) -> Result<(), SessionError> {
        let bytes = serde_json::to_vec(session).map_err(|e| SessionError::Write {
            shard,
            source: Box::new(e),
        })?;
        self.kv
            .put(shard.to_string(), bytes.into())
            .await
            .map_err(|e| SessionError::Write {
                shard,
                source: Box::new(e),
            })?;
        Ok(())
    }

    /// Forgets the session of `shard` (it was invalidated).
    pub async fn forget(&self, shard: u32) -> Result<(), SessionError> {
        self.kv
            .delete(shard.to_string())
            .await
            .map_err(|e| SessionError::Write {
                shard,
                source: Box::new(e),
            })
    }
}
