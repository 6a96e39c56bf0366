//! The best trial's model as an MLflow 3 *logged model*: the ONNX graph of
//! [`crate::export::onnx`] with an `MLmodel` that declares the `onnx` and `python_function`
//! flavors, so that `mlflow.pyfunc.load_model("models:/<model_id>")` and `mlflow models
//! serve` answer like `netsec predict`. The model is linked to its trial's run as the run's
//! output (what fills the runs table's *Models* column) and the trial's metrics are logged
//! again carrying its `model_id`; registry mirroring then makes versions from it (see
//! [`super::mirror`]).
//!
//! It rides on the record that uploads the best model file to its run (an
//! [`Artifacts`](super::outbox::RecordKind::Artifacts) record carrying a
//! [`LoggedModelSpec`]), so it goes through the outbox like every other record and is sent
//! exactly once, although creating it is not idempotent:
//!
//! - a logged model is looked up by its tag `netsec.trial_key` and its source run before
//!   each attempt to create it ([`MlflowClient::create_logged_model_once`]), so an answer
//!   lost after the server created it finds that model instead of making a second;
//! - its files are PUTs of the same bytes and finalizing sets a status, so both are
//!   repeated until the model is `READY`;
//! - the run's output link is added only when the run does not list the model yet, looked
//!   up before each attempt too;
//! - metrics with a `model_id` repeat like every metric: same key, value, time and step.
//!
//! A server without logged models (404 / `ENDPOINT_NOT_FOUND`: an MLflow 2.x such as
//! DagsHub's) gets what netsec logged before, the model file as a run artifact, and one
//! warning per process ([`Feature::LoggedModels`]).

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::batch::LogBatch;
use super::client::{MlflowClient, Payload};
use super::error::{Result, TrackingError};
use super::features::{Feature, endpoint_missing};
use super::outbox::KnownRun;
use super::record::SHA256_TAG;
use super::send::{Failure, Sender};
use super::types::{Metric, Param, Tag};
use crate::export::onnx::{self, Port};
use crate::export::proto::DataType;
use crate::model_file::ModelFile;
use crate::shared::guard::Guard;
use crate::shared::time::format_ms;

/// Tag of a logged model: the trial that fitted it (with its source run, what a resent
/// record finds it by).
pub const TRIAL_KEY_TAG: &str = "netsec.trial_key";
/// The ONNX graph among the logged model's files.
const ONNX_FILE: &str = "model.onnx";
/// Status of a logged model whose files are complete.
const READY: &str = "LOGGED_MODEL_READY";

/// The MLflow the `MLmodel` is written for and its environment files pin, with the
/// onnxruntime and Python next to it: what `scripts/test` loads and serves the model with.
pub const MLFLOW_VERSION: &str = "3.17.2";
/// The onnxruntime the environment files pin (the version the ONNX parity tests use).
pub const ONNXRUNTIME_VERSION: &str = "1.32.0";
/// The Python the environment files name.
pub const PYTHON_VERSION: &str = "3.11";

/// A logged model to make of the best trial's model, as the outbox keeps it: everything but
/// what the server assigns (the model id, its artifact location).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelSpec {
    /// The model's name in MLflow (its algorithm).
    pub name: String,
    /// The trial that fitted it (tag [`TRIAL_KEY_TAG`]).
    pub trial_key: String,
    /// sha256 of the netsec model file it was exported from (tag `netsec.sha256`).
    pub sha256: String,
    /// The ONNX graph on disk (absolute, so `netsec sync` finds it from any directory).
    pub onnx: PathBuf,
    /// The graph's inputs, as an MLflow signature names and types them.
    pub inputs: Vec<ColSpec>,
    /// The graph's outputs, likewise.
    pub outputs: Vec<ColSpec>,
    /// The model's params: its algorithm and hyperparameters.
    pub params: Vec<Param>,
    /// The trial's metrics, logged again on the run with the model's id.
    pub metrics: Vec<Metric>,
    /// When the model was recorded (Unix ms): the `MLmodel`'s `utc_time_created`.
    pub created_ms: i64,
}

