//! Grid files: what `netsec experiment run` sweeps.
//!
//! ```yaml
//! name: phishing
//! data:
//!   source: csv                       # csv | parquet | synthetic | mongodb
//!   path: ../shared/data/phishing.csv # relative paths are relative to the working directory
//!   schema: data_schema/phishing.yaml
//!   # task: binary                    # fold a multi-class label to attack / normal
//!   # group: { r2l: [guess_passwd, warezclient] }  # learn these classes as one
//! split: { test_fraction: 0.2, stratify: true, seed: 42 }
//! cv: { folds: 3 }
//! select: { metric: f1 }              # ranked on cross-validation, never on test
//! # operating_point: { max_fpr: 0.001 } # cut P(attack) for a false-alarm budget
//! # search: { strategy: random, trials: 60, seed: 1 }  # or halving; see [`super::search`]
//! models:
//!   - algorithm: decision_tree
//!     grid: { criterion: [gini, entropy], max_depth: [null, 8, 16] }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

pub use super::search::{Distribution, SearchConfig, Strategy};
use crate::data::labels::LabelChoice;
use crate::data::schema::Task;
use crate::data::split::SplitSpec;
use crate::data::synthetic::Profile;
use crate::models::ParamValue;
use crate::models::operating_point::Target;
use crate::shared::yaml::{YamlError, parse_yaml, read_yaml};

/// Where a sweep's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A CSV file at `path`.
    Csv,
    /// A Parquet file at `path`.
    Parquet,
    /// Generated rows (`profile`, `rows`, `seed`).
    Synthetic,
    /// A MongoDB collection (`uri`, `db`, `collection`, optional `query`).
    Mongodb,
}

/// The `data:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Kind of source.
    pub source: Spanned<SourceKind>,
    /// File path for csv / parquet.
    #[serde(default)]
    pub path: Option<Spanned<PathBuf>>,
    /// Schema file.
    pub schema: Spanned<PathBuf>,
    /// Generator profile for `synthetic`.
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Generated rows for `synthetic`.
    #[serde(default)]
    pub rows: Option<usize>,
    /// Generator seed for `synthetic`.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Connection string for `mongodb`; `${VAR}` takes it from the environment, which is
    /// where credentials belong.
    #[serde(default)]
    pub uri: Option<Spanned<String>>,
    /// Database for `mongodb`.
    #[serde(default)]
    pub db: Option<String>,
    /// Collection for `mongodb`.
    #[serde(default)]
    pub collection: Option<String>,
    /// Filter for `mongodb`, e.g. `{ label: { $ne: unknown } }`.
    #[serde(default)]
    pub query: Option<serde_json::Value>,
    /// `binary` folds a multi-class label onto attack / normal; `multiclass` learns one
    /// class per value of a label the schema folds; absent keeps the schema's task.
    #[serde(default)]
    pub task: Option<Spanned<Task>>,
    /// Classes learned as one: new class name to the label values it takes in, e.g.
    /// `{ r2l: [guess_passwd, warezclient] }`. A group is normal only if all its members are.
    #[serde(default)]
    pub group: Option<Spanned<BTreeMap<String, Vec<String>>>>,
}

impl DataConfig {
    /// How the grid wants the label learned (`task`, `group`) over the schema's task.
    pub fn label_choice(&self) -> LabelChoice {
        LabelChoice {
            task: self.task.as_ref().map(|t| t.value),
            group: self
                .group
                .as_ref()
                .map(|g| g.value.clone())
                .unwrap_or_default(),
        }
    }

    /// The trial-key component of `task` / `group`: `None` when the grid sets neither, so
    /// the trial keys of existing grid files do not change. See [`LabelChoice::label_key`].
    pub fn label_key(&self) -> Option<String> {
        self.label_choice().label_key()
    }

    /// The MongoDB connection string with `${VAR}` references replaced from the environment.
    pub fn mongo_uri(&self, path: &Path) -> Result<String, GridError> {
        let Some(uri) = &self.uri else {
            return Err(GridError::at(
                path,
                &self.source,
                "data.uri is required for the mongodb source",
            ));
        };
        expand_env(&uri.value).map_err(|var| {
            GridError::at(
                path,
                uri,
                format!("data.uri: environment variable {var} is not set"),
            )
        })
    }
}

