//! Binary classification metrics with the attack class as positive, computed from labels and
//! P(attack), following scikit-learn's definitions:
//!
//! * labels are predicted as `proba >= 0.5` ([`THRESHOLD`]);
//! * precision / recall / F1 / MCC are 0 where their denominator is 0 (scikit-learn's
//!   `zero_division` result, without the warning);
//! * ROC AUC by the trapezoid rule over distinct scores (tied scores form one step, as
//!   `roc_auc_score`), average precision as `average_precision_score`
//!   (`sum (R_k - R_{k-1}) P_k` over distinct thresholds, no interpolation); both are `None`
//!   when `y_true` holds a single class;
//! * log loss clips probabilities to `[eps, 1 - eps]` with `eps = f64::EPSILON`, as
//!   scikit-learn's `eps="auto"` does for float64.

use serde::{Deserialize, Serialize};

/// Mean and standard deviation of a metric over the cross-validation folds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean over folds.
    pub mean: f64,
    /// Population standard deviation over folds.
    pub std: f64,
}

impl MeanStd {
    /// Summarizes per-fold values (NaN when there are none).
    pub fn of(values: &[f64]) -> MeanStd {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        MeanStd {
            mean,
            std: var.sqrt(),
        }
    }
}

/// Decision threshold on P(attack).
pub const THRESHOLD: f64 = 0.5;

/// Counts of the 2×2 confusion matrix (attack = positive).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Benign predicted benign.
    pub tn: u64,
    /// Benign predicted attack.
    pub fp: u64,
    /// Attack predicted benign.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// Attack predicted attack.
    pub tp: u64,
}

impl Confusion {
    /// Count predictions `proba >= THRESHOLD` against `y_true`.
    pub fn from_proba(y_true: &[bool], proba: &[f64]) -> Self {
        let mut c = Confusion::default();
        for (&y, &p) in y_true.iter().zip(proba) {
            match (y, p >= THRESHOLD) {
                (false, false) => c.tn += 1,
                (false, true) => c.fp += 1,
                (true, false) => c.fn_ += 1,
                (true, true) => c.tp += 1,
            }
        }
        c
    }

    fn total(&self) -> u64 {
        self.tn + self.fp + self.fn_ + self.tp
    }
}

/// All metrics of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Share of correct labels.
    pub accuracy: f64,
    /// tp / (tp + fp).
    pub precision: f64,
    /// tp / (tp + fn).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Area under the ROC curve; `None` with a single class.
    pub roc_auc: Option<f64>,
    /// Average precision (area under the precision-recall curve); `None` with a single class.
    pub pr_auc: Option<f64>,
    /// Mean negative log-likelihood of the true labels.
    pub log_loss: f64,
    /// Matthews correlation coefficient.
    pub mcc: f64,
    /// Confusion matrix at the threshold.
    pub confusion: Confusion,
}

impl Metrics {
    /// The value of `metric`, when this binary metric set measures it (`None` for a metric
    /// it has no figure for, e.g. per-class ones, and for ROC/PR AUC with a single class).
    pub fn get(&self, metric: crate::shared::Metric) -> Option<f64> {
        use crate::shared::Metric;
        match metric {
            Metric::Accuracy => Some(self.accuracy),
            Metric::Precision => Some(self.precision),
            Metric::Recall => Some(self.recall),
            Metric::F1 => Some(self.f1),
            Metric::RocAuc => self.roc_auc,
            Metric::PrAuc => self.pr_auc,
            Metric::Mcc => Some(self.mcc),
            Metric::LogLoss => Some(self.log_loss),
            Metric::MacroF1 | Metric::DetectionRate | Metric::Fpr | Metric::Class(_) => None,
        }
    }

    /// Compute every metric. `y_true` and `proba` must have equal length (extra entries of the
    /// longer one are ignored).
    pub fn compute(y_true: &[bool], proba: &[f64]) -> Self {
        let n = y_true.len().min(proba.len());
        let (y_true, proba) = (&y_true[..n], &proba[..n]);
        let c = Confusion::from_proba(y_true, proba);
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(c.tp, c.tp + c.fp);
        let recall = ratio(c.tp, c.tp + c.fn_);
        let f1 = ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn_);
        Metrics {
            accuracy: ratio(c.tp + c.tn, c.total()),
            precision,
            recall,
            f1,
            roc_auc: roc_auc(y_true, proba),
            pr_auc: average_precision(y_true, proba),
            log_loss: log_loss(y_true, proba),
            mcc: mcc(&c),
            confusion: c,
        }
    }
}

