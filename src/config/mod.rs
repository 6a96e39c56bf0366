//! Files users write: grid files, retrain files and the YAML reading they share with schema
//! files.

pub mod grid;
pub mod retrain;
pub mod yaml;
