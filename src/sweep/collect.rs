//! The union of a sharded sweep: the trials that N shard processes (`--shard I/N`) left in
//! their run stores or in MLflow, merged into one ranked list, with what is missing (plan
//! keys no shard has), what ran twice, and which shards were seen.
//!
//! Trial keys are deterministic, so the union is a plain merge by key; a trial found in
//! several places is kept once, a finished result winning over a failed one.
//!
//! This module also reads a run store's sweeps as a [`Source`] and merges a union back
//! into a run store; gathering MLflow runs as well is `pipeline::collect`'s job, since the
//! sweep stage does not know about tracking.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use super::plan::Shard;
use super::record::{TrialRecord, TrialStatus, rank};
use super::store::{NewSweep, RunStore, StoreError, SweepRow, SweepStatus};
use crate::models::metrics::MeanStd;
use crate::shared::Metric;

/// Where a group of trials was found: one run store, or one sweep's parent run in MLflow.
#[derive(Debug, Clone)]
pub struct Source {
    /// A name for the report, e.g. the run store's path or the parent run's name.
    pub name: String,
    /// Sources of one kind (`store`, `mlflow`): a trial found in two sources of the same
    /// kind was run twice; found in a store and in MLflow it is the same run seen twice.
    pub kind: &'static str,
    /// The shards of the sweeps that wrote these trials (`None`: an unsharded sweep).
    pub shards: Vec<Option<Shard>>,
    /// The trials.
    pub records: Vec<TrialRecord>,
}

/// A trial found more than once in sources of the same kind: it ran twice.
#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    /// Trial key.
    pub key: String,
    /// The sources it was found in.
    pub sources: Vec<String>,
    /// Whether every copy has the same status and cross-validation metrics (fits are
    /// deterministic, so a difference means different code or data behind one key).
    pub same_result: bool,
}

/// Which shards of an `I/N` split were seen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShardCoverage {
    /// Shards seen, e.g. `["0/3", "1/3"]`.
    pub seen: Vec<String>,
    /// N, when every sharded sweep agrees on it.
    pub count: Option<usize>,
    /// Shards of that N that no source has, e.g. `["2/3"]`.
    pub missing: Vec<String>,
    /// Sweeps that ran without `--shard`.
    pub unsharded: usize,
    /// The shard counts seen, when sweeps disagree on N (e.g. `[3, 4]`).
    pub conflicting_counts: Vec<usize>,
}

/// The merged result.
#[derive(Debug, Clone)]
pub struct Union {
    /// One record per trial key, best first.
    pub records: Vec<TrialRecord>,
    /// For each trial key, the sources it was found in.
    pub sources_of: BTreeMap<String, Vec<String>>,
    /// Trials that ran more than once.
    pub duplicates: Vec<Duplicate>,
    /// Planned trial keys that no source has, in plan order.
    pub missing: Vec<String>,
    /// The shards seen.
    pub shards: ShardCoverage,
}

impl Union {
    /// Whether the union is short of the sweep it stands for: a planned trial or a shard
    /// that no source has, shards that disagree on N (so which are missing is unknown), or
    /// a trial that ran twice with different results.
    pub fn is_incomplete(&self) -> bool {
        !self.missing.is_empty()
            || !self.shards.missing.is_empty()
            || !self.shards.conflicting_counts.is_empty()
            || self.duplicates.iter().any(|d| !d.same_result)
    }
}

/// Merges `sources` into one ranked list; `plan` (the planned trial keys, when known)
/// decides which are missing.
pub fn union(sources: &[Source], plan: Option<&[String]>, metric: Metric) -> Union {
    let mut chosen: BTreeMap<String, TrialRecord> = BTreeMap::new();
    let mut sources_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut by_kind: BTreeMap<(&str, String), Vec<(&str, &TrialRecord)>> = BTreeMap::new();
    for source in sources {
        for record in &source.records {
            sources_of
                .entry(record.key.clone())
                .or_default()
                .push(source.name.clone());
            by_kind
                .entry((source.kind, record.key.clone()))
                .or_default()
                .push((&source.name, record));
            let replace = chosen.get(&record.key).is_none_or(|kept| {
                kept.status == TrialStatus::Failed && record.status == TrialStatus::Finished
            });
            if replace {
                chosen.insert(record.key.clone(), record.clone());
            }
        }
    }
    let duplicates = by_kind
        .into_iter()
        .filter(|(_, copies)| copies.len() > 1)
        .map(|((_, key), copies)| Duplicate {
            key,
            sources: copies.iter().map(|(name, _)| (*name).to_owned()).collect(),
            same_result: copies.windows(2).all(|w| same_result(w[0].1, w[1].1)),
        })
        .collect();
    let missing = plan
        .unwrap_or_default()
        .iter()
        .filter(|key| !chosen.contains_key(*key))
        .cloned()
        .collect();
    let mut records: Vec<TrialRecord> = chosen.into_values().collect();
    rank(&mut records, metric);
    Union {
        records,
        sources_of,
        duplicates,
        missing,
        shards: coverage(sources.iter().flat_map(|s| s.shards.iter().copied())),
    }
}

