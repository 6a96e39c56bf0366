//! Publishing a model version into a store: the model file and its metadata under
//! `<sha256>/`, then the pointer — last, and only when everything before it succeeded, so
//! a reader never follows a pointer to a missing or partial model. Objects already there
//! with the right size and sha256 are kept, so publishing the same version again uploads
//! nothing and rolling back only writes the pointer.

use sha2::{Digest, Sha256};

use super::pointer::{Metadata, POINTER_FILE, Pointer, metadata_key, model_key};
use super::{ObjectStore, StorageError};
use crate::shared::guard::Guard;
use crate::shared::hash::hex;

/// A registered model version to publish.
#[derive(Debug, Clone)]
pub struct Release {
    /// The model file's bytes (their sha256 already checked against the registry).
    pub bytes: Vec<u8>,
    /// What `metadata.json` says; its name, version and sha256 also go into the pointer.
    pub metadata: Metadata,
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It was not there: written.
    Uploaded,
    /// It was there with other content (a damaged copy, another pointer): written over.
    Replaced,
    /// It was there with the same content: nothing written.
    Kept,
}

/// One object of a publication.
#[derive(Debug, Clone)]
pub struct Step {
    /// The object's URL.
    pub url: String,
    /// What was done.
    pub action: Action,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What [`publish`] did, in the order it did it (model, metadata, pointer).
#[derive(Debug, Clone)]
pub struct Published {
    /// The model file, its metadata and the pointer.
    pub steps: Vec<Step>,
    /// The pointer before (`None`: there was none, or it was unreadable).
    pub previous: Option<Pointer>,
    /// The pointer now.
    pub pointer: Pointer,
}

/// Publishes `release` into `store` (the store directory of the release's name).
pub async fn publish<S: ObjectStore>(
    store: &S,
    release: &Release,
) -> Result<Published, StorageError> {
    let meta = &release.metadata;
    let sha256 = &meta.sha256;
    let mut steps = Vec::with_capacity(3);
    // Read first: a GET answer has a body, so refused credentials are named here with the
    // server's error code (a HEAD answer has none).
    let previous = store
        .get(POINTER_FILE)
        .await?
        .and_then(|b| Pointer::parse(&store.url(POINTER_FILE), &b).ok());

    let pointer = Pointer::new(&meta.name, meta.version, sha256);
    let pointer_action = match &previous {
        Some(p) if *p == pointer => Action::Kept,
        Some(_) => Action::Replaced,
        None => Action::Uploaded,
    };
    // Only a test's twin writes the pointer first (see `Guard::PublishOrder`).
    let pointer_first = Guard::PublishOrder.disabled();
    if pointer_first && pointer_action != Action::Kept {
        store.put(POINTER_FILE, &pointer.to_json()).await?;
    }

    let key = model_key(sha256);
    let size = release.bytes.len() as u64;
    let action = match store.head(&key).await? {
        None => Action::Uploaded,
        Some(info) if info.size != size => Action::Replaced,
        Some(info) => match info.sha256 {
            Some(stored) if stored == *sha256 => Action::Kept,
            Some(_) => Action::Replaced,
            // The store does not keep sha256s: read the object and hash it.
            None => match store.get(&key).await? {
                Some(bytes) if hex(&Sha256::digest(&bytes)) == *sha256 => Action::Kept,
                _ => Action::Replaced,
            },
        },
    };
    if action == Action::Replaced {
        tracing::warn!(url = %store.url(&key), "the stored model file does not match its sha256: uploading it again");
    }
    if action != Action::Kept {
        store.put(&key, &release.bytes).await?;
    }
    steps.push(Step {
        url: store.url(&key),
        action,
        bytes: size,
    });

    // Metadata is written once per model file: the first publication's time and actor stay.
    let key = metadata_key(sha256);
    let existing = store.get(&key).await?;
    let same = existing
        .as_deref()
        .and_then(|b| serde_json::from_slice::<Metadata>(b).ok())
        .is_some_and(|m| m.sha256 == *sha256);
    let (action, bytes) = match existing {
        Some(b) if same => (Action::Kept, b.len() as u64),
        existing => {
            let json = serde_json::to_vec_pretty(meta).unwrap_or_default();
            store.put(&key, &json).await?;
            let action = if existing.is_some() {
                Action::Replaced
            } else {
                Action::Uploaded
            };
            (action, json.len() as u64)
        }
    };
    steps.push(Step {
        url: store.url(&key),
        action,
        bytes,
    });

    let json = pointer.to_json();
    if !pointer_first && pointer_action != Action::Kept {
        store.put(POINTER_FILE, &json).await?;
    }
    steps.push(Step {
        url: store.url(POINTER_FILE),
        action: pointer_action,
        bytes: json.len() as u64,
    });
    Ok(Published {
        steps,
        previous,
        pointer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FileStore, ObjectInfo};

    fn release(model: &[u8], version: u64) -> Release {
        Release {
            bytes: model.to_vec(),
            metadata: Metadata {
                format: crate::storage::pointer::METADATA_FORMAT.into(),
                name: "phish".into(),
                version,
                sha256: hex(&Sha256::digest(model)),
                size: model.len() as u64,
                algorithm: "decision_tree".into(),
                metrics: serde_json::json!({"f1": 0.9}),
                schema_hash: "s".into(),
                data_fingerprint: "d".into(),
                published_at: "2026-01-01T00:00:00Z".into(),
                actor: "test".into(),
            },
        }
    }

    /// A store whose writes of keys ending in `fail_suffix` fail, as a server error would.
    struct Failing {
        inner: FileStore,
        fail_suffix: &'static str,
    }

    impl ObjectStore for Failing {
        fn url(&self, key: &str) -> String {
            self.inner.url(key)
        }
        async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
            self.inner.head(key).await
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
            self.inner.get(key).await
        }
        async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StorageError> {
            if key.ends_with(self.fail_suffix) {
                return Err(StorageError::Status {
                    op: "PUT",
                    url: self.url(key),
                    answer: "HTTP 500".into(),
                });
            }
            self.inner.put(key, bytes).await
        }
    }

    #[tokio::test]
    async fn pointer_last_nothing_twice_and_never_moved_by_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().to_owned());
        let v1 = release(b"{\"model\": 1}", 1);
        let first = publish(&store, &v1).await.unwrap();
        let actions: Vec<Action> = first.steps.iter().map(|s| s.action).collect();
        assert_eq!(actions, [Action::Uploaded; 3]);
        assert!(first.previous.is_none());

