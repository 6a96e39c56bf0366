//! Classification metrics following scikit-learn's definitions, computed from class ids and
//! the model's class probabilities.
//!
//! * The predicted class is the attack class when P(attack) >= 0.5 ([`THRESHOLD`]) for a
//!   binary label, the most probable class (ties to the lowest id) for a multi-class one.
//! * Attack-level figures (precision, recall = detection rate, F1, ROC AUC, PR AUC and the
//!   2×2 confusion) treat every attack class as positive: P(attack) = 1 − Σ P(normal
//!   classes), flagged at >= 0.5. For a binary label they are the attack class's own.
//! * Per class ([`ClassReport`]): precision, recall, F1, support; macro- and weighted-F1 over
//!   the classes present in the true or the predicted labels (as scikit-learn's
//!   `unique_labels`), balanced accuracy over the classes present in the true labels, and
//!   the K×K confusion matrix.
//! * Accuracy, MCC and log loss are over all K classes (for K = 2 the binary ones).
//! * precision / recall / F1 / MCC are 0 where their denominator is 0 (scikit-learn's
//!   `zero_division` result, without the warning);
//! * ROC AUC by the trapezoid rule over distinct scores (tied scores form one step, as
//!   `roc_auc_score`), average precision as `average_precision_score`
//!   (`sum (R_k - R_{k-1}) P_k` over distinct thresholds, no interpolation); both are `None`
//!   when `y_true` holds a single class;
//! * log loss clips probabilities to `[eps, 1 - eps]` with `eps = f64::EPSILON`, as
//!   scikit-learn's `eps="auto"` does for float64.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::shared::Classes;

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
    /// Count predictions `proba >= threshold` against `y_true`.
    pub fn from_proba(y_true: &[bool], proba: &[f64], threshold: f64) -> Self {
        let mut c = Confusion::default();
        for (&y, &p) in y_true.iter().zip(proba) {
            match (y, p >= threshold) {
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
    /// Share of correct classes.
    pub accuracy: f64,
    /// Attack level: flagged attacks that are attacks.
    pub precision: f64,
    /// Attack level: attacks flagged (the detection rate).
    pub recall: f64,
    /// Attack level: harmonic mean of precision and recall.
    pub f1: f64,
    /// Area under the ROC curve of P(attack); `None` with a single class.
    pub roc_auc: Option<f64>,
    /// Average precision of P(attack); `None` with a single class.
    pub pr_auc: Option<f64>,
    /// Mean negative log-likelihood of the true classes.
    pub log_loss: f64,
    /// Matthews correlation coefficient over all classes.
    pub mcc: f64,
    /// Attack-level confusion at the threshold.
    pub confusion: Confusion,
    /// Per-class figures; absent in records written before they were computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<ClassReport>,
}

/// Per-class figures and the averages over classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    /// Class names in id order.
    pub names: Vec<String>,
    /// Per class, in id order.
    pub per_class: Vec<ClassScores>,
    /// Unweighted mean of the per-class F1 scores.
    pub macro_f1: f64,
    /// Mean of the per-class F1 scores weighted by support.
    pub weighted_f1: f64,
    /// Mean per-class recall over the classes with support.
    pub balanced_accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

/// One class's figures.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// Predicted as this class and of this class.
    pub precision: f64,
    /// Of this class and predicted as this class.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Rows of this class.
    pub support: u64,
}

impl ClassReport {
    /// The recall of the class the model finds worst (of the classes with support).
    pub fn worst_recall(&self) -> Option<(&str, f64)> {
        self.names
            .iter()
            .zip(&self.per_class)
            .filter(|(_, s)| s.support > 0)
            .min_by(|a, b| a.1.recall.total_cmp(&b.1.recall))
            .map(|(n, s)| (n.as_str(), s.recall))
    }

    /// The figures of the class named `name`.
    pub fn class(&self, name: &str) -> Option<&ClassScores> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|k| &self.per_class[k])
    }
}

