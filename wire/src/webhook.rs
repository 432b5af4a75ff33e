//! Standard Webhooks signatures for HTTP deliveries.
//!
//! A delivery carries `webhook-id` (stable across retries), `webhook-timestamp`
//! (unix seconds) and `webhook-signature`: a space-separated list of
//! `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per signing key, so
//! keys can be rotated without downtime.
//!
//! ```
//! use shardline_wire::webhook::{SigningKey, sign, verify};
//! let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
//! let body = br#"{"test": 2432232314}"#;
//! let signature = sign(&[key.clone()], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
//! assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//! verify(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", &signature, body, 1614265330, 300).unwrap();
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the delivery's id, stable across retries.
pub const ID_HEADER: &str = "webhook-id";
/// Header carrying the unix timestamp (seconds) of the attempt.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Header carrying the signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// The default tolerance for timestamps, in seconds, either side of now.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// A signing secret. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Parses `whsec_<base64>` (the Standard Webhooks form) or bare base64.
    pub fn parse(secret: &str) -> Result<Self, VerifyError> {
        let encoded = secret
            .trim()
            .strip_prefix("whsec_")
            .unwrap_or(secret.trim());
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| VerifyError::BadKey("it is not base64 (expected whsec_<base64>)"))?;
        if bytes.len() < 16 {
            return Err(VerifyError::BadKey("it is shorter than 16 bytes"));
        }
        Ok(Self(bytes))
    }

    /// A key from raw bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// Parses a comma- or space-separated list of secrets (newest first).
    pub fn parse_list(secrets: &str) -> Result<Vec<Self>, VerifyError> {
        secrets
            .split([',', ' '])
            .filter(|s| !s.trim().is_empty())
            .map(Self::parse)
            .collect()
    }

    fn signature(&self, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A header is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// The timestamp is not a unix time in seconds.
    #[error("webhook-timestamp is not a unix time in seconds")]
    BadTimestamp,
    /// The timestamp is too far from now.
    #[error("webhook-timestamp is {0} s away from now, outside the tolerance")]
    OutsideTolerance(u64),
    /// No `v1` signature matched any key.
    #[error("no signature matches any signing key")]
    NoMatch,
    /// A configured key is unusable.
    #[error("invalid signing key: {0}")]
    BadKey(&'static str),
    /// No keys are configured.
    #[error("no signing keys are configured")]
    NoKeys,
}

/// The `webhook-signature` header value for `body`, one `v1` entry per key.
pub fn sign(keys: &[SigningKey], id: &str, timestamp: u64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    keys.iter()
        .map(|key| {
            format!(
                "v1,{}",
                STANDARD.encode(key.signature(id, &timestamp, body))
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Verifies a delivery: the timestamp is within `tolerance_secs` of `now`, and
/// one of the header's `v1` signatures matches one of `keys`.
pub fn verify(
    keys: &[SigningKey],
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: u64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    if keys.is_empty() {
        return Err(VerifyError::NoKeys);
    }
    let sent: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let skew = sent.abs_diff(now);
    if skew > tolerance_secs {
        return Err(VerifyError::OutsideTolerance(skew));
    }
    let candidates: Vec<Vec<u8>> = signature_header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .collect();
    for key in keys {
        let expected = key.signature(id, timestamp.trim(), body);
        if candidates
            .iter()
            .any(|candidate| constant_time_eq(candidate, &expected))
        {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn standard_webhooks_vector() {
        let key = SigningKey::parse(SECRET).unwrap();
        assert_eq!(
            sign(&[key], ID, 1614265330, BODY),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn rotated_keys_verify() {
        let old = SigningKey::parse(SECRET).unwrap();
        let new = SigningKey::from_bytes(vec![7u8; 32]);
        let header = sign(&[new.clone(), old.clone()], ID, 1000, BODY);
        // A receiver that still has only the old key, and one with only the new.
        verify(&[old], ID, "1000", &header, BODY, 1000, 300).unwrap();
        verify(
            std::slice::from_ref(&new),
            ID,
            "1000",
            &header,
            BODY,
            1000,
            300,
        )
        .unwrap();
        let other = SigningKey::from_bytes(vec![9u8; 32]);
        assert_eq!(
            verify(&[other], ID, "1000", &header, BODY, 1000, 300),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn rejects_tampering_and_stale_timestamps() {
        let key = SigningKey::parse(SECRET).unwrap();
        let header = sign(std::slice::from_ref(&key), ID, 1000, BODY);
        let keys = [key];
        assert_eq!(
            verify(&keys, ID, "1000", &header, b"{}", 1000, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&keys, "other", "1000", &header, BODY, 1000, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&keys, ID, "1000", &header, BODY, 1400, 300),
            Err(VerifyError::OutsideTolerance(400))
        );
        assert_eq!(
            verify(&keys, ID, "soon", &header, BODY, 1000, 300),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn key_debug_is_redacted() {
        let key = SigningKey::parse(SECRET).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
        assert!(SigningKey::parse("whsec_!!").is_err());
        assert_eq!(
            SigningKey::parse_list(&format!("{SECRET}, {SECRET}"))
                .unwrap()
                .len(),
            2
        );
    }
}