/// The source kind of a run store (see [`Source::kind`]).
pub const STORE: &str = "store";

/// Reads the trials of `sweeps` (all from `store`) as one source named `name`: the
/// trials of `plan` when the grid's plan is known, else of the sweeps' own plans. Returns
/// the source and the keys it was read for.
pub async fn read_store(
    store: &RunStore,
    name: String,
    sweeps: &[&SweepRow],
    plan: Option<&[String]>,
) -> Result<(Source, Vec<String>), StoreError> {
    let keys = match plan {
        Some(p) => p.to_vec(),
        None => {
            let mut keys = Vec::new();
            for sweep in sweeps {
                keys.extend(store.sweep_keys(sweep.id).await?);
            }
            keys.sort();
            keys.dedup();
            keys
        }
    };
    let stored = store.trials(&keys).await?;
    let mut records: Vec<TrialRecord> = stored.into_values().collect();
    records.sort_by(|a, b| a.key.cmp(&b.key));
    let mut shards: Vec<_> = sweeps
        .iter()
        .map(|s| s.shard.as_deref().and_then(|t| t.parse().ok()))
        .collect();
    shards.dedup();
    let source = Source {
        name,
        kind: STORE,
        shards,
        records,
    };
    Ok((source, keys))
}

/// What [`merge_into`] writes.
#[derive(Debug, Clone, Copy)]
pub struct MergeInput<'a> {
    /// The experiment the merged sweep belongs to.
    pub experiment: &'a str,
    /// The union to merge.
    pub union: &'a Union,
    /// The sources it was made from (only run stores hold complete records).
    pub sources: &'a [Source],
    /// A sweep found in a run store, whose grid, data source, schema and metric the
    /// merged sweep takes.
    pub template: Option<&'a SweepRow>,
    /// The planned trial keys, when known (else the merged trials are the plan).
    pub planned: Option<&'a [String]>,
    /// The best trial, its model file (already beside the target store) and sha256.
    pub best_model: Option<(&'a str, &'a str, &'a str)>,
}

/// Where a union was merged.
#[derive(Debug, Clone, Serialize)]
pub struct Merged {
    /// The run store file.
    pub store: PathBuf,
    /// The finished sweep that holds the union.
    pub sweep_id: i64,
    /// Trials merged (those found in run stores).
    pub trials: usize,
    /// The best model file copied beside it.
    pub model_path: Option<PathBuf>,
}

/// Merges the trials read from run stores into `store` as one finished sweep, never
/// replacing a finished trial; returns the new sweep's id and the number of trials merged.
pub async fn merge_into(
    store: &RunStore,
    input: &MergeInput<'_>,
) -> Result<(i64, usize), StoreError> {
    let merged = input.union;
    // Only run stores hold complete records (MLflow has no confusion counts).
    let local: BTreeMap<&str, &TrialRecord> = input
        .sources
        .iter()
        .filter(|s| s.kind == STORE)
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
    let existing = store.finished_trials(&keys).await?;
    for record in &records {
        if !existing.contains_key(&record.key) {
            store.record_trial(record).await?;
        }
    }
    let template = input.template;
    let plan: Vec<String> = input
        .planned
        .map_or_else(|| keys.clone(), <[String]>::to_vec);
    let first = merged.records.first();
    let sweep_id = store
        .start_sweep(&NewSweep {
            experiment: input.experiment,
            grid_path: template.map_or("", |s| s.grid_path.as_str()),
            data_source: template.map_or("", |s| s.data_source.as_str()),
            data_fingerprint: first.map_or("", |r| r.data_fingerprint.as_str()),
            schema_hash: template.map_or("", |s| s.schema_hash.as_str()),
            select_metric: template.map_or("f1", |s| s.select_metric.as_str()),
            shard: None,
            trial_keys: &plan,
            rung: None,
        })
        .await?;
    store
        .finish_sweep(sweep_id, SweepStatus::Finished, input.best_model)
        .await?;
    Ok((sweep_id, records.len()))
}

/// Same status and bit-identical CV metrics (NaN equal to NaN).
fn same_result(a: &TrialRecord, b: &TrialRecord) -> bool {
    let bits = |m: &BTreeMap<String, MeanStd>| -> Vec<(String, u64, u64)> {
        m.iter()
            .map(|(k, v)| (k.clone(), v.mean.to_bits(), v.std.to_bits()))
            .collect()
    };
    a.status == b.status && bits(&a.cv) == bits(&b.cv)
}

