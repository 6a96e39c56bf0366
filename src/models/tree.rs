//! The tree machinery shared by decision tree, random forest, AdaBoost and gradient boosting:
//! a histogram split search on a [`BinnedMatrix`] and a compact flat tree for prediction.
//!
//! Growth follows scikit-learn's `BestSplitter`: at each node the candidate features are
//! visited in random order; at least `max_features` of them are looked at, and more if none of
//! those was splittable (non-constant in the node); the best split by the criterion wins, ties
//! going to the feature visited first. A node becomes a leaf when it is pure, has fewer than
//! `min_samples_split` samples, is at `max_depth`, or has no split leaving `min_samples_leaf`
//! samples on each side. Zero-gain splits are allowed, as in scikit-learn.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::models::binning::BinnedMatrix;

/// Marks a leaf in [`Node::feature`].
const LEAF: u32 = u32::MAX;

/// Rows walked down a tree together by the batch predictors.
const BLOCK: usize = 64;

/// One node of a flat tree: 16 bytes.
///
/// A split node sends a row to `left` when `row[feature] <= value` and to `left + 1`
/// otherwise. A missing value (NaN) goes right, unless the split learned that missing rows
/// belong left: then `feature` carries [`MISSING_LEFT`] (files written before missing values
/// were learned never set it). A leaf (`feature == u32::MAX`) outputs `value`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "(u32, u32, f64)", into = "(u32, u32, f64)")]
pub struct Node {
    feature: u32,
    left: u32,
    value: f64,
}

/// Flag bit of [`Node::feature`]: NaN goes to the left child.
const MISSING_LEFT: u32 = 1 << 31;

impl Node {
    /// The feature a split node tests.
    #[inline]
    fn feature_index(&self) -> usize {
        (self.feature & !MISSING_LEFT) as usize
    }

    /// Whether a row with value `v` goes to the right child. One comparison for values that
    /// go left; the NaN check only on the way right.
    #[inline]
    fn goes_right(&self, v: f64) -> bool {
        if v <= self.value {
            false
        } else {
            !v.is_nan() || self.feature & MISSING_LEFT == 0
        }
    }
}

impl From<(u32, u32, f64)> for Node {
    fn from((feature, left, value): (u32, u32, f64)) -> Self {
        Node {
            feature,
            left,
            value,
        }
    }
}

impl From<Node> for (u32, u32, f64) {
    fn from(n: Node) -> Self {
        (n.feature, n.left, n.value)
    }
}

/// A fitted tree as a flat node array (root at 0, children always after their parent).
///
/// Serialized as `{"n_features": d, "nodes": [[feature, left, value], ...]}`; deserialization
/// checks the structure so a corrupt file cannot make prediction loop or index out of bounds.
///
/// A K-class classification tree (K > 2) also carries a vector of K class fractions per leaf:
/// `"n_classes": K, "leaf_values": [...]` (K values per leaf, flattened), and its leaf nodes
/// hold their leaf index in `left` and the majority class id in `value`. Scalar trees (binary
/// classification, regression) have neither field, so their form is unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawTree")]
pub struct Tree {
    n_features: usize,
    nodes: Vec<Node>,
    /// K for a class-vector tree, 0 for scalar leaves.
    #[serde(default, skip_serializing_if = "is_zero")]
    n_classes: usize,
    /// `leaf_values[l * K..(l + 1) * K]`: class fractions of leaf `l`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    leaf_values: Vec<f64>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Deserialize)]
struct RawTree {
    n_features: usize,
    nodes: Vec<Node>,
    #[serde(default)]
    n_classes: usize,
    #[serde(default)]
    leaf_values: Vec<f64>,
}

impl TryFrom<RawTree> for Tree {
    type Error = String;
    fn try_from(raw: RawTree) -> Result<Self, String> {
        if raw.nodes.is_empty() {
            return Err("tree has no nodes".into());
        }
        for (i, n) in raw.nodes.iter().enumerate() {
            if n.feature == LEAF {
                continue;
            }
            let left = n.left as usize;
            if n.feature_index() >= raw.n_features || left <= i || left + 1 >= raw.nodes.len() {
                return Err(format!("tree node {i} is malformed"));
            }
        }
        let leaves = raw.nodes.iter().filter(|n| n.feature == LEAF);
        if raw.n_classes == 0 {
            if !raw.leaf_values.is_empty() {
                return Err("tree has leaf_values but no n_classes".into());
            }
        } else {
            let n_leaves = leaves.clone().count();
            if raw.n_classes < 2
                || raw.n_classes > MAX_CLASSES
                || raw.leaf_values.len() != n_leaves * raw.n_classes
                || raw.leaf_values.iter().any(|v| !(0.0..=1.0).contains(v))
            {
                return Err(
                    "tree needs n_classes in 2..=256 and that many leaf_values per leaf".into(),
                );
            }
            if leaves.clone().any(|n| n.left as usize >= n_leaves) {
                return Err("tree leaf index is out of range".into());
            }
        }
        Ok(Tree {
            n_features: raw.n_features,
            nodes: raw.nodes,
            n_classes: raw.n_classes,
            leaf_values: raw.leaf_values,
        })
    }
}

/// Most classes a classification tree learns (class statistics are fixed-size arrays).
pub(crate) const MAX_CLASSES: usize = 256;

impl Tree {
    /// Output of the leaf that `row` falls into. `row.len()` must be at least `n_features`
    /// (checked by callers once per batch).
    #[inline]
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        let mut i = 0usize;
        loop {
            let n = self.nodes[i];
            if n.feature == LEAF {
                return n.value;
            }
            let right = n.goes_right(row[n.feature_index()]);
            i = n.left as usize + usize::from(right);
        }
    }

    /// For every row `r` in `rows`, add `scale ×` its leaf value to `out[r]`. `x` is row-major
    /// with `n_features` columns.
    pub(crate) fn add_rows(&self, x: &[f64], rows: &[u32], scale: f64, out: &mut [f64]) {
        let mut ids = [0usize; BLOCK];
        let mut acc = [0.0; BLOCK];
        for chunk in rows.chunks(BLOCK) {
            for (id, &r) in ids.iter_mut().zip(chunk) {
                *id = r as usize;
            }
            let acc = &mut acc[..chunk.len()];
            acc.fill(0.0);
            self.add_block(x, &ids[..chunk.len()], scale, acc);
            for (&r, a) in chunk.iter().zip(acc.iter()) {
                out[r as usize] += a;
            }
        }
    }

    /// Add `scale ×` the leaf value of row `ids[k]` of `x` to `acc[k]`, for a block of at most
    /// `BLOCK` rows. The rows are walked down together, level by level, so the dependent loads
    /// of different rows overlap instead of waiting on each other.
    fn add_block(&self, x: &[f64], ids: &[usize], scale: f64, acc: &mut [f64]) {
        let d = self.n_features;
        let mut pos = [0u32; BLOCK];
        let pos = &mut pos[..ids.len()];
        loop {
            let mut active = false;
            for (p, &r) in pos.iter_mut().zip(ids) {
                let n = self.nodes[*p as usize];
                if n.feature != LEAF {
                    active = true;
                    let right = n.goes_right(x[r * d + n.feature_index()]);
                    *p = n.left + u32::from(right);
                }
            }
            if !active {
                break;
            }
        }
        for (p, a) in pos.iter().zip(acc.iter_mut()) {
            *a += scale * self.nodes[*p as usize].value;
        }
    }

