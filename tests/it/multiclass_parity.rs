//! Multi-class parity with scikit-learn on the same rows: every algorithm, pooled
//! out-of-fold predictions of the same 5 stratified folds of an `nsl-kdd` sample.
//!
//! The sample: `netsec data synth --profile nsl-kdd` rows, at most [`PER_CLASS`] rows of each
//! class (the first ones), classes with fewer than [`MIN_CLASS_ROWS`] rows dropped, so the
//! rarest class kept has at least that many and every fold holds it. The rows (encoded
//! features, class ids, folds, fingerprint) are written to
//! `$CARGO_TARGET_TMPDIR/nsl_kdd_parity.json`; `scripts/sklearn_same_rows.py --multiclass`
//! fits scikit-learn on them and prints the [`SKLEARN`] table below. A changed data set
//! changes the fingerprint and fails the test instead of comparing with stale figures.
//!
//! Each algorithm's macro-F1 and accuracy must come within 1 point of scikit-learn's, except
//! the [`KNOWN_GAPS`], held to their measured gap; the per-class recalls are printed side by
//! side (the README's table).
//!
//! Every case runs twice, as given and with `class_weight: balanced` (label `…_bal`; the
//! scikit-learn side is `class_weight="balanced"`, or `fit(sample_weight=
//! compute_sample_weight("balanced", y))` for gradient boosting and AdaBoost, which have no
//! `class_weight`). The balanced fits are held to the same tolerance, and the recall of the
//! sample's rarest class must not drop under balanced weights, in netsec nor in scikit-learn
//! (except [`BALANCED_LOWERS`], held to dropping in both); the second table printed is the
//! README's class-weight table.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array2, Axis};
use netsec::data::split::stratified_kfold_ids;
use netsec::data::{Schema, dataset_from_table, load_file};
use netsec::models::metrics::Metrics;
use netsec::models::{ParamValue, Params, algorithm};

use crate::common::netsec_command;

const ROWS: usize = 60_000;
const SEED: u64 = 7;
const PER_CLASS: usize = 300;
const MIN_CLASS_ROWS: usize = 30;
const FOLDS: usize = 5;
/// Tolerance on macro-F1 and accuracy: 1 point.
const TOLERANCE: f64 = 0.01;

/// Cases that do not reach parity yet, with the gap they are held to (so that a change for
/// the worse still fails) and why. Measured on this sample (see the README's table):
/// - the one-vs-one SVM fits each pair's Platt sigmoid on 5-fold cross-validated decision
///   values as libsvm does, but its shuffle is netsec's (ChaCha from the fit seed), not
///   scikit-learn's mt19937; measured 0.0148 accuracy / 0.0389 macro-F1 below. That gap is
///   the luck of the folds, not the method: with scikit-learn's shuffle swapped in, netsec
///   gives 0.3651 / 0.3663 (per-pair A, B equal to `probA_`/`probB_` to 1e-3), and
///   scikit-learn itself moves over 0.338–0.365 / 0.317–0.367 across `random_state` 0–6
///   and 42 (netsec over fit seeds 1–5 and 42: 0.347–0.366 / 0.328–0.345). On this unscaled
///   data six of the eleven classes are nearly indistinguishable to the RBF machine, so
///   their pairwise probabilities sit near 0.5 and the folds decide their argmax.
/// - `svm_rbf_bal`, the same machine with `class_weight: balanced` (C per class, in the Platt
///   folds too): measured 0.0119 accuracy / 0.0351 macro-F1 below, for the same reason.
const KNOWN_GAPS: &[(&str, f64)] = &[("svm_rbf", 0.045), ("svm_rbf_bal", 0.04)];

/// Algorithms (case labels) whose rarest-class recall `class_weight: balanced` lowers, in
/// scikit-learn as in netsec, on this sample; every other case must not lower it.
/// - `svm_rbf`: the rarest class, `pod`, goes from 0.7767 to 0.0000 in both, with identical
///   per-class figures on both sides, so it is the method on this sample and not netsec's
///   code. The weighted machines do move toward `pod`: scikit-learn's pairwise vote
///   (`SVC.predict`) on the same folds takes `pod`'s recall from 0.000 to 0.816. It is the
///   probability path, each pair's Platt sigmoid refitted on cross-validated decision values
///   and then coupled, that no longer makes `pod` the most probable class (measured with
///   scikit-learn 1.9.1; why the sigmoids land there was not examined).
const BALANCED_LOWERS: &[&str] = &["svm_rbf"];

