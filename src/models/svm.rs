//! `svm`: C-support vector classification (scikit-learn `SVC` semantics) with an RBF (`rbf`,
//! alias `gaussian`) or linear kernel.
//!
//! * `solver = "smo"` (default): the crate's own libsvm-style SMO (`smo.rs`: WSS3 working set
//!   selection, LRU kernel-row cache of `cache_size` MB, no shrinking). Memory is the cache, not
//!   `n²`; about 8× faster than linfa-svm on the phishing data, same predictions.
//! * `solver = "linfa"`: linfa-svm 0.8.1's SMO. It builds the dense `n × n` kernel matrix
//!   (8 bytes per entry): a fit whose matrix would exceed [`MAX_KERNEL_BYTES`] (1 GiB, about
//!   11,500 rows) is refused with [`ModelError::TooLarge`] instead of driving the machine into
//!   swap. linfa's shrinking is never enabled (it panics in 0.8.1). Kept as a cross-check.
//! * `gamma`: `"scale"` = `1 / (n_features · Var(X))` (scikit-learn's default), `"auto"` =
//!   `1 / n_features`, or a number. (linfa's Gaussian kernel is `exp(-‖x - x'‖² / eps)`, so
//!   it gets `eps = 1 / gamma`.)
//! * Solver tolerance `tol` (default 1e-3 like libsvm).
//! * **Probability, two classes**: one-parameter Platt scaling, `P(attack) = sigmoid(A · f(x))`
//!   with `f` the decision value and `A > 0` fitted by Newton's method on the training
//!   decision values (Platt's smoothed targets). Without an offset term, `P >= 0.5` exactly
//!   when `f >= 0`, so predicted labels are those of the SVM itself (as `SVC.predict`);
//!   scikit-learn's `probability=True` instead fits `A` and `B` by internal 5-fold CV, which
//!   costs 5 more fits.
//!
//! * **K > 2 classes: one-vs-one**, as libsvm / `SVC`: one binary machine per class pair
//!   `(i, j)`, `i < j`, in libsvm's order `(0,1), (0,2), …, (1,2), …`, each trained by the
//!   chosen solver on the rows of those two classes only (class `j` is the positive side, as
//!   the attack class is for a binary model), with the same `c`, `tol`, `cache_size` and one
//!   `gamma` computed on all training rows (scikit-learn's `"scale"` uses the whole `X`).
//! * **Pairwise probabilities, K > 2: libsvm's `probability=True`.** Each pair has
//!   `P(j | i or j) = sigmoid(platt_a · f(x) + platt_b)`, both parameters fitted on
//!   cross-validated decision values, as `svm_binary_svc_probability` does: the pair's rows
//!   are shuffled (a ChaCha stream of the fit's `seed` and the pair index), cut into 5 folds,
//!   a machine with the same settings is fitted on each fold's other rows and scores the fold
//!   (±1 when those rows hold one class only), and [`sigmoid_train`], a transcription of
//!   libsvm's, fits the two parameters. Training decision values are optimistic (the machine
//!   was fitted to those rows) and a slope without offset cannot move a pair's 50 % point:
//!   with them the multi-class parity sample scored 0.338 accuracy / 0.265 macro-F1, with
//!   these 0.350 / 0.328 (scikit-learn 0.365 / 0.367). In libsvm's terms (`f_libsvm = −f`,
//!   class `i` positive) `platt_a = −probA` and `platt_b = probB`; the values differ from
//!   scikit-learn's only through the shuffle (its generator is an mt19937): with its shuffle
//!   swapped in, they agree to 1e-3 and so do the parity figures (`KNOWN_GAPS` in
//!   `tests/it/multiclass_parity.rs` says how much the folds' luck moves them).
//!   **Fit time** grows about 5–6× (5 more fits on 80 % of each pair's rows; 0.7 s → 4.1 s
//!   per fit on the multi-class parity sample, 2,480 rows × 11 classes), as with
//!   scikit-learn's `probability=True`. A K-class model file written before `platt_b`
//!   existed loads with `platt_b = 0` and answers as it did.
//! * **`class_weight`** scales C per class, libsvm's `weight_label` / `weight` (scikit-learn's
//!   `SVC(class_weight=...)`): the binary machine has `C_normal = c · w_0`, `C_attack = c · w_1`;
//!   pair `(i, j)` has `c · w_i` and `c · w_j`, also in the fold fits of its Platt
//!   cross-validation. `balanced` is computed on all training rows of the fit (every class),
//!   as scikit-learn does before splitting into pairs.
//! * **Coupling.** The pairwise probabilities `r_ij`, clipped to `[1e-7, 1 − 1e-7]` as libsvm
//!   does, are coupled into K class probabilities by Wu, Lin & Weng's method 2 ([`couple`], a
//!   transcription of libsvm's `multiclass_probability`), not by a softmax of votes.
//! * **Memory** stays bounded per fit: the smo cache is `cache_size` for each machine (they are
//!   fitted one after the other), and the linfa solver's `n²` cap applies to each machine's
//!   rows.
//! * **Predicted class.** netsec predicts `argmax` of the coupled probabilities
//!   (`Classes::predict`), as libsvm's `svm_predict_probability` does; scikit-learn's
//!   `SVC.predict` instead takes the pairwise vote ([`Fitted::vote`]). The two can differ on
//!   rows near a boundary.
//!
//! The fitted form stores the support vectors and their signed dual coefficients (or, for the
//! linear kernel, the collapsed weight vector), not linfa's types. A binary model's file is as
//! it always was; a K-class model's file has `one_vs_one` instead of `kernel`, `rho` and
//! `platt_a`, with the support vectors stored once and shared by the pairs (as libsvm does).

use std::borrow::Cow;

use linfa::prelude::*;
use linfa_svm::Svm as LinfaSvm;
use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::models::class_weight;
use crate::models::params::{CLASS_WEIGHT, Reader};
use crate::models::smo;
use crate::models::{
    Algorithm, FittedModel, Labels, ModelError, ParamKind, ParamSpec, ParamValue, Predictor,
    SharedBins,
};

/// Largest dense kernel matrix a fit may allocate, in bytes.
pub const MAX_KERNEL_BYTES: u64 = 1 << 30;

/// Most training rows a sweep gives the SVM. The exact kernel solvers' time grows with the
/// square of the rows (and more), so a sweep over more rows than this is refused before any
/// training, naming the cap: subsample, or use a histogram learner.
pub const MAX_TRAIN_ROWS: usize = 50_000;

const POSITIVE: ParamKind = ParamKind::Float {
    above: 0.0,
    max: f64::INFINITY,
};

const SPECS: &[ParamSpec] = &[
    ParamSpec {
        name: "kernel",
        kind: ParamKind::Choice(&["rbf", "gaussian", "linear"]),
        default: ParamValue::Str(Cow::Borrowed("rbf")),
        doc: "kernel: rbf (= gaussian) or linear",
    },
    ParamSpec {
        name: "c",
        kind: POSITIVE,
        default: ParamValue::Float(1.0),
        doc: "penalty of margin violations (scikit-learn's C)",
    },
    ParamSpec {
        name: "gamma",
        kind: ParamKind::OneOf(&[ParamKind::Choice(&["scale", "auto"]), POSITIVE]),
        default: ParamValue::Str(Cow::Borrowed("scale")),
        doc: "RBF width: scale = 1/(n_features*Var(X)), auto = 1/n_features, or a number",
    },
    ParamSpec {
        name: "tol",
        kind: POSITIVE,
        default: ParamValue::Float(1e-3),
        doc: "SMO stopping tolerance",
    },
    ParamSpec {
        name: "solver",
        kind: ParamKind::Choice(&["smo", "linfa"]),
        default: ParamValue::Str(Cow::Borrowed("smo")),
        doc: "smo: own libsvm-style solver with a row cache; linfa: linfa-svm (dense n×n kernel)",
    },
    ParamSpec {
        name: "cache_size",
        kind: ParamKind::Float {
            above: 0.0,
            max: 1_048_576.0,
        },
        default: ParamValue::Float(200.0),
        doc: "kernel row cache of the smo solver, in MB (scikit-learn's cache_size)",
    },
    CLASS_WEIGHT,
];

