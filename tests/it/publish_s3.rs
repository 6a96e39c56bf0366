//! `netsec publish`, `promote --publish`, `rollback --publish` and `serve --model s3://`
//! through the real binary against real S3 servers on 127.0.0.1 (SeaweedFS, which checks
//! credentials, and moto): the layout, the pointer written last, re-publishing that uploads
//! nothing, rollback that writes only the pointer, wrong credentials, a missing bucket,
//! failed uploads that leave the old pointer, and hot reload from S3. The same flow on a
//! `file://` store closes the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::fault_proxy::{Fault, FaultProxy};
use crate::common::http::{get, serve_address};
use crate::common::s3_server::{Kind, S3Server, SECRET_KEY};
use crate::common::{Guard, Run, guard_env, netsec_command, repo_file, s};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A state directory with two sweeps over the same rows and split — a one-split decision
/// stump and a logistic regression, which beats it significantly — made once and copied
/// for each test (promotions write to it).
fn template() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let state = dir.join("state");
        for (name, models) in [
            ("stump", "  - algorithm: decision_tree\n    grid: { max_depth: [1] }\n"),
            ("logistic", "  - algorithm: logistic_regression\n"),
        ] {
            let grid = dir.join(format!("{name}.yaml"));
            std::fs::write(
                &grid,
                format!(
                    "name: {name}\ndata: {{ source: synthetic, profile: phishing, rows: 2000, seed: 5, schema: {} }}\n\
                     split: {{ test_fraction: 0.3, seed: 3 }}\ncv: {{ folds: 2 }}\nmodels:\n{models}",
                    s(&repo_file("data_schema/phishing.yaml"))
                ),
            )
            .unwrap();
            netsec(&["experiment", "run", s(&grid), "--state-dir", s(&state), "-q"], &[])
                .expect_code(0);
        }
        std::fs::write(
            dir.join("policy.yaml"),
            "model: phish\nalias: champion\nfloors: { f1: 0.5 }\n\
             challenge: { metric: f1, min_gain: 0.0, test: mcnemar, alpha: 0.05 }\n\
             guards: { same_holdout: true, schema_match: true, max_p99_predict_us: 100000 }\n",
        )
        .unwrap();
        dir
    })
}

