//! Data types of the MLflow REST API, as this client sends and receives them.
//!
//! Decoding is lenient where the server is: 64-bit integers may arrive as numbers or
//! strings, metric values as numbers or `"NaN"` / `"Infinity"` / `"-Infinity"`, and
//! absent lists as absent keys.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An MLflow experiment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Experiment {
    /// Server-assigned id (a decimal string).
    pub experiment_id: String,
    /// Unique name.
    pub name: String,
    /// Where the experiment's artifacts go, e.g. `mlflow-artifacts:/1`.
    #[serde(default)]
    pub artifact_location: String,
    /// `active` or `deleted`.
    #[serde(default)]
    pub lifecycle_stage: String,
    /// Experiment tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// What [`MlflowClient::get_or_create_experiment`](super::MlflowClient::get_or_create_experiment) did.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentHandle {
    /// The experiment, active.
    pub experiment: Experiment,
    /// The experiment did not exist and was created now.
    pub created: bool,
    /// The experiment had been deleted and was restored; callers should warn, since the
    /// user may have deleted it on purpose.
    pub restored: bool,
}

/// A version of a registered model in MLflow's model registry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ModelVersion {
    /// Registered model name.
    pub name: String,
    /// Version number, as the server sends it (`"1"`, `"2"`...).
    pub version: String,
    /// Where the model files are, e.g. `runs:/<run>/model/<sha256>.json`.
    #[serde(default)]
    pub source: String,
    /// The run that produced it.
    #[serde(default)]
    pub run_id: String,
    /// `READY`, `PENDING_REGISTRATION` or `FAILED_REGISTRATION`.
    #[serde(default)]
    pub status: String,
    /// Aliases pointing at this version.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Version tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A registered model in MLflow's model registry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegisteredModel {
    /// Name.
    pub name: String,
    /// Model tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Aliases and the versions they point at.
    #[serde(default)]
    pub aliases: Vec<AliasTarget>,
}

/// One alias of a registered model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AliasTarget {
    /// Alias name, e.g. `champion`.
    pub alias: String,
    /// The version it points at.
    pub version: String,
}

/// A key/value tag (of a run, an experiment or a model version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Key, at most 250 characters.
    pub key: String,
    /// Value, at most 8000 characters.
    #[serde(default)]
    pub value: String,
}

impl Tag {
    /// A tag.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A run parameter; write-once per run and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// Key, at most 250 characters.
    pub key: String,
    /// Value, at most 6000 characters.
    #[serde(default)]
    pub value: String,
}

impl Param {
    /// A param.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Param {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// One metric observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Key, at most 250 characters.
    pub key: String,
    /// Value; NaN and ±infinity are allowed and travel as strings.
    #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
    pub value: f64,
    /// Wall-clock time of the observation, milliseconds since the Unix epoch.
    #[serde(deserialize_with = "de_i64", default)]
    pub timestamp: i64,
    /// Step (epoch, iteration); 0 for a single final value.
    #[serde(deserialize_with = "de_i64", default)]
    pub step: i64,
    /// The MLflow 3 logged model the value describes; `None` for a run's own metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// The dataset the value was measured on, by name (with `dataset_digest`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    /// That dataset's digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
}

impl Metric {
    /// A metric at step 0.
    pub fn new(key: impl Into<String>, value: f64, timestamp_ms: i64) -> Self {
        Metric {
            key: key.into(),
            value,
            timestamp: timestamp_ms,
            step: 0,
            model_id: None,
            dataset_name: None,
            dataset_digest: None,
        }
    }

    /// The same metric, describing the logged model `model_id`.
    pub fn of_model(mut self, model_id: impl Into<String>) -> Self {
        self.model_id = Some(model_id.into());
        self
    }

    /// The same metric at another step.
    pub fn at_step(mut self, step: i64) -> Self {
        self.step = step;
        self
    }
}

/// Status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Still going (or its process died without saying so).
    Running,
    /// Scheduled, not started.
    Scheduled,
    /// Ended normally.
    Finished,
    /// Ended with an error.
    Failed,
    /// Stopped by the user or a signal.
    Killed,
}

/// A run: its metadata and its latest data.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Run {
    /// Metadata.
    pub info: RunInfo,
    /// Params, latest metric values and tags.
    #[serde(default)]
    pub data: RunData,
    /// The data sets the run used.
    #[serde(default)]
    pub inputs: RunInputs,
    /// What the run produced: its logged models (MLflow 3).
    #[serde(default)]
    pub outputs: RunOutputs,
}

/// What a run produced, as the server reports it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RunOutputs {
    /// Logged models linked to the run as its outputs (the UI's *Models* column).
    #[serde(default)]
    pub model_outputs: Vec<ModelOutput>,
}

