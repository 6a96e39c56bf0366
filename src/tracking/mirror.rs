//! Mirroring the local registry's alias moves (promotions, rollbacks) into MLflow's model
//! registry, after the local decision is committed.
//!
//! [`alias_moved`] queues the move in the tracking outbox and sends it at once, within a
//! budget of 20 seconds: a slow, absent or registry-less server never fails or stalls the workflow,
//! it only costs one warning line, and a queued move is completed by `netsec sync`.
//!
//! A move becomes a [`RegistryRecord`] in the outbox, sent like every other record (by the
//! command that made the move, then by `netsec sync` if the server was away). Sending it
//! is safe to repeat:
//!
//! - the registered model is created unless it exists;
//! - the version is found by its tag `netsec.sha256` before one is created, so a model
//!   file becomes one MLflow version however often it is mirrored; it is made from the
//!   logged model of that file when the sweep made one (`models:/<model_id>`, see
//!   [`super::logged_model`]), else from the file among its run's artifacts;
//! - the alias is moved only if no later move was mirrored already: the model's tag
//!   `netsec.alias.<alias>.moved_at_ms` holds the time of the last mirrored move, so
//!   records sent late or out of order never move an alias back.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::client::MlflowClient;
use super::config::TrackingConfig;
use super::error::TrackingError;
use super::logged_model::artifacts_key;
use super::outbox::{ArtifactFile, NewRecord, Outbox, RecordKind, RunRecord, TrialRun};
use super::retry::RetryPolicy;
use super::send::Sender;
use super::types::Tag;
use crate::shared::now_ms;
use crate::state::StateDir;

pub use super::error::registry_unavailable;
pub use super::record::{Mirrored, RegistryRecord, SHA256_TAG, VERSION_TAG};

/// The longest a command waits for MLflow to take the move.
const BUDGET: Duration = Duration::from_secs(20);

/// How long to wait for another process's hold of the outbox lock: polls x interval.
const LOCK_POLLS: u32 = 25;
const LOCK_POLL: Duration = Duration::from_millis(200);

/// An alias move that was just committed to the local registry.
#[derive(Debug, Clone)]
pub struct AliasMove<'a> {
    /// Registered model name.
    pub model: &'a str,
    /// The alias moved.
    pub alias: &'a str,
    /// The local version it points at now.
    pub version: i64,
    /// sha256 of that version's model file.
    pub sha256: &'a str,
    /// The trial that produced it.
    pub trial_key: &'a str,
    /// The sweep it came from, when known.
    pub sweep_id: Option<i64>,
    /// The content-addressed model file in the state directory.
    pub model_path: &'a Path,
    /// `promote` or `rollback`.
    pub action: &'static str,
}

/// Mirrors `mv` into MLflow's registry. Never fails: a problem becomes one warning line
/// that says what happened to the move and what to run, because the local move is what
/// counts and a queued move is completed by `netsec sync`.
pub async fn alias_moved(state: &StateDir, mv: &AliasMove<'_>) {
    if let Err(err) = mirror(state, mv).await {
        tracing::warn!(
            "mlflow registry: `{}` of {} moved locally only: {err:#}",
            mv.alias,
            mv.model
        );
    }
}

async fn mirror(state: &StateDir, mv: &AliasMove<'_>) -> anyhow::Result<()> {
    let db = state.database();
    let outbox = Outbox::open(&db).await?;
    let result = queue_and_send(&outbox, &db, mv).await;
    outbox.close().await;
    result
}

