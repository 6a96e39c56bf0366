//! `netsec retrain`: one scheduled pipeline run — fresh data, validation, drift against the
//! champion's training data, sweep, promotion and (when promoted) publishing — with one
//! summary at the end.
//!
//! Safe to run from a scheduler: a lock file in the state directory keeps two runs from
//! overlapping (the OS releases it when a process dies), and every stage is resumable or
//! idempotent (the sweep reuses finished trials, promoting the current champion again is a
//! no-op, publishing uploads only what is missing), so after a crash the same command goes
//! on where the last one stopped.

use std::fs::{File, TryLockError};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::cli::{OutputFormat, PromoteArgs, RetrainArgs, RunArgs, S3Args, StoreArgs};
use crate::config::grid::GridFile;
use crate::config::retrain::{OnDrift, RetrainFile};
use crate::data::drift::drift;
use crate::data::validate::validate;
use crate::data::{Schema, Table, dataset_from_table, load_file};
use crate::exit::{AfterCommit, Outcome, exit_code};
use crate::model_file::ModelFile;
use crate::registry::store::{NewVersion, VersionRow};
use crate::registry::{Policy, Registry};
use crate::storage::POINTER_FILE;
use crate::sweep::store::RunStore;

/// The lock file's name in the state directory.
const LOCK_FILE: &str = "retrain.lock";

/// How one stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum StageStatus {
    Ok,
    Warn,
    Skipped,
    Stopped,
    Rejected,
    Failed,
}

impl StageStatus {
    fn as_str(self) -> &'static str {
        match self {
            StageStatus::Ok => "ok",
            StageStatus::Warn => "warn",
            StageStatus::Skipped => "skipped",
            StageStatus::Stopped => "stopped",
            StageStatus::Rejected => "rejected",
            StageStatus::Failed => "failed",
        }
    }
}

/// One line of the summary.
#[derive(Debug, Serialize)]
struct Stage {
    stage: &'static str,
    status: StageStatus,
    seconds: f64,
    detail: String,
}

/// What the run prints at the end (and with `--output json`, all it prints).
#[derive(Debug, Serialize)]
struct Summary {
    config: PathBuf,
    experiment: String,
    model: String,
    stages: Vec<Stage>,
    exit_code: u8,
}

impl Summary {
    fn push(&mut self, stage: &'static str, status: StageStatus, started: Instant, detail: String) {
        self.stages.push(Stage {
            stage,
            status,
            seconds: started.elapsed().as_secs_f64(),
            detail,
        });
    }
}

/// Runs the pipeline of a retrain file.
pub fn run(args: RetrainArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let config = RetrainFile::from_file(&args.config)?;
    let grid = GridFile::from_file(&config.grid)?;
    let policy = Policy::from_file(&config.policy)?;
    let state_dir = args.registry.state.state_dir.clone();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating the state directory {}", state_dir.display()))?;

    let mut summary = Summary {
        config: args.config.clone(),
        experiment: grid.name.clone(),
        model: policy.model.clone(),
        stages: Vec::new(),
        exit_code: 0,
    };
    let json = args.output == OutputFormat::Json;
    // Stages print their own reports as they go; with --output json only the summary does.
    let mut sink = std::io::sink();
    let stage_out: &mut dyn Write = if json { &mut sink } else { out };
    // Held until the end of the run; a second run reports the holder in its summary.
    let started = Instant::now();
    let result = match RunLock::acquire(&state_dir.join(LOCK_FILE)) {
        Ok(lock) => {
            let result = stages(&args, &config, &grid, &policy, &mut summary, stage_out);
            drop(lock);
            result
        }
        Err(err) => {
            summary.push("lock", StageStatus::Failed, started, format!("{err:#}"));
            Err(err)
        }
    };
    summary.exit_code = match &result {
        Ok(outcome) => outcome.code(),
        Err(err) => exit_code(err),
    };
    if json {
        serde_json::to_writer_pretty(&mut *out, &summary)?;
        writeln!(out)?;
    } else {
        print_summary(out, &summary)?;
    }
    result
}

