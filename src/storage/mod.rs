//! The storage stage: model stores that `netsec publish` writes and `netsec serve` reads —
//! a local directory (`file://`) or an S3 bucket (`s3://`, AWS or any S3-compatible
//! server) behind one small trait, [`ObjectStore`].
//!
//! * [`url`]: store URLs; [`pointer`]: the pointer (`current.json`) and metadata formats.
//! * [`file`] and [`s3`]: the two backends; [`ModelStore`] picks one by URL.
//! * [`publish`]: putting a model version into a store, pointer last.
//!
//! Layout below a store's root, per model name: `NAME/<sha256>/model.json`,
//! `NAME/<sha256>/metadata.json` and `NAME/current.json`.

pub mod error;
pub mod file;
pub mod pointer;
pub mod publish;
pub mod s3;
pub mod url;

use std::future::Future;

pub use error::StorageError;
pub use file::FileStore;
pub use pointer::{Metadata, POINTER_FILE, Pointer, PointerError};
pub use publish::{Action, Published, Release, publish};
pub use s3::{S3Options, S3Store};
pub use url::StoreUrl;

/// What a store knows about an object without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the bytes when the store keeps it (S3 objects written by netsec carry it as
    /// user metadata); `None` when it must be computed from the bytes.
    pub sha256: Option<String>,
}

/// Objects addressed by keys (`a/b/c.json`) relative to a store's root.
pub trait ObjectStore: Send + Sync {
    /// The URL of `key`, for messages.
    fn url(&self, key: &str) -> String;

    /// Size (and sha256 when known) of `key`, or `None` when it does not exist.
    fn head(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<ObjectInfo>, StorageError>> + Send;

    /// The bytes of `key`, or `None` when it does not exist.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StorageError>> + Send;

    /// Writes `key` whole: readers see the old object (or none) until the new one is
    /// complete, never a part of it.
    fn put(&self, key: &str, bytes: &[u8])
    -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// A store chosen by URL.
#[derive(Debug, Clone)]
pub enum ModelStore {
    /// `file://DIR`.
    File(FileStore),
    /// `s3://BUCKET[/PREFIX]`.
    S3(S3Store),
}

impl ModelStore {
    /// Opens the store at `url` (for S3: loads the AWS configuration chain).
    pub async fn open(url: &StoreUrl, options: &S3Options) -> Result<ModelStore, StorageError> {
        Ok(match url {
            StoreUrl::File(dir) => ModelStore::File(FileStore::new(dir.clone())),
            StoreUrl::S3 { bucket, prefix } => {
                ModelStore::S3(S3Store::connect(bucket, prefix, options).await?)
            }
        })
    }

    /// The same store rooted at `key` (e.g. the directory of one model name).
    pub fn scoped(&self, key: &str) -> ModelStore {
        match self {
            ModelStore::File(s) => ModelStore::File(s.scoped(key)),
            ModelStore::S3(s) => ModelStore::S3(s.scoped(key)),
        }
    }

    /// The URL of the store's root.
    pub fn root_url(&self) -> String {
        self.url("")
    }
}

impl ObjectStore for ModelStore {
    fn url(&self, key: &str) -> String {
        match self {
            ModelStore::File(s) => s.url(key),
            ModelStore::S3(s) => s.url(key),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        match self {
            ModelStore::File(s) => s.head(key).await,
            ModelStore::S3(s) => s.head(key).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        match self {
            ModelStore::File(s) => s.get(key).await,
            ModelStore::S3(s) => s.get(key).await,
        }
    }

    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StorageError> {
        match self {
            ModelStore::File(s) => s.put(key, bytes).await,
            ModelStore::S3(s) => s.put(key, bytes).await,
        }
    }
}