/// The `svm` algorithm.
pub struct Svm;

/// The kernel part of a fitted SVM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kernel", rename_all = "snake_case")]
pub enum FittedKernel {
    /// `f(x) = sum_i coef[i] · exp(-gamma ‖sv_i - x‖²) - rho`.
    Rbf {
        /// Kernel width.
        gamma: f64,
        /// Support vectors, row-major, `n_features` values each.
        support_vectors: Vec<f64>,
        /// Signed dual coefficient per support vector.
        coef: Vec<f64>,
    },
    /// `f(x) = w · x - rho`.
    Linear {
        /// Weight per feature.
        w: Vec<f64>,
    },
}

/// A fitted SVM: one machine (binary) or one per class pair (K > 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SvmRepr", into = "SvmRepr")]
pub struct Fitted {
    /// Features per row.
    pub n_features: usize,
    /// The machines.
    pub form: Form,
}

/// The machines of a fitted SVM.
#[derive(Clone, Debug, PartialEq)]
pub enum Form {
    /// Two classes: P(attack) = sigmoid(platt_a · f(x)).
    Binary(Binary),
    /// K > 2 classes, one machine per pair.
    OneVsOne(OneVsOne),
}

/// A binary SVM: decision function plus the Platt slope.
#[derive(Clone, Debug, PartialEq)]
pub struct Binary {
    /// Kernel expansion.
    pub kernel: FittedKernel,
    /// Offset of the decision function.
    pub rho: f64,
    /// Platt slope `A` in `P(attack) = sigmoid(A · f(x))`.
    pub platt_a: f64,
}

/// One-vs-one machines over K classes with shared support vectors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OneVsOne {
    /// K.
    pub n_classes: usize,
    /// The kernel, with the support vectors of all pairs (RBF).
    pub kernel: OvoKernel,
    /// K(K−1)/2 machines, pairs `(i, j)` with `i < j` in libsvm's order; `f > 0` means `j`.
    pub machines: Vec<PairMachine>,
}

/// The kernel shared by the one-vs-one machines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kernel", rename_all = "snake_case")]
pub enum OvoKernel {
    /// `exp(-gamma ‖sv − x‖²)` against each stored support vector.
    Rbf {
        /// Kernel width.
        gamma: f64,
        /// Support vectors of every pair, row-major, each stored once.
        support_vectors: Vec<f64>,
    },
    /// `w · x`.
    Linear,
}

/// One pair's machine: `f(x) = Σ coef[s] K(sv[s], x) − rho` (RBF) or `coef · x − rho`
/// (linear), and `P(j | i or j) = sigmoid(platt_a · f(x) + platt_b)`: class `j` is the
/// positive side, `f > 0` means `j`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairMachine {
    /// RBF: indices of this pair's support vectors among the shared ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sv: Vec<u32>,
    /// RBF: signed dual coefficient per support vector; linear: weight per feature.
    pub coef: Vec<f64>,
    /// Offset.
    pub rho: f64,
    /// Platt slope (libsvm's `−probA`).
    pub platt_a: f64,
    /// Platt offset (libsvm's `probB`); 0 in files written before it was fitted, which then
    /// answer as they did.
    #[serde(default)]
    pub platt_b: f64,
}

impl Binary {
    /// Decision value `f(x)`; positive means attack.
    fn decision(&self, n_features: usize, row: &[f64]) -> f64 {
        let s = match &self.kernel {
            FittedKernel::Linear { w } => w.iter().zip(row).map(|(a, b)| a * b).sum::<f64>(),
            FittedKernel::Rbf {
                gamma,
                support_vectors,
                coef,
            } => support_vectors
                .chunks_exact(n_features.max(1))
                .zip(coef)
                .map(|(sv, c)| {
                    let d2: f64 = sv.iter().zip(row).map(|(a, b)| (a - b) * (a - b)).sum();
                    c * (-gamma * d2).exp()
                })
                .sum(),
        };
        s - self.rho
    }
}

impl OneVsOne {
    /// Decision value of every pair for `row` into `out` (K(K−1)/2 values).
    fn decisions(&self, n_features: usize, row: &[f64], out: &mut [f64]) {
        match &self.kernel {
            OvoKernel::Linear => {
                for (o, m) in out.iter_mut().zip(&self.machines) {
                    *o = m.coef.iter().zip(row).map(|(a, b)| a * b).sum::<f64>() - m.rho;
                }
            }
            OvoKernel::Rbf {
                gamma,
                support_vectors,
            } => {
                let kv: Vec<f64> = support_vectors
                    .chunks_exact(n_features.max(1))
                    .map(|sv| {
                        let d2: f64 = sv.iter().zip(row).map(|(a, b)| (a - b) * (a - b)).sum();
                        (-gamma * d2).exp()
                    })
                    .collect();
                for (o, m) in out.iter_mut().zip(&self.machines) {
                    *o =
                        m.sv.iter()
                            .zip(&m.coef)
                            .map(|(&s, c)| c * kv[s as usize])
                            .sum::<f64>()
                            - m.rho;
                }
            }
        }
    }
}

/// The class pairs `(i, j)`, `i < j`, in libsvm's order.
fn pairs(k: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..k).flat_map(move |i| (i + 1..k).map(move |j| (i, j)))
}

impl Fitted {
    /// K, the classes answered.
    pub fn n_classes(&self) -> usize {
        match &self.form {
            Form::Binary(_) => 2,
            Form::OneVsOne(o) => o.n_classes,
        }
    }

    /// The class `SVC.predict` answers: binary, class 1 iff `f(x) >= 0`; K > 2, the pairwise
    /// vote (a pair votes `j` when `f >= 0`, as libsvm's `svm_predict` with its opposite sign
    /// convention), ties to the lowest class id. netsec's own prediction is the argmax of the
    /// coupled probabilities instead (see the module doc).
    pub fn vote(&self, row: &[f64]) -> u32 {
        match &self.form {
            Form::Binary(b) => u32::from(b.decision(self.n_features, row) >= 0.0),
            Form::OneVsOne(o) => {
                let mut f = vec![0.0; o.machines.len()];
                o.decisions(self.n_features, row, &mut f);
                let mut votes = vec![0u32; o.n_classes];
                for ((i, j), v) in pairs(o.n_classes).zip(&f) {
                    votes[if *v >= 0.0 { j } else { i }] += 1;
                }
                crate::shared::classes::argmax(
                    &votes.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
                )
            }
        }
    }
}

/// A solved dual: signed coefficients `y_i α_i`, `ρ`, and the training decision values if
/// the solver gives them for free.
struct Dual(Vec<f64>, f64, Option<Vec<f64>>);

/// Solver settings shared by every machine of one fit.
struct Setup {
    linear: bool,
    c: f64,
    /// `class_weight` per class id: class `k`'s C is `c · w_k` (libsvm's `weight_label` /
    /// `weight`); `None` = all `c`.
    class_weights: Option<Vec<f64>>,
    tol: f64,
    gamma: f64,
    linfa: bool,
    cache_bytes: usize,
}

