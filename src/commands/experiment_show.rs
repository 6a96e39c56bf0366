//! `netsec experiment list | show | compare`: reading the local run store.

use std::io::Write;

use serde::Serialize;

use crate::cli::{CompareArgs, ListArgs, OutputFormat, ShowArgs, StateArgs};
use crate::exit::Outcome;
use crate::shared::format_ms;
use crate::state::StateDir;
use crate::sweep::leaderboard::{self, Leaderboard};
pub(super) use crate::sweep::query::varied_params;
use crate::sweep::query::{self, SurvivorsFrom};
use crate::sweep::record::TrialRecord;

fn state_dir(state: &StateArgs) -> StateDir {
    StateDir::new(&state.state_dir)
}

/// Lists sweeps, newest first.
pub async fn list(args: ListArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let sweeps = query::sweeps(&state_dir(&args.state)).await?;
    if args.output.format() == OutputFormat::Json {
        super::print_json(out, &sweeps)?;
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
pub async fn show(args: ShowArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let query::SweepBoard {
        sweep,
        planned,
        metric,
        records,
        rungs,
    } = query::board(&state_dir(&args.state), &args.sweep).await?;
    if args.output.format() == OutputFormat::Json {
        #[derive(Serialize)]
        struct Show<'a> {
            sweep: &'a crate::sweep::store::SweepRow,
            leaderboard: &'a [TrialRecord],
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            rungs: &'a [query::RungBoard],
        }
        super::print_json(
            out,
            &Show {
                sweep: &sweep,
                leaderboard: &records,
                rungs: &rungs,
            },
        )?;
        return Ok(Outcome::Success);
    }
    if !rungs.is_empty() {
        return show_rungs(out, &sweep, &rungs, metric, args.top);
    }
    writeln!(
        out,
        "sweep {} of `{}`: {}, {} of {} trials stored, started {} UTC\ndata: {} (fingerprint {})\n",
        sweep.id,
        sweep.experiment,
        sweep.status,
        records.len(),
        planned,
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

/// Shows a halving search rung by rung: rows, trials and survivors of each, then its
/// leaderboard (its `top` rows).
fn show_rungs(
    out: &mut dyn Write,
    sweep: &crate::sweep::store::SweepRow,
    rungs: &[query::RungBoard],
    metric: crate::config::grid::SelectMetric,
    top: usize,
) -> anyhow::Result<Outcome> {
    writeln!(
        out,
        "halving search of `{}`: {} rungs, newest sweep {} ({}), started {} UTC\ndata: {} \
         (fingerprint {})",
        sweep.experiment,
        rungs.len(),
        sweep.id,
        sweep.status,
        format_ms(sweep.started_at_ms),
        sweep.data_source,
        &sweep.data_fingerprint[..16.min(sweep.data_fingerprint.len())]
    )?;
    for (i, rung) in rungs.iter().enumerate() {
        let shards = match rung.shards.len() {
            0 => String::new(),
            _ => format!(", shards {}", rung.shards.join(" ")),
        };
        let next_sharded = rungs.get(i + 1).is_some_and(|next| !next.shards.is_empty());
        let survive = match (i + 1 == rungs.len(), rung.survivors.len()) {
            (true, _) => "last rung so far".to_owned(),
            // Without the survivors file, a shard's store knows only its slice of the
            // next rung: `experiment collect --rung` has the whole picture.
            (false, n) if next_sharded && rung.survivors_from == SurvivorsFrom::NextRung => {
                format!("{n} of them ran in rung {} here", rung.rung + 1)
            }
            (false, n) => format!("{n} survive"),
        };
        writeln!(
            out,
            "\nrung {} on {} rows: {} of {} trials stored, {survive} (sweeps {}{shards})",
            rung.rung,
            rung.rows,
            rung.leaderboard.len(),
            rung.planned,
            rung.sweeps
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        )?;
        let grid_keys = varied_params(&rung.leaderboard);
        leaderboard::print(
            out,
            &Leaderboard {
                records: &rung.leaderboard,
                metric,
                grid_keys: &grid_keys,
            },
            top,
        )?;
        if !rung.survivors.is_empty() {
            let shown: Vec<&str> = rung
                .survivors
                .iter()
                .map(|k| &k[..k.len().min(12)])
                .collect();
            writeln!(out, "survivors: {}", shown.join(" "))?;
        }
    }
    if let Some(path) = &sweep.best_model_path {
        writeln!(out, "\nbest model: {path}")?;
    }
    Ok(Outcome::Success)
}

/// Compares trials side by side.
pub async fn compare(args: CompareArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let records = query::trials(&state_dir(&args.state), &args.trials).await?;
    if args.output.format() == OutputFormat::Json {
        super::print_json(out, &records)?;
        return Ok(Outcome::Success);
    }
    leaderboard::compare(out, &records)?;
    Ok(Outcome::Success)
}
