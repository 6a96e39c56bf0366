//! Judging a candidate: its scores on the pinned holdout, and every rule of a policy —
//! floors, guards and the paired challenge against the current holder of the alias.

use std::time::Instant;

use ndarray::{Array2, Axis};
use serde::Serialize;

use super::policy::{Policy, SignificanceTest};
use super::stats::{mcnemar, paired_bootstrap, percentile};
use crate::config::grid::SelectMetric;
use crate::data::split::{SplitSpec, train_test_split};
use crate::data::{InvalidData, LoadError, Schema, dataset_from_table};
use crate::model_file::ModelFile;
use crate::models::metrics::Metrics;
use crate::models::{FittedModel, ModelError};
use crate::shared::{Classes, short_hash};

/// The held-out rows of a model file's split cannot be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum HoldoutError {
    /// The model file does not say where its data came from.
    #[error(
        "model {sha} does not name its data source (written by an older netsec): rerun its sweep"
    )]
    NoDataSource {
        /// Short sha256 of the model file.
        sha: String,
    },
    /// The data cannot be loaded.
    #[error("cannot load the holdout data")]
    Load(#[from] LoadError),
    /// The data no longer fits the model's schema.
    #[error("the holdout data does not fit the model's schema")]
    Invalid(#[from] InvalidData),
    /// The data's label values no longer make the model's classes (a `group` member gone).
    #[error("the holdout data no longer has the model's classes")]
    Classes(#[from] crate::data::labels::ClassError),
    /// The data changed since training.
    #[error(
        "the data at {source_name} changed since the model was trained (fingerprint {actual}, model says {expected}): the holdout cannot be pinned"
    )]
    Changed {
        /// The data source.
        source_name: String,
        /// Fingerprint recorded in the model.
        expected: String,
        /// Fingerprint of the data now.
        actual: String,
    },
}

impl HoldoutError {
    /// The process exit code: bad input (the holdout cannot be rebuilt from what the model file records).
    pub fn exit_code(&self) -> u8 {
        match self {
            HoldoutError::NoDataSource { .. } => crate::exit::BAD_INPUT,
            HoldoutError::Load(_) => crate::exit::BAD_INPUT,
            HoldoutError::Invalid(_) => crate::exit::BAD_INPUT,
            HoldoutError::Classes(_) => crate::exit::BAD_INPUT,
            HoldoutError::Changed { .. } => crate::exit::BAD_INPUT,
        }
    }
}

/// The pinned holdout: the test rows of a model's split of its own data.
#[derive(Debug, Clone)]
pub struct Holdout {
    /// The loaded rows (all of them; the holdout is `test_rows`).
    pub table: crate::data::Table,
    /// Row indices of the held-out part.
    pub test_rows: Vec<usize>,
    /// Class ids of the held-out rows.
    pub labels: Vec<u32>,
    /// The classes those ids name.
    pub classes: Classes,
    /// Features of the held-out rows, encoded with the model's schema.
    pub features: Array2<f64>,
    /// Data fingerprint (equal to the model's).
    pub fingerprint: String,
    /// The split.
    pub split: SplitSpec,
}

impl Holdout {
    /// Reloads the data a model file names, checks its fingerprint and rebuilds the split.
    pub fn of(file: &ModelFile, sha: &str) -> Result<Holdout, HoldoutError> {
        let source = file
            .data_source
            .as_ref()
            .ok_or_else(|| HoldoutError::NoDataSource {
                sha: short_hash(sha).to_owned(),
            })?;
        Self::from_table(file, source.load()?)
    }

