//! Lazy reading of gateway messages: `op`, `s`, `t` and the raw `d` bytes,
//! without deserialising the event.

use sonic_rs::JsonValueTrait as _;

/// Gateway opcodes the shard handles.
pub(crate) mod op {
    pub(crate) const DISPATCH: u8 = 0;
    pub(crate) const HEARTBEAT: u8 = 1;
    pub(crate) const IDENTIFY: u8 = 2;
    pub(crate) const RESUME: u8 = 6;
    pub(crate) const RECONNECT: u8 = 7;
    pub(crate) const INVALID_SESSION: u8 = 9;
    pub(crate) const HELLO: u8 = 10;
    pub(crate) const HEARTBEAT_ACK: u8 = 11;
}

/// The envelope of one gateway message, borrowing from the message bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub(crate) op: u8,
    pub(crate) seq: Option<u64>,
    pub(crate) event: Option<&'a str>,
    /// The raw JSON of `d`, a sub-slice of the message (`None` when absent).
    pub(crate) data: Option<&'a [u8]>,
}

/// Why a message is not a gateway payload.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("not a JSON object: {0}")]
    Json(#[from] sonic_rs::Error),
    #[error("payload has no valid `op`")]
    NoOp,
    #[error("payload field `{0}` has the wrong type")]
    Field(&'static str),
}

/// Reads the envelope of `message` in one lazy pass over its top-level keys.
pub(crate) fn envelope(message: &[u8]) -> Result<Envelope<'_>, FrameError> {
    let mut op = None;
    let mut seq = None;
    let mut event = None;
    let mut data = None;
    for item in sonic_rs::to_object_iter(message) {
        let (key, value) = item?;
        match &*key {
            "op" => op = Some(value.as_u64().ok_or(FrameError::NoOp)?),
            "s" if !value.is_null() => {
                seq = Some(value.as_u64().ok_or(FrameError::Field("s"))?);
            }
            "t" if !value.is_null() => {
                let raw = value.as_raw_str();
                let name = raw
                    .strip_prefix('"')
                    .and_then(|r| r.strip_suffix('"'))
                    .filter(|n| !n.contains('\\'))
                    .ok_or(FrameError::Field("t"))?;
                event = Some(subslice_str(message, name).ok_or(FrameError::Field("t"))?);
            }
            "d" => {
                let raw = value.as_raw_str().as_bytes();
                data = Some(subslice(message, raw).ok_or(FrameError::Field("d"))?);
            }
            _ => {}
        }
    }
    let op = op.ok_or(FrameError::NoOp)?;
    let op = u8::try_from(op).map_err(|_| FrameError::NoOp)?;
    Ok(Envelope {
        op,
        seq,
        event,
        data,
    })
}

/// `part` re-borrowed from `whole` when it points inside it (the lazy parser
/// hands out sub-slices of its input).
fn subslice<'a>(whole: &'a [u8], part: &[u8]) -> Option<&'a [u8]> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    whole.get(start..start.checked_add(part.len())?)
}

fn subslice_str<'a>(whole: &'a [u8], part: &str) -> Option<&'a str> {
    std::str::from_utf8(subslice(whole, part.as_bytes())?).ok()
}

/// The guild an event belongs to, when it has one (a snowflake string or
/// number): `d.guild_id`, or `d.id` for the guild lifecycle events
/// (GUILD_CREATE, GUILD_UPDATE, GUILD_DELETE), whose `d` is the guild itself.
pub(crate) fn guild_id(event: &str, data: &[u8]) -> Option<u64> {
    let field = match event {
        "GUILD_CREATE" | "GUILD_UPDATE" | "GUILD_DELETE" => "id",
        _ => "guild_id",
    };
    let value = sonic_rs::get(data, [field]).ok()?;
    snowflake(&value)
}

fn snowflake(value: &sonic_rs::LazyValue<'_>) -> Option<u64> {
    if let Some(text) = value.as_str() {
        return text.parse().ok();
    }
    value.as_u64()
}

/// What READY tells the shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ready {
    pub(crate) session_id: String,
    pub(crate) resume_gateway_url: Option<String>,
    pub(crate) guilds: u32,
}

