//! Feature binning shared by the tree learners (decision tree, random forest, AdaBoost stumps,
//! gradient boosting).
//!
//! Each feature is binned once per data set: a feature with at most [`MAX_BINS`] distinct values
//! gets one bin per value (so splits are exactly those of an exact CART splitter, whose
//! thresholds are midpoints between neighbouring values), a feature with more gets quantile bins.
//! Split search then works on per-bin statistics instead of sorting, and fitted trees store the
//! threshold in the original feature units, so prediction never needs the bins.
//!
//! On more than [`SAMPLE_ROWS`] rows the quantiles come from a seeded sample of that many rows
//! (LightGBM samples 200,000 rows for its bin edges); whether a feature has few enough distinct
//! values for exact bins is still decided on every row, so one-hot and other low-cardinality
//! columns keep their exact bins at any size.
//!
//! Missing values (NaN) of a feature get a bin of their own after its value bins (as
//! LightGBM and scikit-learn's HistGradientBoosting keep them): split search tries them on
//! either side of every cut and the tree remembers the side (see `tree.rs`).
//!
//! Binning runs feature by feature on the rayon pool; the result does not depend on the
//! thread count.

use ndarray::{ArrayView1, ArrayView2};

/// Most bins per feature (bin ids are `u8`).
pub const MAX_BINS: usize = 256;

/// Rows whose values decide quantile bin edges, at most: larger data sets are sampled.
pub const SAMPLE_ROWS: usize = 200_000;

/// The fixed seed of the bin-edge sample: bins are a property of the data set, shared by every
/// fit on it whatever that fit's seed.
const SAMPLE_SEED: u64 = 0x6269_6e73;

/// A training matrix in bin ids, row-major (`n_rows × n_features` bytes) for histogram
/// building and column-major (the same bytes again) for partitioning a node's rows by one
/// feature, which then reads one cache-friendly column instead of one byte per row stride.
#[derive(Clone, Debug)]
pub(crate) struct BinnedMatrix {
    pub n_features: usize,
    /// Rows binned.
    pub n_rows: usize,
    /// Bin id of row `i`, feature `f` at `i * n_features + f`.
    pub bins: Vec<u8>,
    /// Bin id of row `i`, feature `f` at `f * n_rows + i`.
    columns: Vec<u8>,
    /// `thresholds[f][b]`: bins `0..=b` hold exactly the values `<= thresholds[f][b]`.
    /// Feature `f` has `thresholds[f].len() + 1` bins.
    pub thresholds: Vec<Vec<f64>>,
    /// `bin_bounds[f][b]`: the smallest and largest value in bin `b` of feature `f` (NaN when
    /// the bin is empty), so a split can cut midway between the values a node actually holds.
    pub bin_bounds: Vec<Vec<(f64, f64)>>,
    /// `quantiled[f]`: feature `f` has more than [`MAX_BINS`] distinct values, so its bins
    /// are quantiles and its splits a subset of an exact splitter's.
    pub quantiled: Vec<bool>,
    /// `missing[f]`: feature `f` has NaN values; they sit in its last bin, after its
    /// `thresholds[f].len() + 1` value bins.
    pub missing: Vec<bool>,
    /// Offset of feature `f`'s first bin in a histogram over all features.
    pub offsets: Vec<usize>,
    /// Total bins over all features.
    pub total_bins: usize,
}

/// One feature, binned.
struct BinnedColumn {
    thresholds: Vec<f64>,
    quantiled: bool,
    missing: bool,
    bins: Vec<u8>,
    bounds: Vec<(f64, f64)>,
}

impl BinnedMatrix {
    /// Bin `x`. Values are finite or NaN (missing); callers refuse infinities first.
    pub fn new(x: ArrayView2<f64>) -> Self {
        use rayon::prelude::*;
        let (n_rows, n_features) = x.dim();
        let sample = (n_rows > SAMPLE_ROWS).then(|| sample_rows(n_rows, SAMPLE_ROWS));
        let binned: Vec<BinnedColumn> = (0..n_features)
            .into_par_iter()
            .map(|f| bin_column(x.column(f), sample.as_deref()))
            .collect();
        let mut bins = vec![0u8; n_rows * n_features];
        // Row-major from the columns, a block of rows at a time so both stay in cache.
        const ROWS: usize = 4096;
        bins.par_chunks_mut(ROWS * n_features.max(1))
            .enumerate()
            .for_each(|(block, out)| {
                let start = block * ROWS;
                for (f, column) in binned.iter().enumerate() {
                    let len = out.len() / n_features;
                    for (r, &b) in column.bins[start..start + len].iter().enumerate() {
                        out[r * n_features + f] = b;
                    }
                }
            });
        let mut columns = Vec::with_capacity(n_rows * n_features);
        let mut offsets = Vec::with_capacity(n_features);
        let mut total_bins = 0;
        let (mut thresholds, mut bin_bounds, mut quantiled, mut missing) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for column in binned {
            offsets.push(total_bins);
            total_bins += column.thresholds.len() + 1 + usize::from(column.missing);
            columns.extend_from_slice(&column.bins);
            thresholds.push(column.thresholds);
            bin_bounds.push(column.bounds);
            quantiled.push(column.quantiled);
            missing.push(column.missing);
        }
        BinnedMatrix {
            n_features,
            n_rows,
            bins,
            columns,
            thresholds,
            bin_bounds,
            quantiled,
            missing,
            offsets,
            total_bins,
        }
    }

