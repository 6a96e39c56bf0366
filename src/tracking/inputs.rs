//! Dataset inputs: the data a trial's run trained and was tested on, as MLflow's dataset
//! inputs (`runs/log-inputs`), which fill the runs table's *Dataset* column.
//!
//! Each trial run gets two inputs, the training part and the test part of the sweep's data,
//! told apart by name (`<schema>-train`, `<schema>-test`) and by their
//! `mlflow.data.context` tag: MLflow keeps one input per (name, digest) and run, so two
//! parts under one name would collapse into one. The digest is the first 32 hex characters
//! of the data fingerprint (MLflow refuses digests over 36); the whole fingerprint is in
//! the input's `netsec.data_fingerprint` tag. Logging the same inputs again is harmless:
//! the server finds the dataset by name and digest and the input by dataset and run, which
//! is what makes resending an outbox record safe.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::{MlflowClient, Payload};
use super::error::{Result, TrackingError};
use crate::data::schema::{ColumnType, LabelType, Schema};

/// Characters of the fingerprint MLflow keeps as the digest (it refuses more than 36).
const DIGEST_CHARS: usize = 32;

/// One data set a run used, with its context (`train` or `test`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInput {
    /// Dataset name, e.g. `intrusion-train`.
    pub name: String,
    /// The first [`DIGEST_CHARS`] hex characters of the data fingerprint.
    pub digest: String,
    /// The whole fingerprint (sha256 of the encoded rows).
    pub fingerprint: String,
    /// MLflow's source type: `local`, `s3`, `http`, `mongodb` or `code` (generated rows).
    pub source_type: String,
    /// `{"uri": ...}` with the source as recorded (never with credentials).
    pub source: String,
    /// MLflow ColSpec JSON of the schema's columns and label.
    pub schema: String,
    /// `{"num_rows": ...}` of this part.
    pub profile: String,
    /// `train` or `test` (the `mlflow.data.context` tag).
    pub context: String,
}

/// What a sweep's data was: enough to describe its parts as dataset inputs.
#[derive(Debug, Clone, Copy)]
pub struct SweepData<'a> {
    /// Where the rows came from, as recorded (credential-free).
    pub source: &'a str,
    /// The data fingerprint.
    pub fingerprint: &'a str,
    /// The schema the rows were read with.
    pub schema: &'a Schema,
    /// Rows in the training part (a halving rung's subset when there is one).
    pub train_rows: usize,
    /// Rows in the test part.
    pub test_rows: usize,
}

impl DatasetInput {
    /// The training and test parts of a sweep's data, in that order.
    pub fn sweep_parts(data: &SweepData<'_>) -> Vec<DatasetInput> {
        let schema = colspec(data.schema);
        let (source_type, source) = source_of(data.source);
        [("train", data.train_rows), ("test", data.test_rows)]
            .into_iter()
            .map(|(context, rows)| DatasetInput {
                name: format!("{}-{context}", data.schema.name),
                digest: data.fingerprint.chars().take(DIGEST_CHARS).collect(),
                fingerprint: data.fingerprint.to_owned(),
                source_type: source_type.to_owned(),
                source: source.clone(),
                schema: schema.clone(),
                profile: json!({ "num_rows": rows }).to_string(),
                context: context.to_owned(),
            })
            .collect()
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "tags": [
                { "key": "mlflow.data.context", "value": self.context },
                { "key": "netsec.data_fingerprint", "value": self.fingerprint },
            ],
            "dataset": {
                "name": self.name,
                "digest": self.digest,
                "source_type": self.source_type,
                "source": self.source,
                "schema": self.schema,
                "profile": self.profile,
            },
        })
    }
}

/// MLflow's source type and source JSON for a recorded data source.
fn source_of(recorded: &str) -> (&'static str, String) {
    let kind = if recorded.starts_with("synthetic:") {
        "code"
    } else if recorded.starts_with("s3://") {
        "s3"
    } else if recorded.starts_with("http://") || recorded.starts_with("https://") {
        "http"
    } else if recorded.starts_with("mongodb") {
        "mongodb"
    } else {
        "local"
    };
    (kind, json!({ "uri": recorded }).to_string())
}

/// The schema's feature columns (excluded ones left out) and label as MLflow ColSpec JSON.
fn colspec(schema: &Schema) -> String {
    let mut columns: Vec<serde_json::Value> = schema
        .columns
        .iter()
        .filter(|c| c.exclude.is_none())
        .map(|c| {
            let kind = match c.column_type {
                ColumnType::Integer => "long",
                ColumnType::Float => "double",
                ColumnType::Boolean => "boolean",
                ColumnType::Categorical => "string",
            };
            json!({ "type": kind, "name": c.name, "required": !c.nullable })
        })
        .collect();
    let label = match schema.label.label_type {
        LabelType::Integer => "long",
        LabelType::String => "string",
        LabelType::Boolean => "boolean",
    };
    columns.push(json!({ "type": label, "name": schema.label.column, "required": true }));
    json!({ "mlflow_colspec": columns }).to_string()
}

