//! Classifiers for network-security data, behind one trait.
//!
//! Labels are class ids `0..K` ([`crate::shared::Classes`] names them); a model answers K
//! class probabilities per row. A binary label is K = 2 with the **attack class as id 1**, so
//! a binary model's P(class 1) is P(attack) and its attack decision is P(attack) >= 0.5.
//!
//! * [`Algorithm`]: a named learner with declared hyperparameters ([`ParamSpec`]) and `fit`.
//! * [`algorithms`] / [`algorithm`]: the registry. Adding an algorithm = one new file here, one
//!   line in [`ALGORITHMS`], and one variant of [`FittedModel`] for its fitted form.
//! * [`FittedModel`]: serde-serializable (JSON model files), `predict_proba`, and
//!   [`FittedModel::truncated`] for staged ensembles.
//! * [`metrics`]: accuracy, precision/recall/F1, ROC AUC, average precision, log loss, MCC.
//!
//! Algorithms know nothing about files, tracking or storage: they take a dense `f64` matrix.
//!
//! # Staged ensembles
//! For `random_forest`, `adaboost` and `gradient_boosting` ([`Algorithm::staged_param`] returns
//! `Some("n_estimators")`), the first `k` trees / rounds of a fit with `n_estimators = N >= k`
//! are exactly the model a fit with `n_estimators = k` (same other params, same seed) returns:
//! trees are seeded by their index and boosting rounds only depend on earlier rounds. The sweep
//! engine therefore groups grid points that differ only in `n_estimators`, fits the largest, and
//! scores every size at once with [`FittedModel::staged_predict_proba`] (or materializes one
//! size with [`FittedModel::truncated`]). `sweep::executor` is the caller that
//! uses the pattern.
//!
//! # Threads
//! Fits run on the rayon pool they are called in. `random_forest` fits its trees in parallel;
//! the histogram learners (`decision_tree`, `random_forest`, `gradient_boosting`, `adaboost`'s
//! stumps) also bin features in parallel and fill each large node's histogram in row chunks,
//! so one fit uses every core when a sweep has fewer trials than cores; the others are
//! single-threaded, so a sweep runs independent fits in parallel. Batch predictions run in
//! row blocks on the pool. Results never depend on the thread count: a node's chunks depend
//! on its row count alone and are added up in order, and the model file of a fit on one
//! thread equals that on two, byte for byte (tested).

pub mod adaboost;
pub(crate) mod binning;
pub mod class_weight;
pub mod decision_tree;
pub mod early_stopping;
pub mod gradient_boosting;
pub mod logistic_regression;
pub mod metrics;
pub mod operating_point;
pub mod params;
pub mod random_forest;
pub(crate) mod smo;
pub mod svm;
pub(crate) mod tree;

use std::sync::{Arc, OnceLock};

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use binning::BinnedMatrix;
use thiserror::Error;

pub use params::{ParamError, ParamKind, ParamSpec, ParamValue, Params, Reader};

/// Every registered algorithm, in listing order. One line per algorithm.
pub static ALGORITHMS: &[&dyn Algorithm] = &[
    &decision_tree::DecisionTree,
    &random_forest::RandomForest,
    &gradient_boosting::GradientBoosting,
    &adaboost::AdaBoost,
    &logistic_regression::LogisticRegression,
    &svm::Svm,
];

/// All registered algorithms.
pub fn algorithms() -> &'static [&'static dyn Algorithm] {
    ALGORITHMS
}

/// The algorithm registered under `name` (e.g. `"random_forest"`).
pub fn algorithm(name: &str) -> Option<&'static dyn Algorithm> {
    ALGORITHMS.iter().copied().find(|a| a.name() == name)
}

/// A learner: a name, declared hyperparameters, and `fit`.
pub trait Algorithm: Sync {
    /// Registry name, snake_case (`"decision_tree"`).
    fn name(&self) -> &'static str;

    /// Its hyperparameters, with defaults and docs.
    fn params(&self) -> &'static [ParamSpec];

