//! Collecting a sharded sweep: the sweeps its shard processes left in run stores and/or
//! logged to MLflow are gathered, narrowed to one experiment on one data fingerprint,
//! merged into one ranked union (`sweep::collect`) and, when asked, merged back into a run
//! store with the best model file beside it. It spans the sweep stage and tracking, so it
//! lives here.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::config::grid::GridFile;
use crate::config::grid::SearchConfig;
use crate::data::Schema;
use crate::exit::UsageError;
use crate::fsutil::write_atomic;
use crate::models::Params;
use crate::models::metrics::MeanStd;
use crate::pipeline::source::{load_data, tracking_client};
use crate::registry::RegistryError;
use crate::registry::store::{read_verified, verify_file};
use crate::shared::Metric;
use crate::shared::short_hash as short;
use crate::state::StateDir;
pub use crate::sweep::collect::{Duplicate, Merged, ShardCoverage};
use crate::sweep::collect::{MergeInput, Source, Union, merge_into, read_store, union};
use crate::sweep::halving::{self, RungPlan};
use crate::sweep::leaderboard::{self, Leaderboard};
use crate::sweep::plan::{KeyContext, expand, trial_key};
use crate::sweep::query::varied_params;
use crate::sweep::record::{TrialStatus, metric_values};
use crate::sweep::store::{RunStore, SweepRow};
use crate::sweep::survivors::{RungSurvivors, Survivor, SurvivorsFile};
use crate::tracking::collect::{LoggedSweep, logged_sweeps};
use crate::tracking::{MlflowClient, RunStatus};

/// What to collect: `netsec experiment collect`'s arguments, typed.
#[derive(Debug, Clone)]
pub struct CollectInput {
    /// The sweep's grid file: its plan says which trials are missing.
    pub grid: Option<PathBuf>,
    /// The experiment to collect when no grid file is given.
    pub experiment: Option<String>,
    /// Whether to read the shards' runs from MLflow too.
    pub from_mlflow: bool,
    /// Run stores (files or state directories); empty: the state directory's own, unless
    /// only MLflow was asked for.
    pub stores: Vec<PathBuf>,
    /// The state directory.
    pub state: StateDir,
    /// A run store to merge the union into.
    pub into: Option<PathBuf>,
    /// Refuse to merge an incomplete union.
    pub strict: bool,
    /// Collect this rung of a sharded halving search (needs `grid`) and write the
    /// survivors of the next one.
    pub rung: Option<usize>,
    /// The search's survivors file (default: in the state directory).
    pub survivors: Option<PathBuf>,
}

/// What collecting one rung of a sharded halving search decided.
#[derive(Debug, Clone, Serialize)]
pub struct RungCollected {
    /// The rung collected.
    pub rung: usize,
    /// Its training rows.
    pub rows: usize,
    /// Its candidates.
    pub candidates: usize,
    /// Whether it is the search's last rung (on the whole training part): its best is the
    /// search's best, and there are no survivors to pick.
    pub last: bool,
    /// The trial keys (in this rung) of the candidates that go on to the next rung, in
    /// plan order; empty when nothing was picked.
    pub survivors: Vec<String>,
    /// Training rows of the next rung, when survivors were picked.
    pub next_rows: Option<usize>,
    /// The survivors file.
    pub file: PathBuf,
    /// Whether the survivors were written to `file`.
    pub written: bool,
}

impl RungCollected {
    /// Whether the next rung cannot start from this collect: the rung is not the last and
    /// its survivors were not written (it is incomplete).
    pub fn blocks_next_rung(&self) -> bool {
        !self.last && !self.written
    }
}

/// A source as reported.
#[derive(Debug, Clone, Serialize)]
pub struct SourceSummary {
    /// Its name (a run store's path, an MLflow parent run).
    pub name: String,
    /// `store` or `mlflow`.
    pub kind: &'static str,
    /// The shards of its sweeps (`unsharded` for a sweep without `--shard`).
    pub shards: Vec<String>,
    /// Trials read from it.
    pub trials: usize,
}