fn coverage(shards: impl Iterator<Item = Option<Shard>>) -> ShardCoverage {
    let mut seen = BTreeSet::new();
    let mut unsharded = 0;
    for shard in shards {
        match shard {
            Some(s) => {
                seen.insert((s.count, s.index));
            }
            None => unsharded += 1,
        }
    }
    let counts: BTreeSet<usize> = seen.iter().map(|&(count, _)| count).collect();
    let count = (counts.len() == 1)
        .then(|| counts.first().copied())
        .flatten();
    let missing = count
        .map(|n| {
            (0..n)
                .filter(|i| !seen.contains(&(n, *i)))
                .map(|index| Shard { index, count: n }.to_string())
                .collect()
        })
        .unwrap_or_default();
    ShardCoverage {
        seen: seen
            .iter()
            .map(|&(count, index)| Shard { index, count }.to_string())
            .collect(),
        count,
        missing,
        unsharded,
        conflicting_counts: if counts.len() > 1 {
            counts.into_iter().collect()
        } else {
            Vec::new()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, f1: f64, status: TrialStatus) -> TrialRecord {
        TrialRecord {
            key: key.into(),
            experiment: "e".into(),
            algorithm: "decision_tree".into(),
            params: Default::default(),
            status,
            cv: [("f1".to_owned(), MeanStd { mean: f1, std: 0.0 })].into(),
            test: None,
            fit_seconds: 0.0,
            predict_seconds: 0.0,
            error: None,
            data_fingerprint: "fp".into(),
            finished_at_ms: 0,
            operating_point: None,
            n_estimators_used: None,
        }
    }

    fn source(name: &str, kind: &'static str, shard: &str, records: Vec<TrialRecord>) -> Source {
        Source {
            name: name.into(),
            kind,
            shards: vec![shard.parse().ok()],
            records,
        }
    }

    #[test]
    fn merges_ranks_and_flags_missing_duplicates_and_shards() {
        let sources = [
            source(
                "a",
                "store",
                "0/3",
                vec![record("k1", 0.8, TrialStatus::Finished)],
            ),
            source(
                "b",
                "store",
                "1/3",
                vec![
                    record("k2", 0.9, TrialStatus::Finished),
                    record("k1", 0.7, TrialStatus::Finished),
                ],
            ),
            source(
                "m",
                "mlflow",
                "1/3",
                vec![record("k2", 0.9, TrialStatus::Finished)],
            ),
        ];
        let plan: Vec<String> = ["k1", "k2", "k3"].map(String::from).into();
        let u = union(&sources, Some(&plan), Metric::F1);
        let keys: Vec<&str> = u.records.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["k2", "k1"]);
        assert_eq!(u.missing, ["k3"]);
        assert_eq!(u.duplicates.len(), 1, "{:?}", u.duplicates);
        assert_eq!(u.duplicates[0].key, "k1");
        assert!(!u.duplicates[0].same_result);
        assert_eq!(u.sources_of["k2"], ["b", "m"]);
        assert_eq!(u.shards.seen, ["0/3", "1/3"]);
        assert_eq!(u.shards.count, Some(3));
        assert_eq!(u.shards.missing, ["2/3"]);
        assert!(u.is_incomplete());
    }

    #[test]
    fn shards_that_disagree_on_the_count_are_incomplete() {
        // 0/2 and 1/3: each split looks whole on its own terms, but which shards are
        // missing cannot be known.
        let sources = [
            source(
                "a",
                "store",
                "0/2",
                vec![record("k1", 0.8, TrialStatus::Finished)],
            ),
            source(
                "b",
                "store",
                "1/3",
                vec![record("k2", 0.9, TrialStatus::Finished)],
            ),
        ];
        let plan: Vec<String> = ["k1", "k2"].map(String::from).into();
        let u = union(&sources, Some(&plan), Metric::F1);
        assert!(u.missing.is_empty() && u.shards.missing.is_empty());
        assert_eq!(u.shards.count, None);
        assert_eq!(u.shards.conflicting_counts, [2, 3]);
        assert!(u.is_incomplete());
    }

    #[test]
    fn a_finished_copy_wins_over_a_failed_one() {
        let sources = [
            source(
                "a",
                "store",
                "0/2",
                vec![record("k", 0.0, TrialStatus::Failed)],
            ),
            source(
                "b",
                "store",
                "1/2",
                vec![record("k", 0.5, TrialStatus::Finished)],
            ),
        ];
        let u = union(&sources, None, Metric::F1);
        assert_eq!(u.records[0].status, TrialStatus::Finished);
        assert!(u.missing.is_empty() && u.shards.missing.is_empty());
    }
}
