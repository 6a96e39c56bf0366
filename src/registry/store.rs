//! The registry's tables (migration `0003_registry.sql`): registered models, immutable
//! versions, aliases and the append-only alias history. Every write that reads an alias and
//! moves it runs in one `BEGIN IMMEDIATE` transaction, so two promotions at once are
//! serialized by SQLite: the second sees the first's result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Row, Sqlite, Transaction};

use super::RegistryError;
use crate::data::split::SplitSpec;
use crate::models::metrics::Metrics;
use crate::shared::guard::Guard;
use crate::shared::hash::hex;
use crate::shared::now_ms;

/// A version about to be registered.
#[derive(Debug, Clone, Serialize)]
pub struct NewVersion {
    /// sha256 of the model file.
    pub sha256: String,
    /// Where the model file is kept (content-addressed, in the state directory).
    pub path: PathBuf,
    /// Experiment that produced it.
    pub experiment: String,
    /// Trial key.
    pub trial_key: String,
    /// Sweep it came from, when known.
    pub sweep_id: Option<i64>,
    /// Algorithm.
    pub algorithm: String,
    /// Metrics on the pinned holdout.
    pub metrics: Metrics,
    /// Training-data fingerprint.
    pub data_fingerprint: String,
    /// The split (with the fingerprint: the holdout).
    pub split: SplitSpec,
    /// Schema hash.
    pub schema_hash: String,
}

/// A registered version.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRow {
    /// Model name.
    pub model: String,
    /// Version number, from 1.
    pub version: i64,
    /// Registration time (Unix ms).
    pub created_at_ms: i64,
    /// What was registered.
    #[serde(flatten)]
    pub info: NewVersion,
}

/// One line of the alias history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    /// Sequence number.
    pub id: i64,
    /// Model name.
    pub model: String,
    /// Alias.
    pub alias: String,
    /// promote / reject / rollback.
    pub action: String,
    /// The alias before.
    pub from_version: Option<i64>,
    /// The alias after.
    pub to_version: Option<i64>,
    /// The version judged (promote / reject).
    pub candidate: Option<i64>,
    /// When (Unix ms).
    pub at_ms: i64,
    /// Who (CI actor or local user).
    pub actor: String,
    /// Why.
    pub reason: String,
    /// The evidence (rules, values, thresholds).
    pub evidence: serde_json::Value,
}

/// A registered model with its aliases.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// Name.
    pub name: String,
    /// Number of versions.
    pub versions: i64,
    /// Alias to version.
    pub aliases: BTreeMap<String, i64>,
    /// Registration of the first version (Unix ms).
    pub created_at_ms: i64,
}

/// A promotion decision to record.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    /// Model name.
    pub model: &'a str,
    /// Alias.
    pub alias: &'a str,
    /// The candidate.
    pub candidate: &'a NewVersion,
    /// Move the alias to it (else: record a rejection).
    pub promote: bool,
    /// The version the alias pointed at when the candidate was evaluated.
    pub evaluated_against: Option<i64>,
    /// Who decided.
    pub actor: &'a str,
    /// Why, in words.
    pub reason: &'a str,
    /// Every rule with its value and threshold.
    pub evidence: &'a serde_json::Value,
}

/// What recording a decision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Registered (or found) as `version`; history line `history_id` written.
    Done {
        /// The candidate's version number.
        version: i64,
        /// The history line.
        history_id: i64,
    },
    /// The alias already points at the candidate: nothing written.
    AlreadyHolds {
        /// The candidate's version number.
        version: i64,
    },
    /// The alias moved (another promotion) since the evaluation: nothing written; evaluate
    /// again against `current`.
    Stale {
        /// Where the alias points now.
        current: Option<i64>,
    },
}

/// The registry.
#[derive(Debug, Clone)]
pub struct Registry {
    pool: SqlitePool,
}

