//! `netsec promote`, `netsec registry` and `netsec rollback` end to end through the real
//! binary: first promotion on floors, a significant challenger, a rejection, rollback,
//! dry runs, the CI step summary, bad input that leaves the registry unchanged, and
//! concurrent promotions.

use std::path::{Path, PathBuf};

use crate::common::{Guard, Run, netsec, netsec_command, repo_file, s, without_guard};
use serde_json::Value;

/// Sweeps a one-model grid over the same generated rows and split (so every model shares
/// the holdout) and returns the sweep's JSON summary.
fn sweep(state: &Path, name: &str, models: &str) -> Value {
    let grid = state.parent().unwrap().join(format!("{name}.yaml"));
    let text = format!(
        "name: {name}\ndata: {{ source: synthetic, profile: phishing, rows: 2000, seed: 5, schema: {} }}\n\
         split: {{ test_fraction: 0.3, seed: 3 }}\ncv: {{ folds: 2 }}\nmodels:\n{models}",
        s(&repo_file("data_schema/phishing.yaml"))
    );
    std::fs::write(&grid, text).unwrap();
    let run = netsec(&[
        "experiment",
        "run",
        s(&grid),
        "--state-dir",
        s(state),
        "--format",
        "json",
    ])
    .expect_code(0);
    serde_json::from_str(&run.stdout).unwrap()
}

const STUMP: &str = "  - algorithm: decision_tree\n    grid: { max_depth: [1] }\n";
const LOGISTIC: &str = "  - algorithm: logistic_regression\n";

fn policy(dir: &Path, floors: &str) -> PathBuf {
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        format!(
            "model: phish\nalias: champion\nfloors: {{ {floors} }}\n\
             challenge: {{ metric: f1, min_gain: 0.0, test: mcnemar, alpha: 0.05 }}\n\
             guards: {{ same_holdout: true, schema_match: true, max_p99_predict_us: 100000 }}\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `netsec` with extra environment variables.
fn netsec_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    crate::common::netsec_env(args, env.iter().copied())
}

fn promote(state: &Path, policy: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["promote", "--policy", s(policy), "--state-dir", s(state)];
    args.extend_from_slice(extra);
    netsec_env(&args, &[("GITHUB_ACTOR", "ci-bot")])
}

fn history(state: &Path) -> Vec<Value> {
    let run = netsec(&[
        "registry",
        "history",
        "phish",
        "--state-dir",
        s(state),
        "--format",
        "json",
    ])
    .expect_code(0);
    serde_json::from_str::<Value>(&run.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn champion(state: &Path) -> Option<i64> {
    let run = netsec(&[
        "registry",
        "list",
        "--state-dir",
        s(state),
        "--format",
        "json",
    ])
    .expect_code(0);
    let models: Value = serde_json::from_str(&run.stdout).unwrap();
    models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "phish")
        .and_then(|m| m["aliases"]["champion"].as_i64())
}

#[test]
fn promote_challenge_reject_and_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let policy = policy(dir.path(), "f1: 0.5, recall: 0.5");
    let stump = sweep(&state, "stump", STUMP);

    // A dry run decides but writes nothing.
    let dry = promote(&state, &policy, &["--dry-run"]).expect_code(0);
    assert!(
        dry.stdout.contains("dry run: would be PROMOTED"),
        "{}",
        dry.stdout
    );
    assert_eq!(champion(&state), None);

    // The first model is promoted on the floors, with a CI step summary.
    let summary = dir.path().join("summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let first = netsec_env(
        &["promote", "--policy", s(&policy), "--state-dir", s(&state)],
        &[
            ("GITHUB_ACTOR", "ci-bot"),
            ("GITHUB_STEP_SUMMARY", s(&summary)),
        ],
    )
    .expect_code(0);
    assert!(first.stdout.contains("floor recall"), "{}", first.stdout);
    assert!(first.stdout.contains("PROMOTED"), "{}", first.stdout);
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("earlier step\n") && md.contains("| floor f1 |"),
        "{md}"
    );
    assert_eq!(champion(&state), Some(1));
    // The model file is kept content-addressed in the state directory.
    let sha = stump["best_model"]["sha256"].as_str().unwrap();
    assert!(state.join("models").join(format!("{sha}.json")).exists());

    // A clearly better model wins the McNemar challenge.
    sweep(&state, "logistic", LOGISTIC);
    let second = promote(&state, &policy, &["--best", "logistic"]).expect_code(0);
    assert!(
        second.stdout.contains("challenge mcnemar p"),
        "{}",
        second.stdout
    );
    assert_eq!(champion(&state), Some(2));

    // The stump again, now as challenger: rejected (exit 3), champion unchanged.
    let third = promote(&state, &policy, &["--best", "stump", "--format", "json"]).expect_code(3);
    let report: Value = serde_json::from_str(&third.stdout).unwrap();
    assert_eq!(report["decision"], "rejected");
    assert_eq!(report["version"], 1);
    assert_eq!(champion(&state), Some(2));

    // Promoting the champion again changes nothing.
    promote(&state, &policy, &["--best", "logistic"]).expect_code(0);

    let lines = history(&state);
    let actions: Vec<&str> = lines
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["promote", "promote", "reject"]);
    assert!(lines.iter().all(|h| h["actor"] == "ci-bot"));
    assert!(
        lines[2]["reason"].as_str().unwrap().contains("challenge"),
        "{:?}",
        lines[2]
    );
    assert!(lines[1]["evidence"]["rules"].as_array().unwrap().len() >= 5);

    // Rollback needs a reason and moves the alias back, recorded in the history.
    let back = netsec(&[
        "rollback",
        "phish",
        "--reason",
        "alerts on v2",
        "--state-dir",
        s(&state),
    ])
    .expect_code(0);
    assert!(back.stdout.contains("from v2 to v1"), "{}", back.stdout);
    assert_eq!(champion(&state), Some(1));
    let last = history(&state).pop().unwrap();
    assert_eq!(last["action"], "rollback");
    assert_eq!(last["reason"], "alerts on v2");
    // Nothing earlier than v1: a clear error.
    let none = netsec(&[
        "rollback",
        "phish",
        "--reason",
        "x",
        "--state-dir",
        s(&state),
    ])
    .expect_code(2);
    assert!(none.stderr.contains("--to"), "{}", none.stderr);
    netsec(&[
        "rollback",
        "phish",
        "--to",
        "2",
        "--reason",
        "fixed",
        "--state-dir",
        s(&state),
    ])
    .expect_code(0);
    assert_eq!(champion(&state), Some(2));
    let show = netsec(&["registry", "show", "phish", "--state-dir", s(&state)]).expect_code(0);
    assert!(show.stdout.contains("champion"), "{}", show.stdout);
}

