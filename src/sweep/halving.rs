//! Successive halving over training rows, as scikit-learn's `HalvingGridSearchCV`: rung
//! `r` cross-validates every surviving candidate on `min_rows · factor^r` rows of the
//! training part and keeps the best `ceil(n / factor)` by the CV metric for the next rung.
//! The last rung trains on the whole training part (scikit-learn's refit), and a lone
//! survivor goes there at once, so the saved model is always a full fit.
//!
//! Each rung is one sweep through [`super::run`]: the same plan, keys, work units, run
//! store and reporters as a grid. A rung's subset is stratified and drawn from (seed,
//! rung), and the rung and its rows enter its trials' keys; so rerunning a killed search
//! reuses every stored rung trial, ranks each rung again from the store and picks the same
//! survivors — nothing runs twice.

use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use sha2::{Digest, Sha256};

use super::plan::{Candidate, KeyContext, Rung, trial_key};
use super::record::{TrialRecord, TrialStatus, rank};
use super::report::SweepReporter;
use super::run::{CancelToken, SweepInput, SweepOutcome};
use super::store::SweepStatus;
use super::survivors::SurvivorsFile;
use crate::config::grid::{GridError, GridFile, SearchConfig, SelectMetric, Strategy};
use crate::data::Dataset;
use crate::exit::UsageError;
use crate::shared::hash::hex;

/// Refuses, before anything is written, a halving search that cannot run on this data
/// (`min_rows` above the training part) and a `--rung` or `--shard` that does not fit the
/// search: `--rung` belongs to halving, and a sharded halving search runs one rung at a
/// time (shards never halve on their own: `experiment collect --rung` picks the survivors).
pub fn check(
    grid: &GridFile,
    grid_path: &Path,
    data: &Dataset,
    sharded: bool,
    rung: Option<usize>,
) -> anyhow::Result<()> {
    let search = grid.search();
    if search.strategy != Strategy::Halving {
        if rung.is_some() {
            return Err(UsageError(format!(
                "--rung belongs to strategy: halving, and {} has strategy: {}",
                grid_path.display(),
                search.strategy.name()
            ))
            .into());
        }
        return Ok(());
    }
    let Some(span) = &grid.search else {
        return Ok(());
    };
    if sharded && rung.is_none() {
        return Err(GridError::at(
            grid_path,
            span,
            "a sharded halving search runs one rung at a time, so that the survivors are \
             picked from every shard's results: add --rung 0, then `netsec experiment \
             collect GRID --rung 0` before --rung 1",
        )
        .into());
    }
    let train = crate::data::split::train_test_split(data, &grid.split)
        .train
        .len();
    let min_rows = search.min_rows.unwrap_or(0);
    if min_rows > train {
        return Err(GridError::at(
            grid_path,
            span,
            format!(
                "search.min_rows {min_rows} is above the {train} rows of the training part \
                 (of {} rows in the data)",
                data.len()
            ),
        )
        .into());
    }
    Ok(())
}

/// Rung `index` of `search` with `candidates` candidates on a training part of `train`
/// rows: `min_rows · factor^index` rows, capped at the training part; a lone candidate
/// goes to the whole training part at once.
pub fn rung_at(index: usize, candidates: usize, train: usize, search: &SearchConfig) -> Rung {
    let rows = if candidates <= 1 {
        train
    } else {
        let min_rows = search.min_rows.unwrap_or(train);
        rung_rows(min_rows, search.factor(), index).min(train)
    };
    Rung {
        index,
        rows,
        seed: search.seed,
    }
}

/// The key context of a rung's trials: the rung enters the keys only on a subset of the
/// training part (on all of it, a trial is the grid's own).
pub fn key_context<'a>(
    grid: &'a GridFile,
    data_fingerprint: &'a str,
    rung: Rung,
    train: usize,
) -> KeyContext<'a> {
    KeyContext {
        rung: (rung.rows < train).then_some(rung),
        ..KeyContext::for_grid(grid, data_fingerprint)
    }
}

/// The key of a halving search: a hash of its candidates' grid keys (algorithm, params,
/// data, split, folds) and of how it halves (factor, min_rows, seed). Every rung of the
/// search, on every shard, in every resumed run has the same key; tracking files all
/// their trials under one parent run by it, and the run store groups the rungs by it.
pub fn search_key(
    candidates: &[Candidate],
    context: &KeyContext<'_>,
    search: &SearchConfig,
) -> String {
    let mut keys: Vec<String> = candidates.iter().map(|c| trial_key(c, context)).collect();
    keys.sort();
    let input = serde_json::json!({
        "strategy": search.strategy.name(),
        "factor": search.factor(),
        "min_rows": search.min_rows,
        "seed": search.seed,
        "candidates": keys,
    });
    hex(&Sha256::digest(input.to_string()))[..20].to_owned()
}

