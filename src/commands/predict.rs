//! `netsec predict`: the entry point for scoring a file with a model file.

use std::io::Write;

use crate::cli::PredictArgs;
use crate::exit::Outcome;
use crate::serve::batch::{Predicted, predict_file};

/// Checks the input against the model's schema, predicts, and writes the rows with the
/// answer columns (predicted label, class and attack probabilities, attack flag and class).
pub async fn run(args: PredictArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let p = predict_file(&args.model, &args.input, &args.output, args.probabilities).await?;
    writeln!(
        out,
        "{} rows predicted with {} {} (sha256 {}): {} -> {}",
        p.rows,
        p.algorithm,
        p.trial_key,
        crate::shared::short_hash(&p.sha256),
        counts(&p),
        args.output.display()
    )?;
    Ok(Outcome::Success)
}

/// `3 phishing, 9 legitimate` (binary: the attack class first, as always); a multi-class
/// model's classes in class-id order, then how many rows are attacks.
fn counts(p: &Predicted) -> String {
    let mut classes: Vec<String> = p.classes.iter().map(|(c, n)| format!("{n} {c}")).collect();
    if p.binary {
        classes.reverse();
    }
    let mut text = classes.join(", ");
    if let Some(attacks) = p.attacks.filter(|_| !p.binary) {
        text.push_str(&format!(" ({attacks} attacks)"));
    }
    text
}
