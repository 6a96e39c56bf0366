//! `decision_tree`: a CART classification tree (scikit-learn `DecisionTreeClassifier`
//! semantics) grown on binned features by the shared histogram splitter in `tree.rs`.
//!
//! Own implementation because linfa-trees 0.8.1 mis-enumerates split candidates on
//! low-cardinality features (see the project's algorithm notes). Features with at most 256
//! distinct values are split exactly; wider ones on 256 quantile bins.

use std::borrow::Cow;

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::models::class_weight;
use crate::models::params::{CLASS_WEIGHT, Reader};
use crate::models::tree::{self, ClassTarget, Criterion, GrowOptions, Tree};
use crate::models::{
    Algorithm, FittedModel, Labels, ModelError, ParamKind, ParamSpec, ParamValue, Predictor,
    SharedBins,
};

/// `criterion`: `gini` | `entropy` (`log_loss` is accepted as entropy, as in scikit-learn).
pub(crate) const CRITERION: ParamSpec = ParamSpec {
    name: "criterion",
    kind: ParamKind::Choice(&["gini", "entropy", "log_loss"]),
    default: ParamValue::Str(Cow::Borrowed("gini")),
    doc: "split quality: gini or entropy",
};

/// `max_depth`: null (unlimited) or an integer >= 1.
pub(crate) const MAX_DEPTH: ParamSpec = ParamSpec {
    name: "max_depth",
    kind: ParamKind::OneOf(&[
        ParamKind::Null,
        ParamKind::Int {
            min: 1,
            max: 10_000,
        },
    ]),
    default: ParamValue::Null,
    doc: "maximum tree depth; null = grow until leaves are pure",
};

/// `min_samples_leaf`: integer >= 1.
pub(crate) const MIN_SAMPLES_LEAF: ParamSpec = ParamSpec {
    name: "min_samples_leaf",
    kind: ParamKind::Int {
        min: 1,
        max: i64::MAX,
    },
    default: ParamValue::Int(1),
    doc: "minimum samples in each leaf",
};

/// `min_samples_split`: integer >= 2.
pub(crate) const MIN_SAMPLES_SPLIT: ParamSpec = ParamSpec {
    name: "min_samples_split",
    kind: ParamKind::Int {
        min: 2,
        max: i64::MAX,
    },
    default: ParamValue::Int(2),
    doc: "minimum samples in a node to split it",
};

/// Kinds accepted by `max_features`.
pub(crate) const MAX_FEATURES_KIND: ParamKind = ParamKind::OneOf(&[
    ParamKind::Null,
    ParamKind::Choice(&["sqrt", "log2"]),
    ParamKind::Float {
        above: 0.0,
        max: 1.0,
    },
    ParamKind::Int {
        min: 1,
        max: i64::MAX,
    },
]);

const SPECS: &[ParamSpec] = &[
    CRITERION,
    MAX_DEPTH,
    MIN_SAMPLES_SPLIT,
    MIN_SAMPLES_LEAF,
    ParamSpec {
        name: "max_features",
        kind: MAX_FEATURES_KIND,
        default: ParamValue::Null,
        doc: "features tried per split: null (all), sqrt, log2, a fraction, or a count",
    },
    CLASS_WEIGHT,
];

/// Read the tree-growth parameters shared with `random_forest`.
pub(crate) fn grow_options(
    r: &Reader,
    n_features: usize,
) -> Result<(Criterion, GrowOptions), ModelError> {
    let criterion_name = r.str("criterion")?;
    let criterion =
        Criterion::parse(criterion_name).ok_or_else(|| crate::models::ParamError::Invalid {
            algorithm: r.algorithm,
            key: "criterion".into(),
            expected: CRITERION.kind.to_string(),
            got: ParamValue::str(criterion_name),
        })?;
    let mf = r.value("max_features")?;
    let max_features = tree::max_features_count(mf, n_features).ok_or_else(|| {
        crate::models::ParamError::Invalid {
            algorithm: r.algorithm,
            key: "max_features".into(),
            expected: MAX_FEATURES_KIND.to_string(),
            got: mf.clone(),
        }
    })?;
    Ok((
        criterion,
        GrowOptions {
            max_depth: r.opt_usize("max_depth")?.unwrap_or(usize::MAX),
            min_samples_split: r.usize("min_samples_split")?,
            min_samples_leaf: r.usize("min_samples_leaf")?,
            max_features,
        },
    ))
}

