//! `netsec export --format onnx` against onnxruntime: for every algorithm, a model swept by
//! `experiment run` is exported, its rows are predicted by `netsec predict --probabilities`
//! and by onnxruntime (`scripts/onnx_parity.py`, run with the Python of the venv that
//! `scripts/test` installs onnxruntime into), and every output must agree: P(attack) and each
//! class's probability within [`TOLERANCE`], the predicted label on every row.
//!
//! Two data sets: 3,000 rows of `phishing.csv` (binary, integer columns) trained on, and the
//! next 3,000 predicted; and `netsec data synth --profile nsl-kdd` rows (multi-class, three
//! categorical columns), with empty cells in two numeric columns and a categorical one (the
//! trees learn where missing values go, the other learners fill them with medians) and, in
//! the predicted rows only, categories the schema does not list (the `<other>` slot).
//!
//! onnxruntime comes from `NETSEC_ONNX_PYTHON` (set by `scripts/test`), else the venv's
//! default place under `$NETSEC_CACHE`; when neither exists the tests fail, never skip.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{Run, netsec, netsec_command, phishing_csv, repo_file, s};

/// Largest difference allowed between onnxruntime's and `netsec predict`'s probabilities.
const TOLERANCE: f64 = 1e-5;

/// The algorithms, each with the one grid point swept.
const ALGORITHMS: [(&str, &str); 6] = [
    ("decision_tree", "{ max_depth: [8] }"),
    ("random_forest", "{ n_estimators: [16] }"),
    ("gradient_boosting", "{ n_estimators: [20] }"),
    ("adaboost", "{ n_estimators: [30] }"),
    ("logistic_regression", "{ c: [1.0] }"),
    ("svm", "{ c: [1.0] }"),
];

/// The Python interpreter that has onnxruntime.
fn onnx_python() -> PathBuf {
    let (python, from_env) = match std::env::var_os("NETSEC_ONNX_PYTHON") {
        Some(p) => (PathBuf::from(p), true),
        None => {
            let cache = std::env::var_os("NETSEC_CACHE").map_or_else(
                || {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/netsec-ci")
                },
                PathBuf::from,
            );
            (cache.join("onnxruntime-venv/bin/python"), false)
        }
    };
    assert!(
        python.is_file(),
        "onnxruntime's Python not found at {} ({}). Run the tests with `scripts/test`, which \
         installs onnxruntime into $NETSEC_CACHE/onnxruntime-venv, or point \
         NETSEC_ONNX_PYTHON at a Python that imports onnxruntime.",
        python.display(),
        if from_env {
            "from NETSEC_ONNX_PYTHON"
        } else {
            "default; NETSEC_ONNX_PYTHON unset"
        }
    );
    python
}

/// A data set to sweep and the rows to predict.
struct Case<'a> {
    name: &'a str,
    train: &'a Path,
    schema: &'a Path,
    /// Extra keys of the grid's `data:` (e.g. a `group`).
    data_extra: &'a str,
    predict: &'a Path,
}

/// Sweeps, predicts, exports and compares every algorithm on `case`; returns the parity
/// report of each algorithm (`scripts/onnx_parity.py`'s JSON).
fn parity(dir: &Path, case: &Case<'_>) -> Vec<(&'static str, Value)> {
    let python = onnx_python();
    let mut reports = Vec::new();
    for (algorithm, grid) in ALGORITHMS {
        let grid_file = dir.join(format!("{}_{algorithm}.yaml", case.name));
        std::fs::write(
            &grid_file,
            format!(
                "name: {name}-{algorithm}\n\
                 data: {{ source: csv, path: {}, schema: {}{} }}\n\
                 split: {{ test_fraction: 0.2, seed: 1 }}\ncv: {{ folds: 2 }}\n\
                 select: {{ metric: macro_f1 }}\n\
                 models:\n  - algorithm: {algorithm}\n    grid: {grid}\n",
                s(case.train),
                s(case.schema),
                case.data_extra,
                name = case.name,
            ),
        )
        .unwrap();
        let model = dir.join(format!("{}_{algorithm}.json", case.name));
        netsec(&[
            "experiment",
            "run",
            s(&grid_file),
            "--state-dir",
            s(&dir.join(format!("state_{}", case.name))),
            "-q",
            "--model-out",
            s(&model),
        ])
        .expect_code(0);
        let predicted = dir.join(format!("{}_{algorithm}_predicted.csv", case.name));
        netsec(&[
            "predict",
            "-m",
            s(&model),
            "-i",
            s(case.predict),
            "-o",
            s(&predicted),
            "--probabilities",
            "-q",
        ])
        .expect_code(0);
        let onnx = dir.join(format!("{}_{algorithm}.onnx", case.name));
        let export =
            netsec(&["export", s(&model), "--format", "onnx", "-o", s(&onnx)]).expect_code(0);
        assert!(export.stdout.contains(algorithm), "{}", export.stdout);
        // The same model exports to the same bytes.
        let again = dir.join(format!("{}_{algorithm}_again.onnx", case.name));
        netsec(&["export", s(&model), "--format", "onnx", "-o", s(&again)]).expect_code(0);
        assert_eq!(
            std::fs::read(&onnx).unwrap(),
            std::fs::read(&again).unwrap()
        );

        let run = Run::of(
            std::process::Command::new(&python)
                .arg(repo_file("scripts/onnx_parity.py"))
                .args([&onnx, case.predict, &predicted]),
        )
        .expect_code(0);
        let report: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{algorithm}: {e}: {}", run.stdout));
        let file: Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
        check(algorithm, &report, &file, &model);
        println!(
            "{}: {algorithm}: max |Δ attack_probability| {:.1e}, max |Δ p_class| {:.1e}",
            case.name,
            report["attack_probability"].as_f64().unwrap(),
            report["class_probabilities"].as_f64().unwrap()
        );
        reports.push((algorithm, report));
    }
    reports
}

