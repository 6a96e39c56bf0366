//! Mirroring the local registry into MLflow's model registry, end to end through the real
//! binary against a real MLflow server (`common/mlflow_server.rs`): promote registers the
//! sweep's logged model of the file (else the file on the trial's run) as a version and
//! points `champion` at it, a better model moves the alias, rollback moves it back,
//! repeating creates no version twice. Faults: a server
//! without a registry (the scripted fault server, since a real MLflow cannot be made to
//! lack one) and a server that is down (the move waits in the outbox for `netsec sync`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::fault_proxy::{Fault, FaultProxy, Rule};
use crate::common::fault_server::{FaultServer, Reply};
use crate::common::mlflow_server::MlflowServer;
use crate::common::{Guard, Run, netsec_command, repo_file, s, without_guard};
use netsec::tracking::{MlflowClient, ModelVersion, TrackingConfig, TrackingError};
use serde_json::Value;

/// A scratch directory with a state directory, a policy and unique MLflow names.
struct Setup {
    dir: tempfile::TempDir,
    model: String,
    experiment: String,
    /// A guard turned off in every `netsec` this setup runs (a guard twin).
    guard: Option<Guard>,
}

impl Setup {
    fn new(prefix: &str) -> Setup {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = tempfile::tempdir().unwrap();
        let model = format!("{prefix}-{nanos}");
        std::fs::write(
            dir.path().join("policy.yaml"),
            format!(
                "model: {model}\nalias: champion\nfloors: {{ f1: 0.5 }}\n\
                 challenge: {{ metric: f1, min_gain: 0.0, test: mcnemar, alpha: 0.05 }}\n\
                 guards: {{ same_holdout: true, schema_match: true, max_p99_predict_us: 100000 }}\n"
            ),
        )
        .unwrap();
        Setup {
            dir,
            experiment: format!("{model}-exp"),
            model,
            guard: None,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `netsec ARGS --state-dir STATE` with `MLFLOW_TRACKING_URI` set to `uri` (or unset)
    /// and `env` added.
    fn netsec(&self, uri: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = netsec_command();
        command
            .args(args)
            .arg("--state-dir")
            .arg(self.state())
            .current_dir(self.dir.path())
            .envs(uri.map(|uri| ("MLFLOW_TRACKING_URI", uri)))
            .envs(env.iter().copied());
        without_guard(&mut command, self.guard);
        Run::of(&mut command)
    }

    /// Sweeps one model grid (same generated rows and split every time, so models share
    /// the holdout), tracked on `uri`; returns the JSON summary.
    fn sweep(&self, uri: Option<&str>, name: &str, models: &str) -> Value {
        let grid = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &grid,
            format!(
                "name: {name}\n\
                 data: {{ source: synthetic, profile: phishing, rows: 2000, seed: 5, schema: {} }}\n\
                 split: {{ test_fraction: 0.3, seed: 3 }}\ncv: {{ folds: 2 }}\n\
                 tracking: {{ experiment: {} }}\nmodels:\n{models}",
                s(&repo_file("data_schema/phishing.yaml")),
                self.experiment
            ),
        )
        .unwrap();
        let run = self
            .netsec(
                uri,
                &["experiment", "run", s(&grid), "--format", "json"],
                &[],
            )
            .expect_code(0);
        serde_json::from_str(&run.stdout).unwrap()
    }

    fn promote(&self, uri: Option<&str>, extra: &[&str]) -> Run {
        let policy = self.dir.path().join("policy.yaml");
        let mut args = vec!["promote", "--policy", s(&policy)];
        args.extend_from_slice(extra);
        self.netsec(uri, &args, &[])
    }
}

const STUMP: &str = "  - algorithm: decision_tree\n    grid: { max_depth: [1] }\n";
const LOGISTIC: &str = "  - algorithm: logistic_regression\n";

fn client(url: &str) -> MlflowClient {
    MlflowClient::new(TrackingConfig::new(url).unwrap()).unwrap()
}

fn champion(c: &MlflowClient, model: &str) -> Option<ModelVersion> {
    block(c.get_alias(model, "champion")).unwrap()
}

/// Runs a future on a small runtime of its own (the tests themselves are synchronous).
/// The server answers that `model` does not exist (not any error: a transport failure or
/// a 500 would say nothing about what the mirror did).
fn assert_not_registered(c: &MlflowClient, model: &str) {
    match block(c.get_registered_model(model)) {
        Err(TrackingError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (404, "RESOURCE_DOES_NOT_EXIST"));
        }
        other => panic!("expected `{model}` not to be registered, got {other:?}"),
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Every MLflow version of `model`, through the REST API.
fn versions(server: &MlflowServer, model: &str) -> Vec<Value> {
    let filter = format!("name = '{model}'");
    let path = format!(
        "/api/2.0/mlflow/model-versions/search?filter={}",
        percent_encoding::utf8_percent_encode(&filter, percent_encoding::NON_ALPHANUMERIC)
    );
    let addr = ([127, 0, 0, 1], server.port()).into();
    let answer = crate::common::http::get(addr, &path, &[]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["model_versions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The best trial's MLflow child run: its id, found by the trial key tag.
fn run_of_trial(c: &MlflowClient, experiment: &str, trial: &str) -> String {
    block(async {
        let exp = c.get_experiment_by_name(experiment).await.unwrap().unwrap();
        let search = netsec::tracking::RunSearch::new([exp.experiment_id])
            .filter(format!("tags.`netsec.trial_key` = '{trial}'"));
        let runs = c.search_runs(&search).await.unwrap();
        assert_eq!(runs.len(), 1, "one run of trial {trial}");
        runs[0].info.run_id.clone()
    })
}

/// The one logged model made on run `run_id`.
fn logged_model_of(
    c: &MlflowClient,
    experiment: &str,
    run_id: &str,
) -> netsec::tracking::logged_model::LoggedModel {
    block(async {
        let exp = c.get_experiment_by_name(experiment).await.unwrap().unwrap();
        let filter = format!("source_run_id = '{run_id}'");
        let found = c
            .search_logged_models(&exp.experiment_id, &filter)
            .await
            .unwrap();
        assert_eq!(
            found.len(),
            1,
            "one logged model of run {run_id}: {found:#?}"
        );
        found.into_iter().next().unwrap()
    })
}

fn tag<'a>(v: &'a ModelVersion, key: &str) -> Option<&'a str> {
    v.tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.as_str())
}

#[test]
fn promote_and_rollback_move_the_mlflow_alias_without_duplicate_versions() {
    let server = MlflowServer::shared();
    let url = Some(server.url.as_str());
    let c = client(&server.url);
    let setup = Setup::new("mirror");

    // First promotion: registered model, version 1 from the trial's run, `champion`.
    let stump = setup.sweep(url, "stump", STUMP);
    let first = setup.promote(url, &[]).expect_code(0);
    assert!(first.stdout.contains("PROMOTED"), "{}", first.stdout);
    assert!(!first.stderr.contains("WARN"), "{}", first.stderr);
    let v1 = champion(&c, &setup.model).expect("champion set in MLflow");
    assert_eq!(v1.version, "1");
    let sha1 = stump["best_model"]["sha256"].as_str().unwrap();
    let trial1 = stump["best_model"]["trial"].as_str().unwrap();
    let run1 = run_of_trial(&c, &setup.experiment, trial1);
    assert_eq!(v1.run_id, run1);
    // Made from the sweep's logged model of that very file.
    let logged1 = logged_model_of(&c, &setup.experiment, &run1);
    assert_eq!(logged1.tag("netsec.sha256"), Some(sha1));
    assert_eq!(v1.source, format!("models:/{}", logged1.info.model_id));
    // MLflow records the version on the logged model (its `model_id` was sent with it).
    let registered: Value =
        serde_json::from_str(logged1.tag("mlflow.modelVersions").unwrap_or("null")).unwrap();
    assert_eq!(
        registered,
        serde_json::json!([{ "name": setup.model, "version": 1 }])
    );
    assert_eq!(tag(&v1, "netsec.sha256"), Some(sha1));
    assert_eq!(tag(&v1, "netsec.version"), Some("1"));

    // A better model takes the alias: version 2, from its own run.
    let logistic = setup.sweep(url, "logistic", LOGISTIC);
    setup.promote(url, &["--best", "logistic"]).expect_code(0);
    let v2 = champion(&c, &setup.model).unwrap();
    assert_eq!(v2.version, "2");
    let sha2 = logistic["best_model"]["sha256"].as_str().unwrap();
    let trial2 = logistic["best_model"]["trial"].as_str().unwrap();
    assert_eq!(v2.run_id, run_of_trial(&c, &setup.experiment, trial2));
    assert_eq!(tag(&v2, "netsec.sha256"), Some(sha2));

    // Rollback moves it back to the stump's version.
    let back = setup
        .netsec(
            url,
            &["rollback", &setup.model, "--reason", "alerts on v2"],
            &[],
        )
        .expect_code(0);
    assert!(back.stdout.contains("from v2 to v1"), "{}", back.stdout);
    assert_eq!(champion(&c, &setup.model).unwrap().version, "1");

    // Promoting the logistic model again (and rolling forward with --to) reuses its
    // version: two model files, two MLflow versions, however often they are mirrored.
    setup.promote(url, &["--best", "logistic"]).expect_code(0);
    assert_eq!(champion(&c, &setup.model).unwrap().version, "2");
    setup
        .netsec(
            url,
            &["rollback", &setup.model, "--to", "1", "--reason", "again"],
            &[],
        )
        .expect_code(0);
    assert_eq!(champion(&c, &setup.model).unwrap().version, "1");
    let all = versions(server, &setup.model);
    assert_eq!(all.len(), 2, "{all:#?}");

    // Nothing is left waiting in the outbox.
    let sync = setup
        .netsec(None, &["sync", "--uri", &server.url], &[])
        .expect_code(0);
    assert!(
        sync.stdout.contains("0 waiting, 0 refused"),
        "{}",
        sync.stdout
    );
    assert_eq!(versions(server, &setup.model).len(), 2);
}

#[test]
fn a_trial_refitted_for_promotion_gets_its_model_file_uploaded() {
    let server = MlflowServer::shared();
    let url = Some(server.url.as_str());
    let c = client(&server.url);
    let setup = Setup::new("mirror-refit");
    let two = "  - algorithm: decision_tree\n    grid: { max_depth: [1, 6] }\n";
    let summary = setup.sweep(url, "two", two);
    let best = summary["best_model"]["trial"].as_str().unwrap();
    let other = summary["leaderboard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .find(|k| *k != best)
        .unwrap()
        .to_owned();
    let promoted = setup.promote(url, &["--run", &other]).expect_code(0);
    assert!(!promoted.stderr.contains("WARN"), "{}", promoted.stderr);
    let v = champion(&c, &setup.model).unwrap();
    let run = run_of_trial(&c, &setup.experiment, &other);
    assert_eq!(v.run_id, run);
    let sha = tag(&v, "netsec.sha256").unwrap().to_owned();
    // Not the sweep's best model: no logged model, the version points at the file.
    assert_eq!(v.source, format!("runs:/{run}/model/{sha}.json"));
    // The file is on the run, byte for byte the kept model file.
    let kept = std::fs::read(setup.state().join("models").join(format!("{sha}.json"))).unwrap();
    let info = block(c.get_run(&run)).unwrap().info;
    let got = block(c.download_artifact(&info, &format!("model/{sha}.json"))).unwrap();
    assert_eq!(got, kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_registry_only_costs_a_warning() {
    let server = MlflowServer::shared();
    let setup = Setup::new("mirror-404");
    setup.sweep(Some(&server.url), "stump", STUMP);
    // DagsHub's older MLflow: every registry endpoint is an HTML 404.
    let fault = FaultServer::start(vec![Reply::new(
        404,
        "<!doctype html><title>404 Not Found</title>",
    )])
    .await;
    let secret = "s3cr3t-token-do-not-print";
    let promoted = setup.netsec(
        Some(&fault.url),
        &[
            "promote",
            "--policy",
            s(&setup.dir.path().join("policy.yaml")),
        ],
        &[
            ("MLFLOW_TRACKING_USERNAME", "me"),
            ("MLFLOW_TRACKING_PASSWORD", secret),
        ],
    );
    let promoted = promoted.expect_code(0);
    assert!(promoted.stdout.contains("PROMOTED"), "{}", promoted.stdout);
    let warnings: Vec<&str> = promoted
        .stderr
        .lines()
        .filter(|l| l.contains("WARN"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", promoted.stderr);
    assert!(
        warnings[0].contains("moved locally only") && warnings[0].contains("no model registry"),
        "{}",
        warnings[0]
    );
    assert!(!promoted.stderr.contains(secret) && !promoted.stdout.contains(secret));
    let seen = fault.seen();
    assert!(
        seen[0].request_line.contains("registered-models/create"),
        "{seen:?}"
    );
    // The local decision stands.
    let list = setup
        .netsec(None, &["registry", "list", "--format", "json"], &[])
        .expect_code(0);
    let models: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(models[0]["aliases"]["champion"], 1, "{models}");
}

#[test]
fn a_server_that_is_down_delays_the_mirror_until_sync() {
    let server = MlflowServer::shared();
    let c = client(&server.url);
    let setup = Setup::new("mirror-down");
    setup.sweep(Some(&server.url), "stump", STUMP);
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let started = Instant::now();
    let promoted = setup.promote(Some(&down), &[]).expect_code(0);
    // The README's 20 s mirror budget plus 5 s for the promotion itself (process start,
    // scoring the holdout: about 1 s here, a few on a loaded 2-core machine).
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    assert!(promoted.stdout.contains("PROMOTED"), "{}", promoted.stdout);
    assert!(
        promoted.stderr.contains("waits in the outbox") && promoted.stderr.contains("netsec sync"),
        "{}",
        promoted.stderr
    );
    assert_not_registered(&c, &setup.model);

    // The server is back (here: the right address): sync mirrors the move, once.
    for _ in 0..2 {
        let sync = setup
            .netsec(None, &["sync", "--uri", &server.url], &[])
            .expect_code(0);
        assert!(sync.stdout.contains("0 waiting"), "{}", sync.stdout);
    }
    let v = champion(&c, &setup.model).expect("champion after sync");
    assert_eq!(v.version, "1");
    assert_eq!(versions(server, &setup.model).len(), 1);
}

#[test]
fn an_offline_sweep_and_promotion_reach_mlflow_with_sync_in_order() {
    let server = MlflowServer::shared();
    let c = client(&server.url);
    let setup = Setup::new("mirror-offline");
    let stump = setup.sweep(None, "stump", STUMP);
    // The server is set now, but the sweep's runs are not on it yet: the move waits.
    let promoted = setup.promote(Some(&server.url), &[]).expect_code(0);
    assert!(promoted.stdout.contains("PROMOTED"), "{}", promoted.stdout);
    assert!(
        promoted.stderr.contains("have not reached") && promoted.stderr.contains("netsec sync"),
        "{}",
        promoted.stderr
    );
    assert_not_registered(&c, &setup.model);

    // `netsec sync` sends the sweep's runs first, then the move.

    let sync = setup
        .netsec(None, &["sync", "--uri", &server.url], &[])
        .expect_code(0);
    assert!(
        sync.stdout.contains("0 waiting, 0 refused"),
        "{}",
        sync.stdout
    );
    let v = champion(&c, &setup.model).expect("champion after sync");
    let trial = stump["best_model"]["trial"].as_str().unwrap();
    assert_eq!(v.run_id, run_of_trial(&c, &setup.experiment, trial));
}

/// Answers lost after MLflow acted (the model's creation, the version's, the alias move):
/// the test proxy throws them away, since a real server cannot be made to. One version,
/// the alias on it, nothing twice.
#[test]
fn lost_registry_answers_make_one_version_and_one_alias_move() {
    lost_registry_answers(None);
}

/// The same with versions created without the lookup by their sha256 tag: the lost
/// `model-versions/create` answer leaves a second version.
#[test]
#[ignore = "guard twin: fails by design, see NETSEC_TEST_DISABLE_GUARD"]
fn guard_twin_registry_once() {
    lost_registry_answers(Some(Guard::RegistryOnce));
}

fn lost_registry_answers(guard: Option<Guard>) {
    let server = MlflowServer::shared();
    let c = client(&server.url);
    let mut setup = Setup::new("mirror-lost");
    setup.guard = guard;
    setup.sweep(Some(&server.url), "stump", STUMP);
    let proxy = FaultProxy::with_rules(
        &server.url,
        vec![
            Rule::mlflow("registered-models/create", Fault::LoseResponse).calls(1..=1),
            Rule::mlflow("model-versions/create", Fault::LoseResponse).calls(1..=1),
            Rule::mlflow("registered-models/alias", Fault::LoseResponse).calls(1..=1),
        ],
    );
    let promoted = setup.promote(Some(&proxy.endpoint), &[]).expect_code(0);
    assert!(promoted.stdout.contains("PROMOTED"), "{}", promoted.stdout);
    // The promotion mirrors with one attempt per request: what failed waits in the outbox,
    // and each `netsec sync` carries it further (more answers are lost on the way).
    let mut syncs = 0;
    loop {
        let sync = setup
            .netsec(None, &["sync", "--uri", &proxy.endpoint], &[])
            .expect_code(0);
        syncs += 1;
        if sync.stdout.contains("0 waiting") {
            break;
        }
        assert!(
            syncs < 5,
            "still waiting after {syncs} syncs: {}",
            sync.stdout
        );
    }
    assert_eq!(proxy.faults(), 3, "every answer was lost once");
    let all = versions(server, &setup.model);
    assert_eq!(all.len(), 1, "one version: {all:#?}");
    let champion = champion(&c, &setup.model).expect("champion alias set");
    assert_eq!(champion.version, "1");
    let again = setup
        .netsec(None, &["sync", "--uri", &server.url], &[])
        .expect_code(0);
    assert!(again.stdout.contains("sent 0 records"), "{}", again.stdout);
    assert_eq!(versions(server, &setup.model).len(), 1);
}
