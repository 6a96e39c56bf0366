//! `netsec data schema infer`: a first schema for a data set nobody has described yet.
//!
//! Every column's type is read off its cells (integer, float, boolean, else a categorical
//! string), with its allowed values when there are few, its observed range when there are
//! many, and its empty cells. The label column is the one given, else the first column with
//! a common label name, else the last column; the attack class is the one given, else a
//! guess. The result renders as a commented YAML schema that says where each decision came
//! from, so that a reviewer knows which lines to check; anything guessed is marked `GUESS`.
//!
//! Ranges are written as comments, not as `min`/`max`, except for a lower bound of 0 (and
//! an upper bound of 1 for rates): a tighter range taken from one sample would reject the
//! next day's larger byte count in `validate` and `predict`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::load::Table;
use super::typed::{Cell, cells_of, parse_bool};

/// Integer columns with at most this many distinct values list them as `values`.
const MAX_INTEGER_VALUES: usize = 10;
/// String columns with at most this many distinct values become categorical features;
/// beyond it they are excluded (too many one-hot columns, most seen a handful of times).
pub const MAX_CATEGORIES: usize = 100;
/// A label with more distinct values than this is not a class label.
const MAX_LABEL_VALUES: usize = 50;
/// Offending cells quoted in a mixed-type error.
const SAMPLES: usize = 5;
/// Names that usually hold the label, in order of preference (compared case-insensitively).
pub const LABEL_NAMES: [&str; 11] = [
    "label",
    "class",
    "result",
    "attack",
    "is_phishing",
    "is_attack",
    "is_malicious",
    "malicious",
    "target",
    "outcome",
    "y",
];
/// Label values that usually mean "not an attack".
const NORMAL_NAMES: [&str; 9] = [
    "normal",
    "benign",
    "legitimate",
    "legit",
    "clean",
    "good",
    "ham",
    "negative",
    "none",
];
/// Label values that usually mean "attack".
const ATTACK_NAMES: [&str; 10] = [
    "attack",
    "attacks",
    "malicious",
    "phishing",
    "malware",
    "anomaly",
    "intrusion",
    "spam",
    "bad",
    "positive",
];

/// Data from which no usable schema can be inferred. Every variant is bad input (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// `--label` names a column the file lacks.
    #[error("{source_name}: no column `{column}` for the label (columns: {available})")]
    NoLabelColumn {
        /// The data source.
        source_name: String,
        /// The requested column.
        column: String,
        /// The file's columns, comma-separated.
        available: String,
    },
    /// The label column has one value only.
    #[error(
        "{source_name}: label column `{column}` has the single value `{value}` in every row; a classifier needs both attack and normal rows"
    )]
    SingleLabel {
        /// The data source.
        source_name: String,
        /// The label column.
        column: String,
        /// Its only value.
        value: String,
    },
    /// The label column has no values at all.
    #[error("{source_name}: label column `{column}` is empty in every row")]
    EmptyLabel {
        /// The data source.
        source_name: String,
        /// The label column.
        column: String,
    },
    /// The label column does not look like classes.
    #[error("{source_name}: label column `{column}` {why}; choose the label with --label COLUMN")]
    NotALabel {
        /// The data source.
        source_name: String,
        /// The label column.
        column: String,
        /// What makes it unsuitable.
        why: String,
    },
    /// A `--positive` / `--negative` value that no row has.
    #[error(
        "{source_name}: class value `{value}` does not occur in label column `{column}` (values: {values})"
    )]
    UnknownClass {
        /// The data source.
        source_name: String,
        /// The label column.
        column: String,
        /// The value given.
        value: String,
        /// The values that occur, comma-separated.
        values: String,
    },
    /// The given classes leave no normal (or no attack) value.
    #[error("{source_name}: {message}")]
    OneClass {
        /// The data source.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// Columns that mix numbers and words.
    #[error("{source_name}: {}", .columns.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    MixedTypes {
        /// The data source.
        source_name: String,
        /// Each mixed column with sample offending cells.
        columns: Vec<MixedColumn>,
    },
    /// No column is left to learn from.
    #[error("{source_name}: no usable feature column ({reasons})")]
    NoFeatures {
        /// The data source.
        source_name: String,
        /// Why each column was excluded.
        reasons: String,
    },
}

