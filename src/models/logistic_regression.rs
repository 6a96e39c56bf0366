//! `logistic_regression`: L2-regularized logistic regression, scikit-learn's
//! `LogisticRegression(solver="lbfgs")`. Intercepts unpenalized, features used as given (no
//! standardization, like scikit-learn's default).
//!
//! * **Two classes**: one weight vector, `P(attack) = sigmoid(b + w · x)`, fitted by
//!   linfa-logistic (L-BFGS) on `sum(log loss) + ||w||² / (2C)` (linfa's `alpha = 1 / C`).
//! * **K > 2 classes**: multinomial, as scikit-learn ≥ 1.5 always does for K > 2: K weight
//!   vectors and K intercepts (the symmetric, over-parametrized form; the L2 penalty makes the
//!   weights unique), `P(k | x) = softmax_k(b_k + w_k · x)`, minimizing
//!   `sum(cross-entropy) + Σ_k ||w_k||² / (2C)`. scikit-learn minimizes the same objective
//!   divided by n (`mean(loss) + ||W||² / (2 C n)`, `_logistic.py`), and so does our own
//!   deterministic L-BFGS here ([`minimize_lbfgs`]); it stops on a gradient 10⁴ times smaller
//!   than scikit-learn's default `tol`, so it lands at least as close to the common optimum.
//!   Intercepts are only defined up to a common shift (the softmax ignores it); starting from
//!   zero, as scikit-learn does, they stay centred. A class without training rows gets a
//!   very negative intercept and a probability near 0.
//!
//! * **`class_weight`** weights each row's loss, as scikit-learn does: the objective becomes
//!   `Σ w_i loss_i / Σ w + ||W||² / (2 C Σ w)` (scikit-learn scales by the weight sum). A
//!   weighted two-class fit uses our own L-BFGS on the binary loss (linfa has no row
//!   weights); an unweighted one stays on linfa, as before.
//!
//! The fitted form keeps only the weights and intercepts, so the model file is plain numbers.
//! A binary model's file is `{"coef": [d], "intercept": b}` as it always was; a multinomial
//! one is `{"coef": [K·d, class-major], "intercepts": [K]}`.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression as LinfaLogistic;
use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::models::class_weight;
use crate::models::params::{CLASS_WEIGHT, Reader};
use crate::models::{
    Algorithm, FittedModel, Labels, ModelError, ParamKind, ParamSpec, ParamValue, Predictor,
    SharedBins,
};

const SPECS: &[ParamSpec] = &[
    ParamSpec {
        name: "c",
        kind: ParamKind::Float {
            above: 0.0,
            max: f64::INFINITY,
        },
        default: ParamValue::Float(1.0),
        doc: "inverse regularization strength (scikit-learn's C)",
    },
    ParamSpec {
        name: "max_iter",
        kind: ParamKind::Int {
            min: 1,
            max: 1_000_000,
        },
        default: ParamValue::Int(100),
        doc: "maximum L-BFGS iterations",
    },
    CLASS_WEIGHT,
];

/// The `logistic_regression` algorithm.
pub struct LogisticRegression;

/// A fitted linear model: binary `P(attack) = sigmoid(intercept[0] + coef · x)`, or
/// multinomial `P(k) = softmax_k(intercept[k] + coef[k·d..(k+1)·d] · x)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LrRepr", into = "LrRepr")]
pub struct Fitted {
    /// K, the classes answered (2 = binary).
    n_classes: usize,
    /// Binary: weight per feature; multinomial: K rows of `n_features` weights.
    coef: Vec<f64>,
    /// Binary: the one bias; multinomial: one per class.
    intercept: Vec<f64>,
}

/// Serialized form: the binary fields as they always were, or the multinomial ones.
#[derive(Clone, Serialize, Deserialize)]
struct LrRepr {
    coef: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intercept: Option<f64>,
    /// Multinomial intercepts, one per class (K > 2); absent for binary models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    intercepts: Vec<f64>,
}

