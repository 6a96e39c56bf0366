//! Hyperparameters: the values a grid file holds, the spec each algorithm declares for its
//! parameters, and the validation that turns a user's partial map into a complete one.
//!
//! Names follow scikit-learn (`n_estimators`, `max_depth`, `min_samples_leaf`, ...) because the
//! users come from there. Validation is strict: an unknown key, a value of the wrong type or a
//! value out of range is a [`ParamError`] that names the key and says what was expected.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One hyperparameter value as written in a grid file (JSON/YAML scalars, and the one map
/// parameter, `class_weight`).
///
/// Deserialization is untagged: `null`, `true`, `3`, `0.1`, `"gini"` and `{u2r: 50}` map to
/// the variant of the same shape. An `Int` is accepted wherever a float is expected (`c: 1` means `1.0`), but
/// not the other way round (`max_depth: 3.0` is rejected, as scikit-learn does).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// `null` / `None`: "no limit" for the parameters whose kind allows it.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string, e.g. a choice such as `"gini"` or `"sqrt"`.
    Str(Cow<'static, str>),
    /// Class name to a number: `class_weight: { neptune: 1.0, u2r: 50 }`.
    Map(BTreeMap<String, f64>),
}

impl ParamValue {
    /// A string value (convenience for `ParamValue::Str(s.into())`).
    pub fn str(s: impl Into<String>) -> Self {
        ParamValue::Str(Cow::Owned(s.into()))
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Null => write!(f, "null"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Str(s) => write!(f, "{s:?}"),
            // JSON for finite weights, so a tracked parameter reads back as the same map;
            // written by hand so that a NaN in an error message shows as NaN, not null
            ParamValue::Map(m) => {
                let entries: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
                write!(f, "{{{}}}", entries.join(", "))
            }
        }
    }
}

/// A set of hyperparameters, keyed by parameter name. Sorted, so it prints and hashes stably.
pub type Params = BTreeMap<String, ParamValue>;

/// What values a parameter accepts.
#[derive(Clone, Copy, Debug)]
pub enum ParamKind {
    /// Only `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// An integer in `min..=max`.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A number `x` with `above < x <= max` (integers are accepted and converted).
    Float {
        /// Exclusive lower bound.
        above: f64,
        /// Inclusive upper bound.
        max: f64,
    },
    /// A number between `min` and `max`, each end open or closed (integers are accepted and
    /// converted): `validation_fraction` in `(0, 1)`, `tol >= 0`.
    Interval {
        /// Lower end.
        min: f64,
        /// Whether `min` itself is accepted.
        min_closed: bool,
        /// Upper end (infinite: no upper end).
        max: f64,
        /// Whether `max` itself is accepted.
        max_closed: bool,
    },
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
    /// Any of several kinds, tried in order, e.g. `null | int >= 1`.
    OneOf(&'static [ParamKind]),
    /// A map of class name to a finite weight > 0 (the names are checked against the data's
    /// classes when the plan meets the data, see `sweep::plan::check_class_weights`).
    ClassWeights,
}

impl ParamKind {
    fn accepts(&self, v: &ParamValue) -> bool {
        match (self, v) {
            (ParamKind::Null, ParamValue::Null) => true,
            (ParamKind::Bool, ParamValue::Bool(_)) => true,
            (ParamKind::Int { min, max }, ParamValue::Int(i)) => min <= i && i <= max,
            (ParamKind::Float { above, max }, ParamValue::Float(x)) => {
                x.is_finite() && *above < *x && *x <= *max
            }
            (ParamKind::Float { above, max }, ParamValue::Int(i)) => {
                let x = *i as f64;
                *above < x && x <= *max
            }
            (kind @ ParamKind::Interval { .. }, ParamValue::Int(i)) => {
                kind.accepts(&ParamValue::Float(*i as f64))
            }
            (
                ParamKind::Interval {
                    min,
                    min_closed,
                    max,
                    max_closed,
                },
                ParamValue::Float(x),
            ) => {
                let above = if *min_closed { x >= min } else { x > min };
                let below = if *max_closed { x <= max } else { x < max };
                x.is_finite() && above && below
            }
            (ParamKind::Choice(cs), ParamValue::Str(s)) => cs.contains(&s.as_ref()),
            (ParamKind::OneOf(kinds), v) => kinds.iter().any(|k| k.accepts(v)),
            (ParamKind::ClassWeights, ParamValue::Map(m)) => {
                m.values().all(|w| w.is_finite() && *w > 0.0)
            }
            _ => false,
        }
    }
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamKind::Null => write!(f, "null"),
            ParamKind::Bool => write!(f, "a boolean"),
            ParamKind::Int { min, max } if *max == i64::MAX => write!(f, "an integer >= {min}"),
            ParamKind::Int { min, max } => write!(f, "an integer in {min}..={max}"),
            ParamKind::Float { above, max } if max.is_infinite() => {
                write!(f, "a number > {above}")
            }
            ParamKind::Float { above, max } => write!(f, "a number in ({above}, {max}]"),
            ParamKind::Interval {
                min,
                min_closed,
                max,
                max_closed,
            } => match (max.is_infinite(), *min_closed) {
                (true, true) => write!(f, "a number >= {min}"),
                (true, false) => write!(f, "a number > {min}"),
                (false, _) => write!(
                    f,
                    "a number in {}{min}, {max}{}",
                    if *min_closed { '[' } else { '(' },
                    if *max_closed { ']' } else { ')' }
                ),
            },
            ParamKind::Choice(cs) => {
                let quoted: Vec<String> = cs.iter().map(|c| format!("{c:?}")).collect();
                write!(f, "one of {}", quoted.join(", "))
            }
            ParamKind::OneOf(kinds) => {
                let parts: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
                write!(f, "{}", parts.join(" or "))
            }
            ParamKind::ClassWeights => {
                write!(f, "a map of class name to a finite weight > 0")
            }
        }
    }
}