impl InferError {
    /// The process exit code: bad input (the data).
    pub fn exit_code(&self) -> u8 {
        match self {
            InferError::NoLabelColumn { .. } => crate::exit::BAD_INPUT,
            InferError::SingleLabel { .. } => crate::exit::BAD_INPUT,
            InferError::EmptyLabel { .. } => crate::exit::BAD_INPUT,
            InferError::NotALabel { .. } => crate::exit::BAD_INPUT,
            InferError::UnknownClass { .. } => crate::exit::BAD_INPUT,
            InferError::OneClass { .. } => crate::exit::BAD_INPUT,
            InferError::MixedTypes { .. } => crate::exit::BAD_INPUT,
            InferError::NoFeatures { .. } => crate::exit::BAD_INPUT,
        }
    }
}

/// A column with both numbers and words, and where the words are.
#[derive(Debug, Clone, PartialEq)]
pub struct MixedColumn {
    /// Column name.
    pub column: String,
    /// Cells that are numbers.
    pub numbers: usize,
    /// Cells that are not.
    pub words: usize,
    /// (place, cell) of the first offending cells, the place as `file:LINE` (CSV) or
    /// `file row N`.
    pub samples: Vec<(String, String)>,
}

impl std::fmt::Display for MixedColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let samples: Vec<String> = self
            .samples
            .iter()
            .map(|(place, value)| format!("{place} `{value}`"))
            .collect();
        write!(
            f,
            "column `{}` mixes numbers and words: {} of {} cells are not numbers ({}); \
             fix or empty those cells, or drop the column",
            self.column,
            self.words,
            self.numbers + self.words,
            samples.join(", ")
        )
    }
}

/// What the user says about the label.
#[derive(Debug, Clone, Default)]
pub struct InferOptions {
    /// Schema name (usually the file's stem).
    pub name: String,
    /// The label column; guessed when `None`.
    pub label: Option<String>,
    /// The attack values; guessed when both this and `negative` are empty.
    pub positive: Vec<String>,
    /// The normal values (everything else is an attack).
    pub negative: Vec<String>,
}

/// The inferred type of a column.
#[derive(Debug, Clone, PartialEq)]
pub enum InferredType {
    /// Whole numbers, with their values when there are few.
    Integer {
        /// Sorted distinct values, when at most `MAX_INTEGER_VALUES`.
        values: Option<Vec<i64>>,
    },
    /// Real numbers.
    Float,
    /// true/false words (possibly with 0/1).
    Boolean,
    /// Strings; `values` by frequency, `None` when there are too many to list.
    Categorical {
        /// (value, rows), most frequent first.
        values: Option<Vec<(String, usize)>>,
    },
}

/// One inferred feature column.
#[derive(Debug, Clone, PartialEq)]
pub struct InferredColumn {
    /// Column name.
    pub name: String,
    /// Its type.
    pub column_type: InferredType,
    /// Empty cells.
    pub missing: usize,
    /// Observed (min, max) of numeric columns.
    pub range: Option<(f64, f64)>,
    /// Distinct non-empty values.
    pub distinct: usize,
    /// Rows per value of integer columns with few values.
    pub value_counts: BTreeMap<i64, usize>,
    /// Why the column should not be a feature, if it should not.
    pub exclude: Option<String>,
}

/// How the attack class was decided.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassRule {
    /// These values are attacks.
    Positive(Vec<String>),
    /// These values are normal; all others are attacks.
    Negative(Vec<String>),
}

/// The inferred label.
#[derive(Debug, Clone, PartialEq)]
pub struct InferredLabel {
    /// Column name.
    pub column: String,
    /// `integer`, `string` or `boolean`.
    pub label_type: &'static str,
    /// Why this column: given, common name, or last column.
    pub column_rule: String,
    /// (value, rows), most frequent first.
    pub values: Vec<(String, usize)>,
    /// Empty label cells.
    pub missing: usize,
    /// Which values are attacks.
    pub rule: ClassRule,
    /// `None` when given by the user; the reasoning when guessed.
    pub guess: Option<String>,
    /// A string label with three or more values: proposed as `task: multiclass`, one class
    /// per value. Its normal values are guessed from names such as normal / benign /
    /// legitimate (any case); when none reads as normal, there is no normal class.
    pub multiclass: bool,
}

/// An inferred schema, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct InferredSchema {
    /// Schema name.
    pub name: String,
    /// The data source.
    pub source: String,
    /// Data rows.
    pub rows: usize,
    /// The label.
    pub label: InferredLabel,
    /// Feature columns in file order.
    pub columns: Vec<InferredColumn>,
}

