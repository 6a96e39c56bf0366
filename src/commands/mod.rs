//! One module per command; each loads its inputs, calls the stage modules and prints.

mod data_drift;
mod data_split;
mod data_synth;
mod data_validate;
mod experiment_run;
mod experiment_show;
mod leaderboard;
mod predict;
mod serve;

use std::io::Write;

use anyhow::Context;
use serde::Serialize;

use crate::cli::{Command, DataCommand, ExperimentCommand, ReportFormat};
use crate::exit::Outcome;

/// Runs a parsed command, writing results to `out`.
pub fn run(command: Command, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    match command {
        Command::Data(DataCommand::Validate(args)) => data_validate::run(args, out),
        Command::Data(DataCommand::Drift(args)) => data_drift::run(args, out),
        Command::Data(DataCommand::Split(args)) => data_split::run(args, out),
        Command::Data(DataCommand::Synth(args)) => data_synth::run(args, out),
        Command::Experiment(ExperimentCommand::Run(args)) => experiment_run::run(args, out),
        Command::Experiment(ExperimentCommand::List(args)) => experiment_show::list(args, out),
        Command::Experiment(ExperimentCommand::Show(args)) => experiment_show::show(args, out),
        Command::Experiment(ExperimentCommand::Compare(args)) => {
            experiment_show::compare(args, out)
        }
        Command::Predict(args) => predict::run(args, out),
        Command::Serve(args) => serve::run(args, out),
    }
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