/// A column of an MLflow signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColSpec {
    /// Column (graph input or output) name.
    pub name: String,
    /// MLflow type: `long`, `double`, `boolean` or `string`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether a value must be there (`false` for columns the schema lets be empty).
    pub required: bool,
}

/// The ONNX export of a model file and its signature, ready to become a [`LoggedModelSpec`].
#[derive(Debug, Clone)]
pub struct OnnxExport {
    /// The serialized ONNX graph.
    pub onnx: Vec<u8>,
    /// Its algorithm (the logged model's name).
    pub algorithm: String,
    /// The graph's inputs.
    pub inputs: Vec<ColSpec>,
    /// The graph's outputs.
    pub outputs: Vec<ColSpec>,
}

/// Exports the model file at `model_path` to ONNX for a logged model; the error says why
/// it cannot be (the model is then logged as its file only).
pub fn export(model_path: &Path) -> std::result::Result<OnnxExport, String> {
    let (file, sha256) = ModelFile::load(model_path).map_err(|e| e.to_string())?;
    let onnx = onnx::to_onnx(&file, &sha256).map_err(|e| e.to_string())?;
    let (inputs, outputs) = onnx::interface(&file).map_err(|e| e.to_string())?;
    // A nullable column arrives as NaN (numbers) or an empty cell (categories).
    let nullable = |name: &str| file.schema.column(name).is_some_and(|c| c.nullable);
    let colspec = |port: &Port, required: bool| ColSpec {
        name: port.name.clone(),
        kind: mlflow_type(port.elem).to_owned(),
        required,
    };
    Ok(OnnxExport {
        onnx,
        algorithm: file.algorithm.clone(),
        inputs: inputs
            .iter()
            .map(|p| colspec(p, !nullable(&p.name)))
            .collect(),
        outputs: outputs.iter().map(|p| colspec(p, true)).collect(),
    })
}

/// MLflow's name of an ONNX element type.
fn mlflow_type(elem: DataType) -> &'static str {
    match elem {
        DataType::Int64 => "long",
        DataType::Double => "double",
        DataType::Bool => "boolean",
        DataType::String => "string",
        DataType::Uint8 => "integer",
    }
}

/// A logged model as the server keeps it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LoggedModel {
    /// Its metadata.
    pub info: LoggedModelInfo,
    /// Its params and metrics.
    #[serde(default)]
    pub data: LoggedModelData,
}

/// Metadata of a logged model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LoggedModelInfo {
    /// Server-assigned id, `m-<32 hex>`.
    pub model_id: String,
    /// Its experiment.
    #[serde(default)]
    pub experiment_id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Root of its files, e.g. `mlflow-artifacts:/1/models/m-.../artifacts`.
    #[serde(default)]
    pub artifact_uri: String,
    /// `LOGGED_MODEL_PENDING` until finalized, then `LOGGED_MODEL_READY`.
    #[serde(default)]
    pub status: String,
    /// The run that produced it.
    #[serde(default)]
    pub source_run_id: String,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// Params and metrics of a logged model.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LoggedModelData {
    /// Its params.
    #[serde(default)]
    pub params: Vec<Param>,
    /// Metrics logged with its id.
    #[serde(default)]
    pub metrics: Vec<Metric>,
}

impl LoggedModel {
    /// The model's `models:/` URI, which MLflow's clients load and serve.
    pub fn uri(&self) -> String {
        format!("models:/{}", self.info.model_id)
    }

    /// The value of tag `key`, if set.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.info
            .tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

#[derive(Deserialize)]
struct ModelEnvelope {
    model: LoggedModel,
}

/// Refuses a value that would break out of a quoted search-filter string.
fn quotable(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.contains(['\'', '`', '\\']) {
        return Err(TrackingError::Invalid(format!(
            "{what} {value:?} cannot be searched for"
        )));
    }
    Ok(())
}

/// A model id that can go into a URL path as it is.
fn path_safe(model_id: &str) -> Result<&str> {
    if model_id.is_empty()
        || !model_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(TrackingError::Invalid(format!(
            "logged model id {model_id:?} is not an MLflow model id"
        )));
    }
    Ok(model_id)
}

