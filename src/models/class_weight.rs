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
    use crate::models::testutil::{ids, toy, toy3};
    use crate::models::{Params, algorithm, algorithms};
    use ndarray::{Array2, Axis};

    fn with(value: ParamValue) -> Params {
        [("class_weight".to_string(), value)].into()
    }

    /// A 95/5 problem: every normal row of the toy data, and every 19th attack row.
    fn rare_attacks(n: usize) -> (Array2<f64>, Vec<u32>) {
        let (x, y) = toy(n, 6, 3);
        let mut seen = 0;
        let keep: Vec<usize> = (0..n)
            .filter(|&i| {
                if !y[i] {
                    return true;
                }
                seen += 1;
                seen % 19 == 0
            })
            .collect();
        let y: Vec<bool> = keep.iter().map(|&i| y[i]).collect();
        (x.select(Axis(0), &keep), ids(&y))
    }

    #[test]
    fn a_weight_of_two_equals_duplicated_rows_for_the_decision_tree() {
        let (x, y) = toy(300, 5, 8);
        let y = ids(&y);
        let dt = algorithm("decision_tree").unwrap();
        let weighted = dt
            .fit(
                &with(ParamValue::Map([("1".to_string(), 2.0)].into())),
                x.view(),
                &y,
                2,
                0,
            )
            .unwrap();
        let twice: Vec<usize> = (0..y.len())
            .flat_map(|i| if y[i] == 1 { vec![i, i] } else { vec![i] })
            .collect();
        let y2: Vec<u32> = twice.iter().map(|&i| y[i]).collect();
        let duplicated = dt
            .fit(&Params::new(), x.select(Axis(0), &twice).view(), &y2, 2, 0)
            .unwrap();
        assert_eq!(
            weighted.predict_proba(x.view()).unwrap(),
            duplicated.predict_proba(x.view()).unwrap()
        );
        // and the weight changed something
        let plain = dt.fit(&Params::new(), x.view(), &y, 2, 0).unwrap();
        assert_ne!(
            weighted.predict_proba(x.view()).unwrap(),
            plain.predict_proba(x.view()).unwrap()
        );
    }

    #[test]
    fn a_weight_of_three_equals_tripled_rows_for_a_three_class_tree() {
        let (x, y) = toy3(300, 4, 2);
        let dt = algorithm("decision_tree").unwrap();
        let names = ["a".to_string(), "b".into(), "c".into()];
        let weighted = dt
            .fit_named(
                &with(ParamValue::Map([("c".to_string(), 3.0)].into())),
                x.view(),
                &y,
                &names,
                0,
            )
            .unwrap();
        let tripled: Vec<usize> = (0..y.len())
            .flat_map(|i| if y[i] == 2 { vec![i; 3] } else { vec![i] })
            .collect();
        let y3: Vec<u32> = tripled.iter().map(|&i| y[i]).collect();
        let copies = dt
            .fit(
                &Params::new(),
                x.select(Axis(0), &tripled).view(),
                &y3,
                3,
                0,
            )
            .unwrap();
        assert_eq!(
            weighted.predict_proba(x.view()).unwrap(),
            copies.predict_proba(x.view()).unwrap()
        );
        let plain = dt.fit(&Params::new(), x.view(), &y, 3, 0).unwrap();
        assert_ne!(
            weighted.predict_proba(x.view()).unwrap(),
            plain.predict_proba(x.view()).unwrap()
        );
    }

    #[test]
    fn balanced_moves_every_algorithm_toward_the_rare_class() {
        let (x, y) = rare_attacks(1200);
        let attacks = y.iter().filter(|&&c| c == 1).count();
        assert!(attacks * 100 < y.len() * 7, "{attacks} of {}", y.len());
        for a in algorithms() {
            let mut plain = Params::new();
            if a.name() == "svm" {
                plain.insert("kernel".into(), ParamValue::str("linear"));
            }
            let mut balanced = plain.clone();
            balanced.insert("class_weight".into(), ParamValue::str("balanced"));
            let share = |p: &Params| {
                let m = a.fit(p, x.view(), &y, 2, 1).unwrap();
                let proba = m.predict_proba(x.view()).unwrap();
                let flagged = proba.column(1).iter().filter(|&&p| p >= 0.5).count();
                let recall = y
                    .iter()
                    .zip(proba.column(1))
                    .filter(|&(&c, &p)| c == 1 && p >= 0.5)
                    .count();
                (proba.column(1).mean().unwrap(), flagged, recall)
            };
            let (p0, flagged0, recall0) = share(&plain);
            let (p1, flagged1, recall1) = share(&balanced);
            assert!(p1 > p0, "{}: mean P(attack) {p0} -> {p1}", a.name());
            assert!(
                flagged1 > flagged0,
                "{}: {flagged0} -> {flagged1}",
                a.name()
            );
            assert!(recall1 >= recall0, "{}: {recall0} -> {recall1}", a.name());
        }
    }

    #[test]
    fn balanced_raises_a_rare_class_among_three() {
        let (x, y) = toy3(900, 4, 5);
        // keep one row in 15 of class 2
        let mut seen = 0;
        let keep: Vec<usize> = (0..y.len())
            .filter(|&i| {
                if y[i] != 2 {
                    return true;
                }
                seen += 1;
                seen % 15 == 0
            })
            .collect();
        let (x, y): (Array2<f64>, Vec<u32>) = (
            x.select(Axis(0), &keep),
            keep.iter().map(|&i| y[i]).collect(),
        );
        for a in algorithms() {
            let p_rare = |p: &Params| {
                let m = a.fit(p, x.view(), &y, 3, 1).unwrap();
                m.predict_proba(x.view()).unwrap().column(2).mean().unwrap()
            };
            let p0 = p_rare(&Params::new());
            let p1 = p_rare(&with(ParamValue::str("balanced")));
            assert!(p1 > p0, "{}: mean P(rare) {p0} -> {p1}", a.name());
        }
    }

    #[test]
    fn explicit_weights_reach_the_fit_by_name() {
        let (x, y) = rare_attacks(600);
        let names = ["normal".to_string(), "attack".into()];
        let lr = algorithm("logistic_regression").unwrap();
        let map = with(ParamValue::Map([("attack".to_string(), 10.0)].into()));
        let named = lr.fit_named(&map, x.view(), &y, &names, 0).unwrap();
        let by_id = lr
            .fit(
                &with(ParamValue::Map([("1".to_string(), 10.0)].into())),
                x.view(),
                &y,
                2,
                0,
            )
            .unwrap();
        assert_eq!(named, by_id);
        let e = lr.fit(&map, x.view(), &y, 2, 0).unwrap_err().to_string();
        assert!(e.contains("known classes (0, 1)"), "{e}");
    }

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
