//! Operating points: where a detector cuts P(attack), chosen for a false-alarm budget or a
//! detection rate, and how sure we are of the false-alarm rate it gives.
//!
//! A security team runs a detector at the false-positive rate (FPR) it can afford, not at
//! P(attack) ≥ 0.5: with rare attacks the false alarms decide whether anyone reads the
//! alerts. [`Roc::from_scores`] turns pooled out-of-fold scores into the curve of every
//! distinct cut with its exact counts; [`Roc::choose`] picks the cut for a [`Target`]:
//!
//! * `max_fpr` alone: the lowest cut whose FPR is at most the budget (the most detections
//!   the budget allows);
//! * `min_detection_rate` alone: the highest cut that still detects that share of attacks
//!   (the fewest false alarms that detection rate costs);
//! * both: the `max_fpr` cut, and the target is met only if it also detects enough.
//!
//! A row is an attack when `P(attack) >= threshold`. [`clopper_pearson_upper`] bounds the
//! FPR seen on held-out rows (exact binomial, two-sided 95 % by default).

use serde::{Deserialize, Serialize};

use crate::shared::special::ln_gamma;

/// What an operating point must achieve; at least one bound is set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The false-alarm budget: the largest share of normal rows flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fpr: Option<f64>,
    /// The share of attack rows that must be flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_detection_rate: Option<f64>,
}

impl Target {
    /// Why this target cannot be measured, if it cannot: no bound, or a bound outside its
    /// range (`max_fpr` in (0, 1), `min_detection_rate` in (0, 1]).
    pub fn problem(&self) -> Option<String> {
        match (self.max_fpr, self.min_detection_rate) {
            (None, None) => Some("set max_fpr or min_detection_rate (or both)".into()),
            (Some(f), _) if !(f > 0.0 && f < 1.0) => Some(format!(
                "max_fpr must be between 0 and 1, exclusive (got {f})"
            )),
            (_, Some(d)) if !(d > 0.0 && d <= 1.0) => {
                Some(format!("min_detection_rate must be in (0, 1] (got {d})"))
            }
            _ => None,
        }
    }

    /// The fewest normal rows on which `max_fpr` can be measured: 3 / max_fpr (a budget of
    /// 0.001 needs 3,000 normal rows, so that three false alarms are allowed).
    pub fn min_normal_rows(&self) -> usize {
        self.max_fpr.map_or(0, |f| (3.0 / f).ceil() as usize)
    }

    /// A short description, e.g. `max_fpr 0.001` or `min_detection_rate 0.99`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(f) = self.max_fpr {
            parts.push(format!("max_fpr {f}"));
        }
        if let Some(d) = self.min_detection_rate {
            parts.push(format!("min_detection_rate {d}"));
        }
        parts.join(", ")
    }
}

/// Counts at one cut: rows with `P(attack) >= threshold` are flagged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// The cut on P(attack).
    pub threshold: f64,
    /// Normal rows flagged.
    pub fp: u64,
    /// Attack rows flagged.
    pub tp: u64,
}

/// Detection and false-alarm figures at one cut, on one set of rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Normal rows flagged.
    pub fp: u64,
    /// Normal rows.
    pub normal: u64,
    /// Attack rows flagged.
    pub tp: u64,
    /// Attack rows.
    pub attacks: u64,
}

impl Rates {
    /// The figures of `scores` against `attack_true` at `threshold`.
    pub fn at(attack_true: &[bool], scores: &[f64], threshold: f64) -> Rates {
        let mut rates = Rates {
            fp: 0,
            normal: 0,
            tp: 0,
            attacks: 0,
        };
        for (&attack, &p) in attack_true.iter().zip(scores) {
            let flagged = u64::from(p >= threshold);
            if attack {
                rates.attacks += 1;
                rates.tp += flagged;
            } else {
                rates.normal += 1;
                rates.fp += flagged;
            }
        }
        rates
    }

    /// Share of normal rows flagged (0 without normal rows).
    pub fn fpr(&self) -> f64 {
        ratio(self.fp, self.normal)
    }

    /// Share of attack rows flagged (0 without attack rows).
    pub fn detection_rate(&self) -> f64 {
        ratio(self.tp, self.attacks)
    }

    /// The two-sided 95 % Clopper-Pearson upper bound on the FPR.
    pub fn fpr_upper_95(&self) -> f64 {
        clopper_pearson_upper(self.fp, self.normal, 0.95)
    }

