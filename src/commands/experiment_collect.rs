//! `netsec experiment collect`: the entry point for ranking the union of a sharded sweep,
//! from the run stores of its shard processes and/or from its runs in MLflow.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::experiment_show::varied_params;
use super::leaderboard::{self, Leaderboard};
use crate::cli::{CollectArgs, OutputFormat};
use crate::config::grid::{GridFile, SelectMetric};
use crate::data::Schema;
use crate::exit::{Outcome, UsageError};
use crate::fsutil::write_atomic;
use crate::pipeline::source::{load_data, tracking_client};
use crate::registry::RegistryError;
use crate::registry::store::{read_verified, verify_file};
use crate::sweep::collect::{Duplicate, ShardCoverage, Source, Union, union};
use crate::sweep::plan::{KeyContext, expand, trial_key};
use crate::sweep::record::{MeanStd, TrialRecord, TrialStatus, metric_values};
use crate::sweep::store::{NewSweep, RunStore, SweepRow, SweepStatus};
use crate::tracking::MlflowClient;
use crate::tracking::collect::{LoggedSweep, logged_sweeps};

/// What the grid file says about the sweep, when one is given.
struct Plan {
    experiment: String,
    tracking_experiment: String,
    metric: SelectMetric,
    data_fingerprint: String,
    keys: Vec<String>,
    client: Option<MlflowClient>,
}

/// A sweep found in one of the sources, before choosing which ones belong.
enum Found {
    Local { store: usize, sweep: SweepRow },
    Logged(LoggedSweep),
}

impl Found {
    fn experiment(&self) -> &str {
        match self {
            Found::Local { sweep, .. } => &sweep.experiment,
            Found::Logged(s) => &s.experiment,
        }
    }

    fn fingerprint(&self) -> &str {
        match self {
            Found::Local { sweep, .. } => &sweep.data_fingerprint,
            Found::Logged(s) => &s.data_fingerprint,
        }
    }

    fn started_ms(&self) -> i64 {
        match self {
            Found::Local { sweep, .. } => sweep.started_at_ms,
            Found::Logged(s) => s.start_ms,
        }
    }

    fn metric(&self) -> Option<&str> {
        match self {
            Found::Local { sweep, .. } => Some(&sweep.select_metric),
            Found::Logged(s) => s.select_metric.as_deref(),
        }
    }
}

/// A row of the JSON leaderboard: the trial, its test metrics by name, and where it was
/// found.
#[derive(Debug, Serialize)]
struct Row<'a> {
    rank: usize,
    key: &'a str,
    algorithm: &'a str,
    params: &'a crate::models::Params,
    status: TrialStatus,
    cv: &'a BTreeMap<String, MeanStd>,
    test: Option<BTreeMap<&'static str, f64>>,
    fit_seconds: f64,
    error: Option<&'a str>,
    sources: &'a [String],
}

/// A source as reported.
#[derive(Debug, Serialize)]
struct SourceSummary {
    name: String,
    kind: &'static str,
    shards: Vec<String>,
    trials: usize,
}

/// The best trial and its model file, when a run store has it.
#[derive(Debug, Clone, Serialize)]
struct Best {
    trial: String,
    label: String,
    model_path: Option<PathBuf>,
    model_sha256: Option<String>,
}

/// Where `--into` merged the union.
#[derive(Debug, Serialize)]
struct Merged {
    store: PathBuf,
    sweep_id: i64,
    trials: usize,
    model_path: Option<PathBuf>,
}

/// What `--output json` prints.
#[derive(Debug, Serialize)]
struct CollectSummary<'a> {
    experiment: &'a str,
    select_metric: &'static str,
    data_fingerprint: &'a str,
    sources: Vec<SourceSummary>,
    shards: &'a ShardCoverage,
    trials_planned: Option<usize>,
    trials: usize,
    trials_failed: usize,
    missing: &'a [String],
    duplicates: &'a [Duplicate],
    best: Option<Best>,
    merged_into: Option<Merged>,
    /// Why `--into` was given but nothing was merged.
    not_merged: Option<&'static str>,
    leaderboard: Vec<Row<'a>>,
}