    /// Class fractions of the leaf `row` falls into, for a class-vector tree (K > 2);
    /// empty for a scalar tree.
    #[inline]
    pub fn class_row(&self, row: &[f64]) -> &[f64] {
        let mut i = 0usize;
        loop {
            let n = self.nodes[i];
            if n.feature == LEAF {
                let k = self.n_classes;
                let l = n.left as usize;
                return &self.leaf_values[l * k..(l + 1) * k];
            }
            let right = n.goes_right(row[n.feature_index()]);
            i = n.left as usize + usize::from(right);
        }
    }

    /// Node index of the leaf of row `ids[k]` of `x` into `pos[k]`, for a block of at most
    /// `BLOCK` rows walked down together (see [`Tree::add_block`]).
    fn leaf_block(&self, x: &[f64], ids: &[usize], pos: &mut [u32]) {
        let d = self.n_features;
        pos.fill(0);
        loop {
            let mut active = false;
            for (p, &r) in pos.iter_mut().zip(ids) {
                let n = self.nodes[*p as usize];
                if n.feature != LEAF {
                    active = true;
                    let right = n.goes_right(x[r * d + n.feature_index()]);
                    *p = n.left + u32::from(right);
                }
            }
            if !active {
                break;
            }
        }
    }

    /// K for a class-vector tree, 0 for a scalar one.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Drop the class vectors of a class-vector tree, keeping each leaf's majority class id
    /// as its scalar output (AdaBoost's multi-class stumps only need the predicted class).
    pub(crate) fn into_class_ids(mut self) -> Tree {
        if self.n_classes > 0 {
            for n in &mut self.nodes {
                if n.feature == LEAF {
                    n.left = 0;
                }
            }
            self.n_classes = 0;
            self.leaf_values = Vec::new();
        }
        self
    }

    /// A depth-1 scalar tree: `row[feature] <= threshold` outputs `left`, anything else
    /// `right` (AdaBoost's K-class stumps, whose outputs are class ids).
    pub(crate) fn stump(
        n_features: usize,
        feature: usize,
        threshold: f64,
        left: f64,
        right: f64,
    ) -> Tree {
        let leaf = |value| Node {
            feature: LEAF,
            left: 0,
            value,
        };
        Tree {
            n_features,
            nodes: vec![
                Node {
                    feature: feature as u32,
                    left: 1,
                    value: threshold,
                },
                leaf(left),
                leaf(right),
            ],
            n_classes: 0,
            leaf_values: Vec::new(),
        }
    }

    /// The root's split as `(feature, threshold)`, or `None` when the root is a leaf.
    pub(crate) fn root_split(&self) -> Option<(usize, f64)> {
        let root = self.nodes[0];
        (root.feature != LEAF).then_some((root.feature_index(), root.value))
    }

    /// Leaf values (scalar outputs) of every leaf, in node order.
    pub(crate) fn leaf_outputs(&self) -> impl Iterator<Item = f64> + '_ {
        self.nodes
            .iter()
            .filter(|n| n.feature == LEAF)
            .map(|n| n.value)
    }

    /// Number of features a row must have.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of nodes.
    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Number of leaves.
    pub fn n_leaves(&self) -> usize {
        self.nodes.iter().filter(|n| n.feature == LEAF).count()
    }

    /// Length of the longest root-to-leaf path (a single leaf has depth 0).
    pub fn depth(&self) -> usize {
        let mut depth = vec![0usize; self.nodes.len()];
        let mut max = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            if n.feature != LEAF {
                let d = depth[i] + 1;
                depth[n.left as usize] = d;
                depth[n.left as usize + 1] = d;
                max = max.max(d);
            }
        }
        max
    }

    /// Apply `f` to every leaf value (used by boosting to fold in the learning rate).
    pub(crate) fn map_leaves(&mut self, f: impl Fn(f64) -> f64) {
        for n in &mut self.nodes {
            if n.feature == LEAF {
                n.value = f(n.value);
            }
        }
    }
}

/// One node of a [`Tree`] as an exporter reads it ([`Tree::export_nodes`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExportNode<'a> {
    /// `row[feature] <= threshold` goes to node `left`, anything else to `left + 1`; a
    /// missing value (NaN) goes left when `missing_left`, else right.
    Split {
        /// The feature tested.
        feature: usize,
        /// The threshold.
        threshold: f64,
        /// Index of the left child (the right one follows it).
        left: usize,
        /// Whether NaN goes left.
        missing_left: bool,
    },
    /// A leaf: its scalar output, and for a class-vector tree its K class fractions
    /// (empty for a scalar tree).
    Leaf {
        /// Scalar output (the majority class id of a class-vector tree).
        value: f64,
        /// Class fractions of a class-vector tree.
        classes: &'a [f64],
    },
}

impl Tree {
    /// Every node in node order (root first), for exporting the tree to another format.
    pub fn export_nodes(&self) -> impl Iterator<Item = ExportNode<'_>> + '_ {
        self.nodes.iter().map(move |n| {
            if n.feature == LEAF {
                let k = self.n_classes;
                let l = n.left as usize;
                let classes = if k > 0 {
                    &self.leaf_values[l * k..(l + 1) * k]
                } else {
                    &[][..]
                };
                ExportNode::Leaf {
                    value: n.value,
                    classes,
                }
            } else {
                ExportNode::Split {
                    feature: n.feature_index(),
                    threshold: n.value,
                    left: n.left as usize,
                    missing_left: n.feature & MISSING_LEFT != 0,
                }
            }
        })
    }
}

/// Staged sums over an ensemble: for each stage `j`,
/// `out[j][r] = finish(j, init + sum over t < stages[j] of scales[t] × trees[t](row r))`.
///
/// Row blocks are the outer loop, so a block of rows stays in L1 cache while every tree is
/// applied to it (tree-by-tree over the whole matrix would stream `x` from memory once per
/// tree). `stages` is ascending within `1..=trees.len()`; `scales` defaults to 1.
pub(crate) fn staged_sums(
    trees: &[Tree],
    scales: Option<&[f64]>,
    x: &[f64],
    stages: &[usize],
    init: f64,
    out: &mut [Vec<f64>],
    finish: impl Fn(usize, f64) -> f64,
) {
    let Some(first) = trees.first() else {
        return;
    };
    let n = x.len() / first.n_features.max(1);
    let mut ids = [0usize; BLOCK];
    let mut acc = [0.0; BLOCK];
    let mut start = 0;
    while start < n {
        let len = BLOCK.min(n - start);
        for (k, id) in ids[..len].iter_mut().enumerate() {
            *id = start + k;
        }
        let acc = &mut acc[..len];
        acc.fill(init);
        let mut done = 0;
        for (j, &k) in stages.iter().enumerate() {
            for (t, tree) in trees.iter().enumerate().take(k).skip(done) {
                let scale = scales.map_or(1.0, |s| s[t]);
                tree.add_block(x, &ids[..len], scale, acc);
            }
            done = k;
            for (o, a) in out[j][start..start + len].iter_mut().zip(acc.iter()) {
                *o = finish(j, *a);
            }
        }
        start += len;
    }
}