impl InferredSchema {
    /// Warnings worth showing besides the file: empty columns and label cells, guesses.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for c in &self.columns {
            if c.missing == self.rows {
                warnings.push(format!(
                    "column `{}` is empty in every row; it is excluded",
                    c.name
                ));
            }
        }
        if self.label.missing > 0 {
            warnings.push(format!(
                "label column `{}` is empty in {} rows; `data validate` rejects those rows",
                self.label.column, self.label.missing
            ));
        }
        if let Some(guess) = &self.label.guess {
            warnings.push(format!(
                "the attack class is a guess ({guess}); confirm it in the schema, or pass --positive or --negative"
            ));
        }
        warnings
    }
}

/// What a cell looks like before any schema says what it is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Int(i64),
    Float(f64),
    Bool(bool),
    Word,
}

fn shape(cell: &Cell) -> Shape {
    match cell {
        Cell::Int(v) => Shape::Int(*v),
        Cell::Float(v) => Shape::Float(*v),
        Cell::Bool(v) => Shape::Bool(*v),
        Cell::Text(t) => {
            let t = t.trim();
            if let Ok(v) = t.parse::<i64>() {
                Shape::Int(v)
            } else if let Ok(v) = t.parse::<f64>()
                && v.is_finite()
            {
                Shape::Float(v)
            } else {
                match t.to_ascii_lowercase().as_str() {
                    "true" | "yes" => Shape::Bool(true),
                    "false" | "no" => Shape::Bool(false),
                    _ => Shape::Word,
                }
            }
        }
    }
}

/// Counts of one column's cells.
struct Profile {
    name: String,
    rows: usize,
    missing: usize,
    ints: usize,
    floats: usize,
    bools: usize,
    words: usize,
    /// Every distinct non-empty cell text with its count.
    counts: BTreeMap<String, usize>,
    min: f64,
    max: f64,
    /// Integers only: every distinct value with its rows.
    int_values: BTreeMap<i64, usize>,
    /// (place, cell) of the first words, for mixed-type messages.
    word_samples: Vec<(String, String)>,
}

impl Profile {
    fn of(table: &Table, name: &str, cells: Vec<Option<Cell>>) -> Profile {
        let mut p = Profile {
            name: name.to_owned(),
            rows: cells.len(),
            missing: 0,
            ints: 0,
            floats: 0,
            bools: 0,
            words: 0,
            counts: BTreeMap::new(),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            int_values: BTreeMap::new(),
            word_samples: Vec::new(),
        };
        for (row, cell) in cells.into_iter().enumerate() {
            let Some(cell) = cell else {
                p.missing += 1;
                continue;
            };
            let text = cell.to_string();
            match shape(&cell) {
                Shape::Int(v) => {
                    p.ints += 1;
                    *p.int_values.entry(v).or_default() += 1;
                    p.min = p.min.min(v as f64);
                    p.max = p.max.max(v as f64);
                }
                Shape::Float(v) => {
                    p.floats += 1;
                    p.min = p.min.min(v);
                    p.max = p.max.max(v);
                }
                Shape::Bool(_) => p.bools += 1,
                Shape::Word => {
                    p.words += 1;
                    if p.word_samples.len() < SAMPLES {
                        p.word_samples.push((table.locate(row), text.clone()));
                    }
                }
            }
            *p.counts.entry(text).or_default() += 1;
        }
        p
    }

    fn present(&self) -> usize {
        self.rows - self.missing
    }

    fn numbers(&self) -> usize {
        self.ints + self.floats
    }

    /// Bool words mixed with 0/1 integers still read as booleans.
    fn is_boolean(&self) -> bool {
        self.bools > 0
            && self.words == 0
            && self.floats == 0
            && self.int_values.keys().all(|v| *v == 0 || *v == 1)
    }

    /// Whether numbers and words are mixed so that neither reading is safe: numbers are
    /// the majority (a categorical of numbers and a few words is usually dirty data).
    fn mixed(&self) -> Option<MixedColumn> {
        let words = self.words + self.bools;
        (self.numbers() > 0 && words > 0 && self.numbers() >= words && !self.is_boolean()).then(
            || MixedColumn {
                column: self.name.clone(),
                numbers: self.numbers(),
                words,
                samples: self.word_samples.clone(),
            },
        )
    }

    /// Values by frequency, most frequent first (ties by name).
    fn by_frequency(&self) -> Vec<(String, usize)> {
        let mut values: Vec<(String, usize)> =
            self.counts.iter().map(|(v, c)| (v.clone(), *c)).collect();
        values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        values
    }

