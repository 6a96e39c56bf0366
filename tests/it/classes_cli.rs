//! Multi-class labels through `netsec experiment run`: the grid's `data.task` and
//! `data.group`, and the labels a sweep cannot learn as asked (a class rarer than the
//! folds, an unknown class in a group, an attack-level metric without a normal class, a
//! per-class metric naming no class) refused as bad input before anything is written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::common::{netsec, s};

/// A CSV of 180 rows: `normal` 80, `dos` 60, `probe` 38 and `rare` 2, two float features.
fn data_file(dir: &Path) -> PathBuf {
    let mut text = String::from("a,b,label\n");
    for r in 0..180usize {
        let label = match r {
            0..=79 => "normal",
            80..=139 => "dos",
            140..=177 => "probe",
            _ => "rare",
        };
        let a = (r * 37 % 101) as f64 / 10.0;
        let b = (r * 53 % 97) as f64 / 10.0;
        writeln!(text, "{a},{b},{label}").unwrap();
    }
    let path = dir.join("multi.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// A multi-class schema; `normal_rule` is e.g. `negative: [normal]` or empty (no normal
/// class).
fn schema_file(dir: &Path, normal_rule: &str) -> PathBuf {
    let path = dir.join(format!("schema{}.yaml", normal_rule.len()));
    let rule = if normal_rule.is_empty() {
        String::new()
    } else {
        format!(", {normal_rule}")
    };
    std::fs::write(
        &path,
        format!(
            "name: multi\nlabel: {{ column: label, type: string, task: multiclass{rule} }}\n\
             columns:\n  - {{ name: a, type: float }}\n  - {{ name: b, type: float }}\n"
        ),
    )
    .unwrap();
    path
}

/// A grid over the CSV; `data_extra` goes into the `data:` map, `metric` into `select`.
fn grid_file(dir: &Path, name: &str, schema: &Path, data_extra: &str, metric: &str) -> PathBuf {
    let data = data_file(dir);
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "name: {name}\ndata: {{ source: csv, path: {}, schema: {}{data_extra} }}\n\
             split: {{ test_fraction: 0.25, seed: 3 }}\ncv: {{ folds: 3 }}\n\
             select: {{ metric: {metric} }}\nmodels:\n  - algorithm: decision_tree\n    grid: {{ max_depth: [3] }}\n",
            s(&data),
            s(schema)
        ),
    )
    .unwrap();
    path
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
        std::fs::read_dir(state).map(|d| d.count()).ok()
    );
}

#[test]
fn a_class_rarer_than_the_folds_is_named_with_the_group_hint() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), "negative: [normal]");
    let grid = grid_file(dir.path(), "rare", &schema, "", "macro_f1");
    refused(
        &grid,
        &dir.path().join("state"),
        &[
            "rare.yaml",
            "class `rare` has 2 rows (1 in the training part)",
            "cv.folds = 3",
            "group:",
        ],
    );
}

#[test]
fn an_unknown_class_in_a_group_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), "negative: [normal]");
    let grid = grid_file(
        dir.path(),
        "unknown",
        &schema,
        ", group: { r2l: [rare, nosuch] }",
        "macro_f1",
    );
    refused(
        &grid,
        &dir.path().join("state"),
        &[
            "unknown.yaml:2:",
            "group `r2l` names class `nosuch`",
            "dos, normal, probe, rare",
        ],
    );
    // A group mixing normal and attack classes is refused too.
    let mixed = grid_file(
        dir.path(),
        "mixed",
        &schema,
        ", group: { odd: [rare, normal] }",
        "macro_f1",
    );
    refused(
        &mixed,
        &dir.path().join("state"),
        &["mixes normal classes (normal)"],
    );
}

