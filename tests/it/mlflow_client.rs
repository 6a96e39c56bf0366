//! Integration tests of the MLflow client. Most run against a real `mlflow server`
//! (one per test binary, see `common/mlflow_server.rs`); the retry and fault tests use a
//! scripted local HTTP server (`common/fault_server.rs`) because a real server cannot be
//! made to answer 500, 429 or an HTML 404 on demand.

use std::time::{Duration, Instant};

use crate::common::fault_server::{FaultServer, Reply};
use crate::common::mlflow_server::MlflowServer;
use netsec::shared::now_ms;
use netsec::tracking::{
    Auth, LogBatch, Metric, MlflowClient, Param, RetryPolicy, RunSearch, RunSpec, RunStatus,
    Secret, Tag, TrackingConfig, TrackingError, system_tags,
};

fn client() -> MlflowClient {
    let server = MlflowServer::shared();
    MlflowClient::new(TrackingConfig::new(&server.url).unwrap()).unwrap()
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{nanos}")
}

async fn new_experiment(c: &MlflowClient, prefix: &str) -> String {
    c.get_or_create_experiment(&unique(prefix))
        .await
        .unwrap()
        .experiment
        .experiment_id
}

/// A client for a fault server, with fast retries so tests stay quick.
fn fault_client(url: &str, max_attempts: u32) -> MlflowClient {
    let mut config = TrackingConfig::new(url).unwrap();
    config.retry = RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        max_elapsed: Duration::from_secs(20),
    };
    MlflowClient::new(config).unwrap()
}

// ----- real server -----

