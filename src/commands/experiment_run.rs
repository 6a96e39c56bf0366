//! `netsec experiment run`: the entry point for running a grid file's sweep.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::leaderboard::{self, Leaderboard};
use crate::cli::{OutputFormat, RunArgs};
use crate::config::grid::{GridFile, SelectMetric};
use crate::data::Schema;
use crate::data::split::{stratified_kfold, train_test_split};
use crate::exit::Outcome;
use crate::models::FittedModel;
use crate::pipeline::source::{load_data, model_file, refit, tracking_client};
use crate::sweep::executor::{Executor, UnitResult, truncated};
use crate::sweep::plan::{Candidate, KeyContext, expand, trial_key, work_units};
use crate::sweep::record::{TrialRecord, TrialStatus, compare, now_ms, rank};
use crate::sweep::report::{BestModel, SweepFinished, SweepReporter, SweepStarted};
use crate::sweep::store::{NewSweep, RunStore, SweepStatus};
use crate::tracking::{MlflowClient, MlflowTracker, TrackerOptions, TrackingReport};

/// What `--output json` prints.
#[derive(Debug, Serialize)]
struct RunSummary<'a> {
    experiment: &'a str,
    sweep_id: i64,
    status: &'static str,
    data_source: &'a str,
    data_fingerprint: &'a str,
    select_metric: &'static str,
    trials_planned: usize,
    trials_run: usize,
    trials_reused: usize,
    trials_failed: usize,
    seconds: f64,
    best_model: Option<SavedModel>,
    tracking: Option<TrackingReport>,
    leaderboard: &'a [TrialRecord],
}

#[derive(Debug, Clone, Serialize)]
struct SavedModel {
    trial: String,
    path: PathBuf,
    sha256: String,
}

