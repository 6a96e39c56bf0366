//! The classes a data set's label is learned as: binary (attack / normal), one class per
//! label value, or label values grouped into classes by a grid file.
//!
//! A schema says whether its label is binary or multi-class (`label.task`); a grid file may
//! fold a multi-class label to binary (`task: binary`) or group rare classes
//! (`group: { r2l: [guess_passwd, warezclient] }`). [`LabelChoice`] is that grid part, and
//! [`effective_classes`] turns the label values of the rows into class ids and
//! [`Classes`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::schema::{LabelSpec, LabelType, Task};
use crate::shared::Classes;

/// How a grid file wants the label learned, over what the schema says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelChoice {
    /// `binary` folds a multi-class label onto attack / normal; `multiclass` learns one
    /// class per value of a label the schema folds; absent keeps the schema's task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    /// New class name to the label values (classes) it takes in. A group is normal when
    /// all its members are, an attack when none is; a mixed group is refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group: BTreeMap<String, Vec<String>>,
}

impl LabelChoice {
    /// Whether the choice changes nothing (the schema's task, no groups).
    pub fn is_default(&self) -> bool {
        self.task.is_none() && self.group.is_empty()
    }

    /// The part of a trial key that this choice adds: `None` when it changes nothing (so
    /// existing trial keys stay as they were), else a canonical text such as
    /// `task=multiclass;group=r2l:guess_passwd,warezclient`.
    pub fn label_key(&self) -> Option<String> {
        if self.is_default() {
            return None;
        }
        let mut parts = Vec::new();
        if let Some(task) = self.task {
            parts.push(format!("task={}", task.name()));
        }
        if !self.group.is_empty() {
            let groups: Vec<String> = self
                .group
                .iter()
                .map(|(name, members)| {
                    let members: BTreeSet<&str> = members.iter().map(String::as_str).collect();
                    format!(
                        "{name}:{}",
                        members.into_iter().collect::<Vec<_>>().join(",")
                    )
                })
                .collect();
            parts.push(format!("group={}", groups.join(";")));
        }
        Some(parts.join(";"))
    }
}

/// Why a label cannot be learned as asked. Bad input: the caller names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassError {
    /// A `group` names a class the label does not have.
    #[error(
        "group `{group}` names class `{member}`, which the label does not have (classes: {known})"
    )]
    UnknownMember {
        /// The group.
        group: String,
        /// The unknown class.
        member: String,
        /// The label's classes, comma-separated.
        known: String,
    },
    /// A class listed in two groups.
    #[error("class `{member}` is in two groups, `{first}` and `{second}`")]
    TwoGroups {
        /// The class.
        member: String,
        /// One group.
        first: String,
        /// The other.
        second: String,
    },
    /// A group mixing normal and attack classes.
    #[error(
        "group `{group}` mixes normal classes ({normal}) with attack classes ({attack}): a group \
         must be all normal or all attacks"
    )]
    Mixed {
        /// The group.
        group: String,
        /// Its normal members.
        normal: String,
        /// Its attack members.
        attack: String,
    },
    /// A group named like a class it does not take in.
    #[error("group `{group}` has the name of a class that is not in it; choose another name")]
    NameTaken {
        /// The group.
        group: String,
    },
    /// A group with no members.
    #[error("group `{group}` is empty")]
    EmptyGroup {
        /// The group.
        group: String,
    },
    /// Groups asked of a binary label.
    #[error(
        "`group` needs a multi-class label (`task: multiclass` in the schema or the grid file)"
    )]
    GroupsOnBinary,
    /// Fewer than two classes.
    #[error("the label has {count} class(es) ({names}); a model needs at least two")]
    TooFewClasses {
        /// Classes found.
        count: usize,
        /// Their names.
        names: String,
    },
}

/// The classes of a label and the class id of each row.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelClasses {
    /// The classes, in id order.
    pub classes: Classes,
    /// The class id of each row.
    pub ids: Vec<u32>,
}