/// Staged class-fraction averages over a forest of class-vector trees (K = `k` classes):
/// `out[j][r * k + c]` = mean over the first `stages[j]` trees of tree `t`'s fraction of class
/// `c` in row `r`'s leaf (trees summed in index order, then divided, as scikit-learn's
/// `RandomForestClassifier.predict_proba`). Blocked like [`staged_sums`].
pub(crate) fn staged_class_means(
    trees: &[Tree],
    k: usize,
    x: &[f64],
    stages: &[usize],
    out: &mut [Vec<f64>],
) {
    let Some(first) = trees.first() else {
        return;
    };
    let n = x.len() / first.n_features.max(1);
    let mut ids = [0usize; BLOCK];
    let mut pos = [0u32; BLOCK];
    let mut acc = vec![0.0; BLOCK * k];
    let mut start = 0;
    while start < n {
        let len = BLOCK.min(n - start);
        for (r, id) in ids[..len].iter_mut().enumerate() {
            *id = start + r;
        }
        let acc = &mut acc[..len * k];
        acc.fill(0.0);
        let mut done = 0;
        for (j, &s) in stages.iter().enumerate() {
            for tree in trees.iter().take(s).skip(done) {
                tree.leaf_block(x, &ids[..len], &mut pos[..len]);
                for (a, &p) in acc.chunks_exact_mut(k).zip(&pos[..len]) {
                    let l = tree.nodes[p as usize].left as usize;
                    for (a, v) in a.iter_mut().zip(&tree.leaf_values[l * k..(l + 1) * k]) {
                        *a += v;
                    }
                }
            }
            done = s;
            let div = s as f64;
            for (o, a) in out[j][start * k..(start + len) * k]
                .iter_mut()
                .zip(acc.iter())
            {
                *o = a / div;
            }
        }
        start += len;
    }
}

/// Staged predictions of scalar trees: for each block of rows and each tree `t` in order,
/// `visit(state, t, rows, values)` gets the block's row ids and their leaf outputs, and after
/// the first `stages[j]` trees `stage(state, j, rows)` is called. Blocked like [`staged_sums`].
pub(crate) fn staged_leaf_outputs<S>(
    trees: &[Tree],
    x: &[f64],
    stages: &[usize],
    state: &mut S,
    visit: impl Fn(&mut S, usize, std::ops::Range<usize>, &[f64]),
    mut stage: impl FnMut(&mut S, usize, std::ops::Range<usize>),
) {
    let Some(first) = trees.first() else {
        return;
    };
    let n = x.len() / first.n_features.max(1);
    let mut ids = [0usize; BLOCK];
    let mut pos = [0u32; BLOCK];
    let mut vals = [0.0; BLOCK];
    let mut start = 0;
    while start < n {
        let len = BLOCK.min(n - start);
        for (r, id) in ids[..len].iter_mut().enumerate() {
            *id = start + r;
        }
        let mut done = 0;
        for (j, &s) in stages.iter().enumerate() {
            for (t, tree) in trees.iter().enumerate().take(s).skip(done) {
                tree.leaf_block(x, &ids[..len], &mut pos[..len]);
                for (v, &p) in vals.iter_mut().zip(&pos[..len]) {
                    *v = tree.nodes[p as usize].value;
                }
                visit(state, t, start..start + len, &vals[..len]);
            }
            done = s;
            stage(state, j, start..start + len);
        }
        start += len;
    }
}

/// Per-bin / per-node sufficient statistics of a split criterion.
pub(crate) trait Stats: Copy + Default + Send {
    /// Add another set (sample or bin) into this one.
    fn add(&mut self, other: &Self);
    /// `self - other`.
    fn sub(&self, other: &Self) -> Self;
    /// Number of (distinct) samples.
    fn count(&self) -> usize;
}

/// What a tree is fitted to: per-sample statistics plus the split score and leaf value.
pub(crate) trait Target: Sync {
    /// Statistics type.
    type S: Stats;
    /// Statistics of sample `i` alone.
    fn sample(&self, i: usize) -> Self::S;
    /// Split quality of a child: a split maximizes `score(left) + score(right)`.
    fn score(&self, s: &Self::S) -> f64;
    /// True when the node cannot be improved (a leaf in scikit-learn).
    fn is_pure(&self, s: &Self::S) -> bool;
    /// Output of a leaf with statistics `s` holding the rows `rows` (for what the split
    /// statistics leave out: gradient boosting's hessians are summed here, not in every bin).
    fn leaf_value(&self, s: &Self::S, rows: &[u32]) -> f64;
    /// K when leaves also hold a vector of K values ([`Target::leaf_vector`]), else 0.
    fn n_classes(&self) -> usize {
        0
    }
    /// The leaf's vector output (`out.len() == n_classes()`), for class-vector targets.
    fn leaf_vector(&self, _s: &Self::S, _out: &mut [f64]) {}
}

/// Limits of tree growth; `max_features` is a count already resolved against `n_features`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GrowOptions {
    pub max_depth: usize,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    pub max_features: usize,
}

struct Task<S> {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    stats: S,
    /// The node's full histogram, when it was cheaper to derive from the parent's.
    hist: Option<Vec<S>>,
}

struct Split {
    feature: usize,
    bin: usize,
    /// The node's first non-empty value bin right of `bin` (where the right side's values
    /// start); the feature's value-bin count when no value goes right.
    next_bin: usize,
    /// The feature's missing values go left.
    missing_left: bool,
    score: f64,
}

/// Rows per histogram chunk (at least; see [`fill_all`]). A node of at most this many rows is
/// filled in one pass on the calling thread.
const CHUNK_ROWS: usize = 1 << 15;
/// At most this many chunks per node: each costs a histogram to allocate and to add up.
const MAX_CHUNKS: usize = 16;

/// Add the per-bin statistics of `samples` over all features into `hist` (all zero).
///
/// Large nodes are cut into row chunks filled on the rayon pool, each into its own
/// histogram, then added up in chunk order. The chunks depend on the number of rows alone,
/// so the histogram (and every tree grown from it) is bit-identical for any thread count.
/// Row chunks rather than feature blocks: each thread reads only its own rows' bins and
/// gradients once, where feature blocks had every thread stream all of them.
fn fill_all<T: Target>(
    data: &BinnedMatrix,
    target: &T,
    samples: &[u32],
    carried: Option<&[u8]>,
    hist: &mut [T::S],
    parts: &mut Vec<Vec<T::S>>,
) {
    let chunk = CHUNK_ROWS.max(samples.len().div_ceil(MAX_CHUNKS));
    if samples.len() <= chunk {
        fill_features(data, target, samples, carried, hist);
        return;
    }
    let d = data.n_features;
    use rayon::prelude::*;
    let total_bins = hist.len();
    // The first chunk straight into `hist`, the others into `parts` (kept across nodes).
    let (first, rest) = samples.split_at(chunk);
    let (carried_first, carried_rest) = match carried {
        Some(rows) => {
            let (a, b) = rows.split_at(chunk * d);
            (Some(a), Some(b))
        }
        None => (None, None),
    };
    parts.resize_with(rest.len().div_ceil(chunk), Vec::new);
    rayon::join(
        || fill_features(data, target, first, carried_first, hist),
        || {
            rest.par_chunks(chunk)
                .zip(parts.par_iter_mut())
                .enumerate()
                .for_each(|(c, (rows, part))| {
                    let carried = carried_rest.map(|r| &r[c * chunk * d..][..rows.len() * d]);
                    part.clear();
                    part.resize(total_bins, T::S::default());
                    fill_features(data, target, rows, carried, part);
                })
        },
    );
    for part in parts.iter() {
        for (h, p) in hist.iter_mut().zip(part) {
            h.add(p);
        }
    }
}

