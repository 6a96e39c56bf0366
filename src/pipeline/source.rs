//! Where a sweep's rows come from, and the model files made from its trials: a grid's
//! `data:` section or a model file's recorded source becomes a table (CSV/Parquet/synthetic
//! through `data`, MongoDB through `ingest`), and a stored trial becomes a model file again.

use std::path::Path;

use anyhow::Context;

use crate::config::grid::{GridFile, SourceKind, expand_env};
use crate::data::split::{stratified_kfold, train_test_split};
use crate::data::synthetic::Profile;
use crate::data::validate::{ValidationReport, validate};
use crate::data::{DataSource, Dataset, MongoSource, Schema, Table, dataset_from_table};
use crate::exit::UsageError;
use crate::ingest::mongo::{self, MongoTarget};
use crate::model_file::ModelFile;
use crate::registry::promotion::Holdout;
use crate::sweep::executor::Executor;
use crate::sweep::plan::{KeyContext, expand, trial_key};
use crate::sweep::record::TrialRecord;
/// Kept here for the callers of `pipeline::source`; the sweep driver owns them.
pub use crate::sweep::run::{model_file, refit};
use crate::tracking::{MlflowClient, TrackingConfig};

/// Loads a grid file's rows: where they came from (for MongoDB the URI as written, without
/// credentials), the encoded data set, and its validation report.
pub async fn load_data(
    grid: &GridFile,
    path: &Path,
    schema: &Schema,
) -> anyhow::Result<(DataSource, Dataset, ValidationReport)> {
    let (source, table) = load_table(grid, path, schema).await?;
    let dataset = dataset_from_table(&table, schema)?;
    let report = validate(&table, schema);
    Ok((source, dataset, report))
}

/// Reads the rows of a grid file's data section, and says where they came from (for
/// MongoDB the URI as written, without credentials).
pub async fn load_table(
    grid: &GridFile,
    path: &Path,
    schema: &Schema,
) -> anyhow::Result<(DataSource, Table)> {
    let data = &grid.data;
    let source = match data.source.value {
        SourceKind::Csv | SourceKind::Parquet => {
            // `check` guarantees the path for file sources.
            let file = data
                .path
                .as_ref()
                .map(|p| p.value.clone())
                .unwrap_or_default();
            DataSource::File(file)
        }
        SourceKind::Synthetic => {
            let profile = data.profile.unwrap_or(Profile::Phishing);
            DataSource::Synthetic {
                profile,
                rows: data.rows.unwrap_or(profile.default_rows()),
                seed: data.seed.unwrap_or(42),
            }
        }
        SourceKind::Mongodb => DataSource::Mongodb(MongoSource {
            uri: mongo::credential_free(data.uri.as_ref().map_or("", |u| u.value.as_str())),
            db: data.db.clone().unwrap_or_default(),
            collection: data.collection.clone().unwrap_or_default(),
            query: data.query.clone(),
        }),
    };
    let table = match &source {
        DataSource::Mongodb(m) => pull(data.mongo_uri(path)?, m, schema).await?,
        other => other.load()?,
    };
    Ok((source, table))
}

/// Reads a MongoDB collection through the expanded connection string `uri`.
async fn pull(uri: String, source: &MongoSource, schema: &Schema) -> anyhow::Result<Table> {
    let target = MongoTarget {
        uri: uri.into(),
        db: source.db.clone(),
        collection: source.collection.clone(),
    };
    Ok(mongo::pull(&target, schema, source.query.as_ref()).await?)
}

/// The pinned holdout of a model file: its data reloaded (a MongoDB collection through
/// the environment variables its grid file named), checked and split again.
pub async fn holdout(file: &ModelFile, sha256: &str) -> anyhow::Result<Holdout> {
    let Some(source @ DataSource::Mongodb(_)) = &file.data_source else {
        return Ok(Holdout::of(file, sha256)?);
    };
    let table = read_source(source, &file.schema).await.with_context(|| {
        format!(
            "reloading the holdout of model {}",
            crate::shared::short_hash(sha256)
        )
    })?;
    Ok(Holdout::from_table(file, table)?)
}

/// Reads the rows a recorded data source names; a MongoDB collection through the
/// environment variables its grid file named.
pub async fn read_source(source: &DataSource, schema: &Schema) -> anyhow::Result<Table> {
    let DataSource::Mongodb(m) = source else {
        return Ok(source.load()?);
    };
    let uri = expand_env(&m.uri).map_err(|var| {
        UsageError(format!(
            "the data is read from MongoDB through ${{{var}}}, which is not set"
        ))
    })?;
    pull(uri, m, schema).await
}

/// Fits one stored trial again from its sweep's grid file and returns its model file: the
/// model file `netsec promote --run KEY` needs when the trial was not its sweep's best (only
/// the best is saved). Fits are deterministic, so this is the model the sweep scored; the
/// data must still have the fingerprint the trial ran on.
pub async fn refit_trial(
    grid_path: &std::path::Path,
    trial: &TrialRecord,
) -> anyhow::Result<ModelFile> {
    let grid = GridFile::from_file(grid_path)
        .with_context(|| format!("reading the grid file of trial {}", trial.key))?;
    let candidates = expand(&grid, grid_path)?;
    let schema = Schema::from_file(&grid.data.schema.value)?;
    let (source, data, _) = load_data(&grid, grid_path, &schema).await?;
    if data.fingerprint != trial.data_fingerprint {
        return Err(crate::exit::UsageError(format!(
            "cannot refit trial {}: the data of {} changed since the sweep (fingerprint {} now, {} then)",
            trial.key,
            grid_path.display(),
            crate::shared::short_hash(&data.fingerprint),
            crate::shared::short_hash(&trial.data_fingerprint)
        ))
        .into());
    }
    let split = train_test_split(&data, &grid.split);
    let folds = stratified_kfold(&data.labels, &split.train, grid.cv.folds, grid.split.seed);
    let context = KeyContext {
        data_fingerprint: &data.fingerprint,
        split: &grid.split,
        folds: grid.cv.folds,
    };
    let keys: Vec<String> = candidates.iter().map(|c| trial_key(c, &context)).collect();
    let executor = Executor::new(&grid.name, &data, &split, &folds, grid.split.seed);
    // A fit is CPU work of seconds to minutes: keep it off the runtime's workers.
    let top = trial.clone();
    let model = tokio::task::spawn_blocking(move || refit(&top, &candidates, &keys, &executor))
        .await
        .context("refitting a trial")??;
    Ok(model_file(trial, model, &schema, &data, &source, &grid))
}

/// The MLflow client for the server in `MLFLOW_TRACKING_URI`, else in the grid's
/// `tracking.uri`; `None` when neither is set (records then wait in the outbox).
pub fn tracking_client(grid: &GridFile) -> anyhow::Result<Option<MlflowClient>> {
    let env_uri = std::env::var("MLFLOW_TRACKING_URI")
        .ok()
        .filter(|u| !u.trim().is_empty());
    let Some(uri) = env_uri.or_else(|| grid.tracking.uri.clone()) else {
        return Ok(None);
    };
    let config = TrackingConfig::from_lookup(|name| match name {
        "MLFLOW_TRACKING_URI" => Some(uri.clone()),
        other => std::env::var(other).ok(),
    })
    .map_err(|e| UsageError(e.to_string()))?;
    let client = MlflowClient::new(config).map_err(|e| UsageError(e.to_string()))?;
    Ok(Some(client))
}
