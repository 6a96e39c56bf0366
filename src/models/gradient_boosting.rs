//! `gradient_boosting`: log-loss gradient boosting with scikit-learn
//! `GradientBoostingClassifier` semantics, on the shared histogram splitter.
//!
//! **Two classes** (`HalfBinomialLoss`): start from the log-odds of the attack share; each round
//! draws `subsample` of the rows without replacement, fits a regression tree to the residuals
//! `y - p` (squared-error split gain, which equals scikit-learn's `friedman_mse` choice for
//! unweighted rows), sets each leaf to the Newton step `sum(y - p) / sum(p (1 - p))` over its
//! in-bag rows, and adds `learning_rate` × the tree to the raw score. P(attack) = sigmoid(raw).
//!
//! **K > 2 classes** (`HalfMultinomialLoss`): one raw score per class, starting from the
//! symmetric multinomial logit of the class priors, `ln p_k − mean_j ln p_j` (scikit-learn's
//! `DummyClassifier(strategy="prior")` clipped to `[eps, 1 − eps]`, then
//! `MultinomialLogit.link`). Each round computes the residuals `y_k − p_k` of all K classes from
//! the scores before the round, draws one subsample, and fits K trees on those same rows, tree
//! `k` on class `k`'s residuals, with leaf value `(K−1)/K · mean(y − p) / mean(p (1 − p))`
//! (zero when the mean hessian is below 1e-150, as `_update_terminal_regions`).
//! P = softmax(raw scores). Trees are stored round-major: round `m`'s tree of class `k` is
//! `trees[m·K + k]`.
//!
//! **`class_weight`** weights rows, as scikit-learn's `fit(sample_weight=...)` does (its
//! `GradientBoostingClassifier` has no `class_weight`): the initial prior is the weighted class
//! share, splits score `(Σ w r)² / Σ w` (weighted `friedman_mse`), leaves are the weighted
//! Newton step (binary `Σ w r / Σ w p (1 − p)`; K > 2 the weighted means). Weighted fits grow
//! on their own statistics type so unweighted fits stay as they were, bit for bit.
//!
//! On training rows (without subsampling) the probabilities equal scikit-learn's to rounding.
//! A row whose value falls between two training values can take the other branch: the shared
//! splitter's threshold is the midpoint to the next value in the whole training set, scikit-
//! learn's the midpoint between the node's neighbouring values.
//!
//! Own implementation rather than forust-ml: the rounds are plain data here, so
//! [`FittedModel::truncated`] gives the exact `k`-round model for every `k`, round `m` draws its
//! subsample from the stream `(seed, m)`, and the defaults match scikit-learn (depth 3).
//! The README's accuracy table compares it with scikit-learn on the same rows
//! (`tests/it/accuracy.rs` holds it to 0.5 points).

use ndarray::ArrayView2;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::models::binning::BinnedMatrix;
use crate::models::class_weight;
use crate::models::decision_tree::{MIN_SAMPLES_LEAF, MIN_SAMPLES_SPLIT};
use crate::models::early_stopping::{self, Monitor};
use crate::models::params::{CLASS_WEIGHT, Reader};
use crate::models::random_forest::n_estimators;
use crate::models::tree::{self, GrowOptions, LeafRange, Stats, Target, Tree};
use crate::models::{
    Algorithm, FittedModel, Labels, ModelError, ParamKind, ParamSpec, ParamValue, Predictor,
    SharedBins,
};

const SPECS: &[ParamSpec] = &[
    n_estimators(100),
    ParamSpec {
        name: "learning_rate",
        kind: ParamKind::Float {
            above: 0.0,
            max: f64::INFINITY,
        },
        default: ParamValue::Float(0.1),
        doc: "shrinks each tree's contribution",
    },
    ParamSpec {
        name: "subsample",
        kind: ParamKind::Float {
            above: 0.0,
            max: 1.0,
        },
        default: ParamValue::Float(1.0),
        doc: "fraction of rows drawn (without replacement) for each tree",
    },
    ParamSpec {
        name: "max_depth",
        kind: ParamKind::OneOf(&[
            ParamKind::Null,
            ParamKind::Int {
                min: 1,
                max: 10_000,
            },
        ]),
        default: ParamValue::Int(3),
        doc: "depth of each tree (scikit-learn's default 3); null = unlimited",
    },
    MIN_SAMPLES_SPLIT,
    MIN_SAMPLES_LEAF,
    CLASS_WEIGHT,
    early_stopping::N_ITER_NO_CHANGE,
    early_stopping::VALIDATION_FRACTION,
    early_stopping::TOL,
];

/// The `gradient_boosting` algorithm.
pub struct GradientBoosting;

/// A fitted booster; the trees' leaves already include the learning rate.
///
/// Two classes: `P(attack) = sigmoid(init + sum of tree outputs)`, one tree per round, no
/// `class_init` (the serialized form of binary models predates K classes and is unchanged).
/// K > 2: `P = softmax(raw)` with `raw[k] = class_init[k] + sum over rounds m of
/// trees[m·K + k]`; `init` is 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BoosterRepr")]
pub struct Fitted {
    /// Features per row.
    pub n_features: usize,
    /// Initial raw score of a binary model: log-odds of the training attack share.
    pub init: f64,
    /// K > 2 only: initial raw score of each class (symmetric log priors); empty for binary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_init: Vec<f64>,
    /// Trees in boosting order (round-major for K > 2).
    pub trees: Vec<Tree>,
}