/// Add the per-bin statistics of `samples` over all features into `hist`, one row at a time
/// (row-major bins: a row's bins are one cache line or two). `carried`: the rows' bins in
/// `samples` order ([`NodeRows`]), else they are read from `data`.
fn fill_features<T: Target>(
    data: &BinnedMatrix,
    target: &T,
    samples: &[u32],
    carried: Option<&[u8]>,
    hist: &mut [T::S],
) {
    let d = data.n_features;
    let offsets = &data.offsets[..d];
    for (k, &i) in samples.iter().enumerate() {
        let s = target.sample(i as usize);
        let row = match carried {
            Some(rows) => &rows[k * d..(k + 1) * d],
            None => &data.bins[i as usize * d..(i as usize + 1) * d],
        };
        for (b, off) in row.iter().zip(offsets) {
            hist[off + *b as usize].add(&s);
        }
    }
}

/// The bins of a node's rows, in the order of its `samples`: a copy of the row-major bins
/// that the partition moves along with the row ids, so every node's rows are contiguous.
/// Deep trees (a random forest's, a fully grown decision tree's) carry them: their deep
/// nodes hold a few rows spread over the whole data set, one cache miss each per level,
/// where the copy is read in order. Shallow boosting trees do not: moving every row's bins
/// at each of three levels costs more than it saves.
struct NodeRows {
    bins: Vec<u8>,
    /// The right child's rows during a partition.
    right: Vec<u8>,
}

/// Trees allowed this deep or deeper carry their rows' bins ([`NodeRows`]).
const CARRY_DEPTH: usize = 8;

fn carries(opts: &GrowOptions) -> bool {
    #[cfg(test)]
    if tests::NEVER_CARRY.get() {
        return false;
    }
    opts.max_depth >= CARRY_DEPTH
}

/// Grow a tree on the samples `samples` (row ids into `data`; reordered in place).
///
/// When every feature is a candidate at every node (`max_features >= n_features`), a child's
/// histogram is derived as parent minus sibling whenever that is cheaper than a pass over its
/// rows (the classic histogram subtraction trick; only the smaller child is scanned).
pub(crate) fn grow<T: Target>(
    data: &BinnedMatrix,
    target: &T,
    samples: &mut [u32],
    opts: &GrowOptions,
    rng: &mut impl Rng,
) -> Tree {
    grow_recording(data, target, samples, opts, rng, &mut Vec::new())
}

/// A leaf of a freshly grown tree and where its rows ended up: `samples[start..end]` (the
/// `samples` slice given to [`grow_recording`], as reordered by it) all fall into the leaf
/// with output `value`. Lets boosting update its training scores without traversing the tree.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeafRange {
    pub start: usize,
    pub end: usize,
    pub value: f64,
}

/// [`grow`], also listing each leaf's row range into `leaves` (cleared first).
pub(crate) fn grow_recording<T: Target>(
    data: &BinnedMatrix,
    target: &T,
    samples: &mut [u32],
    opts: &GrowOptions,
    rng: &mut impl Rng,
    leaves: &mut Vec<LeafRange>,
) -> Tree {
    leaves.clear();
    let d = data.n_features;
    let full = opts.max_features >= d;
    let mut hist = vec![T::S::default(); data.total_bins];
    let mut pool: Vec<Vec<T::S>> = Vec::new();
    let mut scratch = SplitScratch::default();
    let mut right_rows: Vec<u32> = Vec::new();
    let mut carried = carries(opts).then(|| NodeRows {
        bins: samples
            .iter()
            .flat_map(|&i| &data.bins[i as usize * d..(i as usize + 1) * d])
            .copied()
            .collect(),
        right: Vec::new(),
    });
    let mut features: Vec<usize> = (0..d).collect();
    let mut nodes: Vec<Node> = vec![Node {
        feature: LEAF,
        left: 0,
        value: 0.0,
    }];
    let n_classes = target.n_classes();
    let mut leaf_values: Vec<f64> = Vec::new();
    let mut root = T::S::default();
    for &i in samples.iter() {
        root.add(&target.sample(i as usize));
    }
    let mut stack = vec![Task {
        node: 0,
        start: 0,
        end: samples.len(),
        depth: 0,
        stats: root,
        hist: None,
    }];
    let min_split = opts.min_samples_split.max(2 * opts.min_samples_leaf).max(2);
    let splittable = |n: usize, depth: usize, stats: &T::S| {
        depth < opts.max_depth && n >= min_split && !target.is_pure(stats)
    };

    while let Some(mut task) = stack.pop() {
        let n = task.end - task.start;
        let split = if !splittable(n, task.depth, &task.stats) {
            None
        } else {
            best_split(
                data,
                target,
                &samples[task.start..task.end],
                carried
                    .as_ref()
                    .map(|c| &c.bins[task.start * d..task.end * d]),
                &task.stats,
                opts,
                &mut features,
                &mut hist,
                task.hist.as_deref(),
                &mut scratch,
                rng,
            )
        };
        if let Some(h) = task.hist.take() {
            pool.push(h);
        }
        let Some(split) = split else {
            let value = target.leaf_value(&task.stats, &samples[task.start..task.end]);
            nodes[task.node].value = value;
            if let Some(l) = leaf_values.len().checked_div(n_classes) {
                nodes[task.node].left = l as u32;
                leaf_values.resize(leaf_values.len() + n_classes, 0.0);
                target.leaf_vector(&task.stats, &mut leaf_values[l * n_classes..]);
            }
            leaves.push(LeafRange {
                start: task.start,
                end: task.end,
                value,
            });
            continue;
        };
        // A stable partition: each child keeps its rows in ascending order, so the passes
        // over its rows (histograms, gradients) walk memory forward instead of jumping.
        let node_samples = &mut samples[task.start..task.end];
        let mut mid = 0;
        let missing_bin = data.value_bins(split.feature);
        let goes_left = |bin: u8| {
            if bin as usize == missing_bin {
                split.missing_left
            } else {
                bin as usize <= split.bin
            }
        };
        right_rows.clear();
        // The children's statistics summed over their rows, not the parent's minus the left
        // side's: with fractional weights that difference leaves a rounding residue of a
        // class no row of the child has, and the child would pass for impure.
        let (mut left_stats, mut right_stats) = (T::S::default(), T::S::default());
        match carried.as_mut() {
            None => {
                let column = data.column(split.feature);
                for k in 0..node_samples.len() {
                    let i = node_samples[k];
                    if goes_left(column[i as usize]) {
                        left_stats.add(&target.sample(i as usize));
                        node_samples[mid] = i; // mid <= k: row k is already read
                        mid += 1;
                    } else {
                        right_stats.add(&target.sample(i as usize));
                        right_rows.push(i);
                    }
                }
            }
            Some(rows) => {
                // The same partition, each row's bins moving with its id.
                let node_bins = &mut rows.bins[task.start * d..task.end * d];
                rows.right.clear();
                for k in 0..node_samples.len() {
                    let i = node_samples[k];
                    if goes_left(node_bins[k * d + split.feature]) {
                        left_stats.add(&target.sample(i as usize));
                        if mid < k {
                            node_samples[mid] = i;
                            node_bins.copy_within(k * d..(k + 1) * d, mid * d);
                        }
                        mid += 1;
                    } else {
                        right_stats.add(&target.sample(i as usize));
                        right_rows.push(i);
                        rows.right.extend_from_slice(&node_bins[k * d..(k + 1) * d]);
                    }
                }
                node_bins[mid * d..].copy_from_slice(&rows.right);
            }
        }
        node_samples[mid..].copy_from_slice(&right_rows);
        let left = nodes.len();
        nodes[task.node] = Node {
            feature: split.feature as u32 | if split.missing_left { MISSING_LEFT } else { 0 },
            left: left as u32,
            value: data.split_threshold(split.feature, split.bin, split.next_bin),
        };
        let leaf = Node {
            feature: LEAF,
            left: 0,
            value: 0.0,
        };
        nodes.push(leaf);
        nodes.push(leaf);
        let (nl, nr) = (mid, n - mid);
        let depth = task.depth + 1;
        let (mut left_hist, mut right_hist) = (None, None);
        // `hist` holds this node's full histogram when `full`.
        if full
            && (splittable(nl, depth, &left_stats) || splittable(nr, depth, &right_stats))
            && data.total_bins < nl.max(nr) * d
        {
            let mut small = pool.pop().unwrap_or_default();
            small.clear();
            small.resize(data.total_bins, T::S::default());
            let (lo, hi) = if nl <= nr {
                (task.start, task.start + mid)
            } else {
                (task.start + mid, task.end)
            };
            let carried_rows = carried.as_ref().map(|c| &c.bins[lo * d..hi * d]);
            fill_all(
                data,
                target,
                &samples[lo..hi],
                carried_rows,
                &mut small,
                &mut scratch.parts,
            );
            let mut large = pool.pop().unwrap_or_default();
            large.clear();
            large.extend(hist.iter().zip(&small).map(|(p, c)| p.sub(c)));
            if nl <= nr {
                (left_hist, right_hist) = (Some(small), Some(large));
            } else {
                (left_hist, right_hist) = (Some(large), Some(small));
            }
        }
        stack.push(Task {
            node: left + 1,
            start: task.start + mid,
            end: task.end,
            depth,
            stats: right_stats,
            hist: right_hist,
        });
        stack.push(Task {
            node: left,
            start: task.start,
            end: task.start + mid,
            depth,
            stats: left_stats,
            hist: left_hist,
        });
    }
    Tree {
        n_features: d,
        nodes,
        n_classes,
        leaf_values,
    }
}

