//! `netsec experiment collect`: the entry point for ranking the union of a sharded sweep,
//! from the run stores of its shard processes and/or from its runs in MLflow. The work is
//! `pipeline::collect`; this file turns the arguments into its input and prints its result.

use std::io::Write;

use crate::cli::{CollectArgs, OutputFormat};
use crate::exit::Outcome;
use crate::pipeline::collect::{CollectInput, collect};
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
        rung: args.rung,
        survivors: args.survivors.clone(),
    };
    let c = collect(&input).await?;
    match args.output.format() {
        OutputFormat::Json => {
            super::print_json(out, &c.report(c.best_label()))?;
        }
        OutputFormat::Text => c.render(out, args.into.as_deref(), args.top)?,
    }
    let rung_blocked = c.halving.as_ref().is_some_and(|h| h.blocks_next_rung());
    if c.is_incomplete() {
        let m = &c.union;
        tracing::warn!(
            missing_trials = m.missing.len(),
            missing_shards = m.shards.missing.len(),
            conflicting_shard_counts = ?m.shards.conflicting_counts,
            "the union is incomplete: rerun the missing shards (finished trials are reused)"
        );
        if args.strict || rung_blocked {
            return Ok(Outcome::Invalid);
        }
    }
    Ok(Outcome::Success)
}
