//! `netsec data validate`: the entry point for checking a data file against its schema.

use std::io::Write;

use crate::cli::ValidateArgs;
use crate::data::validate::{ValidationReport, validate};
use crate::data::{Schema, load_file};
use crate::exit::Outcome;

/// Validates the file and prints the report; `Invalid` (exit 2) when the data does not fit.
pub async fn run(args: ValidateArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let schema = Schema::from_file(&args.schema)?;
    let table = load_file(&args.data)?;
    let report = validate(&table, &schema);
    super::print_report(out, args.format, &report, |out, r| {
        print_text(out, r, &schema)
    })?;
    Ok(if report.valid {
        Outcome::Success
    } else {
        Outcome::Invalid
    })
}

fn print_text(out: &mut dyn Write, r: &ValidationReport, schema: &Schema) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: {} rows, {} columns, schema `{}`",
        r.source, r.rows, r.columns, r.schema
    )?;
    if r.valid {
        writeln!(out, "valid: yes, every cell fits the schema")?;
    } else {
        let cells: usize = r.problems.iter().map(|p| p.count).sum();
        writeln!(
            out,
            "valid: NO, {cells} problems in {} groups",
            r.problems.len()
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "{:<28} {:<20} {:>7}  {:<24} first",
            "column", "problem", "count", "lines"
        )?;
        for p in &r.problems {
            let lines: Vec<String> = p.lines.iter().map(|l| l.to_string()).collect();
            let mut lines = lines.join(",");
            if p.count > p.lines.len() && !p.lines.is_empty() {
                lines.push_str(",...");
            }
            writeln!(
                out,
                "{:<28} {:<20} {:>7}  {:<24} {}",
                p.column, p.kind, p.count, lines, p.first
            )?;
        }
        writeln!(out)?;
    }
    let classes: Vec<String> = r
        .classes
        .iter()
        .map(|c| {
            let name = if c.attack {
                &schema.label.names.positive
            } else {
                &schema.label.names.negative
            };
            format!(
                "{} = {} ({}): {}",
                schema.label.column, c.value, name, c.rows
            )
        })
        .collect();
    writeln!(out, "classes: {}", classes.join(", "))?;
    let d = &r.duplicates;
    writeln!(
        out,
        "exact duplicate rows: {} ({} unique feature vectors)",
        d.duplicate_rows, d.unique_feature_vectors
    )?;
    writeln!(
        out,
        "label conflicts: {} feature vectors appear with more than one label",
        d.conflicting_vectors
    )?;
    if d.duplicate_rows > 0 {
        writeln!(
            out,
            "hint: duplicates inflate test scores when copies land on both sides of a split; \
             see `netsec data split --dedup`"
        )?;
    }
    if r.valid {
        writeln!(out, "fingerprint: {}", r.fingerprint)?;
    }
    Ok(())
}
