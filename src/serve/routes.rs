//! Request handlers. Every error answer is JSON: `{"error": code, "message": ..., ...}`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::app::AppState;
use super::input::{self, InputError, Prediction};
use super::prediction_log::{LogEntry, LoggedInputs};
use super::source::LoadedModel;
use crate::data::schema::LabelType;

/// The upload page: plain HTML and a few lines of JavaScript.
const PAGE: &str = include_str!("page.html");

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    /// An error with a code (`unauthorized`, `too_large`, ...) and a message.
    pub fn new(status: StatusCode, code: &str, message: &str) -> ApiError {
        ApiError {
            status,
            body: json!({ "error": code, "message": message }),
        }
    }

    fn input(error: InputError) -> ApiError {
        let status = match error.code() {
            "invalid_input" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            body: serde_json::to_value(&error).unwrap_or_else(|_| json!({"error": error.code()})),
        }
    }

    fn body(rejection: BytesRejection) -> ApiError {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_body"
        };
        ApiError::new(status, code, &rejection.body_text())
    }

    fn internal(message: &str) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// `GET /`
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: a model is loaded and the server is not shutting down.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(Ordering::SeqCst) {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "draining", "shutting down")
            .into_response();
    }
    let model = state.model.load();
    Json(json!({ "status": "ready", "model": model.name, "version": model.version_text(), "sha256": model.sha256 }))
        .into_response()
}

/// `GET /model`: what is being served.
pub async fn model(State(state): State<Arc<AppState>>) -> Json<Value> {
    let m = state.model.load();
    let file = &m.file;
    let columns: Vec<Value> = file
        .schema
        .features()
        .map(|c| json!({ "name": c.name, "type": c.column_type, "values": c.values, "min": c.min, "max": c.max, "nullable": c.nullable }))
        .collect();
    Json(json!({
        "name": m.name,
        "version": m.version_text(),
        "sha256": m.sha256,
        "path": m.path,
        "loaded_at": m.loaded_at,
        "algorithm": file.algorithm,
        "params": file.params,
        "experiment": file.experiment,
        "trial_key": file.trial_key,
        "data_fingerprint": file.data_fingerprint,
        "netsec_version": file.netsec_version,
        "metrics": file.metrics,
        "schema": {
            "name": file.schema.name,
            "hash": file.schema.hash,
            "label": file.schema.label.column,
            "classes": file.schema.label.names,
            "columns": columns,
        },
    }))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.render(&state.model.load());
    if let Some(log) = &state.prediction_log {
        log.render(&mut text);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see GET /",
    )
}

#[derive(Serialize)]
struct ModelRef<'a> {
    name: &'a str,
    version: String,
    sha256: &'a str,
}

#[derive(Serialize)]
struct Row<'a> {
    label: Value,
    class: &'a str,
    attack_probability: f64,
}

#[derive(Serialize)]
struct Answer<'a> {
    model: ModelRef<'a>,
    predictions: Vec<Row<'a>>,
}

/// The label value of a class as JSON: a number when the label column is numeric.
fn label_json(model: &LoadedModel, attack: bool) -> Value {
    let label = &model.file.schema.label;
    let text = label.value_for(attack);
    match label.label_type {
        LabelType::Integer => text.parse::<i64>().map_or(Value::String(text), Value::from),
        LabelType::Boolean => text
            .parse::<bool>()
            .map_or(Value::String(text), Value::Bool),
        LabelType::String => Value::String(text),
    }
}

/// `POST /predict`: one JSON record, an array of records or `{"rows": [...]}`.
pub async fn predict(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(ApiError::body)?;
    let model = state.model.load_full();
    // Small bodies cost microseconds: answer them here. Large ones go to the blocking pool.
    let predicted = if body.len() <= state.inline_body_bytes {
        input::predict_json(&model, &body)
    } else {
        let task_model = Arc::clone(&model);
        tokio::task::spawn_blocking(move || input::predict_json(&task_model, &body))
            .await
            .map_err(|_| ApiError::internal("the prediction task failed"))?
    }
    .map_err(ApiError::input)?;
    let predictions = &predicted.predictions;
    count(&state, predictions);
    let schema_label = &model.file.schema.label;
    let labels = [label_json(&model, false), label_json(&model, true)];
    let answer = Answer {
        model: ModelRef {
            name: &model.name,
            version: model.version_text(),
            sha256: &model.sha256,
        },
        predictions: predictions
            .iter()
            .map(|p| Row {
                label: labels[usize::from(p.attack)].clone(),
                class: schema_label.class_name(p.attack),
                attack_probability: p.probability,
            })
            .collect(),
    };
    let response = Json(answer).into_response();
    if let Some(log) = &state.prediction_log {
        let probabilities = predicted
            .predictions
            .iter()
            .map(|p| p.probability)
            .collect();
        log.record(LogEntry {
            time: SystemTime::now(),
            route: "/predict",
            model,
            inputs: LoggedInputs::Json(predicted.records),
            features: predicted.features,
            probabilities,
        });
    }
    Ok(response)
}

fn count(state: &AppState, predictions: &[Prediction]) {
    let attacks = predictions.iter().filter(|p| p.attack).count();
    state
        .metrics
        .observe_predictions(attacks, predictions.len() - attacks);
}

/// `POST /predict/csv`: CSV in, the same CSV with prediction columns out.
pub async fn predict_csv(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(ApiError::body)?;
    let model = state.model.load_full();
    let keep_inputs = state.prediction_log.is_some();
    let task_model = Arc::clone(&model);
    let answer =
        tokio::task::spawn_blocking(move || input::predict_csv(&task_model, &body, keep_inputs))
            .await
            .map_err(|_| ApiError::internal("the prediction task failed"))?
            .map_err(ApiError::input)?;
    state
        .metrics
        .observe_predictions(answer.attacks, answer.rows - answer.attacks);
    if let (Some(log), Some((header, cells))) = (&state.prediction_log, answer.inputs) {
        log.record(LogEntry {
            time: SystemTime::now(),
            route: "/predict/csv",
            model,
            inputs: LoggedInputs::Csv { header, cells },
            features: answer.features,
            probabilities: answer.probabilities,
        });
    }
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        answer.csv,
    )
        .into_response())
}
