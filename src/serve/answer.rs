//! The row answer: what netsec says about one predicted row, under the same names in
//! `netsec predict`'s CSV, `POST /predict`'s JSON and `POST /predict/csv`'s CSV:
//!
//! | name | value |
//! |---|---|
//! | `predicted_label` | the predicted class as a label value: the class name of a multi-class model (e.g. `neptune`), the schema's attack or normal value of a binary one (e.g. `-1`) |
//! | `class_probability` | the predicted class's probability |
//! | `attack_probability` | 1 − Σ P(normal classes) ([`Classes::attack_probability`]); a binary model's P(attack) as always |
//! | `is_attack` | `attack_probability` ≥ the model's cut: its operating point's, else 0.5 |
//! | `attack_class` | the most probable attack class when `is_attack`, else empty |
//! | `p_<class>` | opt-in (`--probabilities`, `?probabilities=true`): each class's probability, in class-id order |
//!
//! A model whose label has no normal class has no attack level: `attack_probability`,
//! `is_attack` and `attack_class` are empty (`null` in JSON) on every row.
//!
//! The predicted class is [`Classes::predict_at`]'s at the model's cut: the argmax of a
//! multi-class model, the attack class when P(attack) ≥ the cut for a binary one (0.5 for a
//! model without an operating point, so binary answers are what they always were). `is_attack` is a separate decision on P(attack) and may say "attack" for a
//! row whose single most probable class is normal (normal 0.4, dos 0.3, probe 0.3): many
//! attack classes together outweigh the normal one, and `attack_class` then names the most
//! probable of them.
//!
//! [`RowAnswers`] is built once per model (label values, quoted CSV fields and JSON values
//! per class precomputed), so that answering a row costs a pass over its K probabilities
//! and no allocation.

use polars::prelude::{Column, DataFrame, PolarsResult};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::data::schema::{LabelSpec, LabelType};
use crate::shared::Classes;

/// The answer columns, in the order they are appended; `p_<class>` columns follow.
pub const ANSWER_COLUMNS: [&str; 5] = [
    "predicted_label",
    "class_probability",
    "attack_probability",
    "is_attack",
    "attack_class",
];

/// Prefix of the per-class probability columns: `p_<class name>`.
pub const PROBABILITY_PREFIX: &str = "p_";

/// The answer for one row (class ids index [`RowAnswers::classes`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowAnswer {
    /// The predicted class.
    pub class: u32,
    /// Its probability.
    pub class_probability: f64,
    /// P(attack); `None` when the model has no normal class.
    pub attack_probability: Option<f64>,
    /// The most probable attack class, when the row is an attack.
    pub attack_class: Option<u32>,
    /// Whether P(attack) reaches the model's cut.
    attack: bool,
}

impl RowAnswer {
    /// `is_attack`; `None` when the model has no normal class.
    pub fn is_attack(&self) -> Option<bool> {
        self.attack_probability.map(|_| self.attack)
    }
}

/// How one model's rows are answered: its classes and, per class, the label value and the
/// names as written in CSV and JSON.
#[derive(Debug, Clone)]
pub struct RowAnswers {
    classes: Classes,
    /// The cut on P(attack).
    threshold: f64,
    /// Whether some class is normal (else there is no attack level).
    has_normal: bool,
    /// `predicted_label` text per class.
    labels: Vec<String>,
    /// `predicted_label` as JSON per class: a number or boolean when the label column is.
    label_values: Vec<Value>,
    /// `predicted_label` as a CSV field per class (quoted where needed).
    label_fields: Vec<Vec<u8>>,
    /// The class name as a CSV field per class, for `attack_class`.
    name_fields: Vec<Vec<u8>>,
    /// `p_<class>` per class.
    probability_names: Vec<String>,
    /// `,predicted_label,…,attack_class` as a CSV header suffix.
    header: Vec<u8>,
    /// `,p_<class>…` as a CSV header suffix.
    probability_header: Vec<u8>,
}

