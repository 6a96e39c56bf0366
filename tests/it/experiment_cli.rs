//! `netsec experiment run | list | show | compare` and `netsec predict` end to end through
//! the real binary: sweeps, resume after kill -9 and SIGTERM, shards, grid errors, model
//! files and predictions.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Guard, netsec, phishing_csv, repo_file, s, without_guard};
use serde_json::Value;

/// A grid over generated data; `models` is the YAML list under `models:`.
fn grid_file(dir: &Path, name: &str, rows: usize, models: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "name: {name}\ndata: {{ source: synthetic, profile: phishing, rows: {rows}, seed: 5, schema: {} }}\n\
         split: {{ test_fraction: 0.25, seed: 3 }}\ncv: {{ folds: 3 }}\nselect: {{ metric: f1 }}\nmodels:\n{models}",
        s(&repo_file("data_schema/phishing.yaml"))
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn run_json(grid: &Path, state: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "experiment",
        "run",
        s(grid),
        "--state-dir",
        s(state),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let run = netsec(&args).expect_code(0);
    serde_json::from_str(&run.stdout).unwrap()
}

fn keys(summary: &Value) -> Vec<String> {
    let mut keys: Vec<String> = summary["leaderboard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

const SMALL_MODELS: &str = "  - algorithm: decision_tree\n    grid: { max_depth: [3, 6, null] }\n  - algorithm: random_forest\n    grid: { n_estimators: [4, 8, 16] }\n  - algorithm: logistic_regression\n";

#[test]
fn sweep_ranks_by_cv_saves_the_best_model_and_reuses_trials() {
    let dir = tempfile::tempdir().unwrap();
    let grid = grid_file(dir.path(), "small", 1500, SMALL_MODELS);
    let state = dir.path().join("state");
    let first = run_json(&grid, &state, &[]);
    assert_eq!(first["trials_planned"], 7);
    assert_eq!(first["trials_run"], 7);
    assert_eq!(first["trials_failed"], 0);
    let board = first["leaderboard"].as_array().unwrap();
    let cv: Vec<f64> = board
        .iter()
        .map(|r| r["cv"]["f1"]["mean"].as_f64().unwrap())
        .collect();
    assert!(
        cv.windows(2).all(|w| w[0] >= w[1]),
        "ranked by CV F1: {cv:?}"
    );
    for record in board {
        let test = &record["test"];
        for metric in [
            "accuracy",
            "precision",
            "recall",
            "f1",
            "roc_auc",
            "pr_auc",
            "log_loss",
        ] {
            let v = test[metric].as_f64().unwrap();
            assert!(v.is_finite() && v >= 0.0, "{metric} = {v}");
        }
        assert!(test["f1"].as_f64().unwrap() > 0.8, "{record}");
    }

    // The model file is named by its sha256 and says what it is.
    let best = &first["best_model"];
    let path = PathBuf::from(best["path"].as_str().unwrap());
    let bytes = std::fs::read(&path).unwrap();
    let sha = best["sha256"].as_str().unwrap();
    assert_eq!(
        netsec::shared::hash::sha256_hex(&bytes),
        sha,
        "the file's own hash"
    );
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        format!("{sha}.json")
    );
    let model: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(model["format"], "netsec-model");
    assert_eq!(model["trial_key"], board[0]["key"]);
    assert_eq!(model["data_fingerprint"], first["data_fingerprint"]);
    assert_eq!(model["schema"]["name"], "phishing");

    // Same grid again: nothing runs, the same model comes out.
    let second = run_json(&grid, &state, &[]);
    assert_eq!(second["trials_run"], 0);
    assert_eq!(second["trials_reused"], 7);
    assert_eq!(second["best_model"]["sha256"], best["sha256"]);
    assert_eq!(keys(&first), keys(&second));

    // The store answers list / show / compare.
    let list = netsec(&[
        "experiment",
        "list",
        "--state-dir",
        s(&state),
        "--format",
        "json",
    ])
    .expect_code(0);
    let sweeps: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(sweeps.as_array().unwrap().len(), 2);
    assert!(
        sweeps
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "finished")
    );
    let show = netsec(&["experiment", "show", "small", "--state-dir", s(&state)]).expect_code(0);
    assert!(
        show.stdout.contains("random_forest n_estimators=16"),
        "{}",
        show.stdout
    );
    let a = board[0]["key"].as_str().unwrap();
    let b = board[1]["key"].as_str().unwrap();
    let compare = netsec(&[
        "experiment",
        "compare",
        &a[..10],
        &b[..10],
        "--state-dir",
        s(&state),
    ])
    .expect_code(0);
    assert!(
        compare.stdout.contains("cv f1") && compare.stdout.contains(&a[..12]),
        "{}",
        compare.stdout
    );
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let grid = grid_file(dir.path(), "threads", 1200, SMALL_MODELS);
    let one = run_json(&grid, &dir.path().join("a"), &["--jobs", "1"]);
    let two = run_json(&grid, &dir.path().join("b"), &["--jobs", "2"]);
    let strip = |v: &Value| {
        v["leaderboard"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["key"].clone(), r["cv"].clone(), r["test"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&one), strip(&two));
    assert_eq!(
        one["best_model"]["sha256"].as_str().map(|s| s.len()),
        Some(64)
    );
}

#[test]
fn grid_errors_name_file_line_and_key_before_any_training() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cases = [
        (
            "algo",
            "  - algorithm: random_forrest\n",
            "unknown algorithm `random_forrest`",
            7,
        ),
        (
            "param",
            "  - algorithm: decision_tree\n    grid: { max_dept: [3] }\n",
            "max_dept",
            8,
        ),
        (
            "type",
            "  - algorithm: random_forest\n    grid: { n_estimators: [many] }\n",
            "n_estimators",
            8,
        ),
        (
            "empty",
            "  - algorithm: svm\n    grid: { c: [] }\n",
            "is empty",
            8,
        ),
    ];
    for (name, models, expected, line) in cases {
        let grid = grid_file(dir.path(), name, 500, models);
        let run = netsec(&["experiment", "run", s(&grid), "--state-dir", s(&state)]).expect_code(2);
        let prefix = format!("{}:{line}:", grid.display());
        assert!(run.stderr.contains(&prefix), "{name}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
    }
    let typo = dir.path().join("typo.yaml");
    std::fs::write(&typo, "name: t\ndata: { source: synthetic, schema: data_schema/phishing.yaml }\nmodel:\n  - algorithm: svm\n").unwrap();
    let run = netsec(&["experiment", "run", s(&typo), "--state-dir", s(&state)]).expect_code(2);
    assert!(
        run.stderr.contains("typo.yaml:3:") && run.stderr.contains("model"),
        "{}",
        run.stderr
    );
    assert!(!state.exists(), "nothing was started");
}

/// Waits until the run store of `state` holds at least `n` trials.
fn wait_for_trials(state: &Path, n: usize, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no trial finished in time");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it could be stopped"
        );
        if state.join("netsec.db").exists() && count_via_show(state) >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count_via_show(state: &Path) -> usize {
    count_via_show_named(state, "resume")
}

fn count_via_show_named(state: &Path, experiment: &str) -> usize {
    if !state.join("netsec.db").exists() {
        return 0;
    }
    let run = netsec(&[
        "experiment",
        "show",
        experiment,
        "--state-dir",
        s(state),
        "--format",
        "json",
    ]);
    serde_json::from_str::<Value>(&run.stdout)
        .map(|v| v["leaderboard"].as_array().map_or(0, Vec::len))
        .unwrap_or(0)
}

const MANY_MODELS: &str = "  - algorithm: decision_tree\n    grid: { max_depth: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, null], criterion: [gini, entropy] }\n  - algorithm: logistic_regression\n    grid: { c: [0.01, 0.1, 1.0, 10.0] }\n";

fn spawn_sweep(grid: &Path, state: &Path) -> std::process::Child {
    crate::common::netsec_command()
        .args([
            "experiment",
            "run",
            s(grid),
            "--state-dir",
            s(state),
            "--jobs",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn killed_sweep_resumes_with_only_the_missing_trials() {
    let dir = tempfile::tempdir().unwrap();
    let grid = grid_file(dir.path(), "resume", 4000, MANY_MODELS);
    let state = dir.path().join("state");
    let mut child = spawn_sweep(&grid, &state);
    wait_for_trials(&state, 3, &mut child);
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();

    let resumed = run_json(&grid, &state, &[]);
    let planned = resumed["trials_planned"].as_u64().unwrap();
    let reused = resumed["trials_reused"].as_u64().unwrap();
    assert_eq!(planned, 36);
    assert!(reused >= 3, "reused {reused}");
    assert_eq!(resumed["trials_run"].as_u64().unwrap() + reused, planned);
    assert_eq!(keys(&resumed).len(), 36);

    // The killed sweep is marked as such, not left running.
    let list = netsec(&[
        "experiment",
        "list",
        "--state-dir",
        s(&state),
        "--format",
        "json",
    ])
    .expect_code(0);
    let sweeps: Value = serde_json::from_str(&list.stdout).unwrap();
    let statuses: Vec<&str> = sweeps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["finished", "killed"]);

    // A fresh store gives the same results: resuming changed nothing.
    let fresh = run_json(&grid, &dir.path().join("fresh"), &[]);
    assert_eq!(
        fresh["best_model"]["sha256"],
        resumed["best_model"]["sha256"]
    );
}

#[test]
fn sigterm_finishes_running_trials_and_marks_the_sweep_killed() {
    let dir = tempfile::tempdir().unwrap();
    let grid = grid_file(dir.path(), "resume", 4000, MANY_MODELS);
    let state = dir.path().join("state");
    let mut child = spawn_sweep(&grid, &state);
    wait_for_trials(&state, 2, &mut child);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("interrupted after") && stderr.contains("resume"),
        "{stderr}"
    );
    let list = netsec(&[
        "experiment",
        "list",
        "--state-dir",
        s(&state),
        "--format",
        "json",
    ])
    .expect_code(0);
    let sweeps: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(sweeps[0]["status"], "killed");
    let resumed = run_json(&grid, &state, &[]);
    assert!(resumed["trials_reused"].as_u64().unwrap() >= 2);
}

/// Slow trials (an SVM fit takes long enough to be caught running), one at a time.
const SLOW_MODELS: &str = "  - algorithm: svm\n    grid: { c: [0.5, 1.0, 2.0, 4.0, 8.0, 16.0] }\n";

#[test]
fn sigterm_lets_the_trial_in_flight_finish_and_stores_it() {
    sigterm_with_a_trial_in_flight(None);
}

/// The same with a sweep that drops what finishes after the signal: the trial in flight is
/// lost.
#[test]
#[ignore = "guard twin: fails by design, see NETSEC_TEST_DISABLE_GUARD"]
fn guard_twin_cancel_keeps_results() {
    sigterm_with_a_trial_in_flight(Some(Guard::CancelKeepsResults));
}

fn sigterm_with_a_trial_in_flight(guard: Option<Guard>) {
    let dir = tempfile::tempdir().unwrap();
    let grid = grid_file(dir.path(), "inflight", 3000, SLOW_MODELS);
    let state = dir.path().join("state");
    let mut child = without_guard(&mut crate::common::netsec_command(), guard)
        .args(["experiment", "run", s(&grid), "--state-dir", s(&state)])
        .args(["--jobs", "1", "-v"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // stderr is read on a thread: the "trial started" lines arrive while the sweep runs.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            all.push_str(&line);
            all.push('\n');
            let _ = lines_tx.send(line);
        }
        all
    });
    let started = |line: &str| {
        line.contains("trial started").then(|| {
            let key = line.split("trial=").nth(1).unwrap_or_default();
            key.split_whitespace().next().unwrap_or_default().to_owned()
        })
    };
    let first = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .expect("no trial started");
        if let Some(key) = started(&line) {
            break key;
        }
    };
    assert!(!first.is_empty());
    // Nothing is stored yet: the first trial is in flight when the signal arrives.
    assert_eq!(
        count_via_show_named(&state, "inflight"),
        0,
        "the first trial ended too soon"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let stderr = reader.join().unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted after"), "{stderr}");
    let started_keys: Vec<String> = stderr.lines().filter_map(started).collect();

    // The trial in flight finished and was stored, scored; no trial started after the signal
    // was left unstored.
    let show = netsec(&[
        "experiment",
        "show",
        "inflight",
        "--state-dir",
        s(&state),
        "--format",
        "json",
    ])
    .expect_code(0);
    let shown: Value = serde_json::from_str(&show.stdout).unwrap();
    let stored: Vec<(String, String)> = shown["leaderboard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap().to_owned(),
                t["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        stored.contains(&(first.clone(), "finished".to_owned())),
        "{first} not stored as finished: {stored:?}"
    );
    let mut stored_keys: Vec<&str> = stored.iter().map(|(k, _)| k.as_str()).collect();
    let mut started_sorted: Vec<&str> = started_keys.iter().map(String::as_str).collect();
    stored_keys.sort_unstable();
    started_sorted.sort_unstable();
    assert_eq!(stored_keys, started_sorted, "every started trial is stored");
    assert!(stored.len() < 6, "the sweep stopped early: {stored:?}");
}

#[test]
fn shards_partition_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let grid = grid_file(dir.path(), "sharded", 1200, SMALL_MODELS);
    let state = dir.path().join("state");
    let a = run_json(&grid, &state, &["--shard", "0/2"]);
    let b = run_json(&grid, &state, &["--shard", "1/2"]);
    let (ka, kb) = (keys(&a), keys(&b));
    assert!(!ka.is_empty() && !kb.is_empty());
    assert!(
        ka.iter().all(|k| !kb.contains(k)),
        "no trial in both shards"
    );
    let all = run_json(&grid, &state, &[]);
    assert_eq!(all["trials_run"], 0, "the shards covered every trial");
    let mut union = [ka, kb].concat();
    union.sort();
    assert_eq!(union, keys(&all));
    let run = netsec(&["experiment", "run", s(&grid), "--shard", "2/2"]).expect_code(2);
    assert!(run.stderr.contains("I/N"), "{}", run.stderr);
}

#[test]
fn predict_writes_labels_and_refuses_mismatched_input() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("real.yaml");
    std::fs::write(
        &grid,
        format!(
            "name: real\ndata: {{ source: csv, path: {}, schema: data_schema/phishing.yaml }}\nmodels:\n  - algorithm: decision_tree\n",
            s(&phishing_csv())
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let model = dir.path().join("model.json");
    let summary = run_json(&grid, &state, &["--model-out", s(&model)]);
    assert!(
        summary["leaderboard"][0]["test"]["accuracy"]
            .as_f64()
            .unwrap()
            > 0.95
    );

    let sample = phishing_csv().with_file_name("predict_sample_12rows.csv");
    let out = dir.path().join("pred.csv");
    netsec(&[
        "predict",
        "--model",
        s(&model),
        "--input",
        s(&sample),
        "--output",
        s(&out),
    ])
    .expect_code(0);
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 13);
    assert!(
        lines[0].ends_with(
            "predicted_label,class_probability,attack_probability,is_attack,attack_class"
        ),
        "{}",
        lines[0]
    );
    // Labels of these rows in phishing.csv (SOURCES.md).
    let truth = [
        "1", "1", "-1", "1", "1", "1", "1", "-1", "1", "-1", "1", "-1",
    ];
    let predicted: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(30).unwrap())
        .collect();
    let agree = predicted
        .iter()
        .zip(truth)
        .filter(|(p, t)| **p == *t)
        .count();
    assert!(agree >= 11, "{predicted:?}");

    // A file missing a column is refused with the column named; nothing is written.
    let broken = dir.path().join("broken.csv");
    let cut: String = std::fs::read_to_string(&sample)
        .unwrap()
        .lines()
        .map(|l| l.split_once(',').unwrap().1.to_owned() + "\n")
        .collect();
    std::fs::write(&broken, cut).unwrap();
    let out2 = dir.path().join("pred2.csv");
    let run =
        netsec(&["predict", "-m", s(&model), "-i", s(&broken), "-o", s(&out2)]).expect_code(2);
    assert!(run.stderr.contains("having_IP_Address"), "{}", run.stderr);
    assert!(!out2.exists());
    // Not a model file.
    let run = netsec(&[
        "predict",
        "-m",
        s(&sample),
        "-i",
        s(&sample),
        "-o",
        s(&out2),
    ])
    .expect_code(2);
    assert!(
        run.stderr.contains("not a netsec model file"),
        "{}",
        run.stderr
    );
}
