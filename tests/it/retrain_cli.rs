//! `netsec retrain` end to end through the real binary: a first run promotes, a rerun is a
//! no-op, drifted data stops the run (or warns and goes on), a second run waits for no lock
//! held by another, and a run killed mid-sweep resumes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Run, netsec, repo_file, s};
use serde_json::Value;

/// Writes `rows` generated phishing rows to `path`.
fn synth(path: &Path, rows: usize, seed: u64) {
    netsec(&[
        "data",
        "synth",
        "--rows",
        &rows.to_string(),
        "--seed",
        &seed.to_string(),
        "-o",
        s(path),
    ])
    .expect_code(0);
}

/// A directory with fresh data, a grid over it, a policy and a retrain file.
struct Setup {
    dir: tempfile::TempDir,
    data: PathBuf,
    state: PathBuf,
    config: PathBuf,
}

impl Setup {
    fn new(rows: usize, models: &str, on_drift: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("fresh.csv");
        synth(&data, rows, 5);
        let grid = dir.path().join("grid.yaml");
        std::fs::write(
            &grid,
            format!(
                "name: nightly\ndata: {{ source: csv, path: {}, schema: {} }}\n\
                 split: {{ test_fraction: 0.3, seed: 3 }}\ncv: {{ folds: 2 }}\nmodels:\n{models}",
                s(&data),
                s(&repo_file("data_schema/phishing.yaml"))
            ),
        )
        .unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            "model: phish\nalias: champion\nfloors: { f1: 0.5 }\n\
             challenge: { metric: f1, min_gain: 0.0, test: mcnemar, alpha: 0.05 }\n\
             guards: { same_holdout: false, schema_match: true, max_p99_predict_us: 100000 }\n",
        )
        .unwrap();
        let config = dir.path().join("retrain.yaml");
        let setup = Setup {
            state: dir.path().join("state"),
            data,
            config,
            dir,
        };
        setup.write_config(&grid, &policy, on_drift);
        setup
    }

    fn write_config(&self, grid: &Path, policy: &Path, on_drift: &str) {
        std::fs::write(
            &self.config,
            format!(
                "grid: {}\npolicy: {}\ndrift: {{ on_drift: {on_drift} }}\n\
                 publish: {{ to: \"file://{}\" }}\n",
                s(grid),
                s(policy),
                s(&self.store())
            ),
        )
        .unwrap();
    }

    /// The file:// store the retrain file publishes to.
    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The model sha256 the store's pointer names.
    /// The sha256 the store's pointer names, after checking that the model file it names
    /// is there and has that hash.
    fn published(&self) -> Option<String> {
        let pointer = std::fs::read_to_string(self.store().join("phish/current.json")).ok()?;
        let pointer: Value = serde_json::from_str(&pointer).unwrap();
        let sha = pointer["sha256"].as_str().unwrap().to_owned();
        let model = std::fs::read(self.store().join(format!("phish/{sha}/model.json")))
            .expect("the pointer names a model file in the store");
        assert_eq!(
            netsec::shared::hash::sha256_hex(&model),
            sha,
            "published model's hash"
        );
        Some(sha)
    }

    fn set_on_drift(&self, on_drift: &str) {
        let (grid, policy) = (
            self.dir.path().join("grid.yaml"),
            self.dir.path().join("policy.yaml"),
        );
        self.write_config(&grid, &policy, on_drift);
    }

    fn retrain(&self, output: &str) -> Run {
        netsec(&[
            "retrain",
            "--config",
            s(&self.config),
            "--state-dir",
            s(&self.state),
            "--format",
            output,
        ])
    }

    fn retrain_json(&self, code: i32) -> Value {
        let run = self.retrain("json").expect_code(code);
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
    }

    fn sweep_statuses(&self) -> Vec<String> {
        let run = netsec(&[
            "experiment",
            "list",
            "--state-dir",
            s(&self.state),
            "--format",
            "json",
        ])
        .expect_code(0);
        let sweeps: Value = serde_json::from_str(&run.stdout).unwrap();
        sweeps
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["status"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// The status of one stage in a JSON summary.
fn stage<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {summary:#}"))
}

const MODELS: &str = "  - algorithm: decision_tree\n    grid: { max_depth: [3, 6] }\n  - algorithm: logistic_regression\n";

#[test]
fn promotes_then_does_nothing_then_stops_on_drift() {
    let setup = Setup::new(1500, MODELS, "stop");

    // First run: no champion, so no drift check; the best model is promoted.
    let first = setup.retrain_json(0);
    assert_eq!(first["exit_code"], 0);
    assert_eq!(stage(&first, "data")["status"], "ok");
    assert_eq!(stage(&first, "drift")["status"], "skipped");
    assert_eq!(stage(&first, "sweep")["status"], "ok");
    assert_eq!(stage(&first, "promote")["status"], "ok");
    assert!(
        stage(&first, "promote")["detail"]
            .as_str()
            .unwrap()
            .contains("is version 1"),
        "{first:#}"
    );
    assert_eq!(stage(&first, "publish")["status"], "ok");
    let champion = setup.published().expect("the champion is published");

    // Same data again: no drift, every trial reused, the champion stays.
    let text = setup.retrain("text").expect_code(0);
    assert!(
        text.stdout.contains("already `champion`"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("no drift from champion version 1"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("retrain done"), "{}", text.stdout);

    // Drifted data: one column pinned to a single value. `stop` ends the run before any
    // sweep, with exit 2.
    let csv = std::fs::read_to_string(&setup.data).unwrap();
    let drifted: String = csv
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 {
                format!("{line}\n")
            } else {
                let rest = line.split_once(',').unwrap().1;
                format!("1,{rest}\n")
            }
        })
        .collect();
    std::fs::write(&setup.data, drifted).unwrap();
    let sweeps_before = setup.sweep_statuses().len();
    let stopped = setup.retrain_json(2);
    let drift = stage(&stopped, "drift");
    assert_eq!(drift["status"], "stopped");
    assert!(
        drift["detail"]
            .as_str()
            .unwrap()
            .contains("having_IP_Address"),
        "{drift:#}"
    );
    assert!(
        stopped["stages"].as_array().unwrap().len() == 2,
        "{stopped:#}"
    );
    assert_eq!(setup.sweep_statuses().len(), sweeps_before, "no sweep ran");

    // `warn` goes on: the sweep runs on the new data and the policy decides.
    setup.set_on_drift("warn");
    let run = setup.retrain("json");
    assert!(
        run.code == 0 || run.code == 3,
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    let warned: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(stage(&warned, "drift")["status"], "warn");
    assert_eq!(stage(&warned, "sweep")["status"], "ok");
    let expected = if run.code == 0 { "ok" } else { "rejected" };
    assert_eq!(stage(&warned, "promote")["status"], expected);
    if run.code == 3 {
        assert!(
            warned["stages"].as_array().unwrap().len() == 4,
            "no publish stage: {warned:#}"
        );
        assert_eq!(
            setup.published().as_ref(),
            Some(&champion),
            "the pointer stays"
        );
    } else {
        assert_eq!(stage(&warned, "publish")["status"], "ok");
        assert_ne!(
            setup.published().as_ref(),
            Some(&champion),
            "the pointer moved"
        );
    }
    assert_eq!(setup.sweep_statuses().len(), sweeps_before + 1);
}

#[test]
fn a_second_run_does_not_start_while_one_holds_the_lock() {
    let setup = Setup::new(600, MODELS, "warn");
    std::fs::create_dir_all(&setup.state).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(setup.state.join("retrain.lock"))
        .unwrap();
    lock.lock().unwrap();
    let run = setup.retrain("text").expect_code(1);
    assert!(
        run.stderr.contains("another `netsec retrain` is running"),
        "{}",
        run.stderr
    );
    // A scheduler reading --format json still gets a summary.
    let held = setup.retrain_json(1);
    assert_eq!(stage(&held, "lock")["status"], "failed", "{held:#}");
    assert!(!setup.state.join("netsec.db").exists(), "nothing ran");
    lock.unlock().unwrap();
    setup.retrain("text").expect_code(0);
}

#[test]
fn bad_retrain_files_exit_2_and_name_the_field() {
    let setup = Setup::new(300, MODELS, "warn");
    std::fs::write(
        &setup.config,
        "grid: nowhere.yaml\npolicy: nowhere.yaml\ndrift: { on_drift: halt }\n",
    )
    .unwrap();
    let run = setup.retrain("text").expect_code(2);
    assert!(run.stderr.contains("retrain.yaml:3:"), "{}", run.stderr);
    std::fs::write(&setup.config, "grid: nowhere.yaml\npolicy: nowhere.yaml\n").unwrap();
    let run = setup.retrain("text").expect_code(2);
    assert!(
        run.stderr.contains("grid: nowhere.yaml does not exist"),
        "{}",
        run.stderr
    );
    assert!(!setup.state.exists(), "nothing was started");

    // A bad publish destination stops the run before the sweep, not after it.
    let (grid, policy) = (
        setup.dir.path().join("grid.yaml"),
        setup.dir.path().join("policy.yaml"),
    );
    std::fs::write(
        &setup.config,
        format!(
            "grid: {}\npolicy: {}\npublish: {{ to: \"ftp://models\" }}\n",
            s(&grid),
            s(&policy)
        ),
    )
    .unwrap();
    let run = setup.retrain("text").expect_code(2);
    assert!(run.stderr.contains("ftp://models"), "{}", run.stderr);
    assert!(!setup.state.join("netsec.db").exists(), "no sweep ran");
}

const MANY_MODELS: &str = "  - algorithm: decision_tree\n    grid: { max_depth: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, null], criterion: [gini, entropy] }\n  - algorithm: logistic_regression\n    grid: { c: [0.01, 0.1, 1.0, 10.0] }\n";

#[test]
fn a_run_killed_mid_sweep_resumes() {
    let setup = Setup::new(4000, MANY_MODELS, "warn");
    let mut child = crate::common::netsec_command()
        .args([
            "retrain",
            "--config",
            s(&setup.config),
            "--state-dir",
            s(&setup.state),
            "--jobs",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no trial finished in time");
        assert!(
            child.try_wait().unwrap().is_none(),
            "retrain ended before it was killed"
        );
        let shown = netsec(&[
            "experiment",
            "show",
            "nightly",
            "--state-dir",
            s(&setup.state),
            "--format",
            "json",
        ]);
        let trials = serde_json::from_str::<Value>(&shown.stdout)
            .map(|v| v["leaderboard"].as_array().map_or(0, Vec::len))
            .unwrap_or(0);
        if trials >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL: the lock and the sweep are left as they were
    child.wait().unwrap();

    let resumed = setup.retrain_json(0);
    assert_eq!(stage(&resumed, "promote")["status"], "ok");
    assert_eq!(setup.sweep_statuses(), vec!["finished", "killed"]);
}
