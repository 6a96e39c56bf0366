//! `logistic_regression`: L2-regularized logistic regression fitted by linfa-logistic
//! (L-BFGS). The objective is scikit-learn's: `sum(log loss) + ||w||² / (2C)`, i.e. linfa's
//! `alpha = 1 / C`, intercept unpenalized, features used as given (no standardization, like
//! scikit-learn's default).
//!
//! The fitted form keeps only the weights and intercept, so the model file is plain numbers.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression as LinfaLogistic;
use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::models::params::Reader;
use crate::models::{
    Algorithm, FittedModel, Labels, ModelError, ParamKind, ParamSpec, ParamValue, Predictor,
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
];

/// The `logistic_regression` algorithm.
pub struct LogisticRegression;

/// A fitted linear model: `P(attack) = sigmoid(intercept + coef · x)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fitted {
    /// Weight per feature.
    pub coef: Vec<f64>,
    /// Bias term.
    pub intercept: f64,
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
        _seed: u64,
    ) -> Result<FittedModel, ModelError> {
        if !labels.is_binary() {
            return Err(ModelError::Multiclass {
                algorithm: self.name(),
                n_classes: labels.n_classes,
            });
        }
        let y = &labels.attack_bits()[..];
        let c = r.f64("c")?;
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
        Ok(FittedModel::LogisticRegression(Fitted { coef, intercept }))
    }
}

impl Predictor for Fitted {
    fn n_features(&self) -> usize {
        self.coef.len()
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
        let z = self.intercept + self.coef.iter().zip(row).map(|(w, v)| w * v).sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Params;
    use crate::models::testutil::{accuracy, ids, toy};

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
}
