//! What a bot function receives and what it answers.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One dispatch as a function receives it.
///
/// `data` is Discord's raw `d` object, byte for byte as the gateway received it.
///
/// ```
/// let json = r#"{"id":"DISCORD_APP:12","event":"MESSAGE_CREATE","shard":3,"seq":881,
///   "guild_id":"41771983423143937","received_at":"2026-11-25T00:00:00Z","attempt":1,
///   "replay":false,"data":{"content":"!ping"}}"#;
/// let record: shardline_wire::Record = serde_json::from_str(json).unwrap();
/// assert_eq!(record.event, "MESSAGE_CREATE");
/// assert_eq!(record.data.get(), r#"{"content":"!ping"}"#);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// `<stream>:<stream sequence>`: unique per stored event, stable across retries.
    pub id: String,
    /// The dispatch's event name (`t`), e.g. `MESSAGE_CREATE`.
    pub event: String,
    /// The shard that received it.
    pub shard: u32,
    /// The gateway sequence number (`s`).
    pub seq: u64,
    /// The guild id (`d.guild_id`), when the event has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<String>,
    /// When the gateway read the frame (RFC 3339, UTC).
    pub received_at: String,
    /// Delivery attempt, starting at 1.
    pub attempt: u32,
    /// `true` when the record is re-sent by `shardline replay` or a dead-letter redrive.
    #[serde(default)]
    pub replay: bool,
    /// Discord's raw `d` payload.
    pub data: Box<RawValue>,
}

/// The body of one invocation: a batch of records, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    /// The records of this invocation.
    pub records: Vec<Record>,
}

/// A function's answer: the records that failed and should be retried.
///
/// The shape is the SQS partial-batch response, so
/// `aws_lambda_events::sqs::SqsBatchResponse` serialises to the same JSON.
/// An empty list (or an empty body) means every record succeeded.
///
/// ```
/// let answer: shardline_wire::BatchResponse =
///     serde_json::from_str(r#"{"batchItemFailures":[{"itemIdentifier":"DISCORD_APP:12"}]}"#).unwrap();
/// assert_eq!(answer.batch_item_failures[0].item_identifier, "DISCORD_APP:12");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// Records to retry.
    #[serde(default)]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

/// One failed record, named by its [`Record::id`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    /// The failed record's id.
    pub item_identifier: String,
}

impl BatchResponse {
    /// A response that fails exactly these record ids.
    pub fn failing<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            batch_item_failures: ids
                .into_iter()
                .map(|id| BatchItemFailure {
                    item_identifier: id.into(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_kept_byte_for_byte() {
        let raw = r#"{"records":[{"id":"S:1","event":"X","shard":0,"seq":1,"received_at":"t","attempt":1,"data":{"a" : 1,"b":[1, 2]}}]}"#;
        let batch: Batch = serde_json::from_str(raw).unwrap();
        assert_eq!(batch.records[0].data.get(), r#"{"a" : 1,"b":[1, 2]}"#);
        assert!(!batch.records[0].replay);
        let again = serde_json::to_string(&batch).unwrap();
        assert!(again.contains(r#""data":{"a" : 1,"b":[1, 2]}"#), "{again}");
        assert!(!again.contains("guild_id"));
    }

    #[test]
    fn batch_response_round_trips() {
        let response = BatchResponse::failing(["a", "b"]);
        let json = serde_json::to_string(&response).unwrap();
        assert_eq!(
            json,
            r#"{"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"b"}]}"#
        );
        let empty: BatchResponse = serde_json::from_str("{}").unwrap();
        assert!(empty.batch_item_failures.is_empty());
    }
}
