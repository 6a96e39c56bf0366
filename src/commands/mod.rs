//! One module per command; each loads its inputs, calls the stage modules and prints.

mod data_drift;
mod data_mongo;
mod data_schema;
mod data_split;
mod data_synth;
mod data_validate;
mod experiment_collect;
mod experiment_run;
mod experiment_show;
mod leaderboard;
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
    Command, DataCommand, ExperimentCommand, RegistryCommand, ReportFormat, SchemaCommand,
};
use crate::exit::{Outcome, UsageError};
use crate::fsutil::write_atomic;

/// Runs a parsed command, writing results to `out`.
pub fn run(command: Command, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    match command {
        Command::Data(DataCommand::Validate(args)) => block(data_validate::run(args, out)),
        Command::Data(DataCommand::Drift(args)) => block(data_drift::run(args, out)),
        Command::Data(DataCommand::Split(args)) => block(data_split::run(args, out)),
        Command::Data(DataCommand::Synth(args)) => block(data_synth::run(args, out)),
        Command::Data(DataCommand::Push(args)) => block(data_mongo::push(args, out)),
        Command::Data(DataCommand::Pull(args)) => block(data_mongo::pull(args, out)),
        Command::Data(DataCommand::Schema(SchemaCommand::Infer(args))) => {
            block(data_schema::infer(args, out))
        }
        Command::Experiment(ExperimentCommand::Run(args)) => block(experiment_run::run(args, out)),
        Command::Experiment(ExperimentCommand::List(args)) => {
            block(experiment_show::list(args, out))
        }
        Command::Experiment(ExperimentCommand::Show(args)) => {
            block(experiment_show::show(args, out))
        }
        Command::Experiment(ExperimentCommand::Compare(args)) => {
            block(experiment_show::compare(args, out))
        }
        Command::Experiment(ExperimentCommand::Collect(args)) => {
            block(experiment_collect::run(args, out))
        }
        Command::Predict(args) => block(predict::run(args, out)),
        Command::Sync(args) => block(sync::run(args, out)),
        Command::Promote(args) => block(promote::run(args, out)),
        Command::Registry(RegistryCommand::List(args)) => block(registry::list(args, out)),
        Command::Registry(RegistryCommand::Show(args)) => block(registry::show(args, out)),
        Command::Registry(RegistryCommand::History(args)) => block(registry::history(args, out)),
        Command::Rollback(args) => block(registry::rollback(args, out)),
        Command::Publish(args) => block(publish::run(args, out)),
        Command::Serve(args) => block(serve::run(args, out)),
        Command::Retrain(args) => block(retrain::run(args, out)),
    }
}

/// Runs an async command to its end. Transitional: once every command is `async`, `run`
/// itself becomes `async` and `main.rs` owns the process's one runtime.
fn block<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime")
        .block_on(future)
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
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, value)?;
            writeln!(out)?;
        }
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
