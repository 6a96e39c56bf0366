//! Command-line definitions (clap only; behaviour lives in `commands`).

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::data::synthetic::Profile;
use crate::logging::LogFormat;
use crate::secret::Secret;

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
    /// Run hyperparameter sweeps and look at their results.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Predict a CSV/Parquet file with a model file; writes the rows with the predicted
    /// label, class and attack probability.
    Predict(PredictArgs),
    /// Export a model file for other programs: `--format onnx` writes one ONNX graph
    /// (raw columns in, the schema's encoding inside, predicted_label, attack_probability
    /// and p_<class> out) that onnxruntime answers as `netsec predict` does.
    Export(ExportArgs),
    /// Work on model files: move an operating point without a fit.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Send the tracking outbox (records kept while no MLflow server was set or reachable)
    /// to the MLflow server, exactly once. Safe to repeat and to interrupt.
    Sync(SyncArgs),
    /// Register a candidate model and decide, by the rules of a policy file and on the
    /// candidate's pinned holdout, whether it replaces the current champion. Exits 0 when
    /// promoted, 3 when rejected.
    Promote(PromoteArgs),
    /// Look at the model registry: models, versions, aliases and their history.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Move an alias (champion by default) back to an earlier version; recorded in the
    /// history like any move.
    Rollback(RollbackArgs),
    /// Publish the registered version an alias (champion by default) points at to a model
    /// store (file:// or s3://): model file and metadata under <sha256>/, then the
    /// current.json pointer, last. Objects already there are not uploaded again.
    Publish(PublishArgs),
    /// Serve predictions over HTTP from a model file or a file:// or s3:// store (hot
    /// reload of the store's current.json pointer), with Prometheus metrics at /metrics.
    Serve(ServeArgs),
    /// One scheduled pipeline run from a retrain file: load fresh data, validate, check
    /// drift against the champion's training data, sweep, promote by the policy and publish
    /// when promoted; one summary at the end. A lock keeps two runs from overlapping; after
    /// a crash the same command resumes.
    Retrain(RetrainArgs),
}

/// Arguments of `netsec retrain`.
#[derive(Debug, Args)]
pub struct RetrainArgs {
    /// Retrain file (grid, policy, drift rule, publish destination), e.g. retrain.yaml.
    #[arg(long)]
    pub config: PathBuf,
    /// Parallel worker threads of the sweep (default: all cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// `--format` and `-o/--output`.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Where to publish when the retrain file has a `publish:` section without `to:`.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The registry database.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Arguments of `netsec sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// MLflow server; default: MLFLOW_TRACKING_URI, else the server the waiting records
    /// were meant for. Credentials come from MLFLOW_TRACKING_USERNAME/PASSWORD or
    /// MLFLOW_TRACKING_TOKEN.
    #[arg(long, value_name = "URL", value_parser = secret_arg)]
    pub uri: Option<Secret<String>>,
    /// Also send again the records the server refused before.
    #[arg(long)]
    pub retry_failed: bool,
    /// The state directory.
    #[command(flatten)]
    pub state: StateArgs,
}

/// Where the model registry lives.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Registry database (default: netsec.db in the state directory, beside the run store).
    #[arg(long, env = "NETSEC_REGISTRY", global = true)]
    pub registry: Option<PathBuf>,
    /// The state directory.
    #[command(flatten)]
    pub state: StateArgs,
}

impl RegistryArgs {
    /// The registry database file.
    pub fn path(&self) -> PathBuf {
        self.registry
            .clone()
            .unwrap_or_else(|| crate::registry::path_in(&self.state.state_dir))
    }
}