    /// The parameter that [`FittedModel::truncated`] can lower after one fit
    /// (`Some("n_estimators")` for the staged ensembles), if any.
    fn staged_param(&self) -> Option<&'static str> {
        None
    }

    /// Check `params` and return the complete set with defaults filled in.
    /// Errors name the offending key (unknown name, wrong type, out of range).
    fn validate(&self, params: &Params) -> Result<Params, ParamError> {
        params::resolve(self.name(), self.params(), params)
    }

    /// Fit on `x` (rows = samples) and class ids `y` (each below `n_classes`; for a binary
    /// label 1 = attack). `seed` drives every random choice, so equal inputs give equal
    /// models whatever the thread count. Checks the parameters and the training data, then
    /// calls [`Algorithm::fit_checked`].
    fn fit(
        &self,
        params: &Params,
        x: ArrayView2<f64>,
        y: &[u32],
        n_classes: usize,
        seed: u64,
    ) -> Result<FittedModel, ModelError> {
        self.fit_labels(params, x, y, n_classes, None, &SharedBins::new(), seed)
    }

    /// [`Algorithm::fit`] with the class names (id order), which an explicit `class_weight`
    /// map is resolved against; K is `class_names.len()`.
    fn fit_named(
        &self,
        params: &Params,
        x: ArrayView2<f64>,
        y: &[u32],
        class_names: &[String],
        seed: u64,
    ) -> Result<FittedModel, ModelError> {
        let names = Some(class_names);
        self.fit_labels(
            params,
            x,
            y,
            class_names.len(),
            names,
            &SharedBins::new(),
            seed,
        )
    }

    /// [`Algorithm::fit_named`] with the histogram learners' bins of `x` taken from `bins`,
    /// which every fit on the same `x` shares: the first such fit builds them, the others skip
    /// binning. The model equals that of [`Algorithm::fit_named`]; learners without bins ignore
    /// `bins`.
    fn fit_shared(
        &self,
        params: &Params,
        x: ArrayView2<f64>,
        y: &[u32],
        class_names: &[String],
        bins: &SharedBins,
        seed: u64,
    ) -> Result<FittedModel, ModelError> {
        let names = Some(class_names);
        self.fit_labels(params, x, y, class_names.len(), names, bins, seed)
    }

    /// The shared body of [`Algorithm::fit`], [`Algorithm::fit_named`] and
    /// [`Algorithm::fit_shared`].
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    fn fit_labels(
        &self,
        params: &Params,
        x: ArrayView2<f64>,
        y: &[u32],
        n_classes: usize,
        names: Option<&[String]>,
        bins: &SharedBins,
        seed: u64,
    ) -> Result<FittedModel, ModelError> {
        let params = self.validate(params)?;
        check_training_data(x, y, n_classes)?;
        let reader = Reader {
            algorithm: self.name(),
            params: &params,
        };
        let labels = Labels {
            ids: y,
            n_classes,
            names,
        };
        if handles_missing(self.name()) || !x.iter().any(|v| v.is_nan()) {
            return self.fit_checked(&reader, x, &labels, bins, seed);
        }
        // Missing values for a learner without a missing bin: each feature's median over
        // these training rows fills them, here and at every prediction.
        let fill = column_medians(x);
        let mut filled = x.to_owned();
        fill_missing(&mut filled, &fill);
        // (the shared bins are of the unfilled rows)
        let model = self.fit_checked(&reader, filled.view(), &labels, &SharedBins::new(), seed)?;
        Ok(FittedModel::Imputed(Box::new(Imputed { fill, model })))
    }

    /// The algorithm's own fit, on parameters resolved against [`Algorithm::params`] (read
    /// through `params`) and training data already checked by [`Algorithm::fit`]. Histogram
    /// learners take the bins of `x` from `bins` ([`SharedBins::of`]).
    fn fit_checked(
        &self,
        params: &Reader<'_>,
        x: ArrayView2<f64>,
        y: &Labels<'_>,
        bins: &SharedBins,
        seed: u64,
    ) -> Result<FittedModel, ModelError>;
}

/// The bins of one training matrix, built by the first histogram learner fitted on it and
/// shared (`Arc`) by every later fit on the same matrix (see [`Algorithm::fit_shared`]): a
/// sweep keeps one per fold and one for the whole training part. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct SharedBins(Arc<OnceLock<BinnedMatrix>>);

impl SharedBins {
    /// Bins not built yet.
    pub fn new() -> SharedBins {
        SharedBins::default()
    }

    /// Whether a fit has built them.
    pub fn is_built(&self) -> bool {
        self.0.get().is_some()
    }

    /// The bins of `x`, built now if no fit has yet. `x` must be the matrix every fit sharing
    /// these bins is given; a matrix of another shape gets bins of its own.
    pub(crate) fn of(&self, x: ArrayView2<f64>) -> std::borrow::Cow<'_, BinnedMatrix> {
        let bins = self.0.get_or_init(|| BinnedMatrix::new(x));
        if (bins.n_rows, bins.n_features) == x.dim() {
            std::borrow::Cow::Borrowed(bins)
        } else {
            std::borrow::Cow::Owned(BinnedMatrix::new(x))
        }
    }
}

/// Whether `algorithm` learns from missing (NaN) features natively: the histogram trees keep
/// them in a bin of their own and learn a side per split. The others are fitted and asked on
/// features whose NaN values are filled with the training rows' medians ([`Imputed`]).
pub fn handles_missing(algorithm: &str) -> bool {
    matches!(
        algorithm,
        "decision_tree" | "random_forest" | "gradient_boosting"
    )
}

/// The median of each column's non-NaN values (0 for a column without any).
pub(crate) fn column_medians(x: ArrayView2<f64>) -> Vec<f64> {
    x.columns()
        .into_iter()
        .map(|column| {
            let mut values: Vec<f64> = column.iter().copied().filter(|v| !v.is_nan()).collect();
            if values.is_empty() {
                return 0.0;
            }
            values.sort_by(f64::total_cmp);
            let n = values.len();
            if n % 2 == 1 {
                values[n / 2]
            } else {
                values[n / 2 - 1] / 2.0 + values[n / 2] / 2.0
            }
        })
        .collect()
}

/// Replaces NaN in column `f` of `x` with `fill[f]`.
fn fill_missing(x: &mut Array2<f64>, fill: &[f64]) {
    for mut row in x.rows_mut() {
        for (v, &f) in row.iter_mut().zip(fill) {
            if v.is_nan() {
                *v = f;
            }
        }
    }
}

/// A model fitted on median-filled features, with the medians that fill a row's missing
/// values before it is asked. Serialized as `{"algorithm": "imputed", "fill": [...],
/// "model": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Imputed {
    /// Per feature, the value that replaces NaN (the training rows' median).
    pub fill: Vec<f64>,
    /// The model fitted on the filled rows.
    pub model: FittedModel,
}

/// Checked training labels: class ids below `n_classes`, at least two classes present.
#[derive(Clone, Copy, Debug)]
pub struct Labels<'a> {
    /// Class id of each row.
    pub ids: &'a [u32],
    /// K, the number of classes the model answers (a class may have no training row).
    pub n_classes: usize,
    /// Class names in id order, when the caller knows them (for `class_weight` maps).
    pub names: Option<&'a [String]>,
}

