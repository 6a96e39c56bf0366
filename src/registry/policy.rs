//! Promotion policy files (`registry/promotion.yaml`): what a candidate must reach to
//! become the model an alias points at.
//!
//! ```yaml
//! model: netsec-phishing          # registered model name
//! alias: champion                 # the alias a promotion moves
//! floors: { f1: 0.95, recall: 0.95, roc_auc: 0.98 }   # on the holdout, attack class
//! class_recall: { neptune: 0.95, u2r: 0.5 }            # per-class recall floors
//! max_fpr: 0.01                                         # ceiling on the false-positive rate
//! challenge: { metric: f1, min_gain: 0.0, test: mcnemar, alpha: 0.05 }
//! guards: { same_holdout: true, schema_match: true, max_p99_predict_us: 1000 }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::grid::SelectMetric;
use crate::shared::Classes;
use crate::shared::metric::ClassStat;
use crate::shared::yaml::{YamlError, parse_yaml, read_yaml};

/// A policy file's problem at a known place.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Unreadable, malformed, unknown key (such as an unknown metric) or mistyped value.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// A value that parses but cannot be used, at `file:line:column`.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The policy file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
        /// What is wrong, naming the key.
        message: String,
    },
}

impl PolicyError {
    /// The process exit code: bad input (the policy file).
    pub fn exit_code(&self) -> u8 {
        match self {
            PolicyError::Yaml(e) => e.exit_code(),
            PolicyError::Invalid { .. } => crate::exit::BAD_INPUT,
        }
    }
}

/// Minimum values on the pinned holdout, by metric (precision, recall and F1 of the attack
/// class). `log_loss` is the one metric where lower is better: its "floor" is a ceiling.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Floors(BTreeMap<SelectMetric, Spanned<f64>>);

impl Floors {
    /// The floors that are set, in report order.
    pub fn set(&self) -> Vec<(SelectMetric, &Spanned<f64>)> {
        self.0.iter().map(|(m, v)| (*m, v)).collect()
    }
}

/// The paired significance test of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignificanceTest {
    /// McNemar's test on the rows where exactly one model is right.
    #[default]
    Mcnemar,
    /// Paired bootstrap of the challenge metric's difference.
    Bootstrap,
}

/// How a candidate must beat the current holder of the alias.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    /// The metric compared on the holdout.
    pub metric: SelectMetric,
    /// The candidate's value minus the champion's must be at least this (for log_loss:
    /// the champion's minus the candidate's).
    #[serde(default)]
    pub min_gain: f64,
    /// The paired test that the candidate is better.
    #[serde(default)]
    pub test: SignificanceTest,
    /// Significance level: the test's p-value must be below it.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Bootstrap resamples.
    #[serde(default = "default_resamples")]
    pub resamples: usize,
    /// Bootstrap seed (the same seed gives the same p-value).
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_alpha() -> f64 {
    0.05
}

fn default_resamples() -> usize {
    1000
}

fn default_seed() -> u64 {
    42
}

/// Conditions beside the metrics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guards {
    /// The champion must have been scored on the same holdout: same data fingerprint and
    /// the same split.
    #[serde(default = "yes")]
    pub same_holdout: bool,
    /// The champion must have been trained with the same schema (same hash).
    #[serde(default = "yes")]
    pub schema_match: bool,
    /// p99 latency of one single-row prediction, in microseconds, measured on the holdout.
    #[serde(default)]
    pub max_p99_predict_us: Option<f64>,
}

fn yes() -> bool {
    true
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            same_holdout: true,
            schema_match: true,
            max_p99_predict_us: None,
        }
    }
}

/// A parsed and checked promotion policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Registered model name.
    pub model: String,
    /// The alias a promotion moves.
    #[serde(default = "default_alias")]
    pub alias: String,
    /// Metric floors.
    #[serde(default)]
    pub floors: Floors,
    /// Recall floors of single classes, by class name (a rare class the global metrics
    /// would hide).
    #[serde(default)]
    pub class_recall: BTreeMap<String, Spanned<f64>>,
    /// Ceiling on the false-positive rate (normal rows flagged as attacks) at the
    /// candidate's own decision rule.
    #[serde(default)]
    pub max_fpr: Option<Spanned<f64>>,
    /// The challenge against the current holder of the alias (none: floors decide).
    #[serde(default)]
    pub challenge: Option<Spanned<Challenge>>,
    /// Guards.
    #[serde(default)]
    pub guards: Guards,
}

fn default_alias() -> String {
    "champion".into()
}

impl Policy {
    /// Every metric rule — `floors`, `class_recall` and `max_fpr` — with its bound, in
    /// report order (for `log_loss` and `fpr` the bound is a ceiling).
    pub fn bounds(&self) -> Vec<(SelectMetric, f64)> {
        let mut out: Vec<(SelectMetric, f64)> = self
            .floors
            .set()
            .into_iter()
            .map(|(m, v)| (m, v.value))
            .collect();
        for (class, floor) in &self.class_recall {
            out.push((SelectMetric::class(ClassStat::Recall, class), floor.value));
        }
        if let Some(max) = &self.max_fpr {
            out.push((SelectMetric::Fpr, max.value));
        }
        out
    }

