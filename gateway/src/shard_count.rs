//! Choosing the shard count: Discord's recommendation or a configured number,
//! checked against the large-bot rule and the 2,500-guilds-per-shard limit.

use serde::{Deserialize, Serialize};

/// Discord's hard limit of guilds on one shard.
pub const MAX_GUILDS_PER_SHARD: u64 = 2_500;

/// Guilds per shard Discord's recommendation is based on.
pub const RECOMMENDED_GUILDS_PER_SHARD: u64 = 1_000;

/// How the shard count is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardCountSetting {
    /// Discord's recommendation from `/gateway/bot` (default).
    #[default]
    Recommended,
    /// Exactly this many shards.
    #[serde(untagged)]
    Fixed(u32),
}

/// What to check a shard count against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardCountRules {
    /// The number the count must be a multiple of. Large bots (Discord gives
    /// them `max_concurrency` > 1) must shard in multiples of the number
    /// Discord assigned, else the gateway closes with 4010. `None`: use
    /// `max_concurrency` when it is above 1.
    pub multiple_of: Option<u32>,
    /// The bot's guild count when known. Without it the guild count is
    /// estimated from the recommendation (about 1,000 guilds per shard).
    pub guilds: Option<u64>,
}

/// Why a shard count was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardCountError {
    /// Zero shards.
    #[error("coordinator.shard_count must be at least 1")]
    Zero,
    /// Not a multiple of the large-bot number.
    #[error(
        "coordinator.shard_count = {count} is not a multiple of {multiple} (large-bot sharding; Discord would close with 4010); use {suggested}"
    )]
    NotMultiple {
        /// The configured count.
        count: u32,
        /// The required multiple.
        multiple: u32,
        /// The nearest valid count at or above it.
        suggested: u32,
    },
    /// Too many guilds per shard.
    #[error(
        "coordinator.shard_count = {count} would put about {per_shard} guilds on a shard (limit {MAX_GUILDS_PER_SHARD}); use at least {minimum}"
    )]
    TooFewShards {
        /// The configured count.
        count: u32,
        /// Estimated guilds per shard.
        per_shard: u64,
        /// The smallest acceptable count.
        minimum: u32,
    },
}

/// The shard count to run.
///
/// ```
/// use shardline_gateway::{choose_shard_count, ShardCountRules, ShardCountSetting};
/// // Small bot: Discord recommends 3, max_concurrency 1.
/// assert_eq!(choose_shard_count(ShardCountSetting::Recommended, 3, 1, ShardCountRules::default()), Ok(3));
/// // Large bot: a configured count must be a multiple of 16.
/// assert!(choose_shard_count(ShardCountSetting::Fixed(100), 96, 16, ShardCountRules::default()).is_err());
/// assert_eq!(choose_shard_count(ShardCountSetting::Fixed(112), 96, 16, ShardCountRules::default()), Ok(112));
/// // 40 shards for about 150,000 guilds: over 2,500 guilds per shard.
/// assert!(choose_shard_count(ShardCountSetting::Fixed(40), 150, 1, ShardCountRules::default()).is_err());
/// ```
pub fn choose_shard_count(
    setting: ShardCountSetting,
    recommended: u32,
    max_concurrency: u32,
    rules: ShardCountRules,
) -> Result<u32, ShardCountError> {
    let multiple = rules
        .multiple_of
        .or((max_concurrency > 1).then_some(max_concurrency))
        .unwrap_or(1)
        .max(1);
    let guilds = rules
        .guilds
        .unwrap_or(u64::from(recommended.max(1)) * RECOMMENDED_GUILDS_PER_SHARD);
    let count = match setting {
        // Discord's own recommendation already follows its rules; round up in case.
        ShardCountSetting::Recommended => round_up(recommended.max(1), multiple),
        ShardCountSetting::Fixed(0) => return Err(ShardCountError::Zero),
        ShardCountSetting::Fixed(count) => {
            if count % multiple != 0 {
                return Err(ShardCountError::NotMultiple {
                    count,
                    multiple,
                    suggested: round_up(count, multiple),
                });
            }
            count
        }
    };
    let per_shard = guilds.div_ceil(u64::from(count));
    if per_shard > MAX_GUILDS_PER_SHARD {
        let minimum = u32::try_from(guilds.div_ceil(MAX_GUILDS_PER_SHARD)).unwrap_or(u32::MAX);
        return Err(ShardCountError::TooFewShards {
            count,
            per_shard,
            minimum: round_up(minimum, multiple),
        });
    }
    Ok(count)
}

fn round_up(count: u32, multiple: u32) -> u32 {
    count.div_ceil(multiple).saturating_mul(multiple)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recommendation_rounds_up_to_the_multiple() {
        let rules = ShardCountRules::default();
        assert_eq!(
            choose_shard_count(ShardCountSetting::Recommended, 90, 16, rules),
            Ok(96)
        );
        assert_eq!(
            choose_shard_count(ShardCountSetting::Recommended, 0, 1, rules),
            Ok(1)
        );
    }

    #[test]
    fn configured_multiple_overrides_max_concurrency() {
        let rules = ShardCountRules {
            multiple_of: Some(8),
            guilds: None,
        };
        assert_eq!(
            choose_shard_count(ShardCountSetting::Fixed(24), 10, 16, rules),
            Ok(24)
        );
        let err = choose_shard_count(ShardCountSetting::Fixed(20), 10, 16, rules).unwrap_err();
        assert_eq!(
            err,
            ShardCountError::NotMultiple {
                count: 20,
                multiple: 8,
                suggested: 24
            }
        );
        assert!(err.to_string().contains("coordinator.shard_count"));
    }

    #[test]
    fn refuses_more_than_2500_guilds_per_shard() {
        let rules = ShardCountRules {
            multiple_of: None,
            guilds: Some(10_001),
        };
        assert_eq!(
            choose_shard_count(ShardCountSetting::Fixed(5), 1, 1, rules),
            Ok(5)
        );
        let err = choose_shard_count(ShardCountSetting::Fixed(4), 1, 1, rules).unwrap_err();
        assert!(
            matches!(err, ShardCountError::TooFewShards { minimum: 5, .. }),
            "{err}"
        );
        assert_eq!(
            choose_shard_count(ShardCountSetting::Fixed(0), 1, 1, rules),
            Err(ShardCountError::Zero)
        );
    }

    #[test]
    fn setting_parses_from_toml() {
        #[derive(Deserialize)]
        struct Holder {
            count: ShardCountSetting,
        }
        let fixed: Holder = toml::from_str("count = 64").unwrap();
        assert_eq!(fixed.count, ShardCountSetting::Fixed(64));
        let auto: Holder = toml::from_str("count = \"recommended\"").unwrap();
        assert_eq!(auto.count, ShardCountSetting::Recommended);
    }
}
