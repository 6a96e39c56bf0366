//! `netsec data drift`: the entry point for comparing a data set with a reference.

use std::io::Write;

use crate::cli::DriftArgs;
use crate::data::drift::{DriftReport, DriftThresholds, drift_to_file};
use crate::data::{Schema, load_file};
use crate::exit::{Outcome, UsageError};

/// Computes and prints the drift report, and writes it to `--report` when given.
pub async fn run(args: DriftArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    if !(0.0..=1.0).contains(&args.alpha) || args.psi_threshold < 0.0 {
        return Err(UsageError("--alpha must be in [0, 1] and --psi-threshold >= 0".into()).into());
    }
    let schema = Schema::from_file(&args.schema)?;
    let reference = load_file(&args.reference)?;
    let current = load_file(&args.current)?;
    let thresholds = DriftThresholds {
        ks_alpha: args.alpha,
        psi: args.psi_threshold,
    };
    let report = drift_to_file(
        &reference,
        &current,
        &schema,
        thresholds,
        args.report.as_deref(),
    )
    .await?;
    super::print_report(out, args.format, &report, print_text)?;
    Ok(if args.fail_on_drift && report.drift_detected {
        Outcome::Invalid
    } else {
        Outcome::Success
    })
}

fn print_text(out: &mut dyn Write, r: &DriftReport) -> std::io::Result<()> {
    writeln!(
        out,
        "reference: {} ({} rows)\ncurrent:   {} ({} rows)\n",
        r.reference.source, r.reference.rows, r.current.source, r.current.rows
    )?;
    writeln!(
        out,
        "{:<28} {:<5} {:>10} {:>10} {:>8}  drift",
        "column", "test", "statistic", "p-value", "PSI"
    )?;
    let opt = |v: Option<f64>, digits: usize| match v {
        Some(v) => format!("{v:.digits$}"),
        None => "-".into(),
    };
    for (name, c) in &r.columns {
        let (test, statistic) = match (c.ks_statistic, c.chi2_statistic) {
            (Some(d), _) => ("KS", Some(d)),
            (None, Some(chi2)) => ("chi2", Some(chi2)),
            (None, None) => ("-", None),
        };
        writeln!(
            out,
            "{:<28} {:<5} {:>10} {:>10} {:>8.4}  {}",
            name,
            test,
            opt(statistic, 4),
            opt(c.p_value, 4),
            c.psi,
            if c.drift_status { "DRIFT" } else { "-" }
        )?;
    }
    writeln!(out)?;
    if r.drift_detected {
        writeln!(
            out,
            "drift detected in {} of {} columns: {} (p-value < {} or PSI >= {})",
            r.drifted_columns.len(),
            r.columns.len(),
            r.drifted_columns.join(", "),
            r.thresholds.ks_alpha,
            r.thresholds.psi
        )
    } else {
        writeln!(
            out,
            "no drift (p-value >= {} and PSI < {} in all {} columns)",
            r.thresholds.ks_alpha,
            r.thresholds.psi,
            r.columns.len()
        )
    }
}
