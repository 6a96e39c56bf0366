//! Early stopping for `gradient_boosting`: scikit-learn's `n_iter_no_change`,
//! `validation_fraction` and `tol` (`GradientBoostingClassifier`, `sklearn/ensemble/_gb.py`).
//!
//! With `n_iter_no_change` set, a fit sets aside `validation_fraction` of the rows it is given
//! (a stratified draw from the fit's seed, so within a cross-validation fold it comes from that
//! fold's training rows and never from a held-out row), boosts on the rest, and after each round
//! computes the log loss of the validation part (weighted by `class_weight` when set, as
//! scikit-learn's `sample_weight_val`). [`StopRule`] is scikit-learn's rule, kept exactly: the
//! fit goes on while the round's loss plus `tol` is below at least one of the last
//! `n_iter_no_change` losses, and otherwise stops **keeping the round that failed**
//! (`n_estimators_ = i + 1`). When the loss rises steadily after its minimum, the fit stops at
//! most `n_iter_no_change` rounds after it; a loss that falls back below the worst of the
//! window (though not below the best) keeps the fit going, as in scikit-learn.
//!
//! The split differs from scikit-learn's `train_test_split` in how rows are drawn (netsec's own
//! seeded stream) and in one guarantee: every class keeps at least one row in each part (its
//! share is `round(validation_fraction × rows)`, clamped to `1..=rows − 1`), so each class needs
//! at least [`MIN_CLASS_ROWS`] rows where scikit-learn would fail later on a missing class.
//! The split does not depend on `n_estimators`, so the rounds of an early-stopped fit are the
//! same for every `n_estimators`, and smaller grid points are prefixes of the largest fit.

use ndarray::{Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;

use crate::models::tree::Tree;
use crate::models::{Labels, ModelError, ParamKind, ParamSpec, ParamValue, Params, Reader};

/// `n_iter_no_change`, which turns early stopping on (scikit-learn's default: off).
pub const N_ITER_NO_CHANGE: ParamSpec = ParamSpec {
    name: "n_iter_no_change",
    kind: ParamKind::OneOf(&[
        ParamKind::Null,
        ParamKind::Int {
            min: 1,
            max: i64::MAX,
        },
    ]),
    default: ParamValue::Null,
    doc: "stop when the validation loss has not improved by tol in this many rounds; \
              null = no early stopping",
};

/// `validation_fraction`: the share of a fit's rows set aside (scikit-learn's default 0.1).
pub const VALIDATION_FRACTION: ParamSpec = ParamSpec {
    name: "validation_fraction",
    kind: ParamKind::Interval {
        min: 0.0,
        min_closed: false,
        max: 1.0,
        max_closed: false,
    },
    default: ParamValue::Float(0.1),
    doc: "share of the training rows set aside (stratified) to watch the loss on",
};

/// `tol`: the smallest improvement of the validation loss (scikit-learn's default 1e-4).
pub const TOL: ParamSpec = ParamSpec {
    name: "tol",
    kind: ParamKind::Interval {
        min: 0.0,
        min_closed: true,
        max: f64::INFINITY,
        max_closed: false,
    },
    default: ParamValue::Float(1e-4),
    doc: "smallest drop of the validation log loss that counts as an improvement",
};

/// The three parameters.
const SPECS: [&ParamSpec; 3] = [&N_ITER_NO_CHANGE, &VALIDATION_FRACTION, &TOL];

/// Rows a class needs in the rows of a fit with early stopping: one for each part.
pub const MIN_CLASS_ROWS: usize = 2;

/// The random stream the validation split is drawn from; boosting rounds use the streams
/// `0..n_estimators`, far below it.
const SPLIT_STREAM: u64 = 1 << 62;

/// Whether `params` turn early stopping on (`n_iter_no_change` is a number).
pub fn enabled(params: &Params) -> bool {
    matches!(params.get(N_ITER_NO_CHANGE.name), Some(ParamValue::Int(_)))
}

/// Whether `key = value` is an early-stopping parameter at its default, which trial keys leave
/// out so that the keys of grid points from before early stopping existed stay the same.
pub fn is_default(key: &str, value: &ParamValue) -> bool {
    SPECS.iter().any(|s| s.name == key && s.default == *value)
}

/// Early stopping as a fit's parameters ask for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStopping {
    /// Rounds without improvement before stopping.
    pub n_iter_no_change: usize,
    /// Share of the rows set aside.
    pub validation_fraction: f64,
    /// Smallest improvement of the validation loss.
    pub tol: f64,
}

