//! Typing a loaded table against a schema: every cell parsed to its column's type, and
//! every problem (missing column, bad cell, value outside the schema) recorded with its row.

use std::collections::BTreeSet;

use polars::prelude::*;
use serde::Serialize;

use super::load::Table;
use super::schema::{ColumnSpec, ColumnType, Schema};

/// The parsed cells of one column (`None` = empty cell).
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValues {
    /// Integer cells.
    Int(Vec<Option<i64>>),
    /// Real cells.
    Float(Vec<Option<f64>>),
    /// Boolean cells.
    Bool(Vec<Option<bool>>),
    /// Category or label names.
    Text(Vec<Option<String>>),
}

impl TypedValues {
    /// The cell as a number for statistics: integers and booleans widen to f64;
    /// text has no numeric value.
    pub fn numeric(&self, row: usize) -> Option<f64> {
        match self {
            TypedValues::Int(v) => v[row].map(|x| x as f64),
            TypedValues::Float(v) => v[row],
            TypedValues::Bool(v) => v[row].map(|b| if b { 1.0 } else { 0.0 }),
            TypedValues::Text(_) => None,
        }
    }

    /// The cell's canonical text (`None` for an empty cell).
    pub fn text(&self, row: usize) -> Option<String> {
        match self {
            TypedValues::Int(v) => v[row].map(|x| x.to_string()),
            TypedValues::Float(v) => v[row].map(|x| x.to_string()),
            TypedValues::Bool(v) => v[row].map(|x| x.to_string()),
            TypedValues::Text(v) => v[row].clone(),
        }
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        match self {
            TypedValues::Int(v) => v.len(),
            TypedValues::Float(v) => v.len(),
            TypedValues::Bool(v) => v.len(),
            TypedValues::Text(v) => v.len(),
        }
    }

    /// Whether the column has no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What is wrong with a column or a cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// The schema lists the column but the file lacks it.
    MissingColumn,
    /// The file has a column the schema does not list.
    ExtraColumn,
    /// The cell cannot be read as the column's type.
    WrongType {
        /// The schema type.
        expected: String,
        /// The offending cell.
        value: String,
    },
    /// The value is not among the schema's allowed values.
    NotAllowed {
        /// The offending value.
        value: String,
    },
    /// The value is outside the schema's min/max.
    OutOfRange {
        /// The offending value.
        value: f64,
    },
    /// The cell is empty and the column is not nullable.
    Missing,
}

impl Problem {
    /// A short name for grouping in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::MissingColumn => "missing column",
            Problem::ExtraColumn => "extra column",
            Problem::WrongType { .. } => "wrong type",
            Problem::NotAllowed { .. } => "value not in schema",
            Problem::OutOfRange { .. } => "value out of range",
            Problem::Missing => "missing value",
        }
    }

    /// A one-line description.
    pub fn describe(&self, column: &ColumnSpecView<'_>) -> String {
        match self {
            Problem::MissingColumn => format!("column `{}` is missing", column.name),
            Problem::ExtraColumn => {
                format!(
                    "column `{}` is not in the schema (list it, or mark it `exclude`)",
                    column.name
                )
            }
            Problem::WrongType { expected, value } => {
                format!(
                    "column `{}`: `{value}` is not {}",
                    column.name,
                    article(expected)
                )
            }
            Problem::NotAllowed { value } => format!(
                "column `{}`: value `{value}` is not one of the schema's values {}",
                column.name, column.allowed
            ),
            Problem::OutOfRange { value } => format!(
                "column `{}`: value {value} is outside the schema's range {}",
                column.name, column.allowed
            ),
            Problem::Missing => format!("column `{}`: empty cell", column.name),
        }
    }
}

fn article(type_name: &str) -> String {
    match type_name {
        "integer" => "an integer".into(),
        other => format!("a {other}"),
    }
}

/// What a message needs to know about a column.
pub struct ColumnSpecView<'a> {
    /// Column name.
    pub name: &'a str,
    /// Allowed values or range, rendered.
    pub allowed: String,
}

/// One problem at one place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    /// Column name.
    pub column: String,
    /// 0-based data row, when the problem is in a cell.
    pub row: Option<usize>,
    /// What is wrong.
    pub problem: Problem,
}

/// A table typed against a schema: feature columns in schema order, the label column,
/// and the problems found.
#[derive(Debug, Clone)]
pub struct TypedTable {
    /// Number of rows.
    pub rows: usize,
    /// Cells of every schema column present in the file, in schema order (excluded ones too).
    pub columns: Vec<(ColumnSpec, TypedValues)>,
    /// Label cells as canonical text; `None` when the file has no label column.
    pub labels: Option<Vec<Option<String>>>,
    /// Every problem found, in column order.
    pub issues: Vec<Issue>,
}