/// Split statistics of a boosting round: residual sum and row count. The split score needs
/// no more (Friedman's `g² / n`); the hessian sum a leaf needs is taken over its rows once
/// ([`GradTarget::leaf_value`]), so every histogram bin carries 16 bytes instead of 24.
#[derive(Clone, Copy, Debug, Default)]
struct GradStats {
    g: f64,
    n: u32,
}

impl Stats for GradStats {
    #[inline]
    fn add(&mut self, o: &Self) {
        self.g += o.g;
        self.n += o.n;
    }
    #[inline]
    fn sub(&self, o: &Self) -> Self {
        GradStats {
            g: self.g - o.g,
            n: self.n - o.n,
        }
    }
    #[inline]
    fn count(&self) -> usize {
        self.n as usize
    }
}

struct GradTarget<'a> {
    /// Residual `y - p` per row.
    g: &'a [f64],
    /// `p (1 - p)` per row.
    h: &'a [f64],
    /// K > 2: the multinomial leaf factor `(K - 1) / K`; `None` for the binomial leaf.
    multinomial: Option<f64>,
}

impl Target for GradTarget<'_> {
    type S = GradStats;

    #[inline]
    fn sample(&self, i: usize) -> GradStats {
        GradStats { g: self.g[i], n: 1 }
    }

    #[inline]
    fn score(&self, s: &GradStats) -> f64 {
        if s.n == 0 {
            0.0
        } else {
            s.g * s.g / s.n as f64
        }
    }

    fn is_pure(&self, _s: &GradStats) -> bool {
        false
    }

    fn leaf_value(&self, s: &GradStats, rows: &[u32]) -> f64 {
        let h: f64 = rows.iter().map(|&i| self.h[i as usize]).sum();
        match self.multinomial {
            None => {
                if h.abs() < 1e-150 {
                    0.0
                } else {
                    s.g / h
                }
            }
            // scikit-learn's order of operations: means, factor on the numerator, and
            // `_safe_divide`'s guard on the mean hessian.
            Some(factor) => multinomial_leaf(s.g, h, f64::from(s.n.max(1)), factor),
        }
    }
}

/// scikit-learn's multinomial leaf: `factor · mean(g) / mean(h)` over weight `w`.
fn multinomial_leaf(g: f64, h: f64, w: f64, factor: f64) -> f64 {
    let (num, den) = (g / w * factor, h / w);
    if den.abs() < 1e-150 { 0.0 } else { num / den }
}

/// [`GradStats`] of weighted rows: the weighted residual sum, the weight sum, and the row
/// count (which `min_samples_leaf` counts, as in scikit-learn). The weighted hessian sum is
/// taken over a leaf's rows ([`WeightedGradTarget::leaf_value`]).
#[derive(Clone, Copy, Debug, Default)]
struct WeightedGradStats {
    g: f64,
    w: f64,
    n: u32,
}

impl Stats for WeightedGradStats {
    #[inline]
    fn add(&mut self, o: &Self) {
        self.g += o.g;
        self.w += o.w;
        self.n += o.n;
    }
    #[inline]
    fn sub(&self, o: &Self) -> Self {
        WeightedGradStats {
            g: self.g - o.g,
            w: self.w - o.w,
            n: self.n - o.n,
        }
    }
    #[inline]
    fn count(&self) -> usize {
        self.n as usize
    }
}

/// [`GradTarget`] with a weight per row (`class_weight`).
struct WeightedGradTarget<'a> {
    g: &'a [f64],
    h: &'a [f64],
    w: &'a [f64],
    multinomial: Option<f64>,
}

impl Target for WeightedGradTarget<'_> {
    type S = WeightedGradStats;

    #[inline]
    fn sample(&self, i: usize) -> WeightedGradStats {
        let w = self.w[i];
        WeightedGradStats {
            g: w * self.g[i],
            w,
            n: 1,
        }
    }

    #[inline]
    fn score(&self, s: &WeightedGradStats) -> f64 {
        if s.n == 0 || s.w <= 0.0 {
            0.0
        } else {
            s.g * s.g / s.w
        }
    }

    fn is_pure(&self, _s: &WeightedGradStats) -> bool {
        false
    }

    fn leaf_value(&self, s: &WeightedGradStats, rows: &[u32]) -> f64 {
        if s.w <= 0.0 {
            return 0.0;
        }
        let h: f64 = rows
            .iter()
            .map(|&i| self.w[i as usize] * self.h[i as usize])
            .sum();
        match self.multinomial {
            None if h.abs() < 1e-150 => 0.0,
            None => s.g / h,
            Some(factor) => multinomial_leaf(s.g, h, s.w, factor),
        }
    }
}

/// The tree of one round (and class) on residuals `g` and hessians `h`, weighted by `w`
/// when the fit has class weights.
#[allow(clippy::too_many_arguments)]
fn grow_round(
    grower: &mut Grower<'_>,
    g: &[f64],
    h: &[f64],
    w: Option<&[f64]>,
    multinomial: Option<f64>,
    samples: &mut [u32],
    oob: &[u32],
    rng: &mut impl RngCore,
    raw: &mut [f64],
) -> Tree {
    match w {
        None => {
            let target = GradTarget { g, h, multinomial };
            grower.tree(&target, samples, oob, rng, raw)
        }
        Some(w) => {
            let target = WeightedGradTarget {
                g,
                h,
                w,
                multinomial,
            };
            grower.tree(&target, samples, oob, rng, raw)
        }
    }
}