impl EarlyStopping {
    /// The resolved parameters' early stopping, `None` when `n_iter_no_change` is null.
    pub fn from_params(r: &Reader<'_>) -> Result<Option<EarlyStopping>, ModelError> {
        let Some(n_iter_no_change) = r.opt_usize(N_ITER_NO_CHANGE.name)? else {
            return Ok(None);
        };
        Ok(Some(EarlyStopping {
            n_iter_no_change,
            validation_fraction: r.f64(VALIDATION_FRACTION.name)?,
            tol: r.f64(TOL.name)?,
        }))
    }

    /// Validation rows of each class for a fit whose rows hold `counts[c]` rows of class
    /// `c`; `Err((class, rows))` names the first class present with fewer than
    /// [`MIN_CLASS_ROWS`] rows.
    pub fn validation_counts(&self, counts: &[usize]) -> Result<Vec<usize>, (usize, usize)> {
        counts
            .iter()
            .enumerate()
            .map(|(c, &n)| match n {
                0 => Ok(0),
                n if n < MIN_CLASS_ROWS => Err((c, n)),
                n => Ok(((self.validation_fraction * n as f64).round() as usize).clamp(1, n - 1)),
            })
            .collect()
    }

    /// Splits the rows of `labels` into (boosting rows, validation rows), both ascending: per
    /// class, [`EarlyStopping::validation_counts`] rows drawn from the stream `(seed,
    /// SPLIT_STREAM)`.
    pub fn split(
        &self,
        labels: &Labels<'_>,
        seed: u64,
    ) -> Result<(Vec<u32>, Vec<u32>), ModelError> {
        let mut by_class: Vec<Vec<u32>> = vec![Vec::new(); labels.n_classes];
        for (i, &c) in labels.ids.iter().enumerate() {
            by_class[c as usize].push(i as u32);
        }
        let counts: Vec<usize> = by_class.iter().map(Vec::len).collect();
        let val_counts = self.validation_counts(&counts).map_err(|(class, rows)| {
            ModelError::ValidationSplit {
                class: labels.name(class),
                rows,
            }
        })?;
        let mut rng = crate::models::rng_for(seed, SPLIT_STREAM);
        let mut in_val = vec![false; labels.ids.len()];
        for (mut rows, k) in by_class.into_iter().zip(val_counts) {
            rows.shuffle(&mut rng);
            for &i in &rows[..k] {
                in_val[i as usize] = true;
            }
        }
        let (val, fit): (Vec<u32>, Vec<u32>) =
            (0..labels.ids.len() as u32).partition(|&i| in_val[i as usize]);
        Ok((fit, val))
    }
}

/// The rows a fit with early stopping boosts on; the others went to its [`Monitor`].
pub(crate) struct Kept {
    /// Features of the kept rows.
    pub x: Array2<f64>,
    /// Their class ids.
    pub ids: Vec<u32>,
}

impl Kept {
    /// The kept rows' labels, with the classes of `all`.
    pub fn labels<'a>(&'a self, all: &Labels<'a>) -> Labels<'a> {
        Labels {
            ids: &self.ids,
            n_classes: all.n_classes,
            names: all.names,
        }
    }
}

