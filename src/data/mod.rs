//! The data stage: load files, type them against a schema, validate, detect drift, split.

pub mod dataset;
pub mod drift;
pub mod infer;
pub mod load;
pub mod schema;
pub mod split;
pub mod synthetic;
pub mod typed;
pub mod validate;

use std::path::PathBuf;

pub use dataset::{Dataset, InvalidData, dataset_from_table};
pub use load::{LoadError, Table, load_file};
pub use schema::{Schema, SchemaError};

/// Where rows come from: a file, or the generator. Model files record it (as
/// `{"file": PATH}` or `{"synthetic": {...}}`) so that promotion can reload the held-out rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// A `.csv` or `.parquet` file.
    File(PathBuf),
    /// Generated rows.
    Synthetic {
        /// Which data set shape.
        profile: synthetic::Profile,
        /// How many rows.
        rows: usize,
        /// Generator seed.
        seed: u64,
    },
}

impl DataSource {
    /// Loads the rows.
    pub fn load(&self) -> Result<Table, LoadError> {
        match self {
            DataSource::File(path) => load_file(path),
            DataSource::Synthetic {
                profile,
                rows,
                seed,
            } => Ok(synthetic::generate(*profile, *rows, *seed)),
        }
    }
}