    fn column(&self) -> InferredColumn {
        let distinct = self.counts.len();
        let numeric = self.words == 0 && self.bools == 0;
        let column_type = if self.present() == 0 {
            InferredType::Float
        } else if self.is_boolean() {
            InferredType::Boolean
        } else if numeric && self.floats == 0 {
            InferredType::Integer {
                values: (self.int_values.len() <= MAX_INTEGER_VALUES)
                    .then(|| self.int_values.keys().copied().collect()),
            }
        } else if numeric {
            InferredType::Float
        } else {
            InferredType::Categorical {
                values: (distinct <= MAX_CATEGORIES).then(|| self.by_frequency()),
            }
        };
        let range = (numeric && self.present() > 0).then_some((self.min, self.max));
        let exclude = self.exclusion(&column_type, distinct);
        InferredColumn {
            name: self.name.clone(),
            column_type,
            missing: self.missing,
            range,
            distinct,
            value_counts: if self.int_values.len() <= MAX_INTEGER_VALUES {
                self.int_values.clone()
            } else {
                BTreeMap::new()
            },
            exclude,
        }
    }

    fn exclusion(&self, column_type: &InferredType, distinct: usize) -> Option<String> {
        if self.present() == 0 {
            return Some("every cell is empty".into());
        }
        if distinct == 1 {
            let value = self.counts.keys().next().cloned().unwrap_or_default();
            return Some(if self.missing == 0 {
                format!("constant: every row is `{value}`")
            } else {
                format!(
                    "constant: every non-empty cell is `{value}` ({} empty)",
                    self.missing
                )
            });
        }
        let unique = self.missing == 0 && distinct == self.rows && self.rows >= 20;
        let id_name = {
            let lower = self.name.to_ascii_lowercase();
            lower == "id"
                || lower.ends_with("_id")
                || lower.ends_with(" id")
                || lower == "index"
                || lower == "uuid"
                || lower.starts_with("unnamed")
        };
        match column_type {
            InferredType::Integer { .. } if unique => {
                let contiguous = self.max - self.min + 1.0 == self.rows as f64;
                (contiguous || id_name)
                    .then(|| "unique per row: looks like a row id, not a feature".to_owned())
            }
            InferredType::Categorical { .. } if unique => {
                Some("unique per row: looks like a row id, not a feature".to_owned())
            }
            InferredType::Categorical { values: None } => Some(format!(
                "{distinct} distinct strings, too many to one-hot encode (at most {MAX_CATEGORIES}); \
                 list the frequent ones as `values` to use it"
            )),
            _ => None,
        }
    }
}

/// Infers a schema from `table`.
pub fn infer(table: &Table, options: &InferOptions) -> Result<InferredSchema, InferError> {
    let source_name = table.source.clone();
    let names: Vec<String> = table
        .frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let (label_column, column_rule) = choose_label(&names, options, &source_name)?;
    let mut profiles = Vec::new();
    for column in table.frame.columns() {
        let name = column.name().to_string();
        let cells = cells_of(column.as_materialized_series());
        profiles.push(Profile::of(table, &name, cells));
    }
    let mixed: Vec<MixedColumn> = profiles.iter().filter_map(Profile::mixed).collect();
    if !mixed.is_empty() {
        return Err(InferError::MixedTypes {
            source_name,
            columns: mixed,
        });
    }
    let mut label = None;
    let mut columns = Vec::new();
    for profile in &profiles {
        if profile.name == label_column {
            label = Some(infer_label(profile, &column_rule, options, &source_name)?);
        } else {
            columns.push(profile.column());
        }
    }
    let Some(label) = label else {
        // `choose_label` picked a name from the frame, so the profile exists.
        return Err(InferError::NoLabelColumn {
            source_name,
            column: label_column,
            available: names.join(", "),
        });
    };
    if columns.iter().all(|c| c.exclude.is_some()) {
        let reasons: Vec<String> = columns
            .iter()
            .map(|c| format!("`{}`: {}", c.name, c.exclude.clone().unwrap_or_default()))
            .collect();
        return Err(InferError::NoFeatures {
            source_name,
            reasons: if reasons.is_empty() {
                "the file has only the label column".into()
            } else {
                reasons.join("; ")
            },
        });
    }
    Ok(InferredSchema {
        name: options.name.clone(),
        source: source_name,
        rows: table.len(),
        label,
        columns,
    })
}

fn choose_label(
    names: &[String],
    options: &InferOptions,
    source_name: &str,
) -> Result<(String, String), InferError> {
    if let Some(given) = &options.label {
        return if names.contains(given) {
            Ok((given.clone(), "given with --label".into()))
        } else {
            Err(InferError::NoLabelColumn {
                source_name: source_name.to_owned(),
                column: given.clone(),
                available: names.join(", "),
            })
        };
    }
    for candidate in LABEL_NAMES {
        if let Some(name) = names.iter().find(|n| n.eq_ignore_ascii_case(candidate)) {
            return Ok((
                name.clone(),
                format!("guessed: `{name}` is a common name for a label column"),
            ));
        }
    }
    let last = names.last().cloned().unwrap_or_default();
    Ok((
        last,
        format!(
            "guessed: the last column (no column is named {}); pass --label to choose",
            LABEL_NAMES.join("/")
        ),
    ))
}

