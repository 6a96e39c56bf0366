//! `netsec experiment run`: the entry point for running a grid file's sweep.

pub(super) mod progress;

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::cli::{OutputFormat, RunArgs};
use crate::exit::Outcome;
use crate::pipeline::experiment::{self, ExperimentInput, ExperimentOutcome};
use crate::state::StateDir;
use crate::sweep::CancelToken;
use crate::sweep::leaderboard::{self, Leaderboard};
use crate::sweep::record::{TrialRecord, TrialStatus};
use crate::sweep::run::SavedModel;
use crate::sweep::store::SweepStatus;
use crate::tracking::TrackingReport;

/// What `--format json` prints.
#[derive(Debug, Serialize)]
struct RunSummary<'a> {
    experiment: &'a str,
    sweep_id: i64,
    status: &'static str,
    data_source: &'a str,
    data_fingerprint: &'a str,
    select_metric: &'static str,
    trials_planned: usize,
    trials_run: usize,
    trials_reused: usize,
    trials_failed: usize,
    seconds: f64,
    best_model: Option<&'a SavedModel>,
    tracking: Option<&'a TrackingReport>,
    leaderboard: &'a [TrialRecord],
}

/// Runs the sweep; trials already in the run store are reused, not run again.
pub async fn run(args: RunArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let input = ExperimentInput {
        grid: args.grid.clone(),
        state: StateDir::new(&args.state.state_dir),
        shard: args.shard,
        jobs: args.jobs,
        model_out: args.model_out.clone(),
        rung: args.rung,
        survivors: args.survivors.clone(),
    };
    let cancel = CancelToken::new();
    let signals = tokio::spawn(watch_signals(cancel.clone()));
    let progress = progress::Progress::default();
    let result = experiment::run(&input, &cancel, &progress).await;
    signals.abort();
    let outcome = result?;
    render(
        out,
        args.output.format(),
        args.top,
        args.model_out.as_deref(),
        &outcome,
    )?;
    let sweep = &outcome.sweep;
    if sweep.status == SweepStatus::Failed {
        let first = sweep.records[0].error.clone().unwrap_or_default();
        anyhow::bail!("every trial failed; the first error: {first}");
    }
    Ok(Outcome::Success)
}

/// Prints the outcome as JSON or as a leaderboard (its `top` rows) with the saved model, its
/// copy at `model_out` and the tracking links. Also `retrain`'s report of its sweep.
pub(super) fn render(
    out: &mut dyn Write,
    format: OutputFormat,
    top: usize,
    model_out: Option<&Path>,
    outcome: &ExperimentOutcome,
) -> anyhow::Result<()> {
    let sweep = &outcome.sweep;
    let metric = outcome.select_metric;
    let summary = RunSummary {
        experiment: &outcome.experiment,
        sweep_id: sweep.sweep_id,
        status: sweep.status.as_str(),
        data_source: &outcome.data_source,
        data_fingerprint: &outcome.data_fingerprint,
        select_metric: metric.name(),
        trials_planned: sweep.planned,
        trials_run: sweep.run,
        trials_reused: sweep.reused,
        trials_failed: sweep.failed,
        seconds: outcome.seconds,
        best_model: sweep.best.as_ref(),
        tracking: outcome.tracking.as_ref(),
        leaderboard: &sweep.records,
    };
    if format == OutputFormat::Json {
        super::print_json(out, &summary)?;
        return Ok(());
    }
    writeln!(
        out,
        "experiment `{}` (sweep {}): {} trials, {} run now, {} reused, {} failed, {:.1} s",
        summary.experiment,
        summary.sweep_id,
        summary.trials_planned,
        summary.trials_run,
        summary.trials_reused,
        summary.trials_failed,
        summary.seconds
    )?;
    writeln!(
        out,
        "ranked by cross-validated {} ({}-fold on {} training rows); test = {} held-out rows\n",
        metric.name(),
        outcome.folds,
        sweep.train_rows,
        sweep.test_rows
    )?;
    let board = Leaderboard {
        records: &sweep.records,
        metric,
        grid_keys: &sweep.grid_keys,
    };
    leaderboard::print(out, &board, top)?;
    let best = sweep
        .records
        .first()
        .filter(|r| r.status == TrialStatus::Finished);
    if let Some(test) = best.and_then(|r| r.test.as_ref()) {
        writeln!(out, "\nbest trial on the held-out rows:")?;
        leaderboard::class_report(out, test)?;
    }
    if let Some(point) = best.and_then(|r| r.operating_point.as_ref()) {
        leaderboard::operating_point(out, point)?;
    }
    match &sweep.best {
        Some(s) => writeln!(
            out,
            "\nbest model: {} (sha256 {})",
            s.path.display(),
            &s.sha256[..16]
        )?,
        None => writeln!(out, "\nno model saved: every trial failed")?,
    }
    if let Some(copy) = model_out {
        writeln!(out, "copied to: {}", copy.display())?;
    }
    if let Some(report) = &outcome.tracking {
        print_tracking(out, report)?;
    }
    Ok(())
}

/// Where the sweep went in MLflow, or why it has not gone yet.
fn print_tracking(out: &mut dyn Write, report: &TrackingReport) -> std::io::Result<()> {
    if let Some(url) = &report.experiment_url {
        writeln!(out, "mlflow experiment: {url}")?;
    }
    if let Some(url) = &report.compare_url {
        writeln!(out, "mlflow compare:    {url}")?;
    }
    if report.pending > 0 {
        let why = match &report.server {
            None => "no tracking server set (MLFLOW_TRACKING_URI)".to_owned(),
            Some(server) => format!("{server} did not take them yet"),
        };
        writeln!(
            out,
            "tracking: {} records wait in the outbox ({why}); `netsec sync` sends them",
            report.pending
        )?;
    }
    if report.failed > 0 {
        writeln!(
            out,
            "tracking: {} records were refused by the server; `netsec sync --retry-failed` tries again",
            report.failed
        )?;
    }
    Ok(())
}

/// First Ctrl-C / SIGTERM: finish the running trials, start no new ones. Second: stop now
/// (the run store already holds every finished trial). Also `retrain`'s.
pub(super) async fn watch_signals(cancel: CancelToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return,
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        if cancel.cancel() {
            eprintln!("stopping now; rerun the same command to resume");
            std::process::exit(130);
        }
        eprintln!("interrupted: finishing the running trials (again to stop at once)");
    }
}
