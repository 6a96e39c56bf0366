//! Typical inputs: per feature column, the value training rows most often have (columns
//! with a list of values, booleans, categories) or their median (other numbers). Model
//! files keep them so that the serving page can pre-fill its form with a plausible record;
//! for files written before they were kept, [`TypicalValue::guess`] reads one off the
//! schema instead.

use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, EncodedColumn};
use super::schema::{ColumnSpec, ColumnType, Schema, SchemaValue};

/// How a typical value was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    /// The value most training rows have (ties: the smallest value, the first category).
    MostFrequent,
    /// The lower median of the training rows (a value some row has, so an integer stays one).
    Median,
    /// No training statistic: the schema's first listed value.
    FirstValue,
    /// No training statistic: the middle of the schema's range (or its one bound, or 0).
    RangeMidpoint,
}

/// One feature column's typical value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypicalValue {
    /// The column.
    pub column: String,
    /// The value, typed as a request would send it.
    pub value: SchemaValue,
    /// How it was found.
    pub statistic: Statistic,
}

impl TypicalValue {
    /// A value for `spec` read off the schema alone: its first listed value, else the
    /// middle of its range.
    pub fn guess(spec: &ColumnSpec) -> TypicalValue {
        let (value, statistic) = match (&spec.values, spec.column_type) {
            (Some(values), _) if !values.is_empty() => (values[0].clone(), Statistic::FirstValue),
            (_, ColumnType::Boolean) => (SchemaValue::Bool(false), Statistic::FirstValue),
            (_, ColumnType::Categorical) => {
                (SchemaValue::Str(String::new()), Statistic::FirstValue)
            }
            (_, column_type) => {
                let middle = match (spec.min, spec.max) {
                    (Some(lo), Some(hi)) => (lo + hi) / 2.0,
                    (Some(bound), None) | (None, Some(bound)) => bound,
                    (None, None) => 0.0,
                };
                (typed(column_type, middle), Statistic::RangeMidpoint)
            }
        };
        TypicalValue {
            column: spec.name.clone(),
            value,
            statistic,
        }
    }
}

/// A number as a value of a column of `column_type` (integers rounded down).
fn typed(column_type: ColumnType, x: f64) -> SchemaValue {
    match column_type {
        ColumnType::Integer => SchemaValue::Int(x.floor() as i64),
        ColumnType::Boolean => SchemaValue::Bool(x != 0.0),
        _ => SchemaValue::Float(x),
    }
}

/// The typical value of every feature column over `rows` of `data` (the training rows),
/// read from the encoded features: a column whose cells are all empty in those rows has
/// none.
pub fn typical_values(schema: &Schema, data: &Dataset, rows: &[usize]) -> Vec<TypicalValue> {
    let mut typical = Vec::new();
    let mut offset = 0;
    for column in &data.encoding.columns {
        match column {
            EncodedColumn::Numeric { name } => {
                let column_type = schema
                    .column(name)
                    .map_or(ColumnType::Float, |c| c.column_type);
                let listed = schema.column(name).is_some_and(|c| c.values.is_some());
                let mut cells: Vec<f64> = rows
                    .iter()
                    .map(|&r| data.features[[r, offset]])
                    .filter(|x| !x.is_nan())
                    .collect();
                cells.sort_by(f64::total_cmp);
                let found = if listed || column_type == ColumnType::Boolean {
                    most_frequent(&cells).map(|x| (x, Statistic::MostFrequent))
                } else {
                    lower_median(&cells).map(|x| (x, Statistic::Median))
                };
                if let Some((x, statistic)) = found {
                    typical.push(TypicalValue {
                        column: name.clone(),
                        value: typed(column_type, x),
                        statistic,
                    });
                }
                offset += 1;
            }
            EncodedColumn::OneHot { name, categories } => {
                let counts = (0..categories.len())
                    .map(|slot| {
                        rows.iter()
                            .filter(|&&r| data.features[[r, offset + slot]] != 0.0)
                            .count()
                    })
                    .collect::<Vec<_>>();
                // The first category of the highest count; none when no row has a listed one.
                let best = counts.iter().enumerate().filter(|(_, n)| **n > 0).fold(
                    None,
                    |best: Option<(usize, usize)>, (slot, &n)| match best {
                        Some((_, m)) if m >= n => best,
                        _ => Some((slot, n)),
                    },
                );
                if let Some((slot, _)) = best {
                    typical.push(TypicalValue {
                        column: name.clone(),
                        value: SchemaValue::Str(categories[slot].clone()),
                        statistic: Statistic::MostFrequent,
                    });
                }
                offset += categories.len() + 1;
            }
        }
    }
    typical
}

