//! "Exactly once" under injected faults, in front of a real MLflow server: answers lost
//! after the server acted (create run, log-batch, log-inputs, update, artifact upload,
//! logged-model create and finalize, run outputs), a connection
//! cut mid-body, a burst of 503s. The faults come from the test proxy
//! (`common/fault_proxy.rs`): a real server cannot be made to lose its own answer. Each test
//! ends by reading MLflow back over its REST API and comparing with a sweep of the same grid
//! sent without faults: no duplicate, none missing, no run left RUNNING.

use std::collections::BTreeMap;

use crate::common::Guard;
use crate::common::fault_proxy::{Fault, FaultProxy, Rule};
use crate::common::mlflow_server::MlflowServer;
use crate::tracking_cli::{
    SLOW, SLOW_TRIALS, SMALL, Sweep, assert_complete, client, runs_of, wait_for_children,
};
use netsec::tracking::{MlflowClient, Run, RunStatus};

/// What MLflow holds for one trial run, without ids and times: params, metric values (not
/// the timings) with the length of each metric's history, and artifact paths.
#[derive(Debug, PartialEq)]
struct RunContent {
    params: BTreeMap<String, String>,
    metrics: BTreeMap<String, (f64, usize)>,
    artifacts: Vec<String>,
    /// Dataset inputs: (name, digest, context).
    inputs: Vec<(String, String, String)>,
    /// Logged models linked as the run's outputs: (name, netsec.trial_key tag, status).
    outputs: Vec<(String, String, String)>,
}

async fn content(c: &MlflowClient, run: &Run) -> RunContent {
    let params = run
        .data
        .params
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    let mut metrics = BTreeMap::new();
    for m in &run.data.metrics {
        let history = c.get_metric_history(run.id(), &m.key).await.unwrap();
        // Timings differ from run to run; that they are there, once, is what counts.
        let value = if m.key.ends_with("_seconds") {
            0.0
        } else {
            m.value
        };
        metrics.insert(m.key.clone(), (value, history.len()));
    }
    let mut artifacts = Vec::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        for f in c.list_artifacts(run.id(), &dir).await.unwrap() {
            if f.is_dir {
                dirs.push(f.path);
            } else {
                artifacts.push(f.path);
            }
        }
    }
    artifacts.sort();
    let mut inputs: Vec<(String, String, String)> = run
        .inputs
        .dataset_inputs
        .iter()
        .map(|i| {
            let context = i.tag("mlflow.data.context").unwrap_or_default();
            (
                i.dataset.name.clone(),
                i.dataset.digest.clone(),
                context.to_owned(),
            )
        })
        .collect();
    inputs.sort();
    let mut outputs = Vec::new();
    for output in &run.outputs.model_outputs {
        let model = c.get_logged_model(&output.model_id).await.unwrap();
        let key = model.tag("netsec.trial_key").unwrap_or_default().to_owned();
        outputs.push((model.info.name.clone(), key, model.info.status.clone()));
    }
    RunContent {
        params,
        metrics,
        artifacts,
        inputs,
        outputs,
    }
}

