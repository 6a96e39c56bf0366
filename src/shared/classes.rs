//! The classes a model learns, shared by the data that defines them, the models that
//! predict them, the metrics that score them and the server that names them.
//!
//! Class ids are `0..K` in the order of [`Classes::names`]. A binary label has two
//! classes, normal (id 0) and attack (id 1), so a binary model's P(class 1) is P(attack)
//! as it always was. A multi-class label has one class per label value (or per `group`),
//! sorted by name as scikit-learn's `LabelEncoder` sorts them, so class ids and per-class
//! figures line up with scikit-learn's on the same rows.

use serde::{Deserialize, Serialize};

/// The classes of a label, in class-id order, and which of them are normal traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classes {
    /// Class names: label values (multi-class) or the schema's class names (binary).
    pub names: Vec<String>,
    /// Per class, whether it is normal (not an attack). A label may have no normal class;
    /// then attack-level figures do not exist.
    pub normal: Vec<bool>,
}

impl Classes {
    /// The two classes of a binary label: `negative` (normal, id 0) and `positive`
    /// (attack, id 1).
    pub fn binary(negative: &str, positive: &str) -> Classes {
        Classes {
            names: vec![negative.to_owned(), positive.to_owned()],
            normal: vec![true, false],
        }
    }

    /// Number of classes, K.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no classes (never true of a usable label).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether this is the binary normal/attack pair.
    pub fn is_binary(&self) -> bool {
        self.names.len() == 2 && self.normal == [true, false]
    }

    /// Whether some class is normal, so that attack-level figures (detection rate,
    /// false-positive rate) exist.
    pub fn has_normal(&self) -> bool {
        self.normal.iter().any(|&n| n)
    }

    /// The id of the class named `name`.
    pub fn id(&self, name: &str) -> Option<u32> {
        self.names.iter().position(|n| n == name).map(|i| i as u32)
    }

    /// Whether class `id` is an attack.
    pub fn is_attack(&self, id: u32) -> bool {
        !self.normal.get(id as usize).copied().unwrap_or(true)
    }

    /// P(attack) of one row's class probabilities: 1 − Σ P(normal classes). Computed as a
    /// sum over the attack classes when there is one attack class, so a binary model's
    /// answer is its P(class 1) bit for bit.
    pub fn attack_probability(&self, proba: &[f64]) -> f64 {
        // No allocation: servers call this once per predicted row.
        let mut attack = (0..self.normal.len()).filter(|&k| !self.normal[k]);
        if let (Some(only), None) = (attack.next(), attack.next()) {
            return proba.get(only).copied().unwrap_or(0.0);
        }
        let normal: f64 = proba
            .iter()
            .zip(&self.normal)
            .filter(|(_, n)| **n)
            .map(|(p, _)| p)
            .sum();
        (1.0 - normal).clamp(0.0, 1.0)
    }
}

impl Classes {
    /// P(attack) of each row of class probabilities (N rows, K columns).
    pub fn attack_probabilities(&self, proba: ndarray::ArrayView2<f64>) -> Vec<f64> {
        proba
            .rows()
            .into_iter()
            .map(|row| match row.as_slice() {
                Some(row) => self.attack_probability(row),
                None => self.attack_probability(&row.to_vec()),
            })
            .collect()
    }

    /// The class a model answers for one row's probabilities: for a binary label the attack
    /// class when P(attack) >= 0.5 (netsec's rule from the start), else the most probable
    /// class.
    pub fn predict(&self, proba: &[f64]) -> u32 {
        self.predict_at(proba, 0.5)
    }

    /// [`Classes::predict`] at a model's operating point: a binary label's attack class when
    /// P(attack) >= `threshold`; a multi-class label's argmax (its attack flag is separate).
    pub fn predict_at(&self, proba: &[f64], threshold: f64) -> u32 {
        if self.is_binary() {
            u32::from(self.attack_probability(proba) >= threshold)
        } else {
            argmax(proba)
        }
    }
}

/// The class with the highest probability; ties go to the lowest id, as numpy's `argmax`.
pub fn argmax(proba: &[f64]) -> u32 {
    let mut best = 0;
    for (k, p) in proba.iter().enumerate() {
        if *p > proba[best] {
            best = k;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_attack_probability_is_class_one_exactly() {
        let c = Classes::binary("legitimate", "phishing");
        assert!(c.is_binary());
        assert_eq!(c.attack_probability(&[0.3, 0.7]), 0.7);
        assert_eq!(c.attack_probability(&[1.0 - 0.1, 0.1]), 0.1);
    }

    #[test]
    fn multiclass_attack_probability_sums_the_attacks() {
        let c = Classes {
            names: vec!["dos".into(), "normal".into(), "probe".into()],
            normal: vec![false, true, false],
        };
        assert!(!c.is_binary() && c.has_normal());
        assert!((c.attack_probability(&[0.2, 0.5, 0.3]) - 0.5).abs() < 1e-15);
        assert_eq!(c.id("probe"), Some(2));
        assert!(c.is_attack(0) && !c.is_attack(1));
        assert_eq!(argmax(&[0.2, 0.5, 0.3]), 1);
        assert_eq!(argmax(&[0.4, 0.2, 0.4]), 0);
    }
}