/// Refuse more classes than the tree statistics hold ([`tree::MAX_CLASSES`]).
pub(crate) fn check_class_count(
    algorithm: &'static str,
    n_classes: usize,
) -> Result<(), ModelError> {
    if n_classes > tree::MAX_CLASSES {
        return Err(ModelError::TooLarge {
            algorithm,
            message: format!(
                "{n_classes} classes is more than the {} a tree learns; group rare classes",
                tree::MAX_CLASSES
            ),
        });
    }
    Ok(())
}

/// The `decision_tree` algorithm.
pub struct DecisionTree;

/// A fitted decision tree. Binary: leaves hold P(attack) (training class share in the leaf).
/// K > 2: leaves hold the K training class fractions (`DecisionTreeClassifier.predict_proba`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fitted {
    /// The tree.
    pub tree: Tree,
}

impl Algorithm for DecisionTree {
    fn name(&self) -> &'static str {
        "decision_tree"
    }

    fn params(&self) -> &'static [ParamSpec] {
        SPECS
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
        let (criterion, opts) = grow_options(r, x.ncols())?;
        let data = bins.of(x);
        let mut samples: Vec<u32> = (0..x.nrows() as u32).collect();
        let mut rng = crate::models::rng_for(seed, 0);
        // class weights become sample weights: they weight impurity and leaf fractions
        let weights =
            class_weight::resolve(r, labels)?.map(|w| class_weight::per_row(&w, labels.ids));
        let tree = if labels.is_binary() {
            let y = &labels.attack_bits()[..];
            let target = ClassTarget {
                y,
                weights: weights.as_deref(),
                criterion,
            };
            tree::grow(&data, &target, &mut samples, &opts, &mut rng)
        } else {
            tree::grow_classes(
                &data,
                labels.ids,
                weights.as_deref(),
                criterion,
                labels.n_classes,
                &mut samples,
                &opts,
                &mut rng,
                &mut Vec::new(),
            )
        };
        Ok(FittedModel::DecisionTree(Fitted { tree }))
    }
}

impl Predictor for Fitted {
    fn n_features(&self) -> usize {
        self.tree.n_features()
    }
    fn n_classes(&self) -> usize {
        self.tree.n_classes().max(2)
    }
    fn proba_row(&self, row: &[f64], out: &mut [f64]) {
        if self.tree.n_classes() > 0 {
            out.copy_from_slice(self.tree.class_row(row));
            return;
        }
        let p = self.p1_row(row);
        out[0] = 1.0 - p;
        out[1] = p;
    }
}

