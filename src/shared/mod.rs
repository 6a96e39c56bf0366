//! Small helpers every stage may use: reading YAML files with errors that name file, line
//! and column.

pub mod yaml;
