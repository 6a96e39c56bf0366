//! "Exactly once" under injected faults, in front of a real MLflow server: answers lost
//! after the server acted (create run, log-batch, update, artifact upload), a connection
//! cut mid-body, a burst of 503s. The faults come from the test proxy
//! (`common/fault_proxy.rs`): a real server cannot be made to lose its own answer. Each test
//! ends by reading MLflow back over its REST API and comparing with a sweep of the same grid
//! sent without faults: no duplicate, none missing, no run left RUNNING.

use std::collections::BTreeMap;

use crate::common::fault_proxy::{Fault, FaultProxy, Rule};
use crate::common::mlflow_server::MlflowServer;
use crate::tracking_cli::{SMALL, Sweep, assert_complete, client, runs_of};
use netsec::tracking::{MlflowClient, Run, RunStatus};

/// What MLflow holds for one trial run, without ids and times: params, metric values (not
/// the timings) with the length of each metric's history, and artifact paths.
#[derive(Debug, PartialEq)]
struct RunContent {
    params: BTreeMap<String, String>,
    metrics: BTreeMap<String, (f64, usize)>,
    artifacts: Vec<String>,
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
        let value = if m.key.ends_with("_seconds") { 0.0 } else { m.value };
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
    RunContent {
        params,
        metrics,
        artifacts,
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
            Rule::new(
                |line| line.starts_with("PUT ") && line.contains("/mlflow-artifacts/artifacts/"),
                Fault::LoseResponse,
            )
            .calls(1..=1),
        ],
    );
    let faulty = Sweep::new("exactly", 900, SMALL);
    let (run, summary) = tokio::task::block_in_place(|| faulty.run(Some(&proxy.endpoint)));
    let run = run.expect_code(0);
    assert_eq!(proxy.faults(), 10, "every fault was injected");
    assert_eq!(summary["tracking"]["pending"], 0, "{}", run.stderr);

    assert_complete(&c, &faulty.experiment, 3, RunStatus::Finished).await;
    let got = trials(&c, &faulty.experiment).await;
    assert_eq!(got, expected, "the faulty sweep's runs hold what the clean one's do");
    for (key, trial) in &got {
        for (metric, (_, history)) in &trial.metrics {
            assert_eq!(*history, 1, "{key}: {metric} logged once");
        }
    }
}
