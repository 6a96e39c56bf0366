//! The local run store: a SQLite file in the state directory holding every finished trial
//! (by trial key) and every sweep. Trials are written as each one finishes, so a sweep that
//! is killed — even with `kill -9` — loses only the trials that were running.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sqlx::sqlite::SqlitePool;
use sqlx::{Row, sqlite::SqliteRow};

use super::record::{TrialRecord, TrialStatus};
use crate::shared::guard::Guard;
use crate::shared::now_ms;

/// A store that cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open the run store {}", path.display())]
    Open {
        /// Database file.
        path: PathBuf,
        /// The cause.
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("run store query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// Stored JSON that does not decode (a corrupted or foreign database).
    #[error("run store holds an unreadable record for trial {key}")]
    Corrupt {
        /// Trial key.
        key: String,
        /// The cause.
        source: serde_json::Error,
    },
}

impl StoreError {
    /// The process exit code: a runtime failure (the database).
    pub fn exit_code(&self) -> u8 {
        match self {
            StoreError::Open { .. } => crate::exit::RUNTIME_FAILURE,
            StoreError::Query(_) => crate::exit::RUNTIME_FAILURE,
            StoreError::Corrupt { .. } => crate::exit::RUNTIME_FAILURE,
        }
    }
}

/// How a sweep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepStatus {
    /// Still running (or its process died without saying so).
    Running,
    /// Every planned trial ran.
    Finished,
    /// It stopped on an error.
    Failed,
    /// It was interrupted (Ctrl-C, SIGTERM) or its process died.
    Killed,
}

impl SweepStatus {
    /// Name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            SweepStatus::Running => "running",
            SweepStatus::Finished => "finished",
            SweepStatus::Failed => "failed",
            SweepStatus::Killed => "killed",
        }
    }
}

/// A sweep about to start.
#[derive(Debug, Clone)]
pub struct NewSweep<'a> {
    /// Experiment name.
    pub experiment: &'a str,
    /// The grid file.
    pub grid_path: &'a str,
    /// The data source.
    pub data_source: &'a str,
    /// Data fingerprint.
    pub data_fingerprint: &'a str,
    /// Schema hash.
    pub schema_hash: &'a str,
    /// Ranking metric.
    pub select_metric: &'a str,
    /// `I/N` when sharded.
    pub shard: Option<String>,
    /// Planned trial keys in plan order.
    pub trial_keys: &'a [String],
    /// The halving search this sweep is a rung of: its key, the rung and its rows.
    pub rung: Option<SweepRung<'a>>,
}

/// A sweep's place in a halving search.
#[derive(Debug, Clone, Copy)]
pub struct SweepRung<'a> {
    /// The key shared by every rung of the search.
    pub search_key: &'a str,
    /// The rung, from 0.
    pub index: usize,
    /// Its training rows.
    pub rows: usize,
}

/// A stored sweep.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SweepRow {
    /// Sweep id.
    pub id: i64,
    /// Experiment name.
    pub experiment: String,
    /// The grid file.
    pub grid_path: String,
    /// Data source.
    pub data_source: String,
    /// Data fingerprint.
    pub data_fingerprint: String,
    /// Schema hash.
    pub schema_hash: String,
    /// Ranking metric.
    pub select_metric: String,
    /// Shard, if any.
    pub shard: Option<String>,
    /// running / finished / failed / killed.
    pub status: String,
    /// Start (Unix ms).
    pub started_at_ms: i64,
    /// End (Unix ms).
    pub finished_at_ms: Option<i64>,
    /// Key of the best trial.
    pub best_trial: Option<String>,
    /// Path of the best model file.
    pub best_model_path: Option<String>,
    /// sha256 of the best model file.
    pub best_model_sha256: Option<String>,
    /// Planned trials.
    pub planned: i64,
    /// The halving search this sweep is a rung of.
    pub search_key: Option<String>,
    /// Its rung, from 0.
    pub rung: Option<i64>,
    /// The rung's training rows.
    pub rung_rows: Option<i64>,
}

/// The run store.
#[derive(Debug, Clone)]
pub struct RunStore {
    pool: SqlitePool,
}