/// Arguments of `netsec promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The candidate: a trial by key (or unique prefix). A trial that was not its sweep's
    /// best has no model file; it is fitted again from its sweep's grid file.
    #[arg(long, value_name = "TRIAL_KEY", conflicts_with = "best")]
    pub run: Option<String>,
    /// The candidate: the best model of the newest sweep (of EXPERIMENT when given). The
    /// default when neither --run nor --best is given.
    #[arg(long, value_name = "EXPERIMENT", num_args = 0..=1, default_missing_value = "")]
    pub best: Option<String>,
    /// Promotion policy file.
    #[arg(long, default_value = "registry/promotion.yaml")]
    pub policy: PathBuf,
    /// Evaluate and report, but register and move nothing (exit 0 / 3 as a real run).
    #[arg(long)]
    pub dry_run: bool,
    /// Registered model name (default: the policy's `model`).
    #[arg(long, value_name = "MODEL")]
    pub name: Option<String>,
    /// `--format` and `-o/--output`.
    #[command(flatten)]
    pub output: OutputArgs,
    /// After a promotion, publish the new champion to the store (--store) in the same step.
    #[arg(long)]
    pub publish: bool,
    /// The model store to publish to.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The registry database.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Arguments of `netsec publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Registered model name, optionally with the alias whose version to publish
    /// (default: champion).
    #[arg(value_name = "NAME[@ALIAS]")]
    pub model: String,
    /// The model store to publish to.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The registry database.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Where models are published.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Model store: file://DIR or s3://BUCKET[/PREFIX] (default: file://STATE_DIR/store).
    /// `--to` is the old spelling, still accepted.
    #[arg(long = "store", alias = "to", env = "NETSEC_STORE", value_name = "URL")]
    pub to: Option<String>,
    /// S3 endpoint options.
    #[command(flatten)]
    pub s3: S3Args,
}

/// How to reach an S3-compatible server. Credentials and region come from the standard
/// AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_REGION).
#[derive(Debug, Clone, Args)]
pub struct S3Args {
    /// S3 endpoint for s3:// URLs on a server other than AWS (MinIO, SeaweedFS, ...);
    /// requests then use path-style addressing.
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,
}

/// `netsec registry ...`
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Registered models with their version count and aliases.
    List(RegistryListArgs),
    /// A model's versions and aliases.
    Show(RegistryShowArgs),
    /// A model's history: every promotion, rejection and rollback with actor and reason.
    History(RegistryShowArgs),
}

/// Arguments of `netsec registry list`.
#[derive(Debug, Args)]
pub struct RegistryListArgs {
    /// `--format` and `-o/--output`.
    #[command(flatten)]
    pub output: OutputArgs,
    /// The registry database.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Arguments of `netsec registry show | history`.
#[derive(Debug, Args)]
pub struct RegistryShowArgs {
    /// Registered model name.
    pub name: String,
    /// `--format` and `-o/--output`.
    #[command(flatten)]
    pub output: OutputArgs,
    /// The registry database.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Arguments of `netsec rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Registered model name.
    pub name: String,
    /// The version to move the alias to (default: the one it held before the current).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<i64>,
    /// The alias to move.
    #[arg(long, default_value = "champion")]
    pub alias: String,
    /// Why (kept in the history).
    #[arg(long)]
    pub reason: String,
    /// Then publish the pointer to that version to the store (--store); its model file is
    /// normally there already, so only the pointer is written.
    #[arg(long)]
    pub publish: bool,
    /// Model store for --publish: file://DIR or s3://BUCKET[/PREFIX] (default:
    /// file://STATE_DIR/store).
    #[arg(long, env = "NETSEC_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// S3 endpoint options.
    #[command(flatten)]
    pub s3: S3Args,
    /// The registry database.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Where netsec keeps its local state (run store, model files).
#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// State directory holding the run store (netsec.db) and model files.
    #[arg(
        long,
        env = "NETSEC_STATE_DIR",
        default_value = ".netsec",
        global = true
    )]
    pub state_dir: PathBuf,
}

/// `netsec experiment ...`
#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// Run every grid point of a grid file: k-fold cross-validation on the training part,
    /// ranking by the CV metric, one score on the held-out test part. Finished trials are
    /// kept in the run store, so a rerun (after Ctrl-C, kill -9, a crash) runs only what
    /// is missing. Saves the best model as a model file.
    Run(RunArgs),
    /// List the sweeps in the run store, newest first.
    List(ListArgs),
    /// Show the leaderboard of a sweep (by id, or the newest sweep of an experiment name).
    Show(ShowArgs),
    /// Compare trials side by side (by key or key prefix, as shown in leaderboards).
    Compare(CompareArgs),
    /// Rank the union of a sharded sweep (`run --shard I/N` on N machines): the trials of
    /// several run stores and/or of the sweep's runs in MLflow, merged into one
    /// leaderboard, with the planned trials no shard has, the shards seen and trials that
    /// ran twice. `--into DB` merges them into one run store for `netsec promote --best`.
    Collect(CollectArgs),
}

