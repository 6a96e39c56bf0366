//! The sweep driver: plans a grid's trials on a data set, reuses what the run store already
//! holds, runs the rest in parallel, records every result as it arrives, ranks them on
//! cross-validation and saves the best model.
//!
//! Trials run on rayon worker threads started from a blocking thread, and their results come
//! back over a channel, so the async driver never holds a runtime worker for the length of
//! the sweep: only run-store writes are awaited. Signals are not watched here; the caller
//! owns the [`CancelToken`] and decides what a Ctrl-C means.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use serde::Serialize;

use super::executor::{Executor, UnitResult, truncated};
use super::halving;
use super::plan::{Candidate, KeyContext, Rung, Shard, WorkUnit, trial_key, work_units};
use super::record::{TrialRecord, TrialStatus, compare, rank};
use super::report::{BestModel, SweepFinished, SweepReporter, SweepStarted};
use super::store::{NewSweep, RunStore, SweepRung, SweepStatus};
use crate::config::grid::{GridError, GridFile, SelectMetric};
use crate::data::split::{stratified_kfold_ids, train_test_split};
use crate::data::typical::typical_values;
use crate::data::validate::ValidationReport;
use crate::data::{DataSource, Dataset, Schema};
use crate::model_file::{FORMAT, FORMAT_VERSION, ModelFile, ModelMetrics, ModelOperatingPoint};
use crate::models::FittedModel;
use crate::models::operating_point::Roc;
use crate::shared::guard::Guard;
use crate::shared::now_ms;
use crate::state::StateDir;

/// Stops a sweep from starting new trials; the trials already running finish and are
/// recorded. Cheap to clone; every clone is the same token.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels; returns whether it was cancelled already (a second request, which callers
    /// may treat as "stop at once").
    pub fn cancel(&self) -> bool {
        self.0.swap(true, Ordering::SeqCst)
    }

    /// Whether the sweep was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Everything one sweep needs: the grid, its data and where to keep the results.
pub struct SweepInput<'a> {
    /// The grid file, parsed (split, folds, ranking metric, name).
    pub grid: &'a GridFile,
    /// Where the grid file is (recorded with the sweep).
    pub grid_path: &'a Path,
    /// The grid's candidates, in plan order.
    pub candidates: &'a [Candidate],
    /// The data set's schema.
    pub schema: &'a Schema,
    /// The loaded, encoded data set.
    pub data: &'a Dataset,
    /// Where the rows came from (recorded in the model file).
    pub source: &'a DataSource,
    /// The data validation report, passed on to the reporter at the end.
    pub validation: Option<&'a ValidationReport>,
    /// Run only this slice of the work units.
    pub shard: Option<Shard>,
    /// Worker threads; `None` uses every core.
    pub jobs: Option<usize>,
    /// The state directory (model files are saved under it).
    pub state: &'a StateDir,
    /// The open run store of `state`.
    pub store: &'a RunStore,
    /// Also copy the best model file here.
    pub model_out: Option<&'a Path>,
    /// Score the best model on the test part for the reporter's plots.
    pub score_best: bool,
    /// Train on this rung's subset of the training part (a halving search).
    pub rung: Option<Rung>,
    /// The key of the halving search whose rung this sweep is (see
    /// [`halving::search_key`]): recorded with the sweep, and what tracking files every
    /// rung's trials under.
    pub search_key: Option<&'a str>,
}

/// The best model of a sweep, as saved.
#[derive(Debug, Clone, Serialize)]
pub struct SavedModel {
    /// Its trial key.
    pub trial: String,
    /// The content-addressed model file.
    pub path: PathBuf,
    /// sha256 of the model file.
    pub sha256: String,
}

