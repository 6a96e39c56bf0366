//! What the fuzz targets share: the models they serve (the test fixtures of a schema with
//! every column kind) and records built from arbitrary choices, written as a CSV body and
//! as a JSON body.

use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use netsec::data::schema::ColumnType;
use netsec::serve::LoadedModel;
use serde_json::{Map, Value};

/// A multi-class decision tree on the `mixed` schema (float, categorical with a nullable
/// column, integer with values, an excluded column, boolean; string label).
const TREE: &[u8] = include_bytes!("../../tests/it/fixtures/mixed_tree.json");
/// A binary logistic regression on the same schema.
const LR_BINARY: &[u8] = include_bytes!("../../tests/it/fixtures/mixed_lr_binary.json");

/// The served model: the multi-class tree, or the binary logistic regression.
pub fn model(binary: bool) -> &'static LoadedModel {
    static MODELS: OnceLock<[LoadedModel; 2]> = OnceLock::new();
    let models = MODELS.get_or_init(|| {
        let load = |bytes: &[u8]| {
            LoadedModel::from_bytes(Path::new("fixture"), bytes, String::new(), None)
                .expect("the fixture model loads")
        };
        [load(TREE), load(LR_BINARY)]
    });
    &models[usize::from(binary)]
}

/// One cell of a record, chosen so that most cells are close to what the column accepts.
#[derive(Arbitrary, Debug, Clone)]
pub enum CellChoice {
    /// One of a few texts typical of the column's type (valid or nearly).
    Typical(u8),
    /// Any text.
    Text(String),
    /// A number, written as JSON would write it.
    Number(f64),
    /// An empty cell (JSON `null`).
    Empty,
}

/// A body: which schema columns (and the label, and one unknown column) it has, and its rows.
#[derive(Arbitrary, Debug, Clone)]
pub struct Records {
    /// Bit `i` drops the `i`-th column of [`columns`] from the body.
    pub dropped: u16,
    /// Rows of cells, one per column of [`columns`] (missing cells are empty).
    pub rows: Vec<Vec<CellChoice>>,
    /// JSON body: write cells that look like numbers as JSON numbers.
    pub numbers_as_numbers: bool,
    /// Pad text cells with spaces.
    pub padded: bool,
}

/// The body's candidate columns: the schema's, then the label, then one unknown name.
pub fn columns(model: &LoadedModel) -> Vec<(String, Option<ColumnType>)> {
    let schema = &model.file.schema;
    let mut out: Vec<(String, Option<ColumnType>)> = schema
        .columns
        .iter()
        .map(|c| (c.name.clone(), Some(c.column_type)))
        .collect();
    out.push((schema.label.column.clone(), None));
    out
}

fn typical(column_type: Option<ColumnType>, k: u8) -> &'static str {
    let choices: &[&str] = match column_type {
        Some(ColumnType::Integer) => &["0", "1", "3.0", "-1", "12", "1.5", "x", "9e15"],
        Some(ColumnType::Float) => &["0", "0.5", "1e3", "-2", "inf", "NaN", "1e400", " 7 "],
        Some(ColumnType::Boolean) => &["true", "F", "yes", "1", "0", "2", "n", "TRUE"],
        Some(ColumnType::Categorical) => &["tcp", "udp", "http", "smtp", "other", "ftp", "TCP"],
        None => &["normal", "neptune", "smurf", "1", "zzz"],
    };
    choices[usize::from(k) % choices.len()]
}

/// A record's cell as text (`None`: empty).
fn text(column_type: Option<ColumnType>, cell: &CellChoice, padded: bool) -> Option<String> {
    let t = match cell {
        CellChoice::Typical(k) => typical(column_type, *k).to_owned(),
        CellChoice::Text(t) => t.clone(),
        CellChoice::Number(x) => serde_json::Number::from_f64(*x)?.to_string(),
        CellChoice::Empty => return None,
    };
    Some(if padded { format!(" {t} ") } else { t })
}

impl Records {
    /// The columns the body has, with their index in [`columns`].
    pub fn present(&self, model: &LoadedModel) -> Vec<(usize, String, Option<ColumnType>)> {
        columns(model)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| self.dropped & (1 << i) == 0)
            .map(|(i, (name, t))| (i, name, t))
            .collect()
    }

    /// The cell texts of every row, for the present columns.
    pub fn cells(&self, model: &LoadedModel) -> Vec<Vec<Option<String>>> {
        let present = self.present(model);
        self.rows
            .iter()
            .map(|row| {
                present
                    .iter()
                    .map(|(i, _, t)| {
                        let cell = row.get(*i).unwrap_or(&CellChoice::Empty);
                        text(*t, cell, self.padded)
                    })
                    .collect()
            })
            .collect()
    }

    /// The body as CSV: a header and one line per row, fields quoted where needed.
    pub fn csv(&self, model: &LoadedModel) -> Vec<u8> {
        let present = self.present(model);
        let mut out = String::new();
        let header: Vec<String> = present.iter().map(|(_, n, _)| quote(n)).collect();
        out.push_str(&header.join(","));
        out.push('\n');
        for row in self.cells(model) {
            let fields: Vec<String> = row
                .iter()
                .map(|c| c.as_deref().map(quote).unwrap_or_default())
                .collect();
            out.push_str(&fields.join(","));
            out.push('\n');
        }
        out.into_bytes()
    }

    /// The body as JSON: `{"rows": [...]}` of objects, empty cells as `null`.
    pub fn json(&self, model: &LoadedModel) -> Vec<u8> {
        let present = self.present(model);
        let rows: Vec<Value> = self
            .cells(model)
            .into_iter()
            .map(|row| {
                let mut map = Map::new();
                for ((_, name, _), cell) in present.iter().zip(row) {
                    let value = match cell {
                        None => Value::Null,
                        Some(t) if self.numbers_as_numbers => serde_json::from_str::<Value>(&t)
                            .ok()
                            .filter(Value::is_number)
                            .unwrap_or(Value::String(t)),
                        Some(t) => Value::String(t),
                    };
                    map.insert(name.clone(), value);
                }
                Value::Object(map)
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "rows": rows })).unwrap_or_default()
    }
}

/// A CSV field, quoted when it holds a separator, a quote, a line break or is blank-edged.
pub fn quote(field: &str) -> String {
    if field.is_empty()
        || field.contains([',', '"', '\n', '\r'])
        || field.starts_with(' ')
        || field.ends_with(' ')
    {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}