/// The classes of `values` (one canonical label text per row) under `label` and `choice`.
///
/// Binary: [`Classes::binary`] named by the schema's class names, id 1 for attacks. Multi-
/// class: one class per value (the schema's `values` when listed, else those in the rows),
/// values of a group replaced by the group's name, sorted by name (numerically for an
/// integer label). A multi-class label with exactly two classes, one normal and one attack,
/// is binary: normal id 0, attack id 1, named by the two classes.
pub fn effective_classes(
    label: &LabelSpec,
    choice: &LabelChoice,
    values: &[String],
) -> Result<LabelClasses, ClassError> {
    let task = choice.task.unwrap_or(label.task);
    if task == Task::Binary {
        if !choice.group.is_empty() {
            return Err(ClassError::GroupsOnBinary);
        }
        let names = &label.names;
        return Ok(LabelClasses {
            classes: Classes::binary(&names.negative, &names.positive),
            ids: values
                .iter()
                .map(|v| u32::from(label.is_attack(v)))
                .collect(),
        });
    }
    let base: BTreeSet<String> = match &label.values {
        Some(listed) => listed.clone(),
        None => values.iter().cloned().collect(),
    };
    // Each value's class name after grouping.
    let mut class_of: BTreeMap<&str, &str> =
        base.iter().map(|v| (v.as_str(), v.as_str())).collect();
    let mut member_group: BTreeMap<&str, &str> = BTreeMap::new();
    let known = || sorted_names(label.label_type, base.iter().cloned().collect()).join(", ");
    for (group, members) in &choice.group {
        if members.is_empty() {
            return Err(ClassError::EmptyGroup {
                group: group.clone(),
            });
        }
        for member in members {
            if !base.contains(member) {
                return Err(ClassError::UnknownMember {
                    group: group.clone(),
                    member: member.clone(),
                    known: known(),
                });
            }
            if let Some(first) = member_group.insert(member, group)
                && first != group
            {
                return Err(ClassError::TwoGroups {
                    member: member.clone(),
                    first: first.to_owned(),
                    second: group.clone(),
                });
            }
            class_of.insert(member, group);
        }
        let (normal, attack): (Vec<&String>, Vec<&String>) =
            members.iter().partition(|m| !label.is_attack(m));
        if !normal.is_empty() && !attack.is_empty() {
            let list =
                |v: Vec<&String>| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
            return Err(ClassError::Mixed {
                group: group.clone(),
                normal: list(normal),
                attack: list(attack),
            });
        }
    }
    for group in choice.group.keys() {
        if base.contains(group) && member_group.get(group.as_str()) != Some(&group.as_str()) {
            return Err(ClassError::NameTaken {
                group: group.clone(),
            });
        }
    }
    let names: BTreeSet<String> = class_of.values().map(|c| (*c).to_owned()).collect();
    let names = sorted_names(label.label_type, names.into_iter().collect());
    // A class is normal when its values (or its group's members) are.
    let normal: Vec<bool> = names
        .iter()
        .map(|name| match choice.group.get(name) {
            Some(members) => members.iter().all(|m| !label.is_attack(m)),
            None => !label.is_attack(name),
        })
        .collect();
    if names.len() < 2 {
        return Err(ClassError::TooFewClasses {
            count: names.len(),
            names: names.join(", "),
        });
    }
    fn grouped<'a>(class_of: &BTreeMap<&str, &'a str>, v: &'a str) -> &'a str {
        class_of.get(v).copied().unwrap_or(v)
    }
    let class_name = |v: &String| grouped(&class_of, v.as_str()).to_owned();
    if names.len() == 2 && normal.iter().filter(|&&n| n).count() == 1 {
        // Two classes, one normal: binary, normal id 0, attack id 1.
        let (n, a) = if normal[0] { (0, 1) } else { (1, 0) };
        let classes = Classes::binary(&names[n], &names[a]);
        let ids = values
            .iter()
            .map(|v| u32::from(class_name(v) == names[a]))
            .collect();
        return Ok(LabelClasses { classes, ids });
    }
    let index: BTreeMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    let ids = values
        .iter()
        .map(|v| index.get(class_name(v).as_str()).copied().unwrap_or(0))
        .collect();
    Ok(LabelClasses {
        classes: Classes { names, normal },
        ids,
    })
}

/// Class names in class-id order: by name, or by numeric value for an integer label (as
/// numpy sorts an integer array).
fn sorted_names(label_type: LabelType, mut names: Vec<String>) -> Vec<String> {
    if label_type == LabelType::Integer {
        names.sort_by(|a, b| match (a.parse::<i64>(), b.parse::<i64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.cmp(b),
        });
    } else {
        names.sort();
    }
    names
}

