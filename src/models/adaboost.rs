//! `adaboost`: discrete AdaBoost (SAMME, scikit-learn's `AdaBoostClassifier`, whose only
//! algorithm it is since 1.6) over decision stumps grown on the shared histogram splitter with
//! sample **reweighting** (not resampling).
//!
//! Round `m` fits a gini stump to the current weights, takes its weighted error `e` and weight
//! `alpha = learning_rate * (ln((1 - e) / e) + ln(K - 1))`, and multiplies the weights of
//! misclassified rows by `exp(alpha)`. As in scikit-learn, boosting stops early at a perfect
//! stump (kept with weight 1) or one no better than chance, `e >= 1 - 1/K` (dropped).
//!
//! `class_weight` sets the starting row weights (normalized), as scikit-learn's
//! `fit(sample_weight=...)` does (its `AdaBoostClassifier` has no `class_weight`); without it
//! they start uniform, as before.
//!
//! Probabilities, as scikit-learn's `predict_proba`: with `W = sum(alpha)`,
//! * K = 2: P(attack) = `sigmoid(d)`, `d = sum(alpha * h) / W`, `h = ±1` (stump leaves hold ±1);
//! * K > 2: `softmax(d / (K - 1))` with `d_k = sum(alpha * (h == k ? 1 : -1 / (K - 1))) / W`
//!   (stump leaves hold the predicted class id). K counts every class of the label, also one
//!   without training rows (scikit-learn would count only the classes it saw).
//!
//! K > 2 stumps are scikit-learn's exact ones, which the multi-class parity test needs: a
//! column with more than 256 distinct values, which the histogram splitter sees through
//! quantile bins, is also scanned cut by cut ([`ExactColumns`]; the better split wins), and
//! the two leaf classes are counted row by row ([`side_totals`]) so that classes of exactly
//! equal weight tie and the lowest id wins, as numpy's `argmax`. Both matter most in the first
//! rounds, when many classes have equal weight and the best cut of a wide column falls
//! between quantiles. Two-class stumps keep the histogram splitter alone (their models are as
//! they were).

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::models::binning::{BinnedMatrix, midpoint};
use crate::models::class_weight;
use crate::models::decision_tree::check_class_count;
use crate::models::params::{CLASS_WEIGHT, Reader};
use crate::models::random_forest::n_estimators;
use crate::models::tree::{self, ClassTarget, Criterion, GrowOptions, Tree};
use crate::models::{
    Algorithm, FittedModel, Labels, ModelError, ParamKind, ParamSpec, ParamValue, Predictor,
    SharedBins,
};
use crate::shared::classes::argmax;

const SPECS: &[ParamSpec] = &[
    n_estimators(50),
    ParamSpec {
        name: "learning_rate",
        kind: ParamKind::Float {
            above: 0.0,
            max: f64::INFINITY,
        },
        default: ParamValue::Float(1.0),
        doc: "shrinks each stump's weight",
    },
    CLASS_WEIGHT,
];

/// The `adaboost` algorithm.
pub struct AdaBoost;

/// A fitted AdaBoost model: stumps whose leaves output +1 (attack) or -1, with their weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AdaBoostRepr")]
pub struct Fitted {
    /// Features per row.
    pub n_features: usize,
    /// Stumps, in boosting order.
    pub stumps: Vec<Tree>,
    /// `alphas[m]`: weight of `stumps[m]`.
    pub alphas: Vec<f64>,
    /// K; absent (2) in binary model files, whose stumps output ±1. For K > 2 stumps output
    /// the predicted class id.
    #[serde(default = "two", skip_serializing_if = "is_two")]
    pub n_classes: usize,
}

fn two() -> usize {
    2
}

fn is_two(k: &usize) -> bool {
    *k == 2
}

