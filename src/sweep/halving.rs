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

use super::plan::{Candidate, Rung};
use super::record::{TrialRecord, TrialStatus, rank};
use super::report::SweepReporter;
use super::run::{CancelToken, SweepInput, SweepOutcome};
use super::store::SweepStatus;
use crate::config::grid::{GridError, GridFile, SearchConfig, Strategy};
use crate::data::Dataset;

/// Refuses, before anything is written, a halving search that cannot run on this data:
/// `min_rows` above the training part, or `--shard` (rungs are not split across copies).
pub fn check(
    grid: &GridFile,
    grid_path: &Path,
    data: &Dataset,
    sharded: bool,
) -> Result<(), GridError> {
    let (Some(span), search) = (&grid.search, grid.search()) else {
        return Ok(());
    };
    if search.strategy != Strategy::Halving {
        return Ok(());
    }
    if sharded {
        return Err(GridError::at(
            grid_path,
            span,
            "strategy: halving does not run sharded yet (each rung needs every result of the \
             one before); run it without --shard",
        ));
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
        ));
    }
    Ok(())
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
    let min_rows = search.min_rows.unwrap_or(train);
    let mut candidates: Vec<Candidate> = input.candidates.to_vec();
    let mut earlier: Vec<Vec<TrialRecord>> = Vec::new();
    // The first rung has every algorithm; later ones may not (labels need them all).
    let mut grid_keys = None;
    let (mut planned, mut ran, mut reused, mut failed) = (0, 0, 0, 0);
    // Ends at the rung on the whole training part: rows grow by `factor` >= 2 and are capped.
    for index in 0usize.. {
        let rows = if candidates.len() <= 1 {
            train
        } else {
            rung_rows(min_rows, factor, index).min(train)
        };
        let rung = Rung {
            index,
            rows,
            seed: search.seed,
        };
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
        candidates = survivors(&candidates, &outcome.records, keep, input.grid);
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
/// units, and a shard's slice of them, do not depend on scores' ties).
fn survivors(
    candidates: &[Candidate],
    records: &[TrialRecord],
    keep: usize,
    grid: &GridFile,
) -> Vec<Candidate> {
    let mut ranked: Vec<TrialRecord> = records
        .iter()
        .filter(|r| r.status == TrialStatus::Finished)
        .cloned()
        .collect();
    rank(&mut ranked, grid.select.metric);
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
