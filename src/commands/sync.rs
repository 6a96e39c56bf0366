//! `netsec sync`: the entry point for sending the tracking outbox to the MLflow server.

use std::io::Write;

use anyhow::Context;

use crate::cli::SyncArgs;
use crate::exit::{Outcome, UsageError};
use crate::sweep::store::{RunStore, SweepStatus};
use crate::tracking::{MlflowClient, Outbox, Sender, TrackingConfig};

/// Sends every pending record; runs of sweeps whose process died are closed as KILLED.
pub fn run(args: SyncArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let db = RunStore::path_in(&args.state.state_dir);
    if !db.exists() {
        writeln!(
            out,
            "nothing to send: no state in {}",
            args.state.state_dir.display()
        )?;
        return Ok(Outcome::Success);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = runtime.block_on(RunStore::open(&db))?;
    runtime.block_on(store.reap_dead_sweeps())?;
    let dead: Vec<i64> = runtime
        .block_on(store.sweeps())?
        .iter()
        .filter(|s| {
            s.status == SweepStatus::Killed.as_str() || s.status == SweepStatus::Failed.as_str()
        })
        .map(|s| s.id)
        .collect();
    runtime.block_on(store.close());
    let outbox = runtime.block_on(Outbox::open(&db))?;

    let env_uri = std::env::var("MLFLOW_TRACKING_URI")
        .ok()
        .filter(|u| !u.trim().is_empty());
    let uri = match args.uri.clone().or(env_uri) {
        Some(uri) => uri,
        None => runtime.block_on(outbox.pending_server())?.ok_or_else(|| {
            UsageError("no tracking server: set MLFLOW_TRACKING_URI or pass --uri".into())
        })?,
    };
    let config = TrackingConfig::from_lookup(|name| match name {
        "MLFLOW_TRACKING_URI" => Some(uri.clone()),
        other => std::env::var(other).ok(),
    })
    .map_err(|e| UsageError(e.to_string()))?;
    let client = MlflowClient::new(config)?;
    let sender = Sender::new(client, outbox.clone(), &db);
    let server = sender.server().to_owned();

    let _lock = match sender.try_lock().context("taking the outbox lock")? {
        Some(lock) => lock,
        None => {
            tracing::info!("another netsec process is sending the outbox; waiting for it");
            sender.lock().context("waiting for the outbox lock")?
        }
    };
    runtime.block_on(outbox.close_unclosed_sweeps(&dead, Some(&server)))?;
    if args.retry_failed {
        let again = runtime.block_on(outbox.retry_failed())?;
        tracing::info!(records = again, "refused records queued again");
    }
    let report = runtime.block_on(sender.drain())?;
    let counts = runtime.block_on(outbox.counts())?;
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
    for (name, id) in sender.experiments() {
        writeln!(
            out,
            "mlflow experiment `{name}`: {}",
            sender.client().experiment_url(&id)
        )?;
    }
    if let Some(err) = report.stopped {
        runtime.block_on(outbox.close());
        return Err(err).context(format!(
            "{} records still wait in the outbox; run `netsec sync` again when the server answers",
            counts.pending
        ));
    }
    if counts.failed > 0 {
        for (id, error) in runtime.block_on(outbox.failures(5))? {
            writeln!(out, "refused record {id}: {error}")?;
        }
        runtime.block_on(outbox.close());
        anyhow::bail!(
            "{} records were refused by the server; fix the cause and run `netsec sync --retry-failed`",
            counts.failed
        );
    }
    runtime.block_on(outbox.close());
    Ok(Outcome::Success)
}