fn infer_label(
    profile: &Profile,
    column_rule: &str,
    options: &InferOptions,
    source_name: &str,
) -> Result<InferredLabel, InferError> {
    let column = profile.name.clone();
    let not_a_label = |why: String| InferError::NotALabel {
        source_name: source_name.to_owned(),
        column: column.clone(),
        why,
    };
    if profile.present() == 0 {
        return Err(InferError::EmptyLabel {
            source_name: source_name.to_owned(),
            column,
        });
    }
    let label_type = if profile.is_boolean() {
        "boolean"
    } else if profile.words > 0 || profile.bools > 0 {
        "string"
    } else if profile.floats == 0 {
        "integer"
    } else {
        return Err(not_a_label(format!(
            "holds real numbers ({} .. {})",
            profile.min, profile.max
        )));
    };
    // Canonical text as `validate` will compare it: integers and booleans normalised.
    let canonical = |text: &str| -> String {
        match label_type {
            "integer" => text
                .trim()
                .parse::<i64>()
                .map_or_else(|_| text.trim().to_owned(), |v| v.to_string()),
            "boolean" => parse_bool(text).map_or_else(|| text.trim().to_owned(), |b| b.to_string()),
            _ => text.trim().to_owned(),
        }
    };
    let mut merged: BTreeMap<String, usize> = BTreeMap::new();
    for (value, count) in &profile.counts {
        *merged.entry(canonical(value)).or_default() += count;
    }
    let mut values: Vec<(String, usize)> = merged.into_iter().collect();
    values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if values.len() == 1 {
        return Err(InferError::SingleLabel {
            source_name: source_name.to_owned(),
            column,
            value: values[0].0.clone(),
        });
    }
    if values.len() > MAX_LABEL_VALUES {
        return Err(not_a_label(format!(
            "has {} distinct values, more than a class label has (at most {MAX_LABEL_VALUES})",
            values.len()
        )));
    }
    let present: Vec<&str> = values.iter().map(|(v, _)| v.as_str()).collect();
    let check = |given: &[String]| -> Result<Vec<String>, InferError> {
        let mut out = Vec::new();
        for value in given {
            let value = canonical(value);
            if !present.contains(&value.as_str()) {
                return Err(InferError::UnknownClass {
                    source_name: source_name.to_owned(),
                    column: column.clone(),
                    value,
                    values: present.join(", "),
                });
            }
            if !out.contains(&value) {
                out.push(value);
            }
        }
        if out.len() == present.len() {
            return Err(InferError::OneClass {
                source_name: source_name.to_owned(),
                message: format!(
                    "the given classes cover every value of label column `{column}`; \
                     leave at least one value for the other class"
                ),
            });
        }
        Ok(out)
    };
    let multiclass = label_type == "string" && values.len() >= 3;
    let (rule, guess) = if !options.positive.is_empty() {
        (ClassRule::Positive(check(&options.positive)?), None)
    } else if !options.negative.is_empty() {
        (ClassRule::Negative(check(&options.negative)?), None)
    } else if multiclass {
        let (rule, why) = guess_normal(&values);
        (rule, Some(why))
    } else {
        let (rule, why) = guess_classes(&values);
        (rule, Some(why))
    };
    Ok(InferredLabel {
        column: column.clone(),
        label_type,
        column_rule: column_rule.to_owned(),
        values,
        missing: profile.missing,
        rule,
        guess,
        multiclass,
    })
}

/// Guesses the normal classes of a multi-class label from their names (normal, benign,
/// legitimate, ... in any case): `Negative` of those, or `Negative` of none when no value
/// reads as normal (a label with no normal class).
fn guess_normal(values: &[(String, usize)]) -> (ClassRule, String) {
    let normal: Vec<String> = values
        .iter()
        .filter(|(v, _)| NORMAL_NAMES.iter().any(|n| n.eq_ignore_ascii_case(v)))
        .map(|(v, _)| v.clone())
        .collect();
    if normal.is_empty() {
        let why = format!(
            "no value reads as normal traffic ({}), so no class is normal and attack-level \
             figures (detection rate, false-positive rate) do not exist; add \
             `negative: [VALUE]` if one is",
            NORMAL_NAMES[..3].join(", ")
        );
        return (ClassRule::Negative(Vec::new()), why);
    }
    let why = format!(
        "`{}` reads as normal traffic; every other value is an attack class",
        normal.join("`, `")
    );
    (ClassRule::Negative(normal), why)
}

