//! Experiment tracking end to end: the real `netsec` binary runs small sweeps against a
//! real MLflow server (see `common/mlflow_server.rs`), and the tests read back through the
//! REST API what arrived. Faults: a server killed mid-sweep, a server answering 500/429
//! (the scripted fault server), a sweep killed and resumed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::fault_server::{FaultServer, Reply};
use crate::common::mlflow_server::MlflowServer;
use crate::common::{Guard, netsec_command, without_guard};
use netsec::tracking::{MlflowClient, Run, RunSearch, RunStatus, TrackingConfig, system_tags};

/// A scratch directory with a grid file on generated data and a state directory.
pub(crate) struct Sweep {
    dir: tempfile::TempDir,
    pub(crate) experiment: String,
    /// A guard turned off in every `netsec` this sweep runs (a guard twin).
    guard: Option<Guard>,
}

impl Sweep {
    /// A sweep of `models` (YAML list items) on `rows` generated rows, tracked in a fresh
    /// MLflow experiment.
    pub(crate) fn new(prefix: &str, rows: usize, models: &str) -> Sweep {
        let dir = tempfile::tempdir().unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let experiment = format!("{prefix}-{nanos}");
        let schema = crate::common::repo_file("data_schema/phishing.yaml");
        let grid = format!(
            "name: {prefix}\n\
             data: {{ source: synthetic, profile: phishing, rows: {rows}, seed: 7, schema: {} }}\n\
             split: {{ test_fraction: 0.25, stratify: true, seed: 42 }}\n\
             cv: {{ folds: 3 }}\n\
             select: {{ metric: f1 }}\n\
             tracking: {{ experiment: {experiment} }}\n\
             models:\n{models}",
            schema.display()
        );
        std::fs::write(dir.path().join("grid.yaml"), grid).unwrap();
        Sweep {
            dir,
            experiment,
            guard: None,
        }
    }

    /// The same sweep with `guard` turned off in its `netsec` processes (`None`: all on).
    pub(crate) fn without_guard(mut self, guard: Option<Guard>) -> Sweep {
        self.guard = guard;
        self
    }

    fn grid(&self) -> PathBuf {
        self.dir.path().join("grid.yaml")
    }

    pub(crate) fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub(crate) fn command(&self, uri: Option<&str>, args: &[&str]) -> Command {
        let mut command = netsec_command();
        command
            .args(args)
            .arg("--state-dir")
            .arg(self.state())
            .current_dir(self.dir.path())
            .envs(uri.map(|uri| ("MLFLOW_TRACKING_URI", uri)))
            .stdin(Stdio::null());
        without_guard(&mut command, self.guard);
        command
    }

    /// `netsec experiment run grid.yaml --format json`; returns the run and its summary.
    pub(crate) fn run(&self, uri: Option<&str>) -> (crate::common::Run, serde_json::Value) {
        let grid = self.grid();
        let args = [
            "experiment",
            "run",
            grid.to_str().unwrap(),
            "--format",
            "json",
        ];
        let run = output(self.command(uri, &args));
        let summary = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
        (run, summary)
    }

    /// The same, as a child process with one worker thread (to stop it mid-way).
    pub(crate) fn spawn(&self, uri: Option<&str>) -> Child {
        let grid = self.grid();
        let args = ["experiment", "run", grid.to_str().unwrap(), "-j", "1"];
        self.command(uri, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub(crate) fn sync(&self, uri: &str) -> crate::common::Run {
        output(self.command(None, &["sync", "--uri", uri]))
    }
}

fn output(mut command: Command) -> crate::common::Run {
    crate::common::Run::of(&mut command)
}

pub(crate) fn client(url: &str) -> MlflowClient {
    MlflowClient::new(TrackingConfig::new(url).unwrap()).unwrap()
}

/// Every run of the experiment, split into parents and children.
pub(crate) async fn runs_of(c: &MlflowClient, experiment: &str) -> (Vec<Run>, Vec<Run>) {
    let Some(exp) = c.get_experiment_by_name(experiment).await.unwrap() else {
        return (Vec::new(), Vec::new());
    };
    let runs = c
        .search_runs(&RunSearch::new([exp.experiment_id]))
        .await
        .unwrap();
    runs.into_iter()
        .partition(|r| r.tag(system_tags::PARENT_RUN_ID).is_none())
}

/// Asserts one parent with `status` and exactly one child per planned trial, each pointing
/// at the parent, with distinct trial keys; returns (parent, children).
pub(crate) async fn assert_complete(
    c: &MlflowClient,
    experiment: &str,
    trials: usize,
    status: RunStatus,
) -> (Run, Vec<Run>) {
    let (parents, children) = runs_of(c, experiment).await;
    assert_eq!(parents.len(), 1, "one parent run: {parents:#?}");
    let parent = parents.into_iter().next().unwrap();
    assert_eq!(parent.info.status, status);
    assert_eq!(children.len(), trials, "one child run per trial");
    let keys: HashSet<&str> = children
        .iter()
        .map(|r| {
            r.tag("netsec.trial_key")
                .unwrap_or_else(|| panic!("a child run without its trial key tag: {r:#?}"))
        })
        .collect();
    assert_eq!(keys.len(), trials, "no duplicate trial runs");
    for child in &children {
        assert_eq!(child.tag(system_tags::PARENT_RUN_ID), Some(parent.id()));
        assert_eq!(child.info.status, RunStatus::Finished, "{child:#?}");
        assert!(child.info.end_time.is_some());
    }
    (parent, children)
}

pub(crate) const SMALL: &str = "  - algorithm: decision_tree\n    grid: { max_depth: [2, 4] }\n  \
                     - algorithm: logistic_regression\n    grid: { c: [1.0] }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_logs_everything_and_a_rerun_adds_no_runs() {
    let server = MlflowServer::shared();
    let sweep = Sweep::new("track", 1200, SMALL);
    // A git work tree around the grid, so the commit tag has something to name.
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
            .args(args)
            .current_dir(sweep.dir.path())
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["commit", "-q", "--allow-empty", "-m", "grid"]);