impl Setup {
    /// `[C, C]` of a machine whose negative side is class `neg` and positive side `pos`.
    fn c_of(&self, neg: usize, pos: usize) -> [f64; 2] {
        match &self.class_weights {
            None => [self.c; 2],
            Some(w) => [self.c * w[neg], self.c * w[pos]],
        }
    }
}

impl Algorithm for Svm {
    fn name(&self) -> &'static str {
        "svm"
    }

    fn params(&self) -> &'static [ParamSpec] {
        SPECS
    }

    fn fit_checked(
        &self,
        r: &Reader<'_>,
        x: ArrayView2<f64>,
        labels: &Labels<'_>,
        _bins: &SharedBins,
        seed: u64,
    ) -> Result<FittedModel, ModelError> {
        let d = x.ncols();
        let gamma = match r.value("gamma")? {
            ParamValue::Str(s) if s == "auto" => 1.0 / d as f64,
            ParamValue::Str(_) => {
                let var = x.var(0.0);
                if var > 0.0 {
                    1.0 / (d as f64 * var)
                } else {
                    1.0
                }
            }
            _ => r.f64("gamma")?,
        };
        let setup = Setup {
            linear: r.str("kernel")? == "linear",
            c: r.f64("c")?,
            class_weights: class_weight::resolve(r, labels)?,
            tol: r.f64("tol")?,
            gamma,
            linfa: r.str("solver")? == "linfa",
            cache_bytes: (r.f64("cache_size")? * 1_048_576.0) as usize,
        };
        let form = if labels.is_binary() {
            Form::Binary(self.fit_binary(x, &labels.attack_bits(), &setup)?)
        } else {
            Form::OneVsOne(self.fit_one_vs_one(x, labels, &setup, seed)?)
        };
        Ok(FittedModel::Svm(Fitted {
            n_features: d,
            form,
        }))
    }
}

impl Svm {
    /// Signed dual coefficients `y_i α_i`, `ρ`, and the training decision values when the
    /// solver gives them for free.
    /// `c` is `[C of the negative side, C of the positive side]`.
    fn solve(
        &self,
        x: ArrayView2<f64>,
        y: &[bool],
        s: &Setup,
        c: [f64; 2],
    ) -> Result<Dual, ModelError> {
        if s.linfa {
            let (alpha, rho) = self.fit_linfa(x, y, s.linear, c, s.gamma, s.tol)?;
            return Ok(Dual(alpha, rho, None));
        }
        let xs = x.as_standard_layout();
        let flat = xs.as_slice().unwrap_or_default();
        let kernel = if s.linear {
            smo::Kernel::Linear
        } else {
            smo::Kernel::Rbf { gamma: s.gamma }
        };
        let sol = smo::solve(flat, x.ncols(), y, c, kernel, s.tol, s.cache_bytes);
        // signed coefficients y_i α_i, as linfa reports them
        let alpha = sol
            .alpha
            .iter()
            .zip(y)
            .map(|(a, &v)| if v { *a } else { -a })
            .collect();
        Ok(Dual(alpha, sol.rho, Some(sol.train_decision)))
    }

    /// One two-class machine with its Platt slope (the binary model, unchanged).
    fn fit_binary(&self, x: ArrayView2<f64>, y: &[bool], s: &Setup) -> Result<Binary, ModelError> {
        let d = x.ncols();
        let Dual(alpha, rho, train_decision) = self.solve(x, y, s, s.c_of(0, 1))?;
        let kernel = if s.linear {
            let mut w = vec![0.0; d];
            for (row, a) in x.rows().into_iter().zip(&alpha).filter(|(_, a)| keep(a)) {
                w.iter_mut().zip(row).for_each(|(wj, xj)| *wj += a * xj);
            }
            FittedKernel::Linear { w }
        } else {
            let mut support_vectors = Vec::new();
            let mut coef = Vec::new();
            for (row, a) in x.rows().into_iter().zip(&alpha).filter(|(_, a)| keep(a)) {
                support_vectors.extend(row.iter().copied());
                coef.push(*a);
            }
            FittedKernel::Rbf {
                gamma: s.gamma,
                support_vectors,
                coef,
            }
        };
        let mut fitted = Binary {
            kernel,
            rho,
            platt_a: 1.0,
        };
        self.check_rho(rho)?;
        let f = train_decision.unwrap_or_else(|| {
            let mut row = vec![0.0; d];
            x.rows()
                .into_iter()
                .map(|r| {
                    row.iter_mut().zip(r).for_each(|(a, b)| *a = *b);
                    fitted.decision(d, &row)
                })
                .collect()
        });
        fitted.platt_a = platt_slope(&f, y);
        Ok(fitted)
    }

    fn check_rho(&self, rho: f64) -> Result<(), ModelError> {
        if rho.is_finite() {
            Ok(())
        } else {
            Err(ModelError::Solver {
                algorithm: self.name(),
                message: "solver returned a non-finite offset".into(),
            })
        }
    }