impl RowAnswers {
    /// The answers of a model of `classes` trained on a label described by `label`. A
    /// binary model's labels are the schema's attack and normal values
    /// ([`LabelSpec::value_for`]); a multi-class model's are its class names. Rows are
    /// attacks at `P(attack) >= threshold` ([`crate::ModelFile::threshold`]).
    pub fn new(label: &LabelSpec, classes: Classes, threshold: f64) -> RowAnswers {
        let labels: Vec<String> = if classes.is_binary() {
            vec![label.value_for(false), label.value_for(true)]
        } else {
            classes.names.clone()
        };
        let label_values = labels
            .iter()
            .map(|text| typed_label(label.label_type, text))
            .collect();
        let field = |text: &str| {
            let mut out = Vec::with_capacity(text.len() + 2);
            push_field(&mut out, text);
            out
        };
        let label_fields = labels.iter().map(|l| field(l)).collect();
        let name_fields = classes.names.iter().map(|n| field(n)).collect();
        let probability_names: Vec<String> = classes
            .names
            .iter()
            .map(|n| format!("{PROBABILITY_PREFIX}{n}"))
            .collect();
        let mut header = Vec::new();
        for name in ANSWER_COLUMNS {
            header.push(b',');
            push_field(&mut header, name);
        }
        let mut probability_header = Vec::new();
        for name in &probability_names {
            probability_header.push(b',');
            push_field(&mut probability_header, name);
        }
        RowAnswers {
            threshold,
            has_normal: classes.has_normal(),
            classes,
            labels,
            label_values,
            label_fields,
            name_fields,
            probability_names,
            header,
            probability_header,
        }
    }

    /// The classes answered, in class-id order.
    pub fn classes(&self) -> &Classes {
        &self.classes
    }

    /// K, the number of classes (probabilities per row).
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether there are no classes (never true of a loaded model).
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The answer for one row's K class probabilities.
    pub fn answer(&self, proba: &[f64]) -> RowAnswer {
        let class = self.classes.predict_at(proba, self.threshold);
        let class_probability = proba.get(class as usize).copied().unwrap_or(0.0);
        let attack_probability = self
            .has_normal
            .then(|| self.classes.attack_probability(proba));
        let attack = attack_probability.is_some_and(|p| p >= self.threshold);
        let attack_class = if attack {
            // The most probable attack class; ties go to the lowest id, as argmax.
            let mut best: Option<u32> = None;
            for (k, p) in proba.iter().enumerate() {
                let k = k as u32;
                if self.classes.is_attack(k) && best.is_none_or(|b| *p > proba[b as usize]) {
                    best = Some(k);
                }
            }
            best
        } else {
            None
        };
        RowAnswer {
            class,
            class_probability,
            attack_probability,
            attack_class,
            attack,
        }
    }

    /// `predicted_label` of a class, as text.
    pub fn label(&self, class: u32) -> &str {
        &self.labels[class as usize]
    }

    /// `predicted_label` of a class, as JSON (typed as the label column).
    pub fn label_value(&self, class: u32) -> &Value {
        &self.label_values[class as usize]
    }

    /// The name of a class.
    pub fn name(&self, class: u32) -> &str {
        &self.classes.names[class as usize]
    }

    /// `p_<class>` of every class, in class-id order.
    pub fn probability_names(&self) -> &[String] {
        &self.probability_names
    }

    /// Whether `column` is one of the answer columns (with or without probabilities).
    pub fn is_answer_column(&self, column: &str) -> bool {
        ANSWER_COLUMNS.contains(&column) || self.probability_names.iter().any(|p| p == column)
    }

    /// The answers of N rows of K probabilities (row-major).
    pub fn answer_all(&self, proba: &[f64]) -> Vec<RowAnswer> {
        proba
            .chunks_exact(self.len().max(1))
            .map(|row| self.answer(row))
            .collect()
    }

    /// Predicted rows per class, in class-id order.
    pub fn counts(&self, answers: &[RowAnswer]) -> Vec<u64> {
        let mut counts = vec![0; self.len()];
        for a in answers {
            counts[a.class as usize] += 1;
        }
        counts
    }

    /// Appends (or replaces) the answer columns of `answers` to `frame`, and the `p_<class>`
    /// columns from `proba` (N rows of K, row-major) when given: `netsec predict` and the
    /// general CSV path.
    pub fn add_columns(
        &self,
        frame: &mut DataFrame,
        answers: &[RowAnswer],
        proba: Option<&[f64]>,
    ) -> PolarsResult<()> {
        let [label, class_p, attack_p, attack, attack_class] = ANSWER_COLUMNS;
        let labels: Vec<&str> = answers.iter().map(|a| self.label(a.class)).collect();
        frame.with_column(Column::new(label.into(), labels))?;
        let class_probability: Vec<f64> = answers.iter().map(|a| a.class_probability).collect();
        frame.with_column(Column::new(class_p.into(), class_probability))?;
        let attack_probability: Vec<Option<f64>> =
            answers.iter().map(|a| a.attack_probability).collect();
        frame.with_column(Column::new(attack_p.into(), attack_probability))?;
        let is_attack: Vec<Option<bool>> = answers.iter().map(RowAnswer::is_attack).collect();
        frame.with_column(Column::new(attack.into(), is_attack))?;
        let classes: Vec<Option<&str>> = answers
            .iter()
            .map(|a| a.attack_class.map(|c| self.name(c)))
            .collect();
        frame.with_column(Column::new(attack_class.into(), classes))?;
        if let Some(proba) = proba {
            let k = self.len();
            for (j, name) in self.probability_names.iter().enumerate() {
                let column: Vec<f64> = proba.chunks_exact(k).map(|row| row[j]).collect();
                frame.with_column(Column::new(name.as_str().into(), column))?;
            }
        }
        Ok(())
    }

