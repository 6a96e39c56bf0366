//! Where the served model comes from: a model file on disk, or a store — `file://DIR` or
//! `s3://BUCKET/PREFIX/NAME` — holding a pointer (`current.json`) that names a
//! content-addressed model file. The pointer format is defined in
//! [`crate::storage::pointer`]; a publisher (`netsec publish`) writes the model first and
//! the pointer last, so a reader never sees a pointer to a half-written model.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::answer::RowAnswers;
use crate::data::dataset::FeatureEncoding;
use crate::model_file::{ModelFile, ModelFileError};
use crate::shared::Classes;
use crate::shared::guard::Guard;
use crate::shared::hash::hex;
use crate::storage::{
    ModelStore, ObjectStore, POINTER_FILE, Pointer, PointerError, S3Options, StorageError, StoreUrl,
};

/// A model that cannot be loaded or is refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The model file cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The store cannot be read (missing pointer or model, server or network failure).
    #[error(transparent)]
    Store(#[from] StorageError),
    /// The pointer is not a valid pointer file.
    #[error(transparent)]
    Pointer(#[from] PointerError),
    /// The model file's bytes do not hash to the pointer's sha256.
    #[error("{location}: sha256 is {actual}, the pointer says {expected}")]
    Checksum {
        /// The model file's URL.
        location: String,
        /// sha256 named by the pointer.
        expected: String,
        /// sha256 of the bytes read.
        actual: String,
    },
    /// Not a usable model file.
    #[error(transparent)]
    ModelFile(#[from] ModelFileError),
    /// The model file parses but its parts disagree (schema, encoding, model width).
    #[error("{}: inconsistent model file ({message})", path.display())]
    Inconsistent {
        /// The model file.
        path: PathBuf,
        /// What disagrees.
        message: String,
    },
    /// A source this build cannot read.
    #[error(
        "unsupported model source `{0}` (expected a model file path, file://DIR or \
         s3://BUCKET/PREFIX/NAME)"
    )]
    Unsupported(String),
}

impl SourceError {
    /// The process exit code: bad input (a missing or invalid model or pointer), except the store's server or network.
    pub fn exit_code(&self) -> u8 {
        match self {
            SourceError::Read { .. } => crate::exit::BAD_INPUT,
            SourceError::Store(e) => e.exit_code(),
            SourceError::Pointer(_) => crate::exit::BAD_INPUT,
            SourceError::Checksum { .. } => crate::exit::BAD_INPUT,
            SourceError::ModelFile(_) => crate::exit::BAD_INPUT,
            SourceError::Inconsistent { .. } => crate::exit::BAD_INPUT,
            SourceError::Unsupported(_) => crate::exit::BAD_INPUT,
        }
    }
}

impl SourceError {
    /// Whether the error is the user's input (exit 2: a missing or invalid model or
    /// pointer) rather than a runtime failure (exit 1: the store's server or network).
    pub fn is_bad_input(&self) -> bool {
        match self {
            SourceError::Store(e) => e.is_bad_input(),
            _ => true,
        }
    }
}

/// What `--model` names.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// One model file, served as is (no reload).
    File(PathBuf),
    /// The store directory of one model name, with a [`POINTER_FILE`]; polled for new
    /// versions.
    Store(ModelStore),
}

impl ModelSource {
    /// Opens `--model`: `file://DIR`, `s3://BUCKET/PREFIX/NAME` (or a directory path) is a
    /// store, anything else a model file path.
    pub async fn open(text: &str, s3: &S3Options) -> Result<ModelSource, SourceError> {
        if text.starts_with("file://") || text.starts_with("s3://") {
            let url = StoreUrl::parse(text)?;
            return Ok(ModelSource::Store(ModelStore::open(&url, s3).await?));
        }
        if text.contains("://") {
            return Err(SourceError::Unsupported(text.to_owned()));
        }
        let path = PathBuf::from(text);
        if path.is_dir() {
            Ok(ModelSource::Store(
                ModelStore::open(&StoreUrl::File(path), s3).await?,
            ))
        } else {
            Ok(ModelSource::File(path))
        }
    }