impl Labels<'_> {
    /// Whether this is a two-class problem.
    pub fn is_binary(&self) -> bool {
        self.n_classes == 2
    }

    /// The name of class `c`: its label value, or its id as text when names are unknown.
    pub fn name(&self, c: usize) -> String {
        match self.names.and_then(|n| n.get(c)) {
            Some(name) => name.clone(),
            None => c.to_string(),
        }
    }

    /// Class 1 as `true`, for learners written for two classes.
    pub fn attack_bits(&self) -> Vec<bool> {
        self.ids.iter().map(|&c| c == 1).collect()
    }
}

/// Why a fit or a prediction failed.
#[derive(Debug, Error)]
pub enum ModelError {
    /// Invalid hyperparameters.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// No rows or no feature columns.
    #[error("training data is empty ({rows} rows, {features} features)")]
    Empty {
        /// Rows given.
        rows: usize,
        /// Feature columns given.
        features: usize,
    },
    /// `x` and `y` disagree on the number of rows.
    #[error("x has {rows} rows but y has {labels} labels")]
    LengthMismatch {
        /// Rows of x.
        rows: usize,
        /// Length of y.
        labels: usize,
    },
    /// All labels are equal.
    #[error(
        "training labels contain only one class (class {class}); at least two classes are needed"
    )]
    SingleClass {
        /// The class present.
        class: u32,
    },
    /// A class id at or above the number of classes.
    #[error("label {label} of row {row} is not a class id below {n_classes}")]
    BadLabel {
        /// Row index.
        row: usize,
        /// The label.
        label: u32,
        /// Number of classes.
        n_classes: usize,
    },
    /// A NaN or infinite feature value (in training or prediction input).
    #[error("feature {feature} of row {row} is not a finite number")]
    NonFinite {
        /// Row index.
        row: usize,
        /// Column index.
        feature: usize,
    },
    /// Prediction input with the wrong number of columns.
    #[error("model expects {expected} features, got {got}")]
    FeatureCount {
        /// Features seen at fit time.
        expected: usize,
        /// Columns given.
        got: usize,
    },
    /// A stage list that is not ascending within `1..=n_stages`.
    #[error("stages {stages:?} must be ascending within 1..={n_stages}")]
    Stages {
        /// Stages asked for.
        stages: Vec<usize>,
        /// Stages in the model (0 for non-ensembles).
        n_stages: usize,
    },
    /// The problem is too large for this algorithm's resource cap.
    #[error("{algorithm}: {message}")]
    TooLarge {
        /// Algorithm name.
        algorithm: &'static str,
        /// What limit was hit and what to do.
        message: String,
    },
    /// Early stopping cannot set a validation part aside: a class has too few rows.
    #[error(
        "early stopping (n_iter_no_change) sets aside a validation part (validation_fraction) \
         with at least one row of every class and keeps one for boosting, so each class needs \
         {min} rows; class `{class}` has {rows} in the rows of this fit",
        min = early_stopping::MIN_CLASS_ROWS
    )]
    ValidationSplit {
        /// The class with too few rows.
        class: String,
        /// Its rows.
        rows: usize,
    },
    /// The underlying solver failed.
    #[error("{algorithm} failed to fit: {message}")]
    Solver {
        /// Algorithm name.
        algorithm: &'static str,
        /// The solver's error.
        message: String,
    },
}

impl ModelError {
    /// The process exit code: bad input for rows with the wrong number of features or too few
    /// rows of a class for early stopping, else a runtime failure (a fit that failed on data that passed validation).
    pub fn exit_code(&self) -> u8 {
        match self {
            ModelError::Param(_) => crate::exit::RUNTIME_FAILURE,
            ModelError::Empty { .. } => crate::exit::RUNTIME_FAILURE,
            ModelError::LengthMismatch { .. } => crate::exit::RUNTIME_FAILURE,
            ModelError::SingleClass { .. } => crate::exit::RUNTIME_FAILURE,
            ModelError::BadLabel { .. } => crate::exit::RUNTIME_FAILURE,
            ModelError::NonFinite { .. } => crate::exit::RUNTIME_FAILURE,
            ModelError::FeatureCount { .. } => crate::exit::BAD_INPUT,
            ModelError::Stages { .. } => crate::exit::RUNTIME_FAILURE,
            ModelError::TooLarge { .. } => crate::exit::RUNTIME_FAILURE,
            ModelError::ValidationSplit { .. } => crate::exit::BAD_INPUT,
            ModelError::Solver { .. } => crate::exit::RUNTIME_FAILURE,
        }
    }
}

/// Check the training inputs shared by every algorithm: non-empty, matching lengths, class
/// ids in range, two classes present, finite features.
pub(crate) fn check_training_data(
    x: ArrayView2<f64>,
    y: &[u32],
    n_classes: usize,
) -> Result<(), ModelError> {
    let (rows, features) = x.dim();
    if rows == 0 || features == 0 {
        return Err(ModelError::Empty { rows, features });
    }
    if y.len() != rows {
        return Err(ModelError::LengthMismatch {
            rows,
            labels: y.len(),
        });
    }
    if let Some((row, &label)) = y
        .iter()
        .enumerate()
        .find(|(_, c)| **c as usize >= n_classes)
    {
        return Err(ModelError::BadLabel {
            row,
            label,
            n_classes,
        });
    }
    if y.iter().all(|&v| v == y[0]) {
        return Err(ModelError::SingleClass { class: y[0] });
    }
    // NaN is a missing value (learned or filled); an infinity is a number no model can use.
    if let Some(((row, feature), _)) = x.indexed_iter().find(|(_, v)| v.is_infinite()) {
        return Err(ModelError::NonFinite { row, feature });
    }
    Ok(())
}

