//! MLflow features a tracking server may lack, and the one warning per feature and process
//! that says so.
//!
//! Older servers (an MLflow 2.x, DagsHub's MLflow) have no endpoint for some of what netsec
//! logs: dataset inputs (`runs/log-inputs`, MLflow 2.4), logged models (`logged-models`,
//! `runs/outputs`, MLflow 3) and the model registry. Such a server answers 404 without
//! MLflow's "does not exist" code (an HTML page, or `ENDPOINT_NOT_FOUND`), or 501. Tracking
//! then goes on without the feature: a record is not refused for it, and the user reads one
//! warning, not one per run.

use std::sync::atomic::{AtomicBool, Ordering};

use super::error::TrackingError;

/// Whether `err` says the endpoint called does not exist on this server (looking through
/// retries: 501 is a 5xx and so retried first). A 404 with `RESOURCE_DOES_NOT_EXIST` is an
/// endpoint that exists and a thing that does not.
pub fn endpoint_missing(err: &TrackingError) -> bool {
    matches!(
        err.root(),
        TrackingError::Api { status, code, .. }
            if (*status == 404 && code != "RESOURCE_DOES_NOT_EXIST") || *status == 501
    )
}

/// An optional feature of the server that netsec uses when it is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Dataset inputs of runs (`runs/log-inputs`).
    DatasetInputs,
    /// Logged models (`logged-models`, `runs/outputs`).
    LoggedModels,
}

static DATASET_INPUTS_WARNED: AtomicBool = AtomicBool::new(false);
static LOGGED_MODELS_WARNED: AtomicBool = AtomicBool::new(false);

impl Feature {
    /// What the warning says tracking does without the feature.
    fn consequence(self) -> &'static str {
        match self {
            Feature::DatasetInputs => {
                "mlflow: this server keeps no dataset inputs; runs are logged without them"
            }
            Feature::LoggedModels => {
                "mlflow: this server keeps no logged models (an MLflow before 3.0); the best \
                 model stays a run artifact (model/<sha256>.json) only"
            }
        }
    }

    fn warned(self) -> &'static AtomicBool {
        match self {
            Feature::DatasetInputs => &DATASET_INPUTS_WARNED,
            Feature::LoggedModels => &LOGGED_MODELS_WARNED,
        }
    }

    /// Warns, once per process and feature, that the server lacks it (`err` is the answer
    /// that said so; it names the endpoint, never the host or a credential).
    pub fn warn_missing(self, err: &TrackingError) {
        if !self.warned().swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %err, "{}", self.consequence());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> TrackingError {
        TrackingError::Api {
            endpoint: "POST logged-models".into(),
            status,
            code: code.into(),
            message: String::new(),
        }
    }

    #[test]
    fn a_missing_endpoint_is_not_a_missing_thing() {
        assert!(endpoint_missing(&api(404, "HTTP_404")));
        assert!(endpoint_missing(&api(404, "ENDPOINT_NOT_FOUND")));
        assert!(endpoint_missing(&api(501, "HTTP_501")));
        assert!(!endpoint_missing(&api(404, "RESOURCE_DOES_NOT_EXIST")));
        assert!(!endpoint_missing(&api(400, "INVALID_PARAMETER_VALUE")));
        let retried = TrackingError::RetriesExhausted {
            attempts: 2,
            elapsed: std::time::Duration::from_secs(1),
            last: Box::new(api(501, "HTTP_501")),
        };
        assert!(endpoint_missing(&retried));
    }
}
