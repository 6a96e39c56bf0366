//! CSV request bodies answered without building a table: the bytes are parsed straight
//! into the feature matrix, predicted in one batch (split over the rayon pool when large),
//! and the answer is written into one preallocated buffer — a line of input with no quoted
//! field is copied as is.
//!
//! This path only answers bodies it can answer exactly as `netsec predict` would. Anything
//! else — a cell that does not fit the schema, a missing column, quoted newlines, `\r`, a
//! byte-order mark, blank lines, an empty quoted cell, a non-finite feature — makes it step
//! aside ([`predict`] returns `None`) for the general path in [`super::input`], which reads
//! the body like `netsec predict` and names the line and column of every problem. The
//! answers of both paths are the same bytes (`tests/it/serve_http.rs` compares them).

use std::borrow::Cow;
use std::collections::BTreeSet;

use ndarray::ArrayView2;
use rayon::prelude::*;

use super::answer::push_field;
use super::input::CsvAnswer;
use super::source::LoadedModel;
use crate::data::dataset::EncodedColumn;
use crate::data::schema::{ColumnSpec, ColumnType, LabelType};
use crate::data::typed::{RecordCell, TypedCell, parse_bool, parse_int, type_cell};

/// Rows predicted per rayon task; below twice this a body is predicted on one thread.
const PARALLEL_ROWS: usize = 2048;

/// Answers `body`, or `None` when the general path must (see the module comment).
/// `keep_inputs` also returns the header, cells and answers, for the prediction log;
/// `with_probabilities` adds the `p_<class>` columns.
pub fn predict(
    model: &LoadedModel,
    body: &[u8],
    keep_inputs: bool,
    with_probabilities: bool,
) -> Option<CsvAnswer> {
    let text = std::str::from_utf8(body).ok()?;
    if text.starts_with('\u{feff}') || text.contains('\r') {
        return None;
    }
    let mut lines = text.split('\n');
    let header_line = lines.next()?;
    let mut fields = Vec::new();
    let header_quoted = split(header_line, &mut fields)?;
    let header: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    let mut seen = BTreeSet::new();
    // An input column named like an answer column is replaced in place by the general
    // path (as polars' `with_column` does); this path only appends.
    if header
        .iter()
        .any(|h| h.is_empty() || !seen.insert(h.as_str()) || model.answers.is_answer_column(h))
    {
        return None;
    }
    let plan = Plan::new(model, &header)?;

    let width = model.width;
    let mut features = Vec::with_capacity(width * (body.len() / (header_line.len() + 1) + 1));
    let mut rows: Vec<(&str, bool)> = Vec::new();
    let mut cells: Vec<Option<String>> = Vec::new();
    let mut unseen = vec![0usize; plan.columns.len()];
    let mut row = vec![0.0; width];
    let mut rest = lines.peekable();
    while let Some(line) = rest.next() {
        if line.is_empty() {
            // Only the newline ending the last line is fine; blank lines go the general way.
            if rest.peek().is_none() {
                break;
            }
            return None;
        }
        let quoted = split(line, &mut fields)?;
        if fields.len() != header.len() {
            return None;
        }
        row.fill(0.0);
        plan.encode(&fields, &mut row, &mut unseen)?;
        features.extend_from_slice(&row);
        if keep_inputs {
            cells.extend(
                fields
                    .iter()
                    .map(|f| (!f.trim().is_empty()).then(|| f.to_string())),
            );
        }
        rows.push((line, quoted));
    }
    if rows.is_empty() {
        return None;
    }
    for (column, count) in plan.columns.iter().zip(&unseen) {
        if *count > 0 {
            tracing::debug!(
                column = %column.spec.name,
                rows = count,
                "categories not seen in training predicted through <other>"
            );
        }
    }
    let k = model.answers.len();
    let probabilities = predict_rows(model, &features, rows.len())?;

    let answers = &model.answers;
    let mut csv = Vec::with_capacity(
        body.len() + rows.len() * (48 + if with_probabilities { 20 * k } else { 0 }) + 64,
    );
    if header_quoted {
        split(header_line, &mut fields)?;
        push_fields(&mut csv, &fields);
    } else {
        csv.extend_from_slice(header_line.as_bytes());
    }
    answers.write_csv_header(&mut csv, with_probabilities);
    csv.push(b'\n');
    let mut number = zmij::Buffer::new();
    let mut counts = vec![0; k];
    let mut kept = Vec::with_capacity(if keep_inputs { rows.len() } else { 0 });
    for ((line, quoted), proba) in rows.iter().zip(probabilities.chunks_exact(k.max(1))) {
        if *quoted {
            split(line, &mut fields)?;
            push_fields(&mut csv, &fields);
        } else {
            csv.extend_from_slice(line.as_bytes());
        }
        let answer = answers.answer(proba);
        counts[answer.class as usize] += 1;
        answers.write_csv_row(
            &mut csv,
            &answer,
            with_probabilities.then_some(proba),
            &mut number,
        );
        csv.push(b'\n');
        if keep_inputs {
            kept.push(answer);
        }
    }
    Some(CsvAnswer {
        csv,
        counts,
        rows: rows.len(),
        features,
        answers: kept,
        inputs: keep_inputs.then_some((header, cells)),
    })
}

