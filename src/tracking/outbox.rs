//! The durable outbox: every record meant for the tracking server is written here first and
//! sent from here, by the sweep's background sender or later by `netsec sync`.
//!
//! It is a table in the state directory's SQLite database (beside the run store) rather
//! than an append-only file because sending needs more than appending: a record is marked
//! `sent` only after the server accepted it, repeated records (a resumed sweep reporting its
//! reused trials again) are dropped by a unique key in the same transaction, and the ids of
//! runs already created are remembered — all atomically, and safely shared between a
//! running sweep and a concurrent `netsec sync`. A file would need its own acknowledgement
//! log, compaction and torn-write handling to do the same.
//!
//! Records hold names, values and local file paths, never a credential: the server is
//! stored as its base URL, from which [`TrackingConfig`](super::TrackingConfig) has
//! already removed any user name and password.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqlitePool;

use super::inputs::DatasetInput;
use super::logged_model::LoggedModelSpec;
use super::record::RegistryRecord;
use super::types::{Metric, Param, RunStatus, Tag};
use crate::shared::now_ms;

/// The outbox cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The database could not be opened or migrated.
    #[error("cannot open the tracking outbox in {}", path.display())]
    Open {
        /// Database file.
        path: PathBuf,
        /// The cause.
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("tracking outbox query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored record that does not decode.
    #[error("tracking outbox record {id} is unreadable")]
    Corrupt {
        /// Record id.
        id: i64,
        /// The cause.
        source: serde_json::Error,
    },
}

impl OutboxError {
    /// The process exit code: a runtime failure (the database).
    pub fn exit_code(&self) -> u8 {
        match self {
            OutboxError::Open { .. } => crate::exit::RUNTIME_FAILURE,
            OutboxError::Query(_) => crate::exit::RUNTIME_FAILURE,
            OutboxError::Corrupt { .. } => crate::exit::RUNTIME_FAILURE,
        }
    }
}

/// What an outbox record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Creates (or reopens) a sweep's parent run.
    OpenSweep,
    /// Logs a sweep's summary and ends its parent run.
    CloseSweep,
    /// Creates one trial's child run, complete with its outcome.
    Trial,
    /// Adds files (and tags) to a run that exists already.
    Artifacts,
    /// Mirrors an alias move of the local registry into MLflow's model registry.
    Registry,
}

impl RecordKind {
    fn as_str(self) -> &'static str {
        match self {
            RecordKind::OpenSweep => "open_sweep",
            RecordKind::CloseSweep => "close_sweep",
            RecordKind::Trial => "trial",
            RecordKind::Artifacts => "artifacts",
            RecordKind::Registry => "registry",
        }
    }

    fn parse(text: &str) -> RecordKind {
        match text {
            "open_sweep" => RecordKind::OpenSweep,
            "close_sweep" => RecordKind::CloseSweep,
            "trial" => RecordKind::Trial,
            "registry" => RecordKind::Registry,
            _ => RecordKind::Artifacts,
        }
    }
}

/// A local file to upload as a run artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactFile {
    /// The file on disk (absolute, so `netsec sync` finds it from any directory).
    pub local_path: PathBuf,
    /// Where it goes under the run's artifacts, e.g. `model/<sha256>.json`.
    pub artifact_path: String,
}

/// Everything to do to one MLflow run, in an order that is safe to repeat: find or create
/// the run (by `run_key`), log params, metrics and tags, upload files, set the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Idempotency key of the run (ASCII letters, digits, `-_.:`).
    pub run_key: String,
    /// Experiment name.
    pub experiment: String,
    /// Idempotency key of the parent run, for child runs.
    #[serde(default)]
    pub parent_key: Option<String>,
    /// Display name, used when the run is created.
    pub name: String,
    /// Start time (Unix ms), used when the run is created.
    pub start_ms: i64,
    /// Params (write-once on the server; repeating the same value is harmless).
    #[serde(default)]
    pub params: Vec<Param>,
    /// Metrics.
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Files to upload.
    #[serde(default)]
    pub artifacts: Vec<ArtifactFile>,
    /// Status to set last (`RUNNING` reopens a run).
    #[serde(default)]
    pub status: Option<RunStatus>,
    /// End time to set with a terminal status.
    #[serde(default)]
    pub end_ms: Option<i64>,
    /// Data sets the run used, logged as MLflow dataset inputs (absent in older records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<DatasetInput>,
    /// The MLflow logged model to make of the model file among `artifacts`, after they
    /// are uploaded (the best trial's; absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_model: Option<Box<LoggedModelSpec>>,
}

