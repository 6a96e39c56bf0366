//! [`MlflowTracker`]: the sweep's [`SweepReporter`] that records a sweep as MLflow runs.
//!
//! Every report becomes an outbox record at once: the reporter methods are synchronous, so
//! they queue the record for a writer task that inserts it into the local SQLite outbox in
//! order (the sweep is never slowed and never blocks on I/O); a background task sends the
//! outbox while the sweep runs, and whatever it could not send stays for `netsec sync`.
//! Both tasks run on the caller's runtime; [`MlflowTracker::close`] drains them.
//!
//! The sweep is one parent run and each trial a child run. Run keys are derived from the
//! plan, not from the local sweep id, so a resumed sweep (same grid, same data) reopens its
//! parent run and finds its child runs again.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;

use super::charts::{class_confusion_png, confusion_matrix_png, roc_curve_png};
use super::client::{MlflowClient, system_tags};
use super::inputs::{DatasetInput, SweepData};
use super::keys::metric_key;
use super::logged_model::{self, LoggedModelSpec, artifacts_key};
use super::outbox::{ArtifactFile, NewRecord, Outbox, OutboxError, RecordKind, RunRecord};
use super::send::Sender;
use super::types::{Metric, Param, RunStatus, Tag};
use crate::config::grid::SelectMetric;
use crate::models::operating_point::OperatingPoint;
use crate::shared::hash::hex;
use crate::sweep::plan::Rung;
use crate::sweep::record::{METRIC_NAMES, TrialRecord, TrialStatus, metric_values};
use crate::sweep::report::{BestModel, SweepFinished, SweepReporter, SweepStarted};
use crate::sweep::store::SweepStatus;

/// Child runs shown in the compare link.
const COMPARE_TOP: usize = 5;
/// Leaderboard rows in the parent run's note.
const NOTE_ROWS: usize = 20;
/// How long the end of a sweep waits for the outbox to reach the server.
const FLUSH: Duration = Duration::from_secs(30);
/// ...when the server was already found away during the sweep.
const FLUSH_AWAY: Duration = Duration::from_secs(5);

/// Where and how a tracker records.
#[derive(Debug, Clone)]
pub struct TrackerOptions {
    /// The state database holding the outbox (the run store's file).
    pub db_path: PathBuf,
    /// Directory for files made for tracking (plots, leaderboard, report).
    pub artifact_dir: PathBuf,
    /// MLflow experiment name.
    pub experiment: String,
    /// The server; `None` keeps everything in the outbox.
    pub client: Option<MlflowClient>,
}

/// What tracking did, for the command to print.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrackingReport {
    /// The server's base URL, if one was set.
    pub server: Option<String>,
    /// The experiment's runs page in the MLflow UI.
    pub experiment_url: Option<String>,
    /// The compare view of the best runs.
    pub compare_url: Option<String>,
    /// Records still waiting in the outbox.
    pub pending: i64,
    /// Records the server refused.
    pub failed: i64,
    /// Why records are still waiting, if the server said.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    sweep_id: Option<i64>,
    sweep_key: String,
    grid_keys: HashMap<String, Vec<String>>,
    context_tags: Vec<Tag>,
    top_keys: Vec<String>,
    metric: Option<SelectMetric>,
    /// The halving rung of the sweep, logged with each trial.
    rung: Option<Rung>,
    /// The sweep's training and test parts, logged as each trial's dataset inputs.
    inputs: Vec<DatasetInput>,
}

/// A record waiting for the writer task.
struct Queued {
    kind: RecordKind,
    dedup_key: Option<String>,
    sweep_id: Option<i64>,
    record: RunRecord,
}

/// Records a sweep as MLflow runs through the outbox.
pub struct MlflowTracker {
    outbox: Outbox,
    options: TrackerOptions,
    sender: Option<Sender>,
    /// Feeds the writer task; `None` once closing.
    queue: Option<UnboundedSender<Queued>>,
    writer: Option<JoinHandle<()>>,
    background: Option<JoinHandle<()>>,
    wake: Arc<Notify>,
    stop: Arc<AtomicBool>,
    away: Arc<Mutex<Option<String>>>,
    state: Mutex<State>,
}