#[test]
fn a_first_model_below_the_floors_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let policy = policy(dir.path(), "f1: 0.999");
    sweep(&state, "stump", STUMP);
    let run = promote(&state, &policy, &[]).expect_code(3);
    assert!(run.stdout.contains("REJECTED"), "{}", run.stdout);
    assert_eq!(champion(&state), None);
    assert_eq!(history(&state)[0]["action"], "reject");
}

#[test]
fn bad_input_is_refused_and_leaves_the_registry_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let good = policy(dir.path(), "f1: 0.5");
    let stump = sweep(&state, "stump", STUMP);

    let missing = promote(&state, &dir.path().join("nope.yaml"), &[]).expect_code(2);
    assert!(missing.stderr.contains("nope.yaml"), "{}", missing.stderr);
    let unknown = dir.path().join("unknown.yaml");
    std::fs::write(&unknown, "model: phish\nfloors:\n  f1: 0.5\n  f_one: 0.9\n").unwrap();
    let run = promote(&state, &unknown, &[]).expect_code(2);
    assert!(
        run.stderr.contains("unknown.yaml:4") && run.stderr.contains("f_one"),
        "{}",
        run.stderr
    );
    promote(&state, &good, &["--run", "doesnotexist"]).expect_code(2);

    // Corrupted database: exit 1, file untouched.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![7u8; 8192]).unwrap();
    let run = promote(&state, &good, &["--registry", s(&garbage)]).expect_code(1);
    assert!(
        run.stderr.contains("cannot open the registry"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&garbage).unwrap(), vec![7u8; 8192]);
    assert_eq!(champion(&state), None);

    // A model file that no longer matches its sha256.
    let path = PathBuf::from(stump["best_model"]["path"].as_str().unwrap());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, [&bytes[..], b" "].concat()).unwrap();
    let run = promote(&state, &good, &[]).expect_code(2);
    assert!(
        run.stderr.contains("does not match its record"),
        "{}",
        run.stderr
    );
    std::fs::write(&path, &bytes).unwrap();

    // Once registered, a tampered champion file stops further promotions.
    promote(&state, &good, &[]).expect_code(0);
    sweep(&state, "logistic", LOGISTIC);
    std::fs::write(&path, [&bytes[..], b" "].concat()).unwrap();
    let run = promote(&state, &good, &["--best", "logistic"]).expect_code(2);
    assert!(
        run.stderr.contains("does not match its record"),
        "{}",
        run.stderr
    );
    assert_eq!(history(&state).len(), 1);
    assert_eq!(champion(&state), Some(1));
}

