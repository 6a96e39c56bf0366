//! Secrets never leave the environment: one pipeline — sweep tracked to MLflow, promote and
//! publish to S3, serve from S3 with a bearer token and a MongoDB prediction log, sync — run
//! at `RUST_LOG=trace` with a unique canary in every secret, then every place netsec writes
//! to is searched for the canaries: stdout and stderr of each command, every file of the
//! state directory (model files, databases, outbox), MLflow's own store and artifacts
//! (params, tags, metrics, uploaded files), and every S3 object.
//!
//! Real servers (MLflow, moto for S3, which accepts any secret key); the MongoDB log points
//! at a closed port, so its URI (user, password, `authMechanismProperties`) goes through
//! every connect, retry and warning path.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use crate::common::http::{get, post, serve_address};
use crate::common::mlflow_server::MlflowServer;
use crate::common::s3_server::{Kind, S3Server, free_port};
use crate::common::{netsec_command, repo_file, s};

const CANARIES: [&str; 5] = [
    "canary-mlflow-7f3a91",
    "canary-aws-19c2e4",
    "canary-token-55d1b0",
    "canary-mongo-a8e07c",
    "canary-session-3b6e2f",
];

/// Every file under `dir` whose bytes hold a canary, with the canary.
fn leaks_in_dir(dir: &Path, found: &mut Vec<String>, files: &mut usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            leaks_in_dir(&path, found, files);
        } else if let Ok(bytes) = std::fs::read(&path) {
            *files += 1;
            leaks_in(&path.display().to_string(), &bytes, found);
        }
    }
}

fn leaks_in(place: &str, bytes: &[u8], found: &mut Vec<String>) {
    for canary in CANARIES {
        if bytes.windows(canary.len()).any(|w| w == canary.as_bytes()) {
            found.push(format!("{canary} in {place}"));
        }
    }
}

#[test]
fn no_secret_reaches_a_log_a_file_mlflow_or_s3() {
    let mlflow = MlflowServer::start();
    let s3 = S3Server::start(Kind::Moto);
    s3.create_bucket("canary");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let grid = dir.path().join("stump.yaml");
    std::fs::write(
        &grid,
        format!(
            "name: stump\ndata: {{ source: synthetic, profile: phishing, rows: 1500, seed: 5, schema: {} }}\n\
             split: {{ test_fraction: 0.3, seed: 3 }}\ncv: {{ folds: 2 }}\n\
             tracking: {{ experiment: canaries }}\n\
             models:\n  - algorithm: decision_tree\n    grid: {{ max_depth: [1, 3] }}\n",
            s(&repo_file("data_schema/phishing.yaml"))
        ),
    )
    .unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "model: phish\nalias: champion\nfloors: { f1: 0.5 }\n",
    )
    .unwrap();

    let mut env: Vec<(&str, String)> = s3
        .env()
        .into_iter()
        .filter(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY")
        .collect();
    env.extend([
        ("AWS_SECRET_ACCESS_KEY", CANARIES[1].to_owned()),
        ("MLFLOW_TRACKING_URI", mlflow.url.clone()),
        ("MLFLOW_TRACKING_USERNAME", "netsec".to_owned()),
        ("MLFLOW_TRACKING_PASSWORD", CANARIES[0].to_owned()),
        ("NETSEC_SERVE_TOKEN", CANARIES[2].to_owned()),
        ("RUST_LOG", "trace".to_owned()),
    ]);
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let run = |name: &str, args: &[&str]| -> [(String, Vec<u8>); 2] {
        let out = netsec_command()
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        [
            (format!("{name} stdout"), out.stdout),
            (format!("{name} stderr"), out.stderr),
        ]
    };
    outputs.extend(run(
        "experiment run",
        &["experiment", "run", s(&grid), "--state-dir", s(&state)],
    ));
    outputs.extend(run(
        "promote",
        &[
            "promote",
            "--best",
            "stump",
            "--policy",
            s(&policy),
            "--state-dir",
            s(&state),
            "--publish",
            "--store",
            "s3://canary/prod",
        ],
    ));

    // Serve from S3 with the token and a prediction log nobody answers.
    let log_uri = format!(
        "mongodb://netsec:{}@127.0.0.1:{}/netsec?authMechanismProperties=AWS_SESSION_TOKEN:{}",
        CANARIES[3],
        free_port(),
        CANARIES[4]
    );
    let mut serve = netsec_command()
        .args([
            "serve",
            "--model",
            "s3://canary/prod/phish",
            "--bind",
            "127.0.0.1:0",
            "--prediction-log",
            &log_uri,
        ])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Trace logging fills a pipe fast (64 KiB before the address is even printed): read it
    // as it comes, or serve blocks on a write.
    let mut stderr = serve.stderr.take().unwrap();
    let serve_log = std::thread::spawn(move || {
        let mut log = Vec::new();
        let _ = stderr.read_to_end(&mut log);
        log
    });
    let addr = serve_address(&mut serve).expect("netsec serve prints its address");
    let sample = std::fs::read(repo_file("../shared/data/predict_sample_12rows.csv")).unwrap();
    let bearer = format!("Bearer {}", CANARIES[2]);
    let answer = post(
        addr,
        "/predict/csv",
        &[("authorization", &bearer), ("content-type", "text/csv")],
        &sample,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    outputs.push(("serve answer".into(), answer.body.clone()));
    let refused = get(addr, "/model", &[("authorization", "Bearer wrong")]);
    outputs.push(("serve refusal".into(), refused.body.clone()));
    let _ = std::process::Command::new("kill")
        .arg(serve.id().to_string())
        .status();
    let _ = serve.wait();
    let serve_log = serve_log.join().unwrap();
    assert!(
        String::from_utf8_lossy(&serve_log).contains("TRACE"),
        "serve logged at trace level"
    );
    outputs.push(("serve stderr".into(), serve_log));

    outputs.extend(run(
        "sync",
        &["sync", "--uri", &mlflow.url, "--state-dir", s(&state)],
    ));

    let mut found = Vec::new();
    for (place, bytes) in &outputs {
        leaks_in(place, bytes, &mut found);
    }
    let mut files = 0;
    leaks_in_dir(&state, &mut found, &mut files);
    leaks_in_dir(mlflow.dir(), &mut found, &mut files);
    let keys = s3.keys("canary");
    assert!(keys.len() >= 3, "published: {keys:?}");
    for key in &keys {
        leaks_in(
            &format!("s3://canary/{key}"),
            &s3.get("canary", key).unwrap(),
            &mut found,
        );
    }
    // The search looked at something: logs at trace level, model files, MLflow's store.
    let logged: usize = outputs.iter().map(|(_, b)| b.len()).sum();
    assert!(
        logged > 10_000 && files >= 5,
        "{logged} bytes logged, {files} files"
    );
    assert!(found.is_empty(), "secrets leaked: {found:#?}");
}