/// A fresh copy of the template: `<dir>/state` and `<dir>/policy.yaml`.
pub(crate) fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(template(), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `env` plus the variable that turns `guard` off (a guard twin's run).
pub(crate) fn with_guard_env(
    mut env: Vec<(&'static str, String)>,
    guard: Option<Guard>,
) -> Vec<(&'static str, String)> {
    env.extend(guard_env(guard).map(|(k, v)| (k, v.to_owned())));
    env
}

/// Runs `netsec` with `env` (and, as always, none of the caller's AWS or store settings).
pub(crate) fn netsec(args: &[&str], env: &[(&str, String)]) -> Run {
    crate::common::netsec_env(args, env.iter().map(|(k, v)| (k, v)))
}

pub(crate) fn promote(ws: &Path, best: &str, extra: &[&str], env: &[(&str, String)]) -> Run {
    let (state, policy) = (ws.join("state"), ws.join("policy.yaml"));
    let mut args = vec![
        "promote",
        "--best",
        best,
        "--policy",
        s(&policy),
        "--state-dir",
        s(&state),
    ];
    args.extend_from_slice(extra);
    netsec(&args, env)
}

fn sha256(bytes: &[u8]) -> String {
    netsec::shared::hash::hex(&Sha256::digest(bytes))
}

/// The pointer in `bucket` at `prefix/phish/current.json`, after checking that the model
/// and metadata it names exist and that the model's bytes have its sha256.
pub(crate) fn pointer(server: &S3Server, bucket: &str, prefix: &str) -> Value {
    let bytes = server
        .get(bucket, &format!("{prefix}/phish/current.json"))
        .expect("a pointer");
    let pointer: Value = serde_json::from_slice(&bytes).unwrap();
    let sha = pointer["sha256"].as_str().unwrap();
    let model = server
        .get(
            bucket,
            &format!("{prefix}/phish/{}", pointer["path"].as_str().unwrap()),
        )
        .expect("the pointer names an existing model");
    assert_eq!(sha256(&model), sha);
    let meta: Value = serde_json::from_slice(
        &server
            .get(bucket, &format!("{prefix}/phish/{sha}/metadata.json"))
            .expect("metadata beside the model"),
    )
    .unwrap();
    assert_eq!(meta["sha256"], sha);
    assert_eq!(meta["name"], "phish");
    pointer
}

fn lines_with<'a>(stdout: &'a str, word: &str) -> Vec<&'a str> {
    stdout.lines().filter(|l| l.starts_with(word)).collect()
}

#[test]
fn promote_publish_republish_rollback_and_refusals_on_seaweedfs() {
    let server = S3Server::start(Kind::Seaweed);
    server.create_bucket("netsec-models");
    let env = server.env();
    let ws = workspace();
    let to = "s3://netsec-models/prod";

    // The first promotion publishes: model, metadata, then the pointer.
    let first = promote(ws.path(), "stump", &["--publish", "--to", to], &env).expect_code(0);
    assert!(first.stdout.contains("PROMOTED"), "{}", first.stdout);
    let uploaded = lines_with(&first.stdout, "uploaded");
    assert_eq!(uploaded.len(), 3, "{}", first.stdout);
    assert!(uploaded[2].contains("s3://netsec-models/prod/phish/current.json"));
    let v1 = pointer(&server, "netsec-models", "prod");
    assert_eq!(v1["version"], 1);
    let sha1 = v1["sha256"].as_str().unwrap().to_owned();
    let mut published = [
        format!("prod/phish/{sha1}/metadata.json"),
        format!("prod/phish/{sha1}/model.json"),
        "prod/phish/current.json".to_owned(),
    ];
    published.sort(); // as the listing is
    assert_eq!(server.keys("netsec-models"), published);
    assert!(
        first
            .stdout
            .contains("serve it with: netsec serve --model s3://netsec-models/prod/phish")
    );

    // A challenger that wins moves the pointer.
    let second = promote(ws.path(), "logistic", &["--publish", "--to", to], &env).expect_code(0);
    assert!(
        second.stdout.contains("(was version 1)"),
        "{}",
        second.stdout
    );
    let v2 = pointer(&server, "netsec-models", "prod");
    assert_eq!(v2["version"], 2);
    let before = server
        .get("netsec-models", "prod/phish/current.json")
        .unwrap();

    // Publishing again uploads nothing.
    let state = ws.path().join("state");
    let again = netsec(
        &["publish", "phish", "--to", to, "--state-dir", s(&state)],
        &env,
    )
    .expect_code(0);
    assert_eq!(
        lines_with(&again.stdout, "skipped").len(),
        3,
        "{}",
        again.stdout
    );
    assert!(!again.stdout.contains("uploaded") && !again.stdout.contains("replaced"));
    assert_eq!(
        server
            .get("netsec-models", "prod/phish/current.json")
            .unwrap(),
        before
    );

    // Rolling back with --publish writes only the pointer: v1's files are there.
    let back = netsec(
        &[
            "rollback",
            "phish",
            "--reason",
            "test",
            "--publish",
            "--store",
            to,
            "--state-dir",
            s(&state),
        ],
        &env,
    )
    .expect_code(0);
    assert_eq!(
        lines_with(&back.stdout, "skipped").len(),
        2,
        "{}",
        back.stdout
    );
    let replaced = lines_with(&back.stdout, "replaced");
    assert_eq!(replaced.len(), 1, "{}", back.stdout);
    assert!(replaced[0].contains("current.json"));
    assert_eq!(pointer(&server, "netsec-models", "prod")["version"], 1);
    let current = server
        .get("netsec-models", "prod/phish/current.json")
        .unwrap();

    // Wrong credentials (SeaweedFS checks them): exit 1, the key and the S3 code named,
    // no secret shown, the pointer unchanged.
    for (var, value, code) in [
        (
            "AWS_SECRET_ACCESS_KEY",
            "not-the-secret",
            "SignatureDoesNotMatch",
        ),
        ("AWS_ACCESS_KEY_ID", "nobody", "InvalidAccessKeyId"),
    ] {
        let mut bad = env.clone();
        bad.retain(|(k, _)| *k != var);
        bad.push((var, value.to_owned()));
        let run = netsec(
            &[
                "publish",
                "phish@champion",
                "--to",
                to,
                "--state-dir",
                s(&state),
            ],
            &bad,
        )
        .expect_code(1);
        for needle in [
            code,
            "access denied",
            "s3://netsec-models/prod/phish/current.json",
            "was not changed",
        ] {
            assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
        }
        for secret in [SECRET_KEY, "not-the-secret"] {
            assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret));
        }
        assert_eq!(
            server
                .get("netsec-models", "prod/phish/current.json")
                .unwrap(),
            current
        );
    }

    // A bucket that does not exist is bad input (exit 2), named.
    let run = netsec(
        &[
            "publish",
            "phish",
            "--to",
            "s3://netsec-missing/prod",
            "--state-dir",
            s(&state),
        ],
        &env,
    )
    .expect_code(2);
    assert!(
        run.stderr
            .contains("bucket `netsec-missing` does not exist"),
        "{}",
        run.stderr
    );

    // Unknown names and aliases, bad URLs: exit 2 before any request.
    for (target, to, needle) in [
        ("nope", to, "no registered model named `nope`"),
        ("phish@staging", to, "has no `staging` alias"),
        ("phish", "s3://Bad_Bucket", "not a store URL"),
        ("phish", "ftp://host/x", "not a store URL"),
    ] {
        let run = netsec(
            &["publish", target, "--to", to, "--state-dir", s(&state)],
            &env,
        )
        .expect_code(2);
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
    // A store that is not reachable is a runtime failure (exit 1).
    let mut away = env.clone();
    away.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    let closed = format!("http://127.0.0.1:{}", crate::common::s3_server::free_port());
    let run = netsec(
        &[
            "publish",
            "phish",
            "--to",
            to,
            "--endpoint-url",
            &closed,
            "--state-dir",
            s(&state),
        ],
        &away,
    )
    .expect_code(1);
    assert!(run.stderr.contains("Connection refused"), "{}", run.stderr);
    assert_eq!(
        server
            .get("netsec-models", "prod/phish/current.json")
            .unwrap(),
        current
    );
}

