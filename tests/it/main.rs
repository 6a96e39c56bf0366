//! Every integration test of netsec, in one test binary (as ripgrep and uv do): the crate
//! is linked once instead of once per file, and the server fixtures of [`common`] (MLflow,
//! S3, MongoDB) are shared by every module that asks for them.
//!
//! One module per area, each with the doc comment saying what it covers. The binary is run
//! by [`common::netsec_command`] only, which starts from an empty environment, so nothing
//! from the shell running the tests reaches netsec. No test sets a variable of this process
//! or changes its working directory: tests run in parallel threads of one process.

mod common;

mod accuracy;
mod byod_cli;
mod class_weight_cli;
mod classes_cli;
mod dashboards;
mod data_cli;
mod deploy;
mod early_stopping_cli;
mod exactly_once;
mod experiment_cli;
mod flags_cli;
mod harden_cli;
mod logged_model;
mod mirror_cli;
mod missing_parity;
mod mlflow_client;
mod mongo_cli;
mod multiclass_parity;
mod onnx_export;
mod operating_point_cli;
mod props;
mod publish_crash;
mod publish_s3;
mod registry_cli;
mod retrain_cli;
mod s3_multipart;
mod search_cli;
mod secret_canaries;
mod serve_http;
mod serve_soak;
mod shard_cli;
mod shipped_files;
mod tracking_cli;
