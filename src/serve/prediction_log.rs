//! The prediction log: every answered prediction written to a MongoDB collection, without
//! ever slowing or failing the request that made it.
//!
//! A request hands its predictions to a bounded queue with `try_send` (never an `await`):
//! when the queue is full they are dropped and counted. One background writer takes
//! entries off the queue, turns them into documents, and writes them with unordered
//! `insert_many` batches when a batch is full or every flush interval. A failed batch is
//! counted and logged once (not once per batch) until writes succeed again. On shutdown
//! the writer drains the queue and writes what is left until a deadline.
//!
//! One document per predicted row:
//!
//! ```json
//! {"time": ISODate, "route": "/predict",
//!  "model": {"name": "netsec-phishing", "version": 3, "sha256": "9f2c…"},
//!  "input_sha256": "…", "features": {"URL_Length": 1, …},
//!  "predicted_label": -1, "class_probability": 0.97, "attack_probability": 0.97,
//!  "is_attack": true, "attack_class": "phishing"}
//! ```
//!
//! The answer fields are the row answer of [`super::answer`] (`null` where it is empty).
//! `features` are the record as the client sent it (JSON values, or the CSV row's cells as
//! text with the header's names); `input_sha256` hashes the encoded feature vector, so the
//! same row sent as JSON or as CSV has the same hash. `version` is the registry version, or
//! `"file"` for a plain model file.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use mongodb::bson::{Bson, DateTime, Document, doc};
use mongodb::error::ErrorKind;
use mongodb::{Client, Collection};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::answer::RowAnswer;
use super::source::LoadedModel;
use crate::ingest::mongo;
use crate::shared::guard::Guard;
use crate::shared::hash::hex;

/// How long the writer looks for the server before a batch counts as failed: short, so
/// that a server that went away is noticed quickly and shutdown is not held up.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Entries with more rows are turned into documents on the blocking pool.
const INLINE_ROWS: usize = 64;

/// Where and how predictions are logged; built by `netsec serve` from its flags.
#[derive(Debug, Clone)]
pub struct PredictionLogConfig {
    /// `mongodb://…` connection string; may hold credentials, so it is never printed.
    pub uri: crate::secret::Secret<String>,
    /// Database name.
    pub db: String,
    /// Collection name.
    pub collection: String,
    /// Requests whose predictions may wait for the writer; beyond that they are dropped.
    pub queue_capacity: usize,
    /// Documents per `insert_many`.
    pub batch_size: usize,
    /// A partial batch is written after waiting this long.
    pub flush_interval: Duration,
    /// On shutdown, what is still queued is written until this deadline, then dropped.
    pub drain_timeout: Duration,
}

/// A prediction log that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum PredictionLogError {
    /// The URI does not parse (bad input: exit code 2).
    #[error("invalid prediction log URI {uri}: {message}")]
    Uri {
        /// The URI without credentials.
        uri: String,
        /// What is wrong, with the URI's credentials replaced by `mongo::scrub` (the
        /// driver's `redact-errors` feature does not hide them).
        message: String,
    },
    /// The driver could not create a client.
    #[error("cannot create a MongoDB client for {target}: {message}")]
    Client {
        /// `mongodb://host:port/db.collection`.
        target: String,
        /// The driver's message.
        message: String,
    },
}

impl PredictionLogError {
    /// The process exit code: bad input for a URI that does not parse, else a runtime failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            PredictionLogError::Uri { .. } => crate::exit::BAD_INPUT,
            PredictionLogError::Client { .. } => crate::exit::RUNTIME_FAILURE,
        }
    }
}

/// The inputs of one request, as the client sent them.
#[derive(Debug)]
pub enum LoggedInputs {
    /// JSON records, one per prediction.
    Json(Vec<Map<String, Value>>),
    /// CSV rows: the header's names and the cells row by row (`header.len()` per row),
    /// `None` for an empty cell.
    Csv {
        /// Column names of the body's header.
        header: Vec<String>,
        /// Cells, row-major.
        cells: Vec<Option<String>>,
    },
}