impl MlflowTracker {
    /// Opens the outbox, starts the task writing reports into it and, with a server, the
    /// task sending it in the background, both on the current runtime.
    pub async fn open(options: TrackerOptions) -> Result<MlflowTracker, OutboxError> {
        let outbox = Outbox::open(&options.db_path).await?;
        // Retries during a sweep are short: a record that does not go through waits in the
        // outbox and is tried again a little later anyway.
        let sender = options.client.clone().map(|client| {
            let mut retry = client.config().retry.clone();
            retry.max_attempts = retry.max_attempts.min(4);
            retry.max_elapsed = retry.max_elapsed.min(Duration::from_secs(8));
            Sender::new(client.with_retry(retry), outbox.clone(), &options.db_path)
        });
        let wake = Arc::new(Notify::new());
        let stop = Arc::new(AtomicBool::new(false));
        let away = Arc::default();
        let (queue, records) = unbounded_channel();
        let writer = tokio::spawn(write_records(
            outbox.clone(),
            sender.as_ref().map(|s| s.server().to_owned()),
            records,
            wake.clone(),
        ));
        let background = sender.clone().map(|sender| {
            tokio::spawn(send_in_background(
                sender,
                wake.clone(),
                stop.clone(),
                Arc::clone(&away),
            ))
        });
        Ok(MlflowTracker {
            outbox,
            options,
            sender,
            queue: Some(queue),
            writer: Some(writer),
            background,
            wake,
            stop,
            away,
            state: Mutex::default(),
        })
    }

    /// Closes the parent runs of sweeps in `dead` (local ids of sweeps whose process died)
    /// that were opened and never closed: they end `KILLED` instead of staying `RUNNING`.
    pub async fn close_dead_sweeps(&self, dead: &[i64]) {
        let closed = self.outbox.close_unclosed_sweeps(dead, self.server()).await;
        log_outbox_error(closed);
        self.wake.notify_one();
    }

    fn server(&self) -> Option<&str> {
        self.sender.as_ref().map(|s| s.server())
    }

    /// Queues a record for the writer task, which keeps the order of the reports.
    fn push(&self, kind: RecordKind, dedup_key: Option<String>, record: RunRecord) {
        let sweep_id = lock(&self.state).sweep_id;
        let queued = Queued {
            kind,
            dedup_key,
            sweep_id,
            record,
        };
        let sent = self
            .queue
            .as_ref()
            .is_some_and(|queue| queue.send(queued).is_ok());
        if !sent {
            tracing::warn!("tracking: the outbox writer has stopped; a record is lost");
        }
    }

    fn child_key(&self, trial_key: &str) -> String {
        format!("trial.{}.{trial_key}", lock(&self.state).sweep_key)
    }

    fn parent_key(&self) -> String {
        format!("sweep.{}", lock(&self.state).sweep_key)
    }

    /// Writes every queued report into the outbox, stops the background sender after a
    /// last attempt to send everything, and says what is left. Waits at most 30 s for the
    /// server (5 s when it was already found away).
    pub async fn close(mut self) -> TrackingReport {
        // Closing the queue ends the writer once it has written what was queued.
        drop(self.queue.take());
        if let Some(writer) = self.writer.take()
            && let Err(err) = writer.await
        {
            tracing::warn!(error = %err, "tracking: the outbox writer failed");
        }
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        if let Some(task) = self.background.take() {
            let budget = if lock(&self.away).is_some() {
                FLUSH_AWAY
            } else {
                FLUSH
            };
            let abort = task.abort_handle();
            let finished = tokio::time::timeout(budget, task).await;
            if finished.is_err() {
                abort.abort();
                lock(&self.away).get_or_insert_with(|| {
                    format!("the server did not take every record within {budget:?}")
                });
            }
        }
        let counts = self.outbox.counts().await;
        let mut report = TrackingReport {
            server: self.server().map(str::to_owned),
            last_error: lock(&self.away).clone(),
            ..TrackingReport::default()
        };
        if let Ok(counts) = counts {
            report.pending = counts.pending;
            report.failed = counts.failed;
        }
        if let Some(sender) = &self.sender {
            let links = self.links(sender).await;
            if let Ok((experiment, compare)) = links {
                report.experiment_url = experiment;
                report.compare_url = compare;
            }
        }
        self.outbox.close().await;
        report
    }

    async fn links(
        &self,
        sender: &Sender,
    ) -> Result<(Option<String>, Option<String>), OutboxError> {
        let client = sender.client();
        let Some(parent) = self
            .outbox
            .known_run(sender.server(), &self.parent_key())
            .await?
        else {
            return Ok((None, None));
        };
        let top = lock(&self.state).top_keys.clone();
        let mut ids = Vec::new();
        for key in top {
            if let Some(run) = self
                .outbox
                .known_run(sender.server(), &self.child_key(&key))
                .await?
            {
                ids.push(run.run_id);
            }
        }
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let compare = (ids.len() >= 2)
            .then(|| client.compare_runs_url(&parent.experiment_id, &ids))
            .or_else(|| Some(client.run_url(&parent.experiment_id, &parent.run_id)));
        Ok((Some(client.experiment_url(&parent.experiment_id)), compare))
    }