/// Scratch buffers of [`best_split`], kept across the nodes of a tree.
struct SplitScratch<S> {
    /// The node's row statistics in row order (gathered once per node).
    ordered: Vec<S>,
    /// (bin, position in the node) of one feature, for a node split by sorting.
    keys: Vec<(u8, u32)>,
    /// One feature's non-empty bins in the node, ascending: (bin, statistics).
    groups: Vec<(usize, S)>,
    /// Histograms of the row chunks of a large node ([`fill_all`]).
    parts: Vec<Vec<S>>,
    /// The features of a batch split by histogram (not by sorting).
    histogrammed: Vec<usize>,
}

impl<S> Default for SplitScratch<S> {
    fn default() -> Self {
        SplitScratch {
            ordered: Vec::new(),
            keys: Vec::new(),
            groups: Vec::new(),
            parts: Vec::new(),
            histogrammed: Vec::new(),
        }
    }
}

/// Whether sorting a node's `n` rows by one feature's bin costs less than clearing, filling
/// and scanning that feature's `n_bins`-bin histogram. The deep nodes of a fully grown tree
/// (a few rows against up to 256 bins) are most of its nodes.
fn sorting_is_cheaper(n: usize, n_bins: usize) -> bool {
    #[cfg(test)]
    if tests::NEVER_SORT.get() {
        return false;
    }
    let log2 = (usize::BITS - n.leading_zeros()) as usize;
    n * log2 < 2 * n_bins
}

/// Whether `k` features' histograms of a node's rows `samples` (ascending) are filled faster
/// row by row from the row-major bins than column by column: cache lines touched, one per
/// row or per 64 rows of the span, whichever is fewer, for `k` columns against one row-major
/// pass (`d` bytes per row).
fn rows_are_cheaper(samples: &[u32], k: usize, d: usize) -> bool {
    let (Some(&first), Some(&last)) = (samples.first(), samples.last()) else {
        return false;
    };
    let span = last.saturating_sub(first) as usize + 1;
    let n = samples.len();
    k * n.min(span / 64 + 1) > n.min(span * d / 64 + 1)
}