/// Replaces `${NAME}` with the environment variable NAME; returns the name of the first
/// unset variable as the error.
pub fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + len];
        out.push_str(&rest[..start]);
        out.push_str(&std::env::var(name).map_err(|_| name.to_owned())?);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The `cv:` section.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CvConfig {
    /// Number of stratified folds on the training part.
    #[serde(default = "default_folds")]
    pub folds: usize,
}

fn default_folds() -> usize {
    3
}

impl Default for CvConfig {
    fn default() -> Self {
        CvConfig {
            folds: default_folds(),
        }
    }
}

/// Metrics a sweep can rank by: the shared vocabulary (files accept the recorded ones).
pub use crate::shared::metric::Metric as SelectMetric;

/// The `select:` section.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectConfig {
    /// The cross-validation metric that ranks candidates.
    #[serde(default = "default_metric")]
    pub metric: SelectMetric,
}

fn default_metric() -> SelectMetric {
    SelectMetric::F1
}

impl Default for SelectConfig {
    fn default() -> Self {
        SelectConfig {
            metric: default_metric(),
        }
    }
}

/// The `tracking:` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingConfig {
    /// MLflow experiment name (defaults to the grid's `name`).
    #[serde(default)]
    pub experiment: Option<String>,
    /// Tracking server; `MLFLOW_TRACKING_URI` takes precedence.
    #[serde(default)]
    pub uri: Option<String>,
}

/// One grid value, a list of them (`max_depth: 8` is `max_depth: [8]`), or a distribution
/// to draw from (`{ uniform: [0.5, 1.0] }`, see [`Distribution`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A list of values to sweep.
    Many(Vec<ParamValue>),
    /// A single value.
    One(ParamValue),
    /// A distribution, as written; [`OneOrMany::distribution`] reads it.
    Dist(BTreeMap<String, Vec<ParamValue>>),
}

impl OneOrMany {
    /// The values as a list (empty for a distribution).
    pub fn values(&self) -> Vec<ParamValue> {
        match self {
            OneOrMany::Many(v) => v.clone(),
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Dist(_) => Vec::new(),
        }
    }

    /// What to draw from: a list or a single value is a choice among its values.
    pub fn distribution(&self) -> Result<Distribution, String> {
        match self {
            OneOrMany::Dist(spec) => Distribution::parse(spec),
            _ => Ok(Distribution::Choice(self.values())),
        }
    }

    /// Whether it is written as a distribution (`{ uniform: [...] }`) rather than values.
    pub fn is_distribution(&self) -> bool {
        matches!(self, OneOrMany::Dist(_))
    }
}

/// One entry of `models:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelGrid {
    /// Algorithm name, e.g. `random_forest`.
    pub algorithm: Spanned<String>,
    /// Parameter name to the values to try; absent parameters take their defaults.
    #[serde(default)]
    pub grid: BTreeMap<String, Spanned<OneOrMany>>,
}

/// A parsed grid file (checked for structure; algorithms and parameters are checked when
/// the sweep is planned).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridFile {
    /// Experiment name.
    pub name: String,
    /// The data.
    pub data: DataConfig,
    /// The train/test split.
    #[serde(default)]
    pub split: SplitSpec,
    /// Cross-validation.
    #[serde(default)]
    pub cv: CvConfig,
    /// Ranking.
    #[serde(default)]
    pub select: SelectConfig,
    /// Experiment tracking.
    #[serde(default)]
    pub tracking: TrackingConfig,
    /// Where each trial's detector cuts P(attack): `{ max_fpr: 0.001 }` and/or
    /// `{ min_detection_rate: 0.99 }`, chosen on the trial's pooled out-of-fold predictions.
    /// Absent: the cut is 0.5.
    #[serde(default)]
    pub operating_point: Option<Spanned<Target>>,
    /// How candidates are chosen: `{ strategy: random, trials: 60, seed: 1 }`,
    /// `{ strategy: halving, factor: 3, min_rows: 20000 }`; absent: every grid point.
    #[serde(default)]
    pub search: Option<Spanned<SearchConfig>>,
    /// The algorithms and their grids.
    pub models: Vec<ModelGrid>,
}

/// A grid file's problem at a known place.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    /// Unreadable, malformed, unknown or mistyped field.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// A value that parses but cannot be used, at `file:line:column`.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The grid file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
        /// What is wrong, naming the key.
        message: String,
    },
}