/// One rung of a sharded halving search, planned.
#[derive(Debug, Clone)]
pub struct RungPlan {
    /// Its candidates, in plan order.
    pub candidates: Vec<Candidate>,
    /// The rung (rows capped at the training part).
    pub rung: Rung,
    /// The search's key.
    pub search_key: String,
    /// Rows of the training part.
    pub train: usize,
}

impl RungPlan {
    /// Whether the rung is the search's last: it trains on the whole training part.
    pub fn is_last(&self) -> bool {
        self.rung.rows >= self.train
    }

    /// Its trial keys, in plan order (the keys the unsharded search gives the same rung).
    pub fn keys(&self, grid: &GridFile, data_fingerprint: &str) -> Vec<String> {
        let key = self.keys_by_candidate(grid, data_fingerprint);
        self.candidates.iter().map(key).collect()
    }

    /// The trial key of a candidate in this rung.
    pub fn keys_by_candidate<'a>(
        &self,
        grid: &'a GridFile,
        data_fingerprint: &'a str,
    ) -> impl Fn(&Candidate) -> String + 'a {
        let context = key_context(grid, data_fingerprint, self.rung, self.train);
        move |c| trial_key(c, &context)
    }
}

/// Plans rung `index` of the halving search of `grid` on `data`, whose candidates are
/// `all` (the grid's): rung 0 runs every one; a later rung runs the survivors that
/// `experiment collect GRID --rung index-1` wrote to `survivors`. A usage error (exit 2)
/// when they are not there yet, are of another search, or the search ended before.
pub fn plan_rung(
    grid: &GridFile,
    data: &Dataset,
    all: &[Candidate],
    index: usize,
    survivors: &Path,
) -> anyhow::Result<RungPlan> {
    let search = grid.search();
    let train = crate::data::split::train_test_split(data, &grid.split)
        .train
        .len();
    let search_key = search_key(all, &KeyContext::for_grid(grid, &data.fingerprint), &search);
    let candidates = match index {
        0 => all.to_vec(),
        _ => {
            let before = index - 1;
            let not_yet = || {
                UsageError(format!(
                    "rung {index} cannot start: rung {before} is not collected yet (no \
                     survivors of it in {}); run every shard's --rung {before}, then `netsec \
                     experiment collect GRID --rung {before}`",
                    survivors.display()
                ))
            };
            let file = SurvivorsFile::read(survivors)?.ok_or_else(not_yet)?;
            file.check_search(survivors, &grid.name, &data.fingerprint, &search_key)?;
            let Some(entry) = file.rung(index) else {
                let ended = file
                    .rungs
                    .iter()
                    .find(|r| r.rows >= train && r.rung < index);
                return Err(match ended {
                    Some(last) => UsageError(format!(
                        "the search ends at rung {}, on the whole training part ({} rows): \
                         there is no rung {index} (collect rung {} for the best model)",
                        last.rung, last.rows, last.rung
                    )),
                    None => not_yet(),
                }
                .into());
            };
            entry.candidates(all, survivors)?
        }
    };
    let rung = rung_at(index, candidates.len(), train, &search);
    Ok(RungPlan {
        candidates,
        rung,
        search_key,
        train,
    })
}

/// Runs the halving search of `input` (whose candidates are the first rung's), one sweep
/// per rung. The outcome counts the trials of every rung; its records are the last rung's,
/// best first, then each earlier rung's, so the first record is the saved model's.
pub async fn run(
    input: &SweepInput<'_>,
    search: &SearchConfig,
    cancel: &CancelToken,
    reporter: &(dyn SweepReporter + Sync),
) -> anyhow::Result<SweepOutcome> {
    let train = crate::data::split::train_test_split(input.data, &input.grid.split)
        .train
        .len();
    let factor = search.factor();
    let context = KeyContext::for_grid(input.grid, &input.data.fingerprint);
    let key = search_key(input.candidates, &context, search);
    let mut candidates: Vec<Candidate> = input.candidates.to_vec();
    let mut earlier: Vec<Vec<TrialRecord>> = Vec::new();
    // The first rung has every algorithm; later ones may not (labels need them all).
    let mut grid_keys = None;
    let (mut planned, mut ran, mut reused, mut failed) = (0, 0, 0, 0);
    // Ends at the rung on the whole training part: rows grow by `factor` >= 2 and are capped.
    for index in 0usize.. {
        let rung = rung_at(index, candidates.len(), train, search);
        let rows = rung.rows;
        tracing::info!(
            rung = index,
            rows,
            candidates = candidates.len(),
            "halving: rung starts"
        );
        let mut outcome = super::run::run(
            &SweepInput {
                candidates: &candidates,
                rung: Some(rung),
                search_key: Some(&key),
                ..*input
            },
            cancel,
            reporter,
        )
        .await?;
        planned += outcome.planned;
        ran += outcome.run;
        reused += outcome.reused;
        failed += outcome.failed;
        let grid_keys = grid_keys.get_or_insert_with(|| outcome.grid_keys.clone());
        let last = rows >= train || outcome.status != SweepStatus::Finished;
        if last {
            outcome.planned = planned;
            outcome.run = ran;
            outcome.reused = reused;
            outcome.failed = failed;
            outcome.grid_keys = grid_keys.clone();
            for records in earlier.into_iter().rev() {
                outcome.records.extend(records);
            }
            return Ok(outcome);
        }
        let keep = candidates.len().div_ceil(factor);
        candidates = survivors(
            &candidates,
            &outcome.records,
            keep,
            input.grid.select.metric,
        );
        earlier.push(outcome.records);
        if candidates.is_empty() {
            anyhow::bail!("halving: every trial of rung {index} failed");
        }
    }
    anyhow::bail!("halving: more rungs than a usize counts")
}