/// A record to add.
#[derive(Debug, Clone)]
pub struct NewRecord<'a> {
    /// What it does.
    pub kind: RecordKind,
    /// When set, a second record with the same key is dropped.
    pub dedup_key: Option<String>,
    /// The local sweep that wrote it.
    pub sweep_id: Option<i64>,
    /// The server configured when it was written.
    pub server: Option<&'a str>,
    /// The record.
    pub record: &'a RunRecord,
}

/// What a stored record holds, by its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Everything to do to one run (every kind but [`RecordKind::Registry`]).
    Run(RunRecord),
    /// An alias move to mirror ([`RecordKind::Registry`]).
    Registry(RegistryRecord),
}

/// A stored record waiting to be sent.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Record id (sending order).
    pub id: i64,
    /// What it does.
    pub kind: RecordKind,
    /// The record.
    pub record: Record,
}

/// The MLflow run of a trial, as the outbox knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialRun {
    /// Idempotency key of the trial's child run.
    pub run_key: String,
    /// Tracking experiment name.
    pub experiment: String,
    /// The server configured when the sweep ran, if any.
    pub server: Option<String>,
}

/// A run created on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownRun {
    /// Its experiment.
    pub experiment_id: String,
    /// Its id.
    pub run_id: String,
    /// Its artifact root URI.
    pub artifact_uri: String,
}

/// How many records are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Waiting to be sent.
    pub pending: i64,
    /// Sent and accepted.
    pub sent: i64,
    /// Refused by the server (see `netsec sync --retry-failed`).
    pub failed: i64,
    /// Registry records set aside because the server has no model registry.
    pub skipped: i64,
}

/// The outbox in the state directory's database.
#[derive(Debug, Clone)]
pub struct Outbox {
    pool: SqlitePool,
}

impl Outbox {
    /// Opens (creating and migrating if needed) the outbox in the database at `path`.
    pub async fn open(path: &Path) -> Result<Outbox, OutboxError> {
        let open_error = |source| OutboxError::Open {
            path: path.to_owned(),
            source,
        };
        let pool = crate::db::open(path).await.map_err(open_error)?;
        Ok(Outbox { pool })
    }

    /// Adds a record; returns `false` when a record with the same dedup key exists.
    pub async fn push(&self, new: &NewRecord<'_>) -> Result<bool, OutboxError> {
        let payload = serde_json::to_string(new.record)
            .map_err(|source| OutboxError::Corrupt { id: 0, source })?;
        self.insert(
            new.kind,
            new.dedup_key.as_deref(),
            new.sweep_id,
            new.server,
            payload,
        )
        .await
        .map(|id| id.is_some())
    }

    /// Adds a registry record (dropped when one with the same `dedup_key` exists); returns
    /// its id, or `None` when it was dropped.
    pub async fn push_registry(
        &self,
        dedup_key: Option<&str>,
        server: Option<&str>,
        record: &RegistryRecord,
    ) -> Result<Option<i64>, OutboxError> {
        let payload = serde_json::to_string(record)
            .map_err(|source| OutboxError::Corrupt { id: 0, source })?;
        self.insert(RecordKind::Registry, dedup_key, None, server, payload)
            .await
    }