impl Algorithm for AdaBoost {
    fn name(&self) -> &'static str {
        "adaboost"
    }

    fn params(&self) -> &'static [ParamSpec] {
        SPECS
    }

    fn staged_param(&self) -> Option<&'static str> {
        Some("n_estimators")
    }

    fn fit_checked(
        &self,
        r: &Reader<'_>,
        x: ArrayView2<f64>,
        labels: &Labels<'_>,
        bins: &SharedBins,
        seed: u64,
    ) -> Result<FittedModel, ModelError> {
        check_class_count(self.name(), labels.n_classes)?;
        let rounds = r.usize("n_estimators")?;
        let lr = r.f64("learning_rate")?;
        let data = bins.of(x);
        let opts = GrowOptions {
            max_depth: 1,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: x.ncols(),
        };
        let n = labels.ids.len();
        let start = match class_weight::resolve(r, labels)? {
            None => vec![1.0 / n as f64; n],
            Some(cw) => {
                let mut w = class_weight::per_row(&cw, labels.ids);
                let total: f64 = w.iter().sum();
                w.iter_mut().for_each(|v| *v /= total);
                w
            }
        };
        let (stumps, alphas) = if labels.is_binary() {
            fit_binary(&data, &labels.attack_bits(), start, &opts, rounds, lr, seed)
        } else {
            fit_classes(x, &data, labels, start, &opts, rounds, lr, seed)
        };
        if stumps.is_empty() {
            return Err(ModelError::Solver {
                algorithm: self.name(),
                message: "the first stump is no better than chance on the weighted data".into(),
            });
        }
        Ok(FittedModel::Adaboost(Fitted {
            n_features: x.ncols(),
            stumps,
            alphas,
            n_classes: labels.n_classes,
        }))
    }
}

/// Two-class boosting: stumps output ±1. Kept apart from [`fit_classes`] so binary models
/// stay bit-identical to those of earlier versions.
fn fit_binary(
    data: &BinnedMatrix,
    y: &[bool],
    mut w: Vec<f64>,
    opts: &GrowOptions,
    rounds: usize,
    lr: f64,
    seed: u64,
) -> (Vec<Tree>, Vec<f64>) {
    let n = y.len();
    let mut stumps = Vec::new();
    let mut alphas = Vec::new();
    let mut wrong = vec![false; n];
    let mut leaves = Vec::new();
    for m in 0..rounds {
        let target = ClassTarget {
            y,
            weights: Some(&w),
            criterion: Criterion::Gini,
        };
        let mut samples: Vec<u32> = (0..n as u32).filter(|&i| w[i as usize] > 0.0).collect();
        let mut rng = crate::models::rng_for(seed, m as u64);
        let mut stump =
            tree::grow_recording(data, &target, &mut samples, opts, &mut rng, &mut leaves);
        stump.map_leaves(|p| if p > 0.5 { 1.0 } else { -1.0 });
        // Rows of weight 0 stay at 0 and never matter again; the others sit in the leaves.
        wrong.fill(false);
        for leaf in &leaves {
            let attack = leaf.value > 0.5;
            for &i in &samples[leaf.start..leaf.end] {
                wrong[i as usize] = attack != y[i as usize];
            }
        }
        let total: f64 = w.iter().sum();
        let err: f64 = w
            .iter()
            .zip(&wrong)
            .filter(|(_, w)| **w)
            .map(|(v, _)| v)
            .sum();
        let err = err / total;
        if err <= 0.0 {
            stumps.push(stump);
            alphas.push(1.0);
            break;
        }
        if err >= 0.5 {
            break;
        }
        let alpha = lr * ((1.0 - err) / err).ln();
        stumps.push(stump);
        alphas.push(alpha);
        let factor = alpha.exp();
        let mut sum = 0.0;
        for i in 0..n {
            if wrong[i] && w[i] > 0.0 {
                w[i] *= factor;
            }
            sum += w[i];
        }
        if !sum.is_finite() || sum <= 0.0 {
            break;
        }
        w.iter_mut().for_each(|v| *v /= sum);
    }
    (stumps, alphas)
}

