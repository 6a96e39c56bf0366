//! `netsec model threshold`: move a model's operating point without a fit.

use std::io::Write;

use crate::cli::ThresholdArgs;
use crate::exit::Outcome;
use crate::models::operating_point::Target;
use crate::pipeline::threshold::{ThresholdInput, default_output, move_threshold};
use crate::sweep::leaderboard;

/// Moves the cut, writes the new model file and prints the point before and after.
pub async fn run(args: ThresholdArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let input = ThresholdInput {
        output: args
            .output
            .clone()
            .unwrap_or_else(|| default_output(&args.model)),
        model: args.model,
        target: Target {
            max_fpr: args.max_fpr,
            min_detection_rate: args.min_detection_rate,
        },
        score_holdout: !args.no_holdout,
    };
    let moved = move_threshold(&input).await?;
    writeln!(
        out,
        "cut moved from {} ({}) to {} ({}), without a fit",
        moved.before.threshold,
        moved.before.target.describe(),
        moved.after.threshold,
        moved.after.target.describe()
    )?;
    leaderboard::operating_point(out, &moved.after)?;
    if let Some(why) = &moved.holdout_skipped {
        writeln!(out, "  held out:    not scored: {why}")?;
    }
    if let Some(flows) = args.flows_per_day {
        let alarms = moved.false_alarms_per_day(flows);
        writeln!(
            out,
            "  at {flows} flows a day: about {:.0} false alarms a day if nearly all flows \
             are normal ({} FPR; 95% upper bound {:.0})",
            alarms.expected, alarms.basis, alarms.upper_95
        )?;
    }
    writeln!(
        out,
        "\nmodel file: {} (sha256 {})",
        moved.output.display(),
        crate::shared::short_hash(&moved.sha256)
    )?;
    Ok(Outcome::Success)
}
