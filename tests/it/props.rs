//! Property tests (proptest, a bounded number of cases each so the suite stays fast): CSV
//! written from arbitrary typed cells loads back as the same typed values, single cells
//! type as a one-row table does, categories never seen in training encode as `<other>`
//! whatever they are, and the same records sent to `serve` as JSON and as CSV are typed,
//! encoded and predicted alike.

use std::collections::BTreeSet;
use std::path::Path;

use netsec::data::dataset::FeatureEncoding;
use netsec::data::load::{Table, csv_from_bytes};
use netsec::data::schema::{ColumnSpec, ColumnType, Schema};
use netsec::data::typed::{
    LabelPresence, Problem, RecordCell, TypedCell, TypedValues, type_cell, type_table,
};
use netsec::serve::LoadedModel;
use netsec::serve::input::{predict_csv, predict_csv_general, predict_json};
use polars::prelude::{Column, DataFrame};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};

use crate::common::repo_file;

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Failures are reported with their shrunk input; no regression files in the tree.
        failure_persistence: None,
        ..Config::default()
    }
}

/// A CSV field, quoted when it must be (separator, quote, line break, blank edges, empty).
fn quote(field: &str) -> String {
    if field.is_empty() || field.contains([',', '"', '\n', '\r']) || field.trim() != field {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// Text of a category: printable, with separators, quotes and line breaks inside, never
/// blank at the edges (cells are trimmed when typed).
fn category() -> impl Strategy<Value = String> {
    let inner = prop::collection::vec(
        prop_oneof![
            4 => prop::char::range('a', 'z'),
            1 => prop::sample::select(vec![',', '"', '\n', ' ', 'é', '-', '<', '1']),
        ],
        0..6,
    );
    (
        prop::char::range('a', 'z'),
        inner,
        prop::char::range('A', 'Z'),
    )
        .prop_map(|(first, inner, last)| format!("{first}{}{last}", String::from_iter(inner)))
}

/// One typed cell of a column of the given type (`None`: empty).
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

#[derive(Debug, Clone)]
struct TypedCsv {
    types: Vec<ColumnType>,
    categories: Vec<String>,
    rows: Vec<(Vec<Option<Cell>>, String)>,
    /// Spaces around each unquoted numeric field (trimmed when typed).
    padded: bool,
}

fn typed_csv() -> impl Strategy<Value = TypedCsv> {
    let types = prop::collection::vec(
        prop::sample::select(vec![
            ColumnType::Integer,
            ColumnType::Float,
            ColumnType::Boolean,
            ColumnType::Categorical,
        ]),
        1..5,
    );
    let categories = prop::collection::btree_set(category(), 1..5)
        .prop_map(|s| s.into_iter().collect::<Vec<_>>());
    (types, categories, any::<bool>()).prop_flat_map(|(types, categories, padded)| {
        let cell = |t: ColumnType, categories: &[String]| -> BoxedStrategy<Option<Cell>> {
            let value: BoxedStrategy<Cell> = match t {
                ColumnType::Integer => any::<i64>().prop_map(Cell::Int).boxed(),
                ColumnType::Float => prop_oneof![
                    any::<f64>().prop_filter("finite", |x| x.is_finite()),
                    -1.0e6..1.0e6f64,
                ]
                .prop_map(Cell::Float)
                .boxed(),
                ColumnType::Boolean => any::<bool>().prop_map(Cell::Bool).boxed(),
                ColumnType::Categorical => prop::sample::select(categories.to_vec())
                    .prop_map(Cell::Text)
                    .boxed(),
            };
            prop::option::weighted(0.85, value).boxed()
        };
        let row_cells: Vec<BoxedStrategy<Option<Cell>>> =
            types.iter().map(|t| cell(*t, &categories)).collect();
        let row = (row_cells, prop::sample::select(categories.clone()));
        let rows = prop::collection::vec(row, 1..12);
        (Just(types), Just(categories), rows, Just(padded)).prop_map(
            |(types, categories, rows, padded)| TypedCsv {
                types,
                categories,
                rows,
                padded,
            },
        )
    })
}

impl TypedCsv {
    fn schema(&self) -> Schema {
        let values: Vec<String> = self
            .categories
            .iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .collect();
        let mut yaml = format!(
            "name: props\nlabel: {{ column: \"label,\\\"x\\\"\", type: string, values: [{}], \
             negative: [{}] }}\ncolumns:\n",
            values.join(", "),
            values[0]
        );
        for (i, t) in self.types.iter().enumerate() {
            let extra = match t {
                ColumnType::Categorical => format!(", values: [{}]", values.join(", ")),
                _ => String::new(),
            };
            yaml.push_str(&format!(
                "  - {{ name: \"c{i} \\\"q\\\", x\", type: {t}, nullable: true{extra} }}\n"
            ));
        }
        Schema::from_yaml_str(Path::new("props.yaml"), &yaml).unwrap()
    }

    fn csv(&self, schema: &Schema) -> Vec<u8> {
        let mut header: Vec<String> = schema.columns.iter().map(|c| quote(&c.name)).collect();
        header.push(quote(&schema.label.column));
        let mut out = header.join(",") + "\n";
        for (cells, label) in &self.rows {
            let mut fields: Vec<String> = cells
                .iter()
                .map(|cell| {
                    let text = match cell {
                        None => return String::new(),
                        Some(Cell::Int(v)) => v.to_string(),
                        Some(Cell::Float(v)) => v.to_string(),
                        Some(Cell::Bool(v)) => v.to_string(),
                        Some(Cell::Text(t)) => return quote(t),
                    };
                    if self.padded {
                        format!(" {text} ")
                    } else {
                        text
                    }
                })
                .collect();
            fields.push(quote(label));
            out.push_str(&fields.join(","));
            out.push('\n');
        }
        out.into_bytes()
    }
}

fn values_of(column: &TypedValues) -> Vec<Option<Cell>> {
    match column {
        TypedValues::Int(v) => v.iter().map(|x| x.map(Cell::Int)).collect(),
        TypedValues::Float(v) => v.iter().map(|x| x.map(Cell::Float)).collect(),
        TypedValues::Bool(v) => v.iter().map(|x| x.map(Cell::Bool)).collect(),
        TypedValues::Text(v) => v.iter().map(|x| x.clone().map(Cell::Text)).collect(),
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// Any table of typed cells, written as CSV (quoted where needed), loads and types back
    /// to the same values, labels included.
    #[test]
    fn csv_round_trips_typed_cells(table in typed_csv()) {
        let schema = table.schema();
        let bytes = table.csv(&schema);
        let loaded = csv_from_bytes(Path::new("props.csv"), bytes.clone()).unwrap();
        prop_assert_eq!(loaded.len(), table.rows.len());
        let typed = type_table(&loaded, &schema, LabelPresence::Required);
        prop_assert!(typed.issues.is_empty(), "{:?}\n{}", typed.issues, String::from_utf8_lossy(&bytes));
        for (i, (_, values)) in typed.columns.iter().enumerate() {
            let expected: Vec<Option<Cell>> = table.rows.iter().map(|(r, _)| r[i].clone()).collect();
            prop_assert_eq!(values_of(values), expected);
        }
        let labels: Vec<Option<String>> = table.rows.iter().map(|(_, l)| Some(l.clone())).collect();
        prop_assert_eq!(typed.labels, Some(labels));
    }
}

fn spec(column_type: ColumnType, values: Option<&str>) -> ColumnSpec {
    let values = values.map_or(String::new(), |v| format!(", values: {v}"));
    let range = match column_type {
        ColumnType::Integer | ColumnType::Float => ", min: -1000, max: 1000",
        ColumnType::Boolean | ColumnType::Categorical => "",
    };
    let yaml = format!(
        "name: t\nlabel: {{ column: y, type: string, negative: [n] }}\ncolumns:\n  \
         - {{ name: c, type: {column_type}{range}{values} }}\n"
    );
    Schema::from_yaml_str(Path::new("t.yaml"), &yaml)
        .unwrap()
        .columns
        .remove(0)
}

/// Text cells: numbers of every shape, booleans in their spellings, blanks, anything.
fn cell_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        (-2000i64..2000).prop_map(|v| format!("{v}.0")),
        (-2000.0..2000.0f64).prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:e}")),
        prop::sample::select(vec![
            "true", "False", "YES", "n", "t", "1", "0", "2", "", "  ", " 7 ", "inf", "NaN", "1e3",
            "0x10", "+5", "-0", "tcp", "udp", "9e15", "1.5",
        ])
        .prop_map(str::to_owned),
        ".{0,6}",
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// `type_cell` (one JSON field) accepts, refuses and values a text cell exactly as
    /// `type_table` does the same cell in a one-row table.
    #[test]
    fn a_text_cell_types_as_a_one_row_table_does(text in cell_text(), kind in 0usize..5) {
        let (column_type, values) = [
            (ColumnType::Integer, None),
            (ColumnType::Integer, Some("[-1, 0, 1, 7]")),
            (ColumnType::Float, None),
            (ColumnType::Boolean, None),
            (ColumnType::Categorical, Some("[tcp, udp, \"1\"]")),
        ][kind];
        let spec = spec(column_type, values);
        let allowed: Option<BTreeSet<String>> =
            spec.values.as_ref().map(|v| v.iter().map(|x| x.canonical()).collect());
        let single = type_cell(&spec, allowed.as_ref(), Some(RecordCell::Text(&text)));

        let schema = Schema {
            columns: vec![spec.clone()],
            ..Schema::from_yaml_str(
                Path::new("t.yaml"),
                "name: t\nlabel: { column: y, type: string, negative: [n] }\ncolumns:\n  - { name: c, type: float }\n",
            ).unwrap()
        };
        let frame = DataFrame::new(1, vec![Column::new("c".into(), [text.as_str()])]).unwrap();
        let typed = type_table(&Table::from_frame("t", frame), &schema, LabelPresence::Optional);
        match single {
            Ok(value) => {
                prop_assert!(typed.issues.is_empty(), "{:?} vs {:?}", value, typed.issues);
                let table_value = match &typed.columns[0].1 {
                    TypedValues::Text(v) => v[0].clone().map(TypedCell::Category),
                    other => other.numeric(0).map(TypedCell::Number),
                };
                prop_assert_eq!(value, table_value);
            }
            Err(problem) => {
                prop_assert_eq!(typed.issues.len(), 1, "{:?} vs {:?}", problem, typed.issues);
                prop_assert_eq!(&typed.issues[0].problem, &problem);
            }
        }
    }

    /// Integers and finite floats written as text read back exactly.
    #[test]
    fn numbers_read_back_exactly(i in any::<i64>(), x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
        let int = spec(ColumnType::Integer, None);
        let expected = if (i as f64) < -1000.0 || (i as f64) > 1000.0 {
            Err(Problem::OutOfRange { value: i as f64 })
        } else {
            Ok(Some(TypedCell::Number(i as f64)))
        };
        prop_assert_eq!(type_cell(&int, None, Some(RecordCell::Text(&i.to_string()))), expected);
        let float = spec(ColumnType::Float, None);
        let expected = if !(-1000.0..=1000.0).contains(&x) {
            Err(Problem::OutOfRange { value: x })
        } else {
            Ok(Some(TypedCell::Number(x)))
        };
        prop_assert_eq!(&type_cell(&float, None, Some(RecordCell::Text(&x.to_string()))), &expected);
        prop_assert_eq!(type_cell(&float, None, Some(RecordCell::Text(&format!("{x:e}")))), expected);
    }
}

/// The served fixtures: a multi-class tree and a binary logistic regression on a schema
/// with every column kind (see `fuzz/`, which serves the same two).
fn served(binary: bool) -> LoadedModel {
    let name = if binary {
        "mixed_lr_binary.json"
    } else {
        "mixed_tree.json"
    };
    let bytes = std::fs::read(repo_file(&format!("tests/it/fixtures/{name}"))).unwrap();
    LoadedModel::from_bytes(Path::new(name), &bytes, String::new(), None).unwrap()
}

/// A valid record of the `mixed` schema, as cell texts in schema order (label last).
fn mixed_record() -> impl Strategy<Value = Vec<String>> {
    (
        prop_oneof![
            (0.0..50_000.0f64).prop_map(|v| v.to_string()),
            Just("0".to_owned())
        ],
        prop::sample::select(vec!["tcp", "udp", "icmp"]),
        prop::sample::select(vec!["http", "private", "domain_u", "smtp", "other", ""]),
        (0u32..1_000_000).prop_map(|v| v.to_string()),
        prop::sample::select(vec!["0", "1", "1.0"]),
        (0i64..5).prop_map(|v| v.to_string()),
        (0i64..600).prop_map(|v| v.to_string()),
        prop::sample::select(vec!["true", "false", "1", "0", "yes", "N"]),
        prop::sample::select(vec!["normal", "neptune", "smurf", "other_attack"]),
    )
        .prop_map(|(a, b, c, d, e, f, g, h, i)| {
            vec![a, b.into(), c.into(), d, e.into(), f, g, h.into(), i.into()]
        })
}

fn column_names(model: &LoadedModel) -> Vec<String> {
    let schema = &model.file.schema;
    let mut names: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    names.push(schema.label.column.clone());
    names
}

fn csv_body(names: &[String], rows: &[Vec<String>]) -> Vec<u8> {
    let mut out = names.join(",") + "\n";
    for row in rows {
        let fields: Vec<String> = row
            .iter()
            .map(|c| {
                if c.is_empty() {
                    String::new()
                } else {
                    quote(c)
                }
            })
            .collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

/// JSON records of the same cells; `numbers` writes numeric-looking cells as JSON numbers.
fn json_body(names: &[String], rows: &[Vec<String>], numbers: bool) -> Vec<u8> {
    let records: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut map = Map::new();
            for (name, cell) in names.iter().zip(row) {
                let value = if cell.is_empty() {
                    Value::Null
                } else if numbers {
                    serde_json::from_str::<Value>(cell)
                        .ok()
                        .filter(Value::is_number)
                        .unwrap_or_else(|| Value::String(cell.clone()))
                } else {
                    Value::String(cell.clone())
                };
                map.insert(name.clone(), value);
            }
            Value::Object(map)
        })
        .collect();
    serde_json::to_vec(&json!({ "rows": records })).unwrap()
}

proptest! {
    #![proptest_config(config(64))]

    /// The same records as JSON and as CSV (both CSV paths) give the same features and the
    /// same answers, for the multi-class and the binary model.
    #[test]
    fn json_and_csv_bodies_are_typed_and_predicted_alike(
        rows in prop::collection::vec(mixed_record(), 1..8),
        numbers in any::<bool>(),
        binary in any::<bool>(),
    ) {
        let model = served(binary);
        let names = column_names(&model);
        let csv = csv_body(&names, &rows);
        let json = json_body(&names, &rows, numbers);
        let from_json = predict_json(&model, &json, true).unwrap();
        let fast = predict_csv(&model, &csv, true, true).unwrap();
        let general = predict_csv_general(&model, &csv, true, true).unwrap();
        prop_assert_eq!(&from_json.features, &general.features);
        prop_assert_eq!(&fast.features, &general.features);
        prop_assert_eq!(&from_json.answers, &general.answers);
        prop_assert_eq!(&fast.answers, &general.answers);
        prop_assert_eq!(&fast.csv, &general.csv);
    }

    /// A category never seen in training, whatever its text, encodes as `<other>` — the
    /// same features and prediction as any other unseen category — through JSON, both CSV
    /// paths and the table encoding of `netsec predict`.
    #[test]
    fn unseen_categories_encode_as_other(
        record in mixed_record(),
        unseen in "[^\r]{1,12}".prop_filter("unseen", |s| {
            let t = s.trim();
            !t.is_empty() && !["tcp", "udp", "icmp"].contains(&t)
        }),
    ) {
        let model = served(false);
        let names = column_names(&model);
        let mut row = record.clone();
        row[1] = unseen.clone();
        let mut reference = record;
        reference[1] = "sctp-never-seen".into();
        let rows = [row, reference];
        let from_json = predict_json(&model, &json_body(&names, &rows, false), false).unwrap();
        let csv = csv_body(&names, &rows);
        let fast = predict_csv(&model, &csv, true, false).unwrap();
        let general = predict_csv_general(&model, &csv, true, false).unwrap();
        let width = model.width;
        let (first, second) = from_json.features.split_at(width);
        prop_assert_eq!(first, second);
        // protocol_type's one-hot block follows `duration`: tcp, udp, icmp, <other>.
        prop_assert_eq!(&first[1..5], &[0.0, 0.0, 0.0, 1.0]);
        prop_assert_eq!(from_json.answers[0], from_json.answers[1]);
        prop_assert_eq!(&fast.features, &from_json.features);
        prop_assert_eq!(&general.features, &from_json.features);

        let table = csv_from_bytes(Path::new("unseen.csv"), csv).unwrap();
        let mut typed = type_table(&table, &model.file.schema, LabelPresence::Optional);
        let accepted = typed.accept_unseen_categories();
        prop_assert!(typed.issues.is_empty(), "{:?}", typed.issues);
        prop_assert_eq!(accepted.len(), 1);
        prop_assert_eq!(accepted[0].rows, 2);
        let encoded = FeatureEncoding::from_schema(&model.file.schema).encode(&typed);
        prop_assert_eq!(encoded.iter().copied().collect::<Vec<_>>(), from_json.features);
    }
}

/// Regression (found by reading `encode_record` for the JSON-vs-CSV oracle of
/// `fuzz/serve_records`): a JSON record's excluded column and label
/// were not checked at all, so JSON accepted records whose CSV form is refused.
#[test]
fn json_checks_excluded_columns_and_the_label_as_csv_does() {
    let model = served(false);
    let names = column_names(&model);
    let valid = vec!["0", "tcp", "http", "10", "1", "0", "3", "true", "normal"];
    let with = |column: usize, cell: &str| -> Vec<Vec<String>> {
        let mut row: Vec<String> = valid.iter().map(|c| (*c).to_owned()).collect();
        row[column] = cell.to_owned();
        vec![row]
    };
    // num_outbound_cmds (excluded, integer) and label (string), empty or mistyped.
    for (column, cell) in [(5, "abc"), (5, ""), (8, "")] {
        let rows = with(column, cell);
        let csv = predict_csv(&model, &csv_body(&names, &rows), false, false);
        let json = predict_json(&model, &json_body(&names, &rows, false), false);
        let csv = csv.expect_err("CSV refuses it");
        let json = json.expect_err("JSON refuses it as CSV does");
        assert_eq!(json.0.column, csv.0.column, "{cell:?}");
        assert_eq!(
            json.0.issues[0].issue.problem, csv.0.issues[0].issue.problem,
            "{cell:?}"
        );
    }
    // The excluded column may be left out of both.
    let mut short_names = names.clone();
    short_names.remove(5);
    let mut row = with(5, "0");
    row[0].remove(5);
    assert!(predict_json(&model, &json_body(&short_names, &row, false), false).is_ok());
    assert!(predict_csv(&model, &csv_body(&short_names, &row), false, false).is_ok());
}

/// Regression (found by the CSV round-trip property test): polars kept the doubled
/// quotes of a quoted header name, so a column named with a quote never matched.
#[test]
fn quoted_header_names_are_unescaped() {
    let bytes = b"\"a \"\"b\"\", c\",d\n\"x \"\"y\"\"\",2\n".to_vec();
    let table = csv_from_bytes(Path::new("d.csv"), bytes).unwrap();
    let names: Vec<String> = table
        .frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, ["a \"b\", c", "d"]);
    let cell = table.frame.column("d").unwrap().str().unwrap().get(0);
    assert_eq!(cell, Some("2"));
    let first = table.frame.columns()[0].str().unwrap().get(0);
    assert_eq!(first, Some("x \"y\""));
}