    /// Bin ids of feature `f`, one per row.
    #[inline]
    pub fn column(&self, f: usize) -> &[u8] {
        &self.columns[f * self.n_rows..(f + 1) * self.n_rows]
    }

    /// Number of value bins of feature `f` (its missing bin, if any, comes after them).
    pub fn value_bins(&self, f: usize) -> usize {
        self.thresholds[f].len() + 1
    }

    /// Number of bins of feature `f`, its missing bin included.
    pub fn n_bins(&self, f: usize) -> usize {
        self.value_bins(f) + usize::from(self.missing[f])
    }

    /// The threshold that sends bins `..=below` left and bins `above..` right, cutting midway
    /// between the largest value of bin `below` and the smallest of bin `above`, as
    /// scikit-learn's exact splitter cuts between a node's neighbouring values (the bins
    /// between are empty in the node). Held-out values in that gap go the same way as there.
    /// With no value bin `above` (a cut between the values and the missing bin), every
    /// value goes left: `f64::MAX` (JSON has no infinity).
    pub fn split_threshold(&self, f: usize, below: usize, above: usize) -> f64 {
        if above >= self.value_bins(f) {
            return f64::MAX;
        }
        let lo = self.bin_bounds[f][below].1;
        let hi = self.bin_bounds[f][above].0;
        if lo.is_nan() || hi.is_nan() {
            return self.thresholds[f][below];
        }
        midpoint(lo, hi)
    }
}

/// `k` of the rows `0..n`, ascending, drawn with the fixed bin-edge seed (the selection
/// sampling gradient boosting draws its in-bag rows with).
fn sample_rows(n: usize, k: usize) -> Vec<u32> {
    let mut rng = crate::models::rng_for(SAMPLE_SEED, 0);
    crate::models::gradient_boosting::in_bag(n, k, &mut rng)
}

/// The distinct non-NaN values of `column` in ascending order, or `None` when there are more
/// than `max` of them.
fn few_distinct(column: ArrayView1<f64>, max: usize) -> Option<Vec<f64>> {
    let mut distinct: Vec<f64> = Vec::new();
    let mut last = f64::NAN;
    for &v in column {
        // Runs of one value (a one-hot column's zeros) skip the search.
        if v == last || v.is_nan() {
            continue;
        }
        last = v;
        if let Err(at) = distinct.binary_search_by(|d| d.total_cmp(&v)) {
            if distinct.len() == max {
                return None;
            }
            distinct.insert(at, v);
        }
    }
    Some(distinct)
}

/// Bins one feature: exact bins when it has at most [`MAX_BINS`] distinct values (one taken by
/// its missing bin if it has NaN), else quantile bins of its values (of the `sample` rows only,
/// when given).
fn bin_column(column: ArrayView1<f64>, sample: Option<&[u32]>) -> BinnedColumn {
    let missing = column.iter().any(|v| v.is_nan());
    // The missing bin takes one of the 256 bin ids.
    let max_bins = MAX_BINS - usize::from(missing);
    let (thresholds, quantiled) = match few_distinct(column, max_bins) {
        // -0.0 and 0.0 are one value to the splitter: the midpoint between them is 0.
        Some(distinct) => (exact_thresholds(&distinct), false),
        None => {
            let values: Vec<f64> = match sample {
                Some(rows) => rows.iter().map(|&i| column[i as usize]).collect(),
                None => column.to_vec(),
            };
            let values = values.into_iter().filter(|v| !v.is_nan()).collect();
            feature_thresholds(values, max_bins)
        }
    };
    let mut bounds = vec![(f64::NAN, f64::NAN); thresholds.len() + 1 + usize::from(missing)];
    let missing_bin = (thresholds.len() + 1) as u8;
    let bins = column
        .iter()
        .map(|&v| {
            if v.is_nan() {
                return missing_bin;
            }
            let b = thresholds.partition_point(|&t| t < v);
            let (lo, hi) = &mut bounds[b];
            // NaN-aware: f64::min/max return the other operand when one is NaN.
            *lo = lo.min(v);
            *hi = hi.max(v);
            b as u8
        })
        .collect();
    BinnedColumn {
        thresholds,
        quantiled,
        missing,
        bins,
        bounds,
    }
}

