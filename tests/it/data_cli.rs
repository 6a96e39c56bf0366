//! `netsec data ...` end to end through the real binary, on the real phishing data set and
//! on generated data.

use crate::common::{netsec, phishing_csv, phishing_lines, s};

const SCHEMA: &str = "data_schema/phishing.yaml";

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn validate_reports_duplicates_and_conflicts_of_the_real_data() {
    let data = phishing_csv();
    let run = netsec(&["data", "validate", "--schema", SCHEMA, s(&data)]).expect_code(0);
    assert!(
        run.stdout.contains("11055 rows, 31 columns"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("exact duplicate rows: 5206"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("label conflicts: 64"), "{}", run.stdout);

    let json = netsec(&[
        "data",
        "validate",
        "-s",
        SCHEMA,
        s(&data),
        "--format",
        "json",
    ])
    .expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["duplicates"]["duplicate_rows"], 5206);
    assert_eq!(report["duplicates"]["unique_feature_vectors"], 5785);
    assert_eq!(report["duplicates"]["conflicting_vectors"], 64);
    let classes = report["classes"].as_array().unwrap();
    assert_eq!(classes[0]["value"], "-1");
    assert_eq!(classes[0]["attack"], true);
    assert_eq!(classes[0]["rows"], 4898);
}

#[test]
fn validate_names_column_and_line_of_each_bad_cell() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = phishing_lines(8);
    let mut edit = |line: usize, field: usize, value: &str| {
        let mut fields: Vec<String> = lines[line].split(',').map(str::to_owned).collect();
        fields[field] = value.to_owned();
        lines[line] = fields.join(",");
    };
    edit(2, 0, "abc"); // line 3: non-numeric cell
    edit(3, 1, "7"); // line 4: value outside the schema
    edit(4, 2, ""); // line 5: missing value
    edit(5, 30, "0"); // line 6: label outside the schema
    let path = write(&dir, "bad.csv", &(lines.join("\n") + "\n"));
    let run = netsec(&[
        "data",
        "validate",
        "-s",
        SCHEMA,
        s(&path),
        "--format",
        "json",
    ])
    .expect_code(2);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    let found: Vec<(String, String, u64)> = problems
        .iter()
        .map(|p| {
            (
                p["column"].as_str().unwrap().to_owned(),
                p["kind"].as_str().unwrap().to_owned(),
                p["lines"][0].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("having_IP_Address".into(), "wrong type".into(), 3),
            ("URL_Length".into(), "value not in schema".into(), 4),
            ("Shortining_Service".into(), "missing value".into(), 5),
            ("Result".into(), "value not in schema".into(), 6),
        ]
    );
    // Commands that need clean data stop at the first problem with file:line.
    let split = netsec(&["data", "split", "-s", SCHEMA, s(&path)]).expect_code(2);
    assert!(
        split
            .stderr
            .contains("bad.csv:3: column `having_IP_Address`: `abc` is not an integer"),
        "{}",
        split.stderr
    );
}

#[test]
fn bad_files_get_one_line_errors_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let header = phishing_lines(1).remove(0);
    let row = phishing_lines(2).remove(1);
    let cases = [
        ("empty.csv", String::new(), "the file is empty"),
        (
            "header.csv",
            format!("{header}\n"),
            "header but no data rows",
        ),
        (
            "ragged.csv",
            format!("{header}\n{row}\n1,1,1\n"),
            "ragged.csv:3: expected 31 fields as in the header, found 3",
        ),
        (
            "extra.csv",
            format!("{header},\"bonus\"\n{row},5\n"),
            "column `bonus` is not in the schema",
        ),
        (
            "dup.csv",
            "a,b,a\n1,2,3\n".to_owned(),
            "column `a` appears twice",
        ),
        ("notes.txt.gz", "x".to_owned(), "unknown file type"),
    ];
    for (name, text, expected) in cases {
        let path = write(&dir, name, &text);
        let run = netsec(&["data", "split", "-s", SCHEMA, s(&path)]).expect_code(2);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        assert_eq!(
            run.stderr.trim().lines().count(),
            1,
            "{name}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    let missing = dir.path().join("nope.csv");
    let run = netsec(&["data", "validate", "-s", SCHEMA, s(&missing)]).expect_code(2);
    assert!(run.stderr.contains("cannot read") && run.stderr.contains("nope.csv"));
}

#[test]
fn schema_typo_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let schema = write(
        &dir,
        "s.yaml",
        "name: x\nlabel: { column: Result, type: integer, positive: [-1] }\ncolumns:\n  - { name: URL_Length, tpye: integer }\n",
    );
    let data = phishing_csv();
    let run = netsec(&["data", "validate", "-s", s(&schema), s(&data)]).expect_code(2);
    assert!(run.stderr.contains("s.yaml:4:"), "{}", run.stderr);
    assert!(run.stderr.contains("tpye"), "{}", run.stderr);
}

#[test]
fn drift_against_itself_is_clean_and_a_shift_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let data = phishing_csv();
    let report = dir.path().join("drift.yaml");
    let run = netsec(&[
        "data",
        "drift",
        "-s",
        SCHEMA,
        s(&data),
        s(&data),
        "--report",
        s(&report),
    ])
    .expect_code(0);
    assert!(run.stdout.contains("no drift"), "{}", run.stdout);
    // The file keeps the old pipeline's per-column {p_value, drift_status} entries.
    let yaml = std::fs::read_to_string(&report).unwrap();
    assert!(
        yaml.contains("Abnormal_URL:\n    p_value: 1.0\n    drift_status: false"),
        "{yaml}"
    );

    // Every site gets a valid certificate: SSLfinal_State drifts, and only it.
    let mut lines = phishing_lines(usize::MAX);
    let ssl = lines[0]
        .split(',')
        .position(|c| c.contains("SSLfinal_State"))
        .unwrap();
    for line in lines.iter_mut().skip(1) {
        let mut fields: Vec<&str> = line.split(',').collect();
        fields[ssl] = "1";
        *line = fields.join(",");
    }
    let shifted = write(&dir, "shifted.csv", &(lines.join("\n") + "\n"));
    let run = netsec(&[
        "data",
        "drift",
        "-s",
        SCHEMA,
        s(&data),
        s(&shifted),
        "--format",
        "json",
        "--fail-on-drift",
    ])
    .expect_code(2);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["drift_detected"], true);
    assert_eq!(
        report["drifted_columns"],
        serde_json::json!(["SSLfinal_State"])
    );
    assert!(report["columns"]["SSLfinal_State"]["psi"].as_f64().unwrap() > 0.2);
    assert!(
        report["columns"]["SSLfinal_State"]["p_value"]
            .as_f64()
            .unwrap()
            < 1e-6
    );
}