/// The best trial and its model file, when a run store has it.
#[derive(Debug, Clone)]
pub struct Best {
    /// Its trial key.
    pub trial: String,
    /// Its model file.
    pub model_path: Option<PathBuf>,
    /// The model file's sha256.
    pub model_sha256: Option<String>,
}

/// What collecting found.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The experiment collected.
    pub experiment: String,
    /// The ranking metric.
    pub metric: Metric,
    /// The data fingerprint the trials ran on.
    pub data_fingerprint: String,
    /// The sources read.
    pub sources: Vec<SourceSummary>,
    /// The ranked union.
    pub union: Union,
    /// Trials planned, when known.
    pub planned: Option<usize>,
    /// Whether `planned` is the grid's whole plan (else: the plans of the sweeps found).
    pub whole_plan: bool,
    /// Failed trials in the union.
    pub failed: usize,
    /// The best trial.
    pub best: Option<Best>,
    /// Where the union was merged (`into`).
    pub merged_into: Option<Merged>,
    /// Why `into` was given but nothing was merged.
    pub not_merged: Option<&'static str>,
    /// The rung of a sharded halving search collected (`rung`).
    pub halving: Option<RungCollected>,
}

impl Collected {
    /// Whether the union is short of the sweep it stands for.
    pub fn is_incomplete(&self) -> bool {
        self.union.is_incomplete()
    }

    /// The label the leaderboard gives the best trial (its varied parameters).
    pub fn best_label(&self) -> Option<String> {
        let best = self.best.as_ref()?;
        let records = &self.union.records;
        let top = records.iter().find(|r| r.key == best.trial)?;
        let varied = varied_params(records);
        Some(top.label(varied.get(&top.algorithm).map_or(&[][..], |k| k)))
    }

    /// Writes the readable report: coverage, sources, the leaderboard (its `top` rows),
    /// what is missing or ran twice, the best trial and what was merged into `into`.
    pub fn render(&self, out: &mut dyn Write, into: Option<&Path>, top: usize) -> io::Result<()> {
        let c = self;
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
            top,
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
        let best = c.best.as_ref().zip(c.best_label());
        if let Some((best, label)) = best {
            let trial = &best.trial;
            match &best.model_path {
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
        if let Some((target, why)) = into.zip(c.not_merged) {
            writeln!(out, "nothing merged into {}: {why}", target.display())?;
        }
        if let Some(h) = &c.halving {
            render_rung(out, h)?;
        }
        Ok(())
    }

    /// The machine-readable report (`--format json`); `best_label` names the best trial
    /// as the leaderboard shows it.
    pub fn report(&self, best_label: Option<String>) -> Report<'_> {
        let m = &self.union;
        Report {
            experiment: &self.experiment,
            select_metric: self.metric.name(),
            data_fingerprint: &self.data_fingerprint,
            sources: &self.sources,
            shards: &m.shards,
            trials_planned: self.planned,
            trials: m.records.len(),
            trials_failed: self.failed,
            missing: &m.missing,
            duplicates: &m.duplicates,
            best: self.best.as_ref().map(|b| BestReport {
                trial: &b.trial,
                label: best_label.unwrap_or_default(),
                model_path: b.model_path.as_deref(),
                model_sha256: b.model_sha256.as_deref(),
            }),
            merged_into: self.merged_into.as_ref(),
            not_merged: self.not_merged,
            halving: self.halving.as_ref(),
            leaderboard: m
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
                    sources: m.sources_of.get(&r.key).map_or(&[][..], Vec::as_slice),
                })
                .collect(),
        }
    }
}

/// What collecting a rung decided: the survivors and where they went, the end of the
/// search, or why the next rung cannot start yet.
fn render_rung(out: &mut dyn Write, h: &RungCollected) -> io::Result<()> {
    let file = h.file.display();
    let (rung, rows, n) = (h.rung, h.rows, h.candidates);
    if h.last {
        return writeln!(
            out,
            "\nhalving rung {rung} ({rows} rows, {n} candidates) is the last, on the whole \
             training part: its best is the search's best"
        );
    }
    if !h.written {
        return writeln!(
            out,
            "\nhalving rung {rung} is incomplete: no survivors picked, rung {} cannot start; \
             rerun the missing shards with --rung {rung} (finished trials are reused) and \
             collect again",
            rung + 1
        );
    }
    writeln!(
        out,
        "\nhalving rung {rung} ({rows} rows): {} of {n} candidates survive to rung {} ({} \
         rows), written to {file}",
        h.survivors.len(),
        rung + 1,
        h.next_rows.unwrap_or_default()
    )?;
    for key in &h.survivors {
        writeln!(out, "  {}", short(key))?;
    }
    Ok(())
}

