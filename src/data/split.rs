//! Deterministic train/test splits and cross-validation folds, stratified by class, with
//! leakage counting and an option to hold out whole groups of identical feature vectors.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use polars::prelude::{CsvWriter, IdxCa, IdxSize, SerWriter};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, InvalidData, dataset_from_table};
use super::load::Table;
use super::schema::Schema;
use crate::fsutil::write_atomic;

/// How to split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// Share of rows held out for the test set, in (0, 1).
    pub test_fraction: f64,
    /// Keep the class balance of both parts equal to the whole.
    #[serde(default = "yes")]
    pub stratify: bool,
    /// Seed of the shuffle.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Split unique feature vectors rather than rows, so no test row has a copy in train.
    #[serde(default)]
    pub dedup: bool,
}

fn yes() -> bool {
    true
}

fn default_seed() -> u64 {
    42
}

impl Default for SplitSpec {
    fn default() -> Self {
        SplitSpec {
            test_fraction: 0.2,
            stratify: true,
            seed: default_seed(),
            dedup: false,
        }
    }
}

/// A split as row indices of the data set, each list ascending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Training rows.
    pub train: Vec<usize>,
    /// Held-out rows.
    pub test: Vec<usize>,
}

/// Splits `data`, stratified by class id. With `dedup`, rows sharing a feature vector stay
/// together (stratified by the group's most frequent class, ties to the highest id, so a
/// binary group with as many attacks as normal rows counts as attack, as it always did).
pub fn train_test_split(data: &Dataset, spec: &SplitSpec) -> Split {
    let groups = if spec.dedup {
        feature_groups(data)
    } else {
        (0..data.len()).map(|r| vec![r]).collect()
    };
    let n_classes = data.classes.len().max(2);
    let group_classes: Vec<u32> = groups
        .iter()
        .map(|rows| {
            let mut counts = vec![0usize; n_classes];
            for &r in rows {
                if let Some(c) = counts.get_mut(data.class_ids[r] as usize) {
                    *c += 1;
                }
            }
            let mut best = 0;
            for (k, &c) in counts.iter().enumerate() {
                if c >= counts[best] {
                    best = k;
                }
            }
            best as u32
        })
        .collect();
    let strata: Vec<Vec<usize>> = if spec.stratify {
        (0..n_classes as u32)
            .map(|class| {
                (0..groups.len())
                    .filter(|&g| group_classes[g] == class)
                    .collect()
            })
            .collect()
    } else {
        vec![(0..groups.len()).collect()]
    };
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for mut stratum in strata {
        stratum.shuffle(&mut rng);
        let n_test = (stratum.len() as f64 * spec.test_fraction).round() as usize;
        for (i, g) in stratum.into_iter().enumerate() {
            let target = if i < n_test { &mut test } else { &mut train };
            target.extend_from_slice(&groups[g]);
        }
    }
    train.sort_unstable();
    test.sort_unstable();
    Split { train, test }
}

/// Rows grouped by identical feature vector, groups ordered by first row.
fn feature_groups(data: &Dataset) -> Vec<Vec<usize>> {
    let mut index: HashMap<Vec<u64>, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for row in 0..data.len() {
        let next = groups.len();
        let g = *index.entry(data.row_key(row)).or_insert(next);
        if g == next {
            groups.push(Vec::new());
        }
        groups[g].push(row);
    }
    groups
}

/// Stratified k-fold over `rows` (indices into `labels`) of a binary label: returns, per
/// fold, the positions in `rows` that form its validation part. The same folds as
/// [`stratified_kfold_ids`] with class ids 0 (false) and 1 (true).
pub fn stratified_kfold(
    labels: &[bool],
    rows: &[usize],
    folds: usize,
    seed: u64,
) -> Vec<Vec<usize>> {
    let ids: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
    stratified_kfold_ids(&ids, rows, folds, seed)
}

