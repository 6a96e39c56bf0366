//! `netsec experiment list | show | compare`: reading the local run store.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Context;
use serde::Serialize;

use super::leaderboard::{self, Leaderboard};
use crate::cli::{CompareArgs, ListArgs, OutputFormat, ShowArgs, StateArgs};
use crate::config::grid::SelectMetric;
use crate::exit::{Outcome, UsageError};
use crate::sweep::record::{METRIC_NAMES, TrialRecord, format_ms, metric_values, rank};
use crate::sweep::store::RunStore;

fn open(state: &StateArgs) -> anyhow::Result<(tokio::runtime::Runtime, RunStore)> {
    let path = RunStore::path_in(&state.state_dir);
    if !path.exists() {
        return Err(UsageError(format!(
            "no run store at {} (run `netsec experiment run GRID` first, or pass --state-dir)",
            path.display()
        ))
        .into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = runtime.block_on(RunStore::open(&path))?;
    Ok((runtime, store))
}

/// Lists sweeps, newest first.
pub fn list(args: ListArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let (runtime, store) = open(&args.state)?;
    let sweeps = runtime.block_on(store.sweeps())?;
    if args.output == OutputFormat::Json {
        serde_json::to_writer_pretty(&mut *out, &sweeps)?;
        writeln!(out)?;
        return Ok(Outcome::Success);
    }
    writeln!(
        out,
        "{:>5}  {:<24} {:<20} {:<9} {:>7}  {:<12} best model",
        "sweep", "experiment", "started (UTC)", "status", "trials", "shard"
    )?;
    for s in &sweeps {
        writeln!(
            out,
            "{:>5}  {:<24} {:<20} {:<9} {:>7}  {:<12} {}",
            s.id,
            s.experiment,
            format_ms(s.started_at_ms),
            s.status,
            s.planned,
            s.shard.as_deref().unwrap_or("-"),
            s.best_model_path.as_deref().unwrap_or("-")
        )?;
    }
    Ok(Outcome::Success)
}

/// Shows the leaderboard of one sweep.
pub fn show(args: ShowArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let (runtime, store) = open(&args.state)?;
    let sweep = runtime
        .block_on(store.find_sweep(&args.sweep))?
        .ok_or_else(|| UsageError(format!("no sweep `{}` in the run store", args.sweep)))?;
    let keys = runtime.block_on(store.sweep_keys(sweep.id))?;
    let stored = runtime.block_on(store.trials(&keys))?;
    let mut records: Vec<TrialRecord> =
        keys.iter().filter_map(|k| stored.get(k).cloned()).collect();
    let metric: SelectMetric =
        serde_json::from_value(serde_json::Value::String(sweep.select_metric.clone()))
            .unwrap_or(SelectMetric::F1);
    rank(&mut records, metric);
    if args.output == OutputFormat::Json {
        #[derive(Serialize)]
        struct Show<'a> {
            sweep: &'a crate::sweep::store::SweepRow,
            leaderboard: &'a [TrialRecord],
        }
        serde_json::to_writer_pretty(
            &mut *out,
            &Show {
                sweep: &sweep,
                leaderboard: &records,
            },
        )?;
        writeln!(out)?;
        return Ok(Outcome::Success);
    }
    writeln!(
        out,
        "sweep {} of `{}`: {}, {} of {} trials stored, started {} UTC\ndata: {} (fingerprint {})\n",
        sweep.id,
        sweep.experiment,
        sweep.status,
        records.len(),
        keys.len(),
        format_ms(sweep.started_at_ms),
        sweep.data_source,
        &sweep.data_fingerprint[..16.min(sweep.data_fingerprint.len())]
    )?;
    let grid_keys = varied_params(&records);
    leaderboard::print(
        out,
        &Leaderboard {
            records: &records,
            metric,
            grid_keys: &grid_keys,
        },
        args.top,
    )?;
    if let Some(path) = &sweep.best_model_path {
        writeln!(out, "\nbest model: {path}")?;
    }
    Ok(Outcome::Success)
}

/// Per algorithm, the parameters whose values differ between its trials.
pub(super) fn varied_params(records: &[TrialRecord]) -> HashMap<String, Vec<String>> {
    let mut by_algorithm: HashMap<String, Vec<&TrialRecord>> = HashMap::new();
    for r in records {
        by_algorithm.entry(r.algorithm.clone()).or_default().push(r);
    }
    by_algorithm
        .into_iter()
        .map(|(algorithm, trials)| {
            let keys = trials[0]
                .params
                .keys()
                .filter(|k| {
                    trials
                        .iter()
                        .any(|t| t.params.get(*k) != trials[0].params.get(*k))
                })
                .cloned()
                .collect();
            (algorithm, keys)
        })
        .collect()
}

/// Compares trials side by side.
pub fn compare(args: CompareArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let (runtime, store) = open(&args.state)?;
    let mut records = Vec::new();
    for prefix in &args.trials {
        let found = runtime.block_on(store.trials_by_prefix(prefix))?;
        match found.len() {
            1 => records.extend(found),
            0 => return Err(UsageError(format!("no trial with key `{prefix}`")).into()),
            n => {
                return Err(UsageError(format!(
                    "`{prefix}` matches {n} trials; give more of the key"
                ))
                .into());
            }
        }
    }
    if args.output == OutputFormat::Json {
        serde_json::to_writer_pretty(&mut *out, &records)?;
        writeln!(out)?;
        return Ok(Outcome::Success);
    }
    let width = 16;
    let header: Vec<String> = records
        .iter()
        .map(|r| format!("{:>width$}", &r.key[..12.min(r.key.len())]))
        .collect();
    writeln!(out, "{:<26}{}", "", header.join(""))?;
    let row = |out: &mut dyn Write, name: &str, cells: Vec<String>| -> std::io::Result<()> {
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
    Ok(Outcome::Success)
}