/// Reads the fields of READY the shard keeps.
pub(crate) fn ready(data: &[u8]) -> Option<Ready> {
    let mut session_id = None;
    let mut resume_gateway_url = None;
    let mut guilds = 0u32;
    for item in sonic_rs::to_object_iter(data) {
        let (key, value) = item.ok()?;
        match &*key {
            "session_id" => session_id = value.as_str().map(str::to_owned),
            "resume_gateway_url" => resume_gateway_url = value.as_str().map(str::to_owned),
            "guilds" => {
                guilds = value
                    .into_array_iter()
                    .map(|items| items.filter(Result::is_ok).count())
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0);
            }
            _ => {}
        }
    }
    Some(Ready {
        session_id: session_id?,
        resume_gateway_url,
        guilds,
    })
}

/// `d` of an op 9 (`true` when the session may be resumed).
pub(crate) fn resumable(data: Option<&[u8]>) -> bool {
    data.is_some_and(|d| d == b"true")
}

/// `d.heartbeat_interval` of HELLO, in milliseconds.
pub(crate) fn heartbeat_interval(data: Option<&[u8]>) -> Option<u64> {
    let value = sonic_rs::get(data?, ["heartbeat_interval"]).ok()?;
    value.as_u64().or_else(|| value.as_f64().map(|f| f as u64))
}

/// `d.unavailable` of GUILD_DELETE (`true` for an outage, not a removal).
pub(crate) fn unavailable(data: &[u8]) -> bool {
    sonic_rs::get(data, ["unavailable"])
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_envelope_without_the_event() {
        let msg = br#"{"t":"MESSAGE_CREATE","s":42,"op":0,"d":{"id":"1","guild_id":"81384788765712384","content":"hi \"there\"","nested":{"guild_id":"9"}}}"#;
        let env = envelope(msg).unwrap();
        assert_eq!(env.op, 0);
        assert_eq!(env.seq, Some(42));
        assert_eq!(env.event, Some("MESSAGE_CREATE"));
        let data = env.data.unwrap();
        assert!(data.starts_with(b"{\"id\""));
        assert!(data.ends_with(b"}}"));
        assert_eq!(guild_id("MESSAGE_CREATE", data), Some(81384788765712384));
    }

    #[test]
    fn null_fields_and_other_ops() {
        let env = envelope(br#"{"op":11,"d":null,"s":null,"t":null}"#).unwrap();
        assert_eq!(env.op, 11);
        assert_eq!(env.seq, None);
        assert_eq!(env.event, None);
        assert_eq!(env.data, Some(&b"null"[..]));
        assert!(resumable(envelope(br#"{"op":9,"d":true}"#).unwrap().data));
        assert!(!resumable(envelope(br#"{"op":9,"d":false}"#).unwrap().data));
        let hello = envelope(br#"{"op":10,"d":{"heartbeat_interval":41250}}"#).unwrap();
        assert_eq!(heartbeat_interval(hello.data), Some(41250));
    }

    #[test]
    fn rejects_garbage() {
        assert!(envelope(b"not json").is_err());
        assert!(envelope(b"[1,2]").is_err());
        assert!(envelope(br#"{"d":{}}"#).is_err());
        assert!(envelope(br#"{"op":"x"}"#).is_err());
        assert!(envelope(br#"{"op":0,"s":1,"d":{"a":"#).is_err());
    }

    #[test]
    fn guild_id_absent_or_numeric() {
        assert_eq!(guild_id("MESSAGE_CREATE", br#"{"id":"1"}"#), None);
        assert_eq!(guild_id("TYPING_START", br#"{"guild_id":12}"#), Some(12));
        // Guild lifecycle events carry the guild itself.
        assert_eq!(
            guild_id("GUILD_CREATE", br#"{"id":"77","name":"g"}"#),
            Some(77)
        );
        assert_eq!(
            guild_id("GUILD_DELETE", br#"{"id":"78","unavailable":true}"#),
            Some(78)
        );
    }

    #[test]
    fn ready_fields() {
        let r = ready(br#"{"v":10,"session_id":"abc","resume_gateway_url":"wss://r.example","guilds":[{"id":"1","unavailable":true},{"id":"2","unavailable":true}],"user":{}}"#).unwrap();
        assert_eq!(r.session_id, "abc");
        assert_eq!(r.resume_gateway_url.as_deref(), Some("wss://r.example"));
        assert_eq!(r.guilds, 2);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = envelope(&bytes);
            let _ = guild_id("MESSAGE_CREATE", &bytes);
            let _ = ready(&bytes);
        }
    }
}