/// The spec of one parameter, declared statically by its algorithm.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    /// Name as written in a grid file (scikit-learn style).
    pub name: &'static str,
    /// Accepted values.
    pub kind: ParamKind,
    /// Value used when the parameter is absent.
    pub default: ParamValue,
    /// One line for `--help`-style listings.
    pub doc: &'static str,
}

/// `class_weight`, accepted by every algorithm: `null` (no weights), `"balanced"`
/// (`n_rows / (K · count_k)` on each training fold, scikit-learn's) or a map of class name to
/// weight (classes not named weigh 1). See [`crate::models::class_weight`].
pub const CLASS_WEIGHT: ParamSpec = ParamSpec {
    name: "class_weight",
    kind: ParamKind::OneOf(&[
        ParamKind::Null,
        ParamKind::Choice(&["balanced"]),
        ParamKind::ClassWeights,
    ]),
    default: ParamValue::Null,
    doc: "class weights: null, balanced, or { class: weight } (others weigh 1)",
};

/// An invalid hyperparameter set.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ParamError {
    /// The key is not a parameter of this algorithm.
    #[error("unknown parameter `{key}` for {algorithm} (known: {known})")]
    Unknown {
        /// Algorithm name.
        algorithm: &'static str,
        /// The offending key.
        key: String,
        /// Comma-separated list of the valid names.
        known: String,
    },
    /// The value has the wrong type or is out of range.
    #[error("parameter `{key}` of {algorithm} must be {expected}, got {got}")]
    Invalid {
        /// Algorithm name.
        algorithm: &'static str,
        /// The offending key.
        key: String,
        /// What the spec accepts, in words.
        expected: String,
        /// The value given.
        got: ParamValue,
    },
}

impl ParamError {
    /// The process exit code: bad input (the grid's parameters).
    pub fn exit_code(&self) -> u8 {
        match self {
            ParamError::Unknown { .. } => crate::exit::BAD_INPUT,
            ParamError::Invalid { .. } => crate::exit::BAD_INPUT,
        }
    }
}

/// Check `params` against `specs` and return the complete set: every spec'd parameter present,
/// defaults filled in for the absent ones.
pub fn resolve(
    algorithm: &'static str,
    specs: &[ParamSpec],
    params: &Params,
) -> Result<Params, ParamError> {
    for (key, value) in params {
        let Some(spec) = specs.iter().find(|s| s.name == key) else {
            let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
            return Err(ParamError::Unknown {
                algorithm,
                key: key.clone(),
                known: known.join(", "),
            });
        };
        if !spec.kind.accepts(value) {
            return Err(ParamError::Invalid {
                algorithm,
                key: key.clone(),
                expected: spec.kind.to_string(),
                got: value.clone(),
            });
        }
    }
    Ok(specs
        .iter()
        .map(|s| {
            let v = params.get(s.name).unwrap_or(&s.default).clone();
            (s.name.to_string(), v)
        })
        .collect())
}

/// Typed reads from a resolved parameter set. Each returns `ParamError::Invalid` rather than
/// panicking if the set was not resolved against the matching specs.
pub struct Reader<'a> {
    /// Algorithm name, for error messages.
    pub algorithm: &'static str,
    /// The resolved parameters.
    pub params: &'a Params,
}