fn mcc(c: &Confusion) -> f64 {
    let (tp, tn, fp, fn_) = (c.tp as f64, c.tn as f64, c.fp as f64, c.fn_ as f64);
    let den = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
    if den == 0.0 {
        0.0
    } else {
        (tp * tn - fp * fn_) / den
    }
}

/// Groups of tied scores in descending order: (positives, negatives) per distinct score.
fn tied_groups(y_true: &[bool], score: &[f64]) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..y_true.len()).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let mut groups: Vec<(f64, f64)> = Vec::new();
    let mut last: Option<f64> = None;
    for i in order {
        let s = score[i];
        if last != Some(s) {
            groups.push((0.0, 0.0));
            last = Some(s);
        }
        let g = groups.last_mut().expect("pushed above");
        if y_true[i] {
            g.0 += 1.0;
        } else {
            g.1 += 1.0;
        }
    }
    groups
}

/// Area under the ROC curve, ties handled as scikit-learn's `roc_auc_score`.
pub fn roc_auc(y_true: &[bool], score: &[f64]) -> Option<f64> {
    let groups = tied_groups(y_true, score);
    let pos: f64 = groups.iter().map(|g| g.0).sum();
    let neg: f64 = groups.iter().map(|g| g.1).sum();
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let (mut tp, mut area) = (0.0, 0.0);
    for (p, n) in groups {
        area += n * (tp + p / 2.0);
        tp += p;
    }
    Some(area / (pos * neg))
}

/// Average precision as scikit-learn's `average_precision_score`.
pub fn average_precision(y_true: &[bool], score: &[f64]) -> Option<f64> {
    let groups = tied_groups(y_true, score);
    let pos: f64 = groups.iter().map(|g| g.0).sum();
    let neg: f64 = groups.iter().map(|g| g.1).sum();
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let (mut tp, mut fp, mut ap) = (0.0, 0.0, 0.0);
    for (p, n) in groups {
        tp += p;
        fp += n;
        ap += (p / pos) * (tp / (tp + fp));
    }
    Some(ap)
}

/// Mean log loss with probabilities clipped to `[eps, 1 - eps]`; 0 for empty input.
pub fn log_loss(y_true: &[bool], proba: &[f64]) -> f64 {
    if y_true.is_empty() {
        return 0.0;
    }
    let eps = f64::EPSILON;
    let total: f64 = y_true
        .iter()
        .zip(proba)
        .map(|(&y, &p)| {
            let p = if p.is_nan() {
                0.5
            } else {
                p.clamp(eps, 1.0 - eps)
            };
            if y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    total / y_true.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values from scikit-learn 1.9.1 on the same arrays.
    const Y: [bool; 10] = [
        true, false, true, true, false, false, true, false, true, false,
    ];
    const P: [f64; 10] = [0.9, 0.1, 0.8, 0.4, 0.4, 0.6, 0.5, 0.0, 1.0, 0.4];

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn matches_sklearn() {
        let m = Metrics::compute(&Y, &P);
        close(m.accuracy, 0.8);
        close(m.precision, 0.8);
        close(m.recall, 0.8);
        close(m.f1, 0.8);
        close(m.roc_auc.unwrap(), 0.88); // 22/25 pairs, one tie at 0.4 counted as 1/2 twice
        close(m.pr_auc.unwrap(), 0.885);
        close(m.log_loss, 0.3981244474470099);
        close(m.mcc, 0.6);
        assert_eq!(
            m.confusion,
            Confusion {
                tn: 4,
                fp: 1,
                fn_: 1,
                tp: 4
            }
        );
    }

    #[test]
    fn all_tied_scores_give_half_auc() {
        let y = [true, false, true, false];
        let p = [0.3; 4];
        close(roc_auc(&y, &p).unwrap(), 0.5);
        close(average_precision(&y, &p).unwrap(), 0.5);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let m = Metrics::compute(&[true, true], &[0.2, 0.9]);
        assert_eq!(m.roc_auc, None);
        assert_eq!(m.pr_auc, None);
        close(m.precision, 1.0);
        close(m.mcc, 0.0);
        let e = Metrics::compute(&[], &[]);
        close(e.accuracy, 0.0);
        close(e.log_loss, 0.0);
        // perfect confident predictions are clipped, not infinite
        assert!(log_loss(&[true, false], &[1.0, 0.0]) < 1e-15);
        assert!(log_loss(&[false], &[1.0]).is_finite());
    }
}