/// One logged model a run produced.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ModelOutput {
    /// The logged model's id (`m-...`).
    pub model_id: String,
    /// The step it was produced at.
    #[serde(default, deserialize_with = "de_i64")]
    pub step: i64,
}

/// What a run used, as the server reports it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RunInputs {
    /// Its dataset inputs.
    #[serde(default)]
    pub dataset_inputs: Vec<RunDataset>,
}

/// One dataset input of a run: the dataset and the input's tags (`mlflow.data.context`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunDataset {
    /// Tags of the input.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The dataset.
    pub dataset: Dataset,
}

impl RunDataset {
    /// The value of the input's tag `key`, if set.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

/// A dataset as MLflow keeps it (one per experiment, name and digest).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Dataset {
    /// Name.
    pub name: String,
    /// Digest.
    pub digest: String,
    /// Source type (`local`, `s3`, `code`...).
    #[serde(default)]
    pub source_type: String,
    /// Source JSON.
    #[serde(default)]
    pub source: String,
    /// Schema JSON.
    #[serde(default)]
    pub schema: String,
    /// Profile JSON.
    #[serde(default)]
    pub profile: String,
}

impl Run {
    /// The run id.
    pub fn id(&self) -> &str {
        &self.info.run_id
    }

    /// The value of tag `key`, if set.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.data
            .tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }

    /// The value of param `key`, if logged.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.data
            .params
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }

    /// The latest value of metric `key`, if logged.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.data
            .metrics
            .iter()
            .find(|m| m.key == key)
            .map(|m| m.value)
    }
}

/// Metadata of a run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunInfo {
    /// Run id (32 hex digits).
    pub run_id: String,
    /// Display name.
    #[serde(default)]
    pub run_name: String,
    /// Experiment the run belongs to.
    pub experiment_id: String,
    /// Current status.
    pub status: RunStatus,
    /// Start, ms since the epoch.
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub start_time: Option<i64>,
    /// End, ms since the epoch; absent while running.
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub end_time: Option<i64>,
    /// Root of the run's artifacts, e.g. `mlflow-artifacts:/1/<run>/artifacts`.
    #[serde(default)]
    pub artifact_uri: String,
    /// `active` or `deleted`.
    #[serde(default)]
    pub lifecycle_stage: String,
}

/// Params, latest metric values and tags of a run.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct RunData {
    /// Latest value of each metric key.
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// All params.
    #[serde(default)]
    pub params: Vec<Param>,
    /// All tags, system tags (`mlflow.*`) included.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// One page of a run search.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct RunsPage {
    /// Runs of this page; the server omits the key when there are none.
    #[serde(default)]
    pub runs: Vec<Run>,
    /// Token for the next page; absent on the last page.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// An entry of an artifact directory listing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FileInfo {
    /// Path relative to the run's artifact root.
    pub path: String,
    /// Whether it is a directory.
    #[serde(default)]
    pub is_dir: bool,
    /// Size in bytes (files only).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub file_size: Option<i64>,
}

/// Sends NaN and infinities as the strings the server expects instead of invalid JSON.
fn ser_f64<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    if value.is_nan() {
        s.serialize_str("NaN")
    } else if value.is_infinite() {
        s.serialize_str(if *value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        })
    } else {
        s.serialize_f64(*value)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Int(i64),
    Float(f64),
    Str(String),
}

fn de_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Int(i) => Ok(i as f64),
        NumOrStr::Float(f) => Ok(f),
        NumOrStr::Str(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(serde::de::Error::custom),
        },
    }
}

fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Int(i) => Ok(i),
        NumOrStr::Float(f) => Ok(f as i64),
        NumOrStr::Str(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    de_i64(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_round_trip_including_non_finite() {
        for (v, json) in [
            (1.5, "1.5"),
            (f64::NAN, "\"NaN\""),
            (f64::INFINITY, "\"Infinity\""),
            (f64::NEG_INFINITY, "\"-Infinity\""),
        ] {
            let m = Metric::new("k", v, 7);
            let text = serde_json::to_string(&m).unwrap();
            assert!(text.contains(&format!("\"value\":{json}")), "{text}");
            let back: Metric = serde_json::from_str(&text).unwrap();
            assert!(back.value == v || (v.is_nan() && back.value.is_nan()));
        }
        let m: Metric =
            serde_json::from_str(r#"{"key":"k","value":3,"timestamp":"12","step":"2"}"#).unwrap();
        assert_eq!((m.value, m.timestamp, m.step), (3.0, 12, 2));
    }
}