/// Stratified k-fold over `rows` (indices into `class_ids`): returns, per fold, the
/// positions in `rows` that form its validation part. Each class, in id order, is shuffled
/// with `seed` and dealt round-robin (continuing where the previous class stopped), so fold
/// sizes differ by at most one per class. For a binary label (ids 0 and 1) these are the
/// folds netsec always made.
pub fn stratified_kfold_ids(
    class_ids: &[u32],
    rows: &[usize],
    folds: usize,
    seed: u64,
) -> Vec<Vec<usize>> {
    let folds = folds.max(2);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6b66_6f6c_6473);
    let mut out = vec![Vec::new(); folds];
    let mut dealt = 0usize;
    let n_classes = rows
        .iter()
        .map(|&r| class_ids[r] + 1)
        .max()
        .unwrap_or(0)
        .max(2);
    for class in 0..n_classes {
        let mut members: Vec<usize> = (0..rows.len())
            .filter(|&p| class_ids[rows[p]] == class)
            .collect();
        members.shuffle(&mut rng);
        for p in members {
            out[dealt % folds].push(p);
            dealt += 1;
        }
    }
    for fold in &mut out {
        fold.sort_unstable();
    }
    out
}

/// Number of test rows whose feature vector also occurs in the training rows.
pub fn leaked_rows(data: &Dataset, split: &Split) -> usize {
    let train: HashSet<Vec<u64>> = split.train.iter().map(|&r| data.row_key(r)).collect();
    split
        .test
        .iter()
        .filter(|&&r| train.contains(&data.row_key(r)))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::{FeatureEncoding, fingerprint};
    use ndarray::Array2;
    use std::path::Path;

    fn toy(n: usize) -> Dataset {
        // Feature = row % 7 so that vectors repeat; every third row is an attack.
        let features = Array2::from_shape_fn((n, 1), |(r, _)| (r % 7) as f64);
        let labels: Vec<bool> = (0..n).map(|r| r % 3 == 0).collect();
        let names = vec!["f".to_owned()];
        Dataset {
            source: "toy".into(),
            fingerprint: fingerprint(&names, &features, &labels),
            features,
            feature_names: names,
            label_values: labels.iter().map(|l| l.to_string()).collect(),
            class_ids: labels.iter().map(|&l| u32::from(l)).collect(),
            classes: crate::shared::Classes::binary("normal", "attack"),
            labels,
            encoding: FeatureEncoding { columns: vec![] },
        }
    }

    #[test]
    fn split_is_deterministic_stratified_and_complete() {
        let data = toy(1000);
        let spec = SplitSpec::default();
        let a = train_test_split(&data, &spec);
        assert_eq!(a, train_test_split(&data, &spec));
        assert_eq!(a.train.len() + a.test.len(), 1000);
        let attacks = a.test.iter().filter(|&&r| data.labels[r]).count();
        assert_eq!(attacks, (334.0f64 * 0.2).round() as usize);
        let other = train_test_split(&data, &SplitSpec { seed: 7, ..spec });
        assert_ne!(a, other);
    }

    #[test]
    fn dedup_split_has_no_leakage() {
        let data = toy(1000);
        let plain = train_test_split(&data, &SplitSpec::default());
        assert!(leaked_rows(&data, &plain) > 0);
        let dedup = train_test_split(
            &data,
            &SplitSpec {
                dedup: true,
                ..SplitSpec::default()
            },
        );
        assert_eq!(leaked_rows(&data, &dedup), 0);
        assert_eq!(dedup.train.len() + dedup.test.len(), 1000);
    }

    /// The split and fold code as it was before class ids (commit 01f8b8b), kept verbatim
    /// as the reference binary splits must still match.
    fn old_split(data: &Dataset, spec: &SplitSpec) -> Split {
        let groups = if spec.dedup {
            feature_groups(data)
        } else {
            (0..data.len()).map(|r| vec![r]).collect()
        };
        let group_labels: Vec<bool> = groups
            .iter()
            .map(|rows| {
                let attacks = rows.iter().filter(|&&r| data.labels[r]).count();
                attacks * 2 >= rows.len()
            })
            .collect();
        let strata: Vec<Vec<usize>> = if spec.stratify {
            [false, true]
                .iter()
                .map(|class| {
                    (0..groups.len())
                        .filter(|&g| group_labels[g] == *class)
                        .collect()
                })
                .collect()
        } else {
            vec![(0..groups.len()).collect()]
        };
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for mut stratum in strata {
            stratum.shuffle(&mut rng);
            let n_test = (stratum.len() as f64 * spec.test_fraction).round() as usize;
            for (i, g) in stratum.into_iter().enumerate() {
                let target = if i < n_test { &mut test } else { &mut train };
                target.extend_from_slice(&groups[g]);
            }
        }
        train.sort_unstable();
        test.sort_unstable();
        Split { train, test }
    }

    fn old_kfold(labels: &[bool], rows: &[usize], folds: usize, seed: u64) -> Vec<Vec<usize>> {
        let folds = folds.max(2);
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6b66_6f6c_6473);
        let mut out = vec![Vec::new(); folds];
        let mut dealt = 0usize;
        for class in [false, true] {
            let mut members: Vec<usize> = (0..rows.len())
                .filter(|&p| labels[rows[p]] == class)
                .collect();
            members.shuffle(&mut rng);
            for p in members {
                out[dealt % folds].push(p);
                dealt += 1;
            }
        }
        for fold in &mut out {
            fold.sort_unstable();
        }
        out
    }

    #[test]
    fn binary_splits_and_folds_are_unchanged_on_phishing_like_data() {
        use crate::data::synthetic::{Profile, generate};
        let schema = Schema::from_file(Path::new("data_schema/phishing.yaml")).unwrap();
        let table = generate(Profile::Phishing, 3000, 11);
        let data = dataset_from_table(&table, &schema).unwrap();
        assert!(data.classes.is_binary());
        for seed in [42, 7] {
            for dedup in [false, true] {
                for stratify in [true, false] {
                    let spec = SplitSpec {
                        test_fraction: 0.2,
                        stratify,
                        seed,
                        dedup,
                    };
                    let split = train_test_split(&data, &spec);
                    assert_eq!(split, old_split(&data, &spec), "{spec:?}");
                    for k in [3, 5] {
                        assert_eq!(
                            stratified_kfold_ids(&data.class_ids, &split.train, k, seed),
                            old_kfold(&data.labels, &split.train, k, seed)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn multiclass_split_and_folds_stratify_every_class() {
        let mut data = toy(1200);
        // Classes 0..4 with 600, 300, 240, 60 rows.
        data.class_ids = (0..1200u32)
            .map(|r| match r % 20 {
                0..=9 => 0,
                10..=14 => 1,
                15..=18 => 2,
                _ => 3,
            })
            .collect();
        data.classes = crate::shared::Classes {
            names: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            normal: vec![true, false, false, false],
        };
        let split = train_test_split(&data, &SplitSpec::default());
        let count =
            |rows: &[usize], k: u32| rows.iter().filter(|&&r| data.class_ids[r] == k).count();
        for (k, n) in [(0, 600.0), (1, 300.0), (2, 240.0), (3, 60.0)] {
            assert_eq!(
                count(&split.test, k),
                (n * 0.2f64).round() as usize,
                "class {k}"
            );
        }
        let folds = stratified_kfold_ids(&data.class_ids, &split.train, 4, 42);
        for fold in &folds {
            let rows: Vec<usize> = fold.iter().map(|&p| split.train[p]).collect();
            assert_eq!(count(&rows, 3), 12, "48 rows of class 3 over 4 folds");
        }
    }

    #[test]
    fn kfold_partitions_and_stratifies() {
        let data = toy(300);
        let rows: Vec<usize> = (0..300).collect();
        let folds = stratified_kfold(&data.labels, &rows, 3, 1);
        assert_eq!(folds, stratified_kfold(&data.labels, &rows, 3, 1));
        let mut all: Vec<usize> = folds.concat();
        all.sort_unstable();
        assert_eq!(all, rows);
        for fold in &folds {
            assert_eq!(fold.len(), 100);
            let attacks = fold.iter().filter(|&&p| data.labels[p]).count();
            assert!((33..=34).contains(&attacks), "{attacks}");
        }
    }
}

/// The outcome of [`write_split`]: the split as printed and written to `split.json`.
#[derive(Debug, Serialize)]
pub struct SplitSummary {
    /// The data set's source (file name).
    pub source: String,
    /// The data fingerprint the split belongs to.
    pub fingerprint: String,
    /// How it was split.
    pub spec: SplitSpec,
    /// Rows in the training part.
    pub train_rows: usize,
    /// Attack rows in the training part.
    pub train_attacks: usize,
    /// Rows in the test part.
    pub test_rows: usize,
    /// Attack rows in the test part.
    pub test_attacks: usize,
    /// Test rows whose feature vector also occurs in train.
    pub leaked_test_rows: usize,
    /// Per fold, its size (positions into `train`).
    pub fold_sizes: Vec<usize>,
}

/// `split.json`: the summary plus the row indices, so that another tool can replay it.
#[derive(Debug, Serialize)]
struct SplitFile<'a> {
    #[serde(flatten)]
    summary: &'a SplitSummary,
    /// 0-based data row indices of the training part.
    train: &'a [usize],
    /// 0-based data row indices of the test part.
    test: &'a [usize],
    /// Per fold, the 0-based data row indices of its validation part.
    folds: Vec<Vec<usize>>,
}

/// Why [`write_split`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// The table does not fit the schema.
    #[error(transparent)]
    Data(#[from] InvalidData),
    /// The output directory cannot be created.
    #[error("creating {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A part cannot be written.
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Selecting a part's rows failed.
    #[error(transparent)]
    Frame(#[from] polars::error::PolarsError),
    /// `split.json` cannot be rendered.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl SplitError {
    /// The process exit code: the data's own for data that does not fit, else a runtime
    /// failure (the file system).
    pub fn exit_code(&self) -> u8 {
        match self {
            SplitError::Data(e) => e.exit_code(),
            SplitError::CreateDir { .. }
            | SplitError::Write { .. }
            | SplitError::Frame(_)
            | SplitError::Json(_) => crate::exit::RUNTIME_FAILURE,
        }
    }
}

/// Splits `table` (typed by `schema`) by `spec`, with `folds` cross-validation folds of the
/// training part when given, and, with `out`, writes `train.csv`, `test.csv` and
/// `split.json` there, each atomically. The entry point of `netsec data split`.
pub async fn write_split(
    table: &Table,
    schema: &Schema,
    spec: SplitSpec,
    folds: Option<usize>,
    out: Option<&Path>,
) -> Result<SplitSummary, SplitError> {
    let data = dataset_from_table(table, schema)?;
    let split = train_test_split(&data, &spec);
    // Folds are positions into `train`; the file records them as data rows.
    let folds: Vec<Vec<usize>> = match folds {
        Some(k) => stratified_kfold_ids(&data.class_ids, &split.train, k, spec.seed)
            .into_iter()
            .map(|fold| fold.into_iter().map(|p| split.train[p]).collect())
            .collect(),
        None => Vec::new(),
    };
    let attacks = |rows: &[usize]| rows.iter().filter(|&&r| data.labels[r]).count();
    let summary = SplitSummary {
        source: data.source.clone(),
        fingerprint: data.fingerprint.clone(),
        spec,
        train_rows: split.train.len(),
        train_attacks: attacks(&split.train),
        test_rows: split.test.len(),
        test_attacks: attacks(&split.test),
        leaked_test_rows: leaked_rows(&data, &split),
        fold_sizes: folds.iter().map(Vec::len).collect(),
    };
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|source| SplitError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        write_rows(table, &split.train, &dir.join("train.csv"))?;
        write_rows(table, &split.test, &dir.join("test.csv"))?;
        let file = SplitFile {
            summary: &summary,
            train: &split.train,
            test: &split.test,
            folds,
        };
        let json = serde_json::to_vec(&file)?;
        let path = dir.join("split.json");
        write_atomic(&path, |w| w.write_all(&json))
            .map_err(|source| SplitError::Write { path, source })?;
    }
    Ok(summary)
}

/// Writes the `rows` of `table` as CSV to `path`, atomically.
fn write_rows(table: &Table, rows: &[usize], path: &Path) -> Result<(), SplitError> {
    let indices: Vec<IdxSize> = rows.iter().map(|&r| r as IdxSize).collect();
    let mut part = table.frame.take(&IdxCa::from_vec("idx".into(), indices))?;
    write_atomic(path, |w| {
        CsvWriter::new(w)
            .finish(&mut part)
            .map_err(std::io::Error::other)
    })
    .map_err(|source| SplitError::Write {
        path: path.to_owned(),
        source,
    })
}
