//! `netsec serve`: every route, every error answer, the bearer token, the body limit and
//! /metrics after traffic through the application's router in this process (every layer,
//! no socket); graceful shutdown, hot reload under load (new model swapped in, corrupt one
//! refused, zero failed requests), the CSV fast path against `netsec predict`, and the
//! prediction log against a real MongoDB-compatible server (up, killed mid-run,
//! unreachable) through the real binary and real HTTP on 127.0.0.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::common::http::{Answer, get, post, request, serve_address};
use crate::common::mongo_server::MongoServer;
use crate::common::{Guard, guard_env, netsec, netsec_command, phishing_lines, repo_file, s};
use mongodb::bson::{Bson, Document, doc};
use netsec::serve::{AppState, ModelSource, ServeOptions};
use netsec::storage::{Pointer, S3Options};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

/// Two trained model files (random forest, decision tree) and their sha256, made once.
pub(crate) struct Models {
    pub(crate) forest: (PathBuf, String),
    pub(crate) tree: (PathBuf, String),
}

pub(crate) fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let train = |name: &str, models: &str| {
            let grid = dir.join(format!("{name}.yaml"));
            std::fs::write(
                &grid,
                format!(
                    "name: {name}\ndata: {{ source: synthetic, profile: phishing, rows: 1500, seed: 5, schema: {} }}\n\
                     split: {{ test_fraction: 0.25, seed: 3 }}\ncv: {{ folds: 3 }}\nselect: {{ metric: f1 }}\nmodels:\n{models}",
                    s(&repo_file("data_schema/phishing.yaml"))
                ),
            )
            .unwrap();
            let out = dir.join(format!("{name}.json"));
            let run = netsec(&[
                "experiment", "run", s(&grid), "--state-dir", s(&dir.join(name)),
                "--format", "json", "--model-out", s(&out),
            ])
            .expect_code(0);
            let summary: Value = serde_json::from_str(&run.stdout).unwrap();
            let sha = summary["best_model"]["sha256"].as_str().unwrap().to_owned();
            (out, sha)
        };
        Models {
            forest: train("forest", "  - algorithm: random_forest\n    grid: { n_estimators: [16] }\n"),
            tree: train("tree", "  - algorithm: decision_tree\n    grid: { max_depth: [6] }\n"),
        }
    })
}

