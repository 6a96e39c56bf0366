//! `class_weight` through `netsec experiment run`: a grid axis of every algorithm (`null`,
//! `balanced`, `{class: weight}`), trial keys without weights unchanged (a sweep with
//! `class_weight: [null, ...]` reuses the trials of the same grid without it), the resolved
//! weights in the model file, and bad weights refused as bad input (exit 2) at their line
//! before anything is fitted or written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{netsec, s};

/// A CSV of 200 rows: `normal` 120, `dos` 56, `probe` 12 and `u2r` 12, two float features.
fn data_file(dir: &Path) -> PathBuf {
    let mut text = String::from("a,b,label\n");
    for r in 0..200usize {
        let label = match r {
            0..=119 => "normal",
            120..=175 => "dos",
            176..=187 => "probe",
            _ => "u2r",
        };
        let shift = match label {
            "normal" => 0.0,
            "dos" => 3.0,
            "probe" => 5.0,
            _ => 6.0,
        };
        let a = (r * 37 % 101) as f64 / 20.0 + shift;
        let b = (r * 53 % 97) as f64 / 10.0;
        writeln!(text, "{a},{b},{label}").unwrap();
    }
    let path = dir.join("multi.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// A grid over the CSV with `models` as its `models:` list; `data_extra` goes into `data:`.
fn grid_file(dir: &Path, name: &str, data_extra: &str, models: &str) -> PathBuf {
    let data = data_file(dir);
    let schema = dir.join("schema.yaml");
    std::fs::write(
        &schema,
        "name: multi\nlabel: { column: label, type: string, task: multiclass, negative: [normal] }\n\
         columns:\n  - { name: a, type: float }\n  - { name: b, type: float }\n",
    )
    .unwrap();
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "name: {name}\ndata: {{ source: csv, path: {}, schema: {}{data_extra} }}\n\
             split: {{ test_fraction: 0.25, seed: 3 }}\ncv: {{ folds: 3 }}\n\
             select: {{ metric: macro_f1 }}\nmodels:\n{models}",
            s(&data),
            s(&schema)
        ),
    )
    .unwrap();
    path
}

fn run_json(grid: &Path, state: &Path) -> Value {
    let run = netsec(&[
        "experiment",
        "run",
        s(grid),
        "--state-dir",
        s(state),
        "--format",
        "json",
    ])
    .expect_code(0);
    serde_json::from_str(&run.stdout).unwrap()
}

/// Runs the grid, expects exit 2 with every one of `expected` in the message, and checks
/// that no state (run store, sweep, model) was written.
fn refused(grid: &Path, state: &Path, expected: &[&str]) {
    let run = netsec(&["experiment", "run", s(grid), "--state-dir", s(state)]).expect_code(2);
    for text in expected {
        assert!(run.stderr.contains(text), "`{text}` in: {}", run.stderr);
    }
    assert!(
        !state.join("netsec.db").exists() && !state.join("models").exists(),
        "nothing written: {:?}",
        std::fs::read_dir(state)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
            .ok()
    );
}

#[test]
fn class_weight_is_a_grid_axis_and_keeps_the_keys_of_unweighted_trials() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let plain = grid_file(
        dir.path(),
        "plain",
        "",
        "  - algorithm: decision_tree\n    grid: { max_depth: [3] }\n",
    );
    let first = run_json(&plain, &state);
    assert_eq!(first["trials_run"], 1);

    // The same point with class_weight null is the same trial, reused; the weighted ones
    // are new trials with keys of their own.
    let weighted = grid_file(
        dir.path(),
        "weighted",
        "",
        "  - algorithm: decision_tree\n    grid: { max_depth: [3], class_weight: [null, balanced, { u2r: 5, probe: 2.5 }] }\n",
    );
    let second = run_json(&weighted, &state);
    assert_eq!(second["trials_planned"], 3, "{second}");
    assert_eq!(second["trials_reused"], 1, "{second}");
    assert_eq!(second["trials_run"], 2, "{second}");
    let board = second["leaderboard"].as_array().unwrap();
    let weights: Vec<&Value> = board.iter().map(|r| &r["params"]["class_weight"]).collect();
    assert!(weights.contains(&&Value::from("balanced")), "{weights:?}");
    assert!(
        weights.contains(&&serde_json::json!({ "u2r": 5.0, "probe": 2.5 })),
        "{weights:?}"
    );
    let reused_key = &first["leaderboard"][0]["key"];
    assert!(
        board.iter().any(|r| &r["key"] == reused_key),
        "{reused_key} among {board:?}"
    );

    // The model file keeps the resolved params, class_weight included.
    let best = &second["best_model"];
    let model: Value =
        serde_json::from_slice(&std::fs::read(best["path"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(model["params"], board[0]["params"], "{model}");
    assert!(model["params"].get("class_weight").is_some(), "{model}");
}

#[test]
fn every_algorithm_sweeps_balanced() {
    let dir = tempfile::tempdir().unwrap();
    let mut models = String::new();
    for (algorithm, extra) in [
        ("decision_tree", ""),
        ("random_forest", ", n_estimators: [8]"),
        ("gradient_boosting", ", n_estimators: [8]"),
        ("adaboost", ", n_estimators: [8]"),
        ("logistic_regression", ""),
        ("svm", ""),
    ] {
        writeln!(
            models,
            "  - algorithm: {algorithm}\n    grid: {{ class_weight: balanced{extra} }}"
        )
        .unwrap();
    }
    let grid = grid_file(dir.path(), "all", "", &models);
    let summary = run_json(&grid, &dir.path().join("state"));
    assert_eq!(summary["trials_run"], 6, "{summary}");
    assert_eq!(summary["trials_failed"], 0, "{summary}");
}

#[test]
fn an_unknown_class_is_refused_after_grouping_naming_the_classes() {
    let dir = tempfile::tempdir().unwrap();
    // probe and u2r are learned as one class, `rare`: the map must use the new name.
    let grid = grid_file(
        dir.path(),
        "grouped",
        ", group: { rare: [probe, u2r] }",
        "  - algorithm: decision_tree\n  - algorithm: svm\n    grid:\n      c: [1.0]\n      class_weight: [balanced, { u2r: 50 }]\n",
    );
    refused(
        &grid,
        &dir.path().join("state"),
        &[
            "grouped.yaml:11:21:",
            "models.svm.grid.class_weight: unknown class `u2r`",
            "dos, normal, rare",
        ],
    );
}

#[test]
fn bad_weights_are_refused_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value, expected) in [
        ("negative", "{ u2r: -1 }", "got {\"u2r\": -1}"),
        ("zero", "[null, { dos: 0 }]", "got {\"dos\": 0}"),
        ("nan", "{ u2r: .nan }", "non-finite"),
        ("infinite", "{ u2r: .inf }", "non-finite"),
        ("unknown", "[balance]", "got \"balance\""),
    ] {
        let grid = grid_file(
            dir.path(),
            name,
            "",
            &format!("  - algorithm: adaboost\n    grid:\n      class_weight: {value}\n"),
        );
        let state = dir.path().join(format!("state-{name}"));
        let line = format!("{name}.yaml:9:");
        refused(&grid, &state, &[&line, expected]);
        if !expected.contains("non-finite") {
            refused(
                &grid,
                &state,
                &["models.adaboost.grid.class_weight", "\"balanced\""],
            );
        }
    }
}