/// A fitted model of any registered algorithm. Serializes to JSON as
/// `{"algorithm": "<name>", ...fitted form...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum FittedModel {
    /// See [`decision_tree`].
    DecisionTree(decision_tree::Fitted),
    /// See [`random_forest`].
    RandomForest(random_forest::Fitted),
    /// See [`gradient_boosting`].
    GradientBoosting(gradient_boosting::Fitted),
    /// See [`adaboost`].
    Adaboost(adaboost::Fitted),
    /// See [`logistic_regression`].
    LogisticRegression(logistic_regression::Fitted),
    /// See [`svm`].
    Svm(svm::Fitted),
    /// A model of another variant fitted on median-filled missing values.
    Imputed(Box<Imputed>),
}

/// What every fitted form provides; [`FittedModel`] dispatches to it.
///
/// Probabilities are row-major, K per row (K = [`Predictor::n_classes`]).
pub(crate) trait Predictor: Sync {
    /// Features expected per row.
    fn n_features(&self) -> usize;
    /// K, the classes answered.
    fn n_classes(&self) -> usize {
        2
    }
    /// Class probabilities of one row with exactly `n_features` values into `out` (K values).
    fn proba_row(&self, row: &[f64], out: &mut [f64]);
    /// The first `n` trees / rounds, for staged ensembles.
    fn truncated(&self, _n: usize) -> Option<FittedModel> {
        None
    }
    /// Trees / rounds in the model, for staged ensembles.
    fn n_stages(&self) -> Option<usize> {
        None
    }
    /// Class probabilities of every row of `x` (row-major, `n_features` columns) into `out`
    /// (row-major, K columns).
    fn proba_batch(&self, x: &[f64], out: &mut [f64]) {
        let d = self.n_features().max(1);
        let k = self.n_classes();
        for (o, row) in out.chunks_exact_mut(k).zip(x.chunks_exact(d)) {
            self.proba_row(row, o);
        }
    }
    /// Class probabilities of every row of `x` under the first `stages[j]` trees / rounds
    /// into `out[j]` (row-major, K columns), in one pass over the ensemble. `stages` is
    /// ascending within `1..=n_stages` (checked by the caller); only staged ensembles are
    /// called.
    fn staged_proba_batch(&self, _x: &[f64], _stages: &[usize], _out: &mut [Vec<f64>]) {}
}

/// Writes `[1 − p, p]` per row: the two class probabilities of a binary model from its
/// P(attack) values.
pub(crate) fn binary_rows(p: &[f64], out: &mut [f64]) {
    for (o, &p) in out.chunks_exact_mut(2).zip(p) {
        o[0] = 1.0 - p;
        o[1] = p;
    }
}

/// Rows per block when a batch is answered on the rayon pool (a block's rows and answers
/// stay in cache while every tree is applied to them; fewer rows are answered in one go).
const PREDICT_CHUNK_ROWS: usize = 4096;

impl FittedModel {
    fn inner(&self) -> &dyn Predictor {
        match self {
            FittedModel::DecisionTree(m) => m,
            FittedModel::RandomForest(m) => m,
            FittedModel::GradientBoosting(m) => m,
            FittedModel::Adaboost(m) => m,
            FittedModel::LogisticRegression(m) => m,
            FittedModel::Svm(m) => m,
            FittedModel::Imputed(m) => m.model.inner(),
        }
    }

    /// The values that fill missing features before the model is asked, when it was fitted
    /// on filled rows.
    pub fn missing_fill(&self) -> Option<&[f64]> {
        match self {
            FittedModel::Imputed(m) => Some(&m.fill),
            _ => None,
        }
    }

    /// Whether rows may hold NaN (missing) features: the model learned where they go, or
    /// fills them.
    fn takes_missing(&self) -> bool {
        matches!(
            self,
            FittedModel::DecisionTree(_)
                | FittedModel::RandomForest(_)
                | FittedModel::GradientBoosting(_)
                | FittedModel::Imputed(_)
        )
    }

