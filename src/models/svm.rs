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
//! * **Probability**: one-parameter Platt scaling, `P(attack) = sigmoid(A · f(x))` with `f` the
//!   decision value and `A > 0` fitted by Newton's method on the training decision values
//!   (Platt's smoothed targets). Without an offset term, `P >= 0.5` exactly when `f >= 0`, so
//!   predicted labels are those of the SVM itself (as `SVC.predict`); scikit-learn's
//!   `probability=True` instead fits `A` and `B` by internal 5-fold CV, which costs 5 more fits.
//!
//! The fitted form stores the support vectors and their signed dual coefficients (or, for the
//! linear kernel, the collapsed weight vector), not linfa's types.

use std::borrow::Cow;

use linfa::prelude::*;
use linfa_svm::Svm as LinfaSvm;
use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::models::params::Reader;
use crate::models::smo;
use crate::models::{
    Algorithm, FittedModel, Labels, ModelError, ParamKind, ParamSpec, ParamValue, Predictor,
};

/// Largest dense kernel matrix a fit may allocate, in bytes.
pub const MAX_KERNEL_BYTES: u64 = 1 << 30;

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

/// A fitted SVM: decision function plus the Platt slope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SvmRepr")]
pub struct Fitted {
    /// Features per row.
    pub n_features: usize,
    /// Kernel expansion.
    pub kernel: FittedKernel,
    /// Offset of the decision function.
    pub rho: f64,
    /// Platt slope `A` in `P(attack) = sigmoid(A · f(x))`.
    pub platt_a: f64,
}

impl Fitted {
    /// Decision value `f(x)`; positive means attack.
    pub fn decision(&self, row: &[f64]) -> f64 {
        let s = match &self.kernel {
            FittedKernel::Linear { w } => w.iter().zip(row).map(|(a, b)| a * b).sum::<f64>(),
            FittedKernel::Rbf {
                gamma,
                support_vectors,
                coef,
            } => support_vectors
                .chunks_exact(self.n_features.max(1))
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
        _seed: u64,
    ) -> Result<FittedModel, ModelError> {
        if !labels.is_binary() {
            return Err(ModelError::Multiclass {
                algorithm: self.name(),
                n_classes: labels.n_classes,
            });
        }
        let y = &labels.attack_bits()[..];
        let d = x.ncols();
        let linear = r.str("kernel")? == "linear";
        let c = r.f64("c")?;
        let tol = r.f64("tol")?;
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
        let (alpha, rho, train_decision) = if r.str("solver")? == "linfa" {
            let (alpha, rho) = self.fit_linfa(x, y, linear, c, gamma, tol)?;
            (alpha, rho, None)
        } else {
            let xs = x.as_standard_layout();
            let flat = xs.as_slice().unwrap_or_default();
            let kernel = if linear {
                smo::Kernel::Linear
            } else {
                smo::Kernel::Rbf { gamma }
            };
            let cache_bytes = (r.f64("cache_size")? * 1_048_576.0) as usize;
            let sol = smo::solve(flat, d, y, c, kernel, tol, cache_bytes);
            // signed coefficients y_i α_i, as linfa reports them
            let alpha = sol
                .alpha
                .iter()
                .zip(y)
                .map(|(a, &v)| if v { *a } else { -a })
                .collect();
            (alpha, sol.rho, Some(sol.train_decision))
        };

        let keep = |a: &f64| a.abs() > 100.0 * f64::EPSILON;
        let kernel = if linear {
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
                gamma,
                support_vectors,
                coef,
            }
        };
        let mut fitted = Fitted {
            n_features: d,
            kernel,
            rho,
            platt_a: 1.0,
        };
        if !fitted.rho.is_finite() {
            return Err(ModelError::Solver {
                algorithm: self.name(),
                message: "solver returned a non-finite offset".into(),
            });
        }
        let f = train_decision.unwrap_or_else(|| {
            let mut row = vec![0.0; d];
            x.rows()
                .into_iter()
                .map(|r| {
                    row.iter_mut().zip(r).for_each(|(a, b)| *a = *b);
                    fitted.decision(&row)
                })
                .collect()
        });
        fitted.platt_a = platt_slope(&f, y);
        Ok(FittedModel::Svm(fitted))
    }
}

impl Svm {
    /// linfa-svm's solver: signed dual coefficients `y_i α_i` and `ρ`.
    fn fit_linfa(
        &self,
        x: ArrayView2<f64>,
        y: &[bool],
        linear: bool,
        c: f64,
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
            .pos_neg_weights(c, c)
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

/// Serialized form, checked before use so a corrupt model file cannot cause a panic.
#[derive(Deserialize)]
struct SvmRepr {
    n_features: usize,
    kernel: FittedKernel,
    rho: f64,
    platt_a: f64,
}

impl TryFrom<SvmRepr> for Fitted {
    type Error = String;
    fn try_from(r: SvmRepr) -> Result<Self, String> {
        let ok = match &r.kernel {
            FittedKernel::Linear { w } => w.len() == r.n_features,
            FittedKernel::Rbf {
                support_vectors,
                coef,
                ..
            } => r.n_features > 0 && support_vectors.len() == coef.len() * r.n_features,
        };
        if !ok {
            return Err("svm kernel does not match its n_features".into());
        }
        Ok(Fitted {
            n_features: r.n_features,
            kernel: r.kernel,
            rho: r.rho,
            platt_a: r.platt_a,
        })
    }
}

impl Predictor for Fitted {
    fn n_features(&self) -> usize {
        self.n_features
    }
    fn proba_row(&self, row: &[f64], out: &mut [f64]) {
        let p = self.p1_row(row);
        out[0] = 1.0 - p;
        out[1] = p;
    }
}

/// The two-class form: P(attack) per row.
impl Fitted {
    fn p1_row(&self, row: &[f64]) -> f64 {
        let z = self.platt_a * self.decision(row);
        let p = 1.0 / (1.0 + (-z).exp());
        if p.is_nan() { 0.5 } else { p }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Params;
    use crate::models::testutil::{accuracy, ids, toy};

    #[test]
    fn own_decision_matches_linfa_labels() {
        let (x, y) = toy(300, 5, 21);
        for kernel in ["rbf", "linear"] {
            let mut p = Params::new();
            p.insert("kernel".into(), ParamValue::str(kernel));
            p.insert("solver".into(), ParamValue::str("linfa"));
            let FittedModel::Svm(m) = Svm.fit(&p, x.view(), &ids(&y), 2, 0).unwrap() else {
                panic!()
            };
            p.insert("solver".into(), ParamValue::str("smo"));
            let FittedModel::Svm(own) = Svm.fit(&p, x.view(), &ids(&y), 2, 0).unwrap() else {
                panic!()
            };
            let disagree = x
                .rows()
                .into_iter()
                .filter(|r| {
                    let r = r.as_slice().unwrap();
                    (m.decision(r) >= 0.0) != (own.decision(r) >= 0.0)
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
                .map(|r| m.decision(r.as_slice().unwrap()) >= 0.0)
                .collect();
            assert_eq!(ours, theirs.to_vec(), "{kernel}");
            assert!(m.platt_a > 0.0);
            let probs = ndarray::Array2::from_shape_fn((x.nrows(), 2), |(i, k)| {
                let p = m.p1_row(x.row(i).as_slice().unwrap());
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
}
