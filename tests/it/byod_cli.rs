//! Bring your own data, end to end through the real binary: `data schema infer` on the real
//! phishing set and on generated intrusion records, then validate, drift, split, sweep and
//! predict on string categoricals and a multi-valued string label; and the bad inputs.

use std::path::{Path, PathBuf};

use crate::common::{netsec, phishing_csv, repo_file, s};
use netsec::data::Schema;
use netsec::data::schema::AttackRule;
use serde_json::Value;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn synth_intrusion(dir: &Path, name: &str, rows: usize, seed: u64) -> PathBuf {
    let path = dir.join(name);
    netsec(&[
        "data",
        "synth",
        "--profile",
        "intrusion",
        "--rows",
        &rows.to_string(),
        "--seed",
        &seed.to_string(),
        "-o",
        s(&path),
    ])
    .expect_code(0);
    path
}

#[test]
fn inferred_phishing_schema_matches_the_shipped_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("phishing.yaml");
    let data = phishing_csv();
    netsec(&[
        "data",
        "schema",
        "infer",
        s(&data),
        "--positive",
        "-1",
        "-o",
        s(&out),
    ])
    .expect_code(0);
    let inferred = Schema::from_file(&out).unwrap();
    let shipped = Schema::from_file(&repo_file("data_schema/phishing.yaml")).unwrap();
    assert_eq!(inferred.name, "phishing");
    assert_eq!(inferred.columns, shipped.columns);
    assert_eq!(inferred.label.column, shipped.label.column);
    assert_eq!(inferred.label.label_type, shipped.label.label_type);
    assert_eq!(inferred.label.values, shipped.label.values);
    assert_eq!(inferred.label.attack, shipped.label.attack);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("common name for a label column"), "{text}");
    assert!(text.contains("values (rows): 1 6157, -1 4898"), "{text}");

    // validate accepts it unchanged.
    netsec(&["data", "validate", "--schema", s(&out), s(&data)]).expect_code(0);

    // Without --positive the class is a guess (the same one), flagged for review; stdout.
    let guessed = netsec(&["data", "schema", "infer", s(&data)]).expect_code(0);
    assert!(guessed.stdout.contains("GUESS"), "{}", guessed.stdout);
    assert!(
        guessed.stdout.contains("positive: [-1]"),
        "{}",
        guessed.stdout
    );
    assert!(guessed.stderr.contains("guess"), "{}", guessed.stderr);
}

#[test]
fn shipped_intrusion_schema_is_what_infer_writes_and_validates_other_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth_intrusion(dir.path(), "intrusion.csv", 10_000, 42);
    let shipped = repo_file("data_schema/intrusion.yaml");
    let inferred =
        netsec(&["data", "schema", "infer", s(&data), "--negative", "normal"]).expect_code(0);
    let path = write(dir.path(), "inferred.yaml", &inferred.stdout);
    let a = Schema::from_file(&path).unwrap();
    let b = Schema::from_file(&shipped).unwrap();
    assert_eq!(a.columns, b.columns);
    // Infer proposes a multi-class label for a string label of many values; the shipped
    // schema keeps the intrusion benchmarks binary. Otherwise they are the same label.
    assert_eq!(a.label.task, netsec::data::schema::Task::Multiclass);
    let mut binary = a.label.clone();
    binary.task = netsec::data::schema::Task::Binary;
    assert_eq!(binary, b.label);
    netsec(&["data", "validate", "-s", s(&shipped), s(&data)]).expect_code(0);
    let other = synth_intrusion(dir.path(), "other.csv", 3000, 7);
    netsec(&["data", "validate", "-s", s(&shipped), s(&other)]).expect_code(0);
}

