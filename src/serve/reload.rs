//! Hot reload: poll a store's pointer, load and verify the model it names, swap it in.
//!
//! The swap is one atomic pointer store ([`arc_swap::ArcSwap`]): a request that started
//! with the old model finishes with it, the next one sees the new model, none fails. A
//! model that cannot be read or verified is refused (counted as a failed reload) and the
//! old one keeps serving; the same pointer content is not tried again, so a refused
//! version is counted and logged once, until the pointer changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::app::AppState;
use super::source::{POINTER_FILE, Pointer, SourceError, load_pointed};

/// What one poll found.
#[derive(Debug)]
pub enum PollOutcome {
    /// The pointer names the model being served, or content already refused.
    Unchanged,
    /// A new model was verified and swapped in.
    Reloaded {
        /// Its version.
        version: u64,
        /// Its sha256.
        sha256: String,
    },
    /// The pointer changed but its model was refused.
    Refused(SourceError),
}

/// Polls the store in `dir` every `interval` until the task is dropped.
pub async fn watch(state: Arc<AppState>, dir: PathBuf, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate; the model was just loaded
    let mut refused: Option<Vec<u8>> = None;
    loop {
        ticker.tick().await;
        let task_state = Arc::clone(&state);
        let task_dir = dir.clone();
        let previous = refused.take();
        let polled = tokio::task::spawn_blocking(move || {
            let mut refused = previous;
            let outcome = poll_once(&task_state, &task_dir, &mut refused);
            (outcome, refused)
        })
        .await;
        let Ok((outcome, now_refused)) = polled else {
            continue;
        };
        refused = now_refused;
        match outcome {
            PollOutcome::Unchanged => {}
            PollOutcome::Reloaded { version, sha256 } => {
                tracing::info!(version, sha256 = %sha256, "reloaded model");
            }
            PollOutcome::Refused(err) => {
                tracing::warn!(error = %err, "refused new model; the current one keeps serving");
            }
        }
    }
}

/// One poll: reads the pointer and, when it names another model than the one served (and
/// content not refused before), loads, verifies and swaps it. `refused` holds the pointer
/// bytes (or read error) last refused.
pub fn poll_once(state: &AppState, dir: &Path, refused: &mut Option<Vec<u8>>) -> PollOutcome {
    let path = dir.join(POINTER_FILE);
    let seen = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => format!("unreadable: {e}").into_bytes(),
    };
    if refused.as_deref() == Some(seen.as_slice()) {
        return PollOutcome::Unchanged;
    }
    let current = state.model.load();
    let result = Pointer::read(&path).and_then(|pointer| {
        if pointer.sha256 == current.sha256 && Some(pointer.version) == current.version {
            Ok(None)
        } else {
            load_pointed(dir, pointer).map(Some)
        }
    });
    match result {
        Ok(None) => PollOutcome::Unchanged,
        Ok(Some(model)) => {
            if model.file.schema.hash != current.file.schema.hash {
                tracing::warn!(
                    old = %current.file.schema.hash,
                    new = %model.file.schema.hash,
                    "the new model has another schema; clients must send its columns"
                );
            }
            let outcome = PollOutcome::Reloaded {
                version: model.version.unwrap_or_default(),
                sha256: model.sha256.clone(),
            };
            state.model.store(Arc::new(model));
            state.metrics.observe_reload(true);
            *refused = None;
            outcome
        }
        Err(err) => {
            state.metrics.observe_reload(false);
            *refused = Some(seen);
            PollOutcome::Refused(err)
        }
    }
}
