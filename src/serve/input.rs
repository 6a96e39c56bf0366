//! Request bodies typed against the model's schema and encoded as training did: JSON
//! records one cell at a time ([`type_cell`], no table built, so one record costs
//! microseconds), CSV bodies straight into the feature matrix ([`super::csv_body`]) or,
//! when they have problems to report, through the same loader and typing as
//! `netsec predict`.

use std::path::Path;

use polars::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value};

use super::answer::RowAnswer;
use super::source::LoadedModel;
use crate::data::dataset::{EncodedColumn, invalid};
use crate::data::load::{LoadError, csv_from_bytes};
use crate::data::schema::{ColumnType, LabelSpec};
use crate::data::typed::{
    ColumnSpecView, Issue, LabelPresence, Problem, RecordCell, TypedCell, allowed_text, parse_int,
    type_cell, type_table,
};

/// Issues listed in an error answer; the count says how many there were in all.
const LISTED_ISSUES: usize = 20;

/// Why a request's input cannot be predicted; rendered as a JSON error answer (boxed:
/// errors are rare and the `Ok` path stays small).
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{}", .0.message)]
#[serde(transparent)]
pub struct InputError(pub Box<InputErrorDetail>);

impl InputError {
    /// The process exit code: bad input (a request's rows).
    pub fn exit_code(&self) -> u8 {
        crate::exit::BAD_INPUT
    }
}

/// The fields of an [`InputError`] answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputErrorDetail {
    /// `bad_json`, `bad_csv` or `invalid_input`.
    pub error: &'static str,
    /// The first problem, naming its row (or line) and column.
    pub message: String,
    /// Column of the first problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// 0-based record of the first problem (JSON), or data row (CSV).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<usize>,
    /// 1-based line of the first problem in a CSV body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// How many problems were found.
    pub problems: usize,
    /// The first problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<ListedIssue>,
}

/// One problem of an error answer: the typing issue (column, row, kind) with its CSV line
/// and its description, so that a client can show each where it is without knowing the
/// schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListedIssue {
    /// Column, 0-based row and kind of problem.
    #[serde(flatten)]
    pub issue: Issue,
    /// 1-based line of the problem in a CSV body: the cell's, or 1 (the header) for a
    /// column problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The problem in words, e.g. "column `URL_Length`: value `7` is not one of ...".
    pub message: String,
}

impl ListedIssue {
    fn new(model: &LoadedModel, issue: Issue, line: Option<usize>) -> ListedIssue {
        let view = ColumnSpecView {
            name: &issue.column,
            allowed: allowed_text(&model.file.schema, &issue.column),
        };
        let message = issue.problem.describe(&view);
        ListedIssue {
            issue,
            line,
            message,
        }
    }
}

impl InputError {
    fn simple(error: &'static str, message: String) -> InputError {
        InputError::new(InputErrorDetail {
            error,
            message,
            column: None,
            row: None,
            line: None,
            problems: 1,
            issues: Vec::new(),
        })
    }

    fn new(detail: InputErrorDetail) -> InputError {
        InputError(Box::new(detail))
    }

    /// The error code: `bad_json`, `bad_csv` or `invalid_input`.
    pub fn code(&self) -> &'static str {
        self.0.error
    }

    fn from_issues(model: &LoadedModel, issues: Vec<Issue>, count: usize) -> InputError {
        let first = &issues[0];
        let view = ColumnSpecView {
            name: &first.column,
            allowed: allowed_text(&model.file.schema, &first.column),
        };
        let place = first.row.map(|r| format!("row {r}: ")).unwrap_or_default();
        let more = if count > 1 {
            format!(" ({} more problems)", count - 1)
        } else {
            String::new()
        };
        let message = format!("{place}{}{more}", first.problem.describe(&view));
        let (column, row) = (Some(first.column.clone()), first.row);
        let issues = issues
            .into_iter()
            .take(LISTED_ISSUES)
            .map(|issue| ListedIssue::new(model, issue, None))
            .collect();
        InputError::new(InputErrorDetail {
            error: "invalid_input",
            message,
            column,
            row,
            line: None,
            problems: count,
            issues,
        })
    }
}

/// The predictions of a JSON body, with what the prediction log keeps of it.
#[derive(Debug)]
pub struct JsonPredictions {
    /// One per record, in order.
    pub answers: Vec<RowAnswer>,
    /// The K class probabilities of every record (row-major), when asked for; else empty.
    pub probabilities: Vec<f64>,
    /// The records as sent.
    pub records: Vec<Map<String, Value>>,
    /// The encoded features, row-major (the model's width per record).
    pub features: Vec<f64>,
}