/// Output format of commands that print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A readable table.
    Text,
    /// JSON.
    Json,
}

/// `--format` and `-o/--output` of the commands that print a result: `--format` is always
/// a format and `-o/--output` always a path, as in every other netsec command.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Result format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Write the result to this file (atomically) instead of stdout. `json` and `text`
    /// here are the old spelling of --format, still accepted for one release.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub path: Option<PathBuf>,
}

impl OutputArgs {
    /// The format asked for: `--format`, or the deprecated `--output json|text`.
    pub fn format(&self) -> OutputFormat {
        self.deprecated_format().unwrap_or(self.format)
    }

    /// `--output json|text`, the spelling of `--format` this flag had before it named a file.
    pub fn deprecated_format(&self) -> Option<OutputFormat> {
        match self.path.as_deref()?.to_str()? {
            "json" => Some(OutputFormat::Json),
            "text" => Some(OutputFormat::Text),
            _ => None,
        }
    }

    /// The file to write the result to, if one was named.
    pub fn file(&self) -> Option<&Path> {
        match self.deprecated_format() {
            Some(_) => None,
            None => self.path.as_deref(),
        }
    }
}

/// Arguments of `netsec experiment run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Grid file, e.g. experiments/quick.yaml.
    pub grid: PathBuf,
    /// Run only slice I of N (0 <= I < N), for sweeps spread over several machines.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::sweep::plan::Shard>,
    /// Run only rung R of a halving search (a sharded halving search runs rung by rung:
    /// every shard's --rung R, then `experiment collect GRID --rung R`, then --rung R+1).
    #[arg(long, value_name = "R")]
    pub rung: Option<usize>,
    /// The survivors file that `experiment collect --rung` writes and --rung R+1 reads
    /// (default: STATE_DIR/halving/NAME.survivors.json).
    #[arg(long, value_name = "FILE", requires = "rung")]
    pub survivors: Option<PathBuf>,
    /// Also copy the best model file to this path.
    #[arg(long)]
    pub model_out: Option<PathBuf>,
    /// Leaderboard rows to print (all with --format json).
    #[arg(long, default_value_t = 15)]
    pub top: usize,
    /// `--format` and `-o/--output`.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Parallel worker threads (default: all cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// The state directory.
    #[command(flatten)]
    pub state: StateArgs,
}

/// Arguments of `netsec experiment list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// `--format` and `-o/--output`.
    #[command(flatten)]
    pub output: OutputArgs,
    /// The state directory.
    #[command(flatten)]
    pub state: StateArgs,
}

/// Arguments of `netsec experiment show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Sweep id or experiment name.
    pub sweep: String,
    /// Leaderboard rows to print.
    #[arg(long, default_value_t = 25)]
    pub top: usize,
    /// `--format` and `-o/--output`.
    #[command(flatten)]
    pub output: OutputArgs,
    /// The state directory.
    #[command(flatten)]
    pub state: StateArgs,
}

/// Arguments of `netsec experiment compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Two or more trial keys (or unique prefixes).
    #[arg(required = true, num_args = 2..)]
    pub trials: Vec<String>,
    /// `--format` and `-o/--output`.
    #[command(flatten)]
    pub output: OutputArgs,
    /// The state directory.
    #[command(flatten)]
    pub state: StateArgs,
}