    /// Writes a file for upload under the tracking directory; `None` (with a warning) when
    /// it cannot be written.
    fn write_file(&self, name: &str, bytes: &[u8], artifact_path: &str) -> Option<ArtifactFile> {
        self.write_local(name, bytes)
            .map(|local_path| ArtifactFile {
                local_path,
                artifact_path: artifact_path.to_owned(),
            })
    }

    /// Writes a file under the tracking directory and returns its absolute path; `None`
    /// (with a warning) when it cannot be written.
    fn write_local(&self, name: &str, bytes: &[u8]) -> Option<PathBuf> {
        let dir = self.options.artifact_dir.join(&lock(&self.state).sweep_key);
        let path = dir.join(name);
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| crate::fsutil::write_atomic(&path, |w| w.write_all(bytes)));
        match written.and_then(|()| std::path::absolute(&path)) {
            Ok(local_path) => Some(local_path),
            Err(err) => {
                tracing::warn!(file = %path.display(), error = %err, "tracking: cannot write an artifact file");
                None
            }
        }
    }

    /// The MLflow logged model of the best model: its ONNX graph written beside the other
    /// tracking files, its params and the trial's metrics (the test ones measured on the
    /// test part, the cross-validated ones on the training part). `None`, with a warning,
    /// when the model cannot be exported: it is then logged as its model file only.
    fn logged_model(&self, best: &BestModel<'_>, ts: i64) -> Option<LoggedModelSpec> {
        let exported = match logged_model::export(best.model_path) {
            Ok(exported) => exported,
            Err(err) => {
                tracing::warn!(error = %err, "tracking: the best model is logged without an MLflow logged model");
                return None;
            }
        };
        let onnx = self.write_local(&format!("model-{}.onnx", best.sha256), &exported.onnx)?;
        let (context, inputs) = {
            let state = lock(&self.state);
            (state.context_tags.clone(), state.inputs.clone())
        };
        let keys = RunKeys {
            run: String::new(),
            parent: String::new(),
            experiment: String::new(),
        };
        // The same values, times and steps as on the trial's run: logged again with the
        // model's id, they stay one value each in the run's history.
        let run = trial_run(best.trial, String::new(), context, keys);
        let part = |context: &str| inputs.iter().find(|i| i.context == context);
        let metrics = run
            .metrics
            .into_iter()
            .map(|mut m| {
                let measured_on = if m.key.starts_with("test_") {
                    part("test")
                } else if m.key.starts_with("cv_") {
                    part("train")
                } else {
                    None
                };
                if let Some(dataset) = measured_on {
                    m.dataset_name = Some(dataset.name.clone());
                    m.dataset_digest = Some(dataset.digest.clone());
                }
                m
            })
            .collect();
        Some(LoggedModelSpec {
            name: exported.algorithm,
            trial_key: best.trial.key.clone(),
            sha256: best.sha256.to_owned(),
            onnx,
            inputs: exported.inputs,
            outputs: exported.outputs,
            params: run.params,
            metrics,
            created_ms: ts,
        })
    }
}

