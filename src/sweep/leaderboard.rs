//! The ranked table of trials that `experiment run`, `show` and `collect` print, and the
//! side-by-side table of `experiment compare`.

use std::collections::HashMap;
use std::io::{self, Write};

use super::record::{METRIC_NAMES, TrialRecord, TrialStatus, metric_values};
use crate::config::grid::SelectMetric;

/// Ranked records and what to show of them.
pub struct Leaderboard<'a> {
    /// Records, best first.
    pub records: &'a [TrialRecord],
    /// The ranking metric.
    pub metric: SelectMetric,
    /// Per algorithm, the parameters its grid varies (shown in the trial label).
    pub grid_keys: &'a HashMap<String, Vec<String>>,
}

/// Prints the top `top` rows.
pub fn print(out: &mut dyn Write, board: &Leaderboard<'_>, top: usize) -> std::io::Result<()> {
    let metric = board.metric.name();
    writeln!(
        out,
        "{:>4}  {:<12} {:<52} {:>16} {:>8} {:>8} {:>8} {:>8}",
        "rank",
        "trial",
        "model",
        format!("cv {metric}"),
        "test f1",
        "test acc",
        "roc_auc",
        "fit s"
    )?;
    for (i, r) in board.records.iter().take(top).enumerate() {
        let shown = board
            .grid_keys
            .get(&r.algorithm)
            .cloned()
            .unwrap_or_default();
        let mut label = r.label(&shown);
        if label.len() > 52 {
            label.truncate(51);
            label.push('~');
        }
        match (r.status, &r.test, r.cv.get(metric)) {
            (TrialStatus::Finished, Some(test), Some(cv)) => writeln!(
                out,
                "{:>4}  {:<12} {:<52} {:>16} {:>8.4} {:>8.4} {:>8} {:>8.2}",
                i + 1,
                crate::shared::short_hash(&r.key),
                label,
                format!("{:.4} ± {:.4}", cv.mean, cv.std),
                test.f1,
                test.accuracy,
                test.roc_auc
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into()),
                r.fit_seconds
            )?,
            _ => writeln!(
                out,
                "{:>4}  {:<12} {:<52} failed: {}",
                i + 1,
                crate::shared::short_hash(&r.key),
                label,
                r.error.as_deref().unwrap_or("not scored")
            )?,
        }
    }
    if board.records.len() > top {
        writeln!(
            out,
            "      ... {} more (--top N shows more)",
            board.records.len() - top
        )?;
    }
    Ok(())
}

/// Prints trials side by side (`experiment compare`): one column per trial, one row per
/// parameter and per cross-validated and test metric.
pub fn compare(out: &mut dyn Write, records: &[TrialRecord]) -> io::Result<()> {
    let width = 16;
    let header: Vec<String> = records
        .iter()
        .map(|r| format!("{:>width$}", crate::shared::short_hash(&r.key)))
        .collect();
    writeln!(out, "{:<26}{}", "", header.join(""))?;
    let row = |out: &mut dyn Write, name: &str, cells: Vec<String>| -> io::Result<()> {
        let cells: Vec<String> = cells.iter().map(|c| format!("{c:>width$}")).collect();
        writeln!(out, "{name:<26}{}", cells.join(""))
    };
    row(
        out,
        "algorithm",
        records.iter().map(|r| r.algorithm.clone()).collect(),
    )?;
    let mut param_names: Vec<&String> = records.iter().flat_map(|r| r.params.keys()).collect();
    param_names.sort();
    param_names.dedup();
    for name in param_names {
        let cells = records
            .iter()
            .map(|r| {
                r.params
                    .get(name)
                    .map(|v| v.to_string().trim_matches('"').to_owned())
                    .unwrap_or_else(|| "-".into())
            })
            .collect();
        row(out, name, cells)?;
    }
    for metric in METRIC_NAMES {
        let cv = records
            .iter()
            .map(|r| {
                r.cv.get(metric)
                    .map(|m| format!("{:.4}", m.mean))
                    .unwrap_or_else(|| "-".into())
            })
            .collect();
        row(out, &format!("cv {metric}"), cv)?;
        let test = records
            .iter()
            .map(|r| {
                r.test
                    .as_ref()
                    .and_then(|t| metric_values(t).get(metric).copied())
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into())
            })
            .collect();
        row(out, &format!("test {metric}"), test)?;
    }
    row(
        out,
        "fit seconds",
        records
            .iter()
            .map(|r| format!("{:.3}", r.fit_seconds))
            .collect(),
    )?;
    Ok(())
}
