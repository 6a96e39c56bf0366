//! `netsec data validate`: every schema problem with its column and rows, plus exact
//! duplicates, label conflicts and the class balance.

use std::collections::BTreeMap;

use serde::Serialize;

use super::dataset::{Duplicates, duplicates, encode_typed};
use super::load::Table;
use super::schema::Schema;
use super::typed::{ColumnSpecView, LabelPresence, allowed_text, type_table};

/// How many example lines a report lists per problem group.
const EXAMPLES: usize = 5;

/// Problems of one kind in one column.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemGroup {
    /// Column name.
    pub column: String,
    /// Kind of problem, e.g. `wrong type`.
    pub kind: String,
    /// How many cells (or 1 for a column-level problem).
    pub count: usize,
    /// Description of the first occurrence.
    pub first: String,
    /// Lines (CSV) or rows of the first occurrences.
    pub lines: Vec<usize>,
}

/// Rows per label value.
#[derive(Debug, Clone, Serialize)]
pub struct ClassCount {
    /// Label value as written.
    pub value: String,
    /// Whether the value is of the attack class.
    pub attack: bool,
    /// Number of rows.
    pub rows: usize,
}

/// The result of validating a table against a schema.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    /// The data source.
    pub source: String,
    /// The schema's name.
    pub schema: String,
    /// Data rows.
    pub rows: usize,
    /// Columns in the file.
    pub columns: usize,
    /// Whether the data fits the schema.
    pub valid: bool,
    /// Problems grouped by column and kind.
    pub problems: Vec<ProblemGroup>,
    /// Exact duplicate rows and label conflicts.
    pub duplicates: Duplicates,
    /// Rows per label value.
    pub classes: Vec<ClassCount>,
    /// The data fingerprint (meaningful when valid).
    pub fingerprint: String,
}

/// Validates `table` against `schema`.
pub fn validate(table: &Table, schema: &Schema) -> ValidationReport {
    let typed = type_table(table, schema, LabelPresence::Required);
    let mut groups: BTreeMap<(usize, &'static str), ProblemGroup> = BTreeMap::new();
    let column_order = |name: &str| {
        schema
            .columns
            .iter()
            .position(|c| c.name == name)
            .unwrap_or(usize::MAX)
    };
    for issue in &typed.issues {
        let key = (column_order(&issue.column), issue.problem.kind());
        let group = groups.entry(key).or_insert_with(|| {
            let view = ColumnSpecView {
                name: &issue.column,
                allowed: allowed_text(schema, &issue.column),
            };
            ProblemGroup {
                column: issue.column.clone(),
                kind: issue.problem.kind().to_owned(),
                count: 0,
                first: issue.problem.describe(&view),
                lines: Vec::new(),
            }
        });
        group.count += 1;
        if let Some(row) = issue.row
            && group.lines.len() < EXAMPLES
        {
            group.lines.push(table.line_of(row));
        }
    }
    let problems: Vec<ProblemGroup> = groups.into_values().collect();
    let data = encode_typed(table, schema, typed);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for value in &data.label_values {
        *counts.entry(value.as_str()).or_default() += 1;
    }
    let classes = counts
        .into_iter()
        .filter(|(v, _)| !v.is_empty())
        .map(|(value, rows)| ClassCount {
            value: value.to_owned(),
            attack: schema.label.is_attack(value),
            rows,
        })
        .collect();
    ValidationReport {
        source: table.source.clone(),
        schema: schema.name.clone(),
        rows: table.len(),
        columns: table.frame.width(),
        valid: problems.is_empty(),
        problems,
        duplicates: duplicates(&data),
        classes,
        fingerprint: data.fingerprint,
    }
}