    /// Whether these figures meet `target`.
    pub fn meets(&self, target: &Target) -> bool {
        target.max_fpr.is_none_or(|f| self.fpr() <= f)
            && target
                .min_detection_rate
                .is_none_or(|d| self.detection_rate() >= d)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The ROC curve of a set of scores: one point per distinct score, highest cut first, with
/// the exact counts of the rows it flags, plus the class totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roc {
    /// Normal rows.
    pub normal: u64,
    /// Attack rows.
    pub attacks: u64,
    /// Cuts in descending threshold order; counts ascend.
    pub points: Vec<RocPoint>,
}

/// The operating point chosen for a target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The cut on P(attack).
    pub threshold: f64,
    /// Figures at that cut on the rows it was chosen on.
    pub rates: Rates,
    /// Whether those figures meet the target.
    pub target_met: bool,
}

impl Roc {
    /// The curve of `scores` (P(attack)) against `attack_true`. Non-finite scores are
    /// treated as 0.
    pub fn from_scores(attack_true: &[bool], scores: &[f64]) -> Roc {
        let mut rows: Vec<(f64, bool)> = scores
            .iter()
            .zip(attack_true)
            .map(|(&p, &a)| (if p.is_finite() { p } else { 0.0 }, a))
            .collect();
        rows.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut points: Vec<RocPoint> = Vec::new();
        let (mut fp, mut tp) = (0u64, 0u64);
        for (i, &(p, attack)) in rows.iter().enumerate() {
            if attack {
                tp += 1;
            } else {
                fp += 1;
            }
            // A cut exists after the last row of each run of equal scores.
            if rows.get(i + 1).is_none_or(|next| next.0 != p) {
                points.push(RocPoint {
                    threshold: p,
                    fp,
                    tp,
                });
            }
        }
        Roc {
            normal: fp,
            attacks: tp,
            points,
        }
    }

    /// The operating point for `target` (see the module docs). When no cut keeps the FPR
    /// within the budget, the cut is above every score: nothing is flagged, and the target
    /// is not met.
    pub fn choose(&self, target: &Target) -> Choice {
        let rates = |p: &RocPoint| Rates {
            fp: p.fp,
            normal: self.normal,
            tp: p.tp,
            attacks: self.attacks,
        };
        let nothing = Choice {
            threshold: self
                .points
                .first()
                .map_or(1.0, |p| next_above(p.threshold.max(0.0))),
            rates: Rates {
                fp: 0,
                normal: self.normal,
                tp: 0,
                attacks: self.attacks,
            },
            target_met: false,
        };
        let point = if let Some(max_fpr) = target.max_fpr {
            // Counts ascend as the cut falls: the last point within the budget.
            self.points
                .iter()
                .take_while(|p| ratio(p.fp, self.normal) <= max_fpr)
                .last()
        } else if let Some(min_dr) = target.min_detection_rate {
            self.points
                .iter()
                .find(|p| ratio(p.tp, self.attacks) >= min_dr)
        } else {
            None
        };
        match point {
            Some(p) => Choice {
                threshold: p.threshold,
                rates: rates(p),
                target_met: rates(p).meets(target),
            },
            // A detector that flags nothing keeps any budget and is of no use: not met.
            None => nothing,
        }
    }

    /// At most about `budget` points of the curve, keeping its ends and every point where
    /// the false alarms or detections moved by a visible step: all of the first false
    /// alarms (where small budgets live), then steps of 1 % of the false alarms so far or
    /// 1 / `budget` of the rows. Every kept point keeps its exact counts.
    pub fn thinned(&self, budget: usize) -> Roc {
        let budget = budget.max(2) as u64;
        let mut points: Vec<RocPoint> = Vec::new();
        let last = self.points.len().saturating_sub(1);
        for (i, p) in self.points.iter().enumerate() {
            let keep = match points.last() {
                None => true,
                Some(_) if i == last => true,
                Some(prev) => {
                    let fp_step = (prev.fp / 100).max(1).max(self.normal / budget);
                    let fp_moved = p.fp >= prev.fp + fp_step || (p.fp > prev.fp && p.fp <= 50);
                    let tp_moved = p.tp >= prev.tp + (self.attacks / budget).max(1);
                    fp_moved || tp_moved
                }
            };
            if keep {
                points.push(*p);
            }
        }
        Roc {
            normal: self.normal,
            attacks: self.attacks,
            points,
        }
    }
}

