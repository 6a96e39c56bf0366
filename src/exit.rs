//! Exit codes: 0 success, 1 runtime failure (server, I/O), 2 bad input (config, data,
//! arguments), 3 rejected by policy — so CI can tell "rejected" from "broken".

use crate::config::grid::GridError;
use crate::config::yaml::YamlError;
use crate::data::infer::InferError;
use crate::data::{InvalidData, LoadError, SchemaError};
use crate::model_file::ModelFileError;
use crate::models::ParamError;
use crate::registry::promotion::HoldoutError;
use crate::registry::{PolicyError, RegistryError};

/// How a command ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything went as asked (exit 0).
    Success,
    /// The command ran and found the input invalid, after reporting why (exit 2).
    Invalid,
    /// A policy rejected the candidate (exit 3).
    Rejected,
}

impl Outcome {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Invalid => BAD_INPUT,
            Outcome::Rejected => 3,
        }
    }
}

/// Exit code of a runtime failure (server, I/O).
pub const RUNTIME_FAILURE: u8 = 1;
/// Exit code of bad input (config, data, arguments).
pub const BAD_INPUT: u8 = 2;

/// Bad command-line usage that clap cannot catch (e.g. an argument that must name a file
/// that does not exist).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A failure after the command's main change was committed (publishing after a promotion
/// or a rollback): a runtime failure (exit 1) whatever caused it, since the input was
/// accepted and acted on. Attached as the outermost context of the error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AfterCommit(pub String);

/// The exit code for an error: bad input when any error in its chain is of a bad-input
/// type, a runtime failure otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<AfterCommit>().is_some() {
        return RUNTIME_FAILURE;
    }
    let bad_input = err.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.is::<YamlError>()
            || cause.is::<SchemaError>()
            || cause.is::<LoadError>()
            || cause.is::<InvalidData>()
            || cause.is::<InferError>()
            || cause.is::<GridError>()
            || cause.is::<ParamError>()
            || cause.is::<PolicyError>()
            || cause.is::<crate::config::retrain::RetrainConfigError>()
            || cause.is::<HoldoutError>()
            || cause
                .downcast_ref::<RegistryError>()
                .is_some_and(RegistryError::is_bad_input)
            || cause
                .downcast_ref::<crate::serve::SourceError>()
                .is_some_and(crate::serve::SourceError::is_bad_input)
            || cause
                .downcast_ref::<crate::storage::StorageError>()
                .is_some_and(crate::storage::StorageError::is_bad_input)
            || matches!(
                cause.downcast_ref::<ModelFileError>(),
                Some(ModelFileError::Read { .. } | ModelFileError::Format { .. })
            )
            || cause
                .downcast_ref::<crate::ingest::mongo::MongoError>()
                .is_some_and(|e| e.is_bad_input())
            || matches!(
                cause.downcast_ref::<crate::models::ModelError>(),
                Some(crate::models::ModelError::FeatureCount { .. })
            )
    });
    if bad_input {
        BAD_INPUT
    } else {
        RUNTIME_FAILURE
    }
}

/// Whether the error is a closed stdout (e.g. `netsec ... | head`), which is a normal end.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
