//! What a handler returns when it fails, and whether the record is retried.

use std::fmt;

/// A boxed error, as handlers and clients produce them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A handler's failure.
///
/// Every error converts into this type with `?`, and is **retryable** by
/// default: the record is reported in `batchItemFailures` and delivered again
/// later. Mark an error that retrying cannot fix as permanent with
/// [`Error::permanent`] or [`ResultExt::permanent`]: it is logged and the
/// record is acknowledged.
///
/// Some errors are classified for you: a Discord REST answer with a 4xx
/// status other than 429 (missing permissions, unknown channel, an expired
/// interaction token) and a gateway command the shard rejected are permanent.
///
/// ```
/// use shardline_lambda_bot::{Error, ResultExt};
///
/// fn parse(input: &str) -> Result<u64, Error> {
///     // A malformed number will not parse better next time: acknowledge it.
///     let n: u64 = input.parse().permanent()?;
///     Ok(n)
/// }
/// assert!(!parse("x").unwrap_err().retryable());
/// assert!(Error::new("upstream is busy").retryable());
/// ```
pub struct Error {
    source: BoxError,
    retryable: bool,
}

impl Error {
    /// An error worth retrying: the record is delivered again. This is what `?`
    /// makes of any error; use it for messages (`Error::new("upstream busy")`).
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self {
            source: error.into(),
            retryable: true,
        }
    }

    /// An error that retrying cannot fix: logged, and the record is acknowledged.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self {
            source: error.into(),
            retryable: false,
        }
    }

    /// Whether the record should be delivered again.
    pub fn retryable(&self) -> bool {
        self.retryable
    }

    /// The underlying error.
    pub fn source_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.source.as_ref()
    }

    /// Consumes the error, returning the underlying one.
    pub fn into_source(self) -> BoxError {
        self.source
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("retryable", &self.retryable)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl<E> From<E> for Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        let retryable = classify(&error);
        Self {
            source: Box::new(error),
            retryable,
        }
    }
}

/// Retryable unless the error is one we know retrying cannot fix.
fn classify(error: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(http) = error.downcast_ref::<twilight_http::Error>() {
        if let twilight_http::error::ErrorType::Response { status, .. } = http.kind() {
            let code = status.get();
            return !((400..500).contains(&code) && code != 429);
        }
        return !matches!(
            http.kind(),
            twilight_http::error::ErrorType::Unauthorized
                | twilight_http::error::ErrorType::Validation
                | twilight_http::error::ErrorType::BuildingRequest
                | twilight_http::error::ErrorType::CreatingHeader { .. }
                | twilight_http::error::ErrorType::Json
        );
    }
    if let Some(command) = error.downcast_ref::<crate::gateway::CommandError>() {
        return command.retryable();
    }
    true
}

/// Marks a `Result`'s error as permanent while converting it into [`Error`].
///
/// ```
/// use shardline_lambda_bot::{Error, ResultExt};
///
/// let err: Result<u8, Error> = "300".parse::<u8>().permanent();
/// assert!(!err.unwrap_err().retryable());
/// ```
pub trait ResultExt<T> {
    /// Converts the error into a permanent [`Error`]: logged, record acknowledged.
    fn permanent(self) -> Result<T, Error>;
}

impl<T, E> ResultExt<T> for Result<T, E>
where
    E: Into<BoxError>,
{
    fn permanent(self) -> Result<T, Error> {
        self.map_err(Error::permanent)
    }
}

/// Why [`run`](crate::run) stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The function's configuration is invalid.
    #[error("invalid configuration")]
    Config(#[source] crate::config::ConfigError),
    /// The Lambda runtime failed (the runtime API is unreachable, or not set).
    #[error("the Lambda runtime stopped: {0}")]
    Runtime(lambda_runtime::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("boom")]
    struct Boom;

    #[test]
    fn question_mark_is_retryable_by_default() {
        fn fails() -> Result<(), Error> {
            Err(Boom)?;
            Ok(())
        }
        let err = fails().unwrap_err();
        assert!(err.retryable());
        assert_eq!(err.to_string(), "boom");
    }

    #[test]
    fn permanent_helpers() {
        assert!(!Error::permanent("nope").retryable());
        assert!(!Err::<(), _>(Boom).permanent().unwrap_err().retryable());
        assert!(Error::new("busy").retryable());
    }
}