#[tokio::test]
async fn experiment_get_or_create_then_restore_after_delete() {
    let c = client();
    let name = unique("exp");
    let first = c.get_or_create_experiment(&name).await.unwrap();
    assert!(first.created && !first.restored);
    let again = c.get_or_create_experiment(&name).await.unwrap();
    assert!(!again.created && !again.restored);
    assert_eq!(
        again.experiment.experiment_id,
        first.experiment.experiment_id
    );

    c.delete_experiment(&first.experiment.experiment_id)
        .await
        .unwrap();
    let deleted = c.get_experiment_by_name(&name).await.unwrap().unwrap();
    assert_eq!(deleted.lifecycle_stage, "deleted");
    let restored = c.get_or_create_experiment(&name).await.unwrap();
    assert!(restored.restored && !restored.created);
    assert_eq!(
        restored.experiment.experiment_id,
        first.experiment.experiment_id
    );
    let now = c.get_experiment_by_name(&name).await.unwrap().unwrap();
    assert_eq!(now.lifecycle_stage, "active");
    assert!(
        c.get_experiment_by_name(&unique("absent"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn concurrent_get_or_create_yields_one_experiment() {
    let c = client();
    let name = unique("race");
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (c, name) = (c.clone(), name.clone());
            tokio::spawn(async move { c.get_or_create_experiment(&name).await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().experiment.experiment_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[tokio::test]
async fn parent_and_child_runs_with_status_updates() {
    let c = client();
    let exp = new_experiment(&c, "runs").await;
    let start = now_ms() - 5_000;
    let parent = c
        .create_run(&RunSpec::new(&exp, "sweep").start_time_ms(start))
        .await
        .unwrap();
    assert_eq!(parent.info.status, RunStatus::Running);
    assert_eq!(parent.info.start_time, Some(start));
    assert_eq!(parent.info.run_name, "sweep");
    let mut children = Vec::new();
    for (i, status) in [RunStatus::Finished, RunStatus::Failed, RunStatus::Killed]
        .into_iter()
        .enumerate()
    {
        let child = c
            .create_run(
                &RunSpec::new(&exp, format!("trial-{i}"))
                    .parent(parent.id())
                    .tag("algo", "rf"),
            )
            .await
            .unwrap();
        c.finish_run(child.id(), status).await.unwrap();
        let got = c.get_run(child.id()).await.unwrap();
        assert_eq!(got.info.status, status);
        assert!(got.info.end_time.is_some());
        assert_eq!(got.tag(system_tags::PARENT_RUN_ID), Some(parent.id()));
        assert_eq!(got.tag("algo"), Some("rf"));
        children.push(child.info.run_id);
    }
    let filter = format!("tags.`{}` = '{}'", system_tags::PARENT_RUN_ID, parent.id());
    let mut found: Vec<String> = c
        .search_runs(&RunSearch::new([exp.clone()]).filter(filter))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.info.run_id)
        .collect();
    found.sort();
    children.sort();
    assert_eq!(found, children);

    c.set_note(parent.id(), "# Sweep\nthree trials")
        .await
        .unwrap();
    c.set_tag(parent.id(), "stage", "done").await.unwrap();
    c.update_run(parent.id(), RunStatus::Finished, Some(now_ms()))
        .await
        .unwrap();
    let parent = c.get_run(parent.id()).await.unwrap();
    assert_eq!(parent.tag(system_tags::NOTE), Some("# Sweep\nthree trials"));
    assert_eq!(parent.tag("stage"), Some("done"));
    assert_eq!(parent.info.status, RunStatus::Finished);
}

#[tokio::test]
async fn create_run_with_idempotency_key_does_not_duplicate() {
    let c = client();
    let exp = new_experiment(&c, "idem").await;
    let spec = RunSpec::new(&exp, "once").idempotency_key("sweep-1.trial-7");
    let a = c.create_run(&spec).await.unwrap();
    let b = c.create_run(&spec).await.unwrap();
    assert_eq!(a.id(), b.id());
    assert_eq!(
        c.search_runs(&RunSearch::new([exp])).await.unwrap().len(),
        1
    );
    let bad = RunSpec::new("0", "x").idempotency_key("it's");
    assert!(matches!(
        c.create_run(&bad).await,
        Err(TrackingError::Invalid(_))
    ));
}

#[tokio::test]
async fn log_batch_over_the_limits_reads_everything_back() {
    let c = client();
    let exp = new_experiment(&c, "batch").await;
    let run = c.create_run(&RunSpec::new(&exp, "big")).await.unwrap();
    let ts = now_ms();
    let batch = LogBatch {
        params: (0..250)
            .map(|i| Param::new(format!("param_{i:03}"), format!("value {i}")))
            .collect(),
        metrics: (0..2500)
            .map(|i| Metric::new(format!("metric_{i:04}"), i as f64 / 7.0, ts))
            .collect(),
        tags: (0..150)
            .map(|i| Tag::new(format!("tag_{i:03}"), format!("t{i}")))
            .collect(),
    };
    c.log_batch(run.id(), batch.clone()).await.unwrap();
    // The whole batch again, as a retry after a lost answer would send it: still fine,
    // and no metric value gets stored twice.
    c.log_batch(run.id(), batch).await.unwrap();

    let got = c.get_run(run.id()).await.unwrap();
    assert_eq!(got.data.params.len(), 250);
    assert_eq!(got.data.metrics.len(), 2500);
    assert_eq!(got.param("param_249"), Some("value 249"));
    assert_eq!(got.tag("tag_149"), Some("t149"));
    for i in [0, 999, 1000, 2499] {
        assert_eq!(got.metric(&format!("metric_{i:04}")), Some(i as f64 / 7.0));
    }
    assert_eq!(
        c.get_metric_history(run.id(), "metric_0042")
            .await
            .unwrap()
            .len(),
        1
    );

    // Write-once params: another value is a 400 that names the endpoint and is not retried.
    let conflict = LogBatch {
        params: vec![Param::new("param_000", "changed")],
        ..LogBatch::default()
    };
    let err = c.log_batch(run.id(), conflict).await.unwrap_err();
    assert!(
        matches!(&err, TrackingError::Api { status: 400, code, .. } if code == "INVALID_PARAMETER_VALUE"),
        "{err:?}"
    );
    assert!(err.to_string().contains("POST runs/log-batch"), "{err}");

    let long_key = LogBatch {
        metrics: vec![Metric::new("k".repeat(251), 1.0, ts)],
        ..LogBatch::default()
    };
    assert!(matches!(
        c.log_batch(run.id(), long_key).await,
        Err(TrackingError::Invalid(_))
    ));
}

#[tokio::test]
async fn nan_and_infinite_metrics_round_trip() {
    let c = client();
    let exp = new_experiment(&c, "nan").await;
    let run = c.create_run(&RunSpec::new(&exp, "nan")).await.unwrap();
    let ts = now_ms();
    let batch = LogBatch {
        metrics: vec![
            Metric::new("nan", f64::NAN, ts),
            Metric::new("pinf", f64::INFINITY, ts),
            Metric::new("ninf", f64::NEG_INFINITY, ts),
            Metric::new("curve", 0.5, ts).at_step(1),
            Metric::new("curve", 0.25, ts + 1).at_step(2),
        ],
        ..LogBatch::default()
    };
    c.log_batch(run.id(), batch).await.unwrap();
    let got = c.get_run(run.id()).await.unwrap();
    assert!(got.metric("nan").unwrap().is_nan());
    // The server's SQL store clamps ±Infinity to ±f64::MAX (measured on 3.17.2).
    assert!(
        got.metric("pinf").unwrap() >= f64::MAX,
        "{:?}",
        got.metric("pinf")
    );
    assert!(
        got.metric("ninf").unwrap() <= f64::MIN,
        "{:?}",
        got.metric("ninf")
    );
    let curve = c.get_metric_history(run.id(), "curve").await.unwrap();
    let mut steps: Vec<(i64, f64)> = curve.iter().map(|m| (m.step, m.value)).collect();
    steps.sort_by_key(|s| s.0);
    assert_eq!(steps, vec![(1, 0.5), (2, 0.25)]);
}

#[tokio::test]
async fn artifacts_upload_list_download() {
    let c = client();
    let exp = new_experiment(&c, "art").await;
    let run = c.create_run(&RunSpec::new(&exp, "art")).await.unwrap();
    c.upload_artifact(&run.info, "report.md", b"# hello".to_vec())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("model.json");
    let model: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(&local, &model).unwrap();
    c.upload_file(&run.info, &local, "model/rf model.json")
        .await
        .unwrap();

    let root = c.list_artifacts(run.id(), "").await.unwrap();
    let mut names: Vec<(String, bool)> = root.iter().map(|f| (f.path.clone(), f.is_dir)).collect();
    names.sort();
    assert_eq!(
        names,
        vec![("model".into(), true), ("report.md".into(), false)]
    );
    let sub = c.list_artifacts(run.id(), "model").await.unwrap();
    assert_eq!(sub.len(), 1);
    assert_eq!(sub[0].path, "model/rf model.json");
    assert_eq!(sub[0].file_size, Some(model.len() as i64));

    assert_eq!(
        c.download_artifact(&run.info, "report.md").await.unwrap(),
        b"# hello"
    );
    assert_eq!(
        c.download_artifact(&run.info, "model/rf model.json")
            .await
            .unwrap(),
        model
    );
    let missing = c
        .download_artifact(&run.info, "nope.txt")
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404), "{missing}");
    assert!(matches!(
        c.upload_artifact(&run.info, "../escape", vec![]).await,
        Err(TrackingError::Invalid(_))
    ));
}

#[tokio::test]
async fn search_paginates_and_empty_result_is_empty() {
    let c = client();
    let exp = new_experiment(&c, "search").await;
    for i in 0..7 {
        c.create_run(&RunSpec::new(&exp, format!("r{i}")).tag("group", "a"))
            .await
            .unwrap();
    }
    c.create_run(&RunSpec::new(&exp, "other").tag("group", "b"))
        .await
        .unwrap();
    let search = RunSearch::new([exp.clone()])
        .filter("tags.group = 'a'")
        .max_results(3);
    let first = c.search_runs_page(&search, None).await.unwrap();
    assert_eq!(first.runs.len(), 3);
    assert!(first.next_page_token.is_some());
    let all = c.search_runs(&search).await.unwrap();
    assert_eq!(all.len(), 7);
    let mut ids: Vec<&str> = all.iter().map(|r| r.id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7);
    let none = c
        .search_runs(&RunSearch::new([exp]).filter("tags.group = 'zzz'"))
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn api_error_names_endpoint_status_and_code() {
    let c = client();
    let name = unique("dup");
    c.create_experiment(&name).await.unwrap();
    let err = c.create_experiment(&name).await.unwrap_err();
    let text = err.to_string();
    for part in ["POST experiments/create", "400", "RESOURCE_ALREADY_EXISTS"] {
        assert!(text.contains(part), "{text:?} lacks {part}");
    }
    assert!(err.is_already_exists());
    let err = c
        .get_run("0123456789abcdef0123456789abcdef")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains("GET runs/get"), "{err}");
}

// ----- scripted fault server -----

#[tokio::test]
async fn retries_5xx_then_succeeds() {
    let fault = FaultServer::start(vec![
        Reply::new(
            500,
            r#"{"error_code":"INTERNAL_ERROR","message":"db locked"}"#,
        ),
        Reply::new(503, "Service Unavailable"),
        Reply::new(200, r#"{"experiment_id":"42"}"#),
    ])
    .await;
    let c = fault_client(&fault.url, 5);
    assert_eq!(c.create_experiment("x").await.unwrap(), "42");
    let seen = fault.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| {
        s.request_line
            .starts_with("POST /api/2.0/mlflow/experiments/create ")
    }));
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let fault = FaultServer::start(vec![
        Reply::new(
            429,
            r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}"#,
        )
        .header("Retry-After", "1"),
        Reply::new(200, "{}"),
    ])
    .await;
    let c = fault_client(&fault.url, 3);
    let started = Instant::now();
    c.set_tag("r", "k", "v").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fault.seen().len(), 2);
}

#[tokio::test]
async fn retry_after_beyond_the_budget_gives_up_at_once() {
    let fault = FaultServer::start(vec![
        Reply::new(
            429,
            r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"later"}"#,
        )
        .header("Retry-After", "3600"),
    ])
    .await;
    let c = fault_client(&fault.url, 5);
    let started = Instant::now();
    let err = c.set_tag("r", "k", "v").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(fault.seen().len(), 1);
    assert_eq!(err.api_code(), Some("REQUEST_LIMIT_EXCEEDED"));
}