/// A running `netsec serve`, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    pub(crate) fn start(model: &str, args: &[&str], token: Option<&str>) -> Server {
        let env: Vec<(&str, &str)> = token
            .map(|t| ("NETSEC_SERVE_TOKEN", t))
            .into_iter()
            .collect();
        Server::start_with_env(model, args, &env)
    }

    fn start_with_env(model: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr.log");
        let mut command = netsec_command();
        command
            .args([
                "serve",
                "--model",
                model,
                "--bind",
                "127.0.0.1:0",
                "--workers",
                "2",
            ])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let mut child = command.spawn().unwrap();
        let addr = serve_address(&mut child).unwrap_or_else(|| {
            panic!(
                "netsec serve printed no address: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            )
        });
        Server {
            child,
            addr,
            stderr,
            _dir: dir,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The application `netsec serve` runs — its router with every layer (token, body limit,
/// timeout, metrics) — answering requests in this process, without a socket.
struct App {
    router: axum::Router,
    runtime: tokio::runtime::Runtime,
}

impl App {
    /// Serves the model file at `model` with `options`, as `netsec serve --model` does.
    fn start(model: &Path, options: ServeOptions) -> App {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let model = runtime.block_on(async {
            let source = ModelSource::open(s(model), &S3Options::default())
                .await
                .unwrap();
            source.load().await.unwrap()
        });
        let state = Arc::new(AppState::new(model, &options));
        let router = netsec::serve::app::router(state, &options);
        App { router, runtime }
    }

    /// Sends one request through the router; answers as [`request`] does over HTTP.
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-length", body.len());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(axum::body::Body::from(body.to_vec())).unwrap();
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec();
            Answer {
                status,
                headers,
                body,
            }
        })
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.request("GET", path, headers, b"")
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        self.request("POST", path, headers, body)
    }

    fn post_json(&self, body: &Value) -> Answer {
        self.post("/predict", &[JSON], body.to_string().as_bytes())
    }
}

/// The first `n` phishing rows as JSON records (features only, integers).
pub(crate) fn records(n: usize) -> Vec<Value> {
    let lines = phishing_lines(n + 1);
    let header: Vec<&str> = lines[0].split(',').map(|h| h.trim_matches('"')).collect();
    lines[1..]
        .iter()
        .map(|line| {
            let mut record = Map::new();
            for (name, cell) in header.iter().zip(line.split(',')) {
                if *name != "Result" {
                    record.insert(
                        (*name).to_owned(),
                        json!(cell.trim().parse::<i64>().unwrap()),
                    );
                }
            }
            Value::Object(record)
        })
        .collect()
}

pub(crate) const JSON: (&str, &str) = ("Content-Type", "application/json");

fn post_json(addr: SocketAddr, body: &Value) -> crate::common::http::Answer {
    post(addr, "/predict", &[JSON], body.to_string().as_bytes())
}

/// The value of a metric line with exactly these labels.
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn every_route_answers_and_every_error_is_json() {
    let (model_path, sha) = &models().forest;
    let app = App::start(model_path, ServeOptions::default());

    assert_eq!(app.get("/healthz", &[]).json()["status"], "ok");
    assert_eq!(app.get("/readyz", &[]).json()["sha256"], sha.as_str());
    let page = app.get("/", &[]);
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().contains("/page.js"));
    let model = app.get("/model", &[]).json();
    assert_eq!(model["sha256"], sha.as_str());
    assert_eq!(model["algorithm"], "random_forest");
    assert_eq!(model["version"], "file");
    assert_eq!(model["schema"]["hash"].as_str().unwrap().len(), 64);
    assert_eq!(model["schema"]["columns"].as_array().unwrap().len(), 30);
    assert!(model["metrics"]["test"]["f1"].as_f64().unwrap() > 0.8);

    // One record, an array, {"rows": [...]}: same predictions for the same rows.
    let rows = records(20);
    let one = app.post_json(&rows[0]);
    assert_eq!(one.status, 200, "{}", one.text());
    let one = one.json();
    let first = &one["predictions"][0];
    let p = first["attack_probability"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    let attack = p >= 0.5;
    assert_eq!(
        *first,
        json!({
            "predicted_label": if attack { -1 } else { 1 },
            "class_probability": if attack { p } else { first["class_probability"].as_f64().unwrap() },
            "attack_probability": p,
            "is_attack": attack,
            "attack_class": if attack { json!("phishing") } else { Value::Null },
        }),
        "{one}"
    );
    assert!((first["class_probability"].as_f64().unwrap() - p.max(1.0 - p)).abs() < 1e-12);
    assert_eq!(one["model"]["sha256"], sha.as_str());
    let array = app.post_json(&Value::Array(rows.clone())).json();
    let wrapped = app.post_json(&json!({ "rows": rows })).json();
    assert_eq!(array["predictions"].as_array().unwrap().len(), 20);
    assert_eq!(array["predictions"], wrapped["predictions"]);
    assert_eq!(array["predictions"][0], *first);

    // CSV in, CSV out, with the same probabilities as JSON.
    let csv = phishing_lines(21).join("\n");
    let answer = app.post(
        "/predict/csv",
        &[("Content-Type", "text/csv")],
        csv.as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/csv")
    );
    let text = answer.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 21);
    assert!(lines[0].ends_with(
        "Result,predicted_label,class_probability,attack_probability,is_attack,attack_class"
    ));
    let csv_p: f64 = lines[1].rsplit(',').nth(2).unwrap().parse().unwrap();
    assert!((csv_p - p).abs() < 1e-12, "{csv_p} vs {p}");

    // Errors: status, code, and the column / row they name.
    let bad = app.post("/predict", &[JSON], b"{\"URL_Length\": ");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "bad_json");
    let mut missing = rows[0].clone();
    missing.as_object_mut().unwrap().remove("SFH");
    let e = app.post_json(&missing);
    assert_eq!(e.status, 422);
    let e = e.json();
    assert_eq!(
        (e["error"].as_str(), e["column"].as_str(), e["row"].as_u64()),
        (Some("invalid_input"), Some("SFH"), Some(0))
    );
    assert!(
        e["message"].as_str().unwrap().contains("`SFH` is missing"),
        "{e}"
    );
    let mut extra = rows[0].clone();
    extra["URL_Lenght"] = json!(1);
    let e = app.post_json(&extra).json();
    assert_eq!(e["column"], "URL_Lenght", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("not in the schema"),
        "{e}"
    );
    let mut outside = rows[1].clone();
    outside["URL_Length"] = json!(7);
    let e = app.post_json(&json!({ "rows": [rows[0], outside] }));
    assert_eq!(e.status, 422);
    let e = e.json();
    assert_eq!(
        (e["column"].as_str(), e["row"].as_u64()),
        (Some("URL_Length"), Some(1)),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("[-1, 0, 1]"), "{e}");
    let mut text_cell = rows[0].clone();
    text_cell["SSLfinal_State"] = json!("high");
    let e = app.post_json(&text_cell).json();
    assert_eq!(e["column"], "SSLfinal_State");
    assert_eq!(e["issues"][0]["problem"]["kind"], "wrong_type", "{e}");
    let e = app.post_json(&json!([1, 2]));
    assert_eq!(e.status, 400);
    let mut bad_csv = phishing_lines(6);
    bad_csv[3] = bad_csv[3].replacen("-1", "abc", 1);
    let e = app.post("/predict/csv", &[], bad_csv.join("\n").as_bytes());
    assert_eq!(e.status, 422);
    let e = e.json();
    assert_eq!(e["line"], 4, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("request:4: column"),
        "{e}"
    );
    let ragged = format!("{}\n1,2\n", phishing_lines(1)[0]);
    let e = app.post("/predict/csv", &[], ragged.as_bytes());
    assert_eq!((e.status, e.json()["line"].as_u64()), (400, Some(2)));
    let e = app.get("/nope", &[]);
    assert_eq!(
        (e.status, e.json()["error"].as_str().map(str::to_owned)),
        (404, Some("not_found".into()))
    );

    // The metrics count what just happened.
    let metrics = app.get("/metrics", &[]);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let m = metrics.text();
    let count =
        |series: &str| metric(&m, series).unwrap_or_else(|| panic!("{series} missing in\n{m}"));
    assert_eq!(
        count(r#"netsec_http_requests_total{route="/predict",status="200"}"#),
        3.0
    );
    assert_eq!(
        count(r#"netsec_http_requests_total{route="/predict",status="422"}"#),
        4.0
    );
    assert_eq!(
        count(r#"netsec_http_requests_total{route="/predict",status="400"}"#),
        2.0
    );
    assert_eq!(
        count(r#"netsec_http_requests_total{route="/predict/csv",status="200"}"#),
        1.0
    );
    assert_eq!(
        count(r#"netsec_http_requests_total{route="other",status="404"}"#),
        1.0
    );
    assert_eq!(
        count(
            r#"netsec_http_request_duration_seconds_bucket{route="/predict",status="200",le="+Inf"}"#
        ),
        3.0
    );
    assert_eq!(
        count(r#"netsec_http_request_duration_seconds_count{route="/predict",status="200"}"#),
        3.0
    );
    let predicted = count(r#"netsec_predictions_total{class="phishing"}"#)
        + count(r#"netsec_predictions_total{class="legitimate"}"#);
    assert_eq!(predicted, 1.0 + 20.0 + 20.0 + 20.0);
    assert!(
        m.contains(&format!(r#"sha256="{sha}",algorithm="random_forest""#)),
        "{m}"
    );
    assert_eq!(count(r#"netsec_model_reloads_total{result="failed"}"#), 0.0);
    // Every histogram's buckets are cumulative.
    let buckets: Vec<f64> = m
        .lines()
        .filter(|l| {
            l.starts_with(
                r#"netsec_http_request_duration_seconds_bucket{route="/predict",status="200""#,
            )
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");

    // SIGTERM: a graceful stop with exit code 0 (a process: signals are its business).
    let mut server = Server::start(s(model_path), &[], None);
    assert_eq!(terminate(&mut server), Some(0), "{}", server.stderr());
}

#[test]
fn bearer_token_and_body_limit() {
    let (model_path, _) = &models().forest;
    let token = "s3cret-token-value";
    let app = App::start(
        model_path,
        ServeOptions {
            max_body_bytes: 2048,
            token: Some(token.into()),
            ..ServeOptions::default()
        },
    );
    let body = records(1)[0].to_string();
    let bearer = format!("Bearer {token}");

    let none = app.post("/predict", &[JSON], body.as_bytes());
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"], "unauthorized");
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let wrong = app.post(
        "/predict",
        &[JSON, ("Authorization", "Bearer nope")],
        body.as_bytes(),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(app.get("/model", &[]).status, 401);
    assert_eq!(app.get("/metrics", &[]).status, 401);
    let ok = app.post(
        "/predict",
        &[JSON, ("Authorization", &bearer)],
        body.as_bytes(),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(app.get("/healthz", &[]).status, 200);
    assert_eq!(app.get("/readyz", &[]).status, 200);

    let big = Value::Array(records(40)).to_string();
    assert!(big.len() > 2048);
    let e = app.post(
        "/predict",
        &[JSON, ("Authorization", &bearer)],
        big.as_bytes(),
    );
    assert_eq!(e.status, 413);
    assert_eq!(e.json()["error"], "too_large");
    let csv = phishing_lines(100).join("\n");
    let e = app.post(
        "/predict/csv",
        &[("Authorization", &bearer)],
        csv.as_bytes(),
    );
    assert_eq!(e.status, 413);

    let m = app.get("/metrics", &[("Authorization", &bearer)]).text();
    assert_eq!(
        metric(
            &m,
            r#"netsec_http_requests_total{route="/predict",status="401"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &m,
            r#"netsec_http_requests_total{route="/predict",status="413"}"#
        ),
        Some(1.0)
    );
    // The log is the process's: a real server, asked without, with a wrong and with the
    // right token.
    let server = Server::start(s(model_path), &["--max-body-bytes", "2048"], Some(token));
    let addr = server.addr;
    assert_eq!(post(addr, "/predict", &[JSON], body.as_bytes()).status, 401);
    let wrong = [JSON, ("Authorization", "Bearer nope")];
    assert_eq!(post(addr, "/predict", &wrong, body.as_bytes()).status, 401);
    let right = [JSON, ("Authorization", bearer.as_str())];
    assert_eq!(post(addr, "/predict", &right, body.as_bytes()).status, 200);
    assert!(
        !server.stderr().contains(token),
        "the token must never be logged"
    );
}

#[test]
fn unusable_model_is_bad_input() {
    let run = netsec(&[
        "serve",
        "--model",
        "/nonexistent/model.json",
        "--bind",
        "127.0.0.1:0",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("/nonexistent/model.json"),
        "{}",
        run.stderr
    );
    let dir = tempfile::tempdir().unwrap();
    let run = netsec(&[
        "serve",
        "--model",
        &format!("file://{}", s(dir.path())),
        "--bind",
        "127.0.0.1:0",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("current.json"), "{}", run.stderr);
}

/// Puts a model into a store as `<sha>/model.json` (bytes as given) and points at it.
pub(crate) fn publish(store: &Path, version: u64, bytes: &[u8], sha: &str) {
    let dir = store.join(sha);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.json"), bytes).unwrap();
    let pointer = Pointer::new("netsec-phishing", version, sha).to_json();
    // Atomically, as a publisher must: the server polls the pointer meanwhile.
    netsec::fsutil::write_atomic(&store.join("current.json"), |w| w.write_all(&pointer)).unwrap();
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hot_reload_under_load_swaps_good_models_and_refuses_corrupt_ones() {
    hot_reload_under_load(None);
}

/// The same with a server that loads what the pointer names without checking its sha256:
/// the model whose bytes are not the pointer's is served.
#[test]
#[ignore = "guard twin: fails by design, see NETSEC_TEST_DISABLE_GUARD"]
fn guard_twin_serve_verify() {
    hot_reload_under_load(Some(Guard::ServeVerify));
}

fn hot_reload_under_load(guard: Option<Guard>) {
    let models = models();
    let store = tempfile::tempdir().unwrap();
    let (forest, forest_sha) = &models.forest;
    let (tree, tree_sha) = &models.tree;
    publish(store.path(), 1, &std::fs::read(forest).unwrap(), forest_sha);
    let source = format!("file://{}", s(store.path()));
    let env: Vec<_> = guard_env(guard).into_iter().collect();
    let server = Server::start_with_env(&source, &["--reload-interval", "100ms"], &env);
    let addr = server.addr;
    assert_eq!(get(addr, "/model", &[]).json()["version"], "1");

    // Clients send requests until stopped (bounded by count and time).
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let versions = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let body = Value::Array(records(5)).to_string();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, sent, failed, versions, body) = (
                stop.clone(),
                sent.clone(),
                failed.clone(),
                versions.clone(),
                body.clone(),
            );
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed)
                    && Instant::now() < deadline
                    && sent.load(Ordering::Relaxed) < 20_000
                {
                    sent.fetch_add(1, Ordering::Relaxed);
                    match request(addr, "POST", "/predict", &[JSON], body.as_bytes()) {
                        Ok(a) if a.status == 200 => {
                            let v = a.json()["model"]["version"].as_str().unwrap().to_owned();
                            versions.lock().unwrap().insert(v);
                        }
                        other => {
                            if let Ok(a) = &other {
                                eprintln!(
                                    "failed request: {} {}",
                                    a.status,
                                    a.text().chars().take(300).collect::<String>()
                                );
                            } else {
                                eprintln!("failed request: {other:?}");
                            }
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let seen = |version: &str| versions.lock().unwrap().contains(version);
    wait_for("clients answered by version 1", || seen("1"));

    // A good new model: verified and swapped in.
    publish(store.path(), 2, &std::fs::read(tree).unwrap(), tree_sha);
    wait_for("version 2", || {
        get(addr, "/model", &[]).json()["version"] == "2"
    });
    let model = get(addr, "/model", &[]).json();
    assert_eq!(
        (model["sha256"].as_str(), model["algorithm"].as_str()),
        (Some(tree_sha.as_str()), Some("decision_tree"))
    );
    wait_for("clients answered by version 2", || seen("2"));

    // A corrupt one (bytes do not match the pointer's sha256): refused, counted once. The
    // bytes are a whole model (the forest's), so that only the sha256 check can refuse
    // them; a file that is not a model is the junk case below.
    let corrupt = std::fs::read(forest).unwrap();
    publish(
        store.path(),
        3,
        &corrupt,
        forest_sha.replace(&forest_sha[..4], "0000").as_str(),
    );
    let failed_reloads = || {
        let m = get(addr, "/metrics", &[]).text();
        metric(&m, r#"netsec_model_reloads_total{result="failed"}"#).unwrap()
    };
    wait_for("the corrupt model to be refused", || {
        failed_reloads() == 1.0
    });
    // A model file whose sha256 matches but which is not a model: refused as well.
    let junk = b"{\"format\": \"netsec-model\", \"format_version\": 1}".to_vec();
    let junk_sha = {
        use sha2::Digest;
        netsec::shared::hash::hex(&sha2::Sha256::digest(&junk))
    };
    publish(store.path(), 4, &junk, &junk_sha);
    wait_for("the junk model to be refused", || failed_reloads() == 2.0);
    let polls = || {
        let m = get(addr, "/metrics", &[]).text();
        metric(&m, "netsec_model_pointer_polls_total").unwrap()
    };
    let refused_at = polls();
    wait_for("three more polls of the refused pointer", || {
        polls() >= refused_at + 3.0
    });
    assert_eq!(failed_reloads(), 2.0, "a refused pointer is tried once");
    let model = get(addr, "/model", &[]).json();
    assert_eq!(model["version"], "2", "the old model keeps serving");
    assert_eq!(get(addr, "/readyz", &[]).status, 200);

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let m = get(addr, "/metrics", &[]).text();
    assert_eq!(
        metric(&m, r#"netsec_model_reloads_total{result="ok"}"#),
        Some(1.0)
    );
    assert!(m.contains(r#"version="2""#), "{m}");
    let sent = sent.load(Ordering::Relaxed);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests out of {sent}"
    );
    assert!(sent > 50, "only {sent} requests sent");
    let versions = versions.lock().unwrap();
    assert!(
        versions.contains("1") && versions.contains("2"),
        "{versions:?}"
    );
    assert!(
        server.stderr().contains("refused new model"),
        "{}",
        server.stderr()
    );
}

/// Sends SIGTERM to a server without waiting for it.
fn signal_term(server: &Server) {
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn shutdown_answers_readyz_503_and_finishes_the_request_in_flight() {
    shutdown_drains(None);
}

/// The same with a server that stops at once on SIGTERM: no 503 phase, the request in
/// flight cut off.
#[test]
#[ignore = "guard twin: fails by design, see NETSEC_TEST_DISABLE_GUARD"]
fn guard_twin_drain() {
    shutdown_drains(Some(Guard::Drain));
}

fn shutdown_drains(guard: Option<Guard>) {
    let (forest, _) = &models().forest;
    let env: Vec<_> = guard_env(guard).into_iter().collect();
    let mut server = Server::start_with_env(s(forest), &["--drain-delay", "3s"], &env);
    let addr = server.addr;
    assert_eq!(get(addr, "/readyz", &[]).status, 200);

    // A request in flight: its head and half its body are sent before the signal.
    let body = Value::Array(records(7)).to_string().into_bytes();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut in_flight =
        crate::common::http::begin(addr, "POST", "/predict", &[JSON], body.len()).unwrap();
    std::io::Write::write_all(&mut in_flight, first).unwrap();
    // Connections are accepted in order: once a later one is answered, this one is in.
    assert_eq!(get(addr, "/healthz", &[]).status, 200);
    signal_term(&server);

    // While draining: /readyz answers 503 on a new connection, other routes still serve.
    wait_for("/readyz to answer 503", || {
        request(addr, "GET", "/readyz", &[], b"").is_ok_and(|a| a.status == 503)
    });
    assert_eq!(
        get(addr, "/readyz", &[]).json()["error"],
        "draining",
        "the 503 says why"
    );
    assert_eq!(post_json(addr, &Value::Array(records(2))).status, 200);

    // The request in flight finishes with its full answer.
    std::io::Write::write_all(&mut in_flight, rest).unwrap();
    let answer = crate::common::http::read_answer(in_flight).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["predictions"].as_array().unwrap().len(), 7);

    // Then the listener closes and the process exits 0.
    assert_eq!(wait_exit(&mut server), Some(0), "{}", server.stderr());
    assert!(request(addr, "GET", "/healthz", &[], b"").is_err());
}

#[test]
fn a_request_slower_than_the_timeout_gets_408() {
    let (forest, _) = &models().forest;
    let server = Server::start(s(forest), &["--request-timeout", "300ms"], None);
    let addr = server.addr;
    // The body never comes: the request outlives its timeout.
    let body = Value::Array(records(3)).to_string().into_bytes();
    let mut slow =
        crate::common::http::begin(addr, "POST", "/predict", &[JSON], body.len()).unwrap();
    std::io::Write::write_all(&mut slow, &body[..10]).unwrap();
    let started = Instant::now();
    let answer = crate::common::http::read_answer(slow).unwrap();
    assert_eq!(answer.status, 408, "{}", answer.text());
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    // A request within the limit is answered, and the 408 is counted.
    assert_eq!(post_json(addr, &Value::Array(records(3))).status, 200);
    let m = get(addr, "/metrics", &[]).text();
    assert_eq!(
        metric(
            &m,
            r#"netsec_http_requests_total{route="/predict",status="408"}"#
        ),
        Some(1.0),
        "{m}"
    );
}

/// Stops a server with SIGTERM and returns its exit code.
fn terminate(server: &mut Server) -> Option<i32> {
    signal_term(server);
    wait_exit(server)
}

/// Waits (at most 20 s) for a server that was told to stop; returns its exit code.
fn wait_exit(server: &mut Server) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn csv_fast_path_answers_exactly_like_netsec_predict() {
    let (model_path, _) = &models().forest;
    let server = Server::start(s(model_path), &["-v"], None);
    let dir = tempfile::tempdir().unwrap();
    let lines = phishing_lines(5001);
    // Without the label, with an id column, quoted cells (one with a comma and quotes),
    // spaces around numbers, an empty id cell.
    let header = lines[0].replacen(",\"Result\"", "", 1);
    let mut edited = vec![format!("\"id\",{header}")];
    for (i, line) in lines[1..40].iter().enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let features = cells[..cells.len() - 1].join(",");
        let id = match i {
            0 => "\"a, \"\"quoted\"\" id\"".to_owned(),
            1 => String::new(),
            _ => format!("\"r{i}\""),
        };
        let features = if i == 2 {
            features.replacen("-1", " -1 ", 1)
        } else {
            features
        };
        edited.push(format!("{id},{features}"));
    }
    let bodies = [
        ("label", lines[..200].join("\n") + "\n"),
        ("no-final-newline", lines[..30].join("\n")),
        ("edited", edited.join("\n") + "\n"),
        // Large enough to be predicted in parallel chunks.
        ("large", lines.join("\n") + "\n"),
    ];
    for (name, body) in bodies {
        let input = dir.path().join(format!("{name}.csv"));
        let output = dir.path().join(format!("{name}-predicted.csv"));
        std::fs::write(&input, &body).unwrap();
        netsec(&[
            "predict",
            "--model",
            s(model_path),
            "--input",
            s(&input),
            "--output",
            s(&output),
        ])
        .expect_code(0);
        let answer = post(server.addr, "/predict/csv", &[], body.as_bytes());
        assert_eq!(answer.status, 200, "{name}: {}", answer.text());
        let expected = std::fs::read_to_string(&output).unwrap();
        assert_eq!(answer.text(), expected, "{name}: serve and predict differ");
    }
    assert!(
        !server.stderr().contains("general path"),
        "valid bodies take the fast path: {}",
        server.stderr()
    );
    // A body with a problem is read like a file, to name its line.
    let mut bad = lines[..5].to_vec();
    bad[2] = bad[2].replacen("-1", "x", 1);
    let answer = post(server.addr, "/predict/csv", &[], bad.join("\n").as_bytes());
    assert_eq!(
        (answer.status, answer.json()["line"].as_u64()),
        (422, Some(3))
    );
    assert!(
        server.stderr().contains("general path"),
        "{}",
        server.stderr()
    );
}

/// The documents of a collection, sorted by route then time order of insertion.
fn documents(uri: &str, db: &str, collection: &str) -> Vec<Document> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = mongodb::Client::with_uri_str(uri).await.unwrap();
        let mut cursor = client
            .database(db)
            .collection::<Document>(collection)
            .find(doc! {})
            .await
            .unwrap();
        let mut out = Vec::new();
        while cursor.advance().await.unwrap() {
            out.push(cursor.deserialize_current().unwrap());
        }
        out
    })
}

#[test]
fn prediction_log_writes_every_prediction_and_drains_on_shutdown() {
    prediction_log_drains(None);
}

/// The same with a server that drops what is queued for the log at shutdown.
#[test]
#[ignore = "guard twin: fails by design, see NETSEC_TEST_DISABLE_GUARD"]
fn guard_twin_log_drain() {
    prediction_log_drains(Some(Guard::LogDrain));
}

fn prediction_log_drains(guard: Option<Guard>) {
    let (model_path, sha) = &models().forest;
    let mongo = MongoServer::start();
    let env: Vec<_> = guard_env(guard).into_iter().collect();
    let server = Server::start_with_env(
        s(model_path),
        &[
            "--prediction-log",
            &mongo.uri,
            "--prediction-log-db",
            "serving",
            "--prediction-log-flush",
            "100ms",
        ],
        &env,
    );
    let addr = server.addr;
    let rows = records(5);
    let single = post_json(addr, &rows[0]);
    assert_eq!(single.status, 200, "{}", single.text());
    let p0 = single.json()["predictions"][0]["attack_probability"]
        .as_f64()
        .unwrap();
    assert_eq!(post_json(addr, &Value::Array(rows.clone())).status, 200);
    let csv = phishing_lines(21).join("\n");
    assert_eq!(post(addr, "/predict/csv", &[], csv.as_bytes()).status, 200);
    // Refused input is not a prediction: nothing is logged for it.
    assert_eq!(post_json(addr, &json!({"URL_Length": 7})).status, 422);

    let expected = 1 + 5 + 20;
    let mut docs = Vec::new();
    wait_for("the predictions in MongoDB", || {
        docs = documents(&mongo.uri, "serving", "predictions");
        docs.len() >= expected
    });
    assert_eq!(docs.len(), expected);
    let by_route = |route: &str| -> Vec<&Document> {
        docs.iter()
            .filter(|d| d.get_str("route").ok() == Some(route))
            .collect()
    };
    let (json_docs, csv_docs) = (by_route("/predict"), by_route("/predict/csv"));
    assert_eq!((json_docs.len(), csv_docs.len()), (6, 20));
    for d in &docs {
        let model = d.get_document("model").unwrap();
        assert_eq!(model.get_str("sha256").unwrap(), sha.as_str());
        assert_eq!(model.get_str("version").unwrap(), "file");
        assert!(model.get_str("name").is_ok());
        assert!(d.get_datetime("time").is_ok(), "{d}");
        assert_eq!(d.get_str("input_sha256").unwrap().len(), 64);
        let p = d.get_f64("attack_probability").unwrap();
        let attack = d.get_bool("is_attack").unwrap();
        assert_eq!(attack, p >= 0.5);
        let class_p = d.get_f64("class_probability").unwrap();
        assert_eq!(class_p, if attack { p } else { 1.0 - p });
        match d.get("attack_class") {
            Some(Bson::String(c)) => assert!(attack && c == "phishing", "{d}"),
            Some(Bson::Null) => assert!(!attack, "{d}"),
            other => panic!("attack_class {other:?} in {d}"),
        }
        assert_eq!(
            d.get_i64("predicted_label").unwrap(),
            if attack { -1 } else { 1 }
        );
    }
    // JSON features as sent (integers), CSV cells as text, header names as keys.
    let first = json_docs
        .iter()
        .find(|d| d.get_f64("attack_probability").unwrap() == p0)
        .unwrap();
    let features = first.get_document("features").unwrap();
    assert_eq!(features.len(), 30);
    assert_eq!(
        features.get("URL_Length"),
        Some(&Bson::Int32(rows[0]["URL_Length"].as_i64().unwrap() as i32))
    );
    let csv_first = csv_docs
        .iter()
        .find(|d| d.get_str("input_sha256").ok() == first.get_str("input_sha256").ok())
        .expect("the same row sent as CSV has the same input hash");
    assert_eq!(csv_first.get_f64("attack_probability").unwrap(), p0);
    let csv_features = csv_first.get_document("features").unwrap();
    assert_eq!(
        csv_features.len(),
        31,
        "the CSV's label column is kept as given"
    );
    assert!(matches!(
        csv_features.get("URL_Length"),
        Some(Bson::String(_))
    ));

    let m = get(addr, "/metrics", &[]).text();
    assert_eq!(
        metric(&m, "netsec_prediction_log_written_total"),
        Some(expected as f64),
        "{m}"
    );
    for reason in ["queue_full", "write_failed", "shutdown"] {
        let series = format!("netsec_prediction_log_dropped_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&m, &series), Some(0.0), "{m}");
    }
    drop(server);

    // Nothing is flushed by time here: what is queued at SIGTERM is written before exit.
    let mut server = Server::start_with_env(
        s(model_path),
        &[
            "--prediction-log",
            &mongo.uri,
            "--prediction-log-collection",
            "drained",
            "--prediction-log-flush",
            "60s",
            "--prediction-log-batch",
            "1000",
        ],
        &env,
    );
    for row in &rows {
        assert_eq!(post_json(server.addr, row).status, 200);
    }
    assert_eq!(
        post(server.addr, "/predict/csv", &[], csv.as_bytes()).status,
        200
    );
    assert_eq!(terminate(&mut server), Some(0), "{}", server.stderr());
    assert_eq!(
        documents(&mongo.uri, "netsec", "drained").len(),
        5 + 20,
        "what was queued at SIGTERM is written"
    );
}

/// Sends `n` single-record requests; every one must answer 200 within `slowest`.
fn hammer(addr: SocketAddr, n: usize, slowest: Duration) {
    let body = records(1)[0].to_string();
    for i in 0..n {
        let start = Instant::now();
        let answer = post(addr, "/predict", &[JSON], body.as_bytes());
        assert_eq!(answer.status, 200, "request {i}: {}", answer.text());
        assert!(
            start.elapsed() < slowest,
            "request {i} took {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn prediction_log_server_killed_mid_run_never_fails_a_request() {
    let (model_path, _) = &models().forest;
    let mongo = MongoServer::start();
    let server = Server::start(
        s(model_path),
        &[
            "--prediction-log",
            &mongo.uri,
            "--prediction-log-flush",
            "50ms",
            "--prediction-log-queue",
            "8",
            "--prediction-log-batch",
            "4",
        ],
        None,
    );
    let addr = server.addr;
    hammer(addr, 20, Duration::from_secs(1));
    let dropped = |m: &str, reason: &str| {
        metric(
            m,
            &format!("netsec_prediction_log_dropped_total{{reason=\"{reason}\"}}"),
        )
        .unwrap()
    };
    let written = || {
        let m = get(addr, "/metrics", &[]).text();
        metric(&m, "netsec_prediction_log_written_total").unwrap()
    };
    // With a queue of 8, a fast client may outrun the writer: every prediction is either
    // written or counted as dropped.
    let mut before = 0.0;
    wait_for("the first predictions in MongoDB", || {
        let m = get(addr, "/metrics", &[]).text();
        before = written();
        before + dropped(&m, "queue_full") == 20.0
    });
    assert!(before > 0.0);
    let full_before = dropped(&get(addr, "/metrics", &[]).text(), "queue_full");

    drop(mongo);
    let start = Instant::now();
    hammer(addr, 300, Duration::from_secs(1));
    let csv = phishing_lines(101).join("\n");
    for _ in 0..5 {
        assert_eq!(post(addr, "/predict/csv", &[], csv.as_bytes()).status, 200);
    }
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    // The writer waits for the server of a failed batch; meanwhile the queue fills up.
    let m = get(addr, "/metrics", &[]).text();
    assert!(dropped(&m, "queue_full") > full_before, "{m}");
    wait_for("a failed batch to be counted", || {
        dropped(&get(addr, "/metrics", &[]).text(), "write_failed") > 0.0
    });
    assert_eq!(written(), before);
    assert!(
        server.stderr().contains("prediction log writes failing"),
        "{}",
        server.stderr()
    );
}

#[test]
fn unreachable_prediction_log_with_credentials_serves_and_never_prints_them() {
    let (model_path, _) = &models().forest;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("mongodb://alice:pw-s3cret-xyz@127.0.0.1:{closed}/?authSource=admin");
    let mut server = Server::start_with_env(
        s(model_path),
        &["--prediction-log-queue", "4", "--prediction-log-batch", "2"],
        &[("NETSEC_PREDICTION_LOG", &uri)],
    );
    let addr = server.addr;
    hammer(addr, 200, Duration::from_secs(1));
    wait_for("the unreachable server to be reported", || {
        server.stderr().contains("unreachable")
    });
    let m = get(addr, "/metrics", &[]).text();
    assert!(
        metric(
            &m,
            r#"netsec_prediction_log_dropped_total{reason="queue_full"}"#
        )
        .unwrap()
            > 0.0,
        "{m}"
    );
    assert_eq!(metric(&m, "netsec_prediction_log_written_total"), Some(0.0));
    assert_eq!(terminate(&mut server), Some(0), "{}", server.stderr());
    let stderr = server.stderr();
    assert!(stderr.contains(&format!("127.0.0.1:{closed}")), "{stderr}");
    assert!(
        !stderr.contains("pw-s3cret-xyz") && !stderr.contains("alice"),
        "credentials in the log: {stderr}"
    );
    // Not in --help either (clap would show an env value otherwise).
    let help = netsec_command()
        .args(["serve", "--help"])
        .env("NETSEC_PREDICTION_LOG", &uri)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("s3cret"));

    // A URI that is not MongoDB's is bad input.
    let run = netsec(&[
        "serve",
        "--model",
        s(model_path),
        "--bind",
        "127.0.0.1:0",
        "--prediction-log",
        "http://user:pw-s3cret-xyz@example.com",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
}

/// A binary model file written by netsec at commit 01f8b8b (a decision tree of depth 3 on
/// phishing.csv), before models answered K classes: it must keep loading and answering.
fn old_binary_model() -> PathBuf {
    repo_file("tests/it/fixtures/phishing_tree_01f8b8b.json")
}

/// The answer columns for the 12-row sample (../shared/data/predict_sample_12rows.csv) from
/// [`old_binary_model`]. `predicted_label` and `attack_probability` are what `netsec
/// predict` at 01f8b8b wrote for these rows (then beside `predicted_class`), digit for digit.
const SAMPLE_ANSWERS: [&str; 12] = [
    "1,0.8377192982456141,0.16228070175438597,false,,0.8377192982456141,0.16228070175438597",
    "1,0.9645608628659477,0.03543913713405239,false,,0.9645608628659477,0.03543913713405239",
    "-1,1.0,1.0,true,phishing,0.0,1.0",
    "1,0.9645608628659477,0.03543913713405239,false,,0.9645608628659477,0.03543913713405239",
    "1,0.5022354694485842,0.4977645305514158,false,,0.5022354694485842,0.4977645305514158",
    "1,0.5022354694485842,0.4977645305514158,false,,0.5022354694485842,0.4977645305514158",
    "1,0.9645608628659477,0.03543913713405239,false,,0.9645608628659477,0.03543913713405239",
    "-1,1.0,1.0,true,phishing,0.0,1.0",
    "1,0.9645608628659477,0.03543913713405239,false,,0.9645608628659477,0.03543913713405239",
    "-1,1.0,1.0,true,phishing,0.0,1.0",
    "1,0.9645608628659477,0.03543913713405239,false,,0.9645608628659477,0.03543913713405239",
    "1,0.9645608628659477,0.03543913713405239,false,,0.9645608628659477,0.03543913713405239",
];

const ANSWER_HEADER: &str =
    "predicted_label,class_probability,attack_probability,is_attack,attack_class";

/// The expected CSV for the 12-row sample: the input as is, then the answer columns (and
/// the per-class probabilities when asked for).
fn sample_expected(sample: &str, probabilities: bool) -> String {
    let mut lines = sample.lines();
    let mut out = format!("{},{ANSWER_HEADER}", lines.next().unwrap());
    if probabilities {
        out.push_str(",p_legitimate,p_phishing");
    }
    out.push('\n');
    for (line, answer) in lines.zip(SAMPLE_ANSWERS) {
        let answer = if probabilities {
            answer
        } else {
            answer.rsplitn(3, ',').nth(2).unwrap()
        };
        out.push_str(&format!("{line},{answer}\n"));
    }
    out
}

#[test]
fn old_binary_model_answers_the_row_answer_in_predict_csv_and_json_alike() {
    let model = old_binary_model();
    let sample_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/predict_sample_12rows.csv");
    let sample = std::fs::read_to_string(&sample_path).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // `netsec predict`, with and without the per-class probabilities.
    for probabilities in [false, true] {
        let output = dir.path().join(format!("predicted-{probabilities}.csv"));
        let mut args = vec![
            "predict",
            "--model",
            s(&model),
            "--input",
            s(&sample_path),
            "--output",
            s(&output),
        ];
        if probabilities {
            args.push("--probabilities");
        }
        let run = netsec(&args).expect_code(0);
        assert!(
            run.stdout.contains(": 3 phishing, 9 legitimate ->"),
            "{}",
            run.stdout
        );
        let written = std::fs::read_to_string(&output).unwrap();
        assert_eq!(written, sample_expected(&sample, probabilities));
    }

    // `serve`: the same bytes from /predict/csv (fast path), the same values in JSON.
    let app = App::start(&model, ServeOptions::default());
    for (query, probabilities) in [
        ("", false),
        ("?probabilities=false", false),
        ("?probabilities=true", true),
        ("?probabilities", true),
    ] {
        let answer = app.post(
            &format!("/predict/csv{query}"),
            &[("Content-Type", "text/csv")],
            sample.as_bytes(),
        );
        assert_eq!(answer.status, 200, "{query}: {}", answer.text());
        assert_eq!(
            answer.text(),
            sample_expected(&sample, probabilities),
            "{query}"
        );
    }
    let header: Vec<&str> = sample.lines().next().unwrap().split(',').collect();
    let rows: Vec<Value> = sample
        .lines()
        .skip(1)
        .map(|line| {
            let record: Map<String, Value> = header
                .iter()
                .zip(line.split(','))
                .map(|(k, v)| ((*k).to_owned(), json!(v.parse::<i64>().unwrap())))
                .collect();
            Value::Object(record)
        })
        .collect();
    let expected: Vec<Value> = SAMPLE_ANSWERS
        .iter()
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let number = |i: usize| json!(cells[i].parse::<f64>().unwrap());
            json!({
                "predicted_label": cells[0].parse::<i64>().unwrap(),
                "class_probability": number(1),
                "attack_probability": number(2),
                "is_attack": cells[3] == "true",
                "attack_class": if cells[4].is_empty() { Value::Null } else { json!(cells[4]) },
                "p_legitimate": number(5),
                "p_phishing": number(6),
            })
        })
        .collect();
    let answer = app.post(
        "/predict?probabilities=true",
        &[JSON],
        Value::Array(rows.clone()).to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["predictions"], Value::Array(expected.clone()));
    // Without the option, the same fields less the probabilities, in the same order.
    let answer = app.post_json(&rows[0]);
    let text = answer.text();
    assert!(
        text.contains(r#""predictions":[{"predicted_label":1,"class_probability":0.8377192982456141,"attack_probability":0.16228070175438597,"is_attack":false,"attack_class":null}]"#),
        "{text}"
    );

    // A mistyped or unknown option is a JSON error, not a silent default.
    for query in ["?probabilities=maybe", "?probabilites=true"] {
        for route in ["/predict", "/predict/csv"] {
            let e = app.post(&format!("{route}{query}"), &[], sample.as_bytes());
            assert_eq!(e.status, 400, "{route}{query}");
            assert_eq!(e.json()["error"], "bad_query", "{route}{query}");
        }
    }

    // Predictions are counted per predicted class: 4 CSV bodies, 12 + 1 JSON records.
    let m = app.get("/metrics", &[]).text();
    assert_eq!(
        metric(&m, r#"netsec_predictions_total{class="phishing"}"#),
        Some(3.0 * 5.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"netsec_predictions_total{class="legitimate"}"#),
        Some(9.0 * 5.0 + 1.0),
        "{m}"
    );
    assert_eq!(
        app.get("/model", &[]).json()["classes"]["names"],
        json!(["legitimate", "phishing"])
    );
}

/// An input column named like an answer column is replaced in place, on both CSV paths
/// (the fast path steps aside for it), as `netsec predict` does.
#[test]
fn answer_columns_in_the_input_are_replaced_not_repeated() {
    let model = old_binary_model();
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/predict_sample_12rows.csv"),
    )
    .unwrap();
    let mut lines = sample.lines();
    let mut body = format!("is_attack,{}\n", lines.next().unwrap());
    for line in lines {
        body.push_str(&format!("maybe,{line}\n"));
    }
    let app = App::start(&model, ServeOptions::default());
    let answer = app.post("/predict/csv", &[], body.as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.text());
    let text = answer.text();
    let header = text.lines().next().unwrap();
    assert_eq!(header.matches("is_attack").count(), 1, "{header}");
    assert!(text.lines().nth(3).unwrap().starts_with("true,"), "{text}");
}

/// Three well separated classes, two of whose names need quoting in CSV: `x` picks the
/// class, `proto` is noise. Sorted by name, the classes are `dos, smurf` (0), `normal` (1)
/// and `port sweep` (2).
fn three_class_csv(rows: usize) -> String {
    let classes = ["dos, smurf", "normal", "port sweep"];
    let mut csv = String::from("x,proto,label\n");
    for i in 0..rows {
        let class = i % 3;
        let x = class as f64 * 10.0 + (i % 7) as f64 * 0.5;
        let proto = ["tcp", "udp"][i % 2];
        csv.push_str(&format!("{x},{proto},\"{}\"\n", classes[class]));
    }
    csv
}

/// The row answer of a multi-class model, end to end: a 3-class decision tree trained by
/// `experiment run`, then `predict --probabilities`, `/predict/csv?probabilities=true`
/// (fast and general path) and `/predict?probabilities=true` agree, and name the classes.
#[test]
fn multiclass_model_names_the_attack_in_predict_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("three.csv");
    std::fs::write(&data, three_class_csv(300)).unwrap();
    let schema = dir.path().join("three.yaml");
    std::fs::write(
        &schema,
        "name: three\nlabel:\n  column: label\n  type: string\n  task: multiclass\n  \
         values: [\"dos, smurf\", normal, \"port sweep\"]\n  negative: [normal]\n\
         columns:\n  - { name: x, type: float }\n  - { name: proto, type: categorical, values: [tcp, udp] }\n",
    )
    .unwrap();
    let grid = dir.path().join("three-grid.yaml");
    std::fs::write(
        &grid,
        format!(
            "name: three\ndata: {{ source: csv, path: {}, schema: {} }}\n\
             split: {{ test_fraction: 0.25, stratify: true, seed: 1 }}\ncv: {{ folds: 3 }}\n\
             select: {{ metric: macro_f1 }}\nmodels:\n  - algorithm: decision_tree\n    grid: {{ max_depth: [4] }}\n",
            s(&data),
            s(&schema)
        ),
    )
    .unwrap();
    let model = dir.path().join("three.json");
    netsec(&[
        "experiment",
        "run",
        s(&grid),
        "--state-dir",
        s(&dir.path().join("state")),
        "--model-out",
        s(&model),
    ])
    .expect_code(0);

    // Rows to predict: one per class, without the label.
    let input = dir.path().join("input.csv");
    std::fs::write(&input, "x,proto\n1.0,tcp\n11.0,udp\n21.0,tcp\n").unwrap();
    let output = dir.path().join("output.csv");
    netsec(&[
        "predict",
        "--model",
        s(&model),
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--probabilities",
    ])
    .expect_code(0);
    let predicted = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<&str> = predicted.lines().collect();
    assert_eq!(
        lines[0],
        "x,proto,predicted_label,class_probability,attack_probability,is_attack,attack_class,\
         \"p_dos, smurf\",p_normal,p_port sweep"
    );
    // A tree this deep separates the classes: each row is certain of its class.
    assert_eq!(
        lines[1],
        "1.0,tcp,\"dos, smurf\",1.0,1.0,true,\"dos, smurf\",1.0,0.0,0.0"
    );
    assert_eq!(lines[2], "11.0,udp,normal,1.0,0.0,false,,0.0,1.0,0.0");
    assert_eq!(
        lines[3],
        "21.0,tcp,port sweep,1.0,1.0,true,port sweep,0.0,0.0,1.0"
    );

    let app = App::start(&model, ServeOptions::default());
    let body = std::fs::read(&input).unwrap();
    let fast = app.post("/predict/csv?probabilities=true", &[], &body);
    assert_eq!(fast.text(), predicted, "fast path");
    // A byte-order mark sends the body through the general path; same answer.
    let mut bom = "\u{feff}".as_bytes().to_vec();
    bom.extend_from_slice(&body);
    let general = app.post("/predict/csv?probabilities=true", &[], &bom);
    assert_eq!(general.status, 200, "{}", general.text());
    assert_eq!(general.text(), predicted, "general path");
    let json = app
        .post(
            "/predict?probabilities=true",
            &[JSON],
            br#"[{"x": 1.0, "proto": "tcp"}, {"x": 11.0, "proto": "udp"}]"#,
        )
        .json();
    assert_eq!(
        json["predictions"],
        json!([
            {"predicted_label": "dos, smurf", "class_probability": 1.0, "attack_probability": 1.0,
             "is_attack": true, "attack_class": "dos, smurf",
             "p_dos, smurf": 1.0, "p_normal": 0.0, "p_port sweep": 0.0},
            {"predicted_label": "normal", "class_probability": 1.0, "attack_probability": 0.0,
             "is_attack": false, "attack_class": null,
             "p_dos, smurf": 0.0, "p_normal": 1.0, "p_port sweep": 0.0},
        ])
    );
    let m = app.get("/metrics", &[]).text();
    for (class, n) in [("dos, smurf", 3.0), ("normal", 3.0), ("port sweep", 2.0)] {
        let series = format!("netsec_predictions_total{{class=\"{class}\"}}");
        assert_eq!(metric(&m, &series), Some(n), "{m}");
    }
}

/// The serving page: `/`, `/page.js` and `/page.css` answer without a token under the
/// exact `default-src 'self'` policy, hold no inline script or style (the policy would block
/// them) and no URL of another origin; `/model` gives the card and the form what they show
/// (typical values from the training rows, or a schema guess for an old model file; the
/// cut; the label value of each class).
#[test]
fn the_page_runs_under_its_policy_and_model_answers_the_card_and_the_form() {
    let (model_path, _) = &models().forest;
    let token = "page-token";
    let app = App::start(
        model_path,
        ServeOptions {
            token: Some(token.into()),
            ..ServeOptions::default()
        },
    );
    let mut assets = String::new();
    for (path, content_type) in [
        ("/", "text/html"),
        ("/page.js", "text/javascript"),
        ("/page.css", "text/css"),
    ] {
        let answer = app.get(path, &[]);
        assert_eq!(answer.status, 200, "{path}");
        assert!(
            answer
                .header("content-type")
                .unwrap()
                .starts_with(content_type),
            "{path}: {:?}",
            answer.header("content-type")
        );
        assert_eq!(
            answer.header("content-security-policy"),
            Some("default-src 'self'"),
            "{path}"
        );
        assets.push_str(&answer.text());
    }
    let html = app.get("/", &[]).text();
    assert!(html.contains(r#"<script src="/page.js" defer></script>"#));
    assert!(html.contains(r#"<link rel="stylesheet" href="/page.css">"#));
    assert!(!html.contains("<style") && !html.contains(" style=") && !html.contains("<script>"));
    for scheme in ["http://", "https://", "//cdn", "@import"] {
        assert!(!assets.contains(scheme), "an asset names `{scheme}`");
    }
    for route in [
        "/predict",
        "/predict/csv",
        "/model",
        "sessionStorage",
        "Bearer ",
    ] {
        assert!(assets.contains(route), "the page never uses {route}");
    }

    let bearer = format!("Bearer {token}");
    let model = app.get("/model", &[("Authorization", &bearer)]).json();
    assert_eq!(model["threshold"], 0.5);
    assert_eq!(model["operating_point"], Value::Null);
    assert_eq!(model["classes"]["labels"], json!(["1", "-1"]));
    assert_eq!(model["classes"]["names"], json!(["legitimate", "phishing"]));
    assert!(model["loaded_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        model["metrics"]["test"]["classes"]["per_class"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let columns = model["schema"]["columns"].as_array().unwrap();
    for column in columns {
        let typical = &column["typical"];
        assert_eq!(typical["statistic"], "most_frequent", "{column}");
        assert!(
            column["values"]
                .as_array()
                .unwrap()
                .contains(&typical["value"]),
            "{column}"
        );
    }
    // The typical record is a valid request.
    let record: Map<String, Value> = columns
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["typical"]["value"].clone(),
            )
        })
        .collect();
    let answer = app.post(
        "/predict",
        &[JSON, ("Authorization", &bearer)],
        Value::Object(record).to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());

    // A model file from before typical values: the schema's first value, said so.
    let old = App::start(&old_binary_model(), ServeOptions::default())
        .get("/model", &[])
        .json();
    for column in old["schema"]["columns"].as_array().unwrap() {
        assert_eq!(
            column["typical"],
            json!({ "value": column["values"][0], "statistic": "first_value" }),
            "{column}"
        );
    }
}

/// A CSV body with problems lists each with its line (the file's, header = line 1), column
/// and description, as the page shows them.
#[test]
fn csv_errors_list_each_problem_with_its_line_and_column() {
    let (model_path, _) = &models().forest;
    let app = App::start(model_path, ServeOptions::default());
    let mut lines = phishing_lines(6);
    // The first cell (having_IP_Address) of data rows 2 and 4: lines 3 and 5.
    for i in [2, 4] {
        let rest = lines[i].split_once(',').unwrap().1.to_owned();
        lines[i] = format!("7,{rest}");
    }
    let answer = app.post("/predict/csv", &[], lines.join("\n").as_bytes());
    assert_eq!(answer.status, 422, "{}", answer.text());
    let error = answer.json();
    assert_eq!(
        (error["line"].as_u64(), error["problems"].as_u64()),
        (Some(3), Some(2))
    );
    let listed: Vec<(u64, &str, &str)> = error["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["line"].as_u64().unwrap(),
                i["column"].as_str().unwrap(),
                i["message"].as_str().unwrap(),
            )
        })
        .collect();
    let message = "column `having_IP_Address`: value `7` is not one of the schema's values [-1, 1]";
    assert_eq!(
        listed,
        [
            (3, "having_IP_Address", message),
            (5, "having_IP_Address", message)
        ],
        "{error}"
    );

    // A column problem is the header's, line 1.
    let renamed = phishing_lines(3)
        .join("\n")
        .replacen("URL_Length", "URL_Lenght", 1);
    let error = app.post("/predict/csv", &[], renamed.as_bytes()).json();
    assert_eq!(
        error["issues"][0],
        json!({
            "column": "URL_Length", "row": null, "problem": { "kind": "missing_column" },
            "line": 1, "message": "column `URL_Length` is missing",
        }),
        "{error}"
    );
}