async fn queue_and_send(outbox: &Outbox, db: &Path, mv: &AliasMove<'_>) -> anyhow::Result<()> {
    let env_uri = std::env::var("MLFLOW_TRACKING_URI")
        .ok()
        .filter(|u| !u.trim().is_empty());
    let Some(run) = outbox.trial_run(mv.trial_key, mv.sweep_id).await? else {
        if env_uri.is_none() {
            tracing::debug!("the model's trial was never tracked and no server is set");
            return Ok(());
        }
        anyhow::bail!(
            "trial {} has no MLflow run (no sweep that ran it was tracked), so there is no \
             run to register the model from",
            crate::shared::short_hash(mv.trial_key)
        );
    };
    let config = env_uri
        .or_else(|| run.server.clone())
        .map(|uri| {
            TrackingConfig::from_lookup(|name| match name {
                "MLFLOW_TRACKING_URI" => Some(uri.clone()),
                other => std::env::var(other).ok(),
            })
        })
        .transpose()?;
    let server = config.as_ref().map(|c| c.base_url.clone());

    let (artifacts_key, artifacts) = model_artifact(&run, mv)?;
    outbox
        .push(&NewRecord {
            kind: RecordKind::Artifacts,
            dedup_key: Some(artifacts_key.clone()),
            sweep_id: None,
            server: server.as_deref(),
            record: &artifacts,
        })
        .await?;
    let record = RegistryRecord {
        model: mv.model.to_owned(),
        alias: mv.alias.to_owned(),
        version: mv.version,
        sha256: mv.sha256.to_owned(),
        run_key: run.run_key.clone(),
        experiment: run.experiment.clone(),
        artifact_path: model_artifact_path(mv.sha256),
        action: mv.action.to_owned(),
        moved_at_ms: now_ms(),
    };
    let Some(id) = outbox
        .push_registry(None, server.as_deref(), &record)
        .await?
    else {
        anyhow::bail!("the outbox dropped the move");
    };
    let Some(config) = config else {
        tracing::debug!("no tracking server set: the registry move waits in the outbox");
        return Ok(());
    };
    let waiting = "it waits in the outbox; `netsec sync` mirrors it";
    // The trial's run must be on the server before a version can point at it.
    let trial_state = outbox.find_key(&run.run_key).await?.map(|(_, state)| state);
    if trial_state.as_deref() == Some("pending") {
        anyhow::bail!(
            "the sweep's runs have not reached {} yet; {waiting}",
            config.base_url
        );
    }
    let client = MlflowClient::new(bounded(config))?;
    let sender = Sender::new(client, outbox.clone(), db);
    // Another sender (a sweep, `netsec sync`, a promotion) holds the outbox briefly.
    let mut lock = None;
    for _ in 0..LOCK_POLLS {
        lock = sender.try_lock().context("taking the outbox lock")?;
        if lock.is_some() {
            break;
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
    if lock.is_none() {
        anyhow::bail!("another netsec process is sending the outbox; {waiting}");
    }
    let mut ids = Vec::new();
    ids.extend(outbox.find_key(&artifacts_key).await?.map(|(id, _)| id));
    ids.push(id);
    let sent = tokio::time::timeout(BUDGET, sender.send_records(&ids)).await;
    let report = match sent {
        Ok(report) => report?,
        Err(_) => anyhow::bail!(
            "{} did not answer within {}s; {waiting}",
            sender.server(),
            BUDGET.as_secs()
        ),
    };
    if let Some(err) = report.stopped {
        anyhow::bail!(
            "{} is unreachable ({}); {waiting}",
            sender.server(),
            brief(&err)
        );
    }
    let (state, error) = outbox.state(id).await?.unwrap_or_default();
    let error = error.unwrap_or_else(|| "no reason given".into());
    match state.as_str() {
        "sent" => Ok(()),
        "skipped" => anyhow::bail!(
            "{error}; the move is set aside in the outbox (`netsec sync --retry-failed` sends \
             it to a server that has a registry)"
        ),
        _ => anyhow::bail!(
            "{} refused the move ({error}); fix the cause and run `netsec sync --retry-failed`",
            sender.server()
        ),
    }
}

/// Where a model file goes among its run's artifacts (where the sweep puts the best one).
fn model_artifact_path(sha256: &str) -> String {
    format!("model/{sha256}.json")
}

/// The record that puts the model file on its run, with its dedup key: the same key as
/// the sweep's own record for its best model (so nothing is added then, and the logged
/// model that record makes becomes the version's source); a trial refitted for promotion
/// gets its file uploaded, and its version points at that file.
fn model_artifact(run: &TrialRun, mv: &AliasMove<'_>) -> anyhow::Result<(String, RunRecord)> {
    let key = artifacts_key(&run.run_key, mv.sha256);
    let local_path = std::path::absolute(mv.model_path)
        .with_context(|| format!("resolving {}", mv.model_path.display()))?;
    let record = RunRecord {
        run_key: run.run_key.clone(),
        experiment: run.experiment.clone(),
        parent_key: None,
        name: String::new(),
        start_ms: now_ms(),
        params: Vec::new(),
        metrics: Vec::new(),
        tags: vec![Tag::new("netsec.model_sha256", mv.sha256)],
        artifacts: vec![ArtifactFile {
            local_path,
            artifact_path: model_artifact_path(mv.sha256),
        }],
        status: None,
        end_ms: None,
        inputs: Vec::new(),
        logged_model: None,
    };
    Ok((key, record))
}

/// The configuration with one attempt per request and short timeouts, so that the whole
/// mirror fits [`BUDGET`]: what does not go through at once waits in the outbox anyway.
fn bounded(mut config: TrackingConfig) -> TrackingConfig {
    config.retry = RetryPolicy::never();
    config.request_timeout = config.request_timeout.min(Duration::from_secs(10));
    config.connect_timeout = config.connect_timeout.min(Duration::from_secs(3));
    config
}

/// Why the server is away, in a few words (the full error is in the outbox).
fn brief(err: &TrackingError) -> String {
    match err.root() {
        TrackingError::Transport { source, .. } if source.is_timeout() => "timed out".into(),
        TrackingError::Transport { source, .. } if source.is_connect() => "cannot connect".into(),
        TrackingError::Transport { .. } => "no answer".into(),
        TrackingError::Api {
            endpoint,
            status,
            code,
            ..
        } => format!("{endpoint}: HTTP {status} {code}"),
        other => other.to_string(),
    }
}