/// What one answered request hands to the log.
#[derive(Debug)]
pub struct LogEntry {
    /// When it was answered.
    pub time: SystemTime,
    /// The route (`/predict` or `/predict/csv`).
    pub route: &'static str,
    /// The model that answered.
    pub model: Arc<LoadedModel>,
    /// The inputs as given.
    pub inputs: LoggedInputs,
    /// The encoded features, row-major (`model.width` per row).
    pub features: Vec<f64>,
    /// The answer of every row.
    pub answers: Vec<RowAnswer>,
}

/// Counters behind the `netsec_prediction_log_*` series.
#[derive(Debug, Default)]
struct Stats {
    written: AtomicU64,
    queue_full: AtomicU64,
    write_failed: AtomicU64,
    shutdown: AtomicU64,
}

/// The request side of the log: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct PredictionLog {
    sender: mpsc::Sender<LogEntry>,
    stats: Arc<Stats>,
}

impl PredictionLog {
    /// Queues a request's predictions for the writer, or counts them as dropped when the
    /// queue is full. Never waits.
    pub fn record(&self, entry: LogEntry) {
        let rows = entry.answers.len() as u64;
        match self.sender.try_send(entry) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.queue_full.fetch_add(rows, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.shutdown.fetch_add(rows, Ordering::Relaxed);
            }
        }
    }

    /// Appends the log's series in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str("# HELP netsec_prediction_log_written_total Predictions written to the prediction log.\n");
        out.push_str("# TYPE netsec_prediction_log_written_total counter\n");
        let _ = writeln!(
            out,
            "netsec_prediction_log_written_total {}",
            load(&self.stats.written)
        );
        out.push_str("# HELP netsec_prediction_log_dropped_total Predictions not written to the prediction log, by reason.\n");
        out.push_str("# TYPE netsec_prediction_log_dropped_total counter\n");
        for (reason, counter) in [
            ("queue_full", &self.stats.queue_full),
            ("write_failed", &self.stats.write_failed),
            ("shutdown", &self.stats.shutdown),
        ] {
            let _ = writeln!(
                out,
                "netsec_prediction_log_dropped_total{{reason=\"{reason}\"}} {}",
                load(counter)
            );
        }
        out.push_str("# HELP netsec_prediction_log_queue_entries Requests waiting for the prediction log writer.\n");
        out.push_str("# TYPE netsec_prediction_log_queue_entries gauge\n");
        let _ = writeln!(
            out,
            "netsec_prediction_log_queue_entries {}",
            self.sender.max_capacity() - self.sender.capacity()
        );
    }
}

/// The running writer; [`PredictionLogTask::finish`] drains it.
#[derive(Debug)]
pub struct PredictionLogTask {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<()>,
}

impl PredictionLogTask {
    /// Tells the writer to stop taking new entries, write what is queued (until the drain
    /// deadline) and end; waits for it.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        if self.handle.await.is_err() {
            tracing::warn!("the prediction log writer ended abnormally");
        }
    }
}

/// `mongodb://host:port/db.collection`, safe to print.
pub fn display_target(config: &PredictionLogConfig) -> String {
    mongo::display_target(config.uri.expose(), &config.db, &config.collection)
}

/// Parses the URI and starts the writer on the current runtime. The server is not
/// contacted here: an unreachable server is reported by the writer (a warning) and never
/// keeps the server from answering.
pub async fn start(
    config: PredictionLogConfig,
) -> Result<(PredictionLog, PredictionLogTask), PredictionLogError> {
    let target = display_target(&config);
    let options = mongo::client_options(
        config.uri.expose(),
        "netsec-serve",
        SERVER_SELECTION_TIMEOUT,
    )
    .await
    .map_err(|e| PredictionLogError::Uri {
        uri: mongo::redacted_hosts(config.uri.expose()),
        message: mongo::scrub(&e.kind.to_string(), config.uri.expose()),
    })?;
    let client = Client::with_options(options).map_err(|e| PredictionLogError::Client {
        target: target.clone(),
        message: mongo::scrub(&e.kind.to_string(), config.uri.expose()),
    })?;
    let collection = client
        .database(&config.db)
        .collection::<Document>(&config.collection);
    let (sender, receiver) = mpsc::channel(config.queue_capacity.max(1));
    let stats = Arc::new(Stats::default());
    let (stop, stopped) = oneshot::channel();
    let writer = Writer {
        client,
        collection,
        receiver,
        stats: Arc::clone(&stats),
        target,
        batch_size: config.batch_size.max(1),
        flush_interval: config.flush_interval,
        drain_timeout: config.drain_timeout,
        failing: false,
    };
    let handle = tokio::spawn(writer.run(stopped));
    Ok((
        PredictionLog { sender, stats },
        PredictionLogTask { stop, handle },
    ))
}

