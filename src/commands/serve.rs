//! `netsec serve`: the entry point for answering predictions over HTTP.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::ServeArgs;
use crate::exit::{Outcome, UsageError};
use crate::serve::prediction_log::{self, PredictionLogConfig, PredictionLogError};
use crate::serve::{AppState, ModelSource, ServeOptions, serve, shutdown_signal};
use crate::storage::S3Options;

/// How long, after the last request, queued predictions may take to reach the log.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Loads the model, binds, prints the address, and serves until SIGINT/SIGTERM.
pub async fn run(args: ServeArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let prediction_log = prediction_log_config(&args)?;
    let token = serve_token(std::env::var("NETSEC_SERVE_TOKEN").ok());
    let options = ServeOptions {
        max_body_bytes: args.max_body_bytes,
        request_timeout: args.request_timeout,
        token,
        ..ServeOptions::default()
    };
    // The worker count is a property of the process's runtime, which the caller builds
    // (`main.rs` reads `--workers` from the parsed arguments); here it is only checked.
    if args.workers == Some(0) {
        return Err(UsageError("--workers must be at least 1".into()).into());
    }
    let s3 = S3Options::with_endpoint(args.s3.endpoint_url.clone());
    let (source, model) = async {
        let source = ModelSource::open(&args.model, &s3).await?;
        let model = source.load().await?;
        Ok::<_, crate::serve::SourceError>((source, model))
    }
    .await
    .with_context(|| format!("loading the model from {}", args.model))?;
    // Started before the address is printed, so a bad URI fails before "serving".
    let prediction_log = match prediction_log {
        Some(config) => {
            let target = prediction_log::display_target(&config);
            let started = prediction_log::start(config).await.map_err(|e| match e {
                PredictionLogError::Uri { .. } => anyhow::Error::from(UsageError(e.to_string())),
                other => other.into(),
            })?;
            tracing::info!(server = %target, "logging predictions");
            Some(started)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let address = listener.local_addr()?;
    // Before the address is out: whoever reads it may signal at once.
    let shutdown = shutdown_signal();
    writeln!(
        out,
        "serving {} version {} ({} sha256 {}) on http://{address}",
        model.name,
        model.version_text(),
        model.file.algorithm,
        &model.sha256[..12],
    )?;
    out.flush()?;
    tracing::info!(
        %address,
        auth = options.token.is_some(),
        "listening"
    );
    let reload = match source {
        ModelSource::Store(store) => Some((store, args.reload_interval)),
        ModelSource::File(_) => None,
    };
    let state = AppState::new(model, &options);
    let (state, log_task) = match prediction_log {
        Some((log, task)) => (state.with_prediction_log(log), Some(task)),
        None => (state, None),
    };
    let state = Arc::new(state);
    let served = serve(listener, state, &options, reload, shutdown).await;
    // Every request has been answered: what they queued is written (or dropped at the
    // deadline) before the process ends.
    if let Some(task) = log_task {
        task.finish().await;
    }
    served.context("serving")?;
    Ok(Outcome::Success)
}

/// The prediction log's settings, when `--prediction-log` (or NETSEC_PREDICTION_LOG) is set.
fn prediction_log_config(args: &ServeArgs) -> Result<Option<PredictionLogConfig>, UsageError> {
    let Some(uri) = args
        .prediction_log
        .as_ref()
        .filter(|u| !u.trim().is_empty())
    else {
        return Ok(None);
    };
    if !(uri.starts_with("mongodb://") || uri.starts_with("mongodb+srv://")) {
        return Err(UsageError(
            "--prediction-log must be a mongodb:// or mongodb+srv:// URI".into(),
        ));
    }
    if args.prediction_log_queue == 0 || args.prediction_log_batch == 0 {
        return Err(UsageError(
            "--prediction-log-queue and --prediction-log-batch must be at least 1".into(),
        ));
    }
    Ok(Some(PredictionLogConfig {
        uri: uri.clone(),
        db: args.prediction_log_db.clone(),
        collection: args.prediction_log_collection.clone(),
        queue_capacity: args.prediction_log_queue,
        batch_size: args.prediction_log_batch,
        flush_interval: args.prediction_log_flush,
        drain_timeout: DRAIN_TIMEOUT,
    }))
}

/// The bearer token from the raw NETSEC_SERVE_TOKEN value, trimmed on both sides like the
/// `Authorization` header it is compared with (a secret mounted from a file ends with a
/// newline); blank means no token.
fn serve_token(raw: Option<String>) -> Option<String> {
    raw.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::serve_token;

    #[test]
    fn serve_token_ignores_surrounding_whitespace() {
        // Secrets mounted from files usually end with a newline.
        for raw in ["s3cret", "s3cret\n", " s3cret\r\n", "\ts3cret "] {
            assert_eq!(
                serve_token(Some(raw.into())).as_deref(),
                Some("s3cret"),
                "{raw:?}"
            );
        }
        assert_eq!(serve_token(Some(" \n".into())), None);
        assert_eq!(serve_token(None), None);
    }
}
