//! `random_forest`: scikit-learn `RandomForestClassifier` semantics on the shared histogram
//! splitter: one bootstrap sample per tree (drawn counts become sample weights, as in
//! scikit-learn), `max_features` candidate features drawn per split, and the trees' leaf class
//! fractions averaged (`RandomForestClassifier.predict_proba`): binary trees store P(attack)
//! per leaf (the form of earlier model files), K-class trees the K fractions.
//!
//! Tree `t` draws all its randomness from the stream `(seed, t)`, so trees can be fitted in
//! parallel (rayon) with results independent of the thread count, and the first `k` trees of
//! a forest equal a `k`-tree forest (see [`FittedModel::truncated`]).

use std::borrow::Cow;

use ndarray::ArrayView2;
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::models::class_weight;
use crate::models::decision_tree::{
    CRITERION, MAX_DEPTH, MAX_FEATURES_KIND, MIN_SAMPLES_LEAF, MIN_SAMPLES_SPLIT,
    check_class_count, grow_options,
};
use crate::models::params::{CLASS_WEIGHT, Reader};
use crate::models::tree::{self, ClassTarget, Tree};
use crate::models::{
    Algorithm, FittedModel, Labels, ModelError, ParamKind, ParamSpec, ParamValue, Predictor,
    SharedBins,
};

/// `n_estimators` of the tree ensembles: 1..=100000 trees / rounds.
pub(crate) const fn n_estimators(default: i64) -> ParamSpec {
    ParamSpec {
        name: "n_estimators",
        kind: ParamKind::Int {
            min: 1,
            max: 100_000,
        },
        default: ParamValue::Int(default),
        doc: "number of trees / boosting rounds",
    }
}

const SPECS: &[ParamSpec] = &[
    n_estimators(100),
    CRITERION,
    MAX_DEPTH,
    MIN_SAMPLES_SPLIT,
    MIN_SAMPLES_LEAF,
    ParamSpec {
        name: "max_features",
        kind: MAX_FEATURES_KIND,
        default: ParamValue::Str(Cow::Borrowed("sqrt")),
        doc: "features tried per split: sqrt, log2, null (all), a fraction, or a count",
    },
    ParamSpec {
        name: "bootstrap",
        kind: ParamKind::Bool,
        default: ParamValue::Bool(true),
        doc: "fit each tree on a bootstrap sample (false: on all rows)",
    },
    CLASS_WEIGHT,
];

/// The `random_forest` algorithm.
pub struct RandomForest;

/// A fitted forest: trees whose leaves hold P(attack) (binary) or the K class fractions
/// (K > 2); the forest averages them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ForestRepr")]
pub struct Fitted {
    /// Features per row.
    pub n_features: usize,
    /// The trees, in index order.
    pub trees: Vec<Tree>,
}

impl Algorithm for RandomForest {
    fn name(&self) -> &'static str {
        "random_forest"
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
        let binary = labels.is_binary();
        let y = if binary {
            labels.attack_bits()
        } else {
            Vec::new()
        };
        let (criterion, opts) = grow_options(r, x.ncols())?;
        let n_trees = r.usize("n_estimators")?;
        let bootstrap = r.bool("bootstrap")?;
        let data = bins.of(x);
        let n = x.nrows();
        // As scikit-learn's `class_weight="balanced"` (not `balanced_subsample`): weights from
        // the forest's training labels, multiplying each tree's bootstrap counts.
        let row_weights =
            class_weight::resolve(r, labels)?.map(|w| class_weight::per_row(&w, labels.ids));

        let trees = (0..n_trees)
            .into_par_iter()
            .map(|t| {
                let mut rng = crate::models::rng_for(seed, t as u64);
                let (mut samples, weights) = if bootstrap {
                    let mut counts = vec![0f64; n];
                    for _ in 0..n {
                        counts[rng.gen_range(0..n)] += 1.0;
                    }
                    let samples: Vec<u32> = (0..n as u32)
                        .filter(|&i| counts[i as usize] > 0.0)
                        .collect();
                    if let Some(w) = &row_weights {
                        counts.iter_mut().zip(w).for_each(|(c, w)| *c *= w);
                    }
                    (samples, Some(counts))
                } else {
                    ((0..n as u32).collect(), row_weights.clone())
                };
                if !binary {
                    return tree::grow_classes(
                        &data,
                        labels.ids,
                        weights.as_deref(),
                        criterion,
                        labels.n_classes,
                        &mut samples,
                        &opts,
                        &mut rng,
                        &mut Vec::new(),
                    );
                }
                let target = ClassTarget {
                    y: &y,
                    weights: weights.as_deref(),
                    criterion,
                };
                tree::grow(&data, &target, &mut samples, &opts, &mut rng)
            })
            .collect();
        Ok(FittedModel::RandomForest(Fitted {
            n_features: x.ncols(),
            trees,
        }))
    }
}