#[test]
fn split_is_deterministic_and_dedup_removes_leakage() {
    let dir = tempfile::tempdir().unwrap();
    let data = phishing_csv();
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let out = dir.path().join("a");
    let run = netsec(&[
        "data",
        "split",
        "-s",
        SCHEMA,
        s(&data),
        "--folds",
        "3",
        "--out",
        s(&out),
        "--format",
        "json",
    ])
    .expect_code(0);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["train_rows"], 8844);
    assert_eq!(summary["test_rows"], 2211);
    assert_eq!(summary["test_attacks"], 980);
    assert!(summary["leaked_test_rows"].as_u64().unwrap() > 1000);
    assert_eq!(summary["fold_sizes"], serde_json::json!([2948, 2948, 2948]));
    let first = read("a/split.json");
    let test_csv = std::fs::read_to_string(out.join("test.csv")).unwrap();
    assert_eq!(test_csv.lines().count(), 2212);

    netsec(&[
        "data",
        "split",
        "-s",
        SCHEMA,
        s(&data),
        "--folds",
        "3",
        "--out",
        s(&out),
    ])
    .expect_code(0);
    assert_eq!(first, read("a/split.json"), "same seed, same split");
    let other = dir.path().join("b");
    netsec(&[
        "data",
        "split",
        "-s",
        SCHEMA,
        s(&data),
        "--seed",
        "7",
        "--out",
        s(&other),
    ])
    .expect_code(0);
    assert_ne!(first, read("b/split.json"));

    let run = netsec(&[
        "data",
        "split",
        "-s",
        SCHEMA,
        s(&data),
        "--dedup",
        "--format",
        "json",
    ])
    .expect_code(0);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["leaked_test_rows"], 0);
    assert_eq!(
        summary["train_rows"].as_u64().unwrap() + summary["test_rows"].as_u64().unwrap(),
        11055
    );
}

#[test]
fn synthetic_data_is_deterministic_valid_and_works_as_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    let b = dir.path().join("b.csv");
    netsec(&[
        "data",
        "synth",
        "--rows",
        "2000",
        "--seed",
        "3",
        "-o",
        s(&a),
    ])
    .expect_code(0);
    netsec(&[
        "data",
        "synth",
        "--rows",
        "2000",
        "--seed",
        "3",
        "-o",
        s(&b),
    ])
    .expect_code(0);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let run = netsec(&["data", "validate", "-s", SCHEMA, s(&a), "--format", "json"]).expect_code(0);
    let csv_report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();

    let pq = dir.path().join("a.parquet");
    netsec(&[
        "data",
        "synth",
        "--rows",
        "2000",
        "--seed",
        "3",
        "-o",
        s(&pq),
    ])
    .expect_code(0);
    let run =
        netsec(&["data", "validate", "-s", SCHEMA, s(&pq), "--format", "json"]).expect_code(0);
    let pq_report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(csv_report["fingerprint"], pq_report["fingerprint"]);
    // Generated like the real data: no drift against it beyond the PSI threshold.
    let run = netsec(&[
        "data",
        "drift",
        "-s",
        SCHEMA,
        s(&phishing_csv()),
        s(&pq),
        "--format",
        "json",
    ])
    .expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    for (name, column) in report["columns"].as_object().unwrap() {
        assert!(column["psi"].as_f64().unwrap() < 0.05, "{name}: {column}");
    }
}

#[test]
fn quoted_and_unquoted_headers_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let lines = phishing_lines(200);
    let unquoted = lines[0].replace('"', "");
    let quoted_path = write(&dir, "q.csv", &(lines.join("\n") + "\n"));
    let mut plain = lines.clone();
    plain[0] = unquoted;
    let plain_path = write(&dir, "p.csv", &(plain.join("\n") + "\n"));
    let fp = |path: &std::path::Path| {
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
        serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap()["fingerprint"].clone()
    };
    assert_eq!(fp(&quoted_path), fp(&plain_path));
}