impl TryFrom<LrRepr> for Fitted {
    type Error = String;
    fn try_from(r: LrRepr) -> Result<Self, String> {
        match (r.intercept, r.intercepts.len()) {
            (Some(b), 0) => Ok(Fitted {
                n_classes: 2,
                coef: r.coef,
                intercept: vec![b],
            }),
            (None, k) if k > 2 && !r.coef.is_empty() && r.coef.len().is_multiple_of(k) => {
                Ok(Fitted {
                    n_classes: k,
                    coef: r.coef,
                    intercept: r.intercepts,
                })
            }
            (None, 0) => Err("logistic_regression model has no intercept".into()),
            _ => Err(format!(
                "logistic_regression model is inconsistent: {} weights, intercept {}, {} class \
                 intercepts (want one intercept, or K > 2 intercepts and K rows of weights)",
                r.coef.len(),
                r.intercept.map_or("absent".into(), |b| b.to_string()),
                r.intercepts.len()
            )),
        }
    }
}

impl From<Fitted> for LrRepr {
    fn from(f: Fitted) -> LrRepr {
        if f.n_classes == 2 {
            LrRepr {
                coef: f.coef,
                intercept: Some(f.intercept[0]),
                intercepts: Vec::new(),
            }
        } else {
            LrRepr {
                coef: f.coef,
                intercept: None,
                intercepts: f.intercept,
            }
        }
    }
}

impl Algorithm for LogisticRegression {
    fn name(&self) -> &'static str {
        "logistic_regression"
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
        _seed: u64,
    ) -> Result<FittedModel, ModelError> {
        let c = r.f64("c")?;
        let weights =
            class_weight::resolve(r, labels)?.map(|cw| class_weight::per_row(&cw, labels.ids));
        if !labels.is_binary() {
            return self.fit_multinomial(x, labels, weights.as_deref(), c, r.usize("max_iter")?);
        }
        let y = &labels.attack_bits()[..];
        if let Some(w) = &weights {
            return self.fit_weighted_binary(x, y, w, c, r.usize("max_iter")?);
        }
        let max_iter = r.usize("max_iter")? as u64;
        let targets = Array1::from(y.to_vec());
        let dataset = DatasetBase::new(x, targets.view());
        let fitted = LinfaLogistic::default()
            .alpha(1.0 / c)
            .max_iterations(max_iter)
            .fit(&dataset)
            .map_err(|e| ModelError::Solver {
                algorithm: self.name(),
                message: e.to_string(),
            })?;
        // linfa reports P(labels().pos.class); flip the sign if that class is "benign".
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        let coef: Vec<f64> = fitted.params().iter().map(|w| sign * w).collect();
        let intercept = sign * fitted.intercept();
        if !intercept.is_finite() || coef.iter().any(|w| !w.is_finite()) {
            return Err(ModelError::Solver {
                algorithm: self.name(),
                message: "weights diverged (try a smaller c)".into(),
            });
        }
        Ok(FittedModel::LogisticRegression(Fitted {
            n_classes: 2,
            coef,
            intercept: vec![intercept],
        }))
    }
}

