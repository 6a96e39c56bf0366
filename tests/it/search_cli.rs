//! Search strategies end to end through the real binary: random and halving searches
//! resume after `kill -9` with no trial run twice; a random search shards into slices that
//! together run exactly its trials and plans the same keys for the same seed; bad search
//! specs exit 2 naming the line, before anything is written; each halving rung reaches
//! MLflow with its rung and rows.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{netsec, netsec_command, repo_file, s};
use serde_json::Value;

/// A grid over generated data with `search` on line 6 and `models` from line 8 on.
fn grid_file(dir: &Path, name: &str, rows: usize, search: &str, models: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let text = format!(
        "name: {name}\ndata: {{ source: synthetic, profile: phishing, rows: {rows}, seed: 5, schema: {} }}\n\
         split: {{ test_fraction: 0.25, seed: 3 }}\ncv: {{ folds: 3 }}\nselect: {{ metric: f1 }}\n\
         search: {search}\nmodels:\n{models}",
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
        "-q",
    ];
    args.extend_from_slice(extra);
    let run = netsec(&args).expect_code(0);
    serde_json::from_str(&run.stdout).unwrap()
}

fn keys(summary: &Value) -> BTreeSet<String> {
    summary["leaderboard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect()
}

/// Trials of `experiment` in the run store of `state`, as `experiment show` lists them.
fn stored_trials(state: &Path, experiment: &str) -> usize {
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

const RANDOM: &str = "{ strategy: random, trials: 12, seed: 1 }";

/// Two model entries of 12 draws each (24 trials), with fixed values mixed in.
const DRAWN: &str = "  - algorithm: decision_tree\n    grid: { max_depth: { int: [2, 20] }, criterion: [gini, entropy], min_samples_leaf: { int: [1, 40] } }\n  - algorithm: logistic_regression\n    grid: { c: { loguniform: [0.001, 100] }, max_iter: 200 }\n";

/// Every trial key of every sweep in the run store of `state` (a halving search keeps one
/// sweep per rung).
fn all_stored_keys(state: &Path) -> BTreeSet<String> {
    let list = netsec(&[
        "experiment",
        "list",
        "--state-dir",
        s(state),
        "--format",
        "json",
    ])
    .expect_code(0);
    let sweeps: Value = serde_json::from_str(&list.stdout).unwrap();
    let mut all = BTreeSet::new();
    for sweep in sweeps.as_array().unwrap() {
        let id = sweep["id"].to_string();
        let show = netsec(&[
            "experiment",
            "show",
            &id,
            "--state-dir",
            s(state),
            "--format",
            "json",
        ])
        .expect_code(0);
        all.extend(keys(&serde_json::from_str(&show.stdout).unwrap()));
    }
    all
}

/// Starts the sweep of `grid` on one thread and SIGKILLs it once 3 trials are stored.
fn kill_after_three_trials(grid: &Path, state: &Path, experiment: &str) {
    let mut child = netsec_command()
        .args([
            "experiment",
            "run",
            s(grid),
            "--state-dir",
            s(state),
            "-j",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while stored_trials(state, experiment) < 3 {
        assert!(Instant::now() < deadline, "no trial finished in time");
        assert!(child.try_wait().unwrap().is_none(), "ended before the kill");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
}

#[test]
fn killed_random_search_resumes_with_exactly_the_planned_trials() {
    let dir = tempfile::tempdir().unwrap();
    let grid = grid_file(dir.path(), "resume", 4000, RANDOM, DRAWN);
    let state = dir.path().join("state");
    kill_after_three_trials(&grid, &state, "resume");
    let before = stored_trials(&state, "resume");
    assert!(before < 24, "the kill came mid-sweep ({before} of 24)");

    let resumed = run_json(&grid, &state, &[]);
    assert_eq!(resumed["trials_planned"], 24);
    assert_eq!(
        resumed["trials_reused"], before,
        "every stored trial reused"
    );
    assert_eq!(resumed["trials_run"], 24 - before, "no trial ran twice");
    assert_eq!(stored_trials(&state, "resume"), 24);

    // A fresh store plans and runs the same trials: the draws did not move.
    let fresh = run_json(&grid, &dir.path().join("fresh"), &[]);
    assert_eq!(keys(&fresh), keys(&resumed));
    assert_eq!(
        fresh["best_model"]["sha256"],
        resumed["best_model"]["sha256"]
    );
}

#[test]
fn killed_halving_search_resumes_with_no_trial_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    // 18 candidates; 30000 training rows: 18 on 2000 rows, 6 on 6000, 2 on 18000, and the
    // survivor on all 30000 (27 trials).
    let models = "  - algorithm: gradient_boosting\n    grid: { learning_rate: [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0], max_depth: [2, 3], n_estimators: 100 }\n";
    let search = "{ strategy: halving, factor: 3, min_rows: 2000, seed: 4 }";
    let grid = grid_file(dir.path(), "halving", 40000, search, models);
    let state = dir.path().join("state");
    kill_after_three_trials(&grid, &state, "halving");
    let stored = all_stored_keys(&state);
    assert!(
        stored.len() < 27,
        "the kill came mid-search ({})",
        stored.len()
    );

    let resumed = run_json(&grid, &state, &[]);
    assert_eq!(resumed["trials_planned"], 27);
    assert_eq!(
        resumed["trials_reused"],
        stored.len(),
        "every stored trial reused"
    );
    assert_eq!(
        resumed["trials_run"],
        27 - stored.len(),
        "no trial ran twice"
    );
    let planned = keys(&resumed);
    assert_eq!(
        planned.len(),
        27,
        "rung and rows set each rung's keys apart"
    );
    assert!(stored.is_subset(&planned));
    assert_eq!(all_stored_keys(&state), planned);

    // The survivors came from the store as they would have from memory.
    let fresh = run_json(&grid, &dir.path().join("fresh"), &[]);
    assert_eq!(keys(&fresh), planned);
    let board = fresh["leaderboard"].as_array().unwrap();
    assert_eq!(board[0]["key"], resumed["leaderboard"][0]["key"]);
    assert_eq!(
        fresh["best_model"]["sha256"],
        resumed["best_model"]["sha256"]
    );

    // The last rung is the whole training part: its trial is the grid's own.
    let alone = "  - algorithm: gradient_boosting\n    grid: { learning_rate: [LR], max_depth: [DEPTH], n_estimators: 100 }\n"
        .replace("LR", &board[0]["params"]["learning_rate"].to_string())
        .replace("DEPTH", &board[0]["params"]["max_depth"].to_string());
    let full = grid_file(dir.path(), "full", 40000, "{ strategy: grid }", &alone);
    let full = run_json(&full, &dir.path().join("full"), &[]);
    assert_eq!(full["leaderboard"][0]["key"], board[0]["key"]);
}

#[test]
fn sharded_random_search_runs_exactly_the_unsharded_trials() {
    let dir = tempfile::tempdir().unwrap();
    let grid = grid_file(dir.path(), "sharded", 1200, RANDOM, DRAWN);
    let state = dir.path().join("state");
    let shards: Vec<BTreeSet<String>> = (0..3)
        .map(|i| keys(&run_json(&grid, &state, &["--shard", &format!("{i}/3")])))
        .collect();
    let mut union = BTreeSet::new();
    for slice in &shards {
        assert!(!slice.is_empty());
        assert!(
            slice.iter().all(|k| union.insert(k.clone())),
            "no trial in two shards"
        );
    }
    let whole = run_json(&grid, &state, &[]);
    assert_eq!(whole["trials_run"], 0, "the shards ran every trial");
    assert_eq!(keys(&whole), union);
    let alone = run_json(&grid, &dir.path().join("alone"), &[]);
    assert_eq!(
        keys(&alone),
        union,
        "an unsharded search plans the same keys"
    );
}

#[test]
fn the_seed_decides_the_planned_keys() {
    let dir = tempfile::tempdir().unwrap();
    let models = "  - algorithm: decision_tree\n    grid: { max_depth: { int: [2, 30] }, min_samples_leaf: { int: [1, 60] } }\n";
    let plan = |name: &str, seed: u64| {
        let search = format!("{{ strategy: random, trials: 5, seed: {seed} }}");
        let grid = grid_file(dir.path(), name, 600, &search, models);
        let summary = run_json(&grid, &dir.path().join(name), &[]);
        assert_eq!(summary["trials_planned"], 5);
        keys(&summary)
    };
    let first = plan("a", 1);
    assert_eq!(first, plan("b", 1), "same seed, same trials");
    assert_ne!(first, plan("c", 2), "another seed, other trials");
}

#[test]
fn bad_search_specs_exit_2_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let tree = |grid: &str| format!("  - algorithm: decision_tree\n    grid: {grid}\n");
    let cases = [
        (
            "distribution",
            RANDOM,
            tree("{ max_depth: { gaussian: [2, 8] } }"),
            "unknown distribution `gaussian`",
            9,
        ),
        (
            "zero",
            "{ strategy: random, trials: 0 }",
            tree("{ max_depth: [2] }"),
            "search.trials must be at least 1",
            6,
        ),
        (
            "factor",
            "{ strategy: halving, factor: 1, min_rows: 100 }",
            tree("{ max_depth: [2] }"),
            "search.factor must be at least 2",
            6,
        ),
        (
            "log",
            RANDOM,
            tree(
                "{ max_depth: [2], min_samples_leaf: 1 }\n  - algorithm: svm\n    grid: { c: { loguniform: [0, 10] } }",
            ),
            "bounds > 0",
            11,
        ),
        (
            "order",
            RANDOM,
            tree("{ max_depth: { int: [9, 3] } }"),
            "lo > hi",
            9,
        ),
        (
            "kind_int",
            RANDOM,
            tree("{ max_depth: { uniform: [2, 8] } }"),
            "`uniform` draws fractional numbers",
            9,
        ),
        (
            "kind_choice",
            RANDOM,
            tree("{ criterion: { uniform: [0, 1] } }"),
            "`criterion` of decision_tree takes one of",
            9,
        ),
        (
            "strategy",
            "{ strategy: bayes }",
            tree("{ max_depth: [2] }"),
            "bayes",
            6,
        ),
        (
            "min_rows",
            "{ strategy: halving, min_rows: 100000 }",
            tree("{ max_depth: [2, 3] }"),
            "search.min_rows 100000 is above the 375 rows of the training part",
            6,
        ),
        (
            "no_search",
            "{ strategy: grid }",
            tree("{ max_depth: { int: [2, 8] } }"),
            "strategy: random",
            9,
        ),
    ];
    for (name, search, models, expected, line) in cases {
        let grid = grid_file(dir.path(), name, 500, search, &models);
        let run = netsec(&["experiment", "run", s(&grid), "--state-dir", s(&state)]).expect_code(2);
        let prefix = format!("{}:{line}:", grid.display());
        assert!(run.stderr.contains(&prefix), "{name}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
    }
    let halving = grid_file(
        dir.path(),
        "sharded_halving",
        500,
        "{ strategy: halving, min_rows: 50 }",
        &tree("{ max_depth: [2, 3] }"),
    );
    let run = netsec(&[
        "experiment",
        "run",
        s(&halving),
        "--state-dir",
        s(&state),
        "--shard",
        "0/2",
    ])
    .expect_code(2);
    assert!(
        run.stderr.contains(":6:") && run.stderr.contains("sharded"),
        "{}",
        run.stderr
    );
    assert!(!state.exists(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halving_logs_each_rung_to_mlflow_with_rung_and_rows() {
    use crate::common::mlflow_server::MlflowServer;
    use crate::tracking_cli::{client, runs_of};
    let server = MlflowServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let experiment = format!("halving-{nanos}");
    // 6 candidates on 899 training rows (the stratified split of 1200 at 0.25): 6 on 100
    // rows, 2 on 300, 1 on all 899.
    let models = format!(
        "  - algorithm: decision_tree\n    grid: {{ max_depth: [2, 3, 4, 5, 6, null] }}\ntracking: {{ experiment: {experiment} }}\n"
    );
    let search = "{ strategy: halving, factor: 3, min_rows: 100 }";
    let grid = grid_file(dir.path(), "tracked", 1200, search, &models);
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
    assert_eq!(summary["trials_planned"], 9);
    assert_eq!(summary["tracking"]["pending"], 0, "{}", run.stderr);

    let (parents, children) = runs_of(&client(&server.url), &experiment).await;
    let mut rungs: Vec<(String, String)> = parents
        .iter()
        .map(|p| {
            let param = |k| p.param(k).unwrap_or_default().to_owned();
            (param("rung"), param("rows"))
        })
        .collect();
    rungs.sort();
    let expected = [("0", "100"), ("1", "300"), ("2", "899")];
    assert_eq!(rungs, expected.map(|(r, n)| (r.to_owned(), n.to_owned())));
    assert_eq!(children.len(), 9);
    for (rows, count) in [("100", 6), ("300", 2), ("899", 1)] {
        let n = children
            .iter()
            .filter(|c| c.param("rows") == Some(rows) && c.param("rung").is_some())
            .count();
        assert_eq!(n, count, "trials on {rows} rows");
    }
}
