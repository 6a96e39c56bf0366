//! Moved to [`crate::shared::yaml`]: schema files (in `data`) read YAML too, and `data`
//! must not import `config`. Re-exported here until every caller uses the new path.

pub use crate::shared::yaml::{YamlError, parse_yaml, read_yaml};
