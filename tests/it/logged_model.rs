//! The best trial's model as an MLflow 3 logged model, against the real MLflow server
//! (`common/mlflow_server.rs`) and read back by MLflow's own Python client
//! (`scripts/mlflow_logged_model.py`, run with the Python of the MLflow venv that
//! `scripts/test` installs): the model is linked to its run as the run's output, the run
//! keeps its dataset inputs, `mlflow.pyfunc.load_model("models:/<model_id>")` predicts the
//! 12 rows of `../shared/data/predict_sample_12rows.csv` with the labels `netsec predict`
//! gives them, and `mlflow models serve` answers the same over HTTP. A server without
//! logged models (the fault proxy answering 404 to them, as an MLflow 2.x does) keeps the
//! model file as a run artifact, with one warning.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::fault_proxy::{Fault, FaultProxy, Rule};
use crate::common::http;
use crate::common::mlflow_server::{MlflowServer, mlflow_bin};
use crate::common::{Run, netsec, netsec_command, phishing_csv, repo_file, s};
use crate::tracking_cli::client;
use netsec::tracking::logged_model::LoggedModel;
use netsec::tracking::{MlflowClient, RunSearch};

/// Largest difference allowed between the logged model's and `netsec predict`'s
/// P(attack) (the ONNX parity tests' bound).
const TOLERANCE: f64 = 1e-5;

/// The 12 sample rows, without their labels.
fn sample() -> PathBuf {
    phishing_csv().with_file_name("predict_sample_12rows.csv")
}

/// The Python of the MLflow venv (beside its `mlflow` executable).
fn mlflow_python() -> PathBuf {
    mlflow_bin().with_file_name("python")
}

/// A tracked sweep of the real phishing rows in a scratch directory.
struct Tracked {
    dir: tempfile::TempDir,
    experiment: String,
}

impl Tracked {
    fn new(prefix: &str) -> Tracked {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Tracked {
            dir: tempfile::tempdir().unwrap(),
            experiment: format!("{prefix}-{nanos}"),
        }
    }

    /// `netsec experiment run` on `phishing.csv` with a tree and a logistic regression,
    /// tracked on `uri`; returns the run and its JSON summary.
    fn sweep(&self, uri: &str) -> (Run, Value) {
        let grid = self.dir.path().join("grid.yaml");
        std::fs::write(
            &grid,
            format!(
                "name: logged\n\
                 data: {{ source: csv, path: {}, schema: {} }}\n\
                 split: {{ test_fraction: 0.2, seed: 1 }}\ncv: {{ folds: 2 }}\n\
                 tracking: {{ experiment: {} }}\n\
                 models:\n  - algorithm: decision_tree\n    grid: {{ max_depth: [6] }}\n  \
                 - algorithm: logistic_regression\n",
                s(&phishing_csv()),
                s(&repo_file("data_schema/phishing.yaml")),
                self.experiment
            ),
        )
        .unwrap();
        let run = Run::of(
            netsec_command()
                .args(["experiment", "run", s(&grid), "--format", "json"])
                .arg("--state-dir")
                .arg(self.dir.path().join("state"))
                .env("MLFLOW_TRACKING_URI", uri),
        )
        .expect_code(0);
        let summary = serde_json::from_str(&run.stdout).unwrap();
        (run, summary)
    }
}

/// `netsec predict`'s answer for the sample rows with model file `model`: the predicted
/// label and P(attack) of each row.
fn netsec_predictions(model: &Path, dir: &Path) -> (Vec<String>, Vec<f64>) {
    let out = dir.join("predicted.csv");
    netsec(&[
        "predict",
        "--model",
        s(model),
        "--input",
        s(&sample()),
        "--output",
        s(&out),
    ])
    .expect_code(0);
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (label, attack) = (at("predicted_label"), at("attack_probability"));
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (
                cells[label].to_owned(),
                cells[attack].parse::<f64>().unwrap(),
            )
        })
        .unzip()
}