impl Reader<'_> {
    fn get(&self, key: &str, expected: &str) -> Result<&ParamValue, ParamError> {
        self.params.get(key).ok_or_else(|| ParamError::Invalid {
            algorithm: self.algorithm,
            key: key.to_string(),
            expected: expected.to_string(),
            got: ParamValue::Null,
        })
    }

    fn wrong(&self, key: &str, expected: &str, got: &ParamValue) -> ParamError {
        ParamError::Invalid {
            algorithm: self.algorithm,
            key: key.to_string(),
            expected: expected.to_string(),
            got: got.clone(),
        }
    }

    /// A non-negative integer.
    pub fn usize(&self, key: &str) -> Result<usize, ParamError> {
        match self.get(key, "an integer")? {
            ParamValue::Int(i) if *i >= 0 => Ok(*i as usize),
            v => Err(self.wrong(key, "a non-negative integer", v)),
        }
    }

    /// `null` (None) or a non-negative integer.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>, ParamError> {
        match self.get(key, "null or an integer")? {
            ParamValue::Null => Ok(None),
            ParamValue::Int(i) if *i >= 0 => Ok(Some(*i as usize)),
            v => Err(self.wrong(key, "null or a non-negative integer", v)),
        }
    }

    /// A number (integers converted).
    pub fn f64(&self, key: &str) -> Result<f64, ParamError> {
        match self.get(key, "a number")? {
            ParamValue::Float(x) => Ok(*x),
            ParamValue::Int(i) => Ok(*i as f64),
            v => Err(self.wrong(key, "a number", v)),
        }
    }

    /// A boolean.
    pub fn bool(&self, key: &str) -> Result<bool, ParamError> {
        match self.get(key, "a boolean")? {
            ParamValue::Bool(b) => Ok(*b),
            v => Err(self.wrong(key, "a boolean", v)),
        }
    }

    /// A string.
    pub fn str(&self, key: &str) -> Result<&str, ParamError> {
        match self.get(key, "a string")? {
            ParamValue::Str(s) => Ok(s.as_ref()),
            v => Err(self.wrong(key, "a string", v)),
        }
    }

    /// The raw value.
    pub fn value(&self, key: &str) -> Result<&ParamValue, ParamError> {
        self.get(key, "a value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[ParamSpec] = &[
        ParamSpec {
            name: "max_depth",
            kind: ParamKind::OneOf(&[
                ParamKind::Null,
                ParamKind::Int {
                    min: 1,
                    max: i64::MAX,
                },
            ]),
            default: ParamValue::Null,
            doc: "",
        },
        ParamSpec {
            name: "criterion",
            kind: ParamKind::Choice(&["gini", "entropy"]),
            default: ParamValue::Str(Cow::Borrowed("gini")),
            doc: "",
        },
        ParamSpec {
            name: "c",
            kind: ParamKind::Float {
                above: 0.0,
                max: f64::INFINITY,
            },
            default: ParamValue::Float(1.0),
            doc: "",
        },
    ];

    fn p(pairs: &[(&str, ParamValue)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn fills_defaults() {
        let r = resolve("t", SPECS, &Params::new()).unwrap();
        assert_eq!(r["max_depth"], ParamValue::Null);
        assert_eq!(r["criterion"], ParamValue::str("gini"));
        assert_eq!(r["c"], ParamValue::Float(1.0));
    }

    #[test]
    fn accepts_int_for_float_not_float_for_int() {
        assert!(resolve("t", SPECS, &p(&[("c", ParamValue::Int(2))])).is_ok());
        let e = resolve("t", SPECS, &p(&[("max_depth", ParamValue::Float(3.0))])).unwrap_err();
        assert!(matches!(&e, ParamError::Invalid { key, .. } if key == "max_depth"));
        assert!(e.to_string().contains("null or an integer >= 1"), "{e}");
    }

    #[test]
    fn rejects_unknown_and_out_of_range() {
        let e = resolve("t", SPECS, &p(&[("depth", ParamValue::Int(3))])).unwrap_err();
        assert!(matches!(&e, ParamError::Unknown { key, .. } if key == "depth"));
        let e = resolve("t", SPECS, &p(&[("c", ParamValue::Float(0.0))])).unwrap_err();
        assert!(e.to_string().contains("`c`"), "{e}");
        let e = resolve("t", SPECS, &p(&[("c", ParamValue::Float(f64::NAN))])).unwrap_err();
        assert!(matches!(e, ParamError::Invalid { .. }));
        let e = resolve("t", SPECS, &p(&[("criterion", ParamValue::str("mse"))])).unwrap_err();
        assert!(e.to_string().contains("\"gini\", \"entropy\""), "{e}");
    }

    #[test]
    fn deserializes_untagged() {
        let v: Vec<ParamValue> = serde_json::from_str(r#"[null, true, 3, 0.5, "sqrt"]"#).unwrap();
        assert_eq!(
            v,
            vec![
                ParamValue::Null,
                ParamValue::Bool(true),
                ParamValue::Int(3),
                ParamValue::Float(0.5),
                ParamValue::str("sqrt")
            ]
        );
    }
}
