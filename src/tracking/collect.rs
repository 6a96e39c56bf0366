//! Reading sweeps back from MLflow, for `netsec experiment collect --from-mlflow`: each
//! sweep (or shard of one) is a parent run, each trial a child run carrying its key, its
//! parameters and its metrics, as [`MlflowTracker`](super::MlflowTracker) logged them.

use std::collections::HashMap;

use super::client::{MlflowClient, RunSearch, system_tags};
use super::error::Result;
use super::keys::{decode_class, metric_name};
use super::types::{Run, RunStatus};
use crate::models::metrics::MeanStd;
use crate::models::metrics::{ClassReport, ClassScores, Confusion, Metrics};
use crate::models::{ParamKind, ParamValue, Params};
use crate::shared::Metric;
use crate::sweep::record::{TrialRecord, TrialStatus};

/// One sweep's parent run and the trials logged under it.
#[derive(Debug, Clone)]
pub struct LoggedSweep {
    /// The parent run's id.
    pub run_id: String,
    /// The parent run's name, e.g. `sweep quick (shard 1/3)`.
    pub name: String,
    /// The parent run's status (`RUNNING` while the shard is still going).
    pub status: RunStatus,
    /// Its start, ms since the epoch.
    pub start_ms: i64,
    /// The grid's name (tag `netsec.experiment`).
    pub experiment: String,
    /// The data fingerprint (tag `netsec.data_fingerprint`).
    pub data_fingerprint: String,
    /// The ranking metric (param `select_metric`).
    pub select_metric: Option<String>,
    /// `I/N` when it ran with `--shard` (param `shard`).
    pub shard: Option<String>,
    /// The trials it planned (param `trials_planned`).
    pub trials_planned: Option<usize>,
    /// Its trials, from the child runs.
    pub trials: Vec<TrialRecord>,
}

/// Every netsec sweep logged in the MLflow experiment called `name`, with its trials;
/// `None` when the server has no such experiment.
pub async fn logged_sweeps(client: &MlflowClient, name: &str) -> Result<Option<Vec<LoggedSweep>>> {
    let Some(experiment) = client.get_experiment_by_name(name).await? else {
        return Ok(None);
    };
    let runs = client
        .search_runs(&RunSearch::new([experiment.experiment_id]))
        .await?;
    let mut children: HashMap<&str, Vec<&Run>> = HashMap::new();
    for run in &runs {
        if let Some(parent) = run.tag(system_tags::PARENT_RUN_ID) {
            children.entry(parent).or_default().push(run);
        }
    }
    let sweeps = runs
        .iter()
        .filter(|r| r.tag(system_tags::PARENT_RUN_ID).is_none())
        .filter(|r| r.tag("netsec.sweep_key").is_some())
        .map(|parent| {
            let experiment = parent
                .tag("netsec.experiment")
                .unwrap_or_default()
                .to_owned();
            let trials = children
                .get(parent.id())
                .map(|runs| {
                    runs.iter()
                        .filter_map(|run| trial_from_run(run, &experiment))
                        .collect()
                })
                .unwrap_or_default();
            LoggedSweep {
                run_id: parent.id().to_owned(),
                name: parent.info.run_name.clone(),
                status: parent.info.status,
                start_ms: parent.info.start_time.unwrap_or(0),
                data_fingerprint: parent
                    .tag("netsec.data_fingerprint")
                    .unwrap_or_default()
                    .to_owned(),
                select_metric: parent.param("select_metric").map(str::to_owned),
                shard: parent.param("shard").map(str::to_owned),
                trials_planned: parent.param("trials_planned").and_then(|n| n.parse().ok()),
                experiment,
                trials,
            }
        })
        .collect();
    Ok(Some(sweeps))
}