/// Cells of one categorical column whose value the schema does not list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnseenCategories {
    /// Column name.
    pub column: String,
    /// Number of such cells.
    pub rows: usize,
    /// The distinct unseen values, in order of first appearance (at most 5).
    pub examples: Vec<String>,
}

impl TypedTable {
    /// Accepts values of categorical feature columns that the schema does not list: they
    /// are dropped from `issues` (the encoding puts them in the `<other>` bucket) and
    /// returned per column, so that prediction and drift can go on and say so. Training and
    /// `validate` keep them as problems.
    pub fn accept_unseen_categories(&mut self) -> Vec<UnseenCategories> {
        let categorical: BTreeSet<&str> = self
            .columns
            .iter()
            .filter(|(spec, _)| spec.column_type == ColumnType::Categorical)
            .map(|(spec, _)| spec.name.as_str())
            .collect();
        let mut unseen: Vec<UnseenCategories> = Vec::new();
        self.issues.retain(|issue| {
            let Problem::NotAllowed { value } = &issue.problem else {
                return true;
            };
            if !categorical.contains(issue.column.as_str()) {
                return true;
            }
            let entry = match unseen.iter().position(|u| u.column == issue.column) {
                Some(i) => &mut unseen[i],
                None => {
                    unseen.push(UnseenCategories {
                        column: issue.column.clone(),
                        rows: 0,
                        examples: Vec::new(),
                    });
                    let last = unseen.len() - 1;
                    &mut unseen[last]
                }
            };
            entry.rows += 1;
            if entry.examples.len() < 5 && !entry.examples.contains(value) {
                entry.examples.push(value.clone());
            }
            false
        });
        unseen
    }
}

/// Whether the label column must be present (training, validation) or may be absent
/// (prediction input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelPresence {
    /// The file must have the label column.
    Required,
    /// The label column may be missing; extra columns are ignored.
    Optional,
}

/// Types every column of `table` against `schema`, recording problems instead of stopping
/// at the first, so a report can list them all.
pub fn type_table(table: &Table, schema: &Schema, presence: LabelPresence) -> TypedTable {
    let frame = &table.frame;
    let rows = frame.height();
    let mut issues = Vec::new();
    let names: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();

    let mut columns = Vec::new();
    for spec in &schema.columns {
        match frame.column(&spec.name) {
            Ok(column) => {
                let series = column.as_materialized_series();
                let values = parse_column(series, spec, &mut issues);
                check_values(spec, &values, &mut issues);
                columns.push((spec.clone(), values));
            }
            // Prediction input need not carry columns the model does not use.
            Err(_) if presence == LabelPresence::Optional && spec.exclude.is_some() => {}
            Err(_) => issues.push(Issue {
                column: spec.name.clone(),
                row: None,
                problem: Problem::MissingColumn,
            }),
        }
    }

    let label = &schema.label;
    let labels = match frame.column(&label.column) {
        Ok(column) => {
            let series = column.as_materialized_series();
            let values = parse_column(series, &label.as_column(), &mut issues);
            let texts: Vec<Option<String>> = (0..rows).map(|r| values.text(r)).collect();
            let unparsable: BTreeSet<usize> = issues
                .iter()
                .filter(|i| i.column == label.column)
                .filter_map(|i| i.row)
                .collect();
            for (row, text) in texts.iter().enumerate() {
                let problem = match text {
                    None if unparsable.contains(&row) => None,
                    None => Some(Problem::Missing),
                    Some(t) if label.values.as_ref().is_some_and(|v| !v.contains(t)) => {
                        Some(Problem::NotAllowed { value: t.clone() })
                    }
                    Some(_) => None,
                };
                if let Some(problem) = problem {
                    issues.push(Issue {
                        column: label.column.clone(),
                        row: Some(row),
                        problem,
                    });
                }
            }
            Some(texts)
        }
        Err(_) => {
            if presence == LabelPresence::Required {
                issues.push(Issue {
                    column: label.column.clone(),
                    row: None,
                    problem: Problem::MissingColumn,
                });
            }
            None
        }
    };

    if presence == LabelPresence::Required {
        for name in &names {
            if *name != label.column && schema.column(name).is_none() {
                issues.push(Issue {
                    column: name.clone(),
                    row: None,
                    problem: Problem::ExtraColumn,
                });
            }
        }
    }

    TypedTable {
        rows,
        columns,
        labels,
        issues,
    }
}

