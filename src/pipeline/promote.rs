//! `promote` as a workflow across stages: find the candidate in the run store (refitting a
//! trial that kept no model file), reload its pinned holdout (MongoDB through `ingest`),
//! let the registry decide ([`registry::promote`](crate::registry::promote::promote)),
//! then publish and mirror an accepted move.

use std::path::PathBuf;

use crate::exit::{AfterCommit, UsageError};
use crate::model_file::ModelFile;
use crate::pipeline::publish::{MoveReporter, StoreTarget, publish_alias, publish_target};
use crate::pipeline::source;
use crate::registry::promote::{Candidate, Promoted, Request, promote as decide};
use crate::registry::store::verify_file;
use crate::registry::{Policy, Registry, actor};
use crate::state::StateDir;
use crate::sweep::record::TrialStatus;
use crate::sweep::store::RunStore;
use crate::tracking::mirror::{AliasMove, alias_moved};

/// Which model file to propose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateSpec {
    /// A trial by key or unique prefix; refitted from its sweep's grid file when it was not
    /// its sweep's best (only the best keeps a model file).
    Trial(String),
    /// The best model of the newest sweep of this experiment (any experiment when empty).
    Best(String),
}

/// What `netsec promote` does.
#[derive(Debug, Clone)]
pub struct PromoteInput {
    /// The policy file.
    pub policy: PathBuf,
    /// Registered model name (default: the policy's `model`).
    pub name: Option<String>,
    /// The candidate.
    pub candidate: CandidateSpec,
    /// Evaluate and report, record nothing.
    pub dry_run: bool,
    /// Publish the alias's version once the promotion stands (ignored on a dry run).
    pub publish: Option<StoreTarget>,
    /// The registry database.
    pub registry: PathBuf,
    /// The state directory (run store, kept model files, default store, outbox).
    pub state: StateDir,
}

/// Finds the candidate, has the registry decide, then publishes and mirrors an accepted
/// move. The decision is shown through `reporter` as soon as it is recorded; a failed
/// publication afterwards is an [`AfterCommit`] error (the promotion stands), and the
/// MLflow mirror never fails the promotion (it warns).
pub async fn promote(
    input: &PromoteInput,
    reporter: &mut dyn MoveReporter<Promoted>,
) -> anyhow::Result<Promoted> {
    let policy = Policy::from_file(&input.policy)?;
    let model = input.name.clone().unwrap_or_else(|| policy.model.clone());
    let alias = policy.alias.clone();
    // A bad store URL stops here, before anything is recorded.
    let publish_to = match &input.publish {
        Some(target) if !input.dry_run => Some(publish_target(
            &model,
            target.to.as_deref(),
            &target.s3,
            &input.state,
        )?),
        _ => None,
    };
    let registry = Registry::open(&input.registry).await?;
    let candidate = find_candidate(&input.candidate, &input.state).await?;
    candidate.check_scored()?;
    let holdout = source::holdout(&candidate.file, &candidate.sha256).await?;
    let actor = actor();
    let models_dir = input.state.models();
    let request = Request {
        policy: &policy,
        model: &model,
        candidate: &candidate,
        holdout: &holdout,
        actor: &actor,
        dry_run: input.dry_run,
        models_dir: &models_dir,
    };
    let promoted = decide(&registry, &request).await?;
    reporter.committed(&promoted)?;
    let accepted = match &promoted {
        // Running the same promotion again retries a publication that failed.
        Promoted::AlreadyHolds { .. } => true,
        Promoted::Decided { report, .. } => report.promoted(),
    };
    let published = match (&publish_to, &input.publish) {
        (Some(url), Some(target)) if accepted => {
            match publish_alias(&registry, &model, &alias, url, &target.s3).await {
                Ok(publication) => reporter.published(&publication),
                Err(e) => Err(e),
            }
            .map_err(|e| {
                e.context(AfterCommit(format!(
                    "`{alias}` of {model} is recorded, but publishing it failed \
                     (retry with `netsec publish {model}@{alias}`)"
                )))
            })
        }
        _ => Ok(()),
    };
    registry.close().await;
    if let Promoted::Decided {
        report,
        kept: Some(kept),
    } = &promoted
        && let (true, Some(version)) = (report.promoted(), report.version)
    {
        let alias_move = AliasMove {
            model: &model,
            alias: &alias,
            version,
            sha256: &candidate.sha256,
            trial_key: &candidate.file.trial_key,
            sweep_id: candidate.sweep_id,
            model_path: kept,
            action: "promote",
        };
        alias_moved(&input.state, &alias_move).await;
    }
    published.map(|()| promoted)
}