/// Serialized form, checked before use so a corrupt model file cannot cause a panic.
#[derive(Deserialize)]
struct ForestRepr {
    n_features: usize,
    trees: Vec<Tree>,
}

impl TryFrom<ForestRepr> for Fitted {
    type Error = String;
    fn try_from(r: ForestRepr) -> Result<Self, String> {
        if r.trees.is_empty() || r.trees.iter().any(|t| t.n_features() != r.n_features) {
            return Err("random forest needs trees matching its n_features".into());
        }
        if r.trees
            .iter()
            .any(|t| t.n_classes() != r.trees[0].n_classes())
        {
            return Err("random forest trees disagree on n_classes".into());
        }
        Ok(Fitted {
            n_features: r.n_features,
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
            FittedModel::RandomForest(Fitted {
                n_features: self.n_features,
                trees: self.trees[..n].to_vec(),
            })
        })
    }
    fn n_stages(&self) -> Option<usize> {
        Some(self.trees.len())
    }
    fn n_classes(&self) -> usize {
        self.tree_classes().max(2)
    }
    fn proba_row(&self, row: &[f64], out: &mut [f64]) {
        if self.tree_classes() > 0 {
            out.fill(0.0);
            for t in &self.trees {
                for (o, v) in out.iter_mut().zip(t.class_row(row)) {
                    *o += v;
                }
            }
            let n = self.trees.len() as f64;
            out.iter_mut().for_each(|o| *o /= n);
            return;
        }
        let p = self.p1_row(row);
        out[0] = 1.0 - p;
        out[1] = p;
    }

    fn proba_batch(&self, x: &[f64], out: &mut [f64]) {
        if self.tree_classes() > 0 {
            let mut staged = [vec![0.0; out.len()]];
            self.staged_proba_batch(x, &[self.trees.len()], &mut staged);
            out.copy_from_slice(&staged[0]);
            return;
        }
        let mut p = vec![0.0; out.len() / 2];
        self.p1_batch(x, &mut p);
        super::binary_rows(&p, out);
    }