/// The trial a child run records; `None` for a run that is not a finished or failed trial.
///
/// MLflow keeps the metrics, not the confusion counts: those come back as zeros, and the
/// parameters come back from their text (checked against the algorithm when it is known,
/// which restores their types, e.g. `1` as the float `c: 1.0`).
fn trial_from_run(run: &Run, experiment: &str) -> Option<TrialRecord> {
    let key = run.tag("netsec.trial_key")?.to_owned();
    let status = match run.info.status {
        RunStatus::Finished => TrialStatus::Finished,
        RunStatus::Failed => TrialStatus::Failed,
        _ => return None,
    };
    let algorithm = run
        .tag("netsec.algorithm")
        .or_else(|| run.param("algorithm"))?
        .to_owned();
    let text: Params = run
        .data
        .params
        .iter()
        .filter(|p| p.key != "algorithm")
        .map(|p| {
            let value = serde_json::from_str::<ParamValue>(&p.value)
                .unwrap_or_else(|_| ParamValue::str(p.value.clone()));
            (p.key.clone(), value)
        })
        .collect();
    let params = typed_params(&algorithm, text);
    // Every metric the trial logged as `cv_<name>_mean`: the global ones and the
    // per-class ones, whose names come from the label's classes.
    let cv = run
        .data
        .metrics
        .iter()
        .filter_map(|m| {
            let key = m.key.strip_prefix("cv_")?.strip_suffix("_mean")?;
            let name = metric_name(key)?;
            Metric::parse(&name).ok()?;
            let std = run.metric(&format!("cv_{key}_std")).unwrap_or(f64::NAN);
            Some((name, MeanStd { mean: m.value, std }))
        })
        .collect();
    let test = |name: &str| run.metric(&format!("test_{name}"));
    let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
    let test = match (test("accuracy"), test("f1")) {
        (Some(accuracy), Some(f1)) => Some(Metrics {
            accuracy,
            precision: test("precision").unwrap_or(f64::NAN),
            recall: test("recall").unwrap_or(f64::NAN),
            f1,
            roc_auc: finite(test("roc_auc")),
            pr_auc: finite(test("pr_auc")),
            log_loss: test("log_loss").unwrap_or(f64::NAN),
            mcc: test("mcc").unwrap_or(f64::NAN),
            confusion: logged_confusion(run),
            classes: logged_classes(run),
        }),
        _ => None,
    };
    let error = (status == TrialStatus::Failed).then(|| {
        run.tag(system_tags::NOTE)
            .map(|note| note.trim_start_matches("**Failed:** ").to_owned())
            .unwrap_or_default()
    });
    Some(TrialRecord {
        key,
        experiment: experiment.to_owned(),
        algorithm,
        params,
        status,
        cv,
        test,
        fit_seconds: run.metric("fit_seconds").unwrap_or(0.0),
        predict_seconds: run.metric("predict_seconds").unwrap_or(0.0),
        error,
        data_fingerprint: run
            .tag("netsec.data_fingerprint")
            .unwrap_or_default()
            .to_owned(),
        finished_at_ms: run.info.end_time.unwrap_or(0),
        operating_point: run
            .tag("netsec.operating_point")
            .and_then(|text| serde_json::from_str(text).ok()),
        n_estimators_used: run
            .metric("n_estimators_used")
            .filter(|n| *n >= 0.0)
            .map(|n| n as usize),
    })
}

/// Parameters read back from their text, with the types the algorithm gives them: MLflow
/// keeps `1.0` as `1`, which is an integer to JSON but a float to a float parameter.
fn typed_params(algorithm: &str, params: Params) -> Params {
    let Some(algo) = crate::models::algorithm(algorithm) else {
        return params;
    };
    let params = algo.validate(&params).unwrap_or(params);
    params
        .into_iter()
        .map(|(key, value)| {
            let spec = algo.params().iter().find(|s| s.name == key);
            let value = match (value, spec) {
                (ParamValue::Int(i), Some(spec))
                    if has_kind(&spec.kind, &|k| {
                        matches!(k, ParamKind::Float { .. } | ParamKind::Interval { .. })
                    }) && !has_kind(&spec.kind, &|k| matches!(k, ParamKind::Int { .. })) =>
                {
                    ParamValue::Float(i as f64)
                }
                (value, _) => value,
            };
            (key, value)
        })
        .collect()
}

fn has_kind(kind: &ParamKind, test: &dyn Fn(&ParamKind) -> bool) -> bool {
    match kind {
        ParamKind::OneOf(kinds) => kinds.iter().any(|k| has_kind(k, test)),
        k => test(k),
    }
}

/// The attack-level confusion counts a trial run logged (zeros when it logged none).
fn logged_confusion(run: &Run) -> Confusion {
    let count = |name: &str| {
        run.metric(&format!("test_confusion_{name}"))
            .map_or(0, |v| v as u64)
    };
    Confusion {
        tn: count("tn"),
        fp: count("fp"),
        fn_: count("fn"),
        tp: count("tp"),
    }
}

/// The per-class figures a trial run logged, from `test_class_support.<class>` and the
/// per-class metrics (no K×K matrix: MLflow holds it as an image).
fn logged_classes(run: &Run) -> Option<ClassReport> {
    let test = |name: &str| run.metric(&format!("test_{name}"));
    let mut names = Vec::new();
    let mut per_class = Vec::new();
    for m in &run.data.metrics {
        let Some(encoded) = m.key.strip_prefix("test_class_support.") else {
            continue;
        };
        let Some(class) = decode_class(encoded) else {
            continue;
        };
        let stat = |prefix: &str| test(&format!("{prefix}.{encoded}")).unwrap_or(f64::NAN);
        names.push(class);
        per_class.push(ClassScores {
            precision: stat("class_precision"),
            recall: stat("class_recall"),
            f1: stat("class_f1"),
            support: m.value as u64,
        });
    }
    if names.is_empty() {
        return None;
    }
    Some(ClassReport {
        names,
        per_class,
        macro_f1: test("macro_f1").unwrap_or(f64::NAN),
        weighted_f1: test("weighted_f1").unwrap_or(f64::NAN),
        balanced_accuracy: test("balanced_accuracy").unwrap_or(f64::NAN),
        confusion: Vec::new(),
    })
}
