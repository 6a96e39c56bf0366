//! The HTTP core of the client plus experiments and runs.

use crate::shared::guard::Guard;
use crate::shared::now_ms;
use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::config::{Auth, TrackingConfig};
use super::error::{Result, TrackingError};
use super::types::{Experiment, ExperimentHandle, Run, RunStatus, RunsPage, Tag};

/// Well-known MLflow system tags.
pub mod system_tags {
    /// Id of the parent run; the UI folds children under it.
    pub const PARENT_RUN_ID: &str = "mlflow.parentRunId";
    /// Display name of the run.
    pub const RUN_NAME: &str = "mlflow.runName";
    /// Markdown description shown in the UI.
    pub const NOTE: &str = "mlflow.note.content";
    /// Program that produced the run.
    pub const SOURCE_NAME: &str = "mlflow.source.name";
    /// `LOCAL` or `JOB`.
    pub const SOURCE_TYPE: &str = "mlflow.source.type";
    /// Git commit of the code.
    pub const GIT_COMMIT: &str = "mlflow.source.git.commit";
    /// Who ran it.
    pub const USER: &str = "mlflow.user";
    /// Tag this client sets on runs created with an idempotency key.
    pub const IDEMPOTENCY_KEY: &str = "netsec.idempotency_key";
}

/// A typed, retrying client for the MLflow REST API.
///
/// Cheap to clone: clones share one connection pool (keep-alive). Every method is safe to
/// retry; the ones that are not naturally idempotent say what they do about it.
#[derive(Clone)]
pub struct MlflowClient {
    http: reqwest::Client,
    config: TrackingConfig,
}

impl fmt::Debug for MlflowClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlflowClient")
            .field("base_url", &self.config.base_url)
            .field("auth", &self.config.auth)
            .field("retry", &self.config.retry)
            .finish_non_exhaustive()
    }
}

/// What a request carries.
#[derive(Clone)]
pub(crate) enum Payload {
    /// No body.
    Empty,
    /// A JSON document, serialized once so every attempt sends the same bytes.
    Json(Vec<u8>),
    /// Raw bytes (artifact upload).
    Bytes(Vec<u8>),
}

impl Payload {
    /// Serializes `value` as a JSON body.
    pub(crate) fn json(value: &impl Serialize) -> Result<Self> {
        serde_json::to_vec(value)
            .map(Payload::Json)
            .map_err(|e| TrackingError::Invalid(format!("cannot encode request body: {e}")))
    }
}

impl MlflowClient {
    /// A client configured from `MLFLOW_TRACKING_URI` and friends (see
    /// [`TrackingConfig::from_env`]).
    pub fn from_env() -> Result<Self> {
        Self::new(TrackingConfig::from_env()?)
    }

    /// A client for `config`.
    pub fn new(config: TrackingConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("netsec/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(50))
            .build()
            .map_err(|e| TrackingError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(MlflowClient { http, config })
    }

    /// The same client (sharing its connections) with another retry policy.
    pub fn with_retry(mut self, retry: super::retry::RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &TrackingConfig {
        &self.config
    }

    /// Calls `/api/2.0/mlflow/<path>` and decodes the JSON answer.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        payload: Payload,
    ) -> Result<T> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.config.base_url);
        let endpoint = format!("{method} {path}");
        let body = self.send(method, &url, &endpoint, query, payload).await?;
        decode(&endpoint, &body)
    }

