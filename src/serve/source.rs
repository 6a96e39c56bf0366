//! Where the served model comes from: a model file on disk, or a `file://` store directory
//! holding a pointer (`current.json`) that names a content-addressed model file.
//!
//! # Pointer format
//!
//! `current.json` in the store directory of one model name (e.g. `store/netsec-phishing/`):
//!
//! ```json
//! {"format": "netsec-pointer", "name": "netsec-phishing", "version": 3,
//!  "sha256": "9f2c…", "path": "9f2c…/model.json"}
//! ```
//!
//! `path` is relative to the pointer's directory (an absolute path is used as is) and the
//! file's sha256 must equal `sha256`. A publisher writes the model file first and the
//! pointer last (atomically, by rename), so a reader never sees a pointer to a half-written
//! model; rolling back is writing an older pointer again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::dataset::FeatureEncoding;
use crate::data::schema::hex;
use crate::model_file::{ModelFile, ModelFileError};

/// The `format` field of every pointer file.
pub const POINTER_FORMAT: &str = "netsec-pointer";
/// The pointer's file name inside a store directory.
pub const POINTER_FILE: &str = "current.json";

/// A model that cannot be loaded or is refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The pointer or model file cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The pointer is not a valid pointer file.
    #[error("{}: not a netsec pointer ({message})", path.display())]
    Pointer {
        /// The pointer file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The model file's bytes do not hash to the pointer's sha256.
    #[error("{}: sha256 is {actual}, the pointer says {expected}", path.display())]
    Checksum {
        /// The model file.
        path: PathBuf,
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
    #[error("unsupported model source `{0}` (expected a model file path or file://DIR)")]
    Unsupported(String),
}

/// The pointer file: which model version is current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pointer {
    /// Always [`POINTER_FORMAT`].
    pub format: String,
    /// Registered model name.
    pub name: String,
    /// Registry version of the model.
    pub version: u64,
    /// sha256 of the model file's bytes.
    pub sha256: String,
    /// Model file, relative to the pointer's directory.
    pub path: String,
}

impl Pointer {
    /// Reads and checks a pointer file.
    pub fn read(path: &Path) -> Result<Pointer, SourceError> {
        let bytes = std::fs::read(path).map_err(|source| SourceError::Read {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |message: String| SourceError::Pointer {
            path: path.to_owned(),
            message,
        };
        let pointer: Pointer =
            serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if pointer.format != POINTER_FORMAT {
            return Err(invalid(format!("`format` is not \"{POINTER_FORMAT}\"")));
        }
        let is_sha = pointer.sha256.len() == 64
            && pointer
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_sha {
            return Err(invalid("`sha256` is not 64 lower-case hex digits".into()));
        }
        Ok(pointer)
    }

    /// Writes the pointer atomically (for publishers and tests).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(path, |w| w.write_all(&bytes))
    }
}

/// What `--model` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// One model file, served as is (no reload).
    File(PathBuf),
    /// A store directory with a [`POINTER_FILE`]; polled for new versions.
    Store(PathBuf),
}

impl ModelSource {
    /// Parses `--model`: `file://DIR` (or a directory path) is a store, anything else a
    /// model file path.
    pub fn parse(text: &str) -> Result<ModelSource, SourceError> {
        if let Some(dir) = text.strip_prefix("file://") {
            return Ok(ModelSource::Store(PathBuf::from(dir)));
        }
        if text.contains("://") {
            return Err(SourceError::Unsupported(text.to_owned()));
        }
        let path = PathBuf::from(text);
        if path.is_dir() {
            Ok(ModelSource::Store(path))
        } else {
            Ok(ModelSource::File(path))
        }
    }

    /// The pointer file of a store source.
    pub fn pointer_path(&self) -> Option<PathBuf> {
        match self {
            ModelSource::File(_) => None,
            ModelSource::Store(dir) => Some(dir.join(POINTER_FILE)),
        }
    }

    /// Loads the current model: the file itself, or the one the pointer names (verified).
    pub fn load(&self) -> Result<LoadedModel, SourceError> {
        match self {
            ModelSource::File(path) => {
                let bytes = read(path)?;
                let sha256 = hex(&Sha256::digest(&bytes));
                LoadedModel::from_bytes(path, &bytes, sha256, None)
            }
            ModelSource::Store(dir) => {
                let pointer = Pointer::read(&dir.join(POINTER_FILE))?;
                load_pointed(dir, pointer)
            }
        }
    }
}

/// Loads and verifies the model a pointer in `dir` names.
pub fn load_pointed(dir: &Path, pointer: Pointer) -> Result<LoadedModel, SourceError> {
    let path = dir.join(&pointer.path);
    let bytes = read(&path)?;
    let actual = hex(&Sha256::digest(&bytes));
    if actual != pointer.sha256 {
        return Err(SourceError::Checksum {
            path,
            expected: pointer.sha256,
            actual,
        });
    }
    LoadedModel::from_bytes(&path, &bytes, actual, Some(pointer))
}

fn read(path: &Path) -> Result<Vec<u8>, SourceError> {
    std::fs::read(path).map_err(|source| SourceError::Read {
        path: path.to_owned(),
        source,
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
    /// Where it was read from.
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
}

impl LoadedModel {
    fn from_bytes(
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
        Ok(LoadedModel {
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