    fn staged_proba_batch(&self, x: &[f64], stages: &[usize], out: &mut [Vec<f64>]) {
        let k = self.tree_classes();
        if k > 0 {
            tree::staged_class_means(&self.trees, k, x, stages, out);
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

/// The two-class form: P(attack) per row.
impl Fitted {
    /// K of the class-vector trees (K > 2), 0 for a binary forest.
    fn tree_classes(&self) -> usize {
        self.trees.first().map_or(0, Tree::n_classes)
    }
    fn p1_row(&self, row: &[f64]) -> f64 {
        if self.trees.is_empty() {
            return 0.5;
        }
        self.trees.iter().map(|t| t.predict_row(row)).sum::<f64>() / self.trees.len() as f64
    }
    fn p1_staged_batch(&self, x: &[f64], stages: &[usize], out: &mut [Vec<f64>]) {
        tree::staged_sums(&self.trees, None, x, stages, 0.0, out, |j, sum| {
            sum / stages[j] as f64
        });
    }
    fn p1_batch(&self, x: &[f64], out: &mut [f64]) {
        let mut staged = [vec![0.0; out.len()]];
        self.p1_staged_batch(x, &[self.trees.len()], &mut staged);
        out.copy_from_slice(&staged[0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Params;
    use crate::models::testutil::{accuracy, ids, toy};

    #[test]
    fn same_result_on_any_thread_count() {
        let (x, y) = toy(300, 8, 4);
        let fit = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    RandomForest
                        .fit(&Params::new(), x.view(), &ids(&y), 2, 3)
                        .unwrap()
                })
        };
        assert_eq!(fit(1), fit(2));
    }

    #[test]
    fn one_tree_without_bootstrap_or_feature_sampling_is_the_decision_tree() {
        let (x, y) = toy(300, 6, 2);
        let mut p = Params::new();
        p.insert("n_estimators".into(), ParamValue::Int(1));
        p.insert("bootstrap".into(), ParamValue::Bool(false));
        p.insert("max_features".into(), ParamValue::Null);
        let FittedModel::RandomForest(rf) = RandomForest.fit(&p, x.view(), &ids(&y), 2, 5).unwrap()
        else {
            panic!()
        };
        let dt = crate::models::decision_tree::DecisionTree
            .fit(&Params::new(), x.view(), &ids(&y), 2, 5)
            .unwrap();
        let FittedModel::DecisionTree(dt) = dt else {
            panic!()
        };
        assert_eq!(rf.trees[0], dt.tree);
    }

    use crate::models::decision_tree::tests::k3;

    #[test]
    fn k_class_one_full_tree_is_the_decision_tree() {
        let (x, y) = k3::train();
        let mut p = Params::new();
        p.insert("n_estimators".into(), ParamValue::Int(3));
        p.insert("bootstrap".into(), ParamValue::Bool(false));
        p.insert("max_features".into(), ParamValue::Null);
        p.insert("max_depth".into(), ParamValue::Int(2));
        let rf = RandomForest.fit(&p, x.view(), &y, 3, 5).unwrap();
        let mut q = Params::new();
        q.insert("max_depth".into(), ParamValue::Int(2));
        let dt = crate::models::decision_tree::DecisionTree
            .fit(&q, x.view(), &y, 3, 5)
            .unwrap();
        let qx = k3::queries();
        let (a, b) = (
            rf.predict_proba(qx.view()).unwrap(),
            dt.predict_proba(qx.view()).unwrap(),
        );
        // three equal trees averaged: the tree's class fractions (up to rounding of the mean)
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn k_class_staged_equals_truncated_and_smaller_fits() {
        let (x, y) = k3::four_classes(300, 2);
        let mut big = Params::new();
        big.insert("n_estimators".into(), ParamValue::Int(12));
        let mut small = Params::new();
        small.insert("n_estimators".into(), ParamValue::Int(5));
        let m12 = RandomForest.fit(&big, x.view(), &y, 4, 11).unwrap();
        let m5 = RandomForest.fit(&small, x.view(), &y, 4, 11).unwrap();
        assert_eq!(m12.truncated(5).unwrap(), m5);
        let staged = m12.staged_predict_proba(x.view(), &[1, 5, 12]).unwrap();
        for (k, probs) in [1, 5, 12].iter().zip(&staged) {
            assert_eq!(probs.dim(), (300, 4));
            let direct = m12.truncated(*k).unwrap().predict_proba(x.view()).unwrap();
            for (p, q) in probs.iter().zip(&direct) {
                assert!((p - q).abs() < 1e-12, "stage {k}");
            }
            for row in probs.rows() {
                assert!((row.sum() - 1.0).abs() < 1e-12);
            }
        }
        // the row path agrees with the batch path
        let mut row = [0.0; 4];
        m12.predict_proba_row(x.row(7).as_slice().unwrap(), &mut row)
            .unwrap();
        for (a, b) in row.iter().zip(staged[2].row(7)) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn k_class_forest_roundtrips_through_json() {
        let (x, y) = k3::train();
        let mut p = Params::new();
        p.insert("n_estimators".into(), ParamValue::Int(4));
        let m = RandomForest.fit(&p, x.view(), &y, 3, 1).unwrap();
        let back: FittedModel = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.n_classes(), 3);
        // a forest mixing a 3-class tree with a binary one is refused
        let mixed = r#"{"algorithm":"random_forest","n_features":1,"trees":[
            {"n_features":1,"nodes":[[4294967295,0,0.0]],"n_classes":3,"leaf_values":[1,0,0]},
            {"n_features":1,"nodes":[[4294967295,0,0.5]]}]}"#;
        assert!(serde_json::from_str::<FittedModel>(mixed).is_err());
    }

    #[test]
    fn learns_four_classes() {
        let (x, y) = k3::four_classes(800, 1);
        let m = RandomForest
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
        assert!(acc > 0.8, "{acc}");
    }

    #[test]
    fn beats_chance_on_held_out_rows() {
        let (x, y) = toy(600, 8, 9);
        let m = RandomForest
            .fit(
                &Params::new(),
                x.slice(ndarray::s![..400, ..]),
                &ids(&y[..400]),
                2,
                1,
            )
            .unwrap();
        let p = m.predict_proba(x.slice(ndarray::s![400.., ..])).unwrap();
        assert!(accuracy(&p, &y[400..]) > 0.8);
    }
}
