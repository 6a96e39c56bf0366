//! `netsec retrain`: the entry point for one scheduled pipeline run — fresh data, drift
//! check, sweep, promotion, publishing — with one summary at the end. The workflow, its
//! run lock and its resumability are [`pipeline::retrain`](crate::pipeline::retrain)'s;
//! this shows the stages' reports as they come and renders the summary.

use std::io::Write;
use std::path::Path;

use super::experiment_run::{self, progress::Progress};
use crate::cli::{OutputFormat, RetrainArgs};
use crate::exit::Outcome;
use crate::pipeline::experiment::ExperimentOutcome;
use crate::pipeline::publish::{MoveReporter, Publication, StoreTarget};
use crate::pipeline::retrain::{RetrainInput, RetrainReporter, Summary, retrain};
use crate::registry::promote::Promoted;
use crate::state::StateDir;
use crate::storage::S3Options;
use crate::sweep::CancelToken;

/// Leaderboard rows shown in the report of the sweep.
const TOP: usize = 5;

/// Runs the pipeline of a retrain file and prints its summary (with `--format json`,
/// nothing else), also when a stage failed.
pub async fn run(args: RetrainArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let input = RetrainInput {
        config: args.config.clone(),
        state: StateDir::new(&args.registry.state.state_dir),
        registry: args.registry.path(),
        store: StoreTarget {
            to: args.store.to.clone(),
            s3: S3Options::with_endpoint(args.store.s3.endpoint_url.clone()),
        },
        jobs: args.jobs,
    };
    let json = args.output.format() == OutputFormat::Json;
    // Ctrl-C / SIGTERM as in `experiment run`: the sweep finishes its running trials and
    // the run ends failed (resumable); a second one stops at once.
    let cancel = CancelToken::new();
    let signals = tokio::spawn(experiment_run::watch_signals(cancel.clone()));
    let progress = Progress::default();
    // Stages print their own reports as they go; with --format json only the summary does.
    let mut sink = std::io::sink();
    let mut view = View {
        out: if json { &mut sink } else { &mut *out },
        publishing: false,
    };
    let retrained = retrain(&input, &cancel, &progress, &mut view).await;
    signals.abort();
    let retrained = retrained?;
    if json {
        super::print_json(out, &retrained.summary)?;
    } else {
        print_summary(out, &retrained.summary)?;
    }
    retrained.result
}

/// Shows the sweep's and the promotion's reports as `experiment run` and `promote` do.
struct View<'a> {
    out: &'a mut dyn Write,
    /// An accepted decision is published.
    publishing: bool,
}

impl View<'_> {
    fn promotion(&mut self) -> super::promote::View<'_> {
        super::promote::View {
            out: &mut *self.out,
            format: OutputFormat::Text,
            publishing: self.publishing,
        }
    }
}

impl RetrainReporter for View<'_> {
    fn sweep_started(&mut self, grid: &Path) -> anyhow::Result<()> {
        writeln!(self.out, "== sweep {} ==", grid.display())?;
        Ok(())
    }

    fn swept(&mut self, outcome: &ExperimentOutcome) -> anyhow::Result<()> {
        experiment_run::render(self.out, OutputFormat::Text, TOP, None, outcome)
    }

    fn promote_started(&mut self, policy: &Path, publishing: bool) -> anyhow::Result<()> {
        self.publishing = publishing;
        writeln!(self.out, "\n== promote ({}) ==", policy.display())?;
        Ok(())
    }
}

impl MoveReporter<Promoted> for View<'_> {
    fn committed(&mut self, promoted: &Promoted) -> anyhow::Result<()> {
        self.promotion().committed(promoted)
    }

    fn published(&mut self, publication: &Publication) -> anyhow::Result<()> {
        self.promotion().published(publication)
    }
}

fn print_summary(out: &mut dyn Write, summary: &Summary) -> std::io::Result<()> {
    writeln!(
        out,
        "\nretrain {} ({} → {}):",
        summary.config.display(),
        summary.experiment,
        summary.model
    )?;
    for s in &summary.stages {
        writeln!(
            out,
            "  {:<8} {:<8} {:>7.1}s  {}",
            s.stage,
            s.status.as_str(),
            s.seconds,
            s.detail
        )?;
    }
    let end = match summary.exit_code {
        0 => "done",
        2 => "stopped: bad input or drift (exit 2)",
        3 => "candidate rejected by the policy (exit 3)",
        _ => "failed (exit 1): run the same command again to resume",
    };
    writeln!(out, "retrain {end}")
}