/// Guesses the attack class from value names and frequencies; `values` are most frequent
/// first and number at least two.
fn guess_classes(values: &[(String, usize)]) -> (ClassRule, String) {
    let is = |list: &[&str], v: &str| list.iter().any(|n| n.eq_ignore_ascii_case(v));
    let normal: Vec<String> = values
        .iter()
        .filter(|(v, _)| is(&NORMAL_NAMES, v))
        .map(|(v, _)| v.clone())
        .collect();
    let others = |set: &[String]| -> Vec<String> {
        values
            .iter()
            .filter(|(v, _)| !set.contains(v))
            .map(|(v, _)| v.clone())
            .collect()
    };
    if !normal.is_empty() && normal.len() < values.len() {
        let why = format!("`{}` reads as the normal class", normal.join("`, `"));
        return if values.len() == 2 {
            (ClassRule::Positive(others(&normal)), why)
        } else {
            (
                ClassRule::Negative(normal),
                format!("{why}; every other value is an attack"),
            )
        };
    }
    let attack: Vec<String> = values
        .iter()
        .filter(|(v, _)| is(&ATTACK_NAMES, v))
        .map(|(v, _)| v.clone())
        .collect();
    if !attack.is_empty() && attack.len() < values.len() {
        let why = format!("`{}` reads as an attack name", attack.join("`, `"));
        return (ClassRule::Positive(attack), why);
    }
    if values.len() == 2 {
        let set: BTreeSet<&str> = values.iter().map(|(v, _)| v.as_str()).collect();
        let conventional = if set == BTreeSet::from(["0", "1"]) {
            Some(("1", "in 0/1 labels 1 usually marks the attack"))
        } else if set == BTreeSet::from(["-1", "1"]) {
            Some((
                "-1",
                "in -1/1 labels of the UCI phishing set -1 marks phishing",
            ))
        } else if set == BTreeSet::from(["false", "true"]) {
            Some(("true", "`true` usually marks the attack"))
        } else {
            None
        };
        if let Some((value, why)) = conventional {
            return (ClassRule::Positive(vec![value.to_owned()]), why.to_owned());
        }
        let minority = values[1].0.clone();
        return (
            ClassRule::Positive(vec![minority.clone()]),
            format!("`{minority}` is the rarer value, and attacks are usually rarer"),
        );
    }
    let majority = values[0].0.clone();
    (
        ClassRule::Negative(vec![majority.clone()]),
        format!(
            "`{majority}` is the most frequent value, taken as normal; every other value is an attack"
        ),
    )
}

/// A YAML scalar for a string: plain when unambiguous, else double-quoted (JSON escapes
/// are valid YAML).
pub fn yaml_str(text: &str) -> String {
    let plain = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true"
                | "false"
                | "yes"
                | "no"
                | "on"
                | "off"
                | "y"
                | "n"
                | "null"
                | "nan"
                | "inf"
                | "infinity"
        );
    if plain {
        text.to_owned()
    } else {
        serde_json::Value::String(text.to_owned()).to_string()
    }
}

fn label_value(label: &InferredLabel, value: &str) -> String {
    match label.label_type {
        "string" => yaml_str(value),
        _ => value.to_owned(),
    }
}

fn counts_text(values: &[(String, usize)], limit: usize) -> String {
    let mut parts: Vec<String> = values
        .iter()
        .take(limit)
        .map(|(v, c)| format!("{v} {c}"))
        .collect();
    if values.len() > limit {
        parts.push(format!("... {} more", values.len() - limit));
    }
    parts.join(", ")
}

fn number(v: f64) -> String {
    format!("{v}")
}

impl InferredSchema {
    /// The schema as commented YAML that `netsec data validate` reads unchanged.
    pub fn to_yaml(&self) -> String {
        let mut y = String::new();
        let _ = self.write_yaml(&mut y);
        y
    }

