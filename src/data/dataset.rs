//! The model-ready form of a table: a feature matrix encoded from the schema, attack/normal
//! labels, and a fingerprint that identifies the data whatever file or database it came from.

use std::collections::HashMap;

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::labels::{ClassError, LabelChoice, LabelClasses, effective_classes};
use super::load::Table;
use super::schema::{ColumnType, LabelSpec, Schema};
use super::typed::{LabelPresence, TypedTable, allowed_text, type_table};
use crate::shared::Classes;
use crate::shared::hash::hex;

/// Data that does not fit its schema closely enough to train on or predict from.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}{more}")]
pub struct InvalidData {
    /// `file:line` (or `file row N`) of the first problem, or the file for column problems.
    pub location: String,
    /// The first problem.
    pub message: String,
    /// A hint that more problems exist, with their count.
    more: String,
    /// Number of problems found.
    pub count: usize,
}

impl InvalidData {
    /// The process exit code: bad input.
    pub fn exit_code(&self) -> u8 {
        crate::exit::BAD_INPUT
    }
}

/// Name of the extra one-hot column that takes categories not listed in the schema.
pub const OTHER_CATEGORY: &str = "<other>";

/// How one schema column becomes model features; stored in model files so that prediction
/// encodes requests exactly as training did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EncodedColumn {
    /// Integer, float or boolean: one feature, the value itself (booleans as 0/1).
    Numeric {
        /// Column name.
        name: String,
    },
    /// A categorical column: one 0/1 feature per category, plus one for any other value.
    OneHot {
        /// Column name.
        name: String,
        /// Categories in schema order.
        categories: Vec<String>,
    },
}

/// The feature layout derived from a schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureEncoding {
    /// Encoded columns in schema order (excluded columns left out).
    pub columns: Vec<EncodedColumn>,
}

impl FeatureEncoding {
    /// Derives the encoding from the schema's feature columns.
    pub fn from_schema(schema: &Schema) -> FeatureEncoding {
        let columns = schema
            .features()
            .map(|spec| match spec.column_type {
                ColumnType::Categorical => EncodedColumn::OneHot {
                    name: spec.name.clone(),
                    categories: spec
                        .values
                        .iter()
                        .flatten()
                        .map(|v| v.canonical())
                        .collect(),
                },
                _ => EncodedColumn::Numeric {
                    name: spec.name.clone(),
                },
            })
            .collect();
        FeatureEncoding { columns }
    }

    /// Names of the encoded features, e.g. `URL_Length`, `protocol=tcp`, `protocol=<other>`.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for column in &self.columns {
            match column {
                EncodedColumn::Numeric { name } => names.push(name.clone()),
                EncodedColumn::OneHot { name, categories } => {
                    names.extend(categories.iter().map(|c| format!("{name}={c}")));
                    names.push(format!("{name}={OTHER_CATEGORY}"));
                }
            }
        }
        names
    }

    /// Encodes typed rows. Columns missing from `typed` must have been reported as issues
    /// before; empty numeric cells become NaN, empty categorical cells `<other>`.
    pub fn encode(&self, typed: &TypedTable) -> Array2<f64> {
        let width = self.feature_names().len();
        let mut matrix = Array2::<f64>::zeros((typed.rows, width));
        let mut offset = 0;
        for column in &self.columns {
            let (name, span) = match column {
                EncodedColumn::Numeric { name } => (name, 1),
                EncodedColumn::OneHot { name, categories } => (name, categories.len() + 1),
            };
            let values = typed
                .columns
                .iter()
                .find(|(spec, _)| &spec.name == name)
                .map(|(_, v)| v);
            if let Some(values) = values {
                for row in 0..typed.rows {
                    match column {
                        EncodedColumn::Numeric { .. } => {
                            matrix[[row, offset]] = values.numeric(row).unwrap_or(f64::NAN);
                        }
                        EncodedColumn::OneHot { categories, .. } => {
                            let slot = values
                                .text(row)
                                .and_then(|t| categories.iter().position(|c| *c == t))
                                .unwrap_or(categories.len());
                            matrix[[row, offset + slot]] = 1.0;
                        }
                    }
                }
            }
            offset += span;
        }
        matrix
    }
}