/// Collects, ranks and prints the union; merges it into `--into` when asked.
pub fn run(args: CollectArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let plan = match &args.grid {
        Some(path) => Some(plan_of(path, args.from_mlflow)?),
        None => None,
    };
    let experiment = match (&plan, &args.experiment) {
        (Some(p), _) => p.experiment.clone(),
        (None, Some(name)) => name.clone(),
        // clap requires one of the two.
        (None, None) => return Err(UsageError("give a grid file or --experiment".into()).into()),
    };
    let store_paths = store_paths(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    let mut stores = Vec::new();
    let mut found = Vec::new();
    for path in &store_paths {
        let store = runtime.block_on(RunStore::open(path))?;
        for sweep in runtime.block_on(store.sweeps())? {
            found.push(Found::Local {
                store: stores.len(),
                sweep,
            });
        }
        stores.push(store);
    }
    if args.from_mlflow {
        let tracking_experiment = plan
            .as_ref()
            .map_or(experiment.as_str(), |p| p.tracking_experiment.as_str());
        let client = match plan.as_ref().and_then(|p| p.client.clone()) {
            Some(client) => client,
            None => env_client()?,
        };
        let logged = runtime
            .block_on(logged_sweeps(&client, tracking_experiment))
            .with_context(|| {
                format!("reading the runs of MLflow experiment `{tracking_experiment}`")
            })?
            .ok_or_else(|| {
                UsageError(format!(
                    "the MLflow server {} has no experiment `{tracking_experiment}`",
                    client.config().base_url
                ))
            })?;
        found.extend(logged.into_iter().map(Found::Logged));
    }

    found.retain(|f| f.experiment() == experiment);
    let fingerprint = match &plan {
        Some(p) => p.data_fingerprint.clone(),
        None => found
            .iter()
            .max_by_key(|f| f.started_ms())
            .map(|f| f.fingerprint().to_owned())
            .ok_or_else(|| {
                UsageError(format!(
                    "no sweep of experiment `{experiment}` in {}",
                    describe_sources(&store_paths, args.from_mlflow)
                ))
            })?,
    };
    found.retain(|f| f.fingerprint() == fingerprint);
    let metric = match &plan {
        Some(p) => p.metric,
        None => found
            .iter()
            .find_map(|f| f.metric())
            .and_then(|m| serde_json::from_value(serde_json::Value::String(m.into())).ok())
            .unwrap_or(SelectMetric::F1),
    };

    let (sources, planned) = read_sources(&runtime, &stores, &store_paths, &found, plan.as_ref())?;
    let merged = union(&sources, planned.as_deref(), metric);
    let best = best_model(&merged, &found, &store_paths);
    let incomplete = merged.is_incomplete();
    // --strict refuses an incomplete union, so it must not leave one in --into either: a
    // later `promote --best` on that store would take the best of a partial sweep.
    let not_merged = (args.into.is_some() && args.strict && incomplete)
        .then_some("the union is incomplete and --strict was given");
    let into = match &args.into {
        Some(_) if not_merged.is_some() => None,
        Some(target) => Some(merge_into(
            &runtime,
            target,
            &ToMerge {
                experiment: &experiment,
                merged: &merged,
                sources: &sources,
                found: &found,
                best: best.as_ref(),
                planned: planned.as_deref(),
            },
        )?),
        None => None,
    };
    for store in &stores {
        runtime.block_on(store.close());
    }

    let failed = merged
        .records
        .iter()
        .filter(|r| r.status == TrialStatus::Failed)
        .count();
    let summaries: Vec<SourceSummary> = sources
        .iter()
        .map(|s| SourceSummary {
            name: s.name.clone(),
            kind: s.kind,
            shards: s
                .shards
                .iter()
                .map(|sh| sh.map_or_else(|| "unsharded".to_owned(), |sh| sh.to_string()))
                .collect(),
            trials: s.records.len(),
        })
        .collect();
    match args.output {
        OutputFormat::Json => {
            let empty = Vec::new();
            let summary = CollectSummary {
                experiment: &experiment,
                select_metric: metric.name(),
                data_fingerprint: &fingerprint,
                sources: summaries,
                shards: &merged.shards,
                trials_planned: planned.as_ref().map(Vec::len),
                trials: merged.records.len(),
                trials_failed: failed,
                missing: &merged.missing,
                duplicates: &merged.duplicates,
                best,
                merged_into: into,
                not_merged,
                leaderboard: merged
                    .records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| Row {
                        rank: i + 1,
                        key: &r.key,
                        algorithm: &r.algorithm,
                        params: &r.params,
                        status: r.status,
                        cv: &r.cv,
                        test: r.test.as_ref().map(metric_values),
                        fit_seconds: r.fit_seconds,
                        error: r.error.as_deref(),
                        sources: merged.sources_of.get(&r.key).unwrap_or(&empty),
                    })
                    .collect(),
            };
            serde_json::to_writer_pretty(&mut *out, &summary)?;
            writeln!(out)?;
        }
        OutputFormat::Text => print_text(
            out,
            &TextReport {
                experiment: &experiment,
                metric,
                sources: &summaries,
                merged: &merged,
                planned: planned.as_ref().map(Vec::len),
                whole_plan: plan.is_some(),
                failed,
                best: best.as_ref(),
                into: into.as_ref(),
                not_merged: args.into.as_deref().zip(not_merged),
                top: args.top,
            },
        )?,
    }
    if incomplete {
        tracing::warn!(
            missing_trials = merged.missing.len(),
            missing_shards = merged.shards.missing.len(),
            conflicting_shard_counts = ?merged.shards.conflicting_counts,
            "the union is incomplete: rerun the missing shards (finished trials are reused)"
        );
        if args.strict {
            return Ok(Outcome::Invalid);
        }
    }
    Ok(Outcome::Success)
}