    /// Sends one request with retries and returns the body of a 2xx answer.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        endpoint: &str,
        query: &[(&str, &str)],
        payload: Payload,
    ) -> Result<Vec<u8>> {
        self.config
            .retry
            .run(endpoint, || {
                self.attempt(method.clone(), url, endpoint, query, &payload)
            })
            .await
    }

    /// One attempt; returns the outcome and the server's `Retry-After`, if any.
    async fn attempt(
        &self,
        method: Method,
        url: &str,
        endpoint: &str,
        query: &[(&str, &str)],
        payload: &Payload,
    ) -> (Result<Vec<u8>>, Option<Duration>) {
        let mut req = self.http.request(method, url);
        if !query.is_empty() {
            req = req.query(query);
        }
        req = match payload {
            Payload::Empty => req,
            Payload::Json(bytes) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Payload::Bytes(bytes) => req
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes.clone()),
        };
        // basic_auth/bearer_auth mark the header sensitive, so it is redacted in traces.
        req = match &self.config.auth {
            Auth::None => req,
            Auth::Basic { username, password } => req.basic_auth(username, Some(password.expose())),
            Auth::Bearer(token) => req.bearer_auth(token.expose()),
        };
        let transport = |source: reqwest::Error| TrackingError::Transport {
            endpoint: endpoint.to_string(),
            source,
        };
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) => return (Err(transport(e)), None),
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = match response.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => return (Err(transport(e)), None),
        };
        tracing::debug!(
            endpoint,
            status = status.as_u16(),
            bytes = body.len(),
            "MLflow request"
        );
        if status.is_success() {
            (Ok(body), None)
        } else {
            (Err(api_error(endpoint, status, &body)), retry_after)
        }
    }

    // ----- experiments -----

    /// The experiment called `name`, deleted ones included; `None` if there is none.
    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        let got: Result<ExperimentEnvelope> = self
            .call(
                Method::GET,
                "experiments/get-by-name",
                &[("experiment_name", name)],
                Payload::Empty,
            )
            .await;
        match got {
            Ok(e) => Ok(Some(e.experiment)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates an experiment and returns its id; fails with `RESOURCE_ALREADY_EXISTS` if
    /// the name is taken (also by a deleted experiment).
    pub async fn create_experiment(&self, name: &str) -> Result<String> {
        #[derive(serde::Deserialize)]
        struct Created {
            experiment_id: String,
        }
        let created: Created = self
            .call(
                Method::POST,
                "experiments/create",
                &[],
                Payload::json(&json!({ "name": name }))?,
            )
            .await?;
        Ok(created.experiment_id)
    }

    /// Marks an experiment (and its runs) deleted; its name stays taken.
    pub async fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        let body = json!({ "experiment_id": experiment_id });
        self.call::<serde_json::Value>(
            Method::POST,
            "experiments/delete",
            &[],
            Payload::json(&body)?,
        )
        .await
        .map(drop)
    }

    /// Brings back a deleted experiment.
    pub async fn restore_experiment(&self, experiment_id: &str) -> Result<()> {
        let body = json!({ "experiment_id": experiment_id });
        self.call::<serde_json::Value>(
            Method::POST,
            "experiments/restore",
            &[],
            Payload::json(&body)?,
        )
        .await
        .map(drop)
    }

    /// The active experiment called `name`: fetched, created if absent (re-fetched if
    /// another client created it at the same moment), or restored if it had been deleted
    /// (see [`ExperimentHandle::restored`]).
    pub async fn get_or_create_experiment(&self, name: &str) -> Result<ExperimentHandle> {
        if name.trim().is_empty() {
            return Err(TrackingError::Invalid("experiment name is empty".into()));
        }
        let mut created = false;
        let mut experiment = match self.get_experiment_by_name(name).await? {
            Some(e) => e,
            None => {
                match self.create_experiment(name).await {
                    Ok(_) => created = true,
                    Err(e) if e.is_already_exists() => {
                        tracing::debug!(name, "experiment created concurrently; fetching it");
                    }
                    Err(e) => return Err(e),
                }
                self.get_experiment_by_name(name)
                    .await?
                    .ok_or_else(|| TrackingError::Decode {
                        endpoint: "GET experiments/get-by-name".into(),
                        status: 404,
                        message: format!("experiment {name:?} vanished right after creation"),
                    })?
            }
        };
        let restored = experiment.lifecycle_stage == "deleted";
        if restored {
            match self.restore_experiment(&experiment.experiment_id).await {
                Ok(()) => {}
                // Restoring an active experiment is a 404: someone (or our own retried
                // request whose answer was lost) restored it already.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
            experiment.lifecycle_stage = "active".into();
        }
        Ok(ExperimentHandle {
            experiment,
            created,
            restored,
        })
    }

    // ----- runs -----

    /// Creates a run. With [`RunSpec::idempotency_key`] set, a run of the same experiment
    /// carrying that key is returned instead of creating a second one, which makes the
    /// call safe to retry even when an earlier attempt's answer was lost.
    pub async fn create_run(&self, spec: &RunSpec) -> Result<Run> {
        let mut tags = spec.tags.clone();
        if let Some(parent) = &spec.parent_run_id {
            tags.push(Tag::new(system_tags::PARENT_RUN_ID, parent));
        }
        if let Some(key) = &spec.idempotency_key {
            tags.push(Tag::new(system_tags::IDEMPOTENCY_KEY, key));
        }
        let body = json!({
            "experiment_id": spec.experiment_id,
            "run_name": spec.run_name,
            "start_time": spec.start_time_ms.unwrap_or_else(now_ms),
            "tags": tags,
        });
        let payload = Payload::json(&body)?;
        let Some(key) = &spec.idempotency_key else {
            let run: RunEnvelope = self.call(Method::POST, "runs/create", &[], payload).await?;
            return Ok(run.run);
        };
        self.create_once(
            "POST runs/create",
            Guard::CreateOnce,
            |once| async move { once.find_run_by_key(&spec.experiment_id, key).await },
            |once| {
                let payload = payload.clone();
                async move {
                    let run: RunEnvelope =
                        once.call(Method::POST, "runs/create", &[], payload).await?;
                    Ok(run.run)
                }
            },
        )
        .await
    }

    /// Creates something that a retry must not create twice: each attempt looks it up
    /// first (`find`) and creates it (`create`) only when absent, both without retries of
    /// their own. A create whose answer was lost (the server acted, the client never heard)
    /// is then found by the next attempt instead of made again. With `guard` disabled (a
    /// test's twin, see [`Guard`]) the lookup is skipped and every attempt creates.
    pub(crate) async fn create_once<T, Find, FindFut, Create, CreateFut>(
        &self,
        endpoint: &str,
        guard: Guard,
        find: Find,
        create: Create,
    ) -> Result<T>
    where
        Find: Fn(MlflowClient) -> FindFut,
        FindFut: std::future::Future<Output = Result<Option<T>>>,
        Create: Fn(MlflowClient) -> CreateFut,
        CreateFut: std::future::Future<Output = Result<T>>,
    {
        let once = self.clone().with_retry(super::retry::RetryPolicy::never());
        self.config
            .retry
            .run(endpoint, || {
                let once = once.clone();
                let (find, create) = (&find, &create);
                async move {
                    let found = if guard.disabled() {
                        Ok(None)
                    } else {
                        find(once.clone()).await
                    };
                    let result = match found {
                        Ok(Some(found)) => Ok(found),
                        Ok(None) => create(once).await,
                        Err(err) => Err(err),
                    };
                    (result, None)
                }
            })
            .await
    }

    /// The run of `experiment_id` created with idempotency key `key`, if any.
    pub async fn find_run_by_key(&self, experiment_id: &str, key: &str) -> Result<Option<Run>> {
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(TrackingError::Invalid(format!(
                "idempotency key {key:?} may only hold ASCII letters, digits and -_.:"
            )));
        }
        let filter = format!("tags.`{}` = '{key}'", system_tags::IDEMPOTENCY_KEY);
        let search = RunSearch::new([experiment_id.to_string()])
            .filter(filter)
            .max_results(1);
        Ok(self
            .search_runs_page(&search, None)
            .await?
            .runs
            .into_iter()
            .next())
    }

    /// Fetches a run with its params, latest metrics and tags.
    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        let run: RunEnvelope = self
            .call(
                Method::GET,
                "runs/get",
                &[("run_id", run_id)],
                Payload::Empty,
            )
            .await?;
        Ok(run.run)
    }

    /// Sets a run's status; `end_time_ms` should be given for terminal statuses.
    pub async fn update_run(
        &self,
        run_id: &str,
        status: RunStatus,
        end_time_ms: Option<i64>,
    ) -> Result<()> {
        let mut body = json!({ "run_id": run_id, "status": status });
        if let Some(end) = end_time_ms {
            body["end_time"] = json!(end);
        }
        self.call::<serde_json::Value>(Method::POST, "runs/update", &[], Payload::json(&body)?)
            .await
            .map(drop)
    }

    /// Ends a run now with `status` (`Finished`, `Failed` or `Killed`).
    pub async fn finish_run(&self, run_id: &str, status: RunStatus) -> Result<()> {
        self.update_run(run_id, status, Some(now_ms())).await
    }

    /// One page of runs matching `search`; pass the previous page's token to go on.
    pub async fn search_runs_page(
        &self,
        search: &RunSearch,
        page_token: Option<&str>,
    ) -> Result<RunsPage> {
        let mut body = json!({
            "experiment_ids": search.experiment_ids,
            "max_results": search.max_results,
        });
        if let Some(filter) = &search.filter {
            body["filter"] = json!(filter);
        }
        if !search.order_by.is_empty() {
            body["order_by"] = json!(search.order_by);
        }
        if let Some(token) = page_token {
            body["page_token"] = json!(token);
        }
        self.call(Method::POST, "runs/search", &[], Payload::json(&body)?)
            .await
    }

    /// All runs matching `search`, following pagination to the end.
    pub async fn search_runs(&self, search: &RunSearch) -> Result<Vec<Run>> {
        let mut runs = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.search_runs_page(search, token.as_deref()).await?;
            runs.extend(page.runs);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(runs),
            }
        }
    }

    /// Every logged value of metric `key` of a run, in the order the server returns them.
    pub async fn get_metric_history(
        &self,
        run_id: &str,
        key: &str,
    ) -> Result<Vec<super::types::Metric>> {
        #[derive(serde::Deserialize)]
        struct History {
            #[serde(default)]
            metrics: Vec<super::types::Metric>,
        }
        let query = [("run_id", run_id), ("metric_key", key)];
        let history: History = self
            .call(Method::GET, "metrics/get-history", &query, Payload::Empty)
            .await?;
        Ok(history.metrics)
    }

    /// Sets (or overwrites) one tag of a run.
    pub async fn set_tag(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        super::batch::validate_key("tag", key)?;
        let body = json!({ "run_id": run_id, "key": key, "value": value });
        self.call::<serde_json::Value>(Method::POST, "runs/set-tag", &[], Payload::json(&body)?)
            .await
            .map(drop)
    }

    /// Sets the run's description (markdown shown in the UI).
    pub async fn set_note(&self, run_id: &str, markdown: &str) -> Result<()> {
        self.set_tag(run_id, system_tags::NOTE, markdown).await
    }
}