impl SweepReporter for MlflowTracker {
    fn sweep_started(&self, sweep: &SweepStarted<'_>) {
        let sweep_key = sweep_key(&self.options.experiment, sweep);
        let mut context = vec![
            Tag::new(system_tags::SOURCE_NAME, "netsec experiment run"),
            Tag::new(system_tags::SOURCE_TYPE, "LOCAL"),
            Tag::new("netsec.version", env!("CARGO_PKG_VERSION")),
            Tag::new("netsec.data_fingerprint", sweep.data_fingerprint),
            Tag::new("netsec.schema_hash", sweep.schema_hash),
            Tag::new("netsec.grid", sweep.grid_path.display().to_string()),
        ];
        let grid_dir = sweep
            .grid_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Some(commit) = git_commit(grid_dir) {
            context.push(Tag::new(system_tags::GIT_COMMIT, commit));
        }
        if let Ok(user) = std::env::var("USER") {
            context.push(Tag::new(system_tags::USER, user));
        }
        {
            let mut state = lock(&self.state);
            state.sweep_id = Some(sweep.sweep_id);
            state.sweep_key = sweep_key.clone();
            state.grid_keys = sweep.grid_keys.clone();
            state.context_tags = context.clone();
            state.metric = Some(sweep.select_metric);
            state.rung = sweep.rung;
            state.inputs = DatasetInput::sweep_parts(&SweepData {
                source: sweep.data_source,
                fingerprint: sweep.data_fingerprint,
                schema: sweep.schema,
                train_rows: sweep.train_rows,
                test_rows: sweep.test_rows,
            });
        }
        let split = sweep.split;
        let mut params = vec![
            Param::new("grid", sweep.grid_path.display().to_string()),
            Param::new("data_source", sweep.data_source),
            Param::new("select_metric", sweep.select_metric.name()),
            Param::new("cv_folds", sweep.folds.to_string()),
            Param::new("split_test_fraction", split.test_fraction.to_string()),
            Param::new("split_stratify", split.stratify.to_string()),
            Param::new("split_seed", split.seed.to_string()),
            Param::new("split_dedup", split.dedup.to_string()),
        ];
        let mut metrics = Vec::new();
        match (sweep.search_key, sweep.rung) {
            // Every rung reopens the search's one parent run, whose params are write-once:
            // what changes from rung to rung goes in metrics, one step per rung.
            (Some(_), Some(rung)) => {
                params.push(Param::new("search", "halving"));
                let ts = sweep.started_at_ms;
                let step = rung.index as i64;
                metrics
                    .push(Metric::new("rung_trials", sweep.planned.len() as f64, ts).at_step(step));
                metrics.push(Metric::new("rung_rows", rung.rows as f64, ts).at_step(step));
            }
            _ => {
                params.push(Param::new(
                    "trials_planned",
                    sweep.planned.len().to_string(),
                ));
                params.extend(sweep.rung.iter().flat_map(rung_params));
            }
        }
        if let Some(shard) = &sweep.shard {
            params.push(Param::new("shard", shard));
        }
        let mut tags = context;
        tags.push(Tag::new("netsec.sweep_key", &sweep_key));
        tags.push(Tag::new("netsec.experiment", sweep.experiment));
        let what = if sweep.search_key.is_some() {
            "halving search"
        } else {
            "sweep"
        };
        let name = match &sweep.shard {
            Some(shard) => format!("{what} {} (shard {shard})", sweep.experiment),
            None => format!("{what} {}", sweep.experiment),
        };
        let record = RunRecord {
            run_key: self.parent_key(),
            experiment: self.options.experiment.clone(),
            parent_key: None,
            name,
            start_ms: sweep.started_at_ms,
            params,
            metrics,
            tags,
            artifacts: Vec::new(),
            status: Some(RunStatus::Running),
            end_ms: None,
            inputs: Vec::new(),
            logged_model: None,
        };
        self.push(RecordKind::OpenSweep, None, record);
    }

    fn trial_finished(&self, record: &TrialRecord) {
        let (name, context, rung, inputs) = {
            let state = lock(&self.state);
            let shown = state
                .grid_keys
                .get(&record.algorithm)
                .map_or(&[][..], |k| k);
            (
                record.label(shown),
                state.context_tags.clone(),
                state.rung,
                state.inputs.clone(),
            )
        };
        let keys = RunKeys {
            run: self.child_key(&record.key),
            parent: self.parent_key(),
            experiment: self.options.experiment.clone(),
        };
        let mut run = trial_run(record, name, context, keys);
        run.params.extend(rung.iter().flat_map(rung_params));
        run.inputs = inputs;
        let dedup = run.run_key.clone();
        self.push(RecordKind::Trial, Some(dedup), run);
    }