struct Writer {
    /// The client, for the startup check.
    client: Client,
    collection: Collection<Document>,
    receiver: mpsc::Receiver<LogEntry>,
    stats: Arc<Stats>,
    target: String,
    batch_size: usize,
    flush_interval: Duration,
    drain_timeout: Duration,
    /// Whether the last write failed: failures are logged when they start, not per batch.
    failing: bool,
}

impl Writer {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        // The startup check runs beside the writer, so that it never holds entries back.
        let admin = self.client.database("admin");
        let target = self.target.clone();
        tokio::spawn(async move {
            match admin.run_command(doc! { "ping": 1 }).await {
                Ok(_) => tracing::info!(server = %target, "prediction log connected"),
                Err(e) => tracing::warn!(
                    server = %target,
                    error = %e.kind,
                    "prediction log server unreachable; serving anyway, predictions are counted as dropped until it answers"
                ),
            }
        });
        let mut pending: Vec<Document> = Vec::with_capacity(self.batch_size);
        let mut ticker = tokio::time::interval(self.flush_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'run: loop {
            tokio::select! {
                biased;
                _ = &mut stop => break,
                entry = self.receiver.recv() => match entry {
                    Some(entry) => {
                        self.append(entry, &mut pending).await;
                        while pending.len() >= self.batch_size {
                            // A large entry makes many batches: stop may not wait for all.
                            if !matches!(stop.try_recv(), Err(oneshot::error::TryRecvError::Empty)) {
                                break 'run;
                            }
                            let rest = pending.split_off(self.batch_size);
                            let batch = std::mem::replace(&mut pending, rest);
                            self.write(batch).await;
                        }
                    }
                    None => break,
                },
                _ = ticker.tick() => {
                    if !pending.is_empty() {
                        let batch = std::mem::take(&mut pending);
                        self.write(batch).await;
                    }
                }
            }
        }
        self.receiver.close();
        while let Ok(entry) = self.receiver.try_recv() {
            self.append(entry, &mut pending).await;
        }
        // Only a test's twin drops what is queued at shutdown (see `Guard::LogDrain`).
        if Guard::LogDrain.disabled() {
            let left = pending.len() as u64;
            self.stats.shutdown.fetch_add(left, Ordering::Relaxed);
            return;
        }
        self.write_until_deadline(pending).await;
    }

    /// Turns an entry into documents: small ones here, large ones (a CSV body) on the
    /// blocking pool, so that the async workers keep answering requests meanwhile.
    async fn append(&self, entry: LogEntry, pending: &mut Vec<Document>) {
        let rows = entry.answers.len();
        if rows <= INLINE_ROWS {
            documents(entry, pending);
            return;
        }
        let built = tokio::task::spawn_blocking(move || {
            let mut docs = Vec::with_capacity(rows);
            documents(entry, &mut docs);
            docs
        })
        .await;
        match built {
            Ok(mut docs) => pending.append(&mut docs),
            Err(_) => {
                self.stats
                    .write_failed
                    .fetch_add(rows as u64, Ordering::Relaxed);
            }
        }
    }

    async fn write_until_deadline(&mut self, mut pending: Vec<Document>) {
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        while !pending.is_empty() {
            let rest = pending.split_off(self.batch_size.min(pending.len()));
            let batch = std::mem::replace(&mut pending, rest);
            let rows = batch.len() as u64;
            if tokio::time::timeout_at(deadline, self.write(batch))
                .await
                .is_err()
            {
                let left = rows + pending.len() as u64;
                self.stats.shutdown.fetch_add(left, Ordering::Relaxed);
                tracing::warn!(
                    server = %self.target,
                    dropped = left,
                    "prediction log: drain deadline reached, predictions not written"
                );
                return;
            }
        }
    }

    async fn write(&mut self, batch: Vec<Document>) {
        let rows = batch.len() as u64;
        let (written, failed, error) =
            match self.collection.insert_many(&batch).ordered(false).await {
                Ok(done) => (done.inserted_ids.len() as u64, 0, None),
                Err(e) => {
                    let failed = match &*e.kind {
                        ErrorKind::InsertMany(failure) => failure
                            .write_errors
                            .as_ref()
                            .map_or(rows, |errors| (errors.len() as u64).min(rows)),
                        _ => rows,
                    };
                    (rows - failed, failed, Some(e))
                }
            };
        self.stats.written.fetch_add(written, Ordering::Relaxed);
        self.stats.write_failed.fetch_add(failed, Ordering::Relaxed);
        match error {
            Some(e) if !self.failing => {
                self.failing = true;
                tracing::warn!(
                    server = %self.target,
                    error = %e.kind,
                    "prediction log writes failing; predictions are counted as dropped"
                );
            }
            None if self.failing => {
                self.failing = false;
                tracing::info!(server = %self.target, "prediction log writes succeed again");
            }
            _ => {}
        }
    }
}

