//! The axum application: shared state, the router with its layers (body limit, timeout,
//! bearer token, metrics), and the server loop with graceful shutdown and hot reload.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;

use super::metrics::Metrics;
use super::prediction_log::PredictionLog;
use super::routes::{self, ApiError};
use super::source::LoadedModel;
use crate::shared::guard::Guard;
use crate::storage::ModelStore;

/// How the server behaves; built by `netsec serve` from its flags.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Requests taking longer get 408.
    pub request_timeout: Duration,
    /// When set, prediction, model and metrics routes need `Authorization: Bearer <token>`.
    pub token: Option<crate::secret::Secret<String>>,
    /// Bodies up to this size are predicted on the async worker; larger ones on the
    /// blocking pool so that they never stall other requests.
    pub inline_body_bytes: usize,
    /// After SIGTERM, how long `/readyz` answers 503 while every route still serves, before
    /// the listener closes: a load balancer needs a few probe periods to stop sending.
    pub drain_delay: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_body_bytes: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            token: None,
            inline_body_bytes: 16 * 1024,
            drain_delay: Duration::ZERO,
        }
    }
}

/// What every request handler shares.
pub struct AppState {
    /// The model being served; swapped atomically on reload.
    pub model: ArcSwap<LoadedModel>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Set when shutdown began: `/readyz` answers 503 so load balancers stop sending.
    pub draining: AtomicBool,
    /// sha256 of the bearer token, compared in constant time (the token itself is not kept).
    token_sha256: Option<[u8; 32]>,
    /// See [`ServeOptions::inline_body_bytes`].
    pub inline_body_bytes: usize,
    /// Where answered predictions are logged, if anywhere.
    pub prediction_log: Option<PredictionLog>,
}

impl AppState {
    /// State serving `model`.
    pub fn new(model: LoadedModel, options: &ServeOptions) -> AppState {
        AppState {
            model: ArcSwap::from_pointee(model),
            metrics: Metrics::default(),
            draining: AtomicBool::new(false),
            token_sha256: options
                .token
                .as_ref()
                .map(|t| Sha256::digest(t.expose().as_bytes()).into()),
            inline_body_bytes: options.inline_body_bytes,
            prediction_log: None,
        }
    }

    /// The same state, logging every answered prediction to `log`.
    pub fn with_prediction_log(mut self, log: PredictionLog) -> AppState {
        self.prediction_log = Some(log);
        self
    }

    fn authorized(&self, header: Option<&str>) -> bool {
        let Some(expected) = &self.token_sha256 else {
            return true;
        };
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        // Comparing digests, not tokens, keeps the time independent of where they differ.
        let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Routes as metric labels: a fixed set, so that scanners probing paths cannot grow it.
fn route_label(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/page.js" => "/page.js",
        "/page.css" => "/page.css",
        "/predict" => "/predict",
        "/predict/csv" => "/predict/csv",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/model" => "/model",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

/// Routes that answer without a token: the page and its assets (it asks for the token
/// itself) and probes.
fn is_open(route: &str) -> bool {
    matches!(
        route,
        "/" | "/page.js" | "/page.css" | "/healthz" | "/readyz"
    )
}

async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = route_label(request.uri().path());
    let response = if is_open(route)
        || state.authorized(
            request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        ) {
        next.run(request).await
    } else {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token (Authorization: Bearer <NETSEC_SERVE_TOKEN>)",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        response
    };
    state
        .metrics
        .observe_request(route, response.status().as_u16(), start.elapsed());
    response
}

/// The application router with every layer.
pub fn router(state: Arc<AppState>, options: &ServeOptions) -> Router {
    Router::new()
        .route("/", get(routes::page))
        .route("/page.js", get(routes::page_js))
        .route("/page.css", get(routes::page_css))
        .route("/predict", post(routes::predict))
        .route("/predict/csv", post(routes::predict_csv))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/model", get(routes::model))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state)
}

/// Serves on `listener` until `shutdown` completes, then finishes the requests in flight.
/// With `reload = Some((store, interval))` the store's pointer is polled meanwhile.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    options: &ServeOptions,
    reload: Option<(ModelStore, Duration)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let watcher = reload.map(|(store, interval)| {
        tokio::spawn(super::reload::watch(Arc::clone(&state), store, interval))
    });
    let app = router(Arc::clone(&state), options);
    let draining = Arc::clone(&state);
    let drain_delay = options.drain_delay;
    // Answers go out as soon as they are written (no Nagle delay behind a client's
    // delayed ACK), which matters for the tail latency of small answers.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    // Only a test's twin stops at once on the signal: no 503 phase, requests in flight
    // cut off (see `Guard::Drain`).
    if Guard::Drain.disabled() {
        let result = tokio::select! {
            result = axum::serve(listener, app).into_future() => result,
            () = shutdown => Ok(()),
        };
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        return result;
    }
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            draining.draining.store(true, Ordering::SeqCst);
            if !drain_delay.is_zero() {
                tracing::info!(
                    delay = ?drain_delay,
                    "shutting down: /readyz answers 503, still serving until the delay ends"
                );
                tokio::time::sleep(drain_delay).await;
            }
            tracing::info!("shutting down: finishing requests in flight");
        })
        .await;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    result
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a signal that arrives between the
/// "serving" line and the server loop's start must stop the server gracefully, not kill it
/// by the default action. Call it from within the runtime.
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        let interrupt = async {
            match interrupt {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        let terminate = async {
            match terminate {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = interrupt => {}
            () = terminate => {}
        }
    }
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