impl Metrics {
    /// The value of `metric`, when this metric set measures it (`None` for a metric it has
    /// no figure for, e.g. a class it does not know, and for ROC/PR AUC with a single
    /// class).
    pub fn get(&self, metric: crate::shared::Metric) -> Option<f64> {
        use crate::shared::Metric;
        use crate::shared::metric::ClassStat;
        match metric {
            Metric::Accuracy => Some(self.accuracy),
            Metric::Precision => Some(self.precision),
            Metric::Recall | Metric::DetectionRate => Some(self.recall),
            Metric::F1 => Some(self.f1),
            Metric::RocAuc => self.roc_auc,
            Metric::PrAuc => self.pr_auc,
            Metric::Mcc => Some(self.mcc),
            Metric::LogLoss => Some(self.log_loss),
            Metric::Fpr => {
                let c = &self.confusion;
                Some(if c.fp + c.tn == 0 {
                    0.0
                } else {
                    c.fp as f64 / (c.fp + c.tn) as f64
                })
            }
            Metric::MacroF1 => self.classes.as_ref().map(|c| c.macro_f1),
            Metric::WeightedF1 => self.classes.as_ref().map(|c| c.weighted_f1),
            Metric::BalancedAccuracy => self.classes.as_ref().map(|c| c.balanced_accuracy),
            Metric::Class(m) => {
                let scores = self.classes.as_ref()?.class(m.class())?;
                Some(match m.stat() {
                    ClassStat::Precision => scores.precision,
                    ClassStat::Recall => scores.recall,
                    ClassStat::F1 => scores.f1,
                })
            }
        }
    }

    /// Computes every metric of class ids `y_true` against class probabilities `proba`
    /// (one row per label, one column per class of `classes`). Extra rows of the longer
    /// input are ignored.
    pub fn compute(y_true: &[u32], proba: ArrayView2<f64>, classes: &Classes) -> Self {
        Metrics::compute_at(y_true, proba, classes, THRESHOLD)
    }

    /// [`Metrics::compute`] with rows flagged as attacks at `P(attack) >= threshold` (a
    /// model's operating point): the attack-level figures, and for a binary label its
    /// predicted class, follow the cut; a multi-class label's classes stay the argmax.
    pub fn compute_at(
        y_true: &[u32],
        proba: ArrayView2<f64>,
        classes: &Classes,
        threshold: f64,
    ) -> Self {
        let n = y_true.len().min(proba.nrows());
        let y_true = &y_true[..n];
        let k = classes.len().max(proba.ncols());
        let attack_score: Vec<f64> = (0..n)
            .map(|i| classes.attack_probability(proba.row(i).as_slice().unwrap_or(&[])))
            .collect();
        let attack_true: Vec<bool> = y_true.iter().map(|&c| classes.is_attack(c)).collect();
        let predicted: Vec<u32> = (0..n)
            .map(|i| classes.predict_at(proba.row(i).as_slice().unwrap_or(&[]), threshold))
            .collect();
        let c = Confusion::from_proba(&attack_true, &attack_score, threshold);
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let mut matrix = vec![vec![0u64; k]; k];
        for (&t, &p) in y_true.iter().zip(&predicted) {
            matrix[t as usize][p as usize] += 1;
        }
        let report = class_report(&classes.names, matrix);
        let correct: u64 = (0..k).map(|j| report.confusion[j][j]).sum();
        let (accuracy, mcc) = if classes.is_binary() {
            (ratio(c.tp + c.tn, c.total()), mcc(&c))
        } else {
            (ratio(correct, n as u64), multiclass_mcc(&report.confusion))
        };
        let log_loss = if classes.is_binary() {
            log_loss(&attack_true, &attack_score)
        } else {
            multiclass_log_loss(y_true, proba)
        };
        Metrics {
            accuracy,
            precision: ratio(c.tp, c.tp + c.fp),
            recall: ratio(c.tp, c.tp + c.fn_),
            f1: ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn_),
            roc_auc: roc_auc(&attack_true, &attack_score),
            pr_auc: average_precision(&attack_true, &attack_score),
            log_loss,
            mcc,
            confusion: c,
            classes: Some(report),
        }
    }

    /// The metrics of a binary model from P(attack) per row and attack bits.
    pub fn binary(y_true: &[bool], attack_proba: &[f64]) -> Self {
        let ids: Vec<u32> = y_true.iter().map(|&a| u32::from(a)).collect();
        let mut rows = vec![0.0; attack_proba.len() * 2];
        crate::models::binary_rows(attack_proba, &mut rows);
        let proba = ArrayView2::from_shape((attack_proba.len(), 2), &rows).expect("N x 2");
        Metrics::compute(&ids, proba, &Classes::binary("normal", "attack"))
    }
}

