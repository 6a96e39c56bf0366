//! `netsec predict`: the entry point for scoring a file with a model file.

use std::io::Write;

use anyhow::Context;
use polars::prelude::*;

use crate::cli::PredictArgs;
use crate::data::dataset::{OTHER_CATEGORY, invalid};
use crate::data::load_file;
use crate::data::typed::{LabelPresence, type_table};
use crate::exit::Outcome;
use crate::fsutil::write_atomic;
use crate::model_file::ModelFile;

/// Checks the input against the model's schema, predicts, and writes the rows with the
/// predicted label, class name and attack probability.
pub async fn run(args: PredictArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let (file, sha256) = ModelFile::load(&args.model)?;
    let table = load_file(&args.input)?;
    let schema = &file.schema;
    let mut typed = type_table(&table, schema, LabelPresence::Optional);
    // A category the model never saw is not an error: it goes to the `<other>` bucket,
    // as documented in the README, and the user hears about it.
    let unseen = typed.accept_unseen_categories();
    if !typed.issues.is_empty() {
        return Err(invalid(&table, schema, &typed)).with_context(|| {
            format!(
                "the input does not match the schema of model {}",
                args.model.display()
            )
        });
    }
    for u in &unseen {
        tracing::warn!(
            "column `{}`: {} rows have categories not seen in training (e.g. `{}`); \
             encoded as `{}`",
            u.column,
            u.rows,
            u.examples.join("`, `"),
            OTHER_CATEGORY
        );
    }
    let features = file.encoding.encode(&typed);
    let proba = file.model.predict_proba(features.view())?;
    let label = &schema.label;
    let attacks = proba.iter().filter(|&&p| p >= 0.5).count();
    let labels: Vec<String> = proba.iter().map(|&p| label.value_for(p >= 0.5)).collect();
    let classes: Vec<&str> = proba
        .iter()
        .map(|&p| {
            if p >= 0.5 {
                label.names.positive.as_str()
            } else {
                label.names.negative.as_str()
            }
        })
        .collect();
    let mut frame = table.frame.clone();
    frame.with_column(Column::new("predicted_label".into(), labels))?;
    frame.with_column(Column::new("predicted_class".into(), classes))?;
    frame.with_column(Column::new("attack_probability".into(), proba))?;
    write_atomic(&args.output, |w| {
        CsvWriter::new(w)
            .finish(&mut frame)
            .map_err(std::io::Error::other)
    })
    .with_context(|| format!("writing {}", args.output.display()))?;
    writeln!(
        out,
        "{} rows predicted with {} {} (sha256 {}): {} {}, {} {} -> {}",
        table.len(),
        file.algorithm,
        file.trial_key,
        &sha256[..12],
        attacks,
        label.names.positive,
        table.len() - attacks,
        label.names.negative,
        args.output.display()
    )?;
    Ok(Outcome::Success)
}