impl Registry {
    /// Opens (creating if needed) the registry database and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Registry, RegistryError> {
        let pool = crate::db::open(path)
            .await
            .map_err(|source| RegistryError::Open {
                path: path.to_owned(),
                source,
            })?;
        Ok(Registry { pool })
    }

    /// Closes the pool, flushing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Every registered model, by name.
    pub async fn models(&self) -> Result<Vec<ModelSummary>, RegistryError> {
        let rows = sqlx::query(
            "SELECT m.name, m.created_at_ms, \
             (SELECT COUNT(*) FROM model_versions v WHERE v.model = m.name) AS versions \
             FROM registered_models m ORDER BY m.name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut models = Vec::new();
        for row in rows {
            let name: String = row.get("name");
            models.push(ModelSummary {
                aliases: self.aliases(&name).await?,
                versions: row.get("versions"),
                created_at_ms: row.get("created_at_ms"),
                name,
            });
        }
        Ok(models)
    }

    /// Whether a model is registered.
    pub async fn exists(&self, model: &str) -> Result<bool, RegistryError> {
        let row = sqlx::query("SELECT COUNT(*) FROM registered_models WHERE name = ?")
            .bind(model)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get::<i64, _>(0) > 0)
    }

    /// A model's aliases (alias to version).
    pub async fn aliases(&self, model: &str) -> Result<BTreeMap<String, i64>, RegistryError> {
        let rows = sqlx::query("SELECT alias, version FROM aliases WHERE model = ? ORDER BY alias")
            .bind(model)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// A model's versions, oldest first.
    pub async fn versions(&self, model: &str) -> Result<Vec<VersionRow>, RegistryError> {
        let rows = sqlx::query("SELECT * FROM model_versions WHERE model = ? ORDER BY version")
            .bind(model)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_version).collect()
    }

    /// The version an alias points at.
    pub async fn alias_version(
        &self,
        model: &str,
        alias: &str,
    ) -> Result<Option<VersionRow>, RegistryError> {
        let row = sqlx::query(
            "SELECT v.* FROM aliases a JOIN model_versions v \
             ON v.model = a.model AND v.version = a.version WHERE a.model = ? AND a.alias = ?",
        )
        .bind(model)
        .bind(alias)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode_version).transpose()
    }

    /// A model's alias history, oldest first.
    pub async fn history(&self, model: &str) -> Result<Vec<HistoryRow>, RegistryError> {
        let rows = sqlx::query("SELECT * FROM alias_history WHERE model = ? ORDER BY id")
            .bind(model)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_history).collect()
    }

    /// Registers the candidate (if new) and records the decision, in one immediate
    /// transaction — unless the alias moved since the evaluation ([`Recorded::Stale`]) or
    /// already points at the candidate ([`Recorded::AlreadyHolds`]).
    pub async fn record_decision(&self, d: &Decision<'_>) -> Result<Recorded, RegistryError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current = current_alias(&mut tx, d.model, d.alias).await?;
        // Only a test's twin records a decision judged against a champion that has since
        // been replaced (see `Guard::PromoteRecheck`).
        if current != d.evaluated_against && !Guard::PromoteRecheck.disabled() {
            tx.rollback().await?;
            return Ok(Recorded::Stale { current });
        }
        let now = now_ms();
        sqlx::query("INSERT OR IGNORE INTO registered_models (name, created_at_ms) VALUES (?, ?)")
            .bind(d.model)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let version = register(&mut tx, d.model, d.candidate, now).await?;
        if current == Some(version) {
            tx.rollback().await?;
            return Ok(Recorded::AlreadyHolds { version });
        }
        let (action, to) = if d.promote {
            set_alias(&mut tx, d.model, d.alias, version, now).await?;
            ("promote", Some(version))
        } else {
            ("reject", current)
        };
        let history_id = append_history(
            &mut tx,
            &HistoryLine {
                model: d.model,
                alias: d.alias,
                action,
                from: current,
                to,
                candidate: Some(version),
                at_ms: now,
                actor: d.actor,
                reason: d.reason,
                evidence: d.evidence,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Recorded::Done {
            version,
            history_id,
        })
    }

    /// Moves `alias` back: to `to`, or to the version it held before the current one
    /// (promotions stack up, rollbacks pop them). The target's model file must still match
    /// its recorded sha256. Recorded in the history like any move.
    pub async fn rollback(
        &self,
        model: &str,
        alias: &str,
        to: Option<i64>,
        actor: &str,
        reason: &str,
    ) -> Result<HistoryRow, RegistryError> {
        if !self.exists(model).await? {
            return Err(RegistryError::UnknownModel(model.to_owned()));
        }
        let history = self.history(model).await?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current =
            current_alias(&mut tx, model, alias)
                .await?
                .ok_or_else(|| RegistryError::NoAlias {
                    model: model.to_owned(),
                    alias: alias.to_owned(),
                })?;
        let target = match to {
            Some(v) => v,
            None => previous_holder(&history, alias, current).ok_or_else(|| {
                RegistryError::NothingToRollBack {
                    model: model.to_owned(),
                    alias: alias.to_owned(),
                    current,
                }
            })?,
        };
        let row = sqlx::query("SELECT * FROM model_versions WHERE model = ? AND version = ?")
            .bind(model)
            .bind(target)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RegistryError::UnknownVersion {
                model: model.to_owned(),
                version: target,
            })?;
        let version = decode_version(&row)?;
        verify_file(&version.info.path, &version.info.sha256)?;
        if target == current {
            return Err(RegistryError::AlreadyThere {
                model: model.to_owned(),
                alias: alias.to_owned(),
                version: target,
            });
        }
        let now = now_ms();
        set_alias(&mut tx, model, alias, target, now).await?;
        let evidence = serde_json::json!({
            "from": { "version": current },
            "to": { "version": target, "sha256": version.info.sha256, "path": version.info.path },
        });
        let id = append_history(
            &mut tx,
            &HistoryLine {
                model,
                alias,
                action: "rollback",
                from: Some(current),
                to: Some(target),
                candidate: None,
                at_ms: now,
                actor,
                reason,
                evidence: &evidence,
            },
        )
        .await?;
        tx.commit().await?;
        let rows = self.history(model).await?;
        rows.into_iter()
            .find(|h| h.id == id)
            .ok_or(RegistryError::Query(sqlx::Error::RowNotFound))
    }
}

