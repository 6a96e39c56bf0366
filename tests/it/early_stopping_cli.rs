//! Early stopping of `gradient_boosting` through `netsec experiment run`: the rounds each
//! trial's model kept reach the JSON report, `experiment show`, the saved model file and the
//! trial's MLflow run, and a staged grid's smaller points take the stopped fit's prefix; bad
//! early-stopping values, and a class too small to set a validation part aside, exit 2
//! naming the field and line before anything is written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{netsec, netsec_command, repo_file, s};

/// A grid over 1200 generated phishing rows with `models` from line 7 on.
fn grid_file(dir: &Path, name: &str, models: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "name: {name}\ndata: {{ source: synthetic, profile: phishing, rows: 1200, seed: 5, schema: {} }}\n\
         split: {{ test_fraction: 0.25, seed: 3 }}\ncv: {{ folds: 3 }}\nselect: {{ metric: f1 }}\n\
         models:\n{models}",
        s(&repo_file("data_schema/phishing.yaml"))
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Trials of a JSON leaderboard by `n_estimators`: (key, rounds used).
fn rounds_by_size(leaderboard: &Value) -> Vec<(i64, String, Option<u64>)> {
    let mut rows: Vec<(i64, String, Option<u64>)> = leaderboard
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "finished", "{r}");
            (
                r["params"]["n_estimators"].as_i64().unwrap(),
                r["key"].as_str().unwrap().to_owned(),
                r["n_estimators_used"].as_u64(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_rounds_reach_the_report_the_model_file_and_mlflow() {
    use crate::common::mlflow_server::MlflowServer;
    use crate::tracking_cli::{client, runs_of};
    let server = MlflowServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let experiment = format!("early-{nanos}");
    // A learning rate and depth that overfit 900 training rows within a few dozen rounds;
    // 5 rounds are below any stop, 400 far above. The plain entry has no early stopping.
    let models = format!(
        "  - algorithm: gradient_boosting\n    grid: {{ n_estimators: [5, 400], learning_rate: 0.5, max_depth: 4, \
         n_iter_no_change: 3, validation_fraction: 0.2, tol: 0 }}\n\
         \x20 - algorithm: gradient_boosting\n    grid: {{ n_estimators: [6], learning_rate: 0.5, max_depth: 4 }}\n\
         tracking: {{ experiment: {experiment} }}\n"
    );
    let grid = grid_file(dir.path(), "early", &models);
    let state = dir.path().join("state");
    let run = tokio::task::block_in_place(|| {
        crate::common::Run::of(
            netsec_command()
                .args(["experiment", "run", s(&grid), "--state-dir", s(&state)])
                .args(["--format", "json", "-q"])
                .env("MLFLOW_TRACKING_URI", &server.url),
        )
    })
    .expect_code(0);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["trials_planned"], 3);
    assert_eq!(summary["tracking"]["pending"], 0, "{}", run.stderr);
    let trials = rounds_by_size(&summary["leaderboard"]);
    let [
        (5, small_key, small),
        (6, plain_key, plain),
        (400, large_key, large),
    ] = &trials[..]
    else {
        panic!("{trials:?}")
    };
    let stopped = large.expect("the 400-round trial records its rounds");
    assert!((4..60).contains(&stopped), "stopped after {stopped} of 400");
    assert_eq!(
        *small,
        Some(5),
        "the 5-round point is the stopped fit's prefix"
    );
    assert_eq!(*plain, None, "no early stopping, no rounds recorded");

    // `experiment show` reads the same rounds back from the run store.
    let show = netsec(&[
        "experiment",
        "show",
        "early",
        "--state-dir",
        s(&state),
        "--format",
        "json",
    ])
    .expect_code(0);
    let shown: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(rounds_by_size(&shown["leaderboard"]), trials);
    let text = netsec(&["experiment", "show", "early", "--state-dir", s(&state)]).expect_code(0);
    assert!(
        text.stdout.contains(&format!("rounds={stopped}")),
        "{}",
        text.stdout
    );

    // The saved model is one of the early-stopped trials or the plain one; its file says
    // how many rounds it kept, and holds exactly that many trees.
    let best = &summary["best_model"];
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(best["path"].as_str().unwrap()).unwrap())
            .unwrap();
    let trees = file["model"]["trees"].as_array().unwrap().len() as u64;
    let best_key = best["trial"].as_str().unwrap();
    let expected = trials.iter().find(|t| t.1 == best_key).unwrap();
    assert_eq!(file["n_estimators_used"].as_u64(), expected.2);
    assert_eq!(trees, expected.2.unwrap_or(expected.0 as u64));

    // Each trial's MLflow run carries the same rounds as a metric.
    let (_, children) = runs_of(&client(&server.url), &experiment).await;
    assert_eq!(children.len(), 3);
    for (key, rounds) in [(small_key, small), (plain_key, plain), (large_key, large)] {
        let child = children
            .iter()
            .find(|c| c.tag("netsec.trial_key") == Some(key.as_str()))
            .unwrap_or_else(|| panic!("run of {key}"));
        assert_eq!(
            child.metric("n_estimators_used"),
            rounds.map(|n| n as f64),
            "{key}"
        );
        let n_iter = child.param("n_iter_no_change");
        assert_eq!(n_iter, Some(if rounds.is_some() { "3" } else { "null" }));
    }
}

/// Runs `grid`, expects exit 2 with each of `expected` on stderr, and nothing in `state`.
fn refused(grid: &Path, state: &Path, expected: &[&str]) {
    let run = netsec(&["experiment", "run", s(grid), "--state-dir", s(state)]).expect_code(2);
    for text in expected {
        assert!(run.stderr.contains(text), "`{text}` in: {}", run.stderr);
    }
    assert!(!state.exists(), "nothing written");
}

#[test]
fn bad_early_stopping_values_exit_2_naming_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (value, expected)) in [
        ("n_iter_no_change: 0", "null or an integer >= 1, got 0"),
        ("validation_fraction: 1", "a number in (0, 1), got 1"),
        ("validation_fraction: 0.0", "a number in (0, 1), got 0"),
        ("tol: -0.001", "a number >= 0, got -0.001"),
    ]
    .into_iter()
    .enumerate()
    {
        let models = format!(
            "  - algorithm: gradient_boosting\n    grid:\n      n_estimators: [10]\n      {value}\n"
        );
        let grid = grid_file(dir.path(), &format!("bad{i}"), &models);
        let field = value.split(':').next().unwrap();
        refused(
            &grid,
            &dir.path().join(format!("state{i}")),
            &[
                &format!("bad{i}.yaml:10:"),
                &format!("models.gradient_boosting.grid.{field}"),
                expected,
            ],
        );
    }
}

