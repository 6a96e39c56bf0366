//! `netsec experiment collect`: the entry point for ranking the union of a sharded sweep,
//! from the run stores of its shard processes and/or from its runs in MLflow. The work is
//! `pipeline::collect`; this file turns the arguments into its input and prints its result.

use std::io::Write;
use std::path::Path;

use super::experiment_show::varied_params;
use super::leaderboard::{self, Leaderboard};
use crate::cli::{CollectArgs, OutputFormat};
use crate::exit::Outcome;
use crate::pipeline::collect::{CollectInput, Collected, collect};
use crate::shared::short_hash as short;
use crate::state::StateDir;

/// Collects, ranks and prints the union; merges it into `--into` when asked.
pub async fn run(args: CollectArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let input = CollectInput {
        grid: args.grid.clone(),
        experiment: args.experiment.clone(),
        from_mlflow: args.from_mlflow,
        stores: args.stores.clone(),
        state: StateDir::new(&args.state.state_dir),
        into: args.into.clone(),
        strict: args.strict,
    };
    let c = collect(&input).await?;
    let best = best_label(&c);
    match args.output.format() {
        OutputFormat::Json => {
            let label = best.as_ref().map(|b| b.1.clone());
            serde_json::to_writer_pretty(&mut *out, &c.report(label))?;
            writeln!(out)?;
        }
        OutputFormat::Text => print_text(
            out,
            &TextReport {
                c: &c,
                best: best.as_ref(),
                not_merged: args.into.as_deref().zip(c.not_merged),
                top: args.top,
            },
        )?,
    }
    if c.is_incomplete() {
        let m = &c.union;
        tracing::warn!(
            missing_trials = m.missing.len(),
            missing_shards = m.shards.missing.len(),
            conflicting_shard_counts = ?m.shards.conflicting_counts,
            "the union is incomplete: rerun the missing shards (finished trials are reused)"
        );
        if args.strict {
            return Ok(Outcome::Invalid);
        }
    }
    Ok(Outcome::Success)
}

/// The best trial's key and the label the leaderboard gives it.
fn best_label(c: &Collected) -> Option<(&str, String, Option<&Path>)> {
    let best = c.best.as_ref()?;
    let records = &c.union.records;
    let top = records.iter().find(|r| r.key == best.trial)?;
    let varied = varied_params(records);
    let label = top.label(varied.get(&top.algorithm).map_or(&[][..], |k| k));
    Some((&best.trial, label, best.model_path.as_deref()))
}

struct TextReport<'a> {
    c: &'a Collected,
    best: Option<&'a (&'a str, String, Option<&'a Path>)>,
    /// The `--into` target and why nothing was merged into it.
    not_merged: Option<(&'a Path, &'static str)>,
    top: usize,
}

fn print_text(out: &mut dyn Write, r: &TextReport<'_>) -> std::io::Result<()> {
    let c = r.c;
    let m = &c.union;
    let shards = &m.shards;
    let shard_text = match (shards.count, shards.seen.is_empty()) {
        (_, true) => "no shards".to_owned(),
        (Some(n), false) => format!(
            "{} of {n} shards ({})",
            shards.seen.len(),
            shards.seen.join(", ")
        ),
        (None, false) => format!(
            "shards {} (different shard counts: {:?})",
            shards.seen.join(", "),
            shards.conflicting_counts
        ),
    };
    let unsharded = match shards.unsharded {
        0 => String::new(),
        n => format!(" + {n} unsharded sweep(s)"),
    };
    writeln!(
        out,
        "experiment `{}`: {} trials ({} failed) from {shard_text}{unsharded} in {} source(s)",
        c.experiment,
        m.records.len(),
        c.failed,
        c.sources.len()
    )?;
    for s in &c.sources {
        writeln!(
            out,
            "  {:<6} {} [{}]: {} trials",
            s.kind,
            s.name,
            s.shards.join(", "),
            s.trials
        )?;
    }
    match c.planned {
        Some(planned) => writeln!(
            out,
            "planned {planned}{}, missing {}, ran twice {}",
            if c.whole_plan {
                ""
            } else {
                " by the sweeps found (give the grid file to check the whole plan)"
            },
            m.missing.len(),
            m.duplicates.len()
        )?,
        None => writeln!(
            out,
            "planned: unknown (give the grid file to check), ran twice {}",
            m.duplicates.len()
        )?,
    }
    writeln!(out, "ranked by cross-validated {}\n", c.metric.name())?;
    let grid_keys = varied_params(&m.records);
    leaderboard::print(
        out,
        &Leaderboard {
            records: &m.records,
            metric: c.metric,
            grid_keys: &grid_keys,
        },
        r.top,
    )?;
    if !shards.missing.is_empty() {
        writeln!(out, "\nmissing shards: {}", shards.missing.join(", "))?;
    }
    if !m.missing.is_empty() {
        writeln!(out, "\nmissing trials ({}), in no source:", m.missing.len())?;
        for key in &m.missing {
            writeln!(out, "  {key}")?;
        }
    }
    if !m.duplicates.is_empty() {
        writeln!(out, "\nran more than once ({}):", m.duplicates.len())?;
        for d in &m.duplicates {
            let verdict = if d.same_result {
                "same result"
            } else {
                "DIFFERENT results"
            };
            writeln!(out, "  {} {verdict}: {}", d.key, d.sources.join(", "))?;
        }
    }
    if let Some((trial, label, path)) = r.best {
        match path {
            Some(path) => writeln!(
                out,
                "\nbest: {} {} (model file {})",
                short(trial),
                label,
                path.display()
            )?,
            None => writeln!(
                out,
                "\nbest: {} {} (no run store given holds its model file)",
                short(trial),
                label
            )?,
        }
    }
    if let Some(into) = &c.merged_into {
        writeln!(
            out,
            "merged {} trials into {} as sweep {}{}",
            into.trials,
            into.store.display(),
            into.sweep_id,
            if into.model_path.is_some() {
                " with the best model file (netsec promote --best works on it)"
            } else {
                ""
            }
        )?;
    }
    if let Some((target, why)) = r.not_merged {
        writeln!(out, "nothing merged into {}: {why}", target.display())?;
    }
    Ok(())
}
