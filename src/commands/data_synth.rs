//! `netsec data synth`: the entry point for writing a generated data set to a file.

use std::io::Write;

use anyhow::Context;
use polars::prelude::*;

use crate::cli::SynthArgs;
use crate::data::synthetic::generate;
use crate::exit::{Outcome, UsageError};
use crate::fsutil::write_atomic;

/// Generates the rows and writes them as CSV or Parquet (by the output's extension).
pub fn run(args: SynthArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let rows = args.rows.unwrap_or(args.profile.default_rows());
    if rows == 0 {
        return Err(UsageError("--rows must be at least 1".into()).into());
    }
    let parquet = match args.output.extension().and_then(|e| e.to_str()) {
        Some("csv") => false,
        Some("parquet") => true,
        _ => {
            return Err(UsageError(format!(
                "{}: the output must end in .csv or .parquet",
                args.output.display()
            ))
            .into());
        }
    };
    let mut table = generate(args.profile, rows, args.seed);
    write_atomic(&args.output, |w| {
        let result = if parquet {
            ParquetWriter::new(w).finish(&mut table.frame).map(|_| ())
        } else {
            CsvWriter::new(w).finish(&mut table.frame)
        };
        result.map_err(std::io::Error::other)
    })
    .with_context(|| format!("writing {}", args.output.display()))?;
    writeln!(
        out,
        "wrote {} rows of synthetic `{}` data (seed {}) to {}",
        rows,
        args.profile.name(),
        args.seed,
        args.output.display()
    )?;
    Ok(Outcome::Success)
}