/// K-class SAMME (K > 2), step for step as scikit-learn's `BaseWeightBoosting.fit` and
/// `AdaBoostClassifier._boost`: weights clipped below at machine epsilon before each round
/// (rows that started at weight 0 stay 0), updated as `exp(ln w + alpha * wrong * (w > 0))`,
/// and renormalized. Each stump's split is the histogram splitter's or, when better, an exact
/// cut of a quantile-binned column ([`ExactColumns`]); its two leaf classes are then counted
/// row by row ([`side_totals`]).
#[allow(clippy::too_many_arguments)]
fn fit_classes(
    x: ArrayView2<f64>,
    data: &BinnedMatrix,
    labels: &Labels<'_>,
    mut w: Vec<f64>,
    opts: &GrowOptions,
    rounds: usize,
    lr: f64,
    seed: u64,
) -> (Vec<Tree>, Vec<f64>) {
    let y = labels.ids;
    let k = labels.n_classes as f64;
    let n = y.len();
    let mut stumps = Vec::new();
    let mut alphas = Vec::new();
    let mut wrong = vec![false; n];
    let mut leaves = Vec::new();
    let exact = ExactColumns::new(x, data);
    for m in 0..rounds {
        for v in w.iter_mut() {
            *v = v.max(f64::EPSILON);
        }
        let mut samples: Vec<u32> = (0..n as u32).collect();
        let mut rng = crate::models::rng_for(seed, m as u64);
        let grown = tree::grow_classes(
            data,
            y,
            Some(&w),
            Criterion::Gini,
            labels.n_classes,
            &mut samples,
            opts,
            &mut rng,
            &mut leaves,
        )
        .into_class_ids();
        let stump = match grown.root_split() {
            Some(binned) => {
                let (feature, threshold) = exact.improve(x, y, &w, labels.n_classes, binned);
                let (left, right) = side_totals(x, feature, threshold, y, &w, labels.n_classes);
                let (left, right) = (argmax(&left), argmax(&right));
                for ((bad, v), &c) in wrong.iter_mut().zip(x.column(feature)).zip(y) {
                    *bad = c != if *v <= threshold { left } else { right };
                }
                Tree::stump(x.ncols(), feature, threshold, left.into(), right.into())
            }
            // a pure root (or no splittable column): one leaf of the majority class
            None => {
                let class = grown.leaf_outputs().next().unwrap_or(0.0);
                for (bad, &c) in wrong.iter_mut().zip(y) {
                    *bad = f64::from(c) != class;
                }
                grown
            }
        };
        let total: f64 = w.iter().sum();
        let err: f64 = w
            .iter()
            .zip(&wrong)
            .filter(|(_, w)| **w)
            .map(|(v, _)| v)
            .sum();
        let err = err / total;
        if err <= 0.0 {
            stumps.push(stump);
            alphas.push(1.0);
            break;
        }
        if err >= 1.0 - 1.0 / k {
            break;
        }
        let alpha = lr * (((1.0 - err) / err).ln() + (k - 1.0).ln());
        stumps.push(stump);
        alphas.push(alpha);
        let mut sum = 0.0;
        for (v, &bad) in w.iter_mut().zip(&wrong) {
            let step = if bad && *v > 0.0 { alpha } else { 0.0 };
            *v = (v.ln() + step).exp();
            sum += *v;
        }
        if !sum.is_finite() || sum <= 0.0 {
            break;
        }
        w.iter_mut().for_each(|v| *v /= sum);
    }
    (stumps, alphas)
}

/// The columns the histogram splitter sees through quantile bins (more than
/// [`MAX_BINS`](crate::models::binning::MAX_BINS) distinct values), each with its rows sorted
/// by value, so that a K-class stump can try every midpoint of them as scikit-learn's exact
/// splitter does. On reweighted rows the best cut of such a column often lies between two
/// quantile cuts. The sort is done once per fit (and the order kept: 4 bytes per row and
/// column); each round then costs one pass over each such column plus `O(K)` per distinct
/// value, on the order of filling its histogram, and nothing when no column has that many
/// values. Random forest and gradient boosting do not use it.
struct ExactColumns(Vec<(usize, Vec<u32>)>);

impl ExactColumns {
    fn new(x: ArrayView2<f64>, data: &BinnedMatrix) -> ExactColumns {
        let columns = (0..x.ncols())
            .filter(|&f| data.quantiled[f])
            .map(|f| {
                let col = x.column(f);
                let mut order: Vec<u32> = (0..x.nrows() as u32).collect();
                order.sort_by(|&a, &b| col[a as usize].total_cmp(&col[b as usize]));
                (f, order)
            })
            .collect();
        ExactColumns(columns)
    }