/// Sets the validation part aside when `r` turns early stopping on: the rows to boost on and
/// the monitor of the others (row weights from `class_weights`, resolved on all the rows).
/// `(None, None)` without early stopping.
pub(crate) fn set_aside(
    r: &Reader<'_>,
    x: ArrayView2<f64>,
    labels: &Labels<'_>,
    class_weights: Option<&[f64]>,
    seed: u64,
) -> Result<(Option<Kept>, Option<Monitor>), ModelError> {
    let Some(stopping) = EarlyStopping::from_params(r)? else {
        return Ok((None, None));
    };
    let (fit, val) = stopping.split(labels, seed)?;
    let rows = |idx: &[u32]| -> Vec<usize> { idx.iter().map(|&i| i as usize).collect() };
    let ids = |idx: &[u32]| -> Vec<u32> { idx.iter().map(|&i| labels.ids[i as usize]).collect() };
    let val_ids = ids(&val);
    let monitor = Monitor::new(
        &stopping,
        x.select(Axis(0), &rows(&val)).into_raw_vec_and_offset().0,
        val_ids.clone(),
        class_weights.map(|cw| crate::models::class_weight::per_row(cw, &val_ids)),
    );
    let kept = Kept {
        x: x.select(Axis(0), &rows(&fit)),
        ids: ids(&fit),
    };
    Ok((Some(kept), Some(monitor)))
}

/// scikit-learn's stopping rule over the validation losses, one round at a time.
#[derive(Debug, Clone)]
pub struct StopRule {
    /// The last `n_iter_no_change` losses (a ring, infinite until filled).
    history: Vec<f64>,
    tol: f64,
    round: usize,
}

impl StopRule {
    /// A rule that compares with the last `n_iter_no_change` (≥ 1) losses.
    pub fn new(n_iter_no_change: usize, tol: f64) -> StopRule {
        StopRule {
            history: vec![f64::INFINITY; n_iter_no_change.max(1)],
            tol,
            round: 0,
        }
    }

    /// Takes the loss after the next round; `true` when the fit stops after this round
    /// (which it keeps). A NaN loss stops it.
    pub fn stops_after(&mut self, loss: f64) -> bool {
        let slot = self.round % self.history.len();
        self.round += 1;
        if self.history.iter().any(|&h| loss + self.tol < h) {
            self.history[slot] = loss;
            false
        } else {
            true
        }
    }
}

/// The rounds kept for a loss sequence (every round when the rule never fires).
pub fn stopping_round(losses: &[f64], n_iter_no_change: usize, tol: f64) -> usize {
    let mut rule = StopRule::new(n_iter_no_change, tol);
    losses
        .iter()
        .position(|&l| rule.stops_after(l))
        .map_or(losses.len(), |i| i + 1)
}

/// Watches a boosting fit: keeps the raw scores of the validation rows up to date round by
/// round and applies the [`StopRule`] to their log loss.
pub(crate) struct Monitor {
    /// Validation rows, row-major.
    x: Vec<f64>,
    ids: Vec<u32>,
    weights: Option<Vec<f64>>,
    rows: Vec<u32>,
    /// Raw scores per class (one vector for a binary model: the attack log-odds).
    raw: Vec<Vec<f64>>,
    rule: StopRule,
    /// The validation loss after each round so far.
    pub losses: Vec<f64>,
}

impl Monitor {
    /// A monitor of validation rows `x` (row-major) with class ids `ids` and row weights.
    pub fn new(
        stopping: &EarlyStopping,
        x: Vec<f64>,
        ids: Vec<u32>,
        weights: Option<Vec<f64>>,
    ) -> Monitor {
        Monitor {
            rows: (0..ids.len() as u32).collect(),
            x,
            ids,
            weights,
            raw: Vec::new(),
            rule: StopRule::new(stopping.n_iter_no_change, stopping.tol),
            losses: Vec::new(),
        }
    }

    /// Sets the initial raw scores: one value for a binary model, one per class otherwise.
    pub fn start(&mut self, init: &[f64]) {
        self.raw = init.iter().map(|&v| vec![v; self.ids.len()]).collect();
    }

    /// Adds one round's trees (one per raw score, leaves scaled already) and says whether
    /// the fit stops after it.
    pub fn stops_after(&mut self, round: &[Tree]) -> bool {
        for (tree, raw) in round.iter().zip(self.raw.iter_mut()) {
            tree.add_rows(&self.x, &self.rows, 1.0, raw);
        }
        let loss = self.loss();
        self.losses.push(loss);
        self.rule.stops_after(loss)
    }

