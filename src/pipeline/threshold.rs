//! The workflow of `netsec model threshold`: move a model's operating point along the
//! out-of-fold ROC curve its file keeps, without a fit, and write the model file again with
//! the new cut; the held-out rates at the new cut come from the model's pinned holdout when
//! its data can be reloaded.

use std::path::{Path, PathBuf};

use super::source::holdout;
use crate::exit::UsageError;
use crate::model_file::ModelFile;
use crate::models::metrics::Metrics;
use crate::models::operating_point::{OperatingPoint, Rates, Target};

/// Which model, to which target, written where.
#[derive(Debug, Clone)]
pub struct ThresholdInput {
    /// The model file to move.
    pub model: PathBuf,
    /// The new target.
    pub target: Target,
    /// Where the new model file goes.
    pub output: PathBuf,
    /// Score the new cut on the model's pinned holdout (reloads its data).
    pub score_holdout: bool,
}

/// The model's operating point before and after, and the file written.
#[derive(Debug, Clone)]
pub struct ThresholdOutcome {
    /// The point the model had.
    pub before: OperatingPoint,
    /// The point it has now (held-out rates when the holdout was scored).
    pub after: OperatingPoint,
    /// Why the held-out rates are missing, when they are.
    pub holdout_skipped: Option<String>,
    /// The new model file.
    pub output: PathBuf,
    /// Its sha256.
    pub sha256: String,
}

/// Moves the cut of `input.model` to `input.target`. Exit 2 (a [`UsageError`]) when the
/// target cannot be measured or the model keeps no out-of-fold curve.
pub async fn move_threshold(input: &ThresholdInput) -> anyhow::Result<ThresholdOutcome> {
    let (mut file, sha256) = ModelFile::load(&input.model)?;
    if let Some(problem) = input.target.problem() {
        return Err(UsageError(problem).into());
    }
    let Some(point) = &file.operating_point else {
        return Err(UsageError(format!(
            "{}: the model has no operating point and keeps no out-of-fold ROC curve; sweep \
             it with `operating_point:` in the grid file to move its cut without a fit",
            input.model.display()
        ))
        .into());
    };
    let roc = &point.roc;
    let needed = input.target.min_normal_rows();
    if (roc.normal as usize) < needed {
        return Err(UsageError(format!(
            "max_fpr {} cannot be measured on this model's {} out-of-fold normal rows: it \
             needs at least {needed} (3 / max_fpr)",
            input.target.max_fpr.unwrap_or_default(),
            roc.normal
        ))
        .into());
    }
    let before = point.point;
    let choice = roc.choose(&input.target);
    let mut after = OperatingPoint {
        target: input.target,
        threshold: choice.threshold,
        target_met: choice.target_met,
        out_of_fold: choice.rates,
        held_out: None,
    };
    let holdout_skipped = if input.score_holdout {
        match held_out(&file, &sha256, after.threshold).await {
            Ok((rates, metrics)) => {
                after.held_out = Some(rates);
                file.metrics.test = Some(metrics);
                None
            }
            Err(err) => Some(format!("{err:#}")),
        }
    } else {
        Some("not asked for (--no-holdout)".into())
    };
    if after.held_out.is_none() {
        // Test metrics at the old cut would misstate the new one.
        file.metrics.test = None;
    }
    if let Some(point) = &mut file.operating_point {
        point.point = after;
    }
    let sha256 = file.save(&input.output)?;
    Ok(ThresholdOutcome {
        before,
        after,
        holdout_skipped,
        output: input.output.clone(),
        sha256,
    })
}

/// The held-out rates and metrics of `file` at `threshold`, on its pinned holdout.
async fn held_out(
    file: &ModelFile,
    sha256: &str,
    threshold: f64,
) -> anyhow::Result<(Rates, Metrics)> {
    let holdout = holdout(file, sha256).await?;
    let proba = file.model.predict_proba(holdout.features.view())?;
    let classes = &holdout.classes;
    let truth: Vec<bool> = holdout
        .labels
        .iter()
        .map(|&c| classes.is_attack(c))
        .collect();
    let scores = classes.attack_probabilities(proba.view());
    let metrics = Metrics::compute_at(&holdout.labels, proba.view(), classes, threshold);
    Ok((Rates::at(&truth, &scores, threshold), metrics))
}

/// False alarms a day at a flow rate, if nearly every flow is normal (the base-rate view:
/// attacks are rare): `flows × FPR`, with the 95 % upper bound.
#[derive(Debug, Clone, Copy)]
pub struct FalseAlarms {
    /// Expected false alarms a day.
    pub expected: f64,
    /// The 95 % Clopper-Pearson upper bound.
    pub upper_95: f64,
    /// Which rates they come from: `held-out` when the holdout was scored, else
    /// `out-of-fold`.
    pub basis: &'static str,
}

impl ThresholdOutcome {
    /// False alarms a day at `flows_per_day` flows at the new cut, from its held-out rates
    /// when there are some, else from the out-of-fold ones.
    pub fn false_alarms_per_day(&self, flows_per_day: u64) -> FalseAlarms {
        let (rates, basis) = match &self.after.held_out {
            Some(r) => (r, "held-out"),
            None => (&self.after.out_of_fold, "out-of-fold"),
        };
        let flows = flows_per_day as f64;
        FalseAlarms {
            expected: flows * rates.fpr(),
            upper_95: flows * rates.fpr_upper_95(),
            basis,
        }
    }
}

/// The default output path: `<stem>.cut.json` beside the input.
pub fn default_output(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    model.with_file_name(format!("{stem}.cut.json"))
}