impl LogisticRegression {
    /// The multinomial fit for K > 2 classes (see the module doc).
    fn fit_multinomial(
        &self,
        x: ArrayView2<f64>,
        labels: &Labels<'_>,
        weights: Option<&[f64]>,
        c: f64,
        max_iter: usize,
    ) -> Result<FittedModel, ModelError> {
        let k = labels.n_classes;
        let d = x.ncols();
        let xs = x.as_standard_layout();
        let flat = xs.as_slice().unwrap_or_default();
        let total = match weights {
            None => labels.ids.len() as f64,
            Some(w) => w.iter().sum(),
        };
        let problem = Multinomial {
            x: flat,
            d,
            k,
            y: labels.ids,
            weights,
            total,
            l2: 1.0 / (c * total),
        };
        let mut w = vec![0.0; k * (d + 1)];
        minimize_lbfgs(|w, g| problem.loss_grad(w, g), &mut w, max_iter);
        if w.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::Solver {
                algorithm: self.name(),
                message: "weights diverged (try a smaller c)".into(),
            });
        }
        let intercept = w.split_off(k * d);
        Ok(FittedModel::LogisticRegression(Fitted {
            n_classes: k,
            coef: w,
            intercept,
        }))
    }

    /// Two classes with row weights: `Σ w_i logloss_i / Σ w + ||coef||² / (2 C Σ w)`, the
    /// intercept unpenalized, minimized by [`minimize_lbfgs`] from zero.
    fn fit_weighted_binary(
        &self,
        x: ArrayView2<f64>,
        y: &[bool],
        w: &[f64],
        c: f64,
        max_iter: usize,
    ) -> Result<FittedModel, ModelError> {
        let d = x.ncols();
        let xs = x.as_standard_layout();
        let flat = xs.as_slice().unwrap_or_default();
        let total: f64 = w.iter().sum();
        let l2 = 1.0 / (c * total);
        let loss_grad = |p: &[f64], grad: &mut [f64]| -> f64 {
            let (coef, b) = (&p[..d], p[d]);
            grad.iter_mut().for_each(|g| *g = 0.0);
            let mut loss = 0.0;
            for ((row, &yi), &wi) in flat.chunks_exact(d.max(1)).zip(y).zip(w) {
                let z = b + coef.iter().zip(row).map(|(a, v)| a * v).sum::<f64>();
                // log(1 + e^z) − y z, computed without overflow
                let softplus = z.max(0.0) + (-z.abs()).exp().ln_1p();
                let t = f64::from(u8::from(yi));
                loss += wi * (softplus - t * z);
                let r = wi * (1.0 / (1.0 + (-z).exp()) - t);
                grad[d] += r;
                for (g, v) in grad[..d].iter_mut().zip(row) {
                    *g += r * v;
                }
            }
            let mut penalty = 0.0;
            for (g, a) in grad[..d].iter_mut().zip(coef) {
                *g = *g / total + l2 * a;
                penalty += a * a;
            }
            grad[d] /= total;
            loss / total + 0.5 * l2 * penalty
        };
        let mut p = vec![0.0; d + 1];
        minimize_lbfgs(loss_grad, &mut p, max_iter);
        if p.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::Solver {
                algorithm: self.name(),
                message: "weights diverged (try a smaller c)".into(),
            });
        }
        let intercept = p.split_off(d);
        Ok(FittedModel::LogisticRegression(Fitted {
            n_classes: 2,
            coef: p,
            intercept,
        }))
    }
}

/// The multinomial objective scaled as scikit-learn's `LinearModelLoss`:
/// `mean(cross-entropy) + l2 / 2 · ||W||²` with `l2 = 1 / (C n)`. Parameters are the K×d
/// weights (class-major) followed by the K intercepts.
struct Multinomial<'a> {
    x: &'a [f64],
    d: usize,
    k: usize,
    y: &'a [u32],
    /// Row weights (`class_weight`); `None` = all 1.
    weights: Option<&'a [f64]>,
    /// Σ weights (n without weights), the scale of the objective.
    total: f64,
    l2: f64,
}

impl Multinomial<'_> {
    /// Objective at `w`, its gradient into `grad`.
    fn loss_grad(&self, w: &[f64], grad: &mut [f64]) -> f64 {
        let (d, k) = (self.d, self.k);
        let n = self.total;
        let (coef, intercept) = w.split_at(k * d);
        grad.iter_mut().for_each(|g| *g = 0.0);
        let (g_coef, g_int) = grad.split_at_mut(k * d);
        let mut z = vec![0.0; k];
        let mut loss = 0.0;
        for (i, (row, &yi)) in self.x.chunks_exact(d).zip(self.y).enumerate() {
            logits(coef, intercept, row, &mut z);
            log_softmax_in_place(&mut z);
            // multiplying by 1.0 is exact, so unweighted fits are as before
            let wi = self.weights.map_or(1.0, |w| w[i]);
            loss -= wi * z[yi as usize];
            // z now holds log p; gradient of the cross-entropy wrt the logits is p − onehot
            for (class, lp) in z.iter().enumerate() {
                let r = wi * (lp.exp() - f64::from(u8::from(class == yi as usize)));
                g_int[class] += r;
                for (g, v) in g_coef[class * d..(class + 1) * d].iter_mut().zip(row) {
                    *g += r * v;
                }
            }
        }
        let mut penalty = 0.0;
        for (g, wi) in g_coef.iter_mut().zip(coef) {
            *g = *g / n + self.l2 * wi;
            penalty += wi * wi;
        }
        g_int.iter_mut().for_each(|g| *g /= n);
        loss / n + 0.5 * self.l2 * penalty
    }
}

