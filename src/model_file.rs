//! Model files: a fitted model together with everything needed to use and judge it — the
//! schema and feature encoding it was trained with, the training-data fingerprint, its
//! parameters and metrics. Files are JSON, named by their sha256 so that a file's name
//! vouches for its content. They hold no timestamp: the same trial on the same data gives
//! byte-identical files, so re-publishing a model uploads nothing new.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::DataSource;
use crate::data::dataset::FeatureEncoding;
use crate::data::labels::LabelChoice;
use crate::data::schema::Schema;
use crate::data::split::SplitSpec;
use crate::data::typical::TypicalValue;
use crate::fsutil::write_atomic;
use crate::models::metrics::{MeanStd, Metrics};
use crate::models::operating_point::{OperatingPoint, Roc};
use crate::models::{FittedModel, Params};
use crate::shared::Classes;
use crate::shared::hash::hex;

/// The `format` field of every model file.
pub const FORMAT: &str = "netsec-model";
/// The version of the layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A model file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// Unreadable file.
    #[error("cannot read model file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not JSON, or not a netsec model file of a version this build reads.
    #[error("{}: not a netsec model file ({message})", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Writing failed.
    #[error("cannot write model file {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl ModelFileError {
    /// The process exit code: bad input for a file that cannot be read or is not a model file, a runtime failure for a failed write.
    pub fn exit_code(&self) -> u8 {
        match self {
            ModelFileError::Read { .. } => crate::exit::BAD_INPUT,
            ModelFileError::Format { .. } => crate::exit::BAD_INPUT,
            ModelFileError::Write { .. } => crate::exit::RUNTIME_FAILURE,
        }
    }
}

/// Metrics stored with a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// Cross-validation mean and std by metric name.
    pub cv: BTreeMap<String, MeanStd>,
    /// Held-out test metrics.
    pub test: Option<Metrics>,
}

/// Everything a model file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Layout version, [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Experiment that produced it.
    pub experiment: String,
    /// The trial key.
    pub trial_key: String,
    /// Algorithm name.
    pub algorithm: String,
    /// Complete parameters.
    pub params: Params,
    /// The schema the model was trained with (inputs are checked against it).
    pub schema: Schema,
    /// How schema columns become features.
    pub encoding: FeatureEncoding,
    /// Fingerprint of the training data (all rows the split was drawn from).
    pub data_fingerprint: String,
    /// Where those rows came from (file paths as written in the grid file, relative to the
    /// directory the sweep ran in). Absent in files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_source: Option<DataSource>,
    /// The split used.
    pub split: SplitSpec,
    /// Cross-validation folds used.
    pub cv_folds: usize,
    /// Scores.
    pub metrics: ModelMetrics,
    /// netsec version that wrote it.
    pub netsec_version: String,
    /// How the grid reshaped the schema's label (`task`, `group`); absent when it did not.
    /// Rebuilding the model's holdout applies it again.
    #[serde(default, skip_serializing_if = "LabelChoice::is_default")]
    pub label_choice: LabelChoice,
    /// The classes the model answers, in class-id order. Absent for a binary model: its
    /// classes are normal (id 0) and attack (id 1), named by the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Classes>,
    /// The cut on P(attack) the model flags attacks at, chosen for the grid's
    /// operating-point target, with the out-of-fold curve it was read from; absent: 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<ModelOperatingPoint>,
    /// Per feature column, the most frequent value or the median of the training rows (the
    /// serving page pre-fills its form with them); absent in files written before they were
    /// kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typical_values: Option<Vec<TypicalValue>>,
    /// The boosting rounds the model kept when early stopping (`n_iter_no_change`) was on;
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_estimators_used: Option<usize>,
    /// The fitted model.
    pub model: FittedModel,
}

/// A model's operating point and the out-of-fold ROC curve (thinned, exact counts) that
/// `netsec model threshold` moves it along without a fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOperatingPoint {
    /// Target, cut and rates.
    #[serde(flatten)]
    pub point: OperatingPoint,
    /// The pooled out-of-fold curve of the trial.
    pub roc: Roc,
}

impl ModelFile {
    /// The cut on P(attack): the operating point's, else 0.5.
    pub fn threshold(&self) -> f64 {
        self.operating_point
            .as_ref()
            .map_or(crate::models::metrics::THRESHOLD, |o| o.point.threshold)
    }

    /// The classes the model answers, in class-id order.
    pub fn classes(&self) -> Classes {
        self.classes.clone().unwrap_or_else(|| {
            let names = &self.schema.label.names;
            Classes::binary(&names.negative, &names.positive)
        })
    }

    /// The `classes` field for a model of `classes`: absent when binary, as files have
    /// always been.
    pub fn classes_field(classes: &Classes) -> Option<Classes> {
        (!classes.is_binary()).then(|| classes.clone())
    }

    /// Serializes the file; returns the bytes and their sha256.
    pub fn to_bytes(&self) -> (Vec<u8>, String) {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        let sha = hex(&Sha256::digest(&bytes));
        (bytes, sha)
    }

    /// Writes the file as `<dir>/<sha256>.json` (atomically; a no-op when it exists) and
    /// returns its path and sha256.
    pub fn save_content_addressed(&self, dir: &Path) -> Result<(PathBuf, String), ModelFileError> {
        let (bytes, sha) = self.to_bytes();
        let path = dir.join(format!("{sha}.json"));
        if !path.exists() {
            std::fs::create_dir_all(dir)
                .and_then(|()| write_atomic(&path, |w| w.write_all(&bytes)))
                .map_err(|source| ModelFileError::Write {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok((path, sha))
    }

    /// Writes the file at `path` (atomically) and returns its sha256.
    pub fn save(&self, path: &Path) -> Result<String, ModelFileError> {
        let (bytes, sha) = self.to_bytes();
        write_atomic(path, |w| w.write_all(&bytes)).map_err(|source| ModelFileError::Write {
            path: path.to_owned(),
            source,
        })?;
        Ok(sha)
    }

    /// Reads and checks a model file; returns it with the sha256 of its bytes.
    pub fn load(path: &Path) -> Result<(ModelFile, String), ModelFileError> {
        let bytes = std::fs::read(path).map_err(|source| ModelFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let sha = hex(&Sha256::digest(&bytes));
        Ok((ModelFile::from_bytes(path, &bytes)?, sha))
    }

    /// Parses model file bytes that came from `path` (used in messages).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<ModelFile, ModelFileError> {
        let format_error = |message: String| ModelFileError::Format {
            path: path.to_owned(),
            message,
        };
        #[derive(Deserialize)]
        struct Header {
            format: Option<String>,
            format_version: Option<u32>,
        }
        let header: Header =
            serde_json::from_slice(bytes).map_err(|e| format_error(e.to_string()))?;
        if header.format.as_deref() != Some(FORMAT) {
            return Err(format_error(format!("`format` is not \"{FORMAT}\"")));
        }
        if header.format_version != Some(FORMAT_VERSION) {
            return Err(format_error(format!(
                "format_version {:?}; this netsec reads version {FORMAT_VERSION}",
                header.format_version
            )));
        }
        let file: ModelFile =
            serde_json::from_slice(bytes).map_err(|e| format_error(e.to_string()))?;
        let classes = file.classes();
        if file.model.n_classes() != classes.len() || classes.normal.len() != classes.len() {
            return Err(format_error(format!(
                "the model answers {} classes but the file names {}",
                file.model.n_classes(),
                classes.len()
            )));
        }
        Ok(file)
    }
}