/// The two-class form: P(attack) per row.
impl Fitted {
    fn p1_row(&self, row: &[f64]) -> f64 {
        self.tree.predict_row(row)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::models::Params;
    use crate::models::binning::BinnedMatrix;
    use crate::models::testutil::{accuracy, ids, toy};

    #[test]
    fn fits_training_data_when_unlimited() {
        let (x, y) = toy(400, 6, 2);
        let m = DecisionTree
            .fit(&Params::new(), x.view(), &ids(&y), 2, 0)
            .unwrap();
        let p = m.predict_proba(x.view()).unwrap();
        // duplicate rows with different labels limit training accuracy; still high
        assert!(accuracy(&p, &y) > 0.9);
    }

    /// Three-class rows shared by the K-class tests of the tree models.
    pub(crate) mod k3 {
        use ndarray::Array2;

        /// 30 rows, 3 integer features, classes 0..3 — produced by (scikit-learn 1.9.1,
        /// numpy `RandomState(3)`): x0 in 0..10, x1 in 0..7, x2 in 0..5, class =
        /// [x0 > 4] + [x1 > 3], a quarter of the labels redrawn at random. No duplicate rows.
        pub fn train() -> (Array2<f64>, Vec<u32>) {
            let x: [[u8; 3]; 30] = [
                [8, 3, 4],
                [9, 0, 3],
                [3, 5, 3],
                [8, 4, 0],
                [8, 6, 0],
                [0, 1, 0],
                [5, 5, 0],
                [3, 6, 2],
                [9, 4, 2],
                [9, 4, 3],
                [5, 6, 0],
                [7, 0, 0],
                [6, 0, 1],
                [0, 1, 4],
                [4, 2, 1],
                [7, 4, 4],
                [8, 5, 2],
                [1, 0, 2],
                [6, 0, 4],
                [2, 5, 4],
                [2, 5, 2],
                [1, 6, 0],
                [3, 1, 4],
                [5, 1, 0],
                [8, 1, 3],
                [1, 5, 2],
                [8, 5, 0],
                [7, 2, 4],
                [8, 3, 3],
                [1, 4, 1],
            ];
            let y = vec![
                1, 1, 1, 2, 0, 0, 2, 1, 0, 2, 0, 1, 1, 0, 0, 2, 2, 0, 1, 1, 0, 0, 0, 1, 1, 1, 2, 1,
                1, 1,
            ];
            let x = Array2::from_shape_fn((30, 3), |(i, j)| f64::from(x[i][j]));
            (x, y)
        }

        /// Query rows for the scikit-learn comparisons (one between training values).
        pub fn queries() -> Array2<f64> {
            ndarray::array![
                [0.0, 0.0, 0.0],
                [9.0, 6.0, 4.0],
                [5.0, 2.0, 1.0],
                [3.0, 5.0, 2.0],
                [7.0, 4.0, 0.0],
                [4.5, 3.5, 2.5]
            ]
        }

        /// Four well separated classes (quadrants of x0, x1, plus two noise features) with
        /// 10 % of the labels redrawn: a model answering only two classes is right on about
        /// half the rows at most.
        pub fn four_classes(n: usize, seed: u64) -> (Array2<f64>, Vec<u32>) {
            use rand::Rng;
            let mut rng = crate::models::rng_for(seed, 4);
            let x = Array2::from_shape_fn((n, 4), |_| rng.gen_range(-1.0..1.0));
            let y = x
                .rows()
                .into_iter()
                .map(|r| {
                    if rng.gen_bool(0.1) {
                        rng.gen_range(0..4)
                    } else {
                        2 * u32::from(r[0] > 0.0) + u32::from(r[1] > 0.0)
                    }
                })
                .collect();
            (x, y)
        }

        /// Share of rows whose most probable class (ties to the lowest id) is `y`.
        pub fn accuracy(p: &Array2<f64>, y: &[u32]) -> f64 {
            let hits = p
                .rows()
                .into_iter()
                .zip(y)
                .filter(|(r, y)| {
                    let best = (0..r.len()).fold(0, |b, c| if r[c] > r[b] { c } else { b });
                    best == **y as usize
                })
                .count();
            hits as f64 / y.len() as f64
        }
    }

    fn assert_close(got: &ndarray::Array2<f64>, want: &[[f64; 3]]) {
        assert_eq!(got.dim(), (want.len(), 3));
        for (g, w) in got.rows().into_iter().zip(want) {
            for (a, b) in g.iter().zip(w) {
                assert!((a - b).abs() < 1e-12, "{g} != {w:?}");
            }
        }
    }

    #[test]
    fn k_class_depth_two_matches_scikit_learn() {
        // DecisionTreeClassifier(max_depth=2, criterion=c).fit(X, y).predict_proba(Q) in
        // scikit-learn 1.9.1, identical for random_state 0..30 (no tied splits) and for both
        // criteria.
        let want = [
            [1.0, 0.0, 0.0],
            [1.0 / 3.0, 0.0, 2.0 / 3.0],
            [0.0, 1.0, 0.0],
            [2.0 / 7.0, 5.0 / 7.0, 0.0],
            [1.0 / 3.0, 0.0, 2.0 / 3.0],
            [2.0 / 7.0, 5.0 / 7.0, 0.0],
        ];
        let (x, y) = k3::train();
        for criterion in ["gini", "entropy"] {
            let mut p = Params::new();
            p.insert("max_depth".into(), ParamValue::Int(2));
            p.insert("criterion".into(), ParamValue::str(criterion));
            let m = DecisionTree.fit(&p, x.view(), &y, 3, 0).unwrap();
            assert_eq!(m.n_classes(), 3);
            assert_close(&m.predict_proba(k3::queries().view()).unwrap(), &want);
        }
    }

    #[test]
    fn k_class_leaves_hold_weighted_fractions_as_scikit_learn() {
        // DecisionTreeClassifier(max_depth=2).fit(X, y, sample_weight=i % 3 + 1)
        // .predict_proba(Q), scikit-learn 1.9.1 (same for random_state 0..30).
        let want = [
            [1.0, 0.0, 0.0],
            [0.4375, 0.0, 0.5625],
            [0.0, 1.0, 0.0],
            [0.25, 0.75, 0.0],
            [0.4375, 0.0, 0.5625],
            [0.25, 0.75, 0.0],
        ];
        let (x, y) = k3::train();
        let w: Vec<f64> = (0..30).map(|i| (i % 3 + 1) as f64).collect();
        let opts = GrowOptions {
            max_depth: 2,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: 3,
        };
        let mut samples: Vec<u32> = (0..30).collect();
        let t = tree::grow_classes(
            &BinnedMatrix::new(x.view()),
            &y,
            Some(&w),
            Criterion::Gini,
            3,
            &mut samples,
            &opts,
            &mut crate::models::rng_for(0, 0),
            &mut Vec::new(),
        );
        let m = FittedModel::DecisionTree(Fitted { tree: t });
        assert_close(&m.predict_proba(k3::queries().view()).unwrap(), &want);
    }

    #[test]
    fn fully_grown_k_class_tree_separates_distinct_training_rows() {
        let (x, y) = k3::train();
        let m = DecisionTree
            .fit(&Params::new(), x.view(), &y, 3, 0)
            .unwrap();
        let p = m.predict_proba(x.view()).unwrap();
        for (row, &c) in p.rows().into_iter().zip(&y) {
            for (k, v) in row.iter().enumerate() {
                assert_eq!(*v, f64::from(k as u32 == c));
            }
        }
    }

    #[test]
    fn k_class_tree_roundtrips_and_binary_form_is_unchanged() {
        let (x, y) = k3::train();
        let m = DecisionTree
            .fit(&Params::new(), x.view(), &y, 3, 0)
            .unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"n_classes\":3"), "{json:.200}");
        let back: FittedModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let q = k3::queries();
        assert_eq!(
            back.predict_proba(q.view()).unwrap(),
            m.predict_proba(q.view()).unwrap()
        );