/// Arguments of `netsec experiment collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The sweep's grid file: its plan says which trials are missing, and only trials of
    /// this grid on this data are collected.
    #[arg(required_unless_present = "experiment", conflicts_with = "experiment")]
    pub grid: Option<PathBuf>,
    /// Collect by experiment name instead of a grid file (the sweeps on the newest data of
    /// that experiment; missing trials are then known only for the shards that ran).
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
    /// Read the shards' trials from the MLflow server (MLFLOW_TRACKING_URI, else the grid's
    /// tracking.uri): the child runs of the sweep's parent runs.
    #[arg(long)]
    pub from_mlflow: bool,
    /// Run stores of the shard processes (netsec.db files or state directories). Default,
    /// without --from-mlflow: the run store of --state-dir (shards sharing one store).
    #[arg(long, num_args = 1.., value_name = "DB")]
    pub stores: Vec<PathBuf>,
    /// Also merge the collected trials (those read from run stores) into this run store
    /// (a netsec.db file or a state directory) as one finished sweep, with the best model
    /// file copied beside it, so that `netsec promote --best` works on it.
    #[arg(long, value_name = "DB")]
    pub into: Option<PathBuf>,
    /// Exit 2 when planned trials or shards are missing or a trial ran twice with a
    /// different result.
    #[arg(long)]
    pub strict: bool,
    /// Collect rung R of a sharded halving search and write the survivors of rung R+1 to
    /// the survivors file (only when the rung is complete; else exit 2).
    #[arg(long, value_name = "R", requires = "grid")]
    pub rung: Option<usize>,
    /// The survivors file of the search (default: STATE_DIR/halving/NAME.survivors.json).
    #[arg(long, value_name = "FILE", requires = "rung")]
    pub survivors: Option<PathBuf>,
    /// Leaderboard rows to print (all with --format json).
    #[arg(long, default_value_t = 25)]
    pub top: usize,
    /// `--format` and `-o/--output`.
    #[command(flatten)]
    pub output: OutputArgs,
    /// The state directory.
    #[command(flatten)]
    pub state: StateArgs,
}

/// Arguments of `netsec predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model file written by `netsec experiment run`.
    #[arg(long, short = 'm')]
    pub model: PathBuf,
    /// Rows to predict (.csv or .parquet), with the model's feature columns.
    #[arg(long, short = 'i')]
    pub input: PathBuf,
    /// Output CSV: the input columns plus predicted_label, class_probability,
    /// attack_probability, is_attack and attack_class.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Also write each class's probability, one p_<class> column per class.
    #[arg(long)]
    pub probabilities: bool,
}

/// Arguments of `netsec export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Model file written by `netsec experiment run`.
    pub model: PathBuf,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The file to write (replaced whole, or left as it was when the export fails).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

/// Formats `netsec export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// ONNX for onnxruntime (IR 10; opsets 21 and ai.onnx.ml 5).
    Onnx,
}

/// `netsec model ...`.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Move a model's cut on P(attack) to a new false-alarm budget or detection rate, read
    /// off the out-of-fold ROC curve its file keeps (no fit), and write a new model file
    /// with it; `predict` and `serve` flag attacks at the new cut.
    Threshold(ThresholdArgs),
}

/// Arguments of `netsec model threshold`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(true).args(["max_fpr", "min_detection_rate"])))]
pub struct ThresholdArgs {
    /// Model file written by a sweep with `operating_point:` in its grid file.
    pub model: PathBuf,
    /// The false-alarm budget: the largest share of normal flows flagged, in (0, 1).
    #[arg(long)]
    pub max_fpr: Option<f64>,
    /// The share of attacks that must be flagged, in (0, 1].
    #[arg(long)]
    pub min_detection_rate: Option<f64>,
    /// Also state the false alarms a day at this many flows a day.
    #[arg(long, value_name = "N")]
    pub flows_per_day: Option<u64>,
    /// The new model file (default: <model>.cut.json beside it).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Do not reload the model's data to score the new cut on its pinned holdout.
    #[arg(long)]
    pub no_holdout: bool,
}

