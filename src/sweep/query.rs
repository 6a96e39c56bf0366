//! Questions about past sweeps, answered from the run store: `experiment list`, `show` and
//! `compare` read through here.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::record::{TrialRecord, rank};
use super::store::{RunStore, SweepRow};
use super::survivors::SurvivorsFile;
use crate::config::grid::SelectMetric;
use crate::exit::UsageError;
use crate::state::StateDir;

/// One sweep and its results, best first.
#[derive(Debug, Clone)]
pub struct SweepBoard {
    /// The sweep.
    pub sweep: SweepRow,
    /// Trials it planned.
    pub planned: usize,
    /// Its ranking metric.
    pub metric: SelectMetric,
    /// Every planned trial with a result, best first.
    pub records: Vec<TrialRecord>,
    /// When the sweep is a rung of a halving search: every rung of that search in the
    /// run store, first rung first.
    pub rungs: Vec<RungBoard>,
}

/// Where a rung's survivors were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SurvivorsFrom {
    /// The search's survivors file (`experiment collect --rung` saw every shard).
    #[serde(rename = "survivors file")]
    SurvivorsFile,
    /// The candidates the next rung ran in this run store: of a shard's store, only that
    /// shard's slice.
    #[serde(rename = "next rung")]
    NextRung,
}

/// One rung of a halving search, as the run store holds it.
#[derive(Debug, Clone, Serialize)]
pub struct RungBoard {
    /// The rung, from 0.
    pub rung: i64,
    /// Its training rows.
    pub rows: i64,
    /// The sweeps that ran it (shards, resumed runs).
    pub sweeps: Vec<i64>,
    /// The shards among them (`I/N`).
    pub shards: Vec<String>,
    /// Trials planned by those sweeps.
    pub planned: usize,
    /// Keys of the trials that go on to the next rung, best first: from the search's
    /// survivors file in the state directory when it has this rung (a sharded search),
    /// else the trials whose candidates the next rung ran. Empty for the last rung.
    pub survivors: Vec<String>,
    /// Where `survivors` come from.
    pub survivors_from: SurvivorsFrom,
    /// Its trials with a result, best first.
    pub leaderboard: Vec<TrialRecord>,
}

/// Opens the run store of `state`; a usage error when there is none yet, since reading
/// must not create an empty store.
async fn open(state: &StateDir) -> anyhow::Result<RunStore> {
    let path = state.database();
    if !path.exists() {
        return Err(UsageError(format!(
            "no run store at {} (run `netsec experiment run GRID` first, or pass --state-dir)",
            path.display()
        ))
        .into());
    }
    Ok(RunStore::open(&path).await?)
}

/// Every sweep, newest first.
pub async fn sweeps(state: &StateDir) -> anyhow::Result<Vec<SweepRow>> {
    let store = open(state).await?;
    let sweeps = store.sweeps().await;
    store.close().await;
    Ok(sweeps?)
}

/// The leaderboard of one sweep, by id or experiment name (the newest of that name).
pub async fn board(state: &StateDir, id_or_name: &str) -> anyhow::Result<SweepBoard> {
    let store = open(state).await?;
    let board = read_board(&store, state, id_or_name).await;
    store.close().await;
    board
}

async fn read_board(
    store: &RunStore,
    state: &StateDir,
    id_or_name: &str,
) -> anyhow::Result<SweepBoard> {
    let sweep = store
        .find_sweep(id_or_name)
        .await?
        .ok_or_else(|| UsageError(format!("no sweep `{id_or_name}` in the run store")))?;
    let keys = store.sweep_keys(sweep.id).await?;
    let stored = store.trials(&keys).await?;
    let mut records: Vec<TrialRecord> =
        keys.iter().filter_map(|k| stored.get(k).cloned()).collect();
    let metric: SelectMetric =
        serde_json::from_value(serde_json::Value::String(sweep.select_metric.clone()))
            .unwrap_or(SelectMetric::F1);
    rank(&mut records, metric);
    let rungs = match &sweep.search_key {
        Some(search) => read_rungs(store, state, &sweep, search, metric).await?,
        None => Vec::new(),
    };
    Ok(SweepBoard {
        sweep,
        planned: keys.len(),
        metric,
        records,
        rungs,
    })
}

