//! `netsec predict`: scoring a whole file with a model file, offline, with the same schema
//! checks and encoding as the HTTP routes.

use std::path::{Path, PathBuf};

use polars::prelude::{CsvWriter, SerWriter};

use super::answer::RowAnswers;
use crate::data::dataset::{InvalidData, OTHER_CATEGORY, invalid};
use crate::data::load::LoadError;
use crate::data::load_file;
use crate::data::typed::{LabelPresence, type_table};
use crate::fsutil::write_atomic;
use crate::model_file::{ModelFile, ModelFileError};
use crate::models::ModelError;

/// What [`predict_file`] did, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicted {
    /// Rows predicted.
    pub rows: usize,
    /// Rows predicted per class: the class name and the count, in class-id order.
    pub classes: Vec<(String, u64)>,
    /// Rows with `is_attack`; `None` when the model has no normal class.
    pub attacks: Option<u64>,
    /// Whether the model is binary (then the class counts already say how many attacks).
    pub binary: bool,
    /// The model's algorithm.
    pub algorithm: String,
    /// The model's trial key.
    pub trial_key: String,
    /// sha256 of the model file.
    pub sha256: String,
}

/// Why [`predict_file`] failed.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The model file cannot be read or parsed.
    #[error(transparent)]
    ModelFile(#[from] ModelFileError),
    /// The input cannot be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The input does not fit the model's schema.
    #[error("the input does not match the schema of model {}", model.display())]
    Schema {
        /// The model file.
        model: PathBuf,
        /// The first problem and the count.
        #[source]
        source: InvalidData,
    },
    /// The model cannot predict these rows.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The answer columns cannot be added.
    #[error(transparent)]
    Frame(#[from] polars::error::PolarsError),
    /// The output cannot be written.
    #[error("writing {}", path.display())]
    Write {
        /// The output file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl PredictError {
    /// The process exit code: each cause's own, a runtime failure for the output.
    pub fn exit_code(&self) -> u8 {
        match self {
            PredictError::ModelFile(e) => e.exit_code(),
            PredictError::Load(e) => e.exit_code(),
            PredictError::Schema { source, .. } => source.exit_code(),
            PredictError::Model(e) => e.exit_code(),
            PredictError::Frame(_) | PredictError::Write { .. } => crate::exit::RUNTIME_FAILURE,
        }
    }
}

/// Checks `input` against the schema of the model in `model`, predicts, and writes the
/// rows with the answer columns of [`super::answer`] (and the `p_<class>` columns with
/// `with_probabilities`) to `output` (CSV, atomically). The entry point of `netsec predict`.
pub async fn predict_file(
    model: &Path,
    input: &Path,
    output: &Path,
    with_probabilities: bool,
) -> Result<Predicted, PredictError> {
    let (file, sha256) = ModelFile::load(model)?;
    let table = load_file(input)?;
    let schema = &file.schema;
    let mut typed = type_table(&table, schema, LabelPresence::Optional);
    // A category the model never saw is not an error: it goes to the `<other>` bucket,
    // as documented in the README, and the user hears about it.
    let unseen = typed.accept_unseen_categories();
    if !typed.issues.is_empty() {
        return Err(PredictError::Schema {
            model: model.to_owned(),
            source: invalid(&table, schema, &typed),
        });
    }
    for u in &unseen {
        tracing::warn!(
            "column `{}`: {} rows have categories not seen in training (e.g. `{}`); \
             encoded as `{}`",
            u.column,
            u.rows,
            u.examples.join("`, `"),
            OTHER_CATEGORY
        );
    }
    let features = file.encoding.encode(&typed);
    let proba = file.model.predict_proba(features.view())?;
    let proba = proba.as_standard_layout();
    let proba = proba.as_slice().unwrap_or_default();
    let classes = file.classes();
    let answers = RowAnswers::new(&schema.label, classes.clone(), file.threshold());
    let rows = answers.answer_all(proba);
    let mut frame = table.frame.clone();
    answers.add_columns(&mut frame, &rows, with_probabilities.then_some(proba))?;
    write_atomic(output, |w| {
        CsvWriter::new(w)
            .finish(&mut frame)
            .map_err(std::io::Error::other)
    })
    .map_err(|source| PredictError::Write {
        path: output.to_owned(),
        source,
    })?;
    let counts = answers.counts(&rows);
    Ok(Predicted {
        rows: table.len(),
        classes: classes.names.iter().cloned().zip(counts).collect(),
        attacks: classes
            .has_normal()
            .then(|| rows.iter().filter(|a| a.is_attack() == Some(true)).count() as u64),
        binary: classes.is_binary(),
        algorithm: file.algorithm.clone(),
        trial_key: file.trial_key.clone(),
        sha256,
    })
}