/// (label, algorithm, params as JSON); the scikit-learn side is in
/// `scripts/sklearn_same_rows.py`'s MULTICLASS_CASES under the same labels.
const CASES: &[(&str, &str, &str)] = &[
    ("dt_gini", "decision_tree", r#"{"criterion":"gini"}"#),
    ("rf_64", "random_forest", r#"{"n_estimators":64}"#),
    ("gb_50", "gradient_boosting", r#"{"n_estimators":50}"#),
    ("ada_50", "adaboost", r#"{"n_estimators":50}"#),
    ("logreg", "logistic_regression", r#"{"max_iter":1000}"#),
    ("svm_rbf", "svm", r#"{}"#),
];

// Printed by `scripts/sklearn_same_rows.py --multiclass $CARGO_TARGET_TMPDIR/nsl_kdd_parity.json`.
// (label, accuracy, macro-F1, recall per class in class-id order).
// sklearn 1.9.1, 3103 rows, 11 classes
const FINGERPRINT: &str = "316da8a7aca58b14d21e2f21393b0385b461544301fb9cb479425a7056030cbf";
const SKLEARN: &[(&str, f64, f64, &[f64])] = &[
    (
        "dt_gini",
        0.8463,
        0.8496,
        &[
            0.9333, 0.8967, 0.9433, 0.8167, 0.5833, 0.8738, 0.8200, 0.7833, 0.9500, 0.9433, 0.7833,
        ],
    ), // 0.2 s
    (
        "rf_64",
        0.9275,
        0.9319,
        &[
            0.9467, 0.9333, 0.9633, 0.9200, 0.8633, 0.9320, 0.9033, 0.9067, 0.9667, 0.9567, 0.9133,
        ],
    ), // 1.1 s
    (
        "gb_50",
        0.9188,
        0.9231,
        &[
            0.9400, 0.9267, 0.9600, 0.9000, 0.8767, 0.9126, 0.8867, 0.8967, 0.9600, 0.9467, 0.8967,
        ],
    ), // 23.3 s
    (
        "ada_50",
        0.7615,
        0.7681,
        &[
            0.7967, 0.8800, 0.8433, 0.7700, 0.9600, 0.5437, 0.5333, 0.6033, 0.9233, 0.8500, 0.5300,
        ],
    ), // 1.4 s
    (
        "logreg",
        0.5466,
        0.4898,
        &[
            0.8267, 0.3367, 0.7800, 0.0533, 0.6000, 0.0485, 0.1100, 0.7933, 0.9067, 0.7167, 0.5133,
        ],
    ), // 53.2 s
    (
        "svm_rbf",
        0.3648,
        0.3665,
        &[
            0.8300, 0.0133, 0.1733, 0.4800, 0.4633, 0.7767, 0.1933, 0.0033, 0.8467, 0.1800, 0.3233,
        ],
    ), // 8.3 s
    (
        "dt_gini_bal",
        0.8408,
        0.8445,
        &[
            0.9300, 0.8900, 0.9300, 0.8000, 0.5667, 0.9126, 0.8100, 0.7933, 0.9433, 0.9300, 0.7900,
        ],
    ), // 0.2 s
    (
        "rf_64_bal",
        0.9285,
        0.9328,
        &[
            0.9467, 0.9500, 0.9600, 0.9267, 0.8633, 0.9417, 0.8933, 0.9133, 0.9667, 0.9500, 0.9100,
        ],
    ), // 1.7 s
    (
        "gb_50_bal",
        0.9201,
        0.9244,
        &[
            0.9400, 0.9267, 0.9567, 0.9067, 0.8833, 0.9223, 0.8867, 0.9000, 0.9633, 0.9433, 0.8933,
        ],
    ), // 31.8 s
    (
        "ada_50_bal",
        0.7802,
        0.7929,
        &[
            0.7933, 0.8367, 0.8533, 0.8300, 0.9433, 0.7767, 0.6500, 0.5267, 0.8967, 0.8733, 0.6000,
        ],
    ), // 1.7 s
    (
        "logreg_bal",
        0.5446,
        0.5152,
        &[
            0.8267, 0.3167, 0.7733, 0.0433, 0.4233, 0.8544, 0.1133, 0.7867, 0.8967, 0.7300, 0.4300,
        ],
    ), // 268.1 s
    (
        "svm_rbf_bal",
        0.3387,
        0.2934,
        &[
            0.8300, 0.0033, 0.1633, 0.4800, 0.4567, 0.0000, 0.1933, 0.0033, 0.8567, 0.1700, 0.3467,
        ],
    ), // 7.7 s
];

#[test]
fn multiclass_matches_sklearn_on_the_same_folds() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("nsl-kdd.csv");
    let status = netsec_command()
        .args(["data", "synth", "--profile", "nsl-kdd", "--rows"])
        .arg(ROWS.to_string())
        .args(["--seed", &SEED.to_string(), "-o"])
        .arg(&csv)
        .status()
        .unwrap();
    assert!(status.success());
    let schema =
        Schema::from_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data_schema/nsl-kdd.yaml"))
            .unwrap();
    let data = dataset_from_table(&load_file(&csv).unwrap(), &schema).unwrap();

    // The sample: the first PER_CLASS rows of each class with at least MIN_CLASS_ROWS.
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (row, &class) in data.class_ids.iter().enumerate() {
        by_class.entry(class).or_default().push(row);
    }
    let mut rows: Vec<usize> = by_class
        .values()
        .filter(|rows| rows.len() >= MIN_CLASS_ROWS)
        .flat_map(|rows| rows.iter().copied().take(PER_CLASS))
        .collect();
    rows.sort_unstable();
    let sample = data.select(&rows);
    // Class ids renumbered over the classes kept, in the same (name) order.
    let kept: Vec<u32> = by_class
        .iter()
        .filter(|(_, rows)| rows.len() >= MIN_CLASS_ROWS)
        .map(|(&c, _)| c)
        .collect();
    let y: Vec<u32> = sample
        .class_ids
        .iter()
        .map(|c| kept.iter().position(|k| k == c).unwrap() as u32)
        .collect();
    let classes = netsec::shared::Classes {
        names: kept
            .iter()
            .map(|&c| data.classes.names[c as usize].clone())
            .collect(),
        normal: kept
            .iter()
            .map(|&c| data.classes.normal[c as usize])
            .collect(),
    };
    let all: Vec<usize> = (0..y.len()).collect();
    let folds = stratified_kfold_ids(&y, &all, FOLDS, SEED);
    let rows_json = serde_json::json!({
        "features": sample.features.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
        "labels": y,
        "classes": classes.names,
        "folds": folds,
        "fingerprint": sample.fingerprint,
    });
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nsl_kdd_parity.json");
    std::fs::write(&out, rows_json.to_string()).unwrap();
    eprintln!(
        "{} rows, {} classes; rows for scikit-learn: {}",
        y.len(),
        classes.len(),
        out.display()
    );
    assert_eq!(
        sample.fingerprint,
        FINGERPRINT,
        "the nsl-kdd sample changed: rerun scripts/sklearn_same_rows.py --multiclass {} and \
         store its table here",
        out.display()
    );

    let mut failures = Vec::new();
    // The pooled out-of-fold metrics of one algorithm and parameter set.
    let pooled = |label: &str, name: &str, params: &Params| -> Metrics {
        let algo = algorithm(name).unwrap();
        let mut proba = Array2::<f64>::zeros((y.len(), classes.len()));
        for val in &folds {
            let mut in_val = vec![false; y.len()];
            val.iter().for_each(|&r| in_val[r] = true);
            let fit: Vec<usize> = (0..y.len()).filter(|&r| !in_val[r]).collect();
            let y_fit: Vec<u32> = fit.iter().map(|&r| y[r]).collect();
            let model = algo
                .fit_named(
                    params,
                    sample.features.select(Axis(0), &fit).view(),
                    &y_fit,
                    &classes.names,
                    42,
                )
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let p = model
                .predict_proba(sample.features.select(Axis(0), val).view())
                .unwrap();
            for (i, &r) in val.iter().enumerate() {
                proba.row_mut(r).assign(&p.row(i));
            }
        }
        Metrics::compute(&y, proba.view(), &classes)
    };
    // The rarest class of the sample, whose recall `class_weight: balanced` must not lower.
    let mut counts = vec![0usize; classes.len()];
    y.iter().for_each(|&c| counts[c as usize] += 1);
    let rarest = (0..classes.len()).min_by_key(|&c| counts[c]).unwrap();
    // Per algorithm: (label, rarest recall, macro-F1) without and with balanced weights.
    let mut balanced_rows = Vec::new();
    eprintln!(
        "| case | netsec acc | sklearn acc | netsec macro-F1 | sklearn macro-F1 | recall per class (netsec / sklearn) |"
    );
    eprintln!("|---|---|---|---|---|---|");
    let cases = CASES.iter().flat_map(|&(label, name, params)| {
        let params: Params = serde_json::from_str::<BTreeMap<String, ParamValue>>(params).unwrap();
        let mut balanced = params.clone();
        balanced.insert("class_weight".into(), ParamValue::str("balanced"));
        [
            (label.to_owned(), name, params),
            (format!("{label}_bal"), name, balanced),
        ]
    });
    for (label, name, params) in cases {
        let label = label.as_str();
        let m = pooled(label, name, &params);
        let report = m.classes.as_ref().unwrap();
        let Some(&(_, sk_acc, sk_macro, sk_recall)) = SKLEARN.iter().find(|s| s.0 == label) else {
            failures.push(format!("{label}: no scikit-learn figures stored"));
            eprintln!(
                "| {label} | {:.4} | - | {:.4} | - | - |",
                m.accuracy, report.macro_f1
            );
            let recall = report.per_class[rarest].recall;
            balanced_rows.push((
                label.to_owned(),
                recall,
                report.macro_f1,
                f64::NAN,
                f64::NAN,
            ));
            continue;
        };
        let recalls: Vec<String> = report
            .per_class
            .iter()
            .zip(sk_recall)
            .zip(&classes.names)
            .map(|((s, sk), name)| format!("{name} {:.3}/{sk:.3}", s.recall))
            .collect();
        eprintln!(
            "| {label} | {:.4} | {sk_acc:.4} | {:.4} | {sk_macro:.4} | {} |",
            m.accuracy,
            report.macro_f1,
            recalls.join(", ")
        );
        let tolerance = KNOWN_GAPS
            .iter()
            .find(|g| g.0 == label)
            .map_or(TOLERANCE, |g| g.1);
        if (m.accuracy - sk_acc).abs() > tolerance || (report.macro_f1 - sk_macro).abs() > tolerance
        {
            failures.push(format!(
                "{label}: accuracy {:.4} vs {sk_acc:.4}, macro-F1 {:.4} vs {sk_macro:.4}",
                m.accuracy, report.macro_f1
            ));
        }
        balanced_rows.push((
            label.to_owned(),
            report.per_class[rarest].recall,
            report.macro_f1,
            sk_recall[rarest],
            sk_macro,
        ));
    }

    // class_weight: balanced, side by side with the same case unweighted (the README's table).
    eprintln!(
        "\nrarest class: {} ({} rows of {})",
        classes.names[rarest],
        counts[rarest],
        y.len()
    );
    eprintln!(
        "| algorithm | rarest recall, netsec (none → balanced) | scikit-learn | macro-F1, netsec | scikit-learn |"
    );
    eprintln!("|---|---|---|---|---|");
    for pair in balanced_rows.chunks(2) {
        let [(label, r0, f0, sr0, sf0), (_, r1, f1, sr1, sf1)] = pair else {
            continue;
        };
        eprintln!(
            "| {label} | {r0:.4} → {r1:.4} | {sr0:.4} → {sr1:.4} | {f0:.4} → {f1:.4} | {sf0:.4} → {sf1:.4} |"
        );
        let rare = &classes.names[rarest];
        if BALANCED_LOWERS.contains(&label.as_str()) {
            // held to the direction scikit-learn takes, so a change of either side shows
            if !(r1 < r0 && sr1 < sr0) {
                failures.push(format!(
                    "{label}: listed in BALANCED_LOWERS but the recall of `{rare}` goes \
                     {r0:.4} -> {r1:.4} (scikit-learn {sr0:.4} -> {sr1:.4})"
                ));
            }
            continue;
        }
        if r1 < r0 {
            failures.push(format!(
                "{label}: balanced lowers the recall of `{rare}` from {r0:.4} to {r1:.4}"
            ));
        }
        if sr1 < sr0 || sr1.is_nan() {
            failures.push(format!(
                "{label}: scikit-learn's balanced counterpart lowers the recall of `{rare}` \
                 from {sr0:.4} to {sr1:.4}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
