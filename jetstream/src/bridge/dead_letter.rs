//! The dead-letter envelope: the original dispatch, untouched, with headers
//! that say where it came from and why it was given up on.

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use shardline_wire::Names;

/// Header names of a dead letter (besides the original dispatch headers,
/// which are kept as they were, except `Nats-Msg-Id`).
pub mod dlq_headers {
    /// The bridge route that gave up.
    pub const ROUTE: &str = "Shardline-Dlq-Route";
    /// The original subject.
    pub const SUBJECT: &str = "Shardline-Dlq-Subject";
    /// The original stream.
    pub const STREAM: &str = "Shardline-Dlq-Stream";
    /// The original stream sequence.
    pub const STREAM_SEQ: &str = "Shardline-Dlq-Stream-Seq";
    /// Attempts made.
    pub const ATTEMPTS: &str = "Shardline-Dlq-Attempts";
    /// The last error.
    pub const ERROR: &str = "Shardline-Dlq-Error";
    /// When the route gave up (RFC 3339).
    pub const FAILED_AT: &str = "Shardline-Dlq-Failed-At";
    /// The original `Nats-Msg-Id`.
    pub const ORIGINAL_MSG_ID: &str = "Shardline-Dlq-Original-Msg-Id";
}

/// One dead letter.
///
/// ```
/// use shardline_jetstream::bridge::DeadLetter;
/// let letter = DeadLetter {
///     route: "bot".into(), subject: "discord.dispatch.MESSAGE_CREATE.0".into(),
///     stream: "DISCORD_APP".into(), stream_seq: 7, attempts: 3,
///     error: "HTTP 400 Bad Request:\nbad".into(), failed_at: "2026-01-01T00:00:00Z".into(),
///     headers: async_nats::HeaderMap::new(), payload: "{}".into(),
/// };
/// let headers = letter.to_headers();
/// let again = DeadLetter::from_parts(&headers, letter.payload.clone()).unwrap();
/// assert_eq!(again.stream_seq, 7);
/// assert_eq!(again.error, "HTTP 400 Bad Request: bad"); // one line in a header
/// assert_eq!(letter.msg_id(), "dlq:bot:DISCORD_APP:7");
/// ```
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The route that gave up.
    pub route: String,
    /// The original subject.
    pub subject: String,
    /// The original stream.
    pub stream: String,
    /// The original stream sequence.
    pub stream_seq: u64,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// When the route gave up (RFC 3339).
    pub failed_at: String,
    /// The original headers (without `Nats-Msg-Id`, which is kept in
    /// [`dlq_headers::ORIGINAL_MSG_ID`]).
    pub headers: HeaderMap,
    /// The original payload, byte for byte.
    pub payload: Bytes,
}

/// A message in the dead-letter stream that lacks the envelope headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a dead letter: missing or invalid header {0}")]
pub struct NotADeadLetter(pub &'static str);

/// The dead letter could not be stored.
#[derive(Debug, thiserror::Error)]
#[error("publishing the dead letter of {stream}:{stream_seq} to {subject}")]
pub struct DeadLetterError {
    stream: String,
    stream_seq: u64,
    subject: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

fn one_line(text: &str, limit: usize) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if line.len() > limit {
        let mut cut = limit;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line
}

impl DeadLetter {
    /// The `Nats-Msg-Id` of the dead letter, so a bridge that dies between
    /// publishing it and terminating the original does not store it twice.
    pub fn msg_id(&self) -> String {
        format!("dlq:{}:{}:{}", self.route, self.stream, self.stream_seq)
    }

    /// The headers to publish: the original ones plus the envelope.
    pub fn to_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, values) in self.headers.iter() {
            let name: &str = name.as_ref();
            if name.eq_ignore_ascii_case(shardline_wire::headers::MSG_ID) {
                if let Some(value) = values.first() {
                    headers.insert(dlq_headers::ORIGINAL_MSG_ID, value.as_str());
                }
                continue;
            }
            for value in values {
                headers.append(name, value.as_str());
            }
        }
        headers.insert(shardline_wire::headers::MSG_ID, self.msg_id());
        headers.insert(dlq_headers::ROUTE, one_line(&self.route, 200));
        headers.insert(dlq_headers::SUBJECT, one_line(&self.subject, 1000));
        headers.insert(dlq_headers::STREAM, one_line(&self.stream, 200));
        headers.insert(dlq_headers::STREAM_SEQ, self.stream_seq.to_string());
        headers.insert(dlq_headers::ATTEMPTS, self.attempts.to_string());
        headers.insert(dlq_headers::ERROR, one_line(&self.error, 1000));
        headers.insert(dlq_headers::FAILED_AT, one_line(&self.failed_at, 100));
        headers
    }

    /// Reads a dead letter back from the headers and payload of a message
    /// in the dead-letter stream.
    pub fn from_parts(headers: &HeaderMap, payload: Bytes) -> Result<Self, NotADeadLetter> {
        let get = |name: &'static str| {
            headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .ok_or(NotADeadLetter(name))
        };
        let mut original = HeaderMap::new();
        for (name, values) in headers.iter() {
            let name: &str = name.as_ref();
            if name.starts_with("Shardline-Dlq-")
                || name.eq_ignore_ascii_case(shardline_wire::headers::MSG_ID)
            {
                continue;
            }
            for value in values {
                original.append(name, value.as_str());
            }
        }
        if let Ok(id) = get(dlq_headers::ORIGINAL_MSG_ID) {
            original.insert(shardline_wire::headers::MSG_ID, id);
        }
        Ok(Self {
            route: get(dlq_headers::ROUTE)?,
            subject: get(dlq_headers::SUBJECT)?,
            stream: get(dlq_headers::STREAM)?,
            stream_seq: get(dlq_headers::STREAM_SEQ)?
                .parse()
                .map_err(|_| NotADeadLetter(dlq_headers::STREAM_SEQ))?,
            attempts: get(dlq_headers::ATTEMPTS)?
                .parse()
                .map_err(|_| NotADeadLetter(dlq_headers::ATTEMPTS))?,
            error: get(dlq_headers::ERROR)?,
            failed_at: get(dlq_headers::FAILED_AT)?,
            headers: original,
            payload,
        })
    }

    /// Publishes the dead letter to `<prefix>.dlq.<route>` and waits for
    /// the stream's acknowledgement.
    pub async fn publish(
        &self,
        js: &jetstream::Context,
        names: &Names,
    ) -> Result<(), DeadLetterError> {
        let subject = names.dlq_subject(&self.route);
        let wrap = |source: Box<dyn std::error::Error + Send + Sync>| DeadLetterError {
            stream: self.stream.clone(),
            stream_seq: self.stream_seq,
            subject: subject.clone(),
            source,
        };
        js.publish_with_headers(subject.clone(), self.to_headers(), self.payload.clone())
            .await
            .map_err(|e| wrap(Box::new(e)))?
            .await
            .map_err(|e| wrap(Box::new(e)))?;
        Ok(())
    }
}