/// Every rung of the halving search `search` that `sweep` is part of.
async fn read_rungs(
    store: &RunStore,
    state: &StateDir,
    sweep: &SweepRow,
    search: &str,
    metric: SelectMetric,
) -> anyhow::Result<Vec<RungBoard>> {
    let mut by_rung: BTreeMap<i64, Vec<SweepRow>> = BTreeMap::new();
    for s in store.sweeps().await? {
        if s.search_key.as_deref() == Some(search) && s.experiment == sweep.experiment {
            by_rung
                .entry(s.rung.unwrap_or_default())
                .or_default()
                .push(s);
        }
    }
    let file = SurvivorsFile::read(&state.survivors(&sweep.experiment))
        .ok()
        .flatten()
        .filter(|f| f.search_key == search);
    let mut rungs = Vec::new();
    for (rung, sweeps) in &by_rung {
        let mut keys: Vec<String> = Vec::new();
        for s in sweeps {
            for key in store.sweep_keys(s.id).await? {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        let stored = store.trials(&keys).await?;
        let mut leaderboard: Vec<TrialRecord> =
            keys.iter().filter_map(|k| stored.get(k).cloned()).collect();
        rank(&mut leaderboard, metric);
        let mut shards: Vec<String> = sweeps.iter().filter_map(|s| s.shard.clone()).collect();
        shards.sort();
        shards.dedup();
        rungs.push(RungBoard {
            rung: *rung,
            rows: sweeps.iter().find_map(|s| s.rung_rows).unwrap_or_default(),
            sweeps: sweeps.iter().rev().map(|s| s.id).collect(),
            shards,
            planned: keys.len(),
            survivors: Vec::new(),
            survivors_from: SurvivorsFrom::NextRung,
            leaderboard,
        });
    }
    // The survivors of rung r: what the survivors file says, else the trials of rung r
    // whose candidates (algorithm and parameters) rung r+1 ran.
    for i in 0..rungs.len().saturating_sub(1) {
        let next = rungs[i + 1].rung;
        let from_file = file
            .as_ref()
            .and_then(|f| f.rung(usize::try_from(next).ok()?))
            .map(|e| {
                e.candidates
                    .iter()
                    .map(|c| c.trial.clone())
                    .collect::<Vec<_>>()
            });
        let (before, after) = rungs.split_at_mut(i + 1);
        let here = &mut before[i];
        if from_file.is_some() {
            here.survivors_from = SurvivorsFrom::SurvivorsFile;
        }
        here.survivors = match from_file {
            Some(keys) => here
                .leaderboard
                .iter()
                .filter(|r| keys.contains(&r.key))
                .map(|r| r.key.clone())
                .collect(),
            None => here
                .leaderboard
                .iter()
                .filter(|r| {
                    after[0]
                        .leaderboard
                        .iter()
                        .any(|n| n.algorithm == r.algorithm && n.params == r.params)
                })
                .map(|r| r.key.clone())
                .collect(),
        };
    }
    Ok(rungs)
}

/// The trials whose keys start with each of `prefixes`, in that order; a usage error when
/// a prefix matches no trial or several.
pub async fn trials(state: &StateDir, prefixes: &[String]) -> anyhow::Result<Vec<TrialRecord>> {
    let store = open(state).await?;
    let found = find_trials(&store, prefixes).await;
    store.close().await;
    found
}

async fn find_trials(store: &RunStore, prefixes: &[String]) -> anyhow::Result<Vec<TrialRecord>> {
    let mut records = Vec::new();
    for prefix in prefixes {
        let found = store.trials_by_prefix(prefix).await?;
        match found.len() {
            1 => records.extend(found),
            0 => return Err(UsageError(format!("no trial with key `{prefix}`")).into()),
            n => {
                return Err(UsageError(format!(
                    "`{prefix}` matches {n} trials; give more of the key"
                ))
                .into());
            }
        }
    }
    Ok(records)
}

/// Per algorithm, the parameters whose values differ between its trials.
pub fn varied_params(records: &[TrialRecord]) -> HashMap<String, Vec<String>> {
    let mut by_algorithm: HashMap<String, Vec<&TrialRecord>> = HashMap::new();
    for r in records {
        by_algorithm.entry(r.algorithm.clone()).or_default().push(r);
    }
    by_algorithm
        .into_iter()
        .map(|(algorithm, trials)| {
            let keys = trials[0]
                .params
                .keys()
                .filter(|k| {
                    trials
                        .iter()
                        .any(|t| t.params.get(*k) != trials[0].params.get(*k))
                })
                .cloned()
                .collect();
            (algorithm, keys)
        })
        .collect()
}
