//! Sending the outbox to an MLflow server, exactly once.
//!
//! Every record is safe to send again: runs are found by their idempotency key before one
//! is created (and remembered locally once created), params are write-once with the same
//! value, tags are overwritten, metrics with the same key, value, timestamp and step are
//! stored once, artifact uploads are PUTs of the same bytes, statuses are set, not
//! toggled, logged models are found by tag before one is created (see
//! [`super::logged_model`]), and registry records find their model version by tag before
//! creating one (see [`super::mirror`]). So a record whose answer was lost (a crash, a timeout, a killed
//! `netsec sync`) is simply sent again, and only a record the server accepted completely is
//! marked sent.

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;

use super::batch::LogBatch;
use super::client::{MlflowClient, RunSpec};
use super::error::TrackingError;
use super::error::registry_unavailable;
use super::features::{Feature, endpoint_missing};
use super::outbox::{Entry, KnownRun, Outbox, OutboxError, Record, RecordKind, RunRecord};
use super::record::{Mirrored, RegistryRecord, SHA256_TAG, VERSION_TAG};
use super::registry::VersionSource;
use super::types::{ModelVersion, RunInfo, RunStatus, Tag};
use crate::shared::guard::Guard;

/// Child-run records sent at once; the server (SQLite, one worker) gains nothing beyond ~8.
const CONCURRENCY: usize = 8;

/// What one pass over the outbox did.
#[derive(Debug, Default)]
pub struct DrainReport {
    /// Records accepted by the server.
    pub sent: usize,
    /// Records the server refused (kept as `failed` in the outbox).
    pub failed: usize,
    /// Registry records set aside because the server has no model registry (kept as
    /// `skipped`).
    pub skipped: usize,
    /// Why the pass stopped early with records still pending: the server is unreachable,
    /// overloaded or refuses the credentials.
    pub stopped: Option<TrackingError>,
}

/// Why one record did not go through.
pub(super) enum Failure {
    /// The server's answer (or its absence).
    Server(TrackingError),
    /// The local outbox.
    Local(OutboxError),
}

impl From<TrackingError> for Failure {
    fn from(e: TrackingError) -> Self {
        Failure::Server(e)
    }
}

impl From<OutboxError> for Failure {
    fn from(e: OutboxError) -> Self {
        Failure::Local(e)
    }
}

/// Whether an error says "not now" (try the same record later) rather than "never".
pub fn server_away(err: &TrackingError) -> bool {
    match err.root() {
        TrackingError::Transport { .. } => true,
        TrackingError::Api { status, .. } => {
            matches!(*status, 401 | 403 | 408 | 429) || *status >= 500
        }
        _ => false,
    }
}

/// Sends outbox records to one server.
#[derive(Debug, Clone)]
pub struct Sender {
    client: MlflowClient,
    outbox: Outbox,
    lock_path: PathBuf,
    experiments: Arc<Mutex<HashMap<String, String>>>,
}

impl Sender {
    /// A sender from `outbox` (in the database at `db_path`) to the server of `client`.
    pub fn new(client: MlflowClient, outbox: Outbox, db_path: &Path) -> Sender {
        let mut lock_path = db_path.as_os_str().to_owned();
        lock_path.push(".tracking-lock");
        Sender {
            client,
            outbox,
            lock_path: PathBuf::from(lock_path),
            experiments: Arc::default(),
        }
    }

    /// The client in use.
    pub fn client(&self) -> &MlflowClient {
        &self.client
    }

    /// The server's base URL (the key of remembered runs).
    pub fn server(&self) -> &str {
        &self.client.config().base_url
    }