/// How a sweep ended.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// Local sweep id in the run store.
    pub sweep_id: i64,
    /// `Finished`, `Failed` (every trial failed) or `Killed` (cancelled).
    pub status: SweepStatus,
    /// Every planned trial with a result, best first.
    pub records: Vec<TrialRecord>,
    /// Trials planned (after sharding).
    pub planned: usize,
    /// Trials run by this sweep.
    pub run: usize,
    /// Trials reused from the run store.
    pub reused: usize,
    /// Failed trials among `records`.
    pub failed: usize,
    /// The best model, when one was saved.
    pub best: Option<SavedModel>,
    /// Per algorithm, the parameters the grid varies (for labels).
    pub grid_keys: HashMap<String, Vec<String>>,
    /// Rows of the training part.
    pub train_rows: usize,
    /// Rows of the held-out test part.
    pub test_rows: usize,
}

/// Runs the sweep; trials already in the run store are reused, not run again. Reports to
/// `reporter` as it goes (also when the sweep is cancelled or a store write fails). Returns
/// an error only when the run store fails; a cancelled sweep ends `Killed`.
pub async fn run(
    input: &SweepInput<'_>,
    cancel: &CancelToken,
    reporter: &(dyn SweepReporter + Sync),
) -> anyhow::Result<SweepOutcome> {
    let SweepInput {
        grid, data, store, ..
    } = *input;
    let mut split = train_test_split(data, &grid.split);
    check_operating_point(grid, input.grid_path, data, &split.train)?;
    check_svm_rows(grid, input.grid_path, split.train.len())?;
    let reported_rung = input.rung.map(|r| Rung {
        rows: r.rows.min(split.train.len()),
        ..r
    });
    let rung = input.rung.filter(|r| r.rows < split.train.len());
    if let Some(rung) = rung {
        split.train = halving::subset(&data.class_ids, &split.train, rung, grid.cv.folds);
    }
    let folds = stratified_kfold_ids(
        &data.class_ids,
        &split.train,
        grid.cv.folds,
        grid.split.seed,
    );
    check_early_stopping(
        grid,
        input.grid_path,
        input.candidates,
        data,
        &split.train,
        &folds,
    )?;
    let context = KeyContext {
        rung,
        ..KeyContext::for_grid(grid, &data.fingerprint)
    };
    let keys: Vec<String> = input
        .candidates
        .iter()
        .map(|c| trial_key(c, &context))
        .collect();
    let mut units = work_units(input.candidates);
    if let Some(shard) = input.shard {
        units = shard.select(units);
    }
    let planned_keys: Vec<String> = units
        .iter()
        .flat_map(|u| u.members.iter().map(|&i| keys[i].clone()))
        .collect();

    let finished = store.finished_trials(&planned_keys).await?;
    let metric = grid.select.metric;
    if metric == SelectMetric::F1 && !data.classes.is_binary() {
        tracing::warn!(
            classes = data.classes.len(),
            "select.metric `f1` on a multi-class label ranks by attack-level F1 (any attack vs \
             normal), which rare classes barely move; `macro_f1` weighs every class alike"
        );
    }
    let started_at_ms = now_ms();
    let sweep_id = store
        .start_sweep(&NewSweep {
            experiment: &grid.name,
            grid_path: &input.grid_path.display().to_string(),
            data_source: &data.source,
            data_fingerprint: &data.fingerprint,
            schema_hash: &input.schema.hash,
            select_metric: metric.name(),
            shard: input.shard.map(|s| s.to_string()),
            trial_keys: &planned_keys,
            rung: input
                .search_key
                .zip(reported_rung)
                .map(|(search_key, r)| SweepRung {
                    search_key,
                    index: r.index,
                    rows: r.rows,
                }),
        })
        .await?;

    let todo: Vec<WorkUnit> = units
        .iter()
        .filter(|u| u.members.iter().any(|&i| !finished.contains_key(&keys[i])))
        .cloned()
        .collect();
    let todo_trials: usize = todo.iter().map(|u| u.members.len()).sum();
    if !finished.is_empty() {
        tracing::info!(
            reused = finished.len(),
            remaining = todo_trials,
            "resuming: trials already in the run store are not run again"
        );
    }

    let grid_keys = grid_keys_by_algorithm(input.candidates);
    reporter.sweep_started(&SweepStarted {
        sweep_id,
        experiment: &grid.name,
        grid_path: input.grid_path,
        data_source: &data.source,
        data_fingerprint: &data.fingerprint,
        schema_hash: &input.schema.hash,
        schema: input.schema,
        train_rows: split.train.len(),
        test_rows: split.test.len(),
        select_metric: metric,
        split: &grid.split,
        folds: grid.cv.folds,
        shard: input.shard.map(|s| s.to_string()),
        planned: &planned_keys,
        grid_keys: &grid_keys,
        started_at_ms,
        rung: reported_rung,
        search_key: input.search_key,
    });
    for key in &planned_keys {
        if let Some(record) = finished.get(key) {
            reporter.trial_finished(record);
        }
    }
    reporter.trials_to_run(todo_trials);

    let executor = Arc::new(Executor::new(
        &grid.name,
        data,
        &split,
        &folds,
        grid.split.seed,
        grid.operating_point.as_ref().map(|t| t.value),
    ));
    let candidates: Arc<[Candidate]> = input.candidates.into();
    let keys: Arc<[String]> = keys.into();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(input.jobs.unwrap_or(0))
        .build()
        .context("starting worker threads")?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<UnitResult>();
    let workers = {
        let (executor, candidates, keys, cancel) = (
            executor.clone(),
            candidates.clone(),
            keys.clone(),
            cancel.clone(),
        );
        tokio::task::spawn_blocking(move || {
            pool.install(|| {
                executor.run_all(&todo, &candidates, &keys, &cancel.0, &|result| {
                    let _ = tx.send(result);
                })
            })
        })
    };

    let mut best: Option<(TrialRecord, FittedModel, Option<Roc>)> = None;
    let mut run_count = 0usize;
    let mut store_error = None;
    while let Some(result) = rx.recv().await {
        // Only a test's twin drops what finishes after the cancel (see
        // `Guard::CancelKeepsResults`); the workers still run to the end of their trials.
        if cancel.is_cancelled() && Guard::CancelKeepsResults.disabled() {
            continue;
        }
        for record in &result.records {
            if let Err(err) = store.record_trial(record).await {
                // Without the store nothing is resumable: stop starting new work.
                cancel.cancel();
                store_error.get_or_insert(err);
            } else {
                reporter.trial_finished(record);
            }
            run_count += 1;
            reporter.trial_ran(record);
        }
        if let Some(model) = &result.model {
            keep_best(&mut best, &result, model, metric);
        }
    }
    workers.await.context("the sweep's worker threads")?;
    if let Some(err) = store_error {
        reporter.sweep_finished(&SweepFinished {
            status: SweepStatus::Failed,
            leaderboard: &[],
            best: None,
            validation: input.validation,
            finished_at_ms: now_ms(),
        });
        store
            .finish_sweep(sweep_id, SweepStatus::Failed, None)
            .await?;
        return Err(err).context("recording trial results");
    }
    let interrupted = cancel.is_cancelled();

    let stored = store.trials(&planned_keys).await?;
    let mut records: Vec<TrialRecord> = planned_keys
        .iter()
        .filter_map(|k| stored.get(k).cloned())
        .collect();
    rank(&mut records, metric);
    let failed = records
        .iter()
        .filter(|r| r.status == TrialStatus::Failed)
        .count();
    let mut outcome = SweepOutcome {
        sweep_id,
        status: SweepStatus::Killed,
        records,
        planned: planned_keys.len(),
        run: run_count,
        reused: planned_keys.len().saturating_sub(todo_trials),
        failed,
        best: None,
        grid_keys,
        train_rows: split.train.len(),
        test_rows: split.test.len(),
    };

    if interrupted {
        reporter.sweep_finished(&SweepFinished {
            status: SweepStatus::Killed,
            leaderboard: &outcome.records,
            best: None,
            validation: input.validation,
            finished_at_ms: now_ms(),
        });
        store
            .finish_sweep(sweep_id, SweepStatus::Killed, None)
            .await?;
        return Ok(outcome);
    }

    let x_test = data.features.select(ndarray::Axis(0), &split.test);
    let test_labels: Vec<bool> = split.test.iter().map(|&r| data.labels[r]).collect();
    let mut test_scores = Vec::new();
    let top = outcome
        .records
        .first()
        .filter(|r| r.status == TrialStatus::Finished);
    if let Some(top) = top {
        let (model, roc) = match best.take() {
            Some((record, model, roc)) if record.key == top.key => (model, roc),
            _ => {
                // A fit is seconds to minutes of CPU: keep it off the runtime's workers.
                let top = top.clone();
                tokio::task::spawn_blocking(move || refit(&top, &candidates, &keys, &executor))
                    .await
                    .context("refitting the best trial")??
            }
        };
        if input.score_best {
            match model.predict_proba(x_test.view()) {
                Ok(proba) => {
                    test_scores = proba
                        .rows()
                        .into_iter()
                        .map(|row| {
                            data.classes
                                .attack_probability(row.as_slice().unwrap_or(&[]))
                        })
                        .collect()
                }
                Err(err) => {
                    tracing::warn!(error = %err, "tracking: cannot score the best model for its plots")
                }
            }
        }
        let file = model_file(
            top,
            model,
            roc,
            input.schema,
            data,
            &split.train,
            input.source,
            grid,
        );
        let (path, sha256) = file.save_content_addressed(&input.state.models())?;
        if let Some(copy) = input.model_out {
            file.save(copy)?;
        }
        outcome.best = Some(SavedModel {
            trial: top.key.clone(),
            path,
            sha256,
        });
    }
    outcome.status = if failed == outcome.records.len() && !outcome.records.is_empty() {
        SweepStatus::Failed
    } else {
        SweepStatus::Finished
    };
    let best_ref = outcome.best.as_ref().map(|s| {
        (
            s.trial.as_str(),
            s.path.to_str().unwrap_or_default(),
            s.sha256.as_str(),
        )
    });
    store
        .finish_sweep(sweep_id, outcome.status, best_ref)
        .await?;
    let best_model = match (&outcome.best, outcome.records.first()) {
        (Some(s), Some(top)) if !test_scores.is_empty() => Some(BestModel {
            trial: top,
            model_path: &s.path,
            sha256: &s.sha256,
            test_labels: &test_labels,
            test_scores: &test_scores,
            class_names: &input.schema.label.names,
        }),
        _ => None,
    };
    reporter.sweep_finished(&SweepFinished {
        status: outcome.status,
        leaderboard: &outcome.records,
        best: best_model,
        validation: input.validation,
        finished_at_ms: now_ms(),
    });
    Ok(outcome)
}

