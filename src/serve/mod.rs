//! The serving stage: `netsec serve` answers predictions over HTTP from a model file or a
//! store pointer, with Prometheus metrics and hot reload.
//!
//! * [`answer`]: the row answer (`predicted_label`, `class_probability`,
//!   `attack_probability`, `is_attack`, `attack_class`, opt-in `p_<class>`), the same in
//!   `netsec predict`, `/predict` and `/predict/csv`.
//! * [`source`]: where the model comes from (model file, or a `file://` / `s3://` store
//!   and its pointer).
//! * [`input`]: request bodies typed against the model's schema and encoded;
//!   [`csv_body`]: the fast path for CSV bodies.
//! * [`routes`]: the handlers; [`app`]: state, router, layers and the server loop.
//! * [`metrics`]: counters and histograms in the Prometheus text format.
//! * [`reload`]: polling the pointer and swapping a verified new model in.
//! * [`prediction_log`]: every prediction written to MongoDB, off the request path.
//! * [`batch`]: `netsec predict`, a whole file scored offline with a model file.
//! * [`run`]: the `netsec serve` workflow (load, log, bind, serve, drain).
//!
//! Serving never trains: it depends on `models`, `data` and `storage`, never the other way.

pub mod answer;
pub mod app;
pub mod batch;
pub mod csv_body;
pub mod input;
pub mod metrics;
pub mod prediction_log;
pub mod reload;
pub mod routes;
pub mod run;
pub mod source;

pub use app::{AppState, ServeOptions, serve, shutdown_signal};
pub use run::{Listening, ServeConfig, ServeError, run};
pub use source::{LoadedModel, ModelSource, SourceError};
