//! Missing values against LightGBM on the same rows: 20,000 generated intrusion records
//! (`data synth --profile intrusion --seed 7`) with 10 % of the `src_bytes` cells emptied
//! (the rows whose index hashes to 0 mod 10, see [`blanked`]), the schema declaring the
//! column `nullable`. netsec's split (seed 42) is written to
//! `$CARGO_TARGET_TMPDIR/missing_parity/`; LightGBM's figure below comes from
//!
//! ```sh
//! python benches/scale_peers.py lightgbm $CARGO_TARGET_TMPDIR/missing_parity/{train,test}.csv label normal
//! ```
//!
//! (100 rounds, lr 0.1, depth 3, 8 leaves, 255 bins; LightGBM learns a side for NaN per
//! split, as netsec's missing bin does). The stored figure carries the data fingerprint, so a
//! changed generator fails the test instead of comparing with a stale figure. netsec's
//! gradient boosting (same rounds, rate, depth) and random forest are held within 1 point of
//! its test accuracy, and the model predicts a file with empty cells.

use std::path::Path;

use serde_json::Value;

use crate::common::{netsec, repo_file, s};

/// LightGBM 4.7.0 on the rows below (test accuracy, 4,000 test rows).
const LIGHTGBM_ACCURACY: f64 = 0.96575;
/// `split.json`'s fingerprint of those rows.
const FINGERPRINT: &str = "7523de352c0c7eab8d7685c28815d731014b97defc89ffa50e8bf66010b4e34e";
/// The done-when tolerance: 1 point of accuracy.
const TOLERANCE: f64 = 0.01;

/// Whether data row `index` (0-based, header excluded) has its `src_bytes` emptied: a
/// multiplicative hash, so the emptied rows are spread over every class.
fn blanked(index: u64) -> bool {
    (index.wrapping_mul(2_654_435_761) % (1 << 32)).is_multiple_of(10)
}

#[test]
fn ten_percent_missing_matches_lightgbm_accuracy() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("missing_parity");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let full = dir.join("full.csv");
    netsec(&[
        "data",
        "synth",
        "--profile",
        "intrusion",
        "--rows",
        "20000",
        "--seed",
        "7",
        "-o",
        s(&full),
    ])
    .expect_code(0);

    let text = std::fs::read_to_string(&full).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let column = header.split(',').position(|c| c == "src_bytes").unwrap();
    let mut out = format!("{header}\n");
    let mut emptied = 0;
    for (index, line) in lines.enumerate() {
        let mut cells: Vec<&str> = line.split(',').collect();
        if blanked(index as u64) {
            cells[column] = "";
            emptied += 1;
        }
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    assert_eq!(emptied, 1999, "10 % of the cells emptied");
    let data = dir.join("missing10.csv");
    std::fs::write(&data, out).unwrap();

    let schema_text = std::fs::read_to_string(repo_file("data_schema/intrusion.yaml")).unwrap();
    let declared = schema_text.replace(
        "{ name: src_bytes, type: float, min: 0 }",
        "{ name: src_bytes, type: float, min: 0, nullable: true }",
    );
    assert_ne!(declared, schema_text, "the schema's src_bytes line");
    let schema = dir.join("schema.yaml");
    std::fs::write(&schema, declared).unwrap();

    netsec(&[
        "data",
        "split",
        "-s",
        s(&schema),
        s(&data),
        "--seed",
        "42",
        "--out",
        s(&dir),
    ])
    .expect_code(0);
    let split: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("split.json")).unwrap()).unwrap();
    assert_eq!(
        split["fingerprint"], FINGERPRINT,
        "the rows changed: re-measure LIGHTGBM_ACCURACY (see the module doc)"
    );

    let grid = dir.join("grid.yaml");
    std::fs::write(
        &grid,
        format!(
            "name: missing-parity\n\
             data: {{ source: csv, path: {}, schema: {} }}\n\
             split: {{ test_fraction: 0.2, stratify: true, seed: 42 }}\n\
             cv: {{ folds: 2 }}\n\
             select: {{ metric: f1 }}\n\
             models:\n\
             \x20 - algorithm: gradient_boosting\n\
             \x20   grid: {{ n_estimators: [100], learning_rate: [0.1], max_depth: [3] }}\n\
             \x20 - algorithm: random_forest\n\
             \x20   grid: {{ n_estimators: [64] }}\n",
            s(&data),
            s(&schema)
        ),
    )
    .unwrap();
    let model = dir.join("best.json");
    let run = netsec(&[
        "experiment",
        "run",
        s(&grid),
        "--state-dir",
        s(&dir.join("state")),
        "--format",
        "json",
        "--model-out",
        s(&model),
    ])
    .expect_code(0);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let board = summary["leaderboard"].as_array().unwrap();
    assert_eq!(board.len(), 2);
    for algorithm in ["gradient_boosting", "random_forest"] {
        let trial = board.iter().find(|t| t["algorithm"] == algorithm).unwrap();
        let accuracy = trial["test"]["accuracy"].as_f64().unwrap();
        eprintln!("{algorithm}: test accuracy {accuracy:.5}, LightGBM {LIGHTGBM_ACCURACY:.5}");
        assert!(
            (accuracy - LIGHTGBM_ACCURACY).abs() <= TOLERANCE,
            "{algorithm}: {accuracy:.5} against LightGBM's {LIGHTGBM_ACCURACY:.5}"
        );
    }

    // The model answers rows whose src_bytes is empty, and they are not all one class.
    let predicted = dir.join("predicted.csv");
    netsec(&[
        "predict",
        "--model",
        s(&model),
        "-i",
        s(&dir.join("test.csv")),
        "-o",
        s(&predicted),
    ])
    .expect_code(0);
    let text = std::fs::read_to_string(&predicted).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let src_bytes = header.iter().position(|c| *c == "src_bytes").unwrap();
    let label = header.iter().position(|c| *c == "label").unwrap();
    let is_attack = header.iter().position(|c| *c == "is_attack").unwrap();
    let (mut rows, mut right, mut attacks) = (0, 0, 0);
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        if !cells[src_bytes].is_empty() {
            continue;
        }
        rows += 1;
        let attack = cells[is_attack] == "true";
        attacks += usize::from(attack);
        right += usize::from(attack == (cells[label] != "normal"));
    }
    assert!(rows > 300, "{rows} test rows with an empty src_bytes");
    assert!(attacks > 0 && attacks < rows, "{attacks} of {rows} flagged");
    let accuracy = right as f64 / rows as f64;
    eprintln!("rows with src_bytes missing: {rows}, accuracy {accuracy:.4}");
    assert!(
        accuracy > 0.9,
        "accuracy {accuracy:.4} on the rows with src_bytes missing"
    );
}