    fn write_yaml(&self, y: &mut String) -> std::fmt::Result {
        let excluded = self.columns.iter().filter(|c| c.exclude.is_some()).count();
        writeln!(
            y,
            "# Schema inferred by `netsec data schema infer` from {} ({} rows, {} feature columns, {} excluded).",
            self.source,
            self.rows,
            self.columns.len(),
            excluded
        )?;
        writeln!(
            y,
            "# Review it before training: types, values and ranges come from this one file, and"
        )?;
        writeln!(
            y,
            "# lines marked GUESS need a decision. Check data against it with"
        )?;
        writeln!(y, "#   netsec data validate --schema THIS_FILE DATA")?;
        writeln!(
            y,
            "# Categorical values not listed here are encoded as `<other>` by predict."
        )?;
        writeln!(y, "name: {}", yaml_str(&self.name))?;
        let l = &self.label;
        writeln!(y, "label:")?;
        writeln!(y, "  # label column: {}", l.column_rule)?;
        writeln!(y, "  column: {}", yaml_str(&l.column))?;
        writeln!(y, "  type: {}", l.label_type)?;
        if l.multiclass {
            writeln!(
                y,
                "  # multi-class: {} values, one class each (a grid file may fold them with \
                 `task: binary` or merge rare ones with `group`)",
                l.values.len()
            )?;
            writeln!(y, "  task: multiclass")?;
        }
        writeln!(
            y,
            "  # {} values (rows): {}",
            l.values.len(),
            counts_text(&l.values, 20)
        )?;
        if l.missing > 0 {
            writeln!(
                y,
                "  # WARNING: {} rows have no label; validate rejects them",
                l.missing
            )?;
        }
        let mut sorted: Vec<&String> = l.values.iter().map(|(v, _)| v).collect();
        if l.label_type == "integer" {
            sorted.sort_by_key(|v| v.parse::<i64>().unwrap_or(i64::MAX));
        }
        let listed: Vec<String> = sorted.iter().map(|v| label_value(l, v)).collect();
        if l.values.len() == 2 {
            writeln!(y, "  values: [{}]", listed.join(", "))?;
        } else {
            writeln!(
                y,
                "  # `values` is left out so that attack names not seen here still validate."
            )?;
        }
        if let Some(why) = &l.guess {
            writeln!(y, "  # GUESS (confirm): {why}.")?;
        }
        match &l.rule {
            ClassRule::Positive(values) => {
                let v: Vec<String> = values.iter().map(|v| label_value(l, v)).collect();
                writeln!(
                    y,
                    "  # the attack (positive) class for precision, recall and F1{}",
                    if l.guess.is_none() { ", as given" } else { "" }
                )?;
                writeln!(y, "  positive: [{}]", v.join(", "))?;
            }
            ClassRule::Negative(values) if values.is_empty() => {
                writeln!(y, "  # no normal class: every class is an attack")?;
            }
            ClassRule::Negative(values) => {
                let v: Vec<String> = values.iter().map(|v| label_value(l, v)).collect();
                writeln!(
                    y,
                    "  # the normal values{}; every other value is an attack (positive)",
                    if l.guess.is_none() { ", as given" } else { "" }
                )?;
                writeln!(y, "  negative: [{}]", v.join(", "))?;
            }
        }
        writeln!(y, "columns:")?;
        for c in &self.columns {
            self.write_column(y, c)?;
        }
        Ok(())
    }

