//! `netsec experiment list | show | compare`: reading the local run store.

use std::io::Write;

use serde::Serialize;

use crate::cli::{CompareArgs, ListArgs, OutputFormat, ShowArgs, StateArgs};
use crate::exit::Outcome;
use crate::shared::format_ms;
use crate::state::StateDir;
use crate::sweep::leaderboard::{self, Leaderboard};
use crate::sweep::query;
pub(super) use crate::sweep::query::varied_params;
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
    } = query::board(&state_dir(&args.state), &args.sweep).await?;
    if args.output.format() == OutputFormat::Json {
        #[derive(Serialize)]
        struct Show<'a> {
            sweep: &'a crate::sweep::store::SweepRow,
            leaderboard: &'a [TrialRecord],
        }
        super::print_json(
            out,
            &Show {
                sweep: &sweep,
                leaderboard: &records,
            },
        )?;
        return Ok(Outcome::Success);
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
