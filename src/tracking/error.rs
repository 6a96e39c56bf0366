//! Errors of the MLflow tracking client.
//!
//! Every variant that comes from a request names the endpoint (method and path, never the
//! host or any credential) so that a message read in a CI log says what was being done.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while talking to an MLflow tracking server.
#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    /// The server answered with an error status. `code` is MLflow's `error_code`
    /// (e.g. `RESOURCE_DOES_NOT_EXIST`), or `HTTP_<status>` when the body was not MLflow JSON.
    #[error("{endpoint}: HTTP {status} {code}: {message}")]
    Api {
        /// Method and path, e.g. `POST runs/log-batch`.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// MLflow `error_code`.
        code: String,
        /// MLflow `message` (or the start of a non-JSON body).
        message: String,
    },
    /// The model registry (or its alias endpoints) does not exist on this server, as on
    /// DagsHub's older MLflow: a 404 without an MLflow error code, or 501. Callers degrade
    /// to a warning; tracking still works.
    #[error("{endpoint}: this server has no model registry (HTTP {status})")]
    RegistryUnavailable {
        /// Method and path of the registry call.
        endpoint: String,
        /// HTTP status code (404 or 501).
        status: u16,
    },
    /// The request never got an HTTP answer: connect error, timeout, connection reset.
    #[error("{endpoint}: transport error: {source}")]
    Transport {
        /// Method and path.
        endpoint: String,
        /// The underlying error; its URL holds no credentials (they are never put in URLs).
        #[source]
        source: reqwest::Error,
    },
    /// The server answered 2xx but the body was not what the API promises.
    #[error("{endpoint}: cannot decode response (HTTP {status}): {message}")]
    Decode {
        /// Method and path.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// What did not parse.
        message: String,
    },
    /// A retryable failure persisted until the retry budget ran out.
    #[error("{last} (gave up after {attempts} attempts in {elapsed:.1?})")]
    RetriesExhausted {
        /// Attempts made, the first one included.
        attempts: u32,
        /// Time spent from the first attempt to giving up.
        elapsed: Duration,
        /// The error of the last attempt.
        last: Box<TrackingError>,
    },
    /// The caller passed something the server would reject or silently mangle
    /// (key too long, NaN where a number is needed, conflicting duplicate param...).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The client configuration (environment variables) is unusable.
    #[error("tracking configuration: {0}")]
    Config(String),
    /// Reading or writing a local file for an artifact failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The local file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl TrackingError {
    /// The process exit code: a runtime failure (the tracking server, or a client that could not be set up).
    pub fn exit_code(&self) -> u8 {
        match self {
            TrackingError::Api { .. } => crate::exit::RUNTIME_FAILURE,
            TrackingError::RegistryUnavailable { .. } => crate::exit::RUNTIME_FAILURE,
            TrackingError::Transport { .. } => crate::exit::RUNTIME_FAILURE,
            TrackingError::Decode { .. } => crate::exit::RUNTIME_FAILURE,
            TrackingError::RetriesExhausted { .. } => crate::exit::RUNTIME_FAILURE,
            TrackingError::Invalid(_) => crate::exit::RUNTIME_FAILURE,
            TrackingError::Config(_) => crate::exit::RUNTIME_FAILURE,
            TrackingError::Io { .. } => crate::exit::RUNTIME_FAILURE,
        }
    }
}

impl TrackingError {
    /// Whether trying the same request again may succeed: connection problems, timeouts,
    /// 408, 429 and 5xx. Other 4xx never are.
    pub fn is_retryable(&self) -> bool {
        match self {
            TrackingError::Transport { source, .. } => {
                source.is_connect()
                    || source.is_timeout()
                    || source.is_request()
                    || source.is_body()
            }
            TrackingError::Api { status, .. } => {
                matches!(*status, 408 | 429) || (500..=599).contains(status)
            }
            _ => false,
        }
    }

    /// The final error, looking through [`TrackingError::RetriesExhausted`].
    pub fn root(&self) -> &TrackingError {
        match self {
            TrackingError::RetriesExhausted { last, .. } => last.root(),
            other => other,
        }
    }

    /// MLflow's `error_code` if the server sent one (looking through retries).
    pub fn api_code(&self) -> Option<&str> {
        match self.root() {
            TrackingError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, if the server answered at all (looking through retries).
    pub fn status(&self) -> Option<u16> {
        match self.root() {
            TrackingError::Api { status, .. }
            | TrackingError::RegistryUnavailable { status, .. }
            | TrackingError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is MLflow's `RESOURCE_DOES_NOT_EXIST`.
    pub fn is_not_found(&self) -> bool {
        self.api_code() == Some("RESOURCE_DOES_NOT_EXIST")
    }

    /// Whether this is MLflow's `RESOURCE_ALREADY_EXISTS`.
    pub fn is_already_exists(&self) -> bool {
        self.api_code() == Some("RESOURCE_ALREADY_EXISTS")
    }
}

/// Result alias of the tracking module.
pub type Result<T, E = TrackingError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> TrackingError {
        TrackingError::Api {
            endpoint: "POST runs/log-batch".into(),
            status,
            code: "X".into(),
            message: String::new(),
        }
    }

    #[test]
    fn retries_only_transient_statuses() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(api(status).is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 413] {
            assert!(!api(status).is_retryable(), "{status}");
        }
        let wrapped = TrackingError::RetriesExhausted {
            attempts: 3,
            elapsed: Duration::from_secs(1),
            last: Box::new(api(503)),
        };
        assert!(!wrapped.is_retryable());
        assert_eq!(wrapped.status(), Some(503));
    }
}
