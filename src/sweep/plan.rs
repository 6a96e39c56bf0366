//! From a grid file to the list of trials: expand each algorithm's grid, check every
//! parameter against the algorithm before any training (and, once the data is loaded, the
//! class names of `class_weight` maps against its classes), give each trial its
//! deterministic key, group staged ensembles, and take a shard's slice.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::search::draw_points;
use crate::config::grid::{Distribution, GridError, GridFile, ModelGrid};
use crate::data::split::SplitSpec;
use crate::models::early_stopping;
use crate::models::operating_point::Target;
use crate::models::params::CLASS_WEIGHT;
use crate::models::{Algorithm, ParamError, ParamKind, ParamValue, Params, algorithm, algorithms};
use crate::shared::Classes;
use crate::shared::hash::hex;

/// One grid point, checked.
#[derive(Clone)]
pub struct Candidate {
    /// The algorithm.
    pub algorithm: &'static dyn Algorithm,
    /// Complete parameters (defaults filled in).
    pub params: Params,
    /// Names of the parameters the grid varies or sets, for labels.
    pub grid_keys: Vec<String>,
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate")
            .field("algorithm", &self.algorithm.name())
            .field("params", &self.params)
            .finish()
    }
}

/// Expands and checks every model grid of the file; errors name file, line and key.
///
/// Every strategy plans here: a grid takes each model entry's cartesian product, a random
/// search (and a halving search with `trials`) its draws ([`super::search`]); the points
/// then go through the same checks, the same duplicate collapse and later the same keys.
pub fn expand(grid: &GridFile, path: &Path) -> Result<Vec<Candidate>, GridError> {
    let search = grid.search();
    let mut out: Vec<Candidate> = Vec::new();
    for (entry, model) in grid.models.iter().enumerate() {
        let name = &model.algorithm.value;
        let Some(algo) = algorithm(name) else {
            let known: Vec<&str> = algorithms().iter().map(|a| a.name()).collect();
            return Err(GridError::at(
                path,
                &model.algorithm,
                format!("unknown algorithm `{name}` (known: {})", known.join(", ")),
            ));
        };
        let grid_keys: Vec<String> = model.grid.keys().cloned().collect();
        let points = match search.trials {
            Some(trials) => {
                let axes = distributions(algo, model, path)?;
                draw_points(&axes, trials, search.seed, entry)
            }
            _ => {
                let axes: Vec<(&String, Vec<ParamValue>)> = model
                    .grid
                    .iter()
                    .map(|(key, values)| (key, values.value.values()))
                    .collect();
                cartesian(&axes)
            }
        };
        for point in points {
            let params = algo
                .validate(&point)
                .map_err(|err| param_error(path, model, err))?;
            let duplicate = out
                .iter()
                .any(|c| c.algorithm.name() == algo.name() && c.params == params);
            if !duplicate {
                out.push(Candidate {
                    algorithm: algo,
                    params,
                    grid_keys: grid_keys.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// A parameter error at the grid key it names (or at the algorithm).
fn param_error(path: &Path, model: &ModelGrid, err: ParamError) -> GridError {
    let name = &model.algorithm.value;
    let key = match &err {
        ParamError::Unknown { key, .. } | ParamError::Invalid { key, .. } => key,
    };
    match model.grid.get(key) {
        Some(span) => GridError::at(path, span, format!("models.{name}.grid.{key}: {err}")),
        None => GridError::at(path, &model.algorithm, err.to_string()),
    }
}

/// The model entry's distributions, each checked against its parameter: `uniform` and
/// `loguniform` only where fractional numbers are accepted, `int` only where integers
/// are, and both bounds valid values of the parameter (so every draw is).
fn distributions(
    algo: &'static dyn Algorithm,
    model: &ModelGrid,
    path: &Path,
) -> Result<Vec<(String, Distribution)>, GridError> {
    let name = &model.algorithm.value;
    let mut axes = Vec::with_capacity(model.grid.len());
    for (key, span) in &model.grid {
        let at = |message: String| {
            GridError::at(path, span, format!("models.{name}.grid.{key}: {message}"))
        };
        let dist = span.value.distribution().map_err(at)?;
        let bounds = match dist {
            Distribution::Uniform(lo, hi) | Distribution::LogUniform(lo, hi) => {
                Some((ParamValue::Float(lo), ParamValue::Float(hi), true))
            }
            Distribution::Int(lo, hi) => Some((ParamValue::Int(lo), ParamValue::Int(hi), false)),
            Distribution::Choice(_) => None,
        };
        if let Some((lo, hi, fractional)) = bounds {
            // An unknown key is reported by `validate` with the list of known ones.
            if let Some(spec) = algo.params().iter().find(|s| s.name == key.as_str()) {
                if !takes(&spec.kind, fractional) {
                    return Err(at(format!(
                        "`{}` draws {}, and `{key}` of {name} takes {}",
                        dist.name(),
                        if fractional {
                            "fractional numbers"
                        } else {
                            "integers"
                        },
                        spec.kind
                    )));
                }
                for bound in [lo, hi] {
                    let point = Params::from([(key.clone(), bound)]);
                    algo.validate(&point).map_err(|err| {
                        at(format!(
                            "a bound of `{}` is not a valid value: {err}",
                            dist.name()
                        ))
                    })?;
                }
            }
        }
        axes.push((key.clone(), dist));
    }
    Ok(axes)
}

/// Whether a parameter of `kind` takes fractional numbers (`fractional`) or integers.
fn takes(kind: &ParamKind, fractional: bool) -> bool {
    match kind {
        ParamKind::Float { .. } | ParamKind::Interval { .. } => true,
        ParamKind::Int { .. } => !fractional,
        ParamKind::OneOf(kinds) => kinds.iter().any(|k| takes(k, fractional)),
        ParamKind::Null | ParamKind::Bool | ParamKind::Choice(_) | ParamKind::ClassWeights => false,
    }
}

/// Checks every class name of the grid's `class_weight` maps against the data's classes
/// (after the label is folded or grouped), before anything is fitted or written; the error
/// names the file, line and column of the map, the unknown class and the known ones.
pub fn check_class_weights(
    grid: &GridFile,
    path: &Path,
    classes: &Classes,
) -> Result<(), GridError> {
    for model in &grid.models {
        let Some(span) = model.grid.get(CLASS_WEIGHT.name) else {
            continue;
        };
        // Also the maps of a `choice` distribution of a random search.
        let values = span
            .value
            .distribution()
            .ok()
            .and_then(|d| d.finite_values());
        for value in values.unwrap_or_default() {
            let ParamValue::Map(map) = value else {
                continue;
            };
            if let Some(unknown) = map.keys().find(|name| !classes.names.contains(name)) {
                return Err(GridError::at(
                    path,
                    span,
                    format!(
                        "models.{}.grid.class_weight: unknown class `{unknown}` (the classes of \
                         the data are: {})",
                        model.algorithm.value,
                        classes.names.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn cartesian(axes: &[(&String, Vec<ParamValue>)]) -> Vec<Params> {
    let mut points = vec![Params::new()];
    for (key, values) in axes {
        points = points
            .into_iter()
            .flat_map(|point| {
                values.iter().map(move |v| {
                    let mut p = point.clone();
                    p.insert((*key).clone(), v.clone());
                    p
                })
            })
            .collect();
    }
    points
}

/// What besides algorithm and parameters decides a trial's result.
#[derive(Debug, Clone, Serialize)]
pub struct KeyContext<'a> {
    /// Fingerprint of the encoded data.
    pub data_fingerprint: &'a str,
    /// The split.
    pub split: &'a SplitSpec,
    /// Cross-validation folds.
    pub folds: usize,
    /// How the grid reshapes the label (`task`, `group`); absent when it does not, so the
    /// keys of every grid written before it existed stay the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The operating-point target (it changes the cut, so the attack-level scores); absent
    /// when the grid sets none, so existing keys stay the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<Target>,
    /// The rung of a halving search whose trials train on a subset of the training part;
    /// absent for the whole training part, so a rung on every row shares the grid's keys
    /// (it is the same computation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rung: Option<Rung>,
}

/// A rung of a halving search: its trials cross-validate and fit on `rows` rows of the
/// training part, a stratified subset drawn from `seed` and `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rung {
    /// The rung, from 0.
    pub index: usize,
    /// Training rows of the rung.
    pub rows: usize,
    /// The search seed its subset is drawn from.
    pub seed: u64,
}

impl<'a> KeyContext<'a> {
    /// The context of `grid`'s trials on data with fingerprint `data_fingerprint`.
    pub fn for_grid(grid: &'a GridFile, data_fingerprint: &'a str) -> KeyContext<'a> {
        KeyContext {
            data_fingerprint,
            split: &grid.split,
            folds: grid.cv.folds,
            label: grid.data.label_key(),
            operating_point: grid.operating_point.as_ref().map(|t| t.value),
            rung: None,
        }
    }
}

/// Bumped when the way trials are computed changes, so old results are not reused.
const KEY_VERSION: u32 = 1;

/// The deterministic key of a trial: 20 hex digits of a sha256 over the algorithm, the
/// complete parameters, the data fingerprint, the split, the folds and the seed. A null
/// `class_weight` (the default) and early-stopping parameters at their defaults are left out
/// of the key input, so the trials of grid files written before these parameters existed keep
/// their keys and their stored results.
pub fn trial_key(candidate: &Candidate, context: &KeyContext<'_>) -> String {
    #[derive(Serialize)]
    struct KeyInput<'a> {
        version: u32,
        algorithm: &'a str,
        params: &'a Params,
        context: &'a KeyContext<'a>,
    }
    let mut params = Cow::Borrowed(&candidate.params);
    if params.get(CLASS_WEIGHT.name) == Some(&ParamValue::Null) {
        params.to_mut().remove(CLASS_WEIGHT.name);
    }
    let defaults: Vec<String> = params
        .iter()
        .filter(|(key, value)| early_stopping::is_default(key, value))
        .map(|(key, _)| key.clone())
        .collect();
    for key in defaults {
        params.to_mut().remove(&key);
    }
    let input = KeyInput {
        version: KEY_VERSION,
        algorithm: candidate.algorithm.name(),
        params: &params,
        context,
    };
    let bytes = serde_json::to_vec(&input).unwrap_or_default();
    hex(&Sha256::digest(bytes))[..20].to_owned()
}

/// Trials that share one fit: for staged ensembles, the grid points that differ only in
/// ensemble size are answered by fitting the largest once; every other trial is alone.
#[derive(Debug, Clone)]
pub struct WorkUnit {
    /// Indices into the trial list, sorted by ascending ensemble size.
    pub members: Vec<usize>,
    /// Ensemble size of each member (None for unstaged algorithms).
    pub stages: Vec<Option<usize>>,
}

/// Groups trials into work units, in plan order of each unit's first member.
pub fn work_units(candidates: &[Candidate]) -> Vec<WorkUnit> {
    let mut units: Vec<WorkUnit> = Vec::new();
    let mut by_group: BTreeMap<String, usize> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        let staged = c
            .algorithm
            .staged_param()
            .and_then(|p| match c.params.get(p) {
                Some(ParamValue::Int(n)) if *n >= 1 => Some((p, *n as usize)),
                _ => None,
            });
        match staged {
            Some((param, n)) => {
                let mut rest = c.params.clone();
                rest.remove(param);
                let group = format!(
                    "{}:{}",
                    c.algorithm.name(),
                    serde_json::to_string(&rest).unwrap_or_default()
                );
                let unit = *by_group.entry(group).or_insert_with(|| {
                    units.push(WorkUnit {
                        members: Vec::new(),
                        stages: Vec::new(),
                    });
                    units.len() - 1
                });
                units[unit].members.push(i);
                units[unit].stages.push(Some(n));
            }
            None => units.push(WorkUnit {
                members: vec![i],
                stages: vec![None],
            }),
        }
    }
    for unit in &mut units {
        let mut pairs: Vec<(usize, Option<usize>)> = unit
            .members
            .iter()
            .copied()
            .zip(unit.stages.iter().copied())
            .collect();
        pairs.sort_by_key(|&(_, n)| n);
        (unit.members, unit.stages) = pairs.into_iter().unzip();
    }
    units
}

/// A slice `index` of `count` (`--shard I/N`, I counted from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This copy's index, `0..count`.
    pub index: usize,
    /// Number of copies.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || format!("`{text}` is not a shard: write I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = text.split_once('/').ok_or_else(err)?;
        let index: usize = i.trim().parse().map_err(|_| err())?;
        let count: usize = n.trim().parse().map_err(|_| err())?;
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Keeps the units of this shard: unit `u` belongs to shard `u mod N`, so the slices are
    /// disjoint, cover the plan, and staged groups are never split across machines.
    pub fn select(&self, units: Vec<WorkUnit>) -> Vec<WorkUnit> {
        units
            .into_iter()
            .enumerate()
            .filter(|(u, _)| u % self.count == self.index)
            .map(|(_, unit)| unit)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::yaml::parse_yaml;

    fn grid(models: &str) -> Result<Vec<Candidate>, GridError> {
        let text = format!(
            "name: t\ndata: {{ source: synthetic, schema: data_schema/phishing.yaml }}\nmodels:\n{models}"
        );
        let path = Path::new("g.yaml");
        let file: GridFile = parse_yaml(path, &text)?;
        expand(&file, path)
    }

    #[test]
    fn expands_cartesian_product_with_defaults() {
        let c = grid("  - algorithm: decision_tree\n    grid: { criterion: [gini, entropy], max_depth: [null, 8, 16] }\n").unwrap();
        assert_eq!(c.len(), 6);
        assert!(c.iter().all(|c| c.params.contains_key("min_samples_leaf")));
    }

    #[test]
    fn unknown_algorithm_names_line() {
        let err =
            grid("  - algorithm: decision_tree\n  - algorithm: random_forrest\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("g.yaml:5:"), "{text}");
        assert!(
            text.contains("unknown algorithm `random_forrest`"),
            "{text}"
        );
    }

    #[test]
    fn bad_parameter_names_line_and_key() {
        let err = grid("  - algorithm: random_forest\n    grid:\n      n_estimators: [8, 16]\n      max_dept: [3]\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("g.yaml:7:"), "{text}");
        assert!(text.contains("max_dept"), "{text}");
        let err = grid("  - algorithm: random_forest\n    grid: { n_estimators: [eight] }\n")
            .unwrap_err();
        assert!(err.to_string().starts_with("g.yaml:5:"), "{err}");
        assert!(err.to_string().contains("n_estimators"), "{err}");
    }

    #[test]
    fn empty_grid_list_is_rejected() {
        let path = Path::new("g.yaml");
        let text = "name: t\ndata: { source: synthetic, schema: s.yaml }\nmodels:\n  - algorithm: svm\n    grid: { c: [] }\n";
        let file: GridFile = parse_yaml(path, text).unwrap();
        let err = file.check(path).unwrap_err().to_string();
        assert!(
            err.starts_with("g.yaml:5:") && err.contains("empty"),
            "{err}"
        );
    }

    #[test]
    fn staged_grids_share_a_fit_and_shards_partition() {
        let c = grid("  - algorithm: random_forest\n    grid: { n_estimators: [32, 8, 16], max_depth: [null, 4] }\n  - algorithm: decision_tree\n").unwrap();
        let units = work_units(&c);
        assert_eq!(units.len(), 3);
        assert_eq!(units[0].stages, vec![Some(8), Some(16), Some(32)]);
        let a = Shard { index: 0, count: 2 }.select(units.clone());
        let b = Shard { index: 1, count: 2 }.select(units.clone());
        let mut all: Vec<usize> = a.iter().chain(&b).flat_map(|u| u.members.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..c.len()).collect::<Vec<_>>());
        assert!("2/2".parse::<Shard>().is_err());
        assert_eq!(
            "1/3".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 3 }
        );
    }

    fn random(models: &str) -> Result<Vec<Candidate>, GridError> {
        let text = format!(
            "name: t\ndata: {{ source: synthetic, schema: data_schema/phishing.yaml }}\nsearch: {{ strategy: random, trials: 8, seed: 1 }}\nmodels:\n{models}"
        );
        let path = Path::new("g.yaml");
        let file = GridFile::from_yaml_str(path, &text)?;
        expand(&file, path)
    }

    #[test]
    fn random_search_draws_trials_per_entry_mixed_with_fixed_values() {
        let c = random("  - algorithm: gradient_boosting\n    grid: { learning_rate: { loguniform: [0.001, 0.3] }, n_estimators: { int: [8, 64] }, max_depth: [2, 3], subsample: 0.8 }\n  - algorithm: logistic_regression\n    grid: { c: [0.1, 1.0] }\n").unwrap();
        assert_eq!(c.len(), 8 + 2, "8 draws, then the whole 2-point space");
        assert!(
            c[..8]
                .iter()
                .all(|c| c.params["subsample"] == ParamValue::Float(0.8))
        );
        assert_eq!(
            c[0].grid_keys,
            ["learning_rate", "max_depth", "n_estimators", "subsample"]
        );
    }

    #[test]
    fn distributions_of_the_wrong_kind_name_the_line() {
        let cases = [
            ("grid: { max_depth: { uniform: [2, 8] } }", "takes"),
            ("grid: { criterion: { uniform: [0, 1] } }", "takes"),
            ("grid: { max_depth: { int: [0, 8] } }", "bound"),
            (
                "grid: { min_samples_leaf: { loguniform: [1, 8] } }",
                "takes",
            ),
        ];
        for (grid, expected) in cases {
            let err = random(&format!("  - algorithm: decision_tree\n    {grid}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("g.yaml:6:"), "{grid}: {err}");
            assert!(err.contains(expected), "{grid}: {err}");
        }
        let err = random(
            "  - algorithm: gradient_boosting\n    grid: { subsample: { uniform: [0, 1] } }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("subsample") && err.contains("bound"), "{err}");
    }

    #[test]
    fn keys_change_with_data_and_params() {
        let c = grid("  - algorithm: decision_tree\n    grid: { max_depth: [4, 5] }\n").unwrap();
        let split = SplitSpec::default();
        let ctx = KeyContext {
            data_fingerprint: "a",
            split: &split,
            folds: 3,
            label: None,
            operating_point: None,
            rung: None,
        };
        let k0 = trial_key(&c[0], &ctx);
        let at_budget = KeyContext {
            operating_point: Some(Target {
                max_fpr: Some(0.001),
                min_detection_rate: None,
            }),
            ..ctx.clone()
        };
        assert_ne!(k0, trial_key(&c[0], &at_budget));
        assert_eq!(k0, trial_key(&c[0], &ctx));
        assert_ne!(k0, trial_key(&c[1], &ctx));
        let other = KeyContext {
            data_fingerprint: "b",
            ..ctx.clone()
        };
        assert_ne!(k0, trial_key(&c[0], &other));
        let grouped = KeyContext {
            label: Some("group".into()),
            ..ctx.clone()
        };
        assert_ne!(k0, trial_key(&c[0], &grouped));
        let rung = KeyContext {
            rung: Some(Rung {
                index: 0,
                rows: 100,
                seed: 1,
            }),
            ..ctx.clone()
        };
        assert_ne!(k0, trial_key(&c[0], &rung));
    }

    #[test]
    fn class_weight_keys_keep_todays_keys_without_weights() {
        let split = SplitSpec::default();
        let ctx = KeyContext {
            data_fingerprint: "a",
            split: &split,
            folds: 3,
            label: None,
            operating_point: None,
            rung: None,
        };
        let plain = grid("  - algorithm: decision_tree\n    grid: { max_depth: [4] }\n").unwrap();
        // the key this grid point had before class weights existed (KEY_VERSION 1): sha256 of
        // the key input with main's five decision_tree params, checked by hand in Python
        // against the same JSON text, so it does not merely restate the code
        assert_eq!(trial_key(&plain[0], &ctx), "fcc7b0e785334ef885ab");
        assert_eq!(plain[0].params["class_weight"], ParamValue::Null);
        let swept = grid(
            "  - algorithm: decision_tree\n    grid: { max_depth: [4], class_weight: [null, balanced, { \"1\": 5 }] }\n",
        )
        .unwrap();
        assert_eq!(swept.len(), 3);
        let keys: Vec<String> = swept.iter().map(|c| trial_key(c, &ctx)).collect();
        assert_eq!(keys[0], trial_key(&plain[0], &ctx));
        assert_ne!(keys[1], keys[0]);
        assert_ne!(keys[2], keys[0]);
        assert_ne!(keys[2], keys[1]);
        let heavier = grid(
            "  - algorithm: decision_tree\n    grid: { max_depth: [4], class_weight: { \"1\": 6 } }\n",
        )
        .unwrap();
        assert_ne!(trial_key(&heavier[0], &ctx), keys[2]);
    }

    #[test]
    fn bad_early_stopping_values_name_line_and_key() {
        for (value, key, expect) in [
            (
                "n_iter_no_change: [0]",
                "n_iter_no_change",
                "null or an integer >= 1, got 0",
            ),
            (
                "validation_fraction: [0]",
                "validation_fraction",
                "a number in (0, 1), got 0",
            ),
            (
                "validation_fraction: [1.0]",
                "validation_fraction",
                "in (0, 1), got 1",
            ),
            (
                "validation_fraction: [1.5]",
                "validation_fraction",
                "in (0, 1), got 1.5",
            ),
            ("tol: [-0.1]", "tol", "a number >= 0, got -0.1"),
            ("tol: [fast]", "tol", ">= 0, got \"fast\""),
        ] {
            let err = grid(&format!(
                "  - algorithm: gradient_boosting\n    grid:\n      n_estimators: [5]\n      {value}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(err.starts_with("g.yaml:7:"), "{value}: {err}");
            assert!(
                err.contains(&format!("models.gradient_boosting.grid.{key}"))
                    && err.contains(expect),
                "{value}: {err}"
            );
        }
        let ok = grid(
            "  - algorithm: gradient_boosting\n    grid: { n_iter_no_change: [1], validation_fraction: [0.5], tol: [0] }\n",
        );
        assert_eq!(ok.unwrap().len(), 1);
    }

    #[test]
    fn early_stopping_enters_keys_only_when_set() {
        let split = SplitSpec::default();
        let ctx = KeyContext {
            data_fingerprint: "a",
            split: &split,
            folds: 3,
            label: None,
            operating_point: None,
            rung: None,
        };
        let c = grid(
            "  - algorithm: gradient_boosting\n    grid: { n_estimators: [50], n_iter_no_change: [null, 5, 6], tol: [0.0001, 0.01] }\n",
        )
        .unwrap();
        assert_eq!(c.len(), 6);
        // off and at the defaults: the key of the parameters before early stopping existed
        let mut before = c[0].clone();
        for key in ["n_iter_no_change", "validation_fraction", "tol"] {
            assert!(before.params.remove(key).is_some(), "{key}");
        }
        assert_eq!(trial_key(&c[0], &ctx), trial_key(&before, &ctx));
        let keys: std::collections::BTreeSet<String> =
            c.iter().map(|c| trial_key(c, &ctx)).collect();
        assert_eq!(keys.len(), 6, "n_iter_no_change and tol both enter the key");
        // a staged group shares one fit per early-stopping setting
        let staged = grid(
            "  - algorithm: gradient_boosting\n    grid: { n_estimators: [20, 50, 100], n_iter_no_change: [null, 5] }\n",
        )
        .unwrap();
        let units = work_units(&staged);
        assert_eq!(units.len(), 2);
        assert!(
            units
                .iter()
                .all(|u| u.stages == [Some(20), Some(50), Some(100)])
        );
    }

    #[test]
    fn bad_class_weights_name_line_and_value() {
        for (value, expect) in [
            ("[balance]", "\"balanced\""),
            ("{ u2r: -1 }", "-1"),
            ("{ u2r: 0 }", "0"),
            // the YAML reader refuses non-finite numbers itself, at the value
            ("{ u2r: .nan }", "non-finite"),
            ("{ u2r: .inf }", "non-finite"),
        ] {
            let err = grid(&format!(
                "  - algorithm: svm\n    grid:\n      class_weight: {value}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(err.starts_with("g.yaml:6:"), "{value}: {err}");
            assert!(err.contains(expect), "{value}: {err}");
            assert!(
                expect == "non-finite" || err.contains("models.svm.grid.class_weight"),
                "{err}"
            );
        }
        let path = Path::new("g.yaml");
        let text = "name: t\ndata: { source: synthetic, schema: s.yaml }\nmodels:\n  - algorithm: svm\n  - algorithm: adaboost\n    grid: { class_weight: [null, { normal: 1, u2l: 9 }] }\n";
        let file: GridFile = parse_yaml(path, text).unwrap();
        expand(&file, path).unwrap();
        let classes = Classes {
            names: vec!["normal".into(), "u2r".into()],
            normal: vec![true, false],
        };
        let err = check_class_weights(&file, path, &classes)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("g.yaml:6:"), "{err}");
        assert!(
            err.contains("unknown class `u2l`") && err.contains("normal, u2r"),
            "{err}"
        );
    }
}