    /// Mean (weighted) log loss of the validation rows under the current raw scores.
    fn loss(&self) -> f64 {
        let (mut total, mut weight) = (0.0, 0.0);
        for (i, &c) in self.ids.iter().enumerate() {
            let loss = if self.raw.len() == 1 {
                // −log P(y) = softplus(z) − y z for the attack log-odds z
                let z = self.raw[0][i];
                z.max(0.0) + (-z.abs()).exp().ln_1p() - if c == 1 { z } else { 0.0 }
            } else {
                let max = self
                    .raw
                    .iter()
                    .map(|r| r[i])
                    .fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = self.raw.iter().map(|r| (r[i] - max).exp()).sum();
                max + sum.ln() - self.raw[c as usize][i]
            };
            let w = self.weights.as_ref().map_or(1.0, |w| w[i]);
            total += w * loss;
            weight += w;
        }
        total / weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_compares_with_the_last_n_losses_and_keeps_the_failing_round() {
        // n = 2, tol 0: round 4 (0.8) is not below max(0.7, 0.75) → stop, keep 4 rounds
        assert_eq!(stopping_round(&[1.0, 0.7, 0.75, 0.8, 0.1], 2, 0.0), 4);
        // a loss below the worse of the last two goes on though above the best: the rule
        // (scikit-learn's) can run more than n rounds past the best (4 here, n = 2)
        assert_eq!(stopping_round(&[1.0, 0.7, 0.9, 0.8, 0.85, 0.9], 2, 0.0), 6);
        // tol: 0.69 is not 0.05 below max(0.7) with n = 1 → stop at round 3
        assert_eq!(stopping_round(&[1.0, 0.7, 0.69, 0.5], 1, 0.05), 3);
        // never fires: every round kept
        assert_eq!(stopping_round(&[1.0, 0.9, 0.8], 2, 0.0), 3);
        // equal losses with tol 0 are no improvement
        assert_eq!(stopping_round(&[0.5, 0.5, 0.5, 0.5], 3, 0.0), 4);
        assert_eq!(stopping_round(&[0.5, 0.5], 1, 0.0), 2);
        assert_eq!(stopping_round(&[f64::NAN, 0.1], 3, 0.0), 1);
    }

    /// The rule against scikit-learn 1.9.1's own stopping round, on the validation losses of
    /// its own fits (`scripts/sklearn_early_stopping.py` prints these): for each case,
    /// sklearn's `n_estimators_` with early stopping on, and the losses of the same fit
    /// (same training part, same trees) without it.
    #[test]
    fn the_rule_stops_where_scikit_learn_stops() {
        for case in SKLEARN_CASES {
            assert_eq!(
                stopping_round(case.losses, case.n_iter_no_change, case.tol),
                case.n_estimators_,
                "{}",
                case.name
            );
        }
    }

    struct SklearnCase {
        name: &'static str,
        n_iter_no_change: usize,
        tol: f64,
        n_estimators_: usize,
        losses: &'static [f64],
    }

    include!("early_stopping_sklearn.rs");

    use crate::models::gradient_boosting::GradientBoosting;
    use crate::models::testutil::{ids, toy, toy3};
    use crate::models::{Algorithm, FittedModel};
    use ndarray::Array2;

    fn params(pairs: &[(&str, ParamValue)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// Boosting that overfits: noisy labels, a high learning rate, deep trees.
    fn overfitting(rounds: i64, n_iter_no_change: i64, tol: f64) -> Params {
        params(&[
            ("n_estimators", ParamValue::Int(rounds)),
            ("learning_rate", ParamValue::Float(0.5)),
            ("max_depth", ParamValue::Int(4)),
            ("n_iter_no_change", ParamValue::Int(n_iter_no_change)),
            ("validation_fraction", ParamValue::Float(0.25)),
            ("tol", ParamValue::Float(tol)),
        ])
    }

    /// Mean −ln P(true class) of `x` under the first `k` rounds, for every `k`, from the
    /// model's probabilities (not from the raw scores the monitor keeps), each row weighing
    /// its class's `weights`.
    fn staged_losses(model: &FittedModel, x: &Array2<f64>, y: &[u32], weights: &[f64]) -> Vec<f64> {
        let stages: Vec<usize> = (1..=model.n_stages().unwrap()).collect();
        model
            .staged_predict_proba(x.view(), &stages)
            .unwrap()
            .iter()
            .map(|p| {
                let total: f64 = y
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| -weights[c as usize] * p[[i, c as usize]].ln())
                    .sum();
                total / y.iter().map(|&c| weights[c as usize]).sum::<f64>()
            })
            .collect()
    }

    /// Checks a fit with early stopping against losses computed apart from it: the rows the
    /// split keeps, boosted without early stopping, give the same rounds; their validation
    /// losses, read from probabilities, put the stop exactly where the rule says (the first
    /// round whose loss + tol is not below the worst of the `n` before it); and the stop is
    /// at most `n` rounds after the best round.
    fn check_stop(x: &Array2<f64>, y: &[u32], k: usize, n: usize, tol: f64) -> usize {
        check_weighted_stop(x, y, k, n, tol, &vec![1.0; k])
    }

    /// [`check_stop`] with class weights (a `class_weight` map by class id).
    fn check_weighted_stop(
        x: &Array2<f64>,
        y: &[u32],
        k: usize,
        n: usize,
        tol: f64,
        weights: &[f64],
    ) -> usize {
        let mut p = overfitting(300, n as i64, tol);
        if weights.iter().any(|&w| w != 1.0) {
            let map = weights.iter().enumerate().map(|(c, &w)| (c.to_string(), w));
            p.insert("class_weight".into(), ParamValue::Map(map.collect()));
        }
        let stopped = GradientBoosting.fit(&p, x.view(), y, k, 9).unwrap();
        let used = stopped.n_stages().unwrap();
        let labels = Labels {
            ids: y,
            n_classes: k,
            names: None,
        };
        let es = EarlyStopping {
            n_iter_no_change: n,
            validation_fraction: 0.25,
            tol,
        };
        let (fit, val) = es.split(&labels, 9).unwrap();
        let rows = |idx: &[u32]| idx.iter().map(|&i| i as usize).collect::<Vec<_>>();
        let (x_fit, x_val) = (
            x.select(Axis(0), &rows(&fit)),
            x.select(Axis(0), &rows(&val)),
        );
        let y_fit: Vec<u32> = fit.iter().map(|&i| y[i as usize]).collect();
        let y_val: Vec<u32> = val.iter().map(|&i| y[i as usize]).collect();
        let mut plain = p.clone();
        plain.insert("n_iter_no_change".into(), ParamValue::Null);
        let full = GradientBoosting
            .fit(&plain, x_fit.view(), &y_fit, k, 9)
            .unwrap();
        assert_eq!(
            full.truncated(used).unwrap(),
            stopped,
            "a prefix of the plain fit"
        );
        let losses = staged_losses(&full, &x_val, &y_val, weights);
        let expected = (0..losses.len())
            .find(|&i| {
                let worst = (i.saturating_sub(n)..i).map(|j| losses[j]).fold(
                    if i < n {
                        f64::INFINITY
                    } else {
                        f64::NEG_INFINITY
                    },
                    f64::max,
                );
                losses[i] + tol >= worst
            })
            .map(|i| i + 1);
        assert_eq!(Some(used), expected, "losses {:?}", &losses[..used + 2]);
        let best = (0..used)
            .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))
            .unwrap();
        assert!(
            used - 1 - best <= n,
            "best round {best}, stopped after {used}"
        );
        assert!(used > n && used < 300, "{used}");
        used
    }

