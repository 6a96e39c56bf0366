//! netsec: an MLOps orchestrator for network-security classifiers.
//!
//! The library follows the flow of the data: [`data`] (load, validate, drift, split), and
//! the command layer in [`commands`] that the `netsec` binary dispatches to. Only the
//! command layer writes to stdout; everything else reports through return values and logs.

#[cfg(test)]
mod architecture;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod db;
pub mod exit;
pub mod fsutil;
pub mod ingest;
pub mod logging;
pub mod model_file;
pub mod models;
pub mod pipeline;
pub mod registry;
pub mod secret;
pub mod serve;
pub mod shared;
pub mod state;
pub mod storage;
pub mod sweep;
pub mod tracking;