/// Appends one document per predicted row of `entry`.
fn documents(entry: LogEntry, out: &mut Vec<Document>) {
    let model = &entry.model;
    let time = DateTime::from_system_time(entry.time);
    let version = match model.version {
        Some(v) => Bson::Int64(i64::try_from(v).unwrap_or(i64::MAX)),
        None => Bson::String("file".into()),
    };
    let model_doc = doc! {
        "name": model.name.as_str(),
        "version": version,
        "sha256": model.sha256.as_str(),
    };
    let answers = &model.answers;
    let labels: Vec<Bson> = (0..answers.len() as u32)
        .map(|k| match answers.label_value(k) {
            Value::Number(n) => n.as_i64().map_or(Bson::Null, Bson::Int64),
            Value::Bool(b) => Bson::Boolean(*b),
            _ => Bson::String(answers.label(k).to_owned()),
        })
        .collect();
    let width = model.width.max(1);
    let mut features: Vec<Document> = match entry.inputs {
        LoggedInputs::Json(records) => records
            .into_iter()
            .map(|record| match Bson::try_from(Value::Object(record)) {
                Ok(Bson::Document(d)) => d,
                _ => Document::new(),
            })
            .collect(),
        LoggedInputs::Csv { header, cells } => cells
            .chunks(header.len().max(1))
            .map(|row| {
                header
                    .iter()
                    .zip(row)
                    .map(|(name, cell)| {
                        let value = cell.clone().map_or(Bson::Null, Bson::String);
                        (name.clone(), value)
                    })
                    .collect()
            })
            .collect(),
    };
    features.resize_with(entry.answers.len(), Document::new);
    for ((a, x), given) in entry
        .answers
        .iter()
        .zip(entry.features.chunks(width))
        .zip(features)
    {
        let mut hasher = Sha256::new();
        for v in x {
            hasher.update(v.to_le_bytes());
        }
        out.push(doc! {
            "time": time,
            "route": entry.route,
            "model": model_doc.clone(),
            "input_sha256": hex(&hasher.finalize()),
            "features": given,
            "predicted_label": labels[a.class as usize].clone(),
            "class_probability": a.class_probability,
            "attack_probability": a.attack_probability.map_or(Bson::Null, Bson::Double),
            "is_attack": a.is_attack().map_or(Bson::Null, Bson::Boolean),
            "attack_class": a.attack_class.map_or(Bson::Null, |c| Bson::String(answers.name(c).to_owned())),
        });
    }
}