/// What MLflow's Python client reads back (see `scripts/mlflow_logged_model.py`).
fn python_view(server: &MlflowServer, experiment: &str, trial: &str) -> Value {
    let python = mlflow_python();
    assert!(
        python.is_file(),
        "no Python beside {} (scripts/test installs the MLflow venv)",
        mlflow_bin().display()
    );
    let run = Run::of(
        Command::new(&python)
            .arg(repo_file("scripts/mlflow_logged_model.py"))
            .args([server.url.as_str(), experiment, trial])
            .arg(sample())
            .env("MLFLOW_TRACKING_URI", &server.url),
    )
    .expect_code(0);
    serde_json::from_str(run.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr))
}

/// Every logged model of the experiment, through the REST API.
async fn logged_models(c: &MlflowClient, experiment: &str) -> Vec<LoggedModel> {
    let exp = c.get_experiment_by_name(experiment).await.unwrap().unwrap();
    c.search_logged_models(&exp.experiment_id, "")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_best_model_is_a_logged_model_that_mlflow_loads_and_serves() {
    let server = MlflowServer::shared();
    let c = client(&server.url);
    let tracked = Tracked::new("logged");
    let (run, summary) = tokio::task::block_in_place(|| tracked.sweep(&server.url));
    assert_eq!(summary["tracking"]["pending"], 0, "{}", run.stderr);
    let trial = summary["best_model"]["trial"].as_str().unwrap().to_owned();
    let sha = summary["best_model"]["sha256"].as_str().unwrap().to_owned();
    let model_file = PathBuf::from(summary["best_model"]["path"].as_str().unwrap());

    // Exactly one logged model, the best trial's, ready, on the best trial's run.
    let all = logged_models(&c, &tracked.experiment).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    let model = &all[0];
    assert_eq!(model.tag("netsec.trial_key"), Some(trial.as_str()));
    assert_eq!(model.tag("netsec.sha256"), Some(sha.as_str()));
    assert_eq!(model.info.status, "LOGGED_MODEL_READY");
    let exp = c
        .get_experiment_by_name(&tracked.experiment)
        .await
        .unwrap()
        .unwrap();
    let runs = c
        .search_runs(
            &RunSearch::new([exp.experiment_id])
                .filter(format!("tags.`netsec.trial_key` = '{trial}'")),
        )
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    let best_run = &runs[0];
    assert_eq!(model.info.source_run_id, best_run.id());
    // The native model file stays on the run beside it.
    let native = c
        .download_artifact(&best_run.info, &format!("model/{sha}.json"))
        .await
        .unwrap();
    assert_eq!(native, std::fs::read(&model_file).unwrap());

    // MLflow's own client: the run's output and inputs, the model's metrics carrying its
    // id, and the predictions of the pyfunc flavor.
    let view = tokio::task::block_in_place(|| python_view(server, &tracked.experiment, &trial));
    let id = model.info.model_id.as_str();
    assert_eq!(view["model_ids"], json!([id]), "{view}");
    assert_eq!(view["run_outputs"], json!([id]), "{view}");
    assert_eq!(
        view["run_inputs"],
        json!([["phishing-test", "test"], ["phishing-train", "train"]]),
        "{view}"
    );
    assert_eq!(
        view["flavors"],
        json!(["onnx", "python_function"]),
        "{view}"
    );
    assert_eq!(view["metric_model_ids"], json!([id]), "{view}");
    for key in ["test_f1", "cv_f1_mean"] {
        assert_eq!(
            view["metrics"][key].as_f64(),
            best_run.metric(key),
            "{key}: {view}"
        );
    }
    let (labels, attack) = netsec_predictions(&model_file, tracked.dir.path());
    assert_eq!(labels.len(), 12);
    assert!(
        labels.iter().any(|l| l == "1") && labels.iter().any(|l| l == "-1"),
        "the sample has both classes: {labels:?}"
    );
    let loaded: Vec<&str> = view["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(loaded, labels, "pyfunc labels, row by row");
    for (row, (got, want)) in view["attack_probability"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&attack)
        .enumerate()
    {
        let got = got.as_f64().unwrap();
        assert!(
            (got - want).abs() <= TOLERANCE,
            "row {row}: {got} vs {want}"
        );
    }

    // `mlflow models serve` on the logged model answers the rows over HTTP.
    let served = tokio::task::block_in_place(|| serve_labels(server, &model.uri()));
    assert_eq!(served, labels, "served labels, row by row");
}

/// Serves `uri` with `mlflow models serve --env-manager local` on 127.0.0.1 and returns the
/// labels it answers for the sample rows (POST /invocations).
fn serve_labels(server: &MlflowServer, uri: &str) -> Vec<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let log = tempfile::NamedTempFile::new().unwrap();
    // The scoring server is `uvicorn` from the same venv, started by name: the venv's
    // `bin` goes first on PATH, as an activated venv has it.
    let bin = mlflow_bin();
    let venv_bin = bin.parent().unwrap().to_owned();
    let path = std::env::join_paths(std::iter::once(venv_bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let mut command = Command::new(&bin);
    command
        .args(["models", "serve", "-m", uri, "--env-manager", "local"])
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap());
    // Its own process group: the CLI starts the scoring server as a child.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut serving = Serving(command.spawn().unwrap());
    let addr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = serving.0.try_wait() {
            panic!(
                "mlflow models serve ended ({status}):\n{}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
        }
        let ready = http::request(addr, "GET", "/ping", &[], b"").is_ok_and(|a| a.status == 200);
        if ready {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "mlflow models serve not ready after 3 min:\n{}",
            std::fs::read_to_string(log.path()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let body = json!({ "dataframe_split": dataframe_split(&sample()) });
    let answer = http::post(
        addr,
        "/invocations",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let predictions = answer.json()["predictions"].clone();
    predictions
        .as_array()
        .unwrap_or_else(|| panic!("{predictions}"))
        .iter()
        .map(|row| row["predicted_label"].as_str().unwrap().to_owned())
        .collect()
}

/// A CSV of numbers as MLflow's `dataframe_split` (columns and rows).
fn dataframe_split(csv: &Path) -> Value {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let columns: Vec<&str> = lines.next().unwrap().split(',').collect();
    let data: Vec<Vec<i64>> = lines
        .map(|l| l.split(',').map(|c| c.trim().parse().unwrap()).collect())
        .collect();
    json!({ "columns": columns, "data": data })
}

/// A `mlflow models serve` process group, stopped when dropped.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let pgid = self.0.id();
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "kill -TERM -{pgid} 2>/dev/null; i=0; while kill -0 -{pgid} 2>/dev/null \
                     && [ $i -lt 40 ]; do sleep 0.25; i=$((i+1)); done; \
                     kill -KILL -{pgid} 2>/dev/null; true"
                ),
            ])
            .status();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_logged_models_keeps_the_model_file_and_warns_once() {
    let server = MlflowServer::shared();
    let c = client(&server.url);
    // An MLflow 2.x: the logged-model endpoints do not exist.
    let proxy = FaultProxy::with_rules(
        &server.url,
        vec![Rule::new(
            |line| line.contains(" /api/2.0/mlflow/logged-models"),
            Fault::Status(404),
        )],
    );
    let tracked = Tracked::new("no-logged");
    let (run, summary) = tokio::task::block_in_place(|| tracked.sweep(&proxy.endpoint));
    assert_eq!(summary["tracking"]["pending"], 0, "{}", run.stderr);
    assert_eq!(summary["tracking"]["failed"], 0, "{}", run.stderr);
    assert!(proxy.faults() >= 1, "the logged-model endpoint was asked");
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains("no logged models"), "{}", warnings[0]);

    assert!(logged_models(&c, &tracked.experiment).await.is_empty());
    let trial = summary["best_model"]["trial"].as_str().unwrap();
    let sha = summary["best_model"]["sha256"].as_str().unwrap();
    let exp = c
        .get_experiment_by_name(&tracked.experiment)
        .await
        .unwrap()
        .unwrap();
    let runs = c
        .search_runs(
            &RunSearch::new([exp.experiment_id])
                .filter(format!("tags.`netsec.trial_key` = '{trial}'")),
        )
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].outputs.model_outputs.is_empty());
    let native = c
        .download_artifact(&runs[0].info, &format!("model/{sha}.json"))
        .await
        .unwrap();
    let kept = std::fs::read(summary["best_model"]["path"].as_str().unwrap()).unwrap();
    assert_eq!(native, kept);
}
