//! `netsec data synth`: the entry point for writing a generated data set to a file.

use std::io::Write;

use crate::cli::SynthArgs;
use crate::data::synthetic::generate;
use crate::exit::{Outcome, UsageError};

/// Generates the rows and writes them as CSV or Parquet (by the output's extension).
pub async fn run(args: SynthArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let rows = args.rows.unwrap_or(args.profile.default_rows());
    if rows == 0 {
        return Err(UsageError("--rows must be at least 1".into()).into());
    }
    let mut table = generate(args.profile, rows, args.seed);
    super::write_frame(&args.output, &mut table.frame)?;
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
