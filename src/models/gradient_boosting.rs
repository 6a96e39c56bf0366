//! `gradient_boosting`: binary log-loss gradient boosting with scikit-learn
//! `GradientBoostingClassifier` semantics, on the shared histogram splitter.
//!
//! Start from the log-odds of the attack share; each round draws `subsample` of the rows
//! without replacement, fits a regression tree to the residuals `y - p` (squared-error split
//! gain, which equals scikit-learn's `friedman_mse` choice for unweighted rows), sets each leaf
//! to the Newton step `sum(y - p) / sum(p (1 - p))` over its in-bag rows, and adds
//! `learning_rate` × the tree to the raw score. P(attack) = sigmoid(raw score).
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
use crate::models::decision_tree::{MIN_SAMPLES_LEAF, MIN_SAMPLES_SPLIT};
use crate::models::params::Reader;
use crate::models::random_forest::n_estimators;
use crate::models::tree::{self, GrowOptions, Stats, Target, Tree};
use crate::models::{
    Algorithm, FittedModel, Labels, ModelError, ParamKind, ParamSpec, ParamValue, Predictor,
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
];

/// The `gradient_boosting` algorithm.
pub struct GradientBoosting;

/// A fitted booster: `P(attack) = sigmoid(init + sum of tree outputs)`; the trees' leaves
/// already include the learning rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BoosterRepr")]
pub struct Fitted {
    /// Features per row.
    pub n_features: usize,
    /// Initial raw score: log-odds of the training attack share.
    pub init: f64,
    /// Trees in boosting order.
    pub trees: Vec<Tree>,
}

/// Gradient statistics: residual sum, hessian sum, row count.
#[derive(Clone, Copy, Debug, Default)]
struct GradStats {
    g: f64,
    h: f64,
    n: u32,
}

impl Stats for GradStats {
    #[inline]
    fn add(&mut self, o: &Self) {
        self.g += o.g;
        self.h += o.h;
        self.n += o.n;
    }
    #[inline]
    fn sub(&self, o: &Self) -> Self {
        GradStats {
            g: self.g - o.g,
            h: self.h - o.h,
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
}

impl Target for GradTarget<'_> {
    type S = GradStats;

    #[inline]
    fn sample(&self, i: usize) -> GradStats {
        GradStats {
            g: self.g[i],
            h: self.h[i],
            n: 1,
        }
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

    fn leaf_value(&self, s: &GradStats) -> f64 {
        if s.h.abs() < 1e-150 { 0.0 } else { s.g / s.h }
    }
}

/// `k` of the rows `0..n` drawn uniformly without replacement, in ascending order (selection
/// sampling, one random number per row, no sort).
fn in_bag(n: usize, k: usize, rng: &mut impl RngCore) -> Vec<u32> {
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

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
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
        seed: u64,
    ) -> Result<FittedModel, ModelError> {
        if !labels.is_binary() {
            return Err(ModelError::Multiclass {
                algorithm: self.name(),
                n_classes: labels.n_classes,
            });
        }
        let y = &labels.attack_bits()[..];
        let rounds = r.usize("n_estimators")?;
        let lr = r.f64("learning_rate")?;
        let subsample = r.f64("subsample")?;
        let opts = GrowOptions {
            max_depth: r.opt_usize("max_depth")?.unwrap_or(usize::MAX),
            min_samples_split: r.usize("min_samples_split")?,
            min_samples_leaf: r.usize("min_samples_leaf")?,
            max_features: x.ncols(),
        };
        let (n, d) = x.dim();
        let data = BinnedMatrix::new(x);
        let xs = x.as_standard_layout();
        let rows = xs.as_slice().unwrap_or_default();

        let pos = y.iter().filter(|&&v| v).count() as f64 / n as f64;
        let init = (pos / (1.0 - pos)).ln();
        let mut raw = vec![init; n];
        let mut g = vec![0.0; n];
        let mut h = vec![0.0; n];
        let n_inbag = ((subsample * n as f64) as usize).clamp(1, n);
        let mut trees = Vec::with_capacity(rounds);
        let mut leaves = Vec::new();
        let mut in_bag_mask = vec![false; n];
        let mut out_of_bag = Vec::new();
        for m in 0..rounds {
            for i in 0..n {
                let p = sigmoid(raw[i]);
                g[i] = f64::from(u8::from(y[i])) - p;
                h[i] = p * (1.0 - p);
            }
            let mut rng = crate::models::rng_for(seed, m as u64);
            let mut samples = in_bag(n, n_inbag, &mut rng);
            let target = GradTarget { g: &g, h: &h };
            let mut t =
                tree::grow_recording(&data, &target, &mut samples, &opts, &mut rng, &mut leaves);
            t.map_leaves(|v| lr * v);
            // In-bag rows: add their leaf's value directly; out-of-bag rows: traverse.
            if n_inbag < n {
                in_bag_mask.fill(false);
                for &i in &samples {
                    in_bag_mask[i as usize] = true;
                }
                out_of_bag.clear();
                out_of_bag.extend((0..n as u32).filter(|&i| !in_bag_mask[i as usize]));
                t.add_rows(rows, &out_of_bag, 1.0, &mut raw);
            }
            for leaf in &leaves {
                for &i in &samples[leaf.start..leaf.end] {
                    raw[i as usize] += lr * leaf.value;
                }
            }
            trees.push(t);
        }
        Ok(FittedModel::GradientBoosting(Fitted {
            n_features: d,
            init,
            trees,
        }))
    }
}

/// Serialized form, checked before use so a corrupt model file cannot cause a panic.
#[derive(Deserialize)]
struct BoosterRepr {
    n_features: usize,
    init: f64,
    trees: Vec<Tree>,
}

impl TryFrom<BoosterRepr> for Fitted {
    type Error = String;
    fn try_from(r: BoosterRepr) -> Result<Self, String> {
        if r.trees.iter().any(|t| t.n_features() != r.n_features) {
            return Err("gradient boosting trees must match its n_features".into());
        }
        Ok(Fitted {
            n_features: r.n_features,
            init: r.init,
            trees: r.trees,
        })
    }
}

impl Predictor for Fitted {
    fn n_features(&self) -> usize {
        self.n_features
    }
    fn truncated(&self, n: usize) -> Option<FittedModel> {
        (1..=self.trees.len()).contains(&n).then(|| {
            FittedModel::GradientBoosting(Fitted {
                n_features: self.n_features,
                init: self.init,
                trees: self.trees[..n].to_vec(),
            })
        })
    }
    fn n_stages(&self) -> Option<usize> {
        Some(self.trees.len())
    }
    fn proba_row(&self, row: &[f64], out: &mut [f64]) {
        let p = self.p1_row(row);
        out[0] = 1.0 - p;
        out[1] = p;
    }

    fn proba_batch(&self, x: &[f64], out: &mut [f64]) {
        let mut p = vec![0.0; out.len() / 2];
        self.p1_batch(x, &mut p);
        super::binary_rows(&p, out);
    }

    fn staged_proba_batch(&self, x: &[f64], stages: &[usize], out: &mut [Vec<f64>]) {
        let rows = out.first().map_or(0, |o| o.len() / 2);
        let mut p = vec![vec![0.0; rows]; out.len()];
        self.p1_staged_batch(x, stages, &mut p);
        for (o, p) in out.iter_mut().zip(&p) {
            super::binary_rows(p, o);
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
}
