//! `retrain` as a workflow: one scheduled pipeline run — fresh data, validation, drift
//! against the champion's training data, the sweep ([`experiment::run`]), the promotion
//! ([`promote::promote`]) and, when promoted, publishing (through [`publish`]) — summed up
//! stage by stage in a [`Summary`].
//!
//! Safe to run from a scheduler: the state directory's run lock ([`StateDir::lock`]) keeps
//! two runs from overlapping (the OS releases it when a process dies), and every stage is
//! resumable or idempotent (the sweep reuses finished trials, promoting the current
//! champion again is a no-op, publishing uploads only what is missing), so after a crash
//! the same run goes on where the last one stopped.
//!
//! [`publish`]: super::publish

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use polars::prelude::ParquetWriter;
use serde::Serialize;

use super::experiment::{self, ExperimentInput, ExperimentOutcome};
use super::promote::{self, CandidateSpec, PromoteInput};
use super::publish::{MoveReporter, StoreTarget, publish_target};
use super::source::{load_table, read_source};
use crate::config::grid::GridFile;
use crate::config::retrain::{OnDrift, RetrainFile};
use crate::data::drift::drift;
use crate::data::validate::validate;
use crate::data::{Schema, Table, dataset_from_table, load_file};
use crate::exit::{AfterCommit, Outcome, exit_code};
use crate::fsutil::write_atomic;
use crate::model_file::ModelFile;
use crate::registry::promote::Promoted;
use crate::registry::store::{NewVersion, VersionRow};
use crate::registry::{Policy, Registry};
use crate::shared::short_hash;
use crate::state::StateDir;
use crate::storage::POINTER_FILE;
use crate::sweep::CancelToken;
use crate::sweep::report::SweepReporter;
use crate::sweep::store::SweepStatus;

/// The name of the run lock in the state directory.
const LOCK: &str = "retrain";

/// What `netsec retrain` runs.
#[derive(Debug, Clone)]
pub struct RetrainInput {
    /// The retrain file (grid, policy, drift rule, publish destination).
    pub config: PathBuf,
    /// The state directory (run store, model files, kept training data, run lock).
    pub state: StateDir,
    /// The registry database.
    pub registry: PathBuf,
    /// Where to publish when the retrain file's `publish:` section leaves the destination
    /// or the endpoint out (`--to` / `NETSEC_STORE`, `AWS_ENDPOINT_URL`).
    pub store: StoreTarget,
    /// Worker threads of the sweep; `None` uses every core.
    pub jobs: Option<usize>,
}

/// How one stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    /// Done.
    Ok,
    /// Done, with something to look at (drift under `on_drift: warn`).
    Warn,
    /// Nothing to do (no champion to compare with, no `publish:`).
    Skipped,
    /// Ended the run on purpose (drift under `on_drift: stop`).
    Stopped,
    /// The policy rejected the candidate.
    Rejected,
    /// Failed; the run ends here.
    Failed,
}

impl StageStatus {
    /// The status as the summary spells it.
    pub fn as_str(self) -> &'static str {
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
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// `lock`, `data`, `drift`, `sweep`, `promote` or `publish`.
    pub stage: &'static str,
    /// How it ended.
    pub status: StageStatus,
    /// Its wall time.
    pub seconds: f64,
    /// What it did or why it failed.
    pub detail: String,
}

/// What a run did, stage by stage (the whole of `--format json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The retrain file.
    pub config: PathBuf,
    /// The grid's experiment name.
    pub experiment: String,
    /// The policy's registered model.
    pub model: String,
    /// The stages that ran, in order; the last one ended the run.
    pub stages: Vec<Stage>,
    /// The process exit code of the run: 0 done, 2 bad input or drift stop, 3 rejected,
    /// 1 failure.
    pub exit_code: u8,
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

/// A run that started: its summary, and how it ended — an outcome, or the error that
/// stopped it (the summary names the stage and holds the error's exit code).
#[derive(Debug)]
pub struct Retrained {
    /// The stages and the exit code.
    pub summary: Summary,
    /// How the run ended.
    pub result: anyhow::Result<Outcome>,
}

/// What a run shows while it goes: the sweep's and the promotion's own reports. The
/// promotion's decision and publication come through [`MoveReporter`].
pub trait RetrainReporter: MoveReporter<Promoted> {
    /// The sweep of `grid` starts.
    fn sweep_started(&mut self, grid: &Path) -> anyhow::Result<()>;
    /// The sweep ended (also when every trial failed, before that fails the stage).
    fn swept(&mut self, outcome: &ExperimentOutcome) -> anyhow::Result<()>;
    /// The promotion by `policy` starts; `publishing`: an accepted decision is published.
    fn promote_started(&mut self, policy: &Path, publishing: bool) -> anyhow::Result<()>;
}