/// Arguments of `netsec serve`. The optional bearer token is read from the
/// NETSEC_SERVE_TOKEN environment variable only (never a flag, never logged).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A model file, or a store holding a current.json pointer to a content-addressed model
    /// file: `file://DIR` (or a directory) or `s3://BUCKET/PREFIX/NAME`; a pointer source is
    /// polled for new versions.
    #[arg(long, short = 'm')]
    pub model: String,
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,
    /// Largest request body in bytes; larger bodies get 413.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// How often a pointer source is polled (e.g. 500ms, 10s, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub reload_interval: std::time::Duration,
    /// Requests taking longer are answered 408.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: std::time::Duration,
    /// After SIGTERM/SIGINT, keep serving this long with `/readyz` answering 503 before
    /// closing the listener, so a load balancer stops sending first (e.g. 5s behind
    /// Kubernetes). Requests in flight are always finished.
    #[arg(long, default_value = "0s", value_parser = parse_duration_or_zero)]
    pub drain_delay: std::time::Duration,
    /// Async worker threads (default: all cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// S3 endpoint options.
    #[command(flatten)]
    pub s3: S3Args,
    /// Log every prediction (time, model, input hash, features, class, probability) to
    /// this MongoDB server (mongodb://...). Requests never wait for it: when it is slow or
    /// down, predictions are dropped and counted in /metrics. The URI may hold
    /// credentials; it is never printed.
    #[arg(
        long,
        value_name = "URI",
        env = "NETSEC_PREDICTION_LOG",
        hide_env_values = true
    )]
    pub prediction_log: Option<String>,
    /// Database of the prediction log.
    #[arg(long, value_name = "DB", default_value = "netsec")]
    pub prediction_log_db: String,
    /// Collection of the prediction log.
    #[arg(long, value_name = "COLLECTION", default_value = "predictions")]
    pub prediction_log_collection: String,
    /// Requests whose predictions may wait for the prediction log writer; beyond that
    /// they are dropped (counted as reason="queue_full").
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub prediction_log_queue: usize,
    /// Predictions per insert_many batch of the prediction log.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub prediction_log_batch: usize,
    /// A partial batch of the prediction log is written after this long.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub prediction_log_flush: std::time::Duration,
}

/// Parses `500ms`, `10s`, `2m` or a bare number of seconds.
/// An argument that may hold credentials (a URI with a password): kept in [`Secret`], so the
/// derived `Debug` of the arguments never shows it.
fn secret_arg(text: &str) -> Result<Secret<String>, std::convert::Infallible> {
    Ok(Secret::new(text.to_owned()))
}

/// A duration that may be zero (`0s`: no delay), else as [`parse_duration`].
fn parse_duration_or_zero(text: &str) -> Result<std::time::Duration, String> {
    let zero = text.trim().trim_end_matches(['m', 's']);
    if zero.parse::<f64>().is_ok_and(|v| v == 0.0) {
        return Ok(std::time::Duration::ZERO);
    }
    parse_duration(text)
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    // Overflowing or rounding to zero (`1e20s`, `1e-12s`) is refused like a typo: a zero
    // period would spin, and from_secs_f64 would panic on overflow.
    match number
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(|v| std::time::Duration::try_from_secs_f64(v * scale).ok())
    {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "`{text}` is not a duration such as 500ms, 10s or 2m"
        )),
    }
}

/// `netsec data ...`
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Check a CSV/Parquet file against a schema: missing or extra columns, wrong types,
    /// values outside the schema, empty cells (each with its lines), plus exact duplicate
    /// rows, label conflicts and the class balance. Exits 2 when the data does not fit.
    Validate(ValidateArgs),
    /// Compare a current data set with a reference, column by column: Kolmogorov-Smirnov
    /// test (numeric columns) or chi-square test (categorical columns and the label) and
    /// population stability index, a drift flag per column and overall.
    Drift(DriftArgs),
    /// Stratified train/test split and k-fold assignment with a seed; reports how many test
    /// rows have an exact copy in train (leakage) and can hold out whole duplicate groups.
    Split(SplitArgs),
    /// Write a generated data set (same columns as the real one) to a CSV or Parquet file.
    Synth(SynthArgs),
    /// Validate a file against its schema, then insert its rows into a MongoDB collection
    /// in batches. Idempotent: pushing the same file again adds nothing.
    Push(PushArgs),
    /// Read a MongoDB collection (optionally filtered) into a CSV or Parquet file.
    Pull(PullArgs),
    /// Work with schema files.
    #[command(subcommand)]
    Schema(SchemaCommand),
}

