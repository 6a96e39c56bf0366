//! `netsec data split`: the entry point for making a reproducible train/test split.

use std::io::Write;

use crate::cli::SplitArgs;
use crate::data::split::{SplitSpec, write_split};
use crate::data::{Schema, load_file};
use crate::exit::{Outcome, UsageError};

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
    let spec = SplitSpec {
        test_fraction: args.test_fraction,
        stratify: !args.no_stratify,
        seed: args.seed,
        dedup: args.dedup,
    };
    let summary = write_split(&table, &schema, spec, args.folds, args.out.as_deref()).await?;
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