/// `z[k] = b_k + w_k · row`.
fn logits(coef: &[f64], intercept: &[f64], row: &[f64], z: &mut [f64]) {
    let d = row.len();
    for ((zk, wk), bk) in z.iter_mut().zip(coef.chunks_exact(d.max(1))).zip(intercept) {
        *zk = bk + wk.iter().zip(row).map(|(w, v)| w * v).sum::<f64>();
    }
}

/// Replace logits by their log-softmax; returns the log-sum-exp.
fn log_softmax_in_place(z: &mut [f64]) -> f64 {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
    z.iter_mut().for_each(|v| *v -= lse);
    lse
}

/// Stop when the largest gradient entry is below this (scikit-learn's default `tol` is 1e-4
/// on the same, n-scaled objective).
const GTOL: f64 = 1e-8;
/// Stop when one iteration lowers the objective by less than this, relative (scipy's
/// `ftol = 64 ε` as scikit-learn sets it).
const FTOL: f64 = 64.0 * f64::EPSILON;
/// Correction pairs kept (scipy's `maxcor`).
const MEMORY: usize = 10;

/// Minimize a smooth convex function by L-BFGS with a backtracking (Armijo) line search,
/// starting at `w`; `f(w, grad)` returns the value and writes the gradient. At most
/// `max_iter` iterations. Deterministic: plain sequential arithmetic. Returns the iterations
/// done.
fn minimize_lbfgs(
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    w: &mut [f64],
    max_iter: usize,
) -> usize {
    let m = w.len();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let mut g = vec![0.0; m];
    let mut fx = f(w, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut rho_hist: Vec<f64> = Vec::new();
    let mut dir = vec![0.0; m];
    let mut w_new = vec![0.0; m];
    let mut g_new = vec![0.0; m];
    let mut alpha = [0.0; MEMORY];
    let mut iter = 0;
    while iter < max_iter {
        if g.iter().all(|v| v.abs() <= GTOL) {
            break;
        }
        // two-loop recursion: dir = −H g
        dir.copy_from_slice(&g);
        for i in (0..s_hist.len()).rev() {
            alpha[i] = rho_hist[i] * dot(&s_hist[i], &dir);
            dir.iter_mut()
                .zip(&y_hist[i])
                .for_each(|(q, y)| *q -= alpha[i] * y);
        }
        let gamma = match (s_hist.last(), y_hist.last()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y),
            // first step: a unit move along the steepest coordinate
            _ => 1.0 / g.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1.0),
        };
        dir.iter_mut().for_each(|q| *q *= gamma);
        for i in 0..s_hist.len() {
            let beta = rho_hist[i] * dot(&y_hist[i], &dir);
            dir.iter_mut()
                .zip(&s_hist[i])
                .for_each(|(q, s)| *q += (alpha[i] - beta) * s);
        }
        dir.iter_mut().for_each(|q| *q = -*q);
        let mut slope = dot(&g, &dir);
        if slope >= 0.0 {
            // not a descent direction (numerical trouble): restart from steepest descent
            s_hist.clear();
            y_hist.clear();
            rho_hist.clear();
            dir.iter_mut().zip(&g).for_each(|(q, gi)| *q = -gi);
            slope = dot(&g, &dir);
        }
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..60 {
            w_new
                .iter_mut()
                .zip(w.iter().zip(&dir))
                .for_each(|(n, (wi, di))| *n = wi + step * di);
            let f_new = f(&w_new, &mut g_new);
            if f_new.is_finite() && f_new <= fx + 1e-4 * step * slope {
                accepted = Some(f_new);
                break;
            }
            step *= 0.5;
        }
        let Some(f_new) = accepted else {
            break; // no decrease representable along the direction: at the optimum
        };
        iter += 1;
        let s: Vec<f64> = w_new.iter().zip(w.iter()).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        w.copy_from_slice(&w_new);
        g.copy_from_slice(&g_new);
        let f_old = fx;
        fx = f_new;
        if sy > 1e-12 * dot(&y, &y).sqrt() * dot(&s, &s).sqrt() {
            if s_hist.len() == MEMORY {
                s_hist.remove(0);
                y_hist.remove(0);
                rho_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
            rho_hist.push(1.0 / sy);
        }
        if f_old - fx <= FTOL * f_old.abs().max(fx.abs()).max(1.0) {
            break;
        }
    }
    iter
}