    /// The better of the histogram splitter's `binned` split and the best exact cut of these
    /// columns, by scikit-learn's gini proxy. Both candidates are scored again from row-order
    /// totals ([`side_totals`]) so that one partition reached both ways scores the same; the
    /// exact cut must win by more than rounding to replace the binned one.
    fn improve(
        &self,
        x: ArrayView2<f64>,
        y: &[u32],
        w: &[f64],
        k: usize,
        binned: (usize, f64),
    ) -> (usize, f64) {
        let Some((feature, threshold)) = self.best(x, y, w, k) else {
            return binned;
        };
        let score = |(f, t): (usize, f64)| {
            let (l, r) = side_totals(x, f, t, y, w, k);
            gini_proxy(&l, &r)
        };
        let (old, new) = (score(binned), score((feature, threshold)));
        if new > old + 1e-12 * old.abs() {
            (feature, threshold)
        } else {
            binned
        }
    }

    /// The best cut over these columns: scikit-learn's `BestSplitter` scan of the sorted rows,
    /// a candidate between each two neighbouring distinct values, the first best one kept.
    fn best(&self, x: ArrayView2<f64>, y: &[u32], w: &[f64], k: usize) -> Option<(usize, f64)> {
        let mut total = vec![0.0; k];
        for (&c, wi) in y.iter().zip(w) {
            total[c as usize] += wi;
        }
        let mut best: Option<(f64, usize, f64)> = None;
        let mut left = vec![0.0; k];
        let mut right = vec![0.0; k];
        for (f, order) in &self.0 {
            let col = x.column(*f);
            left.fill(0.0);
            for (pair, next) in order.iter().zip(&order[1..]) {
                let i = *pair as usize;
                left[y[i] as usize] += w[i];
                let (v, v_next) = (col[i], col[*next as usize]);
                if v_next <= v {
                    continue;
                }
                for ((r, t), l) in right.iter_mut().zip(&total).zip(&left) {
                    *r = t - l;
                }
                let proxy = gini_proxy(&left, &right);
                if best.is_none_or(|b| proxy > b.0) {
                    best = Some((proxy, *f, midpoint(v, v_next)));
                }
            }
        }
        best.map(|(_, f, t)| (f, t))
    }
}

/// scikit-learn's gini `proxy_impurity_improvement` up to a constant: `Σ l_c² / Σ l +
/// Σ r_c² / Σ r` for the class totals of the two sides.
fn gini_proxy(left: &[f64], right: &[f64]) -> f64 {
    [left, right]
        .iter()
        .map(|side| {
            let total: f64 = side.iter().sum();
            if total > 0.0 {
                side.iter().map(|c| c * c).sum::<f64>() / total
            } else {
                0.0
            }
        })
        .sum()
}

/// Weighted class totals of the rows with `x[·, feature] <= threshold` and of the others,
/// added row by row in row order. The histogram splitter's node totals are sums of bin sums
/// and differences of those, so classes with exactly equal weight (every class has before
/// the first reweighting, on balanced data) come out a rounding hair apart and the hair picks
/// the leaf class; scikit-learn adds a node's weights one row at a time, so such classes tie
/// exactly and the lowest id wins. Counting again the same way gives its leaf classes.
fn side_totals(
    x: ArrayView2<f64>,
    feature: usize,
    threshold: f64,
    y: &[u32],
    w: &[f64],
    k: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut left, mut right) = (vec![0.0; k], vec![0.0; k]);
    for ((v, &c), wi) in x.column(feature).iter().zip(y).zip(w) {
        let side = if *v <= threshold {
            &mut left
        } else {
            &mut right
        };
        side[c as usize] += wi;
    }
    (left, right)
}

/// Serialized form, checked before use so a corrupt model file cannot cause a panic.
#[derive(Deserialize)]
struct AdaBoostRepr {
    n_features: usize,
    stumps: Vec<Tree>,
    alphas: Vec<f64>,
    #[serde(default = "two")]
    n_classes: usize,
}