    /// K(K−1)/2 machines, each on the rows of its two classes (see the module doc).
    fn fit_one_vs_one(
        &self,
        x: ArrayView2<f64>,
        labels: &Labels<'_>,
        s: &Setup,
        seed: u64,
    ) -> Result<OneVsOne, ModelError> {
        let k = labels.n_classes;
        let d = x.ncols();
        let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); k];
        for (row, &c) in labels.ids.iter().enumerate() {
            rows_of[c as usize].push(row);
        }
        // shared support vectors: training row -> index among the stored ones
        let mut sv_index: Vec<u32> = vec![u32::MAX; x.nrows()];
        let mut support_vectors = Vec::new();
        let mut machines = Vec::with_capacity(k * (k - 1) / 2);
        for (pair, (i, j)) in pairs(k).enumerate() {
            let (ri, rj) = (&rows_of[i], &rows_of[j]);
            if ri.is_empty() || rj.is_empty() {
                machines.push(constant_machine(ri.is_empty(), rj.is_empty(), s.linear, d));
                continue;
            }
            // rows of class i, then class j, each in training order (libsvm groups by class)
            let rows: Vec<usize> = ri.iter().chain(rj).copied().collect();
            let sub = x.select(ndarray::Axis(0), &rows);
            let y: Vec<bool> = (0..rows.len()).map(|t| t >= ri.len()).collect();
            let c = s.c_of(i, j);
            let Dual(alpha, rho, _) = self.solve(sub.view(), &y, s, c)?;
            self.check_rho(rho)?;
            let mut m = PairMachine {
                sv: Vec::new(),
                coef: Vec::new(),
                rho,
                platt_a: 1.0,
                platt_b: 0.0,
            };
            if s.linear {
                m.coef = vec![0.0; d];
                for (row, a) in sub.rows().into_iter().zip(&alpha).filter(|(_, a)| keep(a)) {
                    m.coef
                        .iter_mut()
                        .zip(row)
                        .for_each(|(wj, xj)| *wj += a * xj);
                }
            } else {
                for (&row, a) in rows.iter().zip(&alpha).filter(|(_, a)| keep(a)) {
                    if sv_index[row] == u32::MAX {
                        sv_index[row] = (support_vectors.len() / d.max(1)) as u32;
                        support_vectors.extend(x.row(row).iter().copied());
                    }
                    m.sv.push(sv_index[row]);
                    m.coef.push(*a);
                }
            }
            let mut rng = crate::models::rng_for(seed, pair as u64);
            // the pair's per-class C also inside its Platt cross-validation, as libsvm's
            // svm_binary_svc_probability passes Cp and Cn to its fold fits
            let f = self.cross_validated_decisions(sub.view(), &y, s, c, &mut rng)?;
            // libsvm's (A, B) give P(j) = 1 / (1 + exp(A f + B)); netsec's sigmoid is the mirror
            let (a, b) = sigmoid_train(&f, &y);
            m.platt_a = -a;
            m.platt_b = -b;
            machines.push(m);
        }
        let kernel = if s.linear {
            OvoKernel::Linear
        } else {
            OvoKernel::Rbf {
                gamma: s.gamma,
                support_vectors,
            }
        };
        Ok(OneVsOne {
            n_classes: k,
            kernel,
            machines,
        })
    }
    /// libsvm's `svm_binary_svc_probability` decision values: every row scored by a machine
    /// fitted without it, on the other 4 of 5 folds of a shuffle (Fisher–Yates as libsvm's,
    /// folds `[f·n/5, (f+1)·n/5)` of the shuffled order). A fold whose other rows hold one class
    /// scores `+1` (all positive) or `−1` (all negative), as libsvm does.
    fn cross_validated_decisions(
        &self,
        x: ArrayView2<f64>,
        y: &[bool],
        s: &Setup,
        c: [f64; 2],
        rng: &mut impl rand::Rng,
    ) -> Result<Vec<f64>, ModelError> {
        const FOLDS: usize = 5;
        let n = y.len();
        let mut perm: Vec<usize> = (0..n).collect();
        for i in 0..n {
            perm.swap(i, rng.gen_range(i..n));
        }
        let mut f = vec![0.0; n];
        for fold in 0..FOLDS {
            let (begin, end) = (fold * n / FOLDS, (fold + 1) * n / FOLDS);
            let held = &perm[begin..end];
            let rest: Vec<usize> = perm[..begin].iter().chain(&perm[end..]).copied().collect();
            let y_rest: Vec<bool> = rest.iter().map(|&r| y[r]).collect();
            let n_pos = y_rest.iter().filter(|&&v| v).count();
            let constant = match (n_pos, y_rest.len() - n_pos) {
                (0, 0) => Some(0.0),
                (_, 0) => Some(1.0),
                (0, _) => Some(-1.0),
                _ => None,
            };
            if let Some(v) = constant {
                held.iter().for_each(|&r| f[r] = v);
                continue;
            }
            let sub = x.select(ndarray::Axis(0), &rest);
            let Dual(alpha, rho, _) = self.solve(sub.view(), &y_rest, s, c)?;
            self.check_rho(rho)?;
            let support: Vec<(ndarray::ArrayView1<f64>, f64)> = sub
                .rows()
                .into_iter()
                .zip(alpha)
                .filter(|(_, a)| keep(a))
                .collect();
            for &r in held {
                let row = x.row(r);
                let k = |sv: &ndarray::ArrayView1<f64>| -> f64 {
                    if s.linear {
                        sv.dot(&row)
                    } else {
                        let d2: f64 = sv.iter().zip(&row).map(|(a, b)| (a - b) * (a - b)).sum();
                        (-s.gamma * d2).exp()
                    }
                };
                f[r] = support.iter().map(|(sv, a)| a * k(sv)).sum::<f64>() - rho;
            }
        }
        Ok(f)
    }

    /// linfa-svm's solver: signed dual coefficients `y_i α_i` and `ρ`.
    fn fit_linfa(
        &self,
        x: ArrayView2<f64>,
        y: &[bool],
        linear: bool,
        c: [f64; 2],
        gamma: f64,
        tol: f64,
    ) -> Result<(Vec<f64>, f64), ModelError> {
        let n = x.nrows();
        let bytes = (n as u64).saturating_mul(n as u64).saturating_mul(8);
        if bytes > MAX_KERNEL_BYTES {
            return Err(ModelError::TooLarge {
                algorithm: self.name(),
                message: format!(
                    "{n} rows need a {} MiB kernel matrix, above the {} MiB cap; \
                     use solver \"smo\", subsample the training rows or use another algorithm",
                    bytes >> 20,
                    MAX_KERNEL_BYTES >> 20
                ),
            });
        }
        let base = LinfaSvm::<f64, bool>::params()
            .pos_neg_weights(c[1], c[0])
            .eps(tol)
            .shrinking(false);
        let svm_params = if linear {
            base.linear_kernel()
        } else {
            base.gaussian_kernel(1.0 / gamma)
        };
        let targets = Array1::from(y.to_vec());
        let dataset = DatasetBase::new(x, targets.view());
        let svm = svm_params.fit(&dataset).map_err(|e| ModelError::Solver {
            algorithm: self.name(),
            message: e.to_string(),
        })?;
        Ok((svm.alpha, svm.rho))
    }
}

/// Whether a dual coefficient makes its row a support vector.
fn keep(a: &f64) -> bool {
    a.abs() > 100.0 * f64::EPSILON
}

/// The machine of a pair with a class that has no training row (possible when K counts
/// classes absent from this fit, e.g. a rare class missing from a fold): the present class
/// always wins, with the clipped pairwise probability `1 − 1e-7`; two absent classes tie.
fn constant_machine(i_empty: bool, j_empty: bool, linear: bool, d: usize) -> PairMachine {
    let rho = match (i_empty, j_empty) {
        (true, false) => -1.0, // f = 1: class j
        (false, true) => 1.0,  // f = -1: class i
        _ => 0.0,
    };
    PairMachine {
        sv: Vec::new(),
        coef: if linear { vec![0.0; d] } else { Vec::new() },
        rho,
        platt_a: 30.0,
        platt_b: 0.0,
    }
}

/// Smallest pairwise probability libsvm lets into the coupling (`min_prob` in
/// `svm_predict_probability`).
pub(crate) const MIN_PAIR_PROB: f64 = 1e-7;