/// Checks that the file at `path` still has the recorded sha256.
pub fn verify_file(path: &Path, sha256: &str) -> Result<(), RegistryError> {
    read_verified(path, sha256).map(drop)
}

/// Reads the file at `path` and checks that its bytes have the recorded sha256.
pub fn read_verified(path: &Path, sha256: &str) -> Result<Vec<u8>, RegistryError> {
    let bytes = std::fs::read(path).map_err(|source| RegistryError::FileMissing {
        path: path.to_owned(),
        source,
    })?;
    let actual = hex(&Sha256::digest(&bytes));
    if actual != sha256 {
        return Err(RegistryError::ShaMismatch {
            path: path.to_owned(),
            expected: sha256.to_owned(),
            actual,
        });
    }
    Ok(bytes)
}

/// The version `alias` held before `current`, replaying the history as a stack:
/// a promotion pushes, a rollback pops down to its target.
fn previous_holder(history: &[HistoryRow], alias: &str, current: i64) -> Option<i64> {
    let mut stack: Vec<i64> = Vec::new();
    for h in history.iter().filter(|h| h.alias == alias) {
        match (h.action.as_str(), h.to_version) {
            ("promote", Some(to)) => stack.push(to),
            ("rollback", Some(to)) => {
                while stack.last().is_some_and(|&top| top != to) {
                    stack.pop();
                }
                if stack.is_empty() {
                    stack.push(to);
                }
            }
            _ => {}
        }
    }
    if stack.last() != Some(&current) {
        stack.push(current);
    }
    stack.iter().rev().nth(1).copied()
}