/// Rows ready for the models.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where the rows came from.
    pub source: String,
    /// Encoded features, one row per data row.
    pub features: Array2<f64>,
    /// Names of the feature columns.
    pub feature_names: Vec<String>,
    /// `true` where the row is of an attack class.
    pub labels: Vec<bool>,
    /// The class id of each row (see [`Dataset::classes`]).
    pub class_ids: Vec<u32>,
    /// The classes, in id order.
    pub classes: Classes,
    /// The label as written in the data (for reports and duplicate checks).
    pub label_values: Vec<String>,
    /// The encoding used, to be stored with models.
    pub encoding: FeatureEncoding,
    /// sha256 of feature names, encoded values and labels (attack bits for a binary label,
    /// class ids and class names for a multi-class one; see [`fingerprint_classes`]).
    pub fingerprint: String,
}

impl Dataset {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of attack rows.
    pub fn attacks(&self) -> usize {
        self.labels.iter().filter(|&&a| a).count()
    }

    /// A copy holding only `rows`, in that order (fingerprint recomputed).
    pub fn select(&self, rows: &[usize]) -> Dataset {
        let features = self.features.select(ndarray::Axis(0), rows);
        let labels: Vec<bool> = rows.iter().map(|&r| self.labels[r]).collect();
        let class_ids: Vec<u32> = rows.iter().map(|&r| self.class_ids[r]).collect();
        let label_values = rows.iter().map(|&r| self.label_values[r].clone()).collect();
        let fingerprint =
            fingerprint_classes(&self.feature_names, &features, &class_ids, &self.classes);
        Dataset {
            source: self.source.clone(),
            features,
            feature_names: self.feature_names.clone(),
            labels,
            class_ids,
            classes: self.classes.clone(),
            label_values,
            encoding: self.encoding.clone(),
            fingerprint,
        }
    }

    /// The same rows learned as `choice` asks of `label` (the schema's label): class ids,
    /// classes, attack bits and fingerprint recomputed from the label values. The grid
    /// file's `task` / `group` enter here.
    pub fn with_label(
        self,
        label: &LabelSpec,
        choice: &LabelChoice,
    ) -> Result<Dataset, ClassError> {
        let LabelClasses { classes, ids } = effective_classes(label, choice, &self.label_values)?;
        let labels = ids.iter().map(|&id| classes.is_attack(id)).collect();
        let fingerprint = fingerprint_classes(&self.feature_names, &self.features, &ids, &classes);
        Ok(Dataset {
            labels,
            class_ids: ids,
            classes,
            fingerprint,
            ..self
        })
    }

    /// Rows per class, in class-id order.
    pub fn class_counts(&self) -> Vec<usize> {
        super::labels::class_counts(&self.class_ids, self.classes.len())
    }

    /// A hashable key of row `row`'s feature vector (bit patterns of the encoded values).
    pub fn row_key(&self, row: usize) -> Vec<u64> {
        self.features.row(row).iter().map(|v| v.to_bits()).collect()
    }
}

/// Types `table` against `schema` and encodes it; any schema problem is an error naming the
/// first problem's place and how many there are.
pub fn dataset_from_table(table: &Table, schema: &Schema) -> Result<Dataset, InvalidData> {
    let typed = type_table(table, schema, LabelPresence::Required);
    if !typed.issues.is_empty() {
        return Err(invalid(table, schema, &typed));
    }
    if schema.label.is_multiclass() {
        let values: Vec<String> = typed
            .labels
            .iter()
            .flatten()
            .map(|v| v.clone().unwrap_or_default())
            .collect();
        if let Err(e) = effective_classes(&schema.label, &LabelChoice::default(), &values) {
            return Err(InvalidData {
                location: table.source.clone(),
                message: format!("label `{}`: {e}", schema.label.column),
                more: String::new(),
                count: 1,
            });
        }
    }
    Ok(encode_typed(table, schema, typed))
}