/// Best split of one node, or None when no feature has a split leaving `min_samples_leaf`
/// samples on both sides. `pre`: the node's full histogram, if already known. On return with
/// `max_features >= n_features` and more than `total_bins / n_features` rows in the node,
/// `hist` holds the node's full histogram (the only nodes whose children derive theirs from
/// it); smaller nodes are split feature by feature, by sorting where that is cheaper.
///
/// A feature's bins are summed in row order either way, so sorting gives bit for bit the
/// split a histogram gives.
#[allow(clippy::too_many_arguments)]
fn best_split<T: Target>(
    data: &BinnedMatrix,
    target: &T,
    samples: &[u32],
    carried: Option<&[u8]>,
    parent: &T::S,
    opts: &GrowOptions,
    features: &mut [usize],
    hist: &mut [T::S],
    pre: Option<&[T::S]>,
    scratch: &mut SplitScratch<T::S>,
    rng: &mut impl Rng,
) -> Option<Split> {
    let d = data.n_features;
    let n = samples.len();
    let min_leaf = opts.min_samples_leaf.max(1);
    let mut best: Option<Split> = None;
    let mut visited = 0;
    let mut splittable = 0;
    let mut gathered = false;
    // Visit features in random order, a batch at a time: the batch's histograms are built in
    // one pass over the node's rows (row-major bins), then scanned.
    while visited < d && (visited < opts.max_features || splittable == 0) {
        let want = if visited < opts.max_features {
            opts.max_features - visited
        } else {
            1
        };
        let batch_end = (visited + want).min(d);
        for k in visited..batch_end {
            let j = rng.gen_range(k..d);
            features.swap(k, j);
        }
        let batch = &features[visited..batch_end];
        let whole = batch.len() == d && (pre.is_some() || n * d > data.total_bins);
        if whole {
            match pre {
                Some(p) => hist.copy_from_slice(p),
                None => {
                    hist.fill(T::S::default());
                    fill_all(data, target, samples, carried, hist, &mut scratch.parts);
                }
            }
        } else {
            // Feature by feature, the node's row statistics gathered once into row order for
            // all of them.
            if !gathered {
                scratch.ordered.clear();
                scratch
                    .ordered
                    .extend(samples.iter().map(|&i| target.sample(i as usize)));
                gathered = true;
            }
            let histogrammed = &mut scratch.histogrammed;
            histogrammed.clear();
            histogrammed.extend(
                batch
                    .iter()
                    .copied()
                    .filter(|&f| !sorting_is_cheaper(n, data.n_bins(f))),
            );
            for &f in histogrammed.iter() {
                let off = data.offsets[f];
                hist[off..off + data.n_bins(f)].fill(T::S::default());
            }
            if let Some(rows) = carried {
                for (row, s) in rows.chunks_exact(d).zip(&scratch.ordered) {
                    for &f in histogrammed.iter() {
                        hist[data.offsets[f] + row[f] as usize].add(s);
                    }
                }
            } else if rows_are_cheaper(samples, histogrammed.len(), d) {
                // Rows spread thin (a deep node): one cache line per row serves every feature.
                for (&i, s) in samples.iter().zip(&scratch.ordered) {
                    let row = &data.bins[i as usize * d..(i as usize + 1) * d];
                    for &f in histogrammed.iter() {
                        hist[data.offsets[f] + row[f] as usize].add(s);
                    }
                }
            } else {
                // Rows close together: one bin column at a time, a few bytes per row.
                for &f in histogrammed.iter() {
                    let (off, column) = (data.offsets[f], data.column(f));
                    for (&i, s) in samples.iter().zip(&scratch.ordered) {
                        hist[off + column[i as usize] as usize].add(s);
                    }
                }
            }
        }
        for &f in batch {
            let groups = &mut scratch.groups;
            groups.clear();
            if whole || !sorting_is_cheaper(n, data.n_bins(f)) {
                let off = data.offsets[f];
                let h = &hist[off..off + data.n_bins(f)];
                groups.extend(
                    h.iter()
                        .enumerate()
                        .filter(|(_, s)| s.count() > 0)
                        .map(|(b, s)| (b, *s)),
                );
            } else {
                // From the row-major bins: a small node's rows are few and far apart, and
                // each row's cache line serves the node's other features too.
                let keys = &mut scratch.keys;
                keys.clear();
                keys.extend(samples.iter().enumerate().map(|(k, &i)| {
                    let bin = match carried {
                        Some(rows) => rows[k * d + f],
                        None => data.bins[i as usize * d + f],
                    };
                    (bin, k as u32)
                }));
                keys.sort_unstable();
                for &(b, k) in keys.iter() {
                    let s = &scratch.ordered[k as usize];
                    match groups.last_mut() {
                        Some((last, sum)) if *last == b as usize => sum.add(s),
                        _ => {
                            let mut sum = T::S::default();
                            sum.add(s);
                            groups.push((b as usize, sum));
                        }
                    }
                }
            }
            if groups.len() < 2 {
                continue; // constant in this node
            }
            splittable += 1;
            scan_feature(
                target,
                f,
                data.value_bins(f),
                groups,
                parent,
                min_leaf,
                &mut best,
            );
        }
        visited = batch_end;
    }
    best
}

/// Try every cut of feature `f` in a node whose non-empty bins are `groups` (ascending; the
/// missing bin, `values`, last if present), keeping in `best` any split better than it.
///
/// Every cut after a non-empty value bin is tried with the missing rows right, then left
/// (the last value bin only splits values from missing ones). Without missing rows this is
/// the plain scan, so complete data grows exactly the trees it always did.
fn scan_feature<T: Target>(
    target: &T,
    f: usize,
    values: usize,
    groups: &[(usize, T::S)],
    parent: &T::S,
    min_leaf: usize,
    best: &mut Option<Split>,
) {
    let (value_groups, missing) = match groups.split_last() {
        Some((&(b, m), rest)) if b == values => (rest, Some(m)),
        _ => (groups, None),
    };
    let cuts = if missing.is_some() {
        values
    } else {
        values - 1
    };
    let mut left_values = T::S::default();
    for (g, &(b, s)) in value_groups.iter().enumerate() {
        if b >= cuts {
            break;
        }
        left_values.add(&s);
        for missing_left in [false, true] {
            let left = match (missing_left, &missing) {
                (false, _) => left_values,
                (true, Some(m)) => {
                    let mut l = left_values;
                    l.add(m);
                    l
                }
                (true, None) => break,
            };
            let right = parent.sub(&left);
            if left.count() < min_leaf || right.count() < min_leaf {
                continue;
            }
            let score = target.score(&left) + target.score(&right);
            if best.as_ref().is_none_or(|bs| score > bs.score) {
                let next_bin = value_groups.get(g + 1).map_or(values, |&(b, _)| b);
                *best = Some(Split {
                    feature: f,
                    bin: b,
                    next_bin,
                    missing_left,
                    score,
                });
            }
        }
    }
}

/// Class statistics for classification trees: weighted class totals and a sample count.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ClassStats {
    /// Weight of benign (index 0) and attack (index 1) samples.
    pub w: [f64; 2],
    pub n: u32,
}

impl Stats for ClassStats {
    #[inline]
    fn add(&mut self, o: &Self) {
        self.w[0] += o.w[0];
        self.w[1] += o.w[1];
        self.n += o.n;
    }
    #[inline]
    fn sub(&self, o: &Self) -> Self {
        ClassStats {
            w: [self.w[0] - o.w[0], self.w[1] - o.w[1]],
            n: self.n - o.n,
        }
    }
    #[inline]
    fn count(&self) -> usize {
        self.n as usize
    }
}

/// Impurity measure of a classification tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Criterion {
    Gini,
    Entropy,
}

impl Criterion {
    /// Parse scikit-learn's names (`log_loss` is its alias of `entropy`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gini" => Some(Criterion::Gini),
            "entropy" | "log_loss" => Some(Criterion::Entropy),
            _ => None,
        }
    }
}

/// A weighted binary classification target. Leaves output P(attack).
pub(crate) struct ClassTarget<'a> {
    pub y: &'a [bool],
    /// Per-sample weights (bootstrap counts, boosting weights); `None` = all 1.
    pub weights: Option<&'a [f64]>,
    pub criterion: Criterion,
}

impl Target for ClassTarget<'_> {
    type S = ClassStats;

    #[inline]
    fn sample(&self, i: usize) -> ClassStats {
        let w = self.weights.map_or(1.0, |w| w[i]);
        let mut s = ClassStats { w: [0.0; 2], n: 1 };
        s.w[usize::from(self.y[i])] = w;
        s
    }

    #[inline]
    fn score(&self, s: &ClassStats) -> f64 {
        let total = s.w[0] + s.w[1];
        if total <= 0.0 {
            return 0.0;
        }
        match self.criterion {
            // -(weighted gini) up to a constant: sum_c w_c^2 / w
            Criterion::Gini => (s.w[0] * s.w[0] + s.w[1] * s.w[1]) / total,
            // -(w * entropy) = sum_c w_c ln(w_c / w)
            Criterion::Entropy => {
                s.w.iter()
                    .filter(|&&c| c > 0.0)
                    .map(|&c| c * (c / total).ln())
                    .sum()
            }
        }
    }

    #[inline]
    fn is_pure(&self, s: &ClassStats) -> bool {
        s.w[0] <= 0.0 || s.w[1] <= 0.0
    }

    #[inline]
    fn leaf_value(&self, s: &ClassStats, _rows: &[u32]) -> f64 {
        let total = s.w[0] + s.w[1];
        if total > 0.0 { s.w[1] / total } else { 0.5 }
    }
}