/// The most frequent of sorted values (ties: the smallest).
fn most_frequent(sorted: &[f64]) -> Option<f64> {
    let mut best: Option<(f64, usize)> = None;
    for run in sorted.chunk_by(|a, b| a == b) {
        if best.is_none_or(|(_, n)| run.len() > n) {
            best = Some((run[0], run.len()));
        }
    }
    best.map(|(x, _)| x)
}

/// The lower median of sorted values.
fn lower_median(sorted: &[f64]) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted[(sorted.len() - 1) / 2])
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::data::dataset_from_table;
    use crate::data::load::csv_from_bytes;

    #[test]
    fn typical_values_are_read_on_the_given_rows_only() {
        let schema = Schema::from_yaml_str(
            Path::new("s.yaml"),
            "name: t\nlabel: { column: y, type: integer, positive: [1] }\ncolumns:\n  \
             - { name: flag, type: integer, values: [-1, 0, 1] }\n  \
             - { name: bytes, type: integer, min: 0 }\n  \
             - { name: rate, type: float, nullable: true }\n  \
             - { name: up, type: boolean }\n  \
             - { name: proto, type: categorical, values: [tcp, udp, icmp] }\n",
        )
        .unwrap();
        // The last row (not a training row here) would change every answer.
        let csv = "flag,bytes,rate,up,proto,y\n1,10,0.5,true,udp,0\n0,30,0.9,false,udp,1\n\
                   0,20,0.25,false,tcp,0\n1,1000,0.75,false,icmp,1\n-1,5,9.0,true,tcp,0\n";
        let table = csv_from_bytes(Path::new("d.csv"), csv.as_bytes().to_vec()).unwrap();
        let data = dataset_from_table(&table, &schema).unwrap();
        let typical = typical_values(&schema, &data, &[0, 1, 2, 3]);
        let found: Vec<(&str, &SchemaValue, Statistic)> = typical
            .iter()
            .map(|t| (t.column.as_str(), &t.value, t.statistic))
            .collect();
        assert_eq!(
            found,
            [
                ("flag", &SchemaValue::Int(0), Statistic::MostFrequent),
                ("bytes", &SchemaValue::Int(20), Statistic::Median),
                ("rate", &SchemaValue::Float(0.5), Statistic::Median),
                ("up", &SchemaValue::Bool(false), Statistic::MostFrequent),
                (
                    "proto",
                    &SchemaValue::Str("udp".into()),
                    Statistic::MostFrequent
                ),
            ]
        );
    }

    #[test]
    fn most_frequent_breaks_ties_to_the_smallest_and_the_median_is_a_row_value() {
        assert_eq!(most_frequent(&[-1.0, 0.0, 0.0, 1.0, 1.0]), Some(0.0));
        assert_eq!(most_frequent(&[]), None);
        assert_eq!(lower_median(&[1.0, 2.0, 3.0, 10.0]), Some(2.0));
        assert_eq!(lower_median(&[5.0]), Some(5.0));
    }

    #[test]
    fn a_guess_is_the_first_value_or_the_middle_of_the_range() {
        let spec = |column_type, values: Option<Vec<SchemaValue>>, min, max| ColumnSpec {
            name: "c".into(),
            column_type,
            values,
            min,
            max,
            nullable: false,
            exclude: None,
        };
        let listed = spec(
            ColumnType::Categorical,
            Some(vec![
                SchemaValue::Str("tcp".into()),
                SchemaValue::Str("udp".into()),
            ]),
            None,
            None,
        );
        assert_eq!(
            TypicalValue::guess(&listed).value,
            SchemaValue::Str("tcp".into())
        );
        let ranged = TypicalValue::guess(&spec(ColumnType::Integer, None, Some(0.0), Some(5.0)));
        assert_eq!(
            (ranged.value, ranged.statistic),
            (SchemaValue::Int(2), Statistic::RangeMidpoint)
        );
        let open = TypicalValue::guess(&spec(ColumnType::Float, None, Some(0.0), None));
        assert_eq!(open.value, SchemaValue::Float(0.0));
    }
}