/// Encodes a typed table whatever its issues (bad cells become NaN / `<other>`); used by
/// reports that still want duplicate counts for data that fails validation.
pub fn encode_typed(table: &Table, schema: &Schema, typed: TypedTable) -> Dataset {
    let encoding = FeatureEncoding::from_schema(schema);
    let features = encoding.encode(&typed);
    let label_values: Vec<String> = typed
        .labels
        .unwrap_or_default()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let feature_names = encoding.feature_names();
    // A multi-class label that cannot be learned (one class) is refused by
    // `dataset_from_table`; reports on such data see it folded to binary.
    let LabelClasses { classes, ids } =
        effective_classes(&schema.label, &LabelChoice::default(), &label_values).unwrap_or_else(
            |_| {
                let names = &schema.label.names;
                LabelClasses {
                    classes: Classes::binary(&names.negative, &names.positive),
                    ids: label_values
                        .iter()
                        .map(|v| u32::from(schema.label.is_attack(v)))
                        .collect(),
                }
            },
        );
    let labels: Vec<bool> = ids.iter().map(|&id| classes.is_attack(id)).collect();
    let class_ids = ids;
    let fingerprint = fingerprint_classes(&feature_names, &features, &class_ids, &classes);
    Dataset {
        source: table.source.clone(),
        features,
        feature_names,
        labels,
        class_ids,
        classes,
        label_values,
        encoding,
        fingerprint,
    }
}

/// The error for the first of `typed.issues`.
pub fn invalid(table: &Table, schema: &Schema, typed: &TypedTable) -> InvalidData {
    let count = typed.issues.len();
    let first = &typed.issues[0];
    let location = match first.row {
        Some(row) => table.locate(row),
        None => table.source.clone(),
    };
    let view = super::typed::ColumnSpecView {
        name: &first.column,
        allowed: allowed_text(schema, &first.column),
    };
    let more = if count > 1 {
        format!(
            " ({} more problems; `netsec data validate` lists them)",
            count - 1
        )
    } else {
        String::new()
    };
    InvalidData {
        location,
        message: first.problem.describe(&view),
        more,
        count,
    }
}

/// sha256 over feature names, the encoded values (little-endian f64) and attack bits.
pub fn fingerprint(names: &[String], features: &Array2<f64>, labels: &[bool]) -> String {
    let mut hasher = Sha256::new();
    for name in names {
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
    }
    for (row, label) in features.rows().into_iter().zip(labels) {
        for value in row {
            hasher.update(value.to_le_bytes());
        }
        hasher.update([u8::from(*label)]);
    }
    hex(&hasher.finalize())
}

/// The fingerprint of a data set learned as `classes`: for a binary label exactly
/// [`fingerprint`] over the attack bits (so binary fingerprints are as they always were);
/// for a multi-class label a sha256 over a `multiclass` tag, the feature names, each row's
/// encoded values and class id (u32 little-endian), and the class names with their normal
/// flags, so that the same rows learned as other classes (folded, grouped, renamed) never
/// share a fingerprint, and so never share trials.
pub fn fingerprint_classes(
    names: &[String],
    features: &Array2<f64>,
    class_ids: &[u32],
    classes: &Classes,
) -> String {
    if classes.is_binary() {
        let bits: Vec<bool> = class_ids.iter().map(|&id| id == 1).collect();
        return fingerprint(names, features, &bits);
    }
    let mut hasher = Sha256::new();
    hasher.update(b"multiclass\0");
    for name in names {
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
    }
    for (row, id) in features.rows().into_iter().zip(class_ids) {
        for value in row {
            hasher.update(value.to_le_bytes());
        }
        hasher.update(id.to_le_bytes());
    }
    hasher.update((classes.len() as u32).to_le_bytes());
    for (name, normal) in classes.names.iter().zip(&classes.normal) {
        hasher.update(name.as_bytes());
        hasher.update([0u8, u8::from(*normal)]);
    }
    hex(&hasher.finalize())
}

/// Exact duplicates and label conflicts in a data set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Duplicates {
    /// Rows identical (features and label) to an earlier row.
    pub duplicate_rows: usize,
    /// Distinct feature vectors.
    pub unique_feature_vectors: usize,
    /// Feature vectors that appear with more than one label value.
    pub conflicting_vectors: usize,
}