    /// Checks the rules that depend on the candidate's label: every class a rule names is
    /// one of its classes, and attack-level rules need a normal class. The message names
    /// the rule and the classes there are.
    pub fn check_classes(&self, classes: &Classes) -> Result<(), String> {
        for (metric, _) in self.bounds() {
            if let SelectMetric::Class(m) = metric
                && !classes.names.iter().any(|n| n == m.class())
            {
                return Err(format!(
                    "the policy's `{}` names no class of the candidate's label (classes: {})",
                    metric.name(),
                    classes.names.join(", ")
                ));
            }
            if metric.is_attack_level() && !classes.has_normal() {
                return Err(format!(
                    "the policy's `{}` is an attack-level metric, but the candidate's label has                      no normal class (classes: {}); use macro_f1, balanced_accuracy or                      class_recall",
                    metric.name(),
                    classes.names.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Reads and checks a policy file.
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let policy: Policy = read_yaml(path)?;
        policy.check(path)?;
        Ok(policy)
    }

    /// Parses and checks policy text; `path` names it in messages.
    pub fn from_yaml_str(path: &Path, text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = parse_yaml(path, text)?;
        policy.check(path)?;
        Ok(policy)
    }

    fn check(&self, path: &Path) -> Result<(), PolicyError> {
        let at = |line: u64, column: u64, message: String| PolicyError::Invalid {
            path: path.to_owned(),
            line,
            column,
            message,
        };
        let whole = |message: String| at(1, 1, message);
        if self.model.trim().is_empty() {
            return Err(whole("`model` is empty: name the registered model".into()));
        }
        if self.alias.trim().is_empty() {
            return Err(whole("`alias` is empty".into()));
        }
        for (metric, floor) in self.floors.set() {
            let range = match metric {
                SelectMetric::LogLoss => 0.0..=f64::MAX,
                SelectMetric::Mcc => -1.0..=1.0,
                _ => 0.0..=1.0,
            };
            if !range.contains(&floor.value) {
                return Err(at(
                    floor.referenced.line(),
                    floor.referenced.column(),
                    format!(
                        "floors.{} must be within {}..={} (got {})",
                        metric.name(),
                        range.start(),
                        range.end(),
                        floor.value
                    ),
                ));
            }
        }
        for (class, floor) in &self.class_recall {
            if !(0.0..=1.0).contains(&floor.value) {
                return Err(at(
                    floor.referenced.line(),
                    floor.referenced.column(),
                    format!(
                        "class_recall.{class} must be within 0..=1 (got {})",
                        floor.value
                    ),
                ));
            }
        }
        if let Some(max) = &self.max_fpr
            && !(max.value > 0.0 && max.value <= 1.0)
        {
            return Err(at(
                max.referenced.line(),
                max.referenced.column(),
                format!("max_fpr must be within (0, 1] (got {})", max.value),
            ));
        }
        if let Some(challenge) = &self.challenge {
            let (line, column) = (challenge.referenced.line(), challenge.referenced.column());
            let c = &challenge.value;
            if !(c.alpha > 0.0 && c.alpha < 1.0) {
                return Err(at(
                    line,
                    column,
                    format!("challenge.alpha must be between 0 and 1 (got {})", c.alpha),
                ));
            }
            if !c.min_gain.is_finite() {
                return Err(at(
                    line,
                    column,
                    "challenge.min_gain must be a number".into(),
                ));
            }
            if c.test == SignificanceTest::Bootstrap && c.resamples < 100 {
                return Err(at(
                    line,
                    column,
                    format!(
                        "challenge.resamples must be at least 100 (got {})",
                        c.resamples
                    ),
                ));
            }
        }
        if let Some(budget) = self.guards.max_p99_predict_us
            && !(budget > 0.0 && budget.is_finite())
        {
            return Err(whole(format!(
                "guards.max_p99_predict_us must be a positive number (got {budget})"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, text).unwrap();
        Policy::from_file(&path)
    }

    #[test]
    fn the_shipped_policy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("registry/promotion.yaml");
        let policy = Policy::from_file(&path).unwrap();
        assert_eq!(policy.alias, "champion");
        assert_eq!(policy.floors.set().len(), 3);
        let challenge = policy.challenge.unwrap().value;
        assert_eq!(challenge.metric, SelectMetric::F1);
        assert_eq!(challenge.test, SignificanceTest::Mcnemar);
        assert!(policy.guards.same_holdout && policy.guards.schema_match);
    }

    #[test]
    fn defaults_fill_in() {
        let policy = parse("model: m\n").unwrap();
        assert_eq!(policy.alias, "champion");
        assert!(policy.floors.set().is_empty() && policy.challenge.is_none());
        assert!(policy.guards.same_holdout && policy.guards.max_p99_predict_us.is_none());
    }

    #[test]
    fn unknown_metric_names_line_and_metric() {
        let err = parse("model: m\nfloors:\n  f1: 0.9\n  f2: 0.9\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains(":4:") && text.contains("f2"), "{text}");
        let err = parse("model: m\nchallenge: { metric: f3 }\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains(":2:") && text.contains("f3"), "{text}");
    }

    #[test]
    fn bad_values_name_line_and_key() {
        let err = parse("model: m\nfloors:\n  recall: 1.5\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(":3:") && text.contains("floors.recall"),
            "{text}"
        );
        let err = parse("model: m\nchallenge: { metric: f1, alpha: 2 }\n").unwrap_err();
        assert!(err.to_string().contains("challenge.alpha"), "{err}");
        let err = parse("model: m\nguards: { max_p99_predict_us: -1 }\n").unwrap_err();
        assert!(err.to_string().contains("max_p99_predict_us"), "{err}");
        let err = parse("model: m\nguards: { same_holdot: true }\n").unwrap_err();
        assert!(err.to_string().contains("same_holdot"), "{err}");
        let err = parse("model: m\nchallenge: { metric: f1, test: ttest }\n").unwrap_err();
        assert!(err.to_string().contains("ttest"), "{err}");
    }
}
