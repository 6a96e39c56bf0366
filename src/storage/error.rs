//! What can go wrong talking to a model store, worded so that a user can act on it: every
//! message names the object's URL and, for S3, the HTTP status and the S3 error code.
//! Messages never hold credentials (only the server's error code and message are kept).

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The store URL cannot be used.
    #[error("`{url}` is not a store URL ({message}); expected file://DIR or s3://BUCKET[/PREFIX]")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The bucket does not exist (or this endpoint does not know it).
    #[error("bucket `{bucket}` does not exist ({op} {url}: HTTP {status} NoSuchBucket)")]
    NoBucket {
        /// The bucket.
        bucket: String,
        /// The operation (GET, PUT, ...).
        op: &'static str,
        /// The object's URL.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// An object that must exist (a pointer, the model it names) is not there.
    #[error("{url} does not exist")]
    NotFound {
        /// The object's URL.
        url: String,
    },
    /// The server refused the credentials or the access.
    #[error(
        "{op} {url}: access denied ({answer}); check AWS_ACCESS_KEY_ID / \
         AWS_SECRET_ACCESS_KEY or AWS_PROFILE and the bucket's permissions"
    )]
    Denied {
        /// The operation.
        op: &'static str,
        /// The object's URL.
        url: String,
        /// The answer: `HTTP 403 InvalidAccessKeyId: <server message>`.
        answer: String,
    },
    /// The server answered with another error (5xx after the SDK's retries, 4xx).
    #[error("{op} {url}: {answer}")]
    Status {
        /// The operation.
        op: &'static str,
        /// The object's URL.
        url: String,
        /// The answer: `HTTP 503 ServiceUnavailable: <server message>`.
        answer: String,
    },
    /// No answer: connection refused or reset, timeout, missing credentials.
    #[error("{op} {url}: {detail}")]
    Transport {
        /// The operation.
        op: &'static str,
        /// The object's URL.
        url: String,
        /// The SDK's explanation with its causes.
        detail: String,
    },
    /// A local file of a `file://` store cannot be read or written.
    #[error("{op} {}", path.display())]
    Io {
        /// The operation (reading, writing).
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl StorageError {
    /// The process exit code: bad input for a bad URL or a bucket or object that does not exist, a runtime failure for credentials, server, network and local I/O.
    pub fn exit_code(&self) -> u8 {
        match self {
            StorageError::InvalidUrl { .. } => crate::exit::BAD_INPUT,
            StorageError::NoBucket { .. } => crate::exit::BAD_INPUT,
            StorageError::NotFound { .. } => crate::exit::BAD_INPUT,
            StorageError::Denied { .. } => crate::exit::RUNTIME_FAILURE,
            StorageError::Status { .. } => crate::exit::RUNTIME_FAILURE,
            StorageError::Transport { .. } => crate::exit::RUNTIME_FAILURE,
            StorageError::Io { .. } => crate::exit::RUNTIME_FAILURE,
        }
    }
}

impl StorageError {
    /// Whether the error is the user's input (exit 2: a bad URL, a bucket or pointer that
    /// does not exist) rather than a runtime failure (exit 1: credentials, server, network).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            StorageError::InvalidUrl { .. }
                | StorageError::NoBucket { .. }
                | StorageError::NotFound { .. }
        )
    }
}