#[test]
fn a_trial_without_metrics_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let good = policy(dir.path(), "f1: 0.5");
    let summary = sweep(&state, "stump", STUMP);
    let key = summary["leaderboard"][0]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let db = state.join("netsec.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
            .await
            .unwrap();
        sqlx::query(
            "UPDATE trials SET status = 'failed', test = NULL, error = 'boom' WHERE key = ?",
        )
        .bind(&key)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    });
    let run = promote(&state, &good, &["--run", &key[..12]]).expect_code(2);
    assert!(
        run.stderr.contains("has no metrics") && run.stderr.contains("boom"),
        "{}",
        run.stderr
    );
    assert_eq!(champion(&state), None);
}

#[test]
fn a_trial_that_was_not_the_best_is_refitted_for_promotion() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let good = policy(dir.path(), "f1: 0.5");
    let summary = sweep(&state, "two", &format!("{STUMP}{LOGISTIC}"));
    let board = summary["leaderboard"].as_array().unwrap();
    let runner_up = board[1]["key"].as_str().unwrap();
    let run = promote(&state, &good, &["--run", runner_up, "--format", "json"]).expect_code(0);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["candidate"]["trial_key"], runner_up);
    let sha = report["candidate"]["sha256"].as_str().unwrap();
    assert!(state.join("models").join(format!("{sha}.json")).exists());
}

#[test]
fn concurrent_promotions_leave_one_consistent_result() {
    concurrent_promotions(None);
}

/// The same with promotions that record their decision without checking that the alias
/// still holds the version they judged against: both win.
#[test]
#[ignore = "guard twin: fails by design, see NETSEC_TEST_DISABLE_GUARD"]
fn guard_twin_promote_recheck() {
    concurrent_promotions(Some(Guard::PromoteRecheck));
}

fn concurrent_promotions(guard: Option<Guard>) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let good = policy(dir.path(), "f1: 0.5");
    sweep(&state, "stump", STUMP);
    sweep(&state, "logistic", LOGISTIC);
    // Both promotions evaluate against "no champion" before either records its decision
    // (the test-only barrier in registry/promote.rs): the second to record must find the
    // alias moved and judge its candidate again, against the first one's version.
    let barrier = dir.path().join("barrier");
    let spawn = |experiment: &str| {
        without_guard(&mut netsec_command(), guard)
            .args([
                "promote",
                "--policy",
                s(&good),
                "--state-dir",
                s(&state),
                "--best",
                experiment,
                "--format",
                "json",
            ])
            .env(
                "NETSEC_TEST_PROMOTE_BARRIER",
                format!("{}:2", barrier.display()),
            )
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|sc| {
        let a = sc.spawn(|| spawn("stump"));
        let b = sc.spawn(|| spawn("logistic"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let reports: Vec<Value> = [&a, &b]
        .iter()
        .map(|o| {
            assert!(
                matches!(o.status.code(), Some(0 | 3)),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            serde_json::from_slice(&o.stdout).expect("a JSON report")
        })
        .collect();
    let mut attempts: Vec<i64> = reports
        .iter()
        .map(|r| r["attempts"].as_i64().unwrap())
        .collect();
    attempts.sort_unstable();
    assert_eq!(attempts, [1, 2], "one promotion re-evaluated: {reports:#?}");
    let again = reports.iter().find(|r| r["attempts"] == 2).unwrap();
    let first = reports.iter().find(|r| r["attempts"] == 1).unwrap();
    assert_eq!(
        again["champion"], first["version"],
        "judged against the new holder"
    );
    let lines = history(&state);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["from_version"], Value::Null);
    assert_eq!(lines[1]["from_version"], lines[0]["to_version"]);
    assert_eq!(champion(&state), lines[1]["to_version"].as_i64());
    let versions: Vec<i64> = lines
        .iter()
        .map(|h| h["candidate"].as_i64().unwrap())
        .collect();
    assert_eq!(versions.len(), 2);
    assert_ne!(versions[0], versions[1]);

    // The same candidate twice at once: one promotion, one "nothing to do".
    let other = dir.path().join("other");
    sweep(&other, "stump", STUMP);
    let spawn_other = || {
        without_guard(&mut netsec_command(), guard)
            .args(["promote", "--policy", s(&good), "--state-dir", s(&other)])
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|sc| {
        let a = sc.spawn(spawn_other);
        let b = sc.spawn(spawn_other);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!((a.status.code(), b.status.code()), (Some(0), Some(0)));
    assert_eq!(history(&other).len(), 1);
    assert_eq!(champion(&other), Some(1));
}
