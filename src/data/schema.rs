//! Schema files: which columns a data set has, their types and allowed values, the label
//! column, and which label values are the attack (positive) class.
//!
//! ```yaml
//! name: phishing
//! label:
//!   column: Result
//!   type: integer            # integer | string | boolean
//!   values: [-1, 1]          # optional: allowed label values
//!   positive: [-1]           # attack values; or `negative: [normal]` = everything else is attack
//! columns:
//!   - { name: URL_Length, type: integer, values: [-1, 0, 1] }
//! ```
//!
//! A multi-class label (one class per label value) says `task: multiclass`; the default,
//! `binary`, folds every value onto attack / normal as above. Its classes are the `values`
//! when listed, else the distinct values in the data, sorted by name (numerically for
//! integer labels), as scikit-learn's `LabelEncoder` sorts them. `negative` lists the normal
//! values (or `positive` the attack ones); giving neither means no value is normal, and then
//! attack-level figures (detection rate, false-positive rate, attack F1) do not exist. A
//! multi-class label whose data has only two values, one normal and one attack, is binary.
//!
//! ```yaml
//! label:
//!   column: label
//!   type: string
//!   task: multiclass         # binary (default) | multiclass
//!   negative: [normal]       # the normal classes; every other class is an attack
//! columns:
//!   - { name: URL_Length, type: integer, values: [-1, 0, 1] }
//!   - { name: duration, type: float, min: 0 }
//!   - { name: protocol_type, type: categorical, values: [tcp, udp, icmp] }
//!   - { name: row_id, type: integer, exclude: "unique per row" }
//! ```

use crate::shared::hash::hex;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::shared::yaml::{YamlError, parse_yaml, read_yaml};

/// A schema file that is malformed or inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Unreadable file, YAML syntax error, unknown or mistyped field.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// The file parses but contradicts itself (e.g. a column listed twice).
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The schema file.
        path: PathBuf,
        /// What is inconsistent, naming the column.
        message: String,
    },
}

impl SchemaError {
    /// The process exit code: bad input (the schema file).
    pub fn exit_code(&self) -> u8 {
        match self {
            SchemaError::Yaml(e) => e.exit_code(),
            SchemaError::Invalid { .. } => crate::exit::BAD_INPUT,
        }
    }
}

/// The value type of one column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Whole numbers (a decimal point with a zero fraction is accepted).
    Integer,
    /// Real numbers.
    Float,
    /// true/false (also 1/0, yes/no).
    Boolean,
    /// Strings from a fixed set, one-hot encoded for the models.
    Categorical,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Integer => "integer",
            ColumnType::Float => "float",
            ColumnType::Boolean => "boolean",
            ColumnType::Categorical => "categorical",
        })
    }
}

/// A value written in a schema's `values:` list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SchemaValue {
    /// An integer such as `-1`.
    Int(i64),
    /// A real number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string such as `tcp`.
    Str(String),
}

impl SchemaValue {
    /// The canonical text of the value, as cells are compared after parsing.
    pub fn canonical(&self) -> String {
        match self {
            SchemaValue::Int(v) => v.to_string(),
            SchemaValue::Float(v) => v.to_string(),
            SchemaValue::Bool(v) => v.to_string(),
            SchemaValue::Str(v) => v.clone(),
        }
    }
}

/// One feature column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Column name as in the file header.
    pub name: String,
    /// Value type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Allowed values (integer and categorical columns); required for categorical ones
    /// unless the column is excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<SchemaValue>>,
    /// Smallest allowed value (numeric columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest allowed value (numeric columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Whether empty cells are allowed (they are encoded as NaN / the "other" category).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nullable: bool,
    /// When set, the column is checked but not used as a feature; the text says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<String>,
    /// Cell texts that mean "missing" here besides an empty cell, e.g. `NaN`, `Infinity`
    /// (compared ignoring case; `inf` and `Infinity` are the same value). The schema's
    /// top-level `missing:` applies to every column that sets none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

impl ColumnSpec {
    /// Whether a cell's text means a missing value in this column.
    pub fn means_missing(&self, text: &str) -> bool {
        means_missing(&self.missing, text)
    }
}

