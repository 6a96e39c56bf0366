//! Operating points end to end: a grid's false-alarm budget chosen on out-of-fold
//! predictions and kept in the model file, `netsec predict` and `netsec serve` flagging
//! attacks at the model's cut, `netsec model threshold` moving the cut without a fit, and
//! targets that cannot be measured refused before anything is written.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::http::post;
use crate::common::{netsec, phishing_csv, phishing_lines, repo_file, s};
use crate::serve_http::Server;

/// A phishing grid (logistic regression: smooth probabilities, a fit of a second) with
/// `operating_point` set to `target` (a YAML map, or empty for none).
fn grid(dir: &Path, target: &str) -> PathBuf {
    let path = dir.join("grid.yaml");
    let target = if target.is_empty() {
        String::new()
    } else {
        format!("operating_point: {target}\n")
    };
    std::fs::write(
        &path,
        format!(
            "name: budget\n\
             data: {{ source: csv, path: {}, schema: {} }}\n\
             split: {{ test_fraction: 0.2, stratify: true, seed: 42 }}\n\
             cv: {{ folds: 3 }}\n\
             select: {{ metric: f1 }}\n\
             {target}\
             models:\n  - algorithm: logistic_regression\n    grid: {{ c: [1.0] }}\n",
            s(&phishing_csv()),
            s(&repo_file("data_schema/phishing.yaml"))
        ),
    )
    .unwrap();
    path
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Sweeps the grid with `target` into `dir`; returns the model file.
fn sweep(dir: &Path, target: &str) -> (PathBuf, String) {
    let model = dir.join("model.json");
    let run = netsec(&[
        "experiment",
        "run",
        s(&grid(dir, target)),
        "--state-dir",
        s(&dir.join("state")),
        "--model-out",
        s(&model),
    ])
    .expect_code(0);
    (model, run.stdout)
}

/// Each predicted row of a `netsec predict` CSV: (P(attack), is_attack, predicted_label).
fn predicted_rows(csv: &Path) -> Vec<(f64, bool, String)> {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (p, flag, label) = (
        col("attack_probability"),
        col("is_attack"),
        col("predicted_label"),
    );
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (
                cells[p].parse().unwrap(),
                cells[flag] == "true",
                cells[label].to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_false_alarm_budget_is_chosen_out_of_fold_kept_in_the_model_and_used_by_predict() {
    let dir = tempfile::tempdir().unwrap();
    let (model, stdout) = sweep(dir.path(), "{ max_fpr: 0.01 }");
    assert!(
        stdout.contains("operating point (max_fpr 0.01): attack when P(attack) >= "),
        "{stdout}"
    );
    assert!(stdout.contains("FPR 95% upper bound"), "{stdout}");

    let file = read_json(&model);
    let point = &file["operating_point"];
    let threshold = point["threshold"].as_f64().unwrap();
    let oof = &point["out_of_fold"];
    let (fp, normal) = (oof["fp"].as_u64().unwrap(), oof["normal"].as_u64().unwrap());
    assert!(
        normal > 3000,
        "every training row is out of fold once: {normal}"
    );
    assert!(
        fp as f64 / normal as f64 <= 0.01,
        "the budget holds where it was chosen"
    );
    assert_eq!(point["target_met"], Value::Bool(true));
    // The cut is a point of the kept curve, with the same counts.
    let roc = point["roc"]["points"].as_array().unwrap();
    let at_cut = roc
        .iter()
        .find(|p| p["threshold"].as_f64() == Some(threshold))
        .expect("the cut is on the curve");
    assert_eq!((&at_cut["fp"], &at_cut["tp"]), (&oof["fp"], &oof["tp"]));
    // The next lower cut on the curve breaks the budget: the cut is the lowest that holds.
    let below = roc
        .iter()
        .find(|p| p["threshold"].as_f64().unwrap() < threshold)
        .unwrap();
    assert!(below["fp"].as_u64().unwrap() as f64 / normal as f64 > 0.01);
    assert!(point["held_out"]["normal"].as_u64().unwrap() > 0);

    // `predict` flags attacks at the model's cut, not at 0.5; a binary label follows it.
    let out = dir.path().join("predicted.csv");
    netsec(&[
        "predict",
        "-m",
        s(&model),
        "-i",
        s(&phishing_csv()),
        "-o",
        s(&out),
    ])
    .expect_code(0);
    let rows = predicted_rows(&out);
    let (lo, hi) = (threshold.min(0.5), threshold.max(0.5));
    let between = rows.iter().filter(|(p, _, _)| *p >= lo && *p < hi).count();
    assert!(between > 0, "no row between the cut {threshold} and 0.5");
    for (p, flag, label) in &rows {
        assert_eq!(*flag, *p >= threshold, "P(attack) {p}");
        // phishing.yaml: -1 is the attack value.
        assert_eq!(label == "-1", *flag, "P(attack) {p}");
    }
}

#[test]
fn model_threshold_moves_the_cut_without_a_fit_and_serve_answers_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = sweep(dir.path(), "{ max_fpr: 0.05 }");
    let moved = dir.path().join("strict.json");
    let run = netsec(&[
        "model",
        "threshold",
        s(&model),
        "--max-fpr",
        "0.001",
        "--flows-per-day",
        "1000000",
        "-o",
        s(&moved),
    ])
    .expect_code(0);
    assert!(run.stdout.contains("without a fit"), "{}", run.stdout);
    assert!(run.stdout.contains("false alarms a day"), "{}", run.stdout);
    let (before, after) = (read_json(&model), read_json(&moved));
    assert_eq!(
        before["model"], after["model"],
        "the fitted model is untouched"
    );
    let old_cut = before["operating_point"]["threshold"].as_f64().unwrap();
    let new_cut = after["operating_point"]["threshold"].as_f64().unwrap();
    assert!(new_cut > old_cut, "{new_cut} > {old_cut}");
    let oof = &after["operating_point"]["out_of_fold"];
    assert!(oof["fp"].as_f64().unwrap() / oof["normal"].as_f64().unwrap() <= 0.001);
    // The holdout was reloaded and scored at the new cut.
    let held = &after["operating_point"]["held_out"];
    assert!(held["normal"].as_u64().unwrap() > 0, "{after}");

    // `serve` answers at the moved cut: every row's flag is P(attack) >= the new cut, and
    // some rows the old cut flagged are not attacks any more.
    let server = Server::start(s(&moved), &[], None);
    let mut body = phishing_lines(2001).join("\n");
    body.push('\n');
    let answer = post(
        server.addr,
        "/predict/csv",
        &[("content-type", "text/csv")],
        body.as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let csv = dir.path().join("served.csv");
    std::fs::write(&csv, answer.text()).unwrap();
    let rows = predicted_rows(&csv);
    assert_eq!(rows.len(), 2000);
    let moved_rows = rows
        .iter()
        .filter(|(p, _, _)| *p >= old_cut && *p < new_cut)
        .count();
    assert!(moved_rows > 0, "no row between {old_cut} and {new_cut}");
    for (p, flag, _) in &rows {
        assert_eq!(*flag, *p >= new_cut, "P(attack) {p}");
    }
}

#[test]
fn unmeasurable_targets_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for (target, expected) in [
        (
            "{ max_fpr: 0 }",
            "max_fpr must be between 0 and 1, exclusive (got 0)",
        ),
        (
            "{ min_detection_rate: 1.5 }",
            "min_detection_rate must be in (0, 1]",
        ),
        ("{ max_fp: 0.1 }", "max_fp"),
        // phishing's training part has about 3,900 normal rows; 0.0001 needs 30,000.
        (
            "{ max_fpr: 0.0001 }",
            "needs at least 30000 normal rows out of fold",
        ),
    ] {
        let state = dir.path().join("state");
        let run = netsec(&[
            "experiment",
            "run",
            s(&grid(dir.path(), target)),
            "--state-dir",
            s(&state),
        ])
        .expect_code(2);
        assert!(run.stderr.contains(expected), "{target}: {}", run.stderr);
        assert!(
            run.stderr.contains("grid.yaml:"),
            "{target}: {}",
            run.stderr
        );
        assert!(
            !state.join("netsec.db").exists(),
            "{target}: nothing written"
        );
        assert!(!state.join("models").exists(), "{target}: nothing written");
    }

    // A model swept without a target keeps no curve to move along.
    let (plain, _) = sweep(dir.path(), "");
    let out = dir.path().join("cut.json");
    let run = netsec(&[
        "model",
        "threshold",
        s(&plain),
        "--max-fpr",
        "0.01",
        "-o",
        s(&out),
    ])
    .expect_code(2);
    assert!(run.stderr.contains("no operating point"), "{}", run.stderr);
    assert!(!out.exists());
}

#[test]
fn a_label_without_a_normal_class_has_no_false_alarms_to_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("a,b,label\n");
    for r in 0..300usize {
        let label = ["dos", "probe", "r2l"][r % 3];
        csv.push_str(&format!("{},{},{label}\n", r % 17, r % 13));
    }
    let data = dir.path().join("multi.csv");
    std::fs::write(&data, csv).unwrap();
    let schema = dir.path().join("schema.yaml");
    std::fs::write(
        &schema,
        "name: multi\nlabel: { column: label, type: string, task: multiclass }\n\
         columns:\n  - { name: a, type: float }\n  - { name: b, type: float }\n",
    )
    .unwrap();
    let grid = dir.path().join("grid.yaml");
    std::fs::write(
        &grid,
        format!(
            "name: multi\ndata: {{ source: csv, path: {}, schema: {} }}\n\
             operating_point: {{ max_fpr: 0.01 }}\nselect: {{ metric: macro_f1 }}\n\
             models:\n  - algorithm: decision_tree\n",
            s(&data),
            s(&schema)
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let run = netsec(&["experiment", "run", s(&grid), "--state-dir", s(&state)]).expect_code(2);
    assert!(
        run.stderr.contains("grid.yaml:3:")
            && run.stderr.contains("needs a normal class")
            && run.stderr.contains("dos, probe, r2l"),
        "{}",
        run.stderr
    );
    assert!(!state.join("netsec.db").exists());
}

#[test]
fn a_false_alarm_ceiling_is_judged_at_the_candidate_s_own_cut() {
    // The same logistic regression, swept once at the 0.5 cut and once with a budget: the
    // policy's FPR ceiling rejects the first and promotes the second, so promotion scores
    // each candidate at its own operating point.
    let policy_dir = tempfile::tempdir().unwrap();
    let policy = policy_dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "model: phishing\nalias: champion\nfloors: { f1: 0.5 }\nmax_fpr: 0.02\n",
    )
    .unwrap();
    let promote = |dir: &Path| {
        netsec(&[
            "promote",
            "--best",
            "budget",
            "--policy",
            s(&policy),
            "--state-dir",
            s(&dir.join("state")),
        ])
    };
    let at_half = tempfile::tempdir().unwrap();
    sweep(at_half.path(), "");
    let run = promote(at_half.path()).expect_code(3);
    assert!(run.stdout.contains("ceiling fpr"), "{}", run.stdout);

    let budgeted = tempfile::tempdir().unwrap();
    sweep(budgeted.path(), "{ max_fpr: 0.005 }");
    let run = promote(budgeted.path()).expect_code(0);
    assert!(run.stdout.contains("ceiling fpr"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_trial_run_in_mlflow_carries_its_operating_point() {
    use crate::common::mlflow_server::MlflowServer;
    use crate::tracking_cli::{client, runs_of};

    let server = MlflowServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let experiment = format!("op-{nanos}");
    let grid = dir.path().join("grid.yaml");
    std::fs::write(
        &grid,
        format!(
            "name: op\n\
             data: {{ source: synthetic, profile: phishing, rows: 3000, seed: 7, schema: {} }}\n\
             operating_point: {{ max_fpr: 0.01 }}\n\
             tracking: {{ experiment: {experiment} }}\n\
             models:\n  - algorithm: logistic_regression\n",
            s(&repo_file("data_schema/phishing.yaml"))
        ),
    )
    .unwrap();
    let model = dir.path().join("model.json");
    let url = server.url.clone();
    let run = tokio::task::block_in_place(|| {
        crate::common::netsec_env(
            &[
                "experiment",
                "run",
                s(&grid),
                "--state-dir",
                s(&dir.path().join("state")),
                "--model-out",
                s(&model),
            ],
            [("MLFLOW_TRACKING_URI", url.as_str())],
        )
    });
    run.expect_code(0);
    let point = read_json(&model)["operating_point"].clone();
    let (_, children) = runs_of(&client(&url), &experiment).await;
    assert_eq!(children.len(), 1);
    let run = &children[0];
    assert_eq!(run.param("operating_point.max_fpr"), Some("0.01"));
    assert_eq!(run.metric("op_threshold"), point["threshold"].as_f64());
    assert_eq!(run.metric("op_target_met"), Some(1.0));
    let (fp, normal) = (
        run.metric("op_oof_fp").unwrap(),
        run.metric("op_oof_normal").unwrap(),
    );
    assert_eq!(Some(fp), point["out_of_fold"]["fp"].as_f64());
    assert!(fp / normal <= 0.01);
    assert_eq!(
        run.metric("op_test_fp"),
        point["held_out"]["fp"].as_f64(),
        "held-out counts"
    );
    let upper = run.metric("op_test_fpr_upper_95").unwrap();
    assert!(upper > run.metric("op_test_fpr").unwrap());
    let tag: Value = serde_json::from_str(run.tag("netsec.operating_point").unwrap()).unwrap();
    assert_eq!(tag["threshold"], point["threshold"]);
}