    #[test]
    fn a_binary_fit_stops_exactly_where_its_validation_losses_say() {
        let (x, y) = toy(800, 6, 4);
        let y = ids(&y);
        let used = check_stop(&x, &y, 2, 5, 0.0);
        // with a tolerance the fit stops no later
        assert!(check_stop(&x, &y, 2, 5, 1e-3) <= used);
        assert!(check_stop(&x, &y, 2, 2, 0.0) <= used);
    }

    #[test]
    fn class_weights_weigh_the_validation_loss() {
        let (x, y) = toy(800, 6, 4);
        let y = ids(&y);
        let plain = check_stop(&x, &y, 2, 5, 0.0);
        let weighted = check_weighted_stop(&x, &y, 2, 5, 0.0, &[1.0, 4.0]);
        assert_ne!(
            plain, weighted,
            "the weights change the losses and the stop"
        );
    }

    #[test]
    fn a_three_class_fit_stops_exactly_where_its_validation_losses_say() {
        let (x, y) = toy3(900, 5, 2);
        check_stop(&x, &y, 3, 4, 0.0);
    }

    #[test]
    fn smaller_staged_fits_are_prefixes_of_the_stopped_fit() {
        let (x, y) = toy(800, 6, 4);
        let y = ids(&y);
        let fit = |rounds| {
            GradientBoosting
                .fit(&overfitting(rounds, 5, 0.0), x.view(), &y, 2, 9)
                .unwrap()
        };
        let largest = fit(300);
        let used = largest.n_stages().unwrap();
        assert!(used > 4 && used < 300);
        // below the stop a smaller fit never reaches it: the same rounds as the prefix
        assert_eq!(fit(4), largest.truncated(4).unwrap());
        assert_eq!(fit(used as i64 - 1), largest.truncated(used - 1).unwrap());
        // at or above it, the same stopped model
        assert_eq!(fit(used as i64), largest);
        assert_eq!(fit(used as i64 + 20), largest);
    }

