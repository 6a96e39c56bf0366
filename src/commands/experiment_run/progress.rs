//! The progress display of `experiment run`: a bar on a terminal, a log line per trial
//! otherwise. It is a [`SweepReporter`], so the sweep only reports events and this decides
//! how they look.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::grid::SelectMetric;
use crate::sweep::record::{TrialRecord, TrialStatus};
use crate::sweep::report::{SweepFinished, SweepReporter, SweepStarted};

/// Progress on stderr: a bar on a terminal, a log line per trial otherwise.
#[derive(Default)]
pub(in crate::commands) struct Progress {
    state: Mutex<ProgressState>,
}

#[derive(Default)]
struct ProgressState {
    bar: Option<ProgressBar>,
    grid_keys: HashMap<String, Vec<String>>,
    total: usize,
    done: usize,
    metric: Option<SelectMetric>,
    best: Option<f64>,
}

impl Progress {
    fn state(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SweepReporter for Progress {
    fn sweep_started(&self, sweep: &SweepStarted<'_>) {
        let mut state = self.state();
        state.metric = Some(sweep.select_metric);
        state.grid_keys = sweep.grid_keys.clone();
    }

    fn trial_finished(&self, _record: &TrialRecord) {}

    fn trials_to_run(&self, total: usize) {
        let bar = (std::io::stderr().is_terminal() && tracing::enabled!(tracing::Level::INFO))
            .then(|| {
                let bar = ProgressBar::new(total as u64);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{bar:30} {pos}/{len} trials  {elapsed_precise} eta {eta}  {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.enable_steady_tick(Duration::from_millis(250));
                bar
            });
        let mut state = self.state();
        state.total = total;
        state.bar = bar;
    }

    fn trial_ran(&self, record: &TrialRecord) {
        let mut state = self.state();
        let metric = state.metric.unwrap_or(SelectMetric::F1);
        state.done += 1;
        if let Some(score) = record.cv_score(metric) {
            let better = match state.best {
                None => true,
                Some(b) if metric.higher_is_better() => score > b,
                Some(b) => score < b,
            };
            if better {
                state.best = Some(score);
            }
        }
        let best = state
            .best
            .map(|b| format!("best cv {} {b:.4}", metric.name()))
            .unwrap_or_default();
        let label = record.label(
            state
                .grid_keys
                .get(&record.algorithm)
                .map_or(&[][..], |k| k),
        );
        let (done, total) = (state.done, state.total);
        match &state.bar {
            Some(bar) => {
                bar.set_position(done as u64);
                bar.set_message(best);
            }
            None => match record.status {
                TrialStatus::Finished => tracing::info!(
                    "trial {done}/{total}: {} {label} cv {} {:.4} ({best})",
                    &record.key[..10],
                    metric.name(),
                    record.cv_score(metric).unwrap_or(f64::NAN),
                ),
                TrialStatus::Failed => tracing::warn!(
                    "trial {done}/{total}: {} {label} failed: {}",
                    &record.key[..10],
                    record.error.as_deref().unwrap_or("")
                ),
            },
        }
    }

    fn sweep_finished(&self, _end: &SweepFinished<'_>) {
        if let Some(bar) = &self.state().bar {
            bar.finish_and_clear();
        }
    }
}