    fn write_column(&self, y: &mut String, c: &InferredColumn) -> std::fmt::Result {
        let mut notes = Vec::new();
        let mut fields = vec![format!("name: {}", yaml_str(&c.name))];
        match &c.column_type {
            InferredType::Integer { values } => {
                fields.push("type: integer".into());
                // An excluded column is only checked: it keeps no value list to trip on.
                if let Some(values) = values.as_ref().filter(|_| c.exclude.is_none()) {
                    let v: Vec<String> = values.iter().map(i64::to_string).collect();
                    let counts: Vec<(String, usize)> = values
                        .iter()
                        .map(|v| (v.to_string(), c.value_counts.get(v).copied().unwrap_or(0)))
                        .collect();
                    notes.push(format!(
                        "{} values (rows): {}",
                        values.len(),
                        counts_text(&counts, 10)
                    ));
                    fields.push(format!("values: [{}]", v.join(", ")));
                }
            }
            InferredType::Float => fields.push("type: float".into()),
            InferredType::Boolean => fields.push("type: boolean".into()),
            InferredType::Categorical { values } => {
                fields.push("type: categorical".into());
                match values {
                    Some(values) if c.exclude.is_none() => {
                        notes.push(format!(
                            "{} values (rows): {}",
                            values.len(),
                            counts_text(values, 10)
                        ));
                        let v: Vec<String> = values.iter().map(|(v, _)| yaml_str(v)).collect();
                        fields.push(format!("values: [{}]", v.join(", ")));
                    }
                    _ => notes.push(format!("{} distinct values", c.distinct)),
                }
            }
        }
        if let Some((min, max)) = c.range {
            let integer_values = matches!(c.column_type, InferredType::Integer { values: Some(_) });
            if !integer_values || c.exclude.is_some() {
                notes.push(format!(
                    "observed {} .. {}, {} distinct",
                    number(min),
                    number(max),
                    c.distinct
                ));
                if min >= 0.0 && c.exclude.is_none() {
                    fields.push("min: 0".into());
                    if c.column_type == InferredType::Float && max <= 1.0 {
                        fields.push("max: 1".into());
                    }
                }
            }
        }
        if c.missing > 0 {
            notes.push(format!("{} empty cells", c.missing));
            fields.push("nullable: true".into());
        }
        if let Some(reason) = &c.exclude {
            notes.insert(0, "EXCLUDED".into());
            fields.push(format!(
                "exclude: {}",
                serde_json::Value::String(reason.clone())
            ));
        }
        if !notes.is_empty() {
            writeln!(y, "  # {}: {}", c.name, notes.join("; "))?;
        }
        writeln!(y, "  - {{ {} }}", fields.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    fn table(columns: Vec<Column>) -> Table {
        let rows = columns[0].len();
        Table::from_frame("t", DataFrame::new(rows, columns).unwrap())
    }

    fn text(name: &str, values: &[&str]) -> Column {
        Column::new(name.into(), values.to_vec())
    }

    #[test]
    fn quoting_keeps_yaml_unambiguous() {
        assert_eq!(yaml_str("tcp"), "tcp");
        assert_eq!(yaml_str("ftp_data"), "ftp_data");
        assert_eq!(yaml_str("yes"), "\"yes\"");
        assert_eq!(yaml_str("80"), "\"80\"");
        assert_eq!(yaml_str("a: b"), "\"a: b\"");
        assert_eq!(yaml_str(""), "\"\"");
    }

    #[test]
    fn guesses_normal_name_for_multi_valued_labels() {
        let values = vec![
            ("normal".to_owned(), 70),
            ("neptune".to_owned(), 20),
            ("smurf".to_owned(), 10),
        ];
        let (rule, _) = guess_classes(&values);
        assert_eq!(rule, ClassRule::Negative(vec!["normal".into()]));
        let (rule, why) = guess_normal(&[
            ("dos".to_owned(), 70),
            ("BENIGN".to_owned(), 20),
            ("probe".to_owned(), 10),
        ]);
        assert_eq!(rule, ClassRule::Negative(vec!["BENIGN".into()]), "{why}");
        let (rule, why) = guess_normal(&[
            ("dos".to_owned(), 70),
            ("probe".to_owned(), 10),
            ("u2r".to_owned(), 1),
        ]);
        assert_eq!(rule, ClassRule::Negative(vec![]));
        assert!(why.contains("no class is normal"), "{why}");
        let binary = vec![("0".to_owned(), 70), ("1".to_owned(), 30)];
        assert_eq!(
            guess_classes(&binary).0,
            ClassRule::Positive(vec!["1".into()])
        );
    }

    #[test]
    fn id_and_constant_columns_are_excluded() {
        let n = 30;
        let ids: Vec<i64> = (100..100 + n).collect();
        let amounts: Vec<i64> = (0..n).map(|i| i * i).collect();
        let labels: Vec<&str> = (0..n)
            .map(|i| if i % 3 == 0 { "bad" } else { "ok" })
            .collect();
        let t = table(vec![
            Column::new("row".into(), ids),
            Column::new("amount".into(), amounts),
            Column::new("zero".into(), vec![0i64; n as usize]),
            Column::new("outcome".into(), labels),
        ]);
        let s = infer(&t, &InferOptions::default()).unwrap();
        assert_eq!(s.label.column, "outcome");
        assert_eq!(s.label.rule, ClassRule::Positive(vec!["bad".into()]));
        assert!(s.columns[0].exclude.as_deref().unwrap().contains("row id"));
        assert!(
            s.columns[1].exclude.is_none(),
            "squares are unique but not an id"
        );
        assert!(
            s.columns[2]
                .exclude
                .as_deref()
                .unwrap()
                .contains("constant")
        );
    }

    #[test]
    fn mixed_column_names_its_cells() {
        let t = table(vec![
            text("a", &["1", "2", "x", "4", "5"]),
            text("y", &["0", "1", "0", "1", "1"]),
        ]);
        let err = infer(&t, &InferOptions::default()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("column `a` mixes numbers and words"),
            "{message}"
        );
        assert!(message.contains("`x`"), "{message}");
    }
}