    /// The id of an experiment this sender has used, by name.
    pub fn experiment_id(&self, name: &str) -> Option<String> {
        self.experiments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The experiments this sender has used: name and id.
    pub fn experiments(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .experiments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort();
        all
    }

    /// Waits for the lock that keeps two processes from sending the same outbox at once.
    pub fn lock(&self) -> std::io::Result<File> {
        let file = self.lock_file()?;
        file.lock()?;
        Ok(file)
    }

    fn lock_file(&self) -> std::io::Result<File> {
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
    }

    /// Takes the lock that keeps two processes from sending the same outbox at once;
    /// `None` when another process holds it.
    pub fn try_lock(&self) -> std::io::Result<Option<File>> {
        let file = self.lock_file()?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Sends the records `ids` that are still pending, in order, and no others; stops when
    /// the server goes away.
    pub async fn send_records(&self, ids: &[i64]) -> Result<DrainReport, OutboxError> {
        let mut report = DrainReport::default();
        for entry in self.outbox.pending_of(ids).await? {
            let result = self.send(&entry).await;
            self.settle(entry.id, result, &mut report).await?;
            if report.stopped.is_some() {
                break;
            }
        }
        Ok(report)
    }

    /// Sends pending records in order until none is left or the server goes away. Child-run
    /// records are sent several at a time; every other record waits for all before it.
    pub async fn drain(&self) -> Result<DrainReport, OutboxError> {
        let mut report = DrainReport::default();
        loop {
            let batch = self.outbox.pending(256).await?;
            if batch.is_empty() {
                return Ok(report);
            }
            let mut in_flight: JoinSet<(i64, Result<(), Failure>)> = JoinSet::new();
            for entry in batch {
                if entry.kind != RecordKind::Trial {
                    self.settle_all(&mut in_flight, &mut report).await?;
                    if report.stopped.is_some() {
                        return Ok(report);
                    }
                    let result = self.send(&entry).await;
                    self.settle(entry.id, result, &mut report).await?;
                } else {
                    while in_flight.len() >= CONCURRENCY {
                        if let Some(Ok((id, result))) = in_flight.join_next().await {
                            self.settle(id, result, &mut report).await?;
                        }
                    }
                    let me = self.clone();
                    in_flight.spawn(async move {
                        let result = me.send(&entry).await;
                        (entry.id, result)
                    });
                }
                if report.stopped.is_some() {
                    self.settle_all(&mut in_flight, &mut report).await?;
                    return Ok(report);
                }
            }
            self.settle_all(&mut in_flight, &mut report).await?;
            if report.stopped.is_some() {
                return Ok(report);
            }
        }
    }

    async fn settle_all(
        &self,
        in_flight: &mut JoinSet<(i64, Result<(), Failure>)>,
        report: &mut DrainReport,
    ) -> Result<(), OutboxError> {
        while let Some(joined) = in_flight.join_next().await {
            if let Ok((id, result)) = joined {
                self.settle(id, result, report).await?;
            }
        }
        Ok(())
    }

    async fn settle(
        &self,
        id: i64,
        result: Result<(), Failure>,
        report: &mut DrainReport,
    ) -> Result<(), OutboxError> {
        match result {
            Ok(()) => {
                self.outbox.mark_sent(id).await?;
                report.sent += 1;
            }
            Err(Failure::Local(e)) => return Err(e),
            Err(Failure::Server(e)) if registry_unavailable(&e) => {
                tracing::debug!(
                    record = id,
                    "{e}: the registry record is set aside in the outbox"
                );
                self.outbox.mark_skipped(id, &e.to_string()).await?;
                report.skipped += 1;
            }
            Err(Failure::Server(e)) if server_away(&e) => {
                self.outbox.note_error(id, &e.to_string()).await?;
                report.stopped.get_or_insert(e);
            }
            Err(Failure::Server(e)) => {
                tracing::warn!(record = id, error = %e, "the tracking server refused a record; kept as failed in the outbox");
                self.outbox.mark_failed(id, &e.to_string()).await?;
                report.failed += 1;
            }
        }
        Ok(())
    }

    /// Sends one record completely (see the module docs for why repeating it is safe).
    async fn send(&self, entry: &Entry) -> Result<(), Failure> {
        self.outbox.mark_attempt(entry.id).await?;
        // Only a test's twin marks a record sent before the server has it (see
        // `Guard::SentAfterAck`): a sender that dies now loses it.
        if Guard::SentAfterAck.disabled() {
            self.outbox.mark_sent(entry.id).await?;
        }
        let record = match &entry.record {
            Record::Run(record) => record,
            Record::Registry(record) => {
                let done = self.send_registry(record).await?;
                tracing::info!(
                    "mlflow registry: {} version {} ({}){}",
                    record.model,
                    done.version,
                    if done.created {
                        "registered now"
                    } else {
                        "registered before"
                    },
                    if done.moved {
                        format!(" is `{}`", record.alias)
                    } else {
                        format!(", `{}` left alone: a later move was mirrored", record.alias)
                    }
                );
                return Ok(());
            }
        };
        let experiment_id = self.experiment(&record.experiment).await?;
        let run = match entry.kind {
            RecordKind::Artifacts => self.find(&record.run_key, &experiment_id).await?,
            _ => self.find_or_create(record, &experiment_id).await?,
        };
        let batch = LogBatch {
            params: record.params.clone(),
            metrics: record.metrics.clone(),
            tags: record.tags.clone(),
        };
        if !batch.is_empty() {
            self.client.log_batch(&run.run_id, batch).await?;
        }
        if !record.inputs.is_empty() {
            match self.client.log_inputs(&run.run_id, &record.inputs).await {
                Err(err) if endpoint_missing(&err) => Feature::DatasetInputs.warn_missing(&err),
                done => done?,
            }
        }
        if !record.artifacts.is_empty() {
            let info = RunInfo {
                run_id: run.run_id.clone(),
                run_name: record.name.clone(),
                experiment_id: run.experiment_id.clone(),
                status: RunStatus::Running,
                start_time: None,
                end_time: None,
                artifact_uri: run.artifact_uri.clone(),
                lifecycle_stage: String::new(),
            };
            for file in &record.artifacts {
                self.client
                    .upload_file(&info, &file.local_path, &file.artifact_path)
                    .await?;
            }
        }
        if let Some(spec) = &record.logged_model {
            self.send_logged_model(&run, spec).await?;
        }
        if let Some(status) = record.status {
            let end = (status != RunStatus::Running)
                .then_some(record.end_ms)
                .flatten();
            self.client.update_run(&run.run_id, status, end).await?;
        }
        Ok(())
    }

    /// The experiment's id, created (or restored, with a warning) on first use.
    pub(super) async fn experiment(&self, name: &str) -> Result<String, TrackingError> {
        if let Some(id) = self.experiment_id(name) {
            return Ok(id);
        }
        let handle = self.client.get_or_create_experiment(name).await?;
        if handle.restored {
            tracing::warn!(
                experiment = name,
                "the MLflow experiment had been deleted; restored it to log this sweep"
            );
        }
        let id = handle.experiment.experiment_id;
        self.experiments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), id.clone());
        Ok(id)
    }

