//! Questions about past sweeps, answered from the run store: `experiment list`, `show` and
//! `compare` read through here.

use std::collections::HashMap;

use super::record::{TrialRecord, rank};
use super::store::{RunStore, SweepRow};
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
    let board = read_board(&store, id_or_name).await;
    store.close().await;
    board
}

async fn read_board(store: &RunStore, id_or_name: &str) -> anyhow::Result<SweepBoard> {
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
    Ok(SweepBoard {
        sweep,
        planned: keys.len(),
        metric,
        records,
    })
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
