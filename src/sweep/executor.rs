//! Running trials: stratified k-fold cross-validation on the training part, one fit on the
//! whole training part scored once on the test part, work units in parallel on all cores.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ndarray::{Array2, Axis};
use rayon::prelude::*;

use super::plan::{Candidate, WorkUnit};
use super::record::{TrialRecord, TrialStatus, metric_values};
use crate::data::Dataset;
use crate::data::split::Split;
use crate::models::metrics::MeanStd;
use crate::models::metrics::Metrics;
use crate::models::{FittedModel, ModelError};
use crate::shared::{Classes, now_ms};

/// Training and test matrices of one sweep, materialized once and shared by all trials.
pub struct Executor {
    experiment: String,
    fingerprint: String,
    seed: u64,
    classes: Classes,
    x_train: Array2<f64>,
    y_train: Vec<u32>,
    x_test: Array2<f64>,
    y_test: Vec<u32>,
    folds: Vec<Fold>,
}

struct Fold {
    x_fit: Array2<f64>,
    y_fit: Vec<u32>,
    x_val: Array2<f64>,
    y_val: Vec<u32>,
}

/// What a work unit produced: one record per member, and the whole-training-part fit of its
/// largest model (for saving the best one) when the fit succeeded.
pub struct UnitResult {
    /// Records in member order.
    pub records: Vec<TrialRecord>,
    /// The fitted model of the unit's largest member.
    pub model: Option<FittedModel>,
}

impl Executor {
    /// Prepares the matrices. `folds` are the validation positions within `split.train`.
    pub fn new(
        experiment: &str,
        data: &Dataset,
        split: &Split,
        folds: &[Vec<usize>],
        seed: u64,
    ) -> Executor {
        let x_train = data.features.select(Axis(0), &split.train);
        let y_train: Vec<u32> = split.train.iter().map(|&r| data.class_ids[r]).collect();
        let folds = folds
            .iter()
            .map(|val| {
                let mut in_val = vec![false; split.train.len()];
                for &p in val {
                    in_val[p] = true;
                }
                let fit: Vec<usize> = (0..split.train.len()).filter(|&p| !in_val[p]).collect();
                Fold {
                    x_fit: x_train.select(Axis(0), &fit),
                    y_fit: fit.iter().map(|&p| y_train[p]).collect(),
                    x_val: x_train.select(Axis(0), val),
                    y_val: val.iter().map(|&p| y_train[p]).collect(),
                }
            })
            .collect();
        Executor {
            experiment: experiment.to_owned(),
            fingerprint: data.fingerprint.clone(),
            seed,
            classes: data.classes.clone(),
            x_test: data.features.select(Axis(0), &split.test),
            y_test: split.test.iter().map(|&r| data.class_ids[r]).collect(),
            x_train,
            y_train,
            folds,
        }
    }

    /// Runs `units` in parallel, calling `done` (from worker threads) as each finishes.
    /// Units not yet started when `cancel` is set are skipped.
    pub fn run_all(
        &self,
        units: &[WorkUnit],
        candidates: &[Candidate],
        keys: &[String],
        cancel: &AtomicBool,
        done: &(dyn Fn(UnitResult) + Sync),
    ) {
        units.par_iter().for_each(|unit| {
            if cancel.load(Ordering::Relaxed) {
                return;
            }
            // With -v: which trials are in flight (an interrupted sweep finishes them).
            for &i in &unit.members {
                tracing::debug!(trial = %keys[i], "trial started");
            }
            done(self.run_unit(unit, candidates, keys));
        });
    }

