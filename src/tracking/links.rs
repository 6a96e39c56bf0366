//! Links into the MLflow web UI, for printing to the user.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::client::MlflowClient;

impl MlflowClient {
    /// The runs table of an experiment.
    pub fn experiment_url(&self, experiment_id: &str) -> String {
        format!(
            "{}/#/experiments/{experiment_id}/runs",
            self.config().base_url
        )
    }

    /// One run's page.
    pub fn run_url(&self, experiment_id: &str, run_id: &str) -> String {
        format!(
            "{}/#/experiments/{experiment_id}/runs/{run_id}",
            self.config().base_url
        )
    }

    /// The side-by-side comparison of `run_ids` (all of `experiment_id`).
    pub fn compare_runs_url(&self, experiment_id: &str, run_ids: &[&str]) -> String {
        let list = |items: &[&str]| {
            let json = serde_json::to_string(items).unwrap_or_default();
            utf8_percent_encode(&json, NON_ALPHANUMERIC).to_string()
        };
        format!(
            "{}/#/compare-runs?runs={}&experiments={}",
            self.config().base_url,
            list(run_ids),
            list(&[experiment_id])
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::tracking::{MlflowClient, TrackingConfig};

    #[test]
    fn compare_link_is_url_encoded() {
        let c = MlflowClient::new(TrackingConfig::new("http://h:5000/").unwrap()).unwrap();
        assert_eq!(c.experiment_url("3"), "http://h:5000/#/experiments/3/runs");
        assert_eq!(
            c.compare_runs_url("3", &["ab", "cd"]),
            "http://h:5000/#/compare-runs?runs=%5B%22ab%22%2C%22cd%22%5D&experiments=%5B%223%22%5D"
        );
    }
}
