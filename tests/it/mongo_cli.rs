//! `netsec data push | pull` and grid files reading from MongoDB, against a real
//! wire-compatible server started on 127.0.0.1.

use std::time::{Duration, Instant};

use crate::common::mongo_server::MongoServer;
use crate::common::{netsec, phishing_csv, s};
use serde_json::Value;

const SCHEMA: &str = "data_schema/phishing.yaml";

fn fingerprint_of(path: &std::path::Path) -> Value {
    let run = netsec(&[
        "data",
        "validate",
        "-s",
        SCHEMA,
        s(path),
        "--format",
        "json",
    ])
    .expect_code(0);
    serde_json::from_str::<Value>(&run.stdout).unwrap()["fingerprint"].clone()
}

#[test]
fn push_is_idempotent_and_training_from_the_collection_sees_the_same_data() {
    let server = MongoServer::start();
    let data = phishing_csv();
    let push = |extra: &[&str]| {
        let mut args = vec![
            "data",
            "push",
            "-s",
            SCHEMA,
            s(&data),
            "--mongo-uri",
            &server.uri,
            "--db",
            "netsec",
            "--collection",
            "phishing",
        ];
        args.extend_from_slice(extra);
        netsec(&args).expect_code(0).stdout
    };
    let first = push(&["--batch-size", "2000"]);
    assert!(first.contains("11055 inserted, 0 already there"), "{first}");
    let again = push(&[]);
    assert!(again.contains("0 inserted, 11055 already there"), "{again}");

    // Pulled back, the rows fingerprint exactly like the file.
    let dir = tempfile::tempdir().unwrap();
    let pulled = dir.path().join("pulled.csv");
    netsec(&[
        "data",
        "pull",
        "-s",
        SCHEMA,
        "--mongo-uri",
        &server.uri,
        "--db",
        "netsec",
        "--collection",
        "phishing",
        "-o",
        s(&pulled),
    ])
    .expect_code(0);
    assert_eq!(fingerprint_of(&pulled), fingerprint_of(&data));

    // A filter reads a subset.
    let attacks = dir.path().join("attacks.parquet");
    let run = netsec(&[
        "data",
        "pull",
        "-s",
        SCHEMA,
        "--mongo-uri",
        &server.uri,
        "--db",
        "netsec",
        "--collection",
        "phishing",
        "--query",
        r#"{"Result": -1}"#,
        "-o",
        s(&attacks),
    ])
    .expect_code(0);
    assert!(run.stdout.contains("pulled 4898 rows"), "{}", run.stdout);

    // A grid file reading the collection trains on the same data fingerprint as the CSV.
    let grid = dir.path().join("mongo.yaml");
    std::fs::write(
        &grid,
        "name: from-mongo\ndata: { source: mongodb, uri: \"${NETSEC_TEST_MONGO}\", db: netsec, collection: phishing, schema: data_schema/phishing.yaml }\nmodels:\n  - algorithm: decision_tree\n    grid: { max_depth: [6] }\n",
    )
    .unwrap();
    let output = crate::common::netsec_command()
        .args([
            "experiment",
            "run",
            s(&grid),
            "--state-dir",
            s(&dir.path().join("st")),
            "--format",
            "json",
        ])
        .env("NETSEC_TEST_MONGO", &server.uri)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["data_fingerprint"], fingerprint_of(&data));
    // The model file records the URI as written: the variable, never its value.
    let model = std::fs::read(summary["best_model"]["path"].as_str().unwrap()).unwrap();
    let model: Value = serde_json::from_slice(&model).unwrap();
    assert_eq!(
        model["data_source"]["mongodb"]["uri"], "${NETSEC_TEST_MONGO}",
        "{}",
        model["data_source"]
    );
}

#[test]
fn invalid_data_is_not_pushed_and_mistyped_documents_are_named() {
    let server = MongoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = std::fs::read_to_string(phishing_csv())
        .unwrap()
        .lines()
        .take(50)
        .map(str::to_owned)
        .collect();
    lines[10] = lines[10].replacen("1,", "x,", 1);
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let args = [
        "--mongo-uri",
        server.uri.as_str(),
        "--db",
        "netsec",
        "--collection",
        "bad",
    ];
    let mut push = vec!["data", "push", "-s", SCHEMA, s(&bad)];
    push.extend_from_slice(&args);
    let run = netsec(&push).expect_code(2);
    assert!(
        run.stderr.contains("bad.csv:11") && run.stderr.contains("nothing was pushed"),
        "{}",
        run.stderr
    );
    let out = dir.path().join("out.csv");
    let mut pull = vec!["data", "pull", "-s", SCHEMA, "-o", s(&out)];
    pull.extend_from_slice(&args);
    let run = netsec(&pull).expect_code(0);
    assert!(run.stdout.contains("pulled 0 rows"), "{}", run.stdout);

    // Documents changed behind netsec's back: a word in a number field, a nested document.
    let good = dir.path().join("good.csv");
    std::fs::write(&good, lines[..10].join("\n") + "\n").unwrap();
    let mut push = vec!["data", "push", "-s", SCHEMA, s(&good)];
    push.extend_from_slice(&args);
    netsec(&push).expect_code(0);
    let python =
        std::path::Path::new(&std::env::var("NETSEC_MONGOD_BIN").expect("set by scripts/test"))
            .with_file_name("python");
    let script = format!(
        "import pymongo; c = pymongo.MongoClient('{}')['netsec']['bad']; \
         c.update_one({{'_row': 3}}, {{'$set': {{'URL_Length': 'long'}}}})",
        server.uri
    );
    assert!(
        std::process::Command::new(&python)
            .args(["-c", &script])
            .status()
            .unwrap()
            .success()
    );
    let grid = dir.path().join("bad.yaml");
    std::fs::write(
        &grid,
        format!("name: bad\ndata: {{ source: mongodb, uri: \"{}\", db: netsec, collection: bad, schema: {SCHEMA} }}\nmodels:\n  - algorithm: decision_tree\n", server.uri),
    )
    .unwrap();
    let run = netsec(&[
        "experiment",
        "run",
        s(&grid),
        "--state-dir",
        s(&dir.path().join("st")),
    ])
    .expect_code(2);
    assert!(
        run.stderr
            .contains("netsec.bad row 4: column `URL_Length`: `long` is not an integer"),
        "{}",
        run.stderr
    );

    let script = format!(
        "import pymongo; c = pymongo.MongoClient('{}')['netsec']['bad']; \
         c.update_one({{'_row': 5}}, {{'$set': {{'SFH': {{'nested': 1}}}}}})",
        server.uri
    );
    assert!(
        std::process::Command::new(&python)
            .args(["-c", &script])
            .status()
            .unwrap()
            .success()
    );
    let run = netsec(&pull).expect_code(2);
    assert!(run.stderr.contains("field `SFH` holds a"), "{}", run.stderr);
}

