//! The sweep stage: plan trials from a grid file, run them in parallel with
//! cross-validation, keep every result in the local run store, resume what is missing
//! ([`run`], the driver), and answer questions about past sweeps ([`query`]).

pub mod collect;
pub mod executor;
pub mod halving;
pub mod leaderboard;
pub mod plan;
pub mod query;
pub mod record;
pub mod report;
pub mod run;
pub mod search;
pub mod store;
pub mod survivors;

pub use run::{CancelToken, SweepInput, SweepOutcome, run};