    /// Checks and splits rows already loaded from the data source the model file names
    /// (how a MongoDB collection arrives: the registry knows no database).
    pub fn from_table(
        file: &ModelFile,
        table: crate::data::Table,
    ) -> Result<Holdout, HoldoutError> {
        let mut data = dataset_from_table(&table, &file.schema)?;
        if !file.label_choice.is_default() {
            data = data.with_label(&file.schema.label, &file.label_choice)?;
        }
        if data.fingerprint != file.data_fingerprint {
            return Err(HoldoutError::Changed {
                source_name: table.source.clone(),
                expected: short_hash(&file.data_fingerprint).to_owned(),
                actual: short_hash(&data.fingerprint).to_owned(),
            });
        }
        let split = train_test_split(&data, &file.split);
        let test = data.select(&split.test);
        Ok(Holdout {
            table,
            test_rows: split.test,
            labels: test.class_ids,
            classes: test.classes,
            features: test.features,
            fingerprint: data.fingerprint,
            split: file.split,
        })
    }

    /// The held-out rows encoded with another schema (the champion's), or why not.
    pub fn features_for(&self, schema: &Schema) -> Result<Array2<f64>, InvalidData> {
        let data = dataset_from_table(&self.table, schema)?;
        Ok(data.select(&self.test_rows).features)
    }
}

/// A model's predictions and metrics on the holdout.
#[derive(Debug, Clone)]
pub struct Scores {
    /// Class probabilities per held-out row.
    pub proba: Array2<f64>,
    /// The predicted class per held-out row.
    pub predicted: Vec<u32>,
    /// Metrics on those rows.
    pub metrics: Metrics,
}

impl Scores {
    /// Scores `model` on held-out `features` with class ids `labels` of `classes`, flagging
    /// attacks at the model's own cut `threshold` (its operating point, else 0.5).
    pub fn of(
        model: &FittedModel,
        features: &Array2<f64>,
        labels: &[u32],
        classes: &Classes,
        threshold: f64,
    ) -> Result<Scores, ModelError> {
        let proba = model.predict_proba(features.view())?;
        Ok(Scores::from_proba(proba, labels, classes, threshold))
    }

    /// Scores class probabilities already computed.
    pub fn from_proba(
        proba: Array2<f64>,
        labels: &[u32],
        classes: &Classes,
        threshold: f64,
    ) -> Scores {
        let predicted = proba
            .rows()
            .into_iter()
            .map(|row| classes.predict_at(row.as_slice().unwrap_or(&[]), threshold))
            .collect();
        let metrics = Metrics::compute_at(labels, proba.view(), classes, threshold);
        Scores {
            proba,
            predicted,
            metrics,
        }
    }
}

/// p99 of the time to predict one row, in microseconds, over (up to 2,000 of) the
/// held-out rows, after a warm-up pass of 50 rows.
pub fn p99_predict_us(model: &FittedModel, features: &Array2<f64>) -> Result<f64, ModelError> {
    let rows: Vec<Vec<f64>> = features
        .rows()
        .into_iter()
        .take(2000)
        .map(|r| r.to_vec())
        .collect();
    let mut proba = vec![0.0; model.n_classes()];
    for row in rows.iter().take(50) {
        model.predict_proba_row(row, &mut proba)?;
    }
    let mut micros = Vec::with_capacity(rows.len());
    for row in &rows {
        let start = Instant::now();
        model.predict_proba_row(std::hint::black_box(row), &mut proba)?;
        std::hint::black_box(&proba);
        micros.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Ok(percentile(&mut micros, 0.99).unwrap_or(0.0))
}

/// What the rules look at for the candidate.
#[derive(Debug, Clone)]
pub struct CandidateView<'a> {
    /// Scores on its holdout.
    pub scores: &'a Scores,
    /// Measured p99 single-row latency (µs).
    pub p99_us: f64,
    /// Schema hash.
    pub schema_hash: &'a str,
    /// Data fingerprint.
    pub data_fingerprint: &'a str,
    /// Split.
    pub split: SplitSpec,
}

/// What the rules look at for the current holder of the alias.
#[derive(Debug, Clone)]
pub struct ChampionView<'a> {
    /// Its version number.
    pub version: i64,
    /// Scores on the candidate's holdout, or why it could not be scored there.
    pub scores: Result<&'a Scores, String>,
    /// The classes it answers.
    pub classes: &'a Classes,
    /// Schema hash.
    pub schema_hash: &'a str,
    /// Data fingerprint.
    pub data_fingerprint: &'a str,
    /// Split.
    pub split: SplitSpec,
}

