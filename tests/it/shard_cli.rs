//! Distributed sweeps end to end: three `netsec experiment run experiments/quick.yaml
//! --shard I/3` processes at once (each with its own state directory, or all sharing one
//! run store), then `netsec experiment collect` — from the run stores and from a real
//! MLflow server — must give exactly the trials, metrics and best model of a
//! single-process sweep, with no trial run twice.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::mlflow_server::MlflowServer;
use crate::common::{Run, netsec_command, repo_file, s};
use serde_json::Value;

const SHARDS: usize = 3;

/// `netsec ARGS` from the repository root, with `MLFLOW_TRACKING_URI` set or removed.
fn command(uri: Option<&str>, args: &[&str]) -> Command {
    let mut command = netsec_command();
    command
        .args(args)
        .current_dir(repo_file(""))
        .envs(uri.map(|uri| ("MLFLOW_TRACKING_URI", uri)))
        .stdin(Stdio::null());
    command
}

fn output(mut command: Command) -> Run {
    Run::of(&mut command)
}

fn json(run: Run) -> Value {
    let run = run.expect_code(0);
    serde_json::from_str(&run.stdout).expect("JSON on stdout")
}

/// Runs the three shards of quick.yaml at once; `state(i)` is shard i's state directory.
fn run_shards(uri: Option<&str>, state: impl Fn(usize) -> String) {
    let children: Vec<_> = (0..SHARDS)
        .map(|i| {
            let shard = format!("{i}/{SHARDS}");
            let dir = state(i);
            let args = [
                "experiment",
                "run",
                "experiments/quick.yaml",
                "--shard",
                &shard,
                "--state-dir",
                &dir,
                "-j",
                "1",
                "-q",
            ];
            command(uri, &args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a shard")
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("shard runs");
        assert!(
            out.status.success(),
            "shard {i} failed\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The single-process sweep: trial key -> CV F1 mean, and the best trial.
fn reference(dir: &Path) -> (BTreeMap<String, f64>, String) {
    let state = dir.join("single");
    let summary = json(output(command(
        None,
        &[
            "experiment",
            "run",
            "experiments/quick.yaml",
            "--state-dir",
            s(&state),
            "--format",
            "json",
        ],
    )));
    let board = summary["leaderboard"].as_array().unwrap();
    (cv_f1(board), board[0]["key"].as_str().unwrap().to_owned())
}

fn cv_f1(board: &[Value]) -> BTreeMap<String, f64> {
    board
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                r["cv"]["f1"]["mean"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Checks a collect summary against the single-process sweep.
fn assert_same_as_single(summary: &Value, single: &BTreeMap<String, f64>, best: &str) {
    let board = summary["leaderboard"].as_array().unwrap();
    assert_eq!(&cv_f1(board), single, "same trials, same CV metrics");
    assert_eq!(board[0]["key"], best, "same best model");
    assert_eq!(summary["missing"], Value::Array(vec![]), "{summary:#}");
    assert_eq!(summary["duplicates"], Value::Array(vec![]), "{summary:#}");
    assert_eq!(
        summary["shards"]["seen"],
        serde_json::json!(["0/3", "1/3", "2/3"])
    );
    assert_eq!(summary["shards"]["missing"], Value::Array(vec![]));
    assert_eq!(summary["trials_planned"], single.len());
}

#[test]
fn shards_in_separate_stores_collect_to_the_single_process_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let (single, best) = reference(dir.path());
    let state = |i: usize| dir.path().join(format!("shard{i}")).display().to_string();
    run_shards(None, state);
    let stores: Vec<String> = (0..SHARDS).map(state).collect();
    let merged = dir.path().join("merged");

    let mut args = vec![
        "experiment",
        "collect",
        "experiments/quick.yaml",
        "--stores",
    ];
    args.extend(stores.iter().map(String::as_str));
    args.extend(["--into", s(&merged), "--format", "json"]);
    let summary = json(output(command(None, &args)));
    assert_same_as_single(&summary, &single, &best);
    let per_source: u64 = summary["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["trials"].as_u64().unwrap())
        .sum();
    assert_eq!(per_source as usize, single.len(), "no trial ran twice");
    assert!(summary["best"]["model_path"].is_string(), "{summary:#}");

    // The merged store is one sweep with the best model: promote --best finds it.
    let show = json(output(command(
        None,
        &[
            "experiment",
            "show",
            "quick",
            "--state-dir",
            s(&merged),
            "--format",
            "json",
        ],
    )));
    assert_eq!(cv_f1(show["leaderboard"].as_array().unwrap()), single);
    assert!(show["sweep"]["best_model_path"].is_string());
    let promote = output(command(
        None,
        &[
            "promote",
            "--best",
            "quick",
            "--dry-run",
            "--state-dir",
            s(&merged),
        ],
    ));
    assert!(
        promote.code == 0 || promote.code == 3,
        "promote decides on the merged store\n{}\n{}",
        promote.stdout,
        promote.stderr
    );
    assert!(promote.stdout.contains(&best[..12]), "{}", promote.stdout);

    // A model file left half-written (an interrupted copy) is refused by promote, and the
    // next collect --into copies it again.
    let model = summary["merged_into"]["model_path"].as_str().unwrap();
    let bytes = std::fs::read(model).unwrap();
    std::fs::write(model, &bytes[..bytes.len() / 2]).unwrap();
    let promote_best = || {
        output(command(
            None,
            &[
                "promote",
                "--best",
                "quick",
                "--dry-run",
                "--state-dir",
                s(&merged),
            ],
        ))
    };
    let broken = promote_best();
    assert!(
        broken.code != 0 && broken.code != 3 && broken.stderr.contains("sha256"),
        "promote refuses the truncated file\n{}\n{}",
        broken.stdout,
        broken.stderr
    );
    let again = json(output(command(None, &args)));
    assert_eq!(again["merged_into"]["model_path"].as_str(), Some(model));
    assert_eq!(
        std::fs::read(model).unwrap(),
        bytes,
        "the model file is repaired"
    );
    let promote = promote_best();
    assert!(
        promote.code == 0 || promote.code == 3,
        "promote decides on the repaired store\n{}\n{}",
        promote.stdout,
        promote.stderr
    );
    assert!(promote.stdout.contains(&best[..12]), "{}", promote.stdout);

    // Without shard 2 the union says what is missing; --strict makes that exit 2 and
    // merges nothing into --into.
    let partial_store = dir.path().join("partial");
    let partial = output(command(
        None,
        &[
            "experiment",
            "collect",
            "experiments/quick.yaml",
            "--stores",
            &stores[0],
            &stores[1],
            "--strict",
            "--into",
            s(&partial_store),
            "--format",
            "json",
        ],
    ))
    .expect_code(2);
    let partial: Value = serde_json::from_str(&partial.stdout).unwrap();
    assert_eq!(partial["shards"]["missing"], serde_json::json!(["2/3"]));
    assert!(partial["merged_into"].is_null(), "{partial:#}");
    assert!(partial["not_merged"].is_string(), "{partial:#}");
    assert!(
        !partial_store.join("netsec.db").exists(),
        "no run store, so no sweep, in --into"
    );
    let text = output(command(
        None,
        &[
            "experiment",
            "collect",
            "experiments/quick.yaml",
            "--stores",
            &stores[0],
            &stores[1],
            "--strict",
            "--into",
            s(&partial_store),
        ],
    ))
    .expect_code(2);
    assert!(
        text.stdout.contains("nothing merged into"),
        "{}",
        text.stdout
    );
    assert!(!partial_store.join("netsec.db").exists());
    let shard2 = json(output(command(
        None,
        &[
            "experiment",
            "show",
            "quick",
            "--state-dir",
            &stores[2],
            "--format",
            "json",
        ],
    )));
    let mut expected: Vec<&str> = shard2["leaderboard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    expected.sort_unstable();
    let mut missing: Vec<&str> = partial["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    missing.sort_unstable();
    assert_eq!(missing, expected);

    // Collecting one store twice shows every trial of it as run twice.
    let twice = json(output(command(
        None,
        &[
            "experiment",
            "collect",
            "--experiment",
            "quick",
            "--stores",
            &stores[0],
            &stores[0],
            "--format",
            "json",
        ],
    )));
    assert!(!twice["duplicates"].as_array().unwrap().is_empty());
    assert!(twice["duplicates"][0]["same_result"].as_bool().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_sharing_one_store_and_mlflow_collect_to_the_single_process_sweep() {
    let server = MlflowServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (single, best) = reference(dir.path());
    let shared = dir.path().join("shared").display().to_string();
    run_shards(Some(&server.url), |_| shared.clone());
    // Concurrent shards share one outbox; whatever the last one could not send goes now.
    output(command(
        None,
        &["sync", "--uri", &server.url, "--state-dir", &shared],
    ))
    .expect_code(0);

    let local = json(output(command(
        None,
        &[
            "experiment",
            "collect",
            "experiments/quick.yaml",
            "--state-dir",
            &shared,
            "--format",
            "json",
        ],
    )));
    assert_same_as_single(&local, &single, &best);

    let logged = json(output(command(
        Some(&server.url),
        &[
            "experiment",
            "collect",
            "experiments/quick.yaml",
            "--from-mlflow",
            "--format",
            "json",
        ],
    )));
    assert_same_as_single(&logged, &single, &best);
    assert_eq!(logged["sources"].as_array().unwrap().len(), SHARDS);
    for row in logged["leaderboard"].as_array().unwrap() {
        assert_eq!(row["sources"].as_array().unwrap().len(), 1, "{row:#}");
        assert!(row["test"]["f1"].is_f64(), "{row:#}");
    }
    let (local_board, logged_board) = (
        local["leaderboard"].as_array().unwrap(),
        logged["leaderboard"].as_array().unwrap(),
    );
    for (a, b) in local_board.iter().zip(logged_board) {
        assert_eq!(a["params"], b["params"], "parameters come back typed");
        assert_eq!(a["cv"], b["cv"]);
        assert_eq!(a["test"], b["test"]);
    }

    // By name, without the grid file, from both sources at once: the same union, each
    // trial seen once in the store and once in MLflow (not counted as run twice).
    let both = json(output(command(
        Some(&server.url),
        &[
            "experiment",
            "collect",
            "--experiment",
            "quick",
            "--from-mlflow",
            "--stores",
            &shared,
            "--format",
            "json",
        ],
    )));
    assert_eq!(cv_f1(both["leaderboard"].as_array().unwrap()), single);
    assert_eq!(both["duplicates"], Value::Array(vec![]));
    assert_eq!(both["leaderboard"][0]["key"], best);
}
