//! `netsec data split`: the entry point for making a reproducible train/test split.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use polars::prelude::*;
use serde::Serialize;

use crate::cli::SplitArgs;
use crate::data::split::{SplitSpec, leaked_rows, stratified_kfold, train_test_split};
use crate::data::{Schema, Table, dataset_from_table, load_file};
use crate::exit::{Outcome, UsageError};
use crate::fsutil::write_atomic;

/// The split as printed and written to split.json.
#[derive(Debug, Serialize)]
struct SplitSummary {
    source: String,
    fingerprint: String,
    spec: SplitSpec,
    train_rows: usize,
    train_attacks: usize,
    test_rows: usize,
    test_attacks: usize,
    /// Test rows whose feature vector also occurs in train.
    leaked_test_rows: usize,
    /// Per fold, its size (positions into `train`).
    fold_sizes: Vec<usize>,
}

#[derive(Debug, Serialize)]
struct SplitFile<'a> {
    #[serde(flatten)]
    summary: &'a SplitSummary,
    /// 0-based data row indices of the training part.
    train: &'a [usize],
    /// 0-based data row indices of the test part.
    test: &'a [usize],
    /// Per fold, the 0-based data row indices of its validation part.
    folds: Vec<Vec<usize>>,
}

/// Splits the file, prints a summary and optionally writes the parts.
pub async fn run(args: SplitArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    if !(args.test_fraction > 0.0 && args.test_fraction < 1.0) {
        return Err(UsageError(format!(
            "--test-fraction must be between 0 and 1 (got {})",
            args.test_fraction
        ))
        .into());
    }
    if args.folds.is_some_and(|k| k < 2) {
        return Err(UsageError("--folds must be at least 2".into()).into());
    }
    let schema = Schema::from_file(&args.schema)?;
    let table = load_file(&args.data)?;
    let data = dataset_from_table(&table, &schema)?;
    let spec = SplitSpec {
        test_fraction: args.test_fraction,
        stratify: !args.no_stratify,
        seed: args.seed,
        dedup: args.dedup,
    };
    let split = train_test_split(&data, &spec);
    let folds: Vec<Vec<usize>> = match args.folds {
        Some(k) => stratified_kfold(&data.labels, &split.train, k, spec.seed)
            .into_iter()
            .map(|fold| fold.into_iter().map(|p| split.train[p]).collect())
            .collect(),
        None => Vec::new(),
    };
    let attacks = |rows: &[usize]| rows.iter().filter(|&&r| data.labels[r]).count();
    let summary = SplitSummary {
        source: data.source.clone(),
        fingerprint: data.fingerprint.clone(),
        spec,
        train_rows: split.train.len(),
        train_attacks: attacks(&split.train),
        test_rows: split.test.len(),
        test_attacks: attacks(&split.test),
        leaked_test_rows: leaked_rows(&data, &split),
        fold_sizes: folds.iter().map(Vec::len).collect(),
    };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_rows(&table, &split.train, &dir.join("train.csv"))?;
        write_rows(&table, &split.test, &dir.join("test.csv"))?;
        let file = SplitFile {
            summary: &summary,
            train: &split.train,
            test: &split.test,
            folds,
        };
        let json = serde_json::to_vec(&file)?;
        let path = dir.join("split.json");
        write_atomic(&path, |w| w.write_all(&json))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    super::print_report(out, args.format, &summary, |out, s| {
        let pct = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
        writeln!(out, "{}", s.source)?;
        writeln!(
            out,
            "train: {} rows ({} attacks, {:.1}%)",
            s.train_rows,
            s.train_attacks,
            pct(s.train_attacks, s.train_rows)
        )?;
        writeln!(
            out,
            "test:  {} rows ({} attacks, {:.1}%)",
            s.test_rows,
            s.test_attacks,
            pct(s.test_attacks, s.test_rows)
        )?;
        writeln!(
            out,
            "leakage: {} test rows ({:.1}%) have an exact copy of their features in train{}",
            s.leaked_test_rows,
            pct(s.leaked_test_rows, s.test_rows),
            if s.leaked_test_rows > 0 && !s.spec.dedup {
                "; --dedup holds out whole duplicate groups"
            } else {
                ""
            }
        )?;
        if !s.fold_sizes.is_empty() {
            writeln!(out, "folds: {:?} training rows each", s.fold_sizes)?;
        }
        if let Some(dir) = &args.out {
            writeln!(
                out,
                "written: {}/{{train.csv,test.csv,split.json}}",
                dir.display()
            )?;
        }
        Ok(())
    })?;
    Ok(Outcome::Success)
}

fn write_rows(table: &Table, rows: &[usize], path: &Path) -> anyhow::Result<()> {
    let indices: Vec<IdxSize> = rows.iter().map(|&r| r as IdxSize).collect();
    let mut part = table.frame.take(&IdxCa::from_vec("idx".into(), indices))?;
    write_atomic(path, |w| {
        CsvWriter::new(w)
            .finish(&mut part)
            .map_err(std::io::Error::other)
    })
    .with_context(|| format!("writing {}", path.display()))
}