/// Which MongoDB collection.
#[derive(Debug, Clone, Args)]
pub struct MongoArgs {
    /// Connection string (may hold credentials; never printed).
    #[arg(long, env = "MONGODB_URI", hide_env_values = true, value_parser = secret_arg)]
    pub mongo_uri: Secret<String>,
    /// Database name.
    #[arg(long)]
    pub db: String,
    /// Collection name.
    #[arg(long)]
    pub collection: String,
}

/// Arguments of `netsec data push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Schema file.
    #[arg(long, short = 's')]
    pub schema: PathBuf,
    /// Data file (.csv or .parquet).
    pub data: PathBuf,
    /// The MongoDB server and collection.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Documents per insert_many call.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
}

/// Arguments of `netsec data pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Schema file naming the columns to read.
    #[arg(long, short = 's')]
    pub schema: PathBuf,
    /// The MongoDB server and collection.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// A MongoDB filter as JSON, e.g. '{"Result": -1}'.
    #[arg(long)]
    pub query: Option<String>,
    /// Output file (.csv or .parquet).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

/// `netsec data schema ...`
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Write a commented schema for a CSV/Parquet file: each column's type, allowed values
    /// or observed range, empty cells, id-like and constant columns (excluded), the label
    /// column and the attack class (guesses are marked GUESS). `data validate` accepts the
    /// result unchanged; review it before training.
    Infer(InferArgs),
}

/// Arguments of `netsec data schema infer`.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// Data file (.csv or .parquet).
    pub data: PathBuf,
    /// The label column (default: the first of label/class/Result/attack/is_phishing/...,
    /// else the last column).
    #[arg(long)]
    pub label: Option<String>,
    /// Label values of the attack (positive) class (default: a guess, flagged in the file).
    #[arg(long, num_args = 1.., value_name = "VALUE", allow_negative_numbers = true)]
    pub positive: Vec<String>,
    /// Label values of the normal class; every other value is an attack (usual for
    /// intrusion data with many attack names).
    #[arg(
        long,
        num_args = 1..,
        value_name = "VALUE",
        conflicts_with = "positive",
        allow_negative_numbers = true
    )]
    pub negative: Vec<String>,
    /// Schema name (default: the data file's name without extension).
    #[arg(long)]
    pub name: Option<String>,
    /// Write the schema to this file (atomically) instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
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
    /// A column drifts when its p-value (KS; chi-square for categorical columns) is below
    /// this.
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
    /// Data set shape: `phishing` (UCI phishing look-alike), `intrusion` (NSL-KDD
    /// look-alike with string categorical columns, label folded to attack / normal) or
    /// `nsl-kdd` (NSL-KDD's 41 columns and 15 of its classes in their training shares, for
    /// multi-class models).
    #[arg(long, default_value = "phishing")]
    pub profile: Profile,
    /// Number of rows (default: 11055 for phishing, the real set's size; 10000 for
    /// intrusion).
    #[arg(long)]
    pub rows: Option<usize>,
    /// Generator seed; the same seed gives the same rows.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output file (.csv or .parquet).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, parse_duration_or_zero};
    use std::time::Duration;

    #[test]
    fn durations_parse_and_out_of_range_ones_are_refused() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["0s", "-1s", "1e-12s", "1e20m", "NaNs", "infs", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for zero in ["0s", "0", "0ms", "0.0m"] {
            assert_eq!(parse_duration_or_zero(zero), Ok(Duration::ZERO), "{zero}");
        }
        assert_eq!(parse_duration_or_zero("5s"), Ok(Duration::from_secs(5)));
        assert!(parse_duration_or_zero("-1s").is_err());
    }

    #[test]
    fn arguments_holding_credentials_never_show_in_debug() {
        use clap::Parser;
        for args in [
            vec![
                "netsec",
                "sync",
                "--uri",
                "https://user:pw-canary@mlflow.example",
            ],
            vec![
                "netsec",
                "data",
                "pull",
                "--schema",
                "s.yaml",
                "--mongo-uri",
                "mongodb://user:pw-canary@db.example/?authSource=admin",
                "--db",
                "d",
                "--collection",
                "c",
                "-o",
                "out.csv",
            ],
        ] {
            let cli = super::Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let debug = format!("{cli:?}");
            assert!(!debug.contains("pw-canary"), "{debug}");
        }
    }
}