/// Per-class figures from a K×K confusion matrix (`[true][predicted]`), with scikit-learn's
/// zero-division result 0 and its choice of classes for the averages.
fn class_report(names: &[String], confusion: Vec<Vec<u64>>) -> ClassReport {
    let k = confusion.len();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let support: Vec<u64> = confusion.iter().map(|row| row.iter().sum()).collect();
    let predicted: Vec<u64> = (0..k)
        .map(|j| confusion.iter().map(|r| r[j]).sum())
        .collect();
    let per_class: Vec<ClassScores> = (0..k)
        .map(|j| {
            let tp = confusion[j][j];
            ClassScores {
                precision: ratio(tp, predicted[j]),
                recall: ratio(tp, support[j]),
                f1: ratio(2 * tp, support[j] + predicted[j]),
                support: support[j],
            }
        })
        .collect();
    let seen: Vec<usize> = (0..k)
        .filter(|&j| support[j] > 0 || predicted[j] > 0)
        .collect();
    let mean = |values: Vec<f64>| {
        if values.is_empty() {
            0.0
        } else {
            values.iter().sum::<f64>() / values.len() as f64
        }
    };
    let total: u64 = support.iter().sum();
    let weighted_f1 = if total == 0 {
        0.0
    } else {
        (0..k)
            .map(|j| per_class[j].f1 * support[j] as f64)
            .sum::<f64>()
            / total as f64
    };
    ClassReport {
        names: (0..k)
            .map(|j| names.get(j).cloned().unwrap_or_else(|| j.to_string()))
            .collect(),
        macro_f1: mean(seen.iter().map(|&j| per_class[j].f1).collect()),
        weighted_f1,
        balanced_accuracy: mean(
            (0..k)
                .filter(|&j| support[j] > 0)
                .map(|j| per_class[j].recall)
                .collect(),
        ),
        per_class,
        confusion,
    }
}

/// scikit-learn's `matthews_corrcoef` for K classes (Gorodkin's R_K); 0 when undefined.
fn multiclass_mcc(confusion: &[Vec<u64>]) -> f64 {
    let k = confusion.len();
    let t: Vec<f64> = confusion
        .iter()
        .map(|r| r.iter().sum::<u64>() as f64)
        .collect();
    let p: Vec<f64> = (0..k)
        .map(|j| confusion.iter().map(|r| r[j]).sum::<u64>() as f64)
        .collect();
    let correct: f64 = (0..k).map(|j| confusion[j][j] as f64).sum();
    let s: f64 = t.iter().sum();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let cov_ytyp = correct * s - dot(&t, &p);
    let cov_ypyp = s * s - dot(&p, &p);
    let cov_ytyt = s * s - dot(&t, &t);
    if cov_ypyp * cov_ytyt == 0.0 {
        0.0
    } else {
        cov_ytyp / (cov_ytyt * cov_ypyp).sqrt()
    }
}

/// Mean −ln P(true class), probabilities clipped to `[eps, 1 − eps]`; 0 for empty input.
fn multiclass_log_loss(y_true: &[u32], proba: ArrayView2<f64>) -> f64 {
    if y_true.is_empty() {
        return 0.0;
    }
    let eps = f64::EPSILON;
    let total: f64 = y_true
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let p = proba.get((i, c as usize)).copied().unwrap_or(0.0);
            let p = if p.is_nan() { 0.0 } else { p };
            -p.clamp(eps, 1.0 - eps).ln()
        })
        .sum();
    total / y_true.len() as f64
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
        let m = Metrics::binary(&Y, &P);
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
        let m = Metrics::binary(&[true, true], &[0.2, 0.9]);
        assert_eq!(m.roc_auc, None);
        assert_eq!(m.pr_auc, None);
        close(m.precision, 1.0);
        close(m.mcc, 0.0);
        let e = Metrics::binary(&[], &[]);
        close(e.accuracy, 0.0);
        close(e.log_loss, 0.0);
        // perfect confident predictions are clipped, not infinite
        assert!(log_loss(&[true, false], &[1.0, 0.0]) < 1e-15);
        assert!(log_loss(&[false], &[1.0]).is_finite());
    }
}
