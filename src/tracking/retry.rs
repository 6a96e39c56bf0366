//! Retry policy: bounded exponential backoff with jitter.
//!
//! Only failures for which [`TrackingError::is_retryable`] holds are retried. A server's
//! `Retry-After` (seconds) replaces the computed delay, but never stretches the total
//! time budget: if the server asks for more than is left, the client gives up at once.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use super::error::{Result, TrackingError};

/// How often and how long to retry a failed request.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled after each one.
    pub initial_backoff: Duration,
    /// Upper bound of one delay.
    pub max_backoff: Duration,
    /// Upper bound of the time spent, from the first attempt to the start of the last.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// Eight attempts (seven retries, like MLflow's Python client), 250 ms doubling up to
    /// 10 s, at most two minutes in all.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A policy that makes exactly one attempt.
    pub fn never() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The delay before retry number `retry` (1-based): exponential, capped, with "equal
    /// jitter" (between half and all of the exponential value) so that clients that failed
    /// together do not come back together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(
                1u32.checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_backoff);
        exp.mul_f64(0.5 + 0.5 * unit_random())
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or the budget is
    /// spent. `op` must be safe to repeat; `retry_after` extracts a server-requested delay.
    pub(crate) async fn run<T, F, Fut>(&self, endpoint: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = (Result<T>, Option<Duration>)>,
    {
        let started = Instant::now();
        let mut attempt = 1u32;
        loop {
            let (result, retry_after) = op().await;
            let err = match result {
                Ok(value) => return Ok(value),
                Err(err) if !err.is_retryable() => return Err(err),
                Err(err) => err,
            };
            let delay = retry_after.unwrap_or_else(|| self.backoff(attempt));
            let elapsed = started.elapsed();
            if attempt >= self.max_attempts || elapsed + delay > self.max_elapsed {
                if attempt == 1 {
                    return Err(err);
                }
                return Err(TrackingError::RetriesExhausted {
                    attempts: attempt,
                    elapsed,
                    last: Box::new(err),
                });
            }
            tracing::warn!(endpoint, attempt, delay_ms = delay.as_millis() as u64, error = %err, "retrying MLflow request");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// A uniform number in [0, 1) without a random-number crate: std's `RandomState` is
/// seeded per instance from OS randomness, which is plenty for jitter.
fn unit_random() -> f64 {
    let bits = RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_elapsed: Duration::from_secs(60),
        };
        for (retry, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let d = p.backoff(retry).as_millis() as u64;
            assert!(
                d >= full / 2 && d <= full,
                "retry {retry}: {d} ms not in [{}, {full}]",
                full / 2
            );
        }
    }
}