/// Trial key -> content, for every child run of the experiment.
async fn trials(c: &MlflowClient, experiment: &str) -> BTreeMap<String, RunContent> {
    let (_, children) = runs_of(c, experiment).await;
    let mut out = BTreeMap::new();
    for child in &children {
        let key = child.tag("netsec.trial_key").unwrap().to_owned();
        out.insert(key, content(c, child).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_cut_bodies_and_503_bursts_leave_exactly_one_of_everything() {
    lost_answers_cut_bodies_and_503_bursts(None).await;
}

/// The same with runs created without the lookup by idempotency key: the lost `runs/create`
/// answers leave duplicate runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "guard twin: fails by design, see NETSEC_TEST_DISABLE_GUARD"]
async fn guard_twin_create_once() {
    lost_answers_cut_bodies_and_503_bursts(Some(Guard::CreateOnce)).await;
}

async fn lost_answers_cut_bodies_and_503_bursts(guard: Option<Guard>) {
    let server = MlflowServer::shared();
    let c = client(&server.url);

    // The reference: the same grid, sent with no fault.
    let clean = Sweep::new("exactly", 900, SMALL);
    let (run, _) = tokio::task::block_in_place(|| clean.run(Some(&server.url)));
    run.expect_code(0);
    let expected = trials(&c, &clean.experiment).await;
    assert_eq!(expected.len(), 3);

    let proxy = FaultProxy::with_rules(
        &server.url,
        vec![
            // The parent's creation and a child's: done by the server, never heard of.
            Rule::mlflow("runs/create", Fault::LoseResponse).calls(1..=1),
            Rule::mlflow("runs/create", Fault::LoseResponse).calls(3..=3),
            Rule::mlflow("runs/log-batch", Fault::LoseResponse).calls(1..=1),
            Rule::mlflow("runs/log-batch", Fault::CutBody(40)).calls(3..=3),
            Rule::mlflow("runs/log-batch", Fault::Status(503)).calls(5..=7),
            Rule::mlflow("runs/update", Fault::LoseResponse).calls(1..=2),
            Rule::mlflow("runs/log-inputs", Fault::LoseResponse).calls(1..=1),
            Rule::new(
                |line| line.starts_with("PUT ") && line.contains("/mlflow-artifacts/artifacts/"),
                Fault::LoseResponse,
            )
            .calls(1..=1),
            // The best model's logged model: created, finalized and linked to its run, and
            // none of the three answers heard the first time.
            Rule::mlflow("logged-models", Fault::LoseResponse).calls(1..=1),
            Rule::new(
                |line| line.starts_with("PATCH /api/2.0/mlflow/logged-models/"),
                Fault::LoseResponse,
            )
            .calls(1..=1),
            Rule::mlflow("runs/outputs", Fault::LoseResponse).calls(1..=1),
        ],
    );
    let faulty = Sweep::new("exactly", 900, SMALL).without_guard(guard);
    let (run, summary) = tokio::task::block_in_place(|| faulty.run(Some(&proxy.endpoint)));
    let run = run.expect_code(0);
    assert_eq!(proxy.faults(), 14, "every fault was injected");
    assert_eq!(summary["tracking"]["pending"], 0, "{}", run.stderr);

    assert_complete(&c, &faulty.experiment, 3, RunStatus::Finished).await;
    let got = trials(&c, &faulty.experiment).await;
    assert_eq!(
        got, expected,
        "the faulty sweep's runs hold what the clean one's do"
    );
    for (key, trial) in &got {
        for (metric, (_, history)) in &trial.metrics {
            assert_eq!(*history, 1, "{key}: {metric} logged once");
        }
        let contexts: Vec<&str> = trial.inputs.iter().map(|i| i.2.as_str()).collect();
        assert_eq!(contexts, ["test", "train"], "{key}: one input of each part");
    }
    // One logged model in the experiment: the best trial's, ready, and its run's only
    // output.
    let models = logged_models(&c, &faulty.experiment).await;
    assert_eq!(models.len(), 1, "exactly one logged model: {models:#?}");
    let best = summary["best_model"]["trial"].as_str().unwrap();
    assert_eq!(models[0].tag("netsec.trial_key"), Some(best));
    assert_eq!(models[0].info.status, "LOGGED_MODEL_READY");
    let linked: Vec<&str> = got
        .iter()
        .flat_map(|(key, trial)| trial.outputs.iter().map(move |_| key.as_str()))
        .collect();
    assert_eq!(linked, [best], "the best trial's run, once");
}

/// Every logged model of the experiment.
async fn logged_models(
    c: &MlflowClient,
    experiment: &str,
) -> Vec<netsec::tracking::logged_model::LoggedModel> {
    let exp = c.get_experiment_by_name(experiment).await.unwrap().unwrap();
    c.search_logged_models(&exp.experiment_id, "")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_killed_with_sigkill_is_closed_killed_by_sync_and_loses_nothing() {
    sweep_killed_with_sigkill(None).await;
}

/// The same with a sync that leaves sweeps of dead processes `running`: the parent run
/// stays RUNNING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "guard twin: fails by design, see NETSEC_TEST_DISABLE_GUARD"]
async fn guard_twin_reap_dead_sweeps() {
    sweep_killed_with_sigkill(Some(Guard::ReapDeadSweeps)).await;
}

async fn sweep_killed_with_sigkill(guard: Option<Guard>) {
    let server = MlflowServer::shared();
    let c = client(&server.url);
    let sweep = Sweep::new("sigkill", 4000, SLOW).without_guard(guard);
    let mut child = sweep.spawn(Some(&server.url));
    wait_for_children(&c, &sweep.experiment, 2, &mut child).await;
    child.kill().unwrap(); // SIGKILL: no chance to close anything
    child.wait().unwrap();
    // A request the dead process had in flight may still land on the server; a sync racing
    // it could not know of that run (see the README's note on `kill -9`). Wait until the
    // server's runs stop changing, as they have long before anyone runs sync by hand.
    let mut seen = runs_of(&c, &sweep.experiment).await.1.len();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let now = runs_of(&c, &sweep.experiment).await.1.len();
        if now == seen {
            break;
        }
        seen = now;
    }
    let (parents, _) = runs_of(&c, &sweep.experiment).await;
    assert_eq!(parents.len(), 1);
    assert_eq!(
        parents[0].info.status,
        RunStatus::Running,
        "nobody closed it yet"
    );

    // sync finds the sweep's process gone: the parent ends KILLED; every trial that was
    // stored is on the server once, each child run closed.
    let synced = tokio::task::block_in_place(|| sweep.sync(&server.url)).expect_code(0);
    assert!(synced.stdout.contains("0 waiting"), "{}", synced.stdout);
    let (parents, children) = runs_of(&c, &sweep.experiment).await;
    assert_eq!(parents.len(), 1, "{parents:#?}");
    assert_eq!(
        parents[0].info.status,
        RunStatus::Killed,
        "sync closed the dead sweep's parent"
    );
    let stored = stored_trials(&sweep).await;
    assert!(
        stored.len() < SLOW_TRIALS,
        "the sweep ended before the kill"
    );
    let mut keys: Vec<&str> = children
        .iter()
        .map(|r| {
            r.tag("netsec.trial_key")
                .unwrap_or_else(|| panic!("{r:#?}\nsync: {}\n{}", synced.stdout, synced.stderr))
        })
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, stored.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        children
            .iter()
            .all(|r| r.info.status == RunStatus::Finished)
    );

    // The rerun resumes into the same parent and completes it.
    let (run, _) = tokio::task::block_in_place(|| sweep.run(Some(&server.url)));
    run.expect_code(0);
    assert_complete(&c, &sweep.experiment, SLOW_TRIALS, RunStatus::Finished).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_mid_way_then_run_again_sends_everything_once() {
    sync_killed_mid_way(None).await;
}

/// The same with records marked sent before the server has them: what the killed sync
/// had begun is never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "guard twin: fails by design, see NETSEC_TEST_DISABLE_GUARD"]
async fn guard_twin_sent_after_ack() {
    sync_killed_mid_way(Some(Guard::SentAfterAck)).await;
}

async fn sync_killed_mid_way(guard: Option<Guard>) {
    let server = MlflowServer::shared();
    let c = client(&server.url);
    let clean = Sweep::new("resync", 900, SMALL);
    let (run, _) = tokio::task::block_in_place(|| clean.run(Some(&server.url)));
    run.expect_code(0);
    let expected = trials(&c, &clean.experiment).await;

    // Offline, then a sync through a proxy that slows every log-batch down, killed once
    // two of them have gone through.
    let offline = Sweep::new("resync", 900, SMALL).without_guard(guard);
    let (run, _) = tokio::task::block_in_place(|| offline.run(None));
    run.expect_code(0);
    let proxy = FaultProxy::with_rules(
        &server.url,
        vec![Rule::mlflow(
            "runs/log-batch",
            Fault::Delay(std::time::Duration::from_millis(400)),
        )],
    );
    let mut sync = offline
        .command(None, &["sync", "--uri", &proxy.endpoint])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while proxy.faults() < 3 {
        assert!(
            sync.try_wait().unwrap().is_none(),
            "sync ended before it was killed"
        );
        assert!(std::time::Instant::now() < deadline, "sync never got going");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sync.kill().unwrap();
    sync.wait().unwrap();

    let again = tokio::task::block_in_place(|| offline.sync(&server.url)).expect_code(0);
    assert!(again.stdout.contains("0 waiting"), "{}", again.stdout);
    assert_complete(&c, &offline.experiment, 3, RunStatus::Finished).await;
    assert_eq!(trials(&c, &offline.experiment).await, expected);
}

/// Keys of the trials stored in the sweep's run store, sorted.
async fn stored_trials(sweep: &Sweep) -> Vec<String> {
    let show = sweep
        .command(None, &["experiment", "show", "sigkill", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let mut keys: Vec<String> = shown["leaderboard"]
        .as_array()
        .unwrap_or_else(|| panic!("no leaderboard: {shown}"))
        .iter()
        .map(|t| {
            t["key"]
                .as_str()
                .unwrap_or_else(|| panic!("{t}"))
                .to_owned()
        })
        .collect();
    keys.sort_unstable();
    keys
}