/// Expands the grid and computes its trial keys (loading the data for its fingerprint).
fn plan_of(path: &Path, from_mlflow: bool) -> anyhow::Result<Plan> {
    let grid = GridFile::from_file(path)?;
    let candidates = expand(&grid, path)?;
    let schema = Schema::from_file(&grid.data.schema.value)?;
    let (_, data, _) = super::block(load_data(&grid, path, &schema))?;
    let context = KeyContext {
        data_fingerprint: &data.fingerprint,
        split: &grid.split,
        folds: grid.cv.folds,
    };
    let keys = candidates.iter().map(|c| trial_key(c, &context)).collect();
    let client = if from_mlflow {
        tracking_client(&grid)?
    } else {
        None
    };
    Ok(Plan {
        tracking_experiment: grid
            .tracking
            .experiment
            .clone()
            .unwrap_or_else(|| grid.name.clone()),
        experiment: grid.name,
        metric: grid.select.metric,
        data_fingerprint: data.fingerprint,
        keys,
        client,
    })
}

/// The MLflow client of `MLFLOW_TRACKING_URI` (collecting by name, with no grid file).
fn env_client() -> anyhow::Result<MlflowClient> {
    let set = std::env::var("MLFLOW_TRACKING_URI").is_ok_and(|u| !u.trim().is_empty());
    if !set {
        return Err(UsageError(
            "--from-mlflow needs MLFLOW_TRACKING_URI (or a grid file with tracking.uri)".into(),
        )
        .into());
    }
    MlflowClient::from_env().map_err(|e| UsageError(e.to_string()).into())
}

/// The run store files to read: `--stores` (files or state directories), else the store of
/// `--state-dir` unless only MLflow was asked for.
fn store_paths(args: &CollectArgs) -> anyhow::Result<Vec<PathBuf>> {
    let given: Vec<PathBuf> = if args.stores.is_empty() && !args.from_mlflow {
        vec![args.state.state_dir.clone()]
    } else {
        args.stores.clone()
    };
    given
        .into_iter()
        .map(|p| {
            let file = if p.is_dir() { RunStore::path_in(&p) } else { p };
            if file.is_file() {
                Ok(file)
            } else {
                Err(UsageError(format!(
                    "no run store at {} (give a shard's netsec.db or its state directory)",
                    file.display()
                ))
                .into())
            }
        })
        .collect()
}

fn describe_sources(stores: &[PathBuf], mlflow: bool) -> String {
    let mut parts: Vec<String> = stores.iter().map(|p| p.display().to_string()).collect();
    if mlflow {
        parts.push("MLflow".into());
    }
    parts.join(", ")
}

