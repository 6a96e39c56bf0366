//! `netsec sync` as a library call: send every record waiting in the outbox, once, after
//! closing the runs of sweeps whose process died.

use anyhow::Context;

use super::client::MlflowClient;
use super::config::TrackingConfig;
use super::error::TrackingError;
use super::outbox::{Outbox, OutboxCounts};
use super::send::Sender;
use crate::exit::UsageError;
use crate::state::StateDir;
use crate::sweep::store::{RunStore, SweepStatus};

/// How many refused records a report names.
const FAILURES_SHOWN: i64 = 5;

/// What to send.
#[derive(Debug, Clone)]
pub struct SyncInput {
    /// The state directory holding the outbox.
    pub state: StateDir,
    /// The server (default: `MLFLOW_TRACKING_URI`, else the one the records were written for).
    pub uri: Option<crate::secret::Secret<String>>,
    /// Queue the records the server refused before again.
    pub retry_failed: bool,
}

/// What a sync did.
#[derive(Debug)]
pub enum Synced {
    /// The state directory has no database: nothing was ever recorded.
    NoState,
    /// The outbox was sent (completely or not: see the report).
    Sent(SyncReport),
}

/// One pass over the outbox.
#[derive(Debug)]
pub struct SyncReport {
    /// The server sent to.
    pub server: String,
    /// Records accepted now.
    pub sent: usize,
    /// Registry moves set aside now because the server has no model registry.
    pub skipped: usize,
    /// The outbox's records by state afterwards.
    pub counts: OutboxCounts,
    /// The experiments touched, with their page on the server.
    pub experiments: Vec<(String, String)>,
    /// Why the pass stopped with records still waiting (the server is away).
    pub stopped: Option<TrackingError>,
    /// The first refused records, by id, with the server's answer.
    pub failures: Vec<(i64, String)>,
}

/// Sends every pending record; runs of sweeps whose process died are closed as KILLED
/// first, so that the server never shows them RUNNING.
pub async fn sync(input: &SyncInput) -> anyhow::Result<Synced> {
    let db = input.state.database();
    if !db.exists() {
        return Ok(Synced::NoState);
    }
    let store = RunStore::open(&db).await?;
    store.reap_dead_sweeps().await?;
    let dead: Vec<i64> = store
        .sweeps()
        .await?
        .iter()
        .filter(|s| {
            s.status == SweepStatus::Killed.as_str() || s.status == SweepStatus::Failed.as_str()
        })
        .map(|s| s.id)
        .collect();
    store.close().await;
    let outbox = Outbox::open(&db).await?;
    let result = send(&outbox, &db, &dead, input).await;
    outbox.close().await;
    result.map(Synced::Sent)
}

async fn send(
    outbox: &Outbox,
    db: &std::path::Path,
    dead: &[i64],
    input: &SyncInput,
) -> anyhow::Result<SyncReport> {
    let env_uri = std::env::var("MLFLOW_TRACKING_URI")
        .ok()
        .filter(|u| !u.trim().is_empty());
    let uri = match input.uri.as_ref().map(|u| u.expose().clone()).or(env_uri) {
        Some(uri) => uri,
        None => outbox.pending_server().await?.ok_or_else(|| {
            UsageError("no tracking server: set MLFLOW_TRACKING_URI or pass --uri".into())
        })?,
    };
    let config = TrackingConfig::from_lookup(|name| match name {
        "MLFLOW_TRACKING_URI" => Some(uri.clone()),
        other => std::env::var(other).ok(),
    })
    .map_err(|e| UsageError(e.to_string()))?;
    let client = MlflowClient::new(config)?;
    let sender = Sender::new(client, outbox.clone(), db);
    let server = sender.server().to_owned();

    let _lock = match sender.try_lock().context("taking the outbox lock")? {
        Some(lock) => lock,
        None => {
            tracing::info!("another netsec process is sending the outbox; waiting for it");
            // A blocking wait on a file lock: nothing else runs in this process meanwhile.
            sender.lock().context("waiting for the outbox lock")?
        }
    };
    outbox.close_unclosed_sweeps(dead, Some(&server)).await?;
    if input.retry_failed {
        let again = outbox.retry_failed().await?;
        tracing::info!(records = again, "refused records queued again");
    }
    let report = sender.drain().await?;
    let counts = outbox.counts().await?;
    let failures = if report.stopped.is_none() && counts.failed > 0 {
        outbox.failures(FAILURES_SHOWN).await?
    } else {
        Vec::new()
    };
    let experiments = sender
        .experiments()
        .into_iter()
        .map(|(name, id)| {
            let url = sender.client().experiment_url(&id);
            (name, url)
        })
        .collect();
    Ok(SyncReport {
        server,
        sent: report.sent,
        skipped: report.skipped,
        counts,
        experiments,
        stopped: report.stopped,
        failures,
    })
}