/// What [`MlflowClient::create_run`] creates.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunSpec {
    /// Experiment to create the run in.
    pub experiment_id: String,
    /// Display name (the server also stores it as tag `mlflow.runName`); empty lets the
    /// server pick one.
    pub run_name: String,
    /// Start time in ms; `None` means now.
    pub start_time_ms: Option<i64>,
    /// Tags to set at creation.
    pub tags: Vec<Tag>,
    /// Makes the run a child of this run (tag `mlflow.parentRunId`).
    pub parent_run_id: Option<String>,
    /// Key that makes creation idempotent (ASCII letters, digits, `-_.:`).
    pub idempotency_key: Option<String>,
}

impl RunSpec {
    /// A run called `run_name` in experiment `experiment_id`, starting now.
    pub fn new(experiment_id: impl Into<String>, run_name: impl Into<String>) -> Self {
        RunSpec {
            experiment_id: experiment_id.into(),
            run_name: run_name.into(),
            ..RunSpec::default()
        }
    }

    /// Adds a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push(Tag::new(key, value));
        self
    }

    /// Makes the run a child of `parent_run_id`.
    pub fn parent(mut self, parent_run_id: impl Into<String>) -> Self {
        self.parent_run_id = Some(parent_run_id.into());
        self
    }

    /// Sets the idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the start time (ms since the epoch).
    pub fn start_time_ms(mut self, ms: i64) -> Self {
        self.start_time_ms = Some(ms);
        self
    }
}