#[test]
fn intrusion_round_trip_infer_validate_drift_split_sweep_predict_serve() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = synth_intrusion(d, "train.csv", 3000, 11);
    let schema_path = d.join("schema.yaml");
    let infer =
        netsec(&["data", "schema", "infer", s(&data), "-o", s(&schema_path)]).expect_code(0);
    assert!(infer.stdout.contains("label `label`"), "{}", infer.stdout);
    let text = std::fs::read_to_string(&schema_path).unwrap();
    // The guess: `normal` is the normal class, every attack name is an attack.
    assert!(text.contains("negative: [normal]"), "{text}");
    assert!(text.contains("GUESS"), "{text}");
    assert!(
        text.contains("exclude: \"constant: every row is `0`\""),
        "{text}"
    );
    let schema = Schema::from_file(&schema_path).unwrap();
    assert_eq!(
        schema.label.attack,
        AttackRule::Negative(["normal".to_owned()].into())
    );
    let service = schema.column("service").unwrap();
    assert_eq!(
        service.column_type,
        netsec::data::schema::ColumnType::Categorical
    );

    // validate: valid, several attack names all counted as attacks.
    let validate = netsec(&[
        "data",
        "validate",
        "-s",
        s(&schema_path),
        s(&data),
        "--format",
        "json",
    ])
    .expect_code(0);
    let report: Value = serde_json::from_str(&validate.stdout).unwrap();
    let classes = report["classes"].as_array().unwrap();
    assert!(classes.len() >= 8, "{classes:?}");
    for class in classes {
        assert_eq!(class["attack"], class["value"] != "normal", "{class}");
    }

    // drift: categorical columns get a chi-square p-value and PSI; an unseen category in the
    // current data is drift, not an error.
    let mut current = std::fs::read_to_string(synth_intrusion(d, "cur.csv", 1000, 12)).unwrap();
    current = current.replace(",http,", ",gopher,");
    let current = write(d, "cur_gopher.csv", &current);
    let drift = netsec(&[
        "data",
        "drift",
        "-s",
        s(&schema_path),
        s(&data),
        s(&current),
        "--format",
        "json",
    ])
    .expect_code(0);
    let report: Value = serde_json::from_str(&drift.stdout).unwrap();
    let service = &report["columns"]["service"];
    assert!(
        service["chi2_statistic"].as_f64().unwrap() > 100.0,
        "{service}"
    );
    assert!(service["p_value"].as_f64().unwrap() < 1e-6, "{service}");
    assert_eq!(service["drift_status"], true);
    assert!(report["columns"]["protocol_type"]["p_value"].is_number());
    assert!(report["columns"]["label"]["p_value"].is_number());

    // split works on the string label.
    let split = netsec(&[
        "data",
        "split",
        "-s",
        s(&schema_path),
        s(&data),
        "--out",
        s(&d.join("split")),
    ])
    .expect_code(0);
    assert!(d.join("split/test.csv").exists(), "{}", split.stdout);

    // sweep.
    let grid = write(
        d,
        "grid.yaml",
        &format!(
            "name: byod\ndata: {{ source: csv, path: {}, schema: {} }}\n\
             split: {{ test_fraction: 0.25, seed: 1 }}\ncv: {{ folds: 3 }}\nselect: {{ metric: f1 }}\n\
             models:\n  - algorithm: decision_tree\n    grid: {{ max_depth: [8] }}\n  \
             - algorithm: random_forest\n    grid: {{ n_estimators: [16] }}\n",
            s(&data),
            s(&schema_path)
        ),
    );
    let model = d.join("model.json");
    let run = netsec(&[
        "experiment",
        "run",
        s(&grid),
        "--state-dir",
        s(&d.join("state")),
        "--format",
        "json",
        "--model-out",
        s(&model),
    ])
    .expect_code(0);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let test = &summary["leaderboard"][0]["test"];
    assert!(test["f1"].as_f64().unwrap() > 0.8, "{test}");
    assert!(test["accuracy"].as_f64().unwrap() > 0.9, "{test}");

    // The model file records the label mapping and the one-hot encoding.
    let file: Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(
        file["schema"]["label"]["attack"]["negative"],
        serde_json::json!(["normal"])
    );
    let encoded = file["encoding"]["columns"].as_array().unwrap();
    assert!(
        encoded
            .iter()
            .any(|c| c["name"] == "service" && c["kind"] == "one_hot"),
        "{encoded:?}"
    );

    // predict: rows without the label, one with a service never seen in training.
    let mut lines: Vec<String> = std::fs::read_to_string(d.join("split/test.csv"))
        .unwrap()
        .lines()
        .take(21)
        .map(|l| l.rsplit_once(',').unwrap().0.to_owned())
        .collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let service_at = header.iter().position(|h| *h == "service").unwrap();
    let mut fields: Vec<String> = lines[1].split(',').map(str::to_owned).collect();
    fields[service_at] = "gopher".into();
    lines[1] = fields.join(",");
    let input = write(d, "input.csv", &(lines.join("\n") + "\n"));
    let output = d.join("predicted.csv");
    let predict = netsec(&[
        "predict",
        "-m",
        s(&model),
        "-i",
        s(&input),
        "-o",
        s(&output),
    ])
    .expect_code(0);
    assert!(
        predict.stdout.contains("20 rows predicted"),
        "{}",
        predict.stdout
    );
    assert!(
        predict
            .stderr
            .contains("column `service`: 1 rows have categories not seen")
            && predict.stderr.contains("gopher"),
        "{}",
        predict.stderr
    );
    let predicted = std::fs::read_to_string(&output).unwrap();
    let rows: Vec<&str> = predicted.lines().collect();
    assert_eq!(rows.len(), 21);
    assert!(
        rows[0].ends_with(
            "predicted_label,class_probability,attack_probability,is_attack,attack_class"
        )
    );
    assert!(rows[1].contains("gopher"));
    // The inferred label is multi-class: a row names its class; an attack row also names
    // the most probable attack, a normal one leaves it empty.
    for row in &rows[1..] {
        let mut tail = row.rsplitn(3, ',');
        let (attack_class, is_attack) = (tail.next().unwrap(), tail.next().unwrap());
        match is_attack {
            "false" => assert_eq!(attack_class, "", "{row}"),
            "true" => assert!(
                !attack_class.is_empty() && attack_class != "normal",
                "{row}"
            ),
            other => panic!("is_attack {other}: {row}"),
        }
    }

    // The same model served over HTTP encodes the same rows, unseen category included, and
    // answers what `predict` wrote.
    let mut server = crate::common::netsec_command()
        .args(["serve", "--model", s(&model), "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr =
        crate::common::http::serve_address(&mut server).expect("netsec serve prints its address");
    let body = std::fs::read(&input).unwrap();
    let answer = crate::common::http::request(
        addr,
        "POST",
        "/predict/csv",
        &[("Content-Type", "text/csv")],
        &body,
    );
    // One JSON record with the unseen service answers too.
    let names: Vec<&str> = lines[0].split(',').collect();
    let record: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(lines[1].split(','))
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.to_owned())))
        .collect();
    let single = crate::common::http::request(
        addr,
        "POST",
        "/predict",
        &[("Content-Type", "application/json")],
        serde_json::Value::Object(record).to_string().as_bytes(),
    );
    let _ = server.kill();
    let _ = server.wait();
    let single = single.unwrap();
    assert_eq!(single.status, 200, "{}", single.text());
    let answer = answer.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let served = answer.text();
    let served_rows: Vec<&str> = served.lines().collect();
    assert_eq!(served_rows.len(), 21);
    let class = |row: &str| row.rsplit(',').nth(1).unwrap().to_owned();
    for (a, b) in rows[1..].iter().zip(&served_rows[1..]) {
        assert_eq!(class(a), class(b), "predict and serve disagree:\n{a}\n{b}");
    }
    // Byte for byte: serve's fast CSV path writes what predict's table path writes.
    assert_eq!(served, predicted);
}