/// Wu, Lin & Weng (2004) method 2: class probabilities `p` (K values) from pairwise
/// probabilities `r[i·K + j] = P(i | i or j)` (`r_ij + r_ji = 1`), minimizing
/// `Σ_i Σ_{j≠i} (r_ji p_i − r_ij p_j)²` subject to `Σ p = 1`. A line-by-line transcription of
/// libsvm's `multiclass_probability` (svm.cpp): same start (uniform), same update order, same
/// stopping rule (`max |(Qp)_t − pᵀQp| < 0.005 / K`, at most `max(100, K)` sweeps).
pub(crate) fn couple(k: usize, r: &[f64], p: &mut [f64]) {
    let max_iter = k.max(100);
    let eps = 0.005 / k as f64;
    let mut q = vec![0.0; k * k];
    let mut qp = vec![0.0; k];
    for t in 0..k {
        p[t] = 1.0 / k as f64;
        q[t * k + t] = 0.0;
        for j in 0..t {
            q[t * k + t] += r[j * k + t] * r[j * k + t];
            q[t * k + j] = q[j * k + t];
        }
        for j in t + 1..k {
            q[t * k + t] += r[j * k + t] * r[j * k + t];
            q[t * k + j] = -r[j * k + t] * r[t * k + j];
        }
    }
    for _ in 0..max_iter {
        // stopping condition, recalculate Qp, pQp for numerical accuracy
        let mut pqp = 0.0;
        for t in 0..k {
            qp[t] = 0.0;
            for j in 0..k {
                qp[t] += q[t * k + j] * p[j];
            }
            pqp += p[t] * qp[t];
        }
        let max_error = qp.iter().fold(0.0f64, |m, v| m.max((v - pqp).abs()));
        if max_error < eps {
            break;
        }
        for t in 0..k {
            let diff = (-qp[t] + pqp) / q[t * k + t];
            p[t] += diff;
            pqp = (pqp + diff * (diff * q[t * k + t] + 2.0 * qp[t])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[t * k + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
}

/// libsvm's `sigmoid_train` (svm.cpp), line by line: Platt's two-parameter sigmoid
/// `P(positive | f) = 1 / (1 + exp(A f + B))` (libsvm's sign: `A < 0` when `f > 0` means
/// positive) fitted to Platt's smoothed targets by Newton's method with Lin, Lin & Weng's
/// safeguards (a stable log loss, `σ = 1e-12` added to the Hessian's diagonal, a backtracking
/// line search with sufficient decrease `1e-4`). Start `A = 0`, `B = ln((N₋+1)/(N₊+1))`; stop
/// when both gradient components are below `1e-5`, after 100 iterations, or when the step
/// falls below `1e-10` (libsvm's limits). Returns `(A, B)`.
fn sigmoid_train(dec: &[f64], positive: &[bool]) -> (f64, f64) {
    const MAX_ITER: usize = 100;
    const MIN_STEP: f64 = 1e-10;
    const SIGMA: f64 = 1e-12;
    const EPS: f64 = 1e-5;
    let prior1 = positive.iter().filter(|&&p| p).count() as f64;
    let prior0 = positive.len() as f64 - prior1;
    let hi_target = (prior1 + 1.0) / (prior1 + 2.0);
    let lo_target = 1.0 / (prior0 + 2.0);
    let t: Vec<f64> = positive
        .iter()
        .map(|&p| if p { hi_target } else { lo_target })
        .collect();
    // -(t log p + (1 - t) log(1 - p)) with p = 1 / (1 + exp(fApB)), without overflow
    let objective = |a: f64, b: f64| -> f64 {
        dec.iter()
            .zip(&t)
            .map(|(d, ti)| {
                let f_apb = d * a + b;
                if f_apb >= 0.0 {
                    ti * f_apb + (1.0 + (-f_apb).exp()).ln()
                } else {
                    (ti - 1.0) * f_apb + (1.0 + f_apb.exp()).ln()
                }
            })
            .sum()
    };
    let mut a = 0.0;
    let mut b = ((prior0 + 1.0) / (prior1 + 1.0)).ln();
    let mut fval = objective(a, b);
    for _ in 0..MAX_ITER {
        let (mut h11, mut h22, mut h21, mut g1, mut g2) = (SIGMA, SIGMA, 0.0, 0.0, 0.0);
        for (d, ti) in dec.iter().zip(&t) {
            let f_apb = d * a + b;
            let (p, q) = if f_apb >= 0.0 {
                let e = (-f_apb).exp();
                (e / (1.0 + e), 1.0 / (1.0 + e))
            } else {
                let e = f_apb.exp();
                (1.0 / (1.0 + e), e / (1.0 + e))
            };
            let d2 = p * q;
            h11 += d * d * d2;
            h22 += d2;
            h21 += d * d2;
            let d1 = ti - p;
            g1 += d * d1;
            g2 += d1;
        }
        if g1.abs() < EPS && g2.abs() < EPS {
            break;
        }
        // Newton direction -H⁻¹ g
        let det = h11 * h22 - h21 * h21;
        let da = -(h22 * g1 - h21 * g2) / det;
        let db = -(-h21 * g1 + h11 * g2) / det;
        let gd = g1 * da + g2 * db;
        let mut step = 1.0;
        while step >= MIN_STEP {
            let (new_a, new_b) = (a + step * da, b + step * db);
            let new_f = objective(new_a, new_b);
            if new_f < fval + 0.0001 * step * gd {
                (a, b, fval) = (new_a, new_b, new_f);
                break;
            }
            step /= 2.0;
        }
        if step < MIN_STEP {
            // libsvm: "Line search fails in two-class probability estimates"
            break;
        }
    }
    (a, b)
}

/// Fit `A > 0` minimizing the log loss of `sigmoid(A f)` against Platt's smoothed targets.
fn platt_slope(f: &[f64], y: &[bool]) -> f64 {
    let n_pos = y.iter().filter(|&&v| v).count() as f64;
    let n_neg = y.len() as f64 - n_pos;
    let t_pos = (n_pos + 1.0) / (n_pos + 2.0);
    let t_neg = 1.0 / (n_neg + 2.0);
    let loss = |a: f64| -> f64 {
        f.iter()
            .zip(y)
            .map(|(fi, &yi)| {
                let t = if yi { t_pos } else { t_neg };
                let z = a * fi;
                // -(t log s(z) + (1-t) log(1-s(z))) = log(1+e^z) - t z, computed stably
                let softplus = if z > 0.0 {
                    z + (-z).exp().ln_1p()
                } else {
                    z.exp().ln_1p()
                };
                softplus - t * z
            })
            .sum()
    };
    let mut a = 1.0f64;
    let mut current = loss(a);
    for _ in 0..100 {
        let (mut g, mut h) = (0.0, 0.0);
        for (fi, &yi) in f.iter().zip(y) {
            let t = if yi { t_pos } else { t_neg };
            let s = 1.0 / (1.0 + (-a * fi).exp());
            g += (s - t) * fi;
            h += s * (1.0 - s) * fi * fi;
        }
        if g.abs() < 1e-9 || h <= 0.0 {
            break;
        }
        let mut step = g / h;
        let mut next = a - step;
        while next <= 0.0 || loss(next) > current {
            step /= 2.0;
            next = a - step;
            if step.abs() < 1e-12 {
                break;
            }
        }
        if step.abs() < 1e-12 {
            break;
        }
        a = next;
        current = loss(a);
    }
    if a.is_finite() && a > 0.0 { a } else { 1.0 }
}

/// Serialized form, checked before use so a corrupt model file cannot cause a panic. A
/// binary model has `kernel`, `rho` and `platt_a` (as it always had); a K-class one has
/// `one_vs_one` only.
#[derive(Clone, Serialize, Deserialize)]
struct SvmRepr {
    n_features: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kernel: Option<FittedKernel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rho: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platt_a: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    one_vs_one: Option<OneVsOne>,
}

impl TryFrom<SvmRepr> for Fitted {
    type Error = String;
    fn try_from(r: SvmRepr) -> Result<Self, String> {
        let d = r.n_features;
        let form = match (r.kernel, r.rho, r.platt_a, r.one_vs_one) {
            (Some(kernel), Some(rho), Some(platt_a), None) => {
                let ok = match &kernel {
                    FittedKernel::Linear { w } => w.len() == d,
                    FittedKernel::Rbf {
                        support_vectors,
                        coef,
                        ..
                    } => d > 0 && support_vectors.len() == coef.len() * d,
                };
                if !ok {
                    return Err("svm kernel does not match its n_features".into());
                }
                Form::Binary(Binary {
                    kernel,
                    rho,
                    platt_a,
                })
            }
            (None, None, None, Some(o)) => {
                check_one_vs_one(&o, d)?;
                Form::OneVsOne(o)
            }
            _ => {
                return Err(
                    "svm model needs either kernel, rho and platt_a (binary) or one_vs_one".into(),
                );
            }
        };
        Ok(Fitted {
            n_features: d,
            form,
        })
    }
}

fn check_one_vs_one(o: &OneVsOne, d: usize) -> Result<(), String> {
    let k = o.n_classes;
    if k < 3 || o.machines.len() != k * (k - 1) / 2 {
        return Err(format!(
            "svm one_vs_one model has {} machines for {k} classes (want K > 2 and K(K-1)/2)",
            o.machines.len()
        ));
    }
    let ok = match &o.kernel {
        OvoKernel::Linear => o
            .machines
            .iter()
            .all(|m| m.sv.is_empty() && m.coef.len() == d),
        OvoKernel::Rbf {
            support_vectors, ..
        } => {
            let n_sv = support_vectors.len() / d.max(1);
            d > 0
                && support_vectors.len().is_multiple_of(d)
                && o.machines.iter().all(|m| {
                    m.sv.len() == m.coef.len() && m.sv.iter().all(|&v| (v as usize) < n_sv)
                })
        }
    };
    if ok {
        Ok(())
    } else {
        Err("svm one_vs_one machines do not match their support vectors or n_features".into())
    }
}

impl From<Fitted> for SvmRepr {
    fn from(f: Fitted) -> SvmRepr {
        let mut r = SvmRepr {
            n_features: f.n_features,
            kernel: None,
            rho: None,
            platt_a: None,
            one_vs_one: None,
        };
        match f.form {
            Form::Binary(b) => {
                r.kernel = Some(b.kernel);
                r.rho = Some(b.rho);
                r.platt_a = Some(b.platt_a);
            }
            Form::OneVsOne(o) => r.one_vs_one = Some(o),
        }
        r
    }
}

impl Predictor for Fitted {
    fn n_features(&self) -> usize {
        self.n_features
    }
    fn n_classes(&self) -> usize {
        Fitted::n_classes(self)
    }
    fn proba_row(&self, row: &[f64], out: &mut [f64]) {
        match &self.form {
            Form::Binary(b) => {
                let p = b.p1_row(self.n_features, row);
                out[0] = 1.0 - p;
                out[1] = p;
            }
            Form::OneVsOne(o) => {
                let k = o.n_classes;
                let mut f = vec![0.0; o.machines.len()];
                o.decisions(self.n_features, row, &mut f);
                let mut r = vec![0.0; k * k];
                for (((i, j), v), m) in pairs(k).zip(&f).zip(&o.machines) {
                    let p_j = pair_probability(m.platt_a * v + m.platt_b);
                    r[j * k + i] = p_j;
                    r[i * k + j] = 1.0 - p_j;
                }
                couple(k, &r, out);
            }
        }
    }
}

/// `sigmoid(z)` clipped to `[1e-7, 1 − 1e-7]` as libsvm clips pairwise probabilities.
fn pair_probability(z: f64) -> f64 {
    let p = 1.0 / (1.0 + (-z).exp());
    if p.is_nan() {
        0.5
    } else {
        p.clamp(MIN_PAIR_PROB, 1.0 - MIN_PAIR_PROB)
    }
}

/// The two-class form: P(attack) per row.
impl Binary {
    fn p1_row(&self, n_features: usize, row: &[f64]) -> f64 {
        let z = self.platt_a * self.decision(n_features, row);
        let p = 1.0 / (1.0 + (-z).exp());
        if p.is_nan() { 0.5 } else { p }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Params;
    use crate::models::testutil::{accuracy, ids, toy};

    fn binary(m: FittedModel) -> Binary {
        match m {
            FittedModel::Svm(Fitted {
                form: Form::Binary(b),
                ..
            }) => b,
            _ => panic!("not a binary svm"),
        }
    }

    #[test]
    fn weighted_c_agrees_between_solvers_and_moves_the_boundary() {
        // C per class (class_weight) through both solvers: linfa's pos_neg_weights and the
        // smo's per-variable bounds must agree, and a heavier attack class flags more rows.
        let (x, y) = toy(300, 5, 21);
        for kernel in ["rbf", "linear"] {
            let mut p = Params::new();
            p.insert("kernel".into(), ParamValue::str(kernel));
            let flagged = |m: &Binary| {
                x.rows()
                    .into_iter()
                    .filter(|r| m.decision(5, r.as_slice().unwrap()) >= 0.0)
                    .count()
            };
            let plain = binary(Svm.fit(&p, x.view(), &ids(&y), 2, 0).unwrap());
            p.insert(
                "class_weight".into(),
                ParamValue::Map([("1".to_string(), 5.0)].into()),
            );
            let own = binary(Svm.fit(&p, x.view(), &ids(&y), 2, 0).unwrap());
            p.insert("solver".into(), ParamValue::str("linfa"));
            let m = binary(Svm.fit(&p, x.view(), &ids(&y), 2, 0).unwrap());
            let disagree = x
                .rows()
                .into_iter()
                .filter(|r| {
                    let r = r.as_slice().unwrap();
                    (m.decision(5, r) >= 0.0) != (own.decision(5, r) >= 0.0)
                })
                .count();
            assert!(
                disagree <= 2,
                "{kernel}: solvers disagree on {disagree} rows"
            );
            assert!(
                flagged(&own) > flagged(&plain),
                "{kernel}: {} -> {}",
                flagged(&plain),
                flagged(&own)
            );
        }
    }

    #[test]
    fn own_decision_matches_linfa_labels() {
        let (x, y) = toy(300, 5, 21);
        for kernel in ["rbf", "linear"] {
            let mut p = Params::new();
            p.insert("kernel".into(), ParamValue::str(kernel));
            p.insert("solver".into(), ParamValue::str("linfa"));
            let m = binary(Svm.fit(&p, x.view(), &ids(&y), 2, 0).unwrap());
            p.insert("solver".into(), ParamValue::str("smo"));
            let own = binary(Svm.fit(&p, x.view(), &ids(&y), 2, 0).unwrap());
            let disagree = x
                .rows()
                .into_iter()
                .filter(|r| {
                    let r = r.as_slice().unwrap();
                    (m.decision(5, r) >= 0.0) != (own.decision(5, r) >= 0.0)
                })
                .count();
            assert!(
                disagree <= 2,
                "{kernel}: own smo and linfa disagree on {disagree} rows"
            );
            assert!(
                (m.rho - own.rho).abs() < 0.05,
                "{kernel}: rho {} vs {}",
                m.rho,
                own.rho
            );
            let linfa = LinfaSvm::<f64, bool>::params().eps(1e-3).shrinking(false);
            let linfa = if kernel == "linear" {
                linfa.linear_kernel()
            } else {
                let var = x.var(0.0);
                linfa.gaussian_kernel(5.0 * var)
            };
            let targets = Array1::from(y.clone());
            let reference = linfa
                .fit(&DatasetBase::new(x.view(), targets.view()))
                .unwrap();
            let theirs = reference.predict(&x);
            let ours: Vec<bool> = x
                .rows()
                .into_iter()
                .map(|r| m.decision(5, r.as_slice().unwrap()) >= 0.0)
                .collect();
            assert_eq!(ours, theirs.to_vec(), "{kernel}");
            assert!(m.platt_a > 0.0);
            let probs = ndarray::Array2::from_shape_fn((x.nrows(), 2), |(i, k)| {
                let p = m.p1_row(5, x.row(i).as_slice().unwrap());
                if k == 1 { p } else { 1.0 - p }
            });
            assert!(accuracy(&probs, &y) > 0.8);
        }
    }

    #[test]
    fn refuses_kernels_over_the_cap() {
        let n = 12_000;
        let x = ndarray::Array2::<f64>::zeros((n, 1));
        let y: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let mut p = Params::new();
        p.insert("solver".into(), ParamValue::str("linfa"));
        let e = Svm.fit(&p, x.view(), &ids(&y), 2, 0).unwrap_err();
        assert!(matches!(e, ModelError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("1024 MiB cap"), "{e}");
    }

    #[test]
    fn platt_slope_sharpens_separable_scores() {
        // 100 rows, all on the right side: the slope grows well past 1
        let f: Vec<f64> = (0..100).map(|i| [-2.0, -1.0, 1.0, 2.0][i % 4]).collect();
        let y: Vec<bool> = f.iter().map(|v| *v > 0.0).collect();
        assert!(platt_slope(&f, &y) > 2.0);
        // random scores: the slope shrinks towards 0
        let y2: Vec<bool> = (0..100).map(|i| (i / 4) % 2 == 0).collect();
        assert!(platt_slope(&f, &y2) < 0.2);
    }

    #[test]
    fn sigmoid_train_matches_libsvm() {
        // Cross-validated decision values of a 40-row pair (libsvm's sign: f > 0 means the
        // positive label) and the probA_ / probB_ that scikit-learn 1.9.1's
        // SVC(probability=True, random_state=42) fitted on them; scripts/libsvm_platt_reference.py
        // rebuilds these values fold by fold and checks its sigmoid_train against SVC's.
        let dec = [
            -1.3295851543408466,
            0.9023948571759066,
            -0.18130293163180014,
            -0.8717906668355939,
            0.08534841411378447,
            -0.1932091261186582,
            0.5853810626288911,
            0.026396048236297154,
            0.42178475766999873,
            -0.9263831041908767,
            -0.07917256269201897,
            -1.0371537464108365,
            0.2202144526791946,
            -0.6329398356170702,
            0.39647113390180605,
            -0.8788602105712766,
            -0.8024498359099175,
            -0.8809477334893485,
            -0.8684628120133862,
            -0.9709318827933735,
            -0.997526604006387,
            -1.1524445154876244,
            -1.0457292981977997,
            -0.8451148354263491,
            -1.0270181232454896,
            -0.5907011959883676,
            -0.7601804775324887,
            -1.0175541004175206,
            -1.123253471005871,
            -0.2793524476272711,
            -1.1521889053272318,
            1.0436060487950078,
            0.5970494319349824,
            -0.9407733476959173,
            0.5855750372928311,
            -0.03762442156697436,
            -1.375354247248101,
            -0.9557721515997898,
            -0.8339800140391136,
            -1.011430946243717,
        ];
        let positive: Vec<bool> = (0..40).map(|i| i < 15).collect();
        let (a, b) = sigmoid_train(&dec, &positive);
        assert!((a - -1.1049562086732534).abs() < 1e-12, "A = {a}");
        assert!((b - -0.0013586248187812656).abs() < 1e-12, "B = {b}");
        // netsec's mirror (f -> -f, the other class positive) gives (A, -B)
        let mirrored: Vec<f64> = dec.iter().map(|f| -f).collect();
        let negative: Vec<bool> = positive.iter().map(|p| !p).collect();
        let (a2, b2) = sigmoid_train(&mirrored, &negative);
        assert!(
            (a2 - a).abs() < 1e-12 && (b2 + b).abs() < 1e-12,
            "{a2} {b2}"
        );
        // folds that saw one class score ±1 (libsvm's constants): the transcription's values
        let flat = [1.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0];
        let flat_pos = [true, true, true, false, true, false, false, true];
        let (a, b) = sigmoid_train(&flat, &flat_pos);
        assert!((a - -0.6498351331793557).abs() < 1e-12, "A = {a}");
        assert!((b - -0.32315090305558225).abs() < 1e-12, "B = {b}");
    }

    #[test]
    fn one_vs_one_platt_is_deterministic_per_seed() {
        let (x, y4) = quadrants(150, 8);
        let y: Vec<u32> = y4.iter().map(|&c| c.min(2)).collect();
        let fit = |seed| {
            let FittedModel::Svm(f) = Svm.fit(&Params::new(), x.view(), &y, 3, seed).unwrap()
            else {
                panic!()
            };
            let Form::OneVsOne(o) = f.form else { panic!() };
            o.machines
        };
        let (a, b, other) = (fit(3), fit(3), fit(4));
        assert_eq!(a, b);
        // the machines are the same, only the cross-validation shuffle moves the sigmoid
        for (m, n) in a.iter().zip(&other) {
            assert_eq!((&m.coef, m.rho), (&n.coef, n.rho));
        }
        assert!(
            a.iter().zip(&other).any(|(m, n)| m.platt_a != n.platt_a),
            "another seed gives other folds"
        );
        for m in &a {
            assert!(m.platt_a > 0.0 && m.platt_a.is_finite(), "{m:?}");
            assert!(m.platt_b.is_finite() && m.platt_b != 0.0, "{m:?}");
        }
    }

    #[test]
    fn one_vs_one_file_without_platt_b_answers_as_before() {
        // a K-class file written before platt_b existed: P(j) = sigmoid(platt_a · f)
        let old = r#"{"algorithm":"svm","n_features":2,"one_vs_one":{"n_classes":3,"kernel":{"kernel":"linear"},"machines":[{"coef":[1.0,0.5],"rho":0.25,"platt_a":2.0},{"coef":[-0.5,1.0],"rho":0.0,"platt_a":1.5},{"coef":[0.3,-1.0],"rho":-0.1,"platt_a":0.7}]}}"#;
        let m: FittedModel = serde_json::from_str(old).unwrap();
        let FittedModel::Svm(f) = &m else { panic!() };
        let Form::OneVsOne(o) = &f.form else { panic!() };
        assert!(o.machines.iter().all(|p| p.platt_b == 0.0));
        let x = ndarray::array![[0.3, -1.2], [1.0, 2.0], [-0.7, 0.1]];
        let probs = m.predict_proba(x.view()).unwrap();
        let sigmoid = |z: f64| (1.0 / (1.0 + (-z).exp())).clamp(1e-7, 1.0 - 1e-7);
        for (row, got) in x.rows().into_iter().zip(probs.rows()) {
            let upper: Vec<f64> = o
                .machines
                .iter()
                .map(|p| {
                    let f = p.coef.iter().zip(row).map(|(a, b)| a * b).sum::<f64>() - p.rho;
                    1.0 - sigmoid(p.platt_a * f)
                })
                .collect();
            let mut want = vec![0.0; 3];
            couple(3, &upper_to_full(3, &upper), &mut want);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "{got} vs {want:?}");
            }
        }
    }

    /// 4 classes by quadrant of (x0, x1), a third feature of noise.
    fn quadrants(n: usize, seed: u64) -> (ndarray::Array2<f64>, Vec<u32>) {
        use rand::Rng;
        let mut rng = crate::models::rng_for(seed, 1);
        let x = ndarray::Array2::from_shape_fn((n, 3), |_| rng.gen_range(-1.0..1.0));
        let y = x
            .rows()
            .into_iter()
            .map(|r| u32::from(r[0] > 0.0) * 2 + u32::from(r[1] > 0.0))
            .collect();
        (x, y)
    }

    fn upper_to_full(k: usize, upper: &[f64]) -> Vec<f64> {
        let mut r = vec![0.0; k * k];
        for ((i, j), v) in pairs(k).zip(upper) {
            r[i * k + j] = *v;
            r[j * k + i] = 1.0 - v;
        }
        r
    }

    #[test]
    fn coupling_matches_libsvm() {
        // Reference: a direct Python transcription of libsvm's `multiclass_probability`
        // (svm.cpp, cjlin1/libsvm master) run on these r_ij (i < j, row-major pairs),
        // printed with repr().
        let cases: [(usize, &[f64], &[f64]); 2] = [
            (
                3,
                &[0.9, 0.3, 0.2],
                &[0.2891009748124371, 0.08982399475723862, 0.6210750304303243],
            ),
            (
                4,
                &[0.7, 0.6, 0.95, 0.4, 0.8, 0.85],
                &[
                    0.4605576567720644,
                    0.19731211655219244,
                    0.30138245397742464,
                    0.04074777269831849,
                ],
            ),
        ];
        for (k, upper, want) in cases {
            let mut p = vec![0.0; k];
            couple(k, &upper_to_full(k, upper), &mut p);
            for (g, w) in p.iter().zip(want) {
                assert!((g - w).abs() < 1e-12, "{p:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn coupling_recovers_consistent_probabilities() {
        // r_ij = p_i / (p_i + p_j) is consistent; libsvm's stopping rule (error < 0.005 / K)
        // recovers p to about 1e-3.
        for p0 in [
            vec![0.5, 0.3, 0.2],
            vec![0.5, 0.3, 0.15, 0.05],
            vec![0.05, 0.05, 0.8, 0.1],
            vec![0.1, 0.2, 0.3, 0.25, 0.15],
        ] {
            let k = p0.len();
            let upper: Vec<f64> = pairs(k).map(|(i, j)| p0[i] / (p0[i] + p0[j])).collect();
            let mut p = vec![0.0; k];
            couple(k, &upper_to_full(k, &upper), &mut p);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            for (g, w) in p.iter().zip(&p0) {
                assert!((g - w).abs() < 2e-3, "{p:?} vs {p0:?}");
            }
        }
    }

    #[test]
    fn one_vs_one_learns_four_classes() {
        let (x, y) = quadrants(300, 4);
        let (xt, yt) = quadrants(300, 5);
        for (kernel, solver) in [("rbf", "smo"), ("linear", "smo"), ("rbf", "linfa")] {
            let mut p = Params::new();
            p.insert("kernel".into(), ParamValue::str(kernel));
            p.insert("solver".into(), ParamValue::str(solver));
            p.insert("c".into(), ParamValue::Float(10.0));
            let m = Svm.fit(&p, x.view(), &y, 4, 0).unwrap();
            assert_eq!(m.n_classes(), 4);
            let FittedModel::Svm(f) = &m else { panic!() };
            let Form::OneVsOne(o) = &f.form else { panic!() };
            assert_eq!(o.machines.len(), 6);
            let probs = m.predict_proba(xt.view()).unwrap();
            let mut hits = 0;
            let mut vote_agrees = 0;
            for ((row, pr), &c) in xt.rows().into_iter().zip(probs.rows()).zip(&yt) {
                assert!((pr.sum() - 1.0).abs() < 1e-9, "{pr}");
                let pr = pr.to_vec();
                let best = crate::shared::classes::argmax(&pr);
                hits += usize::from(best == c);
                vote_agrees += usize::from(best == f.vote(row.as_slice().unwrap()));
            }
            // a binary model reaches at most 50 % here (two of four classes per side)
            assert!(
                hits >= 270,
                "{kernel}/{solver}: {hits}/300 held-out rows right"
            );
            assert!(
                vote_agrees >= 285,
                "{kernel}/{solver}: votes agree on {vote_agrees}"
            );
        }
    }

    #[test]
    fn one_vs_one_gives_an_absent_class_no_probability() {
        // K = 5, class 4 has no training row (a rare class missing from a fold)
        let (x, y) = quadrants(200, 6);
        let m = Svm.fit(&Params::new(), x.view(), &y, 5, 0).unwrap();
        let probs = m.predict_proba(x.view()).unwrap();
        // every pair against it says 1 − 1e-7, but libsvm's loose stopping rule
        // (0.005 / K) leaves it up to about 1 % on rows near a boundary
        assert!(
            probs.column(4).iter().all(|p| *p < 0.02),
            "{}",
            probs.column(4)
        );
        let median = {
            let mut c = probs.column(4).to_vec();
            c.sort_by(f64::total_cmp);
            c[c.len() / 2]
        };
        assert!(median < 1e-4, "{median}");
        for row in probs.rows() {
            assert_ne!(crate::shared::classes::argmax(row.as_slice().unwrap()), 4);
        }
    }

    #[test]
    fn one_vs_one_json_roundtrip_and_validation() {
        let (x, y3) = quadrants(120, 7);
        // three classes: merge quadrants 2 and 3
        let y: Vec<u32> = y3.iter().map(|&c| c.min(2)).collect();
        for kernel in ["rbf", "linear"] {
            let mut p = Params::new();
            p.insert("kernel".into(), ParamValue::str(kernel));
            let m = Svm.fit(&p, x.view(), &y, 3, 0).unwrap();
            let json = serde_json::to_string(&m).unwrap();
            assert!(
                json.contains("\"one_vs_one\":{\"n_classes\":3"),
                "{json:.200}"
            );
            assert!(!json.contains("\"platt_a\":1") || json.contains("machines"));
            let back: FittedModel = serde_json::from_str(&json).unwrap();
            assert_eq!(back, m);
            assert_eq!(
                back.predict_proba(x.view()).unwrap(),
                m.predict_proba(x.view()).unwrap()
            );
        }
        // the binary form is unchanged: an old file loads and writes back byte for byte
        let old = r#"{"algorithm":"svm","n_features":2,"kernel":{"kernel":"linear","w":[1.0,-0.5]},"rho":0.25,"platt_a":2.0}"#;
        let b: FittedModel = serde_json::from_str(old).unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), old);
        assert_eq!(b.n_classes(), 2);
        let m = |k: &str, machines: &str| {
            format!(
                r#"{{"algorithm":"svm","n_features":2,"one_vs_one":{{"n_classes":3,"kernel":{k},"machines":[{machines}]}}}}"#
            )
        };
        let pm = r#"{"coef":[1.0,2.0],"rho":0.0,"platt_a":1.0}"#;
        let rbf = r#"{"kernel":"rbf","gamma":1.0,"support_vectors":[1.0,2.0]}"#;
        let sv = r#"{"sv":[0],"coef":[1.0],"rho":0.0,"platt_a":1.0}"#;
        let good = m(r#"{"kernel":"linear"}"#, &[pm, pm, pm].join(","));
        assert!(serde_json::from_str::<FittedModel>(&good).is_ok(), "{good}");
        let bad = [
            // two machines for three classes
            m(r#"{"kernel":"linear"}"#, &[pm, pm].join(",")),
            // linear weights of the wrong width
            m(
                r#"{"kernel":"linear"}"#,
                &[pm, pm, r#"{"coef":[1.0],"rho":0.0,"platt_a":1.0}"#].join(","),
            ),
            // support vector index out of range
            m(
                rbf,
                &[sv, sv, r#"{"sv":[1],"coef":[1.0],"rho":0.0,"platt_a":1.0}"#].join(","),
            ),
            // sv and coef lengths differ
            m(
                rbf,
                &[
                    sv,
                    sv,
                    r#"{"sv":[0],"coef":[1.0,1.0],"rho":0.0,"platt_a":1.0}"#,
                ]
                .join(","),
            ),
            // both forms at once
            good.replace(r#""one_vs_one""#, r#""rho":0.0,"one_vs_one""#),
            // a binary model missing its slope
            old.replace(r#","platt_a":2.0"#, ""),
        ];
        assert!(serde_json::from_str::<FittedModel>(&m(rbf, &[sv, sv, sv].join(","))).is_ok());
        for json in bad {
            assert!(
                serde_json::from_str::<FittedModel>(&json).is_err(),
                "{json}"
            );
        }
    }
}