#[test]
fn a_class_too_small_for_the_validation_part_exits_2_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    // 120 rows: 60 normal, 57 dos, 3 rare. Split and folds are stratified: the rare class
    // keeps 2 training rows, and with 2 folds each fold trains on 1 of them, too few to set
    // one aside and boost on another.
    let mut text = String::from("a,b,label\n");
    for r in 0..120usize {
        let label = match r {
            0..=59 => "normal",
            60..=116 => "dos",
            _ => "rare",
        };
        writeln!(text, "{},{},{label}", r * 37 % 101, r * 53 % 97).unwrap();
    }
    let data = dir.path().join("multi.csv");
    std::fs::write(&data, text).unwrap();
    let schema = dir.path().join("schema.yaml");
    std::fs::write(
        &schema,
        "name: multi\nlabel: { column: label, type: string, task: multiclass, negative: [normal] }\n\
         columns:\n  - { name: a, type: float }\n  - { name: b, type: float }\n",
    )
    .unwrap();
    let grid = dir.path().join("rare.yaml");
    let grid_text = |models: &str| {
        format!(
            "name: rare\ndata: {{ source: csv, path: {}, schema: {} }}\n\
             split: {{ test_fraction: 0.25, seed: 3 }}\ncv: {{ folds: 2 }}\nselect: {{ metric: macro_f1 }}\n\
             models:\n{models}",
            s(&data),
            s(&schema)
        )
    };
    std::fs::write(
        &grid,
        grid_text(
            "  - algorithm: gradient_boosting\n    grid:\n      n_estimators: [10]\n      n_iter_no_change: [2]\n",
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    refused(
        &grid,
        &state,
        &[
            "rare.yaml:10:",
            "models.gradient_boosting.grid.n_iter_no_change",
            "class `rare` has 1 in the training rows of cv fold",
            "validation_fraction",
        ],
    );
    // Without early stopping the same data runs.
    std::fs::write(
        &grid,
        grid_text("  - algorithm: gradient_boosting\n    grid: { n_estimators: [10] }\n"),
    )
    .unwrap();
    netsec(&[
        "experiment",
        "run",
        s(&grid),
        "--state-dir",
        s(&state),
        "-q",
    ])
    .expect_code(0);
}