impl TryFrom<AdaBoostRepr> for Fitted {
    type Error = String;
    fn try_from(r: AdaBoostRepr) -> Result<Self, String> {
        if r.stumps.is_empty()
            || r.stumps.len() != r.alphas.len()
            || r.stumps.iter().any(|t| t.n_features() != r.n_features)
        {
            return Err("adaboost needs one alpha per stump and stumps matching n_features".into());
        }
        let k = r.n_classes;
        if !(2..=tree::MAX_CLASSES).contains(&k)
            || r.stumps.iter().any(|t| {
                t.n_classes() != 0
                    || (k > 2
                        && t.leaf_outputs()
                            .any(|c| !(c >= 0.0 && c < k as f64 && c.fract() == 0.0)))
            })
        {
            return Err("adaboost stumps must output class ids below n_classes".into());
        }
        Ok(Fitted {
            n_features: r.n_features,
            stumps: r.stumps,
            alphas: r.alphas,
            n_classes: k,
        })
    }
}

impl Predictor for Fitted {
    fn n_features(&self) -> usize {
        self.n_features
    }
    fn truncated(&self, n: usize) -> Option<FittedModel> {
        (1..=self.stumps.len()).contains(&n).then(|| {
            FittedModel::Adaboost(Fitted {
                n_features: self.n_features,
                stumps: self.stumps[..n].to_vec(),
                alphas: self.alphas[..n].to_vec(),
                n_classes: self.n_classes,
            })
        })
    }
    fn n_stages(&self) -> Option<usize> {
        Some(self.stumps.len())
    }
    fn n_classes(&self) -> usize {
        self.n_classes
    }
    fn proba_row(&self, row: &[f64], out: &mut [f64]) {
        if self.n_classes > 2 {
            self.proba_batch(row, out);
            return;
        }
        let p = self.p1_row(row);
        out[0] = 1.0 - p;
        out[1] = p;
    }

    fn proba_batch(&self, x: &[f64], out: &mut [f64]) {
        if self.n_classes > 2 {
            let mut staged = [vec![0.0; out.len()]];
            self.staged_proba_batch(x, &[self.stumps.len()], &mut staged);
            out.copy_from_slice(&staged[0]);
            return;
        }
        let mut p = vec![0.0; out.len() / 2];
        self.p1_batch(x, &mut p);
        super::binary_rows(&p, out);
    }

    fn staged_proba_batch(&self, x: &[f64], stages: &[usize], out: &mut [Vec<f64>]) {
        if self.n_classes > 2 {
            self.classes_staged_batch(x, stages, out);
            return;
        }
        let rows = out.first().map_or(0, |o| o.len() / 2);
        let mut p = vec![vec![0.0; rows]; out.len()];
        self.p1_staged_batch(x, stages, &mut p);
        for (o, p) in out.iter_mut().zip(&p) {
            super::binary_rows(p, o);
        }
    }
}

impl Fitted {
    /// K > 2: scikit-learn's `staged_decision_function` then `_compute_proba_from_decision`
    /// (the decision accumulated stump by stump, divided by the running sum of weights, then by
    /// K − 1, then a max-shifted softmax).
    fn classes_staged_batch(&self, x: &[f64], stages: &[usize], out: &mut [Vec<f64>]) {
        let k = self.n_classes;
        let other = -1.0 / (k as f64 - 1.0);
        let rows = x.len() / self.n_features.max(1);
        let mut dec = vec![0.0; rows * k];
        let mut norms = Vec::with_capacity(stages.len());
        let mut norm = 0.0;
        for (t, &a) in self.alphas.iter().enumerate() {
            norm += a;
            if stages.contains(&(t + 1)) {
                norms.push(norm);
            }
        }
        tree::staged_leaf_outputs(
            &self.stumps,
            x,
            stages,
            &mut dec,
            |dec, t, range, classes| {
                let a = self.alphas[t];
                let off = other * a;
                for (r, &c) in range.zip(classes) {
                    for (j, d) in dec[r * k..(r + 1) * k].iter_mut().enumerate() {
                        *d += if j == c as usize { a } else { off };
                    }
                }
            },
            |dec, j, range| {
                for r in range {
                    let o = &mut out[j][r * k..(r + 1) * k];
                    for (o, d) in o.iter_mut().zip(&dec[r * k..(r + 1) * k]) {
                        *o = d / norms[j] / (k as f64 - 1.0);
                    }
                    softmax(o);
                }
            },
        );
    }
}