/// Runs the stages in order, recording each in the summary; stops at the first that fails.
fn stages(
    args: &RetrainArgs,
    config: &RetrainFile,
    grid: &GridFile,
    policy: &Policy,
    summary: &mut Summary,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let state_dir = &args.registry.state.state_dir;

    // Where to publish: the retrain file's destination, else --to / NETSEC_STORE, else the
    // state directory's store; checked before any stage so a typo costs no sweep.
    let store = StoreArgs {
        to: config
            .publish
            .as_ref()
            .and_then(|p| p.to.clone())
            .or_else(|| args.store.to.clone()),
        s3: S3Args {
            endpoint_url: config
                .publish
                .as_ref()
                .and_then(|p| p.endpoint_url.clone())
                .or_else(|| args.store.s3.endpoint_url.clone()),
        },
    };
    let publish_to = match &config.publish {
        Some(_) => Some(
            super::publish::publish_target(
                &policy.model,
                store.to.as_deref(),
                &store.s3,
                state_dir,
            )
            .with_context(|| format!("{}: publish", args.config.display()))?,
        ),
        None => None,
    };

    // Data and validation: rows that do not fit the schema stop the run (exit 2).
    let started = Instant::now();
    let schema = Schema::from_file(&grid.data.schema.value)?;
    let loaded = super::block(crate::pipeline::source::load_table(
        grid,
        &config.grid,
        &schema,
    ))
    .and_then(|(_, table)| {
        let dataset = dataset_from_table(&table, &schema)?;
        Ok((table, dataset))
    });
    let (table, dataset) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => {
            summary.push("data", StageStatus::Failed, started, format!("{err:#}"));
            return Err(err);
        }
    };
    let report = validate(&table, &schema);
    let dups = &report.duplicates;
    summary.push(
        "data",
        StageStatus::Ok,
        started,
        format!(
            "{} rows from {} ({} attacks), fingerprint {}; {} duplicate rows, {} conflicting vectors",
            dataset.len(),
            dataset.source,
            dataset.attacks(),
            &dataset.fingerprint[..12],
            dups.duplicate_rows,
            dups.conflicting_vectors
        ),
    );

    // Keep the rows this run trains on, so the next run can measure drift against them
    // even when the source (a file overwritten by each export, a collection) has changed.
    if let Err(err) = snapshot(&table, &dataset.fingerprint, state_dir) {
        tracing::warn!("cannot keep a copy of the training data for later drift checks: {err:#}");
    }

    // Drift against the data the current champion was trained on.
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let champion = runtime.block_on(champion_of(&args.registry.path(), policy))?;
    match champion {
        None => summary.push(
            "drift",
            StageStatus::Skipped,
            started,
            format!("{} has no `{}` yet", policy.model, policy.alias),
        ),
        Some(champion) => {
            let reference = reference_data(&champion.info, state_dir, &schema);
            match reference {
                Err(err) => summary.push(
                    "drift",
                    StageStatus::Skipped,
                    started,
                    format!("champion version {}: {err:#}", champion.version),
                ),
                Ok(reference) => {
                    let report = match drift(&reference, &table, &schema, config.drift.thresholds())
                    {
                        Ok(report) => report,
                        Err(err) => {
                            summary.push("drift", StageStatus::Failed, started, err.to_string());
                            return Err(err).context("comparing with the champion's training data");
                        }
                    };
                    if !report.drift_detected {
                        summary.push(
                            "drift",
                            StageStatus::Ok,
                            started,
                            format!(
                                "no drift from champion version {} in {} columns",
                                champion.version,
                                report.columns.len()
                            ),
                        );
                    } else {
                        let status = match config.drift.on_drift {
                            OnDrift::Stop => StageStatus::Stopped,
                            OnDrift::Warn => StageStatus::Warn,
                            OnDrift::Continue => StageStatus::Ok,
                        };
                        summary.push(
                            "drift",
                            status,
                            started,
                            format!(
                                "drift from champion version {} in {} of {} columns: {}",
                                champion.version,
                                report.drifted_columns.len(),
                                report.columns.len(),
                                report.drifted_columns.join(", ")
                            ),
                        );
                        if status == StageStatus::Stopped {
                            return Ok(Outcome::Invalid);
                        }
                    }
                }
            }
        }
    }

    // The sweep: finished trials in the run store are reused, so a rerun resumes.
    let started = Instant::now();
    writeln!(out, "== sweep {} ==", config.grid.display())?;
    let sweep = super::block(super::experiment_run::run(
        RunArgs {
            grid: config.grid.clone(),
            shard: None,
            model_out: None,
            top: 5,
            output: OutputFormat::Text,
            jobs: args.jobs,
            state: args.registry.state.clone(),
        },
        out,
    ));
    if let Err(err) = sweep {
        summary.push("sweep", StageStatus::Failed, started, format!("{err:#}"));
        return Err(err);
    }
    let newest = runtime.block_on(async {
        let store = RunStore::open(&RunStore::path_in(state_dir)).await?;
        let sweep = store.find_sweep(&grid.name).await;
        store.close().await;
        sweep
    })?;
    let Some(newest) = newest else {
        anyhow::bail!("the sweep of {} left no record in the run store", grid.name);
    };
    if newest.data_fingerprint != dataset.fingerprint {
        // A MongoDB collection can change between the two reads.
        tracing::warn!(
            "the data changed between the drift check ({}) and the sweep ({})",
            &dataset.fingerprint[..12],
            &newest.data_fingerprint[..12.min(newest.data_fingerprint.len())]
        );
    }
    summary.push(
        "sweep",
        StageStatus::Ok,
        started,
        format!(
            "sweep {}: {} trials, best {} ({})",
            newest.id,
            newest.planned,
            newest
                .best_trial
                .as_deref()
                .map_or("none", |k| &k[..12.min(k.len())]),
            newest
                .best_model_sha256
                .as_deref()
                .map_or("no model file".into(), |s| format!(
                    "model {}",
                    &s[..12.min(s.len())]
                ))
        ),
    );

    // Promotion by the policy, publishing in the same step when configured.
    let started = Instant::now();
    writeln!(out, "\n== promote ({}) ==", config.policy.display())?;
    let promoted = super::block(super::promote::run(
        PromoteArgs {
            run: None,
            best: Some(grid.name.clone()),
            policy: config.policy.clone(),
            dry_run: false,
            name: None,
            output: OutputFormat::Text,
            publish: publish_to.is_some(),
            store,
            registry: args.registry.clone(),
        },
        out,
    ));
    let outcome = match promoted {
        Ok(outcome) => outcome,
        Err(err) if err.downcast_ref::<AfterCommit>().is_some() => {
            summary.push("promote", StageStatus::Ok, started, err.to_string());
            summary.push(
                "publish",
                StageStatus::Failed,
                started,
                format!("{:#}", err.root_cause()),
            );
            return Err(err);
        }
        Err(err) => {
            summary.push("promote", StageStatus::Failed, started, format!("{err:#}"));
            return Err(err);
        }
    };
    let champion_now = runtime.block_on(champion_of(&args.registry.path(), policy))?;
    let holder = champion_now.map_or("nobody".into(), |c| {
        format!("version {} ({})", c.version, &c.info.sha256[..12])
    });
    if outcome == Outcome::Rejected {
        summary.push(
            "promote",
            StageStatus::Rejected,
            started,
            format!("rejected by the policy; `{}` stays {holder}", policy.alias),
        );
        return Ok(Outcome::Rejected);
    }
    summary.push(
        "promote",
        StageStatus::Ok,
        started,
        format!("`{}` of {} is {holder}", policy.alias, policy.model),
    );
    match publish_to {
        Some(url) => summary.push(
            "publish",
            StageStatus::Ok,
            started,
            format!(
                "{} names {holder}",
                url.join(&format!("{}/{POINTER_FILE}", policy.model))
            ),
        ),
        None => summary.push(
            "publish",
            StageStatus::Skipped,
            started,
            "no `publish:` in the retrain file".into(),
        ),
    }
    Ok(outcome)
}

