//! Logging throughput against a real MLflow server: this client versus MLflow's Python
//! client, on the same freshly started server (`--workers 1`), in one run:
//!
//! ```sh
//! scripts/bench-mlflow
//! ```
//!
//! Workload (both sides): RUNS runs, each created, given 10 params + 20 metrics in one
//! `log-batch`, and finished. Env: `BENCH_RUNS` (default 200), `BENCH_CONCURRENCY`
//! (default 8), `BENCH_ROUNDS` (default 1), `NETSEC_MLFLOW_BIN`, `NETSEC_MLFLOW_PYTHON`
//! (default: `python` next to the mlflow binary). Results: the README's Tracking section.

// Shared with the tests, which use the parts this benchmark does not.
#[path = "../tests/it/common/mlflow_server.rs"]
#[allow(dead_code)]
mod mlflow_server;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mlflow_server::MlflowServer;
use netsec::shared::now_ms;
use netsec::tracking::{LogBatch, Metric, MlflowClient, Param, RunSpec, RunStatus, TrackingConfig};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Logs `runs` runs with `concurrency` workers sharing one client (one connection pool).
async fn rust_workload(
    client: &MlflowClient,
    experiment: &str,
    runs: usize,
    concurrency: usize,
) -> Duration {
    let experiment_id = client
        .get_or_create_experiment(experiment)
        .await
        .unwrap()
        .experiment
        .experiment_id;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, experiment_id) =
                (client.clone(), Arc::clone(&next), experiment_id.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= runs {
                        return;
                    }
                    let run = client
                        .create_run(&RunSpec::new(&experiment_id, format!("run-{i:03}")))
                        .await
                        .unwrap();
                    let ts = now_ms();
                    let batch = LogBatch {
                        params: (0..10)
                            .map(|j| Param::new(format!("param_{j}"), (i * j).to_string()))
                            .collect(),
                        metrics: (0..20)
                            .map(|j| {
                                Metric::new(format!("metric_{j}"), i as f64 / (j + 1) as f64, ts)
                            })
                            .collect(),
                        tags: Vec::new(),
                    };
                    client.log_batch(run.id(), batch).await.unwrap();
                    client
                        .finish_run(run.id(), RunStatus::Finished)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    started.elapsed()
}

fn python_workload(server: &MlflowServer, runs: usize) -> Duration {
    let python = std::env::var_os("NETSEC_MLFLOW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| mlflow_server::mlflow_bin().with_file_name("python"));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/bench_mlflow_python.py"
    );
    let out = Command::new(&python)
        .args([
            script,
            "--tracking-uri",
            &server.url,
            "--runs",
            &runs.to_string(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "python bench failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // MLflow prints "View run ..." lines to stdout; the report is the last line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("python bench printed no JSON report ({e}):\n{stdout}"));
    Duration::from_secs_f64(report["seconds"].as_f64().expect("seconds in report"))
}

fn main() {
    let runs = env_usize("BENCH_RUNS", 200);
    let concurrency = env_usize("BENCH_CONCURRENCY", 8).max(1);
    let rounds = env_usize("BENCH_ROUNDS", 1).max(1);
    let started = Instant::now();
    let server = MlflowServer::start();
    println!(
        "server ready in {:.1?} at {}",
        started.elapsed(),
        server.url
    );
    let client = MlflowClient::new(TrackingConfig::new(&server.url).unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let secs = |d: Duration| d.as_secs_f64();
    let (mut seq_total, mut par_total, mut py_total) = (0.0, 0.0, 0.0);
    for round in 1..=rounds {
        let stamp = now_ms();
        let rust = |concurrency: usize, label: &str| {
            let name = format!("bench-rust-{label}-{stamp}");
            secs(rt.block_on(rust_workload(&client, &name, runs, concurrency)))
        };
        // Alternate the order so background load on a shared machine hits both sides alike.
        let (seq, par, py) = if round % 2 == 1 {
            let seq = rust(1, "seq");
            let par = rust(concurrency, "par");
            (seq, par, secs(python_workload(&server, runs)))
        } else {
            let py = secs(python_workload(&server, runs));
            let par = rust(concurrency, "par");
            (rust(1, "seq"), par, py)
        };
        println!(
            "round {round}: {runs} runs x (10 params + 20 metrics): rust sequential {seq:.2} s, \
             rust concurrency {concurrency} {par:.2} s, python log_batch {py:.2} s"
        );
        seq_total += seq;
        par_total += par;
        py_total += py;
    }
    let n = rounds as f64;
    println!(
        "mean over {rounds} round(s): rust sequential {:.2} s, rust concurrency {concurrency} {:.2} s, python {:.2} s",
        seq_total / n,
        par_total / n,
        py_total / n
    );
    println!(
        "speed-up vs python: sequential {:.2}x, concurrent {:.2}x",
        py_total / seq_total,
        py_total / par_total
    );
}