    /// The CSV header suffix: `,predicted_label,…,attack_class[,p_<class>…]`, quoted as
    /// polars quotes names.
    pub fn write_csv_header(&self, out: &mut Vec<u8>, probabilities: bool) {
        out.extend_from_slice(&self.header);
        if probabilities {
            out.extend_from_slice(&self.probability_header);
        }
    }

    /// One row's answer fields (with a leading comma), written as polars' CSV writer
    /// writes the columns of [`RowAnswers::add_columns`]; `proba` are the row's K
    /// probabilities, written when given.
    pub fn write_csv_row(
        &self,
        out: &mut Vec<u8>,
        answer: &RowAnswer,
        proba: Option<&[f64]>,
        number: &mut zmij::Buffer,
    ) {
        out.push(b',');
        out.extend_from_slice(&self.label_fields[answer.class as usize]);
        out.push(b',');
        out.extend_from_slice(number.format(answer.class_probability).as_bytes());
        out.push(b',');
        if let Some(p) = answer.attack_probability {
            out.extend_from_slice(number.format(p).as_bytes());
        }
        out.push(b',');
        match answer.is_attack() {
            Some(true) => out.extend_from_slice(b"true"),
            Some(false) => out.extend_from_slice(b"false"),
            None => {}
        }
        out.push(b',');
        if let Some(c) = answer.attack_class {
            out.extend_from_slice(&self.name_fields[c as usize]);
        }
        if let Some(proba) = proba {
            for p in proba {
                out.push(b',');
                out.extend_from_slice(number.format(*p).as_bytes());
            }
        }
    }

    /// One row's answer as a JSON object; `proba` are the row's K probabilities, added as
    /// `p_<class>` fields when given.
    pub fn json<'a>(&'a self, answer: &'a RowAnswer, proba: Option<&'a [f64]>) -> JsonRow<'a> {
        JsonRow {
            answers: self,
            answer,
            proba,
        }
    }
}

/// One row's answer, serialized as a JSON object with the answer's names.
#[derive(Debug)]
pub struct JsonRow<'a> {
    answers: &'a RowAnswers,
    answer: &'a RowAnswer,
    proba: Option<&'a [f64]>,
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (answers, a) = (self.answers, self.answer);
        let extra = self.proba.map_or(0, <[f64]>::len);
        let mut map = serializer.serialize_map(Some(ANSWER_COLUMNS.len() + extra))?;
        let [label, class_p, attack_p, attack, attack_class] = ANSWER_COLUMNS;
        map.serialize_entry(label, answers.label_value(a.class))?;
        map.serialize_entry(class_p, &a.class_probability)?;
        map.serialize_entry(attack_p, &a.attack_probability)?;
        map.serialize_entry(attack, &a.is_attack())?;
        map.serialize_entry(attack_class, &a.attack_class.map(|c| answers.name(c)))?;
        if let Some(proba) = self.proba {
            for (name, p) in answers.probability_names.iter().zip(proba) {
                map.serialize_entry(name, p)?;
            }
        }
        map.end()
    }
}

/// A label value as JSON: a number or boolean when the label column is one.
fn typed_label(label_type: LabelType, text: &str) -> Value {
    let string = || Value::String(text.to_owned());
    match label_type {
        LabelType::Integer => text.parse::<i64>().map_or_else(|_| string(), Value::from),
        LabelType::Boolean => text.parse::<bool>().map_or_else(|_| string(), Value::Bool),
        LabelType::String => string(),
    }
}