/// Runs the sweep; trials already in the run store are reused, not run again.
pub fn run(args: RunArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let grid = GridFile::from_file(&args.grid)?;
    let candidates = expand(&grid, &args.grid)?;
    let schema = Schema::from_file(&grid.data.schema.value)?;
    let client = tracking_client(&grid)?;
    let (source, data, validation) = super::block(load_data(&grid, &args.grid, &schema))?;
    tracing::info!(
        rows = data.len(),
        attacks = data.attacks(),
        fingerprint = %&data.fingerprint[..12],
        "data loaded from {}",
        data.source
    );
    let split = train_test_split(&data, &grid.split);
    let folds = stratified_kfold(&data.labels, &split.train, grid.cv.folds, grid.split.seed);
    let context = KeyContext {
        data_fingerprint: &data.fingerprint,
        split: &grid.split,
        folds: grid.cv.folds,
    };
    let keys: Vec<String> = candidates.iter().map(|c| trial_key(c, &context)).collect();
    let mut units = work_units(&candidates);
    if let Some(shard) = args.shard {
        units = shard.select(units);
    }
    let planned: Vec<usize> = units.iter().flat_map(|u| u.members.clone()).collect();
    let planned_keys: Vec<String> = planned.iter().map(|&i| keys[i].clone()).collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = runtime.block_on(RunStore::open(&RunStore::path_in(&args.state.state_dir)))?;
    let finished = runtime.block_on(store.finished_trials(&planned_keys))?;
    let metric = grid.select.metric;
    let experiment = grid.name.clone();
    let started_at_ms = now_ms();
    let sweep_id = runtime.block_on(store.start_sweep(&NewSweep {
        experiment: &experiment,
        grid_path: &args.grid.display().to_string(),
        data_source: &data.source,
        data_fingerprint: &data.fingerprint,
        schema_hash: &schema.hash,
        select_metric: metric.name(),
        shard: args.shard.map(|s| s.to_string()),
        trial_keys: &planned_keys,
    }))?;

    let todo: Vec<_> = units
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

    let grid_keys = grid_keys_by_algorithm(&candidates);
    let mut tracker = open_tracker(&grid, &args, client, &runtime, &store);
    let reporter = tracker.as_ref().map(|t| t as &dyn SweepReporter);
    if let Some(reporter) = reporter {
        reporter.sweep_started(&SweepStarted {
            sweep_id,
            experiment: &experiment,
            grid_path: &args.grid,
            data_source: &data.source,
            data_fingerprint: &data.fingerprint,
            schema_hash: &schema.hash,
            select_metric: metric,
            split: &grid.split,
            folds: grid.cv.folds,
            shard: args.shard.map(|s| s.to_string()),
            planned: &planned_keys,
            grid_keys: &grid_keys,
            started_at_ms,
        });
        for key in &planned_keys {
            if let Some(record) = finished.get(key) {
                reporter.trial_finished(record);
            }
        }
    }

    let cancel = Arc::new(AtomicBool::new(false));
    watch_signals(&runtime, cancel.clone());
    let executor = Executor::new(&experiment, &data, &split, &folds, grid.split.seed);
    let mut progress = Progress::new(todo_trials, metric, &grid_keys);
    let mut best: Option<(TrialRecord, FittedModel)> = None;
    let mut run_count = 0usize;
    let mut store_error = None;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.unwrap_or(0))
        .build()
        .context("starting worker threads")?;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel::<UnitResult>();
        let (executor, todo, candidates, keys, cancel) =
            (&executor, &todo, &candidates, &keys, &cancel);
        scope.spawn(move || {
            pool.install(|| {
                executor.run_all(todo, candidates, keys, cancel, &|result| {
                    let _ = tx.send(result);
                })
            })
        });
        for result in rx {
            for record in &result.records {
                if let Err(err) = runtime.block_on(store.record_trial(record)) {
                    // Without the store nothing is resumable: stop starting new work.
                    cancel.store(true, Ordering::Relaxed);
                    store_error.get_or_insert(err);
                } else if let Some(reporter) = reporter {
                    reporter.trial_finished(record);
                }
                run_count += 1;
                progress.trial_done(record);
            }
            if let Some(model) = &result.model {
                keep_best(&mut best, &result.records, model, metric);
            }
        }
    });
    progress.finish();
    if let Some(err) = store_error {
        finish_tracking(
            tracker.take(),
            SweepFinished {
                status: SweepStatus::Failed,
                leaderboard: &[],
                best: None,
                validation: Some(&validation),
                finished_at_ms: now_ms(),
            },
        );
        runtime.block_on(store.finish_sweep(sweep_id, SweepStatus::Failed, None))?;
        return Err(err).context("recording trial results");
    }
    let interrupted = cancel.load(Ordering::Relaxed);

    let stored = runtime.block_on(store.trials(&planned_keys))?;
    let mut records: Vec<TrialRecord> = planned_keys
        .iter()
        .filter_map(|k| stored.get(k).cloned())
        .collect();
    rank(&mut records, metric);
    let failed = records
        .iter()
        .filter(|r| r.status == TrialStatus::Failed)
        .count();

    if interrupted {
        finish_tracking(
            tracker.take(),
            SweepFinished {
                status: SweepStatus::Killed,
                leaderboard: &records,
                best: None,
                validation: Some(&validation),
                finished_at_ms: now_ms(),
            },
        );
        runtime.block_on(store.finish_sweep(sweep_id, SweepStatus::Killed, None))?;
        runtime.block_on(store.close());
        anyhow::bail!(
            "interrupted after {} of {} trials; run the same command again to resume",
            records.len(),
            planned_keys.len()
        );
    }

    let x_test = data.features.select(ndarray::Axis(0), &split.test);
    let test_labels: Vec<bool> = split.test.iter().map(|&r| data.labels[r]).collect();
    let mut test_scores = Vec::new();
    let saved = match records
        .first()
        .filter(|r| r.status == TrialStatus::Finished)
    {
        Some(top) => {
            let model = match best.take() {
                Some((record, model)) if record.key == top.key => model,
                _ => refit(top, &candidates, &keys, &executor)?,
            };
            if tracker.is_some() {
                match model.predict_proba(x_test.view()) {
                    Ok(scores) => test_scores = scores,
                    Err(err) => {
                        tracing::warn!(error = %err, "tracking: cannot score the best model for its plots")
                    }
                }
            }
            let file = model_file(top, model, &schema, &data, &source, &grid);
            let (path, sha256) =
                file.save_content_addressed(&args.state.state_dir.join("models"))?;
            if let Some(copy) = &args.model_out {
                file.save(copy)?;
            }
            Some(SavedModel {
                trial: top.key.clone(),
                path,
                sha256,
            })
        }
        None => None,
    };
    let status = if failed == records.len() && !records.is_empty() {
        SweepStatus::Failed
    } else {
        SweepStatus::Finished
    };
    let best_ref = saved.as_ref().map(|s| {
        (
            s.trial.as_str(),
            s.path.to_str().unwrap_or_default(),
            s.sha256.as_str(),
        )
    });
    runtime.block_on(store.finish_sweep(sweep_id, status, best_ref))?;
    runtime.block_on(store.close());
    let best_model = match (&saved, records.first()) {
        (Some(s), Some(top)) if !test_scores.is_empty() => Some(BestModel {
            trial: top,
            model_path: &s.path,
            sha256: &s.sha256,
            test_labels: &test_labels,
            test_scores: &test_scores,
            class_names: &schema.label.names,
        }),
        _ => None,
    };
    let tracking = finish_tracking(
        tracker.take(),
        SweepFinished {
            status,
            leaderboard: &records,
            best: best_model,
            validation: Some(&validation),
            finished_at_ms: now_ms(),
        },
    );

    let summary = RunSummary {
        experiment: &experiment,
        sweep_id,
        status: status.as_str(),
        data_source: &data.source,
        data_fingerprint: &data.fingerprint,
        select_metric: metric.name(),
        trials_planned: planned_keys.len(),
        trials_run: run_count,
        trials_reused: planned_keys.len().saturating_sub(todo_trials),
        trials_failed: failed,
        seconds: started.elapsed().as_secs_f64(),
        best_model: saved.clone(),
        tracking: tracking.clone(),
        leaderboard: &records,
    };
    match args.output {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &summary)?;
            writeln!(out)?;
        }
        OutputFormat::Text => {
            let board = Leaderboard {
                records: &records,
                metric,
                grid_keys: &grid_keys,
            };
            writeln!(
                out,
                "experiment `{experiment}` (sweep {sweep_id}): {} trials, {} run now, {} reused, {} failed, {:.1} s",
                summary.trials_planned,
                summary.trials_run,
                summary.trials_reused,
                summary.trials_failed,
                summary.seconds
            )?;
            writeln!(
                out,
                "ranked by cross-validated {} ({}-fold on {} training rows); test = {} held-out rows\n",
                metric.name(),
                grid.cv.folds,
                split.train.len(),
                split.test.len()
            )?;
            leaderboard::print(out, &board, args.top)?;
            match &saved {
                Some(s) => writeln!(
                    out,
                    "\nbest model: {} (sha256 {})",
                    s.path.display(),
                    &s.sha256[..16]
                )?,
                None => writeln!(out, "\nno model saved: every trial failed")?,
            }
            if let Some(copy) = &args.model_out {
                writeln!(out, "copied to: {}", copy.display())?;
            }
            if let Some(report) = &tracking {
                print_tracking(out, report)?;
            }
        }
    }
    if status == SweepStatus::Failed {
        let first = records[0].error.clone().unwrap_or_default();
        anyhow::bail!("every trial failed; the first error: {first}");
    }
    Ok(Outcome::Success)
}