/// Regression (found by `fuzz/parquet_load`): polars' Parquet reader panicked on malformed
/// thrift metadata; loading it is a typed error.
#[test]
fn a_corrupt_parquet_file_is_an_error_not_a_panic() {
    let bytes = std::fs::read(repo_file("tests/it/fixtures/parquet_bad_thrift.parquet")).unwrap();
    let err = netsec::data::load::parquet_from_bytes(Path::new("bad.parquet"), bytes)
        .expect_err("a corrupt file is refused");
    assert!(
        matches!(err, netsec::data::LoadError::Parse { .. }),
        "{err}"
    );
    assert_eq!(err.exit_code(), 2);
}

/// Regression (found by `fuzz/serve_records`): a JSON record without a nullable column's
/// field was predicted (as an empty cell) while a CSV body without that column is refused
/// with "column `service` is missing"; the README promises the same rules for both.
#[test]
fn a_json_record_without_a_nullable_field_is_a_missing_column_as_in_csv() {
    let model = served(false);
    let mut names = column_names(&model);
    let mut row: Vec<String> = ["0", "tcp", "http", "10", "1", "0", "3", "true", "normal"]
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    names.remove(2);
    row.remove(2);
    let rows = vec![row];
    let csv = predict_csv(&model, &csv_body(&names, &rows), false, false).expect_err("CSV");
    let json = predict_json(&model, &json_body(&names, &rows, false), false).expect_err("JSON");
    assert_eq!(json.0.column.as_deref(), Some("service"));
    assert_eq!(json.0.column, csv.0.column);
    assert_eq!(json.0.issues[0].issue.problem, Problem::MissingColumn);
    assert_eq!(
        json.0.issues[0].issue.problem,
        csv.0.issues[0].issue.problem
    );
}
