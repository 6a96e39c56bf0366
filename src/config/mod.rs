//! Files users write: grid files and retrain files. Reading YAML, which schema files share,
//! is in [`crate::shared::yaml`].

pub mod grid;
pub mod retrain;
pub mod search;