/// Refuses, before anything is fitted or recorded, an operating-point target that cannot be
/// measured on this data: a label without a normal class, or fewer normal rows in the
/// training part (each is out-of-fold once) than `max_fpr` needs (3 / max_fpr).
pub fn check_operating_point(
    grid: &GridFile,
    grid_path: &Path,
    data: &Dataset,
    train: &[usize],
) -> Result<(), GridError> {
    let Some(target) = &grid.operating_point else {
        return Ok(());
    };
    let classes = &data.classes;
    if !classes.has_normal() {
        return Err(GridError::at(
            grid_path,
            target,
            format!(
                "operating_point needs a normal class to count false alarms, and the label's \
                 classes ({}) have none",
                classes.names.join(", ")
            ),
        ));
    }
    let normal = train
        .iter()
        .filter(|&&r| !classes.is_attack(data.class_ids[r]))
        .count();
    let needed = target.value.min_normal_rows();
    if normal < needed {
        return Err(GridError::at(
            grid_path,
            target,
            format!(
                "operating_point max_fpr {} cannot be measured: it needs at least {needed} \
                 normal rows out of fold (3 / max_fpr), and the training part has {normal}",
                target.value.max_fpr.unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

/// Refuses, before anything is fitted or recorded, an `svm` entry over more training rows
/// than [`crate::models::svm::MAX_TRAIN_ROWS`].
pub fn check_svm_rows(
    grid: &GridFile,
    grid_path: &Path,
    train_rows: usize,
) -> Result<(), GridError> {
    let cap = crate::models::svm::MAX_TRAIN_ROWS;
    match grid.models.iter().find(|m| m.algorithm.value == "svm") {
        Some(entry) if train_rows > cap => Err(GridError::at(
            grid_path,
            &entry.algorithm,
            format!(
                "svm over {train_rows} training rows: the exact kernel solver is quadratic in \
                 rows and netsec caps it at {cap}; subsample the data (e.g. `data.rows` of a \
                 synthetic source, or a sample of the file) or drop svm from this grid"
            ),
        )),
        _ => Ok(()),
    }
}

/// Refuses, before anything is fitted or recorded, early stopping on rows where a class is
/// too small to set a validation part aside: every fit of a trial (each cross-validation
/// fold's training rows of `train`, whose validation positions are `folds`, and the whole of
/// `train`) must hold [`crate::models::early_stopping::MIN_CLASS_ROWS`] rows of each class it
/// has. The error points at the grid's `n_iter_no_change`.
pub fn check_early_stopping(
    grid: &GridFile,
    grid_path: &Path,
    candidates: &[Candidate],
    data: &Dataset,
    train: &[usize],
    folds: &[Vec<usize>],
) -> Result<(), GridError> {
    use crate::models::early_stopping::{EarlyStopping, N_ITER_NO_CHANGE};
    let k = data.classes.len();
    let count = |positions: &mut dyn Iterator<Item = usize>| {
        let mut counts = vec![0usize; k];
        for p in positions {
            counts[data.class_ids[train[p]] as usize] += 1;
        }
        counts
    };
    let whole = count(&mut (0..train.len()));
    let mut fits: Vec<(String, Vec<usize>)> = vec![("the training part".into(), whole.clone())];
    for (f, val) in folds.iter().enumerate() {
        let held = count(&mut val.iter().copied());
        let rows = whole.iter().zip(&held).map(|(w, h)| w - h).collect();
        fits.push((format!("the training rows of cv fold {}", f + 1), rows));
    }
    for candidate in candidates {
        let algorithm = candidate.algorithm.name();
        let reader = crate::models::Reader {
            algorithm,
            params: &candidate.params,
        };
        let Ok(Some(stopping)) = EarlyStopping::from_params(&reader) else {
            continue;
        };
        for (what, counts) in &fits {
            let Err((class, rows)) = stopping.validation_counts(counts) else {
                continue;
            };
            // Early stopping is off by default: some entry of the algorithm sets it.
            let entries = grid
                .models
                .iter()
                .filter(|m| m.algorithm.value == algorithm);
            let mut spans = entries.filter_map(|m| m.grid.get(N_ITER_NO_CHANGE.name));
            let message = format!(
                "models.{algorithm}.grid.{}: early stopping sets aside a validation part \
                 (validation_fraction {}) with a row of every class and boosts on the rest, so \
                 each class needs {} rows; class `{}` has {rows} in {what}",
                N_ITER_NO_CHANGE.name,
                stopping.validation_fraction,
                crate::models::early_stopping::MIN_CLASS_ROWS,
                data.classes.names[class],
            );
            return Err(match spans.next() {
                Some(span) => GridError::at(grid_path, span, message),
                None => GridError::Invalid {
                    path: grid_path.to_owned(),
                    line: 1,
                    column: 1,
                    message,
                },
            });
        }
    }
    Ok(())
}

/// Per algorithm, the parameters the grid varies.
fn grid_keys_by_algorithm(candidates: &[Candidate]) -> HashMap<String, Vec<String>> {
    candidates
        .iter()
        .map(|c| (c.algorithm.name().to_owned(), c.grid_keys.clone()))
        .collect()
}

/// Keeps the fitted model (and out-of-fold curve) of the best finished record seen so far.
fn keep_best(
    best: &mut Option<(TrialRecord, FittedModel, Option<Roc>)>,
    result: &UnitResult,
    model: &FittedModel,
    metric: SelectMetric,
) {
    for (m, record) in result.records.iter().enumerate() {
        if record.status != TrialStatus::Finished {
            continue;
        }
        let better = best
            .as_ref()
            .is_none_or(|(current, _, _)| compare(record, current, metric).is_lt());
        if better {
            let member = match model_stage(record) {
                Some(n) if Some(n) != model.n_stages() => truncated(model, n).ok(),
                _ => Some(model.clone()),
            };
            if let Some(member) = member {
                *best = Some((record.clone(), member, result.rocs.get(m).cloned()));
            }
        }
    }
}

/// The ensemble size of a staged model's trial (its staged parameter), if it has one.
fn model_stage(record: &TrialRecord) -> Option<usize> {
    let algorithm = crate::models::algorithm(&record.algorithm)?;
    match record.params.get(algorithm.staged_param()?) {
        Some(crate::models::ParamValue::Int(n)) if *n >= 1 => Some(*n as usize),
        _ => None,
    }
}

/// Fits the best trial again on the whole training part (when it came from an earlier,
/// resumed run); fits are deterministic, so this is the same model, with the same
/// out-of-fold curve when the grid has an operating point.
pub fn refit(
    top: &TrialRecord,
    candidates: &[Candidate],
    keys: &[String],
    executor: &Executor,
) -> anyhow::Result<(FittedModel, Option<Roc>)> {
    let index = keys
        .iter()
        .position(|k| *k == top.key)
        .context("best trial is not in this plan")?;
    let unit = WorkUnit {
        members: vec![index],
        stages: vec![None],
    };
    let result = executor.run_unit(&unit, candidates, keys);
    let roc = result.rocs.first().cloned();
    let model = result.model.with_context(|| {
        format!(
            "refitting trial {}: {}",
            top.key,
            result.records[0].error.clone().unwrap_or_default()
        )
    })?;
    Ok((model, roc))
}

/// The model file of a trial's fitted model, with everything needed to serve it and to
/// score it again on the same holdout (schema, encoding, data source, split), and the
/// typical value of each column over the `train` rows of `data`.
#[allow(clippy::too_many_arguments)]
pub fn model_file(
    top: &TrialRecord,
    model: FittedModel,
    roc: Option<Roc>,
    schema: &Schema,
    data: &Dataset,
    train: &[usize],
    source: &DataSource,
    grid: &GridFile,
) -> ModelFile {
    ModelFile {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        experiment: grid.name.clone(),
        trial_key: top.key.clone(),
        algorithm: top.algorithm.clone(),
        params: top.params.clone(),
        schema: schema.clone(),
        encoding: data.encoding.clone(),
        data_fingerprint: data.fingerprint.clone(),
        data_source: Some(source.clone()),
        split: grid.split,
        cv_folds: grid.cv.folds,
        metrics: ModelMetrics {
            cv: top.cv.clone(),
            test: top.test.clone(),
        },
        netsec_version: env!("CARGO_PKG_VERSION").into(),
        label_choice: grid.data.label_choice(),
        classes: ModelFile::classes_field(&data.classes),
        operating_point: top
            .operating_point
            .zip(roc)
            .map(|(point, roc)| ModelOperatingPoint { point, roc }),
        typical_values: Some(typical_values(schema, data, train)),
        n_estimators_used: top.n_estimators_used,
        model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_cancel_says_it_was_cancelled_already() {
        let token = CancelToken::new();
        let clone = token.clone();
        assert!(!token.is_cancelled());
        assert!(!clone.cancel());
        assert!(token.is_cancelled());
        assert!(token.cancel());
    }
}
