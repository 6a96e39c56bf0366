//! The ranked table of trials that `experiment run`, `show` and `collect` print.

use std::collections::HashMap;
use std::io::Write;

use super::record::{TrialRecord, TrialStatus};
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
                &r.key[..12.min(r.key.len())],
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
                &r.key[..12.min(r.key.len())],
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
