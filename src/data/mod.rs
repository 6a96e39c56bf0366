//! The data stage: load files, type them against a schema, validate, detect drift, split.

pub mod dataset;
pub mod drift;
pub mod infer;
pub mod labels;
pub mod load;
pub mod schema;
pub mod split;
pub mod synthetic;
pub mod typed;
pub mod typical;
pub mod validate;

use std::path::PathBuf;

pub use dataset::{Dataset, InvalidData, dataset_from_table};
pub use load::{LoadError, Table, load_file};
pub use schema::{Schema, SchemaError};

/// Where rows come from: a file, the generator or a MongoDB collection. Model files record
/// it (as `{"file": PATH}`, `{"synthetic": {...}}` or `{"mongodb": {...}}`) so that
/// promotion can reload the held-out rows.
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
    /// A MongoDB collection, read by the ingest stage (`ingest::mongo`).
    Mongodb(MongoSource),
}

/// A MongoDB collection as a grid file names it, without credentials.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MongoSource {
    /// The connection string as written in the grid file, made safe to store by
    /// `ingest::mongo::credential_free`: `${VAR}` references are kept unexpanded
    /// (credentials belong in the environment), a user and password written in literally
    /// are removed, and only harmless options (`authSource`, `replicaSet`, `tls`, ...) are
    /// kept, since others such as `authMechanismProperties` can carry a token.
    pub uri: String,
    /// Database.
    pub db: String,
    /// Collection.
    pub collection: String,
    /// Filter of the documents read, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<serde_json::Value>,
}

impl DataSource {
    /// Loads the rows of a file or the generator. A MongoDB collection is not read here
    /// (the data stage knows no database): it is [`LoadError::Remote`], and
    /// `ingest::mongo::pull` reads it.
    pub fn load(&self) -> Result<Table, LoadError> {
        match self {
            DataSource::File(path) => load_file(path),
            DataSource::Synthetic {
                profile,
                rows,
                seed,
            } => Ok(synthetic::generate(*profile, *rows, *seed)),
            DataSource::Mongodb(m) => Err(LoadError::Remote {
                what: format!("MongoDB collection {}.{}", m.db, m.collection),
            }),
        }
    }
}