    fn sweep_finished(&self, end: &SweepFinished<'_>) {
        let ts = end.finished_at_ms;
        lock(&self.state).top_keys = end
            .leaderboard
            .iter()
            .filter(|r| r.status == TrialStatus::Finished)
            .take(COMPARE_TOP)
            .map(|r| r.key.clone())
            .collect();
        let mut artifacts = Vec::new();
        let mut metrics = vec![
            Metric::new(
                "trials_finished",
                count(end.leaderboard, TrialStatus::Finished),
                ts,
            ),
            Metric::new(
                "trials_failed",
                count(end.leaderboard, TrialStatus::Failed),
                ts,
            ),
        ];
        artifacts.extend(self.write_file(
            "leaderboard.csv",
            leaderboard_csv(end.leaderboard).as_bytes(),
            "leaderboard.csv",
        ));
        if let Some(report) = end.validation {
            let json = serde_json::to_vec_pretty(report).unwrap_or_default();
            artifacts.extend(self.write_file(
                "data_validation.json",
                &json,
                "data_validation.json",
            ));
        }
        let mut tags = Vec::new();
        if let Some(best) = &end.best {
            let trial = best.trial;
            tags.push(Tag::new("netsec.best_trial", &trial.key));
            for (name, mean) in trial.cv.iter().map(|(k, v)| (k, v.mean)) {
                metrics.push(Metric::new(
                    format!("best_cv_{}_mean", metric_key(name)),
                    mean,
                    ts,
                ));
            }
            if let Some(test) = &trial.test {
                for (name, value) in metric_values(test) {
                    metrics.push(Metric::new(
                        format!("best_test_{}", metric_key(name)),
                        value,
                        ts,
                    ));
                }
                let names = best.class_names;
                // K > 2: the K×K matrix and a per-class table naming the classes as the
                // data writes them beside their MLflow keys.
                let multiclass = test.classes.as_ref().filter(|c| c.names.len() > 2);
                let confusion = match multiclass {
                    Some(report) => class_confusion_png(&report.names, &report.confusion),
                    None => confusion_matrix_png(&test.confusion, &names.positive, &names.negative),
                };
                let cut = trial.operating_point.map(|o| o.threshold);
                let roc = roc_curve_png(best.test_labels, best.test_scores, cut);
                let cm = self.write_file(
                    "confusion_matrix.png",
                    &confusion,
                    "plots/confusion_matrix.png",
                );
                let rc = self.write_file("roc_curve.png", &roc, "plots/roc_curve.png");
                let table = multiclass.and_then(|report| {
                    self.write_file(
                        "classes.csv",
                        class_table_csv(report).as_bytes(),
                        "classes.csv",
                    )
                });
                let mut best_files: Vec<ArtifactFile> =
                    cm.into_iter().chain(rc).chain(table).collect();
                for file in &best_files {
                    artifacts.push(ArtifactFile {
                        local_path: file.local_path.clone(),
                        artifact_path: format!("best_{}", file.artifact_path.replace('/', "_")),
                    });
                }
                match std::path::absolute(best.model_path) {
                    Ok(local_path) => best_files.push(ArtifactFile {
                        local_path,
                        artifact_path: format!("model/{}.json", best.sha256),
                    }),
                    Err(err) => {
                        tracing::warn!(error = %err, "tracking: cannot resolve the model file path")
                    }
                }
                let child = self.child_key(&trial.key);
                let logged_model = self.logged_model(best, ts).map(Box::new);
                let record = RunRecord {
                    run_key: child.clone(),
                    experiment: self.options.experiment.clone(),
                    parent_key: Some(self.parent_key()),
                    name: String::new(),
                    start_ms: ts,
                    params: Vec::new(),
                    metrics: Vec::new(),
                    tags: vec![
                        Tag::new("netsec.best", "true"),
                        Tag::new("netsec.model_sha256", best.sha256),
                    ],
                    artifacts: best_files,
                    status: None,
                    end_ms: None,
                    inputs: Vec::new(),
                    logged_model,
                };
                self.push(
                    RecordKind::Artifacts,
                    Some(artifacts_key(&child, best.sha256)),
                    record,
                );
            }
        }
        let metric = lock(&self.state).metric.unwrap_or(SelectMetric::F1);
        tags.push(Tag::new(system_tags::NOTE, note(end, metric)));
        let status = match end.status {
            SweepStatus::Finished => RunStatus::Finished,
            SweepStatus::Failed => RunStatus::Failed,
            SweepStatus::Killed | SweepStatus::Running => RunStatus::Killed,
        };
        let record = RunRecord {
            run_key: self.parent_key(),
            experiment: self.options.experiment.clone(),
            parent_key: None,
            name: String::new(),
            start_ms: ts,
            params: Vec::new(),
            metrics,
            tags,
            artifacts,
            status: Some(status),
            end_ms: Some(ts),
            inputs: Vec::new(),
            logged_model: None,
        };
        self.push(RecordKind::CloseSweep, None, record);
    }
}

/// A halving rung as run params: which rung, on how many training rows.
fn rung_params(rung: &Rung) -> [Param; 2] {
    [
        Param::new("rung", rung.index.to_string()),
        Param::new("rows", rung.rows.to_string()),
    ]
}

/// Where a child run goes.
struct RunKeys {
    run: String,
    parent: String,
    experiment: String,
}