/// One rule's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Rule name, e.g. `floor recall`.
    pub rule: String,
    /// Measured value (none when it could not be measured).
    pub value: Option<f64>,
    /// Comparison, e.g. `>= 0.95`.
    pub threshold: String,
    /// Whether the rule passed.
    pub pass: bool,
    /// More detail (discordant counts, why a value is missing).
    pub detail: String,
}

/// Every rule and the decision.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The rules in report order.
    pub rules: Vec<Rule>,
    /// Whether every rule passed.
    pub promote: bool,
}

impl Evaluation {
    /// A one-line reason: the failed rules, or that all passed.
    pub fn reason(&self) -> String {
        let failed: Vec<String> = self
            .rules
            .iter()
            .filter(|r| !r.pass)
            .map(|r| match r.value {
                Some(v) => format!("{} = {} (needs {})", r.rule, fmt_value(v), r.threshold),
                None => format!("{}: {}", r.rule, r.detail),
            })
            .collect();
        if failed.is_empty() {
            format!("all {} rules passed", self.rules.len())
        } else {
            format!("rejected: {}", failed.join("; "))
        }
    }
}

/// A value as shown in tables.
pub fn fmt_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// The value of `metric` in `m`, if it was measured (a NaN means it could not be).
fn metric_value(m: &Metrics, metric: SelectMetric) -> Option<f64> {
    m.get(metric).filter(|v| v.is_finite())
}