impl RunStore {
    /// The run store's file in a state directory.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join("netsec.db")
    }

    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<RunStore, StoreError> {
        let pool = crate::db::open(path)
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        Ok(RunStore { pool })
    }

    /// Finished trials among `keys`, by key.
    pub async fn finished_trials(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, TrialRecord>, StoreError> {
        let mut found = HashMap::new();
        // One query per chunk keeps the statement under SQLite's variable limit.
        for chunk in keys.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT * FROM trials WHERE status = 'finished' AND key IN ({placeholders})"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for key in chunk {
                query = query.bind(key);
            }
            for row in query.fetch_all(&self.pool).await? {
                let record = decode_trial(&row)?;
                found.insert(record.key.clone(), record);
            }
        }
        Ok(found)
    }

    /// Stores a trial (replacing an earlier failed attempt with the same key).
    pub async fn record_trial(&self, t: &TrialRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO trials (key, experiment, algorithm, params, status, cv, test, \
             fit_seconds, predict_seconds, error, data_fingerprint, finished_at_ms, \
             operating_point, n_estimators_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.key)
        .bind(&t.experiment)
        .bind(&t.algorithm)
        .bind(json(&t.params))
        .bind(t.status.as_str())
        .bind(json(&t.cv))
        .bind(t.test.as_ref().map(json))
        .bind(t.fit_seconds)
        .bind(t.predict_seconds)
        .bind(&t.error)
        .bind(&t.data_fingerprint)
        .bind(t.finished_at_ms)
        .bind(t.operating_point.as_ref().map(json))
        .bind(t.n_estimators_used.map(|n| n as i64))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the start of a sweep with its planned trials; marks sweeps of dead processes
    /// on this machine that were left `running` as `killed` first.
    pub async fn start_sweep(&self, sweep: &NewSweep<'_>) -> Result<i64, StoreError> {
        self.reap_dead_sweeps().await?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: i64 = sqlx::query(
            "INSERT INTO sweeps (experiment, grid_path, data_source, data_fingerprint, schema_hash, \
             select_metric, shard, status, pid, started_at_ms, search_key, rung, rung_rows) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(sweep.experiment)
        .bind(sweep.grid_path)
        .bind(sweep.data_source)
        .bind(sweep.data_fingerprint)
        .bind(sweep.schema_hash)
        .bind(sweep.select_metric)
        .bind(&sweep.shard)
        .bind(i64::from(std::process::id()))
        .bind(now_ms())
        .bind(sweep.rung.map(|r| r.search_key))
        .bind(sweep.rung.map(|r| r.index as i64))
        .bind(sweep.rung.map(|r| r.rows as i64))
        .fetch_one(&mut *tx)
        .await?
        .get(0);
        for (position, key) in sweep.trial_keys.iter().enumerate() {
            sqlx::query(
                "INSERT INTO sweep_trials (sweep_id, position, trial_key) VALUES (?, ?, ?)",
            )
            .bind(id)
            .bind(position as i64)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Records how a sweep ended and its best model.
    pub async fn finish_sweep(
        &self,
        id: i64,
        status: SweepStatus,
        best: Option<(&str, &str, &str)>,
    ) -> Result<(), StoreError> {
        let (trial, path, sha) = match best {
            Some((t, p, s)) => (Some(t), Some(p), Some(s)),
            None => (None, None, None),
        };
        sqlx::query(
            "UPDATE sweeps SET status = ?, finished_at_ms = ?, \
             best_trial = COALESCE(?, best_trial), best_model_path = COALESCE(?, best_model_path), \
             best_model_sha256 = COALESCE(?, best_model_sha256) WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(now_ms())
        .bind(trial)
        .bind(path)
        .bind(sha)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks sweeps of dead processes on this machine that were left `running` as `killed`.
    pub async fn reap_dead_sweeps(&self) -> Result<(), StoreError> {
        // Only a test's twin leaves them `running` (see `Guard::ReapDeadSweeps`).
        if Guard::ReapDeadSweeps.disabled() {
            return Ok(());
        }
        let rows = sqlx::query("SELECT id, pid FROM sweeps WHERE status = 'running'")
            .fetch_all(&self.pool)
            .await?;
        for row in rows {
            let (id, pid): (i64, i64) = (row.get(0), row.get(1));
            if !Path::new(&format!("/proc/{pid}")).exists() {
                sqlx::query(
                    "UPDATE sweeps SET status = 'killed' WHERE id = ? AND status = 'running'",
                )
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Every sweep, newest first.
    pub async fn sweeps(&self) -> Result<Vec<SweepRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.*, (SELECT COUNT(*) FROM sweep_trials t WHERE t.sweep_id = s.id) AS planned \
             FROM sweeps s ORDER BY s.id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(decode_sweep).collect())
    }

    /// A sweep by id, or the newest sweep of an experiment by name.
    pub async fn find_sweep(&self, id_or_name: &str) -> Result<Option<SweepRow>, StoreError> {
        let sweeps = self.sweeps().await?;
        Ok(match id_or_name.parse::<i64>() {
            Ok(id) => sweeps.into_iter().find(|s| s.id == id),
            Err(_) => sweeps.into_iter().find(|s| s.experiment == id_or_name),
        })
    }

    /// The newest sweep that planned trial `key`.
    pub async fn sweep_of_trial(&self, key: &str) -> Result<Option<SweepRow>, StoreError> {
        let id: Option<i64> =
            sqlx::query("SELECT MAX(sweep_id) FROM sweep_trials WHERE trial_key = ?")
                .bind(key)
                .fetch_one(&self.pool)
                .await?
                .get(0);
        let sweeps = self.sweeps().await?;
        Ok(id.and_then(|id| sweeps.into_iter().find(|s| s.id == id)))
    }

    /// The planned trial keys of a sweep, in plan order.
    pub async fn sweep_keys(&self, id: i64) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT trial_key FROM sweep_trials WHERE sweep_id = ? ORDER BY position")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Stored trials (finished or failed) among `keys`, by key.
    pub async fn trials(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, TrialRecord>, StoreError> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let sql = format!("SELECT * FROM trials WHERE key IN ({placeholders})");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for key in chunk {
                query = query.bind(key);
            }
            for row in query.fetch_all(&self.pool).await? {
                let record = decode_trial(&row)?;
                found.insert(record.key.clone(), record);
            }
        }
        Ok(found)
    }

    /// Trials whose key starts with `prefix` (keys are shown shortened).
    pub async fn trials_by_prefix(&self, prefix: &str) -> Result<Vec<TrialRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM trials WHERE key LIKE ? || '%' ORDER BY key")
            .bind(prefix)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_trial).collect()
    }

    /// Closes the pool, flushing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn decode_trial(row: &SqliteRow) -> Result<TrialRecord, StoreError> {
    let key: String = row.get("key");
    let corrupt = |source| StoreError::Corrupt {
        key: key.clone(),
        source,
    };
    let status: String = row.get("status");
    let test: Option<String> = row.get("test");
    Ok(TrialRecord {
        experiment: row.get("experiment"),
        algorithm: row.get("algorithm"),
        params: serde_json::from_str(row.get("params")).map_err(corrupt)?,
        status: if status == "finished" {
            TrialStatus::Finished
        } else {
            TrialStatus::Failed
        },
        cv: match row.get::<Option<String>, _>("cv") {
            Some(text) => serde_json::from_str(&text).map_err(corrupt)?,
            None => Default::default(),
        },
        test: match test {
            Some(text) => Some(serde_json::from_str(&text).map_err(corrupt)?),
            None => None,
        },
        fit_seconds: row.get::<Option<f64>, _>("fit_seconds").unwrap_or(0.0),
        predict_seconds: row.get::<Option<f64>, _>("predict_seconds").unwrap_or(0.0),
        error: row.get("error"),
        data_fingerprint: row.get("data_fingerprint"),
        finished_at_ms: row.get("finished_at_ms"),
        operating_point: match row.get::<Option<String>, _>("operating_point") {
            Some(text) => Some(serde_json::from_str(&text).map_err(corrupt)?),
            None => None,
        },
        n_estimators_used: row
            .get::<Option<i64>, _>("n_estimators_used")
            .and_then(|n| usize::try_from(n).ok()),
        key,
    })
}

fn decode_sweep(row: &SqliteRow) -> SweepRow {
    SweepRow {
        id: row.get("id"),
        experiment: row.get("experiment"),
        grid_path: row.get("grid_path"),
        data_source: row.get("data_source"),
        data_fingerprint: row.get("data_fingerprint"),
        schema_hash: row.get("schema_hash"),
        select_metric: row.get("select_metric"),
        shard: row.get("shard"),
        status: row.get("status"),
        started_at_ms: row.get("started_at_ms"),
        finished_at_ms: row.get("finished_at_ms"),
        best_trial: row.get("best_trial"),
        best_model_path: row.get("best_model_path"),
        best_model_sha256: row.get("best_model_sha256"),
        planned: row.get("planned"),
        search_key: row.get("search_key"),
        rung: row.get("rung"),
        rung_rows: row.get("rung_rows"),
    }
}

/// JSON text of a stored value; serializing these plain data types cannot fail.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
