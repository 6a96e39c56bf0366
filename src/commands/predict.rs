//! `netsec predict`: the entry point for scoring a file with a model file.

use std::io::Write;

use crate::cli::PredictArgs;
use crate::exit::Outcome;
use crate::serve::batch::predict_file;

/// Checks the input against the model's schema, predicts, and writes the rows with the
/// predicted label, class name and attack probability.
pub async fn run(args: PredictArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let p = predict_file(&args.model, &args.input, &args.output).await?;
    writeln!(
        out,
        "{} rows predicted with {} {} (sha256 {}): {} {}, {} {} -> {}",
        p.rows,
        p.algorithm,
        p.trial_key,
        crate::shared::short_hash(&p.sha256),
        p.attacks,
        p.positive,
        p.rows - p.attacks,
        p.negative,
        args.output.display()
    )?;
    Ok(Outcome::Success)
}
