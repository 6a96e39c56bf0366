//! The `file://` store: a directory; keys are relative paths below it. Writes go through a
//! temporary file renamed into place, so a reader sees the old file or the complete new one.

use std::path::{Path, PathBuf};

use super::{ObjectInfo, ObjectStore, StorageError};
use crate::fsutil::write_atomic;

/// A store in a local directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// The store rooted at `root` (created on the first write).
    pub fn new(root: PathBuf) -> FileStore {
        FileStore { root }
    }

    /// The store rooted at `root/key`.
    pub fn scoped(&self, key: &str) -> FileStore {
        FileStore::new(self.path(key))
    }

    /// The file of `key` (an absolute key is used as is).
    pub fn path(&self, key: &str) -> PathBuf {
        if key.is_empty() {
            self.root.clone()
        } else {
            self.root.join(key)
        }
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_owned();
    move |source| StorageError::Io { op, path, source }
}

impl ObjectStore for FileStore {
    fn url(&self, key: &str) -> String {
        format!("file://{}", self.path(key).display())
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let path = self.path(key);
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(ObjectInfo {
                size: m.len(),
                sha256: None,
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("cannot read", &path)(e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.path(key);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("cannot read", &path)(e)),
        }
    }

    async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let path = self.path(key);
        let bytes = bytes.to_vec();
        let target = path.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_atomic(&target, |w| w.write_all(&bytes))
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(io("cannot write", &path))
    }
}