/// Whether `text` is one of the `missing` texts: equal ignoring case, or the same
/// non-finite number (`inf` = `Infinity`, `nan` = `NaN`).
pub fn means_missing(missing: &[String], text: &str) -> bool {
    let text = text.trim();
    let non_finite = |t: &str| t.parse::<f64>().ok().filter(|v| !v.is_finite());
    missing.iter().any(|m| {
        m.eq_ignore_ascii_case(text)
            || match (non_finite(m), non_finite(text)) {
                (Some(a), Some(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                _ => false,
            }
    })
}

/// The type of the label column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelType {
    /// Integer codes such as -1/1 or 0/1.
    Integer,
    /// Names such as `normal`, `neptune`, `smurf`.
    String,
    /// true/false.
    Boolean,
}

/// Whether the label is folded onto attack / normal or keeps one class per value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Two classes, normal and attack (the default).
    #[default]
    Binary,
    /// One class per label value.
    Multiclass,
}

impl Task {
    /// Whether this is the binary task (the default, left out of serialized schemas so
    /// that binary schema hashes stay as they were).
    pub fn is_binary(&self) -> bool {
        *self == Task::Binary
    }

    /// The task's name as written in files.
    pub fn name(self) -> &'static str {
        match self {
            Task::Binary => "binary",
            Task::Multiclass => "multiclass",
        }
    }
}

/// Display names of the two classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassNames {
    /// Name of the attack class, e.g. `phishing`.
    pub positive: String,
    /// Name of the other class, e.g. `legitimate`.
    pub negative: String,
}

impl Default for ClassNames {
    fn default() -> Self {
        ClassNames {
            positive: "attack".into(),
            negative: "normal".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelFile {
    column: String,
    #[serde(rename = "type")]
    label_type: LabelType,
    #[serde(default, skip_serializing_if = "Task::is_binary")]
    task: Task,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<Vec<SchemaValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    positive: Option<Vec<SchemaValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    negative: Option<Vec<SchemaValue>>,
    #[serde(default)]
    names: ClassNames,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// Cell texts that mean "missing" in every column without its own `missing:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    missing: Vec<String>,
    label: LabelFile,
    columns: Vec<ColumnSpec>,
}

/// How label values map onto the attack (positive) class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackRule {
    /// These values are attacks; every other value is normal.
    Positive(BTreeSet<String>),
    /// These values are normal; every other value is an attack (usual for intrusion data).
    Negative(BTreeSet<String>),
}

/// The label column and its mapping onto attack / normal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelSpec {
    /// Column name.
    pub column: String,
    /// Value type.
    pub label_type: LabelType,
    /// Binary (attack / normal) or one class per value. Left out of the serialized form
    /// when binary, so binary schema hashes (and model files) are as before.
    #[serde(default, skip_serializing_if = "Task::is_binary")]
    pub task: Task,
    /// Allowed values (canonical text), if restricted.
    pub values: Option<BTreeSet<String>>,
    /// Which values are attacks.
    pub attack: AttackRule,
    /// Display names of the classes.
    pub names: ClassNames,
}

impl LabelSpec {
    /// The label column typed as a feature column would be (integer, boolean, or a string
    /// as a category), for the typing rules both share.
    pub fn as_column(&self) -> ColumnSpec {
        ColumnSpec {
            name: self.column.clone(),
            column_type: match self.label_type {
                LabelType::Integer => ColumnType::Integer,
                LabelType::Boolean => ColumnType::Boolean,
                LabelType::String => ColumnType::Categorical,
            },
            values: None,
            min: None,
            max: None,
            nullable: false,
            exclude: None,
            missing: Vec::new(),
        }
    }

    /// The class name of a prediction: the attack class's name or the normal one's.
    pub fn class_name(&self, attack: bool) -> &str {
        if attack {
            &self.names.positive
        } else {
            &self.names.negative
        }
    }

    /// The label value to write for a predicted class: the attack value (or the one
    /// non-normal value) for attacks, the normal value for the rest; the class name when
    /// the schema does not pin a single value.
    pub fn value_for(&self, attack: bool) -> String {
        let listed = |set: &BTreeSet<String>, inside: bool| -> Option<String> {
            match (&self.values, inside) {
                (_, true) if set.len() == 1 => set.iter().next().cloned(),
                (Some(values), false) => {
                    let rest: Vec<&String> = values.iter().filter(|v| !set.contains(*v)).collect();
                    (rest.len() == 1).then(|| rest[0].clone())
                }
                _ => None,
            }
        };
        let value = match (&self.attack, attack) {
            (AttackRule::Positive(set), true) | (AttackRule::Negative(set), false) => {
                listed(set, true)
            }
            (AttackRule::Positive(set), false) | (AttackRule::Negative(set), true) => {
                listed(set, false)
            }
        };
        value.unwrap_or_else(|| {
            if attack {
                self.names.positive.clone()
            } else {
                self.names.negative.clone()
            }
        })
    }

