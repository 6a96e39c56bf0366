//! Defects of issue 16 that only a run of the binary (or of the scripts) can show.

mod common;

use std::path::Path;

use common::{netsec, s};

/// A CSV of `rows` phishing-like rows with empty cells in the numeric column `rate`.
fn write_data(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let schema = dir.join("schema.yaml");
    std::fs::write(
        &schema,
        "name: gaps\nlabel: { column: y, type: integer, positive: [1] }\ncolumns:\n  - { name: a, type: integer }\n  - { name: rate, type: float, nullable: true }\n",
    )
    .unwrap();
    let mut csv = String::from("a,rate,y\n");
    for row in 0..60 {
        let rate = if row % 20 == 3 {
            String::new()
        } else {
            format!("0.{row}")
        };
        csv.push_str(&format!("{row},{rate},{}\n", row % 2));
    }
    let data = dir.join("gaps.csv");
    std::fs::write(&data, csv).unwrap();
    (schema, data)
}

#[test]
fn nullable_numeric_column_is_refused_before_any_trial_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (schema, data) = write_data(dir.path());
    let grid = dir.path().join("grid.yaml");
    std::fs::write(
        &grid,
        format!(
            "name: gaps\ndata: {{ source: csv, path: {}, schema: {} }}\nsplit: {{ test_fraction: 0.25, stratify: true, seed: 1 }}\ncv: {{ folds: 2 }}\nselect: {{ metric: f1 }}\nmodels:\n  - algorithm: decision_tree\n    grid: {{ max_depth: [2] }}\n",
            s(&data),
            s(&schema)
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let run = netsec(&["experiment", "run", s(&grid), "--state-dir", s(&state)]).expect_code(2);
    assert!(run.stderr.contains("`rate`"), "{}", run.stderr);
    assert!(run.stderr.contains("3 empty cells"), "{}", run.stderr);
    assert!(
        run.stderr.contains("fill") && run.stderr.contains("categorical"),
        "says what to do: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("not a finite number"),
        "{}",
        run.stderr
    );
    let written: Vec<_> = std::fs::read_dir(&state)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(
        written.is_empty(),
        "nothing in the state directory: {written:?}"
    );
}
