//! netsec: an MLOps orchestrator for network-security classifiers.
//!
//! The library follows the flow of the data, one module per stage:
//!
//! | stage | what it owns |
//! |---|---|
//! | [`data`] | loading CSV/Parquet, schemas, validation, drift, splits, synthetic profiles |
//! | [`models`] | the `Algorithm` trait, one file per algorithm, class weights, missing values, metrics, operating points |
//! | [`sweep`] | plans, trial keys, the sweep driver [`sweep::run()`], the run store, merging run stores |
//! | [`tracking`] | the MLflow REST client, the outbox, sync, the registry mirror, logged models |
//! | [`registry`] | the SQLite registry, policies, the promotion workflow [`registry::promote()`] |
//! | [`storage`] | `file://` and `s3://` model stores behind one trait, publishing |
//! | [`export`] | model files to other formats: ONNX for onnxruntime, with the schema's encoding in the graph |
//! | [`serve`] | the HTTP app, hot reload, the prediction log, batch prediction |
//! | [`ingest`] | MongoDB collections in and out |
//! | [`config`] | the files users write: grid and retrain files |
//! | [`pipeline`] | workflows that span stages: data sources, experiment, promote, publish-then-mirror, collect, retrain |
//!
//! Shared helpers any stage may use: [`shared`] (hashes, the clock, the metric vocabulary,
//! YAML), [`state`] (the state directory's layout and run lock), [`model_file`], [`db`],
//! [`fsutil`], [`secret`], [`exit`] (exit codes) and [`logging`]. Dependencies point one way,
//! as `DESIGN.md`'s table says; a unit test (`architecture.rs`) fails on any other arrow.
//!
//! [`cli`] holds the clap definitions and [`commands`] one thin async function per
//! subcommand: arguments to typed input, one library call, rendering. Only the command
//! layer writes to stdout; everything else reports through return values, reporters and
//! logs. The binary builds the process's one tokio runtime in `main.rs`.
#![warn(missing_docs)]

#[cfg(test)]
mod architecture;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod db;
pub mod exit;
pub mod export;
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