impl MlflowClient {
    /// The logged models of experiment `experiment_id` matching `filter` (MLflow's search
    /// syntax, e.g. ``tags.`netsec.trial_key` = '…'``; `""` for all), oldest first, up to
    /// 100.
    pub async fn search_logged_models(
        &self,
        experiment_id: &str,
        filter: &str,
    ) -> Result<Vec<LoggedModel>> {
        #[derive(Deserialize)]
        struct Found {
            #[serde(default)]
            models: Vec<LoggedModel>,
        }
        let mut body = json!({
            "experiment_ids": [experiment_id],
            "max_results": 100,
            "order_by": [{ "field_name": "creation_timestamp", "ascending": true }],
        });
        if !filter.is_empty() {
            body["filter"] = json!(filter);
        }
        let found: Found = self
            .call(
                Method::POST,
                "logged-models/search",
                &[],
                Payload::json(&body)?,
            )
            .await?;
        Ok(found.models)
    }

    /// The oldest logged model of run `run_id` (in `experiment_id`) tagged `key` = `value`.
    pub async fn find_logged_model(
        &self,
        experiment_id: &str,
        run_id: &str,
        (key, value): (&str, &str),
    ) -> Result<Option<LoggedModel>> {
        quotable("tag key", key)?;
        quotable("tag value", value)?;
        quotable("run id", run_id)?;
        let filter = format!("tags.`{key}` = '{value}' AND source_run_id = '{run_id}'");
        let found = self.search_logged_models(experiment_id, &filter).await?;
        Ok(found.into_iter().next())
    }

    /// Creates a logged model. Not idempotent and never retried: see
    /// [`MlflowClient::create_logged_model_once`].
    pub async fn create_logged_model(
        &self,
        experiment_id: &str,
        name: &str,
        source_run_id: &str,
        params: &[Param],
        tags: &[Tag],
    ) -> Result<LoggedModel> {
        let body = json!({
            "experiment_id": experiment_id,
            "name": name,
            "source_run_id": source_run_id,
            "params": params,
            "tags": tags,
        });
        let created: ModelEnvelope = self
            .clone()
            .with_retry(super::retry::RetryPolicy::never())
            .call(Method::POST, "logged-models", &[], Payload::json(&body)?)
            .await?;
        Ok(created.model)
    }

    /// The logged model of run `source_run_id` tagged `key` = `value`, created (named
    /// `name`, with `params` and `tags`, which must include that tag) when there is none.
    /// Every retry looks it up again first, so an answer lost after the server created the
    /// model does not make a second one.
    pub async fn create_logged_model_once(
        &self,
        experiment_id: &str,
        (key, value): (&str, &str),
        name: &str,
        source_run_id: &str,
        params: &[Param],
        tags: &[Tag],
    ) -> Result<LoggedModel> {
        self.create_once(
            "POST logged-models",
            Guard::CreateOnce,
            |once| async move {
                once.find_logged_model(experiment_id, source_run_id, (key, value))
                    .await
            },
            |once| async move {
                once.create_logged_model(experiment_id, name, source_run_id, params, tags)
                    .await
            },
        )
        .await
    }

