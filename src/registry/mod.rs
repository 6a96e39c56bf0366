//! The model registry: versions of registered models in SQLite, aliases such as
//! `champion`, an append-only history of every decision, promotion policies and the
//! statistics that judge a candidate against the current champion.
//!
//! Publishing the promoted model (`promote --publish`, through [`crate::storage`]) and
//! mirroring alias moves into MLflow's registry (`tracking::mirror`) happen in the command
//! layer after [`store::Registry::record_decision`] returns [`store::Recorded::Done`].

pub mod policy;
pub mod promotion;
pub mod stats;
pub mod store;

use std::path::PathBuf;

pub use policy::{Policy, PolicyError};
pub use store::Registry;

/// The registry database in a state directory (the run store's file).
pub fn path_in(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("netsec.db")
}

/// A registry that cannot be used as asked.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The database could not be opened or migrated (missing directory rights, a file that
    /// is not a SQLite database, a newer schema).
    #[error("cannot open the registry {}", path.display())]
    Open {
        /// Database file.
        path: PathBuf,
        /// The cause.
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("registry query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// Stored JSON that does not decode.
    #[error("the registry holds an unreadable record: {what}")]
    Corrupt {
        /// Which record.
        what: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// No such registered model.
    #[error("no registered model named `{0}` (see `netsec registry list`)")]
    UnknownModel(String),
    /// No such version.
    #[error("model `{model}` has no version {version}")]
    UnknownVersion {
        /// Model name.
        model: String,
        /// Version asked for.
        version: i64,
    },
    /// The alias is not set.
    #[error("model `{model}` has no `{alias}` alias")]
    NoAlias {
        /// Model name.
        model: String,
        /// Alias.
        alias: String,
    },
    /// A rollback with nothing before the current version.
    #[error("`{alias}` of `{model}` has held no version before {current}: name one with --to")]
    NothingToRollBack {
        /// Model name.
        model: String,
        /// Alias.
        alias: String,
        /// Where it points.
        current: i64,
    },
    /// A rollback to where the alias already points.
    #[error("`{alias}` of `{model}` already points at version {version}")]
    AlreadyThere {
        /// Model name.
        model: String,
        /// Alias.
        alias: String,
        /// Version.
        version: i64,
    },
    /// A version's model file is gone.
    #[error("model file {} of a registered version cannot be read", path.display())]
    FileMissing {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A model file whose bytes no longer match their recorded sha256.
    #[error(
        "model file {} does not match its record: sha256 {actual}, recorded {expected}",
        path.display()
    )]
    ShaMismatch {
        /// The file.
        path: PathBuf,
        /// Recorded sha256.
        expected: String,
        /// sha256 of the bytes found.
        actual: String,
    },
}

impl RegistryError {
    /// The process exit code: a runtime failure for the database, bad input for what the user named.
    pub fn exit_code(&self) -> u8 {
        match self {
            RegistryError::Open { .. } => crate::exit::RUNTIME_FAILURE,
            RegistryError::Query(_) => crate::exit::RUNTIME_FAILURE,
            RegistryError::Corrupt { .. } => crate::exit::RUNTIME_FAILURE,
            RegistryError::UnknownModel(_) => crate::exit::BAD_INPUT,
            RegistryError::UnknownVersion { .. } => crate::exit::BAD_INPUT,
            RegistryError::NoAlias { .. } => crate::exit::BAD_INPUT,
            RegistryError::NothingToRollBack { .. } => crate::exit::BAD_INPUT,
            RegistryError::AlreadyThere { .. } => crate::exit::BAD_INPUT,
            RegistryError::FileMissing { .. } => crate::exit::BAD_INPUT,
            RegistryError::ShaMismatch { .. } => crate::exit::BAD_INPUT,
        }
    }
}

impl RegistryError {
    /// Whether the error is the user's input (exit 2) rather than a runtime failure (1).
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            RegistryError::Open { .. } | RegistryError::Query(_) | RegistryError::Corrupt { .. }
        )
    }
}