#[tokio::test]
async fn never_retries_other_4xx() {
    let fault = FaultServer::start(vec![
        Reply::new(
            400,
            r#"{"error_code":"INVALID_PARAMETER_VALUE","message":"bad filter"}"#,
        ),
        Reply::new(200, "{}"),
    ])
    .await;
    let c = fault_client(&fault.url, 5);
    let err = c
        .search_runs(&RunSearch::new(["1".to_string()]))
        .await
        .unwrap_err();
    assert_eq!(fault.seen().len(), 1);
    match &err {
        TrackingError::Api {
            endpoint,
            status,
            code,
            message,
        } => {
            assert_eq!(
                (endpoint.as_str(), *status, code.as_str()),
                ("POST runs/search", 400, "INVALID_PARAMETER_VALUE")
            );
            assert_eq!(message, "bad filter");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let fault = FaultServer::start(vec![Reply::new(502, "<html>Bad Gateway</html>")]).await;
    let c = fault_client(&fault.url, 4);
    let err = c.get_run("abc").await.unwrap_err();
    assert_eq!(fault.seen().len(), 4);
    assert!(
        matches!(err, TrackingError::RetriesExhausted { attempts: 4, .. }),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(502));
    let text = err.to_string();
    assert!(
        text.contains("GET runs/get") && text.contains("HTTP 502") && text.contains("4 attempts"),
        "{text}"
    );
}

#[tokio::test]
async fn connect_errors_are_retried() {
    // Bind then drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = fault_client(&format!("http://127.0.0.1:{port}"), 3);
    let err = c.get_run("abc").await.unwrap_err();
    assert!(
        matches!(err, TrackingError::RetriesExhausted { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(
        matches!(err.root(), TrackingError::Transport { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn secrets_never_appear_in_debug_or_errors() {
    let token = "tok-SUPERSECRET-123";
    let fault = FaultServer::start(vec![Reply::new(
        401,
        r#"{"error_code":"UNAUTHENTICATED","message":"bad credentials"}"#,
    )])
    .await;
    let lookup = |name: &str| match name {
        "MLFLOW_TRACKING_URI" => Some(fault.url.clone()),
        "MLFLOW_TRACKING_TOKEN" => Some(token.to_string()),
        _ => None,
    };
    let c = MlflowClient::new(TrackingConfig::from_lookup(lookup).unwrap()).unwrap();
    let err = c.get_run("abc").await.unwrap_err();
    for text in [
        format!("{c:?}"),
        format!("{err:?}"),
        err.to_string(),
        format!("{:?}", c.config()),
    ] {
        assert!(!text.contains(token), "secret leaked: {text}");
    }
    assert!(err.to_string().contains("401"), "{err}");
    let seen = fault.seen();
    assert!(
        seen[0]
            .headers
            .contains(&format!("authorization: Bearer {token}")),
        "{:?}",
        seen[0]
    );

    let basic = TrackingConfig {
        auth: Auth::Basic {
            username: "alice".into(),
            password: Secret::from(token),
        },
        ..TrackingConfig::new(&fault.url).unwrap()
    };
    let c = MlflowClient::new(basic).unwrap();
    let err = c.get_run("abc").await.unwrap_err();
    assert!(!format!("{c:?} {err:?} {err}").contains(token));
    assert!(
        fault.seen()[1].headers.contains("authorization: Basic "),
        "{:?}",
        fault.seen()[1]
    );
}
