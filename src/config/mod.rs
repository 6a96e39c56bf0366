//! Files users write: grid files and the YAML reading they share with schema files.

pub mod grid;
pub mod yaml;