/// The K class probabilities of every row (row-major); large bodies are split over the
/// rayon pool (each row's probabilities do not depend on how the rows are split).
fn predict_rows(model: &LoadedModel, features: &[f64], rows: usize) -> Option<Vec<f64>> {
    let width = model.width;
    let predict = |chunk: &[f64]| -> Option<Vec<f64>> {
        let view = ArrayView2::from_shape((chunk.len() / width.max(1), width), chunk).ok()?;
        let proba = model.file.model.predict_proba(view).ok()?;
        Some(proba.into_raw_vec_and_offset().0)
    };
    if rows < 2 * PARALLEL_ROWS || width == 0 {
        return predict(features);
    }
    let parts: Vec<Vec<f64>> = features
        .par_chunks(PARALLEL_ROWS * width)
        .map(predict)
        .collect::<Option<_>>()?;
    Some(parts.concat())
}

/// Splits one line into fields (unquoting `"…"` fields); returns whether any field was
/// quoted, or `None` for what the general path must read (a stray or unclosed quote, an
/// empty quoted field).
fn split<'a>(line: &'a str, fields: &mut Vec<Cow<'a, str>>) -> Option<bool> {
    fields.clear();
    let mut quoted = false;
    let mut rest = line;
    loop {
        if let Some(inner) = rest.strip_prefix('"') {
            quoted = true;
            let mut value = String::new();
            let mut tail = inner;
            loop {
                let end = tail.find('"')?;
                value.push_str(&tail[..end]);
                tail = &tail[end + 1..];
                match tail.strip_prefix('"') {
                    Some(after) => {
                        value.push('"');
                        tail = after;
                    }
                    None => break,
                }
            }
            if value.is_empty() {
                return None;
            }
            fields.push(Cow::Owned(value));
            match tail.strip_prefix(',') {
                Some(after) => rest = after,
                None if tail.is_empty() => return Some(quoted),
                None => return None,
            }
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let field = &rest[..end];
            if field.contains('"') {
                return None;
            }
            fields.push(Cow::Borrowed(field));
            if end == rest.len() {
                return Some(quoted);
            }
            rest = &rest[end + 1..];
        }
    }
}

/// Writes fields as polars' CSV writer does (quotes only where needed); an empty
/// (unquoted) field was read as a missing value and is written empty.
fn push_fields(out: &mut Vec<u8>, fields: &[Cow<'_, str>]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if !field.is_empty() {
            push_field(out, field);
        }
    }
}

/// How each schema column present in the body is read and encoded.
struct Plan<'m> {
    columns: Vec<PlannedColumn<'m>>,
    /// Header index of the label column, with the label's rules.
    label: Option<usize>,
    label_type: LabelType,
    label_values: Option<&'m BTreeSet<String>>,
}

struct PlannedColumn<'m> {
    spec: &'m ColumnSpec,
    /// Index of the column in the body's header.
    index: usize,
    /// Allowed canonical values (the schema's `values`).
    allowed: Option<&'m BTreeSet<String>>,
    /// Allowed values of an integer column, as integers (no text built per cell).
    allowed_ints: Option<Vec<i64>>,
    /// Where the column goes in the feature row; `None` for excluded columns, which are
    /// checked but not used.
    slot: Option<(usize, Option<&'m [String]>)>,
}