/// `k` of the rows `0..n` drawn uniformly without replacement, in ascending order (selection
/// sampling, one random number per row, no sort).
pub(crate) fn in_bag(n: usize, k: usize, rng: &mut impl RngCore) -> Vec<u32> {
    if k >= n {
        return (0..n as u32).collect();
    }
    let mut out = Vec::with_capacity(k);
    for i in 0..n {
        let needed = k - out.len();
        if needed == 0 {
            break;
        }
        // Lemire's multiply-shift: uniform in 0..n-i up to a 2^-32 bias, one u32 per row.
        if ((u64::from(rng.next_u32()) * (n - i) as u64) >> 32) < needed as u64 {
            out.push(i as u32);
        }
    }
    out
}

/// The rows of `0..n` not in the ascending list `bag`.
fn out_of_bag(n: usize, bag: &[u32]) -> Vec<u32> {
    if bag.len() >= n {
        return Vec::new();
    }
    let mut mask = vec![false; n];
    for &i in bag {
        mask[i as usize] = true;
    }
    (0..n as u32).filter(|&i| !mask[i as usize]).collect()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Raw scores to probabilities in place, as scikit-learn's `sum_exp_minus_max`:
/// `exp(z_k − max) / sum_j exp(z_j − max)`.
fn softmax(z: &mut [f64]) {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
}

/// What every tree of a fit shares: the binned rows, the growth limits, the learning rate.
struct Grower<'a> {
    data: std::borrow::Cow<'a, BinnedMatrix>,
    /// `x` row-major, for the out-of-bag rows' traversal.
    rows: &'a [f64],
    opts: GrowOptions,
    lr: f64,
    leaves: Vec<LeafRange>,
}

impl Grower<'_> {
    /// Grow a tree on the in-bag rows `samples` (reordered), fold the learning rate into its
    /// leaves, and add its output to `raw` for every row: in-bag rows straight from their
    /// leaf, out-of-bag rows (`oob`) by traversal.
    fn tree<T: Target>(
        &mut self,
        target: &T,
        samples: &mut [u32],
        oob: &[u32],
        rng: &mut impl RngCore,
        raw: &mut [f64],
    ) -> Tree {
        let mut t = tree::grow_recording(
            &self.data,
            target,
            samples,
            &self.opts,
            rng,
            &mut self.leaves,
        );
        let lr = self.lr;
        t.map_leaves(|v| lr * v);
        if !oob.is_empty() {
            t.add_rows(self.rows, oob, 1.0, raw);
        }
        for leaf in &self.leaves {
            for &i in &samples[leaf.start..leaf.end] {
                raw[i as usize] += lr * leaf.value;
            }
        }
        t
    }
}

/// Initial raw scores of K > 2 classes: scikit-learn's class priors clipped to
/// `[eps, 1 − eps]`, through the symmetric multinomial logit `ln(p_k / gmean(p))`. With
/// class weights the priors are the weighted class shares.
fn class_init(ids: &[u32], n_classes: usize, class_weights: Option<&[f64]>) -> Vec<f64> {
    let mut counts = vec![0usize; n_classes];
    for &c in ids {
        counts[c as usize] += 1;
    }
    let prior: Vec<f64> = match class_weights {
        None => counts
            .iter()
            .map(|&c| (c as f64 / ids.len() as f64).clamp(f64::EPSILON, 1.0 - f64::EPSILON))
            .collect(),
        Some(cw) => {
            let mass: Vec<f64> = counts.iter().zip(cw).map(|(&c, w)| c as f64 * w).collect();
            let total: f64 = mass.iter().sum();
            mass.iter()
                .map(|m| (m / total).clamp(f64::EPSILON, 1.0 - f64::EPSILON))
                .collect()
        }
    };
    let gmean = (prior.iter().map(|p| p.ln()).sum::<f64>() / n_classes as f64).exp();
    prior.iter().map(|p| (p / gmean).ln()).collect()
}

impl Algorithm for GradientBoosting {
    fn name(&self) -> &'static str {
        "gradient_boosting"
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
        let rounds = r.usize("n_estimators")?;
        let subsample = r.f64("subsample")?;
        let opts = GrowOptions {
            max_depth: r.opt_usize("max_depth")?.unwrap_or(usize::MAX),
            min_samples_split: r.usize("min_samples_split")?,
            min_samples_leaf: r.usize("min_samples_leaf")?,
            max_features: x.ncols(),
        };
        let class_weights = class_weight::resolve(r, labels)?;
        // Early stopping boosts on the rows it does not set aside for validation.
        let (kept, mut monitor) =
            early_stopping::set_aside(r, x, labels, class_weights.as_deref(), seed)?;
        // The shared bins are of the whole `x`; the rows kept for boosting get their own.
        let (x, own_bins) = match &kept {
            Some(k) => (k.x.view(), SharedBins::new()),
            None => (x.view(), bins.clone()),
        };
        let labels = &kept.as_ref().map_or(*labels, |k| k.labels(labels));
        let n = x.nrows();
        let xs = x.as_standard_layout();
        let mut grower = Grower {
            data: own_bins.of(x),
            rows: xs.as_slice().unwrap_or_default(),
            opts,
            lr: r.f64("learning_rate")?,
            leaves: Vec::new(),
        };
        let n_inbag = ((subsample * n as f64) as usize).clamp(1, n);
        let fitted = if labels.is_binary() {
            let w = class_weights
                .as_ref()
                .map(|cw| class_weight::per_row(cw, labels.ids));
            let y = labels.attack_bits();
            let monitor = monitor.as_mut();
            fit_binary(
                &mut grower,
                &y,
                w.as_deref(),
                rounds,
                n_inbag,
                seed,
                monitor,
            )
        } else {
            fit_multinomial(
                &mut grower,
                labels,
                class_weights.as_deref(),
                rounds,
                n_inbag,
                seed,
                monitor.as_mut(),
            )
        };
        Ok(FittedModel::GradientBoosting(fitted))
    }
}

