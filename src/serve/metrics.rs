//! Prometheus metrics of the server, kept in memory and rendered in the text exposition
//! format (version 0.0.4) by hand: the handful of series below do not need a library.
//!
//! * `netsec_http_requests_total{route,status}` and
//!   `netsec_http_request_duration_seconds{route,status}` (histogram)
//! * `netsec_predictions_total{class}`: predicted rows by predicted class name (K series
//!   per model served)
//! * `netsec_model_info{name,version,sha256,algorithm,schema_hash}` (always 1) and
//!   `netsec_model_loaded_timestamp_seconds`
//! * `netsec_model_reloads_total{result="ok"|"failed"}`
//! * `netsec_model_pointer_polls_total`: polls of a store's pointer (a stalled watcher shows)

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::source::LoadedModel;

/// Upper bounds (seconds) of the latency buckets: 25 µs to 10 s, so that both single
/// records (microseconds) and large CSV bodies (up to seconds) land in useful buckets.
const BUCKETS: [f64; 16] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0, 2.5, 10.0,
];

/// Route labels, as `app::route_label` gives them; each has a histogram per status below
/// made up front, so that recording a request is a few atomic additions (no lock).
const ROUTES: [&str; 10] = [
    "/",
    "/page.css",
    "/page.js",
    "/healthz",
    "/metrics",
    "/model",
    "/predict",
    "/predict/csv",
    "/readyz",
    "other",
];
/// Statuses the server answers; any other goes to a map behind a lock.
const STATUSES: [u16; 11] = [200, 400, 401, 404, 405, 408, 413, 415, 422, 500, 503];