/// Midpoints between neighbouring distinct values (ascending), as [`feature_thresholds`]
/// cuts a feature with few values.
fn exact_thresholds(distinct: &[f64]) -> Vec<f64> {
    let mut thr: Vec<f64> = Vec::with_capacity(distinct.len().saturating_sub(1));
    let mut prev: Option<f64> = None;
    for &v in distinct {
        if let Some(p) = prev {
            if p == v {
                continue; // -0.0 and 0.0
            }
            thr.push(midpoint(p, v));
        }
        prev = Some(v);
    }
    thr
}

/// Split thresholds of one feature: midpoints between neighbouring distinct values, thinned to
/// quantiles when there are more than `max_bins` values (then `true`).
fn feature_thresholds(mut values: Vec<f64>, max_bins: usize) -> (Vec<f64>, bool) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let mut distinct: Vec<(f64, usize)> = Vec::new(); // (value, rows with a value <= it)
    for (i, &v) in values.iter().enumerate() {
        match distinct.last_mut() {
            Some((last, cum)) if *last == v => *cum = i + 1,
            _ => distinct.push((v, i + 1)),
        }
    }
    if distinct.len() <= max_bins {
        let exact = distinct
            .windows(2)
            .map(|w| midpoint(w[0].0, w[1].0))
            .collect();
        return (exact, false);
    }
    // Quantile bins: cut after the distinct value where the cumulative count first reaches each
    // of the max_bins - 1 quantile ranks.
    let mut thr = Vec::with_capacity(max_bins - 1);
    let mut j = 0;
    for q in 1..max_bins {
        let rank = (q * n).div_ceil(max_bins);
        while j + 1 < distinct.len() && distinct[j].1 < rank {
            j += 1;
        }
        if j + 1 >= distinct.len() {
            break;
        }
        let t = midpoint(distinct[j].0, distinct[j + 1].0);
        if thr.last() != Some(&t) {
            thr.push(t);
        }
    }
    (thr, true)
}

/// Midpoint as scikit-learn computes it, falling back to the lower value if rounding lands on
/// the upper one (so `lo <= t < hi` holds).
pub(crate) fn midpoint(lo: f64, hi: f64) -> f64 {
    let t = lo / 2.0 + hi / 2.0;
    if t >= hi || !t.is_finite() { lo } else { t }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn low_cardinality_is_exact() {
        let x = array![[-1.0, 5.0], [0.0, 5.0], [1.0, 5.0], [1.0, 5.0]];
        let b = BinnedMatrix::new(x.view());
        assert_eq!(b.thresholds[0], vec![-0.5, 0.5]);
        assert!(b.thresholds[1].is_empty());
        assert_eq!(b.bins, vec![0, 0, 1, 0, 2, 0, 2, 0]);
        assert_eq!(b.offsets, vec![0, 3]);
        assert_eq!(b.total_bins, 4);
        assert_eq!(b.quantiled, vec![false, false]);
    }

    #[test]
    fn split_threshold_cuts_between_the_values_a_node_holds() {
        let x = array![[-1.0], [0.0], [1.0], [3.0]];
        let b = BinnedMatrix::new(x.view());
        // Adjacent bins: the column's own midpoint.
        assert_eq!(b.split_threshold(0, 0, 1), -0.5);
        // A node holding -1 and 3 only (bins 1 and 2 empty in it): midway, as scikit-learn.
        assert_eq!(b.split_threshold(0, 0, 3), 1.0);
        assert_eq!(b.split_threshold(0, 1, 3), 1.5);
    }

    #[test]
    fn bins_agree_with_thresholds() {
        let n = 3000;
        let x = ndarray::Array2::from_shape_fn((n, 1), |(i, _)| ((i * 7919) % 1000) as f64 * 0.1);
        let b = BinnedMatrix::new(x.view());
        assert!(b.n_bins(0) <= MAX_BINS && b.n_bins(0) > 200);
        assert_eq!(b.quantiled, vec![true]);
        for i in 0..n {
            let bin = b.bins[i] as usize;
            let v = x[[i, 0]];
            if bin > 0 {
                assert!(v > b.thresholds[0][bin - 1]);
            }
            if bin < b.thresholds[0].len() {
                assert!(v <= b.thresholds[0][bin]);
            }
        }
    }
}