/// Softmax in place as scikit-learn's `utils.extmath.softmax`: subtract the max, exponentiate,
/// divide by the sum.
fn softmax(v: &mut [f64]) {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    v.iter_mut().for_each(|x| *x /= sum);
}

/// The two-class form: P(attack) per row.
impl Fitted {
    fn p1_row(&self, row: &[f64]) -> f64 {
        let mut out = [0.0];
        self.p1_batch(row, &mut out);
        out[0]
    }
    fn p1_batch(&self, x: &[f64], out: &mut [f64]) {
        let mut staged = [vec![0.0; out.len()]];
        self.p1_staged_batch(x, &[self.stumps.len()], &mut staged);
        out.copy_from_slice(&staged[0]);
    }
    fn p1_staged_batch(&self, x: &[f64], stages: &[usize], out: &mut [Vec<f64>]) {
        let totals: Vec<f64> = stages
            .iter()
            .map(|&k| self.alphas[..k].iter().sum())
            .collect();
        tree::staged_sums(
            &self.stumps,
            Some(&self.alphas),
            x,
            stages,
            0.0,
            out,
            |j, score| {
                let total = totals[j];
                if total > 0.0 && total.is_finite() {
                    1.0 / (1.0 + (-score / total).exp())
                } else {
                    0.5
                }
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Params;
    use crate::models::testutil::{accuracy, ids, toy};
    use ndarray::array;

    #[test]
    fn boosts_above_one_stump() {
        let (x, y) = toy(500, 6, 8);
        let one = {
            let mut p = Params::new();
            p.insert("n_estimators".into(), ParamValue::Int(1));
            AdaBoost.fit(&p, x.view(), &ids(&y), 2, 0).unwrap()
        };
        let many = AdaBoost
            .fit(&Params::new(), x.view(), &ids(&y), 2, 0)
            .unwrap();
        let a1 = accuracy(&one.predict_proba(x.view()).unwrap(), &y);
        let a50 = accuracy(&many.predict_proba(x.view()).unwrap(), &y);
        assert!(a50 > a1, "{a50} <= {a1}");
    }

    use crate::models::decision_tree::tests::k3;

    /// AdaBoostClassifier(n_estimators=6, learning_rate=lr).fit(X, y) on `k3::train()` in
    /// scikit-learn 1.9.1 (identical for random_state 0..30): `estimator_weights_`,
    /// `predict_proba(Q)` and the second `staged_predict_proba(Q)`.
    struct Reference {
        lr: f64,
        alphas: [f64; 6],
        proba: [[f64; 3]; 6],
        stage2: [[f64; 3]; 6],
    }

    const REFERENCES: [Reference; 2] = [
        Reference {
            lr: 1.0,
            alphas: [
                0.8266785731844679,
                0.7884573603642702,
                0.8785247197294452,
                0.8615696365671699,
                1.0433011465007234,
                0.9074765639849405,
            ],
            proba: [
                [0.37625938232175854, 0.3679967494998392, 0.2557438681784022],
                [0.2925442635943371, 0.33655357787601053, 0.37090215852965225],
                [0.29958913907878165, 0.3739950002167367, 0.3264158607044817],
                [0.37625938232175854, 0.3679967494998392, 0.2557438681784022],
                [0.29958913907878165, 0.3739950002167367, 0.3264158607044817],
                [0.37625938232175854, 0.3679967494998392, 0.2557438681784022],
            ],
            stage2: [
                [0.37542816185871664, 0.3688237339856869, 0.2557481041555965],
                [0.25574810415559646, 0.3754281618587166, 0.36882373398568685],
                [0.25574810415559646, 0.3754281618587166, 0.36882373398568685],
                [0.37542816185871664, 0.3688237339856869, 0.2557481041555965],
                [0.25574810415559646, 0.3754281618587166, 0.36882373398568685],
                [0.37542816185871664, 0.3688237339856869, 0.2557481041555965],
            ],
        },
        Reference {
            // errors above 1/2 (0.514, 0.568): kept, since only e >= 1 - 1/K stops SAMME
            lr: 0.5,
            alphas: [
                0.41333928659223396,
                0.3190222124387417,
                0.44343107161440154,
                0.3409132523653164,
                0.20871488678097697,
                0.24495950146401735,
            ],
            proba: [
                [0.43794726104502674, 0.30915761711948797, 0.2528951218354853],
                [0.25566672079667885, 0.383537746067643, 0.3607955331356782],
                [0.253571457655465, 0.4295081449007021, 0.31692039744383294],
                [0.37762299691338536, 0.3308913503234685, 0.2914856527631462],
                [0.3065250220004766, 0.32809066458554054, 0.3653843134139829],
                [0.37410966113838634, 0.3701374511074146, 0.2557528877541991],
            ],
            stage2: [
                [0.3901958963255405, 0.3542703298068258, 0.25553377386763365],
                [0.25553377386763365, 0.3901958963255405, 0.3542703298068258],
                [0.24289531114035925, 0.5142093777192813, 0.24289531114035925],
                [0.3901958963255405, 0.25553377386763365, 0.3542703298068258],
                [0.25553377386763365, 0.3901958963255405, 0.3542703298068258],
                [0.3901958963255405, 0.3542703298068258, 0.25553377386763365],
            ],
        },
    ];

    fn assert_close(got: ndarray::ArrayView2<f64>, want: &[[f64; 3]]) {
        for (g, w) in got.rows().into_iter().zip(want) {
            for (a, b) in g.iter().zip(w) {
                assert!((a - b).abs() < 1e-12, "{g} != {w:?}");
            }
        }
    }

    #[test]
    fn samme_matches_scikit_learn_on_three_classes() {
        let (x, y) = k3::train();
        let q = k3::queries();
        for r in &REFERENCES {
            let mut p = Params::new();
            p.insert("n_estimators".into(), ParamValue::Int(6));
            p.insert("learning_rate".into(), ParamValue::Float(r.lr));
            let m = AdaBoost.fit(&p, x.view(), &y, 3, 0).unwrap();
            let FittedModel::Adaboost(f) = &m else {
                panic!()
            };
            assert_eq!(f.alphas.len(), 6);
            for (a, b) in f.alphas.iter().zip(&r.alphas) {
                assert!((a - b).abs() < 1e-12, "lr {}: {:?}", r.lr, f.alphas);
            }
            assert_close(m.predict_proba(q.view()).unwrap().view(), &r.proba);
            let staged = m.staged_predict_proba(q.view(), &[2, 6]).unwrap();
            assert_close(staged[0].view(), &r.stage2);
            assert_close(staged[1].view(), &r.proba);
            let mut row = [0.0; 3];
            m.predict_proba_row(q.row(1).as_slice().unwrap(), &mut row)
                .unwrap();
            assert_close(ndarray::aview2(&[row]), &r.proba[1..2]);
        }
    }

    #[test]
    fn k_class_staged_equals_truncated_and_roundtrips() {
        let (x, y) = k3::four_classes(300, 3);
        let mut big = Params::new();
        big.insert("n_estimators".into(), ParamValue::Int(12));
        let mut small = Params::new();
        small.insert("n_estimators".into(), ParamValue::Int(5));
        let m12 = AdaBoost.fit(&big, x.view(), &y, 4, 11).unwrap();
        let m5 = AdaBoost.fit(&small, x.view(), &y, 4, 11).unwrap();
        assert_eq!(m12.n_stages(), Some(12));
        assert_eq!(m12.truncated(5).unwrap(), m5);
        let staged = m12.staged_predict_proba(x.view(), &[1, 5, 12]).unwrap();
        for (k, probs) in [1, 5, 12].iter().zip(&staged) {
            assert_eq!(probs.dim(), (300, 4));
            let direct = m12.truncated(*k).unwrap().predict_proba(x.view()).unwrap();
            for (p, q) in probs.iter().zip(&direct) {
                assert!((p - q).abs() < 1e-12, "stage {k}");
            }
        }
        let json = serde_json::to_string(&m12).unwrap();
        assert!(json.contains("\"n_classes\":4"));
        let back: FittedModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m12);
        // a stump answering class 4 of a 4-class model is refused
        let bad = r#"{"algorithm":"adaboost","n_features":1,"n_classes":4,"alphas":[1.0],
            "stumps":[{"n_features":1,"nodes":[[0,1,0.5],[4294967295,0,0.0],[4294967295,0,4.0]]}]}"#;
        assert!(serde_json::from_str::<FittedModel>(bad).is_err());
        // binary files carry no n_classes and still load
        let (xb, yb) = toy(100, 4, 1);
        let b = AdaBoost
            .fit(&Params::new(), xb.view(), &ids(&yb), 2, 0)
            .unwrap();
        let json = serde_json::to_string(&b).unwrap();
        assert!(!json.contains("n_classes"));
        assert_eq!(serde_json::from_str::<FittedModel>(&json).unwrap(), b);
    }

    #[test]
    fn learns_four_classes() {
        let (x, y) = k3::four_classes(800, 1);
        let m = AdaBoost
            .fit(
                &Params::new(),
                x.slice(ndarray::s![..600, ..]),
                &y[..600],
                4,
                0,
            )
            .unwrap();
        let p = m.predict_proba(x.slice(ndarray::s![600.., ..])).unwrap();
        let acc = k3::accuracy(&p, &y[600..]);
        assert!(acc > 0.75, "{acc}");
    }

    fn first_stump(x: ndarray::ArrayView2<f64>, y: &[u32], k: usize) -> (usize, f64, Vec<f64>) {
        let mut p = Params::new();
        p.insert("n_estimators".into(), ParamValue::Int(1));
        let FittedModel::Adaboost(f) = AdaBoost.fit(&p, x, y, k, 0).unwrap() else {
            panic!()
        };
        let (feature, threshold) = f.stumps[0].root_split().unwrap();
        (feature, threshold, f.stumps[0].leaf_outputs().collect())
    }

    #[test]
    fn k_class_stump_cuts_between_quantile_bins() {
        // 2000 distinct values: the splitter sees 255 quantile cuts, about one per 8 rows,
        // none of them at 1003.5 where class 0 ends; scikit-learn's exact splitter cuts there
        let x = ndarray::Array2::from_shape_fn((2000, 1), |(i, _)| i as f64);
        let y: Vec<u32> = (0..2000u32)
            .map(|i| if i <= 1003 { 0 } else { 1 + i % 2 })
            .collect();
        let binned = BinnedMatrix::new(x.view());
        assert!(binned.quantiled[0] && !binned.thresholds[0].contains(&1003.5));
        let (feature, threshold, leaves) = first_stump(x.view(), &y, 3);
        assert_eq!((feature, threshold), (0, 1003.5));
        assert_eq!(leaves[0], 0.0);
    }

    #[test]
    fn k_class_stump_leaf_ties_go_to_the_lowest_class() {
        // Classes 0, 1, 2 (10 rows each, weight 1/40) lie left of 3.5, class 3 right of it.
        // Their rows spread over the values 0..=3 as below, so the splitter's left totals,
        // sums of per-value sums, are 0.24999999999999997, 0.25 and 0.25; scikit-learn adds
        // the rows one by one, they tie, and its argmax takes class 0.
        let per_value: [[usize; 4]; 3] = [[1, 1, 7, 1], [1, 3, 3, 3], [6, 1, 3, 0]];
        let mut values = Vec::new();
        let mut y = Vec::new();
        for (class, counts) in per_value.iter().enumerate() {
            for (v, &count) in counts.iter().enumerate() {
                values.extend(std::iter::repeat_n(v as f64, count));
                y.extend(std::iter::repeat_n(class as u32, count));
            }
        }
        values.extend([4.0; 10]);
        y.extend([3; 10]);
        let x = ndarray::Array2::from_shape_vec((40, 1), values).unwrap();
        let (_, threshold, leaves) = first_stump(x.view(), &y, 4);
        assert_eq!(threshold, 3.5);
        assert_eq!(leaves, vec![0.0, 3.0]);
    }

    #[test]
    fn stops_at_a_perfect_stump() {
        let x = array![[0.0], [1.0], [2.0], [3.0]];
        let y = [false, false, true, true];
        let m = AdaBoost
            .fit(&Params::new(), x.view(), &ids(&y), 2, 0)
            .unwrap();
        assert_eq!(m.n_stages(), Some(1));
        let p = m.predict_proba(x.view()).unwrap();
        assert_eq!(accuracy(&p, &y), 1.0);
    }
}