    async fn insert(
        &self,
        kind: RecordKind,
        dedup_key: Option<&str>,
        sweep_id: Option<i64>,
        server: Option<&str>,
        payload: String,
    ) -> Result<Option<i64>, OutboxError> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO tracking_outbox \
             (dedup_key, sweep_id, kind, server, payload, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(dedup_key)
        .bind(sweep_id)
        .bind(kind.as_str())
        .bind(server)
        .bind(payload)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() > 0).then(|| done.last_insert_rowid()))
    }

    /// Up to `limit` pending records, oldest first.
    pub async fn pending(&self, limit: i64) -> Result<Vec<Entry>, OutboxError> {
        let rows = sqlx::query(
            "SELECT id, kind, payload FROM tracking_outbox WHERE state = 'pending' \
             ORDER BY id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry).collect()
    }

    /// The pending records among `ids`, in sending order.
    pub async fn pending_of(&self, ids: &[i64]) -> Result<Vec<Entry>, OutboxError> {
        let mut entries = Vec::new();
        for &id in ids {
            let row = sqlx::query(
                "SELECT id, kind, payload FROM tracking_outbox WHERE id = ? AND state = 'pending'",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                entries.push(entry(&row)?);
            }
        }
        entries.sort_by_key(|e| e.id);
        Ok(entries)
    }

    /// The id and state (`pending`, `sent`, `failed`, `skipped`) of the record with
    /// `dedup_key`, if there is one.
    pub async fn find_key(&self, dedup_key: &str) -> Result<Option<(i64, String)>, OutboxError> {
        let row = sqlx::query("SELECT id, state FROM tracking_outbox WHERE dedup_key = ?")
            .bind(dedup_key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (r.get("id"), r.get("state"))))
    }

    /// The state of record `id` and the error of its last attempt, if it exists.
    pub async fn state(&self, id: i64) -> Result<Option<(String, Option<String>)>, OutboxError> {
        let row = sqlx::query("SELECT state, last_error FROM tracking_outbox WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (r.get("state"), r.get("last_error"))))
    }

    /// The MLflow run of trial `trial_key`: its child run in the sweep `sweep_id` when that
    /// sweep reported it, else in the newest sweep that did; `None` when no tracked sweep
    /// ran the trial.
    pub async fn trial_run(
        &self,
        trial_key: &str,
        sweep_id: Option<i64>,
    ) -> Result<Option<TrialRun>, OutboxError> {
        // Child-run keys end with the trial key (`trial.<sweep key>.<trial key>`), and a
        // trial's record is written once per sweep plan (its key is the dedup key).
        let row = sqlx::query(
            "SELECT id, payload, server FROM tracking_outbox WHERE kind = 'trial' \
             AND dedup_key LIKE 'trial.%' AND substr(dedup_key, -length(?)) = ? \
             ORDER BY (sweep_id IS ?) DESC, id DESC LIMIT 1",
        )
        .bind(trial_key)
        .bind(trial_key)
        .bind(sweep_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.get("id");
        let payload: String = row.get("payload");
        let record: RunRecord =
            serde_json::from_str(&payload).map_err(|source| OutboxError::Corrupt { id, source })?;
        Ok(Some(TrialRun {
            run_key: record.run_key,
            experiment: record.experiment,
            server: row.get("server"),
        }))
    }

    /// Counts an attempt to send a record (before it is made).
    pub async fn mark_attempt(&self, id: i64) -> Result<(), OutboxError> {
        sqlx::query("UPDATE tracking_outbox SET attempts = attempts + 1 WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a record as accepted by the server.
    pub async fn mark_sent(&self, id: i64) -> Result<(), OutboxError> {
        sqlx::query(
            "UPDATE tracking_outbox SET state = 'sent', sent_at_ms = ?, last_error = NULL \
             WHERE id = ?",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets a registry record aside: the server has no model registry. `netsec sync
    /// --retry-failed` queues it again (e.g. for another server).
    pub async fn mark_skipped(&self, id: i64, error: &str) -> Result<(), OutboxError> {
        sqlx::query("UPDATE tracking_outbox SET state = 'skipped', last_error = ? WHERE id = ?")
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a record the server refused; it is not sent again unless reset.
    pub async fn mark_failed(&self, id: i64, error: &str) -> Result<(), OutboxError> {
        sqlx::query("UPDATE tracking_outbox SET state = 'failed', last_error = ? WHERE id = ?")
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Notes why the last attempt of a still pending record did not go through.
    pub async fn note_error(&self, id: i64, error: &str) -> Result<(), OutboxError> {
        sqlx::query("UPDATE tracking_outbox SET last_error = ? WHERE id = ?")
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Puts failed (and skipped) records back in the queue; returns how many.
    pub async fn retry_failed(&self) -> Result<u64, OutboxError> {
        let done = sqlx::query(
            "UPDATE tracking_outbox SET state = 'pending' WHERE state IN ('failed', 'skipped')",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Records per state.
    pub async fn counts(&self) -> Result<OutboxCounts, OutboxError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM tracking_outbox GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut counts = OutboxCounts::default();
        for row in rows {
            let n: i64 = row.get("n");
            match row.get::<String, _>("state").as_str() {
                "pending" => counts.pending = n,
                "sent" => counts.sent = n,
                "skipped" => counts.skipped = n,
                _ => counts.failed = n,
            }
        }
        Ok(counts)
    }

    /// The most recent failure message of each failed record (up to `limit`).
    pub async fn failures(&self, limit: i64) -> Result<Vec<(i64, String)>, OutboxError> {
        let rows = sqlx::query(
            "SELECT id, COALESCE(last_error, '') AS e FROM tracking_outbox \
             WHERE state = 'failed' ORDER BY id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get("id"), r.get("e"))).collect())
    }

    /// The server recorded with the newest pending record, if any was configured.
    pub async fn pending_server(&self) -> Result<Option<String>, OutboxError> {
        let row = sqlx::query(
            "SELECT server FROM tracking_outbox WHERE state = 'pending' AND server IS NOT NULL \
             ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.get("server")))
    }

    /// Adds a record that ends as `KILLED` the parent run of each sweep in `sweep_ids`
    /// (sweeps whose process died) that was opened and never closed; returns how many.
    pub async fn close_unclosed_sweeps(
        &self,
        sweep_ids: &[i64],
        server: Option<&str>,
    ) -> Result<usize, OutboxError> {
        let mut closed = 0;
        for &sweep in sweep_ids {
            let row = sqlx::query(
                "SELECT o.id, o.payload FROM tracking_outbox o WHERE o.sweep_id = ? \
                 AND o.kind = 'open_sweep' AND NOT EXISTS (SELECT 1 FROM tracking_outbox c \
                 WHERE c.sweep_id = o.sweep_id AND c.kind = 'close_sweep') LIMIT 1",
            )
            .bind(sweep)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { continue };
            let id: i64 = row.get("id");
            let payload: String = row.get("payload");
            let open: RunRecord = serde_json::from_str(&payload)
                .map_err(|source| OutboxError::Corrupt { id, source })?;
            let record = RunRecord {
                params: Vec::new(),
                metrics: Vec::new(),
                tags: Vec::new(),
                artifacts: Vec::new(),
                status: Some(RunStatus::Killed),
                end_ms: Some(now_ms()),
                inputs: Vec::new(),
                logged_model: None,
                ..open
            };
            self.push(&NewRecord {
                kind: RecordKind::CloseSweep,
                dedup_key: None,
                sweep_id: Some(sweep),
                server,
                record: &record,
            })
            .await?;
            closed += 1;
        }
        Ok(closed)
    }

    /// The run created on `server` for `run_key`, if this outbox created it.
    pub async fn known_run(
        &self,
        server: &str,
        run_key: &str,
    ) -> Result<Option<KnownRun>, OutboxError> {
        let row = sqlx::query(
            "SELECT experiment_id, run_id, artifact_uri FROM tracking_runs \
             WHERE server = ? AND run_key = ?",
        )
        .bind(server)
        .bind(run_key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| KnownRun {
            experiment_id: r.get("experiment_id"),
            run_id: r.get("run_id"),
            artifact_uri: r.get("artifact_uri"),
        }))
    }

    /// Remembers the run created on `server` for `run_key`.
    pub async fn remember_run(
        &self,
        server: &str,
        run_key: &str,
        run: &KnownRun,
    ) -> Result<(), OutboxError> {
        sqlx::query(
            "INSERT OR REPLACE INTO tracking_runs (server, run_key, experiment_id, run_id, \
             artifact_uri) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(server)
        .bind(run_key)
        .bind(&run.experiment_id)
        .bind(&run.run_id)
        .bind(&run.artifact_uri)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Decodes a `SELECT id, kind, payload` row.
fn entry(row: &sqlx::sqlite::SqliteRow) -> Result<Entry, OutboxError> {
    let id: i64 = row.get("id");
    let kind = RecordKind::parse(row.get("kind"));
    let payload: String = row.get("payload");
    let corrupt = |source| OutboxError::Corrupt { id, source };
    let record = match kind {
        RecordKind::Registry => Record::Registry(serde_json::from_str(&payload).map_err(corrupt)?),
        _ => Record::Run(serde_json::from_str(&payload).map_err(corrupt)?),
    };
    Ok(Entry { id, kind, record })
}