/// Two classes: one tree per round on the binomial residuals.
fn fit_binary(
    g: &mut Grower<'_>,
    y: &[bool],
    w: Option<&[f64]>,
    rounds: usize,
    n_inbag: usize,
    seed: u64,
    mut monitor: Option<&mut Monitor>,
) -> Fitted {
    let n = y.len();
    let pos = match w {
        None => y.iter().filter(|&&v| v).count() as f64 / n as f64,
        Some(w) => {
            let attack: f64 = w.iter().zip(y).filter(|(_, a)| **a).map(|(w, _)| w).sum();
            attack / w.iter().sum::<f64>()
        }
    };
    let init = (pos / (1.0 - pos)).ln();
    if let Some(monitor) = monitor.as_deref_mut() {
        monitor.start(&[init]);
    }
    let mut raw = vec![init; n];
    let mut grad = vec![0.0; n];
    let mut hess = vec![0.0; n];
    let mut trees = Vec::with_capacity(rounds);
    for m in 0..rounds {
        binomial_gradients(&raw, y, &mut grad, &mut hess);
        let mut rng = crate::models::rng_for(seed, m as u64);
        let mut samples = in_bag(n, n_inbag, &mut rng);
        let oob = out_of_bag(n, &samples);
        trees.push(grow_round(
            g,
            &grad,
            &hess,
            w,
            None,
            &mut samples,
            &oob,
            &mut rng,
            &mut raw,
        ));
        if monitor
            .as_deref_mut()
            .is_some_and(|v| v.stops_after(&trees[m..]))
        {
            break;
        }
    }
    Fitted {
        n_features: g.data.n_features,
        init,
        class_init: Vec::new(),
        trees,
    }
}

/// Residuals `y - p` and hessians `p (1 - p)` of the binomial loss at raw scores `raw`, in
/// row blocks on the rayon pool (each row on its own, so any thread count gives the same).
fn binomial_gradients(raw: &[f64], y: &[bool], grad: &mut [f64], hess: &mut [f64]) {
    use rayon::prelude::*;
    const ROWS: usize = 1 << 14;
    grad.par_chunks_mut(ROWS)
        .zip(hess.par_chunks_mut(ROWS))
        .zip(raw.par_chunks(ROWS).zip(y.par_chunks(ROWS)))
        .for_each(|((grad, hess), (raw, y))| {
            for (((g, h), &r), &y) in grad.iter_mut().zip(hess.iter_mut()).zip(raw).zip(y) {
                let p = sigmoid(r);
                *g = f64::from(u8::from(y)) - p;
                *h = p * (1.0 - p);
            }
        });
}

/// K > 2 classes: K trees per round, fitted on the same in-bag rows, to the residuals of the
/// scores before the round (scikit-learn's `_fit_stage`).
fn fit_multinomial(
    g: &mut Grower<'_>,
    labels: &Labels<'_>,
    class_weights: Option<&[f64]>,
    rounds: usize,
    n_inbag: usize,
    seed: u64,
    mut monitor: Option<&mut Monitor>,
) -> Fitted {
    let (ids, k) = (labels.ids, labels.n_classes);
    let n = ids.len();
    let class_init = class_init(ids, k, class_weights);
    if let Some(monitor) = monitor.as_deref_mut() {
        monitor.start(&class_init);
    }
    let w = class_weights.map(|cw| class_weight::per_row(cw, ids));
    let mut raw: Vec<Vec<f64>> = class_init.iter().map(|&r| vec![r; n]).collect();
    let mut grad = vec![vec![0.0; n]; k];
    let mut hess = vec![vec![0.0; n]; k];
    let mut p = vec![0.0; k];
    let factor = (k - 1) as f64 / k as f64;
    let mut trees = Vec::with_capacity(rounds * k);
    let mut samples = Vec::with_capacity(n_inbag);
    for m in 0..rounds {
        for (i, &y) in ids.iter().enumerate() {
            for (c, p) in p.iter_mut().enumerate() {
                *p = raw[c][i];
            }
            softmax(&mut p);
            for (c, &p) in p.iter().enumerate() {
                let y = if y as usize == c { 1.0 } else { 0.0 };
                let r = y - p;
                // scikit-learn recovers the probability from the residual for the hessian.
                let q = y - r;
                grad[c][i] = r;
                hess[c][i] = q * (1.0 - q);
            }
        }
        let mut rng = crate::models::rng_for(seed, m as u64);
        let bag = in_bag(n, n_inbag, &mut rng);
        let oob = out_of_bag(n, &bag);
        for c in 0..k {
            samples.clear();
            samples.extend_from_slice(&bag);
            trees.push(grow_round(
                g,
                &grad[c],
                &hess[c],
                w.as_deref(),
                Some(factor),
                &mut samples,
                &oob,
                &mut rng,
                &mut raw[c],
            ));
        }
        if monitor
            .as_deref_mut()
            .is_some_and(|v| v.stops_after(&trees[m * k..]))
        {
            break;
        }
    }
    Fitted {
        n_features: g.data.n_features,
        init: 0.0,
        class_init,
        trees,
    }
}