    /// Loads the current model: the file itself, or the one the pointer names (verified).
    pub async fn load(&self) -> Result<LoadedModel, SourceError> {
        match self {
            ModelSource::File(path) => {
                let bytes = std::fs::read(path).map_err(|source| SourceError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let sha256 = hex(&Sha256::digest(&bytes));
                LoadedModel::from_bytes(path, &bytes, sha256, None)
            }
            ModelSource::Store(store) => {
                let pointer = read_pointer(store).await?;
                load_pointed(store, pointer).await
            }
        }
    }
}

/// Reads and checks the pointer of a store.
pub async fn read_pointer(store: &ModelStore) -> Result<Pointer, SourceError> {
    let url = store.url(POINTER_FILE);
    let bytes = store
        .get(POINTER_FILE)
        .await?
        .ok_or(StorageError::NotFound { url: url.clone() })?;
    Ok(Pointer::parse(&url, &bytes)?)
}

/// Loads and verifies the model a pointer in `store` names (parsing on the blocking pool:
/// a model file can take a while to parse and must not stall requests).
pub async fn load_pointed(
    store: &ModelStore,
    pointer: Pointer,
) -> Result<LoadedModel, SourceError> {
    let location = store.url(&pointer.path);
    let bytes = store
        .get(&pointer.path)
        .await?
        .ok_or(StorageError::NotFound {
            url: location.clone(),
        })?;
    let actual = hex(&Sha256::digest(&bytes));
    // Only a test's twin loads unverified bytes (see `Guard::ServeVerify`).
    if actual != pointer.sha256 && !Guard::ServeVerify.disabled() {
        return Err(SourceError::Checksum {
            location,
            expected: pointer.sha256,
            actual,
        });
    }
    let path = match store {
        ModelStore::File(files) => files.path(&pointer.path),
        ModelStore::S3(_) => PathBuf::from(location),
    };
    let shown = path.clone();
    tokio::task::spawn_blocking(move || {
        LoadedModel::from_bytes(&path, &bytes, actual, Some(pointer))
    })
    .await
    // Only a panic or a runtime shutting down ends the task early.
    .unwrap_or_else(|e| {
        Err(SourceError::Read {
            path: shown,
            source: std::io::Error::other(e),
        })
    })
}

/// A model ready to answer requests, with what identifies it.
#[derive(Debug)]
pub struct LoadedModel {
    /// Model name: the pointer's, or the experiment's for a plain file.
    pub name: String,
    /// Registry version (`None` for a plain model file).
    pub version: Option<u64>,
    /// sha256 of the model file's bytes.
    pub sha256: String,
    /// Where it was read from: a file path, or the object's `s3://` URL.
    pub path: PathBuf,
    /// Seconds since the Unix epoch when it was loaded.
    pub loaded_at: u64,
    /// The model file.
    pub file: ModelFile,
    /// Allowed values of each schema column (canonical text), in schema order; `None`
    /// where the column does not restrict its values.
    pub allowed: Vec<Option<BTreeSet<String>>>,
    /// Number of encoded features.
    pub width: usize,
    /// The classes the model answers.
    pub classes: Classes,
    /// How its rows are answered (label values and names per class, precomputed).
    pub answers: RowAnswers,
}

impl LoadedModel {
    /// Parses and checks model file bytes read from `path` (named in messages), with the
    /// sha256 of the bytes and the pointer that named them, if any.
    pub fn from_bytes(
        path: &Path,
        bytes: &[u8],
        sha256: String,
        pointer: Option<Pointer>,
    ) -> Result<LoadedModel, SourceError> {
        let file = ModelFile::from_bytes(path, bytes)?;
        let inconsistent = |message: String| SourceError::Inconsistent {
            path: path.to_owned(),
            message,
        };
        if FeatureEncoding::from_schema(&file.schema) != file.encoding {
            return Err(inconsistent(
                "the feature encoding does not follow from the schema".into(),
            ));
        }
        let width = file.encoding.feature_names().len();
        if file.model.n_features() != width {
            return Err(inconsistent(format!(
                "the model expects {} features, the encoding gives {width}",
                file.model.n_features()
            )));
        }
        let allowed = file
            .schema
            .columns
            .iter()
            .map(|spec| {
                spec.values
                    .as_ref()
                    .map(|v| v.iter().map(|x| x.canonical()).collect())
            })
            .collect();
        let (name, version) = match pointer {
            Some(p) => (p.name, Some(p.version)),
            None => (file.experiment.clone(), None),
        };
        let loaded_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let classes = file.classes();
        let answers = RowAnswers::new(&file.schema.label, classes.clone(), file.threshold());
        Ok(LoadedModel {
            classes,
            answers,
            name,
            version,
            sha256,
            path: path.to_owned(),
            loaded_at,
            file,
            allowed,
            width,
        })
    }

    /// The version as shown in `/model` and metrics: the registry version, or `file`.
    pub fn version_text(&self) -> String {
        self.version
            .map_or_else(|| "file".to_owned(), |v| v.to_string())
    }
}
