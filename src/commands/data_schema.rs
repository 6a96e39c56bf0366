//! `netsec data schema infer`: the entry point for writing a first schema for a data file.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::cli::InferArgs;
use crate::data::infer::{InferOptions, infer as infer_schema};
use crate::data::{Schema, load_file};
use crate::exit::Outcome;
use crate::fsutil::write_atomic;

/// Infers the schema, checks that it reads back as a valid schema, and writes it to the
/// output file (atomically) or stdout; warnings and guesses go to the log.
pub async fn infer(args: InferArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let table = load_file(&args.data)?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.data
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into())
    });
    let options = InferOptions {
        name,
        label: args.label,
        positive: args.positive,
        negative: args.negative,
    };
    let inferred = infer_schema(&table, &options)?;
    let yaml = inferred.to_yaml();
    // The file is only useful if `validate` reads it: check before writing anything.
    let shown = args.output.as_deref().unwrap_or(Path::new("<stdout>"));
    Schema::from_yaml_str(shown, &yaml)
        .context("the inferred schema does not read back (a bug in `schema infer`)")?;
    for warning in inferred.warnings() {
        tracing::warn!("{warning}");
    }
    match &args.output {
        Some(path) => {
            write_atomic(path, |w| w.write_all(yaml.as_bytes()))
                .with_context(|| format!("writing {}", path.display()))?;
            let excluded = inferred
                .columns
                .iter()
                .filter(|c| c.exclude.is_some())
                .count();
            writeln!(
                out,
                "wrote {}: label `{}`, {} feature columns, {} excluded; review it, then \
                 `netsec data validate --schema {} {}`",
                path.display(),
                inferred.label.column,
                inferred.columns.len() - excluded,
                excluded,
                path.display(),
                args.data.display()
            )?;
        }
        None => out.write_all(yaml.as_bytes())?,
    }
    Ok(Outcome::Success)
}