/// Faults a real server cannot be made to produce on demand — a 503 on one object, a
/// connection that dies in the middle of a request — come from a proxy in front of moto.
#[test]
fn failed_uploads_never_move_the_pointer() {
    failed_uploads(None);
}

/// The same with publications that write the pointer first: a failed upload leaves it
/// moved, naming a model that is not there.
#[test]
#[ignore = "guard twin: fails by design, see NETSEC_TEST_DISABLE_GUARD"]
fn guard_twin_publish_order() {
    failed_uploads(Some(Guard::PublishOrder));
}

fn failed_uploads(guard: Option<Guard>) {
    let server = S3Server::start(Kind::Moto);
    server.create_bucket("netsec-models");
    let env = with_guard_env(server.env(), guard);
    let ws = workspace();
    let state = ws.path().join("state");
    let to = "s3://netsec-models/p";
    promote(ws.path(), "stump", &["--publish", "--to", to], &env).expect_code(0);
    let v1 = server.get("netsec-models", "p/phish/current.json").unwrap();

    // The new model's upload answers 503 every time: the SDK retries, then the promotion
    // stands but publishing fails with exit 1 and says how to retry.
    let proxy = FaultProxy::start(
        &server.endpoint,
        |line| line.starts_with("PUT ") && line.contains("/model.json"),
        Fault::Status(503),
    );
    let run = promote(
        ws.path(),
        "logistic",
        &["--publish", "--to", to, "--endpoint-url", &proxy.endpoint],
        &env,
    )
    .expect_code(1);
    for needle in [
        "PROMOTED",
        "is recorded, but publishing it failed",
        "HTTP 503",
        "model.json",
        "netsec publish phish@champion",
    ] {
        assert!(
            run.stdout.contains(needle) || run.stderr.contains(needle),
            "{needle}:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    assert!(
        proxy.faults() >= 2,
        "the SDK retries a 503 ({} tries)",
        proxy.faults()
    );
    // Compared as text, so that a moved pointer shows as JSON.
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    assert_eq!(
        text(server.get("netsec-models", "p/phish/current.json").unwrap()),
        text(v1.clone()),
        "a failed upload moved the pointer"
    );
    assert_eq!(
        server.keys("netsec-models").len(),
        3,
        "no second model appeared"
    );

    // The metadata upload dies mid-request: the model is there, the pointer still old.
    let proxy = FaultProxy::start(
        &server.endpoint,
        |line| line.starts_with("PUT ") && line.contains("/metadata.json"),
        Fault::Drop,
    );
    let run = netsec(
        &[
            "publish",
            "phish",
            "--endpoint-url",
            &proxy.endpoint,
            "--to",
            to,
            "--state-dir",
            s(&state),
        ],
        &env,
    )
    .expect_code(1);
    assert!(run.stderr.contains("metadata.json"), "{}", run.stderr);
    assert!(
        run.stderr.contains("current.json was not changed"),
        "{}",
        run.stderr
    );
    assert_eq!(
        server.get("netsec-models", "p/phish/current.json").unwrap(),
        v1
    );
    assert_eq!(pointer(&server, "netsec-models", "p")["version"], 1);

    // Once the server is healthy again, the same promotion run again finds the model
    // already `champion` and completes the publication: the model is not sent again.
    let run = promote(ws.path(), "logistic", &["--publish", "--to", to], &env).expect_code(0);
    assert!(run.stdout.contains("nothing to do"), "{}", run.stdout);
    assert!(
        lines_with(&run.stdout, "skipped")[0].contains("model.json"),
        "{}",
        run.stdout
    );
    assert_eq!(pointer(&server, "netsec-models", "p")["version"], 2);
}

/// A running `netsec serve`, killed when dropped.
pub(crate) struct Serve {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Serve {
    pub(crate) fn start(model: &str, env: &[(&str, String)]) -> Serve {
        let mut command = netsec_command();
        command
            .args([
                "serve",
                "--model",
                model,
                "--bind",
                "127.0.0.1:0",
                "--reload-interval",
                "200ms",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let addr = serve_address(&mut child).expect("netsec serve prints its address");
        Serve { child, addr }
    }

    pub(crate) fn version(&self) -> Value {
        get(self.addr, "/model", &[]).json()["version"].clone()
    }

    fn wait_for_version(&self, version: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.version() != version {
            assert!(
                Instant::now() < deadline,
                "still {} instead of {version}",
                self.version()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_from_s3_reloads_after_publish_and_rollback() {
    let server = S3Server::start(Kind::Seaweed);
    server.create_bucket("netsec-serve");
    let env = server.env();
    let ws = workspace();
    let to = "s3://netsec-serve/models";
    promote(ws.path(), "stump", &["--publish", "--to", to], &env).expect_code(0);
    let serve = Serve::start("s3://netsec-serve/models/phish", &env);
    assert_eq!(serve.version(), "1");
    let model = get(serve.addr, "/model", &[]).json();
    assert_eq!(model["algorithm"], "decision_tree");
    assert!(
        model["path"]
            .as_str()
            .unwrap()
            .starts_with("s3://netsec-serve/models/phish/")
    );

    promote(ws.path(), "logistic", &["--publish", "--to", to], &env).expect_code(0);
    serve.wait_for_version("2");
    assert_eq!(
        get(serve.addr, "/model", &[]).json()["algorithm"],
        "logistic_regression"
    );

    let state = ws.path().join("state");
    netsec(
        &[
            "rollback",
            "phish",
            "--reason",
            "r",
            "--publish",
            "--store",
            to,
            "--state-dir",
            s(&state),
        ],
        &env,
    )
    .expect_code(0);
    serve.wait_for_version("1");

    // A pointer whose model does not have the pointer's sha256 (written by hand, as a
    // broken publisher would) is refused: counted once, the old model keeps serving.
    let good: Value = serde_json::from_slice(
        &server
            .get("netsec-serve", "models/phish/current.json")
            .unwrap(),
    )
    .unwrap();
    let mut bad = good.clone();
    bad["version"] = 9.into();
    bad["sha256"] = "0".repeat(64).into();
    let client = server.client();
    crate::common::s3_server::block_on(
        client
            .put_object()
            .bucket("netsec-serve")
            .key("models/phish/current.json")
            .body(serde_json::to_vec(&bad).unwrap().into())
            .send(),
    )
    .unwrap();
    let failed = || {
        get(serve.addr, "/metrics", &[])
            .text()
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"netsec_model_reloads_total{result="failed"} "#)?
                    .parse::<f64>()
                    .ok()
            })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while failed() != Some(1.0) {
        assert!(Instant::now() < deadline, "the bad pointer was not refused");
        std::thread::sleep(Duration::from_millis(100));
    }
    let polls = || {
        get(serve.addr, "/metrics", &[])
            .text()
            .lines()
            .find_map(|l| {
                l.strip_prefix("netsec_model_pointer_polls_total ")?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap()
    };
    let refused_at = polls();
    while polls() < refused_at + 3.0 {
        assert!(Instant::now() < deadline, "the pointer is not polled again");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(failed(), Some(1.0), "a refused pointer is tried once");
    assert_eq!(serve.version(), "1");

    // A pointer that is missing is bad input at start (exit 2), wrong credentials exit 1.
    let run = netsec(
        &[
            "serve",
            "--model",
            "s3://netsec-serve/models/other",
            "--bind",
            "127.0.0.1:0",
        ],
        &env,
    )
    .expect_code(2);
    assert!(
        run.stderr
            .contains("s3://netsec-serve/models/other/current.json does not exist"),
        "{}",
        run.stderr
    );
    let mut bad = env.clone();
    bad.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    bad.push(("AWS_SECRET_ACCESS_KEY", "wrong".to_owned()));
    let run = netsec(
        &[
            "serve",
            "--model",
            "s3://netsec-serve/models/phish",
            "--bind",
            "127.0.0.1:0",
        ],
        &bad,
    )
    .expect_code(1);
    assert!(
        run.stderr.contains("SignatureDoesNotMatch"),
        "{}",
        run.stderr
    );
}

#[test]
fn file_store_works_the_same() {
    let ws = workspace();
    let state = ws.path().join("state");
    // Default store: file://STATE_DIR/store.
    let first = promote(ws.path(), "stump", &["--publish"], &[]).expect_code(0);
    let store = std::path::absolute(state.join("store/phish")).unwrap();
    assert!(
        first.stdout.contains(&format!(
            "serve it with: netsec serve --model file://{}",
            store.display()
        )),
        "{}",
        first.stdout
    );
    let read_pointer = |dir: &Path| -> Value {
        let pointer: Value =
            serde_json::from_slice(&std::fs::read(dir.join("current.json")).unwrap()).unwrap();
        let model = std::fs::read(dir.join(pointer["path"].as_str().unwrap())).unwrap();
        assert_eq!(sha256(&model), pointer["sha256"].as_str().unwrap());
        pointer
    };
    assert_eq!(read_pointer(&store)["version"], 1);
    let serve = Serve::start(&format!("file://{}", store.display()), &[]);
    assert_eq!(serve.version(), "1");

    // With --format json, stdout stays one JSON report; the publication goes to the log.
    let run = promote(
        ws.path(),
        "logistic",
        &["--publish", "--format", "json"],
        &[],
    )
    .expect_code(0);
    let report: Value = serde_json::from_str(&run.stdout).expect("stdout is the JSON report");
    assert_eq!(report["decision"], "promoted");
    assert!(run.stderr.contains("current.json"), "{}", run.stderr);
    serve.wait_for_version("2");
    let again = netsec(&["publish", "phish", "--state-dir", s(&state)], &[]).expect_code(0);
    assert_eq!(
        lines_with(&again.stdout, "skipped").len(),
        3,
        "{}",
        again.stdout
    );
    let back = netsec(
        &[
            "rollback",
            "phish",
            "--reason",
            "r",
            "--publish",
            "--state-dir",
            s(&state),
        ],
        &[],
    )
    .expect_code(0);
    assert_eq!(
        lines_with(&back.stdout, "replaced").len(),
        1,
        "{}",
        back.stdout
    );
    serve.wait_for_version("1");
    assert_eq!(read_pointer(&store)["version"], 1);

    // NETSEC_STORE chooses another store.
    let other = ws.path().join("other");
    netsec(
        &["publish", "phish", "--state-dir", s(&state)],
        &[("NETSEC_STORE", format!("file://{}", other.display()))],
    )
    .expect_code(0);
    assert_eq!(read_pointer(&other.join("phish"))["version"], 1);
}
