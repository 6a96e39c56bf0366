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

/// Prints the top `top` rows: the ranking metric, attack-level F1, macro-F1 and the recall
/// of the class the model finds hardest (on imbalanced data accuracy hides it), all on the
/// held-out rows except the ranking metric. A trial with early stopping shows the rounds its
/// model kept (`rounds=N`) after its label.
pub fn print(out: &mut dyn Write, board: &Leaderboard<'_>, top: usize) -> std::io::Result<()> {
    let metric = board.metric.name();
    writeln!(
        out,
        "{:>4}  {:<12} {:<52} {:>16} {:>8} {:>8} {:>8} {:<24} {:>8}",
        "rank",
        "trial",
        "model",
        format!("cv {metric}"),
        "test f1",
        "test acc",
        "macro f1",
        "worst class recall",
        "fit s"
    )?;
    for (i, r) in board.records.iter().take(top).enumerate() {
        let shown = board
            .grid_keys
            .get(&r.algorithm)
            .cloned()
            .unwrap_or_default();
        let mut label = r.label(&shown);
        // The rounds early stopping kept stay visible however long the label is.
        let rounds = r
            .n_estimators_used
            .map(|n| format!(" rounds={n}"))
            .unwrap_or_default();
        if label.len() + rounds.len() > 52 {
            label.truncate(51 - rounds.len());
            label.push('~');
        }
        label.push_str(&rounds);
        match (r.status, &r.test, r.cv.get(metric)) {
            (TrialStatus::Finished, Some(test), Some(cv)) => {
                let classes = test.classes.as_ref();
                let macro_f1 = classes
                    .map(|c| format!("{:.4}", c.macro_f1))
                    .unwrap_or_else(|| "-".into());
                let worst = classes
                    .and_then(|c| c.worst_recall())
                    .map(|(class, recall)| format!("{recall:.4} {class}"))
                    .unwrap_or_else(|| "-".into());
                writeln!(
                    out,
                    "{:>4}  {:<12} {:<52} {:>16} {:>8.4} {:>8.4} {:>8} {:<24} {:>8.2}",
                    i + 1,
                    crate::shared::short_hash(&r.key),
                    label,
                    format!("{:.4} ± {:.4}", cv.mean, cv.std),
                    test.f1,
                    test.accuracy,
                    macro_f1,
                    truncate(&worst, 24),
                    r.fit_seconds
                )?
            }
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

/// `text` cut to `width` characters, the cut marked with `~`.
fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('~');
    cut
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
    // Per-class recall on the held-out rows, one row per class any of the trials knows.
    let mut classes: Vec<&String> = records
        .iter()
        .filter_map(|r| r.test.as_ref()?.classes.as_ref())
        .flat_map(|c| c.names.iter())
        .collect();
    classes.sort();
    classes.dedup();
    for class in classes {
        let cells = records
            .iter()
            .map(|r| {
                r.test
                    .as_ref()
                    .and_then(|t| t.classes.as_ref()?.class(class))
                    .map(|s| format!("{:.4} ({})", s.recall, s.support))
                    .unwrap_or_else(|| "-".into())
            })
            .collect();
        row(out, &format!("test recall {class}"), cells)?;
    }
    if records.iter().any(|r| r.n_estimators_used.is_some()) {
        let cells = records
            .iter()
            .map(|r| r.n_estimators_used.map_or("-".into(), |n| n.to_string()))
            .collect();
        row(out, "rounds used", cells)?;
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

/// Prints a trial's held-out figures per class, as scikit-learn's `classification_report`,
/// then the averages and, where a normal class exists, the attack-level detection and
/// false-positive rates.
pub fn class_report(out: &mut dyn Write, test: &crate::models::metrics::Metrics) -> io::Result<()> {
    let Some(report) = &test.classes else {
        return Ok(());
    };
    let width = report
        .names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(12, 40);
    writeln!(
        out,
        "{:<width$} {:>9} {:>9} {:>9} {:>9}",
        "class", "precision", "recall", "f1", "support"
    )?;
    for (name, s) in report.names.iter().zip(&report.per_class) {
        writeln!(
            out,
            "{:<width$} {:>9.4} {:>9.4} {:>9.4} {:>9}",
            truncate(name, width),
            s.precision,
            s.recall,
            s.f1,
            s.support
        )?;
    }
    let support: u64 = report.per_class.iter().map(|s| s.support).sum();
    writeln!(
        out,
        "{:<width$} {:>9} {:>9} {:>9.4} {:>9}",
        "macro f1", "", "", report.macro_f1, support
    )?;
    writeln!(
        out,
        "{:<width$} {:>9} {:>9} {:>9.4} {:>9}",
        "weighted f1", "", "", report.weighted_f1, support
    )?;
    writeln!(
        out,
        "{:<width$} {:>9} {:>9.4}",
        "balanced acc", "", report.balanced_accuracy
    )?;
    let c = &test.confusion;
    if c.tn + c.fp > 0 {
        writeln!(
            out,
            "attacks: detection rate {:.4} ({} of {}), false-positive rate {:.4} ({} of {} normal)",
            test.recall,
            c.tp,
            c.tp + c.fn_,
            c.fp as f64 / (c.fp + c.tn) as f64,
            c.fp,
            c.fp + c.tn
        )?;
    }
    Ok(())
}

/// The operating point of a trial or model: its target and cut, the rates out of fold (where
/// the cut was chosen) and on the held-out rows with the 95 % Clopper-Pearson upper bound on
/// the FPR, and whether the target held.
pub fn operating_point(
    out: &mut dyn Write,
    point: &crate::models::operating_point::OperatingPoint,
) -> io::Result<()> {
    use crate::models::operating_point::Rates;
    let rates = |r: &Rates| {
        format!(
            "detection rate {:.4} ({} of {} attacks), FPR {:.5} ({} false alarms in {} normal rows)",
            r.detection_rate(),
            r.tp,
            r.attacks,
            r.fpr(),
            r.fp,
            r.normal
        )
    };
    writeln!(
        out,
        "\noperating point ({}): attack when P(attack) >= {}",
        point.target.describe(),
        point.threshold
    )?;
    writeln!(out, "  out of fold: {}", rates(&point.out_of_fold))?;
    if let Some(held) = &point.held_out {
        writeln!(
            out,
            "  held out:    {}; FPR 95% upper bound {:.5}",
            rates(held),
            held.fpr_upper_95()
        )?;
    }
    let verdict = match (point.target_met, point.held()) {
        (false, _) => "NOT MET: no cut meets it on the out-of-fold predictions".to_owned(),
        (true, Some(true)) => "met out of fold and held on the held-out rows".to_owned(),
        (true, Some(false)) => "met out of fold, but did NOT hold on the held-out rows".to_owned(),
        (true, None) => "met out of fold".to_owned(),
    };
    writeln!(out, "  target: {verdict}")
}