/// Reads the trials of each source; returns them with the planned keys (the grid's plan,
/// else the union of the local sweeps' plans, else unknown).
fn read_sources(
    runtime: &tokio::runtime::Runtime,
    stores: &[RunStore],
    paths: &[PathBuf],
    found: &[Found],
    plan: Option<&Plan>,
) -> anyhow::Result<(Vec<Source>, Option<Vec<String>>)> {
    let mut sources = Vec::new();
    let mut local_plan: Vec<String> = Vec::new();
    for (i, store) in stores.iter().enumerate() {
        let sweeps: Vec<&SweepRow> = found
            .iter()
            .filter_map(|f| match f {
                Found::Local { store, sweep } if *store == i => Some(sweep),
                _ => None,
            })
            .collect();
        if sweeps.is_empty() && plan.is_none() {
            continue;
        }
        let keys = match plan {
            Some(p) => p.keys.clone(),
            None => {
                let mut keys = Vec::new();
                for sweep in &sweeps {
                    keys.extend(runtime.block_on(store.sweep_keys(sweep.id))?);
                }
                keys.sort();
                keys.dedup();
                keys
            }
        };
        local_plan.extend(keys.iter().cloned());
        let stored = runtime.block_on(store.trials(&keys))?;
        let mut records: Vec<TrialRecord> = stored.into_values().collect();
        records.sort_by(|a, b| a.key.cmp(&b.key));
        let mut shards: Vec<_> = sweeps
            .iter()
            .map(|s| s.shard.as_deref().and_then(|t| t.parse().ok()))
            .collect();
        shards.dedup();
        sources.push(Source {
            name: paths[i].display().to_string(),
            kind: "store",
            shards,
            records,
        });
    }
    for sweep in found.iter().filter_map(|f| match f {
        Found::Logged(s) => Some(s),
        Found::Local { .. } => None,
    }) {
        let records = sweep
            .trials
            .iter()
            .filter(|t| plan.is_none_or(|p| p.keys.contains(&t.key)))
            .cloned()
            .collect();
        let status = match sweep.status {
            crate::tracking::RunStatus::Running => " (running)",
            crate::tracking::RunStatus::Killed => " (killed)",
            _ => "",
        };
        sources.push(Source {
            name: format!("mlflow run {} `{}`{status}", sweep.run_id, sweep.name),
            kind: "mlflow",
            shards: vec![sweep.shard.as_deref().and_then(|t| t.parse().ok())],
            records,
        });
    }
    let planned = match plan {
        Some(p) => Some(p.keys.clone()),
        None if !local_plan.is_empty() => {
            local_plan.sort();
            local_plan.dedup();
            Some(local_plan)
        }
        None => None,
    };
    Ok((sources, planned))
}

/// The best trial, with its model file when a local sweep saved it (a shard saves the
/// best of its slice, so the shard holding the overall best has its file).
fn best_model(merged: &Union, found: &[Found], paths: &[PathBuf]) -> Option<Best> {
    let top = merged
        .records
        .first()
        .filter(|r| r.status == TrialStatus::Finished)?;
    let saved = found.iter().find_map(|f| match f {
        Found::Local { store, sweep } if sweep.best_trial.as_deref() == Some(top.key.as_str()) => {
            let path = PathBuf::from(sweep.best_model_path.as_deref()?);
            // A relative path was relative to the directory the shard ran in; try that,
            // then the shard's state directory.
            let beside = paths[*store]
                .parent()
                .and_then(|dir| Some(dir.join("models").join(path.file_name()?)));
            let path = if path.is_file() {
                path
            } else {
                beside.filter(|p| p.is_file())?
            };
            Some((path, sweep.best_model_sha256.clone()))
        }
        _ => None,
    });
    let (model_path, model_sha256) = match saved {
        Some((path, sha)) => (Some(path), sha),
        None => (None, None),
    };
    Some(Best {
        trial: top.key.clone(),
        label: top.label(
            varied_params(&merged.records)
                .get(&top.algorithm)
                .map_or(&[][..], |k| k),
        ),
        model_path,
        model_sha256,
    })
}

/// What `--into` merges.
struct ToMerge<'a> {
    experiment: &'a str,
    merged: &'a Union,
    sources: &'a [Source],
    found: &'a [Found],
    best: Option<&'a Best>,
    planned: Option<&'a [String]>,
}