/// Runs the pipeline of a retrain file under the state directory's run lock. An error
/// means the run did not start (an unusable retrain, grid or policy file, no state
/// directory); once it started, the [`Summary`] records every stage, also the one that
/// failed. `cancel` stops the sweep (the run store keeps its finished trials); `progress`
/// shows its trials.
pub async fn retrain(
    input: &RetrainInput,
    cancel: &CancelToken,
    progress: &(dyn SweepReporter + Sync),
    reporter: &mut dyn RetrainReporter,
) -> anyhow::Result<Retrained> {
    let config = RetrainFile::from_file(&input.config)?;
    let grid = GridFile::from_file(&config.grid)?;
    let policy = Policy::from_file(&config.policy)?;
    let root = input.state.root();
    std::fs::create_dir_all(root)
        .with_context(|| format!("creating the state directory {}", root.display()))?;

    let mut summary = Summary {
        config: input.config.clone(),
        experiment: grid.name.clone(),
        model: policy.model.clone(),
        stages: Vec::new(),
        exit_code: 0,
    };
    let run = Run {
        input,
        config: &config,
        grid: &grid,
        policy: &policy,
    };
    // Held until the end of the run; a second run reports the holder in its summary.
    let started = Instant::now();
    let result = match input.state.lock(LOCK) {
        Ok(lock) => {
            let result = run.stages(&mut summary, cancel, progress, reporter).await;
            drop(lock);
            result
        }
        Err(err) => {
            let err = anyhow::Error::from(err);
            summary.push("lock", StageStatus::Failed, started, format!("{err:#}"));
            Err(err)
        }
    };
    summary.exit_code = match &result {
        Ok(outcome) => outcome.code(),
        Err(err) => exit_code(err),
    };
    Ok(Retrained { summary, result })
}

/// One run's inputs, read once.
struct Run<'a> {
    input: &'a RetrainInput,
    config: &'a RetrainFile,
    grid: &'a GridFile,
    policy: &'a Policy,
}