        let again = publish(&store, &v1).await.unwrap();
        assert!(again.steps.iter().all(|s| s.action == Action::Kept));

        // A damaged copy of the model file is replaced.
        std::fs::write(
            store.path(&model_key(&v1.metadata.sha256)),
            b"{\"model\": 2}",
        )
        .unwrap();
        let repaired = publish(&store, &v1).await.unwrap();
        assert_eq!(repaired.steps[0].action, Action::Replaced);

        let v2 = release(b"{\"model\": \"two\"}", 2);
        for fail_suffix in ["model.json", "metadata.json", "current.json"] {
            let failing = Failing {
                inner: store.clone(),
                fail_suffix,
            };
            publish(&failing, &v2).await.unwrap_err();
            let bytes = std::fs::read(store.path(POINTER_FILE)).unwrap();
            let pointer = Pointer::parse("current.json", &bytes).unwrap();
            assert_eq!(
                pointer.version, 1,
                "a failed {fail_suffix} moved the pointer"
            );
        }
        let moved = publish(&store, &v2).await.unwrap();
        assert_eq!(moved.previous.map(|p| p.version), Some(1));
        assert_eq!(moved.pointer.version, 2);
        // The model's bytes were already uploaded by the attempt that failed later.
        assert_eq!(moved.steps[0].action, Action::Kept);
    }
}