/// Finds the candidate's model file in the run store.
async fn find_candidate(spec: &CandidateSpec, state: &StateDir) -> anyhow::Result<Candidate> {
    let store = RunStore::open(&state.database()).await?;
    let candidate = match spec {
        CandidateSpec::Trial(key) => trial_candidate(&store, key).await,
        CandidateSpec::Best(experiment) => best_candidate(&store, experiment).await,
    };
    store.close().await;
    candidate
}

async fn best_candidate(store: &RunStore, experiment: &str) -> anyhow::Result<Candidate> {
    let sweeps = store.sweeps().await?;
    let sweep = sweeps
        .into_iter()
        .filter(|s| experiment.is_empty() || s.experiment == experiment)
        .find(|s| s.best_model_path.is_some())
        .ok_or_else(|| {
            UsageError(if experiment.is_empty() {
                "no sweep with a model in the run store: run `netsec experiment run` first".into()
            } else {
                format!("no sweep of experiment `{experiment}` with a model in the run store")
            })
        })?;
    let path = PathBuf::from(sweep.best_model_path.unwrap_or_default());
    if let Some(sha) = &sweep.best_model_sha256 {
        verify_file(&path, sha)?;
    }
    let (file, sha256) = ModelFile::load(&path)?;
    Ok(Candidate {
        file,
        sha256,
        path: Some(path),
        sweep_id: Some(sweep.id),
    })
}

async fn trial_candidate(store: &RunStore, key: &str) -> anyhow::Result<Candidate> {
    let trials = store.trials_by_prefix(key).await?;
    let trial = match trials.as_slice() {
        [one] => one,
        [] => return Err(UsageError(format!("no trial with key `{key}` in the run store")).into()),
        _ => {
            return Err(UsageError(format!(
                "`{key}` matches {} trials: give more of the key",
                trials.len()
            ))
            .into());
        }
    };
    if trial.status == TrialStatus::Failed || trial.test.is_none() {
        return Err(UsageError(format!(
            "trial {} has no metrics{}: nothing to promote",
            trial.key,
            trial
                .error
                .as_ref()
                .map(|e| format!(" (it failed: {e})"))
                .unwrap_or_default()
        ))
        .into());
    }
    let sweep = store.sweep_of_trial(&trial.key).await?.ok_or_else(|| {
        UsageError(format!(
            "trial {} belongs to no sweep in the run store",
            trial.key
        ))
    })?;
    if sweep.best_trial.as_deref() == Some(trial.key.as_str())
        && let (Some(path), Some(sha)) = (&sweep.best_model_path, &sweep.best_model_sha256)
    {
        let path = PathBuf::from(path);
        verify_file(&path, sha)?;
        let (file, sha256) = ModelFile::load(&path)?;
        return Ok(Candidate {
            file,
            sha256,
            path: Some(path),
            sweep_id: Some(sweep.id),
        });
    }
    tracing::info!(
        "trial {} has no model file: fitting it again from {}",
        crate::shared::short_hash(&trial.key),
        sweep.grid_path
    );
    let file = source::refit_trial(std::path::Path::new(&sweep.grid_path), trial).await?;
    let (_, sha256) = file.to_bytes();
    Ok(Candidate {
        file,
        sha256,
        path: None,
        sweep_id: Some(sweep.id),
    })
}
