//! `adaboost`: discrete AdaBoost (SAMME, scikit-learn's `AdaBoostClassifier`, whose only
//! algorithm it is since 1.6) over decision stumps grown on the shared histogram splitter with
//! sample **reweighting** (not resampling).
//!
//! Round `m` fits a gini stump to the current weights, takes its weighted error `e` and weight
//! `alpha = learning_rate * (ln((1 - e) / e) + ln(K - 1))`, and multiplies the weights of
//! misclassified rows by `exp(alpha)`. As in scikit-learn, boosting stops early at a perfect
//! stump (kept with weight 1) or one no better than chance, `e >= 1 - 1/K` (dropped).
//!
//! Probabilities, as scikit-learn's `predict_proba`: with `W = sum(alpha)`,
//! * K = 2: P(attack) = `sigmoid(d)`, `d = sum(alpha * h) / W`, `h = ±1` (stump leaves hold ±1);
//! * K > 2: `softmax(d / (K - 1))` with `d_k = sum(alpha * (h == k ? 1 : -1 / (K - 1))) / W`
//!   (stump leaves hold the predicted class id). K counts every class of the label, also one
//!   without training rows (scikit-learn would count only the classes it saw).

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::models::binning::BinnedMatrix;
use crate::models::decision_tree::check_class_count;
use crate::models::params::Reader;
use crate::models::random_forest::n_estimators;
use crate::models::tree::{self, ClassTarget, Criterion, GrowOptions, Tree};
use crate::models::{
    Algorithm, FittedModel, Labels, ModelError, ParamKind, ParamSpec, ParamValue, Predictor,
};

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
        seed: u64,
    ) -> Result<FittedModel, ModelError> {
        check_class_count(self.name(), labels.n_classes)?;
        let rounds = r.usize("n_estimators")?;
        let lr = r.f64("learning_rate")?;
        let data = BinnedMatrix::new(x);
        let opts = GrowOptions {
            max_depth: 1,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: x.ncols(),
        };
        let (stumps, alphas) = if labels.is_binary() {
            fit_binary(&data, &labels.attack_bits(), &opts, rounds, lr, seed)
        } else {
            fit_classes(&data, labels, &opts, rounds, lr, seed)
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
    opts: &GrowOptions,
    rounds: usize,
    lr: f64,
    seed: u64,
) -> (Vec<Tree>, Vec<f64>) {
    let n = y.len();
    let mut w = vec![1.0 / n as f64; n];
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
/// and renormalized.
fn fit_classes(
    data: &BinnedMatrix,
    labels: &Labels<'_>,
    opts: &GrowOptions,
    rounds: usize,
    lr: f64,
    seed: u64,
) -> (Vec<Tree>, Vec<f64>) {
    let y = labels.ids;
    let k = labels.n_classes as f64;
    let n = y.len();
    let mut w = vec![1.0 / n as f64; n];
    let mut stumps = Vec::new();
    let mut alphas = Vec::new();
    let mut wrong = vec![false; n];
    let mut leaves = Vec::new();
    for m in 0..rounds {
        for v in w.iter_mut() {
            *v = v.max(f64::EPSILON);
        }
        let mut samples: Vec<u32> = (0..n as u32).collect();
        let mut rng = crate::models::rng_for(seed, m as u64);
        let stump = tree::grow_classes(
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
        for leaf in &leaves {
            for &i in &samples[leaf.start..leaf.end] {
                wrong[i as usize] = leaf.value != f64::from(y[i as usize]);
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
