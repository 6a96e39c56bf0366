//! `runs/log-batch` with client-side validation and splitting at the server's limits.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::json;

use super::client::{MlflowClient, Payload};
use super::error::{Result, TrackingError};
use super::types::{Metric, Param, Tag};

/// Most params the server accepts in one request.
pub const MAX_PARAMS_PER_REQUEST: usize = 100;
/// Most tags the server accepts in one request.
pub const MAX_TAGS_PER_REQUEST: usize = 100;
/// Most metrics the server accepts in one request.
pub const MAX_METRICS_PER_REQUEST: usize = 1000;
/// Most entries (params + tags + metrics) the server accepts in one request.
pub const MAX_ENTRIES_PER_REQUEST: usize = 1000;
/// Longest key the server accepts.
pub const MAX_KEY_CHARS: usize = 250;
/// Longest param value stored intact (longer ones are truncated silently by the server).
pub const MAX_PARAM_VALUE_CHARS: usize = 6000;
/// Longest tag value stored intact.
pub const MAX_TAG_VALUE_CHARS: usize = 8000;

/// Params, metrics and tags to log to one run, of any size.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogBatch {
    /// Params (write-once: re-logging the same value is fine, another value is an error).
    pub params: Vec<Param>,
    /// Metric observations.
    pub metrics: Vec<Metric>,
    /// Tags (overwritten if already set).
    pub tags: Vec<Tag>,
}

impl LogBatch {
    /// Whether there is nothing to log.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty() && self.metrics.is_empty() && self.tags.is_empty()
    }

    /// Checks keys and value lengths, and drops exact duplicate params (conflicting
    /// duplicates are an error: the server would reject the batch).
    fn validated(mut self) -> Result<Self> {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        let mut keep = vec![true; self.params.len()];
        for (i, p) in self.params.iter().enumerate() {
            validate_key("param", &p.key)?;
            if p.value.chars().count() > MAX_PARAM_VALUE_CHARS {
                return Err(TrackingError::Invalid(format!(
                    "param {:?}: value longer than {MAX_PARAM_VALUE_CHARS} characters would be truncated",
                    p.key
                )));
            }
            match seen.insert(&p.key, &p.value) {
                Some(prev) if prev != p.value => {
                    return Err(TrackingError::Invalid(format!(
                        "param {:?} given twice with different values",
                        p.key
                    )));
                }
                Some(_) => keep[i] = false,
                None => {}
            }
        }
        for t in &self.tags {
            validate_key("tag", &t.key)?;
            if t.value.chars().count() > MAX_TAG_VALUE_CHARS {
                return Err(TrackingError::Invalid(format!(
                    "tag {:?}: value longer than {MAX_TAG_VALUE_CHARS} characters would be truncated",
                    t.key
                )));
            }
        }
        for m in &self.metrics {
            validate_key("metric", &m.key)?;
        }
        let mut keep = keep.into_iter();
        self.params.retain(|_| keep.next().unwrap_or(true));
        Ok(self)
    }

    /// Splits into requests within every server limit; params go first so a conflicting
    /// param fails the upload before any metric is written.
    fn split(self) -> Vec<LogBatch> {
        let mut params = self.params.into_iter();
        let mut tags = self.tags.into_iter();
        let mut metrics = self.metrics.into_iter();
        let mut out = Vec::new();
        loop {
            let p: Vec<Param> = params.by_ref().take(MAX_PARAMS_PER_REQUEST).collect();
            let t: Vec<Tag> = tags.by_ref().take(MAX_TAGS_PER_REQUEST).collect();
            let room = MAX_METRICS_PER_REQUEST.min(MAX_ENTRIES_PER_REQUEST - p.len() - t.len());
            let m: Vec<Metric> = metrics.by_ref().take(room).collect();
            if p.is_empty() && t.is_empty() && m.is_empty() {
                return out;
            }
            out.push(LogBatch {
                params: p,
                metrics: m,
                tags: t,
            });
        }
    }
}

/// Rejects keys the server would refuse or that could not be read back.
pub(crate) fn validate_key(kind: &str, key: &str) -> Result<()> {
    if key.trim().is_empty() {
        return Err(TrackingError::Invalid(format!("{kind} key is empty")));
    }
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(TrackingError::Invalid(format!(
            "{kind} key {:?}... is longer than {MAX_KEY_CHARS} characters",
            key.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

impl MlflowClient {
    /// Logs params, metrics and tags to a run, in as many requests as the server limits
    /// require, one after the other. Safe to retry as a whole: params are write-once with
    /// the same value, tags are overwritten, and metrics are keyed by
    /// (key, timestamp, step, value) on the server, so a repeated request stores nothing new.
    pub async fn log_batch(&self, run_id: &str, batch: LogBatch) -> Result<()> {
        for chunk in batch.validated()?.split() {
            let body = json!({
                "run_id": run_id,
                "params": chunk.params,
                "metrics": chunk.metrics,
                "tags": chunk.tags,
            });
            self.call::<serde_json::Value>(
                Method::POST,
                "runs/log-batch",
                &[],
                Payload::json(&body)?,
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(params: usize, tags: usize, metrics: usize) -> LogBatch {
        LogBatch {
            params: (0..params)
                .map(|i| Param::new(format!("p{i}"), "v"))
                .collect(),
            tags: (0..tags).map(|i| Tag::new(format!("t{i}"), "v")).collect(),
            metrics: (0..metrics)
                .map(|i| Metric::new(format!("m{i}"), 1.0, 0))
                .collect(),
        }
    }

    #[test]
    fn splits_within_every_limit_and_keeps_everything() {
        for (p, t, m) in [
            (250, 0, 2500),
            (0, 0, 1000),
            (100, 100, 800),
            (1, 250, 1),
            (0, 0, 0),
        ] {
            let chunks = batch(p, t, m).split();
            for c in &chunks {
                assert!(c.params.len() <= MAX_PARAMS_PER_REQUEST);
                assert!(c.tags.len() <= MAX_TAGS_PER_REQUEST);
                assert!(c.metrics.len() <= MAX_METRICS_PER_REQUEST);
                assert!(c.params.len() + c.tags.len() + c.metrics.len() <= MAX_ENTRIES_PER_REQUEST);
                assert!(!c.is_empty());
            }
            let total = |f: fn(&LogBatch) -> usize| chunks.iter().map(f).sum::<usize>();
            assert_eq!(total(|c| c.params.len()), p);
            assert_eq!(total(|c| c.tags.len()), t);
            assert_eq!(total(|c| c.metrics.len()), m);
        }
        assert_eq!(batch(250, 0, 2500).split().len(), 3);
    }

    #[test]
    fn validation_rejects_bad_keys_and_conflicts_and_dedups() {
        let mut b = batch(2, 0, 0);
        b.params.push(Param::new("p0", "v"));
        assert_eq!(b.validated().unwrap().params.len(), 2);
        let mut b = batch(1, 0, 0);
        b.params.push(Param::new("p0", "other"));
        assert!(
            b.validated()
                .unwrap_err()
                .to_string()
                .contains("different values")
        );
        let mut b = batch(0, 0, 0);
        b.metrics.push(Metric::new("k".repeat(251), 1.0, 0));
        assert!(
            b.validated()
                .unwrap_err()
                .to_string()
                .contains("longer than 250")
        );
        let mut b = batch(0, 0, 0);
        b.params.push(Param::new("", "v"));
        assert!(b.validated().is_err());
    }
}
