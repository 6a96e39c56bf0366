//! The two small JSON documents of a store besides the model files: the pointer
//! (`current.json`, which model version is current) and a release's `metadata.json`.
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
//! `path` is relative to the pointer's directory (in a `file://` store an absolute path is
//! used as is) and the file's sha256 must equal `sha256`. A publisher writes the model file
//! first and the pointer last (atomically), so a reader never sees a pointer to a
//! half-written model; rolling back is writing an older pointer again.

use serde::{Deserialize, Serialize};

/// The `format` field of every pointer file.
pub const POINTER_FORMAT: &str = "netsec-pointer";
/// The pointer's key inside the store directory of one model name.
pub const POINTER_FILE: &str = "current.json";
/// The `format` field of every release metadata file.
pub const METADATA_FORMAT: &str = "netsec-release";

/// A pointer that is not a valid pointer file.
#[derive(Debug, thiserror::Error)]
#[error("{location}: not a netsec pointer ({message})")]
pub struct PointerError {
    /// Where it was read from.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl PointerError {
    /// The process exit code: a runtime failure (the store holds a broken pointer; serving a store classifies it as bad input through its own error).
    pub fn exit_code(&self) -> u8 {
        crate::exit::RUNTIME_FAILURE
    }
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
    /// The pointer to version `version` of `name`, stored as `<sha256>/model.json`.
    pub fn new(name: &str, version: u64, sha256: &str) -> Pointer {
        Pointer {
            format: POINTER_FORMAT.to_owned(),
            name: name.to_owned(),
            version,
            sha256: sha256.to_owned(),
            path: model_key(sha256),
        }
    }

    /// Parses and checks pointer bytes read from `location` (used in messages).
    pub fn parse(location: &str, bytes: &[u8]) -> Result<Pointer, PointerError> {
        let invalid = |message: String| PointerError {
            location: location.to_owned(),
            message,
        };
        let pointer: Pointer = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if pointer.format != POINTER_FORMAT {
            return Err(invalid(format!("`format` is not \"{POINTER_FORMAT}\"")));
        }
        if !is_sha256(&pointer.sha256) {
            return Err(invalid("`sha256` is not 64 lower-case hex digits".into()));
        }
        Ok(pointer)
    }

    /// The pointer as written to a store (pretty JSON).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// What `<sha256>/metadata.json` says about a published model, beside its model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Always [`METADATA_FORMAT`].
    pub format: String,
    /// Registered model name.
    pub name: String,
    /// Registry version when first published.
    pub version: u64,
    /// sha256 of the model file's bytes.
    pub sha256: String,
    /// Size of the model file in bytes.
    pub size: u64,
    /// Algorithm.
    pub algorithm: String,
    /// Holdout metrics recorded by the registry.
    pub metrics: serde_json::Value,
    /// Hash of the schema the model was trained with.
    pub schema_hash: String,
    /// Fingerprint of the training data.
    pub data_fingerprint: String,
    /// When it was first published (RFC 3339, UTC).
    pub published_at: String,
    /// Who published it.
    pub actor: String,
}

/// The key of a model file below the store directory of its name.
pub fn model_key(sha256: &str) -> String {
    format!("{sha256}/model.json")
}

/// The key of a model's metadata below the store directory of its name.
pub fn metadata_key(sha256: &str) -> String {
    format!("{sha256}/metadata.json")
}

/// Whether `text` is 64 lower-case hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_round_trips_and_bad_ones_are_named() {
        let sha = "a".repeat(64);
        let pointer = Pointer::new("phish", 3, &sha);
        assert_eq!(pointer.path, format!("{sha}/model.json"));
        assert_eq!(Pointer::parse("x", &pointer.to_json()).unwrap(), pointer);
        let err = Pointer::parse("s3://b/p/current.json", b"{}").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("s3://b/p/current.json: not a netsec pointer")
        );
        let mut bad = pointer.clone();
        bad.sha256 = "ABC".into();
        let err = Pointer::parse("x", &bad.to_json()).unwrap_err();
        assert!(err.message.contains("sha256"), "{err}");
    }
}