    #[test]
    fn a_class_too_small_to_split_is_a_bad_input_naming_it() {
        let (x, y) = toy(50, 3, 1);
        let mut y = ids(&y);
        y[7] = 2; // one row of class 2
        let err = GradientBoosting
            .fit(&overfitting(10, 3, 0.0), x.view(), &y, 3, 0)
            .unwrap_err();
        assert!(
            matches!(&err, ModelError::ValidationSplit { class, rows: 1 } if class == "2"),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::exit::BAD_INPUT);
        assert!(err.to_string().contains("validation_fraction"), "{err}");
        // without early stopping the same rows fit
        let mut off = overfitting(10, 3, 0.0);
        off.insert("n_iter_no_change".into(), ParamValue::Null);
        GradientBoosting.fit(&off, x.view(), &y, 3, 0).unwrap();
    }

    #[test]
    fn the_split_is_stratified_seeded_and_disjoint() {
        let y: Vec<u32> = (0..200).map(|i| u32::from(i % 10 == 0)).collect();
        let labels = Labels {
            ids: &y,
            n_classes: 2,
            names: None,
        };
        let es = EarlyStopping {
            n_iter_no_change: 3,
            validation_fraction: 0.1,
            tol: 0.0,
        };
        let (fit, val) = es.split(&labels, 5).unwrap();
        assert_eq!((fit.len(), val.len()), (180, 20));
        assert_eq!(val.iter().filter(|&&i| y[i as usize] == 1).count(), 2);
        let mut all: Vec<u32> = fit.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..200).collect::<Vec<u32>>());
        assert_eq!(es.split(&labels, 5).unwrap(), (fit.clone(), val.clone()));
        assert_ne!(es.split(&labels, 6).unwrap().1, val);
    }

    #[test]
    fn validation_counts_keep_a_row_of_every_class_on_each_side() {
        let es = EarlyStopping {
            n_iter_no_change: 3,
            validation_fraction: 0.1,
            tol: 0.0,
        };
        assert_eq!(es.validation_counts(&[100, 5, 2, 0]), Ok(vec![10, 1, 1, 0]));
        assert_eq!(es.validation_counts(&[100, 1]), Err((1, 1)));
        let most = EarlyStopping {
            validation_fraction: 0.9,
            ..es
        };
        assert_eq!(most.validation_counts(&[100, 3]), Ok(vec![90, 2]));
    }
}