    let (run, summary) = tokio::task::block_in_place(|| sweep.run(Some(&server.url)));
    let run = run.expect_code(0);
    assert_eq!(summary["tracking"]["pending"], 0, "{}", run.stderr);
    let trials = summary["trials_planned"].as_u64().unwrap() as usize;
    assert_eq!(trials, 3);
    let c = client(&server.url);
    let (parent, children) =
        assert_complete(&c, &sweep.experiment, trials, RunStatus::Finished).await;

    // The parent: sweep settings, context tags, leaderboard note and files.
    assert_eq!(parent.param("select_metric"), Some("f1"));
    assert_eq!(parent.param("cv_folds"), Some("3"));
    assert_eq!(parent.param("trials_planned"), Some("3"));
    let fingerprint = summary["data_fingerprint"].as_str().unwrap();
    assert_eq!(parent.tag("netsec.data_fingerprint"), Some(fingerprint));
    assert_eq!(
        parent.tag("netsec.version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        parent.tag(system_tags::SOURCE_NAME),
        Some("netsec experiment run")
    );
    assert_eq!(
        parent.tag(system_tags::GIT_COMMIT).map(str::len),
        Some(40),
        "git commit tag"
    );
    let note = parent.tag(system_tags::NOTE).unwrap();
    assert!(note.contains("| # | algorithm"), "{note}");
    assert_eq!(parent.metric("trials_finished"), Some(3.0));
    assert!(parent.metric("best_cv_f1_mean").is_some());
    assert_eq!(parent.info.run_name, "sweep track");
    let files: Vec<String> = c
        .list_artifacts(parent.id(), "")
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    for expected in [
        "leaderboard.csv",
        "data_validation.json",
        "best_plots_confusion_matrix.png",
        "best_plots_roc_curve.png",
    ] {
        assert!(files.contains(&expected.to_string()), "{files:?}");
    }
    let csv = c
        .download_artifact(&parent.info, "leaderboard.csv")
        .await
        .unwrap();
    assert_eq!(String::from_utf8(csv).unwrap().lines().count(), 1 + trials);

    // Every child: params, CV mean and std, test metrics, timings, tags, a readable name.
    for child in &children {
        let algorithm = child.param("algorithm").unwrap();
        assert!(
            child.info.run_name.starts_with(algorithm),
            "{}",
            child.info.run_name
        );
        if algorithm == "decision_tree" {
            let depth = child.param("max_depth").unwrap();
            assert!(child.info.run_name.contains(&format!("max_depth={depth}")));
        }
        for metric in [
            "cv_f1_mean",
            "cv_f1_std",
            "cv_roc_auc_mean",
            "test_f1",
            "test_accuracy",
            "fit_seconds",
            "predict_seconds",
        ] {
            assert!(child.metric(metric).is_some(), "{metric} of {child:#?}");
        }
        assert_eq!(child.tag("netsec.data_fingerprint"), Some(fingerprint));
        assert!(child.tag(system_tags::GIT_COMMIT).is_some());

        // Its dataset inputs: the training part (899 of 1,200 rows: the split rounds per
        // class) and the test part, by
        // context, with the digest MLflow keeps and the whole fingerprint in a tag.
        let inputs = &child.inputs.dataset_inputs;
        let mut seen: Vec<(&str, &str, &str)> = inputs
            .iter()
            .map(|i| {
                assert_eq!(i.dataset.digest, fingerprint[..32]);
                assert_eq!(i.tag("netsec.data_fingerprint"), Some(fingerprint));
                assert_eq!(i.dataset.source_type, "code");
                assert!(i.dataset.schema.contains("mlflow_colspec"));
                let context = i.tag("mlflow.data.context").unwrap();
                (i.dataset.name.as_str(), context, i.dataset.profile.as_str())
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("phishing-test", "test", r#"{"num_rows":301}"#),
                ("phishing-train", "train", r#"{"num_rows":899}"#),
            ],
            "{}",
            child.info.run_name
        );
    }

    // The best trial's run holds the model file and the two plots, as real PNGs.
    let best_key = summary["best_model"]["trial"].as_str().unwrap();
    let sha = summary["best_model"]["sha256"].as_str().unwrap();
    let best = children
        .iter()
        .find(|r| r.tag("netsec.trial_key") == Some(best_key))
        .unwrap();
    let model = c
        .download_artifact(&best.info, &format!("model/{sha}.json"))
        .await
        .unwrap();
    let local = std::fs::read(summary["best_model"]["path"].as_str().unwrap()).unwrap();
    assert_eq!(model, local, "the uploaded model file is the saved one");
    for plot in ["plots/confusion_matrix.png", "plots/roc_curve.png"] {
        let png = c.download_artifact(&best.info, plot).await.unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{plot}");
    }

    // Links to the UI.
    let experiment_url = summary["tracking"]["experiment_url"].as_str().unwrap();
    assert_eq!(
        experiment_url,
        format!(
            "{}/#/experiments/{}/runs",
            server.url, parent.info.experiment_id
        )
    );
    let compare = summary["tracking"]["compare_url"].as_str().unwrap();
    assert!(compare.contains("compare-runs?runs=%5B%22"), "{compare}");

    // Running the same grid again reuses every trial and every run.
    let (again, _) = tokio::task::block_in_place(|| sweep.run(Some(&server.url)));
    again.expect_code(0);
    let (parent2, _) = assert_complete(&c, &sweep.experiment, trials, RunStatus::Finished).await;
    assert_eq!(parent2.id(), parent.id());

    // A deleted experiment is restored, with a warning, and its runs are found again.
    c.delete_experiment(&parent.info.experiment_id)
        .await
        .unwrap();
    let (third, _) = tokio::task::block_in_place(|| sweep.run(Some(&server.url)));
    let third = third.expect_code(0);
    assert!(third.stderr.contains("restored"), "{}", third.stderr);
    let exp = c
        .get_experiment_by_name(&sweep.experiment)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exp.lifecycle_stage, "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_sweep_then_sync_sends_exactly_once() {
    let server = MlflowServer::shared();
    let sweep = Sweep::new("offline", 900, SMALL);
    let (run, summary) = tokio::task::block_in_place(|| sweep.run(None));
    run.expect_code(0);
    let pending = summary["tracking"]["pending"].as_i64().unwrap();
    assert!(
        pending >= 5,
        "open + 3 trials + artifacts + close: {summary}"
    );
    let c = client(&server.url);
    assert!(runs_of(&c, &sweep.experiment).await.0.is_empty());

    let first = tokio::task::block_in_place(|| sweep.sync(&server.url)).expect_code(0);
    assert!(
        first.stdout.contains(&format!("sent {pending} records")),
        "{}",
        first.stdout
    );
    assert_complete(&c, &sweep.experiment, 3, RunStatus::Finished).await;
    let second = tokio::task::block_in_place(|| sweep.sync(&server.url)).expect_code(0);
    assert!(
        second.stdout.contains("sent 0 records"),
        "{}",
        second.stdout
    );
    assert_complete(&c, &sweep.experiment, 3, RunStatus::Finished).await;
}

/// Enough trials, one at a time, that the server can be stopped while they run.
pub(crate) const SLOW: &str = "  - algorithm: decision_tree\n    \
                    grid: { criterion: [gini, entropy], max_depth: [2, 3, 4, 6, 8, 12] }\n  \
                    - algorithm: svm\n    grid: { c: [0.5, 1.0, 2.0], gamma: [scale, 0.01, 0.1] }\n";
pub(crate) const SLOW_TRIALS: usize = 21;
// The SVM trials come last in the plan and take seconds each, so a sweep stopped after the
// first children reached the server is still running then, however fast the trees are.

/// Waits until the server shows at least `n` child runs of the experiment.
pub(crate) async fn wait_for_children(
    c: &MlflowClient,
    experiment: &str,
    n: usize,
    child: &mut Child,
) {
    let started = Instant::now();
    loop {
        if runs_of(c, experiment).await.1.len() >= n {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the sweep ended ({status}) before {n} child runs reached the server");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no {n} child runs after 2 min"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn finish(child: Child) -> crate::common::Run {
    let out = child.wait_with_output().unwrap();
    crate::common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_sweep_then_sync_sends_the_rest_once() {
    let server = MlflowServer::start();
    let url = server.url.clone();
    let c = client(&url);
    let sweep = Sweep::new("outage", 4000, SLOW);
    let mut child = sweep.spawn(Some(&url));
    wait_for_children(&c, &sweep.experiment, 1, &mut child).await;
    let dead = server.kill();
    let started = Instant::now();
    let run = tokio::task::block_in_place(|| finish(child)).expect_code(0);
    assert!(
        run.stdout.contains("wait in the outbox"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    // The end of the sweep waits for the server only briefly: the README's 8 s retry
    // budget once the server is found away, then a 5 s flush. The bound adds the trials
    // still to run after the kill (the SVMs: 10-20 s on two loaded cores) and a margin.
    assert!(started.elapsed() < Duration::from_secs(60));

    let server = MlflowServer::restart(dead);
    let (parents, children) = runs_of(&c, &sweep.experiment).await;
    assert_eq!(parents.len(), 1);
    assert!(
        children.len() < SLOW_TRIALS,
        "some records were left for sync"
    );
    let first = tokio::task::block_in_place(|| sweep.sync(&server.url)).expect_code(0);
    assert!(first.stdout.contains("0 waiting"), "{}", first.stdout);
    assert_complete(&c, &sweep.experiment, SLOW_TRIALS, RunStatus::Finished).await;
    let second = tokio::task::block_in_place(|| sweep.sync(&server.url)).expect_code(0);
    assert!(
        second.stdout.contains("sent 0 records"),
        "{}",
        second.stdout
    );
    assert_complete(&c, &sweep.experiment, SLOW_TRIALS, RunStatus::Finished).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_answering_500_and_429_never_fails_the_sweep() {
    let fault = FaultServer::start(vec![
        Reply::new(500, r#"{"error_code":"INTERNAL_ERROR","message":"boom"}"#),
        Reply::new(429, "slow down").header("Retry-After", "0"),
        Reply::new(503, "unavailable"),
    ])
    .await;
    let sweep = Sweep::new("faulty", 900, SMALL);
    let started = Instant::now();
    let (run, summary) = tokio::task::block_in_place(|| sweep.run(Some(&fault.url)));
    let run = run.expect_code(0);
    // A whole small sweep (a few seconds) plus the README's 8 s retry budget, with a wide
    // margin for a loaded machine: what it guards against is a wait per record.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{}",
        run.stderr
    );
    assert!(summary["tracking"]["pending"].as_i64().unwrap() >= 5);
    let last = summary["tracking"]["last_error"].as_str().unwrap();
    assert!(last.contains("503"), "{last}");
    assert!(fault.seen().len() >= 3, "500 and 429 were retried");

    // The same records then go to a healthy server, once.
    let server = MlflowServer::shared();
    tokio::task::block_in_place(|| sweep.sync(&server.url)).expect_code(0);
    let c = client(&server.url);
    assert_complete(&c, &sweep.experiment, 3, RunStatus::Finished).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_sweep_is_killed_then_resumed_into_the_same_runs() {
    let server = MlflowServer::shared();
    let c = client(&server.url);
    let sweep = Sweep::new("resume", 4000, SLOW);
    let mut child = sweep.spawn(Some(&server.url));
    wait_for_children(&c, &sweep.experiment, 2, &mut child).await;
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let first = tokio::task::block_in_place(|| finish(child)).expect_code(1);
    assert!(first.stderr.contains("interrupted"), "{}", first.stderr);
    let (parents, children) = runs_of(&c, &sweep.experiment).await;
    assert_eq!(parents.len(), 1);
    assert_eq!(
        parents[0].info.status,
        RunStatus::Killed,
        "Ctrl-C / SIGTERM ends KILLED"
    );
    assert!(children.len() < SLOW_TRIALS);
    let parent_id = parents[0].id().to_owned();

    let (run, _) = tokio::task::block_in_place(|| sweep.run(Some(&server.url)));
    run.expect_code(0);
    let (parent, _) =
        assert_complete(&c, &sweep.experiment, SLOW_TRIALS, RunStatus::Finished).await;
    assert_eq!(
        parent.id(),
        parent_id,
        "the resumed sweep reuses its parent run"
    );
}