/// Renders the allowed values or range of a column for messages.
pub fn allowed_text(schema: &Schema, column: &str) -> String {
    if column == schema.label.column {
        return match &schema.label.values {
            Some(values) => format!(
                "[{}]",
                values.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            None => String::new(),
        };
    }
    let Some(spec) = schema.column(column) else {
        return String::new();
    };
    if let Some(values) = &spec.values {
        let texts: Vec<String> = values.iter().map(|v| v.canonical()).collect();
        return format!("[{}]", texts.join(", "));
    }
    match (spec.min, spec.max) {
        (Some(lo), Some(hi)) => format!("[{lo}, {hi}]"),
        (Some(lo), None) => format!(">= {lo}"),
        (None, Some(hi)) => format!("<= {hi}"),
        (None, None) => String::new(),
    }
}

fn parse_column(series: &Series, spec: &ColumnSpec, issues: &mut Vec<Issue>) -> TypedValues {
    let (column_type, name) = (spec.column_type, spec.name.as_str());
    let mut bad = |row: usize, value: String| {
        issues.push(Issue {
            column: name.to_owned(),
            row: Some(row),
            problem: Problem::WrongType {
                expected: column_type.to_string(),
                value,
            },
        })
    };
    let mut cells = cells_of(series);
    if !spec.missing.is_empty() {
        // The schema's missing texts (`NaN`, `Infinity`, ...) are empty cells.
        for cell in &mut cells {
            let missing = match cell {
                Some(Cell::Text(t)) => spec.means_missing(t),
                Some(Cell::Float(v)) if !v.is_finite() => spec.means_missing(&v.to_string()),
                _ => false,
            };
            if missing {
                *cell = None;
            }
        }
    }
    match column_type {
        ColumnType::Integer => TypedValues::Int(
            cells
                .into_iter()
                .enumerate()
                .map(|(row, cell)| match cell? {
                    Cell::Int(v) => Some(v),
                    Cell::Float(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Some(v as i64),
                    Cell::Text(t) => parse_int(&t).or_else(|| {
                        bad(row, t);
                        None
                    }),
                    other => {
                        bad(row, other.to_string());
                        None
                    }
                })
                .collect(),
        ),
        ColumnType::Float => TypedValues::Float(
            cells
                .into_iter()
                .enumerate()
                .map(|(row, cell)| match cell? {
                    Cell::Int(v) => Some(v as f64),
                    Cell::Float(v) => Some(v),
                    Cell::Text(t) => match t.trim().parse::<f64>() {
                        Ok(v) if v.is_finite() => Some(v),
                        _ => {
                            bad(row, t);
                            None
                        }
                    },
                    other => {
                        bad(row, other.to_string());
                        None
                    }
                })
                .collect(),
        ),
        ColumnType::Boolean => TypedValues::Bool(
            cells
                .into_iter()
                .enumerate()
                .map(|(row, cell)| match cell? {
                    Cell::Bool(b) => Some(b),
                    Cell::Int(0) => Some(false),
                    Cell::Int(1) => Some(true),
                    Cell::Text(t) => parse_bool(&t).or_else(|| {
                        bad(row, t);
                        None
                    }),
                    other => {
                        bad(row, other.to_string());
                        None
                    }
                })
                .collect(),
        ),
        ColumnType::Categorical => TypedValues::Text(
            cells
                .into_iter()
                .map(|cell| cell.map(|c| c.to_string()))
                .collect(),
        ),
    }
}

/// An integer cell: `3`, or a float with no fraction such as `3.0` (exports often write
/// integers that way); `None` otherwise.
pub(crate) fn parse_int(text: &str) -> Option<i64> {
    let t = text.trim();
    t.parse::<i64>().ok().or_else(|| {
        let v = t.parse::<f64>().ok()?;
        (v.fract() == 0.0 && v.abs() < 9.0e15).then_some(v as i64)
    })
}

/// A boolean cell: true/false, 1/0, yes/no, t/f, y/n in any case; `None` otherwise.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// A cell as the file gave it, before typing against the schema.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Int(v) => write!(f, "{v}"),
            Cell::Float(v) => write!(f, "{v}"),
            Cell::Bool(v) => write!(f, "{v}"),
            Cell::Text(v) => f.write_str(v),
        }
    }
}