/// A run search: experiments, an MLflow filter string, page size, order.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSearch {
    /// Experiments to search.
    pub experiment_ids: Vec<String>,
    /// MLflow filter, e.g. ``tags.`mlflow.parentRunId` = '<id>'``.
    pub filter: Option<String>,
    /// Page size (the server caps it at 50000).
    pub max_results: u32,
    /// Ordering, e.g. `metrics.f1 DESC`.
    pub order_by: Vec<String>,
}

impl RunSearch {
    /// All runs of `experiment_ids`, 1000 per page.
    pub fn new(experiment_ids: impl IntoIterator<Item = String>) -> Self {
        RunSearch {
            experiment_ids: experiment_ids.into_iter().collect(),
            filter: None,
            max_results: 1000,
            order_by: Vec::new(),
        }
    }

    /// Sets the filter.
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// Sets the page size.
    pub fn max_results(mut self, n: u32) -> Self {
        self.max_results = n;
        self
    }

    /// Adds an ordering clause.
    pub fn order_by(mut self, clause: impl Into<String>) -> Self {
        self.order_by.push(clause.into());
        self
    }
}

#[derive(serde::Deserialize)]
struct ExperimentEnvelope {
    experiment: Experiment,
}

#[derive(serde::Deserialize)]
struct RunEnvelope {
    run: Run,
}

/// Decodes a 2xx body; an empty body counts as `{}`.
pub(crate) fn decode<T: DeserializeOwned>(endpoint: &str, body: &[u8]) -> Result<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| TrackingError::Decode {
        endpoint: endpoint.to_string(),
        status: 200,
        message: e.to_string(),
    })
}

/// Turns an error answer into [`TrackingError::Api`], using MLflow's JSON if present.
fn api_error(endpoint: &str, status: StatusCode, body: &[u8]) -> TrackingError {
    #[derive(serde::Deserialize)]
    struct MlflowError {
        error_code: Option<String>,
        message: Option<String>,
    }
    let parsed = serde_json::from_slice::<MlflowError>(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|e| e.error_code.clone())
        .unwrap_or_else(|| format!("HTTP_{}", status.as_u16()));
    let message = parsed.and_then(|e| e.message).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let cut: String = text.chars().take(300).collect();
        if cut.is_empty() {
            status.canonical_reason().unwrap_or("").to_string()
        } else {
            cut
        }
    });
    TrackingError::Api {
        endpoint: endpoint.to_string(),
        status: status.as_u16(),
        code,
        message,
    }
}

/// `Retry-After` in its delay-seconds form (the HTTP-date form is rare from APIs and
/// falls back to the computed backoff).
fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}