/// A row of the JSON leaderboard: the trial, its test metrics by name, and where it was
/// found.
#[derive(Debug, Serialize)]
pub struct Row<'a> {
    rank: usize,
    key: &'a str,
    algorithm: &'a str,
    params: &'a Params,
    status: TrialStatus,
    cv: &'a BTreeMap<String, MeanStd>,
    test: Option<BTreeMap<&'static str, f64>>,
    fit_seconds: f64,
    error: Option<&'a str>,
    sources: &'a [String],
}

/// The best trial as reported.
#[derive(Debug, Serialize)]
pub struct BestReport<'a> {
    trial: &'a str,
    label: String,
    model_path: Option<&'a Path>,
    model_sha256: Option<&'a str>,
}

/// What `netsec experiment collect --format json` prints.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    experiment: &'a str,
    select_metric: &'static str,
    data_fingerprint: &'a str,
    sources: &'a [SourceSummary],
    shards: &'a ShardCoverage,
    trials_planned: Option<usize>,
    trials: usize,
    trials_failed: usize,
    missing: &'a [String],
    duplicates: &'a [Duplicate],
    best: Option<BestReport<'a>>,
    merged_into: Option<&'a Merged>,
    /// Why `--into` was given but nothing was merged.
    not_merged: Option<&'static str>,
    /// The halving rung collected and its survivors.
    halving: Option<&'a RungCollected>,
    leaderboard: Vec<Row<'a>>,
}

/// What the grid file says about the sweep, when one is given.
struct Plan {
    experiment: String,
    tracking_experiment: String,
    metric: Metric,
    data_fingerprint: String,
    keys: Vec<String>,
    client: Option<MlflowClient>,
    grid: GridFile,
    /// The rung of a sharded halving search being collected.
    halving: Option<HalvingPlan>,
}