    /// `x` in standard layout with its NaN values filled when this model fills them.
    fn prepared<'a>(&self, x: ArrayView2<'a, f64>) -> std::borrow::Cow<'a, [f64]> {
        let fill = self.missing_fill();
        match (x.to_slice(), fill) {
            (Some(flat), None) => std::borrow::Cow::Borrowed(flat),
            (Some(flat), Some(_)) if !flat.iter().any(|v| v.is_nan()) => {
                std::borrow::Cow::Borrowed(flat)
            }
            _ => {
                let mut owned = x.as_standard_layout().into_owned();
                if let Some(fill) = fill {
                    fill_missing(&mut owned, fill);
                }
                std::borrow::Cow::Owned(owned.into_raw_vec_and_offset().0)
            }
        }
    }

    /// Number of features the model was fitted on.
    pub fn n_features(&self) -> usize {
        self.inner().n_features()
    }

    /// K, the number of classes the model answers.
    pub fn n_classes(&self) -> usize {
        self.inner().n_classes()
    }

    /// Class probabilities for each row of `x`: N rows, K columns.
    pub fn predict_proba(&self, x: ArrayView2<f64>) -> Result<Array2<f64>, ModelError> {
        self.check_input(x)?;
        let flat = self.prepared(x);
        let k = self.n_classes();
        let mut out = vec![0.0; x.nrows() * k];
        let d = self.n_features().max(1);
        let inner = self.inner();
        if x.nrows() <= PREDICT_CHUNK_ROWS {
            inner.proba_batch(&flat, &mut out);
        } else {
            // Rows are answered independently: blocks of them on the rayon pool.
            use rayon::prelude::*;
            flat.par_chunks(PREDICT_CHUNK_ROWS * d)
                .zip(out.par_chunks_mut(PREDICT_CHUNK_ROWS * k))
                .for_each(|(rows, out)| inner.proba_batch(rows, out));
        }
        Ok(Array2::from_shape_vec((x.nrows(), k), out).expect("N x K values"))
    }

    /// Class probabilities of one row into `out` (K values); the fast path for serving
    /// single requests.
    pub fn predict_proba_row(&self, row: &[f64], out: &mut [f64]) -> Result<(), ModelError> {
        self.check_width(row.len())?;
        let bad = |v: &f64| v.is_infinite() || (v.is_nan() && !self.takes_missing());
        if let Some(feature) = row.iter().position(bad) {
            return Err(ModelError::NonFinite { row: 0, feature });
        }
        match self.missing_fill() {
            Some(fill) if row.iter().any(|v| v.is_nan()) => {
                let filled: Vec<f64> = row
                    .iter()
                    .zip(fill)
                    .map(|(&v, &f)| if v.is_nan() { f } else { v })
                    .collect();
                self.inner().proba_row(&filled, out);
            }
            _ => self.inner().proba_row(row, out),
        }
        Ok(())
    }

    /// The model made of the first `n` trees / boosting rounds (`1 <= n <= n_stages`), equal
    /// to what a fit with `n_estimators = n` returns. `None` for non-ensemble models or an `n`
    /// out of range. AdaBoost may stop early (perfect stump); then `n` beyond its stage count
    /// is `None` too.
    pub fn truncated(&self, n: usize) -> Option<FittedModel> {
        match self {
            FittedModel::Imputed(m) => Some(FittedModel::Imputed(Box::new(Imputed {
                fill: m.fill.clone(),
                model: m.model.truncated(n)?,
            }))),
            _ => self.inner().truncated(n),
        }
    }

    /// Class probabilities per row of `x` for several ensemble sizes at once: `result[j]` is
    /// `x` under the first `stages[j]` trees / rounds, i.e. equal to
    /// `self.truncated(stages[j]).predict_proba(x)` but computed in one pass over the trees.
    /// `stages` must be ascending, each within `1..=n_stages()`; models without stages
    /// accept no stage list.
    pub fn staged_predict_proba(
        &self,
        x: ArrayView2<f64>,
        stages: &[usize],
    ) -> Result<Vec<Array2<f64>>, ModelError> {
        self.check_input(x)?;
        let n_stages = self.n_stages().unwrap_or(0);
        let ascending = stages.windows(2).all(|w| w[0] < w[1]);
        if !ascending
            || stages.first().is_some_and(|&s| s < 1)
            || stages.last().is_some_and(|&s| s > n_stages)
        {
            return Err(ModelError::Stages {
                stages: stages.to_vec(),
                n_stages,
            });
        }
        let flat = self.prepared(x);
        let k = self.n_classes();
        let d = self.n_features().max(1);
        let inner = self.inner();
        // Blocks of rows on the rayon pool, each answering every stage, then put together.
        use rayon::prelude::*;
        let blocks: Vec<Vec<Vec<f64>>> = flat
            .par_chunks(PREDICT_CHUNK_ROWS * d)
            .map(|rows| {
                let mut out = vec![vec![0.0; rows.len() / d * k]; stages.len()];
                inner.staged_proba_batch(rows, stages, &mut out);
                out
            })
            .collect();
        let mut result = vec![Vec::with_capacity(x.nrows() * k); stages.len()];
        for block in blocks {
            for (all, part) in result.iter_mut().zip(block) {
                all.extend(part);
            }
        }
        Ok(result
            .into_iter()
            .map(|v| Array2::from_shape_vec((x.nrows(), k), v).expect("N x K values"))
            .collect())
    }

    /// Number of trees / rounds for staged ensembles, `None` for other models.
    pub fn n_stages(&self) -> Option<usize> {
        self.inner().n_stages()
    }

    fn check_width(&self, got: usize) -> Result<(), ModelError> {
        let expected = self.n_features();
        if got == expected {
            Ok(())
        } else {
            Err(ModelError::FeatureCount { expected, got })
        }
    }

    /// Width, then values: an infinity is an error at prediction as at fit time, and so is
    /// NaN for a model that neither learned nor fills missing values (files written before
    /// missing values were handled).
    fn check_input(&self, x: ArrayView2<f64>) -> Result<(), ModelError> {
        self.check_width(x.ncols())?;
        let missing_ok = self.takes_missing();
        match x
            .indexed_iter()
            .find(|(_, v)| v.is_infinite() || (v.is_nan() && !missing_ok))
        {
            Some(((row, feature), _)) => Err(ModelError::NonFinite { row, feature }),
            None => Ok(()),
        }
    }
}

