//! The sweep stage: plan trials from a grid file, run them in parallel with
//! cross-validation, keep every result in the local run store, resume what is missing.

pub mod collect;
pub mod executor;
pub mod plan;
pub mod record;
pub mod report;
pub mod store;