    /// A run that must exist already: remembered, or found on the server by its key.
    pub(super) async fn find(
        &self,
        run_key: &str,
        experiment_id: &str,
    ) -> Result<KnownRun, Failure> {
        if let Some(run) = self.outbox.known_run(self.server(), run_key).await? {
            return Ok(run);
        }
        match self.client.find_run_by_key(experiment_id, run_key).await? {
            Some(run) => {
                let known = known(&run.info);
                self.outbox
                    .remember_run(self.server(), run_key, &known)
                    .await?;
                Ok(known)
            }
            None => Err(Failure::Server(TrackingError::Invalid(format!(
                "run {run_key} is not on the server (its record was not sent)"
            )))),
        }
    }

    async fn find_or_create(
        &self,
        record: &RunRecord,
        experiment_id: &str,
    ) -> Result<KnownRun, Failure> {
        if let Some(run) = self
            .outbox
            .known_run(self.server(), &record.run_key)
            .await?
        {
            return Ok(run);
        }
        let mut spec = RunSpec::new(experiment_id, &record.name)
            .start_time_ms(record.start_ms)
            .idempotency_key(&record.run_key);
        if let Some(parent) = &record.parent_key {
            spec = spec.parent(self.find(parent, experiment_id).await?.run_id);
        }
        let run = self.client.create_run(&spec).await?;
        let known = known(&run.info);
        self.outbox
            .remember_run(self.server(), &record.run_key, &known)
            .await?;
        Ok(known)
    }
}

fn known(info: &RunInfo) -> KnownRun {
    KnownRun {
        experiment_id: info.experiment_id.clone(),
        run_id: info.run_id.clone(),
        artifact_uri: info.artifact_uri.clone(),
    }
}

impl Sender {
    /// Mirrors one alias move (see [`super::mirror`] for why repeating it is safe).
    async fn send_registry(&self, r: &RegistryRecord) -> Result<Mirrored, Failure> {
        let client = self.client();
        // First call: a server without a registry says so before anything else is done.
        client.create_registered_model(&r.model).await?;
        // The first lookup of the version; `create_model_version_once` repeats it before
        // each attempt. Both are the `registry-once` guard.
        let existing = if Guard::RegistryOnce.disabled() {
            Vec::new()
        } else {
            client
                .find_model_versions_by_tag(&r.model, SHA256_TAG, &r.sha256)
                .await?
        };
        let (version, created) = match existing.into_iter().min_by_key(version_number) {
            Some(v) => (v.version, false),
            None => {
                let experiment_id = self.experiment(&r.experiment).await?;
                let run = self.find(&r.run_key, &experiment_id).await?;
                // The logged model of this very file, when the sweep made one (its best
                // model's); else the file among the run's artifacts.
                let logged = self.logged_model_of(&run, &r.sha256).await?;
                let uri = match &logged {
                    Some(model) => model.uri(),
                    None => format!("runs:/{}/{}", run.run_id, r.artifact_path),
                };
                let source = VersionSource {
                    uri: &uri,
                    run_id: &run.run_id,
                    model_id: logged.as_ref().map(|m| m.info.model_id.as_str()),
                };
                let tags = [
                    Tag::new(SHA256_TAG, &r.sha256),
                    Tag::new(VERSION_TAG, r.version.to_string()),
                ];
                let v = client
                    .create_model_version_once(&r.model, (SHA256_TAG, &r.sha256), &source, &tags)
                    .await?;
                (v.version, true)
            }
        };
        let tag = r.moved_at_tag();
        let last_move = client
            .get_registered_model(&r.model)
            .await?
            .tags
            .into_iter()
            .find(|t| t.key == tag)
            .and_then(|t| t.value.parse::<i64>().ok());
        let moved = last_move.is_none_or(|at| at <= r.moved_at_ms);
        if moved {
            client.set_alias(&r.model, &r.alias, &version).await?;
            client
                .set_registered_model_tag(&r.model, &tag, &r.moved_at_ms.to_string())
                .await?;
        }
        Ok(Mirrored {
            version,
            created,
            moved,
        })
    }
}

fn version_number(v: &ModelVersion) -> u64 {
    v.version.parse().unwrap_or(u64::MAX)
}
