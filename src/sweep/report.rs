//! What a sweep tells its observers (experiment tracking) as it runs. Observers record;
//! they never steer the sweep, and their failures are theirs to log, which is why the
//! methods return nothing: the sweep's results are already durable in the run store.

use std::collections::HashMap;
use std::path::Path;

use super::plan::Rung;
use super::record::TrialRecord;
use super::store::SweepStatus;
use crate::config::grid::SelectMetric;
use crate::data::schema::{ClassNames, Schema};
use crate::data::split::SplitSpec;
use crate::data::validate::ValidationReport;

/// A sweep is starting.
#[derive(Debug, Clone)]
pub struct SweepStarted<'a> {
    /// Local sweep id in the run store.
    pub sweep_id: i64,
    /// Experiment (grid) name.
    pub experiment: &'a str,
    /// The grid file.
    pub grid_path: &'a Path,
    /// Where the rows came from.
    pub data_source: &'a str,
    /// Fingerprint of the encoded data.
    pub data_fingerprint: &'a str,
    /// Hash of the schema.
    pub schema_hash: &'a str,
    /// The schema the rows were read with.
    pub schema: &'a Schema,
    /// Rows in the training part (a halving rung's subset when there is one).
    pub train_rows: usize,
    /// Rows in the test part.
    pub test_rows: usize,
    /// Ranking metric.
    pub select_metric: SelectMetric,
    /// The train/test split.
    pub split: &'a SplitSpec,
    /// Cross-validation folds.
    pub folds: usize,
    /// `I/N` when sharded.
    pub shard: Option<String>,
    /// Planned trial keys, in plan order.
    pub planned: &'a [String],
    /// Per algorithm, the parameters the grid varies (for run names).
    pub grid_keys: &'a HashMap<String, Vec<String>>,
    /// Start (Unix ms).
    pub started_at_ms: i64,
    /// The rung of a halving search (its rows capped at the training part).
    pub rung: Option<Rung>,
    /// The key of the halving search this sweep is a rung of: every rung (on every shard,
    /// after every resume) reports the same one.
    pub search_key: Option<&'a str>,
}

/// The best model of a finished sweep, scored on the test part.
#[derive(Debug, Clone)]
pub struct BestModel<'a> {
    /// Its trial.
    pub trial: &'a TrialRecord,
    /// The saved model file.
    pub model_path: &'a Path,
    /// sha256 of the model file.
    pub sha256: &'a str,
    /// Test labels (true = attack).
    pub test_labels: &'a [bool],
    /// P(attack) of each test row.
    pub test_scores: &'a [f64],
    /// Display names of the classes.
    pub class_names: &'a ClassNames,
}

/// A sweep has ended.
#[derive(Debug, Clone)]
pub struct SweepFinished<'a> {
    /// How it ended.
    pub status: SweepStatus,
    /// Every planned trial that has a result, best first.
    pub leaderboard: &'a [TrialRecord],
    /// The best model, when one was saved.
    pub best: Option<BestModel<'a>>,
    /// The data validation report of the sweep's data.
    pub validation: Option<&'a ValidationReport>,
    /// End (Unix ms).
    pub finished_at_ms: i64,
}

/// Receives what a sweep reports.
pub trait SweepReporter {
    /// Called once, before any trial.
    fn sweep_started(&self, sweep: &SweepStarted<'_>);
    /// Called once per trial with a result: as each finishes, and at the start for trials
    /// reused from the run store.
    fn trial_finished(&self, record: &TrialRecord);
    /// Called once at the end (also when the sweep was interrupted or failed).
    fn sweep_finished(&self, end: &SweepFinished<'_>);
    /// Called once after the reused trials were reported: how many trials run now.
    /// Progress displays need it; recorders do not.
    fn trials_to_run(&self, _count: usize) {}
    /// Called once per trial run by this sweep, as it finishes, whether or not its result
    /// could be stored (progress counts work done, not work kept).
    fn trial_ran(&self, _record: &TrialRecord) {}
}

/// Several reporters as one: each event goes to each, in order.
pub struct Reporters<'a>(pub Vec<&'a (dyn SweepReporter + Sync)>);

impl SweepReporter for Reporters<'_> {
    fn sweep_started(&self, sweep: &SweepStarted<'_>) {
        self.0.iter().for_each(|r| r.sweep_started(sweep));
    }

    fn trial_finished(&self, record: &TrialRecord) {
        self.0.iter().for_each(|r| r.trial_finished(record));
    }

    fn sweep_finished(&self, end: &SweepFinished<'_>) {
        self.0.iter().for_each(|r| r.sweep_finished(end));
    }

    fn trials_to_run(&self, count: usize) {
        self.0.iter().for_each(|r| r.trials_to_run(count));
    }

    fn trial_ran(&self, record: &TrialRecord) {
        self.0.iter().for_each(|r| r.trial_ran(record));
    }
}