#[test]
fn unreachable_server_fails_fast_without_leaking_credentials() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("mongodb://netsec:hunter2@127.0.0.1:{port}/?authSource=admin");
    let data = phishing_csv();
    // What the push does besides connecting (start, read, validate), timed on the same
    // file now, so that the bound below holds on a loaded machine and still catches a wait
    // longer than the README's 5 s.
    let started = Instant::now();
    netsec(&["data", "validate", "-s", SCHEMA, s(&data)]).expect_code(0);
    let validate = started.elapsed();
    let started = Instant::now();
    let run = netsec(&[
        "data",
        "push",
        "-s",
        SCHEMA,
        s(&data),
        "--mongo-uri",
        &uri,
        "--db",
        "d",
        "--collection",
        "c",
    ])
    .expect_code(1);
    // The README's 5 s server selection, plus the validation measured above, plus 2 s.
    let bound = Duration::from_secs(5) + validate + Duration::from_secs(2);
    assert!(
        started.elapsed() < bound,
        "took {:?}, bound {bound:?}",
        started.elapsed()
    );
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{port}/d.c")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}

/// Runs `netsec ARGS` from the repository root with `NETSEC_TEST_MONGO` set to `uri` (or
/// unset).
fn netsec_mongo(args: &[&str], uri: Option<&str>) -> crate::common::Run {
    crate::common::Run::of(
        crate::common::netsec_command()
            .args(args)
            .envs(uri.map(|uri| ("NETSEC_TEST_MONGO", uri))),
    )
}

#[test]
fn a_model_trained_from_mongodb_is_promoted_and_its_file_holds_no_uri() {
    let server = MongoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("part.csv");
    std::fs::write(&csv, crate::common::phishing_lines(1201).join("\n") + "\n").unwrap();
    netsec(&[
        "data",
        "push",
        "-s",
        SCHEMA,
        s(&csv),
        "--mongo-uri",
        &server.uri,
        "--db",
        "netsec",
        "--collection",
        "part",
    ])
    .expect_code(0);
    // What the environment holds may carry secrets; the marker stands for them.
    let secret_uri = format!("{}/?appName=marker-0f7c", server.uri);
    let grid = dir.path().join("mongo.yaml");
    std::fs::write(
        &grid,
        "name: from-mongo\n\
         data: { source: mongodb, uri: \"${NETSEC_TEST_MONGO}\", db: netsec, collection: part, \
         query: { Result: { $in: [-1, 1] } }, schema: data_schema/phishing.yaml }\n\
         split: { test_fraction: 0.3, seed: 3 }\ncv: { folds: 2 }\n\
         models:\n  - algorithm: decision_tree\n    grid: { max_depth: [6] }\n",
    )
    .unwrap();
    let state = dir.path().join("st");
    let run = netsec_mongo(
        &[
            "experiment",
            "run",
            s(&grid),
            "--state-dir",
            s(&state),
            "--format",
            "json",
        ],
        Some(&secret_uri),
    )
    .expect_code(0);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let model_path = summary["best_model"]["path"].as_str().unwrap();
    let text = std::fs::read_to_string(model_path).unwrap();
    assert!(!text.contains("marker-0f7c") && !text.contains(&server.uri));
    let model: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        model["data_source"],
        serde_json::json!({ "mongodb": {
            "uri": "${NETSEC_TEST_MONGO}", "db": "netsec", "collection": "part",
            "query": { "Result": { "$in": [-1, 1] } }
        }})
    );

    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "model: mongo-phish\nalias: champion\nfloors: { f1: 0.5 }\n",
    )
    .unwrap();
    let promote = |uri: Option<&str>| {
        netsec_mongo(
            &["promote", "--policy", s(&policy), "--state-dir", s(&state)],
            uri,
        )
    };
    // Without the variable the holdout cannot be reloaded: bad input naming it.
    let missing = promote(None).expect_code(2);
    assert!(
        missing.stderr.contains("${NETSEC_TEST_MONGO}"),
        "{}",
        missing.stderr
    );
    // With it, the holdout is pulled again and checked like a file's.
    let promoted = promote(Some(&secret_uri)).expect_code(0);
    assert!(promoted.stdout.contains("PROMOTED"), "{}", promoted.stdout);
    assert!(
        promoted.stdout.contains("holdout: 360 rows"),
        "{}",
        promoted.stdout
    );
    for output in [&promoted.stdout, &promoted.stderr] {
        assert!(!output.contains("marker-0f7c"), "{output}");
    }
}
