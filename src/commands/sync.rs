//! `netsec sync`: the entry point for sending the tracking outbox to the MLflow server.

use std::io::Write;

use anyhow::Context;

use crate::cli::SyncArgs;
use crate::exit::Outcome;
use crate::state::StateDir;
use crate::tracking::sync::{SyncInput, Synced, sync};

/// Sends every pending record; runs of sweeps whose process died are closed as KILLED.
pub async fn run(args: SyncArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let input = SyncInput {
        state: StateDir::new(&args.state.state_dir),
        uri: args.uri,
        retry_failed: args.retry_failed,
    };
    let report = match sync(&input).await? {
        Synced::NoState => {
            writeln!(
                out,
                "nothing to send: no state in {}",
                input.state.root().display()
            )?;
            return Ok(Outcome::Success);
        }
        Synced::Sent(report) => report,
    };
    let (server, counts) = (&report.server, &report.counts);
    writeln!(
        out,
        "sent {} records to {server}; {} waiting, {} refused, {} set aside, {} sent in all",
        report.sent, counts.pending, counts.failed, counts.skipped, counts.sent
    )?;
    if report.skipped > 0 {
        writeln!(
            out,
            "{} registry moves set aside: {server} has no model registry (`netsec sync \
             --retry-failed` sends them to a server that has one)",
            report.skipped
        )?;
    }
    for (name, url) in &report.experiments {
        writeln!(out, "mlflow experiment `{name}`: {url}")?;
    }
    if let Some(err) = report.stopped {
        return Err(err).context(format!(
            "{} records still wait in the outbox; run `netsec sync` again when the server answers",
            counts.pending
        ));
    }
    if counts.failed > 0 {
        for (id, error) in &report.failures {
            writeln!(out, "refused record {id}: {error}")?;
        }
        anyhow::bail!(
            "{} records were refused by the server; fix the cause and run `netsec sync --retry-failed`",
            counts.failed
        );
    }
    Ok(Outcome::Success)
}
