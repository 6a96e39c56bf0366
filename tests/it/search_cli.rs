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

/// A name no other test run uses (MLflow experiments outlive the tests).
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{nanos}")
}
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

/// Starts the sweep of `grid` on one thread (logging to the MLflow server at `uri`, if
/// given) and SIGKILLs it once 3 trials are stored.
fn kill_after_three_trials(grid: &Path, state: &Path, experiment: &str, uri: Option<&str>) {
    let mut child = netsec_command()
        .envs(uri.map(|u| ("MLFLOW_TRACKING_URI", u)))
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
    kill_after_three_trials(&grid, &state, "resume", None);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_halving_search_resumes_with_no_trial_run_twice_under_one_mlflow_parent() {
    use crate::common::mlflow_server::MlflowServer;
    use crate::tracking_cli::{assert_complete, client};
    use netsec::tracking::RunStatus;
    let server = MlflowServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let experiment = unique("halving-killed");
    // 18 candidates; 30000 training rows: 18 on 2000 rows, 6 on 6000, 2 on 18000, and the
    // survivor on all 30000 (27 trials).
    let models = format!(
        "  - algorithm: gradient_boosting\n    grid: {{ learning_rate: [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0], max_depth: [2, 3], n_estimators: 100 }}\ntracking: {{ experiment: {experiment} }}\n"
    );
    let search = "{ strategy: halving, factor: 3, min_rows: 2000, seed: 4 }";
    let grid = grid_file(dir.path(), "halving", 40000, search, &models);
    let state = dir.path().join("state");
    tokio::task::block_in_place(|| {
        kill_after_three_trials(&grid, &state, "halving", Some(&server.url))
    });
    let stored = all_stored_keys(&state);
    assert!(
        stored.len() < 27,
        "the kill came mid-search ({})",
        stored.len()
    );

    let resumed = tokio::task::block_in_place(|| {
        let run = crate::common::Run::of(
            netsec_command()
                .args(["experiment", "run", s(&grid), "--state-dir", s(&state)])
                .args(["--format", "json", "-q"])
                .env("MLFLOW_TRACKING_URI", &server.url),
        )
        .expect_code(0);
        serde_json::from_str::<Value>(&run.stdout).unwrap()
    });
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
    assert_eq!(resumed["tracking"]["pending"], 0, "{resumed:#}");
    let planned = keys(&resumed);
    assert_eq!(
        planned.len(),
        27,
        "rung and rows set each rung's keys apart"
    );
    assert!(stored.is_subset(&planned));
    assert_eq!(all_stored_keys(&state), planned);

    // The killed run and the resumed one logged every rung under one parent run, closed
    // FINISHED, with one child per trial.
    let (parent, children) =
        assert_complete(&client(&server.url), &experiment, 27, RunStatus::Finished).await;
    assert_eq!(parent.param("search"), Some("halving"));
    assert_eq!(parent.param("rung"), None, "rungs are children's params");
    let logged: BTreeSet<String> = children
        .iter()
        .map(|c| c.tag("netsec.trial_key").unwrap().to_owned())
        .collect();
    assert_eq!(logged, planned);
    for (rung, rows, count) in [
        ("0", "2000", 18),
        ("1", "6000", 6),
        ("2", "18000", 2),
        ("3", "30000", 1),
    ] {
        let n = children
            .iter()
            .filter(|c| c.param("rung") == Some(rung) && c.param("rows") == Some(rows))
            .count();
        assert_eq!(n, count, "rung {rung}: trials on {rows} rows");
    }

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
    let random = grid_file(
        dir.path(),
        "random_rung",
        500,
        RANDOM,
        &tree("{ max_depth: { int: [2, 8] } }"),
    );
    let run = netsec(&[
        "experiment",
        "run",
        s(&random),
        "--state-dir",
        s(&state),
        "--rung",
        "0",
    ])
    .expect_code(2);
    assert!(
        run.stderr.contains("--rung belongs to strategy: halving"),
        "{}",
        run.stderr
    );
    assert!(!state.exists(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halving_logs_every_rung_under_one_mlflow_parent_with_rung_and_rows() {
    use crate::common::mlflow_server::MlflowServer;
    use crate::tracking_cli::{assert_complete, client};
    use netsec::tracking::RunStatus;
    let server = MlflowServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let experiment = unique("halving");
    // 6 candidates on 899 training rows (the stratified split of 1200 at 0.25): 6 on 100
    // rows, 2 on 300, 1 on all 899.
    let models = format!(
        "  - algorithm: decision_tree\n    grid: {{ max_depth: [2, 3, 4, 5, 6, null] }}\ntracking: {{ experiment: {experiment} }}\n"
    );
    let search = "{ strategy: halving, factor: 3, min_rows: 100 }";
    let grid = grid_file(dir.path(), "tracked", 1200, search, &models);
    let state = dir.path().join("state");
    let run = || {
        let run = tokio::task::block_in_place(|| {
            crate::common::Run::of(
                netsec_command()
                    .args(["experiment", "run", s(&grid), "--state-dir", s(&state)])
                    .args(["--format", "json", "-q"])
                    .env("MLFLOW_TRACKING_URI", &server.url),
            )
        })
        .expect_code(0);
        serde_json::from_str::<Value>(&run.stdout).unwrap()
    };
    let summary = run();
    assert_eq!(summary["trials_planned"], 9);
    assert_eq!(summary["tracking"]["pending"], 0, "{summary:#}");

    let c = client(&server.url);
    let (parent, children) = assert_complete(&c, &experiment, 9, RunStatus::Finished).await;
    assert_eq!(parent.param("search"), Some("halving"));
    assert_eq!(
        parent.param("rung"),
        None,
        "rung and rows are the children's params"
    );
    assert_eq!(
        parent.metric("rung_rows"),
        Some(899.0),
        "the last rung's step"
    );
    assert_eq!(parent.metric("rung_trials"), Some(1.0));
    for (rung, rows, count) in [("0", "100", 6), ("1", "300", 2), ("2", "899", 1)] {
        let n = children
            .iter()
            .filter(|c| c.param("rung") == Some(rung) && c.param("rows") == Some(rows))
            .count();
        assert_eq!(n, count, "rung {rung}: trials on {rows} rows");
    }

    // Run again: every trial is reused and reported again, into the same parent and the
    // same children.
    let again = run();
    assert_eq!(again["trials_run"], 0);
    assert_eq!(again["tracking"]["pending"], 0, "{again:#}");
    let (same, children_again) = assert_complete(&c, &experiment, 9, RunStatus::Finished).await;
    assert_eq!(same.id(), parent.id());
    let ids = |runs: &[netsec::tracking::Run]| -> BTreeSet<String> {
        runs.iter().map(|r| r.id().to_owned()).collect()
    };
    assert_eq!(ids(&children_again), ids(&children));
}

/// `experiment run` of one shard and rung, as JSON.
/// `experiment run` of one shard and rung, logging to the MLflow server at `uri`, as JSON.
fn run_rung(
    grid: &Path,
    state: &Path,
    shard: usize,
    rung: usize,
    survivors: &Path,
    uri: &str,
) -> Value {
    let run = crate::common::Run::of(
        netsec_command()
            .args(["experiment", "run", s(grid), "--state-dir", s(state)])
            .args([
                "--shard",
                &format!("{shard}/3"),
                "--rung",
                &rung.to_string(),
            ])
            .args(["--survivors", s(survivors), "--format", "json", "-q"])
            .env("MLFLOW_TRACKING_URI", uri),
    )
    .expect_code(0);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["tracking"]["pending"], 0, "{summary:#}");
    summary
}

/// `experiment collect --rung` over `stores`, as (exit code, JSON).
fn collect_rung(
    grid: &Path,
    rung: usize,
    stores: &[&Path],
    survivors: &Path,
    extra: &[&str],
) -> (i32, Value) {
    let rung = rung.to_string();
    let mut args = vec![
        "experiment",
        "collect",
        s(grid),
        "--rung",
        &rung,
        "--survivors",
        s(survivors),
    ];
    args.push("--stores");
    args.extend(stores.iter().map(|p| s(p)));
    args.extend_from_slice(extra);
    args.extend(["--format", "json"]);
    let run = netsec(&args);
    (
        run.code,
        serde_json::from_str(&run.stdout).unwrap_or(Value::Null),
    )
}

#[test]
fn sharded_halving_runs_rung_by_rung_exactly_the_unsharded_trials() {
    use crate::common::mlflow_server::MlflowServer;
    use crate::tracking_cli::{client, runs_of};
    let server = MlflowServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let experiment = unique("halves");
    // 9 candidates on 899 training rows: 9 on 100 rows, 3 on 300, 1 on all 899 (13 trials).
    let models = format!(
        "  - algorithm: decision_tree\n    grid: {{ max_depth: [2, 3, 4, 5, 6, 8, null], min_samples_leaf: 1 }}\n  - algorithm: logistic_regression\n    grid: {{ c: [0.1, 10.0] }}\ntracking: {{ experiment: {experiment} }}\n"
    );
    let search = "{ strategy: halving, factor: 3, min_rows: 100, seed: 2 }";
    let grid = grid_file(dir.path(), "halves", 1200, search, &models);

    // The unsharded search: its trials, each rung's survivors (`experiment show`), its best.
    let alone = dir.path().join("alone");
    let whole = run_json(&grid, &alone, &[]);
    assert_eq!(whole["trials_planned"], 13);
    let show = netsec(&[
        "experiment",
        "show",
        "halves",
        "--state-dir",
        s(&alone),
        "--format",
        "json",
    ])
    .expect_code(0);
    let show: Value = serde_json::from_str(&show.stdout).unwrap();
    let rungs = show["rungs"].as_array().unwrap();
    let column = |name: &str| -> Vec<Value> { rungs.iter().map(|r| r[name].clone()).collect() };
    assert_eq!(column("rung"), [0, 1, 2].map(Value::from));
    assert_eq!(column("rows"), [100, 300, 899].map(Value::from));
    assert_eq!(column("planned"), [9, 3, 1].map(Value::from));
    let key_set = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };
    let rung_keys: Vec<BTreeSet<String>> = rungs
        .iter()
        .map(|r| keys(&serde_json::json!({"leaderboard": r["leaderboard"]})))
        .collect();
    let expected_survivors: Vec<BTreeSet<String>> =
        rungs.iter().map(|r| key_set(&r["survivors"])).collect();
    assert_eq!(
        expected_survivors
            .iter()
            .map(BTreeSet::len)
            .collect::<Vec<_>>(),
        [3, 1, 0]
    );
    let text = netsec(&["experiment", "show", "halves", "--state-dir", s(&alone)]).expect_code(0);
    for line in [
        "rung 0 on 100 rows: 9 of 9 trials stored, 3 survive",
        "rung 1 on 300 rows: 3 of 3 trials stored, 1 survive",
        "rung 2 on 899 rows: 1 of 1 trials stored",
    ] {
        assert!(text.stdout.contains(line), "{line}\n{}", text.stdout);
    }

    let states: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("shard{i}")))
        .collect();
    let stores: Vec<&Path> = states.iter().map(PathBuf::as_path).collect();
    let survivors = dir.path().join("survivors.json");

    // Rung 1 before rung 0 is collected: exit 2, nothing written.
    let early = netsec(&[
        "experiment",
        "run",
        s(&grid),
        "--shard",
        "0/3",
        "--rung",
        "1",
        "--survivors",
        s(&survivors),
        "--state-dir",
        s(&states[0]),
    ])
    .expect_code(2);
    assert!(
        early.stderr.contains("rung 0 is not collected yet"),
        "{}",
        early.stderr
    );
    assert!(!states[0].exists(), "nothing was written");

    let mut ran = 0;
    let mut sharded_keys: Vec<BTreeSet<String>> = Vec::new();
    for (rung, expected) in expected_survivors.iter().enumerate() {
        let mut this_rung = BTreeSet::new();
        for (i, state) in states.iter().enumerate() {
            let summary = run_rung(&grid, state, i, rung, &survivors, &server.url);
            ran += summary["trials_run"].as_u64().unwrap();
            for key in keys(&summary) {
                assert!(this_rung.insert(key), "no trial in two shards");
            }
            if rung == 0 && i == 1 {
                // Two of three shards: the rung is incomplete, so no survivors are picked.
                let (code, partial) = collect_rung(&grid, 0, &stores[..2], &survivors, &[]);
                assert_eq!(code, 2, "{partial:#}");
                assert_eq!(partial["halving"]["written"], false);
                assert_eq!(partial["shards"]["missing"], serde_json::json!(["2/3"]));
                assert!(!survivors.exists(), "no survivors from an incomplete rung");
            }
        }
        sharded_keys.push(this_rung);
        let (code, collected) = collect_rung(&grid, rung, &stores, &survivors, &[]);
        assert_eq!(code, 0, "{collected:#}");
        assert_eq!(collected["missing"], Value::Array(vec![]));
        assert_eq!(collected["duplicates"], Value::Array(vec![]));
        let h = &collected["halving"];
        assert_eq!(h["rung"], rung);
        assert_eq!(key_set(&h["survivors"]), *expected, "rung {rung}");
        assert_eq!(h["written"], rung < 2, "rung {rung}");
        assert_eq!(h["last"], rung == 2, "rung {rung}");
    }
    assert_eq!(sharded_keys, rung_keys, "the same keys, rung by rung");
    assert_eq!(ran, 13, "no trial ran twice");

    // The search ended at rung 2: there is no rung 3.
    let past = netsec(&[
        "experiment",
        "run",
        s(&grid),
        "--shard",
        "0/3",
        "--rung",
        "3",
        "--survivors",
        s(&survivors),
        "--state-dir",
        s(&states[0]),
    ])
    .expect_code(2);
    assert!(
        past.stderr.contains("the search ends at rung 2"),
        "{}",
        past.stderr
    );

    // The last rung collected into one store: the unsharded search's best model.
    let merged = dir.path().join("merged");
    let (code, last) = collect_rung(&grid, 2, &stores, &survivors, &["--into", s(&merged)]);
    assert_eq!(code, 0, "{last:#}");
    assert_eq!(last["best"]["trial"], whole["leaderboard"][0]["key"]);
    assert_eq!(last["best"]["model_sha256"], whole["best_model"]["sha256"]);

    // In MLflow each shard is one parent run over all the rungs it ran (9 processes, 3
    // parents), every trial a child of its shard's parent; collecting the last rung from
    // MLflow alone finds the same best.
    let (parents, children) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(runs_of(&client(&server.url), &experiment));
    let mut shards: Vec<&str> = parents.iter().map(|p| p.param("shard").unwrap()).collect();
    shards.sort_unstable();
    assert_eq!(shards, ["0/3", "1/3", "2/3"], "one parent per shard");
    assert_eq!(children.len(), 13, "one child per trial");
    let logged: BTreeSet<&str> = children
        .iter()
        .map(|c| c.tag("netsec.trial_key").unwrap())
        .collect();
    let all: BTreeSet<&str> = rung_keys.iter().flatten().map(String::as_str).collect();
    assert_eq!(logged, all);
    let run_ids: BTreeSet<&str> = parents.iter().map(|p| p.id()).collect();
    for child in &children {
        let parent = child
            .tag(netsec::tracking::system_tags::PARENT_RUN_ID)
            .unwrap();
        assert!(run_ids.contains(parent), "{child:#?}");
    }
    let from_mlflow = crate::common::Run::of(
        netsec_command()
            .args([
                "experiment",
                "collect",
                s(&grid),
                "--rung",
                "2",
                "--from-mlflow",
            ])
            .args(["--survivors", s(&survivors), "--format", "json"])
            .env("MLFLOW_TRACKING_URI", &server.url),
    )
    .expect_code(0);
    let from_mlflow: Value = serde_json::from_str(&from_mlflow.stdout).unwrap();
    assert_eq!(from_mlflow["best"]["trial"], whole["leaderboard"][0]["key"]);
    assert_eq!(from_mlflow["missing"], Value::Array(vec![]));

    // A grid sharded without --rung is refused, naming the search section.
    let unranked = netsec(&[
        "experiment",
        "run",
        s(&grid),
        "--shard",
        "0/3",
        "--state-dir",
        s(&states[0]),
    ])
    .expect_code(2);
    assert!(
        unranked.stderr.contains(":6:") && unranked.stderr.contains("--rung 0"),
        "{}",
        unranked.stderr
    );
}