struct HistoryLine<'a> {
    model: &'a str,
    alias: &'a str,
    action: &'a str,
    from: Option<i64>,
    to: Option<i64>,
    candidate: Option<i64>,
    at_ms: i64,
    actor: &'a str,
    reason: &'a str,
    evidence: &'a serde_json::Value,
}

async fn current_alias(
    tx: &mut Transaction<'static, Sqlite>,
    model: &str,
    alias: &str,
) -> Result<Option<i64>, RegistryError> {
    let row = sqlx::query("SELECT version FROM aliases WHERE model = ? AND alias = ?")
        .bind(model)
        .bind(alias)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The version number of the candidate, registering it when its sha256 is new.
async fn register(
    tx: &mut Transaction<'static, Sqlite>,
    model: &str,
    v: &NewVersion,
    now: i64,
) -> Result<i64, RegistryError> {
    let existing = sqlx::query("SELECT version FROM model_versions WHERE model = ? AND sha256 = ?")
        .bind(model)
        .bind(&v.sha256)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(row) = existing {
        return Ok(row.get(0));
    }
    let version: i64 = sqlx::query(
        "INSERT INTO model_versions (model, version, sha256, path, experiment, trial_key, \
         sweep_id, algorithm, metrics, data_fingerprint, split, schema_hash, created_at_ms) \
         SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
         FROM model_versions WHERE model = ? RETURNING version",
    )
    .bind(model)
    .bind(&v.sha256)
    .bind(v.path.to_string_lossy())
    .bind(&v.experiment)
    .bind(&v.trial_key)
    .bind(v.sweep_id)
    .bind(&v.algorithm)
    .bind(json(&v.metrics))
    .bind(&v.data_fingerprint)
    .bind(json(&v.split))
    .bind(&v.schema_hash)
    .bind(now)
    .bind(model)
    .fetch_one(&mut **tx)
    .await?
    .get(0);
    Ok(version)
}

async fn set_alias(
    tx: &mut Transaction<'static, Sqlite>,
    model: &str,
    alias: &str,
    version: i64,
    now: i64,
) -> Result<(), RegistryError> {
    sqlx::query(
        "INSERT INTO aliases (model, alias, version, updated_at_ms) VALUES (?, ?, ?, ?) \
         ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version, \
         updated_at_ms = excluded.updated_at_ms",
    )
    .bind(model)
    .bind(alias)
    .bind(version)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn append_history(
    tx: &mut Transaction<'static, Sqlite>,
    h: &HistoryLine<'_>,
) -> Result<i64, RegistryError> {
    let id: i64 = sqlx::query(
        "INSERT INTO alias_history (model, alias, action, from_version, to_version, candidate, \
         at_ms, actor, reason, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(h.model)
    .bind(h.alias)
    .bind(h.action)
    .bind(h.from)
    .bind(h.to)
    .bind(h.candidate)
    .bind(h.at_ms)
    .bind(h.actor)
    .bind(h.reason)
    .bind(json(h.evidence))
    .fetch_one(&mut **tx)
    .await?
    .get(0);
    Ok(id)
}

fn decode_version(row: &SqliteRow) -> Result<VersionRow, RegistryError> {
    let model: String = row.get("model");
    let version: i64 = row.get("version");
    let corrupt = |source| RegistryError::Corrupt {
        what: format!("version {version} of {model}"),
        source,
    };
    Ok(VersionRow {
        info: NewVersion {
            sha256: row.get("sha256"),
            path: PathBuf::from(row.get::<String, _>("path")),
            experiment: row.get("experiment"),
            trial_key: row.get("trial_key"),
            sweep_id: row.get("sweep_id"),
            algorithm: row.get("algorithm"),
            metrics: serde_json::from_str(row.get("metrics")).map_err(corrupt)?,
            data_fingerprint: row.get("data_fingerprint"),
            split: serde_json::from_str(row.get("split")).map_err(corrupt)?,
            schema_hash: row.get("schema_hash"),
        },
        created_at_ms: row.get("created_at_ms"),
        model,
        version,
    })
}

fn decode_history(row: &SqliteRow) -> Result<HistoryRow, RegistryError> {
    let id: i64 = row.get("id");
    Ok(HistoryRow {
        evidence: serde_json::from_str(row.get("evidence")).map_err(|source| {
            RegistryError::Corrupt {
                what: format!("history line {id}"),
                source,
            }
        })?,
        id,
        model: row.get("model"),
        alias: row.get("alias"),
        action: row.get("action"),
        from_version: row.get("from_version"),
        to_version: row.get("to_version"),
        candidate: row.get("candidate"),
        at_ms: row.get("at_ms"),
        actor: row.get("actor"),
        reason: row.get("reason"),
    })
}

/// JSON text of a stored value; serializing these plain data types cannot fail.
fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(moves: &[(&str, i64)]) -> Vec<HistoryRow> {
        moves
            .iter()
            .enumerate()
            .map(|(i, (action, to))| HistoryRow {
                id: i as i64 + 1,
                model: "m".into(),
                alias: "champion".into(),
                action: (*action).into(),
                from_version: None,
                to_version: Some(*to),
                candidate: None,
                at_ms: 0,
                actor: "t".into(),
                reason: "r".into(),
                evidence: serde_json::Value::Null,
            })
            .collect()
    }

    #[test]
    fn rollback_target_replays_the_history_as_a_stack() {
        let h = history(&[("promote", 1), ("promote", 2), ("promote", 3)]);
        assert_eq!(previous_holder(&h, "champion", 3), Some(2));
        let h = history(&[
            ("promote", 1),
            ("promote", 2),
            ("promote", 3),
            ("rollback", 2),
        ]);
        assert_eq!(previous_holder(&h, "champion", 2), Some(1));
        let h = history(&[("promote", 1), ("promote", 2), ("rollback", 1)]);
        assert_eq!(previous_holder(&h, "champion", 1), None);
        assert_eq!(previous_holder(&h, "challenger", 1), None);
    }

    fn version(sha: &str) -> NewVersion {
        NewVersion {
            sha256: sha.into(),
            path: PathBuf::from("/nonexistent"),
            experiment: "e".into(),
            trial_key: "k".into(),
            sweep_id: None,
            algorithm: "decision_tree".into(),
            metrics: Metrics::binary(&[true, false], &[0.9, 0.1]),
            data_fingerprint: "f".into(),
            split: SplitSpec::default(),
            schema_hash: "s".into(),
        }
    }

    #[tokio::test]
    async fn history_and_versions_refuse_update_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(&dir.path().join("r.db")).await.unwrap();
        let candidate = version("aa");
        let evidence = serde_json::json!({});
        let decision = Decision {
            model: "m",
            alias: "champion",
            candidate: &candidate,
            promote: true,
            evaluated_against: None,
            actor: "t",
            reason: "first",
            evidence: &evidence,
        };
        let recorded = registry.record_decision(&decision).await.unwrap();
        assert_eq!(
            recorded,
            Recorded::Done {
                version: 1,
                history_id: 1
            }
        );
        assert_eq!(
            registry.record_decision(&decision).await.unwrap(),
            Recorded::Stale { current: Some(1) }
        );
        for sql in [
            "UPDATE alias_history SET reason = 'edited'",
            "DELETE FROM alias_history",
            "UPDATE model_versions SET sha256 = 'bb'",
            "DELETE FROM model_versions",
        ] {
            let err = sqlx::query(sql).execute(&registry.pool).await.unwrap_err();
            assert!(
                err.to_string().contains("append-only") || err.to_string().contains("immutable"),
                "{sql}: {err}"
            );
        }
        assert_eq!(registry.history("m").await.unwrap()[0].reason, "first");
    }
}
