//! The `netsec serve` workflow: load the model (a file, or a store's pointer), start the
//! prediction log, bind, and serve until SIGINT/SIGTERM, then drain the log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::app::{AppState, ServeOptions, serve, shutdown_signal};
use super::prediction_log::{self, PredictionLogConfig, PredictionLogError};
use super::source::{LoadedModel, ModelSource, SourceError};
use crate::storage::S3Options;

/// How long, after the last request, queued predictions may take to reach the log.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything `netsec serve` needs, already checked.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// A model file, or a `file://` / `s3://` store holding a pointer (then polled).
    pub model: String,
    /// How to reach S3 for an `s3://` model.
    pub s3: S3Options,
    /// Address to listen on (port 0 picks a free port).
    pub bind: SocketAddr,
    /// Body limit, timeout, token.
    pub options: ServeOptions,
    /// How often a store's pointer is polled.
    pub reload_interval: Duration,
    /// Where every prediction is logged, if anywhere.
    pub prediction_log: Option<PredictionLogConfig>,
}

/// The server is bound and about to serve: what the caller announces.
#[derive(Debug)]
pub struct Listening<'a> {
    /// The bound address (with the port the OS picked for port 0).
    pub address: SocketAddr,
    /// The model being served.
    pub model: &'a LoadedModel,
}

/// Why `netsec serve` could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The model cannot be loaded from its file or store.
    #[error("loading the model from {model}")]
    Load {
        /// The `--model` text.
        model: String,
        /// Why.
        #[source]
        source: SourceError,
    },
    /// The prediction log cannot be set up.
    #[error(transparent)]
    PredictionLog(#[from] PredictionLogError),
    /// The address cannot be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bound socket has no local address.
    #[error(transparent)]
    Address(std::io::Error),
    /// The caller could not announce the address (e.g. stdout closed).
    #[error("writing the address")]
    Announce(#[source] std::io::Error),
    /// The server loop failed.
    #[error("serving")]
    Serve(#[source] std::io::Error),
}

impl ServeError {
    /// The process exit code: the model source's and the prediction log's own, else a
    /// runtime failure (the network, the socket).
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::Load { source, .. } => source.exit_code(),
            ServeError::PredictionLog(e) => e.exit_code(),
            ServeError::Bind { .. }
            | ServeError::Address(_)
            | ServeError::Announce(_)
            | ServeError::Serve(_) => crate::exit::RUNTIME_FAILURE,
        }
    }
}

/// Loads the model, starts the prediction log, binds, calls `announce` once the address is
/// known, and serves until SIGINT/SIGTERM; then waits for the prediction log to drain. The
/// entry point of `netsec serve`.
pub async fn run(
    config: ServeConfig,
    announce: impl FnOnce(&Listening<'_>) -> std::io::Result<()>,
) -> Result<(), ServeError> {
    let load = |source| ServeError::Load {
        model: config.model.clone(),
        source,
    };
    let source = ModelSource::open(&config.model, &config.s3)
        .await
        .map_err(load)?;
    let model = source.load().await.map_err(load)?;
    // Started before the address is announced, so a bad URI fails before "serving".
    let prediction_log = match config.prediction_log {
        Some(log) => {
            let target = prediction_log::display_target(&log);
            let started = prediction_log::start(log).await?;
            tracing::info!(server = %target, "logging predictions");
            Some(started)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| ServeError::Bind {
            address: config.bind,
            source,
        })?;
    let address = listener.local_addr().map_err(ServeError::Address)?;
    // Before the address is out: whoever reads it may signal at once.
    let shutdown = shutdown_signal();
    announce(&Listening {
        address,
        model: &model,
    })
    .map_err(ServeError::Announce)?;
    let options = config.options;
    tracing::info!(%address, auth = options.token.is_some(), "listening");
    let reload = match source {
        ModelSource::Store(store) => Some((store, config.reload_interval)),
        ModelSource::File(_) => None,
    };
    let state = AppState::new(model, &options);
    let (state, log_task) = match prediction_log {
        Some((log, task)) => (state.with_prediction_log(log), Some(task)),
        None => (state, None),
    };
    let served = serve(listener, Arc::new(state), &options, reload, shutdown).await;
    // Every request has been answered: what they queued is written (or dropped at the
    // deadline) before the process ends.
    if let Some(task) = log_task {
        task.finish().await;
    }
    served.map_err(ServeError::Serve)
}
