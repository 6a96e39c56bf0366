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
use crate::models::metrics::THRESHOLD;
use crate::models::operating_point::{Choice, OperatingPoint, Rates, Roc, Target};
use crate::models::{FittedModel, ModelError, SharedBins, early_stopping};
use crate::shared::{Classes, now_ms};

/// Training and test matrices of one sweep, materialized once and shared by all trials.
///
/// Folds are row positions within the training part; a fold's rows are copied out only for
/// the length of one fit or prediction. The histogram learners' bins of each fold and of the
/// whole training part are built by the first fit on them and shared by every later trial.
pub struct Executor {
    experiment: String,
    fingerprint: String,
    seed: u64,
    classes: Classes,
    x_train: Array2<f64>,
    y_train: Vec<u32>,
    x_test: Array2<f64>,
    y_test: Vec<u32>,
    /// Whether each test row is an attack (for the held-out rates at a cut).
    test_attack: Vec<bool>,
    /// Bins of `x_train`.
    train_bins: SharedBins,
    folds: Vec<Fold>,
    target: Option<Target>,
}

struct Fold {
    /// Positions within the training part fitted on, ascending.
    fit: Vec<usize>,
    y_fit: Vec<u32>,
    /// Positions within the training part validated on.
    val: Vec<usize>,
    y_val: Vec<u32>,
    /// Bins of the `fit` rows.
    bins: SharedBins,
}

/// What a work unit produced: one record per member, and the whole-training-part fit of its
/// largest model (for saving the best one) when the fit succeeded.
pub struct UnitResult {
    /// Records in member order.
    pub records: Vec<TrialRecord>,
    /// The fitted model of the unit's largest member.
    pub model: Option<FittedModel>,
    /// Per member, the thinned out-of-fold ROC curve its operating point was chosen on
    /// (kept in the model file, so the cut can move without a fit); empty without a target.
    pub rocs: Vec<Roc>,
}

/// Most points of the out-of-fold ROC curve a model file keeps.
const ROC_POINTS: usize = 2000;

