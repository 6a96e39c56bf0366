//! The wall clock in the one unit every stored timestamp uses (Unix milliseconds): the run
//! store, the registry, the tracking outbox and MLflow all agree on it, so the outbox does
//! not have to borrow the HTTP client's clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 on a clock set before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::now_ms;

    #[test]
    fn now_is_after_2020() {
        // 2020-01-01T00:00:00Z: a clock this old means the unit is wrong.
        assert!(now_ms() > 1_577_836_800_000);
    }
}