/// Evaluates every rule of `policy` for a candidate with held-out `labels`, against the
/// current holder of the alias when there is one (without one, floors and guards decide).
pub fn evaluate(
    policy: &Policy,
    labels: &[u32],
    classes: &Classes,
    candidate: &CandidateView<'_>,
    champion: Option<&ChampionView<'_>>,
) -> Evaluation {
    let mut rules = Vec::new();
    for (metric, bound) in policy.bounds() {
        let value = metric_value(&candidate.scores.metrics, metric);
        let lower_better = !metric.higher_is_better();
        let (kind, op) = if lower_better {
            ("ceiling", "<=")
        } else {
            ("floor", ">=")
        };
        rules.push(Rule {
            rule: format!("{kind} {}", metric.name()),
            value,
            threshold: format!("{op} {bound}"),
            pass: value.is_some_and(|v| if lower_better { v <= bound } else { v >= bound }),
            detail: if value.is_some() {
                String::new()
            } else {
                "undefined on the holdout (a single class?)".into()
            },
        });
    }
    if let Some(budget) = policy.guards.max_p99_predict_us {
        rules.push(Rule {
            rule: "guard p99 predict µs".into(),
            value: Some(candidate.p99_us),
            threshold: format!("<= {budget}"),
            pass: candidate.p99_us <= budget,
            detail: "single-row predictions on the holdout".into(),
        });
    }
    let Some(champion) = champion else {
        rules.push(Rule {
            rule: "champion".into(),
            value: None,
            threshold: "-".into(),
            pass: true,
            detail: format!("no `{}` yet: the floors and guards decide", policy.alias),
        });
        let promote = rules.iter().all(|r| r.pass);
        return Evaluation { rules, promote };
    };
    if policy.guards.schema_match {
        let same = champion.schema_hash == candidate.schema_hash;
        rules.push(Rule {
            rule: "guard schema_match".into(),
            value: None,
            threshold: "same schema hash".into(),
            pass: same,
            detail: if same {
                format!(
                    "{} (v{})",
                    short_hash(candidate.schema_hash),
                    champion.version
                )
            } else {
                format!(
                    "candidate {} vs champion v{} {}",
                    short_hash(candidate.schema_hash),
                    champion.version,
                    short_hash(champion.schema_hash)
                )
            },
        });
    }
    if policy.guards.same_holdout {
        let same = champion.data_fingerprint == candidate.data_fingerprint
            && champion.split == candidate.split
            && champion.classes == classes;
        rules.push(Rule {
            rule: "guard same_holdout".into(),
            value: None,
            threshold: "same data fingerprint, split and classes".into(),
            pass: same,
            detail: if same {
                format!(
                    "{} (v{})",
                    short_hash(candidate.data_fingerprint),
                    champion.version
                )
            } else {
                format!(
                    "candidate {} vs champion v{} {}{}{}",
                    short_hash(candidate.data_fingerprint),
                    champion.version,
                    short_hash(champion.data_fingerprint),
                    if champion.split == candidate.split {
                        ""
                    } else {
                        ", different split"
                    },
                    if champion.classes == classes {
                        String::new()
                    } else {
                        format!(
                            ", classes [{}] vs champion's [{}]",
                            classes.names.join(", "),
                            champion.classes.names.join(", ")
                        )
                    }
                )
            },
        });
    }
    if let Some(challenge) = &policy.challenge {
        let c = &challenge.value;
        let name = c.metric.name();
        match &champion.scores {
            Err(why) => rules.push(Rule {
                rule: format!("challenge {name} gain"),
                value: None,
                threshold: format!(">= {}", c.min_gain),
                pass: false,
                detail: format!("champion v{} cannot be scored: {why}", champion.version),
            }),
            Ok(champ) => {
                let sign = if c.metric.higher_is_better() {
                    1.0
                } else {
                    -1.0
                };
                let gain_of = |cand: &Metrics, chmp: &Metrics| match (
                    metric_value(cand, c.metric),
                    metric_value(chmp, c.metric),
                ) {
                    (Some(a), Some(b)) => Some(sign * (a - b)),
                    _ => None,
                };
                let gain = gain_of(&candidate.scores.metrics, &champ.metrics);
                rules.push(Rule {
                    rule: format!("challenge {name} gain"),
                    value: gain,
                    threshold: format!(">= {}", c.min_gain),
                    pass: gain.is_some_and(|g| g >= c.min_gain),
                    detail: format!("against champion v{}", champion.version),
                });
                rules.push(match c.test {
                    SignificanceTest::Mcnemar => {
                        let (mut b, mut cc) = (0u64, 0u64);
                        for ((&y, &p), &q) in labels
                            .iter()
                            .zip(&candidate.scores.predicted)
                            .zip(&champ.predicted)
                        {
                            let cand_right = p == y;
                            let champ_right = q == y;
                            match (cand_right, champ_right) {
                                (true, false) => b += 1,
                                (false, true) => cc += 1,
                                _ => {}
                            }
                        }
                        let t = mcnemar(b, cc);
                        Rule {
                            rule: "challenge mcnemar p".into(),
                            value: Some(t.p_value),
                            threshold: format!("< {} and b > c", c.alpha),
                            pass: t.p_value < c.alpha && b > cc,
                            detail: format!(
                                "b={b} candidate-only right, c={cc} champion-only right ({})",
                                if t.statistic.is_some() {
                                    "chi-square, continuity corrected"
                                } else {
                                    "exact binomial"
                                }
                            ),
                        }
                    }
                    SignificanceTest::Bootstrap => {
                        let boot = paired_bootstrap(labels.len(), c.resamples, c.seed, |rows| {
                            let y: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
                            let pa = candidate.scores.proba.select(Axis(0), rows);
                            let pb = champ.proba.select(Axis(0), rows);
                            gain_of(
                                &Metrics::compute(&y, pa.view(), classes),
                                &Metrics::compute(&y, pb.view(), classes),
                            )
                            .unwrap_or(f64::NAN)
                        });
                        Rule {
                            rule: "challenge bootstrap p".into(),
                            value: Some(boot.p_value),
                            threshold: format!("< {}", c.alpha),
                            pass: boot.p_value < c.alpha,
                            detail: format!(
                                "{} resamples, {name} gain {:.4} (95% {:.4} to {:.4})",
                                boot.resamples, boot.mean_gain, boot.low, boot.high
                            ),
                        }
                    }
                });
            }
        }
    }
    let promote = rules.iter().all(|r| r.pass);
    Evaluation { rules, promote }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::yaml::parse_yaml;
    use std::path::Path;

    fn policy(text: &str) -> Policy {
        parse_yaml(Path::new("p.yaml"), text).unwrap()
    }

    /// 40 rows, half attacks; `wrong` rows (by index) predicted the wrong way.
    fn scores(wrong: &[usize]) -> (Vec<u32>, Scores) {
        let labels: Vec<u32> = (0..40).map(|i| u32::from(i % 2 == 0)).collect();
        let proba = Array2::from_shape_fn((40, 2), |(i, k)| {
            let p = if (labels[i] == 1) != wrong.contains(&i) {
                0.9
            } else {
                0.1
            };
            if k == 1 { p } else { 1.0 - p }
        });
        (
            labels.clone(),
            Scores::from_proba(proba, &labels, &binary(), 0.5),
        )
    }

    fn binary() -> Classes {
        Classes::binary("normal", "attack")
    }

    #[test]
    fn metric_values_are_read_by_name_and_unmeasured_ones_are_none() {
        let (_, s) = scores(&[1, 2]);
        let m = &s.metrics;
        assert_eq!(metric_value(m, SelectMetric::F1), Some(m.f1));
        assert_eq!(metric_value(m, SelectMetric::LogLoss), Some(m.log_loss));
        assert_eq!(metric_value(m, SelectMetric::RocAuc), m.roc_auc);
        let unmeasured = Metrics {
            roc_auc: None,
            mcc: f64::NAN,
            ..m.clone()
        };
        assert_eq!(metric_value(&unmeasured, SelectMetric::RocAuc), None);
        assert_eq!(metric_value(&unmeasured, SelectMetric::Mcc), None);
    }

    fn view(scores: &Scores) -> CandidateView<'_> {
        CandidateView {
            scores,
            p99_us: 50.0,
            schema_hash: "s1",
            data_fingerprint: "d1",
            split: SplitSpec::default(),
        }
    }

    static BINARY: std::sync::LazyLock<Classes> = std::sync::LazyLock::new(binary);

    fn champ(scores: &Scores) -> ChampionView<'_> {
        ChampionView {
            version: 1,
            scores: Ok(scores),
            classes: &BINARY,
            schema_hash: "s1",
            data_fingerprint: "d1",
            split: SplitSpec::default(),
        }
    }

    fn rule<'a>(e: &'a Evaluation, name: &str) -> &'a Rule {
        e.rules.iter().find(|r| r.rule == name).unwrap()
    }

    #[test]
    fn floors_pass_and_fail() {
        let (labels, good) = scores(&[]);
        let (_, bad) = scores(&[0, 2, 4, 6]); // four attacks missed: recall 0.8
        let p = policy("model: m\nfloors: { recall: 0.9, accuracy: 0.85, log_loss: 1.0 }\n");
        let e = evaluate(&p, &labels, &binary(), &view(&good), None);
        assert!(e.promote, "{e:?}");
        assert!(rule(&e, "champion").pass);
        let e = evaluate(&p, &labels, &binary(), &view(&bad), None);
        assert!(!e.promote);
        assert!(!rule(&e, "floor recall").pass);
        assert!(rule(&e, "floor accuracy").pass);
        assert!(rule(&e, "ceiling log_loss").pass);
        assert!(
            e.reason().contains("floor recall = 0.8000 (needs >= 0.9)"),
            "{}",
            e.reason()
        );
    }

    #[test]
    fn latency_guard() {
        let (labels, good) = scores(&[]);
        let p = policy("model: m\nguards: { max_p99_predict_us: 10 }\n");
        let e = evaluate(&p, &labels, &binary(), &view(&good), None);
        assert!(!rule(&e, "guard p99 predict µs").pass);
        let p = policy("model: m\nguards: { max_p99_predict_us: 100 }\n");
        assert!(evaluate(&p, &labels, &binary(), &view(&good), None).promote);
    }

    #[test]
    fn schema_and_holdout_guards() {
        let (labels, good) = scores(&[]);
        let p = policy("model: m\n");
        let mut c = champ(&good);
        c.schema_hash = "s2";
        let e = evaluate(&p, &labels, &binary(), &view(&good), Some(&c));
        assert!(!rule(&e, "guard schema_match").pass);
        assert!(rule(&e, "guard same_holdout").pass);
        let mut c = champ(&good);
        c.split.seed = 7;
        let e = evaluate(&p, &labels, &binary(), &view(&good), Some(&c));
        assert!(!rule(&e, "guard same_holdout").pass && !e.promote);
        let p = policy("model: m\nguards: { same_holdout: false, schema_match: false }\n");
        assert!(evaluate(&p, &labels, &binary(), &view(&good), Some(&c)).promote);
        // A champion of another class set (multi-class vs binary): not the same holdout,
        // and the reason names both.
        let p = policy("model: m\n");
        let three = Classes {
            names: vec!["dos".into(), "normal".into(), "probe".into()],
            normal: vec![false, true, false],
        };
        let mut c = champ(&good);
        c.classes = &three;
        let e = evaluate(&p, &labels, &binary(), &view(&good), Some(&c));
        let same = rule(&e, "guard same_holdout");
        assert!(!same.pass && !e.promote);
        assert!(
            same.detail
                .contains("classes [normal, attack] vs champion's [dos, normal, probe]"),
            "{}",
            same.detail
        );
    }

    #[test]
    fn mcnemar_challenge_needs_a_significant_gain() {
        let (labels, cand) = scores(&[]);
        let (_, weak) = scores(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let (_, close) = scores(&[0]);
        let p = policy(
            "model: m\nchallenge: { metric: f1, min_gain: 0.0, test: mcnemar, alpha: 0.05 }\n",
        );
        let e = evaluate(&p, &labels, &binary(), &view(&cand), Some(&champ(&weak)));
        assert!(e.promote, "{e:?}");
        let m = rule(&e, "challenge mcnemar p");
        assert!((m.value.unwrap() - 0.001_953).abs() < 1e-5, "{m:?}"); // b=10, c=0: 2/1024
        // One row better is a gain but not a significant one.
        let e = evaluate(&p, &labels, &binary(), &view(&cand), Some(&champ(&close)));
        assert!(rule(&e, "challenge f1 gain").pass);
        assert!(!rule(&e, "challenge mcnemar p").pass && !e.promote);
        // A worse candidate fails the gain even when the difference is significant.
        let e = evaluate(&p, &labels, &binary(), &view(&weak), Some(&champ(&cand)));
        assert!(!rule(&e, "challenge f1 gain").pass && !rule(&e, "challenge mcnemar p").pass);
        // An unscorable champion fails the challenge.
        let mut c = champ(&weak);
        c.scores = Err("different features".into());
        let e = evaluate(&p, &labels, &binary(), &view(&cand), Some(&c));
        assert!(!rule(&e, "challenge f1 gain").pass);
    }

    #[test]
    fn bootstrap_challenge() {
        let (labels, cand) = scores(&[]);
        let (_, weak) = scores(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let p =
            policy("model: m\nchallenge: { metric: accuracy, test: bootstrap, resamples: 200 }\n");
        let e = evaluate(&p, &labels, &binary(), &view(&cand), Some(&champ(&weak)));
        assert!(rule(&e, "challenge bootstrap p").pass && e.promote, "{e:?}");
        let e = evaluate(&p, &labels, &binary(), &view(&weak), Some(&champ(&cand)));
        assert!(!rule(&e, "challenge bootstrap p").pass && !e.promote);
    }
}
