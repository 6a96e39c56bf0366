//! The workflow of `netsec experiment run`: a grid file's data loaded through
//! [`source`](super::source), its sweep run by [`sweep::run`], recorded by the MLflow
//! tracker on the way. Progress display and signals stay with the caller: it passes a
//! reporter and a [`CancelToken`].

use std::path::PathBuf;
use std::time::Instant;

use super::source::{load_data, tracking_client};
use crate::config::grid::{GridFile, SelectMetric, Strategy};
use crate::data::Schema;
use crate::state::StateDir;
use crate::sweep::plan::{Shard, check_class_weights, expand};
use crate::sweep::report::{Reporters, SweepReporter};
use crate::sweep::store::{RunStore, SweepStatus};
use crate::sweep::{self, CancelToken, SweepInput, SweepOutcome};
use crate::tracking::{MlflowClient, MlflowTracker, TrackerOptions, TrackingReport};

/// What to sweep and where to keep it.
#[derive(Debug, Clone)]
pub struct ExperimentInput {
    /// The grid file.
    pub grid: PathBuf,
    /// The state directory (run store, model files, tracking outbox).
    pub state: StateDir,
    /// Run only this slice of the trials.
    pub shard: Option<Shard>,
    /// Worker threads; `None` uses every core.
    pub jobs: Option<usize>,
    /// Also copy the best model file here.
    pub model_out: Option<PathBuf>,
    /// Run only this rung of a halving search (with `shard`: this shard's slice of it).
    pub rung: Option<usize>,
    /// The survivors file of a rung-by-rung halving search (default: in the state
    /// directory), read for `rung` ≥ 1.
    pub survivors: Option<PathBuf>,
}

/// What a finished (or all-failed) sweep of a grid file gives.
#[derive(Debug, Clone)]
pub struct ExperimentOutcome {
    /// Experiment (grid) name.
    pub experiment: String,
    /// Where the rows came from.
    pub data_source: String,
    /// Fingerprint of the encoded data.
    pub data_fingerprint: String,
    /// Ranking metric.
    pub select_metric: SelectMetric,
    /// Cross-validation folds.
    pub folds: usize,
    /// Wall time of the whole workflow, data loading included.
    pub seconds: f64,
    /// The sweep's results; its status is `Finished` or `Failed` (every trial failed).
    pub sweep: SweepOutcome,
    /// What tracking did; `None` when the outbox could not be opened.
    pub tracking: Option<TrackingReport>,
}

/// Early stopping on rows too small to set a validation part aside stops here, before the
/// run store is touched: checked on the training part and its folds, and for a halving
/// search on its first (smallest) rung's rows too.
fn check_early_stopping_rows(
    grid: &GridFile,
    path: &std::path::Path,
    candidates: &[sweep::plan::Candidate],
    data: &crate::data::Dataset,
    train: Vec<usize>,
) -> Result<(), crate::config::grid::GridError> {
    let search = grid.search();
    let mut row_sets = vec![train.clone()];
    if let (Strategy::Halving, Some(rows)) = (search.strategy, search.min_rows)
        && rows < train.len()
    {
        let rung = sweep::plan::Rung {
            index: 0,
            rows,
            seed: search.seed,
        };
        row_sets.push(sweep::halving::subset(
            &data.class_ids,
            &train,
            rung,
            grid.cv.folds,
        ));
    }
    for rows in row_sets {
        let folds = crate::data::split::stratified_kfold_ids(
            &data.class_ids,
            &rows,
            grid.cv.folds,
            grid.split.seed,
        );
        sweep::run::check_early_stopping(grid, path, candidates, data, &rows, &folds)?;
    }
    Ok(())
}