        let (xb, yb) = toy(100, 4, 1);
        let b = DecisionTree
            .fit(&Params::new(), xb.view(), &ids(&yb), 2, 0)
            .unwrap();
        let json = serde_json::to_string(&b).unwrap();
        assert!(!json.contains("n_classes") && !json.contains("leaf_values"));
    }

    #[test]
    fn inconsistent_k_class_trees_are_rejected() {
        let leaf = "[4294967295,0,0.0]";
        let split = "[0,1,0.5]";
        let bad = [
            // two leaves, one vector
            format!(
                r#"{{"n_features":1,"nodes":[{split},{leaf},{leaf}],"n_classes":3,"leaf_values":[1,0,0]}}"#
            ),
            // leaf index out of range
            r#"{"n_features":1,"nodes":[[4294967295,1,0.0]],"n_classes":3,"leaf_values":[1,0,0]}"#
                .to_string(),
            // vectors without n_classes
            format!(r#"{{"n_features":1,"nodes":[{leaf}],"leaf_values":[1,0,0]}}"#),
            // a fraction above 1
            format!(r#"{{"n_features":1,"nodes":[{leaf}],"n_classes":3,"leaf_values":[2,0,0]}}"#),
        ];
        for json in bad {
            assert!(serde_json::from_str::<Tree>(&json).is_err(), "{json}");
        }
        let good = format!(
            r#"{{"n_features":1,"nodes":[{split},{leaf},[4294967295,1,2.0]],"n_classes":3,"leaf_values":[1,0,0,0,0.5,0.5]}}"#
        );
        let t: Tree = serde_json::from_str(&good).unwrap();
        assert_eq!(t.class_row(&[1.0]), &[0.0, 0.5, 0.5]);
    }

    #[test]
    fn learns_four_classes() {
        let (x, y) = k3::four_classes(800, 1);
        let mut p = Params::new();
        p.insert("min_samples_leaf".into(), ParamValue::Int(5));
        let m = DecisionTree
            .fit(&p, x.slice(ndarray::s![..600, ..]), &y[..600], 4, 0)
            .unwrap();
        let proba = m.predict_proba(x.slice(ndarray::s![600.., ..])).unwrap();
        let acc = k3::accuracy(&proba, &y[600..]);
        assert!(acc > 0.8, "{acc}");
    }

    #[test]
    fn max_depth_limits_depth() {
        let (x, y) = toy(400, 6, 2);
        let mut p = Params::new();
        p.insert("max_depth".into(), ParamValue::Int(2));
        p.insert("criterion".into(), ParamValue::str("entropy"));
        let FittedModel::DecisionTree(m) = DecisionTree.fit(&p, x.view(), &ids(&y), 2, 0).unwrap()
        else {
            panic!()
        };
        assert!(m.tree.depth() <= 2);
    }
}