impl<'m> Plan<'m> {
    fn new(model: &'m LoadedModel, header: &[String]) -> Option<Plan<'m>> {
        let schema = &model.file.schema;
        let mut encoded = model.file.encoding.columns.iter();
        let mut offset = 0;
        let mut columns = Vec::new();
        for (spec, allowed) in schema.columns.iter().zip(&model.allowed) {
            let slot = if spec.exclude.is_none() {
                let (span, categories) = match encoded.next()? {
                    EncodedColumn::Numeric { .. } => (1, None),
                    EncodedColumn::OneHot { categories, .. } => {
                        (categories.len() + 1, Some(categories.as_slice()))
                    }
                };
                offset += span;
                Some((offset - span, categories))
            } else {
                None
            };
            // The table path checks float and boolean columns against `values` with rules
            // of its own; such schemas take the general path.
            if allowed.is_some()
                && matches!(spec.column_type, ColumnType::Float | ColumnType::Boolean)
            {
                return None;
            }
            let Some(index) = header.iter().position(|h| *h == spec.name) else {
                if spec.exclude.is_some() {
                    continue;
                }
                return None;
            };
            let allowed_ints = match (spec.column_type, allowed) {
                (ColumnType::Integer, Some(values)) => Some(
                    values
                        .iter()
                        .filter_map(|v| v.parse::<i64>().ok().filter(|i| i.to_string() == *v))
                        .collect(),
                ),
                _ => None,
            };
            columns.push(PlannedColumn {
                spec,
                index,
                allowed: allowed.as_ref(),
                allowed_ints,
                slot,
            });
        }
        let label = &schema.label;
        Some(Plan {
            columns,
            label: header.iter().position(|h| *h == label.column),
            label_type: label.label_type,
            label_values: label.values.as_ref(),
        })
    }

    /// Types and encodes one row into `out`; `None` when any cell has a problem.
    fn encode(&self, fields: &[Cow<'_, str>], out: &mut [f64], unseen: &mut [usize]) -> Option<()> {
        for (column, unseen) in self.columns.iter().zip(unseen.iter_mut()) {
            let text = fields[column.index].trim();
            let spec = column.spec;
            if text.is_empty() {
                match column.slot {
                    // An empty category goes to `<other>` as in the table encoding.
                    Some((offset, Some(categories))) if spec.nullable => {
                        out[offset + categories.len()] = 1.0;
                    }
                    None if spec.nullable => {}
                    // Missing values: the general path names them (or fails the model).
                    _ => return None,
                }
                continue;
            }
            match spec.column_type {
                ColumnType::Integer => {
                    let v = parse_int(text)?;
                    if column
                        .allowed_ints
                        .as_ref()
                        .is_some_and(|a| !a.contains(&v))
                    {
                        return None;
                    }
                    let x = v as f64;
                    if spec.min.is_some_and(|lo| x < lo) || spec.max.is_some_and(|hi| x > hi) {
                        return None;
                    }
                    if let Some((offset, _)) = column.slot {
                        out[offset] = x;
                    }
                }
                ColumnType::Categorical => {
                    if column.allowed.is_some_and(|a| !a.contains(text)) {
                        // Never seen in training: `<other>`, as in `netsec predict`.
                        *unseen += 1;
                    }
                    if let Some((offset, Some(categories))) = column.slot {
                        let slot = categories
                            .iter()
                            .position(|c| c == text)
                            .unwrap_or(categories.len());
                        out[offset + slot] = 1.0;
                    }
                }
                ColumnType::Float | ColumnType::Boolean => {
                    let Ok(Some(TypedCell::Number(x))) =
                        type_cell(spec, column.allowed, Some(RecordCell::Text(text)))
                    else {
                        return None;
                    };
                    if let Some((offset, _)) = column.slot {
                        out[offset] = x;
                    }
                }
            }
        }
        if let Some(index) = self.label {
            let text = fields[index].trim();
            let canonical: Cow<'_, str> = match self.label_type {
                _ if text.is_empty() => return None,
                LabelType::Integer => Cow::Owned(parse_int(text)?.to_string()),
                LabelType::Boolean => Cow::Owned(parse_bool(text)?.to_string()),
                LabelType::String => Cow::Borrowed(text),
            };
            if self
                .label_values
                .is_some_and(|v| !v.contains(canonical.as_ref()))
            {
                return None;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Option<(bool, Vec<String>)> {
        let mut out = Vec::new();
        let quoted = split(line, &mut out)?;
        Some((quoted, out.iter().map(|f| f.to_string()).collect()))
    }

    #[test]
    fn split_unquotes_and_steps_aside_for_what_it_cannot_read_exactly() {
        assert_eq!(
            fields("a,,b"),
            Some((false, vec!["a".into(), "".into(), "b".into()]))
        );
        assert_eq!(fields("a,"), Some((false, vec!["a".into(), "".into()])));
        assert_eq!(
            fields(r#""x, ""y""",2"#),
            Some((true, vec![r#"x, "y""#.into(), "2".into()]))
        );
        assert_eq!(fields(r#"a"b,1"#), None, "stray quote");
        assert_eq!(fields(r#""open,1"#), None, "unclosed quote");
        assert_eq!(fields(r#""",1"#), None, "empty quoted cell");
        assert_eq!(fields(r#""a" ,1"#), None, "text after a closing quote");
    }

    #[test]
    fn fields_are_written_back_as_polars_quotes_them() {
        let mut out = Vec::new();
        let cells = [
            Cow::Borrowed("plain"),
            Cow::Borrowed(""),
            Cow::Owned("a,b".to_owned()),
            Cow::Owned("say \"hi\"".to_owned()),
        ];
        push_fields(&mut out, &cells);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"plain,,"a,b","say ""hi""""#
        );
    }
}
