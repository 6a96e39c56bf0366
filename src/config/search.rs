//! The `search:` section of a grid file and the distributions a model's `grid:` may hold.
//!
//! ```yaml
//! search: { strategy: random, trials: 60, seed: 1 }   # 60 distinct draws per model entry
//! # search: { strategy: halving, factor: 3, min_rows: 20000 }
//! models:
//!   - algorithm: gradient_boosting
//!     grid:
//!       learning_rate: { loguniform: [0.001, 0.3] }
//!       subsample: { uniform: [0.5, 1.0] }
//!       n_estimators: { int: [16, 256] }
//!       max_depth: [3, 5, null]                         # a plain list is a choice
//! ```
//!
//! Only what needs no data and no model is checked here (names, bounds, counts); whether a
//! distribution fits its parameter's kind is checked when the sweep is planned, against
//! the algorithm's parameter specs.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::grid::GridError;
use crate::models::ParamValue;

/// How the candidates of a sweep are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Every point of the grid (the default).
    #[default]
    Grid,
    /// `trials` draws per model entry from the grid's distributions.
    Random,
    /// Successive halving over training rows: every candidate on few rows, the best
    /// 1/factor on factor times more, until the whole training part.
    Halving,
}

impl Strategy {
    /// Name as written in a grid file.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Grid => "grid",
            Strategy::Random => "random",
            Strategy::Halving => "halving",
        }
    }
}

/// The `search:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// `grid` (default), `random` or `halving`.
    #[serde(default)]
    pub strategy: Strategy,
    /// Distinct draws per model entry (`random`; with `halving`, draws its first rung from
    /// the distributions instead of taking every grid point).
    #[serde(default)]
    pub trials: Option<usize>,
    /// Seed of the draws and of the rung subsets; the same seed plans the same trials.
    #[serde(default)]
    pub seed: u64,
    /// `halving`: keep the best 1/factor of each rung, on factor times more rows.
    #[serde(default)]
    pub factor: Option<usize>,
    /// `halving`: training rows of the first rung.
    #[serde(default)]
    pub min_rows: Option<usize>,
}

/// Survivors per rung of `halving` when `factor` is absent (scikit-learn's default).
pub const DEFAULT_FACTOR: usize = 3;

impl SearchConfig {
    /// `factor`, or its default.
    pub fn factor(&self) -> usize {
        self.factor.unwrap_or(DEFAULT_FACTOR)
    }

    /// Whether the candidates are drawn from distributions rather than enumerated.
    pub fn draws(&self) -> bool {
        self.trials.is_some()
    }

    /// Checks what needs neither data nor models; `span` is the section's place.
    pub fn check(&self, path: &Path, span: &Spanned<SearchConfig>) -> Result<(), GridError> {
        let err = |message: String| Err(GridError::at(path, span, message));
        let name = self.strategy.name();
        match (self.strategy, self.trials) {
            (_, Some(0)) => return err("search.trials must be at least 1 (got 0)".into()),
            (Strategy::Random, None) => {
                return err(
                    "search.trials is required with strategy: random (draws per model entry)"
                        .into(),
                );
            }
            (Strategy::Grid, Some(_)) => {
                return err(
                    "search.trials needs strategy: random or halving; a grid runs every point"
                        .into(),
                );
            }
            _ => {}
        }
        if self.strategy != Strategy::Halving {
            if self.factor.is_some() || self.min_rows.is_some() {
                return err(format!(
                    "search.factor and search.min_rows belong to strategy: halving, not {name}"
                ));
            }
            return Ok(());
        }
        if self.factor() < 2 {
            return err(format!(
                "search.factor must be at least 2 (got {}): each rung keeps the best 1/factor",
                self.factor()
            ));
        }
        match self.min_rows {
            None => err(
                "search.min_rows is required with strategy: halving (rows of the first rung)"
                    .into(),
            ),
            Some(0) => err("search.min_rows must be at least 1 (got 0)".into()),
            Some(_) => Ok(()),
        }
    }
}

/// A distribution of one parameter's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    /// A number uniform in `[lo, hi]`.
    Uniform(f64, f64),
    /// A number whose logarithm is uniform in `[ln lo, ln hi]` (both > 0).
    LogUniform(f64, f64),
    /// An integer uniform in `lo..=hi`.
    Int(i64, i64),
    /// One of the values, each equally likely (a plain list means the same).
    Choice(Vec<ParamValue>),
}