/// The child run of one trial, complete with its outcome.
fn trial_run(record: &TrialRecord, name: String, mut tags: Vec<Tag>, keys: RunKeys) -> RunRecord {
    let ts = record.finished_at_ms;
    let mut params = vec![Param::new("algorithm", &record.algorithm)];
    for (key, value) in &record.params {
        params.push(Param::new(key, value.to_string().trim_matches('"')));
    }
    let mut metrics = Vec::new();
    for (name, stat) in &record.cv {
        let key = metric_key(name);
        metrics.push(Metric::new(format!("cv_{key}_mean"), stat.mean, ts));
        metrics.push(Metric::new(format!("cv_{key}_std"), stat.std, ts));
    }
    if let Some(test) = &record.test {
        for (name, value) in metric_values(test) {
            metrics.push(Metric::new(format!("test_{}", metric_key(name)), value, ts));
        }
        // The counts behind the rates, so that `experiment collect --from-mlflow` rebuilds
        // the same figures (the false-positive rate, each class's support).
        let c = &test.confusion;
        for (name, count) in [("tn", c.tn), ("fp", c.fp), ("fn", c.fn_), ("tp", c.tp)] {
            metrics.push(Metric::new(
                format!("test_confusion_{name}"),
                count as f64,
                ts,
            ));
        }
        if let Some(report) = &test.classes {
            for (class, scores) in report.names.iter().zip(&report.per_class) {
                metrics.push(Metric::new(
                    format!("test_{}", metric_key(&format!("class_support.{class}"))),
                    scores.support as f64,
                    ts,
                ));
            }
        }
    }
    if let Some(point) = &record.operating_point {
        operating_point_run_data(point, &mut params, &mut metrics, &mut tags, ts);
    }
    if record.status == TrialStatus::Finished {
        metrics.push(Metric::new("fit_seconds", record.fit_seconds, ts));
        metrics.push(Metric::new("predict_seconds", record.predict_seconds, ts));
    }
    if let Some(rounds) = record.n_estimators_used {
        metrics.push(Metric::new("n_estimators_used", rounds as f64, ts));
    }
    tags.push(Tag::new("netsec.trial_key", &record.key));
    tags.push(Tag::new("netsec.algorithm", &record.algorithm));
    if let Some(error) = &record.error {
        let text: String = error.chars().take(4000).collect();
        tags.push(Tag::new(system_tags::NOTE, format!("**Failed:** {text}")));
    }
    let took_ms = ((record.fit_seconds + record.predict_seconds) * 1000.0) as i64;
    RunRecord {
        run_key: keys.run,
        experiment: keys.experiment,
        parent_key: Some(keys.parent),
        name,
        start_ms: ts - took_ms,
        params,
        metrics,
        tags,
        artifacts: Vec::new(),
        status: Some(match record.status {
            TrialStatus::Finished => RunStatus::Finished,
            TrialStatus::Failed => RunStatus::Failed,
        }),
        end_ms: Some(ts),
        inputs: Vec::new(),
        logged_model: None,
    }
}

/// A trial's operating point on its run: the target as params, the cut and the rates out of
/// fold and on the held-out rows as metrics (with the counts behind them and the 95 %
/// upper bound on the held-out FPR), and the whole point as a tag that `experiment collect
/// --from-mlflow` reads back.
fn operating_point_run_data(
    point: &OperatingPoint,
    params: &mut Vec<Param>,
    metrics: &mut Vec<Metric>,
    tags: &mut Vec<Tag>,
    ts: i64,
) {
    if let Some(f) = point.target.max_fpr {
        params.push(Param::new("operating_point.max_fpr", f.to_string()));
    }
    if let Some(d) = point.target.min_detection_rate {
        params.push(Param::new(
            "operating_point.min_detection_rate",
            d.to_string(),
        ));
    }
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    metrics.push(Metric::new("op_threshold", point.threshold, ts));
    metrics.push(Metric::new("op_target_met", flag(point.target_met), ts));
    let mut rates = vec![("oof", point.out_of_fold)];
    rates.extend(point.held_out.map(|r| ("test", r)));
    for (part, r) in rates {
        metrics.push(Metric::new(format!("op_{part}_fpr"), r.fpr(), ts));
        metrics.push(Metric::new(
            format!("op_{part}_detection_rate"),
            r.detection_rate(),
            ts,
        ));
        metrics.push(Metric::new(format!("op_{part}_fp"), r.fp as f64, ts));
        metrics.push(Metric::new(
            format!("op_{part}_normal"),
            r.normal as f64,
            ts,
        ));
    }
    if let Some(held) = &point.held_out {
        metrics.push(Metric::new("op_test_fpr_upper_95", held.fpr_upper_95(), ts));
    }
    if let Some(held) = point.held() {
        metrics.push(Metric::new("op_test_target_held", flag(held), ts));
    }
    tags.push(Tag::new(
        "netsec.operating_point",
        serde_json::to_string(point).unwrap_or_default(),
    ));
}

/// Inserts queued reports into the outbox in the order they were made, waking the sender
/// after each; returns when the queue is closed and empty.
async fn write_records(
    outbox: Outbox,
    server: Option<String>,
    mut records: tokio::sync::mpsc::UnboundedReceiver<Queued>,
    wake: Arc<Notify>,
) {
    while let Some(queued) = records.recv().await {
        let pushed = outbox
            .push(&NewRecord {
                kind: queued.kind,
                dedup_key: queued.dedup_key,
                sweep_id: queued.sweep_id,
                server: server.as_deref(),
                record: &queued.record,
            })
            .await;
        log_outbox_error(pushed);
        wake.notify_one();
    }
}

/// Tracking never stops a sweep: an outbox that cannot be written is logged.
fn log_outbox_error<T>(result: Result<T, OutboxError>) {
    if let Err(err) = result {
        tracing::warn!(error = %err, "tracking: cannot write to the outbox; the sweep goes on");
    }
}