impl Run<'_> {
    /// Runs the stages in order, recording each in the summary; stops at the first that
    /// fails.
    async fn stages(
        &self,
        summary: &mut Summary,
        cancel: &CancelToken,
        progress: &(dyn SweepReporter + Sync),
        reporter: &mut dyn RetrainReporter,
    ) -> anyhow::Result<Outcome> {
        let Run {
            input,
            config,
            grid,
            policy,
        } = *self;
        let state = &input.state;

        // Where to publish: checked before any stage so that a typo costs no sweep.
        let store = self.store_target();
        let publish_to = match &config.publish {
            Some(_) => Some(
                publish_target(&policy.model, store.to.as_deref(), &store.s3, state)
                    .with_context(|| format!("{}: publish", input.config.display()))?,
            ),
            None => None,
        };

        // Data and validation: rows that do not fit the schema stop the run (exit 2).
        let started = Instant::now();
        let schema = Schema::from_file(&grid.data.schema.value)?;
        let loaded = match load_table(grid, &config.grid, &schema).await {
            Ok((_, table)) => dataset_from_table(&table, &schema)
                .map(|dataset| (table, dataset))
                .map_err(anyhow::Error::from),
            Err(err) => Err(err),
        };
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
                short_hash(&dataset.fingerprint),
                dups.duplicate_rows,
                dups.conflicting_vectors
            ),
        );

        // Keep the rows this run trains on, so that the next run can measure drift against
        // them even when the source (a file overwritten by each export, a collection) has
        // changed.
        if let Err(err) = snapshot(&table, &dataset.fingerprint, state) {
            tracing::warn!(
                "cannot keep a copy of the training data for later drift checks: {err:#}"
            );
        }

        // Drift against the data the current champion was trained on.
        let started = Instant::now();
        match champion_of(&input.registry, policy).await? {
            None => summary.push(
                "drift",
                StageStatus::Skipped,
                started,
                format!("{} has no `{}` yet", policy.model, policy.alias),
            ),
            Some(champion) => match reference_data(&champion.info, state, &schema).await {
                Err(err) => summary.push(
                    "drift",
                    StageStatus::Skipped,
                    started,
                    format!("champion version {}: {err:#}", champion.version),
                ),
                Ok(reference) => {
                    let thresholds = config.drift.thresholds();
                    let report = match drift(&reference, &table, &schema, thresholds) {
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
            },
        }

        // The sweep: finished trials in the run store are reused, so a rerun resumes.
        let started = Instant::now();
        reporter.sweep_started(&config.grid)?;
        let sweep_input = ExperimentInput {
            grid: config.grid.clone(),
            state: state.clone(),
            shard: None,
            jobs: input.jobs,
            model_out: None,
            rung: None,
            survivors: None,
        };
        let swept = match experiment::run(&sweep_input, cancel, progress).await {
            Ok(outcome) => reporter.swept(&outcome).and_then(|()| {
                let sweep = &outcome.sweep;
                if sweep.status == SweepStatus::Failed {
                    let first = sweep.records[0].error.clone().unwrap_or_default();
                    anyhow::bail!("every trial failed; the first error: {first}");
                }
                Ok(outcome)
            }),
            Err(err) => Err(err),
        };
        let swept = match swept {
            Ok(swept) => swept,
            Err(err) => {
                summary.push("sweep", StageStatus::Failed, started, format!("{err:#}"));
                return Err(err);
            }
        };
        if swept.data_fingerprint != dataset.fingerprint {
            // A MongoDB collection can change between the two reads.
            tracing::warn!(
                "the data changed between the drift check ({}) and the sweep ({})",
                short_hash(&dataset.fingerprint),
                short_hash(&swept.data_fingerprint)
            );
        }
        let sweep = &swept.sweep;
        summary.push(
            "sweep",
            StageStatus::Ok,
            started,
            format!(
                "sweep {}: {} trials, best {} ({})",
                sweep.sweep_id,
                sweep.planned,
                sweep.best.as_ref().map_or("none", |b| short_hash(&b.trial)),
                sweep
                    .best
                    .as_ref()
                    .map_or("no model file".into(), |b| format!(
                        "model {}",
                        short_hash(&b.sha256)
                    ))
            ),
        );

        // Promotion by the policy, publishing in the same step when configured (the
        // promotion workflow publishes before it mirrors into MLflow, and publishes again
        // when the champion already holds, which retries a publication that failed).
        let started = Instant::now();
        reporter.promote_started(&config.policy, publish_to.is_some())?;
        let promote_input = PromoteInput {
            policy: config.policy.clone(),
            name: None,
            candidate: CandidateSpec::Best(grid.name.clone()),
            dry_run: false,
            publish: publish_to.as_ref().map(|_| store),
            registry: input.registry.clone(),
            state: state.clone(),
        };
        let rejected = match promote::promote(&promote_input, reporter).await {
            Ok(Promoted::Decided { report, .. }) => !report.promoted(),
            Ok(Promoted::AlreadyHolds { .. }) => false,
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
        let holder = champion_of(&input.registry, policy)
            .await?
            .map_or("nobody".into(), |c| {
                format!("version {} ({})", c.version, short_hash(&c.info.sha256))
            });
        if rejected {
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
        Ok(Outcome::Success)
    }

    /// The store to publish to: the retrain file's destination and endpoint, each falling
    /// back to the caller's (command line / environment).
    fn store_target(&self) -> StoreTarget {
        let publish = self.config.publish.as_ref();
        let fallback = &self.input.store;
        StoreTarget {
            to: publish
                .and_then(|p| p.to.clone())
                .or_else(|| fallback.to.clone()),
            s3: match publish.and_then(|p| p.endpoint_url.clone()) {
                // An empty endpoint in the file means "unset", as in the environment.
                Some(url) => crate::storage::S3Options::with_endpoint(Some(url)),
                None => fallback.s3.clone(),
            },
        }
    }
}

/// The version the policy's alias points at now, if any.
async fn champion_of(registry: &Path, policy: &Policy) -> anyhow::Result<Option<VersionRow>> {
    let registry = Registry::open(registry).await?;
    let champion = registry.alias_version(&policy.model, &policy.alias).await;
    registry.close().await;
    Ok(champion?)
}

/// Writes the rows to the state directory's kept training data unless present (the name
/// is the fingerprint, so a present file holds the same rows).
fn snapshot(table: &Table, fingerprint: &str, state: &StateDir) -> anyhow::Result<()> {
    let path = state.data_snapshot(fingerprint);
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(state.data())?;
    let mut frame = table.frame.clone();
    write_atomic(&path, |w| {
        ParquetWriter::new(w)
            .finish(&mut frame)
            .map(|_| ())
            .map_err(std::io::Error::other)
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// The champion's training data: the copy a retrain kept, else its recorded source if that
/// still holds the same rows (same fingerprint).
async fn reference_data(
    champion: &NewVersion,
    state: &StateDir,
    schema: &Schema,
) -> anyhow::Result<Table> {
    let kept = state.data_snapshot(&champion.data_fingerprint);
    if kept.exists() {
        return Ok(load_file(&kept)?);
    }
    let (file, _) = ModelFile::load(&champion.path)?;
    let source = file
        .data_source
        .context("its model file records no data source, so its training data cannot be read")?;
    let table = read_source(&source, schema).await?;
    let fingerprint = dataset_from_table(&table, schema)
        .map(|d| d.fingerprint)
        .unwrap_or_default();
    if fingerprint != champion.data_fingerprint {
        anyhow::bail!(
            "its training data ({}) has changed since (fingerprint {} then), and no copy was kept",
            table.source,
            short_hash(&champion.data_fingerprint)
        );
    }
    Ok(table)
}