/// Reads a column of any supported polars type as cells; empty strings count as empty.
pub(crate) fn cells_of(series: &Series) -> Vec<Option<Cell>> {
    let dtype = series.dtype();
    if dtype.is_integer() {
        if let Ok(cast) = series.cast(&DataType::Int64)
            && let Ok(ca) = cast.i64()
        {
            return ca.iter().map(|v| v.map(Cell::Int)).collect();
        }
    } else if dtype.is_float() {
        if let Ok(cast) = series.cast(&DataType::Float64)
            && let Ok(ca) = cast.f64()
        {
            return ca.iter().map(|v| v.map(Cell::Float)).collect();
        }
    } else if dtype.is_bool()
        && let Ok(ca) = series.bool()
    {
        return ca.iter().map(|v| v.map(Cell::Bool)).collect();
    }
    match series.cast(&DataType::String) {
        Ok(cast) => match cast.str() {
            Ok(ca) => ca
                .iter()
                .map(|v| {
                    v.map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(|t| Cell::Text(t.to_owned()))
                })
                .collect(),
            Err(_) => vec![None; series.len()],
        },
        Err(_) => vec![None; series.len()],
    }
}

fn check_values(spec: &ColumnSpec, values: &TypedValues, issues: &mut Vec<Issue>) {
    let allowed: Option<BTreeSet<String>> = spec
        .values
        .as_ref()
        .map(|v| v.iter().map(|x| x.canonical()).collect());
    // Cells that failed to parse are `None` too; they are reported as wrong type only.
    let unparsable: BTreeSet<usize> = issues
        .iter()
        .filter(|i| i.column == spec.name)
        .filter_map(|i| i.row)
        .collect();
    let mut push = |row: usize, problem: Problem| {
        issues.push(Issue {
            column: spec.name.clone(),
            row: Some(row),
            problem,
        })
    };
    for row in 0..values.len() {
        let Some(text) = values.text(row) else {
            if !spec.nullable && !unparsable.contains(&row) {
                push(row, Problem::Missing);
            }
            continue;
        };
        if let Some(allowed) = &allowed
            && !allowed.contains(&text)
        {
            push(row, Problem::NotAllowed { value: text });
            continue;
        }
        if let Some(v) = values.numeric(row)
            && (spec.min.is_some_and(|lo| v < lo) || spec.max.is_some_and(|hi| v > hi))
        {
            push(row, Problem::OutOfRange { value: v });
        }
    }
}

/// One cell of a single record (e.g. a field of a JSON request), before typing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RecordCell<'a> {
    /// A whole number.
    Int(i64),
    /// A real number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Text (trimmed; empty text is an empty cell).
    Text(&'a str),
}

impl std::fmt::Display for RecordCell<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordCell::Int(v) => write!(f, "{v}"),
            RecordCell::Float(v) => write!(f, "{v}"),
            RecordCell::Bool(v) => write!(f, "{v}"),
            RecordCell::Text(v) => f.write_str(v),
        }
    }
}

/// A cell of a single record typed against its column.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedCell {
    /// Integer, float or boolean (as 0/1) value.
    Number(f64),
    /// Canonical text of a categorical value.
    Category(String),
}