/// The tracker of this sweep; `None` (after a warning) when the outbox cannot be opened,
/// since tracking never stops a sweep. Also closes the MLflow runs of earlier sweeps whose
/// process died.
fn open_tracker(
    grid: &GridFile,
    args: &RunArgs,
    client: Option<MlflowClient>,
    runtime: &tokio::runtime::Runtime,
    store: &RunStore,
) -> Option<MlflowTracker> {
    let options = TrackerOptions {
        db_path: RunStore::path_in(&args.state.state_dir),
        artifact_dir: args.state.state_dir.join("tracking"),
        experiment: grid
            .tracking
            .experiment
            .clone()
            .unwrap_or_else(|| grid.name.clone()),
        client,
    };
    let tracker = match MlflowTracker::open(options, runtime.handle().clone()) {
        Ok(t) => t,
        Err(err) => {
            tracing::warn!(error = %err, "tracking is off for this sweep");
            return None;
        }
    };
    match runtime.block_on(store.sweeps()) {
        Ok(sweeps) => {
            let dead: Vec<i64> = sweeps
                .iter()
                .filter(|s| {
                    s.status == SweepStatus::Killed.as_str()
                        || s.status == SweepStatus::Failed.as_str()
                })
                .map(|s| s.id)
                .collect();
            tracker.close_dead_sweeps(&dead);
        }
        Err(err) => tracing::warn!(error = %err, "tracking: cannot list earlier sweeps"),
    }
    Some(tracker)
}

/// Reports the end of the sweep and waits (bounded) for the outbox to reach the server.
fn finish_tracking(
    tracker: Option<MlflowTracker>,
    end: SweepFinished<'_>,
) -> Option<TrackingReport> {
    let tracker = tracker?;
    tracker.sweep_finished(&end);
    let report = tracker.close();
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
    Some(report)
}