/// Rows per class of `ids` (K counts).
pub fn class_counts(ids: &[u32], n_classes: usize) -> Vec<usize> {
    let mut counts = vec![0; n_classes];
    for &id in ids {
        if let Some(c) = counts.get_mut(id as usize) {
            *c += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::data::schema::Schema;

    fn label(text: &str) -> LabelSpec {
        let yaml = format!("name: t\nlabel: {text}\ncolumns:\n  - {{ name: a, type: float }}\n");
        Schema::from_yaml_str(Path::new("s.yaml"), &yaml)
            .unwrap()
            .label
    }

    fn values(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    const MULTI: &str = "{ column: y, type: string, task: multiclass, negative: [normal] }";

    #[test]
    fn binary_label_is_attack_bits_named_by_the_schema() {
        let l = label("{ column: y, type: string, negative: [normal] }");
        let c = effective_classes(
            &l,
            &LabelChoice::default(),
            &values(&["normal", "smurf", "neptune"]),
        )
        .unwrap();
        assert_eq!(c.classes, Classes::binary("normal", "attack"));
        assert_eq!(c.ids, [0, 1, 1]);
    }

    #[test]
    fn multiclass_classes_are_sorted_values_with_normal_flags() {
        let l = label(MULTI);
        let rows = values(&["smurf", "normal", "neptune", "normal", "back"]);
        let c = effective_classes(&l, &LabelChoice::default(), &rows).unwrap();
        assert_eq!(c.classes.names, ["back", "neptune", "normal", "smurf"]);
        assert_eq!(c.classes.normal, [false, false, true, false]);
        assert_eq!(c.ids, [3, 2, 1, 2, 0]);
        // `task: binary` in the grid folds it.
        let folded = LabelChoice {
            task: Some(Task::Binary),
            ..LabelChoice::default()
        };
        let b = effective_classes(&l, &folded, &rows).unwrap();
        assert!(b.classes.is_binary());
        assert_eq!(b.ids, [1, 0, 1, 0, 1]);
    }

    #[test]
    fn listed_values_are_the_classes_and_integers_sort_numerically() {
        let l = label(
            "{ column: y, type: integer, task: multiclass, values: [10, 2, 0, 1], negative: [0] }",
        );
        let c = effective_classes(&l, &LabelChoice::default(), &values(&["0", "10", "2"])).unwrap();
        assert_eq!(c.classes.names, ["0", "1", "2", "10"]);
        assert_eq!(c.ids, [0, 3, 2]);
    }

    #[test]
    fn no_normal_class_and_several_normal_classes() {
        let none = label("{ column: y, type: string, task: multiclass }");
        let c =
            effective_classes(&none, &LabelChoice::default(), &values(&["a", "b", "c"])).unwrap();
        assert!(!c.classes.has_normal());
        let two =
            label("{ column: y, type: string, task: multiclass, negative: [benign, normal] }");
        let c = effective_classes(
            &two,
            &LabelChoice::default(),
            &values(&["benign", "dos", "normal"]),
        )
        .unwrap();
        assert_eq!(c.classes.normal, [true, false, true]);
        let pos = label("{ column: y, type: string, task: multiclass, positive: [dos, probe] }");
        let c = effective_classes(
            &pos,
            &LabelChoice::default(),
            &values(&["ok", "dos", "probe"]),
        )
        .unwrap();
        assert_eq!(c.classes.names, ["dos", "ok", "probe"]);
        assert_eq!(c.classes.normal, [false, true, false]);
    }

    #[test]
    fn two_valued_multiclass_label_stays_binary() {
        let l = label(MULTI);
        let c =
            effective_classes(&l, &LabelChoice::default(), &values(&["smurf", "normal"])).unwrap();
        assert!(c.classes.is_binary());
        assert_eq!(c.classes.names, ["normal", "smurf"]);
        assert_eq!(c.ids, [1, 0]);
        // "attack" sorts before "normal": still normal id 0.
        let c =
            effective_classes(&l, &LabelChoice::default(), &values(&["attack", "normal"])).unwrap();
        assert_eq!(c.classes.names, ["normal", "attack"]);
        assert_eq!(c.ids, [1, 0]);
    }

    #[test]
    fn groups_merge_classes_and_are_checked() {
        let l = label(MULTI);
        let rows = values(&["guess_passwd", "normal", "warezclient", "neptune", "smurf"]);
        let mut choice = LabelChoice::default();
        choice.group.insert(
            "r2l".into(),
            vec!["guess_passwd".into(), "warezclient".into()],
        );
        let c = effective_classes(&l, &choice, &rows).unwrap();
        assert_eq!(c.classes.names, ["neptune", "normal", "r2l", "smurf"]);
        assert_eq!(c.ids, [2, 1, 2, 0, 3]);
        assert_eq!(
            choice.label_key().unwrap(),
            "group=r2l:guess_passwd,warezclient"
        );
        assert_eq!(LabelChoice::default().label_key(), None);

        choice.group.insert("dos".into(), vec!["neptun".into()]);
        let err = effective_classes(&l, &choice, &rows)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`neptun`") && err.contains("group `dos`"),
            "{err}"
        );

        let mut mixed = LabelChoice::default();
        mixed
            .group
            .insert("x".into(), vec!["normal".into(), "smurf".into()]);
        let err = effective_classes(&l, &mixed, &rows).unwrap_err();
        assert!(matches!(err, ClassError::Mixed { .. }), "{err}");

        let mut binary = LabelChoice {
            task: Some(Task::Binary),
            ..LabelChoice::default()
        };
        binary.group.insert("x".into(), vec!["smurf".into()]);
        assert_eq!(
            effective_classes(&l, &binary, &rows).unwrap_err(),
            ClassError::GroupsOnBinary
        );
    }
}