/// Merges the trials read from run stores into the run store `target` as one finished
/// sweep (never replacing a finished trial), and copies the best model file beside it.
fn merge_into(
    runtime: &tokio::runtime::Runtime,
    target: &Path,
    input: &ToMerge<'_>,
) -> anyhow::Result<Merged> {
    let ToMerge {
        experiment,
        merged,
        sources,
        found,
        best,
        planned,
    } = *input;
    let path = if target.is_dir() || target.extension().is_none() {
        RunStore::path_in(target)
    } else {
        target.to_owned()
    };
    let store = runtime.block_on(RunStore::open(&path))?;
    // Only run stores hold complete records (MLflow has no confusion counts).
    let local: BTreeMap<&str, &TrialRecord> = sources
        .iter()
        .filter(|s| s.kind == "store")
        .flat_map(|s| s.records.iter())
        .map(|r| (r.key.as_str(), r))
        .collect();
    let records: Vec<&TrialRecord> = merged
        .records
        .iter()
        .filter_map(|r| {
            local
                .get(r.key.as_str())
                .copied()
                .filter(|l| l.status == r.status)
        })
        .collect();
    if records.len() < merged.records.len() {
        tracing::warn!(
            skipped = merged.records.len() - records.len(),
            "trials found only in MLflow are not merged into the run store"
        );
    }
    let keys: Vec<String> = records.iter().map(|r| r.key.clone()).collect();
    let existing = runtime.block_on(store.finished_trials(&keys))?;
    for record in &records {
        if !existing.contains_key(&record.key) {
            runtime.block_on(store.record_trial(record))?;
        }
    }
    let model = match best {
        Some(Best {
            trial,
            model_path: Some(from),
            model_sha256: Some(sha),
            ..
        }) => {
            let dir = path
                .parent()
                .map_or_else(|| PathBuf::from("models"), |d| d.join("models"));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let to = dir.join(format!("{sha}.json"));
            copy_model(from, &to, sha)?;
            Some((trial.clone(), to, sha.clone()))
        }
        _ => None,
    };
    let template = found.iter().find_map(|f| match f {
        Found::Local { sweep, .. } => Some(sweep),
        Found::Logged(_) => None,
    });
    let plan: Vec<String> = planned.map_or_else(|| keys.clone(), <[String]>::to_vec);
    let first = merged.records.first();
    let sweep_id = runtime.block_on(store.start_sweep(&NewSweep {
        experiment,
        grid_path: template.map_or("", |s| s.grid_path.as_str()),
        data_source: template.map_or("", |s| s.data_source.as_str()),
        data_fingerprint: first.map_or("", |r| r.data_fingerprint.as_str()),
        schema_hash: template.map_or("", |s| s.schema_hash.as_str()),
        select_metric: template.map_or("f1", |s| s.select_metric.as_str()),
        shard: None,
        trial_keys: &plan,
    }))?;
    let best_ref = model
        .as_ref()
        .map(|(t, p, s)| (t.as_str(), p.to_str().unwrap_or_default(), s.as_str()));
    runtime.block_on(store.finish_sweep(sweep_id, SweepStatus::Finished, best_ref))?;
    runtime.block_on(store.close());
    Ok(Merged {
        store: path,
        sweep_id,
        trials: records.len(),
        model_path: model.map(|(_, p, _)| p),
    })
}

/// Copies the model file `from` to `to` unless `to` already has the bytes of `sha256`.
/// A file there with other bytes (e.g. left half-written by an interrupted copy) is
/// replaced; the copy goes through a temporary file, so `to` is never seen half-written.
fn copy_model(from: &Path, to: &Path, sha256: &str) -> anyhow::Result<()> {
    match verify_file(to, sha256) {
        Ok(()) => return Ok(()),
        Err(RegistryError::FileMissing { .. }) => {}
        Err(e) => tracing::warn!("{e}: copying the model file again"),
    }
    let bytes = read_verified(from, sha256)
        .with_context(|| format!("reading the best model file {}", from.display()))?;
    write_atomic(to, |w| w.write_all(&bytes)).with_context(|| {
        format!(
            "copying the model file {} to {}",
            from.display(),
            to.display()
        )
    })
}

struct TextReport<'a> {
    experiment: &'a str,
    metric: SelectMetric,
    sources: &'a [SourceSummary],
    merged: &'a Union,
    planned: Option<usize>,
    /// Whether `planned` is the grid's whole plan (else: the plans of the sweeps found).
    whole_plan: bool,
    failed: usize,
    best: Option<&'a Best>,
    into: Option<&'a Merged>,
    /// The `--into` target and why nothing was merged into it.
    not_merged: Option<(&'a Path, &'static str)>,
    top: usize,
}

fn print_text(out: &mut dyn Write, r: &TextReport<'_>) -> std::io::Result<()> {
    let m = r.merged;
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
        r.experiment,
        m.records.len(),
        r.failed,
        r.sources.len()
    )?;
    for s in r.sources {
        writeln!(
            out,
            "  {:<6} {} [{}]: {} trials",
            s.kind,
            s.name,
            s.shards.join(", "),
            s.trials
        )?;
    }
    match r.planned {
        Some(planned) => writeln!(
            out,
            "planned {planned}{}, missing {}, ran twice {}",
            if r.whole_plan {
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
    writeln!(out, "ranked by cross-validated {}\n", r.metric.name())?;
    let grid_keys = varied_params(&m.records);
    leaderboard::print(
        out,
        &Leaderboard {
            records: &m.records,
            metric: r.metric,
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
    if let Some(best) = r.best {
        match &best.model_path {
            Some(path) => writeln!(
                out,
                "\nbest: {} {} (model file {})",
                &best.trial[..12.min(best.trial.len())],
                best.label,
                path.display()
            )?,
            None => writeln!(
                out,
                "\nbest: {} {} (no run store given holds its model file)",
                &best.trial[..12.min(best.trial.len())],
                best.label
            )?,
        }
    }
    if let Some(into) = r.into {
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