/// Sends the outbox while the sweep runs: after every wake-up, and again after a pause
/// when the server was away; returns after one last pass once `stop` is set.
async fn send_in_background(
    sender: Sender,
    wake: Arc<Notify>,
    stop: Arc<AtomicBool>,
    away: Arc<Mutex<Option<String>>>,
) {
    let mut pause = Duration::from_secs(1);
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let lock_file = match sender.try_lock() {
            Ok(Some(file)) => Some(file),
            Ok(None) => {
                tracing::info!("tracking: another netsec process is sending the outbox");
                None
            }
            Err(err) => {
                tracing::warn!(error = %err, "tracking: cannot take the outbox lock");
                None
            }
        };
        let mut wait = Duration::from_secs(2);
        if lock_file.is_some() {
            match sender.drain().await {
                Ok(report) => match report.stopped {
                    Some(err) => {
                        let first = lock(&away).is_none();
                        *lock(&away) = Some(err.to_string());
                        if first {
                            tracing::warn!(error = %err, "tracking: server unreachable; records wait in the outbox");
                        }
                        wait = pause;
                        pause = (pause * 2).min(Duration::from_secs(30));
                    }
                    None => {
                        *lock(&away) = None;
                        pause = Duration::from_secs(1);
                    }
                },
                Err(err) => {
                    tracing::warn!(error = %err, "tracking: cannot read the outbox");
                    *lock(&away) = Some(err.to_string());
                }
            }
        }
        drop(lock_file);
        if stopping {
            return;
        }
        let _ = tokio::time::timeout(wait, wake.notified()).await;
    }
}

/// A stable key of the sweep: the tracking experiment, the planned trials and the shard.
/// The same grid on the same data gives the same key, so a resumed sweep finds its runs.
/// The rungs of a halving search share the search's key instead of their planned
/// trials, so all of them (and every resumed or rung-by-rung run of them) log under one
/// parent run per shard.
fn sweep_key(experiment: &str, sweep: &SweepStarted<'_>) -> String {
    let input = match sweep.search_key {
        Some(search) => serde_json::json!({
            "experiment": experiment,
            "search": search,
            "shard": sweep.shard,
        }),
        None => {
            let mut planned: Vec<&String> = sweep.planned.iter().collect();
            planned.sort();
            serde_json::json!({
                "experiment": experiment,
                "planned": planned,
                "shard": sweep.shard,
            })
        }
    };
    hex(&Sha256::digest(input.to_string()))[..20].to_owned()
}

/// The commit checked out in `dir`, if it is inside a git work tree.
fn git_commit(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let commit = text.trim();
    (out.status.success() && commit.len() >= 7).then(|| commit.to_owned())
}

fn count(records: &[TrialRecord], status: TrialStatus) -> f64 {
    records.iter().filter(|r| r.status == status).count() as f64
}

/// The best model's held-out figures per class as CSV: the class as the data writes it,
/// the name its metrics carry in MLflow, precision, recall, F1 and support.
fn class_table_csv(report: &crate::models::metrics::ClassReport) -> String {
    let mut out = String::from("class,mlflow_name,precision,recall,f1,support\n");
    for (name, s) in report.names.iter().zip(&report.per_class) {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{}",
            csv_field(name),
            csv_field(&super::keys::encode_class(name)),
            s.precision,
            s.recall,
            s.f1,
            s.support
        );
    }
    out
}