/// The rung collected and where its survivors go.
struct HalvingPlan {
    rung: RungPlan,
    search: SearchConfig,
    survivors: PathBuf,
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

/// Gathers, ranks and (with `into`) merges the union of a sharded sweep.
pub async fn collect(input: &CollectInput) -> anyhow::Result<Collected> {
    let plan = match &input.grid {
        Some(path) => Some(plan_of(path, input).await?),
        None => None,
    };
    let experiment = match (&plan, &input.experiment) {
        (Some(p), _) => p.experiment.clone(),
        (None, Some(name)) => name.clone(),
        (None, None) => return Err(UsageError("give a grid file or --experiment".into()).into()),
    };
    let store_paths = store_paths(input)?;

    let mut stores = Vec::new();
    let mut found = Vec::new();
    for path in &store_paths {
        let store = RunStore::open(path).await?;
        for sweep in store.sweeps().await? {
            found.push(Found::Local {
                store: stores.len(),
                sweep,
            });
        }
        stores.push(store);
    }
    if input.from_mlflow {
        let tracking_experiment = plan
            .as_ref()
            .map_or(experiment.as_str(), |p| p.tracking_experiment.as_str());
        let client = match plan.as_ref().and_then(|p| p.client.clone()) {
            Some(client) => client,
            None => env_client()?,
        };
        let logged = logged_sweeps(&client, tracking_experiment)
            .await
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
                    describe_sources(&store_paths, input.from_mlflow)
                ))
            })?,
    };
    found.retain(|f| f.fingerprint() == fingerprint);
    if let Some(rung) = input.rung {
        // Shard coverage of this rung: the local sweeps of other rungs do not count.
        found.retain(|f| match f {
            Found::Local { sweep, .. } => sweep.rung == Some(rung as i64),
            Found::Logged(_) => true,
        });
    }
    let metric = match &plan {
        Some(p) => p.metric,
        None => found
            .iter()
            .find_map(|f| f.metric())
            .and_then(|m| m.parse::<Metric>().ok())
            .unwrap_or(Metric::F1),
    };

    let (sources, planned) = read_sources(&stores, &store_paths, &found, plan.as_ref()).await?;
    let merged = union(&sources, planned.as_deref(), metric);
    let halving = match plan
        .as_ref()
        .and_then(|p| p.halving.as_ref().map(|h| (p, h)))
    {
        Some((p, h)) => Some(pick_survivors(p, h, &merged)?),
        None => None,
    };
    let best = best_model(&merged, &found, &store_paths);
    // --strict refuses an incomplete union, so it must not leave one in --into either: a
    // later `promote --best` on that store would take the best of a partial sweep.
    let not_merged = (input.into.is_some() && input.strict && merged.is_incomplete())
        .then_some("the union is incomplete and --strict was given");
    let merged_into = match &input.into {
        Some(_) if not_merged.is_some() => None,
        Some(target) => {
            let template = found.iter().find_map(|f| match f {
                Found::Local { sweep, .. } => Some(sweep),
                Found::Logged(_) => None,
            });
            Some(
                merge(
                    target,
                    &experiment,
                    &merged,
                    &sources,
                    template,
                    best.as_ref(),
                    planned.as_deref(),
                )
                .await?,
            )
        }
        None => None,
    };
    for store in &stores {
        store.close().await;
    }

    let failed = merged
        .records
        .iter()
        .filter(|r| r.status == TrialStatus::Failed)
        .count();
    let summaries = sources
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
    Ok(Collected {
        experiment,
        metric,
        data_fingerprint: fingerprint,
        sources: summaries,
        planned: planned.as_ref().map(Vec::len),
        whole_plan: plan.is_some(),
        union: merged,
        failed,
        best,
        merged_into,
        not_merged,
        halving,
    })
}

/// Picks the survivors of a complete rung, as the unsharded search does
/// ([`halving::survivors`]), and writes them to the search's survivors file as the
/// candidates of the next rung; an incomplete rung picks nothing, and the last rung (on
/// the whole training part) has nothing to pick.
fn pick_survivors(plan: &Plan, h: &HalvingPlan, merged: &Union) -> anyhow::Result<RungCollected> {
    let rung = &h.rung;
    let mut collected = RungCollected {
        rung: rung.rung.index,
        rows: rung.rung.rows,
        candidates: rung.candidates.len(),
        last: rung.is_last(),
        survivors: Vec::new(),
        next_rows: None,
        file: h.survivors.clone(),
        written: false,
    };
    if collected.last || merged.is_incomplete() {
        return Ok(collected);
    }
    let keep = rung.candidates.len().div_ceil(h.search.factor());
    let survivors = halving::survivors(&rung.candidates, &merged.records, keep, plan.metric);
    if survivors.is_empty() {
        return Err(UsageError(format!(
            "every trial of halving rung {} failed: no survivors to pick",
            rung.rung.index
        ))
        .into());
    }
    let next = halving::rung_at(rung.rung.index + 1, survivors.len(), rung.train, &h.search);
    let keys = rung.keys_by_candidate(&plan.grid, &plan.data_fingerprint);
    let entry = RungSurvivors {
        rung: next.index,
        rows: next.rows,
        from_trials: rung.candidates.len(),
        candidates: survivors
            .iter()
            .map(|c| Survivor {
                algorithm: c.algorithm.name().to_owned(),
                params: c.params.clone(),
                trial: keys(c),
            })
            .collect(),
    };
    collected.survivors = entry.candidates.iter().map(|s| s.trial.clone()).collect();
    collected.next_rows = Some(next.rows);
    // Rung 0 starts the file afresh (a file of another search there is replaced); later
    // rungs were planned from this file, so it is this search's.
    let mut file = match (rung.rung.index, SurvivorsFile::read(&h.survivors)?) {
        (0, _) | (_, None) => {
            SurvivorsFile::new(&plan.experiment, &plan.data_fingerprint, &rung.search_key)
        }
        (_, Some(file)) => file,
    };
    file.set(entry);
    file.write(&h.survivors)
        .with_context(|| format!("writing the survivors file {}", h.survivors.display()))?;
    collected.written = true;
    Ok(collected)
}