impl Predictor for Fitted {
    fn n_features(&self) -> usize {
        if self.n_classes == 2 {
            self.coef.len()
        } else {
            self.coef.len() / self.n_classes
        }
    }
    fn n_classes(&self) -> usize {
        self.n_classes
    }
    fn proba_row(&self, row: &[f64], out: &mut [f64]) {
        if self.n_classes == 2 {
            let p = self.p1_row(row);
            out[0] = 1.0 - p;
            out[1] = p;
        } else {
            logits(&self.coef, &self.intercept, row, out);
            log_softmax_in_place(out);
            out.iter_mut().for_each(|v| *v = v.exp());
        }
    }
}

impl Fitted {
    /// The weights and intercepts, for exporting the model to another format: binary, one
    /// weight per feature and one intercept; K > 2, K rows of weights (row-major) and K
    /// intercepts.
    pub fn weights(&self) -> (&[f64], &[f64]) {
        (&self.coef, &self.intercept)
    }
}

/// The two-class form: P(attack) per row.
impl Fitted {
    fn p1_row(&self, row: &[f64]) -> f64 {
        let z = self.intercept[0] + self.coef.iter().zip(row).map(|(w, v)| w * v).sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testutil::{accuracy, ids, toy};
    use crate::models::{ParamValue, Params};

    #[test]
    fn learns_the_linear_rule_in_the_right_direction() {
        let (x, y) = toy(500, 4, 12);
        let m = LogisticRegression
            .fit(&Params::new(), x.view(), &ids(&y), 2, 0)
            .unwrap();
        assert!(accuracy(&m.predict_proba(x.view()).unwrap(), &y) > 0.85);
        let FittedModel::LogisticRegression(f) = m else {
            panic!()
        };
        assert!(f.coef[0] > 0.0, "attack rises with feature 0: {:?}", f.coef);
    }

    #[test]
    fn direction_does_not_depend_on_class_balance() {
        // attack is the majority here, benign in the other test
        let (x, y) = toy(500, 4, 12);
        let flipped: Vec<bool> = y.iter().map(|v| !v).collect();
        let m = LogisticRegression
            .fit(&Params::new(), x.view(), &ids(&flipped), 2, 0)
            .unwrap();
        let FittedModel::LogisticRegression(f) = m else {
            panic!()
        };
        assert!(f.coef[0] < 0.0);
    }

    /// 12 rows, 2 features, 3 classes that overlap, so no probability saturates.
    fn three_class() -> (ndarray::Array2<f64>, Vec<u32>) {
        let x = ndarray::array![
            [0.0, 1.0],
            [1.0, 0.5],
            [0.5, 0.0],
            [2.0, 1.5],
            [2.5, 2.0],
            [1.5, 2.5],
            [3.0, 0.0],
            [3.5, 0.5],
            [2.5, -0.5],
            [0.5, 2.0],
            [1.0, 1.0],
            [3.0, 1.0]
        ];
        (x, vec![0, 0, 0, 1, 1, 1, 2, 2, 2, 1, 0, 2])
    }

    #[test]
    fn multinomial_matches_scikit_learn() {
        // scikit-learn 1.9.1: LogisticRegression(C=c, max_iter=10000, tol=1e-12).fit(X, y)
        // .predict_proba(X) on `three_class` (lbfgs, multinomial), printed to 10 decimals.
        // (With the default tol=1e-4 scikit-learn stops up to 1.7e-4 away from these.)
        let reference: [(f64, [[f64; 3]; 12]); 2] = [
            (
                1.0,
                [
                    [0.8163082489, 0.1652496658, 0.0184420853],
                    [0.7087393914, 0.1589012892, 0.1323593194],
                    [0.8834636996, 0.0512428334, 0.0652934670],
                    [0.1804282670, 0.6044192317, 0.2151525012],
                    [0.0589552308, 0.7634005421, 0.1776442271],
                    [0.0765921838, 0.8954887367, 0.0279190795],
                    [0.0748307497, 0.0489902102, 0.8761790402],
                    [0.0301954902, 0.0764130815, 0.8933914283],
                    [0.1723232838, 0.0291861456, 0.7984905706],
                    [0.3430340068, 0.6389979602, 0.0179680330],
                    [0.5864826929, 0.3130224725, 0.1004948346],
                    [0.0686467602, 0.2546878262, 0.6766654137],
                ],
            ),
            (
                10.0,
                [
                    [0.9619434789, 0.0375423981, 0.0005141230],
                    [0.9425474059, 0.0270173204, 0.0304352738],
                    [0.9932764805, 0.0014637728, 0.0052597467],
                    [0.0766564843, 0.8313024647, 0.0920410510],
                    [0.0045608936, 0.9620456063, 0.0333935001],
                    [0.0034683966, 0.9961112794, 0.0004203240],
                    [0.0098636412, 0.0012225812, 0.9889137776],
                    [0.0016266093, 0.0039215636, 0.9944518270],
                    [0.0573135291, 0.0003652263, 0.9423212446],
                    [0.1410837081, 0.8585251740, 0.0003911179],
                    [0.7953904533, 0.1827627172, 0.0218468294],
                    [0.0122689171, 0.0977199008, 0.8900111821],
                ],
            ),
        ];
        let (x, y) = three_class();
        for (c, expected) in reference {
            let mut p = Params::new();
            p.insert("c".into(), ParamValue::Float(c));
            p.insert("max_iter".into(), ParamValue::Int(1000));
            let m = LogisticRegression.fit(&p, x.view(), &y, 3, 0).unwrap();
            assert_eq!(m.n_classes(), 3);
            let probs = m.predict_proba(x.view()).unwrap();
            for (got, want) in probs.rows().into_iter().zip(&expected) {
                for (g, w) in got.iter().zip(want) {
                    assert!((g - w).abs() < 1e-6, "C={c}: {got} vs {want:?}");
                }
            }
            // scikit-learn's intercepts: [2.31667527, -1.01533237, -1.3013429] at C=1
            let FittedModel::LogisticRegression(f) = &m else {
                panic!()
            };
            if c == 1.0 {
                for (g, w) in f
                    .intercept
                    .iter()
                    .zip([2.31667527, -1.01533237, -1.3013429])
                {
                    assert!((g - w).abs() < 1e-5, "{:?}", f.intercept);
                }
            }
        }
    }

    #[test]
    fn class_weights_match_scikit_learn() {
        // scikit-learn 1.9.1, LogisticRegression(C=1, max_iter=10000, tol=1e-12) on
        // `three_class`: class_weight={0: 1, 1: 1, 2: 4} (multinomial), and
        // class_weight="balanced" on y == 1 (binary, our own L-BFGS path).
        let (x, y) = three_class();
        let multinomial = [
            [0.8208446618, 0.1641842886, 0.0149710497],
            [0.6726424353, 0.1466300854, 0.1807274793],
            [0.8673462297, 0.0478803859, 0.0847733844],
            [0.1555284122, 0.5286836982, 0.3157878896],
            [0.0499877120, 0.6710009234, 0.2790113647],
            [0.0730166293, 0.8993183016, 0.0276650691],
            [0.0207015364, 0.0130128034, 0.9662856602],
            [0.0075874396, 0.0188337679, 0.9735787925],
            [0.0551301837, 0.0087757461, 0.9360940702],
            [0.3381069162, 0.6483229557, 0.0135701280],
            [0.5732967155, 0.3033970321, 0.1233062524],
            [0.0288884175, 0.1070232514, 0.8640883311],
        ];
        let mut p = Params::new();
        p.insert("max_iter".into(), ParamValue::Int(1000));
        let mut weighted = p.clone();
        weighted.insert(
            "class_weight".into(),
            ParamValue::Map([("2".to_string(), 4.0)].into()),
        );
        let m = LogisticRegression
            .fit(&weighted, x.view(), &y, 3, 0)
            .unwrap();
        let probs = m.predict_proba(x.view()).unwrap();
        for (got, want) in probs.rows().into_iter().zip(&multinomial) {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-6, "{got} vs {want:?}");
            }
        }
        let binary = [
            0.3850394969,
            0.2218970171,
            0.1098237858,
            0.6037579511,
            0.7788616525,
            0.8854899275,
            0.1184939550,
            0.2370587359,
            0.0549576569,
            0.7668174258,
            0.3931946771,
            0.4096807591,
        ];
        let yb: Vec<u32> = y.iter().map(|&c| u32::from(c == 1)).collect();
        let mut balanced = p.clone();
        balanced.insert("class_weight".into(), ParamValue::str("balanced"));
        let m = LogisticRegression
            .fit(&balanced, x.view(), &yb, 2, 0)
            .unwrap();
        let probs = m.predict_proba(x.view()).unwrap();
        for (got, want) in probs.column(1).iter().zip(binary) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn multinomial_json_roundtrip_and_validation() {
        let (x, y) = three_class();
        let m = LogisticRegression
            .fit(&Params::new(), x.view(), &y, 3, 0)
            .unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"intercepts\":[") && !json.contains("\"intercept\":"));
        let back: FittedModel = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            back.predict_proba(x.view()).unwrap(),
            m.predict_proba(x.view()).unwrap()
        );
        // the binary form is unchanged
        let bin = r#"{"algorithm":"logistic_regression","coef":[1.0,-2.0],"intercept":0.5}"#;
        let b: FittedModel = serde_json::from_str(bin).unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), bin);
        assert_eq!((b.n_classes(), b.n_features()), (2, 2));
        for bad in [
            // weights not a multiple of K
            r#"{"algorithm":"logistic_regression","coef":[1.0,2.0],"intercepts":[0.0,0.0,0.0]}"#,
            // both forms
            r#"{"algorithm":"logistic_regression","coef":[1.0,2.0,3.0],"intercept":0.0,"intercepts":[0.0,0.0,0.0]}"#,
            // K = 2 in the multinomial form
            r#"{"algorithm":"logistic_regression","coef":[1.0,2.0],"intercepts":[0.0,0.0]}"#,
            r#"{"algorithm":"logistic_regression","coef":[1.0,2.0]}"#,
            r#"{"algorithm":"logistic_regression","coef":[],"intercepts":[0.0,0.0,0.0]}"#,
        ] {
            assert!(serde_json::from_str::<FittedModel>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn multinomial_learns_four_classes_and_handles_an_absent_one() {
        // four blobs on a line-free layout: class = quadrant of (x0, x1)
        let mut rng = crate::models::rng_for(3, 1);
        use rand::Rng;
        let x = ndarray::Array2::from_shape_fn((400, 3), |_| rng.gen_range(-1.0..1.0));
        let y: Vec<u32> = x
            .rows()
            .into_iter()
            .map(|r| u32::from(r[0] > 0.0) * 2 + u32::from(r[1] > 0.0))
            .collect();
        let m = LogisticRegression
            .fit(&Params::new(), x.view(), &y, 4, 0)
            .unwrap();
        let probs = m.predict_proba(x.view()).unwrap();
        let hits = probs
            .rows()
            .into_iter()
            .zip(&y)
            .filter(|(p, c)| {
                let best = (0..4).fold(0, |b, k| if p[k] > p[b] { k } else { b });
                best == **c as usize
            })
            .count();
        assert!(hits > 360, "{hits}/400");
        for row in probs.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-12);
        }
        // K = 5 with class 4 never seen: it gets (almost) no probability
        let m5 = LogisticRegression
            .fit(&Params::new(), x.view(), &y, 5, 0)
            .unwrap();
        let p5 = m5.predict_proba(x.view()).unwrap();
        assert!(p5.column(4).iter().all(|p| *p < 1e-3), "{}", p5.column(4));
    }
}