/// Classes up to which one record's probabilities are kept on the stack.
const STACK_CLASSES: usize = 16;

/// Parses a JSON body — one record, an array of records, or `{"rows": [...]}` — and
/// predicts every record. Unknown fields are errors (a typo would otherwise be silent).
/// `with_probabilities` also keeps each record's K class probabilities.
pub fn predict_json(
    model: &LoadedModel,
    body: &[u8],
    with_probabilities: bool,
) -> Result<JsonPredictions, InputError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| InputError::simple("bad_json", format!("the body is not JSON: {e}")))?;
    let records: Vec<Map<String, Value>> = match value {
        Value::Object(mut map) => {
            if map.len() == 1 && matches!(map.get("rows"), Some(Value::Array(_))) {
                match map.remove("rows") {
                    Some(Value::Array(rows)) => objects(rows)?,
                    _ => Vec::new(),
                }
            } else {
                vec![map]
            }
        }
        Value::Array(rows) => objects(rows)?,
        _ => {
            return Err(InputError::simple(
                "bad_json",
                "the body is not a JSON object".into(),
            ));
        }
    };
    if records.is_empty() {
        return Err(InputError::simple("bad_json", "no rows to predict".into()));
    }
    let width = model.width;
    let mut features = vec![0.0; width * records.len()];
    let mut issues = Vec::new();
    let mut count = 0;
    for (row, (record, out)) in records
        .iter()
        .zip(features.chunks_exact_mut(width))
        .enumerate()
    {
        encode_record(model, record, row, out, &mut |issue| {
            count += 1;
            if issues.len() < LISTED_ISSUES {
                issues.push(issue);
            }
        });
    }
    if count > 0 {
        return Err(InputError::from_issues(model, issues, count));
    }
    let k = model.answers.len();
    let mut stack = [0.0; STACK_CLASSES];
    let mut heap = Vec::new();
    let proba: &mut [f64] = if k <= STACK_CLASSES {
        &mut stack[..k]
    } else {
        heap.resize(k, 0.0);
        &mut heap
    };
    let mut answers = Vec::with_capacity(records.len());
    let mut probabilities = Vec::with_capacity(if with_probabilities {
        k * records.len()
    } else {
        0
    });
    for (row, x) in features.chunks_exact(width).enumerate() {
        model
            .file
            .model
            .predict_proba_row(x, proba)
            .map_err(|e| InputError::simple("invalid_input", format!("row {row}: {e}")))?;
        answers.push(model.answers.answer(proba));
        if with_probabilities {
            probabilities.extend_from_slice(proba);
        }
    }
    Ok(JsonPredictions {
        answers,
        probabilities,
        records,
        features,
    })
}

/// The rows of an array body, each of which must be an object.
fn objects(rows: Vec<Value>) -> Result<Vec<Map<String, Value>>, InputError> {
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| match row {
            Value::Object(map) => Ok(map),
            _ => Err(InputError::simple(
                "bad_json",
                format!("row {i} is not a JSON object"),
            )),
        })
        .collect()
}