    /// The logged model `model_id`.
    pub async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        let id = path_safe(model_id)?;
        let got: ModelEnvelope = self
            .call(
                Method::GET,
                &format!("logged-models/{id}"),
                &[],
                Payload::Empty,
            )
            .await?;
        Ok(got.model)
    }

    /// Marks the logged model `model_id` complete (`READY`); repeating it changes nothing.
    pub async fn finalize_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        let id = path_safe(model_id)?;
        let body = json!({ "model_id": id, "status": READY });
        let done: ModelEnvelope = self
            .call(
                Method::PATCH,
                &format!("logged-models/{id}"),
                &[],
                Payload::json(&body)?,
            )
            .await?;
        Ok(done.model)
    }

    /// Links the logged model `model_id` to run `run_id` as its output. Not idempotent (the
    /// server keeps one link per run and model) and never retried: see
    /// [`MlflowClient::log_model_output_once`].
    pub async fn log_model_output(&self, run_id: &str, model_id: &str) -> Result<()> {
        let body = json!({ "run_id": run_id, "models": [{ "model_id": model_id, "step": 0 }] });
        self.clone()
            .with_retry(super::retry::RetryPolicy::never())
            .call::<serde_json::Value>(Method::POST, "runs/outputs", &[], Payload::json(&body)?)
            .await
            .map(drop)
    }

    /// Links the logged model `model_id` to run `run_id` as its output unless the run
    /// lists it already, looked up before every attempt (an answer lost after the server
    /// made the link finds it).
    pub async fn log_model_output_once(&self, run_id: &str, model_id: &str) -> Result<()> {
        self.create_once(
            "POST runs/outputs",
            Guard::CreateOnce,
            |once| async move {
                let run = once.get_run(run_id).await?;
                let outputs = run.outputs.model_outputs;
                Ok(outputs.iter().any(|o| o.model_id == model_id).then_some(()))
            },
            |once| async move { once.log_model_output(run_id, model_id).await },
        )
        .await
    }
}

impl Sender {
    /// Makes `spec` the logged model of `run` (see the module docs for why repeating it is
    /// safe); a server without logged models gets a warning, once per process, and
    /// nothing else.
    pub(super) async fn send_logged_model(
        &self,
        run: &KnownRun,
        spec: &LoggedModelSpec,
    ) -> std::result::Result<(), Failure> {
        match self.log_model(run, spec).await {
            Err(Failure::Server(err)) if endpoint_missing(&err) => {
                Feature::LoggedModels.warn_missing(&err);
                Ok(())
            }
            done => done.map(|model| {
                tracing::debug!(model = %model.info.model_id, "mlflow: logged model ready");
            }),
        }
    }

    async fn log_model(
        &self,
        run: &KnownRun,
        spec: &LoggedModelSpec,
    ) -> std::result::Result<LoggedModel, Failure> {
        let client = self.client();
        let experiment_id = &run.experiment_id;
        // The first lookup; `create_logged_model_once` repeats it before each attempt. Both
        // are the `create-once` guard.
        let found = if Guard::CreateOnce.disabled() {
            None
        } else {
            client
                .find_logged_model(experiment_id, &run.run_id, (TRIAL_KEY_TAG, &spec.trial_key))
                .await?
        };
        let mut model = match found {
            Some(model) => model,
            None => {
                let tags = [
                    Tag::new(TRIAL_KEY_TAG, &spec.trial_key),
                    Tag::new(SHA256_TAG, &spec.sha256),
                    Tag::new("netsec.version", env!("CARGO_PKG_VERSION")),
                ];
                client
                    .create_logged_model_once(
                        experiment_id,
                        (TRIAL_KEY_TAG, &spec.trial_key),
                        &spec.name,
                        &run.run_id,
                        &spec.params,
                        &tags,
                    )
                    .await?
            }
        };
        if model.info.status != READY {
            self.upload_model_files(&model.info, &run.run_id, spec)
                .await?;
            let id = model.info.model_id.clone();
            model = client.finalize_logged_model(&id).await?;
        }
        let id = model.info.model_id.clone();
        client.log_model_output_once(&run.run_id, &id).await?;
        if !spec.metrics.is_empty() {
            let metrics = spec.metrics.iter().map(|m| m.clone().of_model(&id));
            let batch = LogBatch {
                metrics: metrics.collect(),
                ..LogBatch::default()
            };
            client.log_batch(&run.run_id, batch).await?;
        }
        Ok(model)
    }

