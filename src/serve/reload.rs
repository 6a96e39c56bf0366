//! Hot reload: poll a store's pointer (`file://` or `s3://`), load and verify the model it
//! names, swap it in.
//!
//! The swap is one atomic pointer store ([`arc_swap::ArcSwap`]): a request that started
//! with the old model finishes with it, the next one sees the new model, none fails. A
//! model that cannot be read or verified is refused (counted as a failed reload) and the
//! old one keeps serving; the same pointer content is not tried again, so a refused
//! version is counted and logged once, until the pointer changes.

use std::sync::Arc;
use std::time::Duration;

use super::app::AppState;
use super::source::{SourceError, load_pointed};
use crate::storage::{ModelStore, ObjectStore, POINTER_FILE, Pointer};

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

/// Polls the store every `interval` until the task is dropped.
pub async fn watch(state: Arc<AppState>, store: ModelStore, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate; the model was just loaded
    let mut refused: Option<Vec<u8>> = None;
    loop {
        ticker.tick().await;
        match poll_once(&state, &store, &mut refused).await {
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
/// bytes (or read error) last refused; a model that could not be fetched is not refused.
pub async fn poll_once(
    state: &AppState,
    store: &ModelStore,
    refused: &mut Option<Vec<u8>>,
) -> PollOutcome {
    state.metrics.observe_pointer_poll();
    let url = store.url(POINTER_FILE);
    let read = store.get(POINTER_FILE).await;
    let seen = match &read {
        Ok(Some(bytes)) => bytes.clone(),
        Ok(None) => b"missing".to_vec(),
        Err(e) => format!("unreadable: {e}").into_bytes(),
    };
    if refused.as_deref() == Some(seen.as_slice()) {
        return PollOutcome::Unchanged;
    }
    let pointer_unreadable = read.is_err();
    let current = state.model.load();
    let pointer = match read {
        Ok(Some(bytes)) => Pointer::parse(&url, &bytes).map_err(SourceError::from),
        Ok(None) => Err(crate::storage::StorageError::NotFound { url }.into()),
        Err(e) => Err(e.into()),
    };
    let result = match pointer {
        Ok(p) if p.sha256 == current.sha256 && Some(p.version) == current.version => Ok(None),
        Ok(p) => load_pointed(store, p).await.map(Some),
        Err(e) => Err(e),
    };
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
            // A pointer or model that fails verification is refused until the pointer
            // changes, and so is the same read error of the pointer (reported once). A model
            // that could not be fetched (timeout, 5xx, dropped connection) is tried again at
            // the next poll.
            if err.is_bad_input() || pointer_unreadable {
                *refused = Some(seen);
            }
            PollOutcome::Refused(err)
        }
    }
}
