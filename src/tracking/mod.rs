//! Experiment tracking: a typed, retrying client for the MLflow REST API (a self-hosted
//! server or DagsHub), a durable outbox in the state database, the sender that empties it
//! exactly once, and [`MlflowTracker`], the sweep's reporter that records every sweep as a
//! parent run with one child run per trial.
//!
//! The sweep never waits for the server: reports become outbox records (a local insert),
//! which a background task sends while the sweep runs; what it cannot send waits for
//! `netsec sync` ([`sync`]). The best model also becomes an MLflow 3 logged model (its
//! ONNX export with an `MLmodel`, see [`logged_model`]), and alias moves of the local
//! registry (promotions, rollbacks) go the same way into MLflow's model registry (see
//! [`mirror`]).

mod artifacts;
mod batch;
pub mod charts;
mod client;
pub mod collect;
mod config;
mod error;
mod features;
pub mod inputs;
pub mod keys;
mod links;
pub mod logged_model;
pub mod mirror;
pub mod outbox;
mod record;
mod registry;
mod retry;
pub mod send;
pub mod sync;
pub mod tracker;
mod types;

pub use batch::{
    LogBatch, MAX_ENTRIES_PER_REQUEST, MAX_KEY_CHARS, MAX_METRICS_PER_REQUEST,
    MAX_PARAM_VALUE_CHARS, MAX_PARAMS_PER_REQUEST, MAX_TAG_VALUE_CHARS, MAX_TAGS_PER_REQUEST,
};
pub use client::{MlflowClient, RunSearch, RunSpec, system_tags};
pub use config::{Auth, Secret, TrackingConfig};
pub use error::{Result, TrackingError};
pub use outbox::{Outbox, OutboxCounts, OutboxError};
pub use registry::VersionSource;
pub use retry::RetryPolicy;
pub use send::{DrainReport, Sender};
pub use tracker::{MlflowTracker, TrackerOptions, TrackingReport};
pub use types::{
    AliasTarget, Dataset, Experiment, ExperimentHandle, FileInfo, Metric, ModelOutput,
    ModelVersion, Param, RegisteredModel, Run, RunData, RunDataset, RunInfo, RunInputs, RunOutputs,
    RunStatus, RunsPage, Tag,
};