/// Runs the sweep of a grid file; trials already in the run store are reused. An
/// interrupted sweep (cancelled through `cancel`) is an error telling to run again, after
/// its results and its tracking records were kept.
pub async fn run(
    input: &ExperimentInput,
    cancel: &CancelToken,
    progress: &(dyn SweepReporter + Sync),
) -> anyhow::Result<ExperimentOutcome> {
    let started = Instant::now();
    let grid = GridFile::from_file(&input.grid)?;
    let candidates = expand(&grid, &input.grid)?;
    let schema = Schema::from_file(&grid.data.schema.value)?;
    let client = tracking_client(&grid)?;
    let (source, data, validation) = load_data(&grid, &input.grid, &schema).await?;
    // The plan meets the data here: class names in `class_weight` maps are checked against
    // the (folded / grouped) classes before the run store is opened or anything is fitted.
    check_class_weights(&grid, &input.grid, &data.classes)?;
    tracing::info!(
        rows = data.len(),
        attacks = data.attacks(),
        fingerprint = %crate::shared::short_hash(&data.fingerprint),
        "data loaded from {}",
        data.source
    );
    {
        // An unmeasurable operating point or an SVM over too many rows stops here, before
        // the run store is touched.
        let split = crate::data::split::train_test_split(&data, &grid.split);
        sweep::run::check_operating_point(&grid, &input.grid, &data, &split.train)?;
        sweep::run::check_svm_rows(&grid, &input.grid, split.train.len())?;
        check_early_stopping_rows(&grid, &input.grid, &candidates, &data, split.train)?;
    }

    // A halving search that cannot run on this data stops here too, and so does a rung
    // whose survivors were not collected yet.
    sweep::halving::check(&grid, &input.grid, &data, input.shard.is_some(), input.rung)?;
    let rung_plan = match input.rung {
        Some(index) => {
            let survivors = input
                .survivors
                .clone()
                .unwrap_or_else(|| input.state.survivors(&grid.name));
            let plan = sweep::halving::plan_rung(&grid, &data, &candidates, index, &survivors)?;
            tracing::info!(
                rung = index,
                rows = plan.rung.rows,
                candidates = plan.candidates.len(),
                "halving: one rung (collect it with `experiment collect --rung {index}`)"
            );
            Some(plan)
        }
        None => None,
    };

    let store = RunStore::open(&input.state.database()).await?;
    let tracker = open_tracker(&grid, &input.state, client, &store).await;
    let mut reporters: Vec<&(dyn SweepReporter + Sync)> = Vec::new();
    if let Some(tracker) = &tracker {
        reporters.push(tracker);
    }
    reporters.push(progress);
    let sweep_input = SweepInput {
        grid: &grid,
        grid_path: &input.grid,
        candidates: &candidates,
        schema: &schema,
        data: &data,
        source: &source,
        validation: Some(&validation),
        shard: input.shard,
        jobs: input.jobs,
        state: &input.state,
        store: &store,
        model_out: input.model_out.as_deref(),
        score_best: tracker.is_some(),
        rung: None,
        search_key: None,
    };
    let reporters = Reporters(reporters);
    let search = grid.search();
    let sweep = match (&rung_plan, search.strategy) {
        (Some(plan), _) => {
            let rung_input = SweepInput {
                candidates: &plan.candidates,
                rung: Some(plan.rung),
                search_key: Some(&plan.search_key),
                ..sweep_input
            };
            sweep::run(&rung_input, cancel, &reporters).await
        }
        (None, Strategy::Halving) => {
            sweep::halving::run(&sweep_input, &search, cancel, &reporters).await
        }
        (None, Strategy::Grid | Strategy::Random) => {
            sweep::run(&sweep_input, cancel, &reporters).await
        }
    };
    let tracking = match tracker {
        Some(tracker) => Some(finish_tracking(tracker).await),
        None => None,
    };
    let sweep = sweep?;
    store.close().await;
    if sweep.status == SweepStatus::Killed {
        anyhow::bail!(
            "interrupted after {} of {} trials; run the same command again to resume",
            sweep.records.len(),
            sweep.planned
        );
    }
    Ok(ExperimentOutcome {
        experiment: grid.name.clone(),
        data_source: data.source.clone(),
        data_fingerprint: data.fingerprint.clone(),
        select_metric: grid.select.metric,
        folds: grid.cv.folds,
        seconds: started.elapsed().as_secs_f64(),
        sweep,
        tracking,
    })
}

/// The tracker of this sweep; `None` (after a warning) when the outbox cannot be opened,
/// since tracking never stops a sweep. Also closes the MLflow runs of earlier sweeps whose
/// process died.
async fn open_tracker(
    grid: &GridFile,
    state: &StateDir,
    client: Option<MlflowClient>,
    store: &RunStore,
) -> Option<MlflowTracker> {
    let options = TrackerOptions {
        db_path: state.database(),
        artifact_dir: state.tracking(),
        experiment: grid
            .tracking
            .experiment
            .clone()
            .unwrap_or_else(|| grid.name.clone()),
        client,
    };
    let tracker = match MlflowTracker::open(options).await {
        Ok(t) => t,
        Err(err) => {
            tracing::warn!(error = %err, "tracking is off for this sweep");
            return None;
        }
    };
    // Sweeps of dead processes are marked killed when a sweep starts; marking them now
    // (the same, idempotent step) lets their MLflow runs be closed before this one opens.
    let dead = async {
        store.reap_dead_sweeps().await?;
        store.sweeps().await
    };
    match dead.await {
        Ok(sweeps) => {
            let dead: Vec<i64> = sweeps
                .iter()
                .filter(|s| {
                    s.status == SweepStatus::Killed.as_str()
                        || s.status == SweepStatus::Failed.as_str()
                })
                .map(|s| s.id)
                .collect();
            tracker.close_dead_sweeps(&dead).await;
        }
        Err(err) => tracing::warn!(error = %err, "tracking: cannot list earlier sweeps"),
    }
    Some(tracker)
}

/// Waits (bounded) for the tracker's records to reach the server and says what is left.
async fn finish_tracking(tracker: MlflowTracker) -> TrackingReport {
    let report = tracker.close().await;
    if report.pending > 0 {
        tracing::warn!(
            pending = report.pending,
            "tracking: records wait in the outbox; `netsec sync` sends them{}",
            report
                .last_error
                .as_deref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
    }
    report
}
