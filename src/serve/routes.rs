//! Request handlers. Every error answer is JSON: `{"error": code, "message": ..., ...}`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::answer::JsonRow;
use super::app::AppState;
use super::input::{self, InputError};
use super::prediction_log::{LogEntry, LoggedInputs};
use crate::data::typical::TypicalValue;

/// The page: HTML, with its script and style served apart so that the page runs under a
/// `default-src 'self'` policy (no inline script or style, nothing from elsewhere).
const PAGE: &str = include_str!("page.html");
/// The page's script.
const PAGE_JS: &str = include_str!("page.js");
/// The page's style.
const PAGE_CSS: &str = include_str!("page.css");

/// The `Content-Security-Policy` of the page and its assets: only this origin.
pub const PAGE_CSP: &str = "default-src 'self'";

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

/// `GET /`: the page (model card, a form for one record, CSV upload).
pub async fn page() -> Response {
    ([(header::CONTENT_SECURITY_POLICY, PAGE_CSP)], Html(PAGE)).into_response()
}

/// `GET /page.js`
pub async fn page_js() -> Response {
    page_asset("text/javascript; charset=utf-8", PAGE_JS)
}

/// `GET /page.css`
pub async fn page_css() -> Response {
    page_asset("text/css; charset=utf-8", PAGE_CSS)
}

fn page_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
        ],
        body,
    )
        .into_response()
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

/// `GET /model`: what is being served — the model card of the page, polled to follow hot
/// reloads. Each column carries a `typical` value to pre-fill a form with: the training
/// rows' most frequent value or median, or for a model file that predates them a guess
/// from the schema (`statistic` says which).
pub async fn model(State(state): State<Arc<AppState>>) -> Json<Value> {
    let m = state.model.load();
    let file = &m.file;
    let columns: Vec<Value> = file
        .schema
        .features()
        .map(|c| {
            let typical = file
                .typical_values
                .iter()
                .flatten()
                .find(|t| t.column == c.name)
                .cloned()
                .unwrap_or_else(|| TypicalValue::guess(c));
            json!({
                "name": c.name, "type": c.column_type, "values": c.values, "min": c.min,
                "max": c.max, "nullable": c.nullable,
                "typical": { "value": typical.value, "statistic": typical.statistic },
            })
        })
        .collect();
    let answers = &m.answers;
    let labels: Vec<&str> = (0..answers.len() as u32)
        .map(|c| answers.label(c))
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
        "threshold": file.threshold(),
        "operating_point": file.operating_point.as_ref().map(|o| &o.point),
        "classes": { "names": m.classes.names, "normal": m.classes.normal, "labels": labels },
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
struct Answer<'a> {
    model: ModelRef<'a>,
    predictions: Vec<JsonRow<'a>>,
}

/// The options of the prediction routes, from the query string: `probabilities=true` adds
/// each class's probability (`p_<class>`). Unknown parameters are errors, as unknown JSON
/// fields are: a typo would otherwise be silent.
fn with_probabilities(query: Option<&str>) -> Result<bool, ApiError> {
    let mut probabilities = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        match (key, value) {
            ("probabilities", "true" | "1") => probabilities = true,
            ("probabilities", "false" | "0") => probabilities = false,
            ("probabilities", _) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    &format!("probabilities={value}: expected true or false"),
                ));
            }
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    &format!("unknown query parameter `{key}` (known: probabilities)"),
                ));
            }
        }
    }
    Ok(probabilities)
}

/// `POST /predict`: one JSON record, an array of records or `{"rows": [...]}`.
pub async fn predict(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let probabilities = with_probabilities(query.as_deref())?;
    let body = body.map_err(ApiError::body)?;
    let model = state.model.load_full();
    // Small bodies cost microseconds: answer them here. Large ones go to the blocking pool.
    let predicted = if body.len() <= state.inline_body_bytes {
        input::predict_json(&model, &body, probabilities)
    } else {
        let task_model = Arc::clone(&model);
        tokio::task::spawn_blocking(move || input::predict_json(&task_model, &body, probabilities))
            .await
            .map_err(|_| ApiError::internal("the prediction task failed"))?
    }
    .map_err(ApiError::input)?;
    let answers = &model.answers;
    state.metrics.observe_classes(
        &answers.classes().names,
        predicted.answers.iter().map(|a| a.class),
    );
    let k = answers.len().max(1);
    let mut proba = predicted.probabilities.chunks_exact(k);
    let answer = Answer {
        model: ModelRef {
            name: &model.name,
            version: model.version_text(),
            sha256: &model.sha256,
        },
        predictions: predicted
            .answers
            .iter()
            .map(|a| answers.json(a, proba.next()))
            .collect(),
    };
    let response = Json(answer).into_response();
    if let Some(log) = &state.prediction_log {
        log.record(LogEntry {
            time: SystemTime::now(),
            route: "/predict",
            model,
            inputs: LoggedInputs::Json(predicted.records),
            features: predicted.features,
            answers: predicted.answers,
        });
    }
    Ok(response)
}

/// `POST /predict/csv`: CSV in, the same CSV with the answer columns out.
pub async fn predict_csv(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let probabilities = with_probabilities(query.as_deref())?;
    let body = body.map_err(ApiError::body)?;
    let model = state.model.load_full();
    let keep_inputs = state.prediction_log.is_some();
    let task_model = Arc::clone(&model);
    let answer = tokio::task::spawn_blocking(move || {
        input::predict_csv(&task_model, &body, keep_inputs, probabilities)
    })
    .await
    .map_err(|_| ApiError::internal("the prediction task failed"))?
    .map_err(ApiError::input)?;
    state
        .metrics
        .observe_counts(&model.answers.classes().names, &answer.counts);
    if let (Some(log), Some((header, cells))) = (&state.prediction_log, answer.inputs) {
        log.record(LogEntry {
            time: SystemTime::now(),
            route: "/predict/csv",
            model,
            inputs: LoggedInputs::Csv { header, cells },
            features: answer.features,
            answers: answer.answers,
        });
    }
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        answer.csv,
    )
        .into_response())
}
