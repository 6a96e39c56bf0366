//! Command-line definitions (clap only; behaviour lives in `commands`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::data::synthetic::Profile;
use crate::logging::LogFormat;

/// netsec takes a network-security classifier (phishing sites, intrusion records) from raw
/// rows to a served model: validate the data, sweep hyperparameters, track, register,
/// publish and serve.
#[derive(Debug, Parser)]
#[command(
    name = "netsec",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Exit codes: 0 success, 1 runtime failure (server, I/O), \
2 bad input (config, data, arguments), 3 rejected by policy.\n\
Start with: netsec data validate --schema data_schema/phishing.yaml DATA.csv"
)]
pub struct Cli {
    /// More log detail on stderr (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, compare, split and generate data sets.
    #[command(subcommand)]
    Data(DataCommand),
}

/// `netsec data ...`
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Check a CSV/Parquet file against a schema: missing or extra columns, wrong types,
    /// values outside the schema, empty cells (each with its lines), plus exact duplicate
    /// rows, label conflicts and the class balance. Exits 2 when the data does not fit.
    Validate(ValidateArgs),
    /// Compare a current data set with a reference, column by column: Kolmogorov-Smirnov
    /// test and population stability index, a drift flag per column and overall.
    Drift(DriftArgs),
    /// Stratified train/test split and k-fold assignment with a seed; reports how many test
    /// rows have an exact copy in train (leakage) and can hold out whole duplicate groups.
    Split(SplitArgs),
    /// Write a generated data set (same columns as the real one) to a CSV or Parquet file.
    Synth(SynthArgs),
}

/// How a report is printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A readable summary and table.
    Text,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Arguments of `netsec data validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Schema file, e.g. data_schema/phishing.yaml.
    #[arg(long, short = 's')]
    pub schema: PathBuf,
    /// Data file (.csv or .parquet).
    pub data: PathBuf,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// Arguments of `netsec data drift`.
#[derive(Debug, Args)]
pub struct DriftArgs {
    /// Schema file shared by both data sets.
    #[arg(long, short = 's')]
    pub schema: PathBuf,
    /// Reference data (e.g. the training data of the current model).
    pub reference: PathBuf,
    /// Data to compare with the reference (e.g. last week's traffic).
    pub current: PathBuf,
    /// Also write the report to this file (.yaml or .json by extension).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// A column drifts when its KS p-value is below this.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// A column drifts when its PSI is at least this.
    #[arg(long, default_value_t = 0.2)]
    pub psi_threshold: f64,
    /// Exit with code 2 when drift is detected (for scheduled checks).
    #[arg(long)]
    pub fail_on_drift: bool,
}

/// Arguments of `netsec data split`.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// Schema file.
    #[arg(long, short = 's')]
    pub schema: PathBuf,
    /// Data file (.csv or .parquet).
    pub data: PathBuf,
    /// Share of rows held out for testing.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Shuffle seed; the same seed gives the same split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Do not keep the class balance equal in both parts.
    #[arg(long)]
    pub no_stratify: bool,
    /// Hold out unique feature vectors, so no test row has a copy in train.
    #[arg(long)]
    pub dedup: bool,
    /// Also assign the training rows to this many stratified cross-validation folds.
    #[arg(long)]
    pub folds: Option<usize>,
    /// Write train.csv, test.csv and split.json (row indices and folds) into this folder.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// Arguments of `netsec data synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Data set shape.
    #[arg(long, default_value = "phishing")]
    pub profile: Profile,
    /// Number of rows.
    #[arg(long, default_value_t = crate::data::synthetic::PHISHING_ROWS)]
    pub rows: usize,
    /// Generator seed; the same seed gives the same rows.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output file (.csv or .parquet).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}
