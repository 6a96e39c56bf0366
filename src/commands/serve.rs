//! `netsec serve`: the entry point for answering predictions over HTTP.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::ServeArgs;
use crate::exit::{Outcome, UsageError};
use crate::serve::{AppState, ModelSource, ServeOptions, serve, shutdown_signal};

/// Loads the model, binds, prints the address, and serves until SIGINT/SIGTERM.
pub fn run(args: ServeArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let token = std::env::var("NETSEC_SERVE_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty());
    let options = ServeOptions {
        max_body_bytes: args.max_body_bytes,
        request_timeout: args.request_timeout,
        token,
        ..ServeOptions::default()
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = args.workers {
        if workers == 0 {
            return Err(UsageError("--workers must be at least 1".into()).into());
        }
        runtime.worker_threads(workers);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let s3 = super::publish::s3_options(&args.s3);
    let (source, model) = runtime
        .block_on(async {
            let source = ModelSource::open(&args.model, &s3).await?;
            let model = source.load().await?;
            Ok::<_, crate::serve::SourceError>((source, model))
        })
        .with_context(|| format!("loading the model from {}", args.model))?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.bind))
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let address = listener.local_addr()?;
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
    let state = Arc::new(AppState::new(model, &options));
    runtime
        .block_on(serve(listener, state, &options, reload, shutdown_signal()))
        .context("serving")?;
    Ok(Outcome::Success)
}