/// Times a `runs/log-inputs` that lost a race for a new dataset is sent again.
const RACE_RETRIES: u32 = 3;

impl MlflowClient {
    /// Logs `inputs` on the run `run_id` (safe to repeat: the server keeps one input per
    /// dataset and run).
    ///
    /// The trial runs of a sweep are sent several at a time and all log the same datasets.
    /// MLflow looks a dataset up and creates it if absent in one transaction that does not
    /// lock, so two runs logging a new dataset at once both create it and the second
    /// commit fails on the unique key (HTTP 400, `IntegrityError`). Sent again, the
    /// request finds the dataset the first one created.
    pub async fn log_inputs(&self, run_id: &str, inputs: &[DatasetInput]) -> Result<()> {
        let datasets: Vec<serde_json::Value> = inputs.iter().map(DatasetInput::to_json).collect();
        let body = json!({ "run_id": run_id, "datasets": datasets });
        let payload = Payload::json(&body)?;
        let mut raced = 0;
        loop {
            let sent = self
                .call::<serde_json::Value>(Method::POST, "runs/log-inputs", &[], payload.clone())
                .await;
            match sent {
                Err(err) if lost_dataset_race(&err) && raced < RACE_RETRIES => {
                    raced += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(raced)))
                        .await;
                }
                done => return done.map(drop),
            }
        }
    }
}

/// Whether the server refused a `runs/log-inputs` because another request created the
/// same dataset at the same moment (SQLite, PostgreSQL and MySQL word it differently).
fn lost_dataset_race(err: &TrackingError) -> bool {
    match err.root() {
        TrackingError::Api {
            status: 400,
            message,
            ..
        } => {
            let message = message.to_ascii_lowercase();
            message.contains("integrityerror")
                && (message.contains("unique") || message.contains("duplicate"))
                && message.contains("datasets")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::from_yaml_str(
            std::path::Path::new("s.yaml"),
            "name: flows\nlabel: { column: label, type: string, negative: [normal] }\ncolumns:\n  - { name: bytes, type: float, nullable: true }\n  - { name: proto, type: categorical, values: [tcp, udp] }\n  - { name: port, type: integer, exclude: \"an id\" }\n",
        )
        .unwrap()
    }

    #[test]
    fn train_and_test_parts_differ_by_name_and_context_and_share_the_digest() {
        let schema = schema();
        let fingerprint = "ab".repeat(32);
        let parts = DatasetInput::sweep_parts(&SweepData {
            source: "synthetic:intrusion(rows=100,seed=7)",
            fingerprint: &fingerprint,
            schema: &schema,
            train_rows: 80,
            test_rows: 20,
        });
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].name.as_str(), parts[0].context.as_str()),
            ("flows-train", "train")
        );
        assert_eq!(
            (parts[1].name.as_str(), parts[1].context.as_str()),
            ("flows-test", "test")
        );
        assert_eq!(parts[0].digest, fingerprint[..32]);
        assert_eq!(parts[0].fingerprint, fingerprint);
        assert_eq!(parts[0].source_type, "code");
        assert_eq!(parts[1].profile, r#"{"num_rows":20}"#);
        let spec: serde_json::Value = serde_json::from_str(&parts[0].schema).unwrap();
        assert_eq!(
            spec["mlflow_colspec"],
            json!([
                { "type": "double", "name": "bytes", "required": false },
                { "type": "string", "name": "proto", "required": true },
                { "type": "string", "name": "label", "required": true },
            ])
        );
    }

    #[test]
    fn a_dataset_created_twice_at_once_is_a_race_to_repeat() {
        let api = |status, message: &str| TrackingError::Api {
            endpoint: "POST runs/log-inputs".into(),
            status,
            code: "BAD_REQUEST".into(),
            message: message.into(),
        };
        let race = "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, \
                    datasets.name, datasets.digest";
        assert!(lost_dataset_race(&api(400, race)));
        assert!(!lost_dataset_race(&api(500, race)));
        assert!(!lost_dataset_race(&api(
            400,
            "INVALID_PARAMETER_VALUE: digest too long"
        )));
    }

    #[test]
    fn source_types() {
        assert_eq!(source_of("/data/x.csv").0, "local");
        assert_eq!(source_of("s3://b/k.parquet").0, "s3");
        assert_eq!(source_of("mongodb://h/db.c").0, "mongodb");
        assert_eq!(source_of("x.csv").1, r#"{"uri":"x.csv"}"#);
    }
}