/// Serialized form, checked before use so a corrupt model file cannot cause a panic.
#[derive(Deserialize)]
struct BoosterRepr {
    n_features: usize,
    init: f64,
    #[serde(default)]
    class_init: Vec<f64>,
    trees: Vec<Tree>,
}

impl TryFrom<BoosterRepr> for Fitted {
    type Error = String;
    fn try_from(r: BoosterRepr) -> Result<Self, String> {
        if r.trees.iter().any(|t| t.n_features() != r.n_features) {
            return Err("gradient boosting trees must match its n_features".into());
        }
        let k = r.class_init.len();
        if k > 0 {
            if k < 3 {
                return Err(format!(
                    "gradient boosting class_init has {k} classes; a multi-class model has at \
                     least 3 (a binary model has none)"
                ));
            }
            if !r.trees.len().is_multiple_of(k) {
                return Err(format!(
                    "gradient boosting with {k} classes needs {k} trees per round, got {} trees",
                    r.trees.len()
                ));
            }
            if r.init != 0.0 || r.class_init.iter().any(|v| !v.is_finite()) {
                return Err(
                    "gradient boosting with class_init needs init 0 and finite class scores".into(),
                );
            }
        }
        Ok(Fitted {
            n_features: r.n_features,
            init: r.init,
            class_init: r.class_init,
            trees: r.trees,
        })
    }
}

impl Fitted {
    /// Trees per round: 1 for a binary model, K otherwise.
    fn per_round(&self) -> usize {
        self.class_init.len().max(1)
    }
}

impl Predictor for Fitted {
    fn n_features(&self) -> usize {
        self.n_features
    }
    fn n_classes(&self) -> usize {
        if self.class_init.is_empty() {
            2
        } else {
            self.class_init.len()
        }
    }
    fn truncated(&self, n: usize) -> Option<FittedModel> {
        let k = self.per_round();
        (1..=self.trees.len() / k).contains(&n).then(|| {
            FittedModel::GradientBoosting(Fitted {
                n_features: self.n_features,
                init: self.init,
                class_init: self.class_init.clone(),
                trees: self.trees[..n * k].to_vec(),
            })
        })
    }
    fn n_stages(&self) -> Option<usize> {
        Some(self.trees.len() / self.per_round())
    }
    fn proba_row(&self, row: &[f64], out: &mut [f64]) {
        if self.class_init.is_empty() {
            let p = self.p1_row(row);
            out[0] = 1.0 - p;
            out[1] = p;
            return;
        }
        let k = self.class_init.len();
        out.copy_from_slice(&self.class_init);
        for round in self.trees.chunks_exact(k) {
            for (o, t) in out.iter_mut().zip(round) {
                *o += t.predict_row(row);
            }
        }
        softmax(out);
    }

    fn proba_batch(&self, x: &[f64], out: &mut [f64]) {
        if !self.class_init.is_empty() {
            let all = self.trees.len() / self.class_init.len();
            let mut staged = [vec![0.0; out.len()]];
            self.multi_staged_batch(x, &[all], &mut staged);
            out.copy_from_slice(&staged[0]);
            return;
        }
        let mut p = vec![0.0; out.len() / 2];
        self.p1_batch(x, &mut p);
        super::binary_rows(&p, out);
    }

    fn staged_proba_batch(&self, x: &[f64], stages: &[usize], out: &mut [Vec<f64>]) {
        if !self.class_init.is_empty() {
            return self.multi_staged_batch(x, stages, out);
        }
        let rows = out.first().map_or(0, |o| o.len() / 2);
        let mut p = vec![vec![0.0; rows]; out.len()];
        self.p1_staged_batch(x, stages, &mut p);
        for (o, p) in out.iter_mut().zip(&p) {
            super::binary_rows(p, o);
        }
    }
}

/// The K > 2 form.
impl Fitted {
    /// Softmax probabilities of every row under the first `stages[j]` rounds into `out[j]`
    /// (row-major, K columns). Row blocks are the outer loop so a block of `x` stays in cache
    /// while every tree is applied to it; each class's score accumulates tree by tree as in
    /// [`Predictor::proba_row`], so the two agree bit for bit.
    fn multi_staged_batch(&self, x: &[f64], stages: &[usize], out: &mut [Vec<f64>]) {
        const ROWS: usize = 256;
        let k = self.class_init.len();
        let n = x.len() / self.n_features.max(1);
        let mut raw: Vec<Vec<f64>> = self.class_init.iter().map(|&r| vec![r; n]).collect();
        let mut ids = Vec::with_capacity(ROWS);
        let mut p = vec![0.0; k];
        for start in (0..n).step_by(ROWS) {
            let end = (start + ROWS).min(n);
            ids.clear();
            ids.extend(start as u32..end as u32);
            let mut done = 0;
            for (j, &stage) in stages.iter().enumerate() {
                for round in self.trees[done * k..stage * k].chunks_exact(k) {
                    for (t, raw) in round.iter().zip(raw.iter_mut()) {
                        t.add_rows(x, &ids, 1.0, raw);
                    }
                }
                done = stage;
                for i in start..end {
                    for (p, raw) in p.iter_mut().zip(&raw) {
                        *p = raw[i];
                    }
                    softmax(&mut p);
                    out[j][i * k..(i + 1) * k].copy_from_slice(&p);
                }
            }
        }
    }
}