/// Types one cell against its column and checks it against the schema's values and range:
/// the single-record form of [`type_table`], with the same rules and [`Problem`]s, for
/// serving requests without building a table. `allowed` is the column's canonical allowed
/// values (`spec.values`), computed once by the caller. `Ok(None)` is an empty cell of a
/// nullable column.
pub fn type_cell(
    spec: &ColumnSpec,
    allowed: Option<&BTreeSet<String>>,
    cell: Option<RecordCell<'_>>,
) -> Result<Option<TypedCell>, Problem> {
    let cell = match cell {
        Some(RecordCell::Text(t)) if t.trim().is_empty() || spec.means_missing(t) => None,
        Some(RecordCell::Text(t)) => Some(RecordCell::Text(t.trim())),
        other => other,
    };
    let Some(cell) = cell else {
        return if spec.nullable {
            Ok(None)
        } else {
            Err(Problem::Missing)
        };
    };
    let wrong = || Problem::WrongType {
        expected: spec.column_type.to_string(),
        value: cell.to_string(),
    };
    let typed = match spec.column_type {
        ColumnType::Integer => {
            let v = match cell {
                RecordCell::Int(v) => v,
                RecordCell::Float(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => v as i64,
                RecordCell::Text(t) => parse_int(t).ok_or_else(wrong)?,
                _ => return Err(wrong()),
            };
            if let Some(allowed) = allowed
                && !allowed.contains(&v.to_string())
            {
                return Err(Problem::NotAllowed {
                    value: v.to_string(),
                });
            }
            TypedCell::Number(v as f64)
        }
        ColumnType::Float => TypedCell::Number(match cell {
            RecordCell::Int(v) => v as f64,
            RecordCell::Float(v) => v,
            RecordCell::Text(t) => match t.parse::<f64>() {
                Ok(v) if v.is_finite() => v,
                _ => return Err(wrong()),
            },
            RecordCell::Bool(_) => return Err(wrong()),
        }),
        ColumnType::Boolean => TypedCell::Number(match cell {
            RecordCell::Bool(b) => f64::from(u8::from(b)),
            RecordCell::Int(v @ (0 | 1)) => v as f64,
            RecordCell::Text(t) => f64::from(u8::from(parse_bool(t).ok_or_else(wrong)?)),
            _ => return Err(wrong()),
        }),
        ColumnType::Categorical => {
            let text = cell.to_string();
            if let Some(allowed) = allowed
                && !allowed.contains(&text)
            {
                return Err(Problem::NotAllowed { value: text });
            }
            TypedCell::Category(text)
        }
    };
    if let TypedCell::Number(v) = typed
        && (spec.min.is_some_and(|lo| v < lo) || spec.max.is_some_and(|hi| v > hi))
    {
        return Err(Problem::OutOfRange { value: v });
    }
    Ok(Some(typed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::FeatureEncoding;
    use std::path::Path;

    #[test]
    fn unseen_categories_are_accepted_into_other_but_other_problems_stay() {
        let schema = Schema::from_yaml_str(
            Path::new("s.yaml"),
            "name: t\nlabel: { column: y, type: string, negative: [normal] }\ncolumns:\n  \
             - { name: proto, type: categorical, values: [tcp, udp] }\n  \
             - { name: port, type: integer, values: [80, 443] }\n",
        )
        .unwrap();
        let frame = DataFrame::new(
            3,
            vec![
                Column::new("proto".into(), ["tcp", "sctp", "sctp"]),
                Column::new("port".into(), ["80", "22", "443"]),
            ],
        )
        .unwrap();
        let table = Table::from_frame("t", frame);
        let mut typed = type_table(&table, &schema, LabelPresence::Optional);
        assert_eq!(typed.issues.len(), 3);
        let unseen = typed.accept_unseen_categories();
        assert_eq!(
            unseen,
            vec![UnseenCategories {
                column: "proto".into(),
                rows: 2,
                examples: vec!["sctp".into()],
            }]
        );
        // The integer value outside the schema is still a problem.
        assert_eq!(typed.issues.len(), 1);
        assert_eq!(typed.issues[0].column, "port");
        let encoding = FeatureEncoding::from_schema(&schema);
        let x = encoding.encode(&typed);
        // proto=tcp, proto=udp, proto=<other>, port
        assert_eq!(x.row(0).to_vec(), vec![1.0, 0.0, 0.0, 80.0]);
        assert_eq!(x.row(1).to_vec(), vec![0.0, 0.0, 1.0, 22.0]);
    }

    use crate::data::schema::SchemaValue;

    fn spec(column_type: ColumnType, values: Option<Vec<SchemaValue>>) -> ColumnSpec {
        ColumnSpec {
            name: "c".into(),
            column_type,
            values,
            min: Some(-1.0),
            max: None,
            nullable: false,
            exclude: None,
            missing: Vec::new(),
        }
    }

    #[test]
    fn type_cell_follows_the_table_rules() {
        let int = spec(
            ColumnType::Integer,
            Some(vec![SchemaValue::Int(-1), SchemaValue::Int(1)]),
        );
        let allowed: BTreeSet<String> = ["-1".to_owned(), "1".to_owned()].into();
        let check = |cell| type_cell(&int, Some(&allowed), cell);
        assert_eq!(
            check(Some(RecordCell::Int(1))),
            Ok(Some(TypedCell::Number(1.0)))
        );
        assert_eq!(
            check(Some(RecordCell::Text(" -1 "))),
            Ok(Some(TypedCell::Number(-1.0)))
        );
        assert_eq!(
            check(Some(RecordCell::Float(1.0))),
            Ok(Some(TypedCell::Number(1.0)))
        );
        assert_eq!(
            check(Some(RecordCell::Int(0))),
            Err(Problem::NotAllowed { value: "0".into() })
        );
        assert!(matches!(
            check(Some(RecordCell::Text("abc"))),
            Err(Problem::WrongType { .. })
        ));
        assert_eq!(check(Some(RecordCell::Text(""))), Err(Problem::Missing));
        assert_eq!(check(None), Err(Problem::Missing));
        let float = spec(ColumnType::Float, None);
        assert_eq!(
            type_cell(&float, None, Some(RecordCell::Float(-2.5))),
            Err(Problem::OutOfRange { value: -2.5 })
        );
        assert!(matches!(
            type_cell(&float, None, Some(RecordCell::Bool(true))),
            Err(Problem::WrongType { .. })
        ));
    }
}