/// Expands the grid and computes its trial keys (loading the data for its fingerprint):
/// with `input.rung`, the keys of that rung of its halving search.
async fn plan_of(path: &Path, input: &CollectInput) -> anyhow::Result<Plan> {
    let grid = GridFile::from_file(path)?;
    let candidates = expand(&grid, path)?;
    let schema = Schema::from_file(&grid.data.schema.value)?;
    let (_, data, _) = load_data(&grid, path, &schema).await?;
    let (keys, halving) = match input.rung {
        Some(index) => {
            halving::check(&grid, path, &data, false, Some(index))?;
            let survivors = input
                .survivors
                .clone()
                .unwrap_or_else(|| input.state.survivors(&grid.name));
            let rung = halving::plan_rung(&grid, &data, &candidates, index, &survivors)?;
            let keys = rung.keys(&grid, &data.fingerprint);
            let search = grid.search();
            (
                keys,
                Some(HalvingPlan {
                    rung,
                    search,
                    survivors,
                }),
            )
        }
        None => {
            let context = KeyContext::for_grid(&grid, &data.fingerprint);
            (
                candidates.iter().map(|c| trial_key(c, &context)).collect(),
                None,
            )
        }
    };
    let from_mlflow = input.from_mlflow;
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
        experiment: grid.name.clone(),
        metric: grid.select.metric,
        data_fingerprint: data.fingerprint,
        keys,
        client,
        halving,
        grid,
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

/// The run store files to read: `stores` (files or state directories), else the store of
/// the state directory unless only MLflow was asked for.
fn store_paths(input: &CollectInput) -> anyhow::Result<Vec<PathBuf>> {
    let given: Vec<PathBuf> = if input.stores.is_empty() && !input.from_mlflow {
        vec![input.state.root().to_owned()]
    } else {
        input.stores.clone()
    };
    given
        .into_iter()
        .map(|p| {
            let file = if p.is_dir() {
                StateDir::new(p).database()
            } else {
                p
            };
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
async fn read_sources(
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
        let name = paths[i].display().to_string();
        let (source, keys) =
            read_store(store, name, &sweeps, plan.map(|p| p.keys.as_slice())).await?;
        local_plan.extend(keys);
        sources.push(source);
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
            RunStatus::Running => " (running)",
            RunStatus::Killed => " (killed)",
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
                .and_then(|dir| Some(StateDir::new(dir).models().join(path.file_name()?)));
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
        model_path,
        model_sha256,
    })
}

/// Merges the union into the run store `target` as one finished sweep, with the best
/// model file copied beside it.
async fn merge(
    target: &Path,
    experiment: &str,
    merged: &Union,
    sources: &[Source],
    template: Option<&SweepRow>,
    best: Option<&Best>,
    planned: Option<&[String]>,
) -> anyhow::Result<Merged> {
    let path = if target.is_dir() || target.extension().is_none() {
        StateDir::new(target).database()
    } else {
        target.to_owned()
    };
    let store = RunStore::open(&path).await?;
    let model = match best {
        Some(Best {
            trial,
            model_path: Some(from),
            model_sha256: Some(sha),
        }) => {
            let dir = path
                .parent()
                .map_or_else(|| PathBuf::from("models"), |d| StateDir::new(d).models());
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let to = dir.join(format!("{sha}.json"));
            copy_model(from, &to, sha)?;
            Some((trial.clone(), to, sha.clone()))
        }
        _ => None,
    };
    let best_model = model
        .as_ref()
        .map(|(t, p, s)| (t.as_str(), p.to_str().unwrap_or_default(), s.as_str()));
    let (sweep_id, trials) = merge_into(
        &store,
        &MergeInput {
            experiment,
            union: merged,
            sources,
            template,
            planned,
            best_model,
        },
    )
    .await?;
    store.close().await;
    Ok(Merged {
        store: path,
        sweep_id,
        trials,
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