    /// Runs one unit; a failing fit (or a panic inside a model) fails its members only.
    pub fn run_unit(
        &self,
        unit: &WorkUnit,
        candidates: &[Candidate],
        keys: &[String],
    ) -> UnitResult {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.score_unit(unit, candidates, keys)
        }));
        let error = match run {
            Ok(Ok(result)) => return result,
            Ok(Err(err)) => err.to_string(),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "unknown panic".into());
                format!("internal error in the model: {text}")
            }
        };
        UnitResult {
            records: unit
                .members
                .iter()
                .map(|&i| {
                    self.record(&candidates[i], &keys[i], TrialStatus::Failed, |r| {
                        r.error = Some(error.clone());
                    })
                })
                .collect(),
            model: None,
        }
    }

    fn record(
        &self,
        candidate: &Candidate,
        key: &str,
        status: TrialStatus,
        fill: impl FnOnce(&mut TrialRecord),
    ) -> TrialRecord {
        let mut record = TrialRecord {
            key: key.to_owned(),
            experiment: self.experiment.clone(),
            algorithm: candidate.algorithm.name().to_owned(),
            params: candidate.params.clone(),
            status,
            cv: BTreeMap::new(),
            test: None,
            fit_seconds: 0.0,
            predict_seconds: 0.0,
            error: None,
            data_fingerprint: self.fingerprint.clone(),
            finished_at_ms: now_ms(),
        };
        fill(&mut record);
        record
    }

    fn score_unit(
        &self,
        unit: &WorkUnit,
        candidates: &[Candidate],
        keys: &[String],
    ) -> Result<UnitResult, ModelError> {
        let largest = &candidates[*unit.members.last().unwrap_or(&0)];
        let algorithm = largest.algorithm;
        let stages: Option<Vec<usize>> = unit.stages.iter().copied().collect();

        // Cross-validation: per member, per metric, the values over folds.
        let mut per_fold: Vec<BTreeMap<&'static str, Vec<f64>>> =
            vec![BTreeMap::new(); unit.members.len()];
        for fold in &self.folds {
            // named, so a `class_weight` map finds its classes
            let model = algorithm.fit_named(
                &largest.params,
                fold.x_fit.view(),
                &fold.y_fit,
                &self.classes.names,
                self.seed,
            )?;
            let probas = match &stages {
                Some(stages) if stages.len() > 1 => staged_probas(&model, &fold.x_val, stages)?,
                _ => vec![model.predict_proba(fold.x_val.view())?],
            };
            for (member, proba) in per_fold.iter_mut().zip(&probas) {
                let metrics = Metrics::compute(&fold.y_val, proba.view(), &self.classes);
                for (name, value) in metric_values(&metrics) {
                    member.entry(name).or_default().push(value);
                }
            }
        }

        // One fit on the whole training part, scored once on the test part.
        let started = Instant::now();
        let model = algorithm.fit_named(
            &largest.params,
            self.x_train.view(),
            &self.y_train,
            &self.classes.names,
            self.seed,
        )?;
        let fit_seconds = started.elapsed().as_secs_f64();
        let mut records = Vec::with_capacity(unit.members.len());
        for (m, &i) in unit.members.iter().enumerate() {
            let member = match unit.stages[m] {
                Some(n) if Some(n) != model.n_stages() => truncated(&model, n)?,
                _ => model.clone(),
            };
            let started = Instant::now();
            let proba = member.predict_proba(self.x_test.view())?;
            let predict_seconds = started.elapsed().as_secs_f64();
            let test = Metrics::compute(&self.y_test, proba.view(), &self.classes);
            let cv = per_fold[m]
                .iter()
                .map(|(name, values)| ((*name).to_owned(), MeanStd::of(values)))
                .collect();
            records.push(
                self.record(&candidates[i], &keys[i], TrialStatus::Finished, |r| {
                    r.cv = cv;
                    r.test = Some(test);
                    r.fit_seconds = fit_seconds;
                    r.predict_seconds = predict_seconds;
                }),
            );
        }
        Ok(UnitResult {
            records,
            model: Some(model),
        })
    }
}

/// The first `n` stages of a staged model. AdaBoost may stop early, in which case every
/// larger ensemble equals the whole model.
pub fn truncated(model: &FittedModel, n: usize) -> Result<FittedModel, ModelError> {
    match model.truncated(n) {
        Some(m) => Ok(m),
        None if model.n_stages().is_some_and(|s| n > s) => Ok(model.clone()),
        None => Err(ModelError::Stages {
            stages: vec![n],
            n_stages: model.n_stages().unwrap_or(0),
        }),
    }
}

/// Class probabilities of `x` under each of `stages` (ascending) in one pass; stages beyond
/// an early-stopped ensemble get the whole ensemble's answer.
fn staged_probas(
    model: &FittedModel,
    x: &Array2<f64>,
    stages: &[usize],
) -> Result<Vec<Array2<f64>>, ModelError> {
    let available = model.n_stages().unwrap_or(0);
    let clamped: Vec<usize> = stages.iter().map(|&s| s.min(available)).collect();
    let mut distinct = clamped.clone();
    distinct.dedup();
    let probas = model.staged_predict_proba(x.view(), &distinct)?;
    Ok(clamped
        .iter()
        .map(|s| probas[distinct.iter().position(|d| d == s).unwrap_or(0)].clone())
        .collect())
}