/// Deterministic per-stream RNG: the same `(seed, stream)` always gives the same sequence,
/// independent of thread scheduling.
pub(crate) fn rng_for(seed: u64, stream: u64) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Small synthetic data sets for unit tests.
    use ndarray::Array2;
    use rand::Rng;

    /// `n` rows, `d` features in {-1, 0, 1}; attack iff a noisy linear rule fires.
    pub fn toy(n: usize, d: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = super::rng_for(seed, 999);
        let x = Array2::from_shape_fn((n, d), |_| rng.gen_range(-1..=1) as f64);
        let y = x
            .rows()
            .into_iter()
            .map(|r| r[0] + 0.5 * r[1] - 0.3 * r[2 % d] + rng.gen_range(-0.5..0.5) > 0.2)
            .collect();
        (x, y)
    }

    /// Class ids of attack bits: 1 = attack.
    pub fn ids(y: &[bool]) -> Vec<u32> {
        y.iter().map(|&a| u32::from(a)).collect()
    }

    /// `n` rows, `d` features in {-1, 0, 1}; three classes by a noisy rule on two features.
    pub fn toy3(n: usize, d: usize, seed: u64) -> (Array2<f64>, Vec<u32>) {
        let mut rng = super::rng_for(seed, 998);
        let x = Array2::from_shape_fn((n, d), |_| rng.gen_range(-1..=1) as f64);
        let y = x
            .rows()
            .into_iter()
            .map(|r| {
                let score = r[0] + 0.5 * r[1 % d] + rng.gen_range(-0.4..0.4);
                if score < -0.5 {
                    0
                } else if score < 0.5 {
                    1
                } else {
                    2
                }
            })
            .collect();
        (x, y)
    }

    /// Share of rows whose P(class 1) >= 0.5 agrees with `y`.
    pub fn accuracy(p: &Array2<f64>, y: &[bool]) -> f64 {
        p.column(1)
            .iter()
            .zip(y)
            .filter(|(p, y)| (**p >= 0.5) == **y)
            .count() as f64
            / y.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::ids;
    use super::*;
    use ndarray::{Array2, array};

    #[test]
    fn registry_names_are_unique_and_found() {
        for a in algorithms() {
            assert_eq!(algorithm(a.name()).unwrap().name(), a.name());
            assert_eq!(
                algorithms().iter().filter(|b| b.name() == a.name()).count(),
                1
            );
            // defaults validate
            a.validate(&Params::new()).unwrap();
            for s in a.params() {
                assert!(!s.doc.is_empty(), "{}.{} has no doc", a.name(), s.name);
            }
        }
        assert!(algorithm("nope").is_none());
    }

    #[test]
    fn every_algorithm_rejects_bad_input_without_panicking() {
        let x = array![[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
        let y = [true, false, true];
        for a in algorithms() {
            let p = Params::new();
            let e = a.fit(&p, Array2::zeros((0, 2)).view(), &[], 2, 0);
            assert!(matches!(e, Err(ModelError::Empty { .. })), "{}", a.name());
            let e = a.fit(&p, x.view(), &[1, 0], 2, 0);
            assert!(matches!(e, Err(ModelError::LengthMismatch { .. })));
            let e = a.fit(&p, x.view(), &[1, 1, 1], 2, 0);
            assert!(matches!(e, Err(ModelError::SingleClass { class: 1 })));
            let mut xn = x.clone();
            xn[[1, 1]] = f64::INFINITY;
            let e = a.fit(&p, xn.view(), &ids(&y), 2, 0);
            assert!(matches!(
                e,
                Err(ModelError::NonFinite { row: 1, feature: 1 })
            ));
            let mut bad = Params::new();
            bad.insert("bogus".into(), ParamValue::Int(1));
            assert!(matches!(
                a.fit(&bad, x.view(), &ids(&y), 2, 0),
                Err(ModelError::Param(_))
            ));
            let m = a.fit(&p, x.view(), &ids(&y), 2, 0).unwrap();
            assert!(matches!(
                m.predict_proba(Array2::zeros((1, 3)).view()),
                Err(ModelError::FeatureCount {
                    expected: 2,
                    got: 3
                })
            ));
            let probs = m.predict_proba(x.view()).unwrap();
            assert!(
                probs.iter().all(|p| (0.0..=1.0).contains(p)),
                "{}",
                a.name()
            );
        }
    }

    /// 200 rows: feature 0 is `i` for normal rows 0..100 and `100 + i` for attack rows,
    /// except that every fifth attack row has it missing; feature 1 is noise.
    fn with_missing() -> (Array2<f64>, Vec<u32>) {
        let mut x = Array2::zeros((200, 2));
        let mut y = vec![0u32; 200];
        for i in 0..200 {
            let attack = i >= 100;
            y[i] = u32::from(attack);
            x[[i, 0]] = if attack && i % 5 == 0 {
                f64::NAN
            } else {
                i as f64
            };
            x[[i, 1]] = ((i * 37) % 11) as f64;
        }
        (x, y)
    }

    #[test]
    fn trees_learn_which_side_missing_values_go() {
        // Missing rows are attacks, like the high values: NaN's default side (right) is
        // right here. Flip the labels so that missing rows join the low values: only a
        // learned missing-left split classifies them.
        let (x, y) = with_missing();
        let flipped: Vec<u32> = (0..200)
            .map(|i| if x[[i, 0]].is_nan() { 1 } else { 1 - y[i] })
            .collect();
        let nan_row = array![[f64::NAN, 3.0]];
        for name in ["decision_tree", "random_forest", "gradient_boosting"] {
            let a = algorithm(name).unwrap();
            assert!(handles_missing(name));
            for (labels, nan_class) in [(&y, 1usize), (&flipped, 1)] {
                let m = a.fit(&Params::new(), x.view(), labels, 2, 3).unwrap();
                assert!(m.missing_fill().is_none(), "{name} keeps NaN native");
                let p = m.predict_proba(nan_row.view()).unwrap();
                assert!(p[[0, nan_class]] > 0.5, "{name}: P = {p}");
                let proba = m.predict_proba(x.view()).unwrap();
                let correct = (0..200)
                    .filter(|&i| (proba[[i, 1]] >= 0.5) == (labels[i] == 1))
                    .count();
                assert_eq!(correct, 200, "{name} separates every row");
                let mut row = [0.0; 2];
                m.predict_proba_row(&[f64::NAN, 3.0], &mut row).unwrap();
                assert_eq!(row.to_vec(), p.row(0).to_vec(), "{name}: row path");
            }
        }
        // The flag survives a JSON round trip.
        let m = algorithm("decision_tree")
            .unwrap()
            .fit(&Params::new(), x.view(), &flipped, 2, 3)
            .unwrap();
        let back: FittedModel = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(
            back.predict_proba(nan_row.view()).unwrap(),
            m.predict_proba(nan_row.view()).unwrap()
        );
    }

    #[test]
    fn other_learners_fill_missing_values_with_the_training_medians() {
        let (x, y) = with_missing();
        let mut median_row = x
            .column(0)
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .collect::<Vec<_>>();
        median_row.sort_by(f64::total_cmp);
        let median =
            (median_row[median_row.len() / 2 - 1] + median_row[median_row.len() / 2]) / 2.0;
        for name in ["adaboost", "logistic_regression", "svm"] {
            let a = algorithm(name).unwrap();
            assert!(!handles_missing(name));
            let m = a.fit(&Params::new(), x.view(), &y, 2, 3).unwrap();
            assert_eq!(
                m.missing_fill().unwrap(),
                &[median, column_medians(x.view())[1]]
            );
            let with_nan = m.predict_proba(array![[f64::NAN, 4.0]].view()).unwrap();
            let filled = m.predict_proba(array![[median, 4.0]].view()).unwrap();
            assert_eq!(with_nan, filled, "{name}");
            let json = serde_json::to_string(&m).unwrap();
            assert!(json.starts_with(r#"{"algorithm":"imputed""#), "{json:.60}");
            let back: FittedModel = serde_json::from_str(&json).unwrap();
            assert_eq!(
                back.predict_proba(x.view()).unwrap(),
                m.predict_proba(x.view()).unwrap()
            );
            // Without missing training values nothing is filled, and a NaN is refused.
            let complete = a
                .fit(
                    &Params::new(),
                    x.slice(ndarray::s![..100, ..]).view(),
                    &[0, 1].repeat(50),
                    2,
                    3,
                )
                .unwrap();
            assert!(complete.missing_fill().is_none());
            assert!(matches!(
                complete.predict_proba(array![[f64::NAN, 1.0]].view()),
                Err(ModelError::NonFinite { row: 0, feature: 0 })
            ));
        }
    }

    #[test]
    fn every_model_roundtrips_through_json() {
        let (x, y) = testutil::toy(200, 5, 3);
        for a in algorithms() {
            let m = a.fit(&Params::new(), x.view(), &ids(&y), 2, 7).unwrap();
            let json = serde_json::to_string(&m).unwrap();
            assert!(
                json.contains(&format!("\"algorithm\":\"{}\"", a.name())),
                "{json:.80}"
            );
            let back: FittedModel = serde_json::from_str(&json).unwrap();
            assert_eq!(
                m.predict_proba(x.view()).unwrap(),
                back.predict_proba(x.view()).unwrap(),
                "{}",
                a.name()
            );
        }
    }

    #[test]
    fn every_algorithm_learns_three_classes_and_roundtrips_through_json() {
        let (x, y) = testutil::toy3(300, 4, 5);
        for a in algorithms() {
            let m = a.fit(&Params::new(), x.view(), &y, 3, 7).unwrap();
            assert_eq!(m.n_classes(), 3, "{}", a.name());
            let p = m.predict_proba(x.view()).unwrap();
            for row in p.rows() {
                let sum: f64 = row.sum();
                assert!((sum - 1.0).abs() < 1e-6, "{} sums to {sum}", a.name());
            }
            let right = p
                .rows()
                .into_iter()
                .zip(&y)
                .filter(|(row, y)| crate::shared::classes::argmax(row.as_slice().unwrap()) == **y)
                .count();
            // The rule is noisy; 70 % right needs the three classes told apart.
            assert!(
                right * 10 > y.len() * 7,
                "{}: {right} of {}",
                a.name(),
                y.len()
            );
            let back: FittedModel =
                serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            assert_eq!(back.predict_proba(x.view()).unwrap(), p, "{}", a.name());
        }
    }

    #[test]
    fn inconsistent_model_files_are_rejected() {
        let bad = [
            // forest whose tree expects 2 features inside a 1-feature forest
            r#"{"algorithm":"random_forest","n_features":1,"trees":[{"n_features":2,"nodes":[[1,1,0.5],[4294967295,0,0.0],[4294967295,0,1.0]]}]}"#,
            r#"{"algorithm":"random_forest","n_features":1,"trees":[]}"#,
            r#"{"algorithm":"gradient_boosting","n_features":3,"init":0.0,"trees":[{"n_features":2,"nodes":[[4294967295,0,0.0]]}]}"#,
            r#"{"algorithm":"adaboost","n_features":2,"stumps":[{"n_features":2,"nodes":[[4294967295,0,1.0]]}],"alphas":[]}"#,
            r#"{"algorithm":"svm","n_features":2,"kernel":{"kernel":"rbf","gamma":1.0,"support_vectors":[1.0,2.0,3.0],"coef":[1.0]},"rho":0.0,"platt_a":1.0}"#,
            r#"{"algorithm":"svm","n_features":2,"kernel":{"kernel":"linear","w":[1.0]},"rho":0.0,"platt_a":1.0}"#,
            r#"{"algorithm":"decision_tree","tree":{"n_features":1,"nodes":[[3,1,0.5],[4294967295,0,0.0],[4294967295,0,1.0]]}}"#,
        ];
        for json in bad {
            assert!(serde_json::from_str::<FittedModel>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn staged_models_equal_smaller_fits() {
        let (x, y) = testutil::toy(300, 6, 5);
        for a in algorithms().iter().filter(|a| a.staged_param().is_some()) {
            let key = a.staged_param().unwrap().to_string();
            let mut big = Params::new();
            if a.name() == "gradient_boosting" {
                // subsampled rounds must stay reproducible too
                big.insert("subsample".into(), ParamValue::Float(0.7));
            }
            let mut small = big.clone();
            big.insert(key.clone(), ParamValue::Int(12));
            small.insert(key, ParamValue::Int(5));
            let m12 = a.fit(&big, x.view(), &ids(&y), 2, 11).unwrap();
            let m5 = a.fit(&small, x.view(), &ids(&y), 2, 11).unwrap();
            let t5 = m12.truncated(5).unwrap();
            assert_eq!(t5, m5, "{}", a.name());
            assert_eq!(t5.n_stages(), Some(5));
            assert!(m12.truncated(0).is_none());
            let staged = m12.staged_predict_proba(x.view(), &[1, 5, 12]).unwrap();
            for (k, probs) in [1, 5, 12].iter().zip(&staged) {
                let direct = m12.truncated(*k).unwrap().predict_proba(x.view()).unwrap();
                for (p, q) in probs.iter().zip(&direct) {
                    assert!((p - q).abs() < 1e-12, "{} stage {k}", a.name());
                }
            }
            assert!(m12.staged_predict_proba(x.view(), &[5, 1]).is_err());
            assert!(m12.staged_predict_proba(x.view(), &[13]).is_err());
            assert!(m12.truncated(13).is_none());
        }
    }

    /// The thread promise: a fit on a 1-thread pool and on a 2-thread pool writes the same
    /// model file, byte for byte. The rows are many enough (70,000 × 24) that gradient
    /// boosting and the trees fill their large histograms in row chunks on both threads,
    /// and the values continuous, so any change in the order bins are summed shows up.
    #[test]
    fn fits_are_bit_identical_on_one_and_two_threads() {
        let (n, d) = (70_000, 24);
        let mut rng = rng_for(5, 1);
        let x = Array2::from_shape_fn((n, d), |(i, j)| {
            use rand::Rng;
            if j == 3 && i % 7 == 0 {
                f64::NAN
            } else {
                rng.gen_range(-1.0..1.0) * (j + 1) as f64
            }
        });
        let score = |r: ndarray::ArrayView1<f64>| r[0] + 0.5 * r[1] - 0.2 * r[2] + 0.1 * r[5];
        let binary: Vec<u32> = x
            .rows()
            .into_iter()
            .map(|r| u32::from(score(r) > 0.0))
            .collect();
        let three: Vec<u32> = x
            .rows()
            .into_iter()
            .map(|r| (score(r) > -0.5) as u32 + (score(r) > 0.5) as u32)
            .collect();
        let pool = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
        };
        let (one, two) = (pool(1), pool(2));
        let mut gb = Params::new();
        gb.insert("n_estimators".into(), ParamValue::Int(8));
        gb.insert("subsample".into(), ParamValue::Float(0.8));
        let mut forest = Params::new();
        forest.insert("n_estimators".into(), ParamValue::Int(4));
        forest.insert("max_features".into(), ParamValue::Null);
        forest.insert("max_depth".into(), ParamValue::Int(6));
        let cases: [(&str, &Params, &[u32], usize); 5] = [
            ("gradient_boosting", &gb, &binary, 2),
            ("gradient_boosting", &gb, &three, 3),
            ("random_forest", &forest, &binary, 2),
            ("decision_tree", &Params::new(), &three, 3),
            ("adaboost", &Params::new(), &binary, 2),
        ];
        for (name, params, y, k) in cases {
            let a = algorithm(name).unwrap();
            let fit = |pool: &rayon::ThreadPool| {
                let m = pool.install(|| a.fit(params, x.view(), y, k, 9).unwrap());
                serde_json::to_string(&m).unwrap()
            };
            let (serial, parallel) = (fit(&one), fit(&two));
            assert!(serial.len() > 1000, "{name}: {serial:.200}");
            assert!(
                serial == parallel,
                "{name} with {k} classes differs on two threads"
            );
        }
    }

    #[test]
    fn shared_bins_are_built_once_and_give_the_same_models() {
        let (x, y) = testutil::toy(300, 5, 2);
        let names = ["normal".to_owned(), "attack".to_owned()];
        let bins = SharedBins::new();
        for a in algorithms() {
            let own = a
                .fit_named(&Params::new(), x.view(), &ids(&y), &names, 4)
                .unwrap();
            let shared = a
                .fit_shared(&Params::new(), x.view(), &ids(&y), &names, &bins, 4)
                .unwrap();
            assert_eq!(own, shared, "{}", a.name());
        }
        assert!(bins.is_built(), "the histogram learners built them");
        // bins of another matrix are not taken for this one
        let other = x.slice(ndarray::s![..200, ..]).to_owned();
        let m = algorithm("gradient_boosting").unwrap();
        let own = m
            .fit(&Params::new(), other.view(), &ids(&y[..200]), 2, 4)
            .unwrap();
        let shared = m
            .fit_shared(
                &Params::new(),
                other.view(),
                &ids(&y[..200]),
                &names,
                &bins,
                4,
            )
            .unwrap();
        assert_eq!(own, shared);
        let lr = SharedBins::new();
        algorithm("logistic_regression")
            .unwrap()
            .fit_shared(&Params::new(), x.view(), &ids(&y), &names, &lr, 4)
            .unwrap();
        assert!(!lr.is_built(), "a learner without bins builds none");
    }

    #[test]
    fn predict_proba_handles_non_contiguous_rows() {
        let (x, y) = testutil::toy(100, 4, 1);
        let m = algorithm("decision_tree")
            .unwrap()
            .fit(&Params::new(), x.view(), &ids(&y), 2, 0)
            .unwrap();
        let xt = x.t().to_owned();
        let p1 = m.predict_proba(x.view()).unwrap();
        let p2 = m.predict_proba(xt.t()).unwrap();
        assert_eq!(p1, p2);
        let mut row = [0.0; 2];
        m.predict_proba_row(x.row(3).as_slice().unwrap(), &mut row)
            .unwrap();
        assert_eq!(row[..], p1.row(3).to_vec()[..]);
    }
}