/// Training rows of rung `index` before the cap: `min_rows · factor^index`, saturating.
pub fn rung_rows(min_rows: usize, factor: usize, index: usize) -> usize {
    let power = factor.saturating_pow(u32::try_from(index).unwrap_or(u32::MAX));
    min_rows.saturating_mul(power)
}

/// The `keep` best finished candidates of a rung, in plan order (so the next rung's work
/// units, and a shard's slice of them, do not depend on scores' ties). The unsharded
/// driver and `experiment collect --rung` both pick through here.
pub fn survivors(
    candidates: &[Candidate],
    records: &[TrialRecord],
    keep: usize,
    metric: SelectMetric,
) -> Vec<Candidate> {
    let mut ranked: Vec<TrialRecord> = records
        .iter()
        .filter(|r| r.status == TrialStatus::Finished)
        .cloned()
        .collect();
    rank(&mut ranked, metric);
    ranked.truncate(keep);
    candidates
        .iter()
        .filter(|c| {
            ranked
                .iter()
                .any(|r| r.algorithm == c.algorithm.name() && r.params == c.params)
        })
        .cloned()
        .collect()
}

/// The rung's rows of `train` (row ids), ascending: per class a share proportional to
/// its size, at least `folds` rows (or all it has) so every fold sees every class, drawn
/// by a ChaCha stream of the rung from the search seed.
pub fn subset(class_ids: &[u32], train: &[usize], rung: Rung, folds: usize) -> Vec<usize> {
    let classes = train
        .iter()
        .map(|&r| class_ids[r] as usize + 1)
        .max()
        .unwrap_or(0);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for &r in train {
        by_class[class_ids[r] as usize].push(r);
    }
    let total = train.len().max(1);
    // Largest remainders: the shares sum to `rows` before the per-class floor.
    let exact: Vec<f64> = by_class
        .iter()
        .map(|rows| rung.rows as f64 * rows.len() as f64 / total as f64)
        .collect();
    let mut take: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut order: Vec<usize> = (0..classes).collect();
    order.sort_by(|&a, &b| {
        let fa = exact[a] - exact[a].floor();
        let fb = exact[b] - exact[b].floor();
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    let mut left = rung.rows.saturating_sub(take.iter().sum());
    for &c in order.iter().cycle().take(classes * 2) {
        if left == 0 {
            break;
        }
        if take[c] < by_class[c].len() {
            take[c] += 1;
            left -= 1;
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(rung.seed);
    rng.set_stream(rung.index as u64);
    let mut out = Vec::with_capacity(rung.rows);
    for (c, rows) in by_class.iter_mut().enumerate() {
        let n = take[c].max(folds).min(rows.len());
        rows.shuffle(&mut rng);
        out.extend_from_slice(&rows[..n]);
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_grow_by_factor() {
        assert_eq!(
            (0..4).map(|r| rung_rows(100, 3, r)).collect::<Vec<_>>(),
            vec![100, 300, 900, 2700]
        );
        assert_eq!(rung_rows(usize::MAX / 2, 3, 5), usize::MAX);
    }

    #[test]
    fn subsets_are_stratified_keep_folds_rows_per_class_and_depend_on_seed_and_rung() {
        // 1000 rows: 990 of class 0, 10 of class 1.
        let class_ids: Vec<u32> = (0..1000).map(|i| u32::from(i % 100 == 0)).collect();
        let train: Vec<usize> = (0..1000).collect();
        let rung = |index, rows, seed| Rung { index, rows, seed };
        let a = subset(&class_ids, &train, rung(0, 100, 1), 3);
        let ones = a.iter().filter(|&&r| class_ids[r] == 1).count();
        assert_eq!(ones, 3, "a class of 1 expected row keeps `folds` rows");
        assert!((100..=103).contains(&a.len()), "{}", a.len());
        let half = subset(&class_ids, &train, rung(0, 500, 1), 3);
        assert_eq!(half.len(), 500);
        assert_eq!(half.iter().filter(|&&r| class_ids[r] == 1).count(), 5);
        assert_eq!(a, subset(&class_ids, &train, rung(0, 100, 1), 3));
        assert_ne!(a, subset(&class_ids, &train, rung(0, 100, 2), 3));
        assert_ne!(a, subset(&class_ids, &train, rung(1, 100, 1), 3));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
    }
}
