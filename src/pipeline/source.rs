//! Where a sweep's rows come from, and the model files made from its trials: a grid's
//! `data:` section or a model file's recorded source becomes a table (CSV/Parquet/synthetic
//! through `data`, MongoDB through `ingest`), and a stored trial becomes a model file again.

use std::path::Path;

use anyhow::Context;

use crate::config::grid::{GridError, GridFile, SelectMetric, SourceKind, expand_env};
use crate::data::labels::class_counts;
use crate::data::split::{stratified_kfold_ids, train_test_split};
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
/// credentials), the encoded data set with the classes the grid asks for (the schema's
/// label under the grid's `data.task` / `data.group`: `Dataset::classes`, `class_ids` and
/// the fingerprint are the effective ones), and its validation report. Labels the sweep
/// cannot learn as asked are bad input here, before anything is planned, fitted or
/// written: see [`check_classes`].
pub async fn load_data(
    grid: &GridFile,
    path: &Path,
    schema: &Schema,
) -> anyhow::Result<(DataSource, Dataset, ValidationReport)> {
    let (source, table) = load_table(grid, path, schema).await?;
    let dataset = dataset_from_table(&table, schema)?;
    let dataset = effective_dataset(grid, path, schema, dataset)?;
    let report = validate(&table, schema);
    Ok((source, dataset, report))
}

/// The data set learned as the grid asks (`data.task`, `data.group`), checked by
/// [`check_classes`].
pub fn effective_dataset(
    grid: &GridFile,
    path: &Path,
    schema: &Schema,
    dataset: Dataset,
) -> anyhow::Result<Dataset> {
    let choice = grid.data.label_choice();
    let dataset = if choice.is_default() {
        dataset
    } else {
        dataset.with_label(&schema.label, &choice).map_err(|e| {
            let message = format!("data: {e}");
            match (&grid.data.group, &grid.data.task) {
                (Some(span), _) => GridError::at(path, span, message),
                (None, Some(span)) => GridError::at(path, span, message),
                (None, None) => GridError::at(path, &grid.data.source, message),
            }
        })?
    };
    check_classes(grid, path, &dataset)?;
    Ok(dataset)
}

/// Refuses, as bad input naming the grid file, a sweep that cannot be run on the classes of
/// `data`: a ranking metric naming a class the label does not have, an attack-level
/// ranking metric (detection rate, attack F1, ...) on a label with no normal class, and, for
/// a multi-class label, a class with fewer rows in the training part than `cv.folds` (some
/// fold would not see it; the message names it and suggests `group`). On a multi-class
/// label with a normal class, ranking by `f1` (attack-level F1) is allowed with a warning
/// that suggests `macro_f1`.
pub fn check_classes(grid: &GridFile, path: &Path, data: &Dataset) -> Result<(), UsageError> {
    let classes = &data.classes;
    let metric = grid.select.metric;
    let file = path.display();
    if let SelectMetric::Class(c) = metric
        && classes.id(c.class()).is_none()
    {
        return Err(UsageError(format!(
            "{file}: select.metric `{}` names class `{}`, which the label does not have \
             (classes: {})",
            metric.name(),
            c.class(),
            classes.names.join(", ")
        )));
    }
    if metric.is_attack_level() && !classes.has_normal() {
        return Err(UsageError(format!(
            "{file}: select.metric `{}` is an attack-level figure (any attack vs normal), but \
             the label has no normal class (classes: {}); rank by `macro_f1`, \
             `weighted_f1` or `balanced_accuracy`, or name the normal values with \
             `negative: [..]` in the schema",
            metric.name(),
            classes.names.join(", ")
        )));
    }
    if classes.is_binary() {
        return Ok(());
    }
    if metric == SelectMetric::F1 {
        tracing::warn!(
            "{file}: select.metric `f1` on a multi-class label is the attack-level F1 (any \
             attack vs normal); `macro_f1` ranks by how well every class is found"
        );
    }
    let split = train_test_split(data, &grid.split);
    let train_counts = class_counts(
        &split
            .train
            .iter()
            .map(|&r| data.class_ids[r])
            .collect::<Vec<_>>(),
        classes.len(),
    );
    let counts = data.class_counts();
    let folds = grid.cv.folds;
    let rare: Vec<usize> = (0..classes.len())
        .filter(|&k| train_counts[k] < folds)
        .collect();
    if let Some(&k) = rare.first() {
        let others = if rare.len() > 1 {
            format!(
                " (also: {})",
                rare[1..]
                    .iter()
                    .map(|&j| format!("`{}` {}", classes.names[j], counts[j]))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        };
        return Err(UsageError(format!(
            "{file}: class `{}` has {} rows ({} in the training part), fewer than cv.folds = \
             {folds}, so some fold would not see it{others}; merge rare classes with \
             `group: {{ NAME: [{}, ...] }}` under `data:`, or use fewer folds",
            classes.names[k], counts[k], train_counts[k], classes.names[k]
        )));
    }
    Ok(())
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
    crate::sweep::plan::check_class_weights(&grid, grid_path, &data.classes)?;
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
    let folds = stratified_kfold_ids(
        &data.class_ids,
        &split.train,
        grid.cv.folds,
        grid.split.seed,
    );
    let context = KeyContext::for_grid(&grid, &data.fingerprint);
    let keys: Vec<String> = candidates.iter().map(|c| trial_key(c, &context)).collect();
    let executor = Executor::new(
        &grid.name,
        &data,
        &split,
        &folds,
        grid.split.seed,
        grid.operating_point.as_ref().map(|t| t.value),
    );
    // A fit is CPU work of seconds to minutes: keep it off the runtime's workers.
    let top = trial.clone();
    let (model, roc) =
        tokio::task::spawn_blocking(move || refit(&top, &candidates, &keys, &executor))
            .await
            .context("refitting a trial")??;
    Ok(model_file(
        trial,
        model,
        roc,
        &schema,
        &data,
        &split.train,
        &source,
        &grid,
    ))
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