/// Class statistics of a K-class tree, for any K up to `N` (unused classes stay 0): weighted
/// class totals and a sample count. `N` is a size bucket chosen at run time (see
/// [`grow_classes`]) so the statistics stay `Copy` arrays like the binary [`ClassStats`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct MultiStats<const N: usize> {
    pub w: [f64; N],
    pub n: u32,
}

impl<const N: usize> Default for MultiStats<N> {
    fn default() -> Self {
        MultiStats { w: [0.0; N], n: 0 }
    }
}

impl<const N: usize> Stats for MultiStats<N> {
    #[inline]
    fn add(&mut self, o: &Self) {
        for (a, b) in self.w.iter_mut().zip(&o.w) {
            *a += b;
        }
        self.n += o.n;
    }
    #[inline]
    fn sub(&self, o: &Self) -> Self {
        let mut s = *self;
        for (a, b) in s.w.iter_mut().zip(&o.w) {
            *a -= b;
        }
        s.n -= o.n;
        s
    }
    #[inline]
    fn count(&self) -> usize {
        self.n as usize
    }
}

/// A weighted K-class target (K <= `N`): scikit-learn's `DecisionTreeClassifier` criteria on
/// K classes. Leaves hold the vector of weighted class fractions and, as scalar output, the
/// majority class id (ties to the lowest id, as `numpy.argmax`).
pub(crate) struct MultiClassTarget<'a, const N: usize> {
    pub y: &'a [u32],
    /// Per-sample weights; `None` = all 1.
    pub weights: Option<&'a [f64]>,
    pub criterion: Criterion,
    pub k: usize,
}

impl<const N: usize> Target for MultiClassTarget<'_, N> {
    type S = MultiStats<N>;

    #[inline]
    fn sample(&self, i: usize) -> MultiStats<N> {
        let mut s = MultiStats::default();
        s.w[self.y[i] as usize] = self.weights.map_or(1.0, |w| w[i]);
        s.n = 1;
        s
    }

    /// The same proxies as the binary [`ClassTarget`]: gini `sum_c w_c^2 / w`, entropy
    /// `sum_c w_c ln(w_c / w)` (scikit-learn's `proxy_impurity_improvement` up to a positive
    /// factor and a constant, so the same split wins).
    #[inline]
    fn score(&self, s: &MultiStats<N>) -> f64 {
        let w = &s.w[..self.k];
        let total: f64 = w.iter().sum();
        if total <= 0.0 {
            return 0.0;
        }
        match self.criterion {
            Criterion::Gini => w.iter().map(|c| c * c).sum::<f64>() / total,
            Criterion::Entropy => w
                .iter()
                .filter(|&&c| c > 0.0)
                .map(|&c| c * (c / total).ln())
                .sum(),
        }
    }

    #[inline]
    fn is_pure(&self, s: &MultiStats<N>) -> bool {
        s.w[..self.k].iter().filter(|&&c| c > 0.0).count() <= 1
    }

    fn leaf_value(&self, s: &MultiStats<N>, _rows: &[u32]) -> f64 {
        let mut best = 0;
        for (c, &v) in s.w[..self.k].iter().enumerate() {
            if v > s.w[best] {
                best = c;
            }
        }
        best as f64
    }

    fn n_classes(&self) -> usize {
        self.k
    }

    fn leaf_vector(&self, s: &MultiStats<N>, out: &mut [f64]) {
        let w = &s.w[..self.k];
        let total: f64 = w.iter().sum();
        for (o, &c) in out.iter_mut().zip(w) {
            // (subtracted histograms may leave a class at -0.0 or a rounding hair below)
            *o = if total > 0.0 {
                (c / total).clamp(0.0, 1.0)
            } else {
                1.0 / self.k as f64
            };
        }
    }
}

/// Grow a K-class tree (3 <= K <= [`MAX_CLASSES`]) on class ids `y` with optional sample
/// weights; see [`grow_recording`]. Statistics use the smallest power-of-two array (>= 4)
/// holding K, so a 3-class tree costs about what a binary one does.
#[allow(clippy::too_many_arguments)]
pub(crate) fn grow_classes(
    data: &BinnedMatrix,
    y: &[u32],
    weights: Option<&[f64]>,
    criterion: Criterion,
    k: usize,
    samples: &mut [u32],
    opts: &GrowOptions,
    rng: &mut impl Rng,
    leaves: &mut Vec<LeafRange>,
) -> Tree {
    macro_rules! bucket {
        ($($n:literal),*) => {
            $(
                if k <= $n {
                    let target = MultiClassTarget::<$n> { y, weights, criterion, k };
                    return grow_recording(data, &target, samples, opts, rng, leaves);
                }
            )*
        };
    }
    bucket!(4, 8, 16, 32, 64, 128, 256);
    panic!("{k} classes is above MAX_CLASSES (callers check)")
}