/// The two-class form: P(attack) per row.
impl Fitted {
    fn p1_row(&self, row: &[f64]) -> f64 {
        sigmoid(self.init + self.trees.iter().map(|t| t.predict_row(row)).sum::<f64>())
    }
    fn p1_staged_batch(&self, x: &[f64], stages: &[usize], out: &mut [Vec<f64>]) {
        tree::staged_sums(&self.trees, None, x, stages, self.init, out, |_, raw| {
            sigmoid(raw)
        });
    }
    fn p1_batch(&self, x: &[f64], out: &mut [f64]) {
        if self.trees.is_empty() {
            out.fill(sigmoid(self.init));
            return;
        }
        let mut staged = [vec![0.0; out.len()]];
        self.p1_staged_batch(x, &[self.trees.len()], &mut staged);
        out.copy_from_slice(&staged[0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Params;
    use crate::models::metrics::log_loss;
    use crate::models::testutil::{ids, toy};

    #[test]
    fn training_loss_decreases_with_rounds() {
        let (x, y) = toy(400, 6, 6);
        let mut p = Params::new();
        p.insert("n_estimators".into(), ParamValue::Int(60));
        p.insert("subsample".into(), ParamValue::Float(0.7));
        let m = GradientBoosting.fit(&p, x.view(), &ids(&y), 2, 2).unwrap();
        let loss = |k: usize| {
            log_loss(
                &y,
                &m.truncated(k)
                    .unwrap()
                    .predict_proba(x.view())
                    .unwrap()
                    .column(1)
                    .to_vec(),
            )
        };
        assert!(
            loss(60) < loss(20) && loss(20) < loss(1),
            "{} {} {}",
            loss(1),
            loss(20),
            loss(60)
        );
    }

    #[test]
    fn in_bag_draws_exactly_k_sorted() {
        let mut rng = crate::models::rng_for(1, 2);
        for (n, k) in [(10, 3), (100, 99), (5, 5), (7, 1)] {
            let s = in_bag(n, k, &mut rng);
            assert_eq!(s.len(), k);
            assert!(s.windows(2).all(|w| w[0] < w[1]) && s.iter().all(|&i| (i as usize) < n));
        }
    }

    #[test]
    fn init_is_prior_log_odds() {
        let (x, y) = toy(100, 3, 1);
        let FittedModel::GradientBoosting(m) = GradientBoosting
            .fit(&Params::new(), x.view(), &ids(&y), 2, 0)
            .unwrap()
        else {
            panic!()
        };
        let pos = y.iter().filter(|&&v| v).count() as f64 / 100.0;
        assert!((sigmoid(m.init) - pos).abs() < 1e-12);
    }

    /// 30 rows, 3 integer features, 3 classes (9/10/11 rows) and the probabilities of
    /// scikit-learn 1.9.1 for them, produced with
    /// `~/.cache/netsec-ci/mlflow-venv/bin/python`:
    /// ```python
    /// rs = np.random.RandomState(2)
    /// X = rs.randint(0, 10, size=(30, 3)).astype(float)
    /// score = X[:, 0] - 0.6 * X[:, 1] + 0.3 * X[:, 2] + rs.normal(0, 1.5, 30)
    /// y = np.digitize(score, np.quantile(score, [0.3, 0.65]))
    /// m = GradientBoostingClassifier(n_estimators=3, max_depth=2, learning_rate=0.5,
    ///                                random_state=0).fit(X, y)
    /// m.predict_proba(X); m.predict_proba(QUERY); m._raw_predict_init(X[:1])
    /// next(m.staged_predict_proba(X))[0]
    /// ```
    /// The data set has no tied splits: `random_state` 0..11 (feature order) give identical
    /// models in scikit-learn, so the comparison does not depend on tie-breaking.
    mod sklearn3 {
        pub const X: [[f64; 3]; 30] = [
            [8., 8., 6.],
            [2., 8., 7.],
            [2., 1., 5.],
            [4., 4., 5.],
            [7., 3., 6.],
            [4., 3., 7.],
            [6., 1., 3.],
            [5., 8., 4.],
            [6., 3., 9.],
            [2., 0., 4.],
            [2., 4., 1.],
            [7., 8., 2.],
            [9., 8., 7.],
            [1., 6., 8.],
            [5., 9., 9.],
            [9., 3., 0.],
            [0., 2., 8.],
            [8., 2., 9.],
            [6., 5., 6.],
            [6., 6., 3.],
            [8., 2., 1.],
            [4., 8., 1.],
            [6., 9., 5.],
            [1., 2., 4.],
            [7., 6., 4.],
            [5., 8., 3.],
            [0., 0., 5.],
            [7., 5., 0.],
            [8., 6., 5.],
            [1., 7., 4.],
        ];
        pub const Y: [u32; 30] = [
            1, 0, 1, 1, 2, 0, 2, 1, 2, 2, 0, 2, 2, 0, 1, 2, 0, 2, 2, 2, 2, 1, 1, 1, 0, 0, 0, 1, 1,
            0,
        ];
        pub const PROBA: [[f64; 3]; 30] = [
            [0.18552223224000902, 0.4099281404143664, 0.40454962734562455],
            [0.7828099308258288, 0.13533744290589858, 0.08185262626827253],
            [0.20565475872388933, 0.6574661401793811, 0.13687910109672954],
            [0.36385950085346663, 0.5265227471039605, 0.10961775204257275],
            [0.09076865071313885, 0.20056153780330532, 0.7086698114835559],
            [0.5557462750735254, 0.2768274045014194, 0.16742632042505515],
            [0.02903790713148382, 0.11401693911082209, 0.8569451537576941],
            [0.36385950085346663, 0.5265227471039605, 0.10961775204257275],
            [0.07258396577522042, 0.05520794294555297, 0.8722080912792266],
            [0.1403404375653476, 0.22875098226869411, 0.6309085801659583],
            [0.6812117648995735, 0.2475589752173129, 0.07122925988311357],
            [0.20923105762178687, 0.3345198698653249, 0.4562490725128884],
            [0.25372936814910724, 0.1929885799264126, 0.5532820519244801],
            [0.7828099308258288, 0.13533744290589858, 0.08185262626827253],
            [0.14096508626376758, 0.8165672144279092, 0.04246769930832311],
            [0.09609623304429973, 0.1536392337634476, 0.7502645331922526],
            [0.8213443758071852, 0.11132551055832612, 0.06733011363448882],
            [0.04536767254118161, 0.08474530929776991, 0.8698870181610484],
            [0.15230469990729814, 0.3365310003848831, 0.5111642997078187],
            [0.16792607929797526, 0.2684812227795361, 0.5635926979224886],
            [0.04149266329978654, 0.1629203662500955, 0.795586970450118],
            [0.4258374408187576, 0.4458730878643646, 0.12828947131687793],
            [0.07418569376824276, 0.6768326383878657, 0.2489816678438916],
            [0.20565475872388933, 0.6574661401793811, 0.13687910109672954],
            [0.18552223224000902, 0.4099281404143664, 0.40454962734562455],
            [0.4258374408187576, 0.4458730878643646, 0.12828947131687793],
            [0.6863449659341866, 0.0891763128002895, 0.2244787212655239],
            [0.20923105762178687, 0.3345198698653249, 0.4562490725128884],
            [0.18552223224000902, 0.4099281404143664, 0.40454962734562455],
            [0.6223534362384332, 0.3125716825966602, 0.0650748811649067],
        ];
        /// Rows off the training grid, in no node's gap (see below); scikit-learn's answers.
        ///
        /// Not every off-grid row agrees: scikit-learn's threshold is the midpoint between the
        /// node's neighbouring values (e.g. 3.0 between 2 and 4), the shared histogram
        /// splitter's is the midpoint to the next value in the whole training set (2.5), so a
        /// row with a value in such a gap can take the other branch. `[0, 9, 0]` and
        /// `[9, 0, 9]` do (P = 0.68/0.30/0.02 against 0.78/0.21/0.01). Training rows never
        /// fall in a gap.
        pub const QUERY: [[f64; 3]; 2] = [[4.5, 2.5, 7.5], [3.2, 5.7, 1.1]];
        pub const QUERY_PROBA: [[f64; 3]; 2] = [
            [0.3374738932999048, 0.4128392678363518, 0.24968683886374338],
            [0.4258374408187576, 0.4458730878643646, 0.12828947131687793],
        ];
        /// `_raw_predict_init`: the symmetric log priors of 9/10/11 rows.
        pub const INIT: [f64; 3] = [
            -0.10201040370665908,
            0.0033501119511672,
            0.09866029175549204,
        ];
        /// Row 0 after the first round.
        pub const STAGE1_ROW0: [f64; 3] =
            [0.2124261216118751, 0.36714384605652806, 0.4204300323315968];
    }

    fn sklearn3_fit(rounds: i64, subsample: f64, seed: u64) -> (ndarray::Array2<f64>, FittedModel) {
        let x = ndarray::Array2::from_shape_fn((30, 3), |(i, j)| sklearn3::X[i][j]);
        let mut p = Params::new();
        p.insert("n_estimators".into(), ParamValue::Int(rounds));
        p.insert("max_depth".into(), ParamValue::Int(2));
        p.insert("learning_rate".into(), ParamValue::Float(0.5));
        p.insert("subsample".into(), ParamValue::Float(subsample));
        let m = GradientBoosting
            .fit(&p, x.view(), &sklearn3::Y, 3, seed)
            .unwrap();
        (x, m)
    }

    fn assert_close(got: ndarray::ArrayView1<f64>, want: &[f64], what: &str) {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{what}: {got} vs {want:?}");
        }
    }

    #[test]
    fn three_classes_match_scikit_learn() {
        let (x, m) = sklearn3_fit(3, 1.0, 0);
        assert_eq!(m.n_classes(), 3);
        assert_eq!(m.n_stages(), Some(3));
        let FittedModel::GradientBoosting(f) = &m else {
            panic!()
        };
        assert_eq!(f.trees.len(), 9, "one tree per class per round");
        assert_close(ndarray::aview1(&f.class_init), &sklearn3::INIT, "init");
        let proba = m.predict_proba(x.view()).unwrap();
        for (i, want) in sklearn3::PROBA.iter().enumerate() {
            assert_close(proba.row(i), want, &format!("row {i}"));
        }
        let q = ndarray::Array2::from_shape_fn((2, 3), |(i, j)| sklearn3::QUERY[i][j]);
        let proba = m.predict_proba(q.view()).unwrap();
        for (i, want) in sklearn3::QUERY_PROBA.iter().enumerate() {
            assert_close(proba.row(i), want, &format!("query {i}"));
        }
        let staged = m.staged_predict_proba(x.view(), &[1]).unwrap();
        assert_close(staged[0].row(0), &sklearn3::STAGE1_ROW0, "stage 1");
    }

    #[test]
    fn three_classes_staged_equals_truncated_and_smaller_fits() {
        // subsampled rounds: the K trees of a round share one draw, and stay reproducible
        let (x, m12) = sklearn3_fit(12, 0.7, 5);
        let (_, m5) = sklearn3_fit(5, 0.7, 5);
        let t5 = m12.truncated(5).unwrap();
        assert_eq!(t5, m5);
        assert_eq!(t5.n_stages(), Some(5));
        let FittedModel::GradientBoosting(f) = &t5 else {
            panic!()
        };
        assert_eq!(f.trees.len(), 15, "5 rounds of 3 trees");
        assert!(m12.truncated(0).is_none() && m12.truncated(13).is_none());
        let staged = m12.staged_predict_proba(x.view(), &[1, 5, 12]).unwrap();
        for (k, probs) in [1, 5, 12].iter().zip(&staged) {
            assert_eq!(probs.dim(), (30, 3));
            let direct = m12.truncated(*k).unwrap().predict_proba(x.view()).unwrap();
            assert_eq!(probs, direct, "stage {k}");
            for (i, row) in x.rows().into_iter().enumerate() {
                let mut out = [0.0; 3];
                m12.truncated(*k)
                    .unwrap()
                    .predict_proba_row(row.as_slice().unwrap(), &mut out)
                    .unwrap();
                assert_eq!(out[..], direct.row(i).to_vec()[..], "row path, stage {k}");
            }
        }
        // a different seed draws different rows
        let (_, other) = sklearn3_fit(12, 0.7, 6);
        assert_ne!(other, m12);
    }

    #[test]
    fn three_classes_roundtrip_through_json() {
        let (x, m) = sklearn3_fit(4, 0.8, 1);
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"class_init\":["), "{json:.120}");
        let back: FittedModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            back.predict_proba(x.view()).unwrap(),
            m.predict_proba(x.view()).unwrap()
        );
        // binary models keep their old form
        let (xb, yb) = toy(60, 3, 2);
        let b = GradientBoosting
            .fit(&Params::new(), xb.view(), &ids(&yb), 2, 0)
            .unwrap();
        assert!(!serde_json::to_string(&b).unwrap().contains("class_init"));
    }

    #[test]
    fn inconsistent_multiclass_files_are_rejected() {
        let leaf = r#"{"n_features":2,"nodes":[[4294967295,0,0.5]]}"#;
        let file = |init: &str, class_init: &str, trees: usize| {
            let trees = vec![leaf; trees].join(",");
            format!(
                r#"{{"algorithm":"gradient_boosting","n_features":2,"init":{init},"class_init":{class_init},"trees":[{trees}]}}"#
            )
        };
        let ok = file("0.0", "[0.1,0.2,-0.3]", 6);
        let m: FittedModel = serde_json::from_str(&ok).unwrap();
        assert_eq!((m.n_classes(), m.n_stages()), (3, Some(2)));
        for bad in [
            file("0.0", "[0.1,0.2,-0.3]", 5), // not whole rounds
            file("0.0", "[0.1,-0.1]", 2),     // two classes are the binary form
            file("0.0", "[0.1]", 1),
            file("0.5", "[0.1,0.2,-0.3]", 3), // init belongs to binary models
        ] {
            assert!(serde_json::from_str::<FittedModel>(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_class_without_training_rows_gets_a_tiny_probability() {
        // K = 4 but class 3 never occurs: its prior is clipped to eps, as scikit-learn's
        let (x, _) = sklearn3_fit(1, 1.0, 0);
        let mut p = Params::new();
        p.insert("n_estimators".into(), ParamValue::Int(5));
        let m = GradientBoosting
            .fit(&p, x.view(), &sklearn3::Y, 4, 0)
            .unwrap();
        let proba = m.predict_proba(x.view()).unwrap();
        assert_eq!(proba.ncols(), 4);
        for row in proba.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-12);
            assert!(row[3] < 1e-10 && row.iter().all(|v| v.is_finite()), "{row}");
        }
    }

    #[test]
    fn three_classes_learn_what_one_split_cannot() {
        // class = which third of feature 0 a row falls in: the middle class needs the
        // per-class trees (training accuracy 1 after a few rounds).
        let x = ndarray::Array2::from_shape_fn((90, 2), |(i, j)| {
            if j == 0 { i as f64 } else { (i * 7 % 5) as f64 }
        });
        let y: Vec<u32> = (0..90).map(|i| (i / 30) as u32).collect();
        let mut p = Params::new();
        p.insert("n_estimators".into(), ParamValue::Int(10));
        let m = GradientBoosting.fit(&p, x.view(), &y, 3, 0).unwrap();
        let proba = m.predict_proba(x.view()).unwrap();
        for (row, &c) in proba.rows().into_iter().zip(&y) {
            let best = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            assert_eq!(best as u32, c, "{row}");
        }
    }
}
