//! What a close code means for the shard: resume, identify again, or stop.

/// The shard's reaction to a close code from the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseAction {
    /// The session survives: reconnect and RESUME.
    Resume,
    /// The session is gone: reconnect and IDENTIFY (with a new permit).
    Reidentify,
    /// Never reconnect: the configuration must change first.
    Stop(&'static str),
}

/// The close-code policy (Discord's opcodes-and-status-codes table).
pub(crate) fn close_action(code: u16) -> CloseAction {
    match code {
        4004 => CloseAction::Stop("authentication failed: the token is invalid"),
        4010 => CloseAction::Stop("invalid shard: the shard id or count is wrong"),
        4011 => CloseAction::Stop("sharding required: the bot needs more shards"),
        4012 => CloseAction::Stop("invalid API version"),
        4013 => CloseAction::Stop("invalid intents"),
        4014 => CloseAction::Stop("disallowed intents: enable them in the developer portal"),
        4007 | 4009 => CloseAction::Reidentify,
        _ => CloseAction::Resume,
    }
}

/// The close code the shard sends when it means to RESUME (anything but
/// 1000/1001 keeps the session).
pub(crate) const RESUMABLE_CLOSE: u16 = 4000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_reconnects_on_fatal_codes() {
        for code in [4004, 4010, 4011, 4012, 4013, 4014] {
            assert!(matches!(close_action(code), CloseAction::Stop(_)), "{code}");
        }
    }

    #[test]
    fn reidentifies_when_the_session_is_gone() {
        assert_eq!(close_action(4007), CloseAction::Reidentify);
        assert_eq!(close_action(4009), CloseAction::Reidentify);
    }

    #[test]
    fn resumes_otherwise() {
        for code in [1000, 1001, 1006, 4000, 4001, 4002, 4003, 4005, 4008] {
            assert_eq!(close_action(code), CloseAction::Resume, "{code}");
        }
    }
}
