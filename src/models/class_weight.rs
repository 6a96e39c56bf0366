//! `class_weight`, the parameter every algorithm accepts: scikit-learn's
//! `class_weight="balanced"` or an explicit `{class name: weight}` map.
//!
//! The weights are resolved inside each fit, on the labels that fit sees, so `balanced`
//! is computed on each cross-validation fold's own training rows (as scikit-learn's
//! `compute_class_weight` on the `y` passed to `fit`): `n_rows / (K · count_k)` with K the
//! classes present in those rows. A class without rows gets weight 1 (it never weighs
//! anything). In a map, classes not named weigh 1. What each algorithm does with the
//! weights is in its module: trees weight impurity and leaf fractions, the SVM scales `C`
//! per class, the boosters and logistic regression weight rows.
//!
//! `null` resolves to `None`, and each algorithm keeps its unweighted code path for it, so
//! a fit without weights is bit-identical to one from before weights existed.

use crate::models::params::{CLASS_WEIGHT, Reader};
use crate::models::{Labels, ModelError, ParamError, ParamValue};

/// The per-class weights of a fit (indexed by class id), or `None` without `class_weight`.
/// Explicit names are looked up in `labels.names` (class ids as text when the fit has no
/// names); an unknown name is an error, which the sweep reports earlier with its line.
pub fn resolve(r: &Reader<'_>, labels: &Labels<'_>) -> Result<Option<Vec<f64>>, ModelError> {
    let value = match r.params.get(CLASS_WEIGHT.name) {
        None | Some(ParamValue::Null) => return Ok(None),
        Some(v) => v,
    };
    let k = labels.n_classes;
    match value {
        ParamValue::Str(s) if s == "balanced" => Ok(Some(balanced(labels.ids, k))),
        ParamValue::Map(map) => {
            let mut weights = vec![1.0; k];
            for (name, &w) in map {
                let Some(c) = (0..k).find(|&c| labels.name(c) == *name) else {
                    let known: Vec<String> = (0..k).map(|c| labels.name(c)).collect();
                    return Err(invalid(
                        r,
                        value,
                        format!("a map of known classes ({})", known.join(", ")),
                    ));
                };
                weights[c] = w;
            }
            Ok(Some(weights))
        }
        _ => Err(invalid(r, value, CLASS_WEIGHT.kind.to_string())),
    }
}

fn invalid(r: &Reader<'_>, got: &ParamValue, expected: String) -> ModelError {
    ModelError::Param(ParamError::Invalid {
        algorithm: r.algorithm,
        key: CLASS_WEIGHT.name.into(),
        expected,
        got: got.clone(),
    })
}

/// scikit-learn's `compute_class_weight("balanced")`: `n / (K_present · count_k)` for the
/// classes present in `ids`; 1 for a class without rows.
pub fn balanced(ids: &[u32], n_classes: usize) -> Vec<f64> {
    let mut counts = vec![0usize; n_classes];
    for &c in ids {
        counts[c as usize] += 1;
    }
    let present = counts.iter().filter(|&&c| c > 0).count() as f64;
    let n = ids.len() as f64;
    counts
        .iter()
        .map(|&c| if c > 0 { n / (present * c as f64) } else { 1.0 })
        .collect()
}

/// Each row's weight: its class's.
pub fn per_row(class_weights: &[f64], ids: &[u32]) -> Vec<f64> {
    ids.iter().map(|&c| class_weights[c as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Params;

    fn resolved(value: ParamValue, labels: &Labels<'_>) -> Result<Option<Vec<f64>>, ModelError> {
        let params: Params = [("class_weight".to_string(), value)].into();
        let r = Reader {
            algorithm: "t",
            params: &params,
        };
        resolve(&r, labels)
    }

    #[test]
    fn balanced_is_scikit_learns() {
        // 6 rows: class 0 ×3, class 2 ×1, class 3 ×2, class 1 absent → K_present = 3
        let w = balanced(&[0, 0, 0, 2, 3, 3], 4);
        assert_eq!(w, vec![6.0 / 9.0, 1.0, 2.0, 1.0]);
    }

    #[test]
    fn explicit_weights_resolve_by_class_name() {
        let names = ["normal".to_string(), "neptune".into(), "u2r".into()];
        let labels = Labels {
            ids: &[0, 1, 2],
            n_classes: 3,
            names: Some(&names),
        };
        let map = [("u2r".to_string(), 50.0), ("neptune".into(), 0.5)].into();
        let w = resolved(ParamValue::Map(map), &labels).unwrap();
        assert_eq!(w, Some(vec![1.0, 0.5, 50.0]));
        let e = resolved(ParamValue::Map([("r2l".to_string(), 2.0)].into()), &labels)
            .unwrap_err()
            .to_string();
        assert!(e.contains("normal, neptune, u2r"), "{e}");
        assert_eq!(resolved(ParamValue::Null, &labels).unwrap(), None);
        // without names, classes are named by their ids
        let unnamed = Labels {
            names: None,
            ..labels
        };
        let w = resolved(ParamValue::Map([("2".to_string(), 3.0)].into()), &unnamed).unwrap();
        assert_eq!(w, Some(vec![1.0, 1.0, 3.0]));
    }
}