impl GridError {
    /// The process exit code: bad input (the grid file).
    pub fn exit_code(&self) -> u8 {
        match self {
            GridError::Yaml(e) => e.exit_code(),
            GridError::Invalid { .. } => crate::exit::BAD_INPUT,
        }
    }
}

impl GridError {
    /// An error at the place `span` came from.
    pub fn at<T>(path: &Path, span: &Spanned<T>, message: impl Into<String>) -> GridError {
        GridError::Invalid {
            path: path.to_owned(),
            line: span.referenced.line(),
            column: span.referenced.column(),
            message: message.into(),
        }
    }
}

impl GridFile {
    /// The `search:` section, or the default (every grid point).
    pub fn search(&self) -> SearchConfig {
        self.search
            .as_ref()
            .map(|s| s.value.clone())
            .unwrap_or_default()
    }

    /// Reads a grid file and checks what can be checked without the data and the models.
    pub fn from_file(path: &Path) -> Result<GridFile, GridError> {
        let grid: GridFile = read_yaml(path)?;
        grid.check(path)?;
        Ok(grid)
    }

    /// Parses and checks grid text; `path` names it in messages.
    pub fn from_yaml_str(path: &Path, text: &str) -> Result<GridFile, GridError> {
        let grid: GridFile = parse_yaml(path, text)?;
        grid.check(path)?;
        Ok(grid)
    }

    pub(crate) fn check(&self, path: &Path) -> Result<(), GridError> {
        let whole = |message: String| GridError::Invalid {
            path: path.to_owned(),
            line: 1,
            column: 1,
            message,
        };
        if self.models.is_empty() {
            return Err(whole(
                "`models` is empty: list at least one algorithm".into(),
            ));
        }
        if !(self.split.test_fraction > 0.0 && self.split.test_fraction < 1.0) {
            return Err(whole(format!(
                "split.test_fraction must be between 0 and 1 (got {})",
                self.split.test_fraction
            )));
        }
        if self.cv.folds < 2 {
            return Err(whole(format!(
                "cv.folds must be at least 2 (got {})",
                self.cv.folds
            )));
        }
        if let Some(target) = &self.operating_point
            && let Some(problem) = target.value.problem()
        {
            return Err(GridError::at(
                path,
                target,
                format!("operating_point: {problem}"),
            ));
        }
        let data = &self.data;
        match data.source.value {
            SourceKind::Csv | SourceKind::Parquet if data.path.is_none() => {
                return Err(GridError::at(
                    path,
                    &data.source,
                    "data.path is required for csv and parquet sources",
                ));
            }
            SourceKind::Synthetic if data.path.is_some() => {
                return Err(GridError::at(
                    path,
                    &data.source,
                    "data.path is not used by the synthetic source (use profile, rows, seed)",
                ));
            }
            _ => {}
        }
        if data.source.value == SourceKind::Mongodb
            && (data.uri.is_none() || data.db.is_none() || data.collection.is_none())
        {
            return Err(GridError::at(
                path,
                &data.source,
                "the mongodb source needs uri, db and collection",
            ));
        }
        if data.rows == Some(0) {
            return Err(GridError::at(
                path,
                &data.source,
                "data.rows must be at least 1",
            ));
        }
        let search = self.search();
        if let Some(span) = &self.search {
            search.check(path, span)?;
        }
        for model in &self.models {
            for (key, values) in &model.grid {
                let name = &model.algorithm.value;
                if values.value.is_distribution() {
                    if let Err(problem) = values.value.distribution() {
                        return Err(GridError::at(
                            path,
                            values,
                            format!("grid `{key}` of {name}: {problem}"),
                        ));
                    }
                    if !search.draws() {
                        return Err(GridError::at(
                            path,
                            values,
                            format!(
                                "grid `{key}` of {name} is a distribution: draws need \
                                 `search: {{ strategy: random, trials: N }}` (or halving with trials)"
                            ),
                        ));
                    }
                } else if values.value.values().is_empty() {
                    return Err(GridError::at(
                        path,
                        values,
                        format!("grid `{key}` of {} is empty", model.algorithm.value),
                    ));
                }
            }
        }
        Ok(())
    }
}