/// Types and encodes one record into `out` (the model's width), reporting each problem.
fn encode_record(
    model: &LoadedModel,
    record: &Map<String, Value>,
    row: usize,
    out: &mut [f64],
    report: &mut dyn FnMut(Issue),
) {
    let schema = &model.file.schema;
    let mut issue = |column: &str, problem: Problem| {
        report(Issue {
            column: column.to_owned(),
            row: Some(row),
            problem,
        })
    };
    let mut known = 0;
    if let Some(value) = record.get(&schema.label.column) {
        known += 1;
        if let Err(problem) = check_label(&schema.label, value) {
            issue(&schema.label.column, problem);
        }
    }
    let mut offset = 0;
    let mut encoding = model.file.encoding.columns.iter();
    for (spec, allowed) in schema.columns.iter().zip(&model.allowed) {
        let value = record.get(&spec.name);
        known += usize::from(value.is_some());
        // An excluded column is checked as a CSV body's is (when present), never encoded.
        let encoded = match spec.exclude {
            None => encoding.next(),
            Some(_) if value.is_none() => continue,
            Some(_) => None,
        };
        let typed = json_cell(value, &spec.column_type)
            .and_then(|c| {
                // An absent field is a missing column, as in a CSV body, even where `null`
                // (an empty cell) is allowed.
                if value.is_none() {
                    Err(Problem::MissingColumn)
                } else {
                    type_cell(spec, allowed.as_ref(), c)
                }
            })
            .or_else(|problem| match problem {
                // A category never seen in training goes to the `<other>` column, as in
                // `netsec predict` (see the README's fallback for unseen categories).
                Problem::NotAllowed { .. } if spec.column_type == ColumnType::Categorical => {
                    Ok(None)
                }
                other => Err(other),
            });
        match (encoded, typed) {
            (_, Err(problem)) => issue(&spec.name, problem),
            (None, Ok(_)) => {}
            (Some(EncodedColumn::Numeric { .. }), Ok(cell)) => {
                out[offset] = match cell {
                    Some(TypedCell::Number(v)) => v,
                    _ => f64::NAN,
                };
            }
            (Some(EncodedColumn::OneHot { categories, .. }), Ok(cell)) => {
                let slot = match cell {
                    Some(TypedCell::Category(text)) => categories.iter().position(|c| *c == text),
                    _ => None,
                };
                out[offset + slot.unwrap_or(categories.len())] = 1.0;
            }
        }
        offset += match encoded {
            None => 0,
            Some(EncodedColumn::Numeric { .. }) => 1,
            Some(EncodedColumn::OneHot { categories, .. }) => categories.len() + 1,
        };
    }
    if known < record.len() {
        for key in record.keys() {
            if *key != schema.label.column && schema.column(key).is_none() {
                issue(key, Problem::ExtraColumn);
            }
        }
    }
}

/// A JSON value as a record cell (`None`: null or absent); arrays and objects are the
/// wrong type for any column.
fn json_cell<'a>(
    value: Option<&'a Value>,
    column_type: &ColumnType,
) -> Result<Option<RecordCell<'a>>, Problem> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(Some(match n.as_i64() {
            Some(i) => RecordCell::Int(i),
            None => RecordCell::Float(n.as_f64().unwrap_or(f64::NAN)),
        })),
        Some(Value::Bool(b)) => Ok(Some(RecordCell::Bool(*b))),
        Some(Value::String(s)) => Ok(Some(RecordCell::Text(s))),
        Some(other) => Err(Problem::WrongType {
            expected: column_type.to_string(),
            value: other.to_string(),
        }),
    }
}

/// Checks a record's label value as a CSV body's label column is checked (the label is
/// optional in a request, but when given it must be a value of the label column).
fn check_label(label: &LabelSpec, value: &Value) -> Result<(), Problem> {
    let spec = label.as_column();
    let column_type = spec.column_type;
    let cell = json_cell(Some(value), &column_type)?;
    // The canonical text as the CSV path writes it (integers exactly, not through f64).
    let text = match (type_cell(&spec, None, cell)?, cell) {
        (None, _) => return Err(Problem::Missing),
        (Some(TypedCell::Category(text)), _) => text,
        (Some(TypedCell::Number(v)), _) if column_type == ColumnType::Boolean => {
            (v == 1.0).to_string()
        }
        (Some(_), Some(RecordCell::Int(i))) => i.to_string(),
        (Some(TypedCell::Number(v)), Some(RecordCell::Text(t))) => {
            parse_int(t).unwrap_or(v as i64).to_string()
        }
        (Some(TypedCell::Number(v)), _) => (v as i64).to_string(),
    };
    match &label.values {
        Some(values) if !values.contains(&text) => Err(Problem::NotAllowed { value: text }),
        _ => Ok(()),
    }
}

/// The answer to a CSV body: the CSV to send back and the predictions in it.
#[derive(Debug)]
pub struct CsvAnswer {
    /// The input columns plus the answer columns (see [`super::answer`]).
    pub csv: Vec<u8>,
    /// Rows predicted per class, in class-id order.
    pub counts: Vec<u64>,
    /// Rows in all.
    pub rows: usize,
    /// The encoded features, row-major (empty unless the inputs were asked for).
    pub features: Vec<f64>,
    /// The answer of every row (empty unless the inputs were asked for).
    pub answers: Vec<RowAnswer>,
    /// The header's names and the cells row by row, when asked for (prediction log).
    pub inputs: Option<(Vec<String>, Vec<Option<String>>)>,
}

