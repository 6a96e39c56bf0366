//! Exporting a netsec model file to a format other programs run: ONNX, for onnxruntime in
//! a SIEM, a sensor or a notebook ([`onnx`] says what the graph takes and gives).
//!
//! [`export_file`] reads and checks the model file, builds the whole export in memory and
//! writes it through a temporary file renamed into place, so a failed export leaves no
//! half-written file and never replaces a good one.

pub mod onnx;
pub mod proto;

use std::path::{Path, PathBuf};

use crate::fsutil::write_atomic;
use crate::model_file::{ModelFile, ModelFileError};

/// Formats a model exports to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ONNX (IR 10, opsets 21 and `ai.onnx.ml` 5), for onnxruntime.
    Onnx,
}

/// What [`export_file`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The model's algorithm.
    pub algorithm: String,
    /// The model's trial key.
    pub trial_key: String,
    /// sha256 of the model file exported.
    pub sha256: String,
    /// Graph inputs: one per feature column.
    pub inputs: usize,
    /// Classes answered (one `p_<class>` output each).
    pub classes: usize,
    /// Bytes written.
    pub bytes: usize,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The input is not a readable netsec model file.
    #[error(transparent)]
    ModelFile(#[from] ModelFileError),
    /// The model holds something the format cannot express.
    #[error("{} cannot be exported", path.display())]
    Unsupported {
        /// The model file.
        path: PathBuf,
        /// What cannot be expressed.
        #[source]
        source: onnx::Unsupported,
    },
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

impl ExportError {
    /// The process exit code: bad input for a file that is not a usable model, a runtime
    /// failure for the output.
    pub fn exit_code(&self) -> u8 {
        match self {
            ExportError::ModelFile(e) => e.exit_code(),
            ExportError::Unsupported { .. } => crate::exit::BAD_INPUT,
            ExportError::Write { .. } => crate::exit::RUNTIME_FAILURE,
        }
    }
}

/// Exports the model file `model` as `format` to `output` (atomically). The entry point of
/// `netsec export`.
pub fn export_file(model: &Path, format: Format, output: &Path) -> Result<Exported, ExportError> {
    let (file, sha256) = ModelFile::load(model)?;
    let bytes = match format {
        Format::Onnx => {
            onnx::to_onnx(&file, &sha256).map_err(|source| ExportError::Unsupported {
                path: model.to_owned(),
                source,
            })?
        }
    };
    write_atomic(output, |w| w.write_all(&bytes)).map_err(|source| ExportError::Write {
        path: output.to_owned(),
        source,
    })?;
    Ok(Exported {
        algorithm: file.algorithm.clone(),
        trial_key: file.trial_key.clone(),
        sha256,
        inputs: file.encoding.columns.len(),
        classes: file.classes().len(),
        bytes: bytes.len(),
    })
}