/// Counts exact duplicate rows and feature vectors seen with different labels.
pub fn duplicates(data: &Dataset) -> Duplicates {
    let mut labels_by_vector: HashMap<Vec<u64>, Vec<&str>> = HashMap::new();
    let mut duplicate_rows = 0;
    for row in 0..data.len() {
        let label = data.label_values[row].as_str();
        let seen = labels_by_vector.entry(data.row_key(row)).or_default();
        if seen.contains(&label) {
            duplicate_rows += 1;
        } else {
            seen.push(label);
        }
    }
    Duplicates {
        duplicate_rows,
        unique_feature_vectors: labels_by_vector.len(),
        conflicting_vectors: labels_by_vector.values().filter(|l| l.len() > 1).count(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::data::load::csv_from_bytes;

    const SCHEMA: &str = "name: t\nlabel: { column: y, type: integer, positive: [1] }\ncolumns:\n  - { name: a, type: integer }\n  - { name: rate, type: float, nullable: true }\n  - { name: proto, type: categorical, values: [tcp, udp], nullable: true }\n";

    fn dataset(csv: &str) -> Result<Dataset, InvalidData> {
        let schema = Schema::from_yaml_str(Path::new("s.yaml"), SCHEMA).unwrap();
        let table = csv_from_bytes(Path::new("d.csv"), csv.as_bytes().to_vec()).unwrap();
        dataset_from_table(&table, &schema)
    }

    #[test]
    fn binary_fingerprint_is_the_attack_bit_hash_and_multiclass_hashes_class_ids() {
        let schema = Schema::from_file(Path::new("data_schema/intrusion.yaml")).unwrap();
        let table =
            crate::data::synthetic::generate(crate::data::synthetic::Profile::Intrusion, 2000, 5);
        let binary = dataset_from_table(&table, &schema).unwrap();
        assert!(binary.classes.is_binary());
        // Exactly the hash netsec always computed: names, values, attack bits.
        assert_eq!(
            binary.fingerprint,
            fingerprint(&binary.feature_names, &binary.features, &binary.labels)
        );
        let label = LabelSpec {
            task: crate::data::schema::Task::Multiclass,
            ..schema.label.clone()
        };
        let multi = binary
            .clone()
            .with_label(&label, &LabelChoice::default())
            .unwrap();
        assert!(multi.classes.len() >= 8);
        assert_eq!(multi.labels, binary.labels, "attack bits are the same");
        assert_ne!(multi.fingerprint, binary.fingerprint);
        let mut choice = LabelChoice::default();
        choice.group.insert(
            "r2l".into(),
            vec!["guess_passwd".into(), "warezclient".into()],
        );
        let grouped = binary.clone().with_label(&label, &choice).unwrap();
        assert_eq!(grouped.classes.len(), multi.classes.len() - 1);
        assert_ne!(grouped.fingerprint, multi.fingerprint);
        // Folding back gives the binary fingerprint.
        let folded = multi
            .with_label(
                &label,
                &LabelChoice {
                    task: Some(crate::data::schema::Task::Binary),
                    ..LabelChoice::default()
                },
            )
            .unwrap();
        assert_eq!(folded.fingerprint, binary.fingerprint);
        // A selection keeps its kind of fingerprint.
        let rows: Vec<usize> = (0..100).collect();
        assert_eq!(
            binary.select(&rows).fingerprint,
            fingerprint(
                &binary.feature_names,
                &binary.features.select(ndarray::Axis(0), &rows),
                &binary.labels[..100]
            )
        );
    }

    #[test]
    fn empty_cells_of_a_nullable_numeric_column_are_missing_values() {
        let data = dataset("a,rate,proto,y\n1,0.5,tcp,1\n2,,udp,0\n3,,,1\n4,0.1,,0\n").unwrap();
        let rate = data.feature_names.iter().position(|n| n == "rate").unwrap();
        let column: Vec<f64> = data.features.column(rate).to_vec();
        assert_eq!(column[0], 0.5);
        assert!(column[1].is_nan() && column[2].is_nan(), "{column:?}");
        // Empty categorical cells encode as `<other>`, never NaN.
        let data = dataset("a,rate,proto,y\n1,0.5,,1\n2,0.7,udp,0\n").unwrap();
        assert!(data.features.iter().all(|v| v.is_finite()));
    }
}
