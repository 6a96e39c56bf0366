//! `decision_tree`: a CART classification tree (scikit-learn `DecisionTreeClassifier`
//! semantics) grown on binned features by the shared histogram splitter in `tree.rs`.
//!
//! Own implementation because linfa-trees 0.8.1 mis-enumerates split candidates on
//! low-cardinality features (see the project's algorithm notes). Features with at most 256
//! distinct values are split exactly; wider ones on 256 quantile bins.

use std::borrow::Cow;

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::models::binning::BinnedMatrix;
use crate::models::params::Reader;
use crate::models::tree::{self, ClassTarget, Criterion, GrowOptions, Tree};
use crate::models::{
    Algorithm, FittedModel, Labels, ModelError, ParamKind, ParamSpec, ParamValue, Predictor,
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
        seed: u64,
    ) -> Result<FittedModel, ModelError> {
        check_class_count(self.name(), labels.n_classes)?;
        let (criterion, opts) = grow_options(r, x.ncols())?;
        let data = BinnedMatrix::new(x);
        let mut samples: Vec<u32> = (0..x.nrows() as u32).collect();
        let mut rng = crate::models::rng_for(seed, 0);
        let tree = if labels.is_binary() {
            let y = &labels.attack_bits()[..];
            let target = ClassTarget {
                y,
                weights: None,
                criterion,
            };
            tree::grow(&data, &target, &mut samples, &opts, &mut rng)
        } else {
            tree::grow_classes(
                &data,
                labels.ids,
                None,
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
mod tests {
    use super::*;
    use crate::models::Params;
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