    /// The ready logged model made of model file `sha256` on `run`, if there is one; `None`
    /// too on a server without logged models (after the one warning).
    pub(super) async fn logged_model_of(
        &self,
        run: &KnownRun,
        sha256: &str,
    ) -> std::result::Result<Option<LoggedModel>, Failure> {
        let found = self
            .client()
            .find_logged_model(&run.experiment_id, &run.run_id, (SHA256_TAG, sha256))
            .await;
        match found {
            Ok(model) => Ok(model.filter(|m| m.info.status == READY)),
            Err(err) if endpoint_missing(&err) => {
                Feature::LoggedModels.warn_missing(&err);
                Ok(None)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Uploads the graph, its `MLmodel` and the environment files under the model's root.
    async fn upload_model_files(
        &self,
        model: &LoggedModelInfo,
        run_id: &str,
        spec: &LoggedModelSpec,
    ) -> std::result::Result<(), Failure> {
        let client = self.client();
        let graph = tokio::fs::read(&spec.onnx)
            .await
            .map_err(|source| TrackingError::Io {
                path: spec.onnx.clone(),
                source,
            })?;
        let files = environment_files();
        let size = graph.len() + files.iter().map(|(_, text)| text.len()).sum::<usize>();
        let mlmodel = mlmodel(spec, model, run_id, size)?;
        client
            .upload_under(&model.artifact_uri, ONNX_FILE, graph)
            .await?;
        for (name, text) in files {
            client
                .upload_under(&model.artifact_uri, name, text.into_bytes())
                .await?;
        }
        // Last: a model whose `MLmodel` is there has all its files.
        client
            .upload_under(&model.artifact_uri, "MLmodel", mlmodel.into_bytes())
            .await?;
        Ok(())
    }
}

/// The environment files of the `python_function` flavor: pip requirements, a virtualenv
/// and a conda description, pinned to the versions netsec is tested with.
fn environment_files() -> Vec<(&'static str, String)> {
    let requirements =
        format!("mlflow=={MLFLOW_VERSION}\nonnxruntime=={ONNXRUNTIME_VERSION}\nnumpy\npandas\n");
    let python_env = format!(
        "python: {PYTHON_VERSION}\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n"
    );
    let conda = format!(
        "channels:\n- conda-forge\ndependencies:\n- python={PYTHON_VERSION}\n- pip\n- pip:\n  \
         - mlflow=={MLFLOW_VERSION}\n  - onnxruntime=={ONNXRUNTIME_VERSION}\n  - numpy\n  \
         - pandas\nname: mlflow-env\n"
    );
    vec![
        ("requirements.txt", requirements),
        ("python_env.yaml", python_env),
        ("conda.yaml", conda),
    ]
}

/// The `MLmodel` file (YAML, keys sorted as MLflow writes them).
fn mlmodel(
    spec: &LoggedModelSpec,
    model: &LoggedModelInfo,
    run_id: &str,
    size: usize,
) -> Result<String> {
    #[derive(Serialize)]
    struct MlModel<'a> {
        artifact_path: &'a str,
        flavors: Flavors<'a>,
        mlflow_version: &'a str,
        model_id: &'a str,
        model_size_bytes: usize,
        model_uuid: &'a str,
        run_id: &'a str,
        signature: Signature,
        utc_time_created: String,
    }
    #[derive(Serialize)]
    struct Flavors<'a> {
        onnx: OnnxFlavor<'a>,
        python_function: PyFunc<'a>,
    }
    #[derive(Serialize)]
    struct OnnxFlavor<'a> {
        code: Option<&'a str>,
        data: &'a str,
        providers: [&'a str; 1],
    }
    #[derive(Serialize)]
    struct PyFunc<'a> {
        data: &'a str,
        env: Env<'a>,
        loader_module: &'a str,
        python_version: &'a str,
    }
    #[derive(Serialize)]
    struct Env<'a> {
        conda: &'a str,
        virtualenv: &'a str,
    }
    #[derive(Serialize)]
    struct Signature {
        inputs: String,
        outputs: String,
        params: Option<String>,
    }
    let json = |columns: &[ColSpec]| {
        serde_json::to_string(columns)
            .map_err(|e| TrackingError::Invalid(format!("cannot encode the signature: {e}")))
    };
    let ms = spec.created_ms;
    let file = MlModel {
        artifact_path: &spec.name,
        flavors: Flavors {
            onnx: OnnxFlavor {
                code: None,
                data: ONNX_FILE,
                providers: ["CPUExecutionProvider"],
            },
            python_function: PyFunc {
                data: ONNX_FILE,
                env: Env {
                    conda: "conda.yaml",
                    virtualenv: "python_env.yaml",
                },
                loader_module: "mlflow.onnx",
                python_version: PYTHON_VERSION,
            },
        },
        mlflow_version: MLFLOW_VERSION,
        model_id: &model.model_id,
        model_size_bytes: size,
        model_uuid: &model.model_id,
        run_id,
        signature: Signature {
            inputs: json(&spec.inputs)?,
            outputs: json(&spec.outputs)?,
            params: None,
        },
        utc_time_created: format!("{}.{:06}", format_ms(ms), ms.rem_euclid(1000) * 1000),
    };
    serde_saphyr::to_string(&file)
        .map_err(|e| TrackingError::Invalid(format!("cannot write the MLmodel file: {e}")))
}

