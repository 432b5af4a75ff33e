//! Turning a stored dispatch back into the record a function receives.

use async_nats::HeaderMap;
use shardline_wire::{Names, Record, headers};

/// Why a stored message could not be turned into a [`Record`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The subject is not `<prefix>.dispatch.<EVENT>.<shard>`.
    #[error("subject {0:?} is not a dispatch subject")]
    Subject(String),
    /// A required header is missing or malformed.
    #[error("header {0} is missing or malformed")]
    Header(&'static str),
    /// The payload is not a JSON object or array.
    #[error("payload of stream sequence {0} is not JSON")]
    Payload(u64),
}

/// What is known about one stored dispatch.
#[derive(Debug, Clone, Copy)]
pub struct StoredDispatch<'a> {
    /// The stream it is stored in.
    pub stream: &'a str,
    /// Its stream sequence.
    pub stream_sequence: u64,
    /// Its subject.
    pub subject: &'a str,
    /// Its headers.
    pub headers: Option<&'a HeaderMap>,
    /// Its payload (Discord's raw `d`).
    pub payload: &'a [u8],
}

impl StoredDispatch<'_> {
    /// `<stream>:<stream sequence>`, the record id.
    pub fn record_id(&self) -> String {
        format!("{}:{}", self.stream, self.stream_sequence)
    }

    /// The guild id header, when present.
    pub fn guild_id(&self) -> Option<&str> {
        header(self.headers, headers::GUILD_ID)
    }

    /// Builds the record, validating that the payload is JSON.
    pub fn to_record(
        &self,
        names: &Names,
        attempt: u32,
        replay: bool,
    ) -> Result<Record, RecordError> {
        let (event, shard) = names
            .parse_dispatch_subject(self.subject)
            .ok_or_else(|| RecordError::Subject(self.subject.to_owned()))?;
        let seq = header(self.headers, headers::SEQ)
            .and_then(|value| value.parse().ok())
            .ok_or(RecordError::Header(headers::SEQ))?;
        let received_at = header(self.headers, headers::RECEIVED_AT)
            .unwrap_or_default()
            .to_owned();
        let text = std::str::from_utf8(self.payload)
            .map_err(|_| RecordError::Payload(self.stream_sequence))?;
        let data = serde_json::value::RawValue::from_string(text.to_owned())
            .map_err(|_| RecordError::Payload(self.stream_sequence))?;
        Ok(Record {
            id: self.record_id(),
            event: event.to_owned(),
            shard,
            seq,
            guild_id: self.guild_id().map(str::to_owned),
            received_at,
            attempt,
            replay,
            data,
        })
    }
}

impl StoredDispatch<'_> {
    /// Appends the record as one line of JSON to `out`, without parsing the
    /// payload: the stored bytes are Discord's JSON and go out as they are.
    /// The output is the same JSON that serialising [`StoredDispatch::to_record`] gives.
    pub fn write_json_line(
        &self,
        names: &Names,
        attempt: u32,
        replay: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        use std::io::Write as _;
        let (event, shard) = names
            .parse_dispatch_subject(self.subject)
            .ok_or_else(|| RecordError::Subject(self.subject.to_owned()))?;
        let seq: u64 = header(self.headers, headers::SEQ)
            .and_then(|value| value.parse().ok())
            .ok_or(RecordError::Header(headers::SEQ))?;
        let payload = self.payload.trim_ascii();
        if !matches!(payload.first(), Some(b'{' | b'[')) {
            return Err(RecordError::Payload(self.stream_sequence));
        }
        let json = |out: &mut Vec<u8>, text: &str| {
            serde_json::to_writer(out, text).expect("writing a string to a Vec cannot fail")
        };
        out.extend_from_slice(b"{\"id\":");
        json(out, &self.record_id());
        out.extend_from_slice(b",\"event\":");
        json(out, event);
        let _ = write!(out, ",\"shard\":{shard},\"seq\":{seq}");
        if let Some(guild) = self.guild_id() {
            out.extend_from_slice(b",\"guild_id\":");
            json(out, guild);
        }
        out.extend_from_slice(b",\"received_at\":");
        json(
            out,
            header(self.headers, headers::RECEIVED_AT).unwrap_or_default(),
        );
        let _ = write!(out, ",\"attempt\":{attempt},\"replay\":{replay},\"data\":");
        out.extend_from_slice(payload);
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}

fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers?.get(name).map(|value| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_headers() -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(headers::SEQ, "881");
        map.insert(headers::GUILD_ID, "41771983423143937");
        map.insert(headers::RECEIVED_AT, "2026-11-25T00:00:00Z");
        map
    }

    #[test]
    fn builds_the_record_functions_receive() {
        let names = Names::new("discord", "app").unwrap();
        let headers = sample_headers();
        let stored = StoredDispatch {
            stream: "DISCORD_APP",
            stream_sequence: 12,
            subject: "discord.dispatch.MESSAGE_CREATE.3",
            headers: Some(&headers),
            payload: br#"{"content":"!ping"}"#,
        };
        let record = stored.to_record(&names, 2, true).unwrap();
        assert_eq!(record.id, "DISCORD_APP:12");
        assert_eq!(
            (record.event.as_str(), record.shard, record.seq),
            ("MESSAGE_CREATE", 3, 881)
        );
        assert_eq!(record.guild_id.as_deref(), Some("41771983423143937"));
        assert_eq!((record.attempt, record.replay), (2, true));
        assert_eq!(record.data.get(), r#"{"content":"!ping"}"#);
    }

    #[test]
    fn json_line_equals_the_serialised_record() {
        let names = Names::new("discord", "app").unwrap();
        let mut headers = sample_headers();
        headers.insert(headers::RECEIVED_AT, "quote\" and \\ backslash");
        for headers in [Some(&headers), Some(&sample_headers())] {
            let stored = StoredDispatch {
                stream: "DISCORD_APP",
                stream_sequence: 12,
                subject: "discord.dispatch.MESSAGE_CREATE.3",
                headers,
                payload: br#"{"content":"a \"quoted\" ping","n":[1,2]}"#,
            };
            let mut line = Vec::new();
            stored.write_json_line(&names, 3, true, &mut line).unwrap();
            let mut expected =
                serde_json::to_vec(&stored.to_record(&names, 3, true).unwrap()).unwrap();
            expected.push(b'\n');
            assert_eq!(
                String::from_utf8(line).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    #[test]
    fn names_what_is_wrong() {
        let names = Names::new("discord", "app").unwrap();
        let headers = sample_headers();
        let mut stored = StoredDispatch {
            stream: "S",
            stream_sequence: 1,
            subject: "discord.other.X.1",
            headers: Some(&headers),
            payload: b"{}",
        };
        assert_eq!(
            stored.to_record(&names, 1, false).unwrap_err(),
            RecordError::Subject("discord.other.X.1".into())
        );
        stored.subject = "discord.dispatch.X.1";
        stored.payload = b"not json";
        assert_eq!(
            stored.to_record(&names, 1, false).unwrap_err(),
            RecordError::Payload(1)
        );
        stored.headers = None;
        assert_eq!(
            stored.to_record(&names, 1, false).unwrap_err(),
            RecordError::Header(headers::SEQ)
        );
    }
}
