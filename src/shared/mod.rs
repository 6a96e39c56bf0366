//! Small helpers every stage may use: reading YAML files with errors that name file, line
//! and column; the metric vocabulary; sha256 hex and short hashes; wall-clock milliseconds;
//! and the test-only switch that turns a fault guard off ([`guard`]).

pub mod classes;
pub mod guard;
pub mod hash;
pub mod metric;
pub mod special;
pub mod time;
pub mod yaml;

pub use classes::Classes;
pub use hash::short as short_hash;
pub use metric::Metric;
pub use time::{format_ms, now_ms};