/// A trial's or a model's operating point: the target, the cut chosen for it on the pooled
/// out-of-fold predictions, and how it did there and on the held-out rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// What the cut was chosen for.
    pub target: Target,
    /// Rows with `P(attack) >= threshold` are attacks.
    pub threshold: f64,
    /// Whether the target holds on the out-of-fold predictions the cut was chosen on.
    pub target_met: bool,
    /// Figures at the cut on the pooled out-of-fold predictions.
    pub out_of_fold: Rates,
    /// Figures at the cut on the held-out test rows (the final model's predictions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<Rates>,
}

impl OperatingPoint {
    /// Whether the target also held on the held-out rows (`None` without them).
    pub fn held(&self) -> Option<bool> {
        self.held_out.map(|r| r.meets(&self.target))
    }
}

/// The smallest f64 above `x` (for a cut that flags nothing).
fn next_above(x: f64) -> f64 {
    f64::from_bits(x.to_bits() + 1)
}

/// The upper end of the two-sided Clopper-Pearson interval at `confidence` for `k`
/// successes in `n` trials: the p with P(X <= k | n, p) = (1 - confidence) / 2. 1 when
/// k = n or n = 0.
pub fn clopper_pearson_upper(k: u64, n: u64, confidence: f64) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    let alpha = (1.0 - confidence) / 2.0;
    // The upper bound is the (1 - alpha) quantile of Beta(k + 1, n - k).
    let (a, b) = ((k + 1) as f64, (n - k) as f64);
    if k == 0 {
        return 1.0 - alpha.powf(1.0 / n as f64);
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if regularized_beta(mid, a, b) < 1.0 - alpha {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-15 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The regularized incomplete beta function I_x(a, b) (continued fraction, Numerical
/// Recipes' `betai`).
fn regularized_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_fraction(x, a, b) / a
    } else {
        1.0 - ln_front.exp() * beta_fraction(1.0 - x, b, a) / b
    }
}

fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    // Lentz's method: keep every denominator away from zero.
    let away_from_zero = |v: f64| if v.abs() < 1e-300 { 1e-300 } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / away_from_zero(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let even = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / away_from_zero(1.0 + even * d);
        c = away_from_zero(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / away_from_zero(1.0 + odd * d);
        c = away_from_zero(1.0 + odd / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fpr_target(f: f64) -> Target {
        Target {
            max_fpr: Some(f),
            min_detection_rate: None,
        }
    }

    /// 1,000 normal rows scored i/1000 and 100 attacks scored 0.9 + i/1000.
    fn sample() -> (Vec<bool>, Vec<f64>) {
        let mut truth = Vec::new();
        let mut scores = Vec::new();
        for i in 0..1000 {
            truth.push(false);
            scores.push(i as f64 / 1000.0);
        }
        for i in 0..100 {
            truth.push(true);
            scores.push(0.9 + i as f64 / 1000.0);
        }
        (truth, scores)
    }

    #[test]
    fn a_max_fpr_cut_holds_on_the_rows_it_was_chosen_on_and_is_the_lowest_such_cut() {
        let (truth, scores) = sample();
        let roc = Roc::from_scores(&truth, &scores);
        for budget in [0.001, 0.005, 0.01, 0.05, 0.2] {
            let choice = roc.choose(&fpr_target(budget));
            let rates = Rates::at(&truth, &scores, choice.threshold);
            assert_eq!(rates, choice.rates, "budget {budget}");
            assert!(
                rates.fpr() <= budget,
                "budget {budget}: fpr {}",
                rates.fpr()
            );
            assert!(choice.target_met);
            // The next lower score would break the budget.
            let lower = scores
                .iter()
                .copied()
                .filter(|&s| s < choice.threshold)
                .fold(f64::NEG_INFINITY, f64::max);
            assert!(
                Rates::at(&truth, &scores, lower).fpr() > budget,
                "budget {budget}"
            );
        }
        // 0.01 of 1,000 normals = 10 false alarms: normals scored 0.990..0.999.
        let choice = roc.choose(&fpr_target(0.01));
        assert_eq!(choice.rates.fp, 10);
        assert_eq!(choice.threshold, 0.99);
        assert_eq!(choice.rates.tp, 10);
    }

    #[test]
    fn a_detection_rate_cut_is_the_highest_that_detects_enough() {
        let (truth, scores) = sample();
        let roc = Roc::from_scores(&truth, &scores);
        let target = Target {
            max_fpr: None,
            min_detection_rate: Some(0.95),
        };
        let choice = roc.choose(&target);
        assert_eq!(choice.rates.tp, 95);
        assert!(choice.target_met);
        assert_eq!(Rates::at(&truth, &scores, choice.threshold), choice.rates);
    }

    #[test]
    fn both_bounds_report_a_target_that_cannot_be_met() {
        let (truth, scores) = sample();
        let roc = Roc::from_scores(&truth, &scores);
        let target = Target {
            max_fpr: Some(0.001),
            min_detection_rate: Some(0.9),
        };
        let choice = roc.choose(&target);
        assert!(!choice.target_met);
        assert!(choice.rates.fpr() <= 0.001);
    }

    #[test]
    fn a_budget_below_every_cut_flags_nothing() {
        // Every normal row scores 1.0 (the top score), so any cut flags them all.
        let truth = [false, false, true];
        let scores = [1.0, 1.0, 0.5];
        let choice = Roc::from_scores(&truth, &scores).choose(&fpr_target(0.1));
        assert!(choice.threshold > 1.0);
        assert_eq!(Rates::at(&truth, &scores, choice.threshold).fp, 0);
        assert_eq!(choice.rates.tp, 0);
        assert!(!choice.target_met, "flagging nothing is no operating point");
    }

    #[test]
    fn ties_form_one_cut() {
        let roc = Roc::from_scores(&[false, true, true, false], &[0.5, 0.5, 0.7, 0.1]);
        let cuts: Vec<(f64, u64, u64)> = roc
            .points
            .iter()
            .map(|p| (p.threshold, p.fp, p.tp))
            .collect();
        assert_eq!(cuts, vec![(0.7, 0, 1), (0.5, 1, 2), (0.1, 2, 2)]);
    }

    #[test]
    fn thinning_keeps_exact_counts_ends_and_small_false_alarm_counts() {
        let n = 200_000;
        let truth: Vec<bool> = (0..n).map(|i| i % 10 == 0).collect();
        let scores: Vec<f64> = (0..n).map(|i| ((i * 7919) % n) as f64 / n as f64).collect();
        let roc = Roc::from_scores(&truth, &scores);
        let thin = roc.thinned(1000);
        assert!(thin.points.len() < 3000, "{}", thin.points.len());
        assert_eq!(thin.points.first(), roc.points.first());
        assert_eq!(thin.points.last(), roc.points.last());
        for p in &thin.points {
            assert!(roc.points.contains(p));
        }
        for fp in 1..=50 {
            assert!(thin.points.iter().any(|p| p.fp == fp), "fp {fp} dropped");
        }
    }

    #[test]
    fn clopper_pearson_matches_scipy() {
        // scipy.stats.beta.ppf(0.975, k + 1, n - k) (statsmodels' proportion_confint
        // method="beta").
        let cases = [
            (0u64, 1000u64, 0.003_682_083_896_865_671),
            (1, 1000, 0.005_558_924_279_826_672),
            (3, 10_000, 0.000_876_474_522_514_000_7),
            (50, 100, 0.601_678_870_496_699),
            (7, 20, 0.592_188_534_532_828_2),
        ];
        for (k, n, expected) in cases {
            let got = clopper_pearson_upper(k, n, 0.95);
            assert!(
                (got - expected).abs() < 1e-9,
                "k={k} n={n}: {got} vs {expected}"
            );
        }
        assert_eq!(clopper_pearson_upper(5, 5, 0.95), 1.0);
        assert_eq!(clopper_pearson_upper(0, 0, 0.95), 1.0);
    }

    #[test]
    fn unmeasurable_targets_are_named() {
        assert!(fpr_target(0.0).problem().unwrap().contains("max_fpr"));
        assert!(fpr_target(1.0).problem().is_some());
        assert!(fpr_target(f64::NAN).problem().is_some());
        assert!(fpr_target(0.001).problem().is_none());
        assert_eq!(fpr_target(0.001).min_normal_rows(), 3000);
        let none = Target {
            max_fpr: None,
            min_detection_rate: None,
        };
        assert!(none.problem().is_some());
    }
}