/// Where the sweep went in MLflow, or why it has not gone yet.
fn print_tracking(out: &mut dyn Write, report: &TrackingReport) -> std::io::Result<()> {
    if let Some(url) = &report.experiment_url {
        writeln!(out, "mlflow experiment: {url}")?;
    }
    if let Some(url) = &report.compare_url {
        writeln!(out, "mlflow compare:    {url}")?;
    }
    if report.pending > 0 {
        let why = match &report.server {
            None => "no tracking server set (MLFLOW_TRACKING_URI)".to_owned(),
            Some(server) => format!("{server} did not take them yet"),
        };
        writeln!(
            out,
            "tracking: {} records wait in the outbox ({why}); `netsec sync` sends them",
            report.pending
        )?;
    }
    if report.failed > 0 {
        writeln!(
            out,
            "tracking: {} records were refused by the server; `netsec sync --retry-failed` tries again",
            report.failed
        )?;
    }
    Ok(())
}

fn grid_keys_by_algorithm(candidates: &[Candidate]) -> HashMap<String, Vec<String>> {
    candidates
        .iter()
        .map(|c| (c.algorithm.name().to_owned(), c.grid_keys.clone()))
        .collect()
}

/// Keeps the fitted model of the best finished record seen so far.
fn keep_best(
    best: &mut Option<(TrialRecord, FittedModel)>,
    records: &[TrialRecord],
    model: &FittedModel,
    metric: SelectMetric,
) {
    for record in records.iter().filter(|r| r.status == TrialStatus::Finished) {
        let better = best
            .as_ref()
            .is_none_or(|(current, _)| compare(record, current, metric).is_lt());
        if better {
            let member = match model_stage(record) {
                Some(n) if Some(n) != model.n_stages() => truncated(model, n).ok(),
                _ => Some(model.clone()),
            };
            if let Some(member) = member {
                *best = Some((record.clone(), member));
            }
        }
    }
}

fn model_stage(record: &TrialRecord) -> Option<usize> {
    let algorithm = crate::models::algorithm(&record.algorithm)?;
    match record.params.get(algorithm.staged_param()?) {
        Some(crate::models::ParamValue::Int(n)) if *n >= 1 => Some(*n as usize),
        _ => None,
    }
}

/// First Ctrl-C / SIGTERM: finish the running trials, start no new ones. Second: stop now
/// (the run store already holds every finished trial).
fn watch_signals(runtime: &tokio::runtime::Runtime, cancel: Arc<AtomicBool>) {
    runtime.spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            if cancel.swap(true, Ordering::SeqCst) {
                eprintln!("stopping now; rerun the same command to resume");
                std::process::exit(130);
            }
            eprintln!("interrupted: finishing the running trials (again to stop at once)");
        }
    });
}

/// Progress on stderr: a bar on a terminal, a log line per trial otherwise.
struct Progress<'a> {
    bar: Option<ProgressBar>,
    grid_keys: &'a HashMap<String, Vec<String>>,
    total: usize,
    done: usize,
    metric: SelectMetric,
    best: Option<f64>,
}

impl<'a> Progress<'a> {
    fn new(
        total: usize,
        metric: SelectMetric,
        grid_keys: &'a HashMap<String, Vec<String>>,
    ) -> Progress<'a> {
        let bar = (std::io::stderr().is_terminal() && tracing::enabled!(tracing::Level::INFO))
            .then(|| {
                let bar = ProgressBar::new(total as u64);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{bar:30} {pos}/{len} trials  {elapsed_precise} eta {eta}  {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.enable_steady_tick(Duration::from_millis(250));
                bar
            });
        Progress {
            bar,
            grid_keys,
            total,
            done: 0,
            metric,
            best: None,
        }
    }

    fn trial_done(&mut self, record: &TrialRecord) {
        self.done += 1;
        if let Some(score) = record.cv_score(self.metric) {
            let better = match self.best {
                None => true,
                Some(b) if self.metric.higher_is_better() => score > b,
                Some(b) => score < b,
            };
            if better {
                self.best = Some(score);
            }
        }
        let best = self
            .best
            .map(|b| format!("best cv {} {b:.4}", self.metric.name()))
            .unwrap_or_default();
        let label = record.label(self.grid_keys.get(&record.algorithm).map_or(&[][..], |k| k));
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.done as u64);
                bar.set_message(best);
            }
            None => match record.status {
                TrialStatus::Finished => tracing::info!(
                    "trial {}/{}: {} {label} cv {} {:.4} ({best})",
                    self.done,
                    self.total,
                    &record.key[..10],
                    self.metric.name(),
                    record.cv_score(self.metric).unwrap_or(f64::NAN),
                ),
                TrialStatus::Failed => tracing::warn!(
                    "trial {}/{}: {} {label} failed: {}",
                    self.done,
                    self.total,
                    &record.key[..10],
                    record.error.as_deref().unwrap_or("")
                ),
            },
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