/// Names of the distributions, as written.
pub const DISTRIBUTIONS: [&str; 4] = ["uniform", "loguniform", "int", "choice"];

impl Distribution {
    /// The distribution written as `{ name: [args] }`; the error says what is wrong.
    pub fn parse(spec: &BTreeMap<String, Vec<ParamValue>>) -> Result<Distribution, String> {
        let mut entries = spec.iter();
        let (Some((name, args)), None) = (entries.next(), entries.next()) else {
            return Err(format!(
                "a distribution is one of {{ {} : [...] }}, got {} keys",
                DISTRIBUTIONS.join(" | "),
                spec.len()
            ));
        };
        let pair = |what: &str| -> Result<(f64, f64), String> {
            let numbers: Vec<f64> = args
                .iter()
                .map(|v| match v {
                    ParamValue::Int(i) => Some(*i as f64),
                    ParamValue::Float(x) if x.is_finite() => Some(*x),
                    _ => None,
                })
                .collect::<Option<_>>()
                .ok_or_else(|| format!("{name}: [lo, hi] takes {what}"))?;
            match numbers[..] {
                [lo, hi] if lo <= hi => Ok((lo, hi)),
                [lo, hi] => Err(format!("{name}: [{lo}, {hi}] has lo > hi")),
                _ => Err(format!(
                    "{name} takes two bounds [lo, hi], got {}",
                    numbers.len()
                )),
            }
        };
        match name.as_str() {
            "uniform" => pair("numbers").map(|(lo, hi)| Distribution::Uniform(lo, hi)),
            "loguniform" => {
                let (lo, hi) = pair("numbers")?;
                if lo <= 0.0 {
                    return Err(format!(
                        "loguniform: [{lo}, {hi}] needs bounds > 0 (it draws the logarithm)"
                    ));
                }
                Ok(Distribution::LogUniform(lo, hi))
            }
            "int" => {
                if args.iter().any(|v| !matches!(v, ParamValue::Int(_))) {
                    return Err("int: [lo, hi] takes integers".into());
                }
                pair("integers").map(|(lo, hi)| Distribution::Int(lo as i64, hi as i64))
            }
            "choice" if args.is_empty() => Err("choice: [] is empty".into()),
            "choice" => Ok(Distribution::Choice(args.clone())),
            other => Err(format!(
                "unknown distribution `{other}` (known: {})",
                DISTRIBUTIONS.join(", ")
            )),
        }
    }

    /// The distribution's name, as written.
    pub fn name(&self) -> &'static str {
        match self {
            Distribution::Uniform(..) => "uniform",
            Distribution::LogUniform(..) => "loguniform",
            Distribution::Int(..) => "int",
            Distribution::Choice(_) => "choice",
        }
    }

    /// The values it can take when it is a finite set (choice, int), else `None`.
    pub fn finite_values(&self) -> Option<Vec<ParamValue>> {
        match self {
            Distribution::Choice(values) => Some(values.clone()),
            Distribution::Int(lo, hi) => Some((*lo..=*hi).map(ParamValue::Int).collect()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, args: Vec<ParamValue>) -> Result<Distribution, String> {
        Distribution::parse(&BTreeMap::from([(name.to_owned(), args)]))
    }

    #[test]
    fn parses_each_distribution_and_refuses_bad_bounds() {
        use ParamValue::{Float, Int};
        assert_eq!(
            parse("uniform", vec![Int(0), Float(0.5)]),
            Ok(Distribution::Uniform(0.0, 0.5))
        );
        assert_eq!(
            parse("int", vec![Int(2), Int(9)]),
            Ok(Distribution::Int(2, 9))
        );
        assert!(
            parse("unifrom", vec![Int(0), Int(1)])
                .unwrap_err()
                .contains("unknown distribution `unifrom`")
        );
        assert!(
            parse("loguniform", vec![Int(0), Int(1)])
                .unwrap_err()
                .contains("> 0")
        );
        assert!(
            parse("uniform", vec![Int(2), Int(1)])
                .unwrap_err()
                .contains("lo > hi")
        );
        assert!(
            parse("int", vec![Float(1.5), Int(3)])
                .unwrap_err()
                .contains("integers")
        );
        assert!(
            parse("uniform", vec![Int(1)])
                .unwrap_err()
                .contains("two bounds")
        );
        assert!(parse("choice", vec![]).unwrap_err().contains("empty"));
    }
}