/// Resolve a `max_features` parameter value to a feature count (scikit-learn rules).
pub(crate) fn max_features_count(
    value: &crate::models::ParamValue,
    n_features: usize,
) -> Option<usize> {
    use crate::models::ParamValue;
    let d = n_features as f64;
    let k = match value {
        ParamValue::Null => n_features,
        ParamValue::Str(s) if s == "sqrt" => d.sqrt() as usize,
        ParamValue::Str(s) if s == "log2" => d.log2() as usize,
        ParamValue::Float(f) => (f * d) as usize,
        ParamValue::Int(i) if *i >= 1 => *i as usize,
        _ => return None,
    };
    Some(k.clamp(1, n_features.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    thread_local! {
        /// Histograms at every node (the split search before small nodes were sorted).
        pub(super) static NEVER_SORT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        /// Rows' bins read from the data set at every node, never carried along.
        pub(super) static NEVER_CARRY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Grow with small nodes sorted or not and the rows' bins carried or not, asserting the
    /// same tree every way.
    fn grown_both_ways(f: impl Fn() -> Tree) -> Tree {
        NEVER_SORT.set(true);
        NEVER_CARRY.set(true);
        let plain = f();
        NEVER_CARRY.set(false);
        assert_eq!(f(), plain, "carried rows");
        NEVER_SORT.set(false);
        assert_eq!(f(), plain, "carried rows, sorted small nodes");
        NEVER_CARRY.set(true);
        let sorted = f();
        NEVER_CARRY.set(false);
        assert_eq!(sorted, plain, "sorted small nodes");
        sorted
    }

    /// Sorting a small node's rows finds bit for bit the split its histogram finds, and rows'
    /// bins carried along the splits the data set's own bins give: binary and
    /// K-class targets, fractional weights, missing values, a column of more than 256 values,
    /// every feature or a few per node.
    #[test]
    fn sorted_small_nodes_grow_the_histogram_tree() {
        let n = 3000;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x = ndarray::Array2::from_shape_fn((n, 6), |(i, j)| match j {
            0 => rng.gen_range(0.0..1000.0), // > 256 distinct: quantile bins
            1 => f64::from(rng.gen_range(0..40u8)),
            2 if i % 7 == 0 => f64::NAN,
            2 => f64::from(rng.gen_range(0..200u8)),
            3 => f64::from(u8::from(rng.gen_bool(0.3))),
            _ => rng.gen_range(-1.0..1.0),
        });
        let data = BinnedMatrix::new(x.view());
        let ids: Vec<u32> = (0..n)
            .map(|i| (x[[i, 1]] as u32 + u32::from(x[[i, 3]] > 0.5) + (i as u32 % 3)) % 5)
            .collect();
        let y: Vec<bool> = ids.iter().map(|&c| c >= 2).collect();
        let weights: Vec<f64> = ids
            .iter()
            .map(|&c| [0.94, 2.74, 1.1, 0.3, 1.7][c as usize])
            .collect();
        for max_features in [6, 2] {
            let mut o = opts();
            o.max_features = max_features;
            for w in [None, Some(&weights[..])] {
                let binary = ClassTarget {
                    y: &y,
                    weights: w,
                    criterion: Criterion::Gini,
                };
                let tree = grown_both_ways(|| {
                    let mut samples: Vec<u32> = (0..n as u32).collect();
                    grow(
                        &data,
                        &binary,
                        &mut samples,
                        &o,
                        &mut ChaCha8Rng::seed_from_u64(3),
                    )
                });
                assert!(tree.n_leaves() > 100, "a deep tree: {}", tree.n_leaves());
                grown_both_ways(|| {
                    let mut samples: Vec<u32> = (0..n as u32).collect();
                    grow_classes(
                        &data,
                        &ids,
                        w,
                        Criterion::Entropy,
                        5,
                        &mut samples,
                        &o,
                        &mut ChaCha8Rng::seed_from_u64(3),
                        &mut Vec::new(),
                    )
                });
            }
        }
    }

    fn opts() -> GrowOptions {
        GrowOptions {
            max_depth: usize::MAX,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: usize::MAX,
        }
    }

    /// Under fractional weights a fully grown tree's leaves are pure to the bit: a child's
    /// class weights are its own rows' sums, not its parent's minus its sibling's (which left
    /// a rounding residue of an absent class, and the tree split pure nodes on).
    #[test]
    fn fractional_weights_leave_no_residue_in_leaves() {
        let n = 2000;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let x = ndarray::Array2::from_shape_fn((n, 3), |_| rng.gen_range(0.0..100.0));
        let ids: Vec<u32> = (0..n).map(|i| (i as u32 * 7 + 3) % 4).collect();
        let weights: Vec<f64> = ids
            .iter()
            .map(|&c| [0.94, 2.74, 0.31, 1.7][c as usize])
            .collect();
        let data = BinnedMatrix::new(x.view());
        let mut samples: Vec<u32> = (0..n as u32).collect();
        let tree = grow_classes(
            &data,
            &ids,
            Some(&weights),
            Criterion::Gini,
            4,
            &mut samples,
            &opts(),
            &mut ChaCha8Rng::seed_from_u64(2),
            &mut Vec::new(),
        );
        let mut leaves = 0;
        for node in tree.export_nodes() {
            if let ExportNode::Leaf { classes, .. } = node {
                leaves += 1;
                assert!(
                    classes.iter().all(|&c| c == 0.0 || c == 1.0),
                    "an impure leaf: {classes:?}"
                );
            }
        }
        // The rows are distinct, so every leaf holds one class; no more leaves than rows.
        assert!(leaves > 100 && leaves <= n, "{leaves} leaves");
    }

    #[test]
    fn learns_xor_exactly() {
        let x = array![[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
        let y = [false, true, true, false];
        let data = BinnedMatrix::new(x.view());
        let target = ClassTarget {
            y: &y,
            weights: None,
            criterion: Criterion::Gini,
        };
        let mut samples: Vec<u32> = (0..4).collect();
        let mut o = opts();
        o.max_features = 2;
        let tree = grow(
            &data,
            &target,
            &mut samples,
            &o,
            &mut ChaCha8Rng::seed_from_u64(1),
        );
        for (i, row) in x.rows().into_iter().enumerate() {
            let p = tree.predict_row(row.as_slice().unwrap());
            assert_eq!(p, if y[i] { 1.0 } else { 0.0 });
        }
        assert_eq!(tree.depth(), 2);
        assert_eq!(tree.n_leaves(), 4);
    }

    #[test]
    fn respects_min_samples_leaf_and_depth() {
        let x = array![[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]];
        let y = [false, true, false, true, false, true];
        let data = BinnedMatrix::new(x.view());
        let target = ClassTarget {
            y: &y,
            weights: None,
            criterion: Criterion::Entropy,
        };
        let mut o = opts();
        o.max_features = 1;
        o.min_samples_leaf = 3;
        let mut samples: Vec<u32> = (0..6).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let tree = grow(&data, &target, &mut samples, &o, &mut rng);
        assert_eq!(tree.n_leaves(), 2);
        o.min_samples_leaf = 1;
        o.max_depth = 0;
        let tree = grow(&data, &target, &mut samples, &o, &mut rng);
        assert_eq!(tree.n_nodes(), 1);
        assert_eq!(tree.predict_row(&[9.0]), 0.5);
    }

    #[test]
    fn batch_prediction_equals_row_prediction() {
        let (x, y) = crate::models::testutil::toy(300, 5, 4);
        let data = BinnedMatrix::new(x.view());
        let target = ClassTarget {
            y: &y,
            weights: None,
            criterion: Criterion::Gini,
        };
        let mut samples: Vec<u32> = (0..300).collect();
        let mut o = opts();
        o.max_features = 5;
        let tree = grow(
            &data,
            &target,
            &mut samples,
            &o,
            &mut ChaCha8Rng::seed_from_u64(1),
        );
        let flat = x.as_slice().unwrap();
        let mut all = vec![vec![0.0; 300]];
        staged_sums(
            std::slice::from_ref(&tree),
            Some(&[2.0]),
            flat,
            &[1],
            1.0,
            &mut all,
            |_, v| v,
        );
        let all = &all[0];
        let odd: Vec<u32> = (0..300).filter(|i| i % 2 == 1).collect();
        let mut some = vec![0.0; 300];
        tree.add_rows(flat, &odd, 1.0, &mut some);
        for i in 0..300 {
            let p = tree.predict_row(&flat[i * 5..(i + 1) * 5]);
            assert_eq!(all[i], 1.0 + 2.0 * p);
            assert_eq!(some[i], if i % 2 == 1 { p } else { 0.0 });
        }
    }

    #[test]
    fn rejects_malformed_tree_json() {
        let bad = r#"{"n_features":1,"nodes":[[0,0,0.5]]}"#;
        assert!(serde_json::from_str::<Tree>(bad).is_err());
        let good = r#"{"n_features":1,"nodes":[[0,1,0.5],[4294967295,0,0.0],[4294967295,0,1.0]]}"#;
        let t: Tree = serde_json::from_str(good).unwrap();
        assert_eq!(t.predict_row(&[1.0]), 1.0);
        assert_eq!(t.predict_row(&[f64::NAN]), 1.0);
    }
}
