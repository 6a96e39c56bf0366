//! What one trial produced, as stored, ranked and reported.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::grid::SelectMetric;
use crate::models::Params;
use crate::models::metrics::{MeanStd, Metrics};
use crate::models::operating_point::OperatingPoint;

/// How a trial ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialStatus {
    /// Scored.
    Finished,
    /// The fit failed; `error` says why.
    Failed,
}

impl TrialStatus {
    /// Name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialStatus::Finished => "finished",
            TrialStatus::Failed => "failed",
        }
    }
}

/// The outcome of one grid point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// Deterministic key: algorithm, params, data fingerprint, split, folds and seed.
    pub key: String,
    /// Experiment name.
    pub experiment: String,
    /// Algorithm name.
    pub algorithm: String,
    /// Resolved parameters (defaults filled in).
    pub params: Params,
    /// Finished or failed.
    pub status: TrialStatus,
    /// Cross-validation metrics by name (what ranking uses).
    pub cv: BTreeMap<String, MeanStd>,
    /// Metrics on the held-out test set, scored once for the report.
    pub test: Option<Metrics>,
    /// Seconds to fit on the whole training part (for staged ensembles: the shared fit of the
    /// largest ensemble).
    pub fit_seconds: f64,
    /// Seconds to predict the whole test set (for staged ensembles: the shared pass that
    /// answers every stage of the group at once).
    pub predict_seconds: f64,
    /// Why the trial failed.
    pub error: Option<String>,
    /// Fingerprint of the data it ran on.
    pub data_fingerprint: String,
    /// When it finished (Unix milliseconds).
    pub finished_at_ms: i64,
    /// The cut on P(attack) chosen for the grid's operating-point target, with its rates;
    /// `None` without a target (the cut is 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<OperatingPoint>,
    /// The boosting rounds the trial's model kept (its fit on the whole training part) when
    /// early stopping (`n_iter_no_change`) is on; `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_estimators_used: Option<usize>,
}

impl TrialRecord {
    /// The CV mean of `metric`, if scored.
    pub fn cv_score(&self, metric: SelectMetric) -> Option<f64> {
        self.cv
            .get(metric.name())
            .map(|m| m.mean)
            .filter(|v| v.is_finite())
    }

    /// A short label such as `random_forest n_estimators=128`, naming only the parameters
    /// given in `shown`.
    pub fn label(&self, shown: &[String]) -> String {
        let mut label = self.algorithm.clone();
        for key in shown {
            if let Some(value) = self.params.get(key) {
                label.push_str(&format!(" {key}={}", value.to_string().trim_matches('"')));
            }
        }
        label
    }
}

/// Names of the metrics every trial records, in report order (per-class ones come on top,
/// named after the label's classes).
pub const METRIC_NAMES: [&str; 13] = crate::shared::Metric::GLOBAL_NAMES;

/// Per-fold metrics by name, from the models' metric set: every global metric (NaN where
/// it has no value, e.g. ROC AUC with one class) and each class's precision, recall and F1.
pub fn metric_values(m: &Metrics) -> BTreeMap<&'static str, f64> {
    use crate::shared::Metric;
    use crate::shared::metric::ClassStat;
    let mut values: BTreeMap<&'static str, f64> = Metric::GLOBAL
        .iter()
        .map(|metric| (metric.name(), m.get(*metric).unwrap_or(f64::NAN)))
        .collect();
    if let Some(report) = &m.classes {
        for (name, scores) in report.names.iter().zip(&report.per_class) {
            for (stat, value) in [
                (ClassStat::Precision, scores.precision),
                (ClassStat::Recall, scores.recall),
                (ClassStat::F1, scores.f1),
            ] {
                values.insert(Metric::class(stat, name).name(), value);
            }
        }
    }
    values
}

/// Orders two records best first: trials that meet their operating-point target before those
/// that miss it, then by the CV metric; failed and unscored trials go last, ties are broken
/// by key so the order is stable.
pub fn compare(a: &TrialRecord, b: &TrialRecord, metric: SelectMetric) -> std::cmp::Ordering {
    match (a.cv_score(metric), b.cv_score(metric)) {
        (Some(x), Some(y)) => {
            // A trial whose operating point misses its target ranks below every one that
            // meets it: the target is what the detector is for.
            let met = |r: &TrialRecord| r.operating_point.is_none_or(|o| o.target_met);
            let order = if metric.higher_is_better() {
                y.total_cmp(&x)
            } else {
                x.total_cmp(&y)
            };
            met(b)
                .cmp(&met(a))
                .then(order)
                .then_with(|| a.key.cmp(&b.key))
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.key.cmp(&b.key),
    }
}

/// Sorts records best first (see [`compare`]).
pub fn rank(records: &mut [TrialRecord], metric: SelectMetric) {
    records.sort_by(|a, b| compare(a, b, metric));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_std() {
        let m = MeanStd::of(&[1.0, 2.0, 3.0]);
        assert_eq!(m.mean, 2.0);
        assert!((m.std - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}