/// One series of the request histogram, as rendered.
#[derive(Debug, Default, Clone, PartialEq)]
struct Histogram {
    /// Count per bucket (not cumulative; summed when rendered).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// A histogram updated with atomics; the sum is kept in nanoseconds.
#[derive(Debug, Default)]
struct AtomicHistogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    fn observe(&self, bucket: Option<usize>, elapsed: Duration) {
        if let Some(i) = bucket {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            count: self.count.load(Ordering::Relaxed),
            sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// The server's counters.
#[derive(Debug)]
pub struct Metrics {
    /// `ROUTES.len() * STATUSES.len()` histograms, route-major.
    requests: Vec<AtomicHistogram>,
    /// Series of statuses outside [`STATUSES`].
    other_requests: Mutex<BTreeMap<(&'static str, u16), Histogram>>,
    /// Predicted rows by class name: the classes of every model served by this process
    /// (K per model, so the label set stays bounded).
    predictions: Mutex<BTreeMap<String, u64>>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    pointer_polls: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: (0..ROUTES.len() * STATUSES.len())
                .map(|_| AtomicHistogram::default())
                .collect(),
            other_requests: Mutex::default(),
            predictions: Mutex::default(),
            reloads_ok: AtomicU64::default(),
            reloads_failed: AtomicU64::default(),
            pointer_polls: AtomicU64::default(),
        }
    }
}

impl Metrics {
    /// Records one answered request. `route` is the matched route pattern (bounded set).
    pub fn observe_request(&self, route: &'static str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|&b| seconds <= b);
        let fixed = ROUTES
            .iter()
            .position(|r| *r == route)
            .zip(STATUSES.iter().position(|s| *s == status))
            .and_then(|(r, s)| self.requests.get(r * STATUSES.len() + s));
        if let Some(h) = fixed {
            h.observe(bucket, elapsed);
            return;
        }
        let mut requests = match self.other_requests.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let h = requests.entry((route, status)).or_default();
        if let Some(i) = bucket {
            h.buckets[i] += 1;
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Every request series with at least one request, ordered by route and status.
    fn request_series(&self) -> BTreeMap<(&'static str, u16), Histogram> {
        let mut series = match self.other_requests.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for (r, route) in ROUTES.iter().enumerate() {
            for (s, status) in STATUSES.iter().enumerate() {
                if let Some(h) = self.requests.get(r * STATUSES.len() + s) {
                    let h = h.snapshot();
                    if h.count > 0 {
                        series.insert((*route, *status), h);
                    }
                }
            }
        }
        series
    }

    /// Counts predicted rows by class: `counts[k]` rows of the class named `names[k]`.
    /// One short lock per request (a map of K names), not per row.
    pub fn observe_counts(&self, names: &[String], counts: &[u64]) {
        let mut predictions = match self.predictions.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (name, &n) in names.iter().zip(counts).filter(|(_, n)| **n > 0) {
            match predictions.get_mut(name.as_str()) {
                Some(count) => *count += n,
                None => {
                    predictions.insert(name.clone(), n);
                }
            }
        }
    }

    /// Counts predicted rows by class, given each row's class id (indexing `names`).
    pub fn observe_classes(&self, names: &[String], classes: impl Iterator<Item = u32>) {
        let mut stack = [0u64; 16];
        let mut heap = Vec::new();
        let counts: &mut [u64] = if names.len() <= stack.len() {
            &mut stack[..names.len()]
        } else {
            heap.resize(names.len(), 0);
            &mut heap
        };
        for class in classes {
            if let Some(n) = counts.get_mut(class as usize) {
                *n += 1;
            }
        }
        self.observe_counts(names, counts);
    }

    /// Counts a reload attempt.
    pub fn observe_reload(&self, ok: bool) {
        let counter = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a poll of the store's pointer.
    pub fn observe_pointer_poll(&self) {
        self.pointer_polls.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders every series in the Prometheus text format.
    pub fn render(&self, model: &LoadedModel) -> String {
        let mut out = String::with_capacity(4096);
        let requests = self.request_series();
        out.push_str(
            "# HELP netsec_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE netsec_http_requests_total counter\n");
        for ((route, status), h) in &requests {
            let _ = writeln!(
                out,
                "netsec_http_requests_total{{route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                h.count
            );
        }
        out.push_str("# HELP netsec_http_request_duration_seconds Time to answer a request, by route and status.\n");
        out.push_str("# TYPE netsec_http_request_duration_seconds histogram\n");
        for ((route, status), h) in &requests {
            let labels = format!("route=\"{}\",status=\"{status}\"", escape(route));
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "netsec_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "netsec_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "netsec_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "netsec_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out.push_str("# HELP netsec_predictions_total Predicted rows, by predicted class.\n");
        out.push_str("# TYPE netsec_predictions_total counter\n");
        let mut predictions = match self.predictions.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        // The served model's classes are shown from the start, at 0.
        for name in &model.classes.names {
            predictions.entry(name.clone()).or_insert(0);
        }
        for (class, count) in &predictions {
            let _ = writeln!(
                out,
                "netsec_predictions_total{{class=\"{}\"}} {count}",
                escape(class)
            );
        }
        out.push_str("# HELP netsec_model_info The model being served (value always 1).\n");
        out.push_str("# TYPE netsec_model_info gauge\n");
        let _ = writeln!(
            out,
            "netsec_model_info{{name=\"{}\",version=\"{}\",sha256=\"{}\",algorithm=\"{}\",schema_hash=\"{}\"}} 1",
            escape(&model.name),
            escape(&model.version_text()),
            escape(&model.sha256),
            escape(&model.file.algorithm),
            escape(&model.file.schema.hash)
        );
        out.push_str("# HELP netsec_model_loaded_timestamp_seconds When the served model was loaded (Unix time).\n");
        out.push_str("# TYPE netsec_model_loaded_timestamp_seconds gauge\n");
        let _ = writeln!(
            out,
            "netsec_model_loaded_timestamp_seconds {}",
            model.loaded_at
        );
        out.push_str(
            "# HELP netsec_model_reloads_total Attempts to load a new model version, by result.\n",
        );
        out.push_str("# TYPE netsec_model_reloads_total counter\n");
        for (result, counter) in [("ok", &self.reloads_ok), ("failed", &self.reloads_failed)] {
            let _ = writeln!(
                out,
                "netsec_model_reloads_total{{result=\"{result}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP netsec_model_pointer_polls_total Polls of the model store's pointer.\n",
        );
        out.push_str("# TYPE netsec_model_pointer_polls_total counter\n");
        let _ = writeln!(
            out,
            "netsec_model_pointer_polls_total {}",
            self.pointer_polls.load(Ordering::Relaxed)
        );
        out
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_request("/predict", 200, Duration::from_micros(30));
        m.observe_request("/predict", 200, Duration::from_millis(3));
        m.observe_request("/predict", 200, Duration::from_secs(20));
        m.observe_request("other", 599, Duration::from_micros(30));
        let requests = m.request_series();
        let h = &requests[&("/predict", 200)];
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets.iter().sum::<u64>(), 2, "20 s is only in +Inf");
        assert!((h.sum - 20.003_03).abs() < 1e-9, "{}", h.sum);
        assert_eq!(requests[&("other", 599)].count, 1);
        assert_eq!(requests.len(), 2);
    }
}
