//! `netsec serve`: the entry point for answering predictions over HTTP.

use std::io::Write;

use crate::cli::ServeArgs;
use crate::exit::{Outcome, UsageError};
use crate::serve::prediction_log::PredictionLogConfig;
use crate::serve::run::DRAIN_TIMEOUT;
use crate::serve::{ServeConfig, ServeOptions};
use crate::storage::S3Options;

/// Loads the model, binds, prints the address, and serves until SIGINT/SIGTERM.
pub async fn run(args: ServeArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let prediction_log = prediction_log_config(&args)?;
    let token = serve_token(std::env::var("NETSEC_SERVE_TOKEN").ok());
    // The worker count is a property of the process's runtime, which the caller builds
    // (`main.rs` reads `--workers` from the parsed arguments); here it is only checked.
    if args.workers == Some(0) {
        return Err(UsageError("--workers must be at least 1".into()).into());
    }
    let config = ServeConfig {
        s3: S3Options::with_endpoint(args.s3.endpoint_url.clone()),
        model: args.model,
        bind: args.bind,
        options: ServeOptions {
            max_body_bytes: args.max_body_bytes,
            request_timeout: args.request_timeout,
            drain_delay: args.drain_delay,
            token: token.map(Into::into),
            ..ServeOptions::default()
        },
        reload_interval: args.reload_interval,
        prediction_log,
    };
    crate::serve::run(config, |listening| {
        let model = listening.model;
        writeln!(
            out,
            "serving {} version {} ({} sha256 {}) on http://{}",
            model.name,
            model.version_text(),
            model.file.algorithm,
            crate::shared::short_hash(&model.sha256),
            listening.address,
        )?;
        out.flush()
    })
    .await?;
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
        uri: uri.clone().into(),
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
