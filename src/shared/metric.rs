//! The metric vocabulary: one [`Metric`] type names every metric a sweep ranks by, a trial
//! records, a policy floors or a report shows, so that a new metric is added in one place.
//!
//! Names are what files and reports use: `f1`, `roc_auc`, `log_loss`; attack-level
//! `detection_rate` and `fpr`; `macro_f1`, `weighted_f1`, `balanced_accuracy`; and per-class
//! `class_recall.<class>` (also `class_precision.`, `class_f1.`). Every trial records all of
//! [`Metric::GLOBAL`] and the per-class ones of its label's classes.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A metric, by name. `Copy`: per-class names are interned (a process sees a handful of
/// class names, from its schema files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Share of correct predictions.
    Accuracy,
    /// Precision of the attack class.
    Precision,
    /// Recall of the attack class.
    Recall,
    /// F1 of the attack class.
    F1,
    /// Area under the ROC curve.
    RocAuc,
    /// Average precision (area under the precision-recall curve).
    PrAuc,
    /// Matthews correlation coefficient.
    Mcc,
    /// Log loss (lower is better).
    LogLoss,
    /// Unweighted mean of the per-class F1 scores.
    MacroF1,
    /// Mean of the per-class F1 scores weighted by support.
    WeightedF1,
    /// Mean per-class recall.
    BalancedAccuracy,
    /// Share of attacks flagged as attacks, whatever class they were given.
    DetectionRate,
    /// False-positive rate: share of normal rows flagged as attacks (lower is better).
    Fpr,
    /// A statistic of one class, e.g. `class_recall.dos`.
    Class(ClassMetric),
}

/// Which statistic of one class a [`Metric::Class`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClassStat {
    /// `class_precision.<class>`.
    Precision,
    /// `class_recall.<class>`.
    Recall,
    /// `class_f1.<class>`.
    F1,
}

impl ClassStat {
    const ALL: [ClassStat; 3] = [ClassStat::Precision, ClassStat::Recall, ClassStat::F1];

    fn prefix(self) -> &'static str {
        match self {
            ClassStat::Precision => "class_precision",
            ClassStat::Recall => "class_recall",
            ClassStat::F1 => "class_f1",
        }
    }
}

/// A per-class metric: its statistic, its class and its full name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassMetric {
    stat: ClassStat,
    class: &'static str,
    name: &'static str,
}

impl ClassMetric {
    /// The statistic.
    pub fn stat(self) -> ClassStat {
        self.stat
    }

    /// The class's label value.
    pub fn class(self) -> &'static str {
        self.class
    }
}

/// A name that is not a metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric `{0}`")]
pub struct UnknownMetric(pub String);

impl UnknownMetric {
    /// The process exit code: bad input.
    pub fn exit_code(&self) -> u8 {
        crate::exit::BAD_INPUT
    }
}

impl Metric {
    /// Every metric without a class, in report order; every trial records them all.
    pub const GLOBAL: [Metric; 13] = [
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::F1,
        Metric::RocAuc,
        Metric::PrAuc,
        Metric::Mcc,
        Metric::LogLoss,
        Metric::MacroF1,
        Metric::WeightedF1,
        Metric::BalancedAccuracy,
        Metric::DetectionRate,
        Metric::Fpr,
    ];

    /// The names of [`Metric::GLOBAL`], in the same order.
    pub const GLOBAL_NAMES: [&'static str; 13] = [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "mcc",
        "log_loss",
        "macro_f1",
        "weighted_f1",
        "balanced_accuracy",
        "detection_rate",
        "fpr",
    ];

