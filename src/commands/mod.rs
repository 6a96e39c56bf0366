//! One module per subcommand, each thin: arguments to typed input, one library call, rendering
//! of its typed outcome. Commands never call each other; `run` dispatches them.

mod data_drift;
mod data_mongo;
mod data_schema;
mod data_split;
mod data_synth;
mod data_validate;
mod experiment_collect;
mod experiment_run;
mod experiment_show;
mod export;
mod model_threshold;
mod predict;
mod promote;
mod publish;
mod registry;
mod retrain;
mod serve;
mod sync;

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use polars::prelude::{CsvWriter, DataFrame, ParquetWriter, SerWriter};
use serde::Serialize;

use crate::cli::{
    Command, DataCommand, ExperimentCommand, ModelCommand, OutputArgs, OutputFormat,
    RegistryCommand, ReportFormat, SchemaCommand,
};
use crate::exit::{Outcome, UsageError};
use crate::fsutil::write_atomic;

/// Runs a parsed command, writing results to `out`, or to the file its `-o/--output` names.
pub async fn run(command: Command, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let output = output_args(&command).cloned();
    if let Some(format) = output.as_ref().and_then(OutputArgs::deprecated_format) {
        let name = if format == OutputFormat::Json {
            "json"
        } else {
            "text"
        };
        eprintln!(
            "warning: `--output {name}` is deprecated: use `--format {name}` (-o/--output names a file)"
        );
    }
    let Some(path) = output.as_ref().and_then(OutputArgs::file) else {
        return dispatch(command, out).await;
    };
    // The result goes to the file whole or not at all, even when the command fails
    // after printing part of it (a rejected promotion still writes its report).
    let mut buffer = Vec::new();
    let result = dispatch(command, &mut buffer).await;
    if !buffer.is_empty() {
        write_atomic(path, |w| w.write_all(&buffer))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    result
}

/// The `--format`/`-o` arguments of the commands that print a result.
fn output_args(command: &Command) -> Option<&OutputArgs> {
    match command {
        Command::Experiment(ExperimentCommand::Run(a)) => Some(&a.output),
        Command::Experiment(ExperimentCommand::List(a)) => Some(&a.output),
        Command::Experiment(ExperimentCommand::Show(a)) => Some(&a.output),
        Command::Experiment(ExperimentCommand::Compare(a)) => Some(&a.output),
        Command::Experiment(ExperimentCommand::Collect(a)) => Some(&a.output),
        Command::Promote(a) => Some(&a.output),
        Command::Retrain(a) => Some(&a.output),
        Command::Registry(RegistryCommand::List(a)) => Some(&a.output),
        Command::Registry(RegistryCommand::Show(a) | RegistryCommand::History(a)) => {
            Some(&a.output)
        }
        _ => None,
    }
}

async fn dispatch(command: Command, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    match command {
        Command::Data(DataCommand::Validate(args)) => data_validate::run(args, out).await,
        Command::Data(DataCommand::Drift(args)) => data_drift::run(args, out).await,
        Command::Data(DataCommand::Split(args)) => data_split::run(args, out).await,
        Command::Data(DataCommand::Synth(args)) => data_synth::run(args, out).await,
        Command::Data(DataCommand::Push(args)) => data_mongo::push(args, out).await,
        Command::Data(DataCommand::Pull(args)) => data_mongo::pull(args, out).await,
        Command::Data(DataCommand::Schema(SchemaCommand::Infer(args))) => {
            data_schema::infer(args, out).await
        }
        Command::Experiment(ExperimentCommand::Run(args)) => experiment_run::run(args, out).await,
        Command::Experiment(ExperimentCommand::List(args)) => {
            experiment_show::list(args, out).await
        }
        Command::Experiment(ExperimentCommand::Show(args)) => {
            experiment_show::show(args, out).await
        }
        Command::Experiment(ExperimentCommand::Compare(args)) => {
            experiment_show::compare(args, out).await
        }
        Command::Experiment(ExperimentCommand::Collect(args)) => {
            experiment_collect::run(args, out).await
        }
        Command::Predict(args) => predict::run(args, out).await,
        Command::Export(args) => export::run(args, out).await,
        Command::Model(ModelCommand::Threshold(args)) => model_threshold::run(args, out).await,
        Command::Sync(args) => sync::run(args, out).await,
        Command::Promote(args) => promote::run(args, out).await,
        Command::Registry(RegistryCommand::List(args)) => registry::list(args, out).await,
        Command::Registry(RegistryCommand::Show(args)) => registry::show(args, out).await,
        Command::Registry(RegistryCommand::History(args)) => registry::history(args, out).await,
        Command::Rollback(args) => registry::rollback(args, out).await,
        Command::Publish(args) => publish::run(args, out).await,
        Command::Serve(args) => serve::run(args, out).await,
        Command::Retrain(args) => retrain::run(args, out).await,
    }
}

/// Prints `value` as pretty JSON and a newline: every command's `--format json`.
fn print_json(out: &mut dyn Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints `value` as JSON or YAML, or through `text` for the readable form.
fn print_report<T: Serialize>(
    out: &mut dyn Write,
    format: ReportFormat,
    value: &T,
    text: impl FnOnce(&mut dyn Write, &T) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    match format {
        ReportFormat::Text => text(out, value)?,
        ReportFormat::Json => print_json(out, value)?,
        ReportFormat::Yaml => {
            let yaml = serde_saphyr::to_string(value).context("rendering YAML")?;
            out.write_all(yaml.as_bytes())?;
        }
    }
    Ok(())
}

/// Writes a frame as CSV or Parquet, chosen by the file's extension, atomically.
fn write_frame(path: &Path, frame: &mut DataFrame) -> anyhow::Result<()> {
    let parquet = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => false,
        Some("parquet") => true,
        _ => {
            return Err(UsageError(format!(
                "{}: the output must end in .csv or .parquet",
                path.display()
            ))
            .into());
        }
    };
    write_atomic(path, |w| {
        let result = if parquet {
            ParquetWriter::new(w).finish(frame).map(|_| ())
        } else {
            CsvWriter::new(w).finish(frame)
        };
        result.map_err(std::io::Error::other)
    })
    .with_context(|| format!("writing {}", path.display()))
}
