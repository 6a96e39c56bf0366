//! `netsec export`: the entry point for writing a model file in another format.

use std::io::Write;

use crate::cli::{ExportArgs, ExportFormat};
use crate::exit::Outcome;
use crate::export::{Format, export_file};

/// Exports the model and says what was written.
pub async fn run(args: ExportArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let format = match args.format {
        ExportFormat::Onnx => Format::Onnx,
    };
    let e = export_file(&args.model, format, &args.output)?;
    writeln!(
        out,
        "{} {} (sha256 {}) exported as ONNX to {}: {} inputs, {} classes, {} bytes",
        e.algorithm,
        e.trial_key,
        crate::shared::short_hash(&e.sha256),
        args.output.display(),
        e.inputs,
        e.classes,
        e.bytes
    )?;
    Ok(Outcome::Success)
}