    /// The metric's name as written in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
            Metric::RocAuc => "roc_auc",
            Metric::PrAuc => "pr_auc",
            Metric::Mcc => "mcc",
            Metric::LogLoss => "log_loss",
            Metric::MacroF1 => "macro_f1",
            Metric::WeightedF1 => "weighted_f1",
            Metric::BalancedAccuracy => "balanced_accuracy",
            Metric::DetectionRate => "detection_rate",
            Metric::Fpr => "fpr",
            Metric::Class(c) => c.name,
        }
    }

    /// Whether larger values are better (log loss and the false-positive rate are the
    /// exceptions).
    pub fn higher_is_better(self) -> bool {
        match self {
            Metric::LogLoss | Metric::Fpr => false,
            Metric::Accuracy
            | Metric::Precision
            | Metric::Recall
            | Metric::F1
            | Metric::RocAuc
            | Metric::PrAuc
            | Metric::Mcc
            | Metric::MacroF1
            | Metric::WeightedF1
            | Metric::BalancedAccuracy
            | Metric::DetectionRate
            | Metric::Class(_) => true,
        }
    }

    /// Whether it is an attack-level figure, which exists only for labels with a normal
    /// class.
    pub fn is_attack_level(self) -> bool {
        matches!(
            self,
            Metric::Precision
                | Metric::Recall
                | Metric::F1
                | Metric::RocAuc
                | Metric::PrAuc
                | Metric::DetectionRate
                | Metric::Fpr
        )
    }

    /// The metric `stat` of the class with label value `class`.
    pub fn class(stat: ClassStat, class: &str) -> Metric {
        let name = intern(&format!("{}.{class}", stat.prefix()));
        Metric::Class(ClassMetric {
            stat,
            class: &name[stat.prefix().len() + 1..],
            name,
        })
    }

    /// Parses any metric name (also those no trial records yet).
    pub fn parse(name: &str) -> Result<Metric, UnknownMetric> {
        if let Some(m) = Metric::GLOBAL.iter().find(|m| m.name() == name) {
            return Ok(*m);
        }
        ClassStat::ALL
            .iter()
            .find_map(|stat| {
                let class = name.strip_prefix(stat.prefix())?.strip_prefix('.')?;
                (!class.is_empty()).then(|| Metric::class(*stat, class))
            })
            .ok_or_else(|| UnknownMetric(name.to_owned()))
    }
}

/// Per-class names live as long as the process: a handful, from schema files.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = UnknownMetric;

    fn from_str(s: &str) -> Result<Metric, UnknownMetric> {
        Metric::parse(s)
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// An unknown name is refused with the message serde gives an unknown enum variant,
/// listing the global names (per-class ones are checked against the label's classes by
/// whoever knows them).
impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Metric, D::Error> {
        let name = String::deserialize(deserializer)?;
        Metric::parse(&name)
            .map_err(|_| serde::de::Error::unknown_variant(&name, &Metric::GLOBAL_NAMES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back() {
        for m in Metric::GLOBAL {
            assert_eq!(m.name().parse::<Metric>(), Ok(m));
        }
        for (m, name) in Metric::GLOBAL.iter().zip(Metric::GLOBAL_NAMES) {
            assert_eq!(m.name(), name);
        }
        let recall = Metric::parse("class_recall.dos").unwrap();
        assert_eq!(recall, Metric::class(ClassStat::Recall, "dos"));
        assert_eq!(recall.to_string(), "class_recall.dos");
        let Metric::Class(c) = recall else {
            panic!("{recall:?}")
        };
        assert_eq!((c.stat(), c.class()), (ClassStat::Recall, "dos"));
        assert_eq!(
            Metric::parse("class_f1.a.b").unwrap().name(),
            "class_f1.a.b"
        );
    }

    #[test]
    fn unknown_names_are_refused() {
        for bad in [
            "f2",
            "class_recall",
            "class_recall.",
            "class_recallx.dos",
            "",
        ] {
            assert_eq!(Metric::parse(bad), Err(UnknownMetric(bad.into())), "{bad}");
        }
        assert_eq!(
            UnknownMetric("x".into()).exit_code(),
            crate::exit::BAD_INPUT
        );
    }

    #[test]
    fn lower_is_better_only_for_losses_and_false_alarms() {
        assert!(!Metric::LogLoss.higher_is_better());
        assert!(!Metric::Fpr.higher_is_better());
        assert!(Metric::MacroF1.higher_is_better());
        assert!(Metric::parse("class_f1.x").unwrap().higher_is_better());
    }

    #[test]
    fn files_accept_every_metric_name_and_refuse_others() {
        let f1: Metric = serde_json::from_str("\"f1\"").unwrap();
        assert_eq!(f1, Metric::F1);
        assert_eq!(
            serde_json::to_string(&Metric::RocAuc).unwrap(),
            "\"roc_auc\""
        );
        let fpr: Metric = serde_json::from_str("\"fpr\"").unwrap();
        assert_eq!(fpr, Metric::Fpr);
        let err = serde_json::from_str::<Metric>("\"f2\"").unwrap_err();
        assert!(err.to_string().contains("unknown variant `f2`"), "{err}");
        assert!(err.to_string().contains("macro_f1"), "{err}");
    }
}
