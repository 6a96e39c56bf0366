//! Mirroring an alias move of the local registry (`netsec promote`, `netsec rollback`) into
//! MLflow's model registry, after the local decision is committed.
//!
//! The move is queued in the tracking outbox and sent at once, within [`BUDGET`]: a slow,
//! absent or registry-less server never fails or stalls the command, it only costs one
//! warning line, and a queued move is completed by `netsec sync`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::sweep::record::now_ms;
use crate::sweep::store::RunStore;
use crate::tracking::mirror::RegistryRecord;
use crate::tracking::outbox::{ArtifactFile, NewRecord, RecordKind, RunRecord, TrialRun};
use crate::tracking::{
    MlflowClient, Outbox, RetryPolicy, Sender, Tag, TrackingConfig, TrackingError,
};

/// The longest a command waits for MLflow to take the move.
const BUDGET: Duration = Duration::from_secs(20);

/// How long to wait for another process's hold of the outbox lock: polls x interval.
const LOCK_POLLS: u32 = 25;
const LOCK_POLL: Duration = Duration::from_millis(200);

/// An alias move that was just committed to the local registry.
#[derive(Debug, Clone)]
pub(super) struct AliasMove<'a> {
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
/// that says what happened to the move and what to run.
pub(super) fn alias_moved(state_dir: &Path, mv: &AliasMove<'_>) {
    if let Err(err) = mirror(state_dir, mv) {
        tracing::warn!(
            "mlflow registry: `{}` of {} moved locally only: {err:#}",
            mv.alias,
            mv.model
        );
    }
}

fn mirror(state_dir: &Path, mv: &AliasMove<'_>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let db = RunStore::path_in(state_dir);
    let outbox = runtime.block_on(Outbox::open(&db))?;
    let result = runtime.block_on(queue_and_send(&outbox, &db, mv));
    runtime.block_on(outbox.close());
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
            short(mv.trial_key)
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
/// the sweep's own record for its best model (so nothing is added then); a trial refitted
/// for promotion gets its file uploaded.
fn model_artifact(run: &TrialRun, mv: &AliasMove<'_>) -> anyhow::Result<(String, RunRecord)> {
    let key = format!("artifacts.{}.{}", run.run_key, mv.sha256);
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

fn short(key: &str) -> &str {
    &key[..12.min(key.len())]
}
