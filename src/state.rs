//! The state directory (`--state-dir`, `.netsec` by default): one type owns its layout, so
//! that no stage spells a file name of it twice.
//!
//! ```text
//! STATE/netsec.db            run store, registry and tracking outbox (one SQLite file)
//! STATE/models/<sha>.json    content-addressed model files
//! STATE/store/               the default `file://` model store of `publish`
//! STATE/data/<fp>.parquet    training data kept by `retrain`, by data fingerprint
//! STATE/tracking/            artifact files waiting to be sent to MLflow
//! STATE/retrain.lock         the run lock of `retrain`
//! STATE/halving/<name>.survivors.json  a sharded halving search's collected survivors
//! ```

use std::fs::{File, TryLockError};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

/// A state directory; only paths are computed here, nothing is created until written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite file holding the run store, the registry and the tracking outbox.
    pub fn database(&self) -> PathBuf {
        self.root.join("netsec.db")
    }

    /// Where model files are kept, named by their sha256.
    pub fn models(&self) -> PathBuf {
        self.root.join("models")
    }

    /// The default `file://` model store of `publish`.
    pub fn store(&self) -> PathBuf {
        self.root.join("store")
    }

    /// Where training data is kept by data fingerprint.
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The kept copy of the training data with this fingerprint.
    pub fn data_snapshot(&self, fingerprint: &str) -> PathBuf {
        self.data().join(format!("{fingerprint}.parquet"))
    }

    /// Artifact files waiting to be sent to the tracking server.
    pub fn tracking(&self) -> PathBuf {
        self.root.join("tracking")
    }

    /// The survivors file of a sharded halving search of experiment `experiment` (written
    /// by `experiment collect --rung`, read by `experiment run --rung`), when not given.
    pub fn survivors(&self, experiment: &str) -> PathBuf {
        self.root
            .join("halving")
            .join(format!("{experiment}.survivors.json"))
    }

    /// The lock file of a workflow that must not run twice at once (`retrain`).
    pub fn lock_file(&self, workflow: &str) -> PathBuf {
        self.root.join(format!("{workflow}.lock"))
    }

    /// Takes the exclusive run lock of `workflow` for as long as the returned guard lives;
    /// fails with [`LockHeld`] naming the holder when another process has it.
    pub fn lock(&self, workflow: &str) -> Result<RunLock, LockError> {
        std::fs::create_dir_all(&self.root).map_err(|source| LockError::Io {
            path: self.root.clone(),
            source,
        })?;
        RunLock::acquire(&self.lock_file(workflow), workflow)
    }
}

/// An exclusive OS lock on a file in the state directory; released when dropped or when
/// the process dies (so a `kill -9` never leaves a stale lock behind).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Another process holds a run lock.
#[derive(Debug, thiserror::Error)]
#[error(
    "another `netsec {workflow}` is running on this state directory ({holder}); not starting a second one"
)]
pub struct LockHeld {
    workflow: String,
    holder: String,
}

impl LockHeld {
    /// The process exit code: a runtime failure (another process is busy; the input was fine).
    pub fn exit_code(&self) -> u8 {
        crate::exit::RUNTIME_FAILURE
    }
}

/// Taking a run lock failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(transparent)]
    Held(#[from] LockHeld),
    /// The lock file could not be opened, locked or written.
    #[error("locking {}: {source}", path.display())]
    Io {
        /// The lock file or state directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl LockError {
    /// The process exit code: a runtime failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            LockError::Held(e) => e.exit_code(),
            LockError::Io { .. } => crate::exit::RUNTIME_FAILURE,
        }
    }
}

impl RunLock {
    fn acquire(path: &Path, workflow: &str) -> Result<RunLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(path).unwrap_or_default();
                let holder = holder.trim();
                return Err(LockHeld {
                    workflow: workflow.to_string(),
                    holder: if holder.is_empty() {
                        format!("lock {}", path.display())
                    } else {
                        format!("{holder}, lock {}", path.display())
                    },
                }
                .into());
            }
            Err(TryLockError::Error(err)) => return Err(io(err)),
        }
        // Who holds it, for the message a second run prints.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(
            file,
            "pid {} since {}",
            std::process::id(),
            crate::shared::now_ms() / 1000
        )
        .map_err(io)?;
        Ok(RunLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_spelled_once() {
        let state = StateDir::new("/s");
        assert_eq!(state.database(), Path::new("/s/netsec.db"));
        assert_eq!(state.models(), Path::new("/s/models"));
        assert_eq!(state.store(), Path::new("/s/store"));
        assert_eq!(state.data_snapshot("ab"), Path::new("/s/data/ab.parquet"));
        assert_eq!(state.tracking(), Path::new("/s/tracking"));
        assert_eq!(state.lock_file("retrain"), Path::new("/s/retrain.lock"));
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let held = state.lock("retrain").unwrap();
        let err = state.lock("retrain").unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, LockError::Held(_)), "{message}");
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(held);
        state.lock("retrain").expect("free again once dropped");
    }
}