    /// Whether the label keeps one class per value.
    pub fn is_multiclass(&self) -> bool {
        self.task == Task::Multiclass
    }

    /// Whether the canonical label text denotes the attack class.
    pub fn is_attack(&self, value: &str) -> bool {
        match &self.attack {
            AttackRule::Positive(set) => set.contains(value),
            AttackRule::Negative(set) => !set.contains(value),
        }
    }
}

/// A validated schema: feature columns in order, the label, and a content hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Data set name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Feature columns in file order (excluded ones included, marked).
    pub columns: Vec<ColumnSpec>,
    /// The label column.
    pub label: LabelSpec,
    /// sha256 of the schema's canonical JSON: two models are comparable only if equal.
    pub hash: String,
}

impl Schema {
    /// Reads and checks a schema file.
    pub fn from_file(path: &Path) -> Result<Schema, SchemaError> {
        let file: SchemaFile = read_yaml(path)?;
        Schema::from_parts(path, file)
    }

    /// Parses and checks schema text; `path` names it in messages.
    pub fn from_yaml_str(path: &Path, text: &str) -> Result<Schema, SchemaError> {
        let file: SchemaFile = parse_yaml(path, text)?;
        Schema::from_parts(path, file)
    }

    fn from_parts(path: &Path, file: SchemaFile) -> Result<Schema, SchemaError> {
        let invalid = |message: String| SchemaError::Invalid {
            path: path.to_owned(),
            message,
        };
        if file.columns.is_empty() {
            return Err(invalid(
                "`columns` is empty: list at least one feature".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for column in &file.columns {
            if !seen.insert(column.name.as_str()) {
                return Err(invalid(format!("column `{}` is listed twice", column.name)));
            }
            check_column(column).map_err(|m| invalid(format!("column `{}`: {m}", column.name)))?;
        }
        if seen.contains(file.label.column.as_str()) {
            return Err(invalid(format!(
                "label column `{}` is also listed as a feature",
                file.label.column
            )));
        }
        if file.columns.iter().all(|c| c.exclude.is_some()) {
            return Err(invalid("every column is excluded: no features left".into()));
        }
        let label = label_spec(file.label).map_err(|m| invalid(format!("label: {m}")))?;
        let mut columns = file.columns;
        for column in &mut columns {
            if column.missing.is_empty() {
                column.missing.clone_from(&file.missing);
            }
        }
        let hash = hash_of(&columns, &label);
        Ok(Schema {
            name: file.name,
            description: file.description,
            columns,
            label,
            hash,
        })
    }

    /// The columns used as model features, in order.
    pub fn features(&self) -> impl Iterator<Item = &ColumnSpec> {
        self.columns.iter().filter(|c| c.exclude.is_none())
    }

    /// Finds a feature column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }
}

fn check_column(column: &ColumnSpec) -> Result<(), String> {
    if let (Some(min), Some(max)) = (column.min, column.max)
        && min > max
    {
        return Err(format!("min {min} is greater than max {max}"));
    }
    match column.column_type {
        ColumnType::Categorical => {
            // An excluded column is only checked, never encoded: any string may do.
            match (&column.values, &column.exclude) {
                (None, Some(_)) => {}
                (None, None) => {
                    return Err("categorical columns need `values` (their categories), \
                         unless they are excluded"
                        .into());
                }
                (Some(values), _) if values.is_empty() => {
                    return Err("`values` is empty".into());
                }
                (Some(_), _) => {}
            }
            if column.min.is_some() || column.max.is_some() {
                return Err("min/max apply only to numeric columns".into());
            }
        }
        ColumnType::Integer => {
            if let Some(values) = &column.values
                && let Some(bad) = values.iter().find(|v| !matches!(v, SchemaValue::Int(_)))
            {
                return Err(format!("value `{}` is not an integer", bad.canonical()));
            }
        }
        ColumnType::Float | ColumnType::Boolean => {
            if column.values.is_some() {
                return Err(format!(
                    "`values` is not supported for {} columns (use min/max)",
                    column.column_type
                ));
            }
            if column.column_type == ColumnType::Boolean
                && (column.min.is_some() || column.max.is_some())
            {
                return Err("min/max apply only to numeric columns".into());
            }
        }
    }
    Ok(())
}

fn canonical_set(values: Vec<SchemaValue>) -> BTreeSet<String> {
    values.iter().map(SchemaValue::canonical).collect()
}

fn label_spec(file: LabelFile) -> Result<LabelSpec, String> {
    let values = file.values.map(canonical_set);
    let attack = match (file.positive, file.negative) {
        (Some(p), None) if !p.is_empty() => AttackRule::Positive(canonical_set(p)),
        (None, Some(n)) if !n.is_empty() => AttackRule::Negative(canonical_set(n)),
        (Some(_), Some(_)) => return Err("give either `positive` or `negative`, not both".into()),
        // A multi-class label may have no normal class at all.
        (None, None) if file.task == Task::Multiclass => AttackRule::Negative(BTreeSet::new()),
        (Some(p), None) | (None, Some(p)) if file.task == Task::Multiclass && p.is_empty() => {
            AttackRule::Negative(BTreeSet::new())
        }
        _ => {
            return Err(
                "say which values are attacks with `positive: [..]` (or `negative: [..]` for the normal ones)"
                    .into(),
            );
        }
    };
    if let Some(allowed) = &values {
        let listed = match &attack {
            AttackRule::Positive(s) | AttackRule::Negative(s) => s,
        };
        if let Some(missing) = listed.iter().find(|v| !allowed.contains(*v)) {
            return Err(format!("class value `{missing}` is not among `values`"));
        }
    }
    if file.task == Task::Multiclass && file.label_type == LabelType::Boolean {
        return Err("a boolean label has two values: it cannot be `task: multiclass`".into());
    }
    Ok(LabelSpec {
        column: file.column,
        label_type: file.label_type,
        task: file.task,
        values,
        attack,
        names: file.names,
    })
}

fn hash_of(columns: &[ColumnSpec], label: &LabelSpec) -> String {
    let canonical = serde_json::to_vec(&(columns, label)).unwrap_or_default();
    hex(&Sha256::digest(canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> Result<Schema, SchemaError> {
        Schema::from_yaml_str(Path::new("s.yaml"), text)
    }

    const LABEL: &str = "label: { column: y, type: integer, positive: [1] }\n";

    #[test]
    fn shipped_phishing_schema_loads() {
        let s = Schema::from_file(Path::new("data_schema/phishing.yaml")).unwrap();
        assert_eq!(s.features().count(), 30);
        assert!(s.label.is_attack("-1"));
        assert!(!s.label.is_attack("1"));
        assert_eq!(s.label.value_for(true), "-1");
        assert_eq!(s.label.value_for(false), "1");
        assert_eq!(s.hash.len(), 64);
    }

    #[test]
    fn negative_rule_makes_everything_else_attack() {
        let s = schema(
            "name: ids\nlabel: { column: label, type: string, negative: [normal] }\ncolumns:\n  - { name: proto, type: categorical, values: [tcp, udp] }\n",
        )
        .unwrap();
        assert!(s.label.is_attack("neptune"));
        assert!(!s.label.is_attack("normal"));
        assert_eq!(s.label.value_for(false), "normal");
        assert_eq!(s.label.value_for(true), "attack");
    }

    #[test]
    fn duplicate_column_is_rejected() {
        let text = format!(
            "name: x\n{LABEL}columns:\n  - {{ name: a, type: float }}\n  - {{ name: a, type: float }}\n"
        );
        let err = schema(&text).unwrap_err().to_string();
        assert!(err.contains("`a` is listed twice"), "{err}");
    }

    #[test]
    fn categorical_without_values_is_rejected() {
        let text = format!("name: x\n{LABEL}columns:\n  - {{ name: p, type: categorical }}\n");
        let err = schema(&text).unwrap_err().to_string();
        assert!(err.contains("column `p`"), "{err}");
    }

    #[test]
    fn typo_in_type_names_line() {
        let text = format!("name: x\n{LABEL}columns:\n  - {{ name: p, type: floot }}\n");
        let err = schema(&text).unwrap_err().to_string();
        assert!(err.starts_with("s.yaml:4:"), "{err}");
    }

    #[test]
    fn missing_attack_class_is_rejected() {
        let text = "name: x\nlabel: { column: y, type: integer }\ncolumns:\n  - { name: a, type: float }\n";
        let err = schema(text).unwrap_err().to_string();
        assert!(err.contains("positive"), "{err}");
    }
}