/// One algorithm's parity report against its model file.
fn check(algorithm: &str, report: &Value, file: &Value, model: &Path) {
    let classes: Vec<String> = match file["classes"]["names"].as_array() {
        Some(names) => names
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect(),
        None => ["negative", "positive"]
            .iter()
            .map(|k| {
                file["schema"]["label"]["names"][k]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect(),
    };
    let mut expected = vec![
        "predicted_label".to_owned(),
        "attack_probability".to_owned(),
    ];
    expected.extend(classes.iter().map(|c| format!("p_{c}")));
    assert_eq!(
        report["outputs"],
        serde_json::json!(expected),
        "{algorithm}"
    );
    for (name, shape) in report["output_shapes"].as_object().unwrap() {
        assert_eq!(
            shape,
            &serde_json::json!([report["rows"]]),
            "{algorithm}: {name} is [N]"
        );
    }
    for figure in ["attack_probability", "class_probabilities"] {
        let diff = report[figure].as_f64().unwrap();
        assert!(
            diff <= TOLERANCE,
            "{algorithm}: {figure} differs by {diff:e} from netsec predict"
        );
    }
    assert_eq!(
        report["label_mismatch_count"], 0,
        "{algorithm}: predicted_label differs on rows {}",
        report["label_mismatches"]
    );
    let meta = &report["metadata"];
    let sha = netsec::shared::hash::hex(&<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(model).unwrap(),
    ));
    assert_eq!(meta["sha256"], sha.as_str(), "{algorithm}");
    assert_eq!(meta["algorithm"], file["algorithm"], "{algorithm}");
    assert_eq!(meta["version"], file["trial_key"], "{algorithm}");
    assert_eq!(meta["schema_hash"], file["schema"]["hash"], "{algorithm}");
    assert_eq!(
        meta["classes"],
        serde_json::to_string(&classes).unwrap().as_str(),
        "{algorithm}"
    );
}

#[test]
fn onnx_answers_as_predict_on_phishing() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(phishing_csv()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let train = dir.path().join("train.csv");
    std::fs::write(&train, lines[..3001].join("\n") + "\n").unwrap();
    let predict = dir.path().join("predict.csv");
    let rows = [&lines[..1], &lines[3001..6001]].concat();
    std::fs::write(&predict, rows.join("\n") + "\n").unwrap();
    let reports = parity(
        dir.path(),
        &Case {
            name: "phishing",
            train: &train,
            schema: &repo_file("data_schema/phishing.yaml"),
            data_extra: "",
            predict: &predict,
        },
    );
    assert_eq!(reports.len(), 6);
}

/// `netsec data synth --profile nsl-kdd` rows with holes: every 13th cell of the columns
/// `src_bytes` (integer), `serror_rate` (float) and `service` (categorical) by a rule on
/// row and column, and with `unseen` also `service = gopher` on every 17th row and
/// `flag = XYZ` on every 23rd (values the schema does not list).
fn nsl_kdd(dir: &Path, name: &str, rows: usize, seed: u64, unseen: bool) -> PathBuf {
    let raw = dir.join(format!("{name}_raw.csv"));
    netsec(&[
        "data",
        "synth",
        "--profile",
        "nsl-kdd",
        "--rows",
        &rows.to_string(),
        "--seed",
        &seed.to_string(),
        "-o",
        s(&raw),
        "-q",
    ])
    .expect_code(0);
    let text = std::fs::read_to_string(&raw).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let holes = [at("src_bytes"), at("serror_rate"), at("service")];
    let mut out = vec![header.join(",")];
    for (i, line) in lines.enumerate() {
        let mut cells: Vec<&str> = line.split(',').collect();
        for &c in &holes {
            if (i * 7 + c) % 13 == 0 {
                cells[c] = "";
            }
        }
        if unseen && i % 17 == 0 {
            cells[at("service")] = "gopher";
        }
        if unseen && i % 23 == 0 {
            cells[at("flag")] = "XYZ";
        }
        out.push(cells.join(","));
    }
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
    path
}

#[test]
fn onnx_answers_as_predict_on_multiclass_rows_with_missing_and_unseen_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = nsl_kdd(d, "train", 4000, 3, false);
    let predict = nsl_kdd(d, "predict", 3000, 4, true);
    let text = std::fs::read_to_string(&predict).unwrap();
    assert!(text.contains(",gopher,") && text.contains(",XYZ,") && text.contains(",,"));
    // The shipped schema with empty cells allowed in the three columns.
    let schema = std::fs::read_to_string(repo_file("data_schema/nsl-kdd.yaml"))
        .unwrap()
        .replace(
            "{ name: src_bytes, type: integer, min: 0 }",
            "{ name: src_bytes, type: integer, min: 0, nullable: true }",
        )
        .replace(
            "{ name: serror_rate, type: float, min: 0, max: 1 }",
            "{ name: serror_rate, type: float, min: 0, max: 1, nullable: true }",
        )
        .replace(
            "{ name: service, type: categorical,",
            "{ name: service, type: categorical, nullable: true,",
        )
        // 0/1 read as a boolean column: a `bool` input of the graph.
        .replace(
            "{ name: logged_in, type: integer, values: [0, 1] }",
            "{ name: logged_in, type: boolean }",
        );
    assert_eq!(schema.matches("nullable: true").count(), 3);
    assert_eq!(schema.matches("type: boolean").count(), 1);
    let schema_path = d.join("nsl-kdd.yaml");
    std::fs::write(&schema_path, schema).unwrap();
    // Classes too rare for two folds are learned as one.
    let label_at = text.lines().next().unwrap().split(',').count() - 1;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for line in std::fs::read_to_string(&train).unwrap().lines().skip(1) {
        *counts
            .entry(line.split(',').nth(label_at).unwrap().to_owned())
            .or_default() += 1;
    }
    let rare: Vec<&str> = counts
        .iter()
        .filter(|(_, n)| **n < 20)
        .map(|(c, _)| c.as_str())
        .collect();
    assert!(rare.len() >= 2, "{counts:?}");
    let group = format!(", group: {{ rare: [{}] }}", rare.join(", "));
    let reports = parity(
        d,
        &Case {
            name: "nslkdd",
            train: &train,
            schema: &schema_path,
            data_extra: &group,
            predict: &predict,
        },
    );
    assert_eq!(reports.len(), 6);
    // Inputs typed as a CSV reader types the columns.
    let types = &reports[0].1["input_types"];
    assert_eq!(types["src_bytes"], "tensor(double)", "nullable integer");
    assert_eq!(types["duration"], "tensor(int64)");
    assert_eq!(types["serror_rate"], "tensor(double)");
    assert_eq!(types["logged_in"], "tensor(bool)");
    assert_eq!(types["service"], "tensor(string)");
    assert!(types.get("num_outbound_cmds").is_none(), "excluded column");
    assert!(types.get("label").is_none());
    // The filled learners really were fitted on median-filled rows, and the trees on NaN.
    for (algorithm, imputed) in [("adaboost", true), ("svm", true), ("random_forest", false)] {
        let model = std::fs::read_to_string(d.join(format!("nslkdd_{algorithm}.json"))).unwrap();
        assert_eq!(
            model.contains(r#""algorithm":"imputed""#),
            imputed,
            "{algorithm}"
        );
    }
}

#[test]
fn export_refuses_files_that_are_not_models_and_unknown_formats() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.onnx");
    std::fs::write(&out, "previous").unwrap();
    let not_a_model = netsec(&[
        "export",
        s(&phishing_csv()),
        "--format",
        "onnx",
        "-o",
        s(&out),
    ])
    .expect_code(2);
    assert!(
        not_a_model.stderr.contains("not a netsec model file"),
        "{}",
        not_a_model.stderr
    );
    let missing = netsec(&[
        "export",
        s(&dir.path().join("nope.json")),
        "--format",
        "onnx",
        "-o",
        s(&out),
    ])
    .expect_code(2);
    assert!(missing.stderr.contains("nope.json"), "{}", missing.stderr);
    let model = repo_file("tests/it/fixtures/phishing_tree_01f8b8b.json");
    let unknown =
        Run::of(netsec_command().args(["export", s(&model), "--format", "pmml", "-o", s(&out)]))
            .expect_code(2);
    assert!(
        unknown.stderr.contains("invalid value 'pmml'") && unknown.stderr.contains("onnx"),
        "{}",
        unknown.stderr
    );
    // Nothing was written over the existing file, and no temporary file is left.
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // The fixture exports.
    netsec(&["export", s(&model), "--format", "onnx", "-o", s(&out)]).expect_code(0);
    assert_ne!(std::fs::read(&out).unwrap(), b"previous");
}
