//! Subject, stream and bucket names, all derived from one prefix.

/// A prefix or application name that is not a valid NATS token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct InvalidName {
    what: &'static str,
    value: String,
    reason: &'static str,
}

/// Every NATS name shardline uses, derived from a subject prefix and an
/// application name.
///
/// The prefix scopes subjects (`discord` by default); the application name
/// scopes streams and buckets (`DISCORD_<APP>`), so several bots can share one
/// NATS account.
///
/// ```
/// let names = shardline_wire::Names::new("discord", "mybot").unwrap();
/// assert_eq!(names.dispatch_subject("MESSAGE_CREATE", 3), "discord.dispatch.MESSAGE_CREATE.3");
/// assert_eq!(names.dispatch_stream(), "DISCORD_MYBOT");
/// assert_eq!(names.sessions_bucket(), "discord_sessions");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
    app: String,
}

impl Names {
    /// Names under `prefix` (a dot-separated subject prefix) for application `app`.
    pub fn new(prefix: &str, app: &str) -> Result<Self, InvalidName> {
        validate_prefix(prefix)?;
        validate_app(app)?;
        Ok(Self {
            prefix: prefix.to_owned(),
            app: app.to_ascii_uppercase().replace('-', "_"),
        })
    }

    /// The subject prefix, e.g. `discord`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The upper-cased application name used in stream names.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// `<prefix>.dispatch.<EVENT>.<shard>`.
    pub fn dispatch_subject(&self, event: &str, shard: u32) -> String {
        format!("{}.dispatch.{event}.{shard}", self.prefix)
    }

    /// `<prefix>.dispatch.>`: every dispatch.
    pub fn dispatch_wildcard(&self) -> String {
        format!("{}.dispatch.>", self.prefix)
    }

    /// `<prefix>.dispatch.<EVENT>.*`: one event type (or a `*`-pattern such as `GUILD_*`
    /// is not a NATS wildcard; use [`Names::dispatch_filter`] for those).
    pub fn dispatch_event_filter(&self, event: &str) -> String {
        format!("{}.dispatch.{event}.*", self.prefix)
    }

    /// A filter subject for an event name or `*`, and optionally one shard.
    pub fn dispatch_filter(&self, event: &str, shard: Option<u32>) -> String {
        match shard {
            Some(shard) => format!("{}.dispatch.{event}.{shard}", self.prefix),
            None => format!("{}.dispatch.{event}.*", self.prefix),
        }
    }

    /// Splits a dispatch subject into its event name and shard id.
    ///
    /// ```
    /// let names = shardline_wire::Names::new("discord", "app").unwrap();
    /// assert_eq!(names.parse_dispatch_subject("discord.dispatch.READY.7"), Some(("READY", 7)));
    /// assert_eq!(names.parse_dispatch_subject("other.dispatch.READY.7"), None);
    /// ```
    pub fn parse_dispatch_subject<'a>(&self, subject: &'a str) -> Option<(&'a str, u32)> {
        let rest = subject.strip_prefix(self.prefix.as_str())?;
        let rest = rest.strip_prefix(".dispatch.")?;
        let (event, shard) = rest.rsplit_once('.')?;
        if event.is_empty() || event.contains('.') {
            return None;
        }
        Some((event, shard.parse().ok()?))
    }

    /// The dispatch stream, `DISCORD_<APP>`.
    pub fn dispatch_stream(&self) -> String {
        format!("DISCORD_{}", self.app)
    }

    /// The dead-letter stream, `DISCORD_<APP>_DLQ`.
    pub fn dlq_stream(&self) -> String {
        format!("DISCORD_{}_DLQ", self.app)
    }

    /// `<prefix>.dlq.<route>`: where a route's dead letters are published.
    pub fn dlq_subject(&self, route: &str) -> String {
        format!("{}.dlq.{route}", self.prefix)
    }

    /// `<prefix>.dlq.>`.
    pub fn dlq_wildcard(&self) -> String {
        format!("{}.dlq.>", self.prefix)
    }

    /// KV bucket holding each shard's session (`session_id`, seq, resume URL).
    pub fn sessions_bucket(&self) -> String {
        format!("{}_sessions", self.bucket_stem())
    }

    /// KV bucket holding worker leases and shard assignments.
    pub fn shards_bucket(&self) -> String {
        format!("{}_shards", self.bucket_stem())
    }

    /// KV bucket holding the coordinator leadership lease.
    pub fn coordinator_bucket(&self) -> String {
        format!("{}_coordinator", self.bucket_stem())
    }

    /// Request/reply subject for identify permits.
    pub fn identify_subject(&self) -> String {
        format!("{}.identify", self.prefix)
    }

    /// Request/reply subject for gateway commands to one shard.
    pub fn command_subject(&self, shard: u32) -> String {
        format!("{}.command.{shard}", self.prefix)
    }

    /// Request/reply subject for a control verb (`status`, `reshard`, …).
    pub fn control_subject(&self, verb: &str) -> String {
        format!("{}.control.{verb}", self.prefix)
    }

    fn bucket_stem(&self) -> String {
        self.prefix.replace('.', "_")
    }
}

/// The shard a guild's events arrive on: `(guild_id >> 22) % num_shards`.
///
/// ```
/// assert_eq!(shardline_wire::shard_for_guild(41771983423143937, 8), ((41771983423143937u64 >> 22) % 8) as u32);
/// assert_eq!(shardline_wire::shard_for_guild(1, 0), 0);
/// ```
pub fn shard_for_guild(guild_id: u64, num_shards: u32) -> u32 {
    if num_shards == 0 {
        return 0;
    }
    ((guild_id >> 22) % u64::from(num_shards)) as u32
}

fn validate_prefix(prefix: &str) -> Result<(), InvalidName> {
    let err = |reason| InvalidName {
        what: "subject prefix",
        value: prefix.to_owned(),
        reason,
    };
    if prefix.is_empty() {
        return Err(err("it is empty"));
    }
    for token in prefix.split('.') {
        if token.is_empty() {
            return Err(err(
                "it has an empty token (a leading, trailing or double dot)",
            ));
        }
        if !token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(err("only letters, digits, '_', '-' and '.' are allowed"));
        }
    }
    Ok(())
}

fn validate_app(app: &str) -> Result<(), InvalidName> {
    let err = |reason| InvalidName {
        what: "application name",
        value: app.to_owned(),
        reason,
    };
    if app.is_empty() {
        return Err(err("it is empty"));
    }
    if !app
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(err("only letters, digits, '_' and '-' are allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_prefixes() {
        for bad in ["", "a..b", ".a", "a.", "a b", "a.>", "a.*"] {
            assert!(Names::new(bad, "app").is_err(), "{bad:?} accepted");
        }
        assert!(Names::new("discord.prod", "my-bot").is_ok());
    }

    #[test]
    fn error_names_the_field() {
        let err = Names::new("a b", "app").unwrap_err().to_string();
        assert!(
            err.contains("subject prefix") && err.contains("a b"),
            "{err}"
        );
    }

    #[test]
    fn parses_what_it_builds() {
        let names = Names::new("x.y", "app").unwrap();
        let subject = names.dispatch_subject("GUILD_CREATE", 12);
        assert_eq!(
            names.parse_dispatch_subject(&subject),
            Some(("GUILD_CREATE", 12))
        );
        assert_eq!(names.sessions_bucket(), "x_y_sessions");
    }
}