/// Predicts a CSV body with the same typing and encoding as `netsec predict`: columns not
/// in the schema are kept and echoed, the label column may be present. Bodies without
/// problems take the fast path of [`super::csv_body`]; the others are read like a file,
/// so that errors name their line and column. `keep_inputs` also returns the cells and
/// answers; `with_probabilities` adds the `p_<class>` columns.
pub fn predict_csv(
    model: &LoadedModel,
    body: &[u8],
    keep_inputs: bool,
    with_probabilities: bool,
) -> Result<CsvAnswer, InputError> {
    if let Some(answer) = super::csv_body::predict(model, body, keep_inputs, with_probabilities) {
        return Ok(answer);
    }
    tracing::debug!(bytes = body.len(), "CSV body read through the general path");
    predict_csv_general(model, body, keep_inputs, with_probabilities)
}

/// The general path of [`predict_csv`]: the body read like a file by `netsec predict`'s
/// loader and typing. Public so that tests and fuzzing can check both paths answer alike.
pub fn predict_csv_general(
    model: &LoadedModel,
    body: &[u8],
    keep_inputs: bool,
    with_probabilities: bool,
) -> Result<CsvAnswer, InputError> {
    let table = csv_from_bytes(Path::new("request"), body.to_vec()).map_err(|e| {
        let mut error = InputError::simple("bad_csv", e.to_string());
        if let LoadError::Ragged { line, .. } = e {
            error.0.line = Some(line);
        }
        error
    })?;
    let schema = &model.file.schema;
    let mut typed = type_table(&table, schema, LabelPresence::Optional);
    // Categories never seen in training go to `<other>`, as in `netsec predict`.
    for unseen in typed.accept_unseen_categories() {
        tracing::debug!(
            column = %unseen.column,
            rows = unseen.rows,
            "categories not seen in training predicted through <other>"
        );
    }
    if !typed.issues.is_empty() {
        let first = &typed.issues[0];
        let message = invalid(&table, schema, &typed).to_string();
        let issues = typed
            .issues
            .iter()
            .take(LISTED_ISSUES)
            .map(|issue| {
                // A column problem (missing, not in the schema) is the header's: line 1.
                let line = issue.row.map_or(1, |r| table.line_of(r));
                ListedIssue::new(model, issue.clone(), Some(line))
            })
            .collect();
        return Err(InputError::new(InputErrorDetail {
            error: "invalid_input",
            message,
            column: Some(first.column.clone()),
            row: first.row,
            line: first.row.map(|r| table.line_of(r)),
            problems: typed.issues.len(),
            issues,
        }));
    }
    let features = model.file.encoding.encode(&typed);
    let proba = model
        .file
        .model
        .predict_proba(features.view())
        .map_err(|e| InputError::simple("invalid_input", e.to_string()))?;
    let proba = proba.as_standard_layout();
    let proba = proba.as_slice().unwrap_or_default();
    let answers = model.answers.answer_all(proba);
    let counts = model.answers.counts(&answers);
    let rows = answers.len();
    let inputs = keep_inputs.then(|| cells_of_frame(&table.frame));
    let features = if keep_inputs {
        features.iter().copied().collect()
    } else {
        Vec::new()
    };
    let mut frame = table.frame;
    let render = |e: PolarsError| InputError::simple("bad_csv", e.to_string());
    model
        .answers
        .add_columns(&mut frame, &answers, with_probabilities.then_some(proba))
        .map_err(render)?;
    let mut csv = Vec::new();
    CsvWriter::new(&mut csv)
        .finish(&mut frame)
        .map_err(render)?;
    Ok(CsvAnswer {
        csv,
        counts,
        rows,
        features,
        answers: if keep_inputs { answers } else { Vec::new() },
        inputs,
    })
}

/// The names and the cells (row by row, as text) of a frame read from CSV.
fn cells_of_frame(frame: &DataFrame) -> (Vec<String>, Vec<Option<String>>) {
    let header: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let columns: Vec<Vec<Option<String>>> = frame
        .columns()
        .iter()
        .map(|c| match c.as_materialized_series().str() {
            Ok(ca) => ca
                .iter()
                .map(|v| v.filter(|t| !t.trim().is_empty()).map(str::to_owned))
                .collect(),
            Err(_) => vec![None; frame.height()],
        })
        .collect();
    let mut cells = Vec::with_capacity(header.len() * frame.height());
    for row in 0..frame.height() {
        cells.extend(columns.iter().map(|c| c.get(row).cloned().flatten()));
    }
    (header, cells)
}