/// The version the policy's alias points at now, if any.
async fn champion_of(registry: &Path, policy: &Policy) -> anyhow::Result<Option<VersionRow>> {
    let registry = Registry::open(registry).await?;
    let champion = registry.alias_version(&policy.model, &policy.alias).await;
    registry.close().await;
    Ok(champion?)
}

/// Where training data is kept, by data fingerprint.
fn snapshot_path(state_dir: &Path, fingerprint: &str) -> PathBuf {
    state_dir
        .join("data")
        .join(format!("{fingerprint}.parquet"))
}

/// Writes the rows to the state directory's `data/<fingerprint>.parquet` unless present.
fn snapshot(table: &Table, fingerprint: &str, state_dir: &Path) -> anyhow::Result<()> {
    let path = snapshot_path(state_dir, fingerprint);
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(path.parent().unwrap_or(state_dir))?;
    super::write_frame(&path, &mut table.frame.clone())
}

/// The champion's training data: the copy a retrain kept, else its recorded source if that
/// still holds the same rows (same fingerprint).
fn reference_data(
    champion: &NewVersion,
    state_dir: &Path,
    schema: &Schema,
) -> anyhow::Result<Table> {
    let kept = snapshot_path(state_dir, &champion.data_fingerprint);
    if kept.exists() {
        return Ok(load_file(&kept)?);
    }
    let (file, _) = ModelFile::load(&champion.path)?;
    let source = file
        .data_source
        .context("its model file records no data source, so its training data cannot be read")?;
    let table = super::block(crate::pipeline::source::read_source(&source, schema))?;
    let fingerprint = dataset_from_table(&table, schema)
        .map(|d| d.fingerprint)
        .unwrap_or_default();
    if fingerprint != champion.data_fingerprint {
        anyhow::bail!(
            "its training data ({}) has changed since (fingerprint {} then), and no copy was kept",
            table.source,
            &champion.data_fingerprint[..12.min(champion.data_fingerprint.len())]
        );
    }
    Ok(table)
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

/// An exclusive lock on a file in the state directory, held for the whole run.
struct RunLock {
    _file: File,
}

/// Another retrain holds the lock.
#[derive(Debug, thiserror::Error)]
#[error(
    "another `netsec retrain` is running on this state directory ({holder}); not starting a second one"
)]
pub struct LockHeld {
    holder: String,
}

impl RunLock {
    fn acquire(path: &Path) -> anyhow::Result<RunLock> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(path).unwrap_or_default();
                let holder = holder.trim();
                return Err(LockHeld {
                    holder: if holder.is_empty() {
                        format!("lock {}", path.display())
                    } else {
                        format!("{holder}, lock {}", path.display())
                    },
                }
                .into());
            }
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("locking {}", path.display()));
            }
        }
        // Who holds it, for the message a second run prints.
        file.set_len(0)?;
        file.rewind()?;
        write!(
            file,
            "pid {} since {}",
            std::process::id(),
            crate::shared::now_ms() / 1000
        )?;
        Ok(RunLock { _file: file })
    }
}