/// The leaderboard as CSV: rank, key, algorithm, params (JSON), status, CV means and
/// standard deviations, test metrics, timings, error.
fn leaderboard_csv(records: &[TrialRecord]) -> String {
    let mut out = String::from("rank,trial_key,algorithm,params,status");
    for name in METRIC_NAMES {
        let _ = write!(out, ",cv_{name}_mean,cv_{name}_std");
    }
    for name in METRIC_NAMES {
        let _ = write!(out, ",test_{name}");
    }
    out.push_str(",fit_seconds,predict_seconds,error\n");
    for (i, r) in records.iter().enumerate() {
        let params = serde_json::to_string(&r.params).unwrap_or_default();
        let _ = write!(
            out,
            "{},{},{},{},{}",
            i + 1,
            r.key,
            r.algorithm,
            csv_field(&params),
            r.status.as_str()
        );
        for name in METRIC_NAMES {
            match r.cv.get(name) {
                Some(s) => {
                    let _ = write!(out, ",{},{}", s.mean, s.std);
                }
                None => out.push_str(",,"),
            }
        }
        let test = r.test.as_ref().map(metric_values);
        for name in METRIC_NAMES {
            match test.as_ref().and_then(|t| t.get(name)) {
                Some(v) => {
                    let _ = write!(out, ",{v}");
                }
                None => out.push(','),
            }
        }
        let _ = writeln!(
            out,
            ",{},{},{}",
            r.fit_seconds,
            r.predict_seconds,
            csv_field(r.error.as_deref().unwrap_or(""))
        );
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The parent run's description: outcome and the top of the leaderboard, in markdown.
fn note(end: &SweepFinished<'_>, metric: SelectMetric) -> String {
    let mut out = String::new();
    let outcome = match end.status {
        SweepStatus::Finished => "finished",
        SweepStatus::Failed => "failed: every trial failed",
        SweepStatus::Killed | SweepStatus::Running => "interrupted (resume with the same command)",
    };
    let _ = writeln!(
        out,
        "**netsec sweep** {outcome}. {} trials with results, best first \
         (ranked on cross-validation; test scored once).\n",
        end.leaderboard.len()
    );
    let m = metric.name();
    let _ = writeln!(
        out,
        "| # | algorithm | params | cv {m} | ± | test {m} | fit s | trial |"
    );
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for (i, r) in end.leaderboard.iter().take(NOTE_ROWS).enumerate() {
        let score = r.cv.get(m).map(|s| (s.mean, s.std));
        let test = r
            .test
            .as_ref()
            .and_then(|t| metric_values(t).get(m).copied());
        let params: Vec<String> = r
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"')))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.2} | `{}` |",
            i + 1,
            r.algorithm,
            params.join(" "),
            score.map_or("-".into(), |v| format!("{:.4}", v.0)),
            score.map_or("-".into(), |v| format!("{:.4}", v.1)),
            test.map_or("-".into(), |v| format!("{v:.4}")),
            r.fit_seconds,
            &r.key[..r.key.len().min(10)]
        );
    }
    if end.leaderboard.len() > NOTE_ROWS {
        let _ = writeln!(
            out,
            "\n…and {} more (see `leaderboard.csv`).",
            end.leaderboard.len() - NOTE_ROWS
        );
    }
    if let Some(best) = &end.best {
        let _ = writeln!(
            out,
            "\nBest model: `{}` (sha256 `{}`), artifacts on its child run.",
            best.trial.label(&[]),
            &best.sha256[..best.sha256.len().min(16)]
        );
    }
    out
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ParamValue;
    use crate::models::metrics::MeanStd;

    fn record(status: TrialStatus) -> TrialRecord {
        TrialRecord {
            key: "k1".into(),
            experiment: "e".into(),
            algorithm: "decision_tree".into(),
            params: [("max_depth".to_owned(), ParamValue::Int(4))].into(),
            status,
            cv: [(
                "f1".to_owned(),
                MeanStd {
                    mean: 0.9,
                    std: 0.01,
                },
            )]
            .into(),
            test: None,
            fit_seconds: 1.5,
            predict_seconds: 0.5,
            error: (status == TrialStatus::Failed).then(|| "diverged".to_owned()),
            data_fingerprint: "fp".into(),
            finished_at_ms: 10_000,
            operating_point: None,
            n_estimators_used: None,
        }
    }

    fn keys() -> RunKeys {
        RunKeys {
            run: "trial.s.k1".into(),
            parent: "sweep.s".into(),
            experiment: "e".into(),
        }
    }

    #[test]
    fn a_finished_trial_becomes_a_finished_child_run() {
        let run = trial_run(
            &record(TrialStatus::Finished),
            "dt".into(),
            Vec::new(),
            keys(),
        );
        assert_eq!(run.status, Some(RunStatus::Finished));
        assert_eq!(run.parent_key.as_deref(), Some("sweep.s"));
        assert_eq!((run.start_ms, run.end_ms), (8_000, Some(10_000)));
        assert!(run.params.contains(&Param::new("max_depth", "4")));
        let names: Vec<&str> = run.metrics.iter().map(|m| m.key.as_str()).collect();
        for name in ["cv_f1_mean", "cv_f1_std", "fit_seconds", "predict_seconds"] {
            assert!(names.contains(&name), "{names:?}");
        }
    }

    #[test]
    fn a_failed_trial_becomes_a_failed_run_with_its_error() {
        let run = trial_run(
            &record(TrialStatus::Failed),
            "dt".into(),
            Vec::new(),
            keys(),
        );
        assert_eq!(run.status, Some(RunStatus::Failed));
        let note = run
            .tags
            .iter()
            .find(|t| t.key == system_tags::NOTE)
            .unwrap();
        assert!(note.value.contains("diverged"));
    }

    #[test]
    fn leaderboard_csv_has_a_row_per_trial() {
        let csv = leaderboard_csv(&[record(TrialStatus::Finished), record(TrialStatus::Failed)]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].starts_with("1,k1,decision_tree,\"{\"\"max_depth\"\":4}\",finished,"),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains(",0.9,0.01,"), "{}", lines[1]);
        assert!(lines[2].ends_with(",diverged"));
    }
}