#[test]
fn mixed_type_column_is_named_with_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("bytes,proto,label\n");
    for i in 0..30 {
        let bytes = match i {
            4 => "n/a".to_owned(),
            9 => "lots".to_owned(),
            _ => (i * 10).to_string(),
        };
        text.push_str(&format!("{bytes},tcp{},{}\n", i % 2, i % 3 == 0));
    }
    let path = write(dir.path(), "mixed.csv", &text);
    let run = netsec(&["data", "schema", "infer", s(&path)]).expect_code(2);
    assert!(
        run.stderr
            .contains("column `bytes` mixes numbers and words"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("mixed.csv:6 `n/a`") && run.stderr.contains("mixed.csv:11 `lots`"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn label_problems_exit_2_and_name_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut single = String::from("a,b,label\n");
    let mut two = String::from("a,b,label\n");
    for i in 0..10 {
        single.push_str(&format!("{i},{},normal\n", i * 2));
        two.push_str(&format!(
            "{i},{},{}\n",
            i * 2,
            if i % 2 == 0 { "normal" } else { "smurf" }
        ));
    }
    let single = write(dir.path(), "single.csv", &single);
    let run = netsec(&["data", "schema", "infer", s(&single)]).expect_code(2);
    assert!(
        run.stderr
            .contains("label column `label` has the single value `normal`"),
        "{}",
        run.stderr
    );

    let two = write(dir.path(), "two.csv", &two);
    let run = netsec(&["data", "schema", "infer", s(&two), "--positive", "neptune"]).expect_code(2);
    assert!(
        run.stderr.contains(
            "class value `neptune` does not occur in label column `label` (values: normal, smurf)"
        ),
        "{}",
        run.stderr
    );
    let run = netsec(&["data", "schema", "infer", s(&two), "--label", "lable"]).expect_code(2);
    assert!(run.stderr.contains("no column `lable`"), "{}", run.stderr);
}

#[test]
fn empty_column_is_excluded_with_a_warning_and_empty_label_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("a,notes,label\n");
    for i in 0..10 {
        text.push_str(&format!("{},,{}\n", i * 3 % 7, i % 2));
    }
    let path = write(dir.path(), "empty.csv", &text);
    let out = dir.path().join("empty.yaml");
    let run = netsec(&["data", "schema", "infer", s(&path), "-o", s(&out)]).expect_code(0);
    assert!(
        run.stderr
            .contains("column `notes` is empty in every row; it is excluded"),
        "{}",
        run.stderr
    );
    let schema = Schema::from_file(&out).unwrap();
    assert_eq!(
        schema.column("notes").unwrap().exclude.as_deref(),
        Some("every cell is empty")
    );
    netsec(&["data", "validate", "-s", s(&out), s(&path)]).expect_code(0);

    let no_label = write(dir.path(), "nolabel.csv", "a,label\n1,\n2,\n");
    let run = netsec(&["data", "schema", "infer", s(&no_label)]).expect_code(2);
    assert!(
        run.stderr
            .contains("label column `label` is empty in every row"),
        "{}",
        run.stderr
    );
}

#[test]
fn repeated_header_name_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "dup.csv", "a,b,a,label\n1,2,3,0\n4,5,6,1\n");
    let run = netsec(&["data", "schema", "infer", s(&path)]).expect_code(2);
    assert!(
        run.stderr.contains("dup.csv:1: column `a` appears twice"),
        "{}",
        run.stderr
    );
}