/// One non-missing text value, quoted as polars does with `QuoteStyle::Necessary`.
pub(crate) fn push_field(out: &mut Vec<u8>, value: &str) {
    if value.is_empty() {
        out.extend_from_slice(b"\"\"");
    } else if value.contains([',', '\n', '\r', '"']) {
        out.push(b'"');
        out.extend_from_slice(value.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use polars::prelude::{CsvWriter, SerWriter};
    use serde_json::json;

    use super::*;
    use crate::data::schema::{AttackRule, ClassNames};

    /// A string label whose normal value is `normal`.
    fn label(label_type: LabelType, attack: AttackRule, values: Option<&[&str]>) -> LabelSpec {
        LabelSpec {
            column: "label".into(),
            label_type,
            values: values.map(|v| v.iter().map(|s| s.to_string()).collect()),
            attack,
            names: ClassNames::default(),
            task: Default::default(),
        }
    }

    fn set(values: &[&str]) -> BTreeSet<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    /// Three classes, sorted by name as multi-class labels are; two names need quoting.
    fn three() -> RowAnswers {
        let classes = Classes {
            names: vec![
                "dos, smurf".into(),
                "normal".into(),
                "port \"sweep\"".into(),
            ],
            normal: vec![false, true, false],
        };
        RowAnswers::new(
            &label(
                LabelType::String,
                AttackRule::Negative(set(&["normal"])),
                None,
            ),
            classes,
            0.5,
        )
    }

    /// The rows of the tests: predicted class, its probability, P(attack), attack class.
    const ROWS: [[f64; 3]; 5] = [
        // Normal is the most probable class, yet the attacks together reach 0.5.
        [0.2, 0.5, 0.3],
        [0.6, 0.3, 0.1],
        [0.1, 0.8, 0.1],
        // Ties go to the lowest id, for the class and the attack class.
        [0.4, 0.2, 0.4],
        [0.0, 1.0, 0.0],
    ];

    #[test]
    fn multiclass_answers_name_the_class_and_the_most_probable_attack() {
        let answers = three();
        let got: Vec<RowAnswer> = ROWS.iter().map(|r| answers.answer(r)).collect();
        let expected = [
            (1, 0.5, 1.0 - 0.5, Some(2)),
            (0, 0.6, 1.0 - 0.3, Some(0)),
            (1, 0.8, 1.0 - 0.8, None),
            (0, 0.4, 1.0 - 0.2, Some(0)),
            (1, 1.0, 0.0, None),
        ];
        for (a, (class, class_p, attack_p, attack_class)) in got.iter().zip(expected) {
            assert_eq!(
                *a,
                RowAnswer {
                    class,
                    class_probability: class_p,
                    attack_probability: Some(attack_p),
                    attack_class,
                    attack: attack_class.is_some(),
                }
            );
            assert_eq!(a.is_attack(), Some(attack_class.is_some()));
        }
        assert_eq!(answers.label(0), "dos, smurf");
        assert_eq!(answers.counts(&got), vec![2, 3, 0]);
        assert!(answers.is_answer_column("p_dos, smurf"));
        assert!(answers.is_answer_column("is_attack"));
        assert!(!answers.is_answer_column("p_normal "));
    }

    #[test]
    fn the_model_cut_decides_is_attack_and_a_binary_class() {
        let binary = RowAnswers::new(
            &label(
                LabelType::Integer,
                AttackRule::Positive(set(&["-1"])),
                Some(&["-1", "1"]),
            ),
            Classes::binary("legitimate", "phishing"),
            0.3,
        );
        let at_cut = binary.answer(&[0.7, 0.3]);
        assert_eq!((at_cut.class, at_cut.is_attack()), (1, Some(true)));
        assert_eq!(at_cut.attack_class, Some(1));
        let below = binary.answer(&[0.7 + 1e-12, 0.3 - 1e-12]);
        assert_eq!((below.class, below.is_attack()), (0, Some(false)));
        // Multi-class: the cut moves the attack flag, never the argmax class.
        let mut strict = three();
        strict.threshold = 0.9;
        let row = strict.answer(&ROWS[1]);
        assert_eq!(
            (row.class, row.is_attack(), row.attack_class),
            (0, Some(false), None)
        );
    }

    #[test]
    fn a_label_without_normal_class_has_no_attack_level() {
        let classes = Classes {
            names: vec!["a".into(), "b".into(), "c".into()],
            normal: vec![false; 3],
        };
        let answers = RowAnswers::new(
            &label(LabelType::String, AttackRule::Positive(set(&["a"])), None),
            classes,
            0.5,
        );
        let a = answers.answer(&[0.1, 0.2, 0.7]);
        assert_eq!(
            a,
            RowAnswer {
                class: 2,
                class_probability: 0.7,
                attack_probability: None,
                attack_class: None,
                attack: false,
            }
        );
        assert_eq!(a.is_attack(), None);
        let mut out = Vec::new();
        answers.write_csv_row(&mut out, &a, None, &mut zmij::Buffer::new());
        assert_eq!(String::from_utf8(out).unwrap(), ",c,0.7,,,");
        assert_eq!(
            serde_json::to_value(answers.json(&a, None)).unwrap(),
            json!({"predicted_label": "c", "class_probability": 0.7,
                   "attack_probability": null, "is_attack": null, "attack_class": null})
        );
    }

    #[test]
    fn binary_answers_keep_the_label_values_and_the_old_cut() {
        let answers = RowAnswers::new(
            &label(
                LabelType::Integer,
                AttackRule::Positive(set(&["-1"])),
                Some(&["-1", "1"]),
            ),
            Classes::binary("legitimate", "phishing"),
            0.5,
        );
        let attack = answers.answer(&[0.5, 0.5]);
        assert_eq!(
            attack,
            RowAnswer {
                class: 1,
                class_probability: 0.5,
                attack_probability: Some(0.5),
                attack_class: Some(1),
                attack: true,
            }
        );
        let normal = answers.answer(&[1.0 - 0.25, 0.25]);
        assert_eq!((normal.class, normal.attack_class), (0, None));
        assert_eq!(normal.attack_probability, Some(0.25), "P(class 1) as is");
        assert_eq!(
            serde_json::to_value(answers.json(&attack, Some(&[0.5, 0.5]))).unwrap(),
            json!({"predicted_label": -1, "class_probability": 0.5,
                   "attack_probability": 0.5, "is_attack": true, "attack_class": "phishing",
                   "p_legitimate": 0.5, "p_phishing": 0.5})
        );
        assert_eq!(answers.label_value(0), &json!(1));
    }

    #[test]
    fn json_fields_are_the_csv_columns_in_the_same_order() {
        let answers = three();
        let a = answers.answer(&ROWS[0]);
        let text = serde_json::to_string(&answers.json(&a, Some(&ROWS[0]))).unwrap();
        assert_eq!(
            text,
            r#"{"predicted_label":"normal","class_probability":0.5,"attack_probability":0.5,"is_attack":true,"attack_class":"port \"sweep\"","p_dos, smurf":0.2,"p_normal":0.5,"p_port \"sweep\"":0.3}"#
        );
    }

    /// The fast path's bytes are polars' bytes for the same answers: names with a comma, a
    /// space and quotes are quoted alike, in the header and in the cells.
    #[test]
    fn csv_rows_are_written_as_polars_writes_the_columns() {
        let answers = three();
        let rows: Vec<RowAnswer> = ROWS.iter().map(|r| answers.answer(r)).collect();
        let flat: Vec<f64> = ROWS.concat();
        for probabilities in [false, true] {
            let ids: Vec<String> = (0..ROWS.len()).map(|i| format!("r{i}")).collect();
            let mut frame =
                DataFrame::new(ids.len(), vec![Column::new("id".into(), ids.clone())]).unwrap();
            answers
                .add_columns(&mut frame, &rows, probabilities.then_some(&flat[..]))
                .unwrap();
            let mut expected = Vec::new();
            CsvWriter::new(&mut expected).finish(&mut frame).unwrap();

            let mut fast = b"id".to_vec();
            answers.write_csv_header(&mut fast, probabilities);
            fast.push(b'\n');
            let mut number = zmij::Buffer::new();
            for ((id, a), p) in ids.iter().zip(&rows).zip(&ROWS) {
                fast.extend_from_slice(id.as_bytes());
                answers.write_csv_row(&mut fast, a, probabilities.then_some(&p[..]), &mut number);
                fast.push(b'\n');
            }
            let (fast, expected) = (
                String::from_utf8(fast).unwrap(),
                String::from_utf8(expected).unwrap(),
            );
            assert_eq!(fast, expected);
            if probabilities {
                assert!(
                    expected.starts_with(
                        "id,predicted_label,class_probability,attack_probability,is_attack,attack_class,\"p_dos, smurf\",p_normal,\"p_port \"\"sweep\"\"\"\n"
                    ),
                    "{expected}"
                );
                assert!(
                    expected
                        .contains("\nr0,normal,0.5,0.5,true,\"port \"\"sweep\"\"\",0.2,0.5,0.3\n"),
                    "{expected}"
                );
                assert!(
                    expected.contains("\nr2,normal,0.8,0.19999999999999996,false,,0.1,0.8,0.1\n"),
                    "{expected}"
                );
            }
        }
    }
}