/// The outbox key of the record that puts model file `sha256` (and its logged model) on
/// the run `run_key`: the sweep's record and a promotion's share it, so it exists once.
pub fn artifacts_key(run_key: &str, sha256: &str) -> String {
    format!("artifacts.{run_key}.{sha256}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LoggedModelSpec {
        LoggedModelSpec {
            name: "decision_tree".into(),
            trial_key: "k1".into(),
            sha256: "ab".repeat(32),
            onnx: PathBuf::from("/tmp/model.onnx"),
            inputs: vec![ColSpec {
                name: "URL_Length".into(),
                kind: "long".into(),
                required: true,
            }],
            outputs: vec![ColSpec {
                name: "predicted_label".into(),
                kind: "string".into(),
                required: true,
            }],
            params: vec![Param::new("algorithm", "decision_tree")],
            metrics: vec![Metric::new("test_f1", 0.9, 1_000)],
            created_ms: 1_795_000_000_123,
        }
    }

    #[test]
    fn the_mlmodel_declares_both_flavors_the_ids_and_the_signature() {
        let info = LoggedModelInfo {
            model_id: "m-0123".into(),
            experiment_id: "1".into(),
            name: "decision_tree".into(),
            artifact_uri: "mlflow-artifacts:/1/models/m-0123/artifacts".into(),
            status: "LOGGED_MODEL_PENDING".into(),
            source_run_id: "r1".into(),
            tags: Vec::new(),
        };
        let text = mlmodel(&spec(), &info, "r1", 42).unwrap();
        let back: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back["model_id"], "m-0123", "{text}");
        assert_eq!(back["run_id"], "r1");
        assert_eq!(back["model_size_bytes"], 42);
        assert_eq!(back["utc_time_created"], "2026-11-18 11:06:40.123000");
        assert_eq!(back["flavors"]["onnx"]["data"], "model.onnx");
        assert_eq!(
            back["flavors"]["python_function"]["loader_module"],
            "mlflow.onnx"
        );
        let inputs: serde_json::Value =
            serde_json::from_str(back["signature"]["inputs"].as_str().unwrap()).unwrap();
        assert_eq!(
            inputs,
            json!([{ "name": "URL_Length", "type": "long", "required": true }])
        );
    }

    #[test]
    fn filter_values_and_model_ids_are_checked() {
        assert!(quotable("v", "a'b").is_err());
        assert!(quotable("v", "").is_err());
        assert!(path_safe("m-0a1b").is_ok());
        assert!(path_safe("../x").is_err());
    }
}