impl Executor {
    /// Prepares the matrices. `folds` are the validation positions within `split.train`;
    /// with a `target`, each trial's cut on P(attack) is chosen for it on its pooled
    /// out-of-fold predictions, and its attack-level scores are taken at that cut.
    pub fn new(
        experiment: &str,
        data: &Dataset,
        split: &Split,
        folds: &[Vec<usize>],
        seed: u64,
        target: Option<Target>,
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
                    y_fit: fit.iter().map(|&p| y_train[p]).collect(),
                    fit,
                    y_val: val.iter().map(|&p| y_train[p]).collect(),
                    val: val.clone(),
                    bins: SharedBins::new(),
                }
            })
            .collect();
        Executor {
            experiment: experiment.to_owned(),
            fingerprint: data.fingerprint.clone(),
            seed,
            classes: data.classes.clone(),
            x_test: data.features.select(Axis(0), &split.test),
            test_attack: split
                .test
                .iter()
                .map(|&r| data.classes.is_attack(data.class_ids[r]))
                .collect(),
            y_test: split.test.iter().map(|&r| data.class_ids[r]).collect(),
            x_train,
            y_train,
            train_bins: SharedBins::new(),
            folds,
            target,
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
            rocs: Vec::new(),
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
            operating_point: None,
            n_estimators_used: None,
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

        // Cross-validation: per member, the validation probabilities of each fold.
        let mut fold_probas: Vec<Vec<Array2<f64>>> = vec![Vec::new(); unit.members.len()];
        for fold in &self.folds {
            let x_fit = self.x_train.select(Axis(0), &fold.fit);
            // named, so a `class_weight` map finds its classes
            let model = algorithm.fit_shared(
                &largest.params,
                x_fit.view(),
                &fold.y_fit,
                &self.classes.names,
                &fold.bins,
                self.seed,
            )?;
            drop(x_fit);
            let x_val = self.x_train.select(Axis(0), &fold.val);
            let probas = match &stages {
                Some(stages) if stages.len() > 1 => staged_probas(&model, &x_val, stages)?,
                _ => vec![model.predict_proba(x_val.view())?],
            };
            for (member, proba) in fold_probas.iter_mut().zip(probas) {
                member.push(proba);
            }
        }
        // Each member's cut: chosen on its pooled out-of-fold predictions, or 0.5.
        let cuts: Vec<Option<(Choice, Roc)>> = fold_probas
            .iter()
            .map(|probas| self.target.map(|target| self.choose_cut(probas, &target)))
            .collect();

        // One fit on the whole training part, scored once on the test part.
        let started = Instant::now();
        let model = algorithm.fit_shared(
            &largest.params,
            self.x_train.view(),
            &self.y_train,
            &self.classes.names,
            &self.train_bins,
            self.seed,
        )?;
        let fit_seconds = started.elapsed().as_secs_f64();
        // The test rows under every member's stage in one pass over the trees.
        let started = Instant::now();
        let test_probas = match &stages {
            Some(stages) if stages.len() > 1 => staged_probas(&model, &self.x_test, stages)?,
            _ => vec![model.predict_proba(self.x_test.view())?],
        };
        let predict_seconds = started.elapsed().as_secs_f64();
        let mut records = Vec::with_capacity(unit.members.len());
        let mut rocs = Vec::new();
        for (m, &i) in unit.members.iter().enumerate() {
            let threshold = cuts[m].as_ref().map_or(THRESHOLD, |(c, _)| c.threshold);
            let mut cv_values: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
            for (fold, proba) in self.folds.iter().zip(&fold_probas[m]) {
                let metrics =
                    Metrics::compute_at(&fold.y_val, proba.view(), &self.classes, threshold);
                for (name, value) in metric_values(&metrics) {
                    cv_values.entry(name).or_default().push(value);
                }
            }
            let proba = &test_probas[m];
            let test = Metrics::compute_at(&self.y_test, proba.view(), &self.classes, threshold);
            let operating_point = match (&cuts[m], self.target) {
                (Some((choice, roc)), Some(target)) => {
                    rocs.push(roc.clone());
                    let scores = self.classes.attack_probabilities(proba.view());
                    Some(OperatingPoint {
                        target,
                        threshold,
                        target_met: choice.target_met,
                        out_of_fold: choice.rates,
                        held_out: Some(Rates::at(&self.test_attack, &scores, threshold)),
                    })
                }
                _ => None,
            };
            let cv = cv_values
                .iter()
                .map(|(name, values)| ((*name).to_owned(), MeanStd::of(values)))
                .collect();
            records.push(
                self.record(&candidates[i], &keys[i], TrialStatus::Finished, |r| {
                    r.cv = cv;
                    r.test = Some(test);
                    r.fit_seconds = fit_seconds;
                    r.predict_seconds = predict_seconds;
                    r.operating_point = operating_point;
                    // A member's prefix of the (possibly early-stopped) fit: no copy of its
                    // trees is needed to count them.
                    r.n_estimators_used = early_stopping::enabled(&candidates[i].params)
                        .then(|| model.n_stages())
                        .flatten()
                        .map(|s| unit.stages[m].map_or(s, |n| n.min(s)));
                }),
            );
        }
        Ok(UnitResult {
            records,
            model: Some(model),
            rocs,
        })
    }

    /// The cut for `target` on the pooled out-of-fold P(attack) of one member (`probas`
    /// in fold order), with the thinned curve it was read from.
    fn choose_cut(&self, probas: &[Array2<f64>], target: &Target) -> (Choice, Roc) {
        let mut truth = Vec::with_capacity(self.y_train.len());
        let mut scores = Vec::with_capacity(self.y_train.len());
        for (fold, proba) in self.folds.iter().zip(probas) {
            truth.extend(fold.y_val.iter().map(|&c| self.classes.is_attack(c)));
            scores.extend(self.classes.attack_probabilities(proba.view()));
        }
        let roc = Roc::from_scores(&truth, &scores);
        (roc.choose(target), roc.thinned(ROC_POINTS))
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