#[test]
fn attack_level_metrics_need_a_normal_class() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), "");
    let grid = grid_file(
        dir.path(),
        "nonormal",
        &schema,
        ", group: { other: [probe, rare] }",
        "detection_rate",
    );
    refused(
        &grid,
        &dir.path().join("state"),
        &[
            "detection_rate",
            "attack-level",
            "no normal class",
            "macro_f1",
        ],
    );
}

#[test]
fn a_class_metric_must_name_a_class() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), "negative: [normal]");
    let grid = grid_file(
        dir.path(),
        "classmetric",
        &schema,
        ", group: { other: [probe, rare] }",
        "class_recall.nosuch",
    );
    refused(
        &grid,
        &dir.path().join("state"),
        &[
            "class_recall.nosuch",
            "class `nosuch`",
            "dos, normal, other",
        ],
    );
}

#[test]
fn task_binary_folds_a_multiclass_label_and_sweeps() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), "negative: [normal]");
    // The rare class does not matter once folded to attack / normal.
    let grid = grid_file(dir.path(), "folded", &schema, ", task: binary", "f1");
    let state = dir.path().join("state");
    let run = netsec(&[
        "experiment",
        "run",
        s(&grid),
        "--state-dir",
        s(&state),
        "--format",
        "json",
    ])
    .expect_code(0);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["trials_failed"], 0, "{}", run.stdout);
}

/// A policy `class_recall` floor on a multi-class candidate: a floor it misses rejects it
/// (exit 3) naming the class and its recall, a floor it meets promotes it, and a class the
/// label does not have is bad input (exit 2) with nothing recorded.
#[test]
fn class_recall_floors_judge_each_class_and_refuse_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), "negative: [normal]");
    let grid = grid_file(
        dir.path(),
        "perclass",
        &schema,
        ", group: { other: [probe, rare] }",
        "macro_f1",
    );
    let state = dir.path().join("state");
    netsec(&[
        "experiment",
        "run",
        s(&grid),
        "--state-dir",
        s(&state),
        "-q",
    ])
    .expect_code(0);
    let policy = |name: &str, rules: &str| {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!("model: multi\nalias: champion\nfloors: {{ macro_f1: 0.1 }}\n{rules}\n"),
        )
        .unwrap();
        path
    };
    let promote = |policy: &Path| {
        netsec(&[
            "promote",
            "--best",
            "perclass",
            "--policy",
            s(policy),
            "--state-dir",
            s(&state),
        ])
    };
    let versions = || {
        let list = netsec(&[
            "registry",
            "list",
            "--state-dir",
            s(&state),
            "--format",
            "json",
        ])
        .expect_code(0);
        list.stdout.matches("\"version\"").count()
    };

    // A class the label does not have: exit 2 before any decision, nothing recorded.
    let unknown = policy("unknown", "class_recall: { u2r: 0.5 }");
    let run = promote(&unknown).expect_code(2);
    for text in ["class_recall.u2r", "classes: dos, normal, other"] {
        assert!(run.stderr.contains(text), "`{text}` in: {}", run.stderr);
    }
    assert_eq!(versions(), 0);

    // A floor no model reaches on these rows (perfect recall of `dos`): rejected, exit 3,
    // the report naming the class and the recall it had.
    let strict = policy("strict", "class_recall: { dos: 1.0 }\nmax_fpr: 1.0");
    let run = promote(&strict).expect_code(3);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("class_recall.dos"))
        .unwrap_or_else(|| panic!("no class_recall.dos rule: {}", run.stdout));
    assert!(line.contains("0."), "the recall is shown: {line}");
    assert!(
        run.stdout.contains("floor class_recall.dos ="),
        "the decision names the failed floor: {}",
        run.stdout
    );
    assert!(run.stdout.contains("ceiling fpr"), "{}", run.stdout);

    // A floor it meets: promoted.
    let loose = policy("loose", "class_recall: { dos: 0.0, other: 0.0 }");
    let run = promote(&loose).expect_code(0);
    assert!(run.stdout.contains("PROMOTED"), "{}", run.stdout);
}
